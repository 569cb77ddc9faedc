// The directio checker: one-block O_DIRECT reads through libaio on shared io contexts, with a
// synchronous thread-pool fallback when io_setup is refused (fs.aio-max-nr).
import Glibc
import Synchronization
import CAio
import CKeelShim
import KeelCore

/// Sizes and limits of a directio checker, all fixed at init.
public struct DirectIOConfiguration: Sendable {
    /// Paths the checker's tables are reserved for; `PathHandle.index` must be below it.
    public var pathsMax: Int
    /// Paths with a usable slot at init (all of `pathsMax` when nil); `prepare` adds more.
    public var initialPaths: Int?
    /// Where the per-path tables and read buffers live.
    public var memory: TableMemory
    /// Threads of the synchronous fallback (used only when io_setup fails).
    public var fallbackThreads: Int
    /// Stack size of each fallback thread; small because the daemon locks its memory.
    public var threadStackBytes: Int
    /// Skip io_setup and check with the thread pool (operators who want no aio at all; tests).
    public var forceSynchronous: Bool

    public init(pathsMax: Int, initialPaths: Int? = nil, memory: TableMemory = .heap, fallbackThreads: Int = 4,
                threadStackBytes: Int = 64 * 1024, forceSynchronous: Bool = false) {
        self.pathsMax = pathsMax
        self.initialPaths = initialPaths
        self.memory = memory
        self.fallbackThreads = fallbackThreads
        self.threadStackBytes = threadStackBytes
        self.forceSynchronous = forceSynchronous
    }
}

/// How a directio checker reads.
public enum DirectIOMode: Sendable, Equatable {
    /// libaio with this many io contexts (one per `DirectIOChecker.pathsPerContext` paths).
    case aio(contexts: Int)
    /// Blocking reads on a fixed pool of threads.
    case synchronous(threads: Int)
}

/// Why the checker fell back to synchronous reads; the control plane logs it (the recovery plane
/// never prints).
public struct DirectIOFallbackHint: Sendable, Equatable, CustomStringConvertible {
    /// What io_setup answered (EAGAIN: fs.aio-max-nr exhausted; ENOSYS: no aio in the kernel);
    /// 0 when the fallback was asked for in the configuration.
    public var setupErrno: Int32
    /// The events one io_setup asked for.
    public var eventsRequested: Int
    /// Threads now doing the reads.
    public var threads: Int

    public var description: String {
        let cause: String
        switch setupErrno {
        case 0: cause = "synchronous reads configured"
        case EAGAIN: cause = "io_setup(\(eventsRequested)) failed with EAGAIN: the system-wide aio event limit is used up; raise it with `sysctl -w fs.aio-max-nr=N` (see /proc/sys/fs/aio-nr)"
        case ENOSYS: cause = "io_setup(\(eventsRequested)) failed with ENOSYS: this kernel has no aio (fs.aio-max-nr does not apply)"
        default: cause = "io_setup(\(eventsRequested)) failed (errno \(setupErrno)); check fs.aio-max-nr"
        }
        return "directio: \(cause); checking paths with \(threads) synchronous reader threads"
    }
}

/// What the checker did, for `show` commands and tests. Read it on the recovery thread.
public struct DirectIOCounters: Sendable, Equatable {
    public var submitted = 0
    public var completed = 0
    public var timedOut = 0
    /// Timed-out reads the kernel completed later (their result was dropped).
    public var orphansReaped = 0
    /// Refusals: a check of the path was still in flight.
    public var refusedBusy = 0
    /// Refusals: the path's previous check timed out and the kernel still holds it.
    public var refusedOrphan = 0
    /// Refusals: no descriptor registered for the path.
    public var refusedUnregistered = 0
    /// Refusals: every fallback thread is stuck on a timed-out read.
    public var refusedStuck = 0
    /// Refusals: io_submit answered EAGAIN.
    public var refusedSubmit = 0
    /// Fallback checks given up unsent: every thread was busy for the whole timeout.
    public var notStarted = 0
    public init() {}
}

