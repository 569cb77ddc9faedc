// Test support for the checker tests: loop devices, a FUSE disk that can stop answering, the
// aio-max-nr override, and a sink that keeps completions.
import Foundation
import Glibc
import KeelCore
import KeelLinux

/// The monotonic clock the tests feed the checkers with.
func checkerNowNs() -> Nanoseconds { LogClock.nowNs() }

/// Keeps every completion it is handed.
struct CheckerCollectingSink: CheckCompletionSink {
    var completions: [CheckCompletion] = []
    mutating func checkCompleted(_ completion: CheckCompletion) { completions.append(completion) }
}

/// A failure of a test fixture (a command that did not work).
struct CheckerFixtureError: Error, CustomStringConvertible {
    var description: String
}

/// Runs a command and returns its trimmed stdout; throws when it exits non-zero.
@discardableResult
func checkerRun(_ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw CheckerFixtureError(description: "\(arguments.joined(separator: " ")): exit \(process.terminationStatus): \(String(decoding: errorData, as: UTF8.self))")
    }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A fresh temporary directory, removed by `remove()`.
func checkerTemporaryDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw CheckerFixtureError(description: "mkdtemp failed") }
    return String(cString: made)
}

/// A loop device over a file (on ext4 /tmp, or any given backing file); detached by `detach()`.
final class CheckerLoopDevice {
    let path: String
    private let ownedFile: String?
    private var attached = true

    /// A loop device over a new zero-filled file of `bytes` bytes.
    init(bytes: Int) throws {
        let directory = try checkerTemporaryDirectory("keel-loop")
        let file = directory + "/disk.img"
        guard FileManager.default.createFile(atPath: file, contents: nil) else { throw CheckerFixtureError(description: "create \(file)") }
        guard truncate(file, off_t(bytes)) == 0 else { throw CheckerFixtureError(description: "truncate \(file)") }
        ownedFile = directory
        path = try checkerRun(["losetup", "-f", "--show", file])
    }

    /// A read-only loop device over an existing file.
    init(backingFile: String) throws {
        ownedFile = nil
        path = try checkerRun(["losetup", "-f", "--show", "-r", backingFile])
    }

    func detach() {
        guard attached else { return }
        attached = false
        _ = try? checkerRun(["losetup", "-d", path])
        if let ownedFile { try? FileManager.default.removeItem(atPath: ownedFile) }
    }

    deinit { detach() }
}

/// A FUSE filesystem served by a small Python program speaking /dev/fuse directly (no libfuse,
/// no PyPI package). `disk` answers reads with data, or holds them while `hang` is set; `gone`
/// fails every read with ENXIO. FOPEN_DIRECT_IO keeps the page cache out of the way.
final class CheckerFuseDisk {
    static let sizeBytes = 4 << 20
    let mountpoint: String
    private let directory: String
    private let control: String
    private let server: Process
    private var stopped = false

    var diskPath: String { mountpoint + "/disk" }
    var gonePath: String { mountpoint + "/gone" }

