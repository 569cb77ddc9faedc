// One seeded run: keeld's recovery service (rings, reload hand-off, state board, topology inputs)
// around the engine, against the simulated world, invariants every step.
import Glibc
import KeelCore
import KeelLinux
import KeelSim

/// The recovery service's log in a run: what the invariants and the narration need.
struct RunOutput: RecoveryOutput {
    /// Paths the engine just put back into service (transition to up/ghost).
    var usable: [PathHandle] = []
    var messagesRefused = 0
    /// Devices Keel sent `fail_path` for since the runner last looked.
    var failed: [DevNo] = []
    var transitions = 0
    var narration: [String]? = nil

    mutating func record(_ record: RecoveryRecord, nowNs: Nanoseconds) {
        switch record {
        case .reloadRequested(let map):
            narration?.append("\(stamp(nowNs)) engine: table reload of \(map) requested")
        case .messageSent(let message, let errno):
            if errno != 0 { messagesRefused += 1 }
            if errno == 0 && message.kind == .failPath { failed.append(message.device) }
            narration?.append("\(stamp(nowNs)) engine -> kernel: \(message)\(errno == 0 ? "" : " (errno \(errno))")")
        case .transition(let path, _, let from, let to):
            transitions += 1
            if to.wantsActiveInKernel { usable.append(path) }
            narration?.append("\(stamp(nowNs)) \(path): \(from) -> \(to)")
        case .checkRefused(let path, _):
            narration?.append("\(stamp(nowNs)) check of \(path) refused by the checker (no slot)")
        }
    }
}

/// `12.345s`
func stamp(_ ns: Nanoseconds) -> String {
    let ms = ns / Time.nsPerMs
    let frac = ms % 1000
    return "\(ms / 1000).\(frac < 10 ? "00" : frac < 100 ? "0" : "")\(frac)s"
}

/// The figures of one run.
struct RunResult {
    var violations: [String] = []
    var resumeLatency = Distribution()
    var reinstateLatency = Distribution()
    var ioCompleted = 0
    var ioErrors = 0
    var lostWrites = 0
    var corruptions = 0
    var messages = 0
    var checks = 0
    var reloads = 0
    var reloadsRefused = 0
    /// Times the input ring was full and the sender waited for the recovery thread.
    var ringFull = 0
    var delayedHolds = 0
    var steps = 0
    /// Times the tables grew for a hot-added path (TableGrowth, as keeld's events thread does).
    var tableGrowths = 0
    var ueventsLost = 0
    var rediscoveries = 0
    /// Paths rediscovery added (their `add` was lost, or a late addition was undone).
    var rediscovered = 0
    var topologyTimeouts = 0
    var undoneAdds = 0
}

/// Drives one seeded scenario: a control plane (tables, topology, status resync) around keeld's
/// own recovery service, the world, and the invariants. The recovery service, its rings, the
/// reload hand-off, the state board and the reload retry schedule are the daemon's code; the
/// doorbells are real eventfds that nobody waits on (the run steps the service itself).
final class TortureRun {
    let scenario: Scenario
    let seed: UInt64
    let plan: ScenarioPlan
    let world: SimWorld
    let engine: Engine
    let configuration: Configuration
    var service: RecoveryService<SimChecker, SimMessenger, RunOutput>
    let inputs: MPSCRing<RecoveryInput>
    let topologyReplies: SPSCRing<TopologyReply>
    /// Answers to operator commands, as keeld's control thread reads them.
    let commandReplies: SPSCRing<CommandReply>
    /// Paths failed by an operator command and not reinstated since: never in service.
    var operatorFailed: Set<DevNo> = []
    var nextOperatorStep = 0
    var commandTickets: UInt32 = 0
    let reloads: ReloadHandoff
    /// Grows the engine and board when a hot-added path finds the tables full: the run starts
    /// them at exactly the world's paths and maps, so every hot-add exercises keeld's growth.
    let growth: TableGrowth
    var reloadRetries = ReloadRetries()
    /// Topology requests as keeld's events thread makes them (tickets, timeouts, late answers).
    var requests = TopologyRequests()
    /// The control plane's own view of the paths it assembled (keeld's assembler): each has a
    /// checker. Must agree with the engine's at the end of the run.
    var assembled: [DevNo: PathHandle] = [:]
    /// Draws for the control plane's faults (lost uevents, topology answers too late).
    var controlRandom: SimRandom
    var nextRediscoveryNs: Nanoseconds = Rediscovery.intervalNs
    var overflowPending = false
    var profiles: [MapHandle: MapProfile] = [:]
    var result = RunResult()
    /// Paths whose health returned to up, waiting for the kernel to route to them again.
    var returning: [DevNo: (sinceNs: Nanoseconds, boundNs: Nanoseconds)] = [:]
    var resumeWatches: [CompletionWatch] = []
    let fastNs: Nanoseconds
    let resyncEveryNs: Nanoseconds = Time.nsPerSecond

