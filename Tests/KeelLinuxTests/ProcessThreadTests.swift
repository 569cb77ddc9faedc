// Threads: explicit stacks and names, real-time scheduling as root, and the degraded SCHED_OTHER
// mode with its reasons when the kernel refuses real-time.
import Glibc
import KeelLinux
import Synchronization
import Testing

/// What a spawned thread saw of itself.
private final class ThreadObservation: Sendable {
    let scheduling = Mutex<ThreadScheduling?>(nil)
    let taskScheduling = Mutex<ThreadScheduling?>(nil)
    let name = Mutex<String?>(nil)
    let stackBytes = Atomic<Int>(0)

    /// A body that records the calling thread's view of itself.
    var recorder: @Sendable () -> Void {
        { [self] in
            scheduling.withLock { $0 = try? RealtimeThread.callingThreadScheduling() }
            taskScheduling.withLock { $0 = try? RealtimeThread.scheduling(ofTask: RealtimeThread.callingThreadTaskID()) }
            name.withLock { $0 = try? RealtimeThread.name(of: pthread_self()) }
            stackBytes.store(RealtimeThread.callingThreadStackBytes(), ordering: .relaxed)
        }
    }
}

/// Whether the calling process holds CAP_SYS_NICE.
private var hasSysNice: Bool { processEffectiveCapabilities() & (1 << 23) != 0 }

@Suite("Process threads", .serialized)
struct ProcessThreadTests {
    @Test("a spawned thread gets its name and its explicit stack size")
    func spawnedThreadHasNameAndStack() throws {
        let observation = ThreadObservation()
        let thread = try RealtimeThread.spawn(name: "keel-test-stk", stackBytes: 128 * 1024, policy: .other, priority: 0, body: observation.recorder)
        try thread.join()
        #expect(thread.degradation == nil)
        #expect(observation.name.withLock { $0 } == "keel-test-stk")
        // glibc may hand out a cached stack of an exited thread up to 4x the size asked for (other
        // tests in this process exit 256 KiB threads), so the size is bounded rather than exact:
        // small, never the 8 MiB default.
        let stack = observation.stackBytes.load(ordering: .relaxed)
        #expect(stack >= 128 * 1024 && stack <= 512 * 1024, "stack \(stack) bytes")
        #expect(observation.scheduling.withLock { $0 } == ThreadScheduling(policy: .other, priority: 0))
    }

    @Test("as root, a SCHED_FIFO thread runs SCHED_FIFO at the priority asked for", .enabled(if: hasSysNice))
    func realtimeFifoAsRoot() {
        let report = runInProcessChild { log in
            let observation = ThreadObservation()
            do {
                let thread = try RealtimeThread.spawn(name: "keel-test-fifo", stackBytes: 64 * 1024, policy: .fifo, priority: 10, body: observation.recorder)
                try thread.join()
                log.check(thread.degradation == nil, "degraded: \(String(describing: thread.degradation))")
                log.check(thread.scheduling == ThreadScheduling(policy: .fifo, priority: 10), "granted \(thread.scheduling)")
            } catch {
                log.fail("\(error)")
            }
            let seen = observation.scheduling.withLock { $0 }
            log.check(seen == ThreadScheduling(policy: .fifo, priority: 10), "thread saw \(String(describing: seen))")
            let seenByTask = observation.taskScheduling.withLock { $0 }
            log.check(seenByTask == ThreadScheduling(policy: .fifo, priority: 10), "sched_getscheduler saw \(String(describing: seenByTask))")
        }
        #expect(report.passed, "\(report)")
    }

    @Test("as root, a SCHED_RR thread runs SCHED_RR at the priority asked for", .enabled(if: hasSysNice))
    func realtimeRoundRobinAsRoot() {
        let report = runInProcessChild { log in
            let observation = ThreadObservation()
            do {
                let thread = try RealtimeThread.spawn(name: "keel-test-rr", stackBytes: 64 * 1024, policy: .roundRobin, priority: 5, body: observation.recorder)
                try thread.join()
                log.check(thread.degradation == nil, "degraded: \(String(describing: thread.degradation))")
            } catch {
                log.fail("\(error)")
            }
            let seen = observation.scheduling.withLock { $0 }
            log.check(seen == ThreadScheduling(policy: .roundRobin, priority: 5), "thread saw \(String(describing: seen))")
        }
        #expect(report.passed, "\(report)")
    }

