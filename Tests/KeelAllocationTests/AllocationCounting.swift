// Counts the malloc calls a piece of code makes, for the zero-allocation tests, and proves the counter counts.

import Glibc
import MallocInterposerSwift
import Synchronization
import Testing

/// The thread whose mallocs are being counted; 0 while nothing is measured.
private let measuredThread = Atomic<UInt>(0)
/// Mallocs made by `measuredThread` since the measurement began.
private let measuredThreadMallocs = Atomic<Int>(0)

/// Called by the interposer, on the allocating thread, for every malloc it counts. It must not
/// allocate: the interposer would call it again from inside itself.
private func countMallocOnMeasuredThread(_ size: Int) {
    if pthread_equal(pthread_self(), pthread_t(measuredThread.load(ordering: .relaxed))) != 0 {
        measuredThreadMallocs.wrappingAdd(1, ordering: .relaxed)
    }
}

/// Runs `body` once uncounted, then `iterations` times with counting on, and returns the number
/// of malloc calls (malloc, calloc, realloc, posix_memalign, ...) the calling thread made
/// meanwhile.
///
/// The uncounted first run absorbs one-time costs (lazy globals, metadata, first-touch caches)
/// that are not per-iteration allocations.
///
/// Only the calling thread is counted. The interposer's own totals cover every thread, and the
/// test runner's threads allocate at moments of their own: 4 stray mallocs showed up in a
/// measured region at a test boundary, under `--no-parallel` and `.serialized`. So `body` must
/// do its work on the calling thread (the code under test here does). The interposer is
/// process-wide all the same: run these tests alone, as Tools/test does
/// (`swift test -c release --no-parallel --filter KeelAllocationTests`).
func mallocCount(iterations: Int, _ body: () -> Void) -> Int {
    precondition(iterations >= 1, "mallocCount needs at least one iteration")
    body()
    measuredThreadMallocs.store(0, ordering: .relaxed)
    measuredThread.store(UInt(pthread_self()), ordering: .relaxed)
    MallocInterposerSwift.setAllocationHook(countMallocOnMeasuredThread)
    // hook() only switches counting on; reset() starts the totals from zero.
    MallocInterposerSwift.reset()
    MallocInterposerSwift.hook()
    for _ in 0..<iterations {
        body()
    }
    MallocInterposerSwift.unhook()
    MallocInterposerSwift.setAllocationHook(nil)
    measuredThread.store(0, ordering: .relaxed)
    let mallocs = measuredThreadMallocs.load(ordering: .relaxed)
    // This thread's count is part of the process-wide one; anything else means the hook and the
    // counters disagree and neither can be trusted.
    precondition(mallocs <= MallocInterposerSwift.getStatistics().mallocCount, "malloc hook counted more than the interposer")
    return mallocs
}

/// An object that outlives the closure that creates it, so it cannot be stack-promoted.
private final class EscapingObject {
    let value: Int
    init(value: Int) { self.value = value }
}

/// Somewhere for objects to escape to.
private final class ObjectSink {
    var object: EscapingObject?
}

/// The counter itself, checked in both directions: a counter that counts nothing would let
/// every zero-allocation test pass, and one that picks up the test runner's own allocations
/// would make them fail for the wrong reason.
@Suite("malloc counter", .serialized)
struct AllocationCounterTests {
    @Test("the counter sees every escaping object allocation")
    func counterSeesEscapingAllocations() {
        let sink = ObjectSink()
        var next = 0
        let mallocs = mallocCount(iterations: 1000) {
            next += 1
            sink.object = EscapingObject(value: next)
        }
        #expect(sink.object?.value == 1001)
        // One malloc per object; a little room in case the runtime adds one of its own.
        #expect(mallocs >= 1000)
        #expect(mallocs <= 1010)
    }

    @Test("the counter reports nothing for code that does not allocate")
    func counterQuietForEmptyBody() {
        var total = 0
        let mallocs = mallocCount(iterations: 1_000_000) {
            total &+= 1
        }
        #expect(total == 1_000_001)
        #expect(mallocs == 0)
    }
}
