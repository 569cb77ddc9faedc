// The operator's sockets, served by one thread through poll: many clients at once, none able to
// hold the others. Each request has one deadline that covers reading it, carrying it out and
// writing the answer; the number of clients is bounded; every peer's credentials are known
// before its first request is read.
import Glibc
import KeelCore

/// How a socket frames its requests and answers.
public enum ControlFraming: Sendable, Equatable {
    /// Keel's own: one line in, the answer, then the connection closes.
    case line
    /// multipathd's (libmpathcmd): a native `size_t` length, then that many bytes ending in NUL,
    /// both ways; several requests per connection.
    case multipathd
    /// HTTP/1.x for a metrics scraper on a localhost TCP port: the request line (its headers are
    /// read and dropped) is the request; the service answers a whole HTTP response, and the
    /// connection closes. Peers have no credentials (not root).
    case http
}

/// The peer of a connection (SO_PEERCRED).
public struct PeerCredentials: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32
    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
}

/// Identifies one request while it is being carried out.
public struct ControlToken: Hashable, Sendable {
    public var client: UInt64
}

/// What a request turned into.
public enum ControlStart: Sendable, Equatable {
    /// The answer, now.
    case reply(String)
    /// The answer comes later, from `ControlService.collect`.
    case later
    /// No answer: close the connection (`quit`).
    case close
}

/// What the server serves.
public protocol ControlService: AnyObject {
    /// Starts one request (its text without framing).
    func begin(_ request: String, framing: ControlFraming, peer: PeerCredentials, token: ControlToken) -> ControlStart
    /// Answers that became ready since the last call.
    func collect() -> [(token: ControlToken, answer: String)]
    /// A request whose deadline passed before its answer: the service forgets it.
    func abandon(_ token: ControlToken)
    /// A descriptor that becomes readable when `collect` has answers (-1: none).
    var wakeDescriptor: Int32 { get }
}

/// A poll-driven server of control sockets.
public final class ControlServer {
    public struct Limits: Sendable {
        /// Connections served at once; past it a newcomer makes room as `admits` says, or is
        /// refused.
        public var clientsMax = 64
        /// Connections one unprivileged user may hold at once: a user who opens many and trickles
        /// bytes into each fills at most this many slots, and never keeps root out.
        public var clientsPerUserMax = 16
        /// From the first byte of a request to the last byte of its answer (multipathd's
        /// `uxsock_timeout` default).
        public var requestTimeoutNs: Nanoseconds = 4 * Time.nsPerSecond
        /// How long a multipathd-framed connection may sit between requests (`multipathd -k`).
        public var idleTimeoutNs: Nanoseconds = 300 * Time.nsPerSecond
        /// Longest request text (multipathd's MAX_CMD_LEN).
        public var requestBytesMax = ControlGrammar.lineBytesMax
        /// Longest answer; a longer one is cut and ends with a note.
        public var answerBytesMax = 16 << 20
        /// Connections one process may hold at once, root's included (a process with no
        /// credentials, a TCP peer, is not counted). A runaway script that opens connections in
        /// a loop gets this many served at a time and the rest refused as they are accepted, at
        /// the cost of an accept and a close each, so the kernel's queue empties every turn and
        /// another process's connection is taken and answered within a turn instead of behind
        /// the flood. multipathd's clients and libdmmp hold one connection per call.
        public var clientsPerProcessMax = 8
        /// Connections the kernel queues for `accept` (listen's backlog): past it, `connect`
        /// blocks, and a blocked client races the flood for each freed place. Since every turn
        /// empties the queue, it only needs to be deep enough that connect never waits.
        public var backlog: Int32 = 128
        /// Connections taken from one socket in one turn, admitted or refused: a turn always
        /// ends and the clients already in are served.
        public var acceptsPerTurnMax = 512
        public init() {}
    }

    private struct Listener {
        var fd: Int32
        var framing: ControlFraming
        var name: String
    }

    /// reading: a request is being received; queued: received whole, waiting for its process's
    /// turn; waiting: the service has it; writing: its answer is being sent.
    private enum Phase { case reading, queued, waiting, writing }

