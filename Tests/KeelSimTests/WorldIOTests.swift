// The world's I/O path: failover on errors, queueing with no path, EIO, reloads, hung and standby paths.

import KeelCore
import KeelSim
import Testing

private let map = MapHandle(0)
private let ms = Time.nsPerMs

/// Two paths (one host, two target ports) on map 0, with one workload slot.
private func twoPathWorld(options: SimOptions = SimOptions()) -> (SimWorld, DevNo, DevNo) {
    let world = SimWorld(seed: 11, fabric: smallFabric(ports: 2, hosts: 1), workload: singleSlotWorkload, options: options)
    let d = devices(world)
    return (world, d[0], d[1])
}

@Test func anIOErrorFailsThePathEmitsTheEventAndCompletesOnAnotherPath() {
    let (world, d0, d1) = twoPathWorld()
    world.apply(.setPath(d0, .offline))
    #expect(world.load(table([[d0, d1]]), map: map) == 0)
    world.advance(toNs: 10 * ms)
    #expect(world.target.isActive(map, device: d0) == false)
    #expect(world.target.isActive(map, device: d1) == true)
    #expect(drainEvents(world) == [.pathFailed(map, d0)])
    #expect(world.counters.ioPathErrors == 1)
    #expect(world.workload.total.completed >= 1)
    #expect(world.workload.total.ioErrors == 0)
}

@Test func withEveryPathFailedAndQueueingTheIOWaitsThenCompletesIntactAfterReinstate() {
    let (world, d0, d1) = twoPathWorld()
    world.apply(.setTargetPort(0, .offline))
    world.apply(.setTargetPort(1, .offline))
    _ = world.load(table([[d0, d1]], queueIfNoPath: true), map: map)
    world.advance(toNs: 10 * ms)
    #expect(world.queuedIOCount(map) == 1)
    #expect(world.workload.total.completed == 0)
    #expect(world.status(map).queueingIO)
    #expect(drainEvents(world) == [.pathFailed(map, d0), .pathFailed(map, d1)])

    world.apply(.setTargetPort(1, .online))
    #expect(world.send(DMMessage(map: map, kind: .reinstatePath, device: d1)) == 0)
    #expect(world.queuedIOCount(map) == 0)
    world.advance(toNs: 20 * ms)
    let totals = world.workload.total
    #expect(totals.writes >= 1 && totals.reads >= 1)
    #expect(totals.anomalyCount == 0)
    #expect(world.workload.acknowledgedVersion(map, block: 0) >= 1)
    #expect(world.san.stamp(lun: 0, block: 0) == SimStamp(lun: 0, block: 0, version: world.workload.acknowledgedVersion(map, block: 0)))
}

@Test func failIfNoPathErrorsEveryQueuedIO() {
    let (world, d0, d1) = twoPathWorld()
    world.apply(.setHost(0, .offline))
    _ = world.load(table([[d0, d1]], queueIfNoPath: true), map: map)
    world.advance(toNs: 10 * ms)
    #expect(world.queuedIOCount(map) == 1)
    #expect(world.send(DMMessage(map: map, kind: .failIfNoPath)) == 0)
    #expect(world.queuedIOCount(map) == 0)
    #expect(world.workload.total.ioErrors == 1)
    #expect(world.workload.anomalies.first?.kind == .ioError)
}

@Test func withoutQueueingAnIOWithNoPathFailsWithEIO() {
    let (world, d0, d1) = twoPathWorld()
    world.apply(.setHost(0, .offline))
    _ = world.load(table([[d0, d1]]), map: map)
    world.advance(toNs: 10 * ms)
    #expect(world.queuedIOCount(map) == 0)
    #expect(world.workload.total.ioErrors == 1)
    #expect(world.workload.total.completed == 0)
}

