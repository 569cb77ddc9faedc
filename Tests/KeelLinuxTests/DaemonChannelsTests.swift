// The daemon's channels between threads: reload hand-off, state board, checker dispatch, and the
// recovery service's handling of each ring input.
import Glibc
import KeelCore
import KeelLinux
import Testing

/// Answers every submitted check on the next reap with `result`; keeps the requests it saw.
private struct AnsweringChecker: PathCheckBackend {
    var result: CheckResult = .up
    var submitted: [CheckRequest] = []
    var unanswered: [CheckRequest] = []

    mutating func submit(_ request: CheckRequest, nowNs: Nanoseconds) -> Bool {
        submitted.append(request)
        unanswered.append(request)
        return true
    }

    mutating func reap<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S) {
        for request in unanswered {
            sink.checkCompleted(CheckCompletion(path: request.path, token: request.token, result: result))
        }
        unanswered.removeAll()
    }
}

/// Accepts every message, as a kernel that agrees with everything, and keeps them.
private struct KeepingMessenger: MultipathMessenger {
    var messages: [DMMessage] = []
    mutating func send(_ message: DMMessage) -> Int32 { messages.append(message); return 0 }
}

private func device(_ minor: UInt32) -> DevNo { DevNo(major: 8, minor: minor) }

private let capacities = Capacities(pathsMax: 16, mapsMax: 4, pathsPerMapMax: 4, ringSlots: 64)

/// An engine with `maps` maps of two paths each (priorities 50 and 10, group_by_prio).
private func makeEngine(maps: Int, policy: MapPolicy = MapPolicy(grouping: .groupByPrio, failback: .immediate)) throws -> (Engine, [MapHandle], [PathHandle]) {
    let engine = Engine(capacities: capacities)
    var mapHandles: [MapHandle] = []
    var pathHandles: [PathHandle] = []
    for m in 0..<maps {
        let map = try engine.addMap(policy: policy)
        mapHandles.append(map)
        for p in 0..<2 {
            let descriptor = PathDescriptor(device: device(UInt32(m * 16 + p)), priority: p == 0 ? 50 : 10, portKey: UInt32(p))
            pathHandles.append(try engine.addPath(descriptor, to: map, nowNs: 0))
        }
    }
    return (engine, mapHandles, pathHandles)
}

// MARK: - Reload hand-off

@Suite struct DaemonChannelsReloadHandoffTests {
    @Test func requestHandsATicketWithTheLayoutAndRingsTheDoorbell() throws {
        let (engine, maps, _) = try makeEngine(maps: 2)
        let handoff = ReloadHandoff(mapsMax: 4, pathsPerMapMax: 4, slotsMax: 2, doorbell: try EventFD())
        #expect(handoff.request(maps[1], engine: engine))
        #expect(handoff.doorbell.drain() == 1)
        let ticket = try #require(handoff.ring.pop())
        #expect(ticket.map == maps[1])
        #expect(handoff.ring.pop() == nil)
        let snapshot = handoff.snapshot(ticket)
        #expect(snapshot.map == maps[1])
        #expect(snapshot.layout() == engine.groupLayout(of: maps[1]))
        #expect(snapshot.initialGroup == engine.initialGroup(of: maps[1]))
        #expect(handoff.waitingRequests == 0)
    }

    @Test func secondRequestWhileOutstandingWaitsAndIsResentOnReturn() throws {
        let (engine, maps, _) = try makeEngine(maps: 1)
        let handoff = ReloadHandoff(mapsMax: 4, pathsPerMapMax: 4, slotsMax: 2, doorbell: try EventFD())
        #expect(handoff.request(maps[0], engine: engine))
        let first = try #require(handoff.ring.pop())
        _ = handoff.doorbell.drain()
        // A free slot is left, but the map's reload is still out: the request waits.
        #expect(!handoff.request(maps[0], engine: engine))
        #expect(!handoff.request(maps[0], engine: engine))
        #expect(handoff.waitingRequests == 1)
        #expect(handoff.ring.pop() == nil)
        #expect(handoff.doorbell.drain() == 0)
        handoff.returned(first, engine: engine)
        let second = try #require(handoff.ring.pop())
        #expect(second.map == maps[0])
        #expect(handoff.ring.pop() == nil)
        #expect(handoff.waitingRequests == 0)
        #expect(handoff.doorbell.drain() == 1)
    }