    init(scenario: Scenario, seed: UInt64, narrate: Bool) throws(TortureSetupError) {
        self.scenario = scenario
        self.seed = seed
        plan = scenario.plan(seed)
        controlRandom = SimRandom(seed: seed, stream: 900)
        switch Configuration.load(files: [(name: "\(scenario.name).conf", text: plan.configuration)]) {
        case .success(let loaded): configuration = loaded.configuration
        case .failure(let error): throw TortureSetupError(message: "configuration: \(error)")
        }
        world = SimWorld(seed: seed, fabric: plan.fabric, workload: plan.workload, options: plan.options)
        var capacities = configuration.capacities
        capacities.pathsMax = max(capacities.pathsMax, plan.fabric.pathCount)
        // The tables start short of the world's paths by `ringAdded` (at most 64, half of a
        // small world): those paths arrive through the input ring after setup, as paths found
        // after start do, find the table full and make the run grow it the way keeld does.
        let pathTotal = world.maps.reduce(0) { $0 + $1.paths.count }
        let ringAdded = min(64, pathTotal / 2)
        let initial = (paths: max(1, pathTotal - ringAdded), maps: max(1, world.maps.count))
        engine = Engine(capacities: capacities, initial: initial)
        var output = RunOutput()
        if narrate { output.narration = [] }
        let board = StateBoard(pathsMax: capacities.pathsMax, mapsMax: capacities.mapsMax, initial: initial)
        growth = TableGrowth(ceilings: capacities, paths: initial.paths, maps: initial.maps, preparers: [
            { [arenas = engine.arenas] paths, maps in arenas.prepare(paths: paths, maps: maps) },
            { [board] paths, maps in board.prepare(paths: paths, maps: maps) },
        ])
        do {
            inputs = MPSCRing(capacity: capacities.ringSlots)
            topologyReplies = SPSCRing(capacity: 64)
            commandReplies = SPSCRing(capacity: 64)
            reloads = ReloadHandoff(mapsMax: capacities.mapsMax, pathsPerMapMax: capacities.pathsPerMapMax, doorbell: try EventFD())
            let daemonOutput = DaemonRecoveryOutput(log: output, engine: engine, board: board, reloads: reloads)
            let loop = RecoveryLoop(engine: engine, checker: world.checker, messenger: world.messenger, output: daemonOutput)
            service = RecoveryService(loop: loop, inputs: inputs, inputDoorbell: try EventFD(), replies: commandReplies,
                                      replyDoorbell: try EventFD(), topologyReplies: topologyReplies, topologyDoorbell: try EventFD())
        } catch {
            throw TortureSetupError(message: "daemon plumbing: \(error)")
        }
        fastNs = Nanoseconds(configuration.fastProbeIntervalMs) * Time.nsPerMs
        var late: [(PathDescriptor, MapHandle)] = []
        for info in world.maps {
            let profile = configuration.profile(wwid: "keel-lun-\(info.lun)", vendor: "KEEL", product: "SIMULATED")
            let map: MapHandle
            do { map = try engine.addMap(policy: profile.policy) } catch { throw TortureSetupError(message: "addMap: \(error)") }
            guard map == info.map else { throw TortureSetupError(message: "engine map \(map) is not world map \(info.map)") }
            profiles[map] = profile
            for path in info.paths {
                if engine.pathCount >= initial.paths {
                    late.append((path.descriptor, map))
                    continue
                }
                do { assembled[path.device] = try engine.addPath(path.descriptor, to: map, nowNs: 0) } catch { throw TortureSetupError(message: "addPath: \(error)") }
            }
        }
        for (descriptor, map) in late {
            guard addThroughRing(descriptor, to: map, nowNs: 0, mayTimeOut: false) else {
                throw TortureSetupError(message: "late addPath \(descriptor.device): refused after growth")
            }
        }
    }

