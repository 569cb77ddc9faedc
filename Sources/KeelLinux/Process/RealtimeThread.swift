// Threads with explicit small stacks and explicit scheduling, degrading to SCHED_OTHER with a reason.
import Glibc
import CKeelShim

/// A scheduling policy (SCHED_* from <sched.h>).
public struct SchedulingPolicy: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// SCHED_OTHER: the normal time-sharing policy.
    public static let other = SchedulingPolicy(rawValue: SCHED_OTHER)
    /// SCHED_FIFO: real-time, runs until it blocks or a higher priority wakes.
    public static let fifo = SchedulingPolicy(rawValue: SCHED_FIFO)
    /// SCHED_RR: real-time with a time slice among equal priorities.
    public static let roundRobin = SchedulingPolicy(rawValue: SCHED_RR)
    /// SCHED_BATCH.
    public static let batch = SchedulingPolicy(rawValue: 3)
    /// SCHED_IDLE.
    public static let idle = SchedulingPolicy(rawValue: 5)

    /// SCHED_FIFO or SCHED_RR.
    public var isRealtime: Bool { self == .fifo || self == .roundRobin }

    public var description: String {
        switch self {
        case .other: return "SCHED_OTHER"
        case .fifo: return "SCHED_FIFO"
        case .roundRobin: return "SCHED_RR"
        case .batch: return "SCHED_BATCH"
        case .idle: return "SCHED_IDLE"
        default: return "policy \(rawValue)"
        }
    }
}

/// A thread's policy and static priority.
public struct ThreadScheduling: Hashable, Sendable, CustomStringConvertible {
    public var policy: SchedulingPolicy
    /// 1...99 for the real-time policies, 0 otherwise.
    public var priority: Int32

    public init(policy: SchedulingPolicy, priority: Int32) {
        self.policy = policy
        self.priority = priority
    }

    public var description: String { policy.isRealtime ? "\(policy) priority \(priority)" : policy.description }
}

/// Why a real-time thread had to run SCHED_OTHER instead: every cause found on this machine.
public struct SchedulingDegradation: Equatable, Sendable, CustomStringConvertible {
    /// One reason the kernel refused the real-time policy.
    public enum Reason: Equatable, Sendable {
        /// No CAP_SYS_NICE and RLIMIT_RTPRIO (nil: unlimited) below the requested priority.
        case lacksSysNice(realtimePriorityLimit: UInt64?)
        /// /proc/sys/kernel/sched_rt_runtime_us is 0: real-time threads get no CPU time at all.
        case systemRealtimeRuntimeZero
        /// The process's cgroup v1 cpu controller gives real-time threads no budget
        /// (`cpu.rt_runtime_us` is 0 in this directory).
        case cgroupRealtimeRuntimeZero(cgroupDirectory: String)
    }

    /// The thread's name.
    public var threadName: String
    /// What was asked for.
    public var requested: ThreadScheduling
    /// The error pthread_create gave for the real-time attempt (EPERM).
    public var errno: Int32
    /// The causes found; empty when none of the known ones applies.
    public var reasons: [Reason]

    public init(threadName: String, requested: ThreadScheduling, errno: Int32, reasons: [Reason]) {
        self.threadName = threadName
        self.requested = requested
        self.errno = errno
        self.reasons = reasons
    }

    /// One line for the log.
    public var description: String {
        let causes = reasons.isEmpty
            ? ["no known cause was found (CAP_SYS_NICE, RLIMIT_RTPRIO, sched_rt_runtime_us and the cgroup's cpu.rt_runtime_us allow it)"]
            : reasons.map { reason -> String in
                switch reason {
                case .lacksSysNice(let limit):
                    let limitText = limit.map { "\($0)" } ?? "unlimited"
                    return "the process lacks CAP_SYS_NICE and RLIMIT_RTPRIO is \(limitText) (grant CAP_SYS_NICE, e.g. AmbientCapabilities=CAP_SYS_NICE, or set LimitRTPRIO=\(requested.priority))"
                case .systemRealtimeRuntimeZero:
                    return "/proc/sys/kernel/sched_rt_runtime_us is 0, so real-time threads get no CPU time"
                case .cgroupRealtimeRuntimeZero(let directory):
                    return "the cpu cgroup \(directory) has cpu.rt_runtime_us 0 (give it a real-time budget or run in a cgroup that has one)"
                }
            }
        return "\(requested) refused for thread '\(threadName)' (\(ProcessText.errno(errno))): \(causes.joined(separator: "; ")); it runs SCHED_OTHER"
    }

