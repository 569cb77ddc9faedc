// The torture scenarios: a fabric, a configuration and a fault script drawn from the seed.
import KeelCore
import KeelLinux
import KeelSim

/// What a scenario draws for one seed.
struct ScenarioPlan {
    var fabric: FabricSpec
    var workload: WorkloadSpec
    var options: SimOptions
    /// multipath.conf text the run's maps are configured from.
    var configuration: String
    var script: FaultScript
    /// Virtual time the run lasts.
    var endNs: Nanoseconds
    /// Every fault is over from here on; the engine must have converged by `endNs`.
    var quietFromNs: Nanoseconds
    /// When every path of a map is gone (NDU): the window and when the first path returns.
    var allPathsDownFromNs: Nanoseconds? = nil
    var firstReturnNs: Nanoseconds? = nil
    /// Paths exempt from the reinstatement bound (flap damping holds them on purpose).
    var dampedDevices: Set<DevNo> = []
    /// Paths that answer throughout: Keel must never send `fail_path` for one of them.
    var alwaysAnswering: Set<DevNo> = []
    /// Control-plane faults before `quietFromNs`: uevents lost (most noticed as an overflow),
    /// and topology requests given up on before the recovery thread answered.
    var ueventLossPerMillion: UInt32 = 0
    var topologyTimeoutPerMillion: UInt32 = 0
    /// Operator commands sent as keeld's control thread sends them (through the input ring).
    var operatorSteps: [OperatorStep] = []
    /// One line saying what this seed drew, for the replay output.
    var drawn: String
}

/// A named scenario: how to draw a plan from a seed.
struct Scenario: Sendable {
    let name: String
    let about: String
    let plan: @Sendable (UInt64) -> ScenarioPlan

    static let all: [Scenario] = [ndu, flapping, hungChecks, pathChurn, aluaHandover, fabric16k,
                                  controllerHang, reloadFailures, ringFull, ueventLoss, topologyTimeouts, operatorCommands]

    static func named(_ name: String) -> Scenario? { all.first { $0.name == name } }
}

private let ms = Time.nsPerMs
private let sec = Time.nsPerSecond

/// A small fabric: one array of 4 ports on 2 controllers, 2 hosts, 4 LUNs: 8 paths per LUN,
/// controller 0's ports optimized.
private func smallFabric(luns: Int = 4) -> FabricSpec {
    FabricSpec(arrays: 1, portsPerArray: 4, controllersPerArray: 2, hosts: 2, lunsPerArray: luns, alua: .firstControllerOptimized)
}

/// Four I/Os in flight per map, each after 2-10 ms of think time: thousands of verified I/Os
/// per map and run, without the run being all I/O events.
private let steadyWorkload = WorkloadSpec(outstandingPerMap: 4, blocksPerLun: 64, thinkTimeMinNs: 2 * ms, thinkTimeMaxNs: 10 * ms)

/// The configuration every scenario starts from; `extra` lines go into `defaults`.
private func conf(_ extra: String) -> String {
    """
    # Keel torture: the maps of the simulated array.
    defaults {
        find_multipaths greedy
        polling_interval 5
        max_polling_interval 20
        fast_probe_interval_ms 200
        checker_timeout 5
        path_grouping_policy group_by_prio
        prio alua
        failback immediate
        no_path_retry queue
    \(extra)
    }
    devices {
        device {
            vendor "KEEL"
            product "SIMULATED"
            hardware_handler "1 alua"
            path_selector "service-time 0"
        }
    }
    """
}


extension Scenario {
    /// An array's firmware upgrade: every port down for a window of any length, then back one at a time.
    static let ndu = Scenario(name: "ndu", about: "array NDU: every path gone for 0.5-120 s, ports back one by one, no_path_retry queue") { seed in
        var r = SimRandom(seed: seed, stream: 100)
        let fabric = smallFabric()
        let start = r.range(2 * sec...10 * sec)
        let outage = r.range(500 * ms...120 * sec)
        let spacing = r.range(200 * ms...5 * sec)
        let script = FaultScript.arrayNDU(array: 0, in: fabric, startNs: start, outageNs: outage, portReturnSpacingNs: spacing)
        let quiet = start + outage + 3 * spacing
        return ScenarioPlan(fabric: fabric, workload: steadyWorkload, options: SimOptions(),
                            configuration: conf(""), script: script, endNs: quiet + 30 * sec, quietFromNs: quiet,
                            allPathsDownFromNs: start, firstReturnNs: start + outage,
                            drawn: "outage at \(formatMs(start)) ms for \(formatMs(outage)) ms, ports back every \(formatMs(spacing)) ms")
    }

