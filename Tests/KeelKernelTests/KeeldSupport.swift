// Running keeld inside the VM for real-kernel tests: finding and launching it, its configuration,
// its control socket, waiting for its maps, and the scsi_debug paths it runs on.
import Foundation
import Glibc
import KeelCore
import KeelLinux

/// The monotonic clock every kernel test reads (keeld's log clock).
func kernelTestNowNs() -> Nanoseconds { LogClock.nowNs() }

/// O_DIRECT on x86_64 (`_GNU_SOURCE` only, so Glibc does not export it); the VM is x86_64.
let openDirect: Int32 = 0o40000

/// Runs `done` every `pollingUs` microseconds until it holds; the time it took, or nil after
/// `timeoutNs`.
func kernelTestWait(every pollingUs: UInt32 = 1000, timeoutNs: Nanoseconds, _ done: () throws -> Bool) rethrows -> Nanoseconds? {
    let start = kernelTestNowNs()
    while kernelTestNowNs() - start < timeoutNs {
        if try done() { return kernelTestNowNs() - start }
        usleep(pollingUs)
    }
    return nil
}

/// The count of a `show daemon` answer's `orphaned checks N` line (0 without one).
func keeldOrphanedChecks(_ showDaemon: String) -> Int {
    let line = showDaemon.split(separator: "\n").first { $0.hasPrefix("orphaned checks ") }
    return line.flatMap { Int($0.split(separator: " ")[2]) } ?? 0
}

/// Whether the real-kernel keeld suites run (Tools/kernel-tests sets KEEL_KERNEL_TESTS=1 in the VM).
let keeldKernelTestsEnabled = ProcessInfo.processInfo.environment["KEEL_KERNEL_TESTS"] == "1"

/// The multipath.conf the keeld kernel tests run with: the end-to-end test's policy with a fixed
/// 1 s polling interval and queueing while no path is left.
let keeldTestConfiguration = """
defaults {
    polling_interval 1
    max_polling_interval 1
    fast_probe_interval_ms 100
    path_grouping_policy group_by_prio
    prio alua
    failback immediate
    no_path_retry queue
    path_checker tur
    user_friendly_names yes
    find_multipaths greedy
}

"""

/// A `defaults` section that keeps a test keeld's bindings and wwids files in its own directory,
/// so names and known WWIDs never leak from one test to the next.
func keeldStateFiles(_ directory: String) -> String {
    "\ndefaults {\n    bindings_file \"\(directory)/bindings\"\n    wwids_file \"\(directory)/wwids\"\n}\n"
}

/// Runs `command` with bash, with Tools/guest/keel-guest.sh sourced; returns its stdout, throws
/// with its stderr when it exits non-zero.
@discardableResult
func keeldGuestShell(_ command: String) throws -> String {
    let library = ProcessInfo.processInfo.environment["KEEL_GUEST_LIB"]
        ?? FileManager.default.currentDirectoryPath + "/Tools/guest/keel-guest.sh"
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-c", "source \"$KEELD_GUEST_LIB\" && \(command)"]
    var environment = ProcessInfo.processInfo.environment
    environment["KEELD_GUEST_LIB"] = library
    process.environment = environment
    // Output to files, not pipes: a chatty command can never block on a full pipe.
    let stdoutPath = NSTemporaryDirectory() + "keeld-shell-\(UUID().uuidString).out"
    let stderrPath = stdoutPath + ".err"
    _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
    _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
    defer {
        unlink(stdoutPath)
        unlink(stderrPath)
    }
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
    process.standardError = FileHandle(forWritingAtPath: stderrPath)
    try process.run()
    process.waitUntilExit()
    let stdoutText = (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
    let stderrText = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
    guard process.terminationStatus == 0 else {
        throw RideThroughError("`\(command)` exited \(process.terminationStatus): \(stderrText)\(stdoutText.isEmpty ? "" : " (stdout: \(stdoutText))")")
    }
    return stdoutText
}

/// Writes a SCSI disk's state (`running` or `offline`, the only two the kernel accepts).
func keeldSetDiskState(_ disk: String, _ state: String) throws {
    let path = "/sys/block/\(disk)/device/state"
    let fd = open(path, O_WRONLY)
    guard fd >= 0 else { throw RideThroughError("open \(path): errno \(errno)") }
    defer { close(fd) }
    let line = state + "\n"
    let written = line.withCString { write(fd, $0, strlen($0)) }
    guard written == line.utf8.count else { throw RideThroughError("write \(state) to \(path): errno \(errno)") }
}

