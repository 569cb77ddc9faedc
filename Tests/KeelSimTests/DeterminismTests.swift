// Same seed, same run; another seed, another run.

import KeelCore
import KeelSim
import Testing

private func traceOfRun(seed: UInt64) -> (trace: [SimTraceEntry], digest: UInt64, stats: WorkloadStats) {
    let fabric = FabricSpec(arrays: 1, portsPerArray: 2, controllersPerArray: 2, hosts: 2, lunsPerArray: 2)
    let world = SimWorld(seed: seed, fabric: fabric, workload: WorkloadSpec(), options: SimOptions(recordsTrace: true))
    var keeper = PathKeeper(world: world)
    world.schedule(.arrayNDU(array: 0, in: fabric, startNs: 300 * Time.nsPerMs, outageNs: 500 * Time.nsPerMs,
                             portReturnSpacingNs: 100 * Time.nsPerMs))
    keeper.run(untilNs: 2 * Time.nsPerSecond)
    return (world.trace, world.traceDigest, world.workload.total)
}

@Test func theSameSeedGivesTheSameTrace() {
    let a = traceOfRun(seed: 1234)
    let b = traceOfRun(seed: 1234)
    #expect(a.trace.count > 1000)
    #expect(a.trace == b.trace)
    #expect(a.digest == b.digest)
    #expect(a.stats == b.stats)
}

@Test func differentSeedsGiveDifferentTraces() {
    let a = traceOfRun(seed: 1)
    let b = traceOfRun(seed: 2)
    #expect(a.digest != b.digest)
    #expect(a.trace != b.trace)
}

@Test func aRideThroughWithQueueingLosesNoIOAndNoData() {
    let run = traceOfRun(seed: 99)
    #expect(run.stats.anomalyCount == 0)
    #expect(run.stats.completed > 1000)
    // The outage held I/O queued for at least the 500 ms window.
    #expect(run.stats.latencyMaxNs >= 500 * Time.nsPerMs)
}
