// Zero-allocation proof for the checkers' recovery-plane paths: directio submit/reap on a loop
// device, and the asynchronous TUR checker's write/epoll/read against a fake sg target.
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Testing

/// Counts completions without storing them (a sink that allocates nothing).
private struct CountingSink: CheckCompletionSink {
    var up = 0
    var other = 0
    mutating func checkCompleted(_ completion: CheckCompletion) {
        if completion.result == .up { up += 1 } else { other += 1 }
    }
}

private func nowNs() -> Nanoseconds { LogClock.nowNs() }

/// Warms `checker` up with 100 checks (first-use paths in libaio and the runtime), then counts the
/// calling thread's mallocs over `iterations` round trips: submit `request`, reap until its
/// completion arrives. Returns the count and what the measured round trips delivered.
private func roundTripMallocs<Checker: PathCheckBackend>(_ checker: Checker, request: CheckRequest,
                                                         iterations: Int) -> (mallocs: Int, sink: CountingSink) {
    var checker = checker
    var sink = CountingSink()
    for _ in 0..<100 {
        _ = checker.submit(request, nowNs: nowNs())
        while sink.up + sink.other == 0 { checker.reap(nowNs: nowNs(), into: &sink) }
        sink = CountingSink()
    }
    let mallocs = mallocCount(iterations: iterations) {
        let before = sink.up + sink.other
        _ = checker.submit(request, nowNs: nowNs())
        while sink.up + sink.other == before { checker.reap(nowNs: nowNs(), into: &sink) }
    }
    return (mallocs, sink)
}

/// A loop device over a fresh 1 MiB file, detached and removed by `detach()`.
private struct AllocationLoop {
    let path: String
    let file: String

    init() throws {
        file = "/tmp/keel-alloc-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).img"
        guard FileManager.default.createFile(atPath: file, contents: nil), truncate(file, 1 << 20) == 0 else {
            throw CocoaError(.fileWriteUnknown)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["losetup", "-f", "--show", file]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        path = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard process.terminationStatus == 0, path.hasPrefix("/dev/loop") else { throw CocoaError(.fileReadUnknown) }
    }

    func detach() {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["losetup", "-d", path]
        try? process.run()
        process.waitUntilExit()
        unlink(file)
    }
}

@Suite(.serialized) struct CheckersAllocationTests {
    /// 1,000,000 directio checks (about 17 µs each on this host's loop device).
    @Test func directIOSubmitAndReapAllocateNothing() throws {
        let loop = try AllocationLoop()
        defer { loop.detach() }
        let checker = try DirectIOChecker(DirectIOConfiguration(pathsMax: 4))
        defer { checker.close() }
        try checker.register(path: PathHandle(index: 0), devicePath: loop.path)
        let request = CheckRequest(path: PathHandle(index: 0), device: DevNo(major: 7, minor: 0), token: 1, timeoutNs: 5 * Time.nsPerSecond)
        let iterations = 1_000_000
        let (mallocs, sink) = roundTripMallocs(checker, request: request, iterations: iterations)
        #expect(mallocs == 0)
        #expect(sink.up >= iterations)  // mallocCount also runs the body once uncounted
        #expect(sink.other == 0)
    }

    /// directio's synchronous fallback (io_setup refused): 200,000 checks through its threads
    /// (slot claim, queue push, `sem_post`, reap with the deadline from dispatch) without a malloc
    /// on the submitting thread. Its threads allocate their buffers when they start, before.
    @Test func directIOFallbackSubmitAndReapAllocateNothing() throws {
        let loop = try AllocationLoop()
        defer { loop.detach() }
        let checker = try DirectIOChecker(DirectIOConfiguration(pathsMax: 4, fallbackThreads: 2, forceSynchronous: true))
        defer { checker.close() }
        #expect(checker.mode == .synchronous(threads: 2))
        try checker.register(path: PathHandle(index: 0), devicePath: loop.path)
        let request = CheckRequest(path: PathHandle(index: 0), device: DevNo(major: 7, minor: 0), token: 1, timeoutNs: 5 * Time.nsPerSecond)
        let iterations = 200_000
        let (mallocs, sink) = roundTripMallocs(checker, request: request, iterations: iterations)
        #expect(mallocs == 0)
        #expect(sink.up >= iterations)
        #expect(sink.other == 0)
    }

    /// 1,000,000 TUR checks through the asynchronous sg checker: each is a real `write` of the
    /// request to a fake target's socket, answered GOOD by the test, and a real epoll + `read` of
    /// the answer, the same system calls and Swift path as on `/dev/sgN` (this host has no SCSI).
    @Test func turSubmitAndReapAllocateNothing() throws {
        var checker = try TURChecker(TURConfiguration(pathsMax: 4))
        defer { checker.close() }
        let targets = try SGFakeTargets(paths: 2, checker: checker)
        let request = CheckRequest(path: PathHandle(index: 1), device: DevNo(major: 8, minor: 16), token: 1, timeoutNs: 5 * Time.nsPerSecond)
        var sink = CountingSink()
        for _ in 0..<100 {
            _ = checker.submit(request, nowNs: nowNs())
            targets.answer(1)
            while sink.up + sink.other == 0 { checker.reap(nowNs: nowNs(), into: &sink) }
            sink = CountingSink()
        }
        let iterations = 1_000_000
        let mallocs = mallocCount(iterations: iterations) {
            let before = sink.up + sink.other
            _ = checker.submit(request, nowNs: nowNs())
            targets.answer(1)
            while sink.up + sink.other == before { checker.reap(nowNs: nowNs(), into: &sink) }
        }
        #expect(mallocs == 0)
        #expect(sink.up >= iterations)  // mallocCount also runs the body once uncounted
        #expect(sink.other == 0)
        #expect(checker.lastReason(of: PathHandle(index: 1)).kind == .good)
    }

