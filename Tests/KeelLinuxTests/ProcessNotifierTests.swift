// ServiceNotifier: sd_notify datagrams to a path or abstract socket, drops when nobody reads,
// the watchdog period from the environment.
import Glibc
import KeelLinux
import Synchronization
import Testing

/// A datagram socket standing in for systemd's notify socket.
private final class NotifyReceiver {
    let descriptor: Int32
    let address: String
    private let path: String?

    private static let sequence = Atomic<Int>(0)

    /// Binds a new socket: a file in /tmp, or an abstract name when `abstract`.
    init(abstract: Bool) throws {
        let n = Self.sequence.wrappingAdd(1, ordering: .relaxed).newValue
        let name = "keel-notify-\(getpid())-\(n)"
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(descriptor >= 0)
        var socketAddress = sockaddr_un()
        socketAddress.sun_family = sa_family_t(AF_UNIX)
        let bytes: [UInt8]
        if abstract {
            address = "@" + name
            path = nil
            bytes = [0] + Array(name.utf8)
        } else {
            address = "/tmp/" + name + ".sock"
            path = address
            unlink(address)
            bytes = Array(address.utf8) + [0]
        }
        withUnsafeMutableBytes(of: &socketAddress.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
        }
        try #require(bound == 0, "bind \(address): errno \(errno)")
    }

    deinit {
        close(descriptor)
        if let path { unlink(path) }
    }

    /// The next datagram, waiting up to a second; nil if none came.
    func receive() -> String? {
        var descriptorPoll = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptorPoll, 1, 1000) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(descriptor, &buffer, buffer.count, 0)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }
}

@Suite("Process service notifier")
struct ProcessNotifierTests {
    @Test("READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 arrive at a path socket as separate datagrams")
    func messagesReachPathSocket() throws {
        let receiver = try NotifyReceiver(abstract: false)
        let notifier = try ServiceNotifier(socketAddress: receiver.address)
        #expect(notifier.notifyReady() == .sent)
        #expect(notifier.notifyStatus("checking 4 paths") == .sent)
        #expect(notifier.notifyWatchdog(nowNs: 1) == .sent)
        #expect(notifier.notifyStopping() == .sent)
        #expect(receiver.receive() == "READY=1")
        #expect(receiver.receive() == "STATUS=checking 4 paths")
        #expect(receiver.receive() == "WATCHDOG=1")
        #expect(receiver.receive() == "STOPPING=1")
        #expect(notifier.sentCount == 4)
        #expect(notifier.droppedCount == 0)
    }

    @Test("an abstract '@' address reaches a socket in the abstract namespace")
    func messagesReachAbstractSocket() throws {
        let receiver = try NotifyReceiver(abstract: true)
        let notifier = try ServiceNotifier(socketAddress: receiver.address)
        #expect(notifier.notifyReady() == .sent)
        #expect(receiver.receive() == "READY=1")
    }

    @Test("when nobody reads, sends are dropped and counted without blocking")
    func fullQueueDropsWithoutBlocking() throws {
        let receiver = try NotifyReceiver(abstract: false)
        let notifier = try ServiceNotifier(socketAddress: receiver.address)
        let start = ContinuousClock.now
        for i in 0..<10_000 { notifier.notifyWatchdog(nowNs: Int64(i)) }
        let elapsed = ContinuousClock.now - start
        #expect(notifier.droppedCount > 0)
        #expect(notifier.sentCount > 0)
        #expect(notifier.sentCount + notifier.droppedCount == 10_000)
        #expect(notifier.failedCount == 0)
        #expect(elapsed < .seconds(5))
        withExtendedLifetime(receiver) {}
    }

    @Test("a send with nobody bound at the address fails with an errno and is counted")
    func missingSocketFails() throws {
        let notifier = try ServiceNotifier(socketAddress: "/tmp/keel-notify-nobody-\(getpid()).sock")
        let result = notifier.notifyReady()
        #expect(result == .failed(errno: ENOENT))
        #expect(notifier.failedCount == 1)
    }

    @Test("STATUS text keeps one line and is cut at statusBytesMax bytes")
    func statusIsOneBoundedLine() throws {
        let receiver = try NotifyReceiver(abstract: true)
        let notifier = try ServiceNotifier(socketAddress: receiver.address)
        notifier.notifyStatus("two\nlines")
        #expect(receiver.receive() == "STATUS=two lines")
        notifier.notifyStatus(String(repeating: "é", count: 2000))
        let long = receiver.receive()
        #expect(long == "STATUS=" + String(repeating: "é", count: ServiceNotifier.statusBytesMax / 2))
    }

