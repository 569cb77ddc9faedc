// The control plane's way to the recovery thread: topology requests through the input ring with
// a bounded wait for the answer, table growth when the engine's tables are full, kernel events
// and table confirmations as inputs, and the reload step that loads the tables the recovery
// thread handed over. keeld's events thread and the simulator's control plane run this same code
// over their own channel (`RecoveryChannel`).
import KeelCore

#if canImport(Glibc)
import Glibc
#endif

/// How the control plane reaches the recovery thread: keeld's rings and doorbells, or the
/// simulator's rings with the recovery pass run in place of a wait.
public protocol RecoveryChannel {
    /// Pushes one input into the recovery thread's ring, waiting while the ring is full.
    func send(_ input: RecoveryInput)
    /// The next topology answer waiting, if any.
    func nextTopologyReply() -> TopologyReply?
    /// A wait for one request's answer: each call blocks until more answers may be there and
    /// returns false once the request's time is up.
    func topologyWait() -> () -> Bool
    /// The request was given up (no answer in time).
    func topologyRequestTimedOut()
    /// The tables grew to `paths` and `maps` for a request; or could not (`nil`: at the ceilings).
    func tablesGrew(to grown: (paths: Int, maps: Int)?, ceilings: Capacities)
}

/// The engine's topology as the control plane reaches it: each call is an input to the recovery
/// thread and a bounded wait for its answer. A request given up on is handled by
/// `TopologyRequests` (a late path addition is undone). Control plane only.
public struct RingTopology<Channel: RecoveryChannel>: EngineTopology {
    public let channel: Channel
    /// Tickets, and path additions given up on whose late answers are undone.
    public var requests = TopologyRequests()
    /// Grows every table when the engine says one is full (nil: fixed tables).
    public let growth: TableGrowth?

    public init(channel: Channel, growth: TableGrowth? = nil) {
        self.channel = channel
        self.growth = growth
    }

    /// After a "table full" refusal: grows the tables and has the engine adopt the new handles
    /// (the adoption is ahead of the retried request in the ring). False at the ceiling.
    private func grow(paths: Bool, maps: Bool) -> Bool {
        guard let growth else { return false }
        guard let grown = growth.grow(paths: paths, maps: maps) else {
            channel.tablesGrew(to: nil, ceilings: growth.ceilings)
            return false
        }
        channel.send(.adopt(paths: Int32(grown.paths), maps: Int32(grown.maps)))
        channel.tablesGrew(to: grown, ceilings: growth.ceilings)
        return true
    }

    /// Takes late answers waiting in the ring (the control plane calls it every turn).
    public mutating func settleLateReplies() {
        let channel = self.channel
        requests.settleLate(nextReply: { channel.nextTopologyReply() }, send: { channel.send($0) })
    }

    private mutating func ask(_ make: (UInt32) -> RecoveryInput) -> TopologyReply? {
        let channel = self.channel
        let wait = channel.topologyWait()
        let reply = requests.ask(make, send: { channel.send($0) }, nextReply: { channel.nextTopologyReply() }, wait: wait)
        if reply == nil { channel.topologyRequestTimedOut() }
        return reply
    }

    private static func refusal(_ errno: Int32, map: MapHandle, path: PathHandle, device: DevNo?) -> EngineRefusal {
        switch errno {
        case EEXIST: return .duplicateDevice(device ?? DevNo(major: 0, minor: 0))
        case ENOENT: return .unknownMap(map)
        case ENOBUFS: return .pathTableFull(capacity: 0)
        default: return .mapFull(map, capacity: 0)
        }
    }

    public mutating func addMap(policy: MapPolicy) throws(EngineRefusal) -> MapHandle {
        guard var reply = ask({ .addMap(policy, ticket: $0) }) else { throw .mapTableFull(capacity: 0) }
        if reply.errno == ENOBUFS, grow(paths: false, maps: true) {
            guard let again = ask({ .addMap(policy, ticket: $0) }) else { throw .mapTableFull(capacity: 0) }
            reply = again
        }
        guard reply.errno == 0 else { throw .mapTableFull(capacity: growth?.maps ?? 0) }
        return reply.map
    }

    public mutating func addPath(_ descriptor: PathDescriptor, to map: MapHandle, nowNs: Nanoseconds) throws(EngineRefusal) -> PathHandle {
        guard var reply = ask({ .addPath(descriptor, map, ticket: $0) }) else { throw .mapFull(map, capacity: 0) }
        if reply.errno == ENOBUFS, grow(paths: true, maps: false) {
            guard let again = ask({ .addPath(descriptor, map, ticket: $0) }) else { throw .mapFull(map, capacity: 0) }
            reply = again
        }
        guard reply.errno == 0 else { throw Self.refusal(reply.errno, map: map, path: reply.path, device: descriptor.device) }
        return reply.path
    }