    /// Paths that keep failing and returning; flap damping holds them back.
    static let flapping = Scenario(name: "flapping", about: "1-3 paths flapping every 0.1-2 s for 10-40 s, san_path_err damping on") { seed in
        var r = SimRandom(seed: seed, stream: 101)
        let fabric = smallFabric()
        var script = FaultScript()
        var damped: Set<DevNo> = []
        let count = Int(r.range(1...3))
        var lastEnd: Nanoseconds = 0
        for _ in 0..<count {
            let device = fabric.device(ofPath: r.below(fabric.pathCount))
            guard !damped.contains(device) else { continue }
            damped.insert(device)
            let start = r.range(1 * sec...5 * sec)
            let toggle = r.range(100 * ms...2 * sec)
            let duration = r.range(10 * sec...40 * sec)
            script = script + FaultScript.flappingPath(device, startNs: start, toggleEveryNs: toggle, durationNs: duration)
            lastEnd = max(lastEnd, start + duration)
        }
        let damping = "    san_path_err_threshold 2\n    san_path_err_forget_rate 10\n    san_path_err_recovery_time 5"
        // Quiet once the damping's recovery time has passed after the last flap.
        return ScenarioPlan(fabric: fabric, workload: steadyWorkload, options: SimOptions(),
                            configuration: conf(damping), script: script, endNs: lastEnd + 40 * sec,
                            quietFromNs: lastEnd, dampedDevices: damped,
                            drawn: "\(damped.count) flapping paths until \(formatMs(lastEnd)) ms")
    }

    /// Checks and I/O that never complete: the checker's timeout must fail the path in time.
    static let hungChecks = Scenario(name: "hung-checks", about: "a path or a whole host whose I/O and checks never complete for 3-40 s") { seed in
        var r = SimRandom(seed: seed, stream: 102)
        let fabric = smallFabric()
        let start = r.range(1 * sec...10 * sec)
        let duration = r.range(3 * sec...40 * sec)
        let script: FaultScript
        let what: String
        if r.chance(perMillion: 300_000) {
            let host = r.below(fabric.hosts)
            script = FaultScript([FaultStep(atNs: start, .setHost(host, .hung)), FaultStep(atNs: start + duration, .setHost(host, .online))])
            what = "host \(host)"
        } else {
            let device = fabric.device(ofPath: r.below(fabric.pathCount))
            script = FaultScript.hungPath(device, startNs: start, durationNs: duration)
            what = "path \(device)"
        }
        var options = SimOptions()
        options.commandTimeoutNs = 10 * sec
        return ScenarioPlan(fabric: fabric, workload: steadyWorkload, options: options,
                            configuration: conf("    checker_timeout 2"), script: script, endNs: start + duration + 40 * sec,
                            quietFromNs: start + duration,
                            drawn: "\(what) hung at \(formatMs(start)) ms for \(formatMs(duration)) ms")
    }

    /// Devices removed and added again, sometimes every path of a map at once.
    static let pathChurn = Scenario(name: "path-churn", about: "paths removed and re-added (uevents), sometimes all of a map's at once") { seed in
        var r = SimRandom(seed: seed, stream: 103)
        let fabric = smallFabric(luns: 8)
        var script = FaultScript()
        var last: Nanoseconds = 0
        let events = Int(r.range(5...40))
        for _ in 0..<events {
            let at = r.range(1 * sec...30 * sec)
            let back = r.range(10 * ms...10 * sec)
            if r.chance(perMillion: 100_000) {
                let lun = r.below(fabric.lunCount)
                for k in 0..<fabric.pathsPerLun {
                    script = script + FaultScript.pathChurn(fabric.device(ofPath: lun * fabric.pathsPerLun + k), removeAtNs: at, readdAfterNs: back)
                }
            } else {
                script = script + FaultScript.pathChurn(fabric.device(ofPath: r.below(fabric.pathCount)), removeAtNs: at, readdAfterNs: back)
            }
            last = max(last, at + back)
        }
        // Overlapping churn of one device: keep the steps in time order so the last word is "added".
        script.steps.sort { $0.atNs < $1.atNs }
        return ScenarioPlan(fabric: fabric, workload: steadyWorkload, options: SimOptions(),
                            configuration: conf(""), script: script, endNs: last + 20 * sec, quietFromNs: last,
                            drawn: "\(events) removals until \(formatMs(last)) ms")
    }

