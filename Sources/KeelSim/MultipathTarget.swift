// The kernel's dm-multipath target as the simulation models it: tables, path states, routing, messages, status.

import KeelCore

/// The errno values the simulated kernel answers with.
public enum SimErrno {
    public static let eio: Int32 = 5
    public static let enxio: Int32 = 6
    public static let einval: Int32 = 22
}

/// dm-multipath's per-map state for every map of the machine, keyed by `MapHandle`.
///
/// What it models, following drivers/md/dm-mpath.c:
/// - **Load** (a table reload): every path starts active (`A`) with fail count 0, no group is
///   current, `init_pg` becomes the next group, `queue_if_no_path` comes from the features.
///   A device that does not exist refuses the load with ENXIO; a device listed twice, or an
///   `init_pg` beyond the groups, with EINVAL.
/// - **Routing** (`choosePath`, the kernel's `choose_pgpath`): a pending `switch_group` target
///   is tried first (and consumed); then the current group; then every group in table order,
///   enabled groups first and disabled (bypassed) ones as a last resort. The group that gives a
///   path becomes current. Within a group, paths are taken round-robin: every table selector
///   (service-time, queue-length, ...) is modelled as round-robin.
/// - **Messages**: `fail_path`/`reinstate_path` on a device not in the table, and group verbs
///   with group 0 or beyond the table, answer EINVAL; a message to a map with no table loaded
///   answers EINVAL and one to a map that does not exist ENXIO. `switch_group N` re-enables
///   every group and makes N the next group; `disable_group` marks a group bypassed and clears
///   the current group; `enable_group` clears the mark.
/// - **Failing a path** (I/O error or `fail_path`): `A` to `F`, fail count + 1, a
///   `KernelEvent.pathFailed` (the kernel's PATH_FAILED uevent, sent for message-initiated
///   failures too unless `Options.reportsMessageFailures` is off), and the event number moves.
/// - **Event numbers** (dm's `event_nr`) move on every path failure and reinstatement and on
///   every group switch, enable and disable; not on a load or on the queueing verbs, which the
///   kernel does not signal either.
public struct SimMultipathTarget {
    /// How the simulated kernel reports what happens.
    public struct Options: Sendable, Equatable {
        /// Also send `pathFailed` when a `fail_path` message failed the path (the kernel does).
        public var reportsMessageFailures: Bool
        /// Lose this share of `pathFailed` events, as best-effort uevents can be lost.
        public var pathFailedLossPerMillion: UInt32
        /// After a map's event number moved, the world's event drain also yields the records a
        /// status read gives (`pathKernelState` per path, `mapQueueing`, `mapActiveGroup`), as
        /// the event thread does when it sees a dm event.
        public var statusRecordsOnEvent: Bool
        /// Events held until drained; past it new events are dropped and counted.
        public var eventCapacity: Int

        public init(reportsMessageFailures: Bool = true, pathFailedLossPerMillion: UInt32 = 0,
                    statusRecordsOnEvent: Bool = false, eventCapacity: Int = 65_536) {
            self.reportsMessageFailures = reportsMessageFailures
            self.pathFailedLossPerMillion = pathFailedLossPerMillion
            self.statusRecordsOnEvent = statusRecordsOnEvent
            self.eventCapacity = eventCapacity
        }
    }

    struct PathSlot {
        var device: DevNo
        var active = true
        var failCount = 0
    }

    struct Group {
        var paths: [PathSlot]
        var bypassed = false
        /// The round-robin position: the next path index to try first.
        var cursor = 0
        var activeCount: Int
    }

    struct MapState {
        var hasTable = false
        var groups: [Group] = []
        /// 0-based current group (the kernel's `current_pg`), -1 for none.
        var current = -1
        /// 0-based group a `switch_group` or `init_pg` asked for (`next_pg`), -1 for none.
        var next = -1
        var queueIfNoPath = false
        /// Active paths over all groups (`nr_valid_paths`).
        var validCount = 0
        var eventNumber: UInt32 = 0
    }

    public let options: Options
    private var maps: [MapState]
    private var events: KernelEventRing
    /// Maps whose event number moved and were not taken yet: a ring holding each map at most once.
    private var signalled: [Bool]
    private var signalledMaps: [Int32]
    private var signalledHead = 0
    private var signalledCount = 0
    private var random: SimRandom
    /// Events dropped because nobody drained them and the buffer was full.
    public private(set) var eventsDropped = 0
    /// `pathFailed` events lost on purpose (`Options.pathFailedLossPerMillion`).
    public private(set) var eventsLost = 0

