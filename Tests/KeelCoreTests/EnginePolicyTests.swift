// Specification of grouping, failback, no_path_retry, queueing commands and flap damping.
import Testing
import KeelCore

@Suite struct GroupingTests {
    func layout(_ grouping: GroupingPolicy, _ ds: [PathDescriptor]) throws -> [[DevNo]] {
        let f = try EngineFixture(policy: MapPolicy(grouping: grouping), descriptors: ds)
        return f.engine.groupLayout(of: f.map)
    }
    let ds = [
        PathDescriptor(device: dev(0), priority: 10, serialKey: 2, nodeKey: 5),
        PathDescriptor(device: dev(16), priority: 50, serialKey: 1, nodeKey: 5),
        PathDescriptor(device: dev(32), priority: 1, serialKey: 2, nodeKey: 6),
        PathDescriptor(device: dev(48), priority: 50, serialKey: 1, nodeKey: 6),
    ]

    @Test func failoverPutsOnePathInEachGroupBestFirst() throws {
        #expect(try layout(.failover, ds) == [[dev(16)], [dev(48)], [dev(0)], [dev(32)]])
    }
    @Test func multibusPutsEveryPathInOneGroup() throws {
        #expect(try layout(.multibus, ds) == [[dev(0), dev(16), dev(32), dev(48)]])
    }
    @Test func groupByPrioMakesOneGroupPerPriorityHighestFirst() throws {
        #expect(try layout(.groupByPrio, ds) == [[dev(16), dev(48)], [dev(0)], [dev(32)]])
    }
    @Test func groupBySerialOrdersGroupsByMeanPriority() throws {
        #expect(try layout(.groupBySerial, ds) == [[dev(16), dev(48)], [dev(0), dev(32)]])
    }
    @Test func groupByNodeNameGroupsByTargetNode() throws {
        // node 5: mean (10+50)/2 = 30; node 6: (1+50)/2 = 25.5
        #expect(try layout(.groupByNodeName, ds) == [[dev(0), dev(16)], [dev(32), dev(48)]])
    }
    @Test func groupByTPGMakesOneGroupPerTargetPortGroup() throws {
        let ports = [
            PathDescriptor(device: dev(0), priority: 50, tpgKey: 2),
            PathDescriptor(device: dev(16), priority: 10, tpgKey: 3),
            PathDescriptor(device: dev(32), priority: 50, tpgKey: 2),
            PathDescriptor(device: dev(48), priority: 50, tpgKey: 3),
        ]
        // Port group 1 (key 2): mean 50, first; port group 2 (key 3): mean 30. group_by_prio
        // would have put sdd with the first group's paths.
        #expect(try layout(.groupByTPG, ports) == [[dev(0), dev(32)], [dev(16), dev(48)]])
        #expect(try layout(.groupByPrio, ports) == [[dev(0), dev(32), dev(48)], [dev(16)]])
    }
    @Test func theInitialGroupIsTheBest() throws {
        let f = try EngineFixture(policy: MapPolicy(grouping: .groupByPrio), descriptors: ds)
        #expect(f.engine.initialGroup(of: f.map) == 1)
    }
}

@Suite struct FailbackTests {
    // Two groups by priority: sda (50) in group 1, sdb (10) in group 2.
    func fixture(_ failback: Failback) throws -> EngineFixture {
        try EngineFixture(policy: MapPolicy(grouping: .groupByPrio, failback: failback, noPathRetry: .queue,
                                            intervalFastNs: 200 * ms, intervalHealthyNs: 1 * sec, intervalHealthyMaxNs: 1 * sec),
                          descriptors: [PathDescriptor(device: dev(0), priority: 50, portKey: 1),
                                        PathDescriptor(device: dev(16), priority: 10, portKey: 2)])
    }
    /// Fails group 1's path, then lets the kernel report it moved to group 2.
    func failFirstGroup(_ f: inout EngineFixture) {
        _ = f.run(until: 1 * sec) { $0 == 0 ? .down : .up }
        f.deliver(KernelEvent.mapActiveGroup(f.map, group: 2))
    }

