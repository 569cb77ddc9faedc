// A fixed pool of checker threads for checks that can only be done by blocking (SG_IO TEST UNIT
// READY, synchronous O_DIRECT reads): preallocated slots, lock-free hand-over, timeouts on time.
import Glibc
import Synchronization
import CKeelShim
import KeelCore

/// The blocking part of one check, run on a pool thread. It may hang (that is why it runs there),
/// but it must not allocate: the process is pinned and the pool runs for the daemon's lifetime.
protocol BlockingCheckWork: AnyObject, Sendable {
    /// Bytes and alignment of the buffer each pool thread allocates for itself when it starts
    /// (a thread stuck in the kernel keeps its own; nobody else touches it).
    var threadBufferBytes: Int { get }
    var threadBufferAlignment: Int { get }
    /// Runs one check for `slot` on a pool thread whose buffer is `buffer`, with the submitter's
    /// `argument`, and returns the packed result (`PackedCheckOutcome`).
    func run(slot: Int, buffer: UnsafeMutableRawPointer, argument: UInt64, timeoutMs: UInt32) -> UInt64
}

/// A check result plus a 56-bit detail word (the TUR reason, an errno), packed so a worker thread
/// can hand it over in one store.
@usableFromInline
struct PackedCheckOutcome {
    @usableFromInline static func pack(_ result: CheckResult, detail: UInt64) -> UInt64 {
        UInt64(result.rawValue) | (detail << 8)
    }
    @usableFromInline static func result(_ packed: UInt64) -> CheckResult {
        CheckResult(rawValue: UInt8(truncatingIfNeeded: packed)) ?? .down
    }
    @usableFromInline static func detail(_ packed: UInt64) -> UInt64 { packed >> 8 }
}

/// Why a pool refused a check; the engine retries at the path's next fast probe.
enum PoolRefusal: Equatable {
    /// The path's previous check is still in flight.
    case busy
    /// The path's previous check timed out and its thread has not come back yet.
    case orphanPending
    /// Every thread is stuck on a check that already timed out.
    case allThreadsStuck
}

/// Slot states. A slot belongs to one path; the recovery thread moves it out of `idle`, a pool
/// thread or the recovery thread moves it back.
enum PoolSlotState: UInt32 {
    case idle = 0
    /// In the queue, no thread has taken it yet.
    case queued = 1
    /// A thread is running the check.
    case running = 2
    /// The result is posted and waits for `reap`.
    case done = 3
    /// Timed out while running: the thread frees the slot when it comes back; its result is dropped.
    case orphaned = 4
    /// Timed out while queued: the thread that dequeues it frees it without running it.
    case cancelled = 5
}

/// A bounded multi-producer multi-consumer queue of slot indices (sequence-numbered cells), used
/// here with one producer (the recovery thread) and the pool threads as consumers. Never allocates
/// after init; never full in practice because it holds at most one entry per slot.
final class SlotQueue: @unchecked Sendable {
    private let sequences: UnsafeMutablePointer<Atomic<Int>>
    private let values: UnsafeMutablePointer<Int>
    private let mask: Int
    private let enqueuePosition = Atomic<Int>(0)
    private let dequeuePosition = Atomic<Int>(0)

    init(capacityAtLeast count: Int) {
        var capacity = 2
        while capacity < count { capacity <<= 1 }
        mask = capacity - 1
        sequences = .allocate(capacity: capacity)
        for i in 0..<capacity { (sequences + i).initialize(to: Atomic(i)) }
        values = .allocate(capacity: capacity)
        values.initialize(repeating: 0, count: capacity)
    }

    deinit {
        sequences.deinitialize(count: mask + 1)
        sequences.deallocate()
        values.deallocate()
    }

