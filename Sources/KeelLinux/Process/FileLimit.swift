// RLIMIT_NOFILE: room for one descriptor per path, raised at start before any path is opened.
import Glibc

/// The open-file limit keeld needs and what it did about it. systemd's default soft limit is
/// 1,024, and keeld keeps one descriptor per path (its checker's), so a host with a thousand
/// paths would run out before its last map was built.
public struct FileLimit: Sendable, Equatable, CustomStringConvertible {
    /// Descriptors wanted: one per path plus `reserve` for everything else.
    public var wanted: UInt64
    public var softBefore: UInt64
    public var softAfter: UInt64
    public var hard: UInt64
    /// errno of a refused raise (0 when none was refused).
    public var errno: Int32

    /// Descriptors kept for what is not a path: sockets, dm control, netlink, the log, epoll
    /// and eventfds, sysfs reads (256), and the prioritizers' commands in flight.
    public static let reserve: UInt64 = 256 + UInt64(SGQueryRunner.window)

    public var isEnough: Bool { softAfter >= wanted }

    public var description: String {
        var text = "open files: \(softAfter) (wanted \(wanted) for the path table; soft was \(softBefore), hard \(hard))"
        if !isEnough {
            text += "; could not raise it (\(String(cString: strerror(errno)))): paths past the limit are refused one by one with a log line; raise LimitNOFILE"
        }
        return text
    }

    /// Raises the soft limit to `paths + reserve`, and the hard limit too when it is lower and
    /// the process may (CAP_SYS_RESOURCE), never above `fs.nr_open`.
    public static func raise(forPaths paths: Int) -> FileLimit {
        var limit = rlimit()
        getrlimit(RLIMIT_NOFILE_VALUE, &limit)
        let wanted = UInt64(paths) + reserve
        var result = FileLimit(wanted: wanted, softBefore: UInt64(limit.rlim_cur), softAfter: UInt64(limit.rlim_cur),
                               hard: UInt64(limit.rlim_max), errno: 0)
        guard UInt64(limit.rlim_cur) < wanted else { return result }
        var target = wanted
        if let nrOpen = systemNrOpen() { target = min(target, nrOpen) }
        var raised = limit
        raised.rlim_cur = rlim_t(target)
        if UInt64(limit.rlim_max) < target { raised.rlim_max = rlim_t(target) }
        if setrlimit(RLIMIT_NOFILE_VALUE, &raised) != 0 {
            result.errno = Glibc.errno
            // Without CAP_SYS_RESOURCE: as far as the hard limit allows.
            raised.rlim_max = limit.rlim_max
            raised.rlim_cur = min(rlim_t(target), limit.rlim_max)
            _ = setrlimit(RLIMIT_NOFILE_VALUE, &raised)
        }
        getrlimit(RLIMIT_NOFILE_VALUE, &limit)
        result.softAfter = UInt64(limit.rlim_cur)
        result.hard = UInt64(limit.rlim_max)
        return result
    }

    private static var RLIMIT_NOFILE_VALUE: __rlimit_resource_t { __rlimit_resource_t(RLIMIT_NOFILE.rawValue) }

    private static func systemNrOpen() -> UInt64? {
        let fd = open("/proc/sys/fs/nr_open", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return UInt64(String(decoding: buffer[0..<n], as: UTF8.self).split(separator: "\n").first ?? "")
    }
}
