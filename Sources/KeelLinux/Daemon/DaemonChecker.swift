// DaemonChecker: the daemon's one checker backend, dispatching each path to TUR or directio.
import Synchronization
import KeelCore

/// Which backend checks a path.
public enum CheckerKind: UInt8, BitwiseCopyable, Sendable {
    /// Not registered yet (a hot-added path the engine knows a moment before the control plane
    /// has opened it): checks answer `.pending` at once, neither up nor down, and the engine
    /// probes again at the fast interval.
    case unassigned = 0
    case tur = 1
    case directIO = 2
    /// The device could not be opened (an offline SCSI device answers ENXIO): every check
    /// reports down at once until the control plane opens it and assigns the real backend.
    case unopened = 3
    /// `path_checker none`: the path is taken as up, every check answers `.up` at once.
    case alwaysUp = 4
}

/// The recovery loop's checker in the daemon: each path is checked by the backend its map's
/// `path_checker` names (recorded with `assign` before the path is first checked); `reap`
/// collects both. The kind table is reserved for `pathsMax` and grows in place (`prepare`);
/// nothing here allocates after.
public struct DaemonChecker: PathCheckBackend {
    public let tur: TURChecker?
    public let directIO: DirectIOChecker?
    /// Per path, `CheckerKind.rawValue`; written by the control plane, read by recovery.
    @usableFromInline let kinds: UnsafeMutablePointer<Atomic<UInt8>>
    @usableFromInline let pathsMax: Int
    /// Verdicts decided at submit (unopened devices), handed out at the next reap.
    @usableFromInline let immediate: UnsafeMutablePointer<CheckCompletion>
    @usableFromInline var immediateCount = 0
    @usableFromInline let storage: Storage

    /// Owns the kind table and the immediate verdicts.
    @usableFromInline final class Storage: @unchecked Sendable {
        let kinds: UnsafeMutablePointer<Atomic<UInt8>>
        let count: Int
        let immediate: UnsafeMutablePointer<CheckCompletion>
        let memory: TableMemory
        /// Paths with a usable slot.
        @usableFromInline let ready = Atomic<Int>(0)
        init(pathsMax: Int, memory: TableMemory) {
            count = pathsMax
            self.memory = memory
            kinds = memory.reserve(Atomic<UInt8>.self, count: pathsMax)
            immediate = memory.reserve(CheckCompletion.self, count: pathsMax)
        }
        func prepare(paths: Int) {
            let old = ready.load(ordering: .relaxed), new = min(paths, count)
            guard new > old else { return }
            memory.commit(kinds, from: old, to: new)
            memory.commit(immediate, from: old, to: new)
            for i in old..<new { (kinds + i).initialize(to: Atomic(CheckerKind.unassigned.rawValue)) }
            ready.store(new, ordering: .releasing)
        }
        deinit {
            memory.release(kinds, count: count)
            memory.release(immediate, count: count)
        }
    }

    /// A checker reserved for up to `pathsMax` paths, with room for `initial` (all when nil),
    /// over the given backends.
    public init(pathsMax: Int, initial: Int? = nil, memory: TableMemory = .heap, tur: TURChecker?, directIO: DirectIOChecker?) {
        self.tur = tur
        self.directIO = directIO
        storage = Storage(pathsMax: max(pathsMax, 1), memory: memory)
        kinds = storage.kinds
        self.pathsMax = storage.count
        immediate = storage.immediate
        prepare(paths: initial ?? pathsMax)
    }

    /// Makes room for `paths` paths here and in both backends (the thread that grows tables).
    public func prepare(paths: Int) {
        tur?.prepare(paths: paths)
        directIO?.prepare(paths: paths)
        storage.prepare(paths: paths)
    }

    /// Paths with a slot now.
    @inlinable public var pathCapacity: Int { storage.ready.load(ordering: .acquiring) }

    /// Records which backend checks `path` (the assembler does, as it registers the path). Any
    /// thread may assign; the recovery thread sees the change at its next submit.
    public func assign(_ path: PathHandle, to kind: CheckerKind) {
        precondition(path.index < pathCapacity, "path handle past the checker's table")
        kinds[path.index].store(kind.rawValue, ordering: .releasing)
    }

    /// The backend that checks `path`.
    public func kind(of path: PathHandle) -> CheckerKind {
        path.index < pathCapacity ? CheckerKind(rawValue: kinds[path.index].load(ordering: .acquiring)) ?? .unassigned : .unassigned
    }

    /// Whether `path`'s last check timed out and its command is still in the kernel (any thread).
    public func isOrphaned(_ path: PathHandle) -> Bool {
        switch kind(of: path) {
        case .tur: return tur?.isOrphaned(path) ?? false
        case .directIO: return directIO?.isOrphaned(path) ?? false
        case .unassigned, .unopened, .alwaysUp: return false
        }
    }

    /// Commands that timed out and are still in the kernel, both backends (any thread).
    public var orphansInFlight: Int { (tur?.orphansInFlight ?? 0) + (directIO?.orphansInFlight ?? 0) }

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
        guard request.path.index < pathCapacity else { return false }
        switch CheckerKind(rawValue: kinds[request.path.index].load(ordering: .acquiring)) ?? .unassigned {
        case .tur: return tur?.submit(request, nowNs: nowNs) ?? false
        case .directIO: return directIO?.submit(request, nowNs: nowNs) ?? false
        case .unopened: return answerNow(request, .down)
        case .alwaysUp: return answerNow(request, .up)
        case .unassigned: return answerNow(request, .pending)
        }
    }

    /// Records a verdict decided without a device, handed out at the next reap.
    @inlinable
    mutating func answerNow(_ request: CheckRequest, _ result: CheckResult) -> Bool {
        guard immediateCount < pathCapacity else { return false }
        immediate[immediateCount] = CheckCompletion(path: request.path, token: request.token, result: result)
        immediateCount += 1
        return true
    }

    @inlinable
    public mutating func reap<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S) {
        for i in 0..<immediateCount { sink.checkCompleted(immediate[i]) }
        immediateCount = 0
        tur?.reap(nowNs: nowNs, into: &sink)
        directIO?.reap(nowNs: nowNs, into: &sink)
    }
}

extension CheckerKind: CustomStringConvertible {
    /// The name `show paths` prints.
    public var description: String {
        switch self {
        case .unassigned: return "unassigned"
        case .tur: return "tur"
        case .directIO: return "directio"
        case .unopened: return "unopened"
        case .alwaysUp: return "none"
        }
    }
}
