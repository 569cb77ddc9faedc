// The simulated machine and SAN as one deterministic world: time, faults, kernel target, checks and workload.

import KeelCore

/// How the world behaves, apart from its shape and its workload.
public struct SimOptions: Sendable, Equatable {
    /// Check slots (in-flight checks, orphans included); a submit beyond them is refused.
    public var checkSlots: Int
    /// One check in flight per path, its orphan included: keeld's TUR and directio checkers
    /// refuse a path whose timed-out command is still in the kernel, and hold nothing else for
    /// it. Off: the slots are shared by every path (a checker thread pool).
    public var checkOnePerPath: Bool
    /// Answer time of a check on a working path, drawn uniformly.
    public var checkLatencyMinNs: Nanoseconds
    public var checkLatencyMaxNs: Nanoseconds
    /// Service time of an I/O on a working path, drawn uniformly.
    public var ioLatencyMinNs: Nanoseconds
    public var ioLatencyMaxNs: Nanoseconds
    /// How long an I/O or check takes to fail on an offline, removed, standby or transitioning path.
    public var failFastMinNs: Nanoseconds
    public var failFastMaxNs: Nanoseconds
    /// The SCSI command timeout: a lost (hung) I/O errors this long after dispatch, and a lost
    /// check's orphaned request ends this long after submission.
    public var commandTimeoutNs: Nanoseconds
    /// How the kernel reports events.
    public var kernel: SimMultipathTarget.Options
    /// Keep every trace entry in `SimWorld.trace` (the digest is always kept). Recording
    /// allocates as the trace grows: leave it off for allocation tests.
    public var recordsTrace: Bool

    public init(checkSlots: Int = 1024, checkOnePerPath: Bool = true,
                checkLatencyMinNs: Nanoseconds = 200_000, checkLatencyMaxNs: Nanoseconds = 2 * Time.nsPerMs,
                ioLatencyMinNs: Nanoseconds = 100_000, ioLatencyMaxNs: Nanoseconds = Time.nsPerMs,
                failFastMinNs: Nanoseconds = 20_000, failFastMaxNs: Nanoseconds = 200_000,
                commandTimeoutNs: Nanoseconds = 30 * Time.nsPerSecond,
                kernel: SimMultipathTarget.Options = SimMultipathTarget.Options(),
                recordsTrace: Bool = false) {
        self.checkSlots = checkSlots
        self.checkOnePerPath = checkOnePerPath
        self.checkLatencyMinNs = checkLatencyMinNs
        self.checkLatencyMaxNs = checkLatencyMaxNs
        self.ioLatencyMinNs = ioLatencyMinNs
        self.ioLatencyMaxNs = ioLatencyMaxNs
        self.failFastMinNs = failFastMinNs
        self.failFastMaxNs = failFastMaxNs
        self.commandTimeoutNs = commandTimeoutNs
        self.kernel = kernel
        self.recordsTrace = recordsTrace
    }

    func validate() {
        precondition(checkLatencyMinNs >= 1 && checkLatencyMaxNs >= checkLatencyMinNs, "check latency range")
        precondition(ioLatencyMinNs >= 1 && ioLatencyMaxNs >= ioLatencyMinNs, "I/O latency range")
        // A zero fail-fast time would let an I/O bounce between failing paths at one instant.
        precondition(failFastMinNs >= 1 && failFastMaxNs >= failFastMinNs, "fail-fast range")
        precondition(commandTimeoutNs >= 1, "command timeout")
    }
}

/// A path's device appeared or disappeared.
public struct SimTopologyChange: Sendable, Equatable {
    /// Whether the device appeared or disappeared.
    public enum Kind: UInt8, Sendable, Equatable { case added, removed }
    public var timeNs: Nanoseconds
    public var kind: Kind
    public var device: DevNo
    public var map: MapHandle

    public init(timeNs: Nanoseconds, kind: Kind, device: DevNo, map: MapHandle) {
        self.timeNs = timeNs
        self.kind = kind
        self.device = device
        self.map = map
    }
}

/// What a check of a path would report, or its priority, changed because of a fault step.
public struct SimHealthChange: Sendable, Equatable {
    public var timeNs: Nanoseconds
    public var device: DevNo
    public var map: MapHandle
    /// What a check would have reported before and after (`.timeout`: the path is hung).
    public var from: CheckResult
    public var to: CheckResult
    public var priorityFrom: Int
    public var priorityTo: Int

