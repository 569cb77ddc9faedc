// The engine: Keel's pure decision logic over fixed-capacity path and map tables.

/// Decides, for every path and map, what the kernel should be told and when each path is checked
/// next. It takes time as an input and hands actions to a sink; it never reads a clock, never calls
/// the kernel and never allocates after init.
///
/// One thread owns an engine (the recovery thread in the daemon). The control plane asks it to
/// add and remove paths and maps, and confirms table loads; everything else arrives as fixed-size
/// records: check completions, kernel events, operator commands.
public final class Engine {
    /// The ceilings (`max_paths`, `max_maps`, ...): what the tables may grow to.
    public let capacities: Capacities
    /// The tables' memory, shared with the thread that grows them.
    public let arenas: EngineArenas
    /// Path handles `0..<pathCapacity` exist; the rest of the ceiling is not committed yet.
    public private(set) var pathCapacity: Int
    /// Map handles `0..<mapCapacity` exist.
    public private(set) var mapCapacity: Int
    @usableFromInline let paths: Table<PathRecord>
    @usableFromInline let maps: Table<MapRecord>
    @usableFromInline var freePathHead: Int32
    @usableFromInline var freeMapHead: Int32
    /// One deadline per path: its next check, or the guard on a check in flight.
    @usableFromInline var pathTimers: TimerWheel
    /// One deadline per map: no_path_retry expiry or a deferred failback.
    @usableFromInline var mapTimers: TimerWheel
    @usableFromInline var devices: KeyIndex
    @usableFromInline var portHeads: KeyIndex
    @usableFromInline let dueScratch: Table<Int32>
    @usableFromInline var dueCount = 0
    @usableFromInline let reloadQueue: Table<Int32>
    @usableFromInline var reloadCount = 0
    @usableFromInline var groupScratch: Grouping.Scratch
    @usableFromInline var nextToken: UInt32 = 1
    public private(set) var counters = EngineCounters()
    public private(set) var pathCount = 0
    public private(set) var mapCount = 0

    /// Sets up tables for `initial` paths and maps (all of `capacities` when nil), in memory
    /// reserved for the ceilings of `capacities`. The check wheel spans `wheelSlots x wheelTickNs`
    /// (33 s by default, longer than the slowest default healthy interval); deadlines stay exact
    /// whatever the tick.
    public init(capacities: Capacities = .default, initial: (paths: Int, maps: Int)? = nil, memory: TableMemory = .heap,
                wheelSlots: Int = 8192, wheelTickNs: Nanoseconds = 4 * Time.nsPerMs, startNs: Nanoseconds = 0) {
        precondition(capacities.pathsMax > 0 && capacities.mapsMax > 0 && capacities.pathsPerMapMax > 0)
        self.capacities = capacities
        let arenas = EngineArenas(capacities: capacities, memory: memory)
        let start = (paths: min(max(initial?.paths ?? capacities.pathsMax, 1), capacities.pathsMax),
                     maps: min(max(initial?.maps ?? capacities.mapsMax, 1), capacities.mapsMax))
        arenas.prepare(paths: start.paths, maps: start.maps)
        self.arenas = arenas
        paths = arenas.paths
        maps = arenas.maps
        pathCapacity = 0
        mapCapacity = 0
        freePathHead = -1
        freeMapHead = -1
        pathTimers = TimerWheel(capacity: start.paths, slotCount: wheelSlots, tickNs: wheelTickNs, startNs: startNs,
                                entries: arenas.pathWheel)
        mapTimers = TimerWheel(capacity: start.maps, slotCount: 256, tickNs: 16 * wheelTickNs, startNs: startNs,
                               entries: arenas.mapWheel)
        devices = KeyIndex(capacity: capacities.pathsMax)
        portHeads = KeyIndex(capacity: capacities.pathsMax)
        // Holds the due map timers, then the due path timers: sized for the larger table (a
        // host may configure more maps than paths).
        dueScratch = arenas.dueScratch
        reloadQueue = arenas.reloadQueue
        groupScratch = Grouping.Scratch(capacity: capacities.pathsPerMapMax)
        adopt(paths: start.paths, maps: start.maps)
    }

    /// Takes the path and map handles the arenas have prepared up to `paths` and `maps` (the
    /// owning thread, between passes; allocates nothing). New handles go to the front of the free
    /// lists, lowest first; live handles and their state do not move.
    public func adopt(paths newPaths: Int, maps newMaps: Int) {
        precondition(newPaths <= arenas.preparedPaths && newMaps <= arenas.preparedMaps, "engine grown before its arenas were prepared")
        if newPaths > pathCapacity {
            for i in stride(from: newPaths - 1, through: pathCapacity, by: -1) {
                paths[i].nextFree = freePathHead
                freePathHead = Int32(i)
            }
            pathCapacity = newPaths
            pathTimers.adopt(capacity: newPaths)
        }
        if newMaps > mapCapacity {
            for i in stride(from: newMaps - 1, through: mapCapacity, by: -1) {
                maps[i].nextFree = freeMapHead
                freeMapHead = Int32(i)
            }
            mapCapacity = newMaps
            mapTimers.adopt(capacity: newMaps)
        }
    }

    // MARK: - Topology (control plane asks, the owning thread applies)

