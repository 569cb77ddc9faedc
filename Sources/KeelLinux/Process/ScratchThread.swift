// A short-lived helper thread whose stack is its own mapping, unmapped when the thread is joined.
import Glibc
import CKeelShim

/// A thread for start-up work (discovery) whose stack goes back to the kernel when it is joined.
///
/// Why not a plain pthread: glibc keeps the stacks of ended threads for reuse, and whatever it
/// keeps at `mlockall` time is pinned for the daemon's life (or handed to a later thread that
/// asked for less). A stack given with `pthread_attr_setstack` is never kept: it is mapped here,
/// with a guard page below it, and unmapped by `join`.
public final class ScratchThread {
    private var handle = pthread_t()
    private let stack: UnsafeMutableRawPointer
    private let mappedBytes: Int
    private var joined = false

    /// Starts `body` on a thread with a `stackBytes` stack (rounded up to whole pages). The
    /// corresponding C functions are `mmap`, `pthread_attr_setstack` and `pthread_create`.
    public init(name: String, stackBytes: Int, body: @escaping @Sendable () -> Void) throws(SystemError) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let usable = (max(stackBytes, Int(PTHREAD_STACK_MIN)) + page - 1) / page * page
        mappedBytes = usable + page
        guard let mapped = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0),
              mapped != MAP_FAILED else { throw SystemError("mmap", errno: errno) }
        stack = mapped
        // The lowest page is the guard: an overflow faults instead of writing over other memory.
        _ = mprotect(mapped, page, PROT_NONE)
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        var result = pthread_attr_setstack(&attributes, mapped + page, usable)
        let start = ScratchStart(name: name, body: body)
        let argument = Unmanaged.passRetained(start).toOpaque()
        if result == 0 {
            result = pthread_create(&handle, &attributes, scratchThreadMain, argument)
        }
        guard result == 0 else {
            Unmanaged<ScratchStart>.fromOpaque(argument).release()
            munmap(mapped, mappedBytes)
            throw SystemError("pthread_create", errno: result)
        }
    }

    /// Waits for the thread to end, then unmaps its stack. Call once.
    public func join() {
        guard !joined else { return }
        joined = true
        pthread_join(handle, nil)
        munmap(stack, mappedBytes)
    }

    deinit { join() }
}

extension ScratchThread {
    /// Splits `0..<count` into `slices` strided slices (slice s takes s, s + slices, ...) and runs
    /// `slice` on each: slice 0 on the calling thread, every other on a scratch thread of its own
    /// (on the calling thread when that thread cannot be made). `slice` returns one result per index
    /// it is given, in order; the results come back in index order, after every thread is joined.
    public static func stridedMap<T>(count: Int, slices: Int, name: String, stackBytes: Int,
                                     _ slice: @escaping @Sendable (_ indices: [Int]) -> [T]) -> [T] {
        let n = max(1, min(slices, count))
        let indices = (0..<n).map { Array(stride(from: $0, to: count, by: n)) }
        let boxes = (0..<n).map { _ in StridedResults<T>() }
        var spawned: [ScratchThread] = []
        for s in 1..<n {
            let box = boxes[s], mine = indices[s]
            if let thread = try? ScratchThread(name: name, stackBytes: stackBytes, body: { box.results = slice(mine) }) {
                spawned.append(thread)
            } else {
                box.results = slice(mine)
            }
        }
        boxes[0].results = slice(indices[0])
        for thread in spawned { thread.join() }
        var results: [T] = []
        results.reserveCapacity(count)
        for i in 0..<count { results.append(boxes[i % n].results[i / n]) }
        return results
    }
}

private final class StridedResults<T>: @unchecked Sendable {
    var results: [T] = []
}

private final class ScratchStart {
    let name: [CChar]
    let body: @Sendable () -> Void
    init(name: String, body: @escaping @Sendable () -> Void) {
        self.name = Array(name.utf8.prefix(15)).map { CChar(bitPattern: $0) } + [0]
        self.body = body
    }
}

private func scratchThreadMain(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let start = Unmanaged<ScratchStart>.fromOpaque(argument!).takeRetainedValue()
    start.name.withUnsafeBufferPointer { _ = keel_process_set_thread_name(pthread_self(), $0.baseAddress!) }
    start.body()
    return nil
}