    /// Looks for the causes of an EPERM for `requested`: capability and limit, the system-wide
    /// real-time runtime, and the cgroup v1 cpu controller's real-time budget.
    public static func diagnose(requested: ThreadScheduling) -> [Reason] {
        var reasons: [Reason] = []
        if ProcFile.firstLine("/proc/sys/kernel/sched_rt_runtime_us") == "0" {
            reasons.append(.systemRealtimeRuntimeZero)
        }
        let hasSysNice = (try? ProcessStatus.read())?.hasEffective(.sysNice) ?? false
        let limit = ResourceLimits.realtimePriorityMax()
        if !hasSysNice, let finite = limit, finite < UInt64(max(requested.priority, 0)) {
            reasons.append(.lacksSysNice(realtimePriorityLimit: finite))
        }
        if let directory = cpuCgroupDirectory(), ProcFile.firstLine(directory + "/cpu.rt_runtime_us") == "0" {
            reasons.append(.cgroupRealtimeRuntimeZero(cgroupDirectory: directory))
        }
        return reasons
    }

    /// The directory of this process's cgroup v1 cpu controller (from /proc/self/cgroup and
    /// /proc/self/mountinfo), or nil on a cgroup v2 only system.
    static func cpuCgroupDirectory() -> String? {
        guard let cgroups = try? ProcFile.readText("/proc/self/cgroup"),
              let mounts = try? ProcFile.readText("/proc/self/mountinfo") else { return nil }
        // "4:cpu,cpuacct:/system.slice/keeld.service"
        var cgroupPath: Substring?
        for line in cgroups.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            if fields.count == 3, fields[1].split(separator: ",").contains("cpu") {
                cgroupPath = fields[2]
            }
        }
        guard let path = cgroupPath else { return nil }
        // "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu"
        for line in mounts.split(separator: "\n") {
            // The optional fields end at a lone "-" field.
            let fields = line.split(separator: " ")
            guard let dash = fields.firstIndex(of: "-") else { continue }
            let before = Array(fields[..<dash])
            let after = Array(fields[(dash + 1)...])
            guard before.count >= 5, after.count >= 3, after[0] == "cgroup",
                  after[2].split(separator: ",").contains("cpu") else { continue }
            let root = before[3]
            let mountPoint = before[4]
            guard path.hasPrefix(root) else { continue }
            var relative = path.dropFirst(root.count)
            if relative.hasPrefix("/") { relative = relative.dropFirst() }
            return relative.isEmpty ? String(mountPoint) : "\(mountPoint)/\(relative)"
        }
        return nil
    }
}

/// Why a thread could not be created at all.
public enum ThreadSpawnError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Thread names are 1 to 15 bytes (the kernel's TASK_COMM_LEN is 16 with the NUL).
    case invalidName(String)
    /// The priority is outside what the policy allows.
    case priorityOutOfRange(policy: SchedulingPolicy, priority: Int32, minimum: Int32, maximum: Int32)
    /// A pthread_attr_* call failed (e.g. EINVAL for a stack below PTHREAD_STACK_MIN).
    case attributes(SystemError)
    /// pthread_create failed (EAGAIN: thread or memory limit).
    case create(SystemError)

    public var description: String {
        switch self {
        case .invalidName(let name):
            return "thread name '\(name)' must be 1 to 15 bytes"
        case .priorityOutOfRange(let policy, let priority, let minimum, let maximum):
            return "\(policy) priority \(priority) is outside \(minimum)...\(maximum)"
        case .attributes(let error):
            return "thread attributes: \(error)"
        case .create(let error):
            return "thread creation: \(error)"
        }
    }
}

/// What a new thread runs; handed to pthread_create retained (through `Unmanaged`), not as a
/// closure, and released by the thread.
private final class ThreadStart {
    let name: [CChar]
    let watermark: StackWatermark
    let body: @Sendable () -> Void
    init(name: [CChar], watermark: StackWatermark, body: @escaping @Sendable () -> Void) {
        self.name = name
        self.watermark = watermark
        self.body = body
    }
}

