// The daemon's channels between threads: inputs to the recovery thread, command replies, table
// reload hand-offs, and the state board other threads read. Lock-free; allocated once.
import Synchronization
import KeelCore

/// What other threads hand the recovery thread (through one `MPSCRing`).
@frozen
public enum RecoveryInput: BitwiseCopyable, Sendable {
    /// A kernel event (a dm event's status, a periodic resync).
    case kernel(KernelEvent)
    /// The control plane loaded a table (`Engine.tableLoaded`).
    case tableLoaded(MapHandle, initialGroup: UInt16, queueing: Bool)
    /// The control plane is done with a reload's layout snapshot (loaded or failed).
    case reloadDone(ReloadTicket)
    /// An operator command; the outcome goes back with the same ticket.
    case command(OperatorCommand, ticket: UInt32)
    /// A prioritizer gave a path a new priority.
    case setPriority(PathHandle, Int32)
    /// The configuration was reloaded: the map's new policy.
    case setPolicy(MapHandle, MapPolicy)
    /// The map's table must be loaded again (an earlier load failed, or the kernel's table does
    /// not hold the engine's paths): the engine hands out a fresh layout.
    case requestReload(MapHandle)
    /// A map for a LUN that appeared while running; the handle comes back as a `TopologyReply`.
    case addMap(MapPolicy, ticket: UInt32)
    /// A path that appeared while running; the handle comes back as a `TopologyReply`.
    case addPath(PathDescriptor, MapHandle, ticket: UInt32)
    /// A path assembly could not keep (its checker would not take it).
    case removePath(PathHandle, ticket: UInt32)
    /// A map the operator deleted (`del map`), after its paths left it: its slot is freed.
    case removeMap(MapHandle, ticket: UInt32)
    /// Every table has been prepared for this many paths and maps (`TableGrowth`): the engine
    /// takes the new handles (`Engine.adopt`), without allocating.
    case adopt(paths: Int32, maps: Int32)
}

/// The engine's answer to a topology input: the new handle, or the errno of its refusal
/// (ENOSPC table or map full, EEXIST device known, ENOENT no such map or path).
@frozen
public struct TopologyReply: BitwiseCopyable, Sendable, Equatable {
    public var ticket: UInt32
    public var map: MapHandle
    public var path: PathHandle
    public var errno: Int32
    public init(ticket: UInt32, map: MapHandle = MapHandle(0), path: PathHandle = PathHandle(0), errno: Int32 = 0) {
        self.ticket = ticket
        self.map = map
        self.path = path
        self.errno = errno
    }
}

/// An operator command's outcome, back to the thread that asked.
@frozen
public struct CommandReply: BitwiseCopyable, Sendable, Equatable {
    public var ticket: UInt32
    public var outcome: OperatorOutcome
    public init(ticket: UInt32, outcome: OperatorOutcome) {
        self.ticket = ticket
        self.outcome = outcome
    }
}

/// What the recovery thread publishes for the other threads to read (operator `show` commands,
/// the watchdog): each path's state, each map's queueing and load, and progress counters. One
/// writer (the recovery thread); relaxed atomic words, no locks.
public final class StateBoard: @unchecked Sendable {
    /// Per path: `PathState.rawValue + 1`, 0 for a slot never written.
    private let pathStates: UnsafeMutablePointer<Atomic<UInt8>>
    /// Per path: bit 0 marked marginal by the operator.
    private let pathFlags: UnsafeMutablePointer<Atomic<UInt8>>
    /// Per map: bit 0 queueing, bit 1 loaded.
    private let mapFlags: UnsafeMutablePointer<Atomic<UInt8>>
    /// Per map, `statisticsWords` words: the engine's `MapStatistics` as last published.
    @usableFromInline let mapStatistics: UnsafeMutablePointer<Atomic<UInt64>>
    @usableFromInline static let statisticsWords = 5
    /// The ceilings the board's memory is reserved for.
    public let pathsMax: Int
    public let mapsMax: Int
    private let memory: TableMemory
    /// Slots usable now (`prepare` grows them before the engine hands out their handles).
    private let pathsReady = Atomic<Int>(0)
    private let mapsReady = Atomic<Int>(0)
    /// Recovery loop passes; the watchdog is fed only while this grows.
    public let loopPasses = Atomic<UInt64>(0)
    /// Path state changes published (for `show metrics`).
    public let transitions = Atomic<UInt64>(0)
    /// Inputs the recovery thread took from its ring.
    public let inputsHandled = Atomic<UInt64>(0)
    /// Reload requests that could not be handed to the control plane (its ring was full); the
    /// engine's request is kept and sent again on the next `reloadDone`.
    public let reloadsDeferred = Atomic<UInt64>(0)

