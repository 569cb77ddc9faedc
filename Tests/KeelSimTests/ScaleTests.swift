// The fabric scales to 16,384 paths with unique devices, and such a world builds and runs quickly.

import KeelCore
import KeelSim
import Testing

private let bigFabric = FabricSpec(arrays: 4, portsPerArray: 4, controllersPerArray: 2, hosts: 4, lunsPerArray: 256)

@Test func sixteenThousandPathsHaveUniqueDevicesAndSharedPortKeys() {
    let world = SimWorld(seed: 1, fabric: bigFabric, workload: .none)
    let maps = world.maps
    #expect(maps.count == 1024)
    #expect(maps.allSatisfy { $0.paths.count == 16 })
    let all = maps.flatMap(\.paths)
    #expect(all.count == 16_384)
    #expect(Set(all.map(\.device)).count == 16_384)
    // 4 hosts x 16 target ports: 64 host/target port pairs, each shared by the 256 LUNs of its array.
    #expect(Set(all.map(\.info.portKey)).count == 64)
    #expect(all.allSatisfy { world.pathInfo($0.device) == $0.info })
    #expect(Set(all.map(\.priority)) == [50, 10])
}

@Test func sixteenThousandPathsBuildLoadAndRunQuickly() {
    let clock = ContinuousClock()
    let start = clock.now
    let world = SimWorld(seed: 1, fabric: bigFabric, workload: WorkloadSpec(outstandingPerMap: 1, blocksPerLun: 4))
    for info in world.maps {
        #expect(world.load(table([info.paths.map(\.device)], queueIfNoPath: true), map: info.map) == 0)
    }
    world.schedule(.arrayNDU(array: 0, in: bigFabric, startNs: 10 * Time.nsPerMs, outageNs: 20 * Time.nsPerMs,
                             portReturnSpacingNs: Time.nsPerMs))
    world.advance(toNs: 50 * Time.nsPerMs)
    let elapsed = clock.now - start
    #expect(world.workload.total.completed > 1024)
    #expect(elapsed < .seconds(20))
}
