// The control sockets' server: multipathd's framing, several requests per connection, clients
// that trickle, never read or never answer, the client cap, and answers that come later.
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Synchronization
import Testing

/// Answers "echo X" at once, "later" from collect() when `release` is set, "huge" with 4 MiB;
/// "stall" holds the server's thread until `unstall` is set.
private final class FakeService: ControlService, @unchecked Sendable {
    let lock = Mutex<(pending: [ControlToken], abandoned: Int, peers: [PeerCredentials], release: Bool)>(([], 0, [], false))
    let stalled = Atomic<Bool>(false)
    let unstall = Atomic<Bool>(false)
    func begin(_ request: String, framing: ControlFraming, peer: PeerCredentials, token: ControlToken) -> ControlStart {
        lock.withLock { $0.peers.append(peer) }
        switch request {
        case "stall":
            stalled.store(true, ordering: .releasing)
            while !unstall.load(ordering: .acquiring) { usleep(1000) }
            return .reply("unstalled")
        case "later":
            lock.withLock { $0.pending.append(token) }
            return .later
        case "huge": return .reply(String(repeating: "x", count: 4 << 20))
        case "quit": return .close
        default: return .reply("echo " + request)
        }
    }
    func collect() -> [(token: ControlToken, answer: String)] {
        lock.withLock { state in
            guard state.release else { return [] }
            defer { state.pending.removeAll() }
            return state.pending.map { ($0, "done") }
        }
    }
    func abandon(_ token: ControlToken) { lock.withLock { $0.abandoned += 1 } }
    var wakeDescriptor: Int32 { -1 }
}

/// A server on its own thread, listening on a fresh abstract name (multipathd framing) and a
/// socket file (line framing).
private final class Running: @unchecked Sendable {
    let server: ControlServer
    let service = FakeService()
    let name = "/keel-test/\(UUID().uuidString)"
    let path = NSTemporaryDirectory() + "keel-ctl-\(UUID().uuidString).sock"
    let stop = Atomic<Bool>(false)
    var thread: Thread?

    init(limits: ControlServer.Limits = ControlServer.Limits(), http: Bool = false) throws {
        server = ControlServer(limits: limits)
        try server.listen(abstract: name, framing: .multipathd)
        try server.listen(path: path, framing: .line)
        if http { try server.listen(localhostPort: 0, framing: .http) }
        let t = Thread { [self] in
            while !stop.load(ordering: .acquiring) { server.turn(service: service, timeoutMs: 20) }
        }
        thread = t
        t.start()
    }

    func shutdown() {
        stop.store(true, ordering: .releasing)
        while thread?.isFinished == false { usleep(1000) }
        unlink(path)
    }

    /// A connected client socket (5 s receive timeout).
    func connectAbstract() throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw[0] = 0
            for (i, b) in bytes.enumerated() { raw[i + 1] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + 1 + bytes.count)
        let ok = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
        guard ok == 0 else { throw POSIXError(.ECONNREFUSED) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }
}

private func sendAll(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { return }
        offset += n
    }
}

private func receive(_ fd: Int32, _ count: Int) -> [UInt8]? {
    var bytes = [UInt8](repeating: 0, count: count)
    var got = 0
    while got < count {
        let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
        if n <= 0 { return nil }
        got += n
    }
    return bytes
}

/// Sends `command` from a forked child (another process to SO_PEERCRED; after the fork it only
/// makes system calls) and checks that its echo comes back within 5 s.
private func askFromAnotherProcess(_ r: Running, _ command: String) -> ProcessChildReport {
    let (abstract, length) = ControlServer.abstractAddress(r.name)
    var address = abstract
    let request = ControlServer.frame(command, framing: .multipathd)
    let expectedLength = "echo \(command)".utf8.count + 1
    return runInProcessChild(timeoutSeconds: 30) { log in
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let ok = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
        log.check(ok == 0, "connect: errno \(errno)")
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var answerLength = 0
        let got = recv(fd, &answerLength, 8, Int32(MSG_WAITALL))
        log.check(got == 8 && answerLength == expectedLength, "another process is answered (header \(got), length \(answerLength))")
        close(fd)
    }
}