    /// An ALUA handover: the optimized controller goes transitioning, the other takes over.
    static let aluaHandover = Scenario(name: "alua-handover", about: "controller handover: ports transitioning 0.1-10 s, priorities swap, regroup") { seed in
        var r = SimRandom(seed: seed, stream: 104)
        let fabric = smallFabric()
        let at = r.range(2 * sec...10 * sec)
        let transitioning = r.range(100 * ms...10 * sec)
        var script = FaultScript.aluaHandover(demoted: fabric.targetPorts(ofController: 0), promoted: fabric.targetPorts(ofController: 1),
                                              atNs: at, transitioningNs: transitioning)
        var quiet = at + transitioning
        if r.chance(perMillion: 500_000) {
            // And a standby spell on one promoted port afterwards.
            let port = fabric.targetPorts(ofController: 1)[0]
            let d = r.range(1 * sec...10 * sec)
            script = script + FaultScript.aluaStandby(targetPort: port, startNs: quiet + 2 * sec, durationNs: d)
            quiet += 2 * sec + d
        }
        return ScenarioPlan(fabric: fabric, workload: steadyWorkload, options: SimOptions(),
                            configuration: conf(""), script: script, endNs: quiet + 30 * sec, quietFromNs: quiet,
                            drawn: "handover at \(formatMs(at)) ms, transitioning \(formatMs(transitioning)) ms")
    }

    /// 16,384 paths: 1,024 LUNs x 16 paths, a target port and a host failing and returning.
    static let fabric16k = Scenario(name: "fabric-16k", about: "16,384 paths (1,024 LUNs x 16): a port and a host fail and return") { seed in
        var r = SimRandom(seed: seed, stream: 105)
        let fabric = FabricSpec(arrays: 4, portsPerArray: 8, controllersPerArray: 2, hosts: 2, lunsPerArray: 256, alua: .firstControllerOptimized)
        let port = r.below(fabric.targetPortCount)
        let host = r.below(fabric.hosts)
        let portStart = r.range(2 * sec...6 * sec), portFor = r.range(1 * sec...10 * sec)
        let hostStart = r.range(2 * sec...12 * sec), hostFor = r.range(1 * sec...6 * sec)
        let script = FaultScript.targetPortOutage(port, startNs: portStart, durationNs: portFor)
            + FaultScript.hostOutage(host, startNs: hostStart, durationNs: hostFor)
        let quiet = max(portStart + portFor, hostStart + hostFor)
        let workload = WorkloadSpec(outstandingPerMap: 1, blocksPerLun: 16, thinkTimeMinNs: 50 * ms, thinkTimeMaxNs: 150 * ms)
        var options = SimOptions()
        options.checkSlots = 16_384
        return ScenarioPlan(fabric: fabric, workload: workload, options: options,
                            configuration: conf(""), script: script, endNs: quiet + 25 * sec, quietFromNs: quiet,
                            drawn: "port \(port) down at \(formatMs(portStart)) ms for \(formatMs(portFor)) ms, host \(host) at \(formatMs(hostStart)) ms for \(formatMs(hostFor)) ms")
    }

    /// One controller of an array rebooting during an upgrade: its ports' commands neither
    /// complete nor fail, for long enough that every one of its paths has a command hung in the
    /// kernel, while the other controller's paths answer throughout. 1,000 paths.
    static let controllerHang = Scenario(name: "controller-hang", about: "1,000 paths: one controller's ports hang for 5-60 s; the other's answer and are never failed") { seed in
        var r = SimRandom(seed: seed, stream: 106)
        let fabric = FabricSpec(arrays: 1, portsPerArray: 4, controllersPerArray: 2, hosts: 2, lunsPerArray: 125, alua: .firstControllerOptimized)
        let hung = r.below(fabric.controllersPerArray)
        let start = r.range(1 * sec...8 * sec)
        let duration = r.range(5 * sec...60 * sec)
        var script = FaultScript()
        var answering: Set<DevNo> = []
        for port in fabric.targetPorts(ofArray: 0) {
            if fabric.controller(ofTargetPort: port) == hung {
                script = script + FaultScript([FaultStep(atNs: start, .setTargetPort(port, .hung)),
                                               FaultStep(atNs: start + duration, .setTargetPort(port, .online))])
            } else {
                fabric.forEachPath(throughTargetPort: port) { answering.insert(fabric.device(ofPath: $0)) }
            }
        }
        var options = SimOptions()
        options.commandTimeoutNs = 30 * sec
        let workload = WorkloadSpec(outstandingPerMap: 1, blocksPerLun: 16, thinkTimeMinNs: 20 * ms, thinkTimeMaxNs: 80 * ms)
        return ScenarioPlan(fabric: fabric, workload: workload, options: options,
                            configuration: conf("    checker_timeout 2"), script: script, endNs: start + duration + 45 * sec,
                            quietFromNs: start + duration + options.commandTimeoutNs, alwaysAnswering: answering,
                            drawn: "controller \(hung) hung at \(formatMs(start)) ms for \(formatMs(duration)) ms")
    }