/// scsi_debug's one LUN behind 4 SCSI hosts: the disks, index = host number (host h is in ALUA
/// port group state h % 3: 0 active/optimized, 1 active/non-optimized, 2 standby).
struct KeeldScsiDebugDisks: Sendable {
    let byHost: [String]

    /// Loads scsi_debug with `hosts` hosts and waits for their disks.
    static func load(hosts: Int = 4) throws -> KeeldScsiDebugDisks {
        let listing = try keeldGuestShell("keel_scsi_debug \(hosts) && keel_sd_disks")
        let disks = listing.split(separator: "\n").map(String.init)
        guard disks.count == hosts else { throw RideThroughError("scsi_debug gave \(disks.count) disks, wanted \(hosts): \(disks)") }
        return KeeldScsiDebugDisks(byHost: disks)
    }

    /// Every disk `running` again (errors ignored: used on the way out).
    func allRunning() {
        for disk in byHost { try? keeldSetDiskState(disk, "running") }
    }

    /// Unloads scsi_debug; the maps over it must be gone.
    func unload() {
        _ = try? keeldGuestShell("keel_scsi_debug_unload")
    }
}

/// One line of keeld's `show maps`: `<name> <wwid> map#M paths=N usable=U queueing=yes|no`.
struct KeeldMapLine: Sendable, Equatable {
    var name: String
    var wwid: String
    var paths: Int
    var usable: Int
    var queueing: Bool

    /// Parses a `show maps` answer (lines that do not fit are skipped).
    static func parse(_ answer: String) -> [KeeldMapLine] {
        answer.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count >= 6 else { return nil }
            func value(_ key: String) -> Substring? {
                fields.first { $0.hasPrefix(key + "=") }.map { $0.dropFirst(key.count + 1) }
            }
            guard let paths = value("paths").flatMap({ Int($0) }), let usable = value("usable").flatMap({ Int($0) }),
                  let queueing = value("queueing") else { return nil }
            return KeeldMapLine(name: String(fields[0]), wwid: String(fields[1]), paths: paths, usable: usable, queueing: queueing == "yes")
        }
    }
}

/// A keeld process started for a test, in a directory of its own (configuration, control socket,
/// captured stderr). Stops it (SIGTERM, then SIGKILL) when asked or when released.
final class KeeldDaemon: @unchecked Sendable {
    let directory: String
    let configPath: String
    let socketPath: String
    let stderrPath: String
    let logFilePath: String?
    let process = Process()

    /// keeld's path: $KEEL_KEELD, else `keeld` next to the running test executable.
    static func executablePath() throws -> String {
        if let path = ProcessInfo.processInfo.environment["KEEL_KEELD"], !path.isEmpty { return path }
        let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let sibling = (exe as NSString).deletingLastPathComponent + "/keeld"
        guard FileManager.default.isExecutableFile(atPath: sibling) else {
            throw RideThroughError("no keeld at \(sibling) (build it: swift build --product keeld) and KEEL_KEELD unset")
        }
        return sibling
    }

    /// Writes `configuration` to a fresh directory and starts keeld on it with its control socket
    /// there; `logFile` goes to --log-file; `arguments` are appended.
    convenience init(configuration: String = keeldTestConfiguration, logFile: String? = nil, arguments: [String] = []) throws {
        var template = Array("/tmp/keeld-test.XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw RideThroughError("mkdtemp: errno \(errno)")
        }
        try self.init(directory: String(cString: made), configuration: configuration, logFile: logFile, arguments: arguments)
    }

    /// keeld with its files in `directory` (made when missing), its log in `keeld.log` there;
    /// `environment` is added to the test's own.
    convenience init(directory: String, configuration: String = keeldTestConfiguration, arguments: [String] = [],
                     environment: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try self.init(directory: directory, configuration: configuration, logFile: directory + "/keeld.log", arguments: arguments,
                      environment: environment)
    }