    /// A target for `mapCount` maps, none with a table yet.
    public init(mapCount: Int, options: Options = Options(), seed: UInt64 = 0) {
        precondition(options.eventCapacity >= 1, "the event buffer needs a slot")
        self.options = options
        maps = Array(repeating: MapState(), count: mapCount)
        events = KernelEventRing(capacity: options.eventCapacity)
        signalled = Array(repeating: false, count: mapCount)
        signalledMaps = Array(repeating: -1, count: max(mapCount, 1))
        random = SimRandom(seed: seed, stream: 4)
    }

    public var mapCount: Int { maps.count }

    // MARK: - Tables

    /// Loads (reloads) a map's table. Returns 0 or the errno the kernel would answer; on an
    /// error the previous table stays. `deviceExists` says whether a device node exists.
    public mutating func load(_ table: MultipathTable, map: MapHandle, deviceExists: (DevNo) -> Bool = { _ in true }) -> Int32 {
        guard map.index < maps.count else { return SimErrno.enxio }
        guard table.initialGroup >= 0, table.initialGroup <= table.groups.count else { return SimErrno.einval }
        var seen: [DevNo] = []
        for group in table.groups {
            for path in group.paths {
                guard deviceExists(path.device) else { return SimErrno.enxio }
                // The kernel may accept a device twice; a duplicate is always a table-building
                // bug, so the simulation refuses it.
                guard !seen.contains(path.device) else { return SimErrno.einval }
                seen.append(path.device)
            }
        }
        var state = MapState()
        state.hasTable = true
        state.groups = table.groups.map { group in
            Group(paths: group.paths.map { PathSlot(device: $0.device) }, activeCount: group.paths.count)
        }
        state.next = table.initialGroup - 1
        state.queueIfNoPath = table.queueIfNoPath
        state.validCount = seen.count
        state.eventNumber = maps[map.index].eventNumber
        maps[map.index] = state
        return 0
    }

    // MARK: - Messages

    /// Handles one `DM_TARGET_MSG`. Returns 0 or the errno.
    public mutating func send(_ message: DMMessage) -> Int32 {
        let m = message.map.index
        guard m < maps.count else { return SimErrno.enxio }
        guard maps[m].hasTable else { return SimErrno.einval }
        switch message.kind {
        case .failPath:
            guard let (g, p) = locate(message.device, in: m) else { return SimErrno.einval }
            fail(map: m, group: g, path: p, byMessage: true)
        case .reinstatePath:
            guard let (g, p) = locate(message.device, in: m) else { return SimErrno.einval }
            reinstate(map: m, group: g, path: p)
        case .switchGroup:
            guard let g = groupIndex(message.group, in: m) else { return SimErrno.einval }
            for i in maps[m].groups.indices { maps[m].groups[i].bypassed = false }
            maps[m].current = -1
            maps[m].next = g
            signal(m)
        case .enableGroup:
            guard let g = groupIndex(message.group, in: m) else { return SimErrno.einval }
            maps[m].groups[g].bypassed = false
            signal(m)
        case .disableGroup:
            guard let g = groupIndex(message.group, in: m) else { return SimErrno.einval }
            maps[m].groups[g].bypassed = true
            maps[m].current = -1
            signal(m)
        case .queueIfNoPath:
            maps[m].queueIfNoPath = true
        case .failIfNoPath:
            maps[m].queueIfNoPath = false
        }
        return 0
    }

    // MARK: - Routing

    /// Picks the path for the next I/O of a map (`choose_pgpath`), or nil when no path is active.
    public mutating func choosePath(_ map: MapHandle) -> DevNo? {
        let m = map.index
        guard maps[m].hasTable, maps[m].validCount > 0 else {
            maps[m].current = -1
            return nil
        }
        let next = maps[m].next
        if next >= 0 {
            maps[m].next = -1
            if let device = pickRoundRobin(map: m, group: next) { return device }
        }
        let current = maps[m].current
        if current >= 0, let device = pickRoundRobin(map: m, group: current) { return device }
        // Enabled groups first; disabled (bypassed) groups only when no enabled group has a path.
        for pass in 0..<2 {
            for g in maps[m].groups.indices where maps[m].groups[g].bypassed == (pass == 1) {
                if let device = pickRoundRobin(map: m, group: g) { return device }
            }
        }
        preconditionFailure("\(map) counts \(maps[m].validCount) active paths but none was found")
    }