    init() throws {
        directory = try checkerTemporaryDirectory("keel-fuse")
        mountpoint = directory + "/mnt"
        control = directory + "/control"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: control, withIntermediateDirectories: true)
        let script = directory + "/keelfuse.py"
        try CheckerFuseDisk.serverSource.write(toFile: script, atomically: true, encoding: .utf8)
        server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", script, mountpoint, control, String(CheckerFuseDisk.sizeBytes)]
        try server.run()
        let deadline = checkerNowNs() + 10 * Time.nsPerSecond
        while !FileManager.default.fileExists(atPath: control + "/ready") {
            guard server.isRunning, checkerNowNs() < deadline else {
                stop()
                throw CheckerFixtureError(description: "FUSE server did not come up")
            }
            usleep(10_000)
        }
    }

    /// Holds every read from now on (they stay in the kernel, unanswered).
    func hang() { _ = FileManager.default.createFile(atPath: control + "/hang", contents: nil) }

    /// Answers the held reads and every later one.
    func release() { try? FileManager.default.removeItem(atPath: control + "/hang") }

    /// Releases held reads, unmounts, stops the server; as a last resort aborts the connection,
    /// which fails whatever the kernel still holds.
    func stop() {
        guard !stopped else { return }
        stopped = true
        release()
        usleep(100_000)
        _ = try? checkerRun(["umount", "-l", mountpoint])
        if server.isRunning { server.terminate() }
        let deadline = checkerNowNs() + 3 * Time.nsPerSecond
        while server.isRunning && checkerNowNs() < deadline { usleep(10_000) }
        if server.isRunning { kill(server.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { stop() }

    static let serverSource = #"""
    # A tiny FUSE server for checker tests: "disk" answers reads (or holds them while <control>/hang
    # exists), "gone" fails reads with ENXIO. It speaks /dev/fuse directly.
    import ctypes, errno, os, select, struct, sys

    mountpoint, control, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    libc = ctypes.CDLL(None, use_errno=True)
    dev = os.open("/dev/fuse", os.O_RDWR)
    options = ("fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other" % dev).encode()
    if libc.mount(b"keelfuse", mountpoint.encode(), b"fuse", 0, options) != 0:
        sys.stderr.write("mount failed: %s\n" % os.strerror(ctypes.get_errno()))
        sys.exit(1)
    open(os.path.join(control, "ready"), "w").close()

    ROOT, DISK, GONE = 1, 2, 3
    NAMES = {b"disk": DISK, b"gone": GONE}

    def attr(ino):
        if ino == ROOT:
            mode, length, links = 0o40755, 0, 2
        else:
            mode, length, links = 0o100644, size, 1
        return struct.pack("<QQQQQQIIIIIIIIII", ino, length, (length + 511) // 512, 0, 0, 0,
                           0, 0, 0, mode, links, 0, 0, 0, 4096, 0)

    def reply(unique, error=0, data=b""):
        try:
            os.write(dev, struct.pack("<IiQ", 16 + len(data), -error, unique) + data)
        except OSError:
            pass  # interrupted request or aborted connection

    def answer(unique, opcode, offset, length):
        if opcode == 39:  # IOCTL: not a SCSI device
            reply(unique, errno.ENOTTY)
            return
        length = max(0, min(length, size - offset))
        reply(unique, 0, bytes([0x4b]) * length)

    held = []
    while True:
        ready, _, _ = select.select([dev], [], [], 0.02)
        hang = os.path.exists(os.path.join(control, "hang"))
        if not hang and held:
            for request in held:
                answer(*request)
            held = []
        if not ready:
            continue
        try:
            request = os.read(dev, 1 << 18)
        except OSError as e:
            if e.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
                continue
            break  # ENODEV: unmounted
        length, opcode, unique, node = struct.unpack_from("<IIQQ", request)
        body = request[40:length]
        if opcode == 26:  # INIT
            major, minor, readahead, flags = struct.unpack_from("<IIII", body)
            reply(unique, 0, struct.pack("<IIIIHHIIHHI", 7, 31, readahead, 0, 16, 12, 131072, 1, 32, 0, 0) + bytes(24))
        elif opcode == 1:  # LOOKUP
            ino = NAMES.get(body.split(b"\0")[0])
            if ino is None:
                reply(unique, errno.ENOENT)
            else:
                reply(unique, 0, struct.pack("<QQQQII", ino, 0, 1, 1, 0, 0) + attr(ino))
        elif opcode == 3:  # GETATTR
            reply(unique, 0, struct.pack("<QII", 1, 0, 0) + attr(node))
        elif opcode in (14, 27):  # OPEN, OPENDIR (FOPEN_DIRECT_IO)
            reply(unique, 0, struct.pack("<QII", 0, 1, 0))
        elif opcode in (15, 39):  # READ, IOCTL
            offset, count = 0, 0
            if opcode == 15:
                fh, offset, count = struct.unpack_from("<QQI", body)
            if opcode == 15 and node == GONE:
                reply(unique, errno.ENXIO)
            elif hang:
                held.append((unique, opcode, offset, count))
            else:
                answer(unique, opcode, offset, count)
        elif opcode in (18, 25, 28, 29):  # RELEASE, FLUSH, READDIR (empty), RELEASEDIR
            reply(unique)
        elif opcode == 17:  # STATFS
            reply(unique, 0, bytes(80))
        elif opcode in (2, 36, 42):  # FORGET, INTERRUPT, BATCH_FORGET: no answer
            pass
        elif opcode == 38:  # DESTROY
            reply(unique)
            break
        else:
            reply(unique, errno.ENOSYS)
    """#
}

/// Sets /proc/sys/fs/aio-max-nr for the duration of `body` and always restores it.
func withCheckerAioMaxNr<T>(_ value: Int, _ body: () throws -> T) throws -> T {
    let file = "/proc/sys/fs/aio-max-nr"
    let original = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    try String(value).write(toFile: file, atomically: false, encoding: .utf8)
    defer { try? original.write(toFile: file, atomically: false, encoding: .utf8) }
    return try body()
}

/// The events the kernel has handed out to io contexts (/proc/sys/fs/aio-nr).
func checkerAioEventsInUse() throws -> Int {
    let text = try String(contentsOfFile: "/proc/sys/fs/aio-nr", encoding: .utf8)
    return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
}

/// Calls `reap` until `done` says so or `timeoutNs` passes, sleeping 1 ms in between.
func checkerReapUntil<C: PathCheckBackend>(_ checker: inout C, sink: inout CheckerCollectingSink, timeoutNs: Nanoseconds,
                                     _ done: (CheckerCollectingSink) -> Bool) {
    let deadline = checkerNowNs() + timeoutNs
    while true {
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        if done(sink) || checkerNowNs() >= deadline { return }
        usleep(1_000)
    }
}
