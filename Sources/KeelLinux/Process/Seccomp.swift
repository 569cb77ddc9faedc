// No fork, no exec: a seccomp-BPF filter that refuses process creation but not thread creation.
import Glibc
import CKeelShim

/// Why the filter could not be installed.
public struct SeccompError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Which step failed.
    public enum Step: Equatable, Sendable {
        /// prctl(PR_SET_NO_NEW_PRIVS).
        case noNewPrivileges
        /// seccomp(SECCOMP_SET_MODE_FILTER) or prctl(PR_SET_SECCOMP).
        case installFilter
        /// SECCOMP_FILTER_FLAG_TSYNC could not give the filter to this thread (it runs a
        /// different filter).
        case synchroniseThreads(taskID: Int)
    }

    public var step: Step
    public var errno: Int32

    public init(step: Step, errno: Int32) {
        self.step = step
        self.errno = errno
    }

    /// One line for the log.
    public var description: String {
        switch step {
        case .noNewPrivileges:
            return "prctl(PR_SET_NO_NEW_PRIVS) failed: \(ProcessText.errno(errno))"
        case .installFilter where errno == EINVAL:
            return "installing the seccomp filter failed (EINVAL): the kernel lacks CONFIG_SECCOMP_FILTER or refused the program"
        case .installFilter where errno == EACCES:
            return "installing the seccomp filter failed (EACCES): no_new_privs is not set and the process lacks CAP_SYS_ADMIN"
        case .installFilter:
            return "installing the seccomp filter failed: \(ProcessText.errno(errno))"
        case .synchroniseThreads(let taskID):
            return "the seccomp filter could not be applied to thread \(taskID), which runs another filter"
        }
    }
}

/// The seccomp state of a task (the `Seccomp:` line of /proc/<pid>/status).
public enum SeccompMode: Equatable, Sendable {
    /// 0: no seccomp.
    case disabled
    /// 1: SECCOMP_MODE_STRICT.
    case strict
    /// 2: one or more BPF filters.
    case filter
    /// A value this code does not know.
    case other(Int)

    /// The mode for the number in /proc/<pid>/status.
    public init(statusValue: Int) {
        switch statusValue {
        case 0: self = .disabled
        case 1: self = .strict
        case 2: self = .filter
        default: self = .other(statusValue)
        }
    }
}

/// The daemon's seccomp policy.
public enum Seccomp {
    /// Installs, for every thread of the process and all threads created later, a filter under
    /// which the process cannot create another process or run a program:
    /// - fork, vfork, execve, execveat fail with EPERM;
    /// - clone fails with EPERM unless its flags hold CLONE_THREAD, so pthread_create still works;
    /// - clone3 fails with ENOSYS: BPF cannot read clone3's flags (they are in user memory), and
    ///   ENOSYS, unlike EPERM, makes glibc (pthread_create, posix_spawn, fork) fall back to clone,
    ///   whose flags the filter can judge;
    /// - system calls of another architecture (or the x32 ABI) kill the process, since the filter's
    ///   numbers mean nothing there.
    /// Sets no_new_privs first, so it also works without CAP_SYS_ADMIN. Cannot be undone.
    /// The corresponding C functions are `prctl(PR_SET_NO_NEW_PRIVS)` and
    /// `seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC)`.
    public static func denyProcessCreation() throws(SeccompError) {
        if keel_process_set_no_new_privs() != 0 {
            throw SeccompError(step: .noNewPrivileges, errno: keel_errno())
        }
        let result = keel_process_install_process_creation_filter()
        if result > 0 {
            throw SeccompError(step: .synchroniseThreads(taskID: result), errno: ESRCH)
        }
        if result < 0 {
            throw SeccompError(step: .installFilter, errno: keel_errno())
        }
    }

    /// The number of BPF instructions in the filter.
    public static var filterInstructionCount: Int {
        Int(keel_process_process_creation_filter_length())
    }

    /// The calling process's seccomp mode, from /proc/self/status (or `path`).
    public static func mode(statusPath: String = "/proc/self/status") throws(SystemError) -> SeccompMode {
        let status = try ProcessStatus.read(path: statusPath)
        guard let text = status.value(of: "Seccomp"), let value = Int(text) else {
            throw SystemError("read(/proc/self/status Seccomp)", errno: EINVAL)
        }
        return SeccompMode(statusValue: value)
    }

    /// Whether no_new_privs is set for the calling thread. The corresponding C function is
    /// `prctl(PR_GET_NO_NEW_PRIVS)`.
    public static func noNewPrivileges() throws(SystemError) -> Bool {
        try systemCall("prctl(PR_GET_NO_NEW_PRIVS)") { keel_process_no_new_privs() } == 1
    }
}