    /// Appends `value`; false when full.
    func push(_ value: Int) -> Bool {
        var position = enqueuePosition.load(ordering: .relaxed)
        while true {
            let cell = position & mask
            let sequence = sequences[cell].load(ordering: .acquiring)
            let difference = sequence - position
            if difference == 0 {
                let (exchanged, original) = enqueuePosition.compareExchange(expected: position, desired: position + 1, ordering: .relaxed)
                if exchanged {
                    values[cell] = value
                    sequences[cell].store(position + 1, ordering: .releasing)
                    return true
                }
                position = original
            } else if difference < 0 {
                return false
            } else {
                position = enqueuePosition.load(ordering: .relaxed)
            }
        }
    }

    /// Removes the oldest value; nil when empty.
    func pop() -> Int? {
        var position = dequeuePosition.load(ordering: .relaxed)
        while true {
            let cell = position & mask
            let sequence = sequences[cell].load(ordering: .acquiring)
            let difference = sequence - (position + 1)
            if difference == 0 {
                let (exchanged, original) = dequeuePosition.compareExchange(expected: position, desired: position + 1, ordering: .relaxed)
                if exchanged {
                    let value = values[cell]
                    sequences[cell].store(position + mask + 1, ordering: .releasing)
                    return value
                }
                position = original
            } else if difference < 0 {
                return nil
            } else {
                position = dequeuePosition.load(ordering: .relaxed)
            }
        }
    }
}

/// Entry of a pool thread: the pool is handed over retained, so the memory a stuck thread uses
/// outlives the checker that owned it.
private func checkerPoolThreadMain(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let start = Unmanaged<CheckerPoolThreadStart>.fromOpaque(argument!).takeRetainedValue()
    if start.spawner { start.pool.runSpawner() } else { start.pool.runThread() }
    return nil
}

/// What a new pool thread needs to know; created once per thread at init.
private final class CheckerPoolThreadStart {
    let pool: CheckerThreadPool
    /// The thread that starts replacements for stuck threads, not a worker.
    let spawner: Bool
    init(pool: CheckerThreadPool, spawner: Bool) {
        self.pool = pool
        self.spawner = spawner
    }
}

/// Detached threads with small explicit stacks, `threadsCount` of them free to take checks, and
/// one request slot per path. The recovery thread submits and reaps without blocking or
/// allocating; a thread that hangs in the kernel keeps its slot and is counted as stuck once its
/// check timed out.
///
/// A stuck thread is replaced: the recovery thread posts a semaphore (no allocation, no wait),
/// and the pool's spawner thread starts a new worker, so `threadsCount` threads stay free
/// whatever number of paths hang, up to `threadsMax` threads in all. A stuck thread whose command
/// returns while more than `threadsCount` are free leaves. Only with `threadsMax` threads and
/// every one stuck are new checks refused (never queued for ever, never failed for it).
///
/// Lifetime: each thread holds a strong reference to the pool, so `shutdown()` never waits for a
/// thread stuck in the kernel: the last thread to leave frees the pool and closes its eventfd.
final class CheckerThreadPool: @unchecked Sendable {
    let slotsCount: Int
    /// Threads kept free to take checks.
    let threadsCount: Int
    /// Threads in all, stuck ones included: `threadsCount` plus a replacement for each path that
    /// can hang, at most 1,024 (memory: a stack and a buffer each).
    let threadsMax: Int
    /// Signalled (eventfd counter +1) after every posted result; owned by the pool.
    let eventFD: Int32
    private let work: any BlockingCheckWork
    private let states: UnsafeMutablePointer<Atomic<UInt32>>
    private let arguments: UnsafeMutablePointer<UInt64>
    private let timeoutsMs: UnsafeMutablePointer<UInt32>
    private let results: UnsafeMutablePointer<UInt64>
    /// When a thread took the slot's check (CLOCK_MONOTONIC): its timeout counts from there.
    /// Written by the thread before it moves the slot to `running`.
    private let dispatchedNs: UnsafeMutablePointer<Nanoseconds>
    private let queue: SlotQueue
    private let wakeup: UnsafeMutablePointer<sem_t>
    /// Posted by the recovery thread when a thread got stuck: the spawner replaces it.
    private let spawnWakeup: UnsafeMutablePointer<sem_t>
    private let stackBytes: Int
    /// Worker threads alive, stuck ones included.
    private let liveThreads = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// Threads that are running a check the recovery thread already gave up on.
    private let stuckThreads = Atomic<Int>(0)
    /// Descriptors to close once the last thread has left (set at shutdown by the owner).
    private var descriptorsAtExit: DeviceDescriptors?

