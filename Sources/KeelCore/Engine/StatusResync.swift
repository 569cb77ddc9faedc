// StatusResync: one map's kernel status, as scanned, turned into kernel events for the engine; no allocation.

/// Receives kernel events. `RecoveryLoop` is one; tests use their own.
public protocol KernelEventSink {
    /// One kernel event at `nowNs`.
    mutating func deliver(_ event: KernelEvent, nowNs: Nanoseconds)
}

extension RecoveryLoop: KernelEventSink {}

/// Reads one map's status (through `MultipathStatusScanner`) into fixed-size records and hands
/// them to a sink as `pathKernelState` per path, then `mapActiveGroup`: the group in state `A`,
/// else the kernel's next group. This is how a periodic resync repairs whatever events were missed.
///
/// No `mapQueueing` comes from here: the status' `queue_io` flag says whether I/O is held for a
/// pg_init in progress, not whether `queue_if_no_path` is set (on 6.1 it reads 0 with every path
/// down and I/O queued). The flag lives in the table's features; the control plane resyncs it
/// from a table read.
///
/// Nothing reaches the sink during the scan: a status that fails to scan is invalid as a whole
/// (see `MultipathStatusVisitor`), so the records are delivered only after the scan succeeded.
/// The record buffer is allocated once at init; scanning and delivering allocate nothing.
/// Paths past `pathsMax` are counted in `pathsDropped` and not delivered (a limit, never growth).
public struct StatusResync: MultipathStatusVisitor {
    @usableFromInline let storage: Storage
    /// The map whose status is being read (set by `begin`).
    public private(set) var map: MapHandle
    /// Paths recorded since `begin`.
    public private(set) var pathCount = 0
    /// Paths seen past the buffer since `begin`; they get no event.
    public private(set) var pathsDropped = 0
    /// The kernel's `queue_io` flag (I/O held for pg_init), once scanned; reported, not delivered.
    public private(set) var queueingIO: Bool? = nil
    /// The 1-based group in state `A`, or 0 when none is.
    public private(set) var activeGroup = 0
    /// The 1-based group the kernel names as next, or 0 when it has no groups.
    public private(set) var nextGroup = 0

    /// Owns the record buffer.
    @usableFromInline final class Storage {
        let paths: UnsafeMutableBufferPointer<KernelEvent>
        init(capacity: Int) {
            paths = .allocate(capacity: capacity)
            paths.initialize(repeating: .mapQueueing(MapHandle(0), queueing: false))
        }
        deinit { paths.deallocate() }
    }

    /// Allocates room for the paths of one map (`Capacities.pathsPerMapMax`).
    public init(pathsMax: Int) {
        precondition(pathsMax > 0, "a status has room for at least one path")
        storage = Storage(capacity: pathsMax)
        map = MapHandle(0)
    }

    /// How many paths one status can carry.
    public var pathsMax: Int { storage.paths.count }

    /// Forgets the last status and starts reading one of `map`.
    public mutating func begin(map: MapHandle) {
        self.map = map
        pathCount = 0
        pathsDropped = 0
        queueingIO = nil
        activeGroup = 0
        nextGroup = 0
    }

    /// The group the kernel is using: the one in state `A`, else its next group (0: none).
    public var currentGroup: Int { activeGroup != 0 ? activeGroup : nextGroup }

    /// Scans `status` (the text after `<start> <length> multipath`) of `map` and, when it scans,
    /// delivers its events to `sink`. On a scan error nothing is delivered.
    public mutating func resync<S: KernelEventSink>(map: MapHandle, status: UnsafeRawBufferPointer, nowNs: Nanoseconds,
                                                    into sink: inout S) throws(CodecError) {
        begin(map: map)
        try MultipathStatusScanner.scan(status, into: &self)
        deliver(to: &sink, nowNs: nowNs)
    }

    /// Hands the recorded status to `sink`: every path's kernel state and the current group (when
    /// the map has groups).
    public func deliver<S: KernelEventSink>(to sink: inout S, nowNs: Nanoseconds) {
        for i in 0..<pathCount {
            sink.deliver(storage.paths[i], nowNs: nowNs)
        }
        let group = currentGroup
        if group > 0 {
            sink.deliver(.mapActiveGroup(map, group: UInt16(truncatingIfNeeded: group)), nowNs: nowNs)
        }
    }

    // MARK: - MultipathStatusVisitor

    public mutating func queueing(_ on: Bool) { queueingIO = on }

    public mutating func groupCount(_ count: Int, next: Int) { nextGroup = next }

    public mutating func group(_ index: Int, state: MultipathStatus.GroupState) {
        if state == .active && activeGroup == 0 { activeGroup = index + 1 }
    }

    public mutating func path(group: Int, device: DevNo, active: Bool, failCount: Int) {
        guard pathCount < storage.paths.count else {
            pathsDropped += 1
            return
        }
        storage.paths[pathCount] = .pathKernelState(map, device, active: active)
        pathCount += 1
    }
}
