// What keeld's threads share: rings and doorbells to the recovery thread, stop flags, the state
// board, and the directory of names the operator sees (never touched by the recovery thread).
import Glibc
import Synchronization
import KeelCore
import KeelLinux

/// Names and facts for the operator: maps and paths as the control plane built them, and how
/// the process runs. Guarded by a mutex that only the events and control threads take.
struct Directory {
    /// A path as assembly made it (names, transport, checker) for the operator's views.
    typealias PathEntry = AssembledPath
    struct MapEntry {
        var name: String
        var wwid: String
        var handle: MapHandle
        /// The kernel had this table already and keeld kept it as it was.
        var adopted: Bool
        var paths: [PathEntry]
        var vendor: String
        var product: String
        var revision: String
        var sizeSectors: UInt64
        var failback: Failback
        var noPathRetry: NoPathRetry
        var tableLoads: Int
        var reservation: MapReservation
        var marginalPathGroups: Bool
        /// Whether its paths' ALUA port groups mean something to it (alua prioritizer or
        /// group_by_tpg): multipathd prints `%A` only then.
        var usesTargetPortGroups: Bool
    }
    var maps: [MapEntry] = []
    var configPath = ""
    /// The configuration in force, as `show config` prints it.
    var configurationText = ""
    /// The configuration in force, for `show config`'s list of where each map's settings come from.
    var configuration = Configuration()
    /// What was done about capabilities at start.
    var capabilities = ""
    var recoveryScheduling = ""
    var memory = ""
    var seccomp = "not installed"
    var oomScore = ""
    var startedUnixSeconds = 0

    /// Copies what the assembler knows.
    mutating func update(from assembler: MultipathAssembler) {
        maps = assembler.maps.map { map in
            MapEntry(name: map.name, wwid: map.wwid, handle: map.handle, adopted: map.adopted,
                     paths: map.paths,
                     vendor: map.vendor, product: map.product, revision: map.revision, sizeSectors: map.sizeSectors,
                     failback: map.profile.policy.failback, noPathRetry: map.profile.policy.noPathRetry, tableLoads: map.tableLoads,
                     reservation: map.reservation, marginalPathGroups: map.profile.policy.marginalPathGroups,
                     usesTargetPortGroups: map.profile.prio == .alua || map.profile.policy.grouping == .groupByTPG)
        }
        configurationText = assembler.configuration.render()
        configuration = assembler.configuration
    }
}

/// Orders from the control thread to the events thread and their answers: the operator's
/// changes to maps and paths (`add`/`del` path and map, suspend, resume, resize), which the
/// events thread carries out because it owns assembly and table loads. Bounded by the
/// control thread's client cap (a client has one request at a time). Only those two threads
/// take its lock.
struct OrderDesk {
    struct Answer {
        var id: UInt32
        /// nil: done.
        var failure: String?
        var detail: String
    }
    var pending: [(id: UInt32, order: ControlRequest)] = []
    var answered: [Answer] = []
}

/// keeld's shared state. Created on the main thread before any other thread starts.
final class DaemonShared: @unchecked Sendable {
    /// Copies what the assembler knows into the directory (for the operator) and the log's
    /// names (so lines say `sdc (8:32) in mpatha`).
    func publish(_ assembler: MultipathAssembler) {
        directory.withLock { $0.update(from: assembler) }
        logger.names.replace(maps: assembler.maps.map { map in
            (map.handle, map.name, map.paths.map { ($0.handle, $0.kernelName, $0.device) })
        })
    }

