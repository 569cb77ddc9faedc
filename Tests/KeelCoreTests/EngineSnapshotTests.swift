// Layout snapshots (Engine.snapshotLayout) and policy changes (Engine.setPolicy) on a live engine.
import KeelCore
import Testing

/// Six paths added out of device order, in three priority groups under group_by_prio.
private let mixedPriorities: [PathDescriptor] = [
    PathDescriptor(device: dev(96), priority: 10, portKey: 1),
    PathDescriptor(device: dev(16), priority: 50, portKey: 2),
    PathDescriptor(device: dev(80), priority: 50, portKey: 3),
    PathDescriptor(device: dev(32), priority: 1, portKey: 4),
    PathDescriptor(device: dev(64), priority: 10, portKey: 5),
    PathDescriptor(device: dev(48), priority: 50, portKey: 6),
]

private let groupByPrio = MapPolicy(grouping: .groupByPrio, failback: .immediate)

@Suite struct EngineSnapshotTests {
    @Test func snapshotLayoutSortsToTheEnginesGroupLayout() throws {
        let f = try EngineFixture(policy: groupByPrio, descriptors: mixedPriorities)
        let snapshot = LayoutSnapshot(pathsMax: 16)
        #expect(f.engine.snapshotLayout(of: f.map, into: snapshot))
        // The three groups, highest priority first, each sorted by device.
        #expect(f.engine.groupLayout(of: f.map) == [[dev(16), dev(48), dev(80)], [dev(64), dev(96)], [dev(32)]])
        #expect(snapshot.layout() == f.engine.groupLayout(of: f.map))
    }

    @Test func snapshotCarriesMapCountsAndInitialGroup() throws {
        var f = try EngineFixture(policy: groupByPrio, descriptors: mixedPriorities)
        // With the priority-50 paths down, the best usable group is the second.
        for i in [1, 2, 5] {
            _ = f.command(.failPath(f.paths[i]))
        }
        let snapshot = LayoutSnapshot(pathsMax: 16)
        #expect(f.engine.snapshotLayout(of: f.map, into: snapshot))
        #expect(snapshot.map == f.map)
        #expect(snapshot.pathCount == 6)
        #expect(snapshot.groupCount == 3)
        #expect(f.engine.initialGroup(of: f.map) == 2)
        #expect(snapshot.initialGroup == 2)
    }

    @Test func snapshotOfAMapWithMorePathsThanRoomIsRefusedAndLeftEmpty() throws {
        let f = try EngineFixture(policy: groupByPrio, descriptors: mixedPriorities)
        let other = try f.engine.addMap(policy: groupByPrio)
        _ = try f.engine.addPath(PathDescriptor(device: dev(500)), to: other, nowNs: 0)
        let snapshot = LayoutSnapshot(pathsMax: 5)
        // A map that fits first, so the refusal has something to clear.
        #expect(f.engine.snapshotLayout(of: other, into: snapshot))
        #expect(snapshot.pathCount == 1)
        #expect(!f.engine.snapshotLayout(of: f.map, into: snapshot))
        #expect(snapshot.pathCount == 0)
        #expect(snapshot.groupCount == 0)
        #expect(snapshot.initialGroup == 0)
        #expect(snapshot.layout().isEmpty)
    }

    @Test func snapshotOfAMapThatFitsExactlyIsTaken() throws {
        let f = try EngineFixture(policy: groupByPrio, descriptors: mixedPriorities)
        let snapshot = LayoutSnapshot(pathsMax: 6)
        #expect(f.engine.snapshotLayout(of: f.map, into: snapshot))
        #expect(snapshot.layout() == f.engine.groupLayout(of: f.map))
    }

    @Test func snapshotOfARemovedMapIsRefused() throws {
        let f = try EngineFixture(policy: groupByPrio, descriptors: mixedPriorities)
        try f.engine.removeMap(f.map)
        let snapshot = LayoutSnapshot(pathsMax: 16)
        #expect(!f.engine.snapshotLayout(of: f.map, into: snapshot))
        #expect(snapshot.pathCount == 0)
    }

    @Test func setPolicyReplacesTheMapsPolicy() throws {
        let f = try EngineFixture(policy: groupByPrio, descriptors: mixedPriorities)
        let next = MapPolicy(grouping: .groupByPrio, failback: .manual, noPathRetry: .queue, intervalHealthyNs: sec)
        try f.engine.setPolicy(f.map, next)
        #expect(f.engine.map(f.map)?.policy == next)
    }

    @Test func setPolicyRestartsHealthyIntervalsFromTheNewPollingInterval() throws {
        // Old profile: 5 s polling, doubling to 20 s.
        var f = try EngineFixture(policy: MapPolicy(), descriptors: [PathDescriptor(device: dev(16)), PathDescriptor(device: dev(32))])
        try f.engine.setPolicy(f.map, MapPolicy(intervalHealthyNs: 100 * ms, intervalHealthyMaxNs: 400 * ms))
        // The checks scheduled under the old profile come due within 5 s; answered up, each
        // path's interval doubles from the new 100 ms (200 ms), not from the old 5 s (10 s).
        let due = f.advance(to: 5 * sec)
        #expect(due.count == 2)
        f.answerChecks { _ in .up }
        for i in 0..<2 {
            let wait = f.engine.path(f.paths[i])!.nextCheckNs - 5 * sec
            #expect(wait > 150 * ms)
            #expect(wait <= 200 * ms)
        }
    }

    @Test func setPolicyMarksTheMapForATableReload() throws {
        var f = try EngineFixture(policy: groupByPrio, descriptors: mixedPriorities)
        #expect(!f.engine.reloadPending(f.map))
        try f.engine.setPolicy(f.map, MapPolicy(grouping: .groupByPrio, failback: .immediate, noPathRetry: .queue))
        #expect(f.engine.reloadPending(f.map))
        #expect(f.engine.nextDeadlineNs() == 0)
        f.advance(to: ms)
        #expect(f.sink.reloads == [f.map])
        #expect(!f.engine.reloadPending(f.map))
    }

    @Test func setPolicyRegroupsUnderTheNewGrouping() throws {
        let f = try EngineFixture(policy: groupByPrio, descriptors: mixedPriorities)
        try f.engine.setPolicy(f.map, MapPolicy(grouping: .multibus))
        #expect(f.engine.groupLayout(of: f.map) == [[dev(16), dev(32), dev(48), dev(64), dev(80), dev(96)]])
        #expect(f.engine.map(f.map)?.groupCount == 1)
    }

    @Test func setPolicyOnAnUnknownMapThrows() throws {
        let f = try EngineFixture(policy: groupByPrio, descriptors: mixedPriorities)
        let missing = MapHandle(index: 5)
        #expect(throws: EngineRefusal.unknownMap(missing)) {
            try f.engine.setPolicy(missing, MapPolicy())
        }
        try f.engine.removeMap(f.map)
        #expect(throws: EngineRefusal.unknownMap(f.map)) {
            try f.engine.setPolicy(f.map, MapPolicy())
        }
    }
}