    private init(directory: String, configuration: String, logFile: String?, arguments: [String], environment: [String: String] = [:]) throws {
        self.directory = directory
        configPath = directory + "/multipath.conf"
        socketPath = directory + "/keeld.socket"
        stderrPath = directory + "/keeld.stderr"
        logFilePath = logFile
        try (configuration + keeldStateFiles(directory)).write(toFile: configPath, atomically: false, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: try Self.executablePath())
        var all = ["--config", configPath, "--control-socket", socketPath]
        if let logFile { all += ["--log-file", logFile] }
        process.arguments = all + arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: stderrPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
    }

    deinit { stop() }

    var pid: Int32 { process.processIdentifier }

    /// The log file (`--log-file`), "" when there is none.
    var logFile: String { logFilePath ?? "" }

    /// `command`'s answer, or `error: ...` when there is none (for tests that compare text).
    func answer(_ line: String) -> String {
        do { return try command(line) } catch { return "error: \(error)" }
    }

    /// SIGKILL, and waits for the exit.
    func kill9() {
        kill(pid, SIGKILL)
        process.waitUntilExit()
    }

    /// What keeld wrote to stderr so far.
    var stderrText: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// The last `count` lines of stderr, indented, for a failure message.
    func stderrTail(_ count: Int = 30) -> String {
        stderrText.split(separator: "\n").suffix(count).map { "  keeld| " + $0 }.joined(separator: "\n")
    }

    /// Waits until keeld says `keeld: ready:` on stderr; throws when it exits or `timeoutNs` passes.
    func waitReady(timeoutNs: Nanoseconds = 60 * Time.nsPerSecond) throws {
        let deadline = rideThroughMonotonicNs() + UInt64(timeoutNs)
        while rideThroughMonotonicNs() < deadline {
            if stderrText.contains("keeld: ready:") { return }
            guard process.isRunning else {
                throw RideThroughError("keeld exited \(process.terminationStatus) before ready:\n\(stderrTail())")
            }
            usleep(100_000)
        }
        throw RideThroughError("keeld not ready after \(timeoutNs / 1_000_000_000) s:\n\(stderrTail())")
    }

    /// Sends one command line on the control socket and reads the answer to EOF, failing when the
    /// whole exchange takes longer than `timeoutMs`.
    func command(_ line: String, timeoutMs: Int = 5000) throws -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw RideThroughError("socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw RideThroughError("socket path too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw RideThroughError("connect \(socketPath): errno \(errno)") }
        let startNs = rideThroughMonotonicNs()
        let deadlineNs = startNs + UInt64(timeoutMs) * 1_000_000
        let request = Array((line + "\n").utf8)
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { send(fd, $0.baseAddress! + sent, request.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw RideThroughError("send `\(line)`: errno \(errno)") }
            sent += n
        }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let now = rideThroughMonotonicNs()
            guard now < deadlineNs else { throw RideThroughError("`\(line)`: no complete answer within \(timeoutMs) ms (got \(answer.count) bytes)") }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32((deadlineNs - now) / 1_000_000) + 1)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n == 0 { break }
            guard n > 0 else {
                if errno == EINTR { continue }
                throw RideThroughError("recv `\(line)`: errno \(errno)")
            }
            answer += chunk[0..<n]
        }
        return String(decoding: answer, as: UTF8.self)
    }

    /// keeld's maps, from `show maps` (empty when it does not answer).
    func maps() -> [KeeldMapLine] {
        (try? command("show maps")).map(KeeldMapLine.parse) ?? []
    }

    /// Waits until keeld reports one map with `usable` usable paths and its /dev/mapper node exists;
    /// returns that map.
    func waitForMap(usable: Int, timeoutNs: UInt64 = 60_000_000_000) throws -> KeeldMapLine {
        let deadline = rideThroughMonotonicNs() + timeoutNs
        var last: [KeeldMapLine] = []
        while rideThroughMonotonicNs() < deadline {
            last = maps()
            if let map = last.first(where: { $0.usable == usable }), FileManager.default.fileExists(atPath: "/dev/mapper/" + map.name) {
                return map
            }
            guard process.isRunning else { throw RideThroughError("keeld exited \(process.terminationStatus):\n\(stderrTail())") }
            usleep(200_000)
        }
        throw RideThroughError("no map with \(usable) usable paths after \(timeoutNs / 1_000_000_000) s; show maps: \(last)\n\(stderrTail())")
    }

    /// SIGTERM, then SIGKILL after `graceNs`; returns keeld's exit status (nil if it had to be killed).
    @discardableResult
    func stop(graceNs: UInt64 = 10_000_000_000) -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        let deadline = rideThroughMonotonicNs() + graceNs
        while process.isRunning && rideThroughMonotonicNs() < deadline { usleep(50_000) }
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGKILL)
        // Bounded: a process in uninterruptible I/O outlives SIGKILL until that I/O ends.
        let killDeadline = rideThroughMonotonicNs() + graceNs
        while process.isRunning && rideThroughMonotonicNs() < killDeadline { usleep(50_000) }
        return nil
    }
}