/// One multipathd request and its answer (nil when the server closed the connection).
private func ask(_ fd: Int32, _ command: String) -> String? {
    sendAll(fd, ControlServer.frame(command, framing: .multipathd))
    guard let header = receive(fd, 8) else { return nil }
    let length = header.withUnsafeBytes { $0.load(as: Int.self) }
    guard length > 0, let body = receive(fd, length) else { return nil }
    return String(decoding: body.prefix { $0 != 0 }, as: UTF8.self)
}

@Suite(.serialized) struct ControlServerTests {
    @Test func framingRoundTripsAndLengthsOutsideOneTo512CloseTheConnection() throws {
        var input = ControlServer.frame("show paths", framing: .multipathd) + ControlServer.frame("show maps", framing: .multipathd)
        #expect(ControlServer.request(in: &input, framing: .multipathd, bytesMax: 512) == .complete("show paths"))
        #expect(ControlServer.request(in: &input, framing: .multipathd, bytesMax: 512) == .complete("show maps"))
        #expect(input.isEmpty)
        var zero = [UInt8](repeating: 0, count: 8)
        #expect(ControlServer.request(in: &zero, framing: .multipathd, bytesMax: 512) == .invalid)
        var long = ControlServer.frame(String(repeating: "a", count: 600), framing: .multipathd)
        #expect(ControlServer.request(in: &long, framing: .multipathd, bytesMax: 512) == .invalid)
        var half = Array(ControlServer.frame("show maps", framing: .multipathd).prefix(12))
        #expect(ControlServer.request(in: &half, framing: .multipathd, bytesMax: 512) == .incomplete)
    }

    @Test func severalRequestsOnOneConnectionAndThePeersCredentials() throws {
        let r = try Running()
        defer { r.shutdown() }
        let fd = try r.connectAbstract()
        defer { close(fd) }
        #expect(ask(fd, "show paths") == "echo show paths")
        #expect(ask(fd, "show maps") == "echo show maps")
        let peers = r.service.lock.withLock { $0.peers }
        #expect(peers.count == 2 && peers.allSatisfy { $0.uid == getuid() && $0.pid == getpid() })
        var bad = [UInt8](repeating: 0, count: 8)
        bad[0] = 0xff; bad[1] = 0xff   // 65535 bytes: over the limit
        sendAll(fd, bad)
        #expect(receive(fd, 1) == nil, "the connection is closed")
    }

    @Test("an answer over the reply cap is cut there with a line saying so, and the session goes on")
    func answersOverTheReplyCapAreCut() throws {
        var limits = ControlServer.Limits()
        limits.answerBytesMax = 64
        let r = try Running(limits: limits)
        defer { r.shutdown() }
        let fd = try r.connectAbstract()
        defer { close(fd) }
        let long = "show " + String(repeating: "x", count: 300)
        let answer = try #require(ask(fd, long))
        #expect(answer == String(("echo " + long).prefix(64)) + "\n(answer cut at 64 bytes)\n")
        #expect(ask(fd, "show maps") == "echo show maps", "the connection still serves")
    }

    @Test func aTricklingClientIsDroppedAtItsDeadlineAndNeverHoldsTheOthers() throws {
        var limits = ControlServer.Limits()
        limits.requestTimeoutNs = 500 * Time.nsPerMs
        let r = try Running(limits: limits)
        defer { r.shutdown() }
        let slow = try r.connectAbstract()
        defer { close(slow) }
        sendAll(slow, [9])   // one byte of a length, then nothing
        let started = LogClock.nowNs()
        for i in 0..<20 {
            let fast = try r.connectAbstract()
            #expect(ask(fast, "n\(i)") == "echo n\(i)")
            close(fast)
        }
        #expect(receive(slow, 1) == nil, "dropped")
        #expect(LogClock.nowNs() - started >= 400 * Time.nsPerMs, "after its deadline, not before")
        #expect(r.server.timedOut >= 1)
    }

    @Test func aClientThatNeverReadsItsAnswerDoesNotBlockTheServer() throws {
        var limits = ControlServer.Limits()
        limits.requestTimeoutNs = 1 * Time.nsPerSecond
        let r = try Running(limits: limits)
        defer { r.shutdown() }
        let hog = try r.connectAbstract()
        defer { close(hog) }
        sendAll(hog, ControlServer.frame("huge", framing: .multipathd))   // 4 MiB it never reads
        usleep(100_000)
        let other = try r.connectAbstract()
        defer { close(other) }
        #expect(ask(other, "still here") == "echo still here")
        usleep(1_500_000)
        #expect(r.server.clientCount == 1, "the hog was dropped at its deadline")
    }