    @Test("without CAP_SYS_NICE and with RLIMIT_RTPRIO 0 a SCHED_FIFO spawn runs SCHED_OTHER and says why")
    func realtimeWithoutSysNiceDegrades() {
        let report = runInProcessChild { log in
            processChildSetLimit(__RLIMIT_RTPRIO, 0, log)
            processChildBecomeNobody(log)
            let observation = ThreadObservation()
            do {
                let thread = try RealtimeThread.spawn(name: "keel-test-deg", stackBytes: 64 * 1024, policy: .fifo, priority: 10, body: observation.recorder)
                try thread.join()
                log.check(thread.scheduling == ThreadScheduling(policy: .other, priority: 0), "granted \(thread.scheduling)")
                if let degradation = thread.degradation {
                    log.check(degradation.errno == EPERM, "errno \(degradation.errno)")
                    log.check(degradation.reasons.contains(.lacksSysNice(realtimePriorityLimit: 0)), "reasons \(degradation.reasons)")
                    let text = degradation.description
                    log.note("warning", text)
                    log.check(text.hasPrefix("SCHED_FIFO priority 10 refused for thread 'keel-test-deg' (EPERM"), "warning: \(text)")
                    log.check(text.contains("the process lacks CAP_SYS_NICE and RLIMIT_RTPRIO is 0"), "warning: \(text)")
                    log.check(text.hasSuffix("it runs SCHED_OTHER"), "warning: \(text)")
                } else {
                    log.fail("no degradation reported")
                }
            } catch {
                log.fail("\(error)")
            }
            let seen = observation.scheduling.withLock { $0 }
            log.check(seen == ThreadScheduling(policy: .other, priority: 0), "thread saw \(String(describing: seen))")
            log.check(observation.name.withLock { $0 } == "keel-test-deg", "the degraded thread lost its name")
        }
        #expect(report.passed, "\(report)")
    }

    @Test("in a cpu cgroup with cpu.rt_runtime_us 0 a SCHED_FIFO spawn runs SCHED_OTHER and names the cgroup",
          .enabled(if: access("/sys/fs/cgroup/cpu/cpu.rt_runtime_us", W_OK) == 0 && hasSysNice))
    func realtimeInCgroupWithoutBudgetDegrades() throws {
        let directory = "/sys/fs/cgroup/cpu/keel-test-\(getpid())"
        try #require(mkdir(directory, 0o755) == 0, "mkdir \(directory): errno \(errno)")
        defer { rmdir(directory) }
        let report = runInProcessChild { log in
            // A new cgroup v1 cpu group starts with no real-time budget.
            let procs = open(directory + "/cgroup.procs", O_WRONLY)
            let pid = "\(getpid())\n"
            log.check(procs >= 0 && write(procs, pid, pid.utf8.count) == pid.utf8.count, "joining the cgroup: errno \(errno)")
            close(procs)
            let observation = ThreadObservation()
            do {
                let thread = try RealtimeThread.spawn(name: "keel-test-cg", stackBytes: 64 * 1024, policy: .fifo, priority: 10, body: observation.recorder)
                try thread.join()
                let reasons = thread.degradation?.reasons ?? []
                log.check(reasons == [.cgroupRealtimeRuntimeZero(cgroupDirectory: directory)], "reasons \(reasons)")
                log.note("warning", thread.degradation?.description ?? "none")
                log.check(thread.degradation?.description.contains("the cpu cgroup \(directory) has cpu.rt_runtime_us 0") == true, "warning")
            } catch {
                log.fail("\(error)")
            }
            let seen = observation.scheduling.withLock { $0 }
            log.check(seen == ThreadScheduling(policy: .other, priority: 0), "thread saw \(String(describing: seen))")
        }
        #expect(report.passed, "\(report)")
    }

    @Test("setDefaultStackSize gives threads created without attributes that stack size")
    func defaultStackSizeApplies() {
        let report = runInProcessChild { log in
            do {
                try RealtimeThread.setDefaultStackSize(bytes: 256 * 1024)
            } catch {
                log.fail("\(error)")
            }
            var thread = pthread_t()
            var stackBytes = 0
            let created = pthread_create(&thread, nil, { argument in
                argument!.assumingMemoryBound(to: Int.self).pointee = RealtimeThread.callingThreadStackBytes()
                return nil
            }, &stackBytes)
            log.check(created == 0, "pthread_create: \(created)")
            pthread_join(thread, nil)
            // A cached stack of an exited thread may be up to 4x the size asked for; the default
            // it replaces is 8 MiB.
            log.check(stackBytes >= 256 * 1024 && stackBytes <= 1024 * 1024, "stack \(stackBytes)")
        }
        #expect(report.passed, "\(report)")
    }

    @Test("a name over 15 bytes is refused")
    func longNameRefused() {
        #expect(throws: ThreadSpawnError.invalidName("keel-recovery-xx")) {
            try RealtimeThread.spawn(name: "keel-recovery-xx", stackBytes: 64 * 1024, policy: .other, priority: 0) {}
        }
    }

    @Test("a real-time priority outside 1...99 is refused")
    func priorityOutOfRangeRefused() {
        #expect(throws: ThreadSpawnError.priorityOutOfRange(policy: .fifo, priority: 0, minimum: 1, maximum: 99)) {
            try RealtimeThread.spawn(name: "keel-test", stackBytes: 64 * 1024, policy: .fifo, priority: 0) {}
        }
    }

    @Test("a stack below PTHREAD_STACK_MIN is an attribute error")
    func tinyStackRefused() {
        #expect(throws: ThreadSpawnError.attributes(SystemError("pthread_attr_setstacksize", errno: EINVAL))) {
            try RealtimeThread.spawn(name: "keel-test", stackBytes: 1024, policy: .other, priority: 0) {}
        }
    }
}

