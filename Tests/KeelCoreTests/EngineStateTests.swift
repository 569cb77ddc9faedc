// Specification of the path state machine: checks, kernel events, operator commands, capacities.
import Testing
import KeelCore

@Suite struct EngineStateTests {
    let policy = MapPolicy(grouping: .multibus, failback: .immediate, noPathRetry: .queue,
                           intervalFastNs: 200 * Time.nsPerMs, intervalHealthyNs: 5 * Time.nsPerSecond,
                           intervalHealthyMaxNs: 20 * Time.nsPerSecond, checkTimeoutNs: 3 * Time.nsPerSecond)
    func fixture(_ n: Int, portKeys: [UInt32]? = nil) throws -> EngineFixture {
        try EngineFixture(policy: policy, descriptors: (0..<n).map {
            PathDescriptor(device: dev(UInt32($0) * 16), priority: 50, portKey: portKeys?[$0] ?? UInt32($0))
        })
    }

    @Test func aNewPathIsCheckedAtOnceAndTheMapIsReloaded() throws {
        let engine = Engine(capacities: Capacities(pathsMax: 8, mapsMax: 2, pathsPerMapMax: 8, ringSlots: 8))
        let map = try engine.addMap(policy: policy)
        let p = try engine.addPath(PathDescriptor(device: dev(0)), to: map, nowNs: 0)
        var sink = RecordingSink()
        engine.tick(nowNs: 0, sink: &sink)
        #expect(sink.checks.map(\.path) == [p])
        #expect(sink.reloads == [map])
    }

    @Test func aHealthyPathBacksOffToTheSlowInterval() throws {
        var f = try fixture(1)
        var intervals: [Nanoseconds] = []
        var last: Nanoseconds = 0
        for _ in 0..<4 {
            let due = f.engine.path(f.paths[0])!.nextCheckNs
            intervals.append(due - last)
            last = due
            f.advance(to: due)
            f.answerChecks { _ in .up }
        }
        // Each interval is the nominal one (5 s doubling to 20 s) less at most an eighth of it,
        // a fixed share per path that keeps paths added together from being checked together.
        let nominal: [Nanoseconds] = [5 * sec, 10 * sec, 20 * sec, 20 * sec]
        for (got, want) in zip(intervals, nominal) {
            #expect(got <= want && got >= want - want / 8)
        }
        #expect(intervals[2] == intervals[3])
        #expect(f.sink.messages.isEmpty)
    }

    @Test func healthyChecksOfManyPathsAreSpreadOut() throws {
        let f = try EngineFixture(policy: policy, descriptors: (0..<32).map { PathDescriptor(device: dev(UInt32($0) * 16), portKey: UInt32($0)) },
                                  capacities: Capacities(pathsMax: 64, mapsMax: 8, pathsPerMapMax: 64, ringSlots: 64))
        let due = Set(f.paths.map { f.engine.path($0)!.nextCheckNs / ms })
        #expect(due.count > 16)
    }

    @Test func aFailedCheckFailsThePathAndProbesItFast() throws {
        var f = try fixture(2)
        f.advance(to: 5 * sec)
        f.answerChecks { $0 == 0 ? .down : .up }
        #expect(f.sink.messages.contains(DMMessage(map: f.map, kind: .failPath, device: dev(0))))
        #expect(f.state(0) == .down)
        #expect(!f.kernelActive(0))
        #expect(f.engine.path(f.paths[0])!.nextCheckNs == 5 * sec + 200 * ms)
    }

    @Test func aReturningPathIsReinstatedWithinOneFastInterval() throws {
        var f = try fixture(1)
        f.advance(to: 5 * sec)
        f.answerChecks { _ in .down }
        let actions = f.run(until: 5 * sec + 200 * ms) { _ in .up }
        #expect(messages(actions) == [DMMessage(map: f.map, kind: .reinstatePath, device: dev(0))])
        #expect(f.state(0) == .up && f.kernelActive(0))
    }

    @Test func aTimeoutCountsAsDown() throws {
        var f = try fixture(1)
        f.advance(to: 5 * sec)
        f.answerChecks { _ in .timeout }
        #expect(f.state(0) == .down)
    }

    @Test func pendingKeepsTheKernelStateAndProbesFast() throws {
        var f = try fixture(1)
        f.advance(to: 5 * sec)
        f.answerChecks { _ in .pending }
        #expect(f.state(0) == .pending)
        #expect(f.kernelActive(0))
        #expect(f.sink.messages.isEmpty)
        #expect(f.engine.path(f.paths[0])!.nextCheckNs == 5 * sec + 200 * ms)
    }