    // Recovery-thread-only bookkeeping: the slots with a check in flight, and their deadlines.
    private var inFlight: InFlightChecks

    /// Creates `threads` threads with `stackBytes` stacks and `slots` request slots.
    init(slots: Int, threads: Int, stackBytes: Int, work: any BlockingCheckWork) throws(SystemError) {
        precondition(slots > 0 && threads > 0, "a pool needs slots and threads")
        slotsCount = slots
        threadsCount = threads
        threadsMax = threads + min(slots, 1024)
        self.stackBytes = stackBytes
        self.work = work
        eventFD = Int32(try systemCall("eventfd") { keel_checkers_eventfd() })
        states = .allocate(capacity: slots)
        for i in 0..<slots { (states + i).initialize(to: Atomic(PoolSlotState.idle.rawValue)) }
        arguments = .allocate(capacity: slots)
        arguments.initialize(repeating: 0, count: slots)
        timeoutsMs = .allocate(capacity: slots)
        timeoutsMs.initialize(repeating: 0, count: slots)
        results = .allocate(capacity: slots)
        results.initialize(repeating: 0, count: slots)
        dispatchedNs = .allocate(capacity: slots)
        dispatchedNs.initialize(repeating: 0, count: slots)
        inFlight = InFlightChecks(capacity: slots)
        inFlight.prepare(from: 0, to: slots)
        queue = SlotQueue(capacityAtLeast: slots)
        wakeup = .allocate(capacity: 1)
        sem_init(wakeup, 0, 0)
        spawnWakeup = .allocate(capacity: 1)
        sem_init(spawnWakeup, 0, 0)

        var rc = startThread(spawner: true)
        for _ in 0..<threads where rc == 0 { rc = startThread(spawner: false) }
        if rc != 0 {
            // Threads already started hold the pool; tell them to leave.
            shutdown()
            throw SystemError("pthread_create", errno: rc)
        }
    }

    /// Starts a detached worker (counted live) or the spawner; 0 or pthread_create's error.
    private func startThread(spawner: Bool) -> Int32 {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, max(stackBytes, Int(PTHREAD_STACK_MIN)))
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        if !spawner { liveThreads.wrappingAdd(1, ordering: .sequentiallyConsistent) }
        let start = Unmanaged.passRetained(CheckerPoolThreadStart(pool: self, spawner: spawner))
        var thread = pthread_t()
        let rc = pthread_create(&thread, &attributes, checkerPoolThreadMain, start.toOpaque())
        if rc != 0 {
            start.release()
            if !spawner { liveThreads.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
        }
        return rc
    }

    deinit {
        // Only reached when every thread has left (each holds a reference): no request can name
        // a descriptor any more.
        descriptorsAtExit?.closeAll(isIdle: { _ in true })
        close(eventFD)
        sem_destroy(wakeup)
        wakeup.deallocate()
        sem_destroy(spawnWakeup)
        spawnWakeup.deallocate()
        states.deinitialize(count: slotsCount)
        states.deallocate()
        arguments.deallocate()
        timeoutsMs.deallocate()
        results.deallocate()
        dispatchedNs.deallocate()
    }

    /// Asks every thread to leave once it is free; never waits for one stuck in the kernel.
    /// `descriptors` still open under stuck checks are closed when the last thread has left.
    func shutdown(closingAtExit descriptors: DeviceDescriptors? = nil) {
        descriptorsAtExit = descriptors
        stopping.store(true, ordering: .sequentiallyConsistent)
        // Each leaving worker posts again for the next (see `runThread`), so one post reaches
        // every worker, those started or coming back from the kernel later included.
        sem_post(wakeup)
        sem_post(spawnWakeup)
    }

