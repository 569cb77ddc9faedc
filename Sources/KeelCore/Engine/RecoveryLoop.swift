// The recovery loop: completions in, engine decisions, checks and dm messages out.

/// What the recovery loop reports about its work; fixed-size, bound for the log and observation
/// rings (and the control plane, for table reloads).
@frozen
public enum RecoveryRecord: BitwiseCopyable, Sendable, Equatable {
    /// A dm message went to the kernel; `errno` is 0 or the kernel's refusal.
    case messageSent(DMMessage, errno: Int32)
    /// A path changed state; `device` is the path's, so a line formatted later, after the handle
    /// was reused, never names another device.
    case transition(PathHandle, device: DevNo, from: PathState, to: PathState)
    /// The control plane must rebuild and load this map's table.
    case reloadRequested(MapHandle)
    /// The checker backend had no free slot; the engine retries at the fast interval.
    case checkRefused(PathHandle, device: DevNo)
}

/// Receives the loop's records. The daemon pushes them into bounded rings (drop and count when
/// full); the torture runner checks invariants on them.
public protocol RecoveryOutput {
    mutating func record(_ record: RecoveryRecord, nowNs: Nanoseconds)
}

/// One engine driven by one checker backend and one messenger: the recovery path in one breath.
/// Generic over the world so both the real kernel and the simulation run the same code,
/// specialised rather than boxed.
public struct RecoveryLoop<Checker: PathCheckBackend, Messenger: MultipathMessenger, Output: RecoveryOutput>: EngineActionSink {
    public let engine: Engine
    public var checker: Checker
    public var messenger: Messenger
    public var output: Output
    @usableFromInline var completions: UnsafeMutableBufferPointer<CheckCompletion>
    @usableFromInline var pendingChecks: UnsafeMutableBufferPointer<CheckRequest>
    @usableFromInline var pendingCheckCount = 0
    @usableFromInline var nowNs: Nanoseconds = 0

    /// The loop's buffers live in the engine's arenas and grow with its paths (the engine's
    /// `pathCapacity` bounds both).
    public init(engine: Engine, checker: Checker, messenger: Messenger, output: Output) {
        self.engine = engine
        self.checker = checker
        self.messenger = messenger
        self.output = output
        completions = UnsafeMutableBufferPointer(start: engine.arenas.completions.base, count: engine.arenas.completions.ceiling)
        pendingChecks = UnsafeMutableBufferPointer(start: engine.arenas.checks.base, count: engine.arenas.checks.ceiling)
    }

    /// One pass at `nowNs`: reap finished checks and decide on them, then run everything due
    /// (new checks, timers), then start the checks that were asked for.
    @inlinable
    public mutating func step(nowNs: Nanoseconds) {
        self.nowNs = nowNs
        var collector = CompletionCollector(buffer: completions, limit: engine.pathCapacity)
        checker.reap(nowNs: nowNs, into: &collector)
        let engine = self.engine
        for i in 0..<collector.count {
            engine.handle(completions[i], nowNs: nowNs, sink: &self)
        }
        engine.tick(nowNs: nowNs, sink: &self)
        submitPendingChecks()
    }

    /// A kernel event from the event thread (or the simulated kernel).
    @inlinable
    public mutating func deliver(_ event: KernelEvent, nowNs: Nanoseconds) {
        self.nowNs = nowNs
        let engine = self.engine
        engine.handle(event, nowNs: nowNs, sink: &self)
        submitPendingChecks()
    }

    /// An operator command from the control thread.
    @inlinable
    public mutating func deliver(_ command: OperatorCommand, nowNs: Nanoseconds) -> OperatorOutcome {
        self.nowNs = nowNs
        let engine = self.engine
        let outcome = engine.handle(command, nowNs: nowNs, sink: &self)
        submitPendingChecks()
        return outcome
    }

    /// The control plane loaded a map's table (see `Engine.tableLoaded`).
    @inlinable
    public mutating func tableLoaded(_ map: MapHandle, initialGroup: UInt16, queueing: Bool, nowNs: Nanoseconds) {
        self.nowNs = nowNs
        let engine = self.engine
        engine.tableLoaded(map, initialGroup: initialGroup, queueing: queueing, nowNs: nowNs, sink: &self)
        submitPendingChecks()
    }

    /// When the loop next has timed work; inputs and completions may come sooner.
    @inlinable
    public func nextDeadlineNs() -> Nanoseconds { engine.nextDeadlineNs() }

    // Checks are started after the engine call that asked for them returns, so a refusal can be
    // handed back to the engine without re-entering it.
    @inlinable
    mutating func submitPendingChecks() {
        var i = 0
        while i < pendingCheckCount {
            let request = pendingChecks[i]
            if !checker.submit(request, nowNs: nowNs) {
                engine.checkRefused(request, nowNs: nowNs)
                output.record(.checkRefused(request.path, device: request.device), nowNs: nowNs)
            }
            i += 1
        }
        pendingCheckCount = 0
    }

    @inlinable
    public mutating func perform(_ action: EngineAction) {
        switch action {
        case .check(let request):
            precondition(pendingCheckCount < engine.pathCapacity, "more checks than paths")
            pendingChecks[pendingCheckCount] = request
            pendingCheckCount += 1
        case .message(let message):
            let errno = messenger.send(message)
            output.record(.messageSent(message, errno: errno), nowNs: nowNs)
        case .reloadMap(let map):
            output.record(.reloadRequested(map), nowNs: nowNs)
        case .transition(let path, let device, let from, let to):
            output.record(.transition(path, device: device, from: from, to: to), nowNs: nowNs)
        }
    }
}

/// Collects completions into the loop's preallocated buffer.
@usableFromInline
struct CompletionCollector: CheckCompletionSink {
    @usableFromInline let buffer: UnsafeMutableBufferPointer<CheckCompletion>
    /// Completions the buffer may hold now (its committed part).
    @usableFromInline let limit: Int
    @usableFromInline var count = 0

    @inlinable init(buffer: UnsafeMutableBufferPointer<CheckCompletion>, limit: Int) {
        self.buffer = buffer
        self.limit = min(limit, buffer.count)
    }

    @inlinable
    mutating func checkCompleted(_ completion: CheckCompletion) {
        precondition(count < limit, "more completions than paths")
        buffer[count] = completion
        count += 1
    }
}