    /// Adds a map. Its table is loaded by the control plane after the first `.reloadMap`.
    public func addMap(policy: MapPolicy) throws(EngineRefusal) -> MapHandle {
        guard freeMapHead >= 0 else {
            counters.refusals += 1
            throw .mapTableFull(capacity: mapCapacity)
        }
        let m = Int(freeMapHead)
        freeMapHead = maps[m].nextFree
        let generation = maps[m].generation
        maps[m] = MapRecord()
        maps[m].generation = generation
        maps[m].inUse = true
        maps[m].policy = policy
        maps[m].kernelQueueing = policy.noPathRetry.queuesInitially
        mapCount += 1
        return mapHandle(slot: m)
    }

    /// Removes a map and all its paths.
    public func removeMap(_ map: MapHandle) throws(EngineRefusal) {
        guard isLive(map) else { throw .unknownMap(map) }
        while maps[map.index].firstPath >= 0 {
            unlinkPath(Int(maps[map.index].firstPath))
        }
        mapTimers.cancel(map.index)
        if maps[map.index].needsReload {
            // Its queued reload goes too: a slot reused before the next tick must not be queued twice.
            var i = 0
            while i < reloadCount {
                if reloadQueue[i] == Int32(map.index) {
                    reloadCount -= 1
                    reloadQueue[i] = reloadQueue[reloadCount]
                } else {
                    i += 1
                }
            }
            maps[map.index].needsReload = false
        }
        maps[map.index].inUse = false
        maps[map.index].generation = (maps[map.index].generation &+ 1) & 0xFFF
        maps[map.index].nextFree = freeMapHead
        freeMapHead = Int32(map.index)
        mapCount -= 1
    }

    /// Adds a path to a map; it is checked at once and the map is marked for a table reload.
    public func addPath(_ descriptor: PathDescriptor, to map: MapHandle, nowNs: Nanoseconds) throws(EngineRefusal) -> PathHandle {
        guard isLive(map) else { counters.refusals += 1; throw .unknownMap(map) }
        guard devices.find(descriptor.device.key) == nil else { counters.refusals += 1; throw .duplicateDevice(descriptor.device) }
        guard Int(maps[map.index].pathCount) < capacities.pathsPerMapMax else {
            counters.refusals += 1
            throw .mapFull(map, capacity: capacities.pathsPerMapMax)
        }
        guard freePathHead >= 0 else { counters.refusals += 1; throw .pathTableFull(capacity: pathCapacity) }
        let p = Int(freePathHead)
        freePathHead = paths[p].nextFree
        var record = PathRecord()
        record.inUse = true
        record.descriptor = descriptor
        record.map = map
        record.intervalNs = maps[map.index].policy.intervalHealthyNs
        paths[p] = record
        devices.set(descriptor.device.key, p)
        // Map list: push front.
        let head = maps[map.index].firstPath
        paths[p].nextInMap = head
        if head >= 0 { paths[Int(head)].prevInMap = Int32(p) }
        maps[map.index].firstPath = Int32(p)
        maps[map.index].pathCount += 1
        // Port sibling list.
        let portKey = UInt64(descriptor.portKey)
        if let portHead = portHeads.find(portKey) {
            paths[p].nextInPort = Int32(portHead)
            paths[portHead].prevInPort = Int32(p)
        }
        portHeads.set(portKey, p)
        pathCount += 1
        scheduleCheck(p, atNs: nowNs)
        regroup(map.index)
        return PathHandle(index: p)
    }

    /// Removes a path (the device went away); the map is marked for a table reload.
    public func removePath(_ path: PathHandle, nowNs: Nanoseconds) throws(EngineRefusal) {
        guard isLive(path) else { throw .unknownPath(path) }
        let m = paths[path.index].map.index
        unlinkPath(path.index)
        regroup(m)
        if usableCount(m) == 0 { afterLastUsableLost(m, nowNs: nowNs) }
    }

    /// Sets a path's priority (a prioritizer ran). With `failback immediate` the map is regrouped,
    /// as multipathd does; otherwise the new priority applies at the next reload.
    public func setPriority(_ path: PathHandle, _ priority: Int32) throws(EngineRefusal) {
        guard isLive(path) else { throw .unknownPath(path) }
        guard paths[path.index].descriptor.priority != priority else { return }
        paths[path.index].descriptor.priority = priority
        let m = paths[path.index].map.index
        if maps[m].policy.failback == .immediate && maps[m].policy.grouping != .multibus { regroup(m) }
    }

    /// Gives a map a new policy (the configuration was reloaded). Paths keep their state; their
    /// healthy interval restarts from the new `polling_interval`; the map is regrouped and marked
    /// for a table reload, so the kernel's features (queueing) follow the new profile through
    /// `tableLoaded`. Allocates nothing.
    public func setPolicy(_ map: MapHandle, _ policy: MapPolicy) throws(EngineRefusal) {
        guard isLive(map) else { throw .unknownMap(map) }
        maps[map.index].policy = policy
        var p = maps[map.index].firstPath
        while p >= 0 {
            paths[Int(p)].intervalNs = policy.intervalHealthyNs
            p = paths[Int(p)].nextInMap
        }
        regroup(map.index)
    }