/// The directio path checker (multipath-tools' `directio`): reads one block at offset 0 with
/// O_DIRECT. A completed read is `.up`; ENODEV/ENXIO is `.removed`; any other error or a short read
/// is `.down`; no answer within the request's timeout is `.timeout`.
///
/// - Shared io contexts: one `io_setup` per `pathsPerContext` paths, not one per path.
/// - Everything the recovery thread touches (iocbs, aligned buffers, event arrays, bookkeeping)
///   is reserved at init for `pathsMax` paths and committed as paths arrive (`prepare`; a path's
///   4 KiB buffer when it is registered, so paths checked by tur cost no buffer); `submit` and
///   `reap` never allocate or block.
/// - A read that times out is orphaned: `.timeout` is reported at once, `io_cancel` is tried (the
///   block layer rarely honours it), and the path's slot stays reserved until the kernel completes
///   the read; that late result is dropped. **Policy:** while a path's orphan is out, `submit`
///   refuses the path (returns false) instead of giving it a second slot: a second read would
///   queue behind the first on the same stuck device and only pin more memory, and the engine
///   already holds the path failed on the timeout and retries at its fast interval.
/// - `completionFD` is an eventfd signalled by every completion (io_set_eventfd, or the fallback
///   threads): the recovery loop polls it with the deadline from `nextDeadlineNs()`.
/// - If io_setup is refused, the same API runs on a fixed pool of reader threads and
///   `fallbackHint` says why (it names fs.aio-max-nr).
/// - Teardown never waits for orphans: see `close()`.
public struct DirectIOChecker: PathCheckBackend {
    /// Paths that share one io context (multipath-tools' AIO_GROUP_SIZE).
    public static let pathsPerContext = 1024
    /// Largest read: the block size is capped here, and every buffer has this size and alignment.
    public static let blockBytesMax = 4096

    @usableFromInline let core: DirectIOCore

    /// Allocates everything for `configuration.pathsMax` paths and sets up the io contexts (or the
    /// fallback pool). Throws only when the process cannot get an eventfd or threads at all.
    public init(_ configuration: DirectIOConfiguration) throws(SystemError) {
        core = try DirectIOCore(configuration)
    }

    /// How this checker reads.
    public var mode: DirectIOMode { core.mode }
    /// Set when io_setup failed and the checker reads synchronously; log it.
    public var fallbackHint: DirectIOFallbackHint? { core.fallbackHint }
    /// io_setup calls made at init (one per context).
    public var ioSetupCalls: Int { core.ioSetupCalls }
    /// An eventfd that becomes readable when a check completes; `reap` drains it.
    public var completionFD: Int32 { core.completionFD }
    /// Counters; read them on the recovery thread.
    public var counters: DirectIOCounters { core.counters }
    /// Reads submitted that timed out and are still held by the kernel.
    public var orphansInFlight: Int { core.orphansInFlight }
    /// Whether `path`'s last read timed out and is still held by the kernel (any thread).
    public func isOrphaned(_ path: PathHandle) -> Bool { path.index < pathCapacity && core.isOrphaned(path.index) }

    /// Makes room for `paths` paths (the thread that grows tables; never the recovery thread).
    public func prepare(paths: Int) { core.prepare(paths: paths) }

    /// Paths with a slot now.
    public var pathCapacity: Int { core.ready.load(ordering: .acquiring) }

    /// Bytes committed per path slot, and per path registered (its read buffer).
    public static var bytesPerPath: Int { DirectIOAio.bytesPerPath + DeviceDescriptors.bytesPerPath }
    public static var bytesPerRegisteredPath: Int { blockBytesMax }

    /// Opens `devicePath` with O_DIRECT for `path` and learns its block size (control plane:
    /// opening files and ioctls stay off the recovery thread). Replaces an earlier registration.
    public func register(path: PathHandle, devicePath: String) throws(SystemError) {
        try core.register(path: path.index, devicePath: devicePath)
    }