    @Test func immediateSwitchesBackAsSoonAsTheBestGroupReturns() throws {
        var f = try fixture(.immediate)
        failFirstGroup(&f)
        let actions = f.run(until: 1 * sec + 200 * ms) { _ in .up }
        #expect(messages(actions).contains(DMMessage(map: f.map, kind: .switchGroup, group: 1)))
    }

    @Test("switch_grp counts the group switches sent to the kernel")
    func groupSwitchesAreCounted() throws {
        var f = try fixture(.immediate)
        #expect(f.engine.statistics(f.map).groupSwitches == 0)
        failFirstGroup(&f)
        let actions = f.run(until: 1 * sec + 200 * ms) { _ in .up }
        let switches = messages(actions).filter { $0.kind == .switchGroup }.count
        #expect(switches >= 1)
        #expect(f.engine.statistics(f.map).groupSwitches == UInt32(switches))
    }

    @Test func manualNeverSwitchesBack() throws {
        var f = try fixture(.manual)
        failFirstGroup(&f)
        let actions = f.run(until: 10 * sec) { _ in .up }
        #expect(!messages(actions).contains { $0.kind == .switchGroup })
    }

    @Test func deferredSwitchesAfterItsDelay() throws {
        var f = try fixture(.deferred(seconds: 3))
        failFirstGroup(&f)
        var actions = f.run(until: 1 * sec + 200 * ms) { _ in .up }
        #expect(!messages(actions).contains { $0.kind == .switchGroup })
        actions = f.run(until: 4 * sec + 200 * ms) { _ in .up }
        #expect(messages(actions).filter { $0.kind == .switchGroup } == [DMMessage(map: f.map, kind: .switchGroup, group: 1)])
    }

    @Test func deferredIsCancelledByAPathFailure() throws {
        var f = try fixture(.deferred(seconds: 3))
        failFirstGroup(&f)
        _ = f.run(until: 2 * sec) { _ in .up }
        f.deliver(KernelEvent.pathFailed(f.map, dev(16)))
        #expect(f.engine.map(f.map)!.failbackDeadlineNs == Time.never)
    }

    @Test func followoverSwitchesOnlyWhenTheFirstPathOfTheBestGroupReturns() throws {
        // Group 1 holds two paths; one returning while the other is up is not a followover.
        var f = try EngineFixture(policy: MapPolicy(grouping: .groupByPrio, failback: .followover, noPathRetry: .queue,
                                                    intervalFastNs: 200 * ms, intervalHealthyNs: 1 * sec, intervalHealthyMaxNs: 1 * sec),
                                  descriptors: [PathDescriptor(device: dev(0), priority: 50, portKey: 1),
                                                PathDescriptor(device: dev(32), priority: 50, portKey: 3),
                                                PathDescriptor(device: dev(16), priority: 10, portKey: 2)])
        _ = f.run(until: 1 * sec) { $0 == 0 ? .down : .up }
        f.deliver(KernelEvent.mapActiveGroup(f.map, group: 2))
        var actions = f.run(until: 1 * sec + 400 * ms) { _ in .up }
        #expect(!messages(actions).contains { $0.kind == .switchGroup })
        // Now both group-1 paths down; the first to return triggers the switch.
        _ = f.run(until: 3 * sec) { $0 == 2 ? .up : .down }
        f.deliver(KernelEvent.mapActiveGroup(f.map, group: 2))
        actions = f.run(until: 3 * sec + 400 * ms) { $0 == 1 ? .down : .up }
        #expect(messages(actions).contains(DMMessage(map: f.map, kind: .switchGroup, group: 1)))
    }

    @Test func firstChecksOfAFreshTableDoNotSwitchGroups() throws {
        // Unchecked paths of a fresh table are active in the kernel: a group-2 path checked
        // first is no reason to leave group 1.
        let engine = Engine(capacities: Capacities(pathsMax: 8, mapsMax: 2, pathsPerMapMax: 8, ringSlots: 8))
        let map = try engine.addMap(policy: MapPolicy(grouping: .groupByPrio, failback: .immediate, noPathRetry: .queue))
        let best = try engine.addPath(PathDescriptor(device: dev(0), priority: 50), to: map, nowNs: 0)
        let worse = try engine.addPath(PathDescriptor(device: dev(16), priority: 10), to: map, nowNs: 0)
        var sink = RecordingSink()
        engine.tick(nowNs: 0, sink: &sink)
        engine.tableLoaded(map, initialGroup: engine.initialGroup(of: map), queueing: true, nowNs: 0, sink: &sink)
        let requests = Dictionary(uniqueKeysWithValues: sink.checks.map { ($0.path, $0) })
        sink.clear()
        engine.handle(CheckCompletion(path: worse, token: requests[worse]!.token, result: .up), nowNs: 1, sink: &sink)
        engine.handle(CheckCompletion(path: best, token: requests[best]!.token, result: .up), nowNs: 2, sink: &sink)
        #expect(sink.messages.isEmpty)
    }

