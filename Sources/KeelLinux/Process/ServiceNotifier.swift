// sd_notify without libsystemd: datagrams to $NOTIFY_SOCKET that never block (drop and count).
import Glibc
import Synchronization
import CKeelShim

/// Why a notifier could not be made.
public enum ServiceNotifierError: Error, Equatable, Sendable, CustomStringConvertible {
    /// NOTIFY_SOCKET is neither an absolute path nor an abstract name starting with '@'
    /// (systemd's vsock addresses are not supported).
    case unsupportedAddress(String)
    /// The address does not fit in sockaddr_un.sun_path.
    case addressTooLong(String)
    /// WATCHDOG_USEC is not a positive integer.
    case invalidWatchdogUsec(String)
    /// socket(AF_UNIX, SOCK_DGRAM) failed.
    case socket(SystemError)

    public var description: String {
        switch self {
        case .unsupportedAddress(let address):
            return "NOTIFY_SOCKET '\(address)' is not an absolute path or an abstract '@' name"
        case .addressTooLong(let address):
            return "NOTIFY_SOCKET '\(address)' is longer than a unix socket address allows"
        case .invalidWatchdogUsec(let text):
            return "WATCHDOG_USEC '\(text)' is not a positive number of microseconds"
        case .socket(let error):
            return "notify socket: \(error)"
        }
    }
}

/// What happened to one notification.
public enum NotifyResult: Equatable, Sendable {
    /// The datagram was queued to the service manager.
    case sent
    /// The manager's queue was full (EAGAIN, ENOBUFS): dropped and counted, never waited for.
    case dropped
    /// Another error (ECONNREFUSED, ENOENT: nobody listens at the address); counted.
    case failed(errno: Int32)
}

/// Sends service-manager notifications (READY=1, STATUS=, WATCHDOG=1, STOPPING=1) to the
/// NOTIFY_SOCKET datagram socket, as sd_notify does, without libsystemd.
///
/// The socket is opened once, at start-up; every send is one `sendto` with MSG_DONTWAIT that
/// allocates nothing. A full queue drops the message and counts it. Safe to use from any thread.
public final class ServiceNotifier: Sendable {
    /// The address as given (a path, or '@' and an abstract name).
    public let socketAddress: String
    /// The watchdog period systemd expects (WATCHDOG_USEC, in ns); nil when there is no watchdog
    /// for this process.
    public let watchdogIntervalNs: Int64?
    /// The datagram socket (non-blocking, close-on-exec).
    public let descriptor: Int32
    private let address: sockaddr_un
    private let addressBytes: socklen_t
    private let sentCounter = Atomic<Int>(0)
    private let droppedCounter = Atomic<Int>(0)
    private let failedCounter = Atomic<Int>(0)
    /// When the last WATCHDOG=1 went out (monotonic ns); Int64.min before the first.
    private let lastWatchdogNs = Atomic<Int64>(Int64.min)

