// A write-and-verify block workload for real-kernel ride-through tests: O_DIRECT|O_SYNC 4 KiB
// writes of (block, generation) patterns, each read back and checked, with stall and error records.
import Foundation
import Glibc
import KeelLinux

/// CLOCK_MONOTONIC in nanoseconds (the clock every ride-through timestamp uses).
func rideThroughMonotonicNs() -> UInt64 { UInt64(LogClock.nowNs()) }

/// Nanoseconds as milliseconds with one decimal ("1234.5 ms").
func rideThroughMs(_ ns: UInt64) -> String {
    let tenths = ns / 100_000
    return "\(tenths / 10).\(tenths % 10) ms"
}

/// One failed system call of the workload.
struct WorkloadIOError: Sendable, CustomStringConvertible {
    /// "open", "write", "read" or "short write"/"short read" (a transfer of fewer bytes, errno 0).
    var operation: String
    var block: Int
    var errno: Int32
    var atNs: UInt64
    var description: String { "\(operation) of block \(block): errno \(errno) (\(String(cString: strerror(errno))))" }
}

/// A block whose content was not the pattern last written to it.
struct WorkloadCorruption: Sendable, CustomStringConvertible {
    var block: Int
    /// The generation written last (or the generations that may be there after a failed write).
    var expectedGenerations: [UInt32]
    /// What the first word of the block says: the block and generation of the pattern found.
    var foundBlock: UInt32
    var foundGeneration: UInt32
    /// Bytes of the block that differ from the expected pattern.
    var differingBytes: Int
    /// "read-back" (right after the write) or "final" (the pass after the workload stopped).
    var pass: String
    var description: String {
        "\(pass): block \(block) expected generation \(expectedGenerations), found block \(foundBlock) generation \(foundGeneration), \(differingBytes) bytes differ"
    }
}

/// What a workload run did, taken after it stopped.
struct WorkloadReport: Sendable {
    var writesCompleted: Int
    var readsVerified: Int
    /// Every failed call counts here; `errors` keeps the first `errorsKeptMax`.
    var errorCount: Int
    var errors: [WorkloadIOError]
    var corruptions: [WorkloadCorruption]
    /// Monotonic times at which a write or a verifying read returned successfully, sorted.
    var completionsNs: [UInt64]
    var startNs: UInt64
    var stopNs: UInt64
    /// Blocks checked by the final pass (every block written successfully at least once).
    var blocksVerifiedFinal: Int

    /// The longest time with no completed I/O, from start to stop, and where it began.
    var longestStall: (ns: UInt64, fromNs: UInt64) {
        var previous = startNs
        var longest: (ns: UInt64, fromNs: UInt64) = (0, startNs)
        for completion in completionsNs + [stopNs] where completion >= previous {
            if completion - previous > longest.ns { longest = (completion - previous, previous) }
            previous = completion
        }
        return longest
    }

    /// The first completed I/O strictly after `eventNs`, as the time since that event (nil if none).
    func firstCompletion(afterNs eventNs: UInt64) -> UInt64? {
        completionsNs.first { $0 > eventNs }.map { $0 - eventNs }
    }

    /// How many I/Os completed in [fromNs, toNs).
    func completions(fromNs: UInt64, toNs: UInt64) -> Int {
        completionsNs.lazy.filter { $0 >= fromNs && $0 < toNs }.count
    }

    /// One line for a test's output.
    var summary: String {
        let stall = longestStall
        return "\(writesCompleted) writes, \(readsVerified) verified reads, \(errorCount) I/O errors, \(corruptions.count) corrupted, "
            + "final pass over \(blocksVerifiedFinal) blocks, longest stall \(rideThroughMs(stall.ns)) from +\(rideThroughMs(stall.fromNs - startNs))"
    }
}

/// N threads, each owning the blocks b with b % N == its index, write generation g of block b
/// with O_DIRECT|O_SYNC and read it back at once, round after round, until stopped. A failed write
/// leaves the block holding either the old or the new generation; both are then accepted.
final class WriteVerifyWorkload: @unchecked Sendable {
    static let blockBytes = 4096
    /// O_DIRECT on x86_64 (`_GNU_SOURCE` only, so Glibc does not export it).
    static let openDirect: Int32 = 0o40000
    static let errorsKeptMax = 200