    /// Forgets the path's descriptor. It is closed now, or once the kernel gives back a read that
    /// is still in flight (`closeRetiredDescriptors`).
    public func unregister(path: PathHandle) {
        core.unregister(path: path.index)
    }

    /// Closes descriptors parked by `unregister` whose reads have come back (control plane).
    /// Returns how many are still parked.
    @discardableResult
    public func closeRetiredDescriptors() -> Int { core.closeRetired() }

    @inlinable
    public func submit(_ request: CheckRequest, nowNs: Nanoseconds) -> Bool {
        core.submit(request, nowNs: nowNs)
    }

    @inlinable
    public func reap<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S) {
        core.reap(nowNs: nowNs, into: &sink)
    }

    /// The earliest timeout among checks in flight (`Time.never` when none): the longest the
    /// recovery loop may sleep before `reap` must run to report timeouts on time.
    public func nextDeadlineNs() -> Nanoseconds { core.nextDeadlineNs() }

    /// Blocks at most `timeoutNs` until a completion is signalled on `completionFD` (the recovery
    /// thread's idle wait when it has nothing else to poll). Returns whether one was.
    public func waitForCompletions(timeoutNs: Nanoseconds) -> Bool {
        keel_checkers_wait_readable(core.completionFD, max(0, timeoutNs)) > 0
    }

    /// Tears the checker down without waiting for orphans: with no read in flight the io contexts
    /// are destroyed here; otherwise a detached thread calls `io_destroy` (which the kernel makes
    /// wait for every outstanding read) and frees the buffers after it, so memory the kernel may
    /// still write into is never freed early and the caller never waits on a stuck device.
    /// Fallback threads are asked to leave and free the pool when the last one returns.
    public func close() { core.close() }
}

extension DirectIOChecker {
    /// Maps the result of a one-block read (the byte count, or a negative errno): the whole block
    /// is `.up`; ENODEV/ENXIO is `.removed`; a short read or any other error is `.down`.
    @inlinable
    public static func result(bytesOrNegativeErrno result: Int, expectedBytes: Int) -> CheckResult {
        if result == expectedBytes { return .up }
        if result >= 0 { return .down }
        switch Int32(-result) {
        case ENODEV, ENXIO: return .removed
        default: return .down
        }
    }

    /// The read length for a device: its soft block size (BLKBSZGET) capped at 4096, never below
    /// its logical sector size (BLKSSZGET); 4096 when the device answers neither (a regular file).
    public static func blockBytes(logical: Int?, soft: Int?) -> Int {
        let cap = DirectIOChecker.blockBytesMax
        var bytes = min(soft ?? cap, cap)
        if let logical { bytes = max(bytes, min(logical, cap)) }
        return bytes
    }
}

/// The directio checker's state: shared by copies of the `DirectIOChecker` value.
@usableFromInline
final class DirectIOCore: @unchecked Sendable {
    let pathsMax: Int
    /// Paths with usable slots.
    let ready = Atomic<Int>(0)
    let mode: DirectIOMode
    let fallbackHint: DirectIOFallbackHint?
    let completionFD: Int32
    private(set) var ioSetupCalls = 0
    private(set) var counters = DirectIOCounters()
    private let descriptors: DeviceDescriptors
    private let aio: DirectIOAio?
    private let pool: CheckerThreadPool?
    private var closed = false