    /// An I/O through `device` failed: the target fails the path if the table holds it and it
    /// is active (an I/O dispatched before a reload may name a device the new table lacks).
    public mutating func ioError(_ map: MapHandle, device: DevNo) {
        guard maps[map.index].hasTable, let (g, p) = locate(device, in: map.index) else { return }
        fail(map: map.index, group: g, path: p, byMessage: false)
    }

    // MARK: - Reading

    /// Whether a table was loaded into the map.
    public func hasTable(_ map: MapHandle) -> Bool { maps[map.index].hasTable }

    /// Whether `queue_if_no_path` is in effect.
    public func queueIfNoPath(_ map: MapHandle) -> Bool { maps[map.index].queueIfNoPath }

    /// Whether any path of the map is active (`nr_valid_paths > 0`).
    public func hasActivePath(_ map: MapHandle) -> Bool { maps[map.index].validCount > 0 }

    /// Active paths of the map.
    public func activePathCount(_ map: MapHandle) -> Int { maps[map.index].validCount }

    /// The kernel's `event_nr` for the map.
    public func eventNumber(_ map: MapHandle) -> UInt32 { maps[map.index].eventNumber }

    /// The current group, 1-based, or nil when none is current.
    public func currentGroup(_ map: MapHandle) -> Int? {
        maps[map.index].current >= 0 ? maps[map.index].current + 1 : nil
    }

    /// Whether the device is in the map's table and active (`A`); nil when it is not in the table.
    public func isActive(_ map: MapHandle, device: DevNo) -> Bool? {
        guard let (g, p) = locate(device, in: map.index) else { return nil }
        return maps[map.index].groups[g].paths[p].active
    }

    /// The map's status as `dmsetup status` would show it (no table: no groups).
    ///
    /// `queueingIO` is the kernel's first feature argument, which reports whether
    /// `queue_if_no_path` is in effect (set by the table's feature or the message), whether or
    /// not I/O is waiting right now. `nextGroup` is the group a `switch_group` or `init_pg`
    /// asked for, else the current group, else 1 (0 with no groups). A bypassed group shows
    /// `D`, the current group `A`, the others `E`. Selector status is empty (round-robin's).
    public func status(_ map: MapHandle) -> MultipathStatus {
        let state = maps[map.index]
        let nextGroup = state.next >= 0 ? state.next + 1 : state.current >= 0 ? state.current + 1 : (state.groups.isEmpty ? 0 : 1)
        let groups = state.groups.enumerated().map { g, group in
            MultipathStatus.Group(
                state: group.bypassed ? .disabled : g == state.current ? .active : .enabled,
                pathArgCount: 0,
                paths: group.paths.map { MultipathStatus.Path(device: $0.device, active: $0.active, failCount: $0.failCount) })
        }
        return MultipathStatus(queueingIO: state.queueIfNoPath, nextGroup: nextGroup, groups: groups)
    }

    /// The records a status read of the map gives: `pathKernelState` for every path in table
    /// order, then `mapQueueing` (`queue_if_no_path` in effect), then `mapActiveGroup`
    /// (`reportedActiveGroup`). Nothing for a map without a table.
    public func statusRecords(_ map: MapHandle, _ body: (KernelEvent) -> Void) {
        let state = maps[map.index]
        guard state.hasTable else { return }
        for group in state.groups {
            for path in group.paths { body(.pathKernelState(map, path.device, active: path.active)) }
        }
        body(.mapQueueing(map, queueing: state.queueIfNoPath))
        body(.mapActiveGroup(map, group: reportedActiveGroup(map)))
    }

    /// Takes the oldest pending event (one at a time, so the receiver may send messages,
    /// which can emit more, between two events).
    public mutating func popEvent() -> KernelEvent? { events.pop() }