/// Entry of every thread `RealtimeThread.spawn` creates: names the thread, then runs the body.
private func realtimeThreadMain(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let start = Unmanaged<ThreadStart>.fromOpaque(argument!).takeRetainedValue()
    start.name.withUnsafeBufferPointer { name in
        _ = keel_process_set_thread_name(pthread_self(), name.baseAddress!)
    }
    start.watermark.paintCallingThread()
    start.body()
    start.watermark.forget()
    return nil
}

/// A joinable thread created with an explicit stack size and explicit scheduling.
///
/// Every thread of the pinned daemon has its whole stack locked (MCL_FUTURE), so stacks are small
/// and given explicitly; the default 8 MiB would be locked too.
public struct RealtimeThread: Sendable {
    /// The pthread.
    public let handle: pthread_t
    /// The name it was given (visible in /proc/<pid>/task/<tid>/comm, ps and top).
    public let name: String
    /// The scheduling it was created with: the request, or SCHED_OTHER after a degradation.
    public let scheduling: ThreadScheduling
    /// Set when a real-time policy was refused and the thread runs SCHED_OTHER instead. The
    /// caller must log it: the daemon then keeps its promise with less margin.
    public let degradation: SchedulingDegradation?
    /// How deep its stack has gone (painted when the thread starts).
    public let stack: StackWatermark

    /// Creates a thread named `name` with a `stackBytes` stack, running `body` under `policy` at
    /// `priority` (use priority 0 with `.other`).
    ///
    /// When a real-time policy is refused with EPERM (no CAP_SYS_NICE and RLIMIT_RTPRIO too low,
    /// or no real-time budget system-wide or in the cgroup), the thread is created again as
    /// SCHED_OTHER and `degradation` names the reasons; it is never silent. Other failures throw.
    /// The corresponding C function is `pthread_create` with PTHREAD_EXPLICIT_SCHED.
    public static func spawn(
        name: String,
        stackBytes: Int,
        policy: SchedulingPolicy,
        priority: Int32,
        body: @escaping @Sendable () -> Void
    ) throws(ThreadSpawnError) -> RealtimeThread {
        let nameBytes = Array(name.utf8)
        guard !nameBytes.isEmpty, nameBytes.count <= 15, !nameBytes.contains(0) else {
            throw .invalidName(name)
        }
        let minimum = sched_get_priority_min(policy.rawValue)
        let maximum = sched_get_priority_max(policy.rawValue)
        guard minimum >= 0, maximum >= 0, (minimum...maximum).contains(priority) else {
            throw .priorityOutOfRange(policy: policy, priority: priority, minimum: minimum, maximum: maximum)
        }
        let requested = ThreadScheduling(policy: policy, priority: priority)
        let watermark = StackWatermark(name: name)
        let start = ThreadStart(name: nameBytes.map { CChar(bitPattern: $0) } + [0], watermark: watermark, body: body)
        do {
            let handle = try create(start, stackBytes: stackBytes, scheduling: requested)
            return RealtimeThread(handle: handle, name: name, scheduling: requested, degradation: nil, stack: watermark)
        } catch .create(let error) where error.errno == EPERM && policy.isRealtime {
            let fallback = ThreadScheduling(policy: .other, priority: 0)
            let degradation = SchedulingDegradation(
                threadName: name, requested: requested, errno: error.errno,
                reasons: SchedulingDegradation.diagnose(requested: requested)
            )
            let handle = try create(start, stackBytes: stackBytes, scheduling: fallback)
            return RealtimeThread(handle: handle, name: name, scheduling: fallback, degradation: degradation, stack: watermark)
        }
    }