    public init(timeNs: Nanoseconds, device: DevNo, map: MapHandle, from: CheckResult, to: CheckResult,
                priorityFrom: Int, priorityTo: Int) {
        self.timeNs = timeNs
        self.device = device
        self.map = map
        self.from = from
        self.to = to
        self.priorityFrom = priorityFrom
        self.priorityTo = priorityTo
    }
}

/// Counters of what the world did.
public struct SimCounters: Sendable, Equatable {
    public var faultsApplied = 0
    /// I/O attempts sent down a path (retries included).
    public var ioDispatched = 0
    /// I/O attempts that failed on a path.
    public var ioPathErrors = 0
    /// I/Os that waited in a map's queue at least once.
    public var ioQueued = 0
    public var messages = 0
    public var messagesRefused = 0
    public var loads = 0
    public var loadsRefused = 0
    public init() {}
}

/// The simulated machine: a fabric of arrays and paths, the kernel's dm-multipath target for
/// one map per LUN, a check pool, and a workload, all driven by virtual time from one seed.
///
/// The world is event-driven. `nextEventNs()` says when something next happens inside it;
/// `advance(toNs:)` runs everything due up to then in (time, sequence) order. Between two
/// advances, the engine acts at the world's `nowNs`: it submits checks (`checker`), sends
/// messages (`messenger`), and the runner loads tables (`load`), drains kernel events
/// (`drainKernelEvents`) and topology changes (`drainTopologyChanges`).
///
/// A reference type: the checker and messenger handles share it. Not thread-safe; one world
/// per thread. Nothing in it reads a clock or iterates a hashed collection, so a seed replays
/// exactly.
public final class SimWorld {
    public let seed: UInt64
    public let fabric: FabricSpec
    public let options: SimOptions
    /// The virtual time.
    public private(set) var nowNs: Nanoseconds = 0
    /// Conditions, ALUA states, presence and LUN stores.
    public private(set) var san: SimSAN
    /// The kernel's multipath target, one map per LUN (map i serves LUN i).
    public private(set) var target: SimMultipathTarget
    /// The application and what it detected.
    public private(set) var workload: SimWorkload
    public private(set) var counters = SimCounters()
    /// The trace so far, when `options.recordsTrace`.
    public private(set) var trace: [SimTraceEntry] = []

    enum Event: BitwiseCopyable {
        case fault(Int32)
        case io(Int32)
    }

    enum IOPhase: UInt8 {
        /// The map's workload has not started.
        case idle
        /// Waiting for the think time to pass before the slot's next I/O.
        case waiting
        /// In the map's queue: no path.
        case queued
        /// Sent down a path.
        case inFlight
    }

    struct IOSlot {
        var map: Int32
        var phase = IOPhase.idle
        var kind = IOKind.read
        var block: Int32 = 0
        var stamp = SimStamp(raw: 0)
        var device = DevNo(major: 0, minor: 0)
        var dispatchNs: Nanoseconds = 0
        var willSucceed = false
        var wasQueued = false
        var nextQueued: Int32 = -1
    }

    private var agenda: EventQueue<Event>
    private var checks: CheckPool
    private var sequence: UInt64 = 0
    private var faultSteps: [FaultStep] = []
    private var io: [IOSlot]
    private var queueHead: [Int32]
    private var queueTail: [Int32]
    private var queueCount: [Int]
    private var workloadStarted: [Bool]
    private var ioRandom: SimRandom
    private var checkRandom: SimRandom
    private var digest = TraceDigest()
    private var topologyChanges: [SimTopologyChange] = []
    /// Table loads still to refuse (`FaultAction.refuseLoads`), and with which errno.
    private var loadsToRefuse: (count: Int, errno: Int32) = (0, 0)
    private var healthChanges: [SimHealthChange] = []
    private var affected: [Int] = []