    @Test func switchGroupCommandValidatesTheGroup() throws {
        var f = try fixture(.manual)
        let outcome1 = f.command(OperatorCommand.switchGroup(f.map, group: 3))
        #expect(outcome1 == .noSuchGroup)
        let outcome2 = f.command(OperatorCommand.switchGroup(f.map, group: 2))
        #expect(outcome2 == .done)
        #expect(f.sink.messages == [DMMessage(map: f.map, kind: .switchGroup, group: 2)])
    }
}

@Suite struct NoPathRetryTests {
    func fixture(_ npr: NoPathRetry) throws -> EngineFixture {
        try EngineFixture(policy: MapPolicy(grouping: .multibus, noPathRetry: npr, intervalFastNs: 100 * ms,
                                            intervalHealthyNs: 1 * sec, intervalHealthyMaxNs: 4 * sec),
                          descriptors: [PathDescriptor(device: dev(0)), PathDescriptor(device: dev(16))])
    }

    @Test func retriesRunOutAfterNPollingIntervalsThenQueueingReturnsWithAPath() throws {
        var f = try fixture(.retries(3))
        var actions = f.run(until: 1 * sec + 10 * ms) { _ in .down }
        // The last path was lost at its (spread) healthy check, at most one interval in.
        let deadline = f.engine.map(f.map)!.recoveryDeadlineNs
        #expect(deadline > 3 * sec && deadline <= 4 * sec + 10 * ms)
        let lost = deadline - 3 * sec
        #expect(!messages(actions).contains { $0.kind == .failIfNoPath })
        actions = f.run(until: lost + 3 * sec - 20 * ms) { _ in .down }
        #expect(!messages(actions).contains { $0.kind == .failIfNoPath })
        actions = f.run(until: lost + 3 * sec + 20 * ms) { _ in .down }
        #expect(messages(actions).filter { $0.kind == .failIfNoPath }.count == 1)
        #expect(f.engine.map(f.map)!.noPathRetryExpired)
        actions = f.run(until: f.nowNs + 200 * ms) { _ in .up }
        #expect(messages(actions).contains(DMMessage(map: f.map, kind: .queueIfNoPath)))
        #expect(!f.engine.map(f.map)!.noPathRetryExpired)
    }

    @Test("statistics: a countdown begun counts a q_timeout, its time counts to total_q_time, running out counts a failure; switches count")
    func statisticsFollowCountdownsAndSwitches() throws {
        var f = try fixture(.retries(3))
        #expect(f.engine.statistics(f.map) == MapStatistics())
        _ = f.run(until: 1 * sec + 10 * ms) { _ in .down }
        var stats = f.engine.statistics(f.map)
        #expect(stats.countdownsBegun == 1 && stats.countdownsExpired == 0)
        let began = stats.countdownSinceNs
        #expect(began != Time.never)
        #expect(stats.countdownSeconds(nowNs: began + 2 * sec + 1) == 2, "the countdown under way counts")
        _ = f.run(until: began + 3 * sec + 20 * ms) { _ in .down }
        stats = f.engine.statistics(f.map)
        #expect(stats.countdownsExpired == 1)
        #expect(stats.countdownSinceNs == Time.never)
        #expect(stats.countdownNs >= 3 * sec && stats.countdownNs < 3 * sec + 20 * ms)
        #expect(stats.countdownSeconds(nowNs: f.nowNs + 60 * sec) == 3, "an ended countdown does not grow")
        // A path returns, then every path fails again: a second countdown, ended by a return before running out.
        _ = f.run(until: f.nowNs + 300 * ms) { _ in .up }
        _ = f.run(until: f.nowNs + 1 * sec + 10 * ms) { _ in .down }
        _ = f.run(until: f.nowNs + 300 * ms) { _ in .up }
        stats = f.engine.statistics(f.map)
        #expect(stats.countdownsBegun == 2 && stats.countdownsExpired == 1)
        #expect(stats.countdownSinceNs == Time.never)
        #expect(stats.countdownNs > 3 * sec && stats.countdownNs < 5 * sec)
        #expect(f.engine.statistics(MapHandle(index: 99)) == MapStatistics(), "an unknown map has none")
    }