    @Test func requestWithEverySlotOutWaitsAndIsServedWhenASlotReturns() throws {
        let (engine, maps, _) = try makeEngine(maps: 3)
        let handoff = ReloadHandoff(mapsMax: 4, pathsPerMapMax: 4, slotsMax: 2, doorbell: try EventFD())
        #expect(handoff.request(maps[0], engine: engine))
        #expect(handoff.request(maps[1], engine: engine))
        #expect(!handoff.request(maps[2], engine: engine))
        #expect(handoff.waitingRequests == 1)
        let ticket0 = try #require(handoff.ring.pop())
        let ticket1 = try #require(handoff.ring.pop())
        #expect(ticket0.slot != ticket1.slot)
        #expect(handoff.ring.pop() == nil)
        handoff.returned(ticket0, engine: engine)
        let ticket2 = try #require(handoff.ring.pop())
        #expect(ticket2.map == maps[2])
        #expect(ticket2.slot == ticket0.slot)
        #expect(handoff.snapshot(ticket2).layout() == engine.groupLayout(of: maps[2]))
        #expect(handoff.waitingRequests == 0)
    }

    @Test func waitingRequestOfARemovedMapIsDropped() throws {
        let (engine, maps, _) = try makeEngine(maps: 2)
        let handoff = ReloadHandoff(mapsMax: 4, pathsPerMapMax: 4, slotsMax: 1, doorbell: try EventFD())
        #expect(handoff.request(maps[0], engine: engine))
        #expect(!handoff.request(maps[1], engine: engine))
        #expect(handoff.waitingRequests == 1)
        let ticket = try #require(handoff.ring.pop())
        _ = handoff.doorbell.drain()
        try engine.removeMap(maps[1])
        handoff.returned(ticket, engine: engine)
        #expect(handoff.ring.pop() == nil)
        #expect(handoff.waitingRequests == 0)
        #expect(handoff.doorbell.drain() == 0)
        // The slot came back: a live map's request goes out at once.
        #expect(handoff.request(maps[0], engine: engine))
    }

    @Test func requestForAMapLargerThanTheSnapshotsIsNotHandedOut() throws {
        let (engine, maps, _) = try makeEngine(maps: 1)
        let handoff = ReloadHandoff(mapsMax: 4, pathsPerMapMax: 1, slotsMax: 1, doorbell: try EventFD())
        #expect(!handoff.request(maps[0], engine: engine))
        #expect(handoff.ring.pop() == nil)
        #expect(handoff.waitingRequests == 0)
        #expect(handoff.doorbell.drain() == 0)
    }
}

// MARK: - State board

@Suite struct DaemonChannelsStateBoardTests {
    @Test func pathStatesRoundTrip() {
        let board = StateBoard(pathsMax: PathState.allCases.count + 1, mapsMax: 1)
        for (i, state) in PathState.allCases.enumerated() {
            board.setState(PathHandle(index: i), state)
        }
        for (i, state) in PathState.allCases.enumerated() {
            #expect(board.state(PathHandle(index: i)) == state)
        }
        // Never written.
        #expect(board.state(PathHandle(index: PathState.allCases.count)) == nil)
    }

    @Test func pathStateIsOverwrittenByTheLatest() {
        let board = StateBoard(pathsMax: 2, mapsMax: 1)
        board.setState(PathHandle(index: 1), .down)
        board.setState(PathHandle(index: 1), .up)
        #expect(board.state(PathHandle(index: 1)) == .up)
        #expect(board.state(PathHandle(index: 0)) == nil)
    }

