// Read-only views of the engine's tables for the control plane, tests and the torture runner.

extension Engine {
    /// A copy of one path's visible state.
    public struct PathView: Sendable, Equatable {
        public var handle: PathHandle
        public var map: MapHandle
        public var descriptor: PathDescriptor
        public var state: PathState
        public var kernelActive: Bool
        /// 1-based group in the map's table.
        public var group: UInt16
        public var checkInFlight: Bool
        public var nextCheckNs: Nanoseconds
        public var flapFailures: UInt32
        public var lastResult: CheckResult
    }

    /// A copy of one map's visible state.
    public struct MapView: Sendable, Equatable {
        public var handle: MapHandle
        public var policy: MapPolicy
        public var pathCount: Int
        public var groupCount: Int
        /// The kernel's current group as the engine believes it, 1-based; 0 when unknown.
        public var kernelGroup: UInt16
        public var kernelQueueing: Bool
        public var queueingDisabledByOperator: Bool
        public var noPathRetryExpired: Bool
        public var recoveryDeadlineNs: Nanoseconds
        public var failbackDeadlineNs: Nanoseconds
        public var loaded: Bool
        public var usablePaths: Int
    }

    public func path(_ handle: PathHandle) -> PathView? {
        guard isLive(handle) else { return nil }
        let r = paths[handle.index]
        return PathView(handle: handle, map: r.map, descriptor: r.descriptor, state: r.state,
                        kernelActive: r.kernelActive, group: r.group + 1, checkInFlight: r.checkInFlight,
                        nextCheckNs: pathTimers.deadline(of: handle.index), flapFailures: r.flapFailures,
                        lastResult: r.lastResult)
    }

    public func map(_ handle: MapHandle) -> MapView? {
        guard isLive(handle) else { return nil }
        let r = maps[handle.index]
        return MapView(handle: handle, policy: r.policy, pathCount: Int(r.pathCount), groupCount: Int(r.groupCount),
                       kernelGroup: r.kernelGroup, kernelQueueing: r.kernelQueueing,
                       queueingDisabledByOperator: r.operatorQueueingDisabled, noPathRetryExpired: r.recoveryExpired,
                       recoveryDeadlineNs: r.recoveryDeadlineNs, failbackDeadlineNs: r.failbackDeadlineNs,
                       loaded: r.loaded, usablePaths: usableCount(handle.index))
    }

    /// The path that has this device, if any.
    @inlinable public func pathHandle(for device: DevNo) -> PathHandle? {
        guard let p = devices.find(device.key) else { return nil }
        return PathHandle(index: p)
    }

    /// The map's paths, in no particular order.
    public func pathHandles(of map: MapHandle) -> [PathHandle] {
        guard isLive(map) else { return [] }
        var out: [PathHandle] = []
        var p = maps[map.index].firstPath
        while p >= 0 { out.append(PathHandle(index: Int(p))); p = paths[Int(p)].nextInMap }
        return out
    }

    /// The map's groups in table order, each a list of devices sorted by device number; what the
    /// control plane turns into a table. Allocates: control plane only.
    public func groupLayout(of map: MapHandle) -> [[DevNo]] {
        guard isLive(map) else { return [] }
        var groups = Array(repeating: [DevNo](), count: Int(maps[map.index].groupCount))
        var p = maps[map.index].firstPath
        while p >= 0 {
            let r = paths[Int(p)]
            groups[Int(r.group)].append(r.descriptor.device)
            p = r.nextInMap
        }
        for i in groups.indices { groups[i].sort() }
        return groups
    }

    /// The group a fresh table should start in: the best usable one, else the first.
    public func initialGroup(of map: MapHandle) -> UInt16 {
        guard isLive(map), maps[map.index].groupCount > 0 else { return 0 }
        let best = Grouping.bestGroup(self, map: map.index)
        return best == 0 ? 1 : best
    }

    /// Whether a map's table reload is waiting to be handed out by `tick`.
    public func reloadPending(_ map: MapHandle) -> Bool { isLive(map) && maps[map.index].needsReload }
}

// MARK: - Layout snapshots (recovery thread -> control plane)

/// A map's group layout copied out of the engine without allocating, so the thread that owns the
/// engine can hand it to the control plane, which builds and loads the table. Buffers are sized
/// once (`Capacities.pathsPerMapMax`); a snapshot is owned by one side at a time.
public final class LayoutSnapshot: @unchecked Sendable {
    /// Each path's device, in the engine's list order.
    public let devices: UnsafeMutableBufferPointer<DevNo>
    /// Each path's 0-based group, parallel to `devices`.
    public let groups: UnsafeMutableBufferPointer<UInt16>
    /// The map the snapshot is of.
    public internal(set) var map = MapHandle(0)
    /// How many entries of `devices`/`groups` are valid.
    public internal(set) var pathCount = 0
    /// How many groups the map had.
    public internal(set) var groupCount = 0
    /// The group a fresh table should start in (see `Engine.initialGroup(of:)`).
    public internal(set) var initialGroup: UInt16 = 0

    /// Room for the paths of one map.
    public init(pathsMax: Int) {
        precondition(pathsMax > 0, "a snapshot has room for at least one path")
        devices = .allocate(capacity: pathsMax)
        devices.initialize(repeating: DevNo(major: 0, minor: 0))
        groups = .allocate(capacity: pathsMax)
        groups.initialize(repeating: 0)
    }

    deinit {
        devices.deallocate()
        groups.deallocate()
    }

    /// The layout as `Engine.groupLayout(of:)` gives it: groups in table order, devices sorted.
    /// Allocates: control plane only.
    public func layout() -> [[DevNo]] {
        var out = Array(repeating: [DevNo](), count: groupCount)
        for i in 0..<pathCount where Int(groups[i]) < groupCount {
            out[Int(groups[i])].append(devices[i])
        }
        for i in out.indices { out[i].sort() }
        return out
    }
}

extension Engine {
    /// Copies the map's group layout and initial group into `snapshot` without allocating.
    /// Returns false (and leaves the snapshot empty) for a map that is not live or that holds
    /// more paths than the snapshot has room for.
    @discardableResult
    public func snapshotLayout(of map: MapHandle, into snapshot: LayoutSnapshot) -> Bool {
        snapshot.map = map
        snapshot.pathCount = 0
        snapshot.groupCount = 0
        snapshot.initialGroup = 0
        guard isLive(map), Int(maps[map.index].pathCount) <= snapshot.devices.count else { return false }
        var p = maps[map.index].firstPath
        var n = 0
        while p >= 0 {
            let r = paths[Int(p)]
            snapshot.devices[n] = r.descriptor.device
            snapshot.groups[n] = r.group
            n += 1
            p = r.nextInMap
        }
        snapshot.pathCount = n
        snapshot.groupCount = Int(maps[map.index].groupCount)
        snapshot.initialGroup = initialGroup(of: map)
        return true
    }
}
