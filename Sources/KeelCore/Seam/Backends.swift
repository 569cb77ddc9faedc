// The seam: the small set of protocols both worlds implement (KeelLinux: the real kernel;
// KeelSim: a simulated kernel and SAN). Recovery-plane protocols must not allocate, lock or block.

/// Runs path checks asynchronously (directio via aio, TUR via a fixed thread pool, or simulated).
/// Recovery plane: `submit` and `reap` never block and never allocate.
public protocol PathCheckBackend {
    /// Starts one check. Returns false when it cannot start now (no free slot); the engine
    /// tries again at the path's next fast probe.
    mutating func submit(_ request: CheckRequest, nowNs: Nanoseconds) -> Bool

    /// Hands every finished check to `sink`, including checks that passed their timeout
    /// (reported as `.timeout`; the request itself is orphaned and reaped later).
    mutating func reap<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S)
}

/// Receives check completions; a concrete type so the call is specialised, never boxed.
public protocol CheckCompletionSink {
    mutating func checkCompleted(_ completion: CheckCompletion)
}

/// Sends dm-multipath target messages. Recovery plane: preallocated buffers, no allocation.
public protocol MultipathMessenger {
    /// Sends one message; returns 0 or the errno the kernel answered.
    mutating func send(_ message: DMMessage) -> Int32
}

/// Receives engine actions; implemented by the recovery loop (and by tests).
public protocol EngineActionSink {
    mutating func perform(_ action: EngineAction)
}
