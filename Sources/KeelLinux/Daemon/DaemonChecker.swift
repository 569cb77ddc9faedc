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
    /// Per path, when its command went to the device (for the latency histogram).
    @usableFromInline let sentAt: UnsafeMutablePointer<Nanoseconds>
    /// Device checks by the time from dispatch to the pass that reaped them.
    public let latency: CheckLatencyHistogram
    /// From the dispatch of the check that found a path answering to the `reinstate_path` the
    /// kernel accepted (`reinstated`), at the recovery pass's resolution.
    public let pathBack: CheckLatencyHistogram
    @usableFromInline let storage: Storage

    /// Owns the kind table and the immediate verdicts.
    @usableFromInline final class Storage: @unchecked Sendable {
        let kinds: UnsafeMutablePointer<Atomic<UInt8>>
        let count: Int
        let immediate: UnsafeMutablePointer<CheckCompletion>
        let sentAt: UnsafeMutablePointer<Nanoseconds>
        let memory: TableMemory
        /// Paths with a usable slot.
        @usableFromInline let ready = Atomic<Int>(0)
        init(pathsMax: Int, memory: TableMemory) {
            count = pathsMax
            self.memory = memory
            kinds = memory.reserve(Atomic<UInt8>.self, count: pathsMax)
            immediate = memory.reserve(CheckCompletion.self, count: pathsMax)
            sentAt = memory.reserve(Nanoseconds.self, count: pathsMax)
        }
        func prepare(paths: Int) {
            let old = ready.load(ordering: .relaxed), new = min(paths, count)
            guard new > old else { return }
            memory.commit(kinds, from: old, to: new)
            memory.commit(immediate, from: old, to: new)
            memory.commit(sentAt, from: old, to: new)
            for i in old..<new {
                (kinds + i).initialize(to: Atomic(CheckerKind.unassigned.rawValue))
                (sentAt + i).initialize(to: 0)
            }
            ready.store(new, ordering: .releasing)
        }
        deinit {
            memory.release(kinds, count: count)
            memory.release(immediate, count: count)
            memory.release(sentAt, count: count)
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
        sentAt = storage.sentAt
        latency = CheckLatencyHistogram()
        pathBack = CheckLatencyHistogram()
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

    /// What registering the path with its map's reservation key last came to (any thread; only
    /// paths checked through the sg node are registered).
    public func registration(of path: PathHandle) -> ReservationRegistration {
        kind(of: path) == .tur ? tur?.registration(of: path) ?? .none : .none
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
        sentAt[request.path.index] = nowNs
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
        guard tur != nil || directIO != nil else { return }
        var timing = TimingSink(inner: sink, sentAt: sentAt, pathsMax: pathCapacity, nowNs: nowNs, histogram: latency)
        tur?.reap(nowNs: nowNs, into: &timing)
        directIO?.reap(nowNs: nowNs, into: &timing)
        sink = timing.inner
    }
}

/// Passes completions on, counting each one's latency (dispatch to reap) in the histogram.
@usableFromInline
struct TimingSink<Inner: CheckCompletionSink>: CheckCompletionSink {
    @usableFromInline var inner: Inner
    @usableFromInline let sentAt: UnsafeMutablePointer<Nanoseconds>
    @usableFromInline let pathsMax: Int
    @usableFromInline let nowNs: Nanoseconds
    @usableFromInline let histogram: CheckLatencyHistogram

    @inlinable init(inner: Inner, sentAt: UnsafeMutablePointer<Nanoseconds>, pathsMax: Int, nowNs: Nanoseconds, histogram: CheckLatencyHistogram) {
        self.inner = inner
        self.sentAt = sentAt
        self.pathsMax = pathsMax
        self.nowNs = nowNs
        self.histogram = histogram
    }

    @inlinable mutating func checkCompleted(_ completion: CheckCompletion) {
        if completion.path.index < pathsMax { histogram.record(nowNs - sentAt[completion.path.index]) }
        inner.checkCompleted(completion)
    }
}

/// A fixed-bucket latency histogram: relaxed atomic counters any thread reads, one thread
/// (the recovery thread) adds to. Allocated once; recording allocates nothing.
public final class CheckLatencyHistogram: @unchecked Sendable {
    /// Upper bounds of the buckets, in nanoseconds; a last bucket takes everything above.
    public static let boundsNs: [Nanoseconds] = [250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000,
                                                 50_000_000, 100_000_000, 250_000_000, 500_000_000, 1_000_000_000,
                                                 2_500_000_000, 5_000_000_000, 10_000_000_000, 30_000_000_000]
    @usableFromInline let bounds: UnsafeMutablePointer<Nanoseconds>
    @usableFromInline let boundCount: Int
    @usableFromInline let counts: UnsafeMutablePointer<Atomic<UInt64>>
    @usableFromInline let sumNs = Atomic<UInt64>(0)

    public init() {
        boundCount = Self.boundsNs.count
        bounds = .allocate(capacity: boundCount)
        bounds.initialize(from: Self.boundsNs, count: boundCount)
        counts = .allocate(capacity: boundCount + 1)
        for i in 0...boundCount { (counts + i).initialize(to: Atomic(0)) }
    }

    deinit {
        bounds.deallocate()
        counts.deallocate()
    }

    @inlinable public func record(_ latencyNs: Nanoseconds) {
        let value = max(0, latencyNs)
        var i = 0
        while i < boundCount && value > bounds[i] { i += 1 }
        counts[i].wrappingAdd(1, ordering: .relaxed)
        sumNs.wrappingAdd(UInt64(value), ordering: .relaxed)
    }

    /// Per bucket (the bounds' order, then the overflow bucket), not cumulative.
    public var bucketCounts: [UInt64] { (0...boundCount).map { counts[$0].load(ordering: .relaxed) } }
    public var totalNs: UInt64 { sumNs.load(ordering: .relaxed) }

    /// Prometheus histogram exposition (`NAME_bucket{le=...}` cumulative, `_sum` in seconds, `_count`).
    public func exposition(name: String, help: String) -> String {
        let counts = bucketCounts
        var out = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        var cumulative: UInt64 = 0
        for (i, bound) in Self.boundsNs.enumerated() {
            cumulative += counts[i]
            out += "\(name)_bucket{le=\"\(Self.seconds(bound))\"} \(cumulative)\n"
        }
        cumulative += counts[boundCount]
        out += "\(name)_bucket{le=\"+Inf\"} \(cumulative)\n"
        out += "\(name)_sum \(Self.seconds(Nanoseconds(totalNs)))\n\(name)_count \(cumulative)\n"
        return out
    }

    /// Nanoseconds as decimal seconds without a float's rounding noise (`0.00025`, `2.5`, `30`).
    static func seconds(_ ns: Nanoseconds) -> String {
        let whole = ns / 1_000_000_000
        var fraction = String(ns % 1_000_000_000)
        fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
        while fraction.last == "0" { fraction.removeLast() }
        return fraction.isEmpty ? "\(whole)" : "\(whole).\(fraction)"
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
