// Growable tables in the daemon: addresses reserved without memory, ranges committed and locked.
import Glibc
import Synchronization
import CKeelShim
import KeelCore

/// keeld's `TableMemory`. A reservation is an anonymous `PROT_NONE` mapping that is not locked
/// (`munlock` right after `mmap`, since `mlockall(MCL_FUTURE)` would lock it), so it costs no
/// memory and does not count in VmLck. A commit makes a page range readable and writable and
/// `mlock`s it, which faults it in: committed pages are resident and pinned before the recovery
/// thread may touch them, and nothing else is.
///
/// `mlockall(MCL_CURRENT)` marks every mapping locked, reservations included; `unlockUncommitted`
/// undoes that for the parts not committed (keeld calls it right after `mlockall`).
public enum PinnedTableMemory {
    /// The provider tables are given.
    public static let memory = TableMemory(reserve: reserve, commit: commit, release: release)

    /// Bytes committed over all reservations.
    public static var committedBytes: Int { state.withLock { $0.committed } }
    /// Bytes reserved over all reservations.
    public static var reservedBytes: Int { state.withLock { $0.reservations.reduce(0) { $0 + abs($1.bytes) } } }
    /// The errno of the last `mlock` refused (0 when all were locked).
    public static var lockErrno: Int32 { state.withLock { $0.lockErrno } }

    private struct Reservation {
        var base: UInt
        /// Negative for a heap allocation made when `mmap` was refused (committed whole, by malloc).
        var bytes: Int
        /// Committed page ranges, merged: the table commits a growing prefix, directio buffers
        /// commit single pages anywhere.
        var ranges: [(start: UInt, end: UInt)]
    }

    private struct State {
        var reservations: [Reservation] = []
        var committed = 0
        var lockErrno: Int32 = 0
    }

    private static let state = Mutex(State())
    static let pageBytes = Int(sysconf(Int32(_SC_PAGESIZE)))

    private static func roundUp(_ bytes: Int) -> Int { (max(bytes, 1) + pageBytes - 1) / pageBytes * pageBytes }

    private static func reserve(_ bytes: Int) -> UnsafeMutableRawPointer {
        let length = roundUp(bytes)
        guard let base = mmap(nil, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              base != MAP_FAILED else {
            // No address space (a ulimit -v): a plain allocation, committed in full.
            let fallback = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: pageBytes)
            state.withLock { $0.reservations.append(Reservation(base: UInt(bitPattern: fallback), bytes: -length, ranges: [])) }
            return fallback
        }
        munlock(base, length)
        state.withLock { $0.reservations.append(Reservation(base: UInt(bitPattern: base), bytes: length, ranges: [])) }
        return base
    }

    private static func commit(_ start: UnsafeMutableRawPointer, _ bytes: Int) {
        guard bytes > 0 else { return }
        let first = UInt(bitPattern: start) / UInt(pageBytes) * UInt(pageBytes)
        let end = (UInt(bitPattern: start) + UInt(bytes) + UInt(pageBytes) - 1) / UInt(pageBytes) * UInt(pageBytes)
        state.withLock { state in
            guard let r = state.reservations.firstIndex(where: { first >= $0.base && first < $0.base + UInt(abs($0.bytes)) }),
                  state.reservations[r].bytes > 0 else { return }
            // Only the pages not committed yet.
            var cursor = first
            var fresh: [(UInt, UInt)] = []
            for range in state.reservations[r].ranges.sorted(by: { $0.start < $1.start }) where range.end > cursor && range.start < end {
                if range.start > cursor { fresh.append((cursor, range.start)) }
                cursor = max(cursor, range.end)
            }
            if cursor < end { fresh.append((cursor, end)) }
            for (from, to) in fresh {
                let pointer = UnsafeMutableRawPointer(bitPattern: from)!
                let length = Int(to - from)
                if mprotect(pointer, length, PROT_READ | PROT_WRITE) != 0 {
                    preconditionFailure("mprotect of a table reservation failed: errno \(errno)")
                }
                if mlock(pointer, length) != 0 {
                    // Not pinned (no CAP_IPC_LOCK, RLIMIT_MEMLOCK): still faulted in now, so the
                    // recovery thread does not take the first faults.
                    state.lockErrno = errno
                    keel_process_prefault(pointer, length, pageBytes)
                }
                state.committed += length
                state.reservations[r].ranges.append((from, to))
            }
            state.reservations[r].ranges = merged(state.reservations[r].ranges)
        }
    }

    private static func merged(_ ranges: [(start: UInt, end: UInt)]) -> [(start: UInt, end: UInt)] {
        var out: [(start: UInt, end: UInt)] = []
        for range in ranges.sorted(by: { $0.start < $1.start }) {
            if let last = out.last, range.start <= last.end {
                out[out.count - 1].end = max(last.end, range.end)
            } else {
                out.append(range)
            }
        }
        return out
    }

    private static func release(_ base: UnsafeMutableRawPointer, _ bytes: Int) {
        let address = UInt(bitPattern: base)
        let found: Reservation? = state.withLock { state in
            guard let r = state.reservations.firstIndex(where: { $0.base == address }) else { return nil }
            let reservation = state.reservations.remove(at: r)
            state.committed -= reservation.ranges.reduce(0) { $0 + Int($1.end - $1.start) }
            return reservation
        }
        guard let found else { return }
        if found.bytes < 0 { base.deallocate() } else { munmap(base, found.bytes) }
    }

    /// Unlocks every page of every reservation that is not committed: `mlockall(MCL_CURRENT)`
    /// set the lock on whole mappings, so VmLck would count the ceilings otherwise.
    public static func unlockUncommitted() {
        state.withLock { state in
            for reservation in state.reservations where reservation.bytes > 0 {
                var cursor = reservation.base
                let end = reservation.base + UInt(reservation.bytes)
                for range in reservation.ranges {
                    if range.start > cursor { munlock(UnsafeMutableRawPointer(bitPattern: cursor), Int(range.start - cursor)) }
                    cursor = max(cursor, range.end)
                }
                if cursor < end { munlock(UnsafeMutableRawPointer(bitPattern: cursor), Int(end - cursor)) }
            }
        }
    }
}
