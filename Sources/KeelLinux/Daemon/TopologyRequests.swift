// Topology requests from the control plane to the recovery thread: tickets, the wait for an
// answer, and what to do with answers that come after the asker gave up.
import KeelCore

/// The control plane's side of topology requests (`addMap`, `addPath`, `removePath` through the
/// input ring, answered by `TopologyReply`). keeld's events thread and the simulator's control
/// plane both use it, so a request that times out is handled the same way in both.
///
/// A request whose answer does not come before the asker's deadline is given up, but it is still
/// in the ring and the engine may apply it. Removals and map additions are harmless when late (a
/// removal is what the control plane already did; an unused map costs a slot). A late *path
/// addition* that succeeded would leave a path in the engine that no checker and no assembly
/// knows: the late answer is undone with a `removePath`. The device is then in neither view,
/// and the next rediscovery finds it as a path that was never added.
public struct TopologyRequests: Sendable {
    private var nextTicket: UInt32 = 1
    /// Tickets of path additions given up on.
    public private(set) var abandonedAdds: Set<UInt32> = []
    /// Late answers seen, and additions undone because of them (for logs and tests).
    public private(set) var lateReplies = 0
    public private(set) var undoneAdds = 0

    public init() {}

    /// Whether late answers may still need undoing.
    public var awaitingLateReplies: Bool { !abandonedAdds.isEmpty }

    /// Sends the input `make` builds with a fresh ticket, then takes answers from `nextReply`
    /// until its own comes; `wait` blocks until more answers may be there and returns false when
    /// the asker's deadline has passed. Answers to other tickets are settled on the way (`send`
    /// gets their undo). Nil: no answer in time (the request may still be applied).
    public mutating func ask(_ make: (UInt32) -> RecoveryInput, send: (RecoveryInput) -> Void,
                             nextReply: () -> TopologyReply?, wait: () -> Bool) -> TopologyReply? {
        let ticket = issue()
        let input = make(ticket)
        send(input)
        repeat {
            while let reply = nextReply() {
                if reply.ticket == ticket { return reply }
                if let undo = settle(reply) { send(undo) }
            }
        } while wait()
        if case .addPath = input { abandonedAdds.insert(ticket) }
        return nil
    }

    /// Takes answers nobody waits for (called every turn of the control plane's loop while
    /// `awaitingLateReplies`).
    public mutating func settleLate(nextReply: () -> TopologyReply?, send: (RecoveryInput) -> Void) {
        guard awaitingLateReplies else { return }
        while let reply = nextReply() {
            if let undo = settle(reply) { send(undo) }
        }
    }

    /// An answer that belongs to no waiting request. Returns the input that undoes it: a
    /// `removePath` for a path addition that was given up on and applied anyway.
    public mutating func settle(_ reply: TopologyReply) -> RecoveryInput? {
        guard abandonedAdds.remove(reply.ticket) != nil else { return nil }
        lateReplies += 1
        guard reply.errno == 0 else { return nil }
        undoneAdds += 1
        return .removePath(reply.path, ticket: issue())
    }

    private mutating func issue() -> UInt32 {
        let ticket = nextTicket
        nextTicket &+= 1
        if nextTicket == 0 { nextTicket = 1 }
        return ticket
    }
}

/// What a rediscovery changes: devices present but not assembled (a lost `add`) and devices
/// assembled but gone (a lost `remove`). Held devices (find_multipaths) are neither. Sorted, so
/// that the repair order does not depend on hashing.
public enum Rediscovery {
    /// The periodic rediscovery's interval (the safety net behind uevents and their overflow).
    public static let intervalNs: Nanoseconds = 60 * Time.nsPerSecond

    public static func differences<Device: Hashable & Comparable>(
        present: Set<Device>, assembled: Set<Device>, held: Set<Device> = []
    ) -> (added: [Device], gone: [Device]) {
        (present.subtracting(assembled).subtracting(held).sorted(), assembled.subtracting(present).sorted())
    }
}