    @Test func aStaleCompletionIsIgnored() throws {
        var f = try fixture(1)
        f.advance(to: 5 * sec)
        let request = f.sink.checks[0]
        f.deliverCompletion(CheckCompletion(path: request.path, token: request.token &+ 99, result: .down))
        #expect(f.state(0) == .up)
        #expect(f.engine.counters.staleCompletions == 1)
    }

    @Test func aCheckThatNeverAnswersIsTimedOutByTheEngine() throws {
        var f = try fixture(1)
        f.advance(to: 5 * sec)
        let request = f.sink.checks[0]
        // No answer: the guard fires one fast interval after the check's own timeout.
        f.advance(to: 5 * sec + 3 * sec + 200 * ms - 1)
        #expect(f.state(0) == .up)
        f.advance(to: 5 * sec + 3 * sec + 200 * ms)
        #expect(f.state(0) == .down)
        #expect(f.engine.counters.checksTimedOutByEngine == 1)
        // The late answer is stale.
        f.deliverCompletion(CheckCompletion(path: request.path, token: request.token, result: .up))
        #expect(f.state(0) == .down)
    }

    @Test func aKernelFailureProbesThePathAndItsPortSiblingsAtOnce() throws {
        var f = try fixture(4, portKeys: [7, 7, 8, 7])
        f.advance(to: 1 * sec)
        f.deliver(KernelEvent.pathFailed(f.map, dev(0)))
        let due = f.advance(to: 1 * sec).map(\.path)
        #expect(Set(due) == [f.paths[0], f.paths[1], f.paths[3]])
        #expect(!f.kernelActive(0))
    }

    @Test func aKernelFailedPathThatChecksUpIsReinstated() throws {
        var f = try fixture(2)
        f.nowNs = 1 * sec
        f.deliver(KernelEvent.pathFailed(f.map, dev(0)))
        f.advance(to: 1 * sec)
        f.answerChecks { _ in .up }
        #expect(f.sink.messages.contains(DMMessage(map: f.map, kind: .reinstatePath, device: dev(0))))
    }

    @Test func resyncFailsAPathTheKernelStillRoutesTo() throws {
        var f = try fixture(2)
        f.advance(to: 5 * sec)
        f.answerChecks { $0 == 1 ? .down : .up }
        f.sink.clear()
        f.deliver(KernelEvent.pathKernelState(f.map, dev(16), active: true))
        #expect(f.sink.messages == [DMMessage(map: f.map, kind: .failPath, device: dev(16))])
    }

    @Test func anUnknownDeviceEventIsCountedNotApplied() throws {
        var f = try fixture(1)
        f.deliver(KernelEvent.pathFailed(f.map, dev(999)))
        #expect(f.engine.counters.unknownDeviceEvents == 1)
    }

    @Test func anOperatorFailedPathStaysFailedUntilReinstated() throws {
        var f = try fixture(2)
        let outcome1 = f.command(OperatorCommand.failPath(f.paths[0]))
        #expect(outcome1 == .done)
        #expect(f.sink.messages == [DMMessage(map: f.map, kind: .failPath, device: dev(0))])
        _ = f.run(until: 30 * sec) { _ in .up }
        #expect(f.state(0) == .operatorFailed)
        #expect(!f.kernelActive(0))
        _ = f.command(OperatorCommand.reinstatePath(f.paths[0]))
        let actions = f.run(until: f.nowNs + 20 * ms) { _ in .up }
        #expect(messages(actions).contains(DMMessage(map: f.map, kind: .reinstatePath, device: dev(0))))
        #expect(f.state(0) == .up)
    }

    @Test func anOperatorReinstateOfADeadPathDoesNotReinstateIt() throws {
        var f = try fixture(2)
        _ = f.command(OperatorCommand.failPath(f.paths[0]))
        _ = f.command(OperatorCommand.reinstatePath(f.paths[0]))
        let actions = f.run(until: 1 * sec) { $0 == 0 ? .down : .up }
        #expect(!messages(actions).contains { $0.kind == .reinstatePath })
        #expect(f.state(0) == .down)
    }

    @Test func tableLoadReFailsPathsKnownDown() throws {
        var f = try fixture(2)
        f.advance(to: 5 * sec)
        f.answerChecks { $0 == 0 ? .down : .up }
        f.sink.clear()
        f.engine.tableLoaded(f.map, initialGroup: 1, queueing: true, nowNs: f.nowNs, sink: &f.sink)
        #expect(f.sink.messages == [DMMessage(map: f.map, kind: .failPath, device: dev(0))])
    }