/// Uses about `depth` KiB of stack: each level holds a 1 KiB buffer (stack-allocated) that is
/// still read after the deeper call returns, so neither the buffer nor the recursion can be
/// optimized away.
@inline(never)
private func useStack(depth: Int) -> UInt8 {
    withUnsafeTemporaryAllocation(byteCount: 1024, alignment: 16) { buffer in
        memset(buffer.baseAddress!, Int32(depth & 0x7F), 1024)
        let deeper: UInt8 = depth > 0 ? useStack(depth: depth - 1) : 0
        return deeper &+ buffer[depth % 1024]
    }
}

@Suite("Thread stack watermark")
struct StackWatermarkTests {
    /// Spawns a 512 KiB thread that uses about `kib` KiB of stack, then reads its watermark while
    /// it is still alive (a dead thread's stack may be reused).
    private func usage(afterUsing kib: Int) throws -> (usedBytes: Int, stackBytes: Int)? {
        let used = Atomic<Bool>(false)
        let read = Atomic<Bool>(false)
        let sink = Atomic<UInt8>(0)
        let thread = try RealtimeThread.spawn(name: "keel-test-wm", stackBytes: 512 * 1024, policy: .other, priority: 0) {
            if kib > 0 { sink.store(useStack(depth: kib), ordering: .relaxed) }
            used.store(true, ordering: .releasing)
            while !read.load(ordering: .acquiring) { usleep(1000) }
        }
        while !used.load(ordering: .acquiring) { usleep(1000) }
        let usage = thread.stack.usage
        read.store(true, ordering: .releasing)
        try thread.join()
        #expect(thread.stack.usage == nil, "forgotten once the thread ended")
        return usage
    }

    @Test("a thread that went 200 KiB deep shows at least that much used; an idle one shows little")
    func deepAndIdleThreads() throws {
        let deep = try #require(try usage(afterUsing: 200))
        let idle = try #require(try usage(afterUsing: 0))
        #expect(deep.stackBytes >= 512 * 1024 && idle.stackBytes >= 512 * 1024)
        #expect(deep.usedBytes >= 200 * 1024 && deep.usedBytes < deep.stackBytes, "deep: \(deep)")
        #expect(idle.usedBytes < 64 * 1024, "idle: \(idle)")
        #expect(deep.usedBytes > idle.usedBytes + 150 * 1024)
    }
}

@Suite("Scratch threads")
struct ScratchThreadTests {
    /// Whether `address` lies in a mapping of this process (/proc/self/maps).
    private func mapped(_ address: UInt) throws -> Bool {
        let maps = try String(contentsOfFile: "/proc/self/maps", encoding: .utf8)
        return maps.split(separator: "\n").contains { line in
            let range = line.split(separator: " ")[0].split(separator: "-").compactMap { UInt($0, radix: 16) }
            return range.count == 2 && address >= range[0] && address < range[1]
        }
    }

    @Test("a scratch thread runs its body on a stack of its own, which is unmapped when it is joined")
    func stackUnmappedAtJoin() throws {
        let stackAddress = Atomic<UInt>(0)
        let thread = try ScratchThread(name: "keel-test-scr", stackBytes: 128 * 1024) {
            var local = 0
            withUnsafeMutablePointer(to: &local) { stackAddress.store(UInt(bitPattern: $0), ordering: .relaxed) }
            // Use some of it: 64 KiB deep.
            _ = useStack(depth: 64)
        }
        thread.join()
        let address = stackAddress.load(ordering: .relaxed)
        #expect(address != 0, "the body ran")
        #expect(try !mapped(address), "the stack at \(String(address, radix: 16)) is gone after join")
        thread.join()  // a second join does nothing
    }

    @Test("a strided map gives every index once, in order, each slice its own every-n-th indices")
    func stridedMapKeepsIndexOrder() {
        let results = ScratchThread.stridedMap(count: 10, slices: 3, name: "keel-test-map", stackBytes: 64 * 1024) { indices in
            indices.map { (index: $0, slice: indices[0]) }
        }
        #expect(results.map(\.index) == Array(0..<10))
        #expect(results.map(\.slice) == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
        #expect(ScratchThread.stridedMap(count: 0, slices: 4, name: "keel-test-map", stackBytes: 64 * 1024) { $0 }.isEmpty)
        #expect(ScratchThread.stridedMap(count: 2, slices: 8, name: "keel-test-map", stackBytes: 64 * 1024) { $0 } == [0, 1])
    }
}