    /// A world for `seed` with the given fabric (one map per LUN, no tables loaded yet).
    public init(seed: UInt64, fabric: FabricSpec, workload spec: WorkloadSpec = WorkloadSpec(), options: SimOptions = SimOptions()) {
        fabric.validate()
        options.validate()
        self.seed = seed
        self.fabric = fabric
        self.options = options
        san = SimSAN(fabric: fabric, blocksPerLun: max(spec.blocksPerLun, 1))
        target = SimMultipathTarget(mapCount: fabric.lunCount, options: options.kernel, seed: seed)
        workload = SimWorkload(spec: spec, mapCount: fabric.lunCount, seed: seed)
        checks = CheckPool(slotCount: options.checkOnePerPath ? max(options.checkSlots, fabric.pathCount) : options.checkSlots,
                           onePerPath: options.checkOnePerPath)
        let slotCount = fabric.lunCount * spec.outstandingPerMap
        io = (0..<slotCount).map { IOSlot(map: Int32($0 / max(spec.outstandingPerMap, 1))) }
        // Every I/O slot has at most one pending event; fault steps reserve their own room.
        agenda = EventQueue(capacity: slotCount + 64)
        queueHead = Array(repeating: -1, count: fabric.lunCount)
        queueTail = queueHead
        queueCount = Array(repeating: 0, count: fabric.lunCount)
        workloadStarted = Array(repeating: false, count: fabric.lunCount)
        ioRandom = SimRandom(seed: seed, stream: 1)
        checkRandom = SimRandom(seed: seed, stream: 2)
    }

    // MARK: - The fabric

    /// Maps, one per LUN.
    public var mapCount: Int { fabric.lunCount }

    /// Every map with its present paths and their current priorities.
    public var maps: [SimMapInfo] { (0..<mapCount).map { mapInfo(MapHandle(index: $0)) } }

    /// One map with its present paths (in path order) and their current priorities.
    public func mapInfo(_ map: MapHandle) -> SimMapInfo {
        let lun = map.index
        var paths: [SimMapInfo.Path] = []
        paths.reserveCapacity(fabric.pathsPerLun)
        for path in lun * fabric.pathsPerLun ..< (lun + 1) * fabric.pathsPerLun where san.isPresent(path: path) {
            paths.append(SimMapInfo.Path(info: fabric.pathInfo(path), priority: san.priority(ofPath: path)))
        }
        return SimMapInfo(map: map, lun: lun, array: fabric.array(ofLun: lun), paths: paths)
    }

    /// Where a device leads, if it belongs to the fabric (present or not).
    public func pathInfo(_ device: DevNo) -> SimPathInfo? { fabric.pathIndex(of: device).map(fabric.pathInfo) }

    /// The device's priority now (alua prioritizer), 0 for an unknown device.
    public func priority(of device: DevNo) -> Int { fabric.pathIndex(of: device).map(san.priority(ofPath:)) ?? 0 }

    /// What a check of the device would report if it completed now (`.timeout`: hung).
    public func expectedCheckResult(of device: DevNo) -> CheckResult { CheckPool.answer(for: device, san: san) }

    /// Whether the device exists.
    public func isPresent(_ device: DevNo) -> Bool { fabric.pathIndex(of: device).map(san.isPresent(path:)) ?? false }

    // MARK: - Time

    /// When the next internal event is due (`Time.never` when nothing is pending). Finished
    /// checks that were not reaped yet are already due and not counted here.
    public func nextEventNs() -> Nanoseconds { min(agenda.nextTimeNs, checks.next?.timeNs ?? Time.never) }

    /// Runs every event due at or before `endNs`, in (time, sequence) order, then sets the
    /// time to `endNs`.
    public func advance(toNs endNs: Nanoseconds) {
        precondition(endNs >= nowNs, "time runs forward: \(endNs) < \(nowNs)")
        precondition(endNs < Time.never, "advance to a finite time")
        while true {
            let world = agenda.first
            let check = checks.next
            let runCheck: Bool
            switch (world, check) {
            case (nil, nil): runCheck = false
            case (.some, nil): runCheck = false
            case (nil, .some): runCheck = true
            case (.some(let w), .some(let c)): runCheck = (c.timeNs, c.sequence) < (w.timeNs, w.sequence)
            }
            guard let timeNs = runCheck ? check?.timeNs : world?.timeNs, timeNs <= endNs else { break }
            nowNs = timeNs
            if runCheck {
                _ = checks.runNext(nowNs: nowNs, san: san, commandTimeoutNs: options.commandTimeoutNs, sequence: &sequence)
            } else if let event = agenda.pop() {
                run(event.payload)
            }
        }
        nowNs = endNs
    }