    /// The control plane loaded the map's table as `groupLayout` describes it: in the kernel every
    /// path now starts active, the group is `initialGroup`, and queueing is as the features say.
    /// The engine then re-fails what it knows to be down.
    public func tableLoaded<S: EngineActionSink>(_ map: MapHandle, initialGroup: UInt16, queueing: Bool, nowNs: Nanoseconds, sink: inout S) {
        guard isLive(map) else { return }
        let m = map.index
        maps[m].loaded = true
        maps[m].kernelGroup = initialGroup
        maps[m].kernelQueueing = queueing
        var p = maps[m].firstPath
        while p >= 0 {
            let i = Int(p)
            paths[i].kernelActive = true
            switch paths[i].state {
            case .down, .delayed, .removed, .operatorFailed: failInKernel(i, sink: &sink)
            case .unchecked, .up, .ghost, .pending: break
            }
            p = paths[i].nextInMap
        }
        if usableCount(m) == 0 { afterLastUsableLost(m, nowNs: nowNs) }
        ensureQueueing(m, sink: &sink)
    }

    // MARK: - Inputs

    /// A checker verdict arrived.
    public func handle<S: EngineActionSink>(_ completion: CheckCompletion, nowNs: Nanoseconds, sink: inout S) {
        let p = completion.path.index
        guard p >= 0, p < pathCapacity, paths[p].inUse, paths[p].checkInFlight, paths[p].checkToken == completion.token else {
            counters.staleCompletions += 1
            return
        }
        // The backend never sent it: no verdict, as if it had refused the check.
        if completion.result == .notStarted { return retryRefused(p, nowNs: nowNs) }
        paths[p].checkInFlight = false
        counters.checksCompleted += 1
        apply(result: completion.result, toPath: p, nowNs: nowNs, sink: &sink)
    }

    /// The checker backend could not start a check (no free slot): try again at the fast interval.
    public func checkRefused(_ request: CheckRequest, nowNs: Nanoseconds) {
        let p = request.path.index
        guard isLive(request.path), paths[p].checkInFlight, paths[p].checkToken == request.token else { return }
        retryRefused(p, nowNs: nowNs)
    }

    /// A check of path slot `p` that got no verdict (refused, or never sent): asked again at the
    /// fast interval, the path's state unchanged.
    @usableFromInline
    func retryRefused(_ p: Int, nowNs: Nanoseconds) {
        counters.checksRefusedByBackend += 1
        paths[p].checkInFlight = false
        scheduleCheck(p, atNs: nowNs + maps[paths[p].map.index].policy.intervalFastNs)
    }

    /// A kernel event (dm event, uevent, or a status read during resync).
    public func handle<S: EngineActionSink>(_ event: KernelEvent, nowNs: Nanoseconds, sink: inout S) {
        switch event {
        case .pathFailed(let map, let device):
            guard let p = pathIndex(device, in: map) else { counters.unknownDeviceEvents += 1; return }
            kernelReportedFailure(p, nowNs: nowNs, sink: &sink)
        case .pathKernelState(let map, let device, let active):
            guard let p = pathIndex(device, in: map) else { counters.unknownDeviceEvents += 1; return }
            if active {
                paths[p].kernelActive = true
                // The kernel routes to a path we hold failed: fail it again.
                if !paths[p].state.wantsActiveInKernel && paths[p].state != .unchecked && paths[p].state != .pending {
                    failInKernel(p, sink: &sink)
                }
            } else if paths[p].kernelActive || paths[p].state.wantsActiveInKernel {
                kernelReportedFailure(p, nowNs: nowNs, sink: &sink)
            }
        case .mapQueueing(let map, let queueing):
            guard isLive(map) else { counters.unknownDeviceEvents += 1; return }
            maps[map.index].kernelQueueing = queueing
            ensureQueueing(map.index, sink: &sink)
        case .mapActiveGroup(let map, let group):
            guard isLive(map) else { counters.unknownDeviceEvents += 1; return }
            maps[map.index].kernelGroup = group
            evaluateFailback(map.index, returnedPath: -1, nowNs: nowNs, sink: &sink)
        }
    }

    /// An operator command from the control socket.
    public func handle<S: EngineActionSink>(_ command: OperatorCommand, nowNs: Nanoseconds, sink: inout S) -> OperatorOutcome {
        switch command {
        case .failPath(let path):
            guard isLive(path) else { return .unknownPath }
            let p = path.index
            let wasUsable = paths[p].isUsable
            setState(p, .operatorFailed, sink: &sink)
            failInKernel(p, sink: &sink)
            if wasUsable { pathLost(p, nowNs: nowNs, sink: &sink) }
            return .done
        case .reinstatePath(let path):
            guard isLive(path) else { return .unknownPath }
            let p = path.index
            guard paths[p].state == .operatorFailed else { return .done }
            // The checker decides: a dead path is never reinstated on the operator's word alone.
            setState(p, .unchecked, sink: &sink)
            if !paths[p].checkInFlight { scheduleCheck(p, atNs: nowNs) }
            return .done
        case .switchGroup(let map, let group):
            guard isLive(map) else { return .unknownMap }
            let m = map.index
            guard group >= 1, group <= maps[m].groupCount else { return .noSuchGroup }
            switchGroup(m, to: group, sink: &sink)
            return .done
        case .disableQueueing(let map):
            guard isLive(map) else { return .unknownMap }
            maps[map.index].operatorQueueingDisabled = true
            ensureQueueing(map.index, sink: &sink)
            return .done
        case .restoreQueueing(let map):
            guard isLive(map) else { return .unknownMap }
            guard maps[map.index].operatorQueueingDisabled else { return .queueingNotDisabled }
            maps[map.index].operatorQueueingDisabled = false
            ensureQueueing(map.index, sink: &sink)
            return .done
        case .setMarginal(let path, let marginal):
            guard isLive(path) else { return .unknownPath }
            let p = path.index
            guard paths[p].descriptor.marginal != marginal else { return .done }
            paths[p].descriptor.marginal = marginal
            // multipathd reloads the map either way; only with marginal groups does its layout change.
            let m = paths[p].map.index
            if maps[m].policy.marginalPathGroups { regroup(m) }
            return .done
        }
    }

