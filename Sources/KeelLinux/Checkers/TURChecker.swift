// The tur checker: SCSI TEST UNIT READY through SG_IO on a fixed, preallocated pool of checker
// threads (never a thread per check), with timeouts reported on time while a thread is stuck.
import Glibc
import Synchronization
import CKeelShim
import KeelCore

/// Sizes and limits of a TUR checker, all fixed at init.
public struct TURConfiguration: Sendable, Equatable {
    /// Paths the checker can hold; `PathHandle.index` must be below it.
    public var pathsMax: Int
    /// Checker threads. A thread stuck in SG_IO past its timeout is counted; when all are, new
    /// checks are refused until one returns.
    public var threads: Int
    /// Stack size of each thread; small because the daemon locks its memory.
    public var threadStackBytes: Int

    public init(pathsMax: Int, threads: Int = 4, threadStackBytes: Int = 64 * 1024) {
        self.pathsMax = pathsMax
        self.threads = threads
        self.threadStackBytes = threadStackBytes
    }
}

/// What the TUR checker did, for `show` commands and tests. Read it on the recovery thread.
public struct TURCounters: Sendable, Equatable {
    public var submitted = 0
    public var completed = 0
    public var timedOut = 0
    /// Refusals: a check of the path was still in flight.
    public var refusedBusy = 0
    /// Refusals: the path's previous check timed out and its thread has not returned.
    public var refusedOrphan = 0
    /// Refusals: no descriptor registered for the path.
    public var refusedUnregistered = 0
    /// Refusals: every thread is stuck in SG_IO on a check that already timed out.
    public var refusedStuck = 0
    public init() {}
}

/// The tur path checker (multipath-tools' `tur`): TEST UNIT READY with `sg_io_hdr.timeout` set to
/// the check's timeout, decoded by `TURSense.decide` (UNIT ATTENTION and transient host errors
/// retried in the thread, up to `TURSense.attemptsMax` attempts).
///
/// Unlike multipath-tools, which creates a detached thread for every check, the threads are
/// created once at init. `reap` reports `.timeout` when a check passes its deadline even if its
/// thread is still inside the ioctl; that thread's late answer is dropped, and the path is
/// refused (submit returns false) until the thread comes back, so one hung device holds at most
/// one thread.
public struct TURChecker: PathCheckBackend {
    @usableFromInline let core: TURCore

    /// Creates the threads and every buffer for `configuration.pathsMax` paths.
    public init(_ configuration: TURConfiguration) throws(SystemError) {
        core = try TURCore(configuration)
    }

    /// An eventfd that becomes readable when a check completes; `reap` drains it.
    public var completionFD: Int32 { core.pool.eventFD }
    /// Counters; read them on the recovery thread.
    public var counters: TURCounters { core.counters }
    /// Threads stuck in SG_IO on checks already reported as timed out.
    public var stuckThreads: Int { core.pool.stuckThreadCount }

    /// Opens `devicePath` (an sd or sg node) for `path` (control plane). Replaces an earlier
    /// registration.
    public func register(path: PathHandle, devicePath: String) throws(SystemError) {
        try core.register(path: path.index, devicePath: devicePath)
    }

    /// Forgets the path's descriptor; closed now, or once a thread still using it returns.
    public func unregister(path: PathHandle) { core.unregister(path: path.index) }

    /// Closes descriptors parked by `unregister` whose checks have come back (control plane).
    @discardableResult
    public func closeRetiredDescriptors() -> Int { core.descriptors.closeRetired(isIdle: core.pool.isIdle) }

    /// Why the path's last check ended as it did (any thread may read it).
    public func lastReason(of path: PathHandle) -> TURReason { core.lastReason(path.index) }

    @inlinable
    public func submit(_ request: CheckRequest, nowNs: Nanoseconds) -> Bool {
        core.submit(request, nowNs: nowNs)
    }

    @inlinable
    public func reap<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S) {
        core.reap(nowNs: nowNs, into: &sink)
    }

    /// The earliest timeout among checks in flight (`Time.never` when none).
    public func nextDeadlineNs() -> Nanoseconds { core.pool.nextDeadlineNs() }

    /// Blocks at most `timeoutNs` until a completion is signalled. Returns whether one was.
    public func waitForCompletions(timeoutNs: Nanoseconds) -> Bool {
        keel_checkers_wait_readable(core.pool.eventFD, max(0, timeoutNs)) > 0
    }

    /// Asks the threads to leave and closes idle descriptors; never waits for a stuck thread.
    public func close() { core.close() }
}

/// The TUR checker's state, shared by copies of the `TURChecker` value.
@usableFromInline
final class TURCore: @unchecked Sendable {
    let pathsMax: Int
    let pool: CheckerThreadPool
    let descriptors: DeviceDescriptors
    private(set) var counters = TURCounters()
    private let reasons: UnsafeMutablePointer<Atomic<UInt64>>
    private var closed = false

    init(_ configuration: TURConfiguration) throws(SystemError) {
        precondition(configuration.pathsMax > 0, "a checker needs room for paths")
        pathsMax = configuration.pathsMax
        descriptors = DeviceDescriptors(capacity: configuration.pathsMax)
        reasons = .allocate(capacity: configuration.pathsMax)
        for i in 0..<configuration.pathsMax { (reasons + i).initialize(to: Atomic(0)) }
        let threads = max(1, configuration.threads)
        pool = try CheckerThreadPool(slots: configuration.pathsMax, threads: threads, stackBytes: configuration.threadStackBytes,
                                     work: TURWork(threads: threads))
    }

    deinit {
        close()
        reasons.deinitialize(count: pathsMax)
        reasons.deallocate()
    }