    let device: String
    let firstBlock: Int
    let blockCount: Int
    let threadCount: Int
    /// Pause after a failed call, so a failing device does not turn the workload into a spin.
    let errorPauseUs: UInt32 = 10_000

    private let lock = NSLock()
    private var stopping = false
    private var running = 0
    private var writesCompleted = 0
    private var readsVerified = 0
    private var errorCount = 0
    private var errors: [WorkloadIOError] = []
    private var corruptions: [WorkloadCorruption] = []
    private var completionsNs: [UInt64] = []
    /// Per block: the generations that may be on disk since its first successful write (before
    /// that the block may still hold whatever it held, so the final pass skips it).
    private var possibleGenerations: [[UInt32]]
    private var everWritten: [Bool]
    private var startNs: UInt64 = 0
    private var stopNs: UInt64 = 0
    private let finished = DispatchGroup()

    /// A workload over blocks [firstBlock, firstBlock + blockCount) of `device`.
    init(device: String, firstBlock: Int = 0, blockCount: Int = 256, threads: Int = 2) {
        precondition(blockCount >= threads && threads > 0)
        self.device = device
        self.firstBlock = firstBlock
        self.blockCount = blockCount
        self.threadCount = threads
        possibleGenerations = Array(repeating: [], count: blockCount)
        everWritten = Array(repeating: false, count: blockCount)
    }

    /// The 8-byte word `index` of generation `generation` of block `block`: word 0 is
    /// block << 32 | generation, so a misplaced or stale block says what it is.
    static func patternWord(block: Int, generation: UInt32, index: Int) -> UInt64 {
        let head = UInt64(UInt32(truncatingIfNeeded: block)) << 32 | UInt64(generation)
        return index == 0 ? head : head ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
    }

    static func fill(_ buffer: UnsafeMutableRawPointer, block: Int, generation: UInt32) {
        let words = buffer.bindMemory(to: UInt64.self, capacity: blockBytes / 8)
        for index in 0..<(blockBytes / 8) { words[index] = patternWord(block: block, generation: generation, index: index) }
    }

    /// Bytes of `buffer` that differ from the pattern (0: it matches).
    static func differingBytes(_ buffer: UnsafeRawPointer, block: Int, generation: UInt32) -> Int {
        let words = buffer.bindMemory(to: UInt64.self, capacity: blockBytes / 8)
        var differing = 0
        for index in 0..<(blockBytes / 8) {
            let diff = words[index] ^ patternWord(block: block, generation: generation, index: index)
            if diff != 0 { differing += (0..<8).reduce(0) { $0 + ((diff >> UInt64($1 * 8)) & 0xff != 0 ? 1 : 0) } }
        }
        return differing
    }

    /// Starts the threads; throws when the device cannot be opened.
    func start() throws {
        let probe = open(device, O_RDWR | Self.openDirect | O_SYNC)
        guard probe >= 0 else { throw RideThroughError("open \(device): errno \(errno)") }
        close(probe)
        startNs = rideThroughMonotonicNs()
        for index in 0..<threadCount {
            lock.withLock { running += 1 }
            finished.enter()
            let thread = Thread { [self] in
                run(index: index)
                finished.leave()
            }
            thread.name = "write-verify-\(index)"
            thread.start()
        }
    }

    /// Asks the threads to stop and waits for them at most `timeoutNs` (a thread blocked in I/O
    /// on a dead device cannot stop): false when some are still running.
    func stop(timeoutNs: UInt64 = 30_000_000_000) -> Bool {
        lock.withLock { stopping = true }
        let stopped = finished.wait(timeout: .now() + .nanoseconds(Int(timeoutNs))) == .success
        stopNs = rideThroughMonotonicNs()
        return stopped
    }

    /// The report after `stop()`, with a final pass reading every written block once more.
    func finalReport() -> WorkloadReport {
        let blocksVerified = verifyAll()
        return lock.withLock {
            WorkloadReport(writesCompleted: writesCompleted, readsVerified: readsVerified, errorCount: errorCount,
                           errors: errors, corruptions: corruptions, completionsNs: completionsNs.sorted(),
                           startNs: startNs, stopNs: stopNs, blocksVerifiedFinal: blocksVerified)
        }
    }

    /// Completions so far (for progress checks while running).
    var writesSoFar: Int { lock.withLock { writesCompleted } }

