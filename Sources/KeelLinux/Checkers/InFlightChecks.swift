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

    private let memory: TableMemory

    /// Tables reserved for `capacity` slots; none usable before `prepare`.
    init(capacity: Int, memory: TableMemory = .heap) {
        self.capacity = capacity
        self.memory = memory
        slots = memory.reserve(Int32.self, count: capacity)
        positions = memory.reserve(Int32.self, count: capacity)
        tokens = memory.reserve(UInt32.self, count: capacity)
        deadlinesNs = memory.reserve(Nanoseconds.self, count: capacity)
    }

    static let bytesPerSlot = 3 * MemoryLayout<Int32>.stride + MemoryLayout<Nanoseconds>.stride

    /// Commits and clears slots `prepared..<count` (the thread that grows tables, which keeps
    /// the count; the owner uses only slots it was told of after they were prepared).
    func prepare(from prepared: Int, to count: Int) {
        let new = min(count, capacity)
        guard new > prepared else { return }
        for table in [slots, positions] {
            memory.commit(table, from: prepared, to: new)
            (table + prepared).initialize(repeating: -1, count: new - prepared)
        }
        memory.commit(tokens, from: prepared, to: new)
        (tokens + prepared).initialize(repeating: 0, count: new - prepared)
        memory.commit(deadlinesNs, from: prepared, to: new)
        (deadlinesNs + prepared).initialize(repeating: 0, count: new - prepared)
    }

    deinit {
        memory.release(slots, count: capacity)
        memory.release(positions, count: capacity)
        memory.release(tokens, count: capacity)
        memory.release(deadlinesNs, count: capacity)
    }

    func slot(at index: Int) -> Int { Int(slots[index]) }

    /// The token of the slot's latest check (still there after `remove`).
    func token(_ slot: Int) -> UInt32 { tokens[slot] }

    /// The deadline of the slot's latest check.
    func deadlineNs(_ slot: Int) -> Nanoseconds { deadlinesNs[slot] }

    /// Moves the deadline of a slot in flight (a check whose clock starts when it is sent).
    func setDeadline(_ slot: Int, _ deadlineNs: Nanoseconds) { deadlinesNs[slot] = deadlineNs }

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
