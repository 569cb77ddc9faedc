// SimRandom: reproducible, seed-dependent, and within its bounds.

import KeelSim
import Testing

@Test func sameSeedGivesSameSequence() {
    var a = SimRandom(seed: 42)
    var b = SimRandom(seed: 42)
    let first = (0..<100).map { _ in a.next() }
    let second = (0..<100).map { _ in b.next() }
    #expect(first == second)
}

@Test func differentSeedsGiveDifferentSequences() {
    var a = SimRandom(seed: 1)
    var b = SimRandom(seed: 2)
    #expect((0..<8).map { _ in a.next() } != (0..<8).map { _ in b.next() })
}

@Test func streamsOfOneSeedDiffer() {
    var a = SimRandom(seed: 7, stream: 1)
    var b = SimRandom(seed: 7, stream: 2)
    #expect((0..<8).map { _ in a.next() } != (0..<8).map { _ in b.next() })
}

@Test func belowStaysBelowItsBoundAndReachesEveryValue() {
    var random = SimRandom(seed: 3)
    var seen = Array(repeating: false, count: 7)
    for _ in 0..<1000 {
        let value = random.below(7)
        #expect(value >= 0 && value < 7)
        seen[value] = true
    }
    #expect(seen.allSatisfy { $0 })
}

@Test func rangeIncludesBothEnds() {
    var random = SimRandom(seed: 9)
    var low = false
    var high = false
    for _ in 0..<1000 {
        let value = random.range(10...12)
        #expect((10...12).contains(value))
        if value == 10 { low = true }
        if value == 12 { high = true }
    }
    #expect(low && high)
}

@Test func chanceFollowsItsRate() {
    var random = SimRandom(seed: 5)
    var hits = 0
    var neverHits = 0
    for _ in 0..<100_000 {
        if random.chance(perMillion: 250_000) { hits += 1 }
        if random.chance(perMillion: 0) { neverHits += 1 }
    }
    #expect(hits > 24_000 && hits < 26_000)
    #expect(neverHits == 0)
}
