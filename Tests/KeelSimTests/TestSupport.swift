// Shared fixtures for the simulation's tests: small fabrics, tables, and a minimal path keeper.

import KeelCore
import KeelSim

/// One array, `ports` target ports, `hosts` hosts, one LUN: `ports × hosts` paths on map 0.
func smallFabric(ports: Int = 2, hosts: Int = 2, alua: AluaLayout = .allOptimized) -> FabricSpec {
    FabricSpec(arrays: 1, portsPerArray: ports, controllersPerArray: 1, hosts: hosts, lunsPerArray: 1, alua: alua)
}

/// A table with one group per inner list, in order.
func table(_ groups: [[DevNo]], queueIfNoPath: Bool = false, initialGroup: Int = 1) -> MultipathTable {
    MultipathTable(features: queueIfNoPath ? ["queue_if_no_path"] : [], initialGroup: initialGroup,
                   groups: groups.map { MultipathTable.Group(selector: "round-robin", paths: $0.map { MultipathTable.Path(device: $0) }) })
}

/// The devices of a map, in path order.
func devices(_ world: SimWorld, map: Int = 0) -> [DevNo] {
    world.mapInfo(MapHandle(index: map)).paths.map(\.device)
}

/// One workload slot on one block, a write then a read, again and again.
let singleSlotWorkload = WorkloadSpec(outstandingPerMap: 1, blocksPerLun: 1,
                                      thinkTimeMinNs: 100_000, thinkTimeMaxNs: 100_000, errorBackoffNs: 50 * Time.nsPerMs)

/// Gathers completions.
struct CompletionList: CheckCompletionSink {
    var items: [CheckCompletion] = []
    mutating func checkCompleted(_ completion: CheckCompletion) { items.append(completion) }
}

/// Collects every kernel event the world hands over.
func drainEvents(_ world: SimWorld) -> [KernelEvent] {
    var events: [KernelEvent] = []
    world.drainKernelEvents { events.append($0) }
    return events
}

/// A minimal stand-in for the engine, enough to drive a world through faults: it checks every
/// path of every loaded map each `intervalNs`, fails paths whose check is not up or ghost and
/// reinstates those that are.
struct PathKeeper {
    var world: SimWorld
    var intervalNs: Nanoseconds = 100 * Time.nsPerMs
    var checkTimeoutNs: Nanoseconds = Time.nsPerSecond
    var nextRoundNs: Nanoseconds = 0
    var token: UInt32 = 0
    var devicesByPath: [DevNo] = []

    init(world: SimWorld) {
        self.world = world
        for m in 0..<world.mapCount {
            let info = world.mapInfo(MapHandle(index: m))
            _ = world.load(table([info.paths.map(\.device)], queueIfNoPath: true), map: info.map)
            devicesByPath.append(contentsOf: info.paths.map(\.device))
        }
    }

    /// Runs the world and the keeper until `endNs`.
    mutating func run(untilNs endNs: Nanoseconds) {
        while true {
            let next = min(world.nextEventNs(), nextRoundNs)
            if next > endNs { break }
            world.advance(toNs: next)
            world.drainKernelEvents { _ in }
            var completions = CompletionList()
            var checker = world.checker
            checker.reap(nowNs: world.nowNs, into: &completions)
            var messenger = world.messenger
            for completion in completions.items {
                let device = devicesByPath[completion.path.index]
                let map = world.pathInfo(device)!.map
                let healthy = completion.result == .up || completion.result == .ghost
                let active = world.target.isActive(map, device: device) ?? false
                if healthy && !active {
                    _ = messenger.send(DMMessage(map: map, kind: .reinstatePath, device: device))
                } else if !healthy && active {
                    _ = messenger.send(DMMessage(map: map, kind: .failPath, device: device))
                }
            }
            if world.nowNs >= nextRoundNs {
                for (i, device) in devicesByPath.enumerated() {
                    token &+= 1
                    _ = checker.submit(CheckRequest(path: PathHandle(index: i), device: device, token: token,
                                                    timeoutNs: checkTimeoutNs), nowNs: world.nowNs)
                }
                nextRoundNs = world.nowNs + intervalNs
            }
        }
        world.advance(toNs: endNs)
    }
}
