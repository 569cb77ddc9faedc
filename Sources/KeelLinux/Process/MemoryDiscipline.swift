// Pinning the daemon's memory: malloc tuning, prefaulting, mlockall with an explained failure, VmLck.
import Glibc
import CKeelShim

/// A mallopt value glibc refused.
public struct MallocTuningError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The mallopt parameter, e.g. "M_ARENA_MAX".
    public var parameter: StaticString
    /// The value that was refused.
    public var value: Int32

    public init(parameter: StaticString, value: Int32) {
        self.parameter = parameter
        self.value = value
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.value == b.value && a.parameter.description == b.parameter.description
    }

    public var description: String { "mallopt(\(parameter), \(value)) was refused by glibc" }
}

/// Why `mlockall` failed, with the facts that explain it: the memlock limit, whether the process
/// holds CAP_IPC_LOCK, and how much it tried to lock.
public struct MemoryLockError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The errno of mlockall (EPERM, ENOMEM, EINVAL, EAGAIN).
    public var errno: Int32
    /// The soft RLIMIT_MEMLOCK in bytes; nil when unlimited.
    public var memlockLimitBytes: UInt64?
    /// Whether CAP_IPC_LOCK is effective; nil when /proc/self/status could not be read.
    public var hasIPCLock: Bool?
    /// VmRSS when the call failed; nil when unknown.
    public var residentBytes: UInt64?

    public init(errno: Int32, memlockLimitBytes: UInt64?, hasIPCLock: Bool?, residentBytes: UInt64?) {
        self.errno = errno
        self.memlockLimitBytes = memlockLimitBytes
        self.hasIPCLock = hasIPCLock
        self.residentBytes = residentBytes
    }

    /// True when the limit, not the kernel's memory, stopped the lock: no CAP_IPC_LOCK and a finite
    /// RLIMIT_MEMLOCK.
    public var isLimitedByRlimit: Bool {
        (errno == EPERM || errno == ENOMEM) && hasIPCLock == false && memlockLimitBytes != nil
    }

    /// One line for the log, naming the cause and the two ways out.
    public var description: String {
        let remedy = "run with LimitMEMLOCK=infinity or pass --allow-unpinned"
        let resident = residentBytes.map { " (resident set \(ProcessText.bytes($0)))" } ?? ""
        if isLimitedByRlimit, let limit = memlockLimitBytes {
            return "mlockall failed: RLIMIT_MEMLOCK is \(ProcessText.bytes(limit))\(resident) and the process lacks CAP_IPC_LOCK; \(remedy)"
        }
        if errno == ENOMEM {
            let limit = memlockLimitBytes.map { "RLIMIT_MEMLOCK is \(ProcessText.bytes($0))" } ?? "RLIMIT_MEMLOCK is unlimited"
            let capability = hasIPCLock == true ? "the process holds CAP_IPC_LOCK" : "CAP_IPC_LOCK is unknown"
            return "mlockall failed (ENOMEM): the kernel could not lock the resident set\(resident) although \(limit) and \(capability): memory is short or vm.max_map_count is reached; free memory or pass --allow-unpinned"
        }
        return "mlockall failed: \(ProcessText.errno(errno)); \(remedy)"
    }
}

/// How much of the process is locked in memory (from /proc/self/status).
public struct LockedMemory: Equatable, Sendable {
    /// VmLck in bytes: memory locked by mlock/mlockall.
    public var lockedBytes: UInt64
    /// VmRSS in bytes: memory resident now.
    public var residentBytes: UInt64

    public init(lockedBytes: UInt64, residentBytes: UInt64) {
        self.lockedBytes = lockedBytes
        self.residentBytes = residentBytes
    }
}

/// What glibc malloc holds (mallinfo2), for reports and for checking the tuning.
public struct MallocStatistics: Equatable, Sendable {
    /// Bytes the main arena obtained with brk.
    public var heapBytes: UInt64
    /// Bytes in allocations served by mmap.
    public var mappedBytes: UInt64
    /// Number of allocations served by mmap.
    public var mappedRegions: UInt64
    /// Bytes in use in the main arena.
    public var inUseBytes: UInt64
}

/// The memory side of the daemon's promise: after start-up nothing it touches can fault or wait on
/// reclaim. Call `tuneMallocForStartUp` first, allocate everything, `prefault` the big buffers,
/// then `tuneMalloc` and `lockAll`.
public enum MemoryDiscipline {
    /// The allocation size from which start-up allocations get a mapping of their own.
    public static let startUpMmapThresholdBytes: Int32 = 64 << 10