    /// Opens a datagram socket for `socketAddress` (an absolute path or "@name" for the abstract
    /// namespace). `watchdogIntervalNs` is the period the manager expects, if any.
    public init(socketAddress: String, watchdogIntervalNs: Int64? = nil) throws(ServiceNotifierError) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketAddress.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        let length: Int
        if bytes.first == UInt8(ascii: "@") {
            // Abstract: a leading NUL, then the name; the length counts exactly the name.
            guard bytes.count >= 2 else { throw .unsupportedAddress(socketAddress) }
            guard bytes.count <= capacity else { throw .addressTooLong(socketAddress) }
            withUnsafeMutableBytes(of: &address.sun_path) { path in
                path[0] = 0
                for (i, byte) in bytes.dropFirst().enumerated() { path[i + 1] = byte }
            }
            length = pathOffset + bytes.count
        } else if bytes.first == UInt8(ascii: "/") {
            guard bytes.count < capacity, !bytes.contains(0) else { throw .addressTooLong(socketAddress) }
            withUnsafeMutableBytes(of: &address.sun_path) { path in
                for (i, byte) in bytes.enumerated() { path[i] = byte }
                path[bytes.count] = 0
            }
            length = pathOffset + bytes.count + 1
        } else {
            throw .unsupportedAddress(socketAddress)
        }
        do {
            descriptor = try systemCall("socket(AF_UNIX, SOCK_DGRAM)") {
                socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            }
        } catch {
            throw .socket(error)
        }
        self.socketAddress = socketAddress
        self.address = address
        self.addressBytes = socklen_t(length)
        self.watchdogIntervalNs = watchdogIntervalNs
    }

    deinit {
        close(descriptor)
    }

    /// The notifier systemd asks for through the environment: NOTIFY_SOCKET, and WATCHDOG_USEC
    /// when WATCHDOG_PID is unset or names this process. nil when NOTIFY_SOCKET is unset (not
    /// started as Type=notify).
    public static func fromEnvironment() throws(ServiceNotifierError) -> ServiceNotifier? {
        guard let socket = environment("NOTIFY_SOCKET") else { return nil }
        let interval = try watchdogInterval(usec: environment("WATCHDOG_USEC"), pid: environment("WATCHDOG_PID"), ownPid: getpid())
        return try ServiceNotifier(socketAddress: socket, watchdogIntervalNs: interval)
    }

    /// The watchdog period in ns from WATCHDOG_USEC, or nil when there is none for `ownPid`
    /// (no WATCHDOG_USEC, or WATCHDOG_PID names another process).
    public static func watchdogInterval(usec: String?, pid: String?, ownPid: Int32) throws(ServiceNotifierError) -> Int64? {
        guard let usec else { return nil }
        if let pid, Int32(pid) != ownPid { return nil }
        guard let micros = Int64(usec), micros > 0, micros <= Int64.max / 1000 else {
            throw .invalidWatchdogUsec(usec)
        }
        return micros * 1000
    }

    private static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    // MARK: Messages

    /// READY=1: start-up is complete.
    @discardableResult public func notifyReady() -> NotifyResult { send("READY=1") }

    /// STOPPING=1: shutdown has begun.
    @discardableResult public func notifyStopping() -> NotifyResult { send("STOPPING=1") }

    /// RELOADING=1: a configuration reload has begun (send READY=1 when done).
    @discardableResult public func notifyReloading() -> NotifyResult { send("RELOADING=1") }

    /// WATCHDOG=1, sent at `nowNs` (monotonic): records the time on success, for `watchdogDue`.
    /// The daemon sends it only while its recovery loop makes progress.
    @discardableResult public func notifyWatchdog(nowNs: Int64) -> NotifyResult {
        let result = send("WATCHDOG=1")
        if result == .sent { lastWatchdogNs.store(nowNs, ordering: .relaxed) }
        return result
    }

    /// Whether a WATCHDOG=1 is due at `nowNs`: there is a watchdog and half its period has passed
    /// since the last one that went out (the margin systemd recommends).
    public func watchdogDue(nowNs: Int64) -> Bool {
        guard let interval = watchdogIntervalNs else { return false }
        let last = lastWatchdogNs.load(ordering: .relaxed)
        return last == Int64.min || nowNs - last >= interval / 2
    }

    /// STATUS=`text`: a one-line state for `systemctl status`. Text past `statusBytesMax` bytes is
    /// cut off (at a character boundary); a newline would end the field, so it is sent as a space.
    @discardableResult public func notifyStatus(_ text: String) -> NotifyResult {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.statusBytesMax + 7) { buffer in
            var count = 0
            for byte in "STATUS=".utf8 {
                buffer[count] = byte
                count += 1
            }
            var characterEnd = count
            for scalar in text.unicodeScalars {
                let utf8 = UTF8.encode(scalar)!
                if count + utf8.count > buffer.count { break }
                for byte in utf8 {
                    buffer[count] = byte == UInt8(ascii: "\n") ? UInt8(ascii: " ") : byte
                    count += 1
                }
                characterEnd = count
            }
            return sendBytes(UnsafeRawBufferPointer(start: buffer.baseAddress, count: characterEnd))
        }
    }

    /// The longest STATUS= text sent, in bytes.
    public static let statusBytesMax = 1000

    /// Sends `message` as is ("KEY=VALUE", lines separated by newlines).
    @discardableResult public func send(_ message: StaticString) -> NotifyResult {
        sendBytes(UnsafeRawBufferPointer(start: message.utf8Start, count: message.utf8CodeUnitCount))
    }

    /// One sendto(MSG_DONTWAIT): never blocks, never allocates.
    private func sendBytes(_ message: UnsafeRawBufferPointer) -> NotifyResult {
        let errno: Int32 = withUnsafePointer(to: address) { address in
            address.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                while true {
                    let result = sendto(descriptor, message.baseAddress, message.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), socketAddress, addressBytes)
                    if result >= 0 { return 0 }
                    let error = keel_errno()
                    if error != EINTR { return error }
                }
            }
        }
        switch errno {
        case 0:
            sentCounter.wrappingAdd(1, ordering: .relaxed)
            return .sent
        case EAGAIN, EWOULDBLOCK, ENOBUFS:
            droppedCounter.wrappingAdd(1, ordering: .relaxed)
            return .dropped
        default:
            failedCounter.wrappingAdd(1, ordering: .relaxed)
            return .failed(errno: errno)
        }
    }

    // MARK: Counters

    /// Notifications queued to the manager so far.
    public var sentCount: Int { sentCounter.load(ordering: .relaxed) }
    /// Notifications dropped because the manager's queue was full.
    public var droppedCount: Int { droppedCounter.load(ordering: .relaxed) }
    /// Notifications that failed for another reason.
    public var failedCount: Int { failedCounter.load(ordering: .relaxed) }
}
