// Path states as a multipath administrator knows them, and the results a checker reports.

/// What Keel believes about a path, from checks, kernel events and operator commands.
@frozen
public enum PathState: UInt8, BitwiseCopyable, Sendable, CaseIterable, CustomStringConvertible {
    /// Added but not yet checked.
    case unchecked
    /// Checker says ready; the path should be active in the kernel.
    case up
    /// Checker says faulty (or timed out); the path should be failed in the kernel.
    case down
    /// Standby / passive (ALUA standby, TUR NOT READY 04/0b): usable as a last resort, lowest priority.
    case ghost
    /// No verdict yet: ALUA transitioning, SCSI device blocked. The previous kernel state is kept.
    case pending
    /// Up, but held back from reinstatement by flap damping (a "marginal" path).
    case delayed
    /// The device disappeared; kept only until the control plane drops it.
    case removed
    /// Failed by the operator; never reinstated until the operator says so.
    case operatorFailed

    /// The word `show paths` prints in its checker-state column (multipath-tools' names).
    public var description: String {
        switch self {
        case .unchecked: return "undef"
        case .up: return "ready"
        case .down: return "faulty"
        case .ghost: return "ghost"
        case .pending: return "i/o pending"
        case .delayed: return "delayed"
        case .removed: return "removed"
        case .operatorFailed: return "faulty"
        }
    }

    /// Whether the kernel should be routing I/O to a path in this state.
    @inlinable public var wantsActiveInKernel: Bool { self == .up || self == .ghost }
}

/// One checker verdict. Fixed-size, carried through rings.
@frozen
public enum CheckResult: UInt8, BitwiseCopyable, Sendable, CaseIterable, CustomStringConvertible {
    case up
    case down
    /// Standby port (TUR sense NOT READY 04/0b).
    case ghost
    /// ALUA transitioning (NOT READY 04/0a) or device blocked: ask again soon.
    case pending
    /// The check did not complete within its timeout (the request is orphaned, never waited on).
    case timeout
    /// The device is gone (ENODEV, LUN not supported).
    case removed
    /// No verdict: the backend gave the check up before it was sent (a fallback thread pool
    /// whose threads were all busy for the whole timeout). The engine asks again at the fast
    /// interval, as when a check is refused; the path's state does not change.
    case notStarted

    public var description: String {
        switch self {
        case .up: return "up"
        case .down: return "down"
        case .ghost: return "ghost"
        case .pending: return "pending"
        case .timeout: return "timeout"
        case .removed: return "removed"
        case .notStarted: return "not started"
        }
    }
}
