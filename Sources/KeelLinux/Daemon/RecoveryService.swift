// The recovery thread's work in the daemon: inputs from the rings, one loop step, outputs to the
// log, the state board and the control plane. Nothing here allocates, locks or formats.
import Glibc
import Synchronization
import KeelCore

/// The recovery loop's output in the daemon: every record goes to the log (the recovery thread's
/// own ring in keeld, the run's recorder in the simulator); transitions and queueing reach the
/// state board; table reload requests are handed to the control plane with a layout snapshot.
public struct DaemonRecoveryOutput<Log: RecoveryOutput>: RecoveryOutput {
    public var log: Log
    public let engine: Engine
    public let board: StateBoard
    public let reloads: ReloadHandoff
    /// The path-back histogram and the checker's per-path send times it is measured from
    /// (`DaemonChecker.pathBack`, `sentAt`); nil: not kept.
    @usableFromInline let pathBack: CheckLatencyHistogram?
    @usableFromInline let checkSentAt: UnsafeMutablePointer<Nanoseconds>?
    /// The checker's table storage: how many send times are committed now (it grows).
    @usableFromInline let checkStorage: DaemonChecker.Storage?

    public init(log: Log, engine: Engine, board: StateBoard, reloads: ReloadHandoff, checker: DaemonChecker? = nil) {
        self.log = log
        self.engine = engine
        self.board = board
        self.reloads = reloads
        pathBack = checker?.pathBack
        checkSentAt = checker?.sentAt
        checkStorage = checker?.storage
    }

    @inlinable
    public mutating func record(_ record: RecoveryRecord, nowNs: Nanoseconds) {
        log.record(record, nowNs: nowNs)
        switch record {
        case .transition(let path, _, _, let to):
            board.setState(path, to)
        case .messageSent(let message, let errno):
            guard errno == 0 else { break }
            if message.kind == .queueIfNoPath { board.setQueueing(message.map, true) }
            if message.kind == .failIfNoPath { board.setQueueing(message.map, false) }
            if message.kind == .reinstatePath, let pathBack, let checkSentAt, let checkStorage,
               let path = engine.pathHandle(for: message.device), path.index < checkStorage.ready.load(ordering: .acquiring) {
                // From sending the check whose answer decided the reinstate, to the kernel's yes.
                pathBack.record(nowNs - checkSentAt[path.index])
            }
        case .reloadRequested(let map):
            if !reloads.request(map, engine: engine) {
                _ = board.reloadsDeferred.add(1, ordering: .relaxed)
            }
        case .checkRefused:
            break
        }
    }
}

/// The recovery thread's state: the loop, the ring it takes inputs from, the ring operator
/// replies go back on. `pass` is one iteration without the wait; `run` is the thread's body.
public struct RecoveryService<Checker: PathCheckBackend, Messenger: MultipathMessenger, Log: RecoveryOutput> {
    public var loop: RecoveryLoop<Checker, Messenger, DaemonRecoveryOutput<Log>>
    public let inputs: MPSCRing<RecoveryInput>
    /// Rung by whoever pushes to `inputs`.
    public let inputDoorbell: EventFD
    public let replies: SPSCRing<CommandReply>
    /// Rung after a reply is pushed.
    public let replyDoorbell: EventFD
    /// Inputs taken per pass at most, so a flood cannot starve the checks.
    public var inputsPerPassMax: Int
    /// Maps whose statistics each pass publishes on the board, and where the next pass starts:
    /// a sweep, so a pass costs the same on a host of 16,384 maps as on one of 4.
    public var statisticsPerPass = 64
    @usableFromInline var statisticsCursor = 0
    /// Where topology inputs are answered (the thread that asked consumes it), with its doorbell.
    public let topologyReplies: SPSCRing<TopologyReply>?
    public let topologyDoorbell: EventFD?

    public init(loop: RecoveryLoop<Checker, Messenger, DaemonRecoveryOutput<Log>>, inputs: MPSCRing<RecoveryInput>,
                inputDoorbell: EventFD, replies: SPSCRing<CommandReply>, replyDoorbell: EventFD, inputsPerPassMax: Int = 1024,
                topologyReplies: SPSCRing<TopologyReply>? = nil, topologyDoorbell: EventFD? = nil) {
        self.loop = loop
        self.inputs = inputs
        self.inputDoorbell = inputDoorbell
        self.replies = replies
        self.replyDoorbell = replyDoorbell
        self.inputsPerPassMax = inputsPerPassMax
        self.topologyReplies = topologyReplies
        self.topologyDoorbell = topologyDoorbell
    }

    public var board: StateBoard { loop.output.board }

    /// One pass at `nowNs`: the inputs waiting (up to `inputsPerPassMax`), then the loop's step
    /// (completions, decisions, timers, checks). Returns how many inputs were taken.
    @inlinable
    @discardableResult
    public mutating func pass(nowNs: Nanoseconds) -> Int {
        var taken = 0
        while taken < inputsPerPassMax, let input = inputs.pop() {
            handle(input, nowNs: nowNs)
            taken += 1
        }
        loop.step(nowNs: nowNs)
        let board = loop.output.board
        publishStatistics(board)
        _ = board.inputsHandled.add(UInt64(taken), ordering: .relaxed)
        _ = board.loopPasses.add(1, ordering: .relaxed)
        return taken
    }