    init(_ configuration: DirectIOConfiguration) throws(SystemError) {
        precondition(configuration.pathsMax > 0, "a checker needs room for paths")
        pathsMax = configuration.pathsMax
        let initial = min(max(configuration.initialPaths ?? pathsMax, 1), pathsMax)
        descriptors = DeviceDescriptors(capacity: configuration.pathsMax, memory: configuration.memory)
        descriptors.prepare(upTo: initial)
        var setupErrno: Int32 = 0
        var aio: DirectIOAio? = nil
        if !configuration.forceSynchronous {
            let eventFD = Int32(try systemCall("eventfd") { keel_checkers_eventfd() })
            switch DirectIOAio.make(pathsMax: configuration.pathsMax, initial: initial, memory: configuration.memory, eventFD: eventFD) {
            case .success(let made):
                aio = made
                ioSetupCalls = made.contextCount
            case .failure(let failure):
                Glibc.close(eventFD)
                setupErrno = failure.errno
                ioSetupCalls = failure.calls
            }
        }
        if let aio {
            self.aio = aio
            pool = nil
            mode = .aio(contexts: aio.contextCount)
            fallbackHint = nil
            completionFD = aio.eventFD
        } else {
            let threads = max(1, configuration.fallbackThreads)
            let work = DirectIOSyncWork()
            let pool = try CheckerThreadPool(slots: configuration.pathsMax, threads: threads,
                                             stackBytes: configuration.threadStackBytes, work: work)
            self.aio = nil
            self.pool = pool
            mode = .synchronous(threads: threads)
            fallbackHint = DirectIOFallbackHint(setupErrno: setupErrno,
                                                eventsRequested: min(configuration.pathsMax, DirectIOChecker.pathsPerContext),
                                                threads: threads)
            completionFD = pool.eventFD
        }
        ready.store(initial, ordering: .releasing)
    }

    deinit { close() }

    /// Commits the slots of paths up to `paths` (the thread that grows tables).
    func prepare(paths: Int) {
        let old = ready.load(ordering: .relaxed), new = min(paths, pathsMax)
        guard new > old else { return }
        descriptors.prepare(upTo: new)
        aio?.prepare(from: old, to: new)
        ready.store(new, ordering: .releasing)
    }

    private func isIdle(_ path: Int) -> Bool {
        if let aio { return aio.isIdle(path) }
        return pool!.isIdle(path)
    }

    func register(path: Int, devicePath: String) throws(SystemError) {
        precondition(path < ready.load(ordering: .acquiring), "path handle beyond the checker's slots")
        aio?.commitBuffer(path: path)
        let fd = Int32(try systemCall("open(O_DIRECT)") { keel_checkers_open_direct(devicePath) })
        var logical: Int32 = 0
        var soft: Int32 = 0
        let hasLogical = keel_checkers_logical_block_size(fd, &logical) == 0 && logical > 0
        let hasSoft = keel_checkers_soft_block_size(fd, &soft) == 0 && soft > 0
        descriptors.install(path, fd: fd,
                            blockBytes: DirectIOChecker.blockBytes(logical: hasLogical ? Int(logical) : nil, soft: hasSoft ? Int(soft) : nil),
                            isIdle: isIdle)
    }

    func unregister(path: Int) {
        precondition(path < ready.load(ordering: .acquiring), "path handle beyond the checker's slots")
        descriptors.retire(path, isIdle: isIdle)
    }

    func closeRetired() -> Int { descriptors.closeRetired(isIdle: isIdle) }

    var orphansInFlight: Int { aio?.orphans ?? pool!.stuckThreadCount }

    func isOrphaned(_ path: Int) -> Bool { aio?.isOrphaned(path) ?? false }

    @usableFromInline
    func submit(_ request: CheckRequest, nowNs: Nanoseconds) -> Bool {
        let path = request.path.index
        precondition(path < ready.load(ordering: .relaxed), "path handle beyond the checker's slots")
        let deadlineNs = nowNs &+ request.timeoutNs
        if let aio {
            switch aio.submit(path: path, token: request.token, deadlineNs: deadlineNs, descriptors: descriptors) {
            case .started: counters.submitted += 1; return true
            case .busy: counters.refusedBusy += 1
            case .orphanPending: counters.refusedOrphan += 1
            case .unregistered: counters.refusedUnregistered += 1
            case .submitRefused: counters.refusedSubmit += 1
            }
            return false
        }
        let pool = pool!
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
        let argument = UInt64(UInt32(bitPattern: device.fd)) | (UInt64(device.blockBytes) << 32)
        pool.start(path, token: request.token, argument: argument, deadlineNs: deadlineNs,
                   timeoutMs: UInt32(clamping: request.timeoutNs / Time.nsPerMs))
        counters.submitted += 1
        return true
    }