    /// Table loads refused by the kernel (EBUSY, ENOMEM) while paths come and go: the control
    /// plane asks again until the kernel's table holds the engine's layout.
    static let reloadFailures = Scenario(name: "reload-failures", about: "paths removed and re-added while 1-20 table loads are refused (EBUSY/ENOMEM)") { seed in
        var r = SimRandom(seed: seed, stream: 107)
        let fabric = smallFabric(luns: 8)
        var script = FaultScript()
        var last: Nanoseconds = 0
        var churned: Set<DevNo> = []
        for _ in 0..<Int(r.range(3...15)) {
            let at = r.range(1 * sec...20 * sec)
            let back = r.range(100 * ms...5 * sec)
            let device = fabric.device(ofPath: r.below(fabric.pathCount))
            churned.insert(device)
            script = script + FaultScript.pathChurn(device, removeAtNs: at, readdAfterNs: back)
            last = max(last, at + back)
        }
        for _ in 0..<Int(r.range(1...4)) {
            let at = r.range(500 * ms...20 * sec)
            let errno: Int32 = r.chance(perMillion: 500_000) ? 16 : 12  // EBUSY, ENOMEM
            script = script + FaultScript([FaultStep(atNs: at, .refuseLoads(count: Int(r.range(1...5)), errno: errno))])
        }
        // A returning path waits for its map's table, and a refused load is asked again with
        // backoff: the fast-probe bound cannot hold for them. What must hold is the end state:
        // every map's table holds the engine's paths (checked at the end of every run).
        let quiet = last + 2 * sec
        return ScenarioPlan(fabric: fabric, workload: steadyWorkload, options: SimOptions(),
                            configuration: conf(""), script: FaultScript(script.steps.sorted { $0.atNs < $1.atNs }),
                            endNs: quiet + 40 * sec, quietFromNs: quiet, dampedDevices: churned,
                            drawn: "path churn until \(formatMs(last)) ms with refused loads")
    }

    /// The NDU with the smallest input ring keeld allows (16 slots): status resyncs and kernel
    /// events fill it, senders wait for the recovery thread, nothing is lost.
    static let ringFull = Scenario(name: "ring-full", about: "array NDU with a 16-slot input ring: senders wait, no input is lost") { seed in
        var plan = ndu.plan(seed)
        plan.configuration = conf("    ring_slots 16")
        plan.drawn += ", ring_slots 16"
        return plan
    }

    /// Path churn while the uevent monitor loses 10-60% of the uevents (receive buffer
    /// overflow): most losses are noticed and repaired by a rediscovery at once, the rest by the
    /// periodic one. At the end the engine, the control plane and the world agree on every path.
    static let ueventLoss = Scenario(name: "uevent-loss", about: "path churn with 10-60% of uevents lost; overflow and periodic rediscovery repair both views") { seed in
        var plan = churnWithControlFaults(seed: seed, stream: 108)
        var r = SimRandom(seed: seed, stream: 109)
        plan.ueventLossPerMillion = UInt32(r.range(100_000...600_000))
        plan.drawn += ", \(plan.ueventLossPerMillion / 10_000)% of uevents lost"
        return plan
    }

    /// Path churn while 10-50% of topology requests are given up on before the recovery thread
    /// answers: late additions are undone, and rediscovery adds the paths again.
    static let topologyTimeouts = Scenario(name: "topology-timeouts", about: "path churn with 10-50% of topology requests timing out; late answers undone, rediscovery converges") { seed in
        var plan = churnWithControlFaults(seed: seed, stream: 110)
        var r = SimRandom(seed: seed, stream: 111)
        plan.topologyTimeoutPerMillion = UInt32(r.range(100_000...500_000))
        plan.drawn += ", \(plan.topologyTimeoutPerMillion / 10_000)% of topology requests timed out"
        return plan
    }

