// Memory pinning: mlockall and its explained failure, VmLck/VmRSS, malloc tuning, prefaulting.
import Glibc
import KeelLinux
import Testing

/// The bytes of this process's mappings with no access rights (PROT_NONE), from /proc/self/maps.
private func inaccessibleMappingBytes() -> UInt64 {
    guard let file = fopen("/proc/self/maps", "r") else { return 0 }
    defer { fclose(file) }
    var total: UInt64 = 0
    var line = [CChar](repeating: 0, count: 4096)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let fields = text.split(separator: " ")
        guard fields.count >= 2, fields[1].hasPrefix("---") else { continue }
        let range = fields[0].split(separator: "-")
        guard range.count == 2, let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16) else { continue }
        total += end - start
    }
    return total
}

@Suite("Process memory", .serialized)
struct ProcessMemoryTests {
    @Test("lockAll as root locks the resident set: VmLck less inaccessible reservations is close to VmRSS")
    func lockAllLocksResidentSet() {
        let report = runInProcessChild { log in
            do {
                try MemoryDiscipline.tuneMalloc()
                let before = try MemoryDiscipline.lockedMemory()
                log.note("beforeLocked", "\(before.lockedBytes)")
                log.note("beforeResident", "\(before.residentBytes)")
                log.check(before.lockedBytes == 0, "locked before mlockall: \(before.lockedBytes)")
                try MemoryDiscipline.lockAll()
                let after = try MemoryDiscipline.lockedMemory()
                log.note("afterLocked", "\(after.lockedBytes)")
                log.note("afterResident", "\(after.residentBytes)")
                // VmLck counts whole locked mappings, including the inaccessible (PROT_NONE)
                // reservations this child inherited from the multi-threaded test runner: the unused
                // tails of its malloc arenas and the guard pages of its threads' stacks. Those have
                // no pages to fault in. Everything else must now be resident and locked.
                let reserved = inaccessibleMappingBytes()
                log.note("inaccessibleLocked", "\(reserved)")
                log.check(after.lockedBytes >= after.residentBytes, "VmLck \(after.lockedBytes) below VmRSS \(after.residentBytes)")
                let accessibleLocked = after.lockedBytes - min(reserved, after.lockedBytes)
                log.check(accessibleLocked >= after.residentBytes * 9 / 10, "accessible locked \(accessibleLocked) far below VmRSS \(after.residentBytes)")
                log.check(accessibleLocked <= after.residentBytes * 11 / 10, "accessible locked \(accessibleLocked) far above VmRSS \(after.residentBytes)")
            } catch {
                log.fail("\(error)")
            }
        }
        #expect(report.passed, "\(report)")
    }

    @Test("lockAll under an 8 MiB RLIMIT_MEMLOCK without CAP_IPC_LOCK names the limit, the capability and the remedy")
    func lockAllExplainsRlimit() {
        let report = runInProcessChild { log in
            processChildSetLimit(__RLIMIT_MEMLOCK, 8 << 20, log)
            processChildBecomeNobody(log)
            do throws(MemoryLockError) {
                try MemoryDiscipline.lockAll()
                log.fail("mlockall succeeded without CAP_IPC_LOCK")
            } catch {
                log.check(error.errno == ENOMEM || error.errno == EPERM, "errno \(error.errno)")
                log.check(error.memlockLimitBytes == 8 << 20, "limit \(String(describing: error.memlockLimitBytes))")
                log.check(error.hasIPCLock == false, "hasIPCLock \(String(describing: error.hasIPCLock))")
                log.check(error.isLimitedByRlimit, "not attributed to the limit")
                let text = error.description
                log.note("message", text)
                log.check(text.hasPrefix("mlockall failed: RLIMIT_MEMLOCK is 8 MiB"), "message: \(text)")
                log.check(text.contains("and the process lacks CAP_IPC_LOCK; run with LimitMEMLOCK=infinity or pass --allow-unpinned"), "message: \(text)")
            }
            log.check((try? MemoryDiscipline.lockedMemory().lockedBytes) == 0, "something was locked")
        }
        #expect(report.passed, "\(report)")
    }

    @Test("MemoryLockError says out of memory when the process holds CAP_IPC_LOCK")
    func lockErrorWithCapabilityBlamesMemory() {
        let error = MemoryLockError(errno: ENOMEM, memlockLimitBytes: 8 << 20, hasIPCLock: true, residentBytes: 20 << 20)
        #expect(!error.isLimitedByRlimit)
        #expect(error.description.contains("the kernel could not lock the resident set (resident set 20 MiB)"))
        #expect(error.description.contains("the process holds CAP_IPC_LOCK"))
    }

    @Test("lockedMemory reports VmLck and VmRSS in bytes")
    func lockedMemoryReadsStatus() throws {
        let memory = try MemoryDiscipline.lockedMemory()
        #expect(memory.residentBytes > 1 << 20)
        #expect(memory.residentBytes % 1024 == 0)
        #expect(memory.lockedBytes % 1024 == 0)
    }

    @Test("ProcessStatus reads kB fields as bytes and CapEff bits")
    func processStatusParsesFields() {
        let status = ProcessStatus(text: "Name:\tkeeld\nVmLck:\t   16384 kB\nVmRSS:\t   20480 kB\nCapEff:\t0000000000804000\nSeccomp:\t2\n")
        #expect(status.bytes(of: "VmLck") == 16384 * 1024)
        #expect(status.bytes(of: "VmRSS") == 20480 * 1024)
        #expect(status.bytes(of: "VmPin") == nil)
        #expect(status.value(of: "Name") == "keeld")
        #expect(status.hasEffective(.ipcLock) == true)
        #expect(status.hasEffective(.sysNice) == true)
        #expect(status.hasEffective(.sysResource) == false)
    }