    @usableFromInline
    func reap<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S) {
        drainEventFD()
        if let aio {
            var tally = DirectIOAio.Tally()
            aio.reap(nowNs: nowNs, tally: &tally) { path, token, result in
                sink.checkCompleted(CheckCompletion(path: PathHandle(index: path), token: token, result: result))
            }
            counters.completed += tally.completed
            counters.timedOut += tally.timedOut
            counters.orphansReaped += tally.orphansReaped
            return
        }
        var completed = 0
        var timedOut = 0
        var notStarted = 0
        pool!.reap(nowNs: nowNs) { slot, token, packed in
            let result = PackedCheckOutcome.result(packed)
            switch result {
            case .timeout: timedOut += 1
            case .notStarted: notStarted += 1
            default: completed += 1
            }
            sink.checkCompleted(CheckCompletion(path: PathHandle(index: slot), token: token, result: result))
        }
        counters.completed += completed
        counters.timedOut += timedOut
        counters.notStarted += notStarted
    }

    func nextDeadlineNs() -> Nanoseconds {
        if let aio { return aio.nextDeadlineNs() }
        return pool!.nextDeadlineNs()
    }

    private func drainEventFD() {
        var value: UInt64 = 0
        _ = read(completionFD, &value, 8)
    }

    func close() {
        guard !closed else { return }
        closed = true
        if let aio {
            descriptors.closeAll(isIdle: aio.isIdle)
            aio.destroyWithoutWaiting(closingAfterwards: descriptors)
        } else if let pool {
            descriptors.closeAll(isIdle: pool.isIdle)
            pool.shutdown(closingAtExit: descriptors)
        }
    }
}


/// The synchronous fallback's blocking read, into the calling pool thread's own aligned buffer:
/// a thread stuck in the kernel keeps its buffer and nobody else touches it.
final class DirectIOSyncWork: BlockingCheckWork, @unchecked Sendable {
    var threadBufferBytes: Int { DirectIOChecker.blockBytesMax }
    var threadBufferAlignment: Int { DirectIOChecker.blockBytesMax }

    func run(slot: Int, buffer: UnsafeMutableRawPointer, argument: UInt64, timeoutMs: UInt32) -> UInt64 {
        let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: argument))
        let length = Int(argument >> 32)
        var result: Int
        repeat {
            result = pread(fd, buffer, length, 0)
        } while result < 0 && keel_errno() == EINTR
        if result < 0 { result = -Int(keel_errno()) }
        return PackedCheckOutcome.pack(DirectIOChecker.result(bytesOrNegativeErrno: result, expectedBytes: length),
                                       detail: UInt64(UInt32(bitPattern: Int32(min(0, result)))))
    }
}

/// The libaio side: contexts, iocbs and buffers for every path, all allocated at init.
final class DirectIOAio: @unchecked Sendable {
    /// io_getevents batch (multipath-tools reaps 128 at a time as well).
    static let eventsPerCall = 128

    enum Submission { case started, busy, orphanPending, unregistered, submitRefused }

    /// Per-reap counts handed back to the core's counters.
    struct Tally {
        var completed = 0
        var timedOut = 0
        var orphansReaped = 0
    }

    /// io_setup's refusal, with how many calls were made (the failing one included).
    struct SetupFailure: Error {
        var errno: Int32
        var calls: Int
    }

    private enum SlotState: UInt32 {
        case idle = 0
        case running = 1
        case orphaned = 2
    }

