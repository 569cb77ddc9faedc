// The client side of the control sockets: connect, send a command, read its answer, with one
// deadline over the whole exchange. Used by keelctl; speaks both framings keeld serves.
import Glibc
import KeelCore

/// Why a command got no answer.
public enum ControlClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing listens there (ENOENT, ECONNREFUSED): the daemon is not running.
    case notRunning(String)
    /// Connecting or sending failed otherwise.
    case system(SystemError)
    /// No whole answer before the deadline.
    case timedOut(String)
    /// The daemon closed the connection before a whole answer, or broke the framing.
    case closed(String)

    public var description: String {
        switch self {
        case .notRunning(let socket): return "no daemon listens on \(socket)"
        case .system(let error): return "\(error)"
        case .timedOut(let command): return "no answer to \"\(command)\" in time"
        case .closed(let command): return "the daemon closed the connection before answering \"\(command)\""
        }
    }
}

/// One connection to keeld's (or multipathd's) control socket.
public final class ControlClient {
    /// multipathd's abstract socket name, which keeld serves with multipathd's framing.
    public static let multipathdName = "/org/kernel/linux/storage/multipathd"
    /// Where the answer of one command may go (keeld's cap on an answer is 16 MiB).
    public static let answerBytesMax = 32 << 20

    public let socketName: String
    public let framing: ControlFraming
    let timeoutNs: Nanoseconds
    private var fd: Int32 = -1

    /// Connects to the abstract socket `name` (multipathd framing: several commands per connection).
    public init(abstract name: String = ControlClient.multipathdName, timeoutNs: Nanoseconds = 10 * Time.nsPerSecond) throws(ControlClientError) {
        socketName = "@" + name
        framing = .multipathd
        self.timeoutNs = timeoutNs
        let (address, length) = ControlServer.abstractAddress(name)
        try connect(address, length: length)
    }

    /// Connects to the socket file `path` (keeld's `--control-socket`: one line in, one answer,
    /// then the daemon closes; each command gets its own connection).
    public init(path: String, timeoutNs: Nanoseconds = 10 * Time.nsPerSecond) throws(ControlClientError) {
        socketName = path
        framing = .line
        self.timeoutNs = timeoutNs
        let address = ControlServer.address(path)
        try connect(address, length: socklen_t(MemoryLayout<sockaddr_un>.size))
    }

    deinit { if fd >= 0 { close(fd) } }

    private func connect(_ address: sockaddr_un, length: socklen_t) throws(ControlClientError) {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(SystemError("socket", errno: errno)) }
        var address = address
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        if ok != 0 {
            let e = errno
            close(fd)
            fd = -1
            if e == ENOENT || e == ECONNREFUSED { throw .notRunning(socketName) }
            throw .system(SystemError("connect", errno: e))
        }
    }

    /// Sends `command` and returns the daemon's answer text (without framing). On a line-framed
    /// socket the connection is used up by one command.
    public func ask(_ command: String) throws(ControlClientError) -> String {
        guard fd >= 0 else { throw .closed(command) }
        let deadline = LogClock.nowNs() + timeoutNs
        // A request is framed as the daemon frames its answers.
        let request = ControlServer.frame(command, framing: framing)
        var sent = 0
        while sent < request.count {
            guard try wait(for: Int16(POLLOUT), until: deadline, command: command) else { throw .timedOut(command) }
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                if errno == EPIPE || errno == ECONNRESET { throw .closed(command) }
                throw .system(SystemError("send", errno: errno))
            }
            sent += n
        }
        var input: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            if let answer = Self.answer(in: &input, framing: framing, closed: false) { return answer }
            guard try wait(for: Int16(POLLIN), until: deadline, command: command) else { throw .timedOut(command) }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw .system(SystemError("recv", errno: errno))
            }
            if n == 0 {
                if let answer = Self.answer(in: &input, framing: framing, closed: true) { return answer }
                throw .closed(command)
            }
            input += chunk[..<n]
            if input.count > Self.answerBytesMax + MemoryLayout<Int>.size { throw .closed(command) }
        }
    }

    /// The first whole answer in `input` (removed from it), nil while incomplete. A line-framed
    /// answer is whole when the daemon closes the connection.
    public static func answer(in input: inout [UInt8], framing: ControlFraming, closed: Bool) -> String? {
        switch framing {
        case .line, .http:
            // HTTP answers too are whole when the server closes (keelctl does not speak it).
            guard closed else { return nil }
            var bytes = input
            input.removeAll()
            if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
            return String(decoding: bytes, as: UTF8.self)
        case .multipathd:
            guard case .complete(let text) = ControlServer.request(in: &input, framing: .multipathd, bytesMax: answerBytesMax) else { return nil }
            return text
        }
    }

    /// Waits until the socket is ready for `events` or the deadline passes (false).
    private func wait(for events: Int16, until deadline: Nanoseconds, command: String) throws(ControlClientError) -> Bool {
        while true {
            let left = deadline - LogClock.nowNs()
            guard left > 0 else { return false }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let n = poll(&p, 1, Int32(clamping: left / Time.nsPerMs + 1))
            if n < 0 {
                if errno == EINTR { continue }
                throw .system(SystemError("poll", errno: errno))
            }
            if n > 0 { return true }
        }
    }
}
