// Specifications of SPSCRing and MPSCRing: order, sizing, drops, wrap-around, and cross-thread transfer.

import Glibc
import KeelCore
import Synchronization
import Testing

/// What the single-threaded specifications need from either ring.
protocol RingUnderTest<Element>: AnyObject {
    associatedtype Element
    func push(_ element: Element) -> Bool
    func pop() -> Element?
    var count: Int { get }
    var capacity: Int { get }
    var droppedCount: Int { get }
}

extension SPSCRing: RingUnderTest {}
extension MPSCRing: RingUnderTest {}

/// The two ring kinds, so each single-threaded specification runs against both.
enum RingKind: CaseIterable, Sendable, CustomStringConvertible {
    case spsc
    case mpsc

    func make(capacity: Int) -> any RingUnderTest<UInt64> {
        switch self {
        case .spsc: return SPSCRing<UInt64>(capacity: capacity)
        case .mpsc: return MPSCRing<UInt64>(capacity: capacity)
        }
    }

    var description: String {
        switch self {
        case .spsc: return "SPSCRing"
        case .mpsc: return "MPSCRing"
        }
    }
}

/// A record with mixed field sizes and padding, to catch slot layout mistakes.
private struct MixedRecord: BitwiseCopyable, Equatable {
    var tag: UInt8
    var sequence: UInt64
    var kind: UInt16
    var value: Int32
    var flag: Bool
}

/// A pthread running a closure; `join` waits for it and returns the closure's result.
/// The body is passed through `Unmanaged` because a capturing closure cannot be a C function.
private final class TestThread<Result: Sendable>: @unchecked Sendable {
    private let body: @Sendable () -> Result
    private var result: Result?
    private var handle = pthread_t()

    init(_ body: @escaping @Sendable () -> Result) {
        self.body = body
        let start = Unmanaged.passRetained(ThreadStart { [self] in self.result = self.body() })
        var handle = pthread_t()
        let status = pthread_create(&handle, nil, { raw in
            let start = Unmanaged<ThreadStart>.fromOpaque(raw!).takeRetainedValue()
            start.run()
            return nil
        }, start.toOpaque())
        precondition(status == 0, "pthread_create failed: \(status)")
        self.handle = handle
    }

    /// Waits for the thread to finish; pthread_join orders its writes before our read.
    func join() -> Result {
        let status = pthread_join(handle, nil)
        precondition(status == 0, "pthread_join failed: \(status)")
        return result!
    }
}

/// The non-generic entry point a C thread function can reach.
private final class ThreadStart: @unchecked Sendable {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// What a consumer saw: records received, records out of their producer's order,
/// and the next expected sequence per producer.
private struct ConsumerReport: Sendable {
    var received = 0
    var outOfOrder = 0
    var nextSequence: [UInt64] = []
}

/// Flags the producers raise when they are done, so a consumer never waits for a lost record.
private final class ProducerProgress: Sendable {
    let finished = Atomic<Int>(0)
}

/// Encodes a producer number and its sequence in one record.
private func record(producer: Int, sequence: Int) -> UInt64 {
    UInt64(producer) << 32 | UInt64(sequence)
}

/// The rings' specifications: single-threaded behaviour, then cross-thread transfer.
@Suite("rings")
struct RingTests {
    // MARK: - Single-threaded behaviour

    @Test("elements leave in the order they were pushed", arguments: RingKind.allCases)
    func popsInPushOrder(kind: RingKind) {
        let ring = kind.make(capacity: 8)
        for value in UInt64(1)...5 {
            #expect(ring.push(value))
        }
        var popped: [UInt64] = []
        while let value = ring.pop() {
            popped.append(value)
        }
        #expect(popped == [1, 2, 3, 4, 5])
    }

    @Test("SPSCRing rounds its capacity up to a power of two")
    func spscCapacityRoundsUpToPowerOfTwo() {
        let requested = [1, 2, 3, 5, 8, 1000, 1024, 1025]
        let actual = requested.map { SPSCRing<UInt64>(capacity: $0).capacity }
        #expect(actual == [1, 2, 4, 8, 8, 1024, 1024, 2048])
    }