    func register(path: Int, devicePath: String) throws(SystemError) {
        precondition(path < pathsMax, "path handle beyond pathsMax")
        let fd = Int32(try systemCall("open") { keel_checkers_open_nonblock(devicePath) })
        descriptors.install(path, fd: fd, blockBytes: 0, isIdle: pool.isIdle)
    }

    func unregister(path: Int) {
        precondition(path < pathsMax, "path handle beyond pathsMax")
        descriptors.retire(path, isIdle: pool.isIdle)
    }

    func lastReason(_ path: Int) -> TURReason {
        TURReason(packed: reasons[path].load(ordering: .relaxed))
    }

    @usableFromInline
    func submit(_ request: CheckRequest, nowNs: Nanoseconds) -> Bool {
        let path = request.path.index
        precondition(path < pathsMax, "path handle beyond pathsMax")
        if let refusal = pool.claim(path) {
            switch refusal {
            case .busy: counters.refusedBusy += 1
            case .orphanPending: counters.refusedOrphan += 1
            case .allThreadsStuck: counters.refusedStuck += 1
            }
            return false
        }
        guard let device = descriptors.current(path) else {
            pool.unclaim(path)
            counters.refusedUnregistered += 1
            return false
        }
        pool.start(path, token: request.token, argument: UInt64(UInt32(bitPattern: device.fd)), deadlineNs: nowNs &+ request.timeoutNs,
                   timeoutMs: UInt32(clamping: max(1, request.timeoutNs / Time.nsPerMs)))
        counters.submitted += 1
        return true
    }

    @usableFromInline
    func reap<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S) {
        var value: UInt64 = 0
        _ = read(pool.eventFD, &value, 8)
        var completed = 0
        var timedOut = 0
        let reasons = self.reasons
        pool.reap(nowNs: nowNs) { slot, token, packed in
            let result = PackedCheckOutcome.result(packed)
            if result == .timeout {
                timedOut += 1
                reasons[slot].store(TURReason(kind: .timedOut).packed, ordering: .relaxed)
            } else {
                completed += 1
                reasons[slot].store(PackedCheckOutcome.detail(packed), ordering: .relaxed)
            }
            sink.checkCompleted(CheckCompletion(path: PathHandle(index: slot), token: token, result: result))
        }
        counters.completed += completed
        counters.timedOut += timedOut
    }

    func close() {
        guard !closed else { return }
        closed = true
        descriptors.closeAll(isIdle: pool.isIdle)
        pool.shutdown(closingAtExit: descriptors)
    }
}

/// The blocking TEST UNIT READY: one sg_io_hdr, CDB and sense buffer per thread, prepared at init.
final class TURWork: BlockingCheckWork, @unchecked Sendable {
    /// Sense buffer bytes (SCSI_SENSE_BUFFERSIZE is 96; a TUR's sense fits in 32).
    static let senseBytes = 32
    private let threads: Int
    private let headers: UnsafeMutablePointer<sg_io_hdr>
    private let commands: UnsafeMutablePointer<UInt8>
    private let senses: UnsafeMutablePointer<UInt8>

    init(threads: Int) {
        self.threads = threads
        headers = .allocate(capacity: threads)
        headers.initialize(repeating: sg_io_hdr(), count: threads)
        commands = .allocate(capacity: threads * 6)
        commands.initialize(repeating: 0, count: threads * 6)
        senses = .allocate(capacity: threads * TURWork.senseBytes)
        senses.initialize(repeating: 0, count: threads * TURWork.senseBytes)
    }

    // Freed only after the last pool thread has left (the pool holds this object).
    deinit {
        headers.deallocate()
        commands.deallocate()
        senses.deallocate()
    }

    func run(slot: Int, thread: Int, argument: UInt64, timeoutMs: UInt32) -> UInt64 {
        let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: argument))
        var attempt = 1
        while true {
            let verdict = TURSense.decide(testUnitReady(fd: fd, thread: thread, timeoutMs: timeoutMs))
            switch verdict {
            case .final(let result, let reason):
                return PackedCheckOutcome.pack(result, detail: reason.packed)
            case .retry(let reason):
                if attempt >= TURSense.attemptsMax { return PackedCheckOutcome.pack(.down, detail: reason.packed) }
                attempt += 1
            }
        }
    }

    /// Sends one TEST UNIT READY (CDB all zero) and reduces the answer.
    private func testUnitReady(fd: Int32, thread: Int, timeoutMs: UInt32) -> SGAnswer {
        let header = headers + thread
        let command = commands + thread * 6
        let sense = senses + thread * TURWork.senseBytes
        command.update(repeating: 0, count: 6)
        sense.update(repeating: 0, count: TURWork.senseBytes)
        header.pointee = sg_io_hdr()
        header.pointee.interface_id = Int32(UInt8(ascii: "S"))
        header.pointee.dxfer_direction = SG_DXFER_NONE
        header.pointee.cmd_len = 6
        header.pointee.cmdp = command
        header.pointee.mx_sb_len = UInt8(TURWork.senseBytes)
        header.pointee.sbp = sense
        header.pointee.timeout = timeoutMs
        while keel_checkers_sg_io(fd, header) < 0 {
            let error = keel_errno()
            if error != EINTR { return SGAnswer(ioctlErrno: error) }
        }
        var answer = SGAnswer(status: header.pointee.status, hostStatus: header.pointee.host_status,
                              driverStatus: header.pointee.driver_status, info: header.pointee.info)
        let senseLength = Int(header.pointee.sb_len_wr)
        if let parsed = TURSense.parse(UnsafeRawBufferPointer(start: sense, count: min(senseLength, TURWork.senseBytes))) {
            answer.senseKey = parsed.key
            answer.asc = parsed.asc
            answer.ascq = parsed.ascq
        }
        return answer
    }
}