    /// Adds a path as keeld's events thread does: through the input ring, growing every table
    /// (`TableGrowth`, then `.adopt` through the ring) when the engine answers that its table is
    /// full. Returns whether the engine took the path (it is then assembled).
    @discardableResult
    func addThroughRing(_ descriptor: PathDescriptor, to map: MapHandle, nowNs: Nanoseconds, mayTimeOut: Bool = true) -> Bool {
        var reply = askTopology({ .addPath(descriptor, map, ticket: $0) }, nowNs: nowNs, mayTimeOut: mayTimeOut)
        if reply?.errno == ENOBUFS, let grown = growth.grow(paths: true, maps: false) {
            narrate("tables grown to \(grown.paths) paths")
            result.tableGrowths += 1
            send(.adopt(paths: Int32(grown.paths), maps: Int32(grown.maps)), nowNs: nowNs)
            reply = askTopology({ .addPath(descriptor, map, ticket: $0) }, nowNs: nowNs, mayTimeOut: mayTimeOut)
        }
        guard let reply, reply.errno == 0 else { return false }
        assembled[descriptor.device] = reply.path
        return true
    }

    var narration: [String] { service.loop.output.log.narration ?? [] }

    func narrate(_ line: @autoclosure () -> String) {
        if service.loop.output.log.narration != nil { service.loop.output.log.narration!.append("\(stamp(world.nowNs)) \(line())") }
    }

    /// The recovery thread's next deadline: now while inputs wait in its ring.
    var recoveryDeadlineNs: Nanoseconds { inputs.count > 0 ? 0 : service.loop.nextDeadlineNs() }

    /// Pushes one input as keeld's threads do (`DaemonShared.send`): while the ring is full the
    /// sender waits for the recovery thread, here by running its pass.
    func send(_ input: RecoveryInput, nowNs: Nanoseconds) {
        while !inputs.push(input) {
            result.ringFull += 1
            service.pass(nowNs: nowNs)
        }
    }

    /// Asks the recovery thread to change the topology and waits for its answer with keeld's
    /// `TopologyRequests`. The answer comes within a pass here, unless the scenario draws a
    /// timeout: then the asker gives up before the recovery thread runs, and the answer comes late.
    func askTopology(_ make: (UInt32) -> RecoveryInput, nowNs: Nanoseconds, mayTimeOut: Bool = true) -> TopologyReply? {
        let timesOut = mayTimeOut && nowNs < plan.quietFromNs && plan.topologyTimeoutPerMillion > 0
            && controlRandom.chance(perMillion: plan.topologyTimeoutPerMillion)
        var passes = 0
        let reply = requests.ask(make, send: { send($0, nowNs: nowNs) }, nextReply: { topologyReplies.pop() }, wait: {
            guard !timesOut, passes < 4 else { return false }
            passes += 1
            service.pass(nowNs: nowNs)
            return true
        })
        if reply == nil {
            result.topologyTimeouts += 1
            narrate("control: topology request given up (no answer in time)")
        }
        return reply
    }

    /// Late topology answers, every step (keeld's events thread does it every turn).
    func settleLateReplies(nowNs: Nanoseconds) {
        requests.settleLate(nextReply: { topologyReplies.pop() }, send: { send($0, nowNs: nowNs) })
    }

    /// keeld's rediscovery: the world's present devices against the assembled ones, repaired
    /// both ways. Runs after a noticed uevent overflow and every `Rediscovery.intervalNs`.
    func rediscover(nowNs: Nanoseconds) {
        var present: [DevNo: MapHandle] = [:]
        for info in world.maps { for path in info.paths { present[path.device] = info.map } }
        let differences = Rediscovery.differences(present: Set(present.keys), assembled: Set(assembled.keys))
        result.rediscoveries += 1
        for device in differences.gone {
            narrate("rediscovery: \(device) is gone")
            removeAssembled(device, nowNs: nowNs)
        }
        for device in differences.added {
            narrate("rediscovery: \(device) is new")
            result.rediscovered += 1
            guard let map = present[device], let info = world.pathInfo(device) else { continue }
            let descriptor = PathDescriptor(device: device, priority: Int32(world.priority(of: device)),
                                            portKey: info.portKey, serialKey: info.serialKey, nodeKey: info.nodeKey)
            if !addThroughRing(descriptor, to: map, nowNs: nowNs) && plan.topologyTimeoutPerMillion == 0 {
                violate("rediscovery: addPath \(device) refused")
            }
        }
    }