    let pathsMax: Int
    let contextsMax: Int
    /// Contexts set up so far (the first `contextCount` of `contexts`): grown by the thread that
    /// grows tables, read by the recovery thread.
    private let contextsReady = Atomic<Int>(0)
    var contextCount: Int { contextsReady.load(ordering: .acquiring) }
    private(set) var lastSetupErrno: Int32 = 0
    let memory: TableMemory
    let eventFD: Int32
    private(set) var orphans = 0
    private let contexts: UnsafeMutablePointer<io_context_t?>
    private let contextInFlight: UnsafeMutablePointer<Int>
    private let iocbs: UnsafeMutablePointer<iocb>
    private let buffers: UnsafeMutableRawPointer
    private let submitList: UnsafeMutablePointer<UnsafeMutablePointer<iocb>?>
    private let events: UnsafeMutablePointer<io_event>
    private let cancelEvent: UnsafeMutablePointer<io_event>
    private let zeroTimeout: UnsafeMutablePointer<timespec>
    // Sequentially consistent with the control plane's descriptor retirement (DeviceDescriptors).
    private let states: UnsafeMutablePointer<Atomic<UInt32>>
    private let expectedBytes: UnsafeMutablePointer<Int>
    private var inFlight: InFlightChecks
    private var destroyed = false
    private var descriptorsAfterDestroy: DeviceDescriptors?

    /// Sets up the io contexts of the first `initial` paths; `prepare` sets up the rest as paths
    /// arrive (one context per `pathsPerContext` paths).
    static func make(pathsMax: Int, initial: Int, memory: TableMemory, eventFD: Int32) -> Result<DirectIOAio, SetupFailure> {
        let contextsMax = (pathsMax + DirectIOChecker.pathsPerContext - 1) / DirectIOChecker.pathsPerContext
        let contexts = UnsafeMutablePointer<io_context_t?>.allocate(capacity: contextsMax)
        contexts.initialize(repeating: nil, count: contextsMax)
        let aio = DirectIOAio(pathsMax: pathsMax, contexts: contexts, contextsMax: contextsMax, memory: memory, eventFD: eventFD)
        let calls = aio.setUpContexts(forPaths: initial)
        if aio.contextCount * DirectIOChecker.pathsPerContext < min(initial, pathsMax) {
            for c in 0..<aio.contextCount { io_destroy(contexts[c]) }
            return .failure(SetupFailure(errno: aio.lastSetupErrno, calls: calls))
        }
        aio.prepare(from: 0, to: initial)
        return .success(aio)
    }

    /// io_setup for every context the first `paths` paths need and do not have. Returns the calls
    /// made; a refusal is kept in `lastSetupErrno` and the contexts after it stay unset (their
    /// paths' reads are refused at submit, counted, and the engine retries them).
    @discardableResult
    func setUpContexts(forPaths paths: Int) -> Int {
        let needed = min((paths + DirectIOChecker.pathsPerContext - 1) / DirectIOChecker.pathsPerContext, contextsMax)
        var calls = 0
        while contextCount < needed {
            let c = contextCount
            let slots = min(DirectIOChecker.pathsPerContext, pathsMax - c * DirectIOChecker.pathsPerContext)
            calls += 1
            let rc = io_setup(Int32(slots), contexts + c)
            if rc != 0 {
                lastSetupErrno = -rc
                break
            }
            contextsReady.store(c + 1, ordering: .releasing)
        }
        return calls
    }

    private init(pathsMax: Int, contexts: UnsafeMutablePointer<io_context_t?>, contextsMax: Int, memory: TableMemory, eventFD: Int32) {
        self.pathsMax = pathsMax
        self.contexts = contexts
        self.contextsMax = contextsMax
        self.memory = memory
        self.eventFD = eventFD
        contextInFlight = .allocate(capacity: contextsMax)
        contextInFlight.initialize(repeating: 0, count: contextsMax)
        iocbs = memory.reserve(iocb.self, count: pathsMax)
        buffers = memory.reserveBytes(pathsMax * DirectIOChecker.blockBytesMax)
        submitList = .allocate(capacity: 1)
        submitList.initialize(to: nil)
        events = .allocate(capacity: DirectIOAio.eventsPerCall)
        events.initialize(repeating: io_event(), count: DirectIOAio.eventsPerCall)
        cancelEvent = .allocate(capacity: 1)
        cancelEvent.initialize(to: io_event())
        zeroTimeout = .allocate(capacity: 1)
        zeroTimeout.initialize(to: timespec(tv_sec: 0, tv_nsec: 0))
        states = memory.reserve(Atomic<UInt32>.self, count: pathsMax)
        expectedBytes = memory.reserve(Int.self, count: pathsMax)
        inFlight = InFlightChecks(capacity: pathsMax, memory: memory)
    }

