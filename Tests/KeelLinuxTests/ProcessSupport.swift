// Runs a process-wide effect (mlockall, seccomp, signal masks, uid changes) in a forked child and
// brings its findings back through a pipe, so the test runner itself is never changed.
import Glibc

/// The child's side: checks and notes, written to the parent as lines.
final class ProcessChildLog {
    private let descriptor: Int32
    private(set) var failed = false

    init(descriptor: Int32) { self.descriptor = descriptor }

    /// Records a failure unless `condition` holds.
    func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition {
            failed = true
            line("FAIL " + message())
        }
    }

    /// Records a failure.
    func fail(_ message: String) { check(false, message) }

    /// Passes `key=value` to the parent (figures for the report).
    func note(_ key: String, _ value: String) { line("\(key)=\(value)") }

    func line(_ text: String) {
        var text = text + "\n"
        text.withUTF8 { utf8 in
            var offset = 0
            while offset < utf8.count {
                let n = write(descriptor, utf8.baseAddress! + offset, utf8.count - offset)
                if n <= 0 { return }
                offset += n
            }
        }
    }
}

/// What came back from a child.
struct ProcessChildReport: CustomStringConvertible {
    /// The exit status, nil when a signal ended the child.
    var exitStatus: Int32?
    /// The signal that ended it, if any (SIGALRM: it hung; SIGSYS: seccomp killed it).
    var signal: Int32?
    var lines: [String]

    /// The child ran to its end, reported no failure and exited with the pass code.
    var passed: Bool {
        exitStatus == processChildPassCode && lines.last == "DONE" && !lines.contains { $0.hasPrefix("FAIL ") }
    }

    /// The value of a `key=value` note.
    func value(_ key: String) -> String? {
        lines.first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
    }

    var description: String {
        let end = exitStatus.map { "exit \($0)" } ?? "signal \(signal ?? 0)"
        return "child \(end): " + lines.joined(separator: " | ")
    }
}

/// The exit code of a child that passed; not 0, so that a child replaced by an exec'd program
/// (which would exit 0) cannot pass.
let processChildPassCode: Int32 = 42

/// Forks, runs `body` in the child with an alarm of `timeoutSeconds` (a hung child is killed by
/// SIGALRM and fails), and returns what it reported. The child ends with `_exit`, running no
/// atexit handlers of the test runner.
///
/// A child forked from this multi-threaded test runner can inherit a lock another test's thread
/// held at that instant (the Swift runtime's conformance cache, malloc's arenas) and wait on it
/// forever at its first use. So the child unblocks SIGALRM for its alarm (the forking thread may
/// have it blocked), the parent stops waiting `timeoutSeconds` + 5 s later and kills it, and a
/// child that hung is run once more (said on stderr). A body that hangs by itself hangs twice
/// and fails.
func runInProcessChild(timeoutSeconds: UInt32 = 30, _ body: (ProcessChildLog) -> Void) -> ProcessChildReport {
    let first = forkChild(timeoutSeconds: timeoutSeconds, body)
    guard first.signal == SIGALRM || first.signal == SIGKILL else { return first }
    let text = "runInProcessChild: a child hung (signal \(first.signal!), after: \(first.lines.joined(separator: " | "))); forked again\n"
    _ = write(2, text, text.utf8.count)
    return forkChild(timeoutSeconds: timeoutSeconds, body)
}

private func forkChild(timeoutSeconds: UInt32, _ body: (ProcessChildLog) -> Void) -> ProcessChildReport {
    var ends: [Int32] = [0, 0]
    precondition(pipe(&ends) == 0, "pipe failed")
    let pid = fork()
    precondition(pid >= 0, "fork failed")
    if pid == 0 {
        close(ends[0])
        var alarmOnly = sigset_t()
        sigemptyset(&alarmOnly)
        sigaddset(&alarmOnly, SIGALRM)
        pthread_sigmask(SIG_UNBLOCK, &alarmOnly, nil)
        signal(SIGALRM, SIG_DFL)
        alarm(timeoutSeconds)
        let log = ProcessChildLog(descriptor: ends[1])
        body(log)
        log.line("DONE")
        _exit(log.failed ? 1 : processChildPassCode)
    }
    close(ends[1])
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    var deadline = timespec()
    clock_gettime(CLOCK_MONOTONIC, &deadline)
    deadline.tv_sec += Int(timeoutSeconds) + 5
    while true {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let leftMs = (deadline.tv_sec - now.tv_sec) * 1000 + (deadline.tv_nsec - now.tv_nsec) / 1_000_000
        if leftMs <= 0 {
            kill(pid, SIGKILL)   // the alarm did not end it: the parent does
            break
        }
        var descriptor = pollfd(fd: ends[0], events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, Int32(clamping: leftMs))
        if ready < 0 && errno == EINTR { continue }
        if ready <= 0 { continue }
        let n = read(ends[0], &chunk, chunk.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    close(ends[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
    // KEEL_TEST_VERBOSE=1 shows what every child noted (figures such as VmLck), pass or fail.
    if getenv("KEEL_TEST_VERBOSE") != nil {
        let text = "child \(pid): " + lines.joined(separator: " | ") + "\n"
        _ = write(2, text, text.utf8.count)
    }
    // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import (macros).
    let signal = status & 0x7f
    if signal == 0 {
        return ProcessChildReport(exitStatus: (status >> 8) & 0xff, signal: nil, lines: lines)
    }
    return ProcessChildReport(exitStatus: nil, signal: signal, lines: lines)
}

/// Drops the child to user and group `nobody` (65534): every capability is cleared.
func processChildBecomeNobody(_ log: ProcessChildLog) {
    log.check(setgroups(0, nil) == 0, "setgroups: errno \(errno)")
    log.check(setgid(65534) == 0, "setgid: errno \(errno)")
    log.check(setuid(65534) == 0, "setuid: errno \(errno)")
}

/// Sets both the soft and the hard limit of `resource`.
func processChildSetLimit(_ resource: __rlimit_resource, _ value: UInt64, _ log: ProcessChildLog) {
    var limit = rlimit(rlim_cur: rlim_t(value), rlim_max: rlim_t(value))
    log.check(setrlimit(__rlimit_resource_t(resource.rawValue), &limit) == 0, "setrlimit(\(resource.rawValue)): errno \(errno)")
}

/// The effective capabilities of the calling process (CapEff), 0 if unreadable.
func processEffectiveCapabilities() -> UInt64 {
    guard let file = fopen("/proc/self/status", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 512)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix("CapEff:") {
            return UInt64(text.dropFirst(7).filter { !$0.isWhitespace }, radix: 16) ?? 0
        }
    }
    return 0
}