    /// Advances to the next event's time and runs everything due then. False when nothing is pending.
    @discardableResult
    public func advanceToNextEvent() -> Bool {
        let next = nextEventNs()
        guard next < Time.never else { return false }
        advance(toNs: next)
        return true
    }

    // MARK: - Faults

    /// Schedules a script's steps. Steps in the past apply at the current time, before anything
    /// else due now.
    public func schedule(_ script: FaultScript) {
        agenda.reserve(additional: script.steps.count)
        for step in script.steps {
            faultSteps.append(step)
            push(.fault(Int32(faultSteps.count - 1)), atNs: max(step.atNs, nowNs))
        }
    }

    /// Applies one fault action now.
    public func apply(_ action: FaultAction) {
        counters.faultsApplied += 1
        switch action {
        case .setHost(let host, let condition):
            tracked({ fabric.forEachPath(throughHost: host, $0) }) { $0.setCondition(host: host, condition) }
        case .setTargetPort(let port, let condition):
            tracked({ fabric.forEachPath(throughTargetPort: port, $0) }) { $0.setCondition(targetPort: port, condition) }
        case .setPath(let device, let condition):
            guard let path = fabric.pathIndex(of: device) else { preconditionFailure("\(device) is not in the fabric") }
            tracked({ $0(path) }) { $0.setCondition(path: path, condition) }
        case .setAlua(let port, let state):
            tracked({ fabric.forEachPath(throughTargetPort: port, $0) }) { $0.setAlua(targetPort: port, state) }
        case .removePath(let device), .addPath(let device):
            guard let path = fabric.pathIndex(of: device) else { preconditionFailure("\(device) is not in the fabric") }
            let adding: Bool
            if case .addPath = action { adding = true } else { adding = false }
            guard san.isPresent(path: path) != adding else { return }
            tracked({ $0(path) }) { $0.setPresent(path: path, adding) }
            topologyChanges.append(SimTopologyChange(timeNs: nowNs, kind: adding ? .added : .removed, device: device,
                                                     map: MapHandle(index: fabric.lun(ofPath: path))))
        case .dropWrites(let lun, let count):
            san.dropWrites(lun: lun, count: count)
        case .corruptReads(let lun, let count):
            san.corruptReads(lun: lun, count: count)
        case .refuseLoads(let count, let errno):
            loadsToRefuse = (count, errno)
        }
    }

    /// Hands over (and forgets) the devices added and removed since the last call, in order.
    public func drainTopologyChanges(_ body: (SimTopologyChange) -> Void) {
        let changes = topologyChanges
        topologyChanges.removeAll()
        changes.forEach(body)
    }

    /// Hands over (and forgets) the health changes fault steps caused since the last call, in
    /// order: for the runner's invariants ("a path that came back is reinstated in time").
    public func drainHealthChanges(_ body: (SimHealthChange) -> Void) {
        let changes = healthChanges
        healthChanges.removeAll()
        changes.forEach(body)
    }

    // MARK: - The kernel

    /// Loads (reloads) a map's table; 0 or the kernel's errno (see `SimMultipathTarget.load`).
    /// Queued I/O stays queued and is dispatched if a path is usable. The map's workload starts
    /// with its first table (`WorkloadSpec.startsOnLoad`).
    public func load(_ table: MultipathTable, map: MapHandle) -> Int32 {
        if loadsToRefuse.count > 0 {
            loadsToRefuse.count -= 1
            counters.loads += 1
            counters.loadsRefused += 1
            record(.load, UInt64(map.raw), UInt64(UInt32(bitPattern: loadsToRefuse.errno)))
            return loadsToRefuse.errno
        }
        let errno = target.load(table, map: map) { [fabric, san] device in
            fabric.pathIndex(of: device).map(san.isPresent(path:)) ?? false
        }
        counters.loads += 1
        if errno != 0 { counters.loadsRefused += 1 }
        record(.load, UInt64(map.raw), UInt64(UInt32(bitPattern: errno)))
        guard errno == 0 else { return errno }
        if workload.spec.startsOnLoad && !workloadStarted[map.index] { startWorkload(map) }
        serviceQueue(map.index)
        return 0
    }