    /// Runs everything due at `nowNs`: map timers (no_path_retry expiry, deferred failback), path
    /// checks and guards on hung checks, and pending table reloads.
    public func tick<S: EngineActionSink>(nowNs: Nanoseconds, sink: inout S) {
        dueCount = 0
        mapTimers.advance(toNs: nowNs) { m in
            self.dueScratch[self.dueCount] = Int32(m)
            self.dueCount += 1
        }
        for i in 0..<dueCount { mapTimerFired(Int(dueScratch[i]), nowNs: nowNs, sink: &sink) }
        dueCount = 0
        pathTimers.advance(toNs: nowNs) { p in
            self.dueScratch[self.dueCount] = Int32(p)
            self.dueCount += 1
        }
        for i in 0..<dueCount { pathTimerFired(Int(dueScratch[i]), nowNs: nowNs, sink: &sink) }
        while reloadCount > 0 {
            reloadCount -= 1
            let m = Int(reloadQueue[reloadCount])
            guard maps[m].inUse, maps[m].needsReload else { continue }
            maps[m].needsReload = false
            sink.perform(.reloadMap(mapHandle(slot: m)))
        }
    }

    /// When `tick` next has work, for choosing how long to wait. Inputs may arrive sooner.
    public func nextDeadlineNs() -> Nanoseconds {
        if reloadCount > 0 { return 0 }
        return min(pathTimers.nextDeadlineNs(), mapTimers.nextDeadlineNs())
    }

    // MARK: - Decisions

    @usableFromInline
    func apply<S: EngineActionSink>(result: CheckResult, toPath p: Int, nowNs: Nanoseconds, sink: inout S) {
        let m = paths[p].map.index
        let policy = maps[m].policy
        paths[p].lastResult = result
        let old = paths[p].state
        if old == .operatorFailed {
            // Checks go on so `show paths` stays current, but only the operator ends this state.
            scheduleCheck(p, atNs: nowNs + policy.intervalHealthyNs)
            return
        }
        switch result {
        case .pending:
            setState(p, .pending, sink: &sink)
            scheduleCheck(p, atNs: nowNs + policy.intervalFastNs)
        case .notStarted:
            scheduleCheck(p, atNs: nowNs + policy.intervalFastNs)   // handled before; kept total
        case .down, .timeout, .removed:
            let newState: PathState = result == .removed ? .removed : .down
            let wasUsable = paths[p].isUsable
            if old.wantsActiveInKernel && policy.flapDamping.isEnabled {
                paths[p].flapFailures &+= 1
                paths[p].goodStreak = 0
            }
            setState(p, newState, sink: &sink)
            failInKernel(p, sink: &sink)
            paths[p].kernelRefusals = 0
            paths[p].intervalNs = policy.intervalHealthyNs
            scheduleCheck(p, atNs: nowNs + policy.intervalFastNs)
            if wasUsable { pathLost(p, nowNs: nowNs, sink: &sink) }
            if old.wantsActiveInKernel { probeSiblings(of: p, nowNs: nowNs) }
        case .up, .ghost:
            let target: PathState = result == .up ? .up : .ghost
            if old == target {
                // Unchanged and healthy: back off, forget old failures, repair the kernel's view.
                noteGoodCheck(p, policy: policy)
                paths[p].intervalNs = min(paths[p].intervalNs * 2, policy.intervalHealthyMaxNs)
                if !paths[p].kernelActive {
                    reinstateInKernel(p, nowNs: nowNs, sink: &sink)
                } else {
                    paths[p].kernelRefusals = 0   // the kernel kept it since the last check
                }
                scheduleHealthyCheck(p, nowNs: nowNs)
                return
            }
            if old == .up || old == .ghost {
                // up <-> ghost: an ALUA state change; the path stays in service.
                setState(p, target, sink: &sink)
                if !paths[p].kernelActive { reinstateInKernel(p, nowNs: nowNs, sink: &sink) }
                paths[p].intervalNs = policy.intervalHealthyNs
                scheduleHealthyCheck(p, nowNs: nowNs)
                return
            }
            if holdBack(p, old: old, policy: policy, nowNs: nowNs, sink: &sink) {
                scheduleCheck(p, atNs: nowNs + policy.intervalFastNs)
                return
            }
            let usableBefore = usableCount(m)
            setState(p, target, sink: &sink)
            paths[p].flapFailures = old == .delayed ? 0 : paths[p].flapFailures
            reinstateInKernel(p, nowNs: nowNs, sink: &sink)
            paths[p].intervalNs = policy.intervalHealthyNs
            scheduleHealthyCheck(p, nowNs: nowNs)
            pathGained(p, usableBefore: usableBefore, nowNs: nowNs, sink: &sink)
        }
    }