    /// Whether the slot has nothing in flight (the control plane may close the slot's descriptor).
    func isIdle(_ slot: Int) -> Bool {
        states[slot].load(ordering: .sequentiallyConsistent) == PoolSlotState.idle.rawValue
    }

    /// Claims an idle slot for a new check (recovery thread). Sequentially consistent, paired with
    /// the control plane's descriptor retirement: see `DeviceDescriptors`.
    func claim(_ slot: Int) -> PoolRefusal? {
        if stuckThreads.load(ordering: .relaxed) >= threadsMax { return .allThreadsStuck }
        let (claimed, current) = states[slot].compareExchange(expected: PoolSlotState.idle.rawValue, desired: PoolSlotState.queued.rawValue,
                                                               ordering: .sequentiallyConsistent)
        if claimed { return nil }
        return current == PoolSlotState.orphaned.rawValue || current == PoolSlotState.cancelled.rawValue ? .orphanPending : .busy
    }

    /// Returns a claimed slot unused (the device was not registered after all).
    func unclaim(_ slot: Int) {
        states[slot].store(PoolSlotState.idle.rawValue, ordering: .sequentiallyConsistent)
    }

    /// Queues the check of a claimed slot (recovery thread). Never blocks: `sem_post` only.
    func start(_ slot: Int, token: UInt32, argument: UInt64, deadlineNs: Nanoseconds, timeoutMs: UInt32) {
        arguments[slot] = argument
        timeoutsMs[slot] = timeoutMs
        inFlight.add(slot, token: token, deadlineNs: deadlineNs)
        let pushed = queue.push(slot)
        precondition(pushed, "slot queue holds one entry per slot")
        sem_post(wakeup)
    }

    /// Delivers every posted result, and for every check past its deadline (recovery thread):
    /// - still queued (no thread took it within its timeout, all were busy): it is cancelled and
    ///   reported `.notStarted`, which is no verdict on the path, so a hung neighbour holding the
    ///   threads never gets a healthy path failed;
    /// - running: its deadline counts from when a thread took it (`start`'s deadline assumed
    ///   that was at once); once that has passed it is reported `.timeout` and its thread counted
    ///   stuck until the command returns.
    /// `deliver(slot, token, packedOutcome)`.
    func reap(nowNs: Nanoseconds, _ deliver: (Int, UInt32, UInt64) -> Void) {
        var i = 0
        while i < inFlight.count {
            let slot = inFlight.slot(at: i)
            let state = states[slot].load(ordering: .acquiring)
            if state == PoolSlotState.done.rawValue {
                let outcome = results[slot]
                inFlight.remove(slot)
                states[slot].store(PoolSlotState.idle.rawValue, ordering: .sequentiallyConsistent)
                deliver(slot, inFlight.token(slot), outcome)
                continue
            }
            guard inFlight.deadlineNs(slot) <= nowNs else { i += 1; continue }
            let (cancelled, current) = states[slot].compareExchange(expected: PoolSlotState.queued.rawValue,
                                                                    desired: PoolSlotState.cancelled.rawValue,
                                                                    ordering: .sequentiallyConsistent)
            if cancelled {
                inFlight.remove(slot)
                deliver(slot, inFlight.token(slot), PackedCheckOutcome.pack(.notStarted, detail: 0))
                continue
            }
            if current == PoolSlotState.running.rawValue {
                // Seen running (acquire): the thread's dispatch time is visible.
                let fromDispatchNs = dispatchedNs[slot] &+ Nanoseconds(timeoutsMs[slot]) * Time.nsPerMs
                if fromDispatchNs > nowNs {
                    inFlight.setDeadline(slot, fromDispatchNs)
                    i += 1
                    continue
                }
            }
            if states[slot].compareExchange(expected: PoolSlotState.running.rawValue, desired: PoolSlotState.orphaned.rawValue,
                                            ordering: .sequentiallyConsistent).exchanged {
                stuckThreads.wrappingAdd(1, ordering: .relaxed)
                sem_post(spawnWakeup)   // a replacement, started off this thread
                inFlight.remove(slot)
                deliver(slot, inFlight.token(slot), PackedCheckOutcome.pack(.timeout, detail: 0))
                continue
            }
            // It finished between the two loads: deliver the real result on the next turn.
        }
    }