    /// The control plane forgets an assembled path and asks the engine to remove it.
    func removeAssembled(_ device: DevNo, nowNs: Nanoseconds) {
        guard let p = assembled.removeValue(forKey: device) else { return }
        let reply = askTopology({ .removePath(p, ticket: $0) }, nowNs: nowNs)
        if let reply, reply.errno != 0 { violate("removePath \(p): errno \(reply.errno)") }
        if reply == nil && plan.topologyTimeoutPerMillion == 0 { violate("removePath \(p): no answer") }
    }

    /// Runs the whole scenario and returns its figures and any invariant violations.
    func run() -> RunResult {
        world.schedule(plan.script)
        var nowNs: Nanoseconds = 0
        var nextResyncNs = resyncEveryNs
        var stalledSteps = 0
        if let first = plan.firstReturnNs {
            for info in world.maps { resumeWatches.append(world.watchFirstCompletion(map: info.map, atOrAfterNs: first, issuedBefore: true)) }
        }
        service.pass(nowNs: 0)
        serviceReloads(nowNs: 0)
        while nowNs < plan.endNs {
            let nextOperatorNs = nextOperatorStep < plan.operatorSteps.count ? plan.operatorSteps[nextOperatorStep].atNs : plan.endNs
            var next = min(world.nextEventNs(), recoveryDeadlineNs, nextResyncNs, reloadRetries.nextDueNs(), nextRediscoveryNs, nextOperatorNs, plan.endNs)
            if next <= nowNs {
                next = nowNs
                stalledSteps += 1
                if stalledSteps > 100_000 { violate("livelock: 100,000 steps without time moving at \(stamp(nowNs))"); break }
            } else {
                stalledSteps = 0
            }
            world.advance(toNs: next)
            nowNs = next
            result.steps += 1
            var delivered = false
            world.drainKernelEvents { event in delivered = true; send(.kernel(event), nowNs: nowNs) }
            world.drainTopologyChanges { change in
                delivered = true
                // A uevent lost in the monitor's receive buffer: most losses are noticed
                // (ENOBUFS on the next read), the rest wait for the periodic rediscovery.
                if plan.ueventLossPerMillion > 0 && controlRandom.chance(perMillion: plan.ueventLossPerMillion) {
                    result.ueventsLost += 1
                    narrate("uevent lost: \(change.kind) \(change.device)")
                    if controlRandom.chance(perMillion: 700_000) { overflowPending = true }
                    return
                }
                applyTopology(change, nowNs: nowNs)
            }
            settleLateReplies(nowNs: nowNs)
            if overflowPending || nowNs >= nextRediscoveryNs {
                if overflowPending { narrate("uevent overflow noticed: rediscovery") }
                overflowPending = false
                rediscover(nowNs: nowNs)
                nextRediscoveryNs = nowNs + Rediscovery.intervalNs
            }
            world.drainHealthChanges { change in noteHealth(change, nowNs: nowNs) }
            runOperatorSteps(nowNs: nowNs)
            // Most world events are I/O the engine does not see; step it only when it has work,
            // as the daemon's recovery thread sleeps until a completion, an input or a deadline.
            if delivered || world.checksWaitingForReap > 0 || recoveryDeadlineNs <= nowNs {
                service.pass(nowNs: nowNs)
            }
            serviceReloads(nowNs: nowNs)
            if nowNs >= nextResyncNs {
                resync(nowNs: nowNs)
                nextResyncNs = nowNs + resyncEveryNs
                checkBounds(nowNs: nowNs)
            }
            checkReturned(nowNs: nowNs)
            checkNeverFailed()
        }
        finish(nowNs: nowNs)
        return result
    }

    // MARK: - Control plane

