// Zero-allocation proof for the recovery path: check result in -> decision -> dm message out.
import Testing
import KeelCore

/// A checker that answers every check on the next step, alternating down and up per path, so
/// every step makes the engine fail or reinstate paths. Preallocated; never allocates.
struct FlipChecker: PathCheckBackend {
    let pending: UnsafeMutableBufferPointer<CheckCompletion>
    var count = 0
    var flip = false

    init(capacity: Int) { pending = .allocate(capacity: capacity) }

    mutating func submit(_ request: CheckRequest, nowNs: Nanoseconds) -> Bool {
        guard count < pending.count else { return false }
        flip.toggle()
        pending[count] = CheckCompletion(path: request.path, token: request.token, result: flip ? .down : .up)
        count += 1
        return true
    }

    mutating func reap<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S) {
        for i in 0..<count { sink.checkCompleted(pending[i]) }
        count = 0
    }
}

/// Counts messages like a kernel that accepts everything.
struct CountingMessenger: MultipathMessenger {
    var sent = 0
    mutating func send(_ message: DMMessage) -> Int32 { sent += 1; return 0 }
}

/// Keeps the last record, as a ring producer would copy it out.
struct LastRecordOutput: RecoveryOutput {
    var records = 0
    var last: RecoveryRecord? = nil
    mutating func record(_ record: RecoveryRecord, nowNs: Nanoseconds) { records += 1; last = record }
}

@Suite(.serialized) struct EngineAllocationTests {
    @Test func recoveryLoopStepsAllocateNothing() throws {
        let engine = Engine(capacities: Capacities(pathsMax: 64, mapsMax: 4, pathsPerMapMax: 16, ringSlots: 64))
        // Fast probes of 1 ms so that every step has checks completing and paths flipping.
        let policy = MapPolicy(grouping: .groupByPrio, failback: .immediate, noPathRetry: .retries(2),
                               flapDamping: FlapDamping(threshold: 3, forgetRate: 2, recoveryTimeNs: 5 * Time.nsPerMs),
                               intervalFastNs: Time.nsPerMs, intervalHealthyNs: Time.nsPerMs,
                               intervalHealthyMaxNs: 4 * Time.nsPerMs, checkTimeoutNs: 10 * Time.nsPerMs)
        var loop = RecoveryLoop(engine: engine, checker: FlipChecker(capacity: 64), messenger: CountingMessenger(), output: LastRecordOutput())
        for m in 0..<4 {
            let map = try engine.addMap(policy: policy)
            for p in 0..<16 {
                _ = try engine.addPath(PathDescriptor(device: DevNo(major: 8, minor: UInt32(m * 256 + p * 16)), priority: p % 2 == 0 ? 50 : 10,
                                                      portKey: UInt32(p % 4)), to: map, nowNs: 0)
            }
            loop.tableLoaded(map, initialGroup: 1, queueing: true, nowNs: 0)
        }
        var nowNs: Nanoseconds = 0
        loop.step(nowNs: nowNs)
        let mallocs = mallocCount(iterations: 1_000_000) {
            nowNs += 500_000
            loop.step(nowNs: nowNs)
            loop.deliver(.pathFailed(MapHandle(0), DevNo(major: 8, minor: 16)), nowNs: nowNs)
        }
        #expect(mallocs == 0)
        // The loop really worked: it failed and reinstated paths all along.
        #expect(engine.counters.pathsFailed > 100_000)
        #expect(engine.counters.pathsReinstated > 100_000)
        #expect(loop.messenger.sent > 200_000)
    }
}