    @Test("after tuneMalloc a large allocation comes from the heap, not from mmap")
    func tuneMallocStopsMmap() {
        let report = runInProcessChild { log in
            // The child inherits the test runner's malloc state: a raised dynamic mmap threshold
            // (up to 32 MiB) and free chunks big enough to serve a request without mmap. So the
            // probe grows until an untuned allocation is mmapped, which proves the statistic sees
            // mmap at all; the same size must then come from the heap once tuned.
            var size = 0
            for candidate in [40 << 20, 96 << 20, 192 << 20, 384 << 20] {
                let before = MemoryDiscipline.mallocStatistics().mappedRegions
                let probe = malloc(candidate)
                let after = MemoryDiscipline.mallocStatistics().mappedRegions
                free(probe)
                if after == before + 1 { size = candidate; break }
            }
            log.check(size > 0, "no untuned allocation up to 384 MiB was mmapped: the statistic sees no mmap")
            guard size > 0 else { return }
            do {
                try MemoryDiscipline.tuneMalloc()
            } catch {
                log.fail("\(error)")
            }
            let before = MemoryDiscipline.mallocStatistics()
            let tuned = malloc(size)
            let after = MemoryDiscipline.mallocStatistics()
            log.check(after.mappedRegions == before.mappedRegions, "tuned mapped regions \(before.mappedRegions) -> \(after.mappedRegions) for \(size >> 20) MiB")
            log.check(after.heapBytes >= before.heapBytes + UInt64(size) || after.inUseBytes >= before.inUseBytes + UInt64(size), "the heap did not serve it")
            free(tuned)
        }
        #expect(report.passed, "\(report)")
    }

    @Test("during start-up 1 MiB buffers have mappings of their own and freeing them leaves the heap as it was")
    func startUpBuffersDoNotSwellTheHeap() {
        let report = runInProcessChild { log in
            // glibc raises its mmap threshold (up to 32 MiB) each time a mapped chunk is freed:
            // raise it to 8 MiB here, so that without the start-up tuning 1 MiB buffers would come
            // from the heap and raise its top.
            free(malloc(8 << 20))
            do {
                try MemoryDiscipline.tuneMallocForStartUp()
            } catch {
                log.fail("\(error)")
            }
            let before = MemoryDiscipline.mallocStatistics()
            // 256 of them (not touched, so cheap): far more than the free chunks a child of the
            // (parallel) test runner inherits could serve.
            var buffers: [UnsafeMutableRawPointer] = []
            buffers.reserveCapacity(256)
            for _ in 0..<256 { buffers.append(malloc(1 << 20)!) }
            let during = MemoryDiscipline.mallocStatistics()
            for buffer in buffers { free(buffer) }
            let after = MemoryDiscipline.mallocStatistics()
            // Some may reuse free chunks the child inherited from the test runner's heap.
            log.check(during.mappedRegions >= before.mappedRegions + 192, "mapped regions \(before.mappedRegions) -> \(during.mappedRegions) for 256 buffers")
            log.check(after.mappedRegions == before.mappedRegions, "mappings not returned: \(before.mappedRegions) -> \(after.mappedRegions)")
            log.check(after.heapBytes <= before.heapBytes + (64 << 20), "heap \(before.heapBytes) -> \(after.heapBytes)")
        }
        #expect(report.passed, "\(report)")
    }

    @Test("after tuneMalloc freed heap memory is kept, not trimmed")
    func tuneMallocStopsTrim() {
        let report = runInProcessChild { log in
            do {
                try MemoryDiscipline.tuneMalloc()
            } catch {
                log.fail("\(error)")
            }
            let block = malloc(16 << 20)!
            memset(block, 1, 16 << 20)
            let grown = MemoryDiscipline.mallocStatistics().heapBytes
            free(block)
            let afterFree = MemoryDiscipline.mallocStatistics().heapBytes
            log.check(grown >= 16 << 20, "heap \(grown)")
            log.check(afterFree == grown, "heap trimmed from \(grown) to \(afterFree)")
        }
        #expect(report.passed, "\(report)")
    }

    @Test("prefault makes every page of a fresh mapping resident and leaves it unchanged")
    func prefaultPopulatesPages() throws {
        let pageBytes = Int(sysconf(Int32(_SC_PAGESIZE)))
        let pages = 64
        let mapping = mmap(nil, pages * pageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        try #require(mapping != nil && mapping != UnsafeMutableRawPointer(bitPattern: -1))
        defer { munmap(mapping, pages * pageBytes) }
        var residency = [UInt8](repeating: 0, count: pages)
        #expect(mincore(mapping, pages * pageBytes, &residency) == 0)
        #expect(residency.allSatisfy { $0 & 1 == 0 })
        MemoryDiscipline.prefault(UnsafeMutableRawBufferPointer(start: mapping, count: pages * pageBytes))
        #expect(mincore(mapping, pages * pageBytes, &residency) == 0)
        #expect(residency.allSatisfy { $0 & 1 == 1 })
        let bytes = UnsafeRawBufferPointer(start: mapping, count: pages * pageBytes)
        #expect(bytes.allSatisfy { $0 == 0 })
    }
}