    /// Publishes the statistics of the next `statisticsPerPass` maps.
    @inlinable
    mutating func publishStatistics(_ board: StateBoard) {
        let engine = loop.engine
        let count = min(engine.mapCapacity, board.mapCapacity)
        guard count > 0 else { return }
        for _ in 0..<min(statisticsPerPass, count) {
            if statisticsCursor >= count { statisticsCursor = 0 }
            let map = engine.mapHandle(slot: statisticsCursor)
            board.publishStatistics(map, engine.statistics(map))
            statisticsCursor += 1
        }
    }

    @inlinable
    mutating func handle(_ input: RecoveryInput, nowNs: Nanoseconds) {
        let engine = loop.engine
        switch input {
        case .kernel(let event):
            loop.deliver(event, nowNs: nowNs)
        case .tableLoaded(let map, let group, let queueing):
            loop.output.board.setLoaded(map)
            loop.output.board.setQueueing(map, queueing)
            loop.tableLoaded(map, initialGroup: group, queueing: queueing, nowNs: nowNs)
        case .reloadDone(let ticket):
            loop.output.reloads.returned(ticket, engine: engine)
        case .command(let command, let ticket):
            let outcome = loop.deliver(command, nowNs: nowNs)
            if outcome == .done, case .setMarginal(let path, let marginal) = command { loop.output.board.setMarginal(path, marginal) }
            if replies.push(CommandReply(ticket: ticket, outcome: outcome)) { replyDoorbell.signal() }
        case .setPriority(let path, let priority):
            try? engine.setPriority(path, priority)
        case .setPolicy(let map, let policy):
            try? engine.setPolicy(map, policy)
        case .requestReload(let map):
            try? engine.requestReload(map)
        case .addMap(let policy, let ticket):
            do {
                answer(TopologyReply(ticket: ticket, map: try engine.addMap(policy: policy)))
            } catch {
                answer(TopologyReply(ticket: ticket, errno: Self.errno(of: error)))
            }
        case .addPath(let descriptor, let map, let ticket):
            do {
                let path = try engine.addPath(descriptor, to: map, nowNs: nowNs)
                loop.output.board.setMarginal(path, descriptor.marginal)
                answer(TopologyReply(ticket: ticket, map: map, path: path))
            } catch {
                answer(TopologyReply(ticket: ticket, map: map, errno: Self.errno(of: error)))
            }
        case .adopt(let paths, let maps):
            engine.adopt(paths: Int(paths), maps: Int(maps))
        case .removePath(let path, let ticket):
            do {
                try engine.removePath(path, nowNs: nowNs)
                answer(TopologyReply(ticket: ticket, path: path))
            } catch {
                answer(TopologyReply(ticket: ticket, path: path, errno: Self.errno(of: error)))
            }
        case .removeMap(let map, let ticket):
            do {
                try engine.removeMap(map)
                answer(TopologyReply(ticket: ticket, map: map))
            } catch {
                answer(TopologyReply(ticket: ticket, map: map, errno: Self.errno(of: error)))
            }
        }
    }

    @inlinable
    func answer(_ reply: TopologyReply) {
        guard let ring = topologyReplies else { return }
        if ring.push(reply) { topologyDoorbell?.signal() }
    }

    /// The errno a topology refusal is reported with.
    @inlinable
    static func errno(of refusal: EngineRefusal) -> Int32 {
        switch refusal {
        case .pathTableFull, .mapTableFull: return ENOBUFS
        case .mapFull: return ENOSPC
        case .duplicateDevice: return EEXIST
        case .unknownMap, .unknownPath: return ENOENT
        }
    }

    /// How long the thread may sleep after a pass at `nowNs`: until the engine's next deadline or
    /// a check's timeout, at most `sleepMaxNs` (the watchdog needs the loop to come round).
    @inlinable
    public func sleepNs(nowNs: Nanoseconds, checkerDeadlineNs: Nanoseconds, sleepMaxNs: Nanoseconds) -> Nanoseconds {
        let deadline = min(loop.nextDeadlineNs(), checkerDeadlineNs)
        return max(0, min(deadline - nowNs, sleepMaxNs))
    }
}

extension RecoveryService where Checker == DaemonChecker {
    /// The thread's body: pass, then sleep in `poll` on the checkers' completion descriptors and
    /// the input doorbell until the next deadline, until `stop` is set (and the doorbell rung).
    /// The poll set is on the stack; nothing allocates.
    public mutating func run(stop: borrowing Atomic<Bool>, sleepMaxNs: Nanoseconds = 250 * Time.nsPerMs) {
        let descriptors = loop.checker.completionDescriptors
        var fds = (pollfd(fd: inputDoorbell.descriptor, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: descriptors.tur, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: descriptors.directIO, events: Int16(POLLIN), revents: 0))
        while !stop.load(ordering: .acquiring) {
            let now = LogClock.nowNs()
            pass(nowNs: now)
            let sleep = sleepNs(nowNs: LogClock.nowNs(), checkerDeadlineNs: loop.checker.nextDeadlineNs(), sleepMaxNs: sleepMaxNs)
            if inputs.count > 0 || loop.checker.hasImmediateVerdicts { continue }
            // Round the sleep up to whole milliseconds so a deadline is never polled for early
            // in a busy loop of zero timeouts.
            let timeoutMs = Int32(clamping: (sleep + Time.nsPerMs - 1) / Time.nsPerMs)
            _ = withUnsafeMutableBytes(of: &fds) { raw in
                poll(raw.baseAddress!.assumingMemoryBound(to: pollfd.self), 3, timeoutMs)
            }
            if fds.0.revents != 0 { _ = inputDoorbell.drain() }
        }
    }
}