    private struct Client {
        var fd: Int32
        var id: UInt64
        var framing: ControlFraming
        var peer: PeerCredentials
        var input: [UInt8] = []
        var output: [UInt8] = []
        var written = 0
        var phase = Phase.reading
        /// When the request in progress must be answered (nil: between requests).
        var deadlineNs: Nanoseconds?
        var idleSinceNs: Nanoseconds
        var closeAfterWrite = false
        /// The deadline passed while the service worked: "timeout" was answered instead.
        var timeoutAnswered = false
        /// Answers written whole: a session (`multipathd -k`) rather than a connection that has
        /// not spoken yet.
        var served = 0
        /// The request received whole and not started yet (phase `queued`), and when it was.
        var queued = ""
        var queuedAtNs: Nanoseconds = 0

        /// Whose share the client's requests count in: its process, or itself when it has no
        /// credentials (a TCP peer).
        var share: Int64 { peer.pid > 0 ? Int64(peer.pid) : -Int64(truncatingIfNeeded: id) }
    }

    public let limits: Limits
    private var listeners: [Listener] = []
    private var clients: [UInt64: Client] = [:]
    private var nextID: UInt64 = 1
    /// Connections refused or evicted because `clientsMax` were open, and requests dropped at
    /// their deadline (for `show daemon`).
    public private(set) var refused = 0
    public private(set) var timedOut = 0
    /// A descriptor held in reserve so a connection can be taken and closed when the process is
    /// out of descriptors, instead of leaving the listener readable forever.
    private var spare: Int32 = open("/dev/null", O_RDONLY | O_CLOEXEC)

    public init(limits: Limits = Limits()) { self.limits = limits }

    deinit {
        for c in clients.values { close(c.fd) }
        for l in listeners { close(l.fd) }
        if spare >= 0 { close(spare) }
    }

    /// The names of the sockets listened on.
    public var listening: [String] { listeners.map(\.name) }
    /// Connections open now.
    public var clientCount: Int { clients.count }

    /// Listens on a socket file (a stale one is replaced), with `mode` permissions.
    public func listen(path: String, framing: ControlFraming, mode: mode_t = 0o600) throws(SystemError) {
        unlink(path)
        let fd = try bound(Self.address(path), length: socklen_t(MemoryLayout<sockaddr_un>.size))
        chmod(path, mode)
        listeners.append(Listener(fd: fd, framing: framing, name: path))
    }

    /// Listens on 127.0.0.1:`port` (TCP, for `.http`; 0 picks a free port, see `tcpPort`).
    public func listen(localhostPort port: UInt16, framing: ControlFraming) throws(SystemError) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.localhostAddress(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0, Glibc.listen(fd, limits.backlog) == 0 else {
            let e = errno
            close(fd)
            throw SystemError("bind", errno: e)
        }
        var bound = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        tcpPort = UInt16(bigEndian: bound.sin_port)
        listeners.append(Listener(fd: fd, framing: framing, name: "127.0.0.1:\(tcpPort)"))
    }

    /// 127.0.0.1:`port`.
    public static func localhostAddress(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }

    /// The TCP port `listen(localhostPort:)` bound (0: none).
    public private(set) var tcpPort: UInt16 = 0

    /// Listens on an abstract socket (`@name`): no file, gone with the process. EADDRINUSE when
    /// another process (a running multipathd) holds the name.
    public func listen(abstract name: String, framing: ControlFraming) throws(SystemError) {
        let (address, length) = Self.abstractAddress(name)
        let fd = try bound(address, length: length)
        listeners.append(Listener(fd: fd, framing: framing, name: "@" + name))
    }

