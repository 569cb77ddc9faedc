// Fixed-size records that cross the seam between the engine and a world (real kernel or simulation).

/// A message to the kernel's multipath target (`DM_TARGET_MSG`), exactly the verbs it accepts.
@frozen
public enum DMMessageKind: UInt8, BitwiseCopyable, Sendable, CaseIterable, CustomStringConvertible {
    case failPath
    case reinstatePath
    case switchGroup
    case enableGroup
    case disableGroup
    case queueIfNoPath
    case failIfNoPath

    /// The verb as the kernel parses it.
    public var verb: StaticString {
        switch self {
        case .failPath: return "fail_path"
        case .reinstatePath: return "reinstate_path"
        case .switchGroup: return "switch_group"
        case .enableGroup: return "enable_group"
        case .disableGroup: return "disable_group"
        case .queueIfNoPath: return "queue_if_no_path"
        case .failIfNoPath: return "fail_if_no_path"
        }
    }

    public var description: String { verb.description }
}

/// One dm message: the map, the verb, and its argument (a device for path verbs, a 1-based
/// group number for group verbs).
@frozen
public struct DMMessage: BitwiseCopyable, Sendable, Equatable, CustomStringConvertible {
    public var map: MapHandle
    public var kind: DMMessageKind
    public var device: DevNo
    public var group: UInt16

    @inlinable public init(map: MapHandle, kind: DMMessageKind, device: DevNo = DevNo(major: 0, minor: 0), group: UInt16 = 0) {
        self.map = map
        self.kind = kind
        self.device = device
        self.group = group
    }

    public var description: String {
        switch kind {
        case .failPath, .reinstatePath: return "\(map) \(kind.verb) \(device)"
        case .switchGroup, .enableGroup, .disableGroup: return "\(map) \(kind.verb) \(group)"
        case .queueIfNoPath, .failIfNoPath: return "\(map) \(kind.verb)"
        }
    }
}

/// A request to check one path. `token` pairs the completion with the request, so a late
/// completion of an orphaned check is recognised and ignored.
@frozen
public struct CheckRequest: BitwiseCopyable, Sendable, Equatable {
    public var path: PathHandle
    public var device: DevNo
    public var token: UInt32
    public var timeoutNs: Nanoseconds

    @inlinable public init(path: PathHandle, device: DevNo, token: UInt32, timeoutNs: Nanoseconds) {
        self.path = path
        self.device = device
        self.token = token
        self.timeoutNs = timeoutNs
    }
}

/// The verdict of one check.
@frozen
public struct CheckCompletion: BitwiseCopyable, Sendable, Equatable {
    public var path: PathHandle
    public var token: UInt32
    public var result: CheckResult

    @inlinable public init(path: PathHandle, token: UInt32, result: CheckResult) {
        self.path = path
        self.token = token
        self.result = result
    }
}

/// What the kernel told us, reduced to fixed-size records by the event thread.
@frozen
public enum KernelEvent: BitwiseCopyable, Sendable, Equatable {
    /// The multipath target failed this path itself (I/O error): dm event or `PATH_FAILED` uevent.
    case pathFailed(MapHandle, DevNo)
    /// The kernel's view of one path, from a status read (`A` active / `F` failed).
    case pathKernelState(MapHandle, DevNo, active: Bool)
    /// The kernel's queueing state for a map, from a status read.
    case mapQueueing(MapHandle, queueing: Bool)
    /// The kernel's active path group (1-based), from a status read.
    case mapActiveGroup(MapHandle, group: UInt16)
}

/// Operator commands the engine acts on (the CLI's fail/reinstate/switchgroup/queueing verbs).
@frozen
public enum OperatorCommand: BitwiseCopyable, Sendable, Equatable {
    /// Fail the path and keep it failed until `reinstatePath`.
    case failPath(PathHandle)
    /// Clear an operator failure; the checker decides from here.
    case reinstatePath(PathHandle)
    /// Switch the map to this 1-based path group.
    case switchGroup(MapHandle, group: UInt16)
    /// Stop queueing (fail I/O when no path is left) until `restoreQueueing`.
    case disableQueueing(MapHandle)
    /// Return to the map's `no_path_retry` policy.
    case restoreQueueing(MapHandle)
    /// Mark the path marginal or normal (`setmarginal` / `unsetmarginal path`): with
    /// `marginal_pathgroups` its map is regrouped and its table reloaded.
    case setMarginal(PathHandle, Bool)
}

/// An action the engine asks its world to carry out.
@frozen
public enum EngineAction: BitwiseCopyable, Sendable, Equatable {
    /// Start a check of one path.
    case check(CheckRequest)
    /// Send a message to the kernel's multipath target.
    case message(DMMessage)
    /// The map's table must be rebuilt and reloaded (grouping changed, paths added or removed).
    /// The control plane does it; the recovery plane never builds tables.
    case reloadMap(MapHandle)
    /// Not an order: a path changed state. Goes to the log and observation rings.
    case transition(PathHandle, device: DevNo, from: PathState, to: PathState)
}

/// Why the engine refused a request. Refusals are explicit and counted, never growth.
@frozen
public enum EngineRefusal: Error, BitwiseCopyable, Sendable, Equatable, CustomStringConvertible {
    case pathTableFull(capacity: Int)
    case mapTableFull(capacity: Int)
    case mapFull(MapHandle, capacity: Int)
    case unknownMap(MapHandle)
    case unknownPath(PathHandle)
    case duplicateDevice(DevNo)

    public var description: String {
        switch self {
        case .pathTableFull(let c): return "path table full (max_paths \(c))"
        case .mapTableFull(let c): return "map table full (max_maps \(c))"
        case .mapFull(let m, let c): return "\(m) already holds \(c) paths"
        case .unknownMap(let m): return "no such map \(m)"
        case .unknownPath(let p): return "no such path \(p)"
        case .duplicateDevice(let d): return "device \(d) is already a path"
        }
    }
}