    /// The other SCSI checks on the same machinery: rdac (INQUIRY page 0xC9, its page decoded
    /// from the shared data buffer) and hp_sw (INQUIRY page 0x80, then a TUR sent from the
    /// answer's settlement): 200,000 checks each, without a malloc.
    @Test(arguments: [SCSICheck.rdac, .hpSW, .emcClariion, .readsector0])
    func otherSCSIChecksAllocateNothing(_ check: SCSICheck) throws {
        let checker = try TURChecker(TURConfiguration(pathsMax: 4))
        defer { checker.close() }
        let targets = try SGFakeTargets(paths: 2, checker: checker, check: check)
        var page = [UInt8](repeating: 0, count: 128)
        switch check {
        case .rdac: page[8] = 0x01  // the owning controller
        case .emcClariion: page[1] = 0xc0; page[4] = 2; page[27] = 3; page[28] = 4; page[30] = 4
        default: break
        }
        let answer = SGFakeTargets.Answer(data: page)
        let request = CheckRequest(path: PathHandle(index: 1), device: DevNo(major: 8, minor: 16), token: 1, timeoutNs: 5 * Time.nsPerSecond)
        var sink = CountingSink()
        func roundTrip() {
            let before = sink.up + sink.other
            _ = checker.submit(request, nowNs: nowNs())
            while sink.up + sink.other == before {
                targets.answer(1, answer)
                checker.reap(nowNs: nowNs(), into: &sink)
            }
        }
        for _ in 0..<100 { roundTrip() }
        sink = CountingSink()
        let iterations = 200_000
        let mallocs = mallocCount(iterations: iterations) { roundTrip() }
        #expect(mallocs == 0)
        #expect(sink.up >= iterations)
        #expect(sink.other == 0)
    }

    /// A path of a map with a reservation key, failing and coming back 100,000 times: each return
    /// is a TUR, a READ KEYS whose answer is searched for the key, and a REGISTER AND IGNORE
    /// EXISTING KEY whose parameter list is written, all settled on this thread without a malloc.
    @Test func returningPathRegistrationAllocatesNothing() throws {
        let checker = try TURChecker(TURConfiguration(pathsMax: 4))
        defer { checker.close() }
        let targets = try SGFakeTargets(paths: 2, checker: checker)
        let path = PathHandle(index: 1)
        checker.setReservationKey(0x1234, aptpl: false, path: path)
        var keys = [UInt8](repeating: 0, count: 16)
        keys[7] = 8
        keys[14] = 0x12
        keys[15] = 0x34
        let readKeys = SGFakeTargets.Answer(data: keys)
        let down = SGFakeTargets.Answer.checkCondition(key: 0x02, asc: 0x04, ascq: 0x03)
        let request = CheckRequest(path: path, device: DevNo(major: 8, minor: 16), token: 1, timeoutNs: 5 * Time.nsPerSecond)
        var sink = CountingSink()
        let failing = [down], returning = [SGFakeTargets.Answer.good, readKeys, .good]
        func check(_ answers: [SGFakeTargets.Answer]) {
            let before = sink.up + sink.other
            _ = checker.submit(request, nowNs: nowNs())
            var next = 0
            while sink.up + sink.other == before {
                if targets.take(1) > 0 && next < answers.count {
                    targets.answer(1, answers[next])
                    next += 1
                }
                checker.reap(nowNs: nowNs(), into: &sink)
            }
        }
        func failAndReturn() {
            check(failing)
            check(returning)
        }
        for _ in 0..<100 { failAndReturn() }
        sink = CountingSink()
        let iterations = 100_000
        let mallocs = mallocCount(iterations: iterations) { failAndReturn() }
        #expect(mallocs == 0)
        #expect(sink.up >= iterations && sink.other >= iterations)
        #expect(checker.counters.registered >= iterations)
        #expect(checker.registration(of: path) == .registered)
    }

    /// The daemon's dispatching checker over the TUR backend, with its latency histogram:
    /// 1,000,000 checks submitted, reaped through the timing sink and counted, without a malloc.
    @Test func daemonCheckerWithLatencyHistogramAllocatesNothing() throws {
        let tur = try TURChecker(TURConfiguration(pathsMax: 4))
        defer { tur.close() }
        let targets = try SGFakeTargets(paths: 2, checker: tur)
        var checker = DaemonChecker(pathsMax: 4, tur: tur, directIO: nil)
        checker.assign(PathHandle(index: 1), to: .tur)
        let request = CheckRequest(path: PathHandle(index: 1), device: DevNo(major: 8, minor: 16), token: 1, timeoutNs: 5 * Time.nsPerSecond)
        var sink = CountingSink()
        let iterations = 1_000_000
        let mallocs = mallocCount(iterations: iterations) {
            let before = sink.up + sink.other
            _ = checker.submit(request, nowNs: nowNs())
            targets.answer(1)
            while sink.up + sink.other == before { checker.reap(nowNs: nowNs(), into: &sink) }
        }
        #expect(mallocs == 0)
        #expect(sink.up >= iterations)
        #expect(checker.latency.bucketCounts.reduce(0, +) >= UInt64(iterations), "every check was counted")
    }
}
