// A hashed timer wheel over small integer ids, with intrusive links in preallocated arrays.

/// Schedules one deadline per id (a path or a map) with O(1) insert and cancel, and pops due ids
/// in bounded work. Storage is allocated at init; the per-id tables grow in place (`Entries`), so
/// the wheel itself never allocates.
///
/// Deadlines further away than one turn of the wheel stay in their slot and are skipped until
/// their turn comes (they carry their absolute deadline), so any deadline is exact, never rounded
/// later by more than nothing: an id is popped by the first `advance` whose `nowNs` reaches it.
public struct TimerWheel {
    @usableFromInline static let none: Int32 = -1

    /// The per-id tables, reserved for a ceiling and committed as the id range grows. A thread
    /// other than the wheel's owner may `prepare` ids past `capacity`; the owner then `adopt`s them.
    public final class Entries: @unchecked Sendable {
        @usableFromInline let deadlineNs: Table<Nanoseconds>
        @usableFromInline let next: Table<Int32>
        @usableFromInline let prev: Table<Int32>
        @usableFromInline let slotOf: Table<Int32>
        public let ceiling: Int
        /// Ids prepared so far (written by the preparing thread only).
        public private(set) var prepared = 0

        public init(ceiling: Int, memory: TableMemory) {
            self.ceiling = max(ceiling, 1)
            deadlineNs = Table(ceiling: self.ceiling, memory: memory)
            next = Table(ceiling: self.ceiling, memory: memory)
            prev = Table(ceiling: self.ceiling, memory: memory)
            slotOf = Table(ceiling: self.ceiling, memory: memory)
        }

        /// Commits and clears ids up to `count` (not past the ceiling).
        public func prepare(upTo count: Int) {
            let to = min(count, ceiling)
            guard to > prepared else { return }
            deadlineNs.prepare(from: prepared, to: to, value: Time.never)
            next.prepare(from: prepared, to: to, value: TimerWheel.none)
            prev.prepare(from: prepared, to: to, value: TimerWheel.none)
            slotOf.prepare(from: prepared, to: to, value: TimerWheel.none)
            prepared = to
        }

        /// Bytes committed per id.
        public static let bytesPerId = MemoryLayout<Nanoseconds>.stride + 3 * MemoryLayout<Int32>.stride
    }

    public let entries: Entries
    @usableFromInline let deadlineNs: Table<Nanoseconds>
    @usableFromInline let next: Table<Int32>
    @usableFromInline let prev: Table<Int32>
    @usableFromInline let slotOf: Table<Int32>
    /// Ids `0..<capacity` may be scheduled.
    public private(set) var capacity: Int
    @usableFromInline var heads: [Int32]
    @usableFromInline var tails: [Int32]
    /// One bit per slot: set while the slot holds an entry, so an idle wheel is skipped 64
    /// slots at a time when looking for the next deadline.
    @usableFromInline var occupied: [UInt64]
    @usableFromInline let slotMask: Int64
    @usableFromInline let tickNs: Nanoseconds
    /// The last tick whose slot holds no due entry any more. The current tick is looked at again
    /// on every advance, because entries later in the same tick stay there.
    @usableFromInline var cursorTick: Int64
    @usableFromInline var scheduledCount: Int
    /// The earliest deadline, remembered between changes so an idle caller asking again and
    /// again does not rescan; `Time.never` with `earliestKnown` false means "recompute".
    @usableFromInline var earliestNs: Nanoseconds = Time.never
    @usableFromInline var earliestKnown = true

    /// - Parameters:
    ///   - capacity: ids run from 0 to capacity-1.
    ///   - slotCount: rounded up to a power of two; one turn is `slotCount * tickNs`.
    ///   - tickNs: granularity of the slots (not of the deadlines, which stay exact).
    ///   - entries: per-id tables to use (grown by their preparer); by default the heap, sized
    ///     for `capacity` ids.
    public init(capacity: Int, slotCount: Int = 4096, tickNs: Nanoseconds = Time.nsPerMs, startNs: Nanoseconds = 0,
                entries: Entries? = nil) {
        precondition(capacity > 0 && slotCount > 0 && tickNs > 0)
        var slots = 1
        while slots < slotCount { slots <<= 1 }
        let entries = entries ?? Entries(ceiling: capacity, memory: .heap)
        entries.prepare(upTo: capacity)
        precondition(entries.prepared >= capacity, "timer wheel entries not prepared")
        self.entries = entries
        self.capacity = capacity
        deadlineNs = entries.deadlineNs
        next = entries.next
        prev = entries.prev
        slotOf = entries.slotOf
        heads = Array(repeating: Self.none, count: slots)
        tails = Array(repeating: Self.none, count: slots)
        occupied = Array(repeating: 0, count: (slots + 63) / 64)
        slotMask = Int64(slots - 1)
        self.tickNs = tickNs
        cursorTick = startNs / tickNs - 1
        scheduledCount = 0
    }

    /// Takes ids up to `count`, which `entries` has prepared (owner's thread; allocates nothing).
    public mutating func adopt(capacity count: Int) {
        precondition(count <= entries.prepared, "timer wheel ids adopted before they were prepared")
        if count > capacity { capacity = count }
    }

    /// How many ids have a deadline.
    public var count: Int { scheduledCount }

    /// Whether `id` has a deadline.
    @inlinable public func isScheduled(_ id: Int) -> Bool { slotOf[id] != Self.none }

