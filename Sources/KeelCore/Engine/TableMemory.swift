// Memory for tables that grow in place: addresses reserved for a ceiling, a prefix made usable.

/// Where Keel's per-path and per-map tables get their memory. A table reserves the addresses of
/// its ceiling (`max_paths`, `max_maps`) once and commits a prefix of them as the host grows, so
/// its address never changes: a thread reading the table while another grows it needs no
/// hand-over, nothing is copied and nothing is freed until the table itself goes.
///
/// The daemon's memory (KeelLinux `PinnedTableMemory`) reserves inaccessible, unlocked pages and
/// locks each committed range, so only what the host uses is resident and pinned. `heap`
/// allocates the whole ceiling at once; tests and the simulator use it.
///
/// Committing may take time (the kernel finds and locks pages): it is done by the thread that
/// grows tables (the events thread), never by the recovery thread.
public struct TableMemory: Sendable {
    /// Reserves `bytes` of addresses, page-aligned, and returns their start.
    public let reserveBytes: @Sendable (_ bytes: Int) -> UnsafeMutableRawPointer
    /// Makes `[start, start + bytes)` of a reservation readable, writable and resident.
    public let commitBytes: @Sendable (_ start: UnsafeMutableRawPointer, _ bytes: Int) -> Void
    /// Gives a whole reservation back.
    public let releaseBytes: @Sendable (_ base: UnsafeMutableRawPointer, _ bytes: Int) -> Void

    public init(reserve: @escaping @Sendable (Int) -> UnsafeMutableRawPointer,
                commit: @escaping @Sendable (UnsafeMutableRawPointer, Int) -> Void,
                release: @escaping @Sendable (UnsafeMutableRawPointer, Int) -> Void) {
        reserveBytes = reserve
        commitBytes = commit
        releaseBytes = release
    }

    /// The whole ceiling from the heap at once, page-aligned like a mapping (O_DIRECT read
    /// buffers live in reservations); commits do nothing.
    public static let heap = TableMemory(
        reserve: { UnsafeMutableRawPointer.allocate(byteCount: max($0, 1), alignment: 4096) },
        commit: { _, _ in },
        release: { base, _ in base.deallocate() })

    /// Room for `count` elements of `type`, none of them usable until committed.
    public func reserve<T: ~Copyable>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        reserveBytes(max(count, 1) * MemoryLayout<T>.stride).bindMemory(to: T.self, capacity: max(count, 1))
    }

    /// Makes elements `from..<to` of a reservation usable (their values are not set here).
    public func commit<T: ~Copyable>(_ base: UnsafeMutablePointer<T>, from: Int, to: Int) {
        guard to > from else { return }
        commitBytes(UnsafeMutableRawPointer(base + from), (to - from) * MemoryLayout<T>.stride)
    }

    /// Gives back a reservation of `count` elements (values of trivial types need no deinit).
    public func release<T: ~Copyable>(_ base: UnsafeMutablePointer<T>, count: Int) {
        releaseBytes(UnsafeMutableRawPointer(base), max(count, 1) * MemoryLayout<T>.stride)
    }
}

/// A table of trivial records at a fixed address, reserved for `ceiling` records and usable up to
/// what its owner has committed. Indexing does no bounds check beyond the debug assertion: the
/// owner hands out indices below its committed count only.
public final class Table<Element: BitwiseCopyable>: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Element>
    public let ceiling: Int
    public let memory: TableMemory

    public init(ceiling: Int, memory: TableMemory) {
        self.ceiling = max(ceiling, 1)
        self.memory = memory
        base = memory.reserve(Element.self, count: self.ceiling)
    }

    deinit { memory.release(base, count: ceiling) }

    /// Commits records `from..<to` and sets each to `value`.
    public func prepare(from: Int, to: Int, value: Element) {
        precondition(from >= 0 && to <= ceiling, "table growth past its ceiling")
        guard to > from else { return }
        memory.commit(base, from: from, to: to)
        (base + from).initialize(repeating: value, count: to - from)
    }

    @inlinable public subscript(index: Int) -> Element {
        unsafeAddress {
            assert(index >= 0 && index < ceiling, "table index out of range")
            return UnsafePointer(base + index)
        }
        unsafeMutableAddress {
            assert(index >= 0 && index < ceiling, "table index out of range")
            return base + index
        }
    }
}

/// How a host's tables are sized: from what discovery found, with headroom, never past the
/// configured ceiling; and how far they grow when more paths or maps arrive.
public enum TableSizing {
    /// Paths are never sized below this (a host that gains a few paths does not grow at once).
    public static let pathsFloor = 64
    /// Maps are never sized below this.
    public static let mapsFloor = 16

    /// The capacity for `needed` entries: twice that, rounded up to a power of two, at least
    /// `floor`, at most `ceiling`.
    public static func capacity(for needed: Int, floor: Int, ceiling: Int) -> Int {
        var size = max(floor, 1)
        while size < needed * 2 && size < ceiling { size <<= 1 }
        return min(size, ceiling)
    }
}