    @Test func mapFlagsRoundTripIndependently() {
        let board = StateBoard(pathsMax: 1, mapsMax: 2)
        let map = MapHandle(index: 1)
        #expect(!board.queueing(map))
        #expect(!board.loaded(map))
        board.setQueueing(map, true)
        #expect(board.queueing(map))
        #expect(!board.loaded(map))
        board.setLoaded(map)
        #expect(board.queueing(map))
        #expect(board.loaded(map))
        board.setQueueing(map, false)
        #expect(!board.queueing(map))
        #expect(board.loaded(map))
        // The other map was never touched.
        #expect(!board.queueing(MapHandle(index: 0)))
        #expect(!board.loaded(MapHandle(index: 0)))
    }

    @Test("map statistics round-trip through the board, a countdown under way included; unpublished slots read as zero")
    func mapStatisticsRoundTrip() {
        let board = StateBoard(pathsMax: 1, mapsMax: 2)
        #expect(board.statistics(MapHandle(index: 1)) == MapStatistics())
        var stats = MapStatistics()
        stats.groupSwitches = 7
        stats.countdownsBegun = 3
        stats.countdownsExpired = 1
        stats.countdownNs = 12 * Time.nsPerSecond
        stats.countdownSinceNs = 0
        board.publishStatistics(MapHandle(index: 1), stats)
        #expect(board.statistics(MapHandle(index: 1)) == stats, "a countdown begun at time 0 is not taken for none")
        stats.countdownSinceNs = Time.never
        board.publishStatistics(MapHandle(index: 1), stats)
        #expect(board.statistics(MapHandle(index: 1)) == stats)
        #expect(board.statistics(MapHandle(index: 0)) == MapStatistics())
        board.publishStatistics(MapHandle(index: 2), stats)
        #expect(board.statistics(MapHandle(index: 2)) == MapStatistics(), "out of range: ignored")
    }

    @Test func outOfRangeHandlesAreIgnored() {
        let board = StateBoard(pathsMax: 2, mapsMax: 2)
        board.setState(PathHandle(index: 2), .up)
        board.setState(PathHandle(index: 1_000), .down)
        board.setQueueing(MapHandle(index: 2), true)
        board.setLoaded(MapHandle(index: 7))
        #expect(board.state(PathHandle(index: 2)) == nil)
        #expect(board.state(PathHandle(index: 1_000)) == nil)
        #expect(!board.queueing(MapHandle(index: 2)))
        #expect(!board.loaded(MapHandle(index: 7)))
        // Nothing spilled into the slots in range.
        #expect(board.state(PathHandle(index: 0)) == nil)
        #expect(board.state(PathHandle(index: 1)) == nil)
        #expect(!board.queueing(MapHandle(index: 1)))
        #expect(!board.loaded(MapHandle(index: 1)))
    }
}

// MARK: - Checker dispatch

private func checkRequest(_ path: Int) -> CheckRequest {
    CheckRequest(path: PathHandle(index: path), device: DevNo(major: 7, minor: UInt32(path)), token: 1, timeoutNs: 5 * Time.nsPerSecond)
}

@Suite(.serialized) struct DaemonChannelsCheckerTests {
    @Test func pathNotRegisteredYetIsPendingWithoutReachingABackend() throws {
        // A hot-added path the engine knows a moment before the control plane has opened it:
        // neither up nor down, and no "no free slot" refusal.
        let directIO = try DirectIOChecker(DirectIOConfiguration(pathsMax: 4))
        defer { directIO.close() }
        var checker = DaemonChecker(pathsMax: 4, tur: nil, directIO: directIO)
        #expect(checker.kind(of: PathHandle(index: 0)) == .unassigned)
        let submitted = checker.submit(checkRequest(0), nowNs: checkerNowNs())
        #expect(submitted)
        #expect(directIO.counters == DirectIOCounters())
        var sink = CheckerCollectingSink()
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(sink.completions.map(\.result) == [.pending])
    }

