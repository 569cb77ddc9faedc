// Fault scripts: NDU windows, flapping, ALUA changes and path churn applied at the right virtual times.

import KeelCore
import KeelSim
import Testing

private let s = Time.nsPerSecond

@Test func arrayNDUTakesEveryPortDownThenBringsThemBackOneAtATime() {
    let fabric = FabricSpec(arrays: 2, portsPerArray: 4, controllersPerArray: 2, hosts: 2, lunsPerArray: 1)
    let world = SimWorld(seed: 1, fabric: fabric, workload: .none)
    world.schedule(.arrayNDU(array: 1, in: fabric, startNs: 10 * s, outageNs: 30 * s, portReturnSpacingNs: 5 * s))
    func offlinePorts() -> [Int] { (0..<8).filter { world.san.condition(ofTargetPort: $0) == .offline } }

    world.advance(toNs: 10 * s - 1)
    #expect(offlinePorts() == [])
    world.advance(toNs: 10 * s)
    #expect(offlinePorts() == [4, 5, 6, 7])
    world.advance(toNs: 40 * s - 1)
    #expect(offlinePorts() == [4, 5, 6, 7])
    world.advance(toNs: 40 * s)
    #expect(offlinePorts() == [5, 6, 7])
    world.advance(toNs: 45 * s)
    #expect(offlinePorts() == [6, 7])
    world.advance(toNs: 50 * s)
    #expect(offlinePorts() == [7])
    world.advance(toNs: 55 * s)
    #expect(offlinePorts() == [])
}

@Test func aFaultStepRecordsTheHealthChangeOfEveryPathItTouches() {
    let fabric = FabricSpec(arrays: 1, portsPerArray: 2, controllersPerArray: 1, hosts: 2, lunsPerArray: 2)
    let world = SimWorld(seed: 1, fabric: fabric, workload: .none)
    world.schedule(.targetPortOutage(1, startNs: s, durationNs: s))
    world.advance(toNs: s)
    var changes: [SimHealthChange] = []
    world.drainHealthChanges { changes.append($0) }
    let expected = [0, 1].flatMap { lun in [0, 1].map { host in fabric.device(ofPath: fabric.pathIndex(lun: lun, host: host, portInArray: 1)) } }
    #expect(changes.map(\.device) == expected)
    #expect(changes.allSatisfy { $0.from == .up && $0.to == .down && $0.timeNs == s })
    world.drainHealthChanges { _ in Issue.record("a drained change was handed over twice") }
}

@Test func aFlappingPathTogglesAtItsIntervalAndEndsOnline() {
    let world = SimWorld(seed: 1, fabric: smallFabric(ports: 1, hosts: 1), workload: .none)
    let device = devices(world)[0]
    world.schedule(.flappingPath(device, startNs: s, toggleEveryNs: 100 * Time.nsPerMs, durationNs: s))
    var seen: [CheckResult] = []
    for k in 0..<10 {
        world.advance(toNs: s + Nanoseconds(k) * 100 * Time.nsPerMs)
        seen.append(world.expectedCheckResult(of: device))
    }
    #expect(seen == [.down, .up, .down, .up, .down, .up, .down, .up, .down, .up])
    world.advance(toNs: 3 * s)
    #expect(world.expectedCheckResult(of: device) == .up)
}

@Test func anAluaHandoverGoesThroughTransitioningAndSwapsPriorities() {
    let fabric = FabricSpec(arrays: 1, portsPerArray: 2, controllersPerArray: 2, hosts: 1, lunsPerArray: 1)
    let world = SimWorld(seed: 1, fabric: fabric, workload: .none)
    let d = devices(world)
    #expect(d.map(world.priority(of:)) == [50, 10])
    world.schedule(.aluaHandover(demoted: [0], promoted: [1], atNs: s, transitioningNs: 2 * s))
    world.advance(toNs: s)
    #expect(world.expectedCheckResult(of: d[0]) == .pending)
    #expect(world.priority(of: d[0]) == 0)
    world.advance(toNs: 3 * s)
    #expect(world.expectedCheckResult(of: d[0]) == .up)
    #expect(d.map(world.priority(of:)) == [10, 50])
}

@Test func aStandbyWindowShowsGhostThenRestores() {
    let world = SimWorld(seed: 1, fabric: smallFabric(ports: 1, hosts: 1), workload: .none)
    let device = devices(world)[0]
    world.schedule(.aluaStandby(targetPort: 0, startNs: s, durationNs: s))
    world.advance(toNs: s)
    #expect(world.expectedCheckResult(of: device) == .ghost)
    #expect(world.priority(of: device) == 1)
    world.advance(toNs: 2 * s)
    #expect(world.expectedCheckResult(of: device) == .up)
}

@Test func pathChurnIsRecordedAsTopologyChanges() {
    let world = SimWorld(seed: 1, fabric: smallFabric(ports: 2, hosts: 1), workload: .none)
    let device = devices(world)[1]
    world.schedule(.pathChurn(device, removeAtNs: s, readdAfterNs: 2 * s))
    world.advance(toNs: s)
    var changes: [SimTopologyChange] = []
    world.drainTopologyChanges { changes.append($0) }
    #expect(changes == [SimTopologyChange(timeNs: s, kind: .removed, device: device, map: MapHandle(0))])
    #expect(!world.isPresent(device))
    #expect(devices(world).count == 1)
    #expect(world.load(table([[device]]), map: MapHandle(0)) == SimErrno.enxio)
    world.advance(toNs: 3 * s)
    changes.removeAll()
    world.drainTopologyChanges { changes.append($0) }
    #expect(changes == [SimTopologyChange(timeNs: 3 * s, kind: .added, device: device, map: MapHandle(0))])
    #expect(world.isPresent(device))
}

@Test func aRemovedPathsIOErrorsAndTheTargetFailsIt() {
    let world = SimWorld(seed: 1, fabric: smallFabric(ports: 2, hosts: 1), workload: singleSlotWorkload)
    let d = devices(world)
    _ = world.load(table([d]), map: MapHandle(0))
    world.apply(.removePath(d[0]))
    world.advance(toNs: 20 * Time.nsPerMs)
    #expect(world.target.isActive(MapHandle(0), device: d[0]) == false)
    #expect(world.workload.total.ioErrors == 0)
}
