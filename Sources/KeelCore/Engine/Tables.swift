// The engine's fixed-capacity path and map records.

/// What the control plane knows about a path when it adds it. Fixed-size.
@frozen
public struct PathDescriptor: BitwiseCopyable, Sendable, Equatable {
    public var device: DevNo
    /// Priority from the prioritizer (alua: 50 optimized, 10 non-optimized, 1 standby).
    public var priority: Int32
    /// Host port + target port pair: paths sharing it fail together.
    public var portKey: UInt32
    /// Interned array serial (group_by_serial).
    public var serialKey: UInt32
    /// Interned target node name (group_by_node_name).
    public var nodeKey: UInt32
    /// ALUA target port group + 1 (group_by_tpg); 0 when the path reports none.
    public var tpgKey: UInt32
    /// Marked marginal by the operator (`setmarginal path`): with `marginal_pathgroups`, grouped
    /// apart, after every group of normal paths.
    public var marginal: Bool = false

    public init(device: DevNo, priority: Int32 = 1, portKey: UInt32 = 0, serialKey: UInt32 = 0, nodeKey: UInt32 = 0, tpgKey: UInt32 = 0) {
        self.device = device
        self.priority = priority
        self.portKey = portKey
        self.serialKey = serialKey
        self.nodeKey = nodeKey
        self.tpgKey = tpgKey
    }
}

/// One row of the path table.
@usableFromInline
struct PathRecord: BitwiseCopyable {
    @usableFromInline var inUse = false
    @usableFromInline var descriptor = PathDescriptor(device: DevNo(major: 0, minor: 0))
    @usableFromInline var map = MapHandle(0)
    @usableFromInline var state = PathState.unchecked
    /// The engine's belief of the kernel's view (status `A`); repaired by resync.
    @usableFromInline var kernelActive = true
    /// 0-based index of the path's group in the map's table order.
    @usableFromInline var group: UInt16 = 0
    /// Current healthy probe interval (doubles up to the maximum).
    @usableFromInline var intervalNs: Nanoseconds = 0
    @usableFromInline var checkInFlight = false
    @usableFromInline var checkToken: UInt32 = 0
    @usableFromInline var nextDueNs: Nanoseconds = 0
    /// Flap damping: failures counted and good checks since the last one was forgotten.
    @usableFromInline var flapFailures: UInt32 = 0
    @usableFromInline var goodStreak: UInt32 = 0
    @usableFromInline var delayedUntilNs: Nanoseconds = 0
    @usableFromInline var lastResult = CheckResult.pending
    /// When the engine last sent `reinstate_path` (`Time.never`: not yet), and how many times in
    /// a row the kernel failed the path again right after while its checker called it good (an
    /// ALUA standby port, a device that errors I/O but answers TUR): each such refusal doubles
    /// the wait before the next attempt, up to the healthy interval.
    @usableFromInline var reinstatedAtNs: Nanoseconds = Time.never
    @usableFromInline var kernelRefusals: UInt8 = 0
    /// Intrusive links: the map's path list and the port's sibling list.
    @usableFromInline var nextInMap: Int32 = -1
    @usableFromInline var prevInMap: Int32 = -1
    @usableFromInline var nextInPort: Int32 = -1
    @usableFromInline var prevInPort: Int32 = -1
    @usableFromInline var nextFree: Int32 = -1

    /// Whether the kernel may route I/O here and should: a path checked good, or one not yet
    /// checked that the kernel holds active (every path of a fresh table starts so).
    @inlinable var isUsable: Bool { state.wantsActiveInKernel || (state == .unchecked && kernelActive) }
}

/// One row of the map table.
@usableFromInline
struct MapRecord: BitwiseCopyable {
    @usableFromInline var inUse = false
    @usableFromInline var policy = MapPolicy()
    @usableFromInline var firstPath: Int32 = -1
    @usableFromInline var pathCount: Int32 = 0
    @usableFromInline var groupCount: UInt16 = 0
    /// The kernel's current group as far as we know, 1-based; 0 when unknown.
    @usableFromInline var kernelGroup: UInt16 = 0
    /// The kernel's queue_if_no_path flag as far as we know.
    @usableFromInline var kernelQueueing = false
    @usableFromInline var operatorQueueingDisabled = false
    /// no_path_retry N: since when no path is usable, and whether the retries ran out.
    @usableFromInline var recoveryDeadlineNs: Nanoseconds = Time.never
    @usableFromInline var recoveryExpired = false
    @usableFromInline var failbackDeadlineNs: Nanoseconds = Time.never
    /// multipathd's per-map statistics (`%1`, `%3`, `%4`, `%x`).
    @usableFromInline var statistics = MapStatistics()
    @usableFromInline var needsReload = false
    /// Set until the first table load is confirmed: no messages before the map exists.
    @usableFromInline var loaded = false
    @usableFromInline var nextFree: Int32 = -1
    /// Times the slot was freed (`MapHandle.generation`); kept when the slot is taken again.
    @usableFromInline var generation: UInt16 = 0
}

/// One map's statistics as multipathd keeps them: group switches sent, no_path_retry
/// countdowns begun (`q_timeouts`), countdowns that ran out and stopped queueing (`failures`),
/// and the time spent counting down (`total_q_time`). They start at zero when the map is added.
@frozen
public struct MapStatistics: BitwiseCopyable, Sendable, Equatable {
    public var groupSwitches: UInt32 = 0
    public var countdownsBegun: UInt32 = 0
    public var countdownsExpired: UInt32 = 0
    /// Time spent in countdowns that ended.
    public var countdownNs: Nanoseconds = 0
    /// When the countdown under way began; `Time.never` when none is.
    public var countdownSinceNs: Nanoseconds = Time.never

    public init() {}

    /// `total_q_time` in whole seconds at `nowNs`: ended countdowns and the one under way.
    public func countdownSeconds(nowNs: Nanoseconds) -> UInt64 {
        let running = countdownSinceNs == Time.never || nowNs < countdownSinceNs ? 0 : nowNs - countdownSinceNs
        return UInt64((countdownNs + running) / Time.nsPerSecond)
    }
}

/// Counters an operator can read; they only grow.
@frozen
public struct EngineCounters: Sendable, Equatable {
    public var checksSubmitted: UInt64 = 0
    public var checksRefusedByBackend: UInt64 = 0
    public var checksCompleted: UInt64 = 0
    public var checksTimedOutByEngine: UInt64 = 0
    public var staleCompletions: UInt64 = 0
    public var pathsFailed: UInt64 = 0
    public var pathsReinstated: UInt64 = 0
    public var groupSwitches: UInt64 = 0
    public var queueingChanges: UInt64 = 0
    public var refusals: UInt64 = 0
    public var unknownDeviceEvents: UInt64 = 0
    public init() {}
}

/// The result of an operator command.
@frozen
public enum OperatorOutcome: BitwiseCopyable, Sendable, Equatable {
    case done
    case unknownPath
    case unknownMap
    case noSuchGroup
    /// `restoreQueueing` on a map whose queueing was not disabled (as multipathd refuses it).
    case queueingNotDisabled
}