    /// A board reserved for `pathsMax` paths and `mapsMax` maps, usable for `initial` of them
    /// (all when nil).
    public init(pathsMax: Int, mapsMax: Int, initial: (paths: Int, maps: Int)? = nil, memory: TableMemory = .heap) {
        self.pathsMax = max(pathsMax, 1)
        self.mapsMax = max(mapsMax, 1)
        self.memory = memory
        pathStates = memory.reserve(Atomic<UInt8>.self, count: self.pathsMax)
        pathFlags = memory.reserve(Atomic<UInt8>.self, count: self.pathsMax)
        mapFlags = memory.reserve(Atomic<UInt8>.self, count: self.mapsMax)
        mapStatistics = memory.reserve(Atomic<UInt64>.self, count: self.mapsMax * Self.statisticsWords)
        prepare(paths: initial?.paths ?? self.pathsMax, maps: initial?.maps ?? self.mapsMax)
    }

    deinit {
        memory.release(pathStates, count: pathsMax)
        memory.release(pathFlags, count: pathsMax)
        memory.release(mapFlags, count: mapsMax)
        memory.release(mapStatistics, count: mapsMax * Self.statisticsWords)
    }

    /// Makes room for `paths` paths and `maps` maps (the thread that grows tables).
    public func prepare(paths: Int, maps: Int) {
        let oldPaths = pathsReady.load(ordering: .relaxed), newPaths = min(paths, pathsMax)
        if newPaths > oldPaths {
            memory.commit(pathStates, from: oldPaths, to: newPaths)
            memory.commit(pathFlags, from: oldPaths, to: newPaths)
            for i in oldPaths..<newPaths {
                (pathStates + i).initialize(to: Atomic(0))
                (pathFlags + i).initialize(to: Atomic(0))
            }
            pathsReady.store(newPaths, ordering: .releasing)
        }
        let oldMaps = mapsReady.load(ordering: .relaxed), newMaps = min(maps, mapsMax)
        if newMaps > oldMaps {
            memory.commit(mapFlags, from: oldMaps, to: newMaps)
            memory.commit(mapStatistics, from: oldMaps * Self.statisticsWords, to: newMaps * Self.statisticsWords)
            for i in oldMaps..<newMaps { (mapFlags + i).initialize(to: Atomic(0)) }
            for i in oldMaps * Self.statisticsWords..<newMaps * Self.statisticsWords { (mapStatistics + i).initialize(to: Atomic(0)) }
            mapsReady.store(newMaps, ordering: .releasing)
        }
    }

    /// Paths and maps the board has room for now.
    public var pathCapacity: Int { pathsReady.load(ordering: .acquiring) }
    public var mapCapacity: Int { mapsReady.load(ordering: .acquiring) }

    /// Publishes a path's state (recovery thread).
    @inlinable
    public func setState(_ path: PathHandle, _ state: PathState) {
        guard path.index < pathCapacity else { return }
        storeState(path.index, state.rawValue &+ 1)
    }

    @usableFromInline
    func storeState(_ index: Int, _ value: UInt8) {
        let before = pathStates[index].exchange(value, ordering: .relaxed)
        if before != 0 && before != value { transitions.wrappingAdd(1, ordering: .relaxed) }
    }

    /// A path's last published state (nil before its first check).
    public func state(_ path: PathHandle) -> PathState? {
        guard path.index < pathCapacity else { return nil }
        let raw = pathStates[path.index].load(ordering: .relaxed)
        return raw == 0 ? nil : PathState(rawValue: raw &- 1)
    }

    /// Publishes whether a path is marked marginal (recovery thread).
    @inlinable
    public func setMarginal(_ path: PathHandle, _ marginal: Bool) {
        guard path.index < pathCapacity else { return }
        storeMarginal(path.index, marginal)
    }