    /// Flap damping: whether a returning path is held back (state `delayed`) instead of reinstated.
    @usableFromInline
    func holdBack<S: EngineActionSink>(_ p: Int, old: PathState, policy: MapPolicy, nowNs: Nanoseconds, sink: inout S) -> Bool {
        let damping = policy.flapDamping
        guard damping.isEnabled else { return false }
        // A map with no usable path takes any path that works (multipathd does the same).
        if usableCount(paths[p].map.index) == 0 { return false }
        if old == .delayed {
            if nowNs >= paths[p].delayedUntilNs { return false }
            noteGoodCheck(p, policy: policy)
            return true
        }
        guard paths[p].flapFailures > damping.threshold else { return false }
        setState(p, .delayed, sink: &sink)
        paths[p].delayedUntilNs = nowNs + damping.recoveryTimeNs
        return true
    }

    @usableFromInline
    func noteGoodCheck(_ p: Int, policy: MapPolicy) {
        guard policy.flapDamping.isEnabled, paths[p].flapFailures > 0 else { return }
        paths[p].goodStreak += 1
        if paths[p].goodStreak >= policy.flapDamping.forgetRate {
            paths[p].flapFailures -= 1
            paths[p].goodStreak = 0
        }
    }

    /// How soon after a reinstate a kernel failure counts as the kernel refusing the path.
    public static let kernelRefusalWindowNs = Time.nsPerSecond

    /// The kernel failed a path on its own (I/O error). Check it and its port siblings now;
    /// but when it failed a path the checker calls good moments after it was reinstated, the
    /// kernel is refusing it (an ALUA standby port the handler fails I/O on, say): the next
    /// check, and with it the next reinstate, waits the fast interval doubled per refusal in a
    /// row, up to the healthy interval, instead of a reinstate every few milliseconds.
    @usableFromInline
    func kernelReportedFailure<S: EngineActionSink>(_ p: Int, nowNs: Nanoseconds, sink: inout S) {
        paths[p].kernelActive = false
        let m = paths[p].map.index
        maps[m].failbackDeadlineNs = Time.never
        rescheduleMapTimer(m)
        if maps[m].kernelGroup != 0 && !kernelGroupHasActivePath(m) { maps[m].kernelGroup = 0 }
        let since = paths[p].reinstatedAtNs
        if paths[p].state.wantsActiveInKernel && since != Time.never && nowNs >= since && nowNs - since < Self.kernelRefusalWindowNs {
            paths[p].kernelRefusals = min(paths[p].kernelRefusals &+ 1, 16)
            let policy = maps[m].policy
            let waitNs = min(policy.intervalFastNs << Nanoseconds(paths[p].kernelRefusals - 1), max(policy.intervalHealthyNs, policy.intervalFastNs))
            if !paths[p].checkInFlight { scheduleCheck(p, atNs: nowNs + waitNs) }
            return
        }
        if !paths[p].checkInFlight { scheduleCheck(p, atNs: nowNs) }
        probeSiblings(of: p, nowNs: nowNs)
        _ = sink
    }

    /// A usable path went away: cancel a deferred failback, and start no_path_retry's count
    /// when it was the last one.
    @usableFromInline
    func pathLost<S: EngineActionSink>(_ p: Int, nowNs: Nanoseconds, sink: inout S) {
        let m = paths[p].map.index
        maps[m].failbackDeadlineNs = Time.never
        if maps[m].kernelGroup != 0 && !kernelGroupHasActivePath(m) { maps[m].kernelGroup = 0 }
        if usableCount(m) == 0 { afterLastUsableLost(m, nowNs: nowNs) }
        rescheduleMapTimer(m)
        _ = sink
    }

    @usableFromInline
    func afterLastUsableLost(_ m: Int, nowNs: Nanoseconds) {
        // Paths held back by flap damping are better than none: check them now, so a good one
        // is reinstated at once.
        var p = maps[m].firstPath
        while p >= 0 {
            let i = Int(p)
            if paths[i].state == .delayed && !paths[i].checkInFlight { scheduleCheck(i, atNs: nowNs) }
            p = paths[i].nextInMap
        }
        if case .retries(let n) = maps[m].policy.noPathRetry, !maps[m].recoveryExpired, maps[m].recoveryDeadlineNs == Time.never {
            maps[m].recoveryDeadlineNs = nowNs + Nanoseconds(n) * maps[m].policy.retryIntervalNs
            maps[m].statistics.countdownsBegun &+= 1
            maps[m].statistics.countdownSinceNs = nowNs
        }
        rescheduleMapTimer(m)
    }

    /// A path came back into service: leave no_path_retry recovery, restore queueing, fail back.
    @usableFromInline
    func pathGained<S: EngineActionSink>(_ p: Int, usableBefore: Int, nowNs: Nanoseconds, sink: inout S) {
        let m = paths[p].map.index
        if usableBefore == 0 {
            endCountdown(m, nowNs: nowNs)
            maps[m].recoveryDeadlineNs = Time.never
            maps[m].recoveryExpired = false
            ensureQueueing(m, sink: &sink)
        }
        evaluateFailback(m, returnedPath: p, nowNs: nowNs, sink: &sink)
        rescheduleMapTimer(m)
    }