    @Test func pathCheckerNoneIsTakenAsUp() throws {
        var checker = DaemonChecker(pathsMax: 4, tur: nil, directIO: nil)
        checker.assign(PathHandle(index: 3), to: .alwaysUp)
        let submitted = checker.submit(checkRequest(3), nowNs: checkerNowNs())
        #expect(submitted)
        var sink = CheckerCollectingSink()
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(sink.completions.map(\.result) == [.up])
    }

    @Test func pathAssignedToDirectIOReachesTheDirectIOChecker() throws {
        let directIO = try DirectIOChecker(DirectIOConfiguration(pathsMax: 4))
        defer { directIO.close() }
        var checker = DaemonChecker(pathsMax: 4, tur: nil, directIO: directIO)
        checker.assign(PathHandle(index: 1), to: .directIO)
        #expect(checker.kind(of: PathHandle(index: 1)) == .directIO)
        // Unregistered with the directio checker: refused there, and counted there.
        let submitted = checker.submit(checkRequest(1), nowNs: checkerNowNs())
        #expect(!submitted)
        #expect(directIO.counters.refusedUnregistered == 1)
    }

    @Test func directIOPathIsCheckedAndReapedThroughTheDaemonChecker() throws {
        let loop = try CheckerLoopDevice(bytes: 1 << 20)
        defer { loop.detach() }
        let directIO = try DirectIOChecker(DirectIOConfiguration(pathsMax: 4))
        defer { directIO.close() }
        var checker = DaemonChecker(pathsMax: 4, tur: nil, directIO: directIO)
        try directIO.register(path: PathHandle(index: 2), devicePath: loop.path)
        checker.assign(PathHandle(index: 2), to: .directIO)
        let submitted = checker.submit(checkRequest(2), nowNs: checkerNowNs())
        #expect(submitted)
        #expect(checker.completionDescriptors.directIO == directIO.completionFD)
        #expect(checker.completionDescriptors.tur == -1)
        var sink = CheckerCollectingSink()
        let deadline = checkerNowNs() + 5 * Time.nsPerSecond
        while sink.completions.isEmpty && checkerNowNs() < deadline {
            checker.reap(nowNs: checkerNowNs(), into: &sink)
            usleep(1_000)
        }
        #expect(sink.completions == [CheckCompletion(path: PathHandle(index: 2), token: 1, result: .up)])
    }

    @Test func handlesPastTheKindTableAreRefused() {
        var checker = DaemonChecker(pathsMax: 2, tur: nil, directIO: nil)
        #expect(checker.kind(of: PathHandle(index: 2)) == .unassigned)
        let submitted = checker.submit(checkRequest(2), nowNs: 0)
        #expect(!submitted)
        #expect(checker.nextDeadlineNs() == Time.never)
    }
}

// MARK: - Recovery service

/// A recovery service over an engine of two maps, a checker that answers every check, and rings
/// the test feeds and drains as the other threads would.
private struct ServiceFixture {
    let engine: Engine
    let maps: [MapHandle]
    let paths: [PathHandle]
    let logger: KeelLogger
    let board: StateBoard
    let reloads: ReloadHandoff
    let inputs: MPSCRing<RecoveryInput>
    let replies: SPSCRing<CommandReply>
    let replyDoorbell: EventFD
    var service: RecoveryService<AnsweringChecker, KeepingMessenger, LogRecoveryOutput>