    /// Loads every table the recovery service handed over (a ticket and a layout snapshot, as
    /// keeld's events thread gets them), answers `tableLoaded` and `reloadDone` through the ring,
    /// and asks again for loads that failed, with keeld's retry schedule.
    func serviceReloads(nowNs: Nanoseconds) {
        for map in reloadRetries.takeDue(nowNs: nowNs) {
            narrate("control: asking again for the table of \(map) (attempt \(reloadRetries.attempts(map) + 1))")
            send(.requestReload(map), nowNs: nowNs)
            service.pass(nowNs: nowNs)
        }
        while let ticket = reloads.ring.pop() {
            let map = ticket.map
            let snapshot = reloads.snapshot(ticket)
            let layout = snapshot.layout()
            if let profile = profiles[map], !layout.isEmpty {
                let table = TableBuilder.table(layout: layout, profile: profile, initialGroup: snapshot.initialGroup)
                let errno = world.load(table, map: map)
                result.reloads += 1
                narrate("control: load \(map) table with \(layout.count) groups, \(layout.reduce(0) { $0 + $1.count }) paths\(errno == 0 ? "" : " REFUSED errno \(errno)")")
                if errno == 0 {
                    reloadRetries.loaded(map)
                    send(.tableLoaded(map, initialGroup: UInt16(table.initialGroup), queueing: table.queueIfNoPath), nowNs: nowNs)
                } else {
                    result.reloadsRefused += 1
                    reloadRetries.failed(map, nowNs: nowNs)
                }
            }
            send(.reloadDone(ticket), nowNs: nowNs)
            service.pass(nowNs: nowNs)
        }
    }

    func applyTopology(_ change: SimTopologyChange, nowNs: Nanoseconds) {
        switch change.kind {
        case .removed:
            narrate("uevent: remove \(change.device)")
            removeAssembled(change.device, nowNs: nowNs)
            returning[change.device] = nil
        case .added:
            narrate("uevent: add \(change.device)")
            // Its remove was lost: the path is still assembled, and its checker will find it.
            guard assembled[change.device] == nil else { return }
            guard let info = world.pathInfo(change.device) else { return }
            let descriptor = PathDescriptor(device: change.device, priority: Int32(world.priority(of: change.device)),
                                            portKey: info.portKey, serialKey: info.serialKey, nodeKey: info.nodeKey)
            if !addThroughRing(descriptor, to: change.map, nowNs: nowNs) && plan.topologyTimeoutPerMillion == 0 {
                violate("addPath \(change.device): refused or no answer")
            }
        }
    }

    /// Sends the operator commands due now through the input ring, as keeld's control thread
    /// does, and reads their answers. A path failed by hand leaves the reinstatement watch; one
    /// reinstated by hand while healthy joins it (the checker decides, within the fast probe).
    func runOperatorSteps(nowNs: Nanoseconds) {
        while nextOperatorStep < plan.operatorSteps.count && plan.operatorSteps[nextOperatorStep].atNs <= nowNs {
            let step = plan.operatorSteps[nextOperatorStep]
            nextOperatorStep += 1
            let command: OperatorCommand
            switch step.action {
            case .failPath(let device), .reinstatePath(let device):
                guard let p = assembled[device] else { violate("operator: \(device) is not assembled"); continue }
                if case .failPath = step.action {
                    command = .failPath(p)
                    operatorFailed.insert(device)
                    returning[device] = nil
                } else {
                    command = .reinstatePath(p)
                    // Reinstating a path not failed by hand changes nothing (it may be in service).
                    if operatorFailed.remove(device) != nil && world.expectedCheckResult(of: device) == .up {
                        returning[device] = (nowNs, fastNs + plan.options.checkLatencyMaxNs + 2 * Time.nsPerMs)
                    }
                }
            case .switchGroup(let map, let group): command = .switchGroup(world.maps[map].map, group: group)
            case .disableQueueing(let map): command = .disableQueueing(world.maps[map].map)
            case .restoreQueueing(let map): command = .restoreQueueing(world.maps[map].map)
            }
            commandTickets &+= 1
            narrate("operator: \(command)")
            send(.command(command, ticket: commandTickets), nowNs: nowNs)
            service.pass(nowNs: nowNs)
            serviceReloads(nowNs: nowNs)
            while let reply = commandReplies.pop() {
                let acceptable: Bool
                switch (command, reply.outcome) {
                case (_, .done), (.switchGroup, .noSuchGroup): acceptable = true
                default: acceptable = false
                }
                if !acceptable { violate("operator: \(command) answered \(reply.outcome)") }
            }
        }
    }