/// Removes a multipath map keeld left behind (its queued I/O failed first, so nothing hangs).
func keeldRemoveMap(_ name: String) {
    _ = try? keeldGuestShell("dmsetup message \(name) 0 fail_if_no_path 2>/dev/null; for i in $(seq 50); do dmsetup remove --noudevsync \(name) 2>/dev/null && break; dmsetup info \(name) >/dev/null 2>&1 || break; keel_sleep 0.1; done")
}

/// One iSCSI disk and the portal (1 or 2) its session goes through.
struct PortalDisk {
    var disk: String
    var portal: Int
    var device: DevNo
}

/// The disks `keel_iscsi` printed ("sdX PORTAL" lines), with their device numbers.
func portalDisks(_ listing: String) throws -> [PortalDisk] {
    try listing.split(separator: "\n").map { line in
        let fields = line.split(separator: " ")
        let text = ((try? String(contentsOfFile: "/sys/block/\(fields[0])/dev", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = text.split(separator: ":").compactMap { UInt32($0) }
        guard fields.count == 2, let portal = Int(fields[1]), parts.count == 2 else {
            throw RideThroughError("keel_iscsi printed `\(line)` (dev \(text))")
        }
        return PortalDisk(disk: String(fields[0]), portal: portal, device: DevNo(major: parts[0], minor: parts[1]))
    }
}


/// A disk's device number from sysfs (`/sys/block/sdX/dev`), or nil.
func keeldDiskDevice(_ disk: String) -> DevNo? {
    let parts = ((try? String(contentsOfFile: "/sys/block/\(disk)/dev", encoding: .utf8)) ?? "")
        .trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":").compactMap { UInt32($0) }
    return parts.count == 2 ? DevNo(major: parts[0], minor: parts[1]) : nil
}

/// Whether each path of `maps` is active in the kernel's status, by device.
func pathsActive(_ control: DMControl, maps: [String]) throws -> [DevNo: Bool] {
    var active: [DevNo: Bool] = [:]
    for name in maps {
        for group in try control.multipathStatus(name: name).groups {
            for path in group.paths { active[path.device] = path.active }
        }
    }
    return active
}

/// Starts keeld on `configuration` and waits (at most 60 s) for `count` maps of `usable` usable
/// paths each; returns it with the maps' names. The caller ends it with `keeldStop(_:removing:)`;
/// when the maps never come, keeld is stopped here and the error says what it had.
func keeldStartedWithMaps(_ configuration: String, maps count: Int, usable: Int, logFile: String? = nil,
                          timeoutNs: Nanoseconds = 60 * Time.nsPerSecond) throws -> (keeld: KeeldDaemon, names: [String]) {
    let keeld = try KeeldDaemon(configuration: configuration, logFile: logFile)
    var names: [String] = []
    do {
        try keeld.waitReady(timeoutNs: timeoutNs)
        let built = kernelTestWait(every: 50_000, timeoutNs: timeoutNs) {
            let maps = keeld.maps()
            names = maps.map(\.name)
            return maps.count == count && maps.allSatisfy { $0.usable == usable }
        }
        guard built != nil else { throw RideThroughError("keeld's maps after \(timeoutNs / Time.nsPerSecond) s: \(keeld.maps())\n\(keeld.stderrTail())") }
    } catch {
        keeldStop(keeld, removing: names)
        throw error
    }
    return (keeld, names)
}

/// Stops keeld and removes the maps it made.
func keeldStop(_ keeld: KeeldDaemon, removing names: [String]) {
    keeld.stop()
    for name in names { keeldRemoveMap(name) }
}