    init(policy: MapPolicy = MapPolicy(grouping: .groupByPrio, failback: .immediate), inputsPerPassMax: Int = 1024) throws {
        let made = try makeEngine(maps: 2, policy: policy)
        engine = made.0
        maps = made.1
        paths = made.2
        // No sink and never started: the recovery thread's records stay in its ring.
        logger = try KeelLogger(LogConfiguration(producersMax: 1, ringCapacity: 256))
        let producer = try #require(logger.registerProducer(name: "recovery"))
        board = StateBoard(pathsMax: capacities.pathsMax, mapsMax: capacities.mapsMax)
        reloads = ReloadHandoff(mapsMax: capacities.mapsMax, pathsPerMapMax: capacities.pathsPerMapMax, slotsMax: 2, doorbell: try EventFD())
        inputs = MPSCRing(capacity: 64)
        replies = SPSCRing(capacity: 16)
        replyDoorbell = try EventFD()
        let output = DaemonRecoveryOutput(log: LogRecoveryOutput(producer: producer), engine: engine, board: board, reloads: reloads)
        service = RecoveryService(loop: RecoveryLoop(engine: engine, checker: AnsweringChecker(), messenger: KeepingMessenger(), output: output),
                                  inputs: inputs, inputDoorbell: try EventFD(), replies: replies, replyDoorbell: replyDoorbell,
                                  inputsPerPassMax: inputsPerPassMax)
    }

    /// Loads both maps' tables as the control plane would, and lets the first checks answer.
    mutating func loadTables(at nowNs: Nanoseconds = 0) {
        service.pass(nowNs: nowNs)
        while let ticket = reloads.ring.pop() {
            _ = inputs.push(.tableLoaded(ticket.map, initialGroup: reloads.snapshot(ticket).initialGroup, queueing: false))
            _ = inputs.push(.reloadDone(ticket))
        }
        service.pass(nowNs: nowNs)
        service.pass(nowNs: nowNs)
    }
}

@Suite struct DaemonChannelsRecoveryServiceTests {
    @Test func commandInputIsAnsweredWithItsTicketOnTheReplyRing() throws {
        var f = try ServiceFixture()
        f.loadTables()
        #expect(f.inputs.push(.command(.failPath(f.paths[1]), ticket: 4242)))
        let taken = f.service.pass(nowNs: Time.nsPerMs)
        #expect(taken == 1)
        #expect(f.replies.pop() == CommandReply(ticket: 4242, outcome: .done))
        #expect(f.replies.pop() == nil)
        #expect(f.replyDoorbell.drain() == 1)
        #expect(f.engine.path(f.paths[1])?.state == .operatorFailed)
    }

    @Test func commandThatTheEngineRefusesIsAnsweredWithTheRefusal() throws {
        var f = try ServiceFixture()
        #expect(f.inputs.push(.command(.switchGroup(f.maps[0], group: 9), ticket: 7)))
        #expect(f.inputs.push(.command(.failPath(PathHandle(index: 15)), ticket: 8)))
        f.service.pass(nowNs: 0)
        #expect(f.replies.pop() == CommandReply(ticket: 7, outcome: .noSuchGroup))
        #expect(f.replies.pop() == CommandReply(ticket: 8, outcome: .unknownPath))
    }

    @Test("each pass publishes the statistics of the next maps in turn, so every map's reach the board")
    func passesPublishMapStatisticsInTurn() throws {
        var f = try ServiceFixture()
        f.loadTables()
        #expect(f.inputs.push(.command(.switchGroup(f.maps[1], group: 2), ticket: 1)))
        f.service.statisticsPerPass = 1
        f.service.pass(nowNs: Time.nsPerMs)
        #expect(f.engine.statistics(f.maps[1]).groupSwitches >= 1)
        // One map per pass: as many passes as the board has maps reach every one.
        for i in 0..<min(f.board.mapCapacity, f.engine.mapCapacity) { f.service.pass(nowNs: Nanoseconds(2 + i) * Time.nsPerMs) }
        #expect(f.board.statistics(f.maps[1]) == f.engine.statistics(f.maps[1]))
        #expect(f.board.statistics(f.maps[0]) == f.engine.statistics(f.maps[0]))
    }