    /// One pthread_create with explicit stack and scheduling; on failure `start` stays owned by
    /// the caller.
    private static func create(_ start: ThreadStart, stackBytes: Int, scheduling: ThreadScheduling) throws(ThreadSpawnError) -> pthread_t {
        var attributes = pthread_attr_t()
        var result = pthread_attr_init(&attributes)
        guard result == 0 else { throw .attributes(SystemError("pthread_attr_init", errno: result)) }
        defer { pthread_attr_destroy(&attributes) }
        result = pthread_attr_setstacksize(&attributes, stackBytes)
        guard result == 0 else { throw .attributes(SystemError("pthread_attr_setstacksize", errno: result)) }
        // Explicit: the thread gets exactly this policy, not the creator's.
        result = pthread_attr_setinheritsched(&attributes, Int32(PTHREAD_EXPLICIT_SCHED))
        guard result == 0 else { throw .attributes(SystemError("pthread_attr_setinheritsched", errno: result)) }
        result = pthread_attr_setschedpolicy(&attributes, scheduling.policy.rawValue)
        guard result == 0 else { throw .attributes(SystemError("pthread_attr_setschedpolicy", errno: result)) }
        var parameter = sched_param(sched_priority: scheduling.priority)
        result = pthread_attr_setschedparam(&attributes, &parameter)
        guard result == 0 else { throw .attributes(SystemError("pthread_attr_setschedparam", errno: result)) }

        var handle = pthread_t()
        let argument = Unmanaged.passRetained(start).toOpaque()
        result = pthread_create(&handle, &attributes, realtimeThreadMain, argument)
        guard result == 0 else {
            Unmanaged<ThreadStart>.fromOpaque(argument).release()
            throw .create(SystemError("pthread_create", errno: result))
        }
        return handle
    }

    /// Waits for the thread to end. Call once, and not for a thread that was detached.
    /// The corresponding C function is `pthread_join`.
    public func join() throws(SystemError) {
        let result = pthread_join(handle, nil)
        guard result == 0 else { throw SystemError("pthread_join", errno: result) }
    }

    /// Lets the thread's resources go when it ends without a join.
    /// The corresponding C function is `pthread_detach`.
    public func detach() throws(SystemError) {
        let result = pthread_detach(handle)
        guard result == 0 else { throw SystemError("pthread_detach", errno: result) }
    }

    /// The thread's scheduling as the kernel reports it now (valid until it is joined).
    public func currentScheduling() throws(SystemError) -> ThreadScheduling {
        try Self.scheduling(of: handle)
    }

    /// The scheduling of `thread`. The corresponding C function is `pthread_getschedparam`.
    public static func scheduling(of thread: pthread_t) throws(SystemError) -> ThreadScheduling {
        var policy: Int32 = 0
        var parameter = sched_param()
        let result = pthread_getschedparam(thread, &policy, &parameter)
        guard result == 0 else { throw SystemError("pthread_getschedparam", errno: result) }
        return ThreadScheduling(policy: SchedulingPolicy(rawValue: policy), priority: parameter.sched_priority)
    }

    /// The scheduling of the calling thread.
    public static func callingThreadScheduling() throws(SystemError) -> ThreadScheduling {
        try scheduling(of: pthread_self())
    }

    /// The scheduling of kernel task `tid` of this process (for the operator interface, which
    /// lists /proc/self/task). The corresponding C functions are `sched_getscheduler` and
    /// `sched_getparam`.
    public static func scheduling(ofTask tid: Int32) throws(SystemError) -> ThreadScheduling {
        let policy = try systemCall("sched_getscheduler") { sched_getscheduler(tid) }
        var parameter = sched_param()
        _ = try systemCall("sched_getparam") { sched_getparam(tid, &parameter) }
        // SCHED_RESET_ON_FORK may be or-ed into the policy.
        return ThreadScheduling(policy: SchedulingPolicy(rawValue: policy & ~0x4000_0000), priority: parameter.sched_priority)
    }

    /// The name of `thread`. The corresponding C function is `pthread_getname_np`.
    public static func name(of thread: pthread_t) throws(SystemError) -> String {
        var buffer = [CChar](repeating: 0, count: 16)
        let result = keel_process_thread_name(thread, &buffer, buffer.count)
        guard result == 0 else { throw SystemError("pthread_getname_np", errno: result) }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The stack size of the calling thread, in bytes (0 if unknown).
    /// The corresponding C function is `pthread_getattr_np`.
    public static func callingThreadStackBytes() -> Int {
        keel_process_current_stack_bytes()
    }

    /// The calling thread's kernel task id. The corresponding C function is `gettid`.
    public static func callingThreadTaskID() -> Int32 {
        keel_process_gettid()
    }

    /// Sets the stack size of threads created without attributes (by libraries, runtimes) for
    /// the whole process, so none of them locks a default 8 MiB stack. Call early at start-up.
    /// The corresponding C function is `pthread_setattr_default_np`.
    public static func setDefaultStackSize(bytes: Int) throws(SystemError) {
        let result = keel_process_set_default_stack_bytes(bytes)
        guard result == 0 else { throw SystemError("pthread_setattr_default_np", errno: result) }
    }
}
