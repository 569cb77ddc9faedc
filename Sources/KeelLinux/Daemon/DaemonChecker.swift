// DaemonChecker: the daemon's one checker backend, dispatching each path to TUR or directio.
import KeelCore

/// Which backend checks a path.
public enum CheckerKind: UInt8, BitwiseCopyable, Sendable {
    case none = 0
    case tur = 1
    case directIO = 2
}

/// The recovery loop's checker in the daemon: each path is checked by the backend its map's
/// `path_checker` names (recorded with `assign` before the path is first checked); `reap`
/// collects both. The kind table is allocated once (`pathsMax`); nothing here allocates after.
public struct DaemonChecker: PathCheckBackend {
    public let tur: TURChecker?
    public let directIO: DirectIOChecker?
    @usableFromInline let kinds: UnsafeMutableBufferPointer<CheckerKind>
    @usableFromInline let storage: Storage

    /// Owns the kind table.
    @usableFromInline final class Storage {
        let kinds: UnsafeMutableBufferPointer<CheckerKind>
        init(pathsMax: Int) {
            kinds = .allocate(capacity: pathsMax)
            kinds.initialize(repeating: .none)
        }
        deinit { kinds.deallocate() }
    }

    /// A checker for up to `pathsMax` paths over the given backends.
    public init(pathsMax: Int, tur: TURChecker?, directIO: DirectIOChecker?) {
        self.tur = tur
        self.directIO = directIO
        storage = Storage(pathsMax: max(pathsMax, 1))
        kinds = storage.kinds
    }

    /// Records which backend checks `path` (control plane, before the recovery thread starts
    /// checking it).
    public func assign(_ path: PathHandle, to kind: CheckerKind) {
        precondition(path.index < kinds.count, "path handle past the checker's table")
        kinds[path.index] = kind
    }

    /// The backend that checks `path`.
    public func kind(of path: PathHandle) -> CheckerKind {
        path.index < kinds.count ? kinds[path.index] : .none
    }

    /// The completion descriptors the recovery thread polls (-1 for an absent backend).
    public var completionDescriptors: (tur: Int32, directIO: Int32) {
        (tur?.completionFD ?? -1, directIO?.completionFD ?? -1)
    }

    /// The earliest check timeout of either backend (`Time.never` when none is in flight).
    public func nextDeadlineNs() -> Nanoseconds {
        min(tur?.nextDeadlineNs() ?? Time.never, directIO?.nextDeadlineNs() ?? Time.never)
    }

    @inlinable
    public mutating func submit(_ request: CheckRequest, nowNs: Nanoseconds) -> Bool {
        guard request.path.index < kinds.count else { return false }
        switch kinds[request.path.index] {
        case .tur: return tur?.submit(request, nowNs: nowNs) ?? false
        case .directIO: return directIO?.submit(request, nowNs: nowNs) ?? false
        case .none: return false
        }
    }

    @inlinable
    public mutating func reap<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S) {
        tur?.reap(nowNs: nowNs, into: &sink)
        directIO?.reap(nowNs: nowNs, into: &sink)
    }
}
