// The resync's recovery-plane part allocates nothing: a map's status scanned into StatusResync and
// delivered to a recovery loop.
import KeelCore
import Testing

/// Counts what reaches it; fixed-size.
private struct EventTally: KernelEventSink {
    var paths = 0
    var failed = 0
    var groups = 0
    var queueing = 0
    mutating func deliver(_ event: KernelEvent, nowNs: Nanoseconds) {
        switch event {
        case .pathKernelState(_, _, let active):
            paths += 1
            if !active { failed += 1 }
        case .mapActiveGroup: groups += 1
        case .mapQueueing: queueing += 1
        case .pathFailed: break
        }
    }
}

private struct IdleChecker: PathCheckBackend {
    mutating func submit(_ request: CheckRequest, nowNs: Nanoseconds) -> Bool { false }
    mutating func reap<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S) {}
}

private struct SilentMessenger: MultipathMessenger {
    var sent = 0
    mutating func send(_ message: DMMessage) -> Int32 { sent += 1; return 0 }
}

private struct DiscardingOutput: RecoveryOutput {
    var records = 0
    mutating func record(_ record: RecoveryRecord, nowNs: Nanoseconds) { records += 1 }
}

@Suite(.serialized) struct AssemblyAllocationTests {
    static let statusText = "2 1 3 0 3 1 A 0 2 2 8:0 A 0 0 1 8:48 F 2 0 1 D 0 1 2 8:16 A 0 0 1 E 0 1 2 8:32 F 7 0 1"

    static func statusBuffer() -> UnsafeMutableRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        buffer.copyBytes(from: Array(statusText.utf8))
        return buffer
    }

    @Test func statusResyncIntoASinkAllocatesNothing() {
        let buffer = Self.statusBuffer()
        defer { buffer.deallocate() }
        let status = UnsafeRawBufferPointer(buffer)
        var resync = StatusResync(pathsMax: 16)
        var tally = EventTally()
        var failures = 0
        func resyncOnce() {
            do throws(CodecError) {
                try resync.resync(map: MapHandle(0), status: status, nowNs: 1, into: &tally)
            } catch {
                failures += 1
            }
        }
        resyncOnce()
        #expect(tally.paths == 4 && tally.failed == 2 && tally.groups == 1 && tally.queueing == 0)
        let mallocs = mallocCount(iterations: 100_000) { resyncOnce() }
        #expect(mallocs == 0)
        #expect(failures == 0)
    }

    @Test func statusResyncIntoARecoveryLoopAllocatesNothing() throws {
        let buffer = Self.statusBuffer()
        defer { buffer.deallocate() }
        let status = UnsafeRawBufferPointer(buffer)
        let engine = Engine(capacities: Capacities(pathsMax: 8, mapsMax: 2, pathsPerMapMax: 8, ringSlots: 16))
        let map = try engine.addMap(policy: MapPolicy(grouping: .groupByPrio, noPathRetry: .queue))
        for (minor, prio) in [(UInt32(0), Int32(50)), (48, 50), (16, 10), (32, 1)] {
            _ = try engine.addPath(PathDescriptor(device: DevNo(major: 8, minor: minor), priority: prio), to: map, nowNs: 0)
        }
        var loop = RecoveryLoop(engine: engine, checker: IdleChecker(), messenger: SilentMessenger(), output: DiscardingOutput())
        loop.step(nowNs: 0)
        loop.tableLoaded(map, initialGroup: 1, queueing: true, nowNs: 0)
        var resync = StatusResync(pathsMax: 8)
        var failures = 0
        var nowNs: Nanoseconds = 1
        func resyncOnce() {
            nowNs += 1
            do throws(CodecError) {
                try resync.resync(map: map, status: status, nowNs: nowNs, into: &loop)
            } catch {
                failures += 1
            }
        }
        resyncOnce()
        let mallocs = mallocCount(iterations: 100_000) { resyncOnce() }
        #expect(mallocs == 0)
        #expect(failures == 0)
    }
}