    @Test("a kernel that fails a path again right after each reinstate (an ALUA standby port) gets the reinstates spaced out: the fast interval doubled per refusal, up to the healthy interval; a path it keeps starts over")
    func kernelRefusalsSpaceTheReinstatesOut() throws {
        var f = try EngineFixture(policy: MapPolicy(grouping: .multibus, noPathRetry: .queue, intervalFastNs: 100 * ms,
                                                    intervalHealthyNs: 1 * sec, intervalHealthyMaxNs: 1 * sec),
                                  descriptors: [PathDescriptor(device: dev(0)), PathDescriptor(device: dev(16))])
        _ = f.run(until: 2 * sec) { _ in .up }
        #expect(f.kernelActive(0))
        /// Steps 10 ms at a time until `t`, the kernel failing path 0 again after every reinstate
        /// when `refuse`; the times of the reinstates.
        func reinstates(until t: Nanoseconds, refuse: Bool) -> [Nanoseconds] {
            var times: [Nanoseconds] = []
            while f.nowNs < t {
                let actions = f.run(until: f.nowNs + 10 * ms) { _ in .up }
                if messages(actions).contains(DMMessage(map: f.map, kind: .reinstatePath, device: dev(0))) {
                    times.append(f.nowNs)
                    if refuse { f.deliver(KernelEvent.pathKernelState(f.map, dev(0), active: false)) }
                }
            }
            return times
        }
        // The first failure by the kernel, long after any reinstate: checked and reinstated at once.
        f.deliver(KernelEvent.pathKernelState(f.map, dev(0), active: false))
        let refused = reinstates(until: f.nowNs + 6 * sec, refuse: true)
        #expect(refused.first.map { $0 - 2 * sec } ?? sec <= 20 * ms, "\(refused)")
        let gaps = zip(refused.dropFirst(), refused).map { $0 - $1 }
        #expect(refused.count >= 6 && refused.count <= 10, "reinstates at \(refused), not one every check")
        #expect(gaps.first.map { $0 >= 100 * ms && $0 < 150 * ms } == true, "first wait: the fast interval; gaps \(gaps)")
        #expect(zip(gaps.dropFirst(), gaps).allSatisfy { $0 + 20 * ms >= $1 }, "the waits never shrink: \(gaps)")
        #expect(gaps.last.map { $0 >= 990 * ms && $0 <= 1_050 * ms } == true, "capped at the healthy interval: \(gaps)")
        #expect(f.state(0) == .up, "the checker's verdict is unchanged")
        // The kernel keeps it from now on: the next check finds it active and the count starts over.
        _ = reinstates(until: f.nowNs + 3 * sec, refuse: false)
        #expect(f.kernelActive(0))
        f.deliver(KernelEvent.pathKernelState(f.map, dev(0), active: false))
        let again = reinstates(until: f.nowNs + 2 * sec, refuse: true)
        #expect(again.count >= 2 && again[1] - again[0] < 150 * ms, "after a kept path the first wait is short again: \(again)")
    }

    @Test func queueNeverStopsQueueing() throws {
        var f = try fixture(.queue)
        let actions = f.run(until: 120 * sec, step: 50 * ms) { _ in .down }
        #expect(!messages(actions).contains { $0.kind == .failIfNoPath })
        #expect(f.engine.map(f.map)!.kernelQueueing)
    }

