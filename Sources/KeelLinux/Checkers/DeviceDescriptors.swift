// The checked paths' device descriptors: opened and closed by the control plane, read lock-free by
// the recovery thread, and never closed under a check that is still in flight.
import Glibc
import Synchronization
import KeelCore

/// One descriptor slot per path. The control plane installs and retires descriptors; the recovery
/// thread reads them when it starts a check. A descriptor whose path still has a check in flight
/// (an orphan stuck in the kernel) is parked and closed later by `closeRetired`, so its number can
/// never be reused under a request that still names it.
///
/// Ordering: the recovery thread claims the path's slot, then loads the descriptor; the control
/// plane clears the descriptor, then loads the slot state (both sequentially consistent). So
/// either the control plane sees the slot busy and parks the descriptor, or the recovery thread
/// sees no descriptor.
final class DeviceDescriptors: @unchecked Sendable {
    let capacity: Int
    // 0: none; else bit 63 set, block bytes in bits 32..62, the descriptor in bits 0..31.
    private let entries: UnsafeMutablePointer<Atomic<UInt64>>
    private let retired: UnsafeMutablePointer<Atomic<Int32>>

    private let memory: TableMemory
    /// Paths with usable entries; `closeRetired` and `closeAll` scan these.
    private let ready = Atomic<Int>(0)

    /// Entries reserved for `capacity` paths; none usable before `prepare`.
    init(capacity: Int, memory: TableMemory = .heap) {
        self.capacity = capacity
        self.memory = memory
        entries = memory.reserve(Atomic<UInt64>.self, count: capacity)
        retired = memory.reserve(Atomic<Int32>.self, count: capacity)
    }

    static let bytesPerPath = MemoryLayout<Atomic<UInt64>>.stride + MemoryLayout<Atomic<Int32>>.stride

    /// Commits and clears the entries of paths up to `count`.
    func prepare(upTo count: Int) {
        let old = ready.load(ordering: .relaxed), new = min(count, capacity)
        guard new > old else { return }
        memory.commit(entries, from: old, to: new)
        memory.commit(retired, from: old, to: new)
        for i in old..<new {
            (entries + i).initialize(to: Atomic(0))
            (retired + i).initialize(to: Atomic(-1))
        }
        ready.store(new, ordering: .releasing)
    }

    deinit {
        memory.release(entries, count: capacity)
        memory.release(retired, count: capacity)
    }

    @inline(__always)
    func current(_ path: Int) -> (fd: Int32, blockBytes: Int)? {
        let entry = entries[path].load(ordering: .sequentiallyConsistent)
        guard entry != 0 else { return nil }
        return (Int32(bitPattern: UInt32(truncatingIfNeeded: entry)), Int((entry >> 32) & 0x7fff_ffff))
    }

    /// Installs a new descriptor for `path`, retiring any previous one (control plane).
    func install(_ path: Int, fd: Int32, blockBytes: Int, isIdle: (Int) -> Bool) {
        retire(path, isIdle: isIdle)
        let entry = (1 << 63) | (UInt64(blockBytes) << 32) | UInt64(UInt32(bitPattern: fd))
        entries[path].store(entry, ordering: .sequentiallyConsistent)
    }

    /// Removes the descriptor of `path`: closed now if no check is in flight, else parked until
    /// `closeRetired` finds the path idle (control plane).
    func retire(_ path: Int, isIdle: (Int) -> Bool) {
        closeRetired(path, isIdle: isIdle)
        let entry = entries[path].exchange(0, ordering: .sequentiallyConsistent)
        guard entry != 0 else { return }
        let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: entry))
        if isIdle(path) {
            close(fd)
        } else {
            let previous = retired[path].exchange(fd, ordering: .sequentiallyConsistent)
            // At most one parked descriptor per path: the slot admits one check at a time, and a
            // path is refused while its orphan is out.
            if previous >= 0 { close(previous) }
        }
    }

    /// Closes parked descriptors of paths that have become idle (control plane). Returns how many
    /// are still parked.
    @discardableResult
    func closeRetired(isIdle: (Int) -> Bool) -> Int {
        var parked = 0
        for path in 0..<ready.load(ordering: .acquiring) where retired[path].load(ordering: .relaxed) >= 0 {
            if !closeRetired(path, isIdle: isIdle) { parked += 1 }
        }
        return parked
    }

    @discardableResult
    private func closeRetired(_ path: Int, isIdle: (Int) -> Bool) -> Bool {
        guard retired[path].load(ordering: .sequentiallyConsistent) >= 0 else { return true }
        guard isIdle(path) else { return false }
        let fd = retired[path].exchange(-1, ordering: .sequentiallyConsistent)
        if fd >= 0 { close(fd) }
        return true
    }

    /// Closes every descriptor whose path is idle, installed or parked (teardown). A descriptor
    /// under a check still stuck in the kernel is left open: closing it could let its number be
    /// reused under that request; it costs one descriptor per hung device until exit.
    func closeAll(isIdle: (Int) -> Bool) {
        for path in 0..<ready.load(ordering: .acquiring) where isIdle(path) {
            let entry = entries[path].exchange(0, ordering: .sequentiallyConsistent)
            if entry != 0 { close(Int32(bitPattern: UInt32(truncatingIfNeeded: entry))) }
            let fd = retired[path].exchange(-1, ordering: .sequentiallyConsistent)
            if fd >= 0 { close(fd) }
        }
    }
}
