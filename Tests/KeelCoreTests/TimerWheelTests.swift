// Specification of the timer wheel: exact deadlines, long deadlines, cancel, next deadline.
import Testing
import KeelCore

@Suite struct TimerWheelTests {
    @Test func popsOnlyWhatIsDue() {
        var w = TimerWheel(capacity: 8, slotCount: 16, tickNs: 10)
        w.schedule(1, atNs: 25)
        w.schedule(2, atNs: 40)
        var popped: [Int] = []
        w.advance(toNs: 24) { popped.append($0) }
        #expect(popped == [])
        w.advance(toNs: 25) { popped.append($0) }
        #expect(popped == [1])
        w.advance(toNs: 100) { popped.append($0) }
        #expect(popped == [1, 2])
    }

    @Test func deadlineLaterInTheCurrentTickIsNotLost() {
        var w = TimerWheel(capacity: 4, slotCount: 16, tickNs: 10)
        w.schedule(0, atNs: 18)
        var popped: [Int] = []
        w.advance(toNs: 12) { popped.append($0) }
        #expect(popped.isEmpty)
        w.advance(toNs: 18) { popped.append($0) }
        #expect(popped == [0])
    }

    @Test func deadlinesBeyondOneTurnWaitForTheirTurn() {
        var w = TimerWheel(capacity: 4, slotCount: 4, tickNs: 10)  // one turn = 40 ns
        w.schedule(0, atNs: 105)
        var popped: [Int] = []
        for t in stride(from: 0, through: 104, by: 3) { w.advance(toNs: Nanoseconds(t)) { popped.append($0) } }
        #expect(popped.isEmpty)
        w.advance(toNs: 105) { popped.append($0) }
        #expect(popped == [0])
    }

    @Test func aLongJumpPopsEverythingDue() {
        var w = TimerWheel(capacity: 100, slotCount: 8, tickNs: 10)
        for i in 0..<100 { w.schedule(i, atNs: Nanoseconds(i * 37)) }
        var popped = Set<Int>()
        w.advance(toNs: 10_000) { popped.insert($0) }
        #expect(popped.count == 100)
        #expect(w.count == 0)
    }

    @Test func cancelAndRescheduleMoveTheDeadline() {
        var w = TimerWheel(capacity: 4, slotCount: 16, tickNs: 10)
        w.schedule(3, atNs: 50)
        w.schedule(3, atNs: 200)
        var popped: [Int] = []
        w.advance(toNs: 100) { popped.append($0) }
        #expect(popped.isEmpty)
        w.cancel(3)
        w.advance(toNs: 300) { popped.append($0) }
        #expect(popped.isEmpty)
        #expect(!w.isScheduled(3))
    }

    @Test func pastDeadlinesFireAtTheNextAdvance() {
        var w = TimerWheel(capacity: 4, slotCount: 16, tickNs: 10)
        w.advance(toNs: 500) { _ in }
        w.schedule(1, atNs: 100)
        var popped: [Int] = []
        w.advance(toNs: 500) { popped.append($0) }
        #expect(popped == [1])
    }

    @Test func nextDeadlineIsTheEarliest() {
        var w = TimerWheel(capacity: 8, slotCount: 8, tickNs: 10)
        let none = w.nextDeadlineNs()
        #expect(none == Time.never)
        w.schedule(0, atNs: 1_000)  // beyond one turn
        w.schedule(1, atNs: 33)
        let first = w.nextDeadlineNs()
        #expect(first == 33)
        w.cancel(1)
        let second = w.nextDeadlineNs()
        #expect(second == 1_000)
    }

    @Test func aBurstInOneSlotPopsInDeadlineOrderEachExactlyWhenDue() {
        var w = TimerWheel(capacity: 300, slotCount: 4, tickNs: 1_000)
        var rng: UInt64 = 9
        var deadlines: [Nanoseconds] = []
        for id in 0..<300 {
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            let d = Nanoseconds(1_000 + (rng >> 33) % 1_000)   // all in the tick [1000, 2000)
            deadlines.append(d)
            w.schedule(id, atNs: d)
        }
        w.schedule(299, atNs: 1_000 + 4 * 1_000 + 7)          // same slot, next turn
        deadlines[299] = 5_007
        var popped: [Int] = []
        for now in Nanoseconds(0)...6_000 {
            w.advance(toNs: now) { id in
                #expect(deadlines[id] == now, "id \(id) due at \(deadlines[id]) popped at \(now)")
                popped.append(id)
            }
        }
        #expect(popped.count == 300)
        #expect(popped.map { deadlines[$0] } == popped.map { deadlines[$0] }.sorted())
    }

    @Test func matchesASortedModelOnRandomOperations() {
        for (slots, tick) in [(16, Nanoseconds(7)), (2, Nanoseconds(200))] {
            var w = TimerWheel(capacity: 64, slotCount: slots, tickNs: tick)
            var model: [Int: Nanoseconds] = [:]
            var rng: UInt64 = 42
            func next() -> UInt64 { rng = rng &* 6364136223846793005 &+ 1442695040888963407; return rng >> 33 }
            var now: Nanoseconds = 0
            for _ in 0..<5_000 {
                let id = Int(next() % 64)
                switch next() % 3 {
                case 0: let d = now + Nanoseconds(next() % 500); w.schedule(id, atNs: d); model[id] = d
                case 1: w.cancel(id); model[id] = nil
                default:
                    now += Nanoseconds(next() % 60)
                    var popped = Set<Int>()
                    w.advance(toNs: now) { popped.insert($0) }
                    let expected = Set(model.filter { $0.value <= now }.keys)
                    #expect(popped == expected)
                    for id in expected { model[id] = nil }
                    let nextNs = w.nextDeadlineNs()
                    #expect(nextNs == (model.values.min() ?? Time.never))
                }
            }
        }
    }
}

@Suite struct KeyIndexTests {
    @Test func findsWhatWasSetAndForgetsWhatWasRemoved() {
        var index = KeyIndex(capacity: 100)
        for k in 0..<100 { let stored = index.set(UInt64(k) * 1_000_003, k); #expect(stored) }
        for k in 0..<100 { #expect(index.find(UInt64(k) * 1_000_003) == k) }
        for k in stride(from: 0, to: 100, by: 2) { index.remove(UInt64(k) * 1_000_003) }
        for k in 0..<100 { #expect(index.find(UInt64(k) * 1_000_003) == (k % 2 == 0 ? nil : k)) }
        #expect(index.count == 50)
    }

    @Test func matchesADictionaryOnRandomOperations() {
        var index = KeyIndex(capacity: 256)
        var model: [UInt64: Int] = [:]
        var rng: UInt64 = 7
        for i in 0..<20_000 {
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            let key = (rng >> 40) % 300
            if rng & 1 == 0 || model.count >= 256 { index.remove(key); model[key] = nil } else { index.set(key, i); model[key] = i }
            #expect(index.find(key) == model[key])
        }
        for (k, v) in model { #expect(index.find(k) == v) }
        #expect(index.count == model.count)
    }

    @Test func refusesWhenFull() {
        var index = KeyIndex(capacity: 4)  // 16 slots, half may fill
        var accepted = 0
        for k in 0..<20 where index.set(UInt64(k), k) { accepted += 1 }
        #expect(accepted == 8)
    }
}