    /// Sets malloc up for start-up, before anything sizeable exists:
    /// - M_ARENA_MAX=1: threads share one arena, so locked memory stays equal to what is used
    ///   (each extra arena reserves and, under MCL_FUTURE, locks its own heap);
    /// - M_MMAP_THRESHOLD=64 KiB, fixed: a large start-up buffer (file text, discovery tables,
    ///   parse results) has a mapping of its own that goes back to the kernel when freed, instead
    ///   of raising the heap's top for good; `lockAll` pins the heap's whole extent, holes
    ///   included, so a heap swollen by start-up garbage would stay pinned.
    public static func tuneMallocForStartUp() throws(MallocTuningError) {
        if keel_process_mallopt(KEEL_MALLOC_ARENA_MAX, 1) != 1 {
            throw MallocTuningError(parameter: "M_ARENA_MAX", value: 1)
        }
        if keel_process_mallopt(KEEL_MALLOC_MMAP_THRESHOLD, startUpMmapThresholdBytes) != 1 {
            throw MallocTuningError(parameter: "M_MMAP_THRESHOLD", value: startUpMmapThresholdBytes)
        }
    }

    /// Sets malloc up for a pinned process (just before `lockAll`):
    /// - M_ARENA_MAX=1 (as at start-up);
    /// - M_MMAP_MAX=0: no allocation gets a fresh mmap that would be faulted in and locked later;
    /// - M_TRIM_THRESHOLD=-1: freed memory is never given back, so it need not be faulted again.
    /// The corresponding C function is `mallopt`.
    public static func tuneMalloc() throws(MallocTuningError) {
        if keel_process_mallopt(KEEL_MALLOC_ARENA_MAX, 1) != 1 {
            throw MallocTuningError(parameter: "M_ARENA_MAX", value: 1)
        }
        if keel_process_mallopt(KEEL_MALLOC_MMAP_MAX, 0) != 1 {
            throw MallocTuningError(parameter: "M_MMAP_MAX", value: 0)
        }
        if keel_process_mallopt(KEEL_MALLOC_TRIM_THRESHOLD, -1) != 1 {
            throw MallocTuningError(parameter: "M_TRIM_THRESHOLD", value: -1)
        }
    }

    /// mallinfo2() now.
    public static func mallocStatistics() -> MallocStatistics {
        let s = keel_process_malloc_statistics()
        return MallocStatistics(heapBytes: s.heap_bytes, mappedBytes: s.mapped_bytes, mappedRegions: s.mapped_regions, inUseBytes: s.in_use_bytes)
    }

    /// Touches every page of `buffer` (writing back the byte already there), so each page is
    /// resident before the recovery thread needs it. Contents are unchanged.
    public static func prefault(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let start = buffer.baseAddress, buffer.count > 0 else { return }
        keel_process_prefault(start, buffer.count, Int(sysconf(Int32(_SC_PAGESIZE))))
    }

    /// Locks every current and future page of the process in memory. The corresponding C
    /// function is `mlockall(MCL_CURRENT|MCL_FUTURE)`.
    ///
    /// On failure the error carries RLIMIT_MEMLOCK, CAP_IPC_LOCK and VmRSS so its description
    /// says why and what to change.
    public static func lockAll() throws(MemoryLockError) {
        // Start-up's garbage (configuration text, the parsed hardware table, discovery's strings)
        // went back to malloc: return the free top of the heap to the kernel first, so that
        // MCL_CURRENT does not pin it.
        _ = keel_process_malloc_trim(0)
        do {
            _ = try systemCall("mlockall") { mlockall(MCL_CURRENT | MCL_FUTURE) }
        } catch {
            let status = try? ProcessStatus.read()
            throw MemoryLockError(
                errno: error.errno,
                memlockLimitBytes: ResourceLimits.memlockBytes(),
                hasIPCLock: status?.hasEffective(.ipcLock),
                residentBytes: status?.bytes(of: "VmRSS")
            )
        }
    }

    /// Unlocks every page (`munlockall`): for tests and for an operator-requested unpinned mode.
    public static func unlockAll() throws(SystemError) {
        _ = try systemCall("munlockall") { munlockall() }
    }

    /// VmLck and VmRSS of this process, in bytes.
    public static func lockedMemory() throws(SystemError) -> LockedMemory {
        let status = try ProcessStatus.read()
        guard let locked = status.bytes(of: "VmLck"), let resident = status.bytes(of: "VmRSS") else {
            throw SystemError("read(/proc/self/status VmLck, VmRSS)", errno: EINVAL)
        }
        return LockedMemory(lockedBytes: locked, residentBytes: resident)
    }
}