    /// Sends a dm message; 0 or the kernel's errno. Queued I/O moves on if the message made a
    /// path usable (dispatched) or stopped queueing with no path (failed with EIO).
    public func send(_ message: DMMessage) -> Int32 {
        let errno = message.map.index < mapCount ? target.send(message) : SimErrno.enxio
        counters.messages += 1
        if errno != 0 { counters.messagesRefused += 1 }
        let argument: UInt64
        switch message.kind {
        case .failPath, .reinstatePath: argument = message.device.traceValue
        case .switchGroup, .enableGroup, .disableGroup: argument = UInt64(message.group)
        case .queueIfNoPath, .failIfNoPath: argument = 0
        }
        record(.message, UInt64(message.map.raw) << 32 | UInt64(message.kind.rawValue) << 16
                | UInt64(UInt16(truncatingIfNeeded: errno)), argument)
        if errno == 0 { serviceQueue(message.map.index) }
        return errno
    }

    /// The map's status line as values (see `SimMultipathTarget.status`).
    public func status(_ map: MapHandle) -> MultipathStatus { target.status(map) }

    /// I/Os of the map waiting for a path.
    public func queuedIOCount(_ map: MapHandle) -> Int { queueCount[map.index] }

    /// I/Os of the map sent down a path and not finished.
    public func inFlightIOCount(_ map: MapHandle) -> Int {
        let per = workload.spec.outstandingPerMap
        return io[map.index * per ..< (map.index + 1) * per].reduce(0) { $0 + ($1.phase == .inFlight ? 1 : 0) }
    }

    /// Hands over every pending kernel event in order, then, with
    /// `SimMultipathTarget.Options.statusRecordsOnEvent`, the status records of each map whose
    /// event number moved. `body` may call back into the world (send messages, load tables);
    /// events that causes are handed over in the same drain.
    public func drainKernelEvents(_ body: (KernelEvent) -> Void) {
        while true {
            if let event = target.popEvent() {
                body(event)
            } else if let map = target.popSignalledMap() {
                if options.kernel.statusRecordsOnEvent { statusRecords(map, body) }
            } else {
                return
            }
        }
    }

    /// The records a status read of the map gives (see `SimMultipathTarget.statusRecords`),
    /// for a periodic resync. `body` may call back into the world.
    public func statusRecords(_ map: MapHandle, _ body: (KernelEvent) -> Void) {
        guard target.hasTable(map) else { return }
        var i = 0
        while let path = target.path(at: i, of: map) {
            body(.pathKernelState(map, path.device, active: path.active))
            i += 1
        }
        body(.mapQueueing(map, queueing: target.queueIfNoPath(map)))
        body(.mapActiveGroup(map, group: target.reportedActiveGroup(map)))
    }

    /// The engine's checker backend over this world.
    public var checker: SimChecker { SimChecker(world: self) }

    /// The engine's message channel to this world's kernel.
    public var messenger: SimMessenger { SimMessenger(world: self) }

    // MARK: - Checks

    /// Counters of the check pool.
    public var checkCounters: CheckCounters { checks.counters }
    /// Slots taken (in flight, finished and not reaped, or orphaned).
    public var checkSlotsBusy: Int { checks.busyCount }
    /// Finished checks waiting for `reap`.
    public var checksWaitingForReap: Int { checks.readyCount }

    /// Starts a check (see `SimChecker`); `nowNs` must be the world's time. False when every
    /// slot is taken.
    public func submitCheck(_ request: CheckRequest, nowNs: Nanoseconds) -> Bool {
        precondition(nowNs == self.nowNs, "advance the world to the engine's time before submitting a check")
        let answersFast = fabric.pathIndex(of: request.device).map {
            !san.isPresent(path: $0) || san.effectiveCondition(ofPath: $0) == .offline
        } ?? true
        let latencyNs = answersFast
            ? checkRandom.range(options.failFastMinNs...options.failFastMaxNs)
            : checkRandom.range(options.checkLatencyMinNs...options.checkLatencyMaxNs)
        let started = checks.submit(request, nowNs: nowNs, latencyNs: latencyNs, san: san,
                                    commandTimeoutNs: options.commandTimeoutNs, sequence: &sequence)
        record(started ? .checkSubmitted : .checkRefused, UInt64(request.token), request.device.traceValue)
        return started
    }

