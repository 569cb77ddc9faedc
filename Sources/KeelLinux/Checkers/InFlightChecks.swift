// The checks a checker has in flight, with their tokens and deadlines, kept so timeouts are found on time.
import KeelCore

/// The slots with a check in flight, each with its token and deadline: a dense list with
/// swap-removal, so finding timeouts and the next deadline walks the checks in flight, not every
/// slot. Used by the libaio checker and the checker thread pool alike. Allocated at init for
/// `capacity` slots and never again; recovery thread only.
struct InFlightChecks: ~Copyable {
    let capacity: Int
    /// Checks in flight; `slot(at:)` takes indexes below it.
    private(set) var count = 0
    // slots[0..<count]: the slots in flight. positions[slot]: its index there, -1 when idle.
    private let slots: UnsafeMutablePointer<Int32>
    private let positions: UnsafeMutablePointer<Int32>
    // Kept after `remove`, so a completion or timeout can still be delivered with them.
    private let tokens: UnsafeMutablePointer<UInt32>
    private let deadlinesNs: UnsafeMutablePointer<Nanoseconds>

    init(capacity: Int) {
        self.capacity = capacity
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: -1, count: capacity)
        positions = .allocate(capacity: capacity)
        positions.initialize(repeating: -1, count: capacity)
        tokens = .allocate(capacity: capacity)
        tokens.initialize(repeating: 0, count: capacity)
        deadlinesNs = .allocate(capacity: capacity)
        deadlinesNs.initialize(repeating: 0, count: capacity)
    }

    deinit {
        slots.deallocate()
        positions.deallocate()
        tokens.deallocate()
        deadlinesNs.deallocate()
    }

    /// The slot at `index` of the list (`0..<count`, in no particular order).
    func slot(at index: Int) -> Int { Int(slots[index]) }

    /// The token of the slot's latest check (still there after `remove`).
    func token(_ slot: Int) -> UInt32 { tokens[slot] }

    /// The deadline of the slot's latest check.
    func deadlineNs(_ slot: Int) -> Nanoseconds { deadlinesNs[slot] }

    /// Records a check started on `slot`, which must not be in flight already.
    mutating func add(_ slot: Int, token: UInt32, deadlineNs: Nanoseconds) {
        precondition(positions[slot] == -1, "slot already in flight")
        tokens[slot] = token
        deadlinesNs[slot] = deadlineNs
        positions[slot] = Int32(count)
        slots[count] = Int32(slot)
        count += 1
    }

    /// Takes `slot` off the list (its check completed or timed out); the last entry moves into
    /// its place, so an index walk must look at the same index again.
    mutating func remove(_ slot: Int) {
        let i = Int(positions[slot])
        precondition(i >= 0 && Int(slots[i]) == slot, "in-flight list out of step")
        count -= 1
        let last = slots[count]
        slots[i] = last
        positions[Int(last)] = Int32(i)
        positions[slot] = -1
    }

    /// The earliest deadline among checks in flight; `Time.never` when none.
    func nextDeadlineNs() -> Nanoseconds {
        var earliest = Time.never
        for i in 0..<count { earliest = min(earliest, deadlinesNs[Int(slots[i])]) }
        return earliest
    }
}
