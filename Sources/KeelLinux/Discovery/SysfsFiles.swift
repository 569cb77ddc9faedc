// Reading sysfs attributes, links and directories under a configurable root (control plane only).
import Glibc

/// Small, allocation-tolerant readers for sysfs. Every path is absolute; callers join it onto the
/// configured sysfs root so tests can point discovery at a fixture tree.
public enum SysfsFiles {
    /// Largest attribute read: sysfs binary attributes such as `vpd_pg83` are at most one page
    /// larger than the 4 KiB multipath-tools reads (`VPD_BUFLEN`).
    static let readBytesMax = 8192
    /// The most one read of a sysfs attribute returns.
    static let pageBytes = 4096

    /// The raw bytes of a file, up to `limit` bytes. The corresponding C functions are `open`/`read`.
    static func readBytes(_ path: String, limit: Int = readBytesMax) throws(SystemError) -> [UInt8] {
        let fd = try systemCall("open(sysfs)") { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        return try readAll(fd, limit: limit)
    }

    /// The bytes of an open attribute, up to `limit`.
    static func readAll(_ fd: Int32, limit: Int) throws(SystemError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: limit)
        var filled = 0
        while filled < limit {
            let asked = limit - filled
            let result: Result<Int, SystemError> = bytes.withUnsafeMutableBytes { raw in
                Result { () throws(SystemError) -> Int in
                    try systemCall("read(sysfs)") { read(fd, raw.baseAddress! + filled, asked) }
                }
            }
            let n = try result.get()
            filled += n
            // sysfs (kernfs) hands out at most a page per read and the whole rest of the file
            // when it fits: a read short of both is the end, and the read that would return 0
            // is saved (a quarter of discovery's system calls).
            if n < min(asked, pageBytes) { break }
        }
        bytes.removeSubrange(filled...)
        return bytes
    }

    /// A text attribute with surrounding whitespace removed, or nil when it cannot be read.
    public static func readText(_ path: String) -> String? {
        guard let bytes = try? readBytes(path, limit: 4096) else { return nil }
        return trimmed(String(decoding: bytes, as: UTF8.self))
    }

    /// The target of a symbolic link, as stored (often relative). The C function is `readlink`.
    public static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, Int(PATH_MAX))
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `path` with `.`, `..` and repeated slashes removed lexically (no link is followed).
    public static func lexicallyNormalized(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { _ = parts.popLast(); continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Where the link at `link` (in directory `directory`, already free of links) points, resolved
    /// lexically: right for sysfs, whose links point into the real `/sys/devices` tree. nil when
    /// `link` is not a link.
    static func linkTarget(_ link: String, in directory: String) -> String? {
        guard let target = readLink(directory + "/" + link) else { return nil }
        return lexicallyNormalized(target.hasPrefix("/") ? target : directory + "/" + target)
    }

    /// The canonical absolute path with every link resolved. The C function is `realpath`.
    static func resolvedPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// Whether anything exists at `path` (following links).
    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// The names in a directory, sorted, without "." and "..". Empty when it cannot be read.
    public static func directoryEntries(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        return entries(of: dir)
    }

    /// The names an open directory lists, sorted, without "." and "..".
    static func entries(of dir: OpaquePointer) -> [String] {
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// `s` without leading and trailing spaces, tabs and newlines.
    static func trimmed(_ s: String) -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        guard let first = s.firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = s.lastIndex(where: { !isSpace($0) })!
        return String(s[first...last])
    }

    /// Writes `value` and a newline to the attribute `path` in one write, as `echo value >
    /// path` does: 0, or the errno of the open or the write (EIO for a short write). The write
    /// returns when the kernel's store function does, which for some attributes (a device's
    /// `rescan`) means waiting on the device.
    static func write(_ path: String, _ value: String) -> Int32 {
        guard access(path, F_OK) == 0 else { return ENOENT }
        let fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        let bytes = Array((value + "\n").utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        return n == bytes.count ? 0 : (n < 0 ? errno : EIO)
    }

    /// Whether `name` is one directory entry (a kernel device name): not empty, no "/", and
    /// not "." or "..", so that a path built from it stays in the directory it is joined to.
    static func isPlainName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains("/") && name != "." && name != ".."
    }

    /// The last component of a slash-separated path.
    static func lastComponent(_ path: String) -> Substring {
        path.split(separator: "/").last ?? Substring(path)
    }
}

/// A sysfs directory opened once, whose attributes are then opened relative to it: one
/// name to look up per attribute instead of the whole path (a disk's `device` directory is two
/// links and a dozen directories away from `/sys`). Discovery reads about fifteen attributes of
/// every disk. When the directory cannot be opened, each read goes by the full path instead.
struct SysfsDirectory: ~Copyable {
    let path: String
    private let fd: Int32

    init(_ path: String) {
        self.path = path
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    }

    deinit { if fd >= 0 { close(fd) } }

    /// The raw bytes of attribute `name`, up to `limit`.
    func bytes(_ name: String, limit: Int = SysfsFiles.readBytesMax) throws(SystemError) -> [UInt8] {
        guard fd >= 0 else { return try SysfsFiles.readBytes(path + "/" + name, limit: limit) }
        let file = try systemCall("open(sysfs)") { openat(fd, name, O_RDONLY | O_CLOEXEC) }
        defer { close(file) }
        return try SysfsFiles.readAll(file, limit: limit)
    }

    /// A text attribute with surrounding whitespace removed, or nil when it cannot be read.
    func text(_ name: String) -> String? {
        guard let bytes = try? bytes(name, limit: 4096) else { return nil }
        return SysfsFiles.trimmed(String(decoding: bytes, as: UTF8.self))
    }

    /// The names in subdirectory `name`, sorted, without "." and "..".
    func entries(_ name: String) -> [String] {
        guard fd >= 0 else { return SysfsFiles.directoryEntries(path + "/" + name) }
        let sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard sub >= 0 else { return [] }
        guard let dir = fdopendir(sub) else {
            close(sub)
            return []
        }
        defer { closedir(dir) }
        return SysfsFiles.entries(of: dir)
    }
}