    static let bytesPerPath = MemoryLayout<iocb>.stride + MemoryLayout<Atomic<UInt32>>.stride + MemoryLayout<Int>.stride
        + InFlightChecks.bytesPerSlot

    /// Commits the slots of paths `old..<new` and sets up their io contexts (the thread that grows
    /// tables; the recovery thread uses only paths it was told of afterwards).
    func prepare(from old: Int, to new: Int) {
        guard new > old else { return }
        setUpContexts(forPaths: new)
        memory.commit(iocbs, from: old, to: new)
        (iocbs + old).initialize(repeating: iocb(), count: new - old)
        memory.commit(states, from: old, to: new)
        for i in old..<new { (states + i).initialize(to: Atomic(SlotState.idle.rawValue)) }
        memory.commit(expectedBytes, from: old, to: new)
        (expectedBytes + old).initialize(repeating: 0, count: new - old)
        inFlight.prepare(from: old, to: new)
    }

    /// Commits `path`'s read buffer (at registration: only paths checked by directio have one).
    func commitBuffer(path: Int) {
        memory.commitBytes(buffers + path * DirectIOChecker.blockBytesMax, DirectIOChecker.blockBytesMax)
    }

    deinit {
        // Only reached through destroyWithoutWaiting's hand-over or with nothing in flight.
        freeMemory()
    }

    func isIdle(_ path: Int) -> Bool {
        states[path].load(ordering: .sequentiallyConsistent) == SlotState.idle.rawValue
    }

    func isOrphaned(_ path: Int) -> Bool {
        states[path].load(ordering: .relaxed) == SlotState.orphaned.rawValue
    }

    func submit(path: Int, token: UInt32, deadlineNs: Nanoseconds, descriptors: DeviceDescriptors) -> Submission {
        let (claimed, current) = states[path].compareExchange(expected: SlotState.idle.rawValue, desired: SlotState.running.rawValue,
                                                               ordering: .sequentiallyConsistent)
        if !claimed { return current == SlotState.orphaned.rawValue ? .orphanPending : .busy }
        guard let device = descriptors.current(path) else {
            states[path].store(SlotState.idle.rawValue, ordering: .sequentiallyConsistent)
            return .unregistered
        }
        let control = iocbs + path
        io_prep_pread(control, device.fd, buffers + path * DirectIOChecker.blockBytesMax, device.blockBytes, 0)
        io_set_eventfd(control, eventFD)
        control.pointee.data = UnsafeMutableRawPointer(bitPattern: path + 1)
        submitList[0] = control
        let context = path / DirectIOChecker.pathsPerContext
        guard context < contextCount else {
            // Its context could not be set up when the tables grew (fs.aio-max-nr).
            states[path].store(SlotState.idle.rawValue, ordering: .sequentiallyConsistent)
            return .submitRefused
        }
        let rc = io_submit(contexts[context], 1, submitList)
        guard rc == 1 else {
            // EAGAIN (the context is full) or a descriptor the kernel refuses: nothing was queued.
            states[path].store(SlotState.idle.rawValue, ordering: .sequentiallyConsistent)
            return .submitRefused
        }
        contextInFlight[context] += 1
        expectedBytes[path] = device.blockBytes
        inFlight.add(path, token: token, deadlineNs: deadlineNs)
        return .started
    }

