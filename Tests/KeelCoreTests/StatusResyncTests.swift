// StatusResync: kernel status lines (captured on the rig's 6.1 kernel) turned into kernel events.
import KeelCore
import Testing

/// Records what the resync delivers.
private struct EventRecorder: KernelEventSink {
    var events: [KernelEvent] = []
    var times: [Nanoseconds] = []
    mutating func deliver(_ event: KernelEvent, nowNs: Nanoseconds) {
        events.append(event)
        times.append(nowNs)
    }
}

private func d(_ minor: UInt32) -> DevNo { DevNo(major: 8, minor: minor) }

private func resync(_ text: String, map: MapHandle = MapHandle(3), pathsMax: Int = 16,
                    into recorder: inout EventRecorder) throws(CodecError) -> StatusResync {
    var resync = StatusResync(pathsMax: pathsMax)
    let status = statusBytes(text)
    defer { status.deallocate() }
    try resync.resync(map: map, status: UnsafeRawBufferPointer(status), nowNs: 77, into: &recorder)
    return resync
}

/// The text in a buffer of its own, as the messenger's status buffer holds it.
private func statusBytes(_ text: String) -> UnsafeMutableRawBufferPointer {
    let bytes = Array(text.utf8)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 8)
    buffer.copyBytes(from: bytes)
    return buffer
}

/// A checker that never starts a check, for a loop used only as a sink.
private struct IdleChecker: PathCheckBackend {
    mutating func submit(_ request: CheckRequest, nowNs: Nanoseconds) -> Bool { false }
    mutating func reap<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S) {}
}

private struct CountingMessenger: MultipathMessenger {
    var sent: [DMMessage] = []
    mutating func send(_ message: DMMessage) -> Int32 { sent.append(message); return 0 }
}

private struct NoOutput: RecoveryOutput {
    mutating func record(_ record: RecoveryRecord, nowNs: Nanoseconds) {}
}

@Suite struct StatusResyncTests {
    /// `dmsetup status mpatha` under multipathd, 4 healthy paths in 3 groups (RIG.md).
    static let rigHealthy = "2 0 1 0 3 1 A 0 2 2 8:0 A 0 0 1 8:48 A 0 0 1 E 0 1 2 8:16 A 0 0 1 E 0 1 2 8:32 A 0 0 1"
    /// The same map with two paths failed, group 2 disabled and I/O queued.
    static let rigDegraded = "2 1 3 0 3 1 A 0 2 2 8:0 A 0 0 1 8:48 F 2 0 1 D 0 1 2 8:16 A 0 0 1 E 0 1 2 8:32 F 7 0 1"