    @Test func tableLoadedInputSetsTheBoardsLoadedAndQueueingFlags() throws {
        // no_path_retry queue: the engine agrees with the loaded table and sends nothing, so the
        // flags are the input's own.
        var f = try ServiceFixture(policy: MapPolicy(grouping: .groupByPrio, noPathRetry: .queue))
        #expect(!f.board.loaded(f.maps[0]))
        #expect(f.inputs.push(.tableLoaded(f.maps[0], initialGroup: 1, queueing: true)))
        f.service.pass(nowNs: 0)
        #expect(f.board.loaded(f.maps[0]))
        #expect(f.board.queueing(f.maps[0]))
        #expect(f.engine.map(f.maps[0])?.loaded == true)
        #expect(f.service.loop.messenger.messages.isEmpty)
        // The other map's table is not loaded yet.
        #expect(!f.board.loaded(f.maps[1]))
    }

    @Test func failIfNoPathSentAfterALoadReachesTheBoard() throws {
        // no_path_retry fail, table loaded with queueing: the engine sends fail_if_no_path.
        var f = try ServiceFixture(policy: MapPolicy(grouping: .groupByPrio, noPathRetry: .fail))
        #expect(f.inputs.push(.tableLoaded(f.maps[0], initialGroup: 1, queueing: true)))
        f.service.pass(nowNs: 0)
        #expect(f.service.loop.messenger.messages.contains(DMMessage(map: f.maps[0], kind: .failIfNoPath)))
        #expect(f.board.loaded(f.maps[0]))
        #expect(!f.board.queueing(f.maps[0]))
    }

    @Test func tableLoadedWithoutQueueingClearsTheBoardsQueueingFlag() throws {
        var f = try ServiceFixture()
        f.board.setQueueing(f.maps[0], true)
        #expect(f.inputs.push(.tableLoaded(f.maps[0], initialGroup: 1, queueing: false)))
        f.service.pass(nowNs: 0)
        #expect(f.board.loaded(f.maps[0]))
        #expect(!f.board.queueing(f.maps[0]))
    }

    @Test func queueIfNoPathSentAfterALoadReachesTheBoard() throws {
        // no_path_retry queue, table loaded without queueing: the engine sends queue_if_no_path.
        var f = try ServiceFixture(policy: MapPolicy(grouping: .groupByPrio, noPathRetry: .queue))
        #expect(f.inputs.push(.tableLoaded(f.maps[0], initialGroup: 1, queueing: false)))
        f.service.pass(nowNs: 0)
        #expect(f.service.loop.messenger.messages.contains(DMMessage(map: f.maps[0], kind: .queueIfNoPath)))
        #expect(f.board.loaded(f.maps[0]))
        #expect(f.board.queueing(f.maps[0]))
    }

    @Test func setPriorityInputReachesTheEngine() throws {
        var f = try ServiceFixture()
        #expect(f.inputs.push(.setPriority(f.paths[1], 77)))
        f.service.pass(nowNs: 0)
        #expect(f.engine.path(f.paths[1])?.descriptor.priority == 77)
    }

    @Test func priorityChangeThatRegroupsHandsAReloadTicketOut() throws {
        var f = try ServiceFixture()
        f.loadTables()
        #expect(f.reloads.ring.pop() == nil)
        _ = f.reloads.doorbell.drain()
        // The priority-10 path rises above the priority-50 one: the groups swap.
        #expect(f.inputs.push(.setPriority(f.paths[1], 90)))
        f.service.pass(nowNs: Time.nsPerMs)
        let ticket = try #require(f.reloads.ring.pop())
        #expect(ticket.map == f.maps[0])
        #expect(f.reloads.snapshot(ticket).layout() == [[device(1)], [device(0)]])
        #expect(f.reloads.doorbell.drain() == 1)
    }

