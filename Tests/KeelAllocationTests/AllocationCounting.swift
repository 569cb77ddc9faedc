// Counts the malloc calls a piece of code makes, for the zero-allocation tests, and proves the counter counts.

import CKeelMallocCounter
import Glibc
import Testing

/// Runs `body` once uncounted, then `iterations` times with counting on, and returns the number
/// of allocation calls (malloc, calloc, realloc, posix_memalign, ...) the calling thread made
/// meanwhile.
///
/// The uncounted first run absorbs one-time costs (lazy globals, metadata, first-touch caches)
/// that are not per-iteration allocations.
///
/// Only the calling thread is counted: the test runner's threads allocate at moments of their
/// own (4 stray mallocs showed up in a measured region at a test boundary). So `body` must do
/// its work on the calling thread (the code under test here does). The counter is the test
/// bundle's own malloc (CKeelMallocCounter), process-wide: run these tests alone, as Tools/test
/// does (`swift test -c release --no-parallel --filter KeelAllocationTests`).
func mallocCount(iterations: Int, _ body: () -> Void) -> Int {
    precondition(iterations >= 1, "mallocCount needs at least one iteration")
    body()
    keel_malloc_counter_begin()
    for _ in 0..<iterations {
        body()
    }
    let mallocs = Int(keel_malloc_counter_end())
    // This thread's count is part of the process-wide one; anything else means the counter is
    // broken and cannot be trusted.
    precondition(mallocs <= Int(keel_malloc_counter_process_total()), "thread count above the process total")
    return mallocs
}

/// Allocation calls of every thread during the last `mallocCount`.
func processMallocsOfLastCount() -> Int { Int(keel_malloc_counter_process_total()) }

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

    @Test("threads that allocate and exit leave the heap and the counter intact")
    func exitingThreadsDoNotCorruptTheHeap() {
        // The failure this guards against: a counter that kept per-thread blocks freed them in a
        // TSD destructor and then counted the thread's later frees into the freed block.
        for _ in 0..<200 {
            var thread = pthread_t()
            let created = pthread_create(&thread, nil, { _ in
                var blocks: [UnsafeMutableRawPointer?] = []
                for size in [16, 256, 4096, 70_000] { blocks.append(malloc(size)) }
                for block in blocks { free(block) }
                return nil
            }, nil)
            #expect(created == 0)
            pthread_join(thread, nil)
        }
        let sink = ObjectSink()
        let mallocs = mallocCount(iterations: 1000) { sink.object = EscapingObject(value: 1) }
        #expect(mallocs >= 1000 && mallocs <= 1010)
        // A heap damaged by the exiting threads fails here, in malloc's own consistency checks.
        for size in stride(from: 16, to: 200_000, by: 997) { free(malloc(size)) }
    }
}