    /// A fault step changed what a path's check would say. Priorities go to the engine as a
    /// prioritizer run would; a path that is healthy again must be back in the kernel in time.
    func noteHealth(_ change: SimHealthChange, nowNs: Nanoseconds) {
        narrate("fault: \(change.device) now \(change.to)\(change.priorityFrom != change.priorityTo ? ", prio \(change.priorityTo)" : "")")
        if change.priorityFrom != change.priorityTo, let p = engine.pathHandle(for: change.device) {
            send(.setPriority(p, Int32(change.priorityTo)), nowNs: nowNs)
        }
        let usable = change.to == .up || change.to == .ghost
        if operatorFailed.contains(change.device) { return }   // out of service until reinstated by hand
        let inService = engine.pathHandle(for: change.device).flatMap { engine.path($0) }.map {
            $0.state.wantsActiveInKernel && world.target.isActive($0.map, device: change.device) == true
        } ?? false
        if usable && !inService && !(change.from == .up || change.from == .ghost) && !plan.dampedDevices.contains(change.device) {
            // A check in flight when the path came back answers up; a lost (hung) check holds
            // the path until its timeout, then the next fast probe finds it.
            let checkTimeoutNs = profiles.values.first?.policy.checkTimeoutNs ?? 0
            let hungWait = change.from == .timeout ? checkTimeoutNs + fastNs : 0
            let bound = hungWait + fastNs + plan.options.checkLatencyMaxNs + 2 * Time.nsPerMs
            returning[change.device] = (nowNs, bound)
        } else if !usable {
            returning[change.device] = nil
        }
    }

    /// Repairs whatever events were missed: the kernel's status of every map goes to the engine.
    func resync(nowNs: Nanoseconds) {
        for info in world.maps {
            world.statusRecords(info.map) { event in send(.kernel(event), nowNs: nowNs) }
        }
        service.pass(nowNs: nowNs)
        serviceReloads(nowNs: nowNs)
    }

    // MARK: - Invariants

    func violate(_ what: String) {
        if result.violations.count < 20 { result.violations.append("\(stamp(world.nowNs)) \(what)") }
    }

    /// Returned paths the engine put back into service: record how long it took, once the
    /// kernel routes to them.
    func checkReturned(nowNs: Nanoseconds) {
        guard !service.loop.output.log.usable.isEmpty else { return }
        let usable = service.loop.output.log.usable
        service.loop.output.log.usable.removeAll(keepingCapacity: true)
        guard !returning.isEmpty else { return }
        for p in usable {
            guard let view = engine.path(p), let since = returning[view.descriptor.device] else { continue }
            if world.target.isActive(view.map, device: view.descriptor.device) == true {
                result.reinstateLatency.add(nowNs - since.sinceNs)
                returning[view.descriptor.device] = nil
            }
        }
    }

    /// A path that answers throughout is never failed by Keel (a hung neighbour must not cost it
    /// its checks).
    func checkNeverFailed() {
        guard !service.loop.output.log.failed.isEmpty else { return }
        for device in service.loop.output.log.failed where plan.alwaysAnswering.contains(device) {
            violate("\(device) answers throughout but Keel sent fail_path for it")
        }
        service.loop.output.log.failed.removeAll(keepingCapacity: true)
    }

    /// The bounds that must hold at every resync.
    func checkBounds(nowNs: Nanoseconds) {
        for device in operatorFailed {
            guard let p = assembled[device], let view = engine.path(p) else { continue }
            if view.state != .operatorFailed || world.target.isActive(view.map, device: device) == true {
                violate("\(device) was failed by the operator but engine says \(view.state), kernel says \(world.target.isActive(view.map, device: device).map { $0 ? "A" : "F" } ?? "absent")")
            }
        }
        for (device, since) in returning where nowNs - since.sinceNs > since.boundNs {
            // Standby (ghost) paths may be failed again by I/O the kernel sends them; only up paths count.
            guard world.expectedCheckResult(of: device) == .up else { continue }
            violate("\(device) healthy since \(stamp(since.sinceNs)) but not reinstated after \(formatMs(nowNs - since.sinceNs)) ms (bound \(formatMs(since.boundNs)) ms)")
            returning[device] = nil
        }
    }

