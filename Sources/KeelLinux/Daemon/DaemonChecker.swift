// DaemonChecker: the daemon's one checker backend, dispatching each path to TUR or directio.
import Synchronization
import KeelCore

/// Which backend checks a path.
public enum CheckerKind: UInt8, BitwiseCopyable, Sendable {
    case none = 0
    case tur = 1
    case directIO = 2
    /// The device could not be opened (an offline SCSI device answers ENXIO): every check
    /// reports down at once until the control plane opens it and assigns the real backend.
    case unopened = 3
}

/// The recovery loop's checker in the daemon: each path is checked by the backend its map's
/// `path_checker` names (recorded with `assign` before the path is first checked); `reap`
/// collects both. The kind table is allocated once (`pathsMax`); nothing here allocates after.
public struct DaemonChecker: PathCheckBackend {
    public let tur: TURChecker?
    public let directIO: DirectIOChecker?
    /// Per path, `CheckerKind.rawValue`; written by the control plane, read by recovery.
    @usableFromInline let kinds: UnsafeMutablePointer<Atomic<UInt8>>
    @usableFromInline let pathsMax: Int
    /// Verdicts decided at submit (unopened devices), handed out at the next reap.
    @usableFromInline let immediate: UnsafeMutableBufferPointer<CheckCompletion>
    @usableFromInline var immediateCount = 0
    @usableFromInline let storage: Storage

    /// Owns the kind table and the immediate verdicts.
    @usableFromInline final class Storage {
        let kinds: UnsafeMutablePointer<Atomic<UInt8>>
        let count: Int
        let immediate: UnsafeMutableBufferPointer<CheckCompletion>
        init(pathsMax: Int) {
            count = pathsMax
            kinds = .allocate(capacity: pathsMax)
            for i in 0..<pathsMax { (kinds + i).initialize(to: Atomic(CheckerKind.none.rawValue)) }
            immediate = .allocate(capacity: pathsMax)
        }
        deinit {
            kinds.deinitialize(count: count)
            kinds.deallocate()
            immediate.deallocate()
        }
    }

    /// A checker for up to `pathsMax` paths over the given backends.
    public init(pathsMax: Int, tur: TURChecker?, directIO: DirectIOChecker?) {
        self.tur = tur
        self.directIO = directIO
        storage = Storage(pathsMax: max(pathsMax, 1))
        kinds = storage.kinds
        self.pathsMax = storage.count
        immediate = storage.immediate
    }

    /// Records which backend checks `path` (control plane, before the recovery thread starts
    /// checking it).
    /// Any thread may assign; the recovery thread sees the change at its next submit.
    public func assign(_ path: PathHandle, to kind: CheckerKind) {
        precondition(path.index < pathsMax, "path handle past the checker's table")
        kinds[path.index].store(kind.rawValue, ordering: .releasing)
    }

    /// The backend that checks `path`.
    public func kind(of path: PathHandle) -> CheckerKind {
        path.index < pathsMax ? CheckerKind(rawValue: kinds[path.index].load(ordering: .acquiring)) ?? .none : .none
    }

    /// Whether verdicts decided at submit wait for `reap` (the thread must not sleep then).
    public var hasImmediateVerdicts: Bool { immediateCount > 0 }

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
        guard request.path.index < pathsMax else { return false }
        switch CheckerKind(rawValue: kinds[request.path.index].load(ordering: .acquiring)) ?? .none {
        case .tur: return tur?.submit(request, nowNs: nowNs) ?? false
        case .directIO: return directIO?.submit(request, nowNs: nowNs) ?? false
        case .unopened:
            guard immediateCount < immediate.count else { return false }
            immediate[immediateCount] = CheckCompletion(path: request.path, token: request.token, result: .down)
            immediateCount += 1
            return true
        case .none: return false
        }
    }

    @inlinable
    public mutating func reap<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S) {
        for i in 0..<immediateCount { sink.checkCompleted(immediate[i]) }
        immediateCount = 0
        tur?.reap(nowNs: nowNs, into: &sink)
        directIO?.reap(nowNs: nowNs, into: &sink)
    }
}
