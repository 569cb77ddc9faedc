// The dm-multipath table and status as values. Text codecs live beside this file.

/// One multipath target table, as `dmsetup table` shows it after `<start> <length> multipath`:
/// `<#feat> [features] <#hwh> [hwhandler] <#pgs> <init_pg> { <selector> <#selargs> [selargs]
/// <#paths> <#pathargs> { <maj:min> [pathargs] }... }...`
public struct MultipathTable: Equatable, Sendable {
    /// Feature words, e.g. `["queue_if_no_path"]`, `["queue_mode", "bio"]`.
    public var features: [String]
    /// Hardware handler words, e.g. `["alua"]`; empty for none.
    public var hardwareHandler: [String]
    /// The path group the kernel starts with, 1-based (`init_pg`). The kernel requires 0 exactly
    /// when there are no groups and refuses 0 when there are.
    public var initialGroup: Int
    public var groups: [Group]

    public struct Group: Equatable, Sendable {
        /// Path selector name: `round-robin`, `queue-length`, `service-time`, `historical-service-time`.
        public var selector: String
        /// Selector arguments (usually none: `service-time 0`).
        public var selectorArgs: [String]
        /// How many arguments each path carries (the selector's per-path arguments).
        public var pathArgCount: Int
        public var paths: [Path]

        public init(selector: String, selectorArgs: [String] = [], pathArgCount: Int = 1, paths: [Path]) {
            self.selector = selector
            self.selectorArgs = selectorArgs
            self.pathArgCount = pathArgCount
            self.paths = paths
        }
    }

    public struct Path: Equatable, Sendable {
        public var device: DevNo
        /// Per-path selector arguments, e.g. `["1"]` (repeat count) for service-time.
        public var args: [String]

        public init(device: DevNo, args: [String] = ["1"]) {
            self.device = device
            self.args = args
        }
    }

    public init(features: [String] = [], hardwareHandler: [String] = [], initialGroup: Int = 1, groups: [Group]) {
        self.features = features
        self.hardwareHandler = hardwareHandler
        self.initialGroup = initialGroup
        self.groups = groups
    }

    /// Whether the table asks the kernel to queue I/O when no path is left.
    public var queueIfNoPath: Bool { features.contains("queue_if_no_path") }
}

/// The kernel's multipath status line, as `dmsetup status` shows it after `<start> <length> multipath`:
/// `<#feat> <queue_io> <pg_init_count> [..] <#hwh> [..] <#pgs> <next_pg> { <A|E|D> <#ps> [..]
/// <#paths> <#pathargs> { <maj:min> <A|F> <fail_count> [..] }... }...`
public struct MultipathStatus: Equatable, Sendable {
    /// Whether I/O is being queued right now (feature arg 1: `queue_io`).
    public var queueingIO: Bool
    /// pg_init retries in progress (feature arg 2).
    public var pgInitCount: Int
    /// Feature args after the first two (kernels print more when `queue_mode` etc. are set).
    public var extraFeatureArgs: [String]
    /// Hardware handler status words.
    public var hardwareHandlerStatus: [String]
    /// The group the kernel will use next, 1-based (0 when none).
    public var nextGroup: Int
    public var groups: [Group]

    public enum GroupState: Character, Equatable, Sendable {
        case active = "A"
        case enabled = "E"
        case disabled = "D"
    }

    public struct Group: Equatable, Sendable {
        public var state: GroupState
        public var selectorStatus: [String]
        public var pathArgCount: Int
        public var paths: [Path]

        public init(state: GroupState, selectorStatus: [String] = [], pathArgCount: Int, paths: [Path]) {
            self.state = state
            self.selectorStatus = selectorStatus
            self.pathArgCount = pathArgCount
            self.paths = paths
        }
    }

    public struct Path: Equatable, Sendable {
        public var device: DevNo
        public var active: Bool
        public var failCount: Int
        /// Per-path selector status, e.g. service-time's `<in-flight size> <relative throughput>`.
        public var selectorStatus: [String]

        public init(device: DevNo, active: Bool, failCount: Int, selectorStatus: [String] = []) {
            self.device = device
            self.active = active
            self.failCount = failCount
            self.selectorStatus = selectorStatus
        }
    }

    public init(queueingIO: Bool, pgInitCount: Int = 0, extraFeatureArgs: [String] = [],
                hardwareHandlerStatus: [String] = [], nextGroup: Int, groups: [Group]) {
        self.queueingIO = queueingIO
        self.pgInitCount = pgInitCount
        self.extraFeatureArgs = extraFeatureArgs
        self.hardwareHandlerStatus = hardwareHandlerStatus
        self.nextGroup = nextGroup
        self.groups = groups
    }
}