    /// End of run: data integrity, resume latency, and the engine's view against the kernel's.
    func finish(nowNs: Nanoseconds) {
        resync(nowNs: nowNs)
        checkBounds(nowNs: nowNs)
        settleLateReplies(nowNs: nowNs)
        result.undoneAdds = requests.undoneAdds
        let stats = world.workload.total
        result.ioCompleted = stats.completed
        result.ioErrors = stats.ioErrors
        result.lostWrites = stats.lostWrites
        result.corruptions = stats.corruptions
        result.messages = world.counters.messages
        result.checks = world.checkCounters.submitted
        if stats.ioErrors > 0 && profiles.values.allSatisfy({ $0.policy.noPathRetry == .queue }) {
            let first = world.workload.anomalies.first.map { "\($0.kind) on \($0.map) block \($0.block) at \(stamp($0.timeNs))" } ?? "?"
            violate("\(stats.ioErrors) I/O errors under no_path_retry queue (first: \(first))")
        }
        if stats.lostWrites > 0 { violate("\(stats.lostWrites) lost writes") }
        if stats.corruptions > 0 { violate("\(stats.corruptions) corrupted reads") }
        if stats.completed == 0 { violate("no I/O completed at all") }
        // Resume after an all-paths-down window.
        if let first = plan.firstReturnNs {
            let bound = fastNs + plan.options.checkLatencyMaxNs + plan.options.ioLatencyMaxNs + 2 * Time.nsPerMs
            for watch in resumeWatches {
                guard let done = world.firstCompletionNs(watch) else { violate("queued I/O never resumed after the first path returned at \(stamp(first))"); continue }
                let latency = done - first
                result.resumeLatency.add(latency)
                if latency > bound { violate("queued I/O resumed \(formatMs(latency)) ms after the first path returned (bound \(formatMs(bound)) ms)") }
            }
        }
        // Convergence: after the quiet period the engine and the kernel agree on every path.
        guard nowNs >= plan.quietFromNs + 10 * Time.nsPerSecond else { return }
        for info in world.maps {
            let present = Set(info.paths.map(\.device))
            let knownHandles = engine.pathHandles(of: info.map)
            let known = Set(knownHandles.compactMap { engine.path($0)?.descriptor.device })
            if present != known { violate("\(info.map): engine knows \(known.count) paths, the world has \(present.count)") }
            // No path in the engine without a checker (assembled), none assembled outside the engine.
            for p in knownHandles {
                guard let device = engine.path(p)?.descriptor.device else { continue }
                if assembled[device] != p { violate("\(info.map): \(device) is in the engine as \(p) but assembled as \(assembled[device].map { "\($0)" } ?? "nothing")") }
            }
            for path in info.paths where assembled[path.device] != nil && !known.contains(path.device) {
                violate("\(info.map): \(path.device) is assembled but not in the engine")
            }
            // The kernel's table holds the engine's layout (failed loads were retried).
            for device in known where world.target.isActive(info.map, device: device) == nil {
                violate("\(info.map): \(device) is in the engine but not in the kernel's table")
            }
            for path in info.paths {
                guard let p = engine.pathHandle(for: path.device), let view = engine.path(p) else { continue }
                let expected = world.expectedCheckResult(of: path.device)
                if view.state == .delayed { result.delayedHolds += 1 }
                let kernel = world.target.isActive(info.map, device: path.device)
                if operatorFailed.contains(path.device) { continue }   // checkBounds holds them out
                if expected == .up && (view.state != .up || kernel != true) {
                    violate("\(path.device) is healthy but engine says \(view.state), kernel says \(kernel.map { $0 ? "A" : "F" } ?? "absent")")
                }
                if (expected == .down || expected == .timeout) && (view.state.wantsActiveInKernel || kernel == true) {
                    violate("\(path.device) is dead but engine says \(view.state), kernel says \(kernel.map { $0 ? "A" : "F" } ?? "absent")")
                }
                if let kernel, kernel != view.kernelActive {
                    violate("\(path.device): engine believes kernel \(view.kernelActive ? "A" : "F"), kernel has \(kernel ? "A" : "F")")
                }
            }
            // Queueing disabled by hand was restored: the kernel queues again (no_path_retry queue).
            if profiles[info.map]?.policy.noPathRetry == .queue && !world.target.queueIfNoPath(info.map) {
                violate("\(info.map): queue_if_no_path is off at the end under no_path_retry queue")
            }
            if let view = engine.map(info.map), view.groupCount > 0 {
                let best = engine.initialGroup(of: info.map)
                if let current = world.target.currentGroup(info.map), view.policy.failback == .immediate, view.usablePaths > 0, current != Int(best) {
                    violate("\(info.map): kernel uses group \(current), best is \(best) under failback immediate")
                }
            }
        }
    }
}

struct TortureSetupError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
