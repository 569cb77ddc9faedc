// Bounded lock-free many-producer / single-consumer ring over slots allocated once.

import Synchronization

/// A bounded FIFO for any number of producing threads and exactly one consuming thread.
///
/// All slots are allocated at init; `push` and `pop` never allocate and never block. A push
/// into a full ring drops the record and counts it (`droppedCount`).
///
/// Each slot carries a sequence stamp next to its element. For the free-running position `p`
/// that maps to a slot, the stamp reads `p` while the slot is free for a producer, `p + 1` once
/// the record is published for the consumer, and `p + capacity` once the consumer has taken it
/// (free for the producer one lap later). Producers claim a position with a compare-exchange
/// on `enqueuePosition`, write the element, then publish with a releasing store of the stamp;
/// the consumer acquires the stamp before reading and releases it after. Producers never wait
/// for each other: a producer that loses the race moves on to the next position.
///
/// Order: records leave in the order their positions were claimed, so each producer's own
/// records stay in order. A producer that has claimed a position but not yet published it
/// holds up the consumer at that position (`pop` returns nil until it publishes).
public final class MPSCRing<Element: BitwiseCopyable>: @unchecked Sendable {
    /// Slot storage: `capacity` cells of `cellStride` bytes, each a stamp then an element.
    @usableFromInline let cells: UnsafeMutableRawPointer
    /// `capacity - 1`: maps a position to its cell.
    @usableFromInline let mask: UInt
    /// Number of slots: the requested capacity rounded up to a power of two, at least 2.
    public let capacity: Int

    private let padHeader = CacheLinePad()

    /// Next position a producer will claim. Producers compare-exchange it.
    @usableFromInline let enqueuePosition = Atomic<UInt>(0)
    /// Records refused because the ring was full. Written by producers.
    @usableFromInline let dropped = Atomic<Int>(0)

    private let padProducers = CacheLinePad()

    /// Next position the consumer will read. Written only by the consumer.
    @usableFromInline let dequeuePosition = Atomic<UInt>(0)

    private let padConsumer = CacheLinePad()

    /// Byte offset of the element within a cell: after the 8-byte stamp, aligned for `Element`.
    @inlinable
    static var elementOffset: Int {
        let alignment = MemoryLayout<Element>.alignment
        return (MemoryLayout<Atomic<UInt>>.size + alignment - 1) & ~(alignment - 1)
    }

    /// Alignment of a cell: enough for both the stamp and the element.
    @inlinable
    static var cellAlignment: Int {
        max(MemoryLayout<Atomic<UInt>>.alignment, MemoryLayout<Element>.alignment)
    }

    /// Bytes from one cell to the next.
    @inlinable
    static var cellStride: Int {
        let end = elementOffset + MemoryLayout<Element>.size
        return (end + cellAlignment - 1) & ~(cellAlignment - 1)
    }

    /// Creates a ring with at least `capacity` slots (rounded up to a power of two, at least 2,
    /// at most 2^30). This is the ring's only allocation.
    ///
    /// The minimum is 2 because with one slot the "published" stamp of one lap equals the
    /// "free" stamp of the next, and a producer could overwrite an unread record.
    public init(capacity: Int) {
        precondition(capacity >= 1, "a ring needs at least one slot")
        let slotCount = ringCapacity(roundingUp: max(capacity, 2))
        self.capacity = slotCount
        self.mask = UInt(slotCount - 1)
        self.cells = UnsafeMutableRawPointer.allocate(
            byteCount: slotCount * Self.cellStride, alignment: Self.cellAlignment)
        for index in 0..<slotCount {
            (cells + index * Self.cellStride).initializeMemory(as: Atomic<UInt>.self, to: Atomic(UInt(index)))
        }
    }

    deinit {
        for index in 0..<capacity {
            stamp(at: cells + index * Self.cellStride).deinitialize(count: 1)
        }
        // Elements are BitwiseCopyable: nothing to deinitialize.
        cells.deallocate()
    }