    @usableFromInline
    func storeMarginal(_ index: Int, _ marginal: Bool) { pathFlags[index].store(marginal ? 1 : 0, ordering: .relaxed) }

    /// Whether the path is marked marginal, as last published.
    public func marginal(_ path: PathHandle) -> Bool {
        path.index < pathCapacity && pathFlags[path.index].load(ordering: .relaxed) & 1 != 0
    }

    /// Publishes a map's queueing flag (recovery thread).
    @inlinable
    public func setQueueing(_ map: MapHandle, _ queueing: Bool) { setFlag(map, bit: 1, queueing) }

    /// Publishes that a map's table is loaded (recovery thread).
    @inlinable
    public func setLoaded(_ map: MapHandle) { setFlag(map, bit: 2, true) }

    @usableFromInline
    func setFlag(_ map: MapHandle, bit: UInt8, _ on: Bool) {
        guard map.index < mapCapacity else { return }
        if on {
            mapFlags[map.index].bitwiseOr(bit, ordering: .relaxed)
        } else {
            mapFlags[map.index].bitwiseAnd(~bit, ordering: .relaxed)
        }
    }

    /// Whether the map queues I/O when no path is usable, as last published.
    public func queueing(_ map: MapHandle) -> Bool {
        map.index < mapCapacity && mapFlags[map.index].load(ordering: .relaxed) & 1 != 0
    }

    /// Publishes a map's statistics (recovery thread). The words are stored one by one: a
    /// reader may see one publication's switches with the next one's countdowns, which for
    /// counters that only grow is harmless.
    @inlinable
    public func publishStatistics(_ map: MapHandle, _ statistics: MapStatistics) {
        guard map.index < mapCapacity else { return }
        let words = mapStatistics + map.index * Self.statisticsWords
        words[0].store(UInt64(statistics.groupSwitches), ordering: .relaxed)
        words[1].store(UInt64(statistics.countdownsBegun), ordering: .relaxed)
        words[2].store(UInt64(statistics.countdownsExpired), ordering: .relaxed)
        words[3].store(UInt64(bitPattern: statistics.countdownNs), ordering: .relaxed)
        // 0 is "no countdown" (and a slot never published); a start is stored plus one.
        let since = statistics.countdownSinceNs
        words[4].store(since == Time.never ? 0 : UInt64(bitPattern: since) &+ 1, ordering: .relaxed)
    }

    /// A map's statistics as last published (zero before the first publication).
    public func statistics(_ map: MapHandle) -> MapStatistics {
        var s = MapStatistics()
        guard map.index < mapCapacity else { return s }
        let words = mapStatistics + map.index * Self.statisticsWords
        s.groupSwitches = UInt32(truncatingIfNeeded: words[0].load(ordering: .relaxed))
        s.countdownsBegun = UInt32(truncatingIfNeeded: words[1].load(ordering: .relaxed))
        s.countdownsExpired = UInt32(truncatingIfNeeded: words[2].load(ordering: .relaxed))
        s.countdownNs = Nanoseconds(bitPattern: words[3].load(ordering: .relaxed))
        let since = words[4].load(ordering: .relaxed)
        s.countdownSinceNs = since == 0 ? Time.never : Nanoseconds(bitPattern: since &- 1)
        return s
    }

    /// Whether the map's table was loaded.
    public func loaded(_ map: MapHandle) -> Bool {
        map.index < mapCapacity && mapFlags[map.index].load(ordering: .relaxed) & 2 != 0
    }
}

/// A table reload handed to the control plane: the map and the snapshot slot holding its layout.
@frozen
public struct ReloadTicket: BitwiseCopyable, Sendable, Equatable {
    public var map: MapHandle
    public var slot: Int32
    public init(map: MapHandle, slot: Int32) {
        self.map = map
        self.slot = slot
    }
}