    @Test func disableQueueingFailsIOAndRestoreBringsItBack() throws {
        var f = try fixture(.queue)
        let outcome3 = f.command(OperatorCommand.restoreQueueing(f.map))
        #expect(outcome3 == .queueingNotDisabled)
        let outcome4 = f.command(OperatorCommand.disableQueueing(f.map))
        #expect(outcome4 == .done)
        #expect(f.sink.messages == [DMMessage(map: f.map, kind: .failIfNoPath)])
        f.sink.clear()
        let outcome5 = f.command(OperatorCommand.restoreQueueing(f.map))
        #expect(outcome5 == .done)
        #expect(f.sink.messages == [DMMessage(map: f.map, kind: .queueIfNoPath)])
    }

    @Test func resyncRestoresQueueingTheKernelLost() throws {
        var f = try fixture(.queue)
        f.deliver(KernelEvent.mapQueueing(f.map, queueing: false))
        #expect(f.sink.messages == [DMMessage(map: f.map, kind: .queueIfNoPath)])
    }
}

@Suite struct FlapDampingTests {
    func fixture() throws -> EngineFixture {
        try EngineFixture(policy: MapPolicy(grouping: .multibus, noPathRetry: .queue,
                                            flapDamping: FlapDamping(threshold: 2, forgetRate: 5, recoveryTimeNs: 10 * sec),
                                            intervalFastNs: 100 * ms, intervalHealthyNs: 1 * sec, intervalHealthyMaxNs: 1 * sec),
                          descriptors: [PathDescriptor(device: dev(0), portKey: 1), PathDescriptor(device: dev(16), portKey: 2)])
    }

    @Test func aPathFailingMoreThanTheThresholdIsDelayedForTheRecoveryTime() throws {
        var f = try fixture()
        // Three failures of path 0, each followed by a return.
        for _ in 0..<3 {
            _ = f.run(until: f.nowNs + 1 * sec) { $0 == 0 ? .down : .up }
            _ = f.run(until: f.nowNs + 150 * ms) { _ in .up }
        }
        #expect(f.state(0) == .delayed)
        #expect(!f.kernelActive(0))
        let actions = f.run(until: f.nowNs + 10 * sec + 200 * ms) { _ in .up }
        #expect(messages(actions).contains(DMMessage(map: f.map, kind: .reinstatePath, device: dev(0))))
        #expect(f.state(0) == .up)
    }

    @Test func aDelayedPathIsTakenAtOnceWhenNoOtherPathIsUsable() throws {
        var f = try fixture()
        for _ in 0..<3 {
            _ = f.run(until: f.nowNs + 1 * sec) { $0 == 0 ? .down : .up }
            _ = f.run(until: f.nowNs + 150 * ms) { _ in .up }
        }
        #expect(f.state(0) == .delayed)
        f.deliver(KernelEvent.pathFailed(f.map, dev(16)))
        _ = f.run(until: f.nowNs + 20 * ms) { $0 == 1 ? .down : .up }
        #expect(f.state(1) == .down)
        #expect(f.state(0) == .up)
    }

    @Test func goodChecksForgetOldFailures() throws {
        var f = try fixture()
        _ = f.run(until: f.nowNs + 1 * sec) { $0 == 0 ? .down : .up }
        _ = f.run(until: f.nowNs + 150 * ms) { _ in .up }
        #expect(f.engine.path(f.paths[0])!.flapFailures == 1)
        _ = f.run(until: f.nowNs + 7 * sec) { _ in .up }
        #expect(f.engine.path(f.paths[0])!.flapFailures == 0)
    }
}

@Suite struct EngineReloadRequestTests {
    private func reloads(_ engine: Engine) -> Int {
        var sink = RecordingSink()
        engine.tick(nowNs: 0, sink: &sink)
        return sink.actions.filter { if case .reloadMap = $0 { return true } else { return false } }.count
    }

    /// A table load that failed is retried by asking again: the engine hands the map out once,
    /// however many times it is asked before its next pass, and refuses an unknown map.
    @Test func requestReloadQueuesTheMapOnce() throws {
        let engine = Engine(capacities: Capacities(pathsMax: 8, mapsMax: 2, pathsPerMapMax: 4, ringSlots: 16), startNs: 0)
        let map = try engine.addMap(policy: MapPolicy(grouping: .failover, failback: .immediate, noPathRetry: .queue))
        _ = reloads(engine)
        #expect(!engine.reloadPending(map))
        try engine.requestReload(map)
        try engine.requestReload(map)
        #expect(engine.reloadPending(map))
        #expect(reloads(engine) == 1)
        #expect(reloads(engine) == 0)
        #expect(throws: EngineRefusal.self) { try engine.requestReload(MapHandle(index: 1)) }
    }
}

