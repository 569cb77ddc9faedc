// The rings' push and pop allocate nothing once the ring exists (release builds).

import KeelCore
import Testing

/// A 32-byte record, the size of Keel's larger engine records.
private struct Record32: BitwiseCopyable, Equatable {
    var first: UInt64
    var second: UInt64
    var third: UInt64
    var fourth: UInt64
}

/// Counts the mallocs of 1,000,000 push-then-pop round trips of a fresh 32-byte record through
/// one ring (given as its `push` and `pop`). Returns the count, the round trips whose push was
/// refused or whose pop gave back another record, and the last sequence number used (the
/// measured runs plus mallocCount's one uncounted run).
private func pushPopMallocs(push: (Record32) -> Bool, pop: () -> Record32?) -> (mallocs: Int, mismatches: Int, sequence: UInt64) {
    var sequence: UInt64 = 0
    var mismatches = 0
    let mallocs = mallocCount(iterations: 1_000_000) {
        sequence &+= 1
        let record = Record32(first: sequence, second: ~sequence, third: sequence << 1, fourth: 32)
        if !push(record) { mismatches += 1 }
        if pop() != record { mismatches += 1 }
    }
    return (mallocs, mismatches, sequence)
}

@Suite("ring allocations", .serialized)
struct RingAllocationTests {
    @Test("Record32 is 32 bytes")
    func recordIsThirtyTwoBytes() {
        #expect(MemoryLayout<Record32>.size == 32)
    }

    @Test("1,000,000 SPSCRing push+pop of a 32-byte record allocate nothing")
    func spscPushPopAllocatesNothing() {
        let ring = SPSCRing<Record32>(capacity: 1024)
        let (mallocs, mismatches, sequence) = pushPopMallocs(push: { ring.push($0) }, pop: { ring.pop() })
        #expect(mallocs == 0)
        #expect(mismatches == 0)
        #expect(sequence == 1_000_001)
    }

    @Test("1,000,000 MPSCRing push+pop of a 32-byte record allocate nothing")
    func mpscPushPopAllocatesNothing() {
        let ring = MPSCRing<Record32>(capacity: 1024)
        let (mallocs, mismatches, sequence) = pushPopMallocs(push: { ring.push($0) }, pop: { ring.pop() })
        #expect(mallocs == 0)
        #expect(mismatches == 0)
        #expect(sequence == 1_000_001)
    }
}