    /// The deadline of `id`, or `Time.never`.
    @inlinable public func deadline(of id: Int) -> Nanoseconds { slotOf[id] == Self.none ? Time.never : deadlineNs[id] }

    /// Sets (or moves) the deadline of `id`. A deadline in the past fires at the next advance.
    ///
    /// Each slot's list is kept in deadline order, so popping and finding a slot's earliest
    /// entry never walk entries that are not due. The place is found from the tail: deadlines
    /// mostly arrive in increasing order (now plus an interval), so the walk is usually empty;
    /// equal deadlines (a burst of checks sent together) go after each other without one, and
    /// one earlier than the whole slot goes first without one.
    @inlinable public mutating func schedule(_ id: Int, atNs deadline: Nanoseconds) {
        if slotOf[id] != Self.none { unlink(id) }
        var tick = deadline / tickNs
        if tick <= cursorTick { tick = cursorTick + 1 }
        let slot = Int(tick & slotMask)
        deadlineNs[id] = deadline
        slotOf[id] = Int32(slot)
        // Before the head (a walk from the tail would cross the whole slot), else after the last
        // entry not later than it; the walk stops at the head at the latest.
        let first = heads[slot]
        var after = first == Self.none || deadline < deadlineNs[Int(first)] ? Self.none : tails[slot]
        while after != Self.none && deadlineNs[Int(after)] > deadline { after = prev[Int(after)] }
        let before = after == Self.none ? heads[slot] : next[Int(after)]
        prev[id] = after
        next[id] = before
        if after != Self.none { next[Int(after)] = Int32(id) } else { heads[slot] = Int32(id) }
        if before != Self.none { prev[Int(before)] = Int32(id) } else { tails[slot] = Int32(id) }
        occupied[slot >> 6] |= 1 << UInt64(slot & 63)
        scheduledCount += 1
        if earliestKnown && deadline < earliestNs { earliestNs = deadline }
    }

    /// Removes the deadline of `id`, if any.
    @inlinable public mutating func cancel(_ id: Int) {
        if slotOf[id] != Self.none { unlink(id) }
    }

    @inlinable mutating func unlink(_ id: Int) {
        let slot = Int(slotOf[id])
        let n = next[id], p = prev[id]
        if p != Self.none { next[Int(p)] = n } else { heads[slot] = n }
        if n != Self.none { prev[Int(n)] = p } else { tails[slot] = p }
        if heads[slot] == Self.none { occupied[slot >> 6] &= ~(1 << UInt64(slot & 63)) }
        next[id] = Self.none
        prev[id] = Self.none
        slotOf[id] = Self.none
        if deadlineNs[id] <= earliestNs { earliestKnown = false }
        deadlineNs[id] = Time.never
        scheduledCount -= 1
    }

    /// The earliest deadline in `slot` (any turn): its head, the list being in deadline order.
    @inlinable func slotMin(_ slot: Int) -> Nanoseconds {
        let head = heads[slot]
        return head == Self.none ? Time.never : deadlineNs[Int(head)]
    }

    /// Pops every id whose deadline is at or before `nowNs`, in deadline order within a slot,
    /// calling `visit` for each (its deadline already removed). Work is bounded by one turn of
    /// slots plus the ids popped: the due entries of a slot are the front of its list.
    @inlinable public mutating func advance(toNs nowNs: Nanoseconds, _ visit: (Int) -> Void) {
        let nowTick = nowNs / tickNs
        if nowTick <= cursorTick { return }
        let turns = slotMask + 1
        var tick = cursorTick + 1
        let lastTick = nowTick - cursorTick > turns ? tick + turns - 1 : nowTick
        while tick <= lastTick {
            let slot = Int(tick & slotMask)
            while heads[slot] != Self.none && deadlineNs[Int(heads[slot])] <= nowNs {
                let id = Int(heads[slot])
                unlink(id)
                visit(id)
            }
            tick += 1
        }
        cursorTick = nowTick - 1
    }

    /// The earliest deadline, or `Time.never`. Scans at most one turn of slots, 64 empty ones
    /// at a time; meant for choosing how long to sleep, not for the hot path.
    public mutating func nextDeadlineNs() -> Nanoseconds {
        if !earliestKnown {
            earliestNs = scanForEarliestNs()
            earliestKnown = true
        }
        return earliestNs
    }

    mutating func scanForEarliestNs() -> Nanoseconds {
        if scheduledCount == 0 { return Time.never }
        var later = Time.never
        let turns = slotMask + 1
        var offset: Int64 = 0
        while offset < turns {
            // Jump to the next occupied slot.
            let tick0 = cursorTick + 1 + offset
            let slot = Int(tick0 & slotMask)
            let word = occupied[slot >> 6] >> UInt64(slot & 63)
            if word == 0 {
                // To the end of this word, or of the ring if it ends first (then wrap to slot 0).
                offset += Int64(min(64 - (slot & 63), heads.count - slot))
                continue
            }
            offset += Int64(word.trailingZeroBitCount)
            if offset >= turns { break }
            let tick = cursorTick + 1 + offset
            let m = slotMin(Int(tick & slotMask))
            // The slot's minimum is in this turn exactly when the slot has an entry of this turn.
            if m / tickNs <= tick { return m }
            later = min(later, m)
            offset += 1
        }
        return later
    }
}