    @Test func theClientCapEvictsTheLongestIdleAndRefusesWhenAllAreBusy() throws {
        var limits = ControlServer.Limits()
        limits.clientsMax = 3
        let r = try Running(limits: limits)
        defer { r.shutdown() }
        let idle = try (0..<3).map { _ in try r.connectAbstract() }
        defer { idle.forEach { close($0) } }
        usleep(100_000)
        let newcomer = try r.connectAbstract()
        defer { close(newcomer) }
        #expect(ask(newcomer, "hello") == "echo hello", "an idle client made room")
        #expect(receive(idle[0], 1) == nil, "the oldest idle one was closed")
        #expect(r.server.clientCount <= 3)
        #expect(r.server.refused >= 1)
    }

    @Test("unprivileged users who open every slot and trickle into each hold at most 16 slots apiece, and root is still answered at once",
          .enabled(if: getuid() == 0))
    func tricklersOfSeveralUsersNeverKeepRootOut() throws {
        var limits = ControlServer.Limits()
        limits.requestTimeoutNs = 20 * Time.nsPerSecond   // the tricklers stay until root comes
        limits.clientsPerProcessMax = 128   // one child process stands for the four users
        let r = try Running(limits: limits)
        defer { r.shutdown() }
        // Everything the child needs is made here: after fork it only makes system calls.
        let (abstract, length) = ControlServer.abstractAddress(r.name)
        var address = abstract
        let request = ControlServer.frame("root here", framing: .multipathd)
        let report = runInProcessChild(timeoutSeconds: 30) { log in
            func connected() -> Int32 {
                let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
                var timeout = timeval(tv_sec: 3, tv_usec: 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                let ok = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
                return ok == 0 ? fd : -1
            }
            /// Whether the server closed `fd` rather than keeping it open: EOF, or ECONNRESET when
            /// it closed with bytes of ours unread.
            func closedByServer(_ fd: Int32, flags: Int32 = 0) -> Bool {
                var byte: UInt8 = 0
                let n = recv(fd, &byte, 1, flags)
                return n == 0 || (n < 0 && errno == ECONNRESET)
            }
            var held: [Int32] = []
            held.reserveCapacity(80)
            for uid: uid_t in [65534, 65533, 65532, 65531] {
                log.check(seteuid(uid) == 0, "seteuid(\(uid)): errno \(errno)")
                for _ in 0..<16 {
                    let fd = connected()
                    var byte: UInt8 = 9   // one byte of a length, then nothing
                    _ = send(fd, &byte, 1, Int32(MSG_NOSIGNAL))
                    held.append(fd)
                }
                usleep(100_000)   // the server reads each first byte: these clients are mid-request, not idle
                let extra = connected()
                log.check(closedByServer(extra), "a 17th connection of uid \(uid) was refused")
                close(extra)
                _ = seteuid(0)
            }
            _ = seteuid(65530)
            let fifth = connected()
            var byte: UInt8 = 0
            let n = recv(fifth, &byte, 1, 0)
            log.check(n == 0, "with every slot taken by tricklers another unprivileged user is refused (recv \(n), errno \(errno))")
            close(fifth)
            _ = seteuid(0)
            var start = timespec(), end = timespec()
            clock_gettime(CLOCK_MONOTONIC, &start)
            let root = connected()
            _ = request.withUnsafeBytes { send(root, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var answerLength = 0
            let got = recv(root, &answerLength, 8, Int32(MSG_WAITALL))
            var body = [UInt8](repeating: 0, count: 64)
            let bodyGot = got == 8 && answerLength > 0 && answerLength <= 64
                ? body.withUnsafeMutableBytes { recv(root, $0.baseAddress, answerLength, Int32(MSG_WAITALL)) } : -1
            clock_gettime(CLOCK_MONOTONIC, &end)
            log.check(bodyGot == 15 && body[0] == UInt8(ascii: "e"), "root was answered (header \(got), body \(bodyGot), errno \(errno))")
            log.note("answerMs", "\((end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1_000_000)")
            let closed = held.filter { closedByServer($0, flags: Int32(MSG_DONTWAIT)) }.count
            log.note("closedTricklers", "\(closed)")
        }
        #expect(report.passed, "\(report); server refused \(r.server.refused), clients \(r.server.clientCount)")
        #expect(report.value("closedTricklers") == "1", "exactly one trickler made room for root: \(report)")
        print("tricklers of 4 users in all 64 slots: root answered after \(report.value("answerMs") ?? "-") ms")
    }

    @Test("a process holds at most clientsPerProcessMax connections, root or not: its next is refused, another process's is answered")
    func oneProcessHoldsAtMostItsShareOfConnections() throws {
        let r = try Running()
        defer { r.shutdown() }
        let share = r.server.limits.clientsPerProcessMax
        let held = try (0..<share).map { _ in try r.connectAbstract() }
        defer { held.forEach { close($0) } }
        for fd in held { #expect(ask(fd, "mine") == "echo mine") }
        let extra = try r.connectAbstract()
        defer { close(extra) }
        #expect(ask(extra, "one more") == nil, "this process's connection past its share is refused")
        #expect(r.server.refused >= 1)
        // Another process is answered meanwhile.
        let report = askFromAnotherProcess(r, "theirs")
        #expect(report.passed, "\(report)")
    }

    @Test("requests are started one per process per turn: another process's request waiting behind five of this one's is started first or second")
    func requestsAreStartedOnePerProcessPerTurn() throws {
        let r = try Running()
        defer { r.shutdown() }
        // The server's thread is held while both processes' requests arrive.
        let staller = try r.connectAbstract()
        defer { close(staller) }
        sendAll(staller, ControlServer.frame("stall", framing: .multipathd))
        while !r.service.stalled.load(ordering: .acquiring) { usleep(1000) }
        let mine = try (1...5).map { _ in try r.connectAbstract() }
        defer { mine.forEach { close($0) } }
        for (i, fd) in mine.enumerated() { sendAll(fd, ControlServer.frame("mine \(i + 1)", framing: .multipathd)) }
        let releaser = Thread {
            usleep(300_000)
            r.service.unstall.store(true, ordering: .releasing)
        }
        releaser.start()
        let report = askFromAnotherProcess(r, "theirs")
        #expect(report.passed, "\(report)")
        for (i, fd) in mine.enumerated() {
            let length = receive(fd, 8)?.withUnsafeBytes { $0.load(as: Int.self) } ?? 0
            let body = length > 0 ? receive(fd, length) : nil
            #expect(body.map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } == "echo mine \(i + 1)")
        }
        let me = getpid()
        let peers = r.service.lock.withLock { $0.peers.map(\.pid) }
        // After "stall": this process's five and the child's one, the child's among the first two.
        let after = Array(peers.dropFirst().prefix(6))
        #expect(after.count == 6 && after.filter { $0 == me }.count == 5, "begins after the stall: \(after)")
        #expect(after.prefix(2).contains { $0 != me }, "the other process's request waited behind at most one of this one's: \(after)")
    }

    @Test("10,000 connections, a 1 MiB command, a trickler and a non-reader at once: another client keeps being answered")
    func abuseOfEveryKindLeavesOtherClientsAnswered() throws {
        let r = try Running()
        defer { r.shutdown() }
        let churned = Atomic<Int>(0)
        let abusers = Thread {
            // A trickler and a client that never reads its 4 MiB answer hold their slots meanwhile.
            let trickler = try? r.connectAbstract()
            if let trickler { sendAll(trickler, [9]) }
            let hog = try? r.connectAbstract()
            if let hog { sendAll(hog, ControlServer.frame("huge", framing: .multipathd)) }
            // A 1 MiB line on the line socket: cut off at the command cap.
            let big = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = ControlServer.address(r.path)
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(big, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            sendAll(big, [UInt8](repeating: UInt8(ascii: "a"), count: 1 << 20))
            close(big)
            for _ in 0..<10_000 {
                guard let fd = try? r.connectAbstract() else { continue }
                sendAll(fd, ControlServer.frame("x", framing: .multipathd))
                close(fd)
                churned.add(1, ordering: .relaxed)
            }
            if let trickler { close(trickler) }
            if let hog { close(hog) }
        }
        abusers.start()
        let client = try r.connectAbstract()
        defer { close(client) }
        var latencies: [Nanoseconds] = []
        var unanswered = 0
        while churned.load(ordering: .relaxed) < 10_000 && !abusers.isFinished {
            let start = LogClock.nowNs()
            if ask(client, "ping") == "echo ping" { latencies.append(LogClock.nowNs() - start) } else { unanswered += 1 }
        }
        while !abusers.isFinished { usleep(1000) }
        #expect(churned.load(ordering: .relaxed) == 10_000)
        #expect(unanswered == 0)
        #expect(latencies.count > 10, "the client was answered throughout, \(latencies.count) times")
        latencies.sort()
        let p99 = latencies.isEmpty ? 0 : latencies[latencies.count * 99 / 100]
        print("during 10,000 connections, a 1 MiB command, a trickler and a non-reader: \(latencies.count) answers, "
              + "p50 \(latencies.isEmpty ? 0 : latencies[latencies.count / 2] / 1000) us, p99 \(p99 / 1000) us, "
              + "max \((latencies.last ?? 0) / 1000) us")
    }

    @Test("out of descriptors, a pending connection is taken and closed with the spare descriptor: the client sees the refusal and the server does not spin")
    func acceptOutOfDescriptorsShedsTheConnectionAndDoesNotSpin() throws {
        let name = "/keel-test/\(UUID().uuidString)"
        let service = FakeService()
        let report = runInProcessChild(timeoutSeconds: 30) { log in
            let server = ControlServer()
            do { try server.listen(abstract: name, framing: .multipathd) } catch {
                log.fail("listen: \(error)")
                return
            }
            let client = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var timeout = timeval(tv_sec: 3, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            // No descriptor left: the soft limit just above the highest one in use, the rest filled.
            var highest: Int32 = 0
            for fd in 0..<Int32(4096) where fcntl(fd, F_GETFD) >= 0 { highest = fd }
            var limit = rlimit()
            getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
            limit.rlim_cur = rlim_t(highest + 8)
            log.check(setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, "setrlimit: errno \(errno)")
            var filled = 0
            while open("/dev/null", O_RDONLY) >= 0 { filled += 1 }
            log.check(errno == EMFILE, "filling descriptors ended with errno \(errno)")
            let (address, addressLength) = ControlServer.abstractAddress(name)
            var target = address
            let ok = withUnsafePointer(to: &target) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, addressLength) } }
            log.check(ok == 0, "connect: errno \(errno)")
            _ = server.turn(service: service, timeoutMs: 100)
            var byte: UInt8 = 0
            let n = recv(client, &byte, 1, 0)
            log.check(n == 0 || (n < 0 && errno == ECONNRESET), "the client saw its connection closed (recv \(n), errno \(errno))")
            log.check(server.refused == 1, "refused \(server.refused)")
            // Nothing is pending any more: turns wait their timeout instead of spinning.
            var start = timespec(), end = timespec()
            clock_gettime(CLOCK_MONOTONIC, &start)
            var turns = 0
            repeat {
                _ = server.turn(service: service, timeoutMs: 50)
                turns += 1
                clock_gettime(CLOCK_MONOTONIC, &end)
            } while (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1_000_000 < 300
            log.check(turns <= 10, "\(turns) turns in 300 ms: the listener kept waking the loop")
            log.check(server.refused == 1, "refused \(server.refused) after the idle turns")
            log.note("filled", "\(filled)")
            log.note("turns", "\(turns)")
        }
        #expect(report.passed, "\(report)")
    }

    @Test func laterAnswersArriveAndUnansweredOnesTimeOutWithAReply() throws {
        var limits = ControlServer.Limits()
        limits.requestTimeoutNs = 300 * Time.nsPerMs
        let r = try Running(limits: limits)
        defer { r.shutdown() }
        let fd = try r.connectAbstract()
        defer { close(fd) }
        #expect(ask(fd, "later") == "fail\ntimeout\n", "multipathd's answer when the work does not finish in time")
        #expect(r.service.lock.withLock { $0.abandoned } == 1)
        r.service.lock.withLock { $0.pending.removeAll(); $0.release = true }
        let again = try r.connectAbstract()
        defer { close(again) }
        #expect(ask(again, "later") == "done")
    }

    @Test func theLineSocketAnswersOnceAndCloses() throws {
        let r = try Running()
        defer { r.shutdown() }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = ControlServer.address(r.path)
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(ok == 0)
        sendAll(fd, Array("show daemon\n".utf8))
        var answer: [UInt8] = []
        while let byte = receive(fd, 1) { answer += byte }
        #expect(String(decoding: answer, as: UTF8.self) == "echo show daemon\n")
    }

    @Test func httpRequestsAreTheirRequestLineAndOversizedHeadersAreRefused() {
        var input = Array("GET /metrics HTTP/1.1\r\nHost: localhost:9464\r\nAccept: text/plain\r\n".utf8)
        #expect(ControlServer.request(in: &input, framing: .http, bytesMax: 512) == .incomplete, "no empty line yet")
        input += Array("\r\n".utf8)
        #expect(ControlServer.request(in: &input, framing: .http, bytesMax: 512) == .complete("GET /metrics HTTP/1.1"))
        var bare = Array("GET /metrics HTTP/1.0\n\n".utf8)
        #expect(ControlServer.request(in: &bare, framing: .http, bytesMax: 512) == .complete("GET /metrics HTTP/1.0"))
        var flood = Array(("GET / HTTP/1.1\r\n" + String(repeating: "X-Filler: y\r\n", count: 400)).utf8)
        #expect(ControlServer.request(in: &flood, framing: .http, bytesMax: 512) == .invalid)
        var longLine = Array(("GET /" + String(repeating: "a", count: 600) + " HTTP/1.1\r\n\r\n").utf8)
        #expect(ControlServer.request(in: &longLine, framing: .http, bytesMax: 512) == .invalid)
        let response = ControlServer.httpResponse(status: "200 OK", body: "x 1\n")
        #expect(response == "HTTP/1.0 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\nConnection: close\r\n\r\nx 1\n")
    }

    @Test func theLocalhostPortAnswersOneHTTPRequestAsNobodyAndCloses() throws {
        let r = try Running(http: true)
        defer { r.shutdown() }
        #expect(r.server.tcpPort != 0)
        #expect(r.server.listening.contains("127.0.0.1:\(r.server.tcpPort)"))
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = ControlServer.localhostAddress(port: r.server.tcpPort)
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(ok == 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        sendAll(fd, Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8))
        var answer: [UInt8] = []
        while let byte = receive(fd, 1) { answer += byte }
        #expect(String(decoding: answer, as: UTF8.self) == "echo GET /metrics HTTP/1.1", "the service's answer, as is, then the close")
        #expect(r.service.lock.withLock { $0.peers.last?.uid } == UInt32.max, "a TCP peer is nobody (read-only)")
    }

    @Test func theClientSpeaksBothFramingsAndSaysWhatWentWrong() throws {
        let r = try Running()
        defer { r.shutdown() }
        let client = try ControlClient(abstract: r.name, timeoutNs: 5 * Time.nsPerSecond)
        #expect(try client.ask("show paths") == "echo show paths")
        #expect(try client.ask("show maps") == "echo show maps", "several commands on one connection")
        #expect(try client.ask("huge").utf8.count == 4 << 20, "a long answer comes whole")
        let line = try ControlClient(path: r.path)
        #expect(try line.ask("show daemon") == "echo show daemon")
        #expect(throws: ControlClientError.closed("again")) { try line.ask("again") }

        #expect(throws: ControlClientError.notRunning("@/keel-test/nobody-listens")) { try ControlClient(abstract: "/keel-test/nobody-listens") }
        #expect(throws: ControlClientError.notRunning("/nonexistent/keel.sock")) { try ControlClient(path: "/nonexistent/keel.sock") }

        var limits = ControlServer.Limits()
        limits.requestTimeoutNs = 10 * Time.nsPerSecond
        let slow = try Running(limits: limits)
        defer { slow.shutdown() }
        let impatient = try ControlClient(abstract: slow.name, timeoutNs: 200 * Time.nsPerMs)
        #expect(throws: ControlClientError.timedOut("later")) { try impatient.ask("later") }
    }

    @Test func answersAreTakenWholeFromPartialInput() {
        var input = ControlServer.frame("ok", framing: .multipathd)
        let whole = input
        input.removeLast()
        #expect(ControlClient.answer(in: &input, framing: .multipathd, closed: false) == nil)
        input = whole + ControlServer.frame("second", framing: .multipathd)
        #expect(ControlClient.answer(in: &input, framing: .multipathd, closed: false) == "ok")
        #expect(ControlClient.answer(in: &input, framing: .multipathd, closed: false) == "second")
        #expect(input.isEmpty)
        var line = Array("text\n".utf8)
        #expect(ControlClient.answer(in: &line, framing: .line, closed: false) == nil, "a line answer ends when the daemon closes")
        #expect(ControlClient.answer(in: &line, framing: .line, closed: true) == "text")
    }
}
