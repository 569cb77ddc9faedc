// The workload: it verifies what it reads, detects lost writes and corruption, and never overlaps I/O on a block.

import KeelCore
import KeelSim
import Testing

private let map = MapHandle(0)
private let ms = Time.nsPerMs

@Test func aCleanRunHasNoAnomalies() {
    let world = SimWorld(seed: 3, fabric: smallFabric(), workload: WorkloadSpec())
    _ = world.load(table([devices(world)]), map: map)
    world.advance(toNs: Time.nsPerSecond)
    #expect(world.workload.total.completed > 1000)
    #expect(world.workload.total.reads > 0 && world.workload.total.writes > 0)
    #expect(world.workload.total.anomalyCount == 0)
    #expect(world.workload.anomalies.isEmpty)
}

@Test func anAcknowledgedWriteTheStoreDroppedIsDetectedAsALostWrite() {
    let world = SimWorld(seed: 3, fabric: smallFabric(), workload: singleSlotWorkload)
    world.apply(.dropWrites(lun: 0, count: 1))
    _ = world.load(table([devices(world)]), map: map)
    world.advance(toNs: 10 * ms)
    #expect(world.workload.total.lostWrites == 1)
    let anomaly = try! #require(world.workload.anomalies.first)
    #expect(anomaly.kind == .lostWrite)
    #expect(anomaly.expectedVersion == 1)
    #expect(anomaly.observed == SimStamp(lun: 0, block: 0, version: 0))
}

@Test func aReadOfAStampNobodyWroteIsDetectedAsCorruption() {
    let world = SimWorld(seed: 3, fabric: smallFabric(), workload: singleSlotWorkload)
    world.apply(.corruptReads(lun: 0, count: 1))
    _ = world.load(table([devices(world)]), map: map)
    world.advance(toNs: 10 * ms)
    #expect(world.workload.total.corruptions == 1)
    #expect(world.workload.anomalies.map(\.kind) == [.corruption])
}

@Test func aTableWithAnotherLunsPathIsDetectedAsCorruption() {
    let fabric = FabricSpec(arrays: 1, portsPerArray: 1, controllersPerArray: 1, hosts: 1, lunsPerArray: 2)
    let world = SimWorld(seed: 3, fabric: fabric, workload: singleSlotWorkload)
    // Map 0's table names LUN 1's path, so both maps write into LUN 1's blocks.
    let lun1 = devices(world, map: 1)
    _ = world.load(table([lun1]), map: map)
    _ = world.load(table([lun1]), map: MapHandle(1))
    world.advance(toNs: 100 * ms)
    #expect(world.workload.stats(map).corruptions >= 1)
}

@Test func outstandingIOsOfAMapNeverShareABlock() {
    let spec = WorkloadSpec(outstandingPerMap: 6, blocksPerLun: 7, thinkTimeMinNs: 0, thinkTimeMaxNs: 100_000)
    let world = SimWorld(seed: 8, fabric: smallFabric(), workload: spec)
    _ = world.load(table([devices(world)]), map: map)
    var maxOutstanding = 0
    var steps = 0
    while world.nowNs < 200 * ms && world.advanceToNextEvent() {
        let blocks = world.workload.outstandingBlocks(map)
        #expect(Set(blocks).count == blocks.count)
        maxOutstanding = max(maxOutstanding, blocks.count)
        steps += 1
    }
    #expect(maxOutstanding == 6)
    #expect(steps > 1000)
    #expect(world.workload.total.anomalyCount == 0)
}

@Test func theLatencyHistogramCountsEverySuccessfulIO() {
    let world = SimWorld(seed: 3, fabric: smallFabric(), workload: WorkloadSpec())
    _ = world.load(table([devices(world)]), map: map)
    world.advance(toNs: 100 * ms)
    #expect(world.workload.latencyHistogram.reduce(0, +) == world.workload.total.completed)
    #expect(world.workload.total.latencyMaxNs <= SimOptions().ioLatencyMaxNs)
}