    @Test("a WATCHDOG=1 is due at first, then again once half the period has passed")
    func watchdogDueAfterHalfPeriod() throws {
        let receiver = try NotifyReceiver(abstract: true)
        let notifier = try ServiceNotifier(socketAddress: receiver.address, watchdogIntervalNs: 1_000_000_000)
        #expect(notifier.watchdogDue(nowNs: 5_000_000_000))
        #expect(notifier.notifyWatchdog(nowNs: 5_000_000_000) == .sent)
        #expect(!notifier.watchdogDue(nowNs: 5_499_999_999))
        #expect(notifier.watchdogDue(nowNs: 5_500_000_000))
    }

    @Test("without a watchdog period nothing is ever due")
    func noWatchdogNeverDue() throws {
        let notifier = try ServiceNotifier(socketAddress: "@keel-notify-unused")
        #expect(!notifier.watchdogDue(nowNs: 0))
        #expect(!notifier.watchdogDue(nowNs: Int64.max))
    }

    @Test("WATCHDOG_USEC gives the period unless WATCHDOG_PID names another process")
    func watchdogIntervalFromValues() throws {
        #expect(try ServiceNotifier.watchdogInterval(usec: "30000000", pid: nil, ownPid: 10) == 30_000_000_000)
        #expect(try ServiceNotifier.watchdogInterval(usec: "30000000", pid: "10", ownPid: 10) == 30_000_000_000)
        #expect(try ServiceNotifier.watchdogInterval(usec: "30000000", pid: "11", ownPid: 10) == nil)
        #expect(try ServiceNotifier.watchdogInterval(usec: nil, pid: nil, ownPid: 10) == nil)
        #expect(throws: ServiceNotifierError.invalidWatchdogUsec("0")) {
            try ServiceNotifier.watchdogInterval(usec: "0", pid: nil, ownPid: 10)
        }
        #expect(throws: ServiceNotifierError.invalidWatchdogUsec("soon")) {
            try ServiceNotifier.watchdogInterval(usec: "soon", pid: nil, ownPid: 10)
        }
    }

    @Test("addresses that are neither absolute paths nor '@' names, or too long, are refused")
    func badAddressesRefused() {
        #expect(throws: ServiceNotifierError.unsupportedAddress("relative/socket")) {
            try ServiceNotifier(socketAddress: "relative/socket")
        }
        #expect(throws: ServiceNotifierError.unsupportedAddress("vsock:2:1234")) {
            try ServiceNotifier(socketAddress: "vsock:2:1234")
        }
        let long = "/" + String(repeating: "x", count: 200)
        #expect(throws: ServiceNotifierError.addressTooLong(long)) {
            try ServiceNotifier(socketAddress: long)
        }
    }

    @Test("fromEnvironment follows NOTIFY_SOCKET and WATCHDOG_USEC, and is nil without NOTIFY_SOCKET")
    func fromEnvironmentReadsVariables() throws {
        let receiver = try NotifyReceiver(abstract: false)
        let address = receiver.address
        // setenv is not safe beside other threads reading the environment: in a child.
        let report = runInProcessChild { log in
            unsetenv("NOTIFY_SOCKET")
            log.check((try? ServiceNotifier.fromEnvironment()).flatMap { $0 } == nil, "a notifier without NOTIFY_SOCKET")
            setenv("NOTIFY_SOCKET", address, 1)
            setenv("WATCHDOG_USEC", "20000000", 1)
            setenv("WATCHDOG_PID", "\(getpid())", 1)
            do {
                guard let notifier = try ServiceNotifier.fromEnvironment() else {
                    log.fail("no notifier with NOTIFY_SOCKET set")
                    return
                }
                log.check(notifier.socketAddress == address, "address \(notifier.socketAddress)")
                log.check(notifier.watchdogIntervalNs == 20_000_000_000, "interval \(String(describing: notifier.watchdogIntervalNs))")
                log.check(notifier.notifyReady() == .sent, "READY=1 not sent")
            } catch {
                log.fail("\(error)")
            }
        }
        #expect(report.passed, "\(report)")
        #expect(receiver.receive() == "READY=1")
    }
}