    public mutating func removePath(_ path: PathHandle, nowNs: Nanoseconds) throws(EngineRefusal) {
        guard let reply = ask({ .removePath(path, ticket: $0) }), reply.errno == 0 else { throw .unknownPath(path) }
    }

    public mutating func removeMap(_ map: MapHandle) throws(EngineRefusal) {
        guard let reply = ask({ .removeMap(map, ticket: $0) }), reply.errno == 0 else { throw .unknownMap(map) }
    }
}

/// Where the assembler's kernel events and table confirmations go when the engine is on the
/// recovery thread: inputs through the channel.
public struct RingLoopSink<Channel: RecoveryChannel>: AssemblyLoopSink {
    public let channel: Channel

    public init(channel: Channel) { self.channel = channel }

    public mutating func deliver(_ event: KernelEvent, nowNs: Nanoseconds) {
        channel.send(.kernel(event))
    }

    public mutating func tableLoaded(_ map: MapHandle, initialGroup: UInt16, queueing: Bool, nowNs: Nanoseconds) {
        channel.send(.tableLoaded(map, initialGroup: initialGroup, queueing: queueing))
    }

    public mutating func tableDiffers(_ map: MapHandle, nowNs: Nanoseconds) {
        channel.send(.requestReload(map))
    }
}

/// The control plane's reload step: every table the recovery thread handed over
/// (`ReloadHandoff`) is loaded through the assembler, confirmed to the recovery thread, and a
/// refused load is scheduled again (`ReloadRetries`). New maps are created several at a time when
/// enough of them come together (`MultipathKernel.createAll`).
public enum TableLoads {
    /// What one handed-over table came to.
    public struct Outcome {
        public var map: MapHandle
        public var layout: [[DevNo]]
        public var error: AssemblyError?
    }

    /// Loads every waiting table and returns what each came to, in ticket order (empty: there
    /// was nothing to load). Each ticket goes back to the recovery thread with `.reloadDone`
    /// once its table is loaded or refused; `returned` runs after each. The outcomes are
    /// returned rather than reported one by one because the assembler is lent to this step
    /// until it returns: reporting them reads it.
    @discardableResult
    public static func service<Channel: RecoveryChannel>(
        _ reloads: ReloadHandoff, assembler: inout MultipathAssembler, retries: inout ReloadRetries,
        channel: Channel, nowNs: () -> Nanoseconds, returned: () -> Void = {}
    ) -> [Outcome] {
        var tickets: [(ticket: ReloadTicket, layout: [[DevNo]], group: UInt16)] = []
        while let ticket = reloads.ring.pop() {
            let snapshot = reloads.snapshot(ticket)
            tickets.append((ticket, snapshot.layout(), snapshot.initialGroup))
        }
        guard !tickets.isEmpty else { return [] }
        var sink = RingLoopSink(channel: channel)
        // Maps new to the kernel (start-up, a burst of hot-added LUNs) are created several at a
        // time when there are enough of them; everything else goes one map at a time.
        var plans: [MultipathAssembler.PlannedCreate?] = Array(repeating: nil, count: tickets.count)
        var planned: Set<MapHandle> = []
        for (i, t) in tickets.enumerated() where !planned.contains(t.ticket.map) {
            plans[i] = assembler.plannedCreate(t.ticket.map, layout: t.layout, initialGroup: t.group)
            if plans[i] != nil { planned.insert(t.ticket.map) }
        }
        if planned.count < DMCreate.threadedBatchMin { plans = Array(repeating: nil, count: tickets.count) }
        let jobs = plans.compactMap { $0?.job }
        let createErrors = jobs.isEmpty ? [] : assembler.control.createAll(jobs)
        var nextCreate = 0
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(tickets.count)
        for (i, t) in tickets.enumerated() {
            let failure: AssemblyError?
            if let plan = plans[i] {
                failure = assembler.finishCreate(plan, error: createErrors[nextCreate], into: &sink, nowNs: nowNs())
                nextCreate += 1
            } else {
                failure = assembler.serviceReload(t.ticket.map, layout: t.layout, initialGroup: t.group, into: &sink, nowNs: nowNs())
            }
            if failure != nil {
                retries.failed(t.ticket.map, nowNs: nowNs())
            } else {
                retries.loaded(t.ticket.map)
            }
            outcomes.append(Outcome(map: t.ticket.map, layout: t.layout, error: failure))
            channel.send(.reloadDone(t.ticket))
            returned()
        }
        // The new maps' WWIDs go to the wwids file together: one fsync per batch.
        assembler.writeRememberedWWIDs()
        return outcomes
    }
}
