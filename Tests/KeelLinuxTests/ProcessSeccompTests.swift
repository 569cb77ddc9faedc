// The seccomp filter: no fork, no exec, no new process by any call; threads still work.
import CKeelShim
import Glibc
import KeelLinux
import Synchronization
import Testing

/// A raw system call with up to three arguments; -errno on failure.
private func rawSyscall(_ number: Int, _ a0: Int = 0, _ a1: Int = 0, _ a2: Int = 0) -> Int {
    let result = keel_process_syscall(number, a0, a1, a2, 0, 0, 0)
    return result < 0 ? -Int(keel_errno()) : result
}

/// Checks, in the current child, that every way of making a process is refused as the filter
/// promises. A call that wrongly succeeds makes a grandchild, which `_exit`s at once.
private func checkProcessCreationRefused(_ log: ProcessChildLog) {
    let numbers = keel_process_creation_syscall_numbers()
    func expectRefused(_ name: String, _ result: Int, _ errno: Int32) {
        if result == 0 { _exit(0) }  // a grandchild: the filter let it through
        log.check(result == -Int(errno), "\(name) returned \(result), expected -\(errno)")
        if result > 0 { waitpid(pid_t(result), nil, 0) }
    }
    // glibc's fork() goes through clone (or clone3) without CLONE_THREAD.
    let forked = fork()
    if forked == 0 { _exit(0) }
    log.check(forked == -1 && errno == EPERM, "fork() returned \(forked), errno \(errno)")
    if numbers.fork >= 0 { expectRefused("fork", rawSyscall(numbers.fork), EPERM) }
    if numbers.vfork >= 0 { expectRefused("vfork", rawSyscall(numbers.vfork), EPERM) }
    expectRefused("clone(SIGCHLD)", rawSyscall(numbers.clone, Int(SIGCHLD)), EPERM)
    if numbers.clone3 >= 0 {
        // The filter answers before the kernel reads the (here missing) argument structure.
        expectRefused("clone3", rawSyscall(numbers.clone3, 0, 0), ENOSYS)
    }
    let path = "/bin/true"
    var arguments: [UnsafeMutablePointer<CChar>?] = [strdup(path), nil]
    let executed = execv(path, &arguments)
    log.check(executed == -1 && errno == EPERM, "execv returned \(executed), errno \(errno)")
    let executedAt = path.withCString { rawSyscall(numbers.execveat, Int(AT_FDCWD), Int(bitPattern: $0), 0) }
    log.check(executedAt == -Int(EPERM), "execveat returned \(executedAt)")
    var spawned: pid_t = 0
    let spawnResult = posix_spawn(&spawned, path, nil, nil, &arguments, nil)
    if spawnResult == 0 { waitpid(spawned, nil, 0) }
    log.check(spawnResult == EPERM, "posix_spawn returned \(spawnResult)")
    free(arguments[0])
}

/// Two flags shared with a test thread.
private final class SeccompTestFlags: Sendable {
    let first = Atomic<Int>(0)
    let second = Atomic<Int>(0)
}

@Suite("Process seccomp", .serialized)
struct ProcessSeccompTests {
    @Test("without the filter the probes create processes (so the refusal checks can fail)")
    func probesWorkWithoutFilter() {
        let report = runInProcessChild { log in
            let forked = fork()
            if forked == 0 { _exit(7) }
            var status: Int32 = 0
            log.check(forked > 0 && waitpid(forked, &status, 0) == forked && (status >> 8) & 0xff == 7, "fork did not work")
            var spawned: pid_t = 0
            var arguments: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
            log.check(posix_spawn(&spawned, "/bin/true", nil, nil, &arguments, nil) == 0, "posix_spawn did not work")
            waitpid(spawned, nil, 0)
            free(arguments[0])
        }
        #expect(report.passed, "\(report)")
    }

    @Test("after denyProcessCreation, fork, vfork, clone, execve, execveat and posix_spawn fail with EPERM and clone3 with ENOSYS")
    func processCreationRefused() {
        let report = runInProcessChild { log in
            do {
                try Seccomp.denyProcessCreation()
            } catch {
                log.fail("\(error)")
                return
            }
            checkProcessCreationRefused(log)
        }
        #expect(report.passed, "\(report)")
    }

    @Test("after denyProcessCreation, /proc/self/status shows Seccomp 2 and no_new_privs is set")
    func statusShowsFilter() {
        let report = runInProcessChild { log in
            log.check((try? Seccomp.mode()) == .disabled, "mode before: \(String(describing: try? Seccomp.mode()))")
            do {
                try Seccomp.denyProcessCreation()
                log.check(try Seccomp.mode() == .filter, "mode after")
                log.check(try Seccomp.noNewPrivileges(), "no_new_privs not set")
            } catch {
                log.fail("\(error)")
            }
            log.note("instructions", "\(Seccomp.filterInstructionCount)")
        }
        #expect(report.passed, "\(report)")
    }

    @Test("after denyProcessCreation, threads are still created, by pthread_create and by RealtimeThread")
    func threadsStillCreated() {
        let report = runInProcessChild { log in
            do {
                try Seccomp.denyProcessCreation()
            } catch {
                log.fail("\(error)")
                return
            }
            var thread = pthread_t()
            var ran = 0
            let created = pthread_create(&thread, nil, { argument in
                argument!.assumingMemoryBound(to: Int.self).pointee = 1
                return nil
            }, &ran)
            log.check(created == 0, "pthread_create: \(created)")
            if created == 0 { pthread_join(thread, nil) }
            log.check(ran == 1, "the pthread did not run")
            let flag = SeccompTestFlags()
            do {
                let spawned = try RealtimeThread.spawn(name: "keel-test-sec", stackBytes: 64 * 1024, policy: .other, priority: 0) {
                    flag.first.store(1, ordering: .releasing)
                }
                try spawned.join()
            } catch {
                log.fail("\(error)")
            }
            log.check(flag.first.load(ordering: .acquiring) == 1, "the spawned thread did not run")
        }
        #expect(report.passed, "\(report)")
    }

    @Test("the filter also binds threads that existed before it was installed")
    func filterCoversExistingThreads() {
        let report = runInProcessChild { log in
            // The thread waits for `first` (go), then tries to fork and puts in `second`:
            // 1 refused with EPERM, 2 allowed, 3 another failure.
            let state = SeccompTestFlags()
            do {
                let thread = try RealtimeThread.spawn(name: "keel-test-old", stackBytes: 64 * 1024, policy: .other, priority: 0) {
                    while state.first.load(ordering: .acquiring) == 0 { sched_yield() }
                    let pid = fork()
                    if pid == 0 { _exit(0) }
                    state.second.store(pid == -1 && errno == EPERM ? 1 : pid > 0 ? 2 : 3, ordering: .releasing)
                }
                try Seccomp.denyProcessCreation()
                state.first.store(1, ordering: .releasing)
                try thread.join()
            } catch {
                log.fail("\(error)")
            }
            let outcome = state.second.load(ordering: .acquiring)
            log.check(outcome == 1, "fork in the older thread: outcome \(outcome)")
        }
        #expect(report.passed, "\(report)")
    }
}
