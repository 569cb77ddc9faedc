// The policies a map runs under (multipath-tools' semantics) and Keel's capacities.

/// How the paths of one map are split into path groups (`path_grouping_policy`).
@frozen
public enum GroupingPolicy: UInt8, BitwiseCopyable, Sendable, CaseIterable, CustomStringConvertible {
    /// One path per group, best priority first.
    case failover
    /// Every path in one group.
    case multibus
    /// One group per distinct priority, highest first.
    case groupByPrio
    /// One group per array serial number (controller).
    case groupBySerial
    /// One group per target node name (FC WWNN / iSCSI target).
    case groupByNodeName
    /// One group per ALUA target port group.
    case groupByTPG

    public var description: String {
        switch self {
        case .failover: return "failover"
        case .multibus: return "multibus"
        case .groupByPrio: return "group_by_prio"
        case .groupBySerial: return "group_by_serial"
        case .groupByNodeName: return "group_by_node_name"
        case .groupByTPG: return "group_by_tpg"
        }
    }

    public init?(configWord: String) {
        guard let p = Self.allCases.first(where: { $0.description == configWord }) else { return nil }
        self = p
    }
}

/// When to switch back to the best path group after it recovers (`failback`).
@frozen
public enum Failback: BitwiseCopyable, Sendable, Equatable, CustomStringConvertible {
    /// Never automatically; the operator switches (`switchgroup`).
    case manual
    /// As soon as a better group is usable.
    case immediate
    /// Only when the first path of the best group comes back and its other paths are down
    /// (active/passive arrays shared between hosts).
    case followover
    /// After the better group has stayed usable for this many seconds; any path failure cancels it.
    case deferred(seconds: UInt32)

    public var description: String {
        switch self {
        case .manual: return "manual"
        case .immediate: return "immediate"
        case .followover: return "followover"
        case .deferred(let s): return "\(s)"
        }
    }
}

/// What the kernel does with I/O when a map has no usable path (`no_path_retry`).
@frozen
public enum NoPathRetry: BitwiseCopyable, Sendable, Equatable, CustomStringConvertible {
    /// Fail I/O at once (`fail_if_no_path`).
    case fail
    /// Queue I/O until a path returns, however long (`queue_if_no_path`).
    case queue
    /// Queue for this many polling intervals, then fail queued and new I/O until a path returns.
    case retries(UInt32)

    public var description: String {
        switch self {
        case .fail: return "fail"
        case .queue: return "queue"
        case .retries(let n): return "\(n)"
        }
    }

    /// Whether a freshly loaded map carries the `queue_if_no_path` feature.
    @inlinable public var queuesInitially: Bool {
        if case .fail = self { return false }
        return true
    }
}

/// Damping for paths that keep failing (multipath-tools' san_path_err_* idea).
/// Disabled when `threshold` is 0.
@frozen
public struct FlapDamping: BitwiseCopyable, Sendable, Equatable {
    /// Failures counted before a returning path is held back.
    public var threshold: UInt32
    /// One counted failure is forgotten per this many consecutive good checks.
    public var forgetRate: UInt32
    /// How long a held-back path waits before it is reinstated.
    public var recoveryTimeNs: Nanoseconds

    public static let off = FlapDamping(threshold: 0, forgetRate: 0, recoveryTimeNs: 0)

    public init(threshold: UInt32, forgetRate: UInt32, recoveryTimeNs: Nanoseconds) {
        self.threshold = threshold
        self.forgetRate = forgetRate
        self.recoveryTimeNs = recoveryTimeNs
    }

    @inlinable public var isEnabled: Bool { threshold > 0 && forgetRate > 0 && recoveryTimeNs > 0 }
}

/// Everything the engine needs to decide for one map. Fixed-size; the table text (selector,
/// hardware handler, features) stays with the control plane.
@frozen
public struct MapPolicy: BitwiseCopyable, Sendable, Equatable {
    public var grouping: GroupingPolicy
    public var failback: Failback
    public var noPathRetry: NoPathRetry
    public var flapDamping: FlapDamping
    /// Probe interval of a failed or pending path (Keel's sub-second fast probe).
    public var intervalFastNs: Nanoseconds
    /// First interval of a healthy path (`polling_interval`); doubles while the path stays healthy.
    public var intervalHealthyNs: Nanoseconds
    /// Longest interval of a healthy path (`max_polling_interval`).
    public var intervalHealthyMaxNs: Nanoseconds
    /// A check that has not completed by then counts as a timeout (`checker_timeout`).
    public var checkTimeoutNs: Nanoseconds
    /// `marginal_pathgroups`: paths marked marginal are grouped apart, in groups after every other.
    public var marginalPathGroups: Bool
    /// One `no_path_retry` retry: `polling_interval`, whatever the healthy cadence is, so a count of
    /// retries keeps multipath-tools' meaning in time.
    public var retryIntervalNs: Nanoseconds
    /// Most healthy-path checks a second over all paths (`max_healthy_checks_per_second`, Keel);
    /// 0: no cap. A healthy path's interval is stretched to (paths / cap) seconds when that is longer.
    public var healthyChecksPerSecondMax: UInt32

    public init(
        grouping: GroupingPolicy = .failover,
        failback: Failback = .manual,
        noPathRetry: NoPathRetry = .fail,
        flapDamping: FlapDamping = .off,
        intervalFastNs: Nanoseconds = 200 * Time.nsPerMs,
        intervalHealthyNs: Nanoseconds = 5 * Time.nsPerSecond,
        intervalHealthyMaxNs: Nanoseconds = 20 * Time.nsPerSecond,
        checkTimeoutNs: Nanoseconds = 30 * Time.nsPerSecond,
        marginalPathGroups: Bool = false,
        retryIntervalNs: Nanoseconds? = nil,
        healthyChecksPerSecondMax: UInt32 = 0
    ) {
        self.grouping = grouping
        self.failback = failback
        self.noPathRetry = noPathRetry
        self.flapDamping = flapDamping
        self.intervalFastNs = intervalFastNs
        self.intervalHealthyNs = intervalHealthyNs
        self.intervalHealthyMaxNs = intervalHealthyMaxNs
        self.checkTimeoutNs = checkTimeoutNs
        self.marginalPathGroups = marginalPathGroups
        self.retryIntervalNs = retryIntervalNs ?? intervalHealthyNs
        self.healthyChecksPerSecondMax = healthyChecksPerSecondMax
    }
}

/// Fixed limits, decided at start-up. Past a limit Keel refuses; it never grows.
@frozen
public struct Capacities: BitwiseCopyable, Sendable, Equatable {
    public var pathsMax: Int
    public var mapsMax: Int
    /// Paths one map may hold (the kernel allows 1024 per group and 1024 groups).
    public var pathsPerMapMax: Int
    /// Slots in each record ring (rounded up to a power of two).
    public var ringSlots: Int

    /// Defaults that fit a 16,384-path fabric (1,024 LUNs x 16 paths).
    public static let `default` = Capacities(pathsMax: 16_384, mapsMax: 4_096, pathsPerMapMax: 1_024, ringSlots: 4_096)

    public init(pathsMax: Int, mapsMax: Int, pathsPerMapMax: Int, ringSlots: Int) {
        self.pathsMax = pathsMax
        self.mapsMax = mapsMax
        self.pathsPerMapMax = pathsPerMapMax
        self.ringSlots = ringSlots
    }
}