    /// The cell that `position` maps to.
    @inlinable
    func cell(for position: UInt) -> UnsafeMutableRawPointer {
        cells + Int(position & mask) &* Self.cellStride
    }

    /// The sequence stamp at the start of `cell`.
    @inlinable
    func stamp(at cell: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Atomic<UInt>> {
        cell.assumingMemoryBound(to: Atomic<UInt>.self)
    }

    /// Appends `element`; returns false, drops it and counts the drop when the ring is full.
    /// Safe from any number of threads at once.
    @inlinable
    public func push(_ element: Element) -> Bool {
        var position = enqueuePosition.load(ordering: .relaxed)
        while true {
            let cell = cell(for: position)
            // Acquiring pairs with the consumer's releasing store: its read of the old element
            // happened before we overwrite it.
            let sequence = stamp(at: cell).pointee.load(ordering: .acquiring)
            let lead = Int(bitPattern: sequence &- position)
            if lead == 0 {
                // Free for this lap: try to claim the position.
                let (claimed, current) = enqueuePosition.weakCompareExchange(
                    expected: position, desired: position &+ 1,
                    successOrdering: .relaxed, failureOrdering: .relaxed)
                if claimed {
                    (cell + Self.elementOffset).storeBytes(of: element, as: Element.self)
                    stamp(at: cell).pointee.store(position &+ 1, ordering: .releasing)
                    return true
                }
                position = current
            } else if lead < 0 {
                // The slot still holds the record from one lap ago (published, or claimed and
                // being written): the ring is full. No other stamp is possible behind us.
                assert(lead == -capacity || lead == 1 - capacity, "MPSCRing: slot stamp corrupted")
                dropped.wrappingAdd(1, ordering: .relaxed)
                return false
            } else {
                // Another producer took this position first: catch up.
                position = enqueuePosition.load(ordering: .relaxed)
            }
        }
    }

    /// Removes and returns the oldest published element, or nil when there is none.
    /// Consumer thread only.
    @inlinable
    public func pop() -> Element? {
        let position = dequeuePosition.load(ordering: .relaxed)
        let cell = cell(for: position)
        // Acquiring pairs with the producer's releasing store: the element is visible.
        let sequence = stamp(at: cell).pointee.load(ordering: .acquiring)
        let lag = Int(bitPattern: sequence &- (position &+ 1))
        if lag < 0 {
            // Empty, or the producer that claimed this position has not published yet: either
            // way the stamp still reads `position`.
            assert(lag == -1, "MPSCRing: slot stamp corrupted")
            return nil
        }
        // The other side of push's claim: a record that leaves was published exactly for this
        // position. A larger stamp means another thread consumed it (a second consumer).
        assert(lag == 0, "MPSCRing: slot already consumed (second consumer?)")
        let element = (cell + Self.elementOffset).load(as: Element.self)
        assert(stamp(at: cell).pointee.load(ordering: .relaxed) == sequence, "MPSCRing: record overwritten while read")
        stamp(at: cell).pointee.store(position &+ UInt(capacity), ordering: .releasing)
        // Releasing so `count`, acquiring this, also sees the claim of every record taken.
        dequeuePosition.store(position &+ 1, ordering: .releasing)
        return element
    }

    /// Number of claimed, not yet consumed positions (including records a producer is still
    /// writing). A snapshot: other threads may change it at any moment.
    public var count: Int {
        // Read the consumer's position first (acquiring) so the producers' position read after
        // it is at least as far: the difference is never negative. Both may move between the
        // two reads, so clamp to the capacity.
        let dequeued = dequeuePosition.load(ordering: .acquiring)
        let enqueued = enqueuePosition.load(ordering: .relaxed)
        let occupancy = Int(bitPattern: enqueued &- dequeued)
        assert(occupancy >= 0, "MPSCRing: consumer ahead of producers")
        return min(max(occupancy, 0), capacity)
    }

    /// Total records refused by `push` because the ring was full, since init.
    public var droppedCount: Int {
        dropped.load(ordering: .relaxed)
    }
}