    @Test("MPSCRing rounds its capacity up to a power of two, at least 2")
    func mpscCapacityRoundsUpToPowerOfTwoAtLeastTwo() {
        let requested = [1, 2, 3, 5, 8, 1000, 1024, 1025]
        let actual = requested.map { MPSCRing<UInt64>(capacity: $0).capacity }
        #expect(actual == [2, 2, 4, 8, 8, 1024, 1024, 2048])
    }

    @Test("a push into a full ring is refused, dropped and counted", arguments: RingKind.allCases)
    func fullRingDropsAndCounts(kind: RingKind) {
        let ring = kind.make(capacity: 4)
        for value in UInt64(1)...4 {
            #expect(ring.push(value))
        }
        #expect(ring.push(5) == false)
        #expect(ring.push(6) == false)
        #expect(ring.count == 4)
        #expect(ring.droppedCount == 2)
        var popped: [UInt64] = []
        while let value = ring.pop() {
            popped.append(value)
        }
        #expect(popped == [1, 2, 3, 4])
    }

    @Test("a full ring accepts again once the consumer frees a slot", arguments: RingKind.allCases)
    func fullRingAcceptsAfterPop(kind: RingKind) {
        let ring = kind.make(capacity: 2)
        #expect(ring.push(1) && ring.push(2))
        #expect(ring.push(3) == false)
        #expect(ring.pop() == 1)
        #expect(ring.push(4))
        #expect(ring.pop() == 2)
        #expect(ring.pop() == 4)
        #expect(ring.droppedCount == 1)
    }

    @Test("popping an empty ring returns nil and changes nothing", arguments: RingKind.allCases)
    func emptyPopReturnsNil(kind: RingKind) {
        let ring = kind.make(capacity: 4)
        #expect(ring.pop() == nil)
        #expect(ring.push(7))
        #expect(ring.pop() == 7)
        #expect(ring.pop() == nil)
        #expect(ring.pop() == nil)
        #expect(ring.count == 0)
        #expect(ring.droppedCount == 0)
        #expect(ring.push(8))
        #expect(ring.pop() == 8)
    }

    @Test("count follows pushes and pops", arguments: RingKind.allCases)
    func countTracksOccupancy(kind: RingKind) {
        let ring = kind.make(capacity: 4)
        var counts: [Int] = [ring.count]
        for value in UInt64(0)..<3 {
            _ = ring.push(value)
            counts.append(ring.count)
        }
        _ = ring.pop()
        counts.append(ring.count)
        #expect(counts == [0, 1, 2, 3, 2])
    }

    @Test("order survives wrapping around the slots many times", arguments: RingKind.allCases)
    func wrapsAroundManyTimes(kind: RingKind) {
        let ring = kind.make(capacity: 4)
        var next: UInt64 = 0
        var expected: UInt64 = 0
        var mismatches = 0
        // Batch sizes cycle through 1...4: every fill level up to full, with the positions
        // wrapping past the last slot thousands of times.
        for lap in 0..<10_000 {
            let batch = lap % 4 + 1
            for _ in 0..<batch {
                if !ring.push(next) { mismatches += 1 }
                next += 1
            }
            for _ in 0..<batch {
                if ring.pop() != expected { mismatches += 1 }
                expected += 1
            }
        }
        #expect(mismatches == 0)
        #expect(expected == 25_000)
        #expect(ring.pop() == nil)
        #expect(ring.droppedCount == 0)
    }

    @Test("SPSCRing carries padded multi-field records intact")
    func spscCarriesMixedRecordsIntact() {
        let ring = SPSCRing<MixedRecord>(capacity: 4)
        let records = (0..<10).map { MixedRecord(tag: UInt8($0), sequence: UInt64($0) << 40, kind: UInt16(0xBEEF), value: Int32(-$0), flag: $0 % 2 == 0) }
        var popped: [MixedRecord] = []
        for record in records {
            #expect(ring.push(record))
            popped.append(ring.pop()!)
        }
        #expect(popped == records)
    }