    /// Failback policy: switch to the best usable group when the policy says so.
    @usableFromInline
    func evaluateFailback<S: EngineActionSink>(_ m: Int, returnedPath: Int, nowNs: Nanoseconds, sink: inout S) {
        guard maps[m].loaded else { return }
        // One group leaves the kernel nothing to choose.
        guard maps[m].groupCount > 1 else { return }
        let best = Grouping.bestGroup(self, map: m)
        guard best != 0, best != maps[m].kernelGroup else {
            if best == maps[m].kernelGroup { maps[m].failbackDeadlineNs = Time.never; rescheduleMapTimer(m) }
            return
        }
        switch maps[m].policy.failback {
        case .manual:
            // Never automatically, except that a map whose group is unknown (its group lost every
            // path) is told where to go, or the kernel would keep choosing on its own.
            if maps[m].kernelGroup == 0 && returnedPath >= 0 { switchGroup(m, to: best, sink: &sink) }
        case .immediate:
            switchGroup(m, to: best, sink: &sink)
        case .followover:
            guard returnedPath >= 0, Int(paths[returnedPath].group) + 1 == Int(best) else {
                if maps[m].kernelGroup == 0 && returnedPath >= 0 { switchGroup(m, to: best, sink: &sink) }
                return
            }
            if Grouping.usableCount(self, map: m, group: best) == 1 { switchGroup(m, to: best, sink: &sink) }
        case .deferred(let seconds):
            if maps[m].kernelGroup == 0 && returnedPath >= 0 {
                switchGroup(m, to: best, sink: &sink)
            } else if maps[m].failbackDeadlineNs == Time.never {
                maps[m].failbackDeadlineNs = nowNs + Nanoseconds(seconds) * Time.nsPerSecond
                rescheduleMapTimer(m)
            }
        }
    }

    @usableFromInline
    func mapTimerFired<S: EngineActionSink>(_ m: Int, nowNs: Nanoseconds, sink: inout S) {
        guard maps[m].inUse else { return }
        if nowNs >= maps[m].recoveryDeadlineNs {
            maps[m].recoveryDeadlineNs = Time.never
            endCountdown(m, nowNs: nowNs)
            if usableCount(m) == 0 {
                maps[m].statistics.countdownsExpired &+= 1
                maps[m].recoveryExpired = true
                ensureQueueing(m, sink: &sink)
            }
        }
        if nowNs >= maps[m].failbackDeadlineNs {
            maps[m].failbackDeadlineNs = Time.never
            let best = Grouping.bestGroup(self, map: m)
            if best != 0 && best != maps[m].kernelGroup { switchGroup(m, to: best, sink: &sink) }
        }
        rescheduleMapTimer(m)
    }

    @usableFromInline
    func pathTimerFired<S: EngineActionSink>(_ p: Int, nowNs: Nanoseconds, sink: inout S) {
        guard paths[p].inUse else { return }
        let policy = maps[paths[p].map.index].policy
        if paths[p].checkInFlight {
            // The backend never answered, not even with its own timeout: count it as a timeout,
            // orphan the request (a late answer carries a stale token) and go on.
            counters.checksTimedOutByEngine += 1
            paths[p].checkInFlight = false
            paths[p].checkToken = nextTokenValue()
            apply(result: .timeout, toPath: p, nowNs: nowNs, sink: &sink)
            return
        }
        let token = nextTokenValue()
        paths[p].checkInFlight = true
        paths[p].checkToken = token
        counters.checksSubmitted += 1
        // Guard: a check still in flight one fast interval after its own timeout is abandoned.
        pathTimers.schedule(p, atNs: nowNs + policy.checkTimeoutNs + policy.intervalFastNs)
        sink.perform(.check(CheckRequest(path: PathHandle(index: p), device: paths[p].descriptor.device, token: token, timeoutNs: policy.checkTimeoutNs)))
    }

    // MARK: - Kernel messages

    @usableFromInline
    func failInKernel<S: EngineActionSink>(_ p: Int, sink: inout S) {
        let m = paths[p].map.index
        guard paths[p].kernelActive else { return }
        paths[p].kernelActive = false
        guard maps[m].loaded else { return }
        counters.pathsFailed += 1
        sink.perform(.message(DMMessage(map: paths[p].map, kind: .failPath, device: paths[p].descriptor.device)))
    }

    @usableFromInline
    func reinstateInKernel<S: EngineActionSink>(_ p: Int, nowNs: Nanoseconds, sink: inout S) {
        let m = paths[p].map.index
        guard !paths[p].kernelActive else { return }
        paths[p].kernelActive = true
        guard maps[m].loaded else { return }
        paths[p].reinstatedAtNs = nowNs
        counters.pathsReinstated += 1
        sink.perform(.message(DMMessage(map: paths[p].map, kind: .reinstatePath, device: paths[p].descriptor.device)))
    }

    @usableFromInline
    func switchGroup<S: EngineActionSink>(_ m: Int, to group: UInt16, sink: inout S) {
        maps[m].kernelGroup = group
        maps[m].failbackDeadlineNs = Time.never
        guard maps[m].loaded else { return }
        counters.groupSwitches += 1
        maps[m].statistics.groupSwitches &+= 1
        sink.perform(.message(DMMessage(map: mapHandle(slot: m), kind: .switchGroup, group: group)))
    }