    /// An abstract socket's address (a NUL, then the name) and its length.
    public static func abstractAddress(_ name: String) -> (sockaddr_un, socklen_t) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(name.utf8.prefix(MemoryLayout.size(ofValue: address.sun_path) - 1))
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw[0] = 0
            for (i, b) in bytes.enumerated() { raw[i + 1] = b }
        }
        return (address, socklen_t(MemoryLayout<sa_family_t>.size + 1 + bytes.count))
    }

    private func bound(_ address: sockaddr_un, length: socklen_t) throws(SystemError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        var address = address
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard result == 0 else {
            let e = errno
            close(fd)
            throw SystemError("bind", errno: e)
        }
        guard Glibc.listen(fd, limits.backlog) == 0 else {
            let e = errno
            close(fd)
            throw SystemError("listen", errno: e)
        }
        return fd
    }

    /// A socket file's address.
    public static func address(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    /// One turn: waits up to `timeoutMs` (less when a deadline is nearer) for the sockets, the
    /// service's descriptor and `extra`, then accepts, reads, starts requests, collects answers,
    /// writes, and drops clients past their deadline. Returns which of `extra` were readable.
    @discardableResult
    public func turn(service: ControlService, timeoutMs: Int32, extra: [Int32] = []) -> [Bool] {
        var fds: [pollfd] = []
        for l in listeners { fds.append(pollfd(fd: l.fd, events: Int16(POLLIN), revents: 0)) }
        fds.append(pollfd(fd: service.wakeDescriptor, events: Int16(POLLIN), revents: 0))
        let extraSlot = fds.count
        for fd in extra { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
        let clientSlot = fds.count
        let order = Array(clients.keys)
        var nearest = Nanoseconds.max
        for id in order {
            let c = clients[id]!
            var events = Int16(0)
            if c.phase == .reading { events |= Int16(POLLIN) }
            if c.phase == .writing { events |= Int16(POLLOUT) }
            fds.append(pollfd(fd: c.fd, events: events, revents: 0))
            nearest = min(nearest, c.deadlineNs ?? (c.idleSinceNs &+ limits.idleTimeoutNs))
        }
        let now = LogClock.nowNs()
        var timeout = timeoutMs
        if nearest != .max { timeout = min(timeout, Int32(clamping: max(0, nearest - now) / Time.nsPerMs + 1)) }
        if clients.values.contains(where: { $0.phase == .queued }) { timeout = 0 }
        let n = poll(&fds, nfds_t(fds.count), timeout)
        var extraReadable = [Bool](repeating: false, count: extra.count)
        if n > 0 {
            for (i, l) in listeners.enumerated() where fds[i].revents & Int16(POLLIN) != 0 { accept(from: l, service: service) }
            for i in 0..<extra.count { extraReadable[i] = fds[extraSlot + i].revents != 0 }
            for (i, id) in order.enumerated() {
                let revents = fds[clientSlot + i].revents
                guard revents != 0, clients[id] != nil else { continue }
                if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0, clients[id]!.phase == .reading {
                    read(id, service: service)
                } else if revents & Int16(POLLHUP | POLLERR) != 0 && clients[id]!.phase != .writing {
                    drop(id, service: service)
                }
                if clients[id]?.phase == .writing { write(id) }
            }
        }
        for (token, answer) in service.collect() { answered(token.client, answer) }
        expire(service: service)
        startQueued(service: service)
        return extraReadable
    }

    /// Starts, for each process with requests queued, the one it sent first: one request per
    /// process per turn. A process that floods the socket (many connections, or many requests
    /// pipelined on one) therefore delays another process's request by one request of its own
    /// per turn, however many it has queued, and its own wait grows instead.
    private func startQueued(service: ControlService) {
        var first: [Int64: (id: UInt64, atNs: Nanoseconds)] = [:]
        for (id, c) in clients where c.phase == .queued {
            if let seen = first[c.share], seen.atNs < c.queuedAtNs || (seen.atNs == c.queuedAtNs && seen.id < id) { continue }
            first[c.share] = (id, c.queuedAtNs)
        }
        for (id, _) in first.values.sorted(by: { $0.atNs < $1.atNs }) {
            guard var client = clients[id], client.phase == .queued else { continue }
            let text = client.queued
            client.queued = ""
            client.phase = .reading
            clients[id] = client
            start(id, text: text, service: service)
        }
    }

    /// Puts a request received whole in its process's queue (`startQueued` starts it).
    private func enqueue(_ id: UInt64, text: String) {
        guard clients[id] != nil else { return }
        clients[id]!.phase = .queued
        clients[id]!.queued = text
        clients[id]!.queuedAtNs = LogClock.nowNs()
    }

    /// Takes pending connections in their order of arrival, as many as there are free slots (at
    /// least one, so that a full table still sees who is knocking: root may make room). The rest
    /// wait in the kernel's backlog for a later turn instead of being taken at once and then
    /// evicted by a flood that arrived behind them. Connections refused on admission (their
    /// process or user holds its share) take no slot: the queue is emptied past them, up to
    /// `acceptsPerTurnMax`. A request that came with its connection is read and answered at once.
    private func accept(from listener: Listener, service: ControlService) {
        var budget = max(1, limits.clientsMax - clients.count)
        var taken = 0
        while budget > 0 && taken < limits.acceptsPerTurnMax {
            taken += 1
            let fd = Glibc.accept(listener.fd, nil, nil)
            if fd < 0 {
                if errno == EMFILE || errno == ENFILE { shedOne(listener.fd) }
                return
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            let now = LogClock.nowNs()
            // struct ucred (pid, uid, gid), which Glibc exports only under _GNU_SOURCE. A TCP
            // peer has none: it counts as nobody.
            var credentials: (pid: Int32, uid: UInt32, gid: UInt32) = (0, UInt32.max, UInt32.max)
            var length = socklen_t(12)
            if listener.framing != .http {
                guard getsockopt(fd, SOL_SOCKET, 17 /* SO_PEERCRED */, &credentials, &length) == 0, length == 12 else {
                    close(fd)
                    continue
                }
            }
            guard admits(uid: credentials.uid, pid: credentials.pid) else {
                refused += 1
                close(fd)
                continue
            }
            budget -= 1
            let id = nextID
            nextID += 1
            var client = Client(fd: fd, id: id, framing: listener.framing,
                                peer: PeerCredentials(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid), idleSinceNs: now)
            // A line or HTTP client has one request: its clock starts at once.
            if listener.framing != .multipathd { client.deadlineNs = now + limits.requestTimeoutNs }
            clients[id] = client
            read(id, service: service)
        }
    }

    /// Out of descriptors: frees the spare, takes one pending connection and closes it (its
    /// client sees a refusal), then keeps the spare again.
    private func shedOne(_ listener: Int32) {
        if spare >= 0 { close(spare) }
        let fd = Glibc.accept(listener, nil, nil)
        if fd >= 0 { close(fd) }
        spare = open("/dev/null", O_RDONLY | O_CLOEXEC)
        refused += 1
    }

    /// Whether a new connection of `uid`'s process `pid` may be served, making room if it must:
    /// a process past `clientsPerProcessMax` and an unprivileged user past `clientsPerUserMax`
    /// are refused. At `clientsMax` the first to go is the oldest
    /// connection that has not spoken yet, then the session idle the longest (over a second),
    /// then, for root only, the unprivileged client whose request began first (a trickler's or a
    /// non-reader's); otherwise the newcomer is refused. So a flood of connections never closes
    /// a session between its requests, and no number of unprivileged clients can keep root from
    /// failing or reinstating a path.
    private func admits(uid: UInt32, pid: Int32) -> Bool {
        if pid > 0 && clients.values.reduce(0, { $0 + ($1.peer.pid == pid ? 1 : 0) }) >= limits.clientsPerProcessMax { return false }
        if uid != 0 && clients.values.reduce(0, { $0 + ($1.peer.uid == uid ? 1 : 0) }) >= limits.clientsPerUserMax { return false }
        guard clients.count >= limits.clientsMax else { return true }
        let idle = clients.values.filter { $0.deadlineNs == nil }
        if let silent = idle.filter({ $0.served == 0 }).min(by: { $0.idleSinceNs < $1.idleSinceNs }) {
            evict(silent.id)
            return true
        }
        let now = LogClock.nowNs()
        if let session = idle.filter({ now - $0.idleSinceNs > Time.nsPerSecond }).min(by: { $0.idleSinceNs < $1.idleSinceNs }) {
            evict(session.id)
            return true
        }
        // A request the service is carrying out is left to finish (or time out).
        guard uid == 0, let busy = clients.values.filter({ $0.peer.uid != 0 && $0.phase != .waiting })
            .min(by: { ($0.deadlineNs ?? 0) < ($1.deadlineNs ?? 0) }) else { return false }
        evict(busy.id)
        return true
    }

    private func evict(_ id: UInt64) {
        close(clients[id]!.fd)
        clients[id] = nil
        refused += 1
    }

    private func read(_ id: UInt64, service: ControlService) {
        var chunk = [UInt8](repeating: 0, count: 1024)
        while var client = clients[id], client.phase == .reading {
            let n = chunk.withUnsafeMutableBytes { recv(client.fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
            if n <= 0 {
                drop(id, service: service)
                return
            }
            if client.deadlineNs == nil { client.deadlineNs = LogClock.nowNs() + limits.requestTimeoutNs }
            client.input.append(contentsOf: chunk[0..<n])
            clients[id] = client
            switch Self.request(in: &clients[id]!.input, framing: client.framing, bytesMax: limits.requestBytesMax) {
            case .incomplete: continue
            case .invalid:
                drop(id, service: service)
                return
            case .complete(let text):
                enqueue(id, text: text)
                return
            }
        }
    }

    /// A request taken out of what a client sent so far.
    public enum Extracted: Equatable {
        case incomplete
        /// Framing violated (a zero or too long length, an overlong line): the client is dropped.
        case invalid
        case complete(String)
    }

    /// Takes the first whole request out of `input`, by `framing`'s rules.
    public static func request(in input: inout [UInt8], framing: ControlFraming, bytesMax: Int) -> Extracted {
        switch framing {
        case .line:
            if let end = input.firstIndex(of: UInt8(ascii: "\n")) {
                guard end <= bytesMax else { return .invalid }
                let text = String(decoding: input[..<end], as: UTF8.self)
                input.removeSubrange(...end)
                return .complete(text)
            }
            return input.count > bytesMax ? .invalid : .incomplete
        case .multipathd:
            let header = MemoryLayout<Int>.size
            guard input.count >= header else { return .incomplete }
            var length = 0
            withUnsafeMutableBytes(of: &length) { raw in
                for i in 0..<header { raw[i] = input[i] }
            }
            guard length > 0 && length <= bytesMax else { return .invalid }
            guard input.count >= header + length else { return .incomplete }
            let body = input[header..<(header + length)]
            let text = String(decoding: body.prefix { $0 != 0 }, as: UTF8.self)
            input.removeSubrange(..<(header + length))
            return .complete(text)
        case .http:
            // The request line and headers end with an empty line; a scraper's headers fit in
            // 4 KiB (the request line alone is held to `bytesMax`).
            let limit = 4096
            guard let end = Self.endOfHeaders(input) else { return input.count > limit ? .invalid : .incomplete }
            guard end <= limit else { return .invalid }
            let lineEnd = input.firstIndex(of: UInt8(ascii: "\n")) ?? end
            guard lineEnd <= bytesMax else { return .invalid }
            let line = String(decoding: input[..<lineEnd], as: UTF8.self)
            input.removeAll()
            return .complete(line.hasSuffix("\r") ? String(line.dropLast()) : line)
        }
    }

    /// Where an HTTP request's headers end (after the empty line), if they do.
    static func endOfHeaders(_ input: [UInt8]) -> Int? {
        var i = 0
        while i < input.count {
            if input[i] == UInt8(ascii: "\n") {
                if i + 1 < input.count && input[i + 1] == UInt8(ascii: "\n") { return i + 2 }
                if i + 2 < input.count && input[i + 1] == UInt8(ascii: "\r") && input[i + 2] == UInt8(ascii: "\n") { return i + 3 }
            }
            i += 1
        }
        return nil
    }

    /// A whole HTTP/1.0 response: `status` (`200 OK`), a text body, then the connection closes.
    public static func httpResponse(status: String, contentType: String = "text/plain; charset=utf-8", body: String) -> String {
        "HTTP/1.0 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
    }

    /// The bytes of an answer in `framing`: multipathd's length (the text and its NUL) first.
    public static func frame(_ answer: String, framing: ControlFraming) -> [UInt8] {
        switch framing {
        case .line:
            var bytes = Array(answer.utf8)
            if bytes.last != UInt8(ascii: "\n") { bytes.append(UInt8(ascii: "\n")) }
            return bytes
        case .multipathd:
            var length = answer.utf8.count + 1
            var bytes = withUnsafeBytes(of: &length) { Array($0) }
            bytes += answer.utf8
            bytes.append(0)
            return bytes
        case .http:
            return Array(answer.utf8)
        }
    }

    private func start(_ id: UInt64, text: String, service: ControlService) {
        guard let client = clients[id] else { return }
        clients[id]!.phase = .waiting
        switch service.begin(text, framing: client.framing, peer: client.peer, token: ControlToken(client: id)) {
        case .reply(let answer): answered(id, answer)
        case .later: break
        case .close: drop(id, service: service)
        }
    }

    private func answered(_ id: UInt64, _ answer: String) {
        guard var client = clients[id], client.phase == .waiting else { return }
        var text = answer
        if text.utf8.count > limits.answerBytesMax {
            text = String(decoding: text.utf8.prefix(limits.answerBytesMax), as: UTF8.self) + "\n(answer cut at \(limits.answerBytesMax) bytes)\n"
        }
        client.output = Self.frame(text, framing: client.framing)
        client.written = 0
        client.phase = .writing
        client.closeAfterWrite = client.framing != .multipathd
        clients[id] = client
        write(id)
    }

    private func write(_ id: UInt64) {
        guard var client = clients[id] else { return }
        while client.written < client.output.count {
            let n = client.output.withUnsafeBytes { raw in
                send(client.fd, raw.baseAddress! + client.written, raw.count - client.written, Int32(MSG_NOSIGNAL))
            }
            if n < 0 && (errno == EAGAIN || errno == EINTR) {
                clients[id] = client
                return
            }
            if n <= 0 {
                close(client.fd)
                clients[id] = nil
                return
            }
            client.written += n
        }
        if client.closeAfterWrite {
            close(client.fd)
            clients[id] = nil
            return
        }
        client.output = []
        client.served += 1
        client.phase = .reading
        client.deadlineNs = nil
        client.idleSinceNs = LogClock.nowNs()
        clients[id] = client
        // Another request may already be waiting in the input.
        if !client.input.isEmpty {
            switch Self.request(in: &clients[id]!.input, framing: client.framing, bytesMax: limits.requestBytesMax) {
            case .complete(let text):
                clients[id]!.deadlineNs = LogClock.nowNs() + limits.requestTimeoutNs
                enqueue(id, text: text)
            case .invalid:
                close(client.fd)
                clients[id] = nil
            case .incomplete:
                clients[id]!.deadlineNs = LogClock.nowNs() + limits.requestTimeoutNs
            }
        }
    }

    private func drop(_ id: UInt64, service: ControlService) {
        guard let client = clients[id] else { return }
        if client.phase == .waiting { service.abandon(ControlToken(client: id)) }
        close(client.fd)
        clients[id] = nil
    }

    /// Drops every client past its deadline or idle limit.
    private func expire(service: ControlService) {
        let now = LogClock.nowNs()
        for (id, client) in clients {
            if let deadline = client.deadlineNs, now >= deadline {
                timedOut += 1
                if client.phase == .queued {
                    // Never started (its process's other requests came first): answered as a
                    // slow service's request is.
                    clients[id]!.queued = ""
                    clients[id]!.phase = .waiting
                }
                if clients[id]!.phase == .waiting && !client.timeoutAnswered {
                    // The service is slow (the recovery thread did not answer): say so, as
                    // multipathd does, and give the answer a second to leave.
                    if client.phase == .waiting { service.abandon(ControlToken(client: id)) }
                    clients[id]!.timeoutAnswered = true
                    clients[id]!.deadlineNs = now + Time.nsPerSecond
                    answered(id, client.framing == .multipathd ? "fail\ntimeout\n"
                             : client.framing == .http ? Self.httpResponse(status: "503 Service Unavailable", body: "timeout\n") : "error: timeout")
                } else {
                    drop(id, service: service)
                }
            } else if client.deadlineNs == nil, now >= client.idleSinceNs &+ limits.idleTimeoutNs {
                drop(id, service: service)
            }
        }
    }
}
