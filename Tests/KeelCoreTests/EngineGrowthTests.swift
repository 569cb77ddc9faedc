// Tables that grow in place: the engine refuses past what it adopted, takes new handles without
// moving live ones, and the sizing rule.
import Testing
import KeelCore

@Suite struct EngineGrowthTests {
    let policy = MapPolicy(grouping: .multibus, failback: .immediate, noPathRetry: .queue,
                           intervalFastNs: 200 * Time.nsPerMs, intervalHealthyNs: 5 * Time.nsPerSecond,
                           intervalHealthyMaxNs: 20 * Time.nsPerSecond, checkTimeoutNs: 3 * Time.nsPerSecond)
    let ceilings = Capacities(pathsMax: 64, mapsMax: 8, pathsPerMapMax: 64, ringSlots: 64)

    @Test func aFullTableIsRefusedUntilTheNewHandlesAreAdoptedAndLivePathsKeepTheirState() throws {
        let engine = Engine(capacities: ceilings, initial: (paths: 4, maps: 1))
        #expect(engine.pathCapacity == 4 && engine.mapCapacity == 1)
        let map = try engine.addMap(policy: policy)
        #expect(throws: EngineRefusal.mapTableFull(capacity: 1)) { try engine.addMap(policy: policy) }
        var paths: [PathHandle] = []
        for i in 0..<4 { paths.append(try engine.addPath(PathDescriptor(device: dev(UInt32(i) * 16)), to: map, nowNs: 0)) }
        #expect(throws: EngineRefusal.pathTableFull(capacity: 4)) {
            try engine.addPath(PathDescriptor(device: dev(100)), to: map, nowNs: 0)
        }
        // The first path goes down before the growth; its state and its timer must survive it.
        var sink = RecordingSink()
        engine.tick(nowNs: 0, sink: &sink)
        for request in sink.checks {
            engine.handle(CheckCompletion(path: request.path, token: request.token, result: request.path == paths[0] ? .down : .up),
                          nowNs: 0, sink: &sink)
        }
        let before = paths.map { engine.path($0)! }

        // Preparing alone (the growing thread's half) changes nothing the owner sees.
        engine.arenas.prepare(paths: 8, maps: 2)
        #expect(engine.pathCapacity == 4)
        #expect(throws: EngineRefusal.pathTableFull(capacity: 4)) {
            try engine.addPath(PathDescriptor(device: dev(100)), to: map, nowNs: 0)
        }
        engine.adopt(paths: 8, maps: 2)
        #expect(engine.pathCapacity == 8 && engine.mapCapacity == 2)
        for (p, record) in zip(paths, before) {
            let now = try #require(engine.path(p))
            #expect(now.state == record.state && now.nextCheckNs == record.nextCheckNs && now.map == record.map)
        }
        var added: [PathHandle] = []
        for i in 0..<4 { added.append(try engine.addPath(PathDescriptor(device: dev(200 + UInt32(i))), to: map, nowNs: 0)) }
        #expect(added.map(\.index) == [4, 5, 6, 7], "new handles are handed out lowest first")
        #expect(throws: EngineRefusal.pathTableFull(capacity: 8)) {
            try engine.addPath(PathDescriptor(device: dev(300)), to: map, nowNs: 0)
        }
        let second = try engine.addMap(policy: policy)
        #expect(second.index == 1)
        // The down path is still checked on its schedule after the growth.
        sink.clear()
        engine.tick(nowNs: 60 * Time.nsPerSecond, sink: &sink)
        #expect(sink.checks.contains { $0.path == paths[0] })
        #expect(sink.checks.contains { $0.path == added[3] })
    }

    @Test func adoptingLessThanTheCapacityChangesNothing() throws {
        let engine = Engine(capacities: ceilings, initial: (paths: 8, maps: 2))
        engine.adopt(paths: 4, maps: 1)
        #expect(engine.pathCapacity == 8 && engine.mapCapacity == 2)
    }

    @Test func tablesAreSizedAtTwiceWhatWasFoundBetweenTheFloorAndTheCeiling() {
        #expect(TableSizing.capacity(for: 4, floor: 64, ceiling: 16_384) == 64)
        #expect(TableSizing.capacity(for: 256, floor: 64, ceiling: 16_384) == 512)
        #expect(TableSizing.capacity(for: 1_000, floor: 64, ceiling: 16_384) == 2_048)
        #expect(TableSizing.capacity(for: 10_000, floor: 64, ceiling: 16_384) == 16_384)
        #expect(TableSizing.capacity(for: 100, floor: 64, ceiling: 150) == 150)
        #expect(TableSizing.capacity(for: 0, floor: 16, ceiling: 4_096) == 16)
    }

    @Test func aWheelGrownInPlaceKeepsItsDeadlines() {
        let entries = TimerWheel.Entries(ceiling: 16, memory: .heap)
        var wheel = TimerWheel(capacity: 2, slotCount: 8, tickNs: 10, entries: entries)
        wheel.schedule(1, atNs: 50)
        entries.prepare(upTo: 8)
        wheel.adopt(capacity: 8)
        wheel.schedule(7, atNs: 30)
        var fired: [Int] = []
        wheel.advance(toNs: 100) { fired.append($0) }
        #expect(fired.sorted() == [1, 7])
    }
}