    /// Adds the countdown under way, if any, to the map's `total_q_time`.
    @usableFromInline
    func endCountdown(_ m: Int, nowNs: Nanoseconds) {
        let since = maps[m].statistics.countdownSinceNs
        guard since != Time.never else { return }
        maps[m].statistics.countdownNs &+= nowNs > since ? nowNs - since : 0
        maps[m].statistics.countdownSinceNs = Time.never
    }

    /// A map's statistics (zero for a handle not in use).
    @inlinable
    public func statistics(_ map: MapHandle) -> MapStatistics {
        isLive(map) ? maps[map.index].statistics : MapStatistics()
    }

    /// Whether the map should queue I/O when it has no path, by policy, operator and retry count.
    @inlinable
    func wantsQueueing(_ m: Int) -> Bool {
        maps[m].policy.noPathRetry.queuesInitially && !maps[m].operatorQueueingDisabled && !maps[m].recoveryExpired
    }

    @usableFromInline
    func ensureQueueing<S: EngineActionSink>(_ m: Int, sink: inout S) {
        let want = wantsQueueing(m)
        guard want != maps[m].kernelQueueing else { return }
        maps[m].kernelQueueing = want
        guard maps[m].loaded else { return }
        counters.queueingChanges += 1
        sink.perform(.message(DMMessage(map: mapHandle(slot: m), kind: want ? .queueIfNoPath : .failIfNoPath)))
    }

    // MARK: - Helpers

    @usableFromInline
    func setState<S: EngineActionSink>(_ p: Int, _ state: PathState, sink: inout S) {
        let old = paths[p].state
        guard old != state else { return }
        paths[p].state = state
        sink.perform(.transition(PathHandle(index: p), device: paths[p].descriptor.device, from: old, to: state))
    }

    /// A healthy path's next check: its interval less a fixed per-path share of up to an eighth
    /// of it, so paths added together do not stay checked together (no check storms).
    @usableFromInline
    func scheduleHealthyCheck(_ p: Int, nowNs: Nanoseconds) {
        var interval = paths[p].intervalNs
        let cap = maps[paths[p].map.index].policy.healthyChecksPerSecondMax
        if cap > 0 {
            // The host-wide rate cap: with more paths than the cap allows at this interval, every
            // healthy path waits its share (pathCount / cap seconds).
            interval = max(interval, Nanoseconds(pathCount) * Time.nsPerSecond / Nanoseconds(cap))
        }
        let spread = interval / 8
        let share = Nanoseconds(KeyIndex.hash(UInt64(p)) & 0xff)
        scheduleCheck(p, atNs: nowNs + interval - spread * share / 256)
    }

    @usableFromInline
    func scheduleCheck(_ p: Int, atNs: Nanoseconds) {
        paths[p].nextDueNs = atNs
        pathTimers.schedule(p, atNs: atNs)
    }

    /// Makes every path behind the same host/target port due now: a port failure rarely hits
    /// one LUN only.
    @usableFromInline
    func probeSiblings(of p: Int, nowNs: Nanoseconds) {
        guard let head = portHeads.find(UInt64(paths[p].descriptor.portKey)) else { return }
        var s = Int32(head)
        while s >= 0 {
            let i = Int(s)
            if i != p && !paths[i].checkInFlight && paths[i].nextDueNs > nowNs { scheduleCheck(i, atNs: nowNs) }
            s = paths[i].nextInPort
        }
    }

    @usableFromInline
    func nextTokenValue() -> UInt32 {
        nextToken &+= 1
        if nextToken == 0 { nextToken = 1 }
        return nextToken
    }

    @usableFromInline
    func usableCount(_ m: Int) -> Int {
        var n = 0
        var p = maps[m].firstPath
        while p >= 0 {
            if paths[Int(p)].isUsable { n += 1 }
            p = paths[Int(p)].nextInMap
        }
        return n
    }

    @usableFromInline
    func kernelGroupHasActivePath(_ m: Int) -> Bool {
        let g = Int(maps[m].kernelGroup) - 1
        var p = maps[m].firstPath
        while p >= 0 {
            let i = Int(p)
            if Int(paths[i].group) == g && paths[i].kernelActive && paths[i].isUsable { return true }
            p = paths[i].nextInMap
        }
        return false
    }

    @usableFromInline
    func rescheduleMapTimer(_ m: Int) {
        let next = min(maps[m].recoveryDeadlineNs, maps[m].failbackDeadlineNs)
        if next == Time.never { mapTimers.cancel(m) } else if mapTimers.deadline(of: m) != next { mapTimers.schedule(m, atNs: next) }
    }

    /// Asks for the map's table again without changing its layout: a load that failed (EBUSY,
    /// ENOMEM, EINVAL) is retried by the control plane this way, with the engine's latest layout.
    public func requestReload(_ map: MapHandle) throws(EngineRefusal) {
        guard isLive(map) else { throw .unknownMap(map) }
        let m = map.index
        if !maps[m].needsReload {
            maps[m].needsReload = true
            reloadQueue[reloadCount] = Int32(m)
            reloadCount += 1
        }
    }

    @usableFromInline
    func regroup(_ m: Int) {
        Grouping.assign(self, map: m)
        if !maps[m].needsReload {
            maps[m].needsReload = true
            reloadQueue[reloadCount] = Int32(m)
            reloadCount += 1
        }
    }