    private func record(error operation: String, block: Int, errno code: Int32) {
        let now = rideThroughMonotonicNs()
        lock.withLock {
            errorCount += 1
            if errors.count < Self.errorsKeptMax { errors.append(WorkloadIOError(operation: operation, block: block, errno: code, atNs: now)) }
        }
        usleep(errorPauseUs)
    }

    private func run(index: Int) {
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, Self.blockBytes, 2 * Self.blockBytes) == 0, let buffers = raw else {
            record(error: "posix_memalign", block: -1, errno: ENOMEM)
            return
        }
        defer { free(buffers) }
        let writeBuffer = buffers
        let readBuffer = buffers + Self.blockBytes
        let fd = open(device, O_RDWR | Self.openDirect | O_SYNC)
        guard fd >= 0 else {
            record(error: "open", block: -1, errno: errno)
            return
        }
        defer { close(fd) }
        var generation: UInt32 = 0
        while true {
            generation &+= 1
            var slot = index
            while slot < blockCount {
                if lock.withLock({ stopping }) { return }
                let block = firstBlock + slot
                let offset = off_t(block) * off_t(Self.blockBytes)
                Self.fill(writeBuffer, block: block, generation: generation)
                lock.withLock { possibleGenerations[slot].append(generation) }
                let written = pwrite(fd, writeBuffer, Self.blockBytes, offset)
                let writeErrno = errno
                if written != Self.blockBytes {
                    // Old or new generation may be on disk: keep both possible.
                    record(error: written < 0 ? "write" : "short write", block: block, errno: written < 0 ? writeErrno : 0)
                    slot += threadCount
                    continue
                }
                let writtenNs = rideThroughMonotonicNs()
                lock.withLock {
                    possibleGenerations[slot] = [generation]
                    everWritten[slot] = true
                    writesCompleted += 1
                    completionsNs.append(writtenNs)
                }
                let got = pread(fd, readBuffer, Self.blockBytes, offset)
                let readErrno = errno
                if got != Self.blockBytes {
                    record(error: got < 0 ? "read" : "short read", block: block, errno: got < 0 ? readErrno : 0)
                    slot += threadCount
                    continue
                }
                let readNs = rideThroughMonotonicNs()
                let differing = Self.differingBytes(readBuffer, block: block, generation: generation)
                let head = readBuffer.load(as: UInt64.self)
                lock.withLock {
                    readsVerified += 1
                    completionsNs.append(readNs)
                    if differing != 0 {
                        corruptions.append(WorkloadCorruption(block: block, expectedGenerations: [generation],
                                                              foundBlock: UInt32(head >> 32), foundGeneration: UInt32(truncatingIfNeeded: head),
                                                              differingBytes: differing, pass: "read-back"))
                    }
                }
                slot += threadCount
            }
        }
    }

    /// Reads every written block through a fresh descriptor and checks it holds a generation it
    /// may hold; returns how many blocks were checked.
    private func verifyAll() -> Int {
        let fd = open(device, O_RDONLY | Self.openDirect)
        guard fd >= 0 else {
            record(error: "open", block: -1, errno: errno)
            return 0
        }
        defer { close(fd) }
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, Self.blockBytes, Self.blockBytes) == 0, let buffer = raw else { return 0 }
        defer { free(buffer) }
        var checked = 0
        for slot in 0..<blockCount {
            let (candidates, written) = lock.withLock { (possibleGenerations[slot], everWritten[slot]) }
            guard written else { continue }
            let block = firstBlock + slot
            let got = pread(fd, buffer, Self.blockBytes, off_t(block) * off_t(Self.blockBytes))
            guard got == Self.blockBytes else {
                record(error: got < 0 ? "final read" : "short final read", block: block, errno: got < 0 ? errno : 0)
                continue
            }
            checked += 1
            let differing = candidates.map { Self.differingBytes(buffer, block: block, generation: $0) }
            if !differing.contains(0) {
                let head = buffer.load(as: UInt64.self)
                lock.withLock {
                    corruptions.append(WorkloadCorruption(block: block, expectedGenerations: candidates,
                                                          foundBlock: UInt32(head >> 32), foundGeneration: UInt32(truncatingIfNeeded: head),
                                                          differingBytes: differing.min() ?? 0, pass: "final"))
                }
            }
        }
        return checked
    }
}

/// A ride-through test's failure with a readable reason.
struct RideThroughError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
