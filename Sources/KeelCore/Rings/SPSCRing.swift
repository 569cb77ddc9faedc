// Bounded lock-free single-producer / single-consumer ring over slots allocated once.

import Synchronization

/// A bounded FIFO for exactly one producing thread and one consuming thread.
///
/// All slots are allocated at init; `push` and `pop` never allocate, never block and never
/// spin. A push into a full ring drops the record and counts it (`droppedCount`): the producer
/// decides whether to retry, the ring never waits.
///
/// Positions are free-running `UInt` counters (slot = position & mask); `tail - head` is the
/// occupancy. The producer publishes a slot with a releasing store of `tail`, the consumer
/// acquires it; the consumer frees a slot with a releasing store of `head`, the producer
/// acquires that before reusing the slot. Each side also keeps a cached copy of the other
/// side's position so the common case touches only its own cache line.
///
/// Calling `push` from two threads at once, or `pop` from two threads at once, is a
/// programmer error; use `MPSCRing` for many producers.
public final class SPSCRing<Element: BitwiseCopyable>: @unchecked Sendable {
    /// Slot storage, `capacity` elements, allocated in init and freed in deinit.
    @usableFromInline let slots: UnsafeMutablePointer<Element>
    /// `capacity - 1`: maps a position to its slot.
    @usableFromInline let mask: UInt
    /// Number of slots: the requested capacity rounded up to a power of two.
    public let capacity: Int

    // Keeps the consumer's line off the line that holds the object header (retain/release
    // writes it) and the read-only fields above.
    private let padHeader = CacheLinePad()

    /// Next position to read. Written only by the consumer.
    @usableFromInline let head = Atomic<UInt>(0)
    /// The consumer's last observed `tail`. Touched only by the consumer.
    @usableFromInline let consumerTailCache = Atomic<UInt>(0)

    private let padConsumer = CacheLinePad()

    /// Next position to write. Written only by the producer.
    @usableFromInline let tail = Atomic<UInt>(0)
    /// The producer's last observed `head`. Touched only by the producer.
    @usableFromInline let producerHeadCache = Atomic<UInt>(0)
    /// Records refused because the ring was full. Written only by the producer.
    @usableFromInline let dropped = Atomic<Int>(0)

    private let padProducer = CacheLinePad()

    /// Creates a ring with at least `capacity` slots (rounded up to a power of two,
    /// at most 2^30). This is the ring's only allocation.
    public init(capacity: Int) {
        let slotCount = ringCapacity(roundingUp: capacity)
        self.capacity = slotCount
        self.mask = UInt(slotCount - 1)
        self.slots = UnsafeMutablePointer<Element>.allocate(capacity: slotCount)
    }

    deinit {
        // Elements are BitwiseCopyable: nothing to deinitialize.
        slots.deallocate()
    }

    /// Appends `element`; returns false, drops it and counts the drop when the ring is full.
    /// Producer thread only.
    @inlinable
    public func push(_ element: Element) -> Bool {
        let position = tail.load(ordering: .relaxed)
        var headSeen = producerHeadCache.load(ordering: .relaxed)
        assert(position &- headSeen <= UInt(capacity), "SPSCRing: occupancy above capacity before push (second producer?)")
        if position &- headSeen == UInt(capacity) {
            // Looks full from the cache: read the consumer's real position. Acquiring pairs
            // with the consumer's releasing store, so its read of the slot happened before
            // we overwrite it.
            headSeen = head.load(ordering: .acquiring)
            producerHeadCache.store(headSeen, ordering: .relaxed)
            assert(position &- headSeen <= UInt(capacity), "SPSCRing: consumer ran ahead of producer")
            if position &- headSeen == UInt(capacity) {
                dropped.wrappingAdd(1, ordering: .relaxed)
                return false
            }
        }
        (slots + Int(position & mask)).initialize(to: element)
        tail.store(position &+ 1, ordering: .releasing)
        return true
    }

    /// Removes and returns the oldest element, or nil when the ring is empty.
    /// Consumer thread only.
    @inlinable
    public func pop() -> Element? {
        let position = head.load(ordering: .relaxed)
        var tailSeen = consumerTailCache.load(ordering: .relaxed)
        assert(tailSeen &- position <= UInt(capacity), "SPSCRing: occupancy above capacity before pop (second consumer?)")
        if position == tailSeen {
            // Looks empty from the cache: read the producer's real position. Acquiring pairs
            // with the producer's releasing store, so the slot's contents are visible.
            tailSeen = tail.load(ordering: .acquiring)
            consumerTailCache.store(tailSeen, ordering: .relaxed)
            if position == tailSeen {
                return nil
            }
        }
        // The other side of push's check: what leaves must have been within capacity.
        assert(tailSeen &- position <= UInt(capacity), "SPSCRing: producer overran the consumer")
        let element = slots[Int(position & mask)]
        head.store(position &+ 1, ordering: .releasing)
        return element
    }

    /// Number of elements in the ring. Exact when called from the producer or the consumer
    /// while the other side is idle; otherwise a snapshot that may already be stale.
    public var count: Int {
        // Read head first: the tail read later is at least that head, so the difference is
        // never negative. Both may move in between, so clamp to the capacity.
        let headNow = head.load(ordering: .acquiring)
        let tailNow = tail.load(ordering: .acquiring)
        return min(Int(tailNow &- headNow), capacity)
    }

    /// Total records refused by `push` because the ring was full, since init.
    public var droppedCount: Int {
        dropped.load(ordering: .relaxed)
    }
}