    /// Delivers every check finished at or before `nowNs` (which must not be ahead of the
    /// world), one at a time: the sink may submit new checks meanwhile.
    public func reapChecks<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S) {
        precondition(nowNs <= self.nowNs, "advance the world before reaping")
        while let completion = checks.popReady(nowNs: nowNs) {
            record(.checkDelivered, UInt64(completion.token), UInt64(completion.result.rawValue))
            sink.checkCompleted(completion)
        }
    }

    // MARK: - Workload

    /// Starts the map's workload (each slot after a think time). Loading the first table does
    /// this unless `WorkloadSpec.startsOnLoad` is off.
    public func startWorkload(_ map: MapHandle) {
        guard !workloadStarted[map.index] else { return }
        workloadStarted[map.index] = true
        let per = workload.spec.outstandingPerMap
        for s in map.index * per ..< (map.index + 1) * per {
            io[s].phase = .waiting
            push(.io(Int32(s)), atNs: nowNs + workload.thinkTimeNs())
        }
    }

    /// See `SimWorkload.watchFirstCompletion`.
    public func watchFirstCompletion(map: MapHandle?, atOrAfterNs: Nanoseconds, issuedBefore: Bool = false) -> CompletionWatch {
        workload.watchFirstCompletion(map: map, atOrAfterNs: atOrAfterNs, issuedBefore: issuedBefore)
    }

    /// See `SimWorkload.firstCompletionNs`.
    public func firstCompletionNs(_ watch: CompletionWatch) -> Nanoseconds? { workload.firstCompletionNs(watch) }

    /// The trace digest so far: equal digests mean (with overwhelming likelihood) equal runs.
    public var traceDigest: UInt64 { digest.value }

    // MARK: - Running events

    private func run(_ event: Event) {
        switch event {
        case .fault(let index):
            record(.fault, UInt64(index), 0)
            apply(faultSteps[Int(index)].action)
        case .io(let s):
            let s = Int(s)
            switch io[s].phase {
            case .waiting: issue(s)
            case .inFlight: complete(s)
            case .idle, .queued: preconditionFailure("I/O slot \(s) had an event while \(io[s].phase)")
            }
        }
    }

    /// The slot's next I/O begins.
    private func issue(_ s: Int) {
        let request = workload.begin(slot: s, nowNs: nowNs)
        io[s].kind = request.kind
        io[s].block = Int32(request.block)
        io[s].stamp = request.stamp
        io[s].wasQueued = false
        route(s)
    }

    /// Sends the I/O down the path the target chooses, or queues it, or fails it (no path, no queueing).
    private func route(_ s: Int) {
        let map = MapHandle(index: Int(io[s].map))
        if let device = target.choosePath(map) {
            dispatch(s, to: device)
        } else if target.queueIfNoPath(map) {
            enqueue(s)
        } else {
            failToApplication(s)
        }
    }

    private func dispatch(_ s: Int, to device: DevNo) {
        guard let path = fabric.pathIndex(of: device) else { preconditionFailure("a loaded table holds \(device)") }
        counters.ioDispatched += 1
        record(.ioDispatched, UInt64(s), device.traceValue)
        var latencyNs: Nanoseconds
        var willSucceed = false
        if !san.isPresent(path: path) {
            latencyNs = ioRandom.range(options.failFastMinNs...options.failFastMaxNs)
        } else {
            switch san.effectiveCondition(ofPath: path) {
            case .offline:
                latencyNs = ioRandom.range(options.failFastMinNs...options.failFastMaxNs)
            case .hung:
                latencyNs = options.commandTimeoutNs
            case .online, .slow:
                willSucceed = san.servicesIO(path: path)
                if case .slow(let slowNs) = san.effectiveCondition(ofPath: path), willSucceed {
                    // Slower than the command timeout is a timeout.
                    latencyNs = min(slowNs, options.commandTimeoutNs)
                    willSucceed = slowNs <= options.commandTimeoutNs
                } else if willSucceed {
                    latencyNs = ioRandom.range(options.ioLatencyMinNs...options.ioLatencyMaxNs)
                } else {
                    latencyNs = ioRandom.range(options.failFastMinNs...options.failFastMaxNs)
                }
            }
        }
        io[s].phase = .inFlight
        io[s].device = device
        io[s].dispatchNs = nowNs
        io[s].willSucceed = willSucceed
        push(.io(Int32(s)), atNs: nowNs + latencyNs)
    }

    /// An I/O attempt ends. Whether it succeeds is decided now: a path that failed while the I/O
    /// was in flight fails it, and one that hung meanwhile holds it until the command timeout.
    private func complete(_ s: Int) {
        let device = io[s].device
        guard let path = fabric.pathIndex(of: device) else { preconditionFailure("in-flight I/O on \(device)") }
        if io[s].willSucceed {
            if san.servicesIO(path: path) {
                succeed(s, path: path)
                return
            }
            let timeoutNs = io[s].dispatchNs + options.commandTimeoutNs
            if san.isPresent(path: path), san.effectiveCondition(ofPath: path) == .hung, nowNs < timeoutNs {
                io[s].willSucceed = false
                push(.io(Int32(s)), atNs: timeoutNs)
                return
            }
        }
        counters.ioPathErrors += 1
        record(.ioPathError, UInt64(s), device.traceValue)
        target.ioError(MapHandle(index: Int(io[s].map)), device: device)
        route(s)
    }

    private func succeed(_ s: Int, path: Int) {
        let lun = fabric.lun(ofPath: path)
        let block = Int(io[s].block)
        let observed: SimStamp
        if io[s].kind == .write {
            san.write(lun: lun, block: block, stamp: io[s].stamp)
            observed = io[s].stamp
        } else {
            observed = san.read(lun: lun, block: block)
        }
        record(.ioCompleted, UInt64(s), observed.raw)
        let pauseNs = workload.succeeded(slot: s, nowNs: nowNs, observed: observed)
        io[s].phase = .waiting
        push(.io(Int32(s)), atNs: nowNs + pauseNs)
    }

    private func failToApplication(_ s: Int) {
        record(.ioFailed, UInt64(s), 0)
        let pauseNs = workload.failed(slot: s, nowNs: nowNs)
        io[s].phase = .waiting
        push(.io(Int32(s)), atNs: nowNs + pauseNs)
    }

    private func enqueue(_ s: Int) {
        let m = Int(io[s].map)
        record(.ioQueued, UInt64(s), 0)
        if !io[s].wasQueued {
            io[s].wasQueued = true
            counters.ioQueued += 1
        }
        io[s].phase = .queued
        io[s].nextQueued = -1
        if queueTail[m] >= 0 { io[Int(queueTail[m])].nextQueued = Int32(s) } else { queueHead[m] = Int32(s) }
        queueTail[m] = Int32(s)
        queueCount[m] += 1
    }

    private func dequeue(_ m: Int) -> Int {
        let s = Int(queueHead[m])
        queueHead[m] = io[s].nextQueued
        if queueHead[m] < 0 { queueTail[m] = -1 }
        queueCount[m] -= 1
        io[s].nextQueued = -1
        return s
    }

    /// Moves a map's queued I/O on after the kernel state changed: dispatched in order while a
    /// path is active; failed with EIO when no path is active and queueing is off.
    private func serviceQueue(_ m: Int) {
        let map = MapHandle(index: m)
        while queueCount[m] > 0 {
            if target.hasActivePath(map) {
                route(dequeue(m))
            } else if !target.queueIfNoPath(map) {
                failToApplication(dequeue(m))
            } else {
                return
            }
        }
    }

    // MARK: - Bookkeeping

    private func push(_ event: Event, atNs: Nanoseconds) {
        sequence += 1
        agenda.push(TimedEvent(timeNs: atNs, sequence: sequence, payload: event))
    }

    private func record(_ kind: SimTraceKind, _ a: UInt64, _ b: UInt64) {
        let entry = SimTraceEntry(timeNs: nowNs, kind: kind, a: a, b: b)
        digest.fold(entry)
        if options.recordsTrace { trace.append(entry) }
    }

    /// Applies a SAN change and records, for every path it may touch, a change in what a
    /// check would report or in priority.
    private func tracked(_ paths: ((Int) -> Void) -> Void, _ change: (inout SimSAN) -> Void) {
        affected.removeAll(keepingCapacity: true)
        paths { affected.append($0) }
        let before = affected.map { (san.expectedCheckResult(ofPath: $0), san.priority(ofPath: $0)) }
        change(&san)
        for (i, path) in affected.enumerated() {
            let after = (san.expectedCheckResult(ofPath: path), san.priority(ofPath: path))
            if after != before[i] {
                healthChanges.append(SimHealthChange(
                    timeNs: nowNs, device: fabric.device(ofPath: path), map: MapHandle(index: fabric.lun(ofPath: path)),
                    from: before[i].0, to: after.0, priorityFrom: before[i].1, priorityTo: after.1))
            }
        }
    }
}