/// Hands table reloads from the recovery thread to the control plane. A fixed pool of layout
/// snapshots (`slotsMax`, far fewer than maps: reloads are rare and quick): the recovery thread
/// fills a free one and pushes a ticket onto `ring`; the control plane owns the slot until it
/// answers `RecoveryInput.reloadDone`. A request for a map whose reload is out, or when no slot
/// or ring space is free, is remembered and sent when a slot returns. The rings' release/acquire
/// ordering carries the snapshot's contents between the threads.
public final class ReloadHandoff: @unchecked Sendable {
    public let ring: SPSCRing<ReloadTicket>
    public let doorbell: EventFD
    @usableFromInline let snapshots: [LayoutSnapshot]
    /// Free snapshot slots (a stack of indices); touched by the recovery thread only.
    @usableFromInline let freeSlots: UnsafeMutableBufferPointer<Int32>
    @usableFromInline var freeCount: Int
    /// Per map: a reload is out with the control plane.
    @usableFromInline let outstanding: UnsafeMutableBufferPointer<Bool>
    /// Per map: a request is waiting to be sent.
    @usableFromInline let waiting: UnsafeMutableBufferPointer<Bool>
    @usableFromInline var waitingCount = 0

    /// Room for `mapsMax` maps of up to `pathsPerMapMax` paths, `slotsMax` reloads out at once.
    public init(mapsMax: Int, pathsPerMapMax: Int, slotsMax: Int = 32, doorbell: EventFD) {
        let maps = max(mapsMax, 1)
        let slots = max(1, min(slotsMax, maps))
        ring = SPSCRing(capacity: slots)
        self.doorbell = doorbell
        snapshots = (0..<slots).map { _ in LayoutSnapshot(pathsMax: pathsPerMapMax) }
        freeSlots = .allocate(capacity: slots)
        for i in 0..<slots { freeSlots[i] = Int32(slots - 1 - i) }
        freeCount = slots
        outstanding = .allocate(capacity: maps)
        outstanding.initialize(repeating: false)
        waiting = .allocate(capacity: maps)
        waiting.initialize(repeating: false)
    }

    deinit {
        freeSlots.deallocate()
        outstanding.deallocate()
        waiting.deallocate()
    }

    /// The snapshot a ticket names (the control plane reads it after popping the ticket).
    public func snapshot(_ ticket: ReloadTicket) -> LayoutSnapshot { snapshots[Int(ticket.slot)] }

    /// Requests waiting for a slot or for their map's reload to return.
    public var waitingRequests: Int { waitingCount }

    /// The engine asked for `map`'s table (recovery thread). Returns false when the request has
    /// to wait.
    @inlinable
    @discardableResult
    public func request(_ map: MapHandle, engine: Engine) -> Bool {
        let i = map.index
        guard i < outstanding.count else { return false }
        if outstanding[i] || freeCount == 0 {
            if !waiting[i] {
                waiting[i] = true
                waitingCount += 1
            }
            return false
        }
        let slot = freeSlots[freeCount - 1]
        guard engine.snapshotLayout(of: map, into: snapshots[Int(slot)]) else {
            // The map is gone (or too big for a snapshot): nothing to load.
            if waiting[i] {
                waiting[i] = false
                waitingCount -= 1
            }
            return false
        }
        guard ring.push(ReloadTicket(map: map, slot: slot)) else {
            if !waiting[i] {
                waiting[i] = true
                waitingCount += 1
            }
            return false
        }
        freeCount -= 1
        outstanding[i] = true
        if waiting[i] {
            waiting[i] = false
            waitingCount -= 1
        }
        doorbell.signal()
        return true
    }

    /// The control plane returned `ticket`'s slot (recovery thread): waiting requests are sent
    /// while slots last, the returned map's own first.
    @inlinable
    public func returned(_ ticket: ReloadTicket, engine: Engine) {
        let i = ticket.map.index
        guard i < outstanding.count else { return }
        // A slot returned twice would be handed out twice: refuse it (and say so in debug).
        assert(outstanding[i], "reload slot of \(ticket.map) returned twice")
        guard outstanding[i], freeCount < freeSlots.count else { return }
        outstanding[i] = false
        freeSlots[freeCount] = ticket.slot
        freeCount += 1
        if waiting[i] { request(ticket.map, engine: engine) }
        var m = 0
        while waitingCount > 0 && freeCount > 0 && m < waiting.count {
            if waiting[m] && !outstanding[m] { request(engine.mapHandle(slot: m), engine: engine) }
            m += 1
        }
    }
}