    /// Takes the map whose event number moved first since it was last taken (each map once
    /// until it moves again), for a status read.
    public mutating func popSignalledMap() -> MapHandle? {
        guard signalledCount > 0 else { return nil }
        let m = Int(signalledMaps[signalledHead])
        signalledHead = (signalledHead + 1) % signalledMaps.count
        signalledCount -= 1
        signalled[m] = false
        return MapHandle(index: m)
    }

    /// Paths in the map's table, over all groups.
    public func pathCount(_ map: MapHandle) -> Int { maps[map.index].groups.reduce(0) { $0 + $1.paths.count } }

    /// The map's `index`-th path in table order and whether it is active; nil past the end.
    public func path(at index: Int, of map: MapHandle) -> (device: DevNo, active: Bool)? {
        var i = index
        for group in maps[map.index].groups {
            if i < group.paths.count { return (group.paths[i].device, group.paths[i].active) }
            i -= group.paths.count
        }
        return nil
    }

    /// The group a status read reports as active: the one shown `A`, else the next group.
    public func reportedActiveGroup(_ map: MapHandle) -> UInt16 {
        let state = maps[map.index]
        let group = state.current >= 0 ? state.current + 1 : state.next >= 0 ? state.next + 1 : (state.groups.isEmpty ? 0 : 1)
        return UInt16(group)
    }

    // MARK: - Internals

    private func locate(_ device: DevNo, in m: Int) -> (Int, Int)? {
        for (g, group) in maps[m].groups.enumerated() {
            for (p, path) in group.paths.enumerated() where path.device == device { return (g, p) }
        }
        return nil
    }

    private func groupIndex(_ number: UInt16, in m: Int) -> Int? {
        let g = Int(number) - 1
        return g >= 0 && g < maps[m].groups.count ? g : nil
    }

    private mutating func pickRoundRobin(map m: Int, group g: Int) -> DevNo? {
        let count = maps[m].groups[g].paths.count
        guard maps[m].groups[g].activeCount > 0, count > 0 else { return nil }
        let start = maps[m].groups[g].cursor % count
        for offset in 0..<count {
            let p = (start + offset) % count
            if maps[m].groups[g].paths[p].active {
                maps[m].groups[g].cursor = p + 1
                maps[m].current = g
                return maps[m].groups[g].paths[p].device
            }
        }
        return nil
    }

    private mutating func fail(map m: Int, group g: Int, path p: Int, byMessage: Bool) {
        guard maps[m].groups[g].paths[p].active else { return }
        maps[m].groups[g].paths[p].active = false
        maps[m].groups[g].paths[p].failCount += 1
        maps[m].groups[g].activeCount -= 1
        maps[m].validCount -= 1
        assert(maps[m].validCount >= 0 && maps[m].groups[g].activeCount >= 0)
        if !byMessage || options.reportsMessageFailures {
            if random.chance(perMillion: options.pathFailedLossPerMillion) {
                eventsLost += 1
            } else {
                emit(.pathFailed(MapHandle(index: m), maps[m].groups[g].paths[p].device))
            }
        }
        signal(m)
    }

    private mutating func reinstate(map m: Int, group g: Int, path p: Int) {
        guard !maps[m].groups[g].paths[p].active else { return }
        maps[m].groups[g].paths[p].active = true
        maps[m].groups[g].activeCount += 1
        maps[m].validCount += 1
        signal(m)
    }

    /// A dm event: the event number moves and the map is marked for a status read.
    private mutating func signal(_ m: Int) {
        maps[m].eventNumber &+= 1
        if !signalled[m] {
            signalled[m] = true
            signalledMaps[(signalledHead + signalledCount) % signalledMaps.count] = Int32(m)
            signalledCount += 1
        }
    }

    private mutating func emit(_ event: KernelEvent) {
        if !events.push(event) { eventsDropped += 1 }
    }
}

/// A bounded FIFO of kernel events, allocated once.
struct KernelEventRing {
    private var slots: [KernelEvent]
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) {
        slots = Array(repeating: .mapQueueing(MapHandle(0), queueing: false), count: capacity)
    }

    /// Appends; false when full (the caller counts the drop).
    mutating func push(_ event: KernelEvent) -> Bool {
        guard count < slots.count else { return false }
        slots[(head + count) % slots.count] = event
        count += 1
        return true
    }

    mutating func pop() -> KernelEvent? {
        guard count > 0 else { return nil }
        let event = slots[head]
        head = (head + 1) % slots.count
        count -= 1
        return event
    }
}
