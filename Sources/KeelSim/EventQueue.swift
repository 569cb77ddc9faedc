// The world's agenda: a binary min-heap of timed events ordered by (time, sequence number).

import KeelCore

/// One scheduled event. Events due at the same time run in the order they were scheduled
/// (their sequence number), which is what makes a run replay exactly.
struct TimedEvent<Payload: BitwiseCopyable>: BitwiseCopyable {
    var timeNs: Nanoseconds
    var sequence: UInt64
    var payload: Payload

    /// Whether this event runs before `other`.
    @inline(__always)
    func precedes(_ other: Self) -> Bool {
        timeNs != other.timeNs ? timeNs < other.timeNs : sequence < other.sequence
    }
}

/// A binary min-heap of `TimedEvent`s. Capacity is reserved up front by the owner; pushing
/// within it never allocates.
struct EventQueue<Payload: BitwiseCopyable> {
    private var heap: [TimedEvent<Payload>] = []

    init(capacity: Int) { heap.reserveCapacity(capacity) }

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    var capacity: Int { heap.capacity }

    /// The event that runs next, if any.
    var first: TimedEvent<Payload>? { heap.first }

    /// When the next event is due, or `Time.never`.
    var nextTimeNs: Nanoseconds { heap.first?.timeNs ?? Time.never }

    mutating func reserve(additional: Int) {
        if heap.count + additional > heap.capacity { heap.reserveCapacity(heap.count + additional) }
    }

    mutating func push(_ event: TimedEvent<Payload>) {
        heap.append(event)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> TimedEvent<Payload>? {
        guard !heap.isEmpty else { return nil }
        let top = heap[0]
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                guard left < heap.count else { break }
                let right = left + 1
                let child = right < heap.count && heap[right].precedes(heap[left]) ? right : left
                guard heap[child].precedes(heap[parent]) else { break }
                heap.swapAt(child, parent)
                parent = child
            }
        }
        return top
    }
}