    @Test func setPolicyInputReachesTheEngine() throws {
        var f = try ServiceFixture()
        let policy = MapPolicy(grouping: .multibus, noPathRetry: .queue, intervalHealthyNs: Time.nsPerSecond)
        #expect(f.inputs.push(.setPolicy(f.maps[1], policy)))
        f.service.pass(nowNs: 0)
        #expect(f.engine.map(f.maps[1])?.policy == policy)
        #expect(f.engine.map(f.maps[0])?.policy != policy)
    }

    @Test func kernelEventInputReachesTheEngineAndStartsACheck() throws {
        var f = try ServiceFixture()
        f.loadTables()
        let before = f.service.loop.checker.submitted.count
        #expect(f.inputs.push(.kernel(.pathFailed(f.maps[1], device(16)))))
        f.service.pass(nowNs: Time.nsPerMs)
        #expect(f.engine.path(f.paths[2])?.kernelActive == false)
        #expect(f.service.loop.checker.submitted.dropFirst(before).map(\.path).contains(f.paths[2]))
    }

    @Test func checkedPathsAreTransitionsOnTheBoard() throws {
        var f = try ServiceFixture()
        #expect(f.board.state(f.paths[0]) == nil)
        f.loadTables()
        for path in f.paths {
            #expect(f.board.state(path) == .up)
        }
    }

    @Test func passTakesAtMostInputsPerPassMaxAndCountsIt() throws {
        var f = try ServiceFixture(inputsPerPassMax: 2)
        for i in 0..<5 {
            #expect(f.inputs.push(.setPriority(f.paths[0], Int32(60 + i))))
        }
        let first = f.service.pass(nowNs: 0)
        #expect(first == 2)
        #expect(f.inputs.count == 3)
        #expect(f.engine.path(f.paths[0])?.descriptor.priority == 61)
        var later: [Int] = []
        for _ in 0..<3 { later.append(f.service.pass(nowNs: 0)) }
        #expect(later == [2, 1, 0])
        #expect(f.board.inputsHandled.load(ordering: .relaxed) == 5)
        #expect(f.board.loopPasses.load(ordering: .relaxed) == 4)
    }

    @Test func reloadDoneReturnsTheSlotToAWaitingRequest() throws {
        var f = try ServiceFixture()
        // Two maps, two slots, both out; a third request for map 0 waits on its own reload.
        f.service.pass(nowNs: 0)
        let first = try #require(f.reloads.ring.pop())
        let second = try #require(f.reloads.ring.pop())
        #expect(f.reloads.ring.pop() == nil)
        #expect(f.inputs.push(.setPriority(f.paths[0], 5)))
        f.service.pass(nowNs: Time.nsPerMs)
        #expect(f.reloads.waitingRequests == 1)
        #expect(f.board.reloadsDeferred.load(ordering: .relaxed) == 1)
        let returning = first.map == f.maps[0] ? first : second
        #expect(f.inputs.push(.reloadDone(returning)))
        f.service.pass(nowNs: 2 * Time.nsPerMs)
        let resent = try #require(f.reloads.ring.pop())
        #expect(resent.map == f.maps[0])
        #expect(f.reloads.waitingRequests == 0)
    }

    @Test func sleepIsBoundedByTheEarliestDeadlineAndTheMaximum() throws {
        var f = try ServiceFixture()
        f.loadTables()
        let next = f.service.loop.nextDeadlineNs()
        #expect(next > 0 && next < Time.never)
        #expect(f.service.sleepNs(nowNs: 0, checkerDeadlineNs: Time.never, sleepMaxNs: Time.never) == next)
        #expect(f.service.sleepNs(nowNs: 0, checkerDeadlineNs: 3, sleepMaxNs: Time.never) == min(3, next))
        #expect(f.service.sleepNs(nowNs: 0, checkerDeadlineNs: Time.never, sleepMaxNs: 1) == min(1, next))
        #expect(f.service.sleepNs(nowNs: next + 5, checkerDeadlineNs: Time.never, sleepMaxNs: Time.never) == 0)
    }
}