    @usableFromInline
    func unlinkPath(_ p: Int) {
        let m = paths[p].map.index
        let n = paths[p].nextInMap, pr = paths[p].prevInMap
        if pr >= 0 { paths[Int(pr)].nextInMap = n } else { maps[m].firstPath = n }
        if n >= 0 { paths[Int(n)].prevInMap = pr }
        maps[m].pathCount -= 1
        let portKey = UInt64(paths[p].descriptor.portKey)
        let pn = paths[p].nextInPort, pp = paths[p].prevInPort
        if pp >= 0 {
            paths[Int(pp)].nextInPort = pn
        } else if pn >= 0 {
            portHeads.set(portKey, Int(pn))
        } else {
            portHeads.remove(portKey)
        }
        if pn >= 0 { paths[Int(pn)].prevInPort = pp }
        devices.remove(paths[p].descriptor.device.key)
        pathTimers.cancel(p)
        paths[p].inUse = false
        paths[p].nextFree = freePathHead
        freePathHead = Int32(p)
        pathCount -= 1
    }

    @usableFromInline
    func pathIndex(_ device: DevNo, in map: MapHandle) -> Int? {
        guard let p = devices.find(device.key), paths[p].map == map else { return nil }
        return p
    }

    @inlinable func isLive(_ map: MapHandle) -> Bool {
        map.index < mapCapacity && maps[map.index].inUse && maps[map.index].generation == map.generation
    }

    /// The handle of the map in slot `slot` now (its index and the slot's generation).
    @inlinable public func mapHandle(slot: Int) -> MapHandle {
        slot >= 0 && slot < mapCapacity ? MapHandle(index: slot, generation: maps[slot].generation) : MapHandle(index: slot)
    }
    @inlinable func isLive(_ path: PathHandle) -> Bool { path.index < pathCapacity && paths[path.index].inUse }
}

/// The engine's per-path and per-map tables, reserved for the ceilings and committed as the host
/// grows. `prepare` runs on the thread that grows tables (committing memory may wait on the
/// kernel); the engine's owner then `adopt`s the new handles between passes.
public final class EngineArenas: @unchecked Sendable {
    public let capacities: Capacities
    @usableFromInline let paths: Table<PathRecord>
    @usableFromInline let maps: Table<MapRecord>
    let pathWheel: TimerWheel.Entries
    let mapWheel: TimerWheel.Entries
    @usableFromInline let dueScratch: Table<Int32>
    @usableFromInline let reloadQueue: Table<Int32>
    /// The recovery loop's completion and check buffers, one entry per path.
    public let completions: Table<CheckCompletion>
    public let checks: Table<CheckRequest>
    /// Paths and maps prepared so far (written by the preparing thread only; the count reaches
    /// the owner with the request to adopt it).
    public private(set) var preparedPaths = 0
    public private(set) var preparedMaps = 0

    init(capacities: Capacities, memory: TableMemory) {
        self.capacities = capacities
        paths = Table(ceiling: capacities.pathsMax, memory: memory)
        maps = Table(ceiling: capacities.mapsMax, memory: memory)
        pathWheel = TimerWheel.Entries(ceiling: capacities.pathsMax, memory: memory)
        mapWheel = TimerWheel.Entries(ceiling: capacities.mapsMax, memory: memory)
        dueScratch = Table(ceiling: max(capacities.pathsMax, capacities.mapsMax), memory: memory)
        reloadQueue = Table(ceiling: capacities.mapsMax, memory: memory)
        completions = Table(ceiling: capacities.pathsMax, memory: memory)
        checks = Table(ceiling: capacities.pathsMax, memory: memory)
    }

    /// Commits and clears the tables for `paths` paths and `maps` maps (clamped to the ceilings).
    /// Handles past what the engine has adopted are never touched by its owner.
    public func prepare(paths newPaths: Int, maps newMaps: Int) {
        let p = min(newPaths, capacities.pathsMax), m = min(newMaps, capacities.mapsMax)
        if p > preparedPaths {
            paths.prepare(from: preparedPaths, to: p, value: PathRecord())
            pathWheel.prepare(upTo: p)
            completions.memory.commit(completions.base, from: preparedPaths, to: p)
            checks.memory.commit(checks.base, from: preparedPaths, to: p)
        }
        if m > preparedMaps {
            maps.prepare(from: preparedMaps, to: m, value: MapRecord())
            mapWheel.prepare(upTo: m)
            reloadQueue.prepare(from: preparedMaps, to: m, value: -1)
        }
        let oldScratch = max(preparedPaths, preparedMaps), newScratch = max(max(p, preparedPaths), max(m, preparedMaps))
        dueScratch.prepare(from: oldScratch, to: newScratch, value: -1)
        preparedPaths = max(p, preparedPaths)
        preparedMaps = max(m, preparedMaps)
    }

    /// Committed bytes for each path and each map.
    public static let bytesPerPath = MemoryLayout<PathRecord>.stride + TimerWheel.Entries.bytesPerId + MemoryLayout<Int32>.stride
        + MemoryLayout<CheckCompletion>.stride + MemoryLayout<CheckRequest>.stride
    public static let bytesPerMap = MemoryLayout<MapRecord>.stride + TimerWheel.Entries.bytesPerId + 2 * MemoryLayout<Int32>.stride
}