    func reap(nowNs: Nanoseconds, tally: inout Tally, _ deliver: (Int, UInt32, CheckResult) -> Void) {
        for context in 0..<contextCount where contextInFlight[context] > 0 {
            while true {
                let count = Int(io_getevents(contexts[context], 0, DirectIOAio.eventsPerCall, events, zeroTimeout))
                if count <= 0 { break }
                for e in 0..<count {
                    let event = events[e]
                    let path = Int(bitPattern: event.data) - 1
                    precondition(path >= 0 && path < pathsMax, "io_event for an unknown iocb")
                    contextInFlight[context] -= 1
                    if states[path].load(ordering: .relaxed) == SlotState.orphaned.rawValue {
                        // The late answer of a read already reported as a timeout: dropped.
                        orphans -= 1
                        tally.orphansReaped += 1
                        states[path].store(SlotState.idle.rawValue, ordering: .sequentiallyConsistent)
                        continue
                    }
                    inFlight.remove(path)
                    states[path].store(SlotState.idle.rawValue, ordering: .sequentiallyConsistent)
                    tally.completed += 1
                    let result = DirectIOChecker.result(bytesOrNegativeErrno: Int(bitPattern: event.res), expectedBytes: expectedBytes[path])
                    deliver(path, inFlight.token(path), result)
                }
                if count < DirectIOAio.eventsPerCall { break }
            }
        }
        var i = 0
        while i < inFlight.count {
            let path = inFlight.slot(at: i)
            guard inFlight.deadlineNs(path) <= nowNs else { i += 1; continue }
            inFlight.remove(path)
            let context = path / DirectIOChecker.pathsPerContext
            tally.timedOut += 1
            if io_cancel(contexts[context], iocbs + path, cancelEvent) == 0 {
                // Old kernels hand the cancelled request back here rather than through the ring.
                contextInFlight[context] -= 1
                states[path].store(SlotState.idle.rawValue, ordering: .sequentiallyConsistent)
            } else {
                orphans += 1
                states[path].store(SlotState.orphaned.rawValue, ordering: .sequentiallyConsistent)
            }
            deliver(path, inFlight.token(path), .timeout)
        }
    }

    func nextDeadlineNs() -> Nanoseconds { inFlight.nextDeadlineNs() }

    /// Destroys the contexts: here when nothing is in flight, else on a detached thread, because
    /// the kernel's io_destroy waits for every outstanding read and a stuck device may never answer.
    /// The buffers live until io_destroy has returned; then the descriptors the orphans used are
    /// closed.
    func destroyWithoutWaiting(closingAfterwards descriptors: DeviceDescriptors) {
        guard !destroyed else { return }
        destroyed = true
        descriptorsAfterDestroy = descriptors
        Glibc.close(eventFD)
        let outstanding = (0..<contextCount).reduce(0) { $0 + contextInFlight[$1] }
        if outstanding == 0 {
            for c in 0..<contextCount { io_destroy(contexts[c]) }
            return
        }
        let handOver = Unmanaged.passRetained(self)
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, max(64 * 1024, Int(PTHREAD_STACK_MIN)))
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        if pthread_create(&thread, &attributes, directIODestroyThreadMain, handOver.toOpaque()) != 0 {
            // No thread to wait in: keep the contexts and buffers for the life of the process
            // rather than block here or free memory the kernel may still write.
            _ = handOver
        }
    }

    fileprivate func destroyContexts() {
        for c in 0..<contextCount { io_destroy(contexts[c]) }
        descriptorsAfterDestroy?.closeAll(isIdle: { _ in true })
    }

    private func freeMemory() {
        contexts.deallocate()
        contextInFlight.deallocate()
        memory.release(iocbs, count: pathsMax)
        memory.releaseBytes(buffers, pathsMax * DirectIOChecker.blockBytesMax)
        submitList.deallocate()
        events.deallocate()
        cancelEvent.deallocate()
        zeroTimeout.deallocate()
        memory.release(states, count: pathsMax)
        memory.release(expectedBytes, count: pathsMax)
    }
}

/// The teardown thread: io_destroy (waits for the kernel), then drop the last reference, which
/// frees the buffers.
private func directIODestroyThreadMain(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let aio = Unmanaged<DirectIOAio>.fromOpaque(argument!).takeRetainedValue()
    keel_checkers_name_thread("keel-aio-down")
    aio.destroyContexts()
    return nil
}