@Suite struct EngineTimerCapacityTests {
    /// Map timers due at once are gathered in the same scratch as path timers: with more maps
    /// than paths (a legal configuration) it must hold every map.
    @Test func moreMapTimersDueAtOnceThanThereArePaths() throws {
        let engine = Engine(capacities: Capacities(pathsMax: 1, mapsMax: 4, pathsPerMapMax: 1, ringSlots: 8), startNs: 0)
        for i in 0..<4 {
            let map = try engine.addMap(policy: MapPolicy(grouping: .failover, failback: .immediate, noPathRetry: .retries(1)))
            // A map that loses its last path starts no_path_retry's count: one map timer each.
            let path = try engine.addPath(PathDescriptor(device: DevNo(major: 8, minor: UInt32(16 * i))), to: map, nowNs: 0)
            try engine.removePath(path, nowNs: 0)
        }
        var sink = RecordingSink()
        engine.tick(nowNs: 3600 * Time.nsPerSecond, sink: &sink)
        for m in 0..<4 {
            #expect(engine.map(MapHandle(index: m))?.noPathRetryExpired == true, "map \(m)'s no_path_retry count expired")
        }
    }
}

@Suite struct MarginalGroupingTests {
    let ds = [
        PathDescriptor(device: dev(0), priority: 10),
        PathDescriptor(device: dev(16), priority: 50),
        PathDescriptor(device: dev(32), priority: 1),
        PathDescriptor(device: dev(48), priority: 50),
    ]

    func fixture(_ grouping: GroupingPolicy, on: Bool = true) throws -> EngineFixture {
        try EngineFixture(policy: MapPolicy(grouping: grouping, marginalPathGroups: on), descriptors: ds)
    }

    @Test("with marginal_pathgroups, marginal paths are grouped apart by the same policy, after every normal group; the table is reloaded")
    func marginalPathsGoLast() throws {
        var f = try fixture(.groupByPrio)
        #expect(f.command(.setMarginal(f.paths[1], true)) == .done)
        #expect(f.engine.groupLayout(of: f.map) == [[dev(48)], [dev(0)], [dev(32)], [dev(16)]])
        f.advance(to: 10 * ms)
        #expect(f.sink.actions.contains(.reloadMap(f.map)))
        var bus = try fixture(.multibus)
        _ = bus.command(.setMarginal(bus.paths[1], true))
        #expect(bus.engine.groupLayout(of: bus.map) == [[dev(0), dev(32), dev(48)], [dev(16)]])
        #expect(bus.command(.setMarginal(bus.paths[1], false)) == .done)
        #expect(bus.engine.groupLayout(of: bus.map) == [[dev(0), dev(16), dev(32), dev(48)]])
    }

    @Test("a marginal group is chosen only when no normal path is usable, whatever its priority")
    func marginalGroupIsTheLastResort() throws {
        var f = try fixture(.groupByPrio)
        _ = f.command(.setMarginal(f.paths[1], true))
        _ = f.command(.setMarginal(f.paths[3], true))
        #expect(f.engine.groupLayout(of: f.map) == [[dev(0)], [dev(32)], [dev(16), dev(48)]])
        #expect(f.engine.initialGroup(of: f.map) == 1, "priority 50 in a marginal group does not beat 10")
        _ = f.command(.failPath(f.paths[0]))
        #expect(f.engine.initialGroup(of: f.map) == 2)
        _ = f.command(.failPath(f.paths[2]))
        #expect(f.engine.initialGroup(of: f.map) == 3, "no normal path left: the marginal group")
    }