    @Test func removingAPathReleasesItsSlotAndReloadsTheMap() throws {
        var f = try fixture(2)
        try f.engine.removePath(f.paths[0], nowNs: 0)
        #expect(f.engine.path(f.paths[0]) == nil)
        #expect(f.engine.pathHandle(for: dev(0)) == nil)
        f.advance(to: 1)
        #expect(f.sink.reloads == [f.map])
        #expect(f.engine.groupLayout(of: f.map) == [[dev(16)]])
        _ = try f.engine.addPath(PathDescriptor(device: dev(0)), to: f.map, nowNs: 1)
        #expect(f.engine.pathCount == 2)
    }

    @Test func checkRefusedByTheBackendIsRetriedAtTheFastInterval() throws {
        var f = try fixture(1)
        f.advance(to: 5 * sec)
        f.engine.checkRefused(f.sink.checks[0], nowNs: f.nowNs)
        #expect(f.engine.path(f.paths[0])!.nextCheckNs == 5 * sec + 200 * ms)
        #expect(!f.engine.path(f.paths[0])!.checkInFlight)
    }

    @Test func aCheckTheBackendNeverSentLeavesAHealthyPathAloneAndIsAskedAgainSoon() throws {
        var f = try fixture(1)
        _ = f.run(until: 1 * sec) { _ in .up }
        #expect(f.state(0) == .up)
        // Run on to the next check and answer it "not started" (the backend gave it up unsent).
        var requests: [CheckRequest] = []
        var t = f.nowNs
        while requests.isEmpty && t < 60 * sec { t += 10 * ms; requests = f.advance(to: t) }
        #expect(requests.count == 1)
        let refusedBefore = f.engine.counters.checksRefusedByBackend
        f.answerChecks { _ in .notStarted }
        #expect(f.sink.actions.isEmpty)
        #expect(f.state(0) == .up)
        #expect(f.kernelActive(0))
        #expect(!f.engine.path(f.paths[0])!.checkInFlight)
        #expect(f.engine.path(f.paths[0])!.nextCheckNs == t + 200 * ms)
        #expect(f.engine.counters.checksRefusedByBackend == refusedBefore + 1)
    }

    @Test func capacitiesAreEnforcedByRefusal() throws {
        let engine = Engine(capacities: Capacities(pathsMax: 3, mapsMax: 2, pathsPerMapMax: 2, ringSlots: 8))
        let a = try engine.addMap(policy: policy)
        let b = try engine.addMap(policy: policy)
        #expect(throws: EngineRefusal.mapTableFull(capacity: 2)) { _ = try engine.addMap(policy: policy) }
        _ = try engine.addPath(PathDescriptor(device: dev(0)), to: a, nowNs: 0)
        #expect(throws: EngineRefusal.duplicateDevice(dev(0))) { _ = try engine.addPath(PathDescriptor(device: dev(0)), to: b, nowNs: 0) }
        _ = try engine.addPath(PathDescriptor(device: dev(16)), to: a, nowNs: 0)
        #expect(throws: EngineRefusal.mapFull(a, capacity: 2)) { _ = try engine.addPath(PathDescriptor(device: dev(32)), to: a, nowNs: 0) }
        _ = try engine.addPath(PathDescriptor(device: dev(32)), to: b, nowNs: 0)
        #expect(throws: EngineRefusal.pathTableFull(capacity: 3)) { _ = try engine.addPath(PathDescriptor(device: dev(48)), to: b, nowNs: 0) }
        #expect(engine.counters.refusals == 4)
        try engine.removeMap(a)
        #expect(engine.pathCount == 1)
        _ = try engine.addMap(policy: policy)
    }

    @Test("a map removed with a reload queued, its slot reused before the tick, is reloaded once")
    func removedMapsQueuedReloadGoesWithIt() throws {
        let engine = Engine(capacities: Capacities(pathsMax: 4, mapsMax: 1, pathsPerMapMax: 4, ringSlots: 8))
        let a = try engine.addMap(policy: policy)
        _ = try engine.addPath(PathDescriptor(device: dev(0)), to: a, nowNs: 0)
        try engine.removeMap(a)
        let b = try engine.addMap(policy: policy)
        #expect(b.index == a.index, "the slot is reused")
        _ = try engine.addPath(PathDescriptor(device: dev(16)), to: b, nowNs: 0)
        var sink = RecordingSink()
        engine.tick(nowNs: 0, sink: &sink)
        #expect(sink.reloads == [b])
    }
}