@Test func aReloadKeepsQueuedIOAndDispatchesItOnTheNowActivePaths() {
    let (world, d0, d1) = twoPathWorld()
    world.apply(.setHost(0, .offline))
    _ = world.load(table([[d0, d1]], queueIfNoPath: true), map: map)
    world.advance(toNs: 10 * ms)
    #expect(world.queuedIOCount(map) == 1)
    world.apply(.setHost(0, .online))
    #expect(world.load(table([[d1], [d0]], queueIfNoPath: true), map: map) == 0)
    #expect(world.queuedIOCount(map) == 0)
    world.advance(toNs: 20 * ms)
    #expect(world.workload.acknowledgedVersion(map, block: 0) >= 1)
    #expect(world.workload.total.anomalyCount == 0)
    #expect(world.status(map).groups.allSatisfy { $0.paths.allSatisfy { $0.active && $0.failCount == 0 } })
}

@Test func anIOOnAHungPathErrorsAtTheCommandTimeoutAndFailsThePath() {
    let (world, d0, d1) = twoPathWorld(options: SimOptions(commandTimeoutNs: Time.nsPerSecond))
    world.apply(.setPath(d0, .hung))
    _ = world.load(table([[d0, d1]]), map: map)
    world.advance(toNs: 900 * ms)
    #expect(world.inFlightIOCount(map) == 1)
    #expect(world.workload.total.completed == 0)
    #expect(world.target.isActive(map, device: d0) == true)
    world.advance(toNs: 1_100 * ms)
    #expect(world.target.isActive(map, device: d0) == false)
    #expect(world.workload.total.completed >= 1)
    #expect(world.workload.total.latencyMaxNs >= Time.nsPerSecond)
}

@Test func anIOThroughAStandbyPortErrorsAndFailsThePath() {
    let (world, d0, d1) = twoPathWorld()
    world.apply(.setAlua(targetPort: 0, .standby))
    _ = world.load(table([[d0, d1]]), map: map)
    world.advance(toNs: 10 * ms)
    #expect(world.target.isActive(map, device: d0) == false)
    #expect(world.workload.total.completed >= 1)
}

@Test func aSlowPathsLatencyShowsInTheWorkloadsRecord() {
    let (world, d0, _) = twoPathWorld()
    world.apply(.setPath(d0, .slow(latencyNs: 300 * ms)))
    _ = world.load(table([[d0]]), map: map)
    world.advance(toNs: 1_000 * ms)
    #expect(world.workload.total.latencyMaxNs >= 300 * ms)
    #expect(world.workload.total.anomalyCount == 0)
}

@Test func aCompletionWatchReportsTheFirstQueuedIOToCompleteAfterAPathReturns() {
    let (world, d0, d1) = twoPathWorld()
    world.apply(.setHost(0, .offline))
    _ = world.load(table([[d0, d1]], queueIfNoPath: true), map: map)
    world.advance(toNs: 10 * ms)
    let returnNs: Nanoseconds = 50 * ms
    let watch = world.watchFirstCompletion(map: map, atOrAfterNs: returnNs, issuedBefore: true)
    world.advance(toNs: returnNs)
    world.apply(.setHost(0, .online))
    _ = world.send(DMMessage(map: map, kind: .reinstatePath, device: d0))
    #expect(world.firstCompletionNs(watch) == nil)
    world.advance(toNs: 60 * ms)
    let first = try! #require(world.firstCompletionNs(watch))
    #expect(first > returnNs && first <= returnNs + SimOptions().ioLatencyMaxNs)
}

@Test func statusRecordsFollowEveryDMEventWhenAsked() {
    let options = SimOptions(kernel: .init(statusRecordsOnEvent: true))
    let (world, d0, d1) = twoPathWorld(options: options)
    _ = world.load(table([[d0, d1]]), map: map)
    _ = world.send(DMMessage(map: map, kind: .failPath, device: d0))
    #expect(drainEvents(world) == [.pathFailed(map, d0), .pathKernelState(map, d0, active: false),
                                   .pathKernelState(map, d1, active: true), .mapQueueing(map, queueing: false),
                                   .mapActiveGroup(map, group: 1)])
    #expect(drainEvents(world).isEmpty)
}