    @Test("without marginal_pathgroups the mark changes no group and asks for no reload (multipathd 0.9.4's default); unknown paths are refused")
    func markWithoutMarginalGroups() throws {
        var f = try fixture(.groupByPrio, on: false)
        let before = f.engine.groupLayout(of: f.map)
        #expect(f.command(.setMarginal(f.paths[1], true)) == .done)
        #expect(f.engine.groupLayout(of: f.map) == before)
        f.advance(to: 10 * ms)
        #expect(!f.sink.actions.contains(.reloadMap(f.map)))
        #expect(f.command(.setMarginal(PathHandle(index: 60), true)) == .unknownPath)
    }
}

@Suite struct MarginalConfigurationTests {
    @Test("marginal_pathgroups: on/off (yes/no, 1/0) in defaults, fpin taken as on with a warning, anything else refused; maps' policies follow")
    func option() throws {
        func loaded(_ value: String) throws -> (Bool, [String]) {
            let l = try Configuration.load(files: [(name: "c", text: "defaults {\n    marginal_pathgroups \(value)\n}\n")]).get()
            #expect(l.configuration.profile(wwid: "w", vendor: "v", product: "p").policy.marginalPathGroups == l.configuration.marginalPathGroups)
            return (l.configuration.marginalPathGroups, l.warnings.map(\.message))
        }
        #expect(try loaded("on").0 && loaded("yes").0 && loaded("1").0)
        #expect(try !loaded("off").0 && !loaded("no").0)
        let fpin = try loaded("fpin")
        #expect(fpin.0 && fpin.1.contains { $0.contains("FPIN") })
        #expect((try? Configuration.load(files: [(name: "c", text: "defaults {\n    marginal_pathgroups maybe\n}\n")]).get()) == nil)
        #expect(!Configuration().marginalPathGroups, "off by default, as in multipath-tools")
        let rendered = try Configuration.load(files: [(name: "c", text: "defaults {\n    marginal_pathgroups on\n}\n")]).get().configuration.render()
        #expect(try Configuration.load(files: [(name: "c", text: rendered)]).get().configuration.marginalPathGroups)
    }
}

@Suite struct HealthyCadenceTests {
    /// Checks each path got from 0 to `until`, every path answering up (except those in `down`).
    func checksPerPath(_ f: inout EngineFixture, until: Nanoseconds, down: Set<Int> = []) -> [Int] {
        var counts = Array(repeating: 0, count: f.paths.count)
        var now = f.nowNs
        while now < until {
            now += 10 * ms
            for request in f.advance(to: now) {
                if let i = f.paths.firstIndex(of: request.path) { counts[i] += 1 }
            }
            f.answerChecks { down.contains($0) ? .down : .up }
        }
        return counts
    }

    func fixture(paths: Int, checksPerSecondMax: UInt32) throws -> EngineFixture {
        try EngineFixture(policy: MapPolicy(grouping: .multibus, intervalFastNs: 100 * ms, intervalHealthyNs: 500 * ms,
                                            intervalHealthyMaxNs: 500 * ms, healthyChecksPerSecondMax: checksPerSecondMax),
                          descriptors: (0..<paths).map { PathDescriptor(device: dev(UInt32($0) * 16)) })
    }

    @Test("Keel's cadence: a healthy path is checked every 500 ms and never backs off")
    func healthyPathsKeepTheirInterval() throws {
        var f = try fixture(paths: 8, checksPerSecondMax: 0)
        let counts = checksPerPath(&f, until: 10 * sec)
        // 20 intervals in 10 s; the spread moves a check up to 1/8 of an interval earlier.
        #expect(counts.allSatisfy { $0 >= 19 && $0 <= 23 }, "\(counts)")
    }

    @Test("the host-wide cap stretches every healthy path's interval to its share; failed paths keep the fast probe")
    func theCapStretchesHealthyIntervalsOnly() throws {
        var f = try fixture(paths: 8, checksPerSecondMax: 4)
        // 8 paths at 4 checks a second: each is checked every 2 s.
        var counts = checksPerPath(&f, until: 10 * sec)
        #expect(counts.allSatisfy { $0 >= 4 && $0 <= 6 }, "\(counts)")
        #expect(counts.reduce(0, +) <= 4 * 10 + 8)
        counts = checksPerPath(&f, until: 14 * sec, down: [3])
        // Path 3 failed at its next check (within 2 s) and is then probed every 100 ms.
        #expect(counts[3] >= 10, "\(counts)")
        #expect(f.state(3) == .down)
    }
}
