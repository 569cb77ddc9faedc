// SignalChannel: termination and reload signals read from a signalfd, without blocking.
import Glibc
import KeelLinux
import Synchronization
import Testing

/// Results a test thread hands back.
private final class BlockedSignals: Sendable {
    let all = Atomic<Int>(-1)
}

/// Unblocks SIGTERM, SIGINT and SIGHUP in the child: the test runner's threads (and so a child
/// forked from one) may have them blocked already, which would hide whether the channel blocks
/// them. With them unblocked and no handler, a signal the channel failed to block kills the child.
private func unblockDaemonSignals(_ log: ProcessChildLog) {
    var set = sigset_t()
    sigemptyset(&set)
    for signal in [SIGTERM, SIGINT, SIGHUP] { sigaddset(&set, signal) }
    log.check(pthread_sigmask(SIG_UNBLOCK, &set, nil) == 0, "pthread_sigmask")
}

@Suite("Process signals", .serialized)
struct ProcessSignalTests {
    @Test("SIGHUP raised in the process is read from the channel, once")
    func raisedSighupIsRead() {
        let report = runInProcessChild { log in
            unblockDaemonSignals(log)
            do {
                let channel = try SignalChannel()
                log.check(try channel.receive() == nil, "a signal before any was raised")
                log.check(raise(SIGHUP) == 0, "raise: errno \(errno)")
                let received = try channel.receive()
                log.check(received?.signal == SIGHUP, "received \(String(describing: received))")
                log.check(received?.senderPid == getpid(), "sender \(String(describing: received?.senderPid))")
                log.check(try channel.receive() == nil, "the signal was read twice")
            } catch {
                log.fail("\(error)")
            }
        }
        #expect(report.passed, "\(report)")
    }

    @Test("SIGTERM and SIGINT sent with kill wait in the channel in order, with the sender's uid")
    func killedSignalsQueue() {
        let report = runInProcessChild { log in
            unblockDaemonSignals(log)
            do {
                let channel = try SignalChannel()
                kill(getpid(), SIGTERM)
                kill(getpid(), SIGINT)
                var seen: [Int32] = []
                while let signal = try channel.receive() {
                    seen.append(signal.signal)
                    log.check(signal.senderUid == getuid(), "uid \(signal.senderUid)")
                }
                // Standard signals are delivered lowest number first: SIGINT (2) before SIGTERM (15).
                log.check(seen == [SIGINT, SIGTERM], "seen \(seen)")
            } catch {
                log.fail("\(error)")
            }
        }
        #expect(report.passed, "\(report)")
    }

    @Test("the channel's descriptor polls readable only while a signal is pending")
    func descriptorPollsReadable() {
        let report = runInProcessChild { log in
            unblockDaemonSignals(log)
            do {
                let channel = try SignalChannel()
                var descriptor = pollfd(fd: channel.descriptor, events: Int16(POLLIN), revents: 0)
                log.check(poll(&descriptor, 1, 0) == 0, "readable with nothing pending")
                raise(SIGHUP)
                log.check(poll(&descriptor, 1, 0) == 1 && descriptor.revents & Int16(POLLIN) != 0, "not readable with SIGHUP pending")
                _ = try channel.receive()
                log.check(poll(&descriptor, 1, 0) == 0, "readable after the read")
            } catch {
                log.fail("\(error)")
            }
        }
        #expect(report.passed, "\(report)")
    }

    @Test("threads created after the channel keep SIGTERM, SIGINT and SIGHUP blocked")
    func laterThreadsInheritMask() {
        let report = runInProcessChild { log in
            unblockDaemonSignals(log)
            let outcome = BlockedSignals()
            do {
                let blockedBefore = try [SIGTERM, SIGINT, SIGHUP].filter { try SignalChannel.isBlockedInCallingThread($0) }
                log.check(blockedBefore.isEmpty, "blocked before the channel: \(blockedBefore)")
                let channel = try SignalChannel()
                log.check(channel.signals == [SIGTERM, SIGINT, SIGHUP], "signals \(channel.signals)")
                let thread = try RealtimeThread.spawn(name: "keel-test-sig", stackBytes: 64 * 1024, policy: .other, priority: 0) {
                    let blocked = [SIGTERM, SIGINT, SIGHUP].allSatisfy { (try? SignalChannel.isBlockedInCallingThread($0)) == true }
                    outcome.all.store(blocked ? 1 : 0, ordering: .releasing)
                }
                try thread.join()
            } catch {
                log.fail("\(error)")
            }
            log.check(outcome.all.load(ordering: .acquiring) == 1, "a later thread has the signals unblocked")
        }
        #expect(report.passed, "\(report)")
    }
}
