// One seeded run: keeld's recovery service (rings, reload hand-off, state board, topology inputs)
// around the engine and keeld's control plane (the assembler, ring topology, table loads and
// resync) over the simulated kernel, against the simulated world, invariants every step.
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

/// Drives one seeded scenario: keeld's control plane and recovery service, the world, and the
/// invariants. The recovery service, its rings, the reload hand-off, the state board, the reload
/// retry schedule, the assembler (maps, paths, checker registration, table loads, status resync)
/// and its ring topology are the daemon's code. What is simulated: the kernel under the
/// assembler (`SimKernel`), the checker backends (the world's checker, registered through
/// `SimCheckerRegistry`), the array's priorities, uevents and rediscovery's view of the devices,
/// and the doorbells (real eventfds that nobody waits on: the run steps the service itself).
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
    /// keeld's assembler over the simulated kernel and checker registry.
    var assembler: MultipathAssembler
    /// Topology requests as keeld's events thread makes them (tickets, timeouts, late answers,
    /// table growth), through `TortureChannel`.
    var topology: RingTopology<TortureChannel>!
    let kernel: SimKernel
    let registry: SimCheckerRegistry
    /// The assembler's bindings and wwids files: a directory of this run's own, removed with it,
    /// so a seed run alone and in a batch starts from the same (empty) files.
    let identity: ScratchDirectory
    /// Whether a topology request may be drawn to time out (not while the world is set up).
    var timeoutsAllowed = false
    /// Draws for the control plane's faults (lost uevents, topology answers too late).
    var controlRandom: SimRandom
    var nextRediscoveryNs: Nanoseconds = Rediscovery.intervalNs
    var overflowPending = false
    var result = RunResult()
    /// Paths whose health returned to up, waiting for the kernel to route to them again.
    var returning: [DevNo: (sinceNs: Nanoseconds, boundNs: Nanoseconds)] = [:]
    var resumeWatches: [CompletionWatch] = []
    let fastNs: Nanoseconds
    /// keeld's events thread reads every map's status this often (missed kernel events repaired).
    let resyncEveryNs: Nanoseconds = 5 * Time.nsPerSecond
    /// The bounds are checked this often.
    let boundsEveryNs: Nanoseconds = Time.nsPerSecond

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
        kernel = SimKernel(world: world)
        registry = SimCheckerRegistry()
        do { identity = try ScratchDirectory() } catch { throw TortureSetupError(message: "identity files: \(error.message)") }
        let files = identity.path
        assembler = MultipathAssembler(configuration: configuration, engine: engine, control: kernel, messenger: kernel,
                                       checkers: PathCheckers(simulated: registry), sysfsRoot: files + "/sys", devRoot: files + "/dev",
                                       statusReader: kernel,
                                       identityFiles: MapIdentityFiles(bindingsPath: files + "/bindings", wwidsPath: files + "/wwids",
                                                                       prkeysPath: files + "/prkeys"))
        assembler.arrayPriority = { [unowned world] device in world.priority(of: device) }
        topology = RingTopology(channel: TortureChannel(run: self), growth: growth)
        // keeld's start: the paths found at start assembled straight into the engine, then the
        // rest through the ring (found after start), which makes the tables grow.
        var all: [DiscoveredPath] = []
        for info in world.maps { for path in info.paths { all.append(discovered(path.info)) } }
        let atStart = Array(all.prefix(initial.paths)), late = Array(all.dropFirst(initial.paths))
        var errors = assembler.assemble(DiscoveryReport(paths: atStart, skipped: []), nowNs: 0)
        if !late.isEmpty { errors += assembler.assemble(DiscoveryReport(paths: late, skipped: []), nowNs: 0, topology: &topology) }
        if let first = errors.first { throw TortureSetupError(message: "assembly: \(first) (\(errors.count) errors)") }
        for info in world.maps {
            guard let map = assembler.map(named: simulatedWWID(lun: info.lun)), map.handle == info.map else {
                throw TortureSetupError(message: "assembled map of LUN \(info.lun) is not world map \(info.map)")
            }
        }
        timeoutsAllowed = true
    }

    /// A world path as keeld's discovery would report it.
    func discovered(_ info: SimPathInfo) -> DiscoveredPath {
        let index = plan.fabric.pathIndex(of: info.device) ?? 0
        var path = DiscoveredPath(kernelName: simulatedKernelName(index), device: info.device,
                                  address: SCSIAddress(host: UInt32(info.host), channel: 0, target: UInt32(info.targetPort), lun: UInt64(info.lun)),
                                  deviceState: .running, vendor: "KEEL", model: "SIMULATED", revision: "1", sizeSectors: 2048,
                                  wwid: simulatedWWID(lun: info.lun), serial: "KEEL-C\(info.controller)",
                                  targetNodeName: "keel-port-\(info.targetPort)", nodeNameSource: .transport,
                                  portKey: "\(info.host)-\(info.targetPort)")
        path.genericName = "sg\(index)"
        return path
    }

    /// The path handle the assembler has for a device.
    func assembledHandle(_ device: DevNo) -> PathHandle? {
        for map in assembler.maps { if let path = map.paths.first(where: { $0.device == device }) { return path.handle } }
        return nil
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

    /// The wait for one topology answer: the recovery thread's pass runs in its place. The answer
    /// comes within a pass here, unless the scenario draws a timeout: then the asker gives up
    /// before the recovery thread runs, and the answer comes late.
    func topologyWait() -> () -> Bool {
        let nowNs = world.nowNs
        let timesOut = timeoutsAllowed && nowNs < plan.quietFromNs && plan.topologyTimeoutPerMillion > 0
            && controlRandom.chance(perMillion: plan.topologyTimeoutPerMillion)
        var passes = 0
        return { [unowned self] in
            guard !timesOut, passes < 4 else { return false }
            passes += 1
            service.pass(nowNs: nowNs)
            return true
        }
    }

    /// The kernel name simulated discovery gives `device` (see `discovered`).
    func kernelName(of device: DevNo) -> String { simulatedKernelName(plan.fabric.pathIndex(of: device) ?? 0) }

    /// keeld's rediscovery: the world's present devices against the assembled ones, repaired
    /// both ways. Runs after a noticed uevent overflow and every `Rediscovery.intervalNs`.
    func rediscover(nowNs: Nanoseconds) {
        var present: [String: SimPathInfo] = [:]
        for info in world.maps { for path in info.paths { present[kernelName(of: path.device)] = path.info } }
        let differences = Rediscovery.differences(present: Set(present.keys),
                                                  assembled: Set(assembler.maps.flatMap { $0.paths.map(\.kernelName) }),
                                                  held: assembler.heldKernelNames)
        result.rediscoveries += 1
        for name in differences.gone {
            narrate("rediscovery: \(name) is gone")
            _ = assembler.remove(kernelName: name, nowNs: nowNs, topology: &topology)
        }
        let added = differences.added.compactMap { present[$0].map(discovered) }
        for path in added {
            narrate("rediscovery: \(path.kernelName) (\(path.device)) is new")
            result.rediscovered += 1
        }
        if !added.isEmpty { assemble(added, nowNs: nowNs, what: "rediscovery") }
    }

    /// Paths to their maps through the ring, as keeld's events thread assembles them. A refusal
    /// is a violation unless topology requests may time out in this scenario.
    func assemble(_ paths: [DiscoveredPath], nowNs: Nanoseconds, what: String) {
        let errors = assembler.assemble(DiscoveryReport(paths: paths, skipped: []), nowNs: nowNs, topology: &topology)
        for error in errors {
            narrate("\(what): \(error)")
            if plan.topologyTimeoutPerMillion == 0 { violate("\(what): \(error)") }
        }
    }

    /// Runs the whole scenario and returns its figures and any invariant violations.
    func run() -> RunResult {
        world.schedule(plan.script)
        var nowNs: Nanoseconds = 0
        var nextResyncNs = resyncEveryNs
        var nextBoundsNs = boundsEveryNs
        var stalledSteps = 0
        if let first = plan.firstReturnNs {
            for info in world.maps { resumeWatches.append(world.watchFirstCompletion(map: info.map, atOrAfterNs: first, issuedBefore: true)) }
        }
        service.pass(nowNs: 0)
        serviceReloads(nowNs: 0)
        while nowNs < plan.endNs {
            let nextOperatorNs = nextOperatorStep < plan.operatorSteps.count ? plan.operatorSteps[nextOperatorStep].atNs : plan.endNs
            var next = min(world.nextEventNs(), recoveryDeadlineNs, nextResyncNs, nextBoundsNs, reloadRetries.nextDueNs(), nextRediscoveryNs, nextOperatorNs, plan.endNs)
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
            topology.settleLateReplies()
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
            }
            if nowNs >= nextBoundsNs {
                checkBounds(nowNs: nowNs)
                nextBoundsNs = nowNs + boundsEveryNs
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
        let outcomes = TableLoads.service(reloads, assembler: &assembler, retries: &reloadRetries, channel: topology.channel,
                                          nowNs: { nowNs }, returned: { service.pass(nowNs: nowNs) })
        for outcome in outcomes where !outcome.layout.isEmpty {
            result.reloads += 1
            if outcome.error != nil { result.reloadsRefused += 1 }
            narrate("control: load \(outcome.map) table with \(outcome.layout.count) groups, \(outcome.layout.reduce(0) { $0 + $1.count }) paths\(outcome.error.map { " REFUSED \($0)" } ?? "")")
        }
    }

    func applyTopology(_ change: SimTopologyChange, nowNs: Nanoseconds) {
        switch change.kind {
        case .removed:
            narrate("uevent: remove \(change.device)")
            let name = kernelName(of: change.device)
            _ = assembler.remove(kernelName: name, nowNs: nowNs, topology: &topology)
            returning[change.device] = nil
        case .added:
            narrate("uevent: add \(change.device)")
            // Its remove was lost: the path is still assembled (the assembler skips it), and
            // its checker will find it.
            guard let info = world.pathInfo(change.device) else { return }
            assemble([discovered(info)], nowNs: nowNs, what: "uevent add")
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
                guard let p = assembledHandle(device) else { violate("operator: \(device) is not assembled"); continue }
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
            let checkTimeoutNs = assembler.maps.first?.profile.policy.checkTimeoutNs ?? 0
            let hungWait = change.from == .timeout ? checkTimeoutNs + fastNs : 0
            let bound = hungWait + fastNs + plan.options.checkLatencyMaxNs + 2 * Time.nsPerMs
            returning[change.device] = (nowNs, bound)
        } else if !usable {
            returning[change.device] = nil
        }
    }

    /// Repairs whatever events were missed: the kernel's status of every map goes to the engine.
    func resync(nowNs: Nanoseconds) {
        var sink = RingLoopSink(channel: topology.channel)
        for error in assembler.resync(into: &sink, nowNs: nowNs) {
            narrate("resync: \(error)")
            violate("resync: \(error)")
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
            guard let p = assembledHandle(device), let view = engine.path(p) else { continue }
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
        topology.settleLateReplies()
        result.undoneAdds = topology.requests.undoneAdds
        let stats = world.workload.total
        result.ioCompleted = stats.completed
        result.ioErrors = stats.ioErrors
        result.lostWrites = stats.lostWrites
        result.corruptions = stats.corruptions
        result.messages = world.counters.messages
        result.checks = world.checkCounters.submitted
        if stats.ioErrors > 0 && assembler.maps.allSatisfy({ $0.profile.policy.noPathRetry == .queue }) {
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
        var assembled: [DevNo: PathHandle] = [:]
        for map in assembler.maps { for path in map.paths { assembled[path.device] = path.handle } }
        var checked = registry.registered
        for info in world.maps {
            let present = Set(info.paths.map(\.device))
            let knownHandles = engine.pathHandles(of: info.map)
            let known = Set(knownHandles.compactMap { engine.path($0)?.descriptor.device })
            if present != known { violate("\(info.map): engine knows \(known.count) paths, the world has \(present.count)") }
            // No path in the engine without a checker (assembled and registered with the
            // checker), none assembled or registered outside the engine.
            for p in knownHandles {
                guard let device = engine.path(p)?.descriptor.device else { continue }
                if assembled[device] != p { violate("\(info.map): \(device) is in the engine as \(p) but assembled as \(assembled[device].map { "\($0)" } ?? "nothing")") }
                if checked.removeValue(forKey: p) != device { violate("\(info.map): \(device) is in the engine as \(p) but has no checker") }
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
            if assembler.map(info.map)?.profile.policy.noPathRetry == .queue && !world.target.queueIfNoPath(info.map) {
                violate("\(info.map): queue_if_no_path is off at the end under no_path_retry queue")
            }
            if let view = engine.map(info.map), view.groupCount > 0 {
                let best = engine.initialGroup(of: info.map)
                if let current = world.target.currentGroup(info.map), view.policy.failback == .immediate, view.usablePaths > 0, current != Int(best) {
                    violate("\(info.map): kernel uses group \(current), best is \(best) under failback immediate")
                }
            }
        }
        for (p, device) in checked.sorted(by: { $0.key.index < $1.key.index }).prefix(3) {
            violate("\(device) has a checker as \(p) but is not in the engine")
        }
    }
}

/// The recovery thread as the run's control plane reaches it (keeld's `DaemonChannel`): the
/// input ring (a full ring runs the recovery pass), topology answers with the run's wait.
struct TortureChannel: RecoveryChannel {
    unowned let run: TortureRun

    func send(_ input: RecoveryInput) { run.send(input, nowNs: run.world.nowNs) }

    func nextTopologyReply() -> TopologyReply? { run.topologyReplies.pop() }

    func topologyWait() -> () -> Bool { run.topologyWait() }

    func topologyRequestTimedOut() {
        run.result.topologyTimeouts += 1
        run.narrate("control: topology request given up (no answer in time)")
    }

    func tablesGrew(to grown: (paths: Int, maps: Int)?, ceilings: Capacities) {
        if let grown {
            run.result.tableGrowths += 1
            run.narrate("tables grown to \(grown.paths) paths, \(grown.maps) maps")
        } else {
            run.narrate("tables at their ceilings (\(ceilings.pathsMax) paths, \(ceilings.mapsMax) maps)")
        }
    }
}

struct TortureSetupError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// A directory made empty under /tmp for one run and removed, with the files in it, when the
/// run is released. A run killed outright leaves it behind; the name is never reused.
final class ScratchDirectory {
    struct Failure: Error { let message: String }
    let path: String

    init() throws(Failure) {
        var template = Array("/tmp/keel-torture-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw Failure(message: "mkdtemp under /tmp: errno \(errno)")
        }
        path = String(cString: made)
    }

    deinit {
        // Flat: the assembler writes files only (bindings, wwids, prkeys and their temporaries).
        for name in SysfsFiles.directoryEntries(path) { unlink(path + "/" + name) }
        rmdir(path)
    }
}
