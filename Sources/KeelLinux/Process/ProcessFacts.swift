// What the kernel says about this process: /proc/self/status fields, capabilities, resource limits.
import Glibc

/// Reading and writing small /proc and cgroup files (control plane: allocates).
enum ProcFile {
    /// The whole text of a small file. The corresponding C functions are `open`/`read`.
    static func readText(_ path: String) throws(SystemError) -> String {
        let fd = try systemCall("open(proc)") { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        let chunkBytes = 4096
        while true {
            let filled = bytes.count
            bytes.append(contentsOf: repeatElement(0, count: chunkBytes))
            let result: Result<Int, SystemError> = bytes.withUnsafeMutableBytes { raw in
                Result { () throws(SystemError) -> Int in
                    try systemCall("read(proc)") { read(fd, raw.baseAddress! + filled, chunkBytes) }
                }
            }
            let n = try result.get()
            bytes.removeLast(chunkBytes - n)
            if n == 0 { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes `text` with one `write` (procfs and cgroup files take a value per write).
    static func writeText(_ path: String, _ text: String) throws(SystemError) {
        let fd = try systemCall("open(proc, write)") { open(path, O_WRONLY | O_CLOEXEC) }
        defer { close(fd) }
        var text = text
        let result: Result<Int, SystemError> = text.withUTF8 { utf8 in
            Result { () throws(SystemError) -> Int in
                try systemCall("write(proc)") { write(fd, utf8.baseAddress, utf8.count) }
            }
        }
        _ = try result.get()
    }

    /// The first line of a file with surrounding white space removed, or nil if it cannot be read.
    static func firstLine(_ path: String) -> Substring? {
        guard let text = try? readText(path) else { return nil }
        let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return trimmed(line)
    }

    /// `text` without leading and trailing spaces, tabs and newlines.
    static func trimmed(_ text: Substring) -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = text.firstIndex(where: { !isSpace($0) }) else { return text[text.endIndex...] }
        let last = text.lastIndex(where: { !isSpace($0) })!
        return text[first...last]
    }
}

/// A Linux capability bit as numbered in <linux/capability.h>.
public struct Capability: RawRepresentable, Equatable, Sendable, CustomStringConvertible {
    public var rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// CAP_IPC_LOCK: lock memory beyond RLIMIT_MEMLOCK.
    public static let ipcLock = Capability(rawValue: 14)
    /// CAP_SYS_NICE: real-time scheduling beyond RLIMIT_RTPRIO.
    public static let sysNice = Capability(rawValue: 23)
    /// CAP_SYS_RESOURCE: lower oom_score_adj below its floor.
    public static let sysResource = Capability(rawValue: 24)

    public var description: String {
        switch rawValue {
        case 14: return "CAP_IPC_LOCK"
        case 23: return "CAP_SYS_NICE"
        case 24: return "CAP_SYS_RESOURCE"
        default: return "capability \(rawValue)"
        }
    }
}

/// A snapshot of /proc/self/status (or another task's status file).
public struct ProcessStatus: Sendable {
    /// The file's text.
    public let text: String

    /// Parses the text of a status file.
    public init(text: String) { self.text = text }

    /// Reads /proc/self/status, or `path`.
    public static func read(path: String = "/proc/self/status") throws(SystemError) -> ProcessStatus {
        ProcessStatus(text: try ProcFile.readText(path))
    }

    /// The value of `field` ("VmLck", "CapEff", "Seccomp") without its name, colon and padding.
    public func value(of field: String) -> Substring? {
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":"), line[..<colon] == field else { continue }
            return ProcFile.trimmed(line[line.index(after: colon)...])
        }
        return nil
    }

    /// A "N kB" field (VmLck, VmRSS) in bytes.
    public func bytes(of field: String) -> UInt64? {
        guard let value = value(of: field) else { return nil }
        let parts = value.split(separator: " ")
        guard parts.count == 2, parts[1] == "kB", let kibibytes = UInt64(parts[0]) else { return nil }
        return kibibytes * 1024
    }

    /// The effective capability set (CapEff, hexadecimal).
    public var effectiveCapabilities: UInt64? {
        value(of: "CapEff").flatMap { UInt64($0, radix: 16) }
    }

    /// Whether `capability` is effective; nil if the status has no CapEff line.
    public func hasEffective(_ capability: Capability) -> Bool? {
        effectiveCapabilities.map { $0 & (1 << UInt64(capability.rawValue)) != 0 }
    }
}

/// The process's resource limits that decide pinning and real-time scheduling.
public enum ResourceLimits {
    /// The soft RLIMIT_MEMLOCK in bytes; nil when unlimited. The C function is `getrlimit`.
    public static func memlockBytes() -> UInt64? {
        softLimit(__RLIMIT_MEMLOCK)
    }

    /// The soft RLIMIT_RTPRIO (highest real-time priority without CAP_SYS_NICE); nil when unlimited.
    public static func realtimePriorityMax() -> UInt64? {
        softLimit(__RLIMIT_RTPRIO)
    }

    private static func softLimit(_ resource: __rlimit_resource) -> UInt64? {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(resource.rawValue), &limit) == 0 else { return nil }
        return limit.rlim_cur == rlim_t.max ? nil : UInt64(limit.rlim_cur)
    }
}

/// Wording shared by the process-discipline errors.
enum ProcessText {
    /// `bytes` as the largest whole binary unit ("8 MiB", "64 KiB", "100 bytes").
    static func bytes(_ bytes: UInt64) -> String {
        for (size, name) in [(UInt64(1) << 30, "GiB"), (1 << 20, "MiB")] where bytes >= size && bytes % size == 0 {
            return "\(bytes / size) \(name)"
        }
        if bytes >= 1 << 20 {
            let tenths = bytes * 10 / (1 << 20)
            return "\(tenths / 10).\(tenths % 10) MiB"
        }
        if bytes >= 1 << 10 && bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }

    /// The errno's name and text, e.g. "EPERM: Operation not permitted".
    static func errno(_ errno: Int32) -> String {
        let names: [Int32: String] = [
            EPERM: "EPERM", ENOMEM: "ENOMEM", EACCES: "EACCES", EINVAL: "EINVAL", EAGAIN: "EAGAIN",
            ENOSYS: "ENOSYS", ENOENT: "ENOENT", EFAULT: "EFAULT", ESRCH: "ESRCH", ECONNREFUSED: "ECONNREFUSED",
        ]
        let text = String(cString: strerror(errno))
        return "\(names[errno] ?? "errno \(errno)"): \(text)"
    }
}
