// How deep a thread's stack has ever gone: the stack is painted when the thread starts, and the
// paint still untouched at its bottom is what was never used.
import Glibc
import CKeelShim
import Synchronization

/// A thread's stack high-water mark.
///
/// Why: every stack of the pinned daemon is locked whole (MCL_FUTURE), so a stack sized with a
/// wide margin costs pinned memory on every host, and one sized too tight overflows into its
/// guard page and kills the daemon. The size has to come from measurement; this is the
/// measurement, exposed to the operator (`show daemon`, `keel_thread_stack_used_bytes`).
///
/// `paintCallingThread` runs once, first thing on the thread it watches; `usage` may be read from
/// any thread. The mark is a lower bound: a frame that reserves stack it never writes leaves
/// paint behind.
public final class StackWatermark: Sendable {
    /// The thread's name, for the operator.
    public let name: String
    private let low = Atomic<UInt>(0)
    private let high = Atomic<UInt>(0)

    public init(name: String) {
        self.name = name
    }

    /// Finds the calling thread's stack and paints everything below the caller's frame. Cost:
    /// one write per 8 bytes of stack, once. The corresponding C function is
    /// `pthread_getattr_np`.
    public func paintCallingThread() {
        var bottom: UInt = 0
        var top: UInt = 0
        guard keel_process_stack_bounds(&bottom, &top) == 0, top > bottom else { return }
        keel_process_paint_stack(bottom)
        low.store(bottom, ordering: .relaxed)
        high.store(top, ordering: .releasing)
    }

    /// Called last on the watched thread: its stack may be reused once it ends.
    public func forget() {
        high.store(0, ordering: .releasing)
    }

    /// The stack's size and the most of it ever used (thread descriptor and TLS at its top
    /// included); nil before the thread has painted its stack.
    public var usage: (usedBytes: Int, stackBytes: Int)? {
        let top = high.load(ordering: .acquiring)
        let bottom = low.load(ordering: .relaxed)
        guard top > bottom else { return nil }
        let untouched = keel_process_stack_untouched(bottom, top)
        return (Int(top - bottom) - untouched, Int(top - bottom))
    }
}