    @Test("MPSCRing carries padded multi-field records intact")
    func mpscCarriesMixedRecordsIntact() {
        let ring = MPSCRing<MixedRecord>(capacity: 4)
        let records = (0..<10).map { MixedRecord(tag: UInt8($0), sequence: UInt64($0) << 40, kind: UInt16(0xBEEF), value: Int32(-$0), flag: $0 % 2 == 0) }
        var popped: [MixedRecord] = []
        for record in records {
            #expect(ring.push(record))
            popped.append(ring.pop()!)
        }
        #expect(popped == records)
    }

    @Test("MPSCRing carries one-byte records intact")
    func mpscCarriesByteRecordsIntact() {
        let ring = MPSCRing<UInt8>(capacity: 3)
        let bytes: [UInt8] = [0, 1, 0xFF, 0x80, 7]
        var popped: [UInt8] = []
        for byte in bytes {
            #expect(ring.push(byte))
            popped.append(ring.pop()!)
        }
        #expect(popped == bytes)
    }

    // MARK: - Cross-thread transfer

    @Test("SPSCRing moves 1,000,000 records from one thread to another without loss or reorder")
    func spscMovesRecordsAcrossThreadsInOrder() {
        let recordCount = 1_000_000
        let ring = SPSCRing<UInt64>(capacity: 1024)
        let progress = ProducerProgress()

        let consumer = TestThread { () -> ConsumerReport in
            var report = ConsumerReport(nextSequence: [0])
            while true {
                if let value = ring.pop() {
                    if value != report.nextSequence[0] { report.outOfOrder += 1 }
                    report.nextSequence[0] = value + 1
                    report.received += 1
                } else if progress.finished.load(ordering: .acquiring) == 1 {
                    // The producer finished before this check: one more pass drains the rest.
                    if ring.count == 0 { break }
                } else {
                    sched_yield()
                }
            }
            return report
        }
        let producer = TestThread { () -> Int in
            var refused = 0
            for sequence in 0..<recordCount {
                // A refused push is retried, so every record arrives; the refusals are counted.
                while !ring.push(UInt64(sequence)) {
                    refused += 1
                    sched_yield()
                }
            }
            progress.finished.store(1, ordering: .releasing)
            return refused
        }

        let refused = producer.join()
        let report = consumer.join()
        #expect(report.received == recordCount)
        #expect(report.outOfOrder == 0)
        #expect(report.nextSequence == [UInt64(recordCount)])
        #expect(ring.droppedCount == refused)
        #expect(ring.count == 0)
    }

    @Test("MPSCRing moves 4 x 250,000 records from four threads to one, each producer's records in order")
    func mpscMovesRecordsFromFourProducersInOrder() {
        let producerCount = 4
        let recordsPerProducer = 250_000
        // Small on purpose: producers hit a full ring often, so drops and retries are exercised.
        let ring = MPSCRing<UInt64>(capacity: 64)
        let progress = ProducerProgress()

        let consumer = TestThread { () -> ConsumerReport in
            var report = ConsumerReport(nextSequence: Array(repeating: 0, count: producerCount))
            while true {
                if let value = ring.pop() {
                    let producer = Int(value >> 32)
                    let sequence = value & 0xFFFF_FFFF
                    if producer >= producerCount || sequence != report.nextSequence[producer] {
                        report.outOfOrder += 1
                    } else {
                        report.nextSequence[producer] = sequence + 1
                    }
                    report.received += 1
                } else if progress.finished.load(ordering: .acquiring) == producerCount {
                    if ring.count == 0 { break }
                } else {
                    sched_yield()
                }
            }
            return report
        }
        let producers = (0..<producerCount).map { producer in
            TestThread { () -> Int in
                var refused = 0
                for sequence in 0..<recordsPerProducer {
                    while !ring.push(record(producer: producer, sequence: sequence)) {
                        refused += 1
                        sched_yield()
                    }
                }
                progress.finished.wrappingAdd(1, ordering: .releasing)
                return refused
            }
        }

        let refused = producers.map { $0.join() }.reduce(0, +)
        let report = consumer.join()
        #expect(report.received == producerCount * recordsPerProducer)
        #expect(report.outOfOrder == 0)
        #expect(report.nextSequence == Array(repeating: UInt64(recordsPerProducer), count: producerCount))
        #expect(ring.droppedCount == refused)
        #expect(ring.count == 0)
    }
}