    let inputs: MPSCRing<RecoveryInput>
    let inputDoorbell: EventFD
    let replies: SPSCRing<CommandReply>
    let replyDoorbell: EventFD
    /// Answers to the events thread's topology inputs (hot-plugged paths and maps).
    let topologyReplies: SPSCRing<TopologyReply>
    let topologyDoorbell: EventFD
    let board: StateBoard
    let reloads: ReloadHandoff
    /// Wakes the events thread (reconfigure, stop).
    let eventsWake: EventFD
    /// Wakes the control thread (stop).
    let controlWake: EventFD
    /// The control thread asks the main thread to stop (`shutdown` command).
    let shutdownRequest: EventFD
    let recoveryStop = Atomic<Bool>(false)
    let eventsStop = Atomic<Bool>(false)
    let controlStop = Atomic<Bool>(false)
    /// `forcequeueing daemon`: maps keep queueing at exit whatever queue_without_daemon says.
    let forceQueueingAtExit = Atomic<Bool>(false)
    let reconfigureRequested = Atomic<Bool>(false)
    let directory = Mutex(Directory())
    /// Operator orders for the events thread (`add`/`del` path and map, suspend, resume, resize).
    let orders = Mutex(OrderDesk())
    /// Set by the main thread once every map's first table is loaded.
    let ready = Atomic<Bool>(false)
    /// Log records the logger dropped, read by `show daemon`.
    let logger: KeelLogger
    /// The threads' stack high-water marks, set once the threads run (read by `show daemon` and
    /// the metrics).
    let stacks = Mutex<[StackWatermark]>([])

    init(capacities: Capacities, initial: (paths: Int, maps: Int)? = nil, memory: TableMemory = .heap,
         logger: KeelLogger) throws(SystemError) {
        inputs = MPSCRing(capacity: capacities.ringSlots)
        inputDoorbell = try EventFD()
        replies = SPSCRing(capacity: 64)
        replyDoorbell = try EventFD()
        topologyReplies = SPSCRing(capacity: 64)
        topologyDoorbell = try EventFD()
        board = StateBoard(pathsMax: capacities.pathsMax, mapsMax: capacities.mapsMax, initial: initial, memory: memory)
        reloads = ReloadHandoff(mapsMax: capacities.mapsMax, pathsPerMapMax: capacities.pathsPerMapMax, doorbell: try EventFD())
        eventsWake = try EventFD()
        controlWake = try EventFD()
        shutdownRequest = try EventFD()
        self.logger = logger
    }

    /// Hands `input` to the recovery thread from a control-plane thread. A full ring is waited
    /// out here (1 ms naps, never on the recovery thread): control-plane inputs such as a
    /// returned reload slot must not be lost. Gives up only when `stop` is set.
    func send(_ input: RecoveryInput, unless stop: borrowing Atomic<Bool>) {
        while !inputs.push(input) {
            if stop.load(ordering: .relaxed) { return }
            inputDoorbell.signal()
            usleep(1000)
        }
        inputDoorbell.signal()
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
func monotonicNs() -> Nanoseconds { LogClock.nowNs() }

/// Polls `descriptors` for input up to `timeoutMs`; returns which were readable.
func pollReadable(_ descriptors: [Int32], timeoutMs: Int32) -> [Bool] {
    var fds = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    let n = poll(&fds, nfds_t(fds.count), timeoutMs)
    guard n > 0 else { return Array(repeating: false, count: descriptors.count) }
    return fds.map { $0.revents != 0 }
}

/// The recovery thread as keeld's events thread reaches it: the shared input ring (a full ring
/// waits unless the events thread is stopping), topology answers with a 2 s wait on their
/// doorbell, and growth and timeouts in the log.
struct DaemonChannel: RecoveryChannel {
    let shared: DaemonShared
    let log: LogProducer?

    func send(_ input: RecoveryInput) {
        shared.send(input, unless: shared.eventsStop)
    }

    func nextTopologyReply() -> TopologyReply? { shared.topologyReplies.pop() }

    func topologyWait() -> () -> Bool {
        let shared = self.shared
        let deadline = monotonicNs() + 2 * Time.nsPerSecond
        return {
            guard monotonicNs() < deadline else { return false }
            _ = pollReadable([shared.topologyDoorbell.descriptor], timeoutMs: 50)
            _ = shared.topologyDoorbell.drain()
            return true
        }
    }

    func topologyRequestTimedOut() { log?.log(.topologyRequestTimedOut) }

    func tablesGrew(to grown: (paths: Int, maps: Int)?, ceilings: Capacities) {
        if let grown {
            log?.log(.tablesGrown, LogArgument.signed(grown.paths), LogArgument.signed(grown.maps))
        } else {
            log?.log(.tablesAtCeiling, LogArgument.signed(ceilings.pathsMax), LogArgument.signed(ceilings.mapsMax))
        }
    }
}