    @Test func healthyRigStatusGivesEveryPathActiveThenTheGroup() throws {
        var recorder = EventRecorder()
        _ = try resync(Self.rigHealthy, into: &recorder)
        let m = MapHandle(3)
        #expect(recorder.events == [
            .pathKernelState(m, d(0), active: true),
            .pathKernelState(m, d(48), active: true),
            .pathKernelState(m, d(16), active: true),
            .pathKernelState(m, d(32), active: true),
            .mapActiveGroup(m, group: 1),
        ])
        #expect(recorder.times.allSatisfy { $0 == 77 })
    }

    @Test func failedPathsAreReportedAndQueueIOIsNotTakenForQueueing() throws {
        var recorder = EventRecorder()
        let r = try resync(Self.rigDegraded, into: &recorder)
        #expect(r.queueingIO == true)
        let m = MapHandle(3)
        #expect(recorder.events == [
            .pathKernelState(m, d(0), active: true),
            .pathKernelState(m, d(48), active: false),
            .pathKernelState(m, d(16), active: true),
            .pathKernelState(m, d(32), active: false),
            .mapActiveGroup(m, group: 1),
        ])
    }

    @Test func activeGroupIsTheOneInStateAEvenWhenNextGroupDiffers() throws {
        var recorder = EventRecorder()
        let status = "2 0 0 0 3 1 E 0 1 2 8:0 F 1 0 1 A 0 1 2 8:16 A 0 0 1 E 0 1 2 8:32 A 0 0 1"
        let r = try resync(status, into: &recorder)
        #expect(r.activeGroup == 2 && r.nextGroup == 1)
        #expect(recorder.events.last == .mapActiveGroup(MapHandle(3), group: 2))
    }

    @Test func withoutAnActiveGroupTheNextGroupIsReported() throws {
        var recorder = EventRecorder()
        let status = "2 1 0 0 3 3 E 0 1 2 8:0 F 1 0 1 E 0 1 2 8:16 F 1 0 1 E 0 1 2 8:32 F 1 0 1"
        _ = try resync(status, into: &recorder)
        #expect(recorder.events.last == .mapActiveGroup(MapHandle(3), group: 3))
    }

    @Test func mapWithoutGroupsGetsNoGroupEvent() throws {
        var recorder = EventRecorder()
        _ = try resync("2 0 0 0 0 0", into: &recorder)
        #expect(recorder.events.isEmpty)
    }

    @Test func malformedStatusDeliversNothing() {
        var recorder = EventRecorder()
        // The last path's state is neither A nor F: the paths before it must not reach the sink.
        #expect(throws: CodecError.self) {
            _ = try resync("2 0 1 0 2 1 A 0 1 2 8:0 A 0 0 1 E 0 1 2 8:16 X 0 0 1", into: &recorder)
        }
        #expect(recorder.events.isEmpty)
    }

    @Test func pathsPastTheBufferAreCountedAndNotDelivered() throws {
        var recorder = EventRecorder()
        let r = try resync(Self.rigHealthy, pathsMax: 3, into: &recorder)
        #expect(r.pathCount == 3)
        #expect(r.pathsDropped == 1)
        #expect(recorder.events.count == 3 + 1)
    }

    @Test func beginForgetsThePreviousStatus() throws {
        var recorder = EventRecorder()
        var r = try resync(Self.rigHealthy, into: &recorder)
        r.begin(map: MapHandle(5))
        var second = EventRecorder()
        r.deliver(to: &second, nowNs: 1)
        #expect(second.events.isEmpty)
        #expect(r.map == MapHandle(5))
    }

    @Test func recoveryLoopTakesTheEventsAndLearnsAFailedPath() throws {
        let engine = Engine(capacities: Capacities(pathsMax: 8, mapsMax: 2, pathsPerMapMax: 8, ringSlots: 16))
        var policy = MapPolicy()
        policy.grouping = .groupByPrio
        let map = try engine.addMap(policy: policy)
        for (minor, prio) in [(UInt32(0), Int32(50)), (48, 50), (16, 10), (32, 1)] {
            _ = try engine.addPath(PathDescriptor(device: d(minor), priority: prio), to: map, nowNs: 0)
        }
        var loop = RecoveryLoop(engine: engine, checker: IdleChecker(), messenger: CountingMessenger(), output: NoOutput())
        loop.step(nowNs: 0)
        loop.tableLoaded(map, initialGroup: 1, queueing: false, nowNs: 0)
        let p48 = try #require(engine.pathHandle(for: d(48)))
        #expect(engine.path(p48)?.kernelActive == true)

        var resync = StatusResync(pathsMax: 8)
        let status = statusBytes(Self.rigDegraded)
        defer { status.deallocate() }
        try resync.resync(map: map, status: UnsafeRawBufferPointer(status), nowNs: Time.nsPerMs, into: &loop)
        #expect(engine.path(p48)?.kernelActive == false)
        #expect(engine.path(try #require(engine.pathHandle(for: d(0))))?.kernelActive == true)
        // queue_io (I/O held for pg_init) is not queue_if_no_path: no queueing message follows.
        #expect(!loop.messenger.sent.contains { $0.kind == .failIfNoPath || $0.kind == .queueIfNoPath })
    }
}