    /// Removals and re-additions of single paths and whole maps for 2-30 s, ending a rediscovery
    /// interval plus 15 s later so that the periodic rediscovery runs after the last fault.
    private static func churnWithControlFaults(seed: UInt64, stream: UInt64) -> ScenarioPlan {
        var r = SimRandom(seed: seed, stream: stream)
        let fabric = smallFabric(luns: 8)
        var script = FaultScript()
        var last: Nanoseconds = 0
        var churned: Set<DevNo> = []
        for _ in 0..<Int(r.range(5...30)) {
            let at = r.range(1 * sec...30 * sec)
            let back = r.range(10 * ms...5 * sec)
            var devices: [DevNo] = []
            if r.chance(perMillion: 100_000) {
                let lun = r.below(fabric.lunCount)
                devices = (0..<fabric.pathsPerLun).map { fabric.device(ofPath: lun * fabric.pathsPerLun + $0) }
            } else {
                devices = [fabric.device(ofPath: r.below(fabric.pathCount))]
            }
            for device in devices {
                churned.insert(device)
                script = script + FaultScript.pathChurn(device, removeAtNs: at, readdAfterNs: back)
            }
            last = max(last, at + back)
        }
        let quiet = last + 1 * sec
        let workload = WorkloadSpec(outstandingPerMap: 1, blocksPerLun: 32, thinkTimeMinNs: 20 * ms, thinkTimeMaxNs: 80 * ms)
        return ScenarioPlan(fabric: fabric, workload: workload, options: SimOptions(),
                            configuration: conf(""), script: FaultScript(script.steps.sorted { $0.atNs < $1.atNs }),
                            endNs: quiet + Rediscovery.intervalNs + 15 * sec, quietFromNs: quiet, dampedDevices: churned,
                            drawn: "path churn until \(formatMs(last)) ms")
    }

    /// An administrator at work during a port outage: paths failed by hand and reinstated
    /// (some never), path groups switched, queueing disabled and restored on a map.
    static let operatorCommands = Scenario(name: "operator", about: "fail/reinstate path, switchgroup and disable/restore queueing by hand during a port outage") { seed in
        var r = SimRandom(seed: seed, stream: 112)
        let fabric = smallFabric(luns: 4)
        let port = r.below(fabric.targetPortCount)
        let portStart = r.range(1 * sec...10 * sec), portFor = r.range(1 * sec...10 * sec)
        var steps: [OperatorStep] = []
        var last = portStart + portFor
        var failedMaps: Set<Int> = []
        var kept = 0
        for _ in 0..<Int(r.range(3...8)) {
            let path = r.below(fabric.pathCount)
            let device = fabric.device(ofPath: path)
            let at = r.range(500 * ms...15 * sec)
            failedMaps.insert(fabric.lun(ofPath: path))
            steps.append(OperatorStep(atNs: at, .failPath(device)))
            // One in five is left failed: it must stay out of the kernel to the end.
            if r.chance(perMillion: 200_000) { kept += 1; continue }
            let back = at + r.range(100 * ms...8 * sec)
            steps.append(OperatorStep(atNs: back, .reinstatePath(device)))
            last = max(last, back)
        }
        for _ in 0..<Int(r.range(1...3)) {
            let at = r.range(500 * ms...15 * sec)
            steps.append(OperatorStep(atNs: at, .switchGroup(map: r.below(fabric.lunCount), group: UInt16(r.range(1...3)))))
            last = max(last, at)
        }
        // Queueing off only where no path is failed by hand: the map keeps usable paths, so no
        // I/O may fail while it is off.
        if let map = (0..<fabric.lunCount).first(where: { !failedMaps.contains($0) }) {
            let off = r.range(500 * ms...12 * sec)
            let on = off + r.range(100 * ms...5 * sec)
            steps += [OperatorStep(atNs: off, .disableQueueing(map: map)), OperatorStep(atNs: on, .restoreQueueing(map: map))]
            last = max(last, on)
        }
        let quiet = last + 1 * sec
        var plan = ScenarioPlan(fabric: fabric, workload: steadyWorkload, options: SimOptions(), configuration: conf(""),
                                script: FaultScript.targetPortOutage(port, startNs: portStart, durationNs: portFor),
                                endNs: quiet + 20 * sec, quietFromNs: quiet,
                                drawn: "port \(port) down at \(formatMs(portStart)) ms for \(formatMs(portFor)) ms, \(steps.count) operator commands, \(kept) paths left failed")
        plan.operatorSteps = steps.sorted { $0.atNs < $1.atNs }
        return plan
    }
}

/// One operator command of a scenario, by device and map index (handles are the run's).
struct OperatorStep {
    enum Action {
        case failPath(DevNo)
        case reinstatePath(DevNo)
        case switchGroup(map: Int, group: UInt16)
        case disableQueueing(map: Int)
        case restoreQueueing(map: Int)
    }
    var atNs: Nanoseconds
    var action: Action
    init(atNs: Nanoseconds, _ action: Action) {
        self.atNs = atNs
        self.action = action
    }
}
