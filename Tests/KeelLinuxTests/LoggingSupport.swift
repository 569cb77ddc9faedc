// Test support for the logger tests: temporary log files, reading them back, waiting, latency figures, and a FUSE file that can stall.
import Foundation
import Glibc
import KeelCore
@testable import KeelLinux

/// A failure of a logging test fixture.
struct LoggingFixtureError: Error, CustomStringConvertible {
    var description: String
}

/// A fresh directory under /tmp (ext4 here: O_DIRECT alignment is enforced, unlike tmpfs).
func loggingTemporaryDirectory() throws -> String {
    var template = Array("/tmp/keel-logging.XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw LoggingFixtureError(description: "mkdtemp failed") }
    return String(cString: made)
}

/// The raw bytes of a file.
func loggingFileBytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// The lines of a log file, without the whitespace-only padding lines of partial pages.
func loggingFileLines(_ path: String) throws -> [String] {
    let text = String(decoding: try loggingFileBytes(path), as: UTF8.self)
    return text.split(separator: "\n", omittingEmptySubsequences: true)
        .map(String.init)
        .filter { !$0.allSatisfy { $0 == " " } }
}

/// The text after the "<time> <level> <thread>: " prefix of a line.
func loggingText(_ line: String) -> String {
    guard let range = line.range(of: ": ") else { return line }
    return String(line[range.upperBound...])
}

/// The lines a producer named `thread` wrote (prefix `<time> <level> <thread>: `).
func loggingLines(_ lines: [String], thread: String) -> [String] {
    lines.filter { $0.split(separator: " ", maxSplits: 3).dropFirst(2).first == Substring(thread + ":") }
}

/// Polls `condition` every millisecond until it holds or `timeoutNs` passed; returns whether it held.
@discardableResult
func loggingWait(timeoutNs: Nanoseconds = 5 * Time.nsPerSecond, _ condition: () -> Bool) -> Bool {
    let deadline = LogClock.nowNs() + timeoutNs
    while LogClock.nowNs() < deadline {
        if condition() { return true }
        usleep(1000)
    }
    return condition()
}

/// Per-call latencies, summarised for a report line.
struct LatencyFigures: CustomStringConvertible {
    var samplesNs: [Nanoseconds]

    init(_ samplesNs: [Nanoseconds]) {
        self.samplesNs = samplesNs.sorted()
    }

    func percentile(_ fraction: Double) -> Nanoseconds {
        guard !samplesNs.isEmpty else { return 0 }
        let index = min(Int(Double(samplesNs.count - 1) * fraction), samplesNs.count - 1)
        return samplesNs[index]
    }

    var maximumNs: Nanoseconds { samplesNs.last ?? 0 }

    var description: String {
        "n=\(samplesNs.count) p50=\(percentile(0.5))ns p99=\(percentile(0.99))ns p99.9=\(percentile(0.999))ns max=\(maximumNs)ns"
    }
}

/// Logs `count` records numbered from `first` (`%n` = the number) through `producer`, timing each
/// call, with `gapNs` of busy waiting between calls.
func loggingTimedBurst(_ producer: LogProducer, first: Int, count: Int, gapNs: Nanoseconds = 0) -> (latencies: [Nanoseconds], accepted: Int) {
    var latencies: [Nanoseconds] = []
    latencies.reserveCapacity(count)
    var accepted = 0
    for i in 0..<count {
        let before = LogClock.nowNs()
        if producer.log(.memoryLocked, UInt64(first + i)) { accepted += 1 }
        let after = LogClock.nowNs()
        latencies.append(after - before)
        if gapNs > 0 {
            while LogClock.nowNs() - after < gapNs {}
        }
    }
    return (latencies, accepted)
}

/// The numbers of the `memoryLocked` lines ("memory locked: N KiB resident"), in file order.
func loggingSequence(_ lines: [String]) -> [Int] {
    lines.compactMap { line -> Int? in
        let text = loggingText(line)
        guard text.hasPrefix("memory locked: ") else { return nil }
        return Int(text.dropFirst("memory locked: ".count).prefix { $0.isNumber })
    }
}

/// A FUSE filesystem (fusepy, Debian package python3-fusepy) whose writes hang while
/// `<control>/stall` exists; while one hangs, `<control>/blocked` exists. Mounted with
/// `direct_io`, so every write reaches the server.
final class LoggingStallingFuse {
    static let python = "/usr/bin/python3"

    /// Whether fusepy and /dev/fuse are there (the test that needs them is skipped otherwise).
    static var isAvailable: Bool {
        FileManager.default.fileExists(atPath: "/dev/fuse")
            && FileManager.default.fileExists(atPath: "/usr/lib/python3/dist-packages/fusepy.py")
            && getuid() == 0
    }

    let directory: String
    let mountpoint: String
    let control: String
    private let server: Process
    private var mounted = true

    init() throws {
        directory = try loggingTemporaryDirectory()
        mountpoint = directory + "/mnt"
        control = directory + "/control"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: control, withIntermediateDirectories: false)
        let script = directory + "/stallfs.py"
        try LoggingStallingFuse.serverSource.write(toFile: script, atomically: true, encoding: .utf8)
        server = Process()
        server.executableURL = URL(fileURLWithPath: LoggingStallingFuse.python)
        server.arguments = [script, mountpoint, control]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        let up = loggingWait(timeoutNs: 10 * Time.nsPerSecond) {
            FileManager.default.fileExists(atPath: control + "/ready")
        }
        guard up else {
            server.terminate()
            throw LoggingFixtureError(description: "FUSE server did not come up")
        }
    }

    deinit { unmount() }

    /// Makes every write hang from now on.
    func stall() {
        _ = FileManager.default.createFile(atPath: control + "/stall", contents: nil)
    }

    /// Lets hanging and future writes through.
    func resume() {
        try? FileManager.default.removeItem(atPath: control + "/stall")
    }

    /// Whether a write is hanging in the server right now.
    var isWriteBlocked: Bool {
        FileManager.default.fileExists(atPath: control + "/blocked")
    }

    /// Lets everything through, unmounts and stops the server.
    func unmount() {
        guard mounted else { return }
        mounted = false
        resume()
        let umount = Process()
        umount.executableURL = URL(fileURLWithPath: "/bin/umount")
        umount.arguments = ["-l", mountpoint]
        try? umount.run()
        umount.waitUntilExit()
        server.terminate()
        server.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }

    static let serverSource = #"""
    # A FUSE filesystem of in-memory files whose writes hang while <control>/stall exists.
    import errno, os, stat, sys, threading, time
    from fusepy import FUSE, FuseOSError, Operations

    class StallFS(Operations):
        def __init__(self, control):
            self.control = control
            self.files = {}
            self.mutex = threading.Lock()

        def init(self, path):
            open(os.path.join(self.control, "ready"), "w").close()

        def hold_while_stalled(self):
            stall = os.path.join(self.control, "stall")
            blocked = os.path.join(self.control, "blocked")
            if os.path.exists(stall):
                open(blocked, "w").close()
                while os.path.exists(stall):
                    time.sleep(0.005)
                os.unlink(blocked)

        def getattr(self, path, fh=None):
            now = time.time()
            if path == "/":
                return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2, st_ctime=now, st_mtime=now, st_atime=now)
            with self.mutex:
                if path not in self.files:
                    raise FuseOSError(errno.ENOENT)
                size = len(self.files[path])
            return dict(st_mode=stat.S_IFREG | 0o640, st_nlink=1, st_size=size, st_ctime=now, st_mtime=now, st_atime=now)

        def readdir(self, path, fh):
            with self.mutex:
                return [".", ".."] + [name[1:] for name in self.files]

        def create(self, path, mode, fi=None):
            with self.mutex:
                self.files.setdefault(path, bytearray())
            return 0

        def open(self, path, flags):
            with self.mutex:
                if path not in self.files:
                    raise FuseOSError(errno.ENOENT)
            return 0

        def truncate(self, path, length, fh=None):
            with self.mutex:
                data = self.files[path]
                del data[length:]
                data.extend(b"\0" * (length - len(data)))

        def read(self, path, size, offset, fh):
            with self.mutex:
                return bytes(self.files[path][offset:offset + size])

        def write(self, path, data, offset, fh):
            self.hold_while_stalled()
            with self.mutex:
                buffer = self.files[path]
                if len(buffer) < offset:
                    buffer.extend(b"\0" * (offset - len(buffer)))
                buffer[offset:offset + len(data)] = data
            return len(data)

        def rename(self, old, new):
            with self.mutex:
                self.files[new] = self.files.pop(old)

        def unlink(self, path):
            with self.mutex:
                self.files.pop(path, None)

        def flush(self, path, fh): return 0
        def fsync(self, path, datasync, fh): return 0
        def release(self, path, fh): return 0
        def utimens(self, path, times=None): return 0
        def chmod(self, path, mode): return 0
        def chown(self, path, uid, gid): return 0

    if __name__ == "__main__":
        FUSE(StallFS(sys.argv[2]), sys.argv[1], foreground=True, nothreads=False, direct_io=True)
    """#
}