    /// The earliest deadline among checks in flight (recovery thread).
    func nextDeadlineNs() -> Nanoseconds { inFlight.nextDeadlineNs() }

    /// Checks in flight that have not timed out (recovery thread).
    var inFlightChecks: Int { inFlight.count }

    /// Threads currently stuck on a check that already timed out.
    var stuckThreadCount: Int { stuckThreads.load(ordering: .relaxed) }

    /// Threads alive now, stuck ones included.
    var liveThreadCount: Int { liveThreads.load(ordering: .relaxed) }

    /// The spawner: after each post, starts workers until `threadsCount` are free (not stuck) or
    /// `threadsMax` are alive. A refused pthread_create waits for the next post.
    fileprivate func runSpawner() {
        keel_checkers_name_thread("keel-check-spawn")
        while true {
            while sem_wait(spawnWakeup) != 0 {}
            if stopping.load(ordering: .sequentiallyConsistent) { return }
            while !stopping.load(ordering: .sequentiallyConsistent) {
                let live = liveThreads.load(ordering: .sequentiallyConsistent)
                guard live - stuckThreads.load(ordering: .sequentiallyConsistent) < threadsCount, live < threadsMax,
                      startThread(spawner: false) == 0 else { break }
            }
        }
    }

    /// Whether this worker, back from a stuck check, is one too many: more than `threadsCount`
    /// would be free with it. It then leaves (counted out here, exactly once per excess thread).
    private func leavesAsExcess() -> Bool {
        while true {
            let live = liveThreads.load(ordering: .sequentiallyConsistent)
            guard live - stuckThreads.load(ordering: .sequentiallyConsistent) > threadsCount else { return false }
            if liveThreads.compareExchange(expected: live, desired: live - 1, ordering: .sequentiallyConsistent).exchanged { return true }
        }
    }

    fileprivate func runThread() {
        keel_checkers_name_thread("keel-check")
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: work.threadBufferBytes, alignment: work.threadBufferAlignment)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: work.threadBufferBytes)
        defer { buffer.deallocate() }
        while true {
            while sem_wait(wakeup) != 0 {}
            if stopping.load(ordering: .sequentiallyConsistent) {
                liveThreads.wrappingSubtract(1, ordering: .sequentiallyConsistent)
                sem_post(wakeup)   // for the next worker
                return
            }
            guard let slot = queue.pop() else { continue }
            dispatchedNs[slot] = LogClock.nowNs()
            if !states[slot].compareExchange(expected: PoolSlotState.queued.rawValue, desired: PoolSlotState.running.rawValue,
                                             ordering: .sequentiallyConsistent).exchanged {
                // Cancelled while queued: free it without running.
                states[slot].store(PoolSlotState.idle.rawValue, ordering: .sequentiallyConsistent)
                continue
            }
            let outcome = work.run(slot: slot, buffer: buffer, argument: arguments[slot], timeoutMs: timeoutsMs[slot])
            results[slot] = outcome
            if !states[slot].compareExchange(expected: PoolSlotState.running.rawValue, desired: PoolSlotState.done.rawValue,
                                             ordering: .sequentiallyConsistent).exchanged {
                // Orphaned: the recovery thread already reported a timeout. Drop the result.
                states[slot].store(PoolSlotState.idle.rawValue, ordering: .sequentiallyConsistent)
                stuckThreads.wrappingSubtract(1, ordering: .relaxed)
                if leavesAsExcess() { return }
                continue
            }
            var one: UInt64 = 1
            _ = write(eventFD, &one, 8)
        }
    }
}
