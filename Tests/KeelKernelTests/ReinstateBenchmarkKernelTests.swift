// Benchmark on the real kernel (VM only): how long after a failed path returns until the daemon has it active in dm again, Debian's multipathd and keeld side by side.
//
// Both daemons get the same scenario: one scsi_debug LUN behind 4 SCSI hosts (4 paths), the same
// multipath.conf, then rounds of "offline the active/optimized path, wait until dm shows it F, wait
// a moment, set it running, time until dm shows it A". dm status is read in this process through
// libdevmapper about every millisecond (starting a process costs ~60 ms in the emulated VM, so no
// dmsetup in the timing loop). The figures are printed as a Markdown table; nothing asserts on a
// time, only that each daemon builds the map and fails and reinstates the path at all.
//
// multipathd needs, on the host whose filesystem the VM shares: Debian's multipath-tools
// (multipathd), udev (systemd-udevd and udevadm: multipathd only takes udev-initialised paths) and
// dmsetup (the teardown lifts queueing with it). keeld is found through KEEL_KEELD or next to the
// test executable. A missing binary fails its test with what to install or build.
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Synchronization
import Testing

/// Rounds of offline/running per daemon.
fileprivate let benchRounds = 10

/// The policy both daemons run (multipath.conf syntax, accepted by both).
fileprivate let benchConfiguration = """
defaults {
    polling_interval 1
    max_polling_interval 4
    find_multipaths no
    user_friendly_names yes
    path_grouping_policy group_by_prio
    path_checker tur
    prio alua
    failback immediate
    no_path_retry queue
}

"""

/// How long the path stays failed in dm before it is set running again, and the pause after a
/// reinstatement before the next round: a base plus an offset that walks over one second from round
/// to round, so the return does not always fall at the same phase of a 1 s checker tick (the
/// figures would then measure that phase, not the daemon).
fileprivate func benchFailedDwellNs(round: Int) -> Nanoseconds {
    Time.nsPerSecond + Nanoseconds((round * 613) % 1000) * Time.nsPerMs
}
fileprivate func benchRecoveredDwellNs(round: Int) -> Nanoseconds {
    Time.nsPerSecond / 2 + Nanoseconds((round * 379) % 1000) * Time.nsPerMs
}
/// How often dm status is read while waiting.
fileprivate let benchPollIntervalNs = Time.nsPerMs
/// Upper bound of every wait: far above anything either daemon needs, so only a daemon that never
/// acts fails the test.
fileprivate let benchWaitLimitNs = 60 * Time.nsPerSecond

fileprivate struct BenchError: Error, CustomStringConvertible {
    var description: String
}


/// Milliseconds with one decimal, e.g. "1234.5".
fileprivate func benchMs(_ ns: Nanoseconds) -> String {
    let tenths = (ns + Time.nsPerMs / 20) / (Time.nsPerMs / 10)
    return "\(tenths / 10).\(tenths % 10)"
}

fileprivate func benchSleep(_ ns: Nanoseconds) {
    var request = timespec(tv_sec: Int(ns / Time.nsPerSecond), tv_nsec: Int(ns % Time.nsPerSecond))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// Runs `command` under /bin/sh (setup and teardown only, never while timing); returns its exit
/// status (128 + the signal when a signal ended it). posix_spawn and waitpid rather than Foundation's
/// Process: Process waits until the child's copy of its status socket closes, so a command that
/// leaves a daemon behind (`systemd-udevd --daemon`) would never return.
@discardableResult
fileprivate func benchShell(_ command: String) throws -> Int32 {
    let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup(command), nil]
    defer { for argument in argv { free(argument) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ)
    guard spawned == 0 else { throw BenchError(description: "posix_spawn /bin/sh -c `\(command)`: errno \(spawned)") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { throw BenchError(description: "waitpid for `\(command)`: errno \(errno)") }
    }
    let signal = status & 0x7f
    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
}

fileprivate func benchShellChecked(_ command: String) throws {
    let status = try benchShell(command)
    guard status == 0 else { throw BenchError(description: "`\(command)` exited \(status)") }
}

/// A sysfs attribute or small file without surrounding whitespace ("" when unreadable).
fileprivate func benchRead(_ path: String) -> String {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
}

fileprivate func benchIsExecutable(_ path: String) -> Bool { access(path, X_OK) == 0 }

/// The paths `pattern` matches (shell glob), sorted.
fileprivate func benchGlob(_ pattern: String) -> [String] {
    var found = glob_t()
    defer { globfree(&found) }
    guard glob(pattern, 0, nil, &found) == 0 else { return [] }
    return (0..<Int(found.gl_pathc)).compactMap { found.gl_pathv[$0].map { String(cString: $0) } }.sorted()
}

/// One scsi_debug disk: its SCSI host, its sd name and its device number.
fileprivate struct BenchDisk {
    var host: Int
    var name: String
    var device: DevNo
}

/// The sd disks of scsi_debug, ordered by SCSI host (names follow the asynchronous scan order).
fileprivate func benchScsiDebugDisks() -> [BenchDisk] {
    benchGlob("/sys/bus/pseudo/drivers/scsi_debug/adapter*/host*/target*/*:*:*:*/block/sd*").compactMap { path in
        let parts = path.split(separator: "/")
        guard parts.count >= 3, let host = Int(parts[parts.count - 3].split(separator: ":")[0]) else { return nil }
        let name = String(parts[parts.count - 1])
        let numbers = benchRead("/sys/block/\(name)/dev").split(separator: ":").compactMap { UInt32($0) }
        guard numbers.count == 2 else { return nil }
        return BenchDisk(host: host, name: name, device: DevNo(major: numbers[0], minor: numbers[1]))
    }.sorted { $0.host < $1.host }
}

/// Writes a SCSI device state (`offline` or `running`).
fileprivate func benchSetState(_ disk: BenchDisk, _ state: String) throws {
    try (state + "\n").write(toFile: "/sys/block/\(disk.name)/device/state", atomically: false, encoding: .utf8)
}

/// Loads scsi_debug with one 64 MiB LUN behind 4 hosts and waits until the 4 disks exist, their
/// nodes are made, their probes released the module and ALUA reports each host's state (h % 3).
fileprivate func benchLoadScsiDebug() throws -> [BenchDisk] {
    try benchShellChecked("modprobe scsi_debug add_host=4 num_tgts=1 max_luns=1 vpd_use_hostno=0 dev_size_mb=64")
    let states = ["active/optimized", "active/non-optimized", "standby"]
    let deadline = kernelTestNowNs() + benchWaitLimitNs
    var disks: [BenchDisk] = []
    while kernelTestNowNs() < deadline {
        disks = benchScsiDebugDisks()
        let ready = disks.count == 4 && benchRead("/sys/module/scsi_debug/refcnt") == "0" && disks.allSatisfy {
            FileManager.default.fileExists(atPath: "/dev/\($0.name)")
                && benchRead("/sys/block/\($0.name)/device/access_state") == states[$0.host % 3]
        }
        if ready { return disks }
        benchSleep(50 * Time.nsPerMs)
    }
    throw BenchError(description: "scsi_debug: \(disks.count) of 4 disks ready after 60 s: \(disks.map(\.name))")
}

/// Unloads scsi_debug, retrying while something still holds it (its maps must be gone).
fileprivate func benchUnloadScsiDebug() {
    for _ in 0..<100 {
        guard FileManager.default.fileExists(atPath: "/sys/module/scsi_debug") else { return }
        if (try? benchShell("modprobe -r scsi_debug 2>/dev/null")) == 0 { return }
        benchSleep(100 * Time.nsPerMs)
    }
    print("reinstate-benchmark: scsi_debug could not be unloaded: \(benchRead("/sys/module/scsi_debug/refcnt")) references")
}

/// A temporary directory for one daemon's configuration, log and socket.
fileprivate func benchTemporaryDirectory(_ label: String) throws -> String {
    var template = Array("/tmp/keel-\(label)-XXXXXX".utf8CString)
    guard mkdtemp(&template) != nil else { throw BenchError(description: "mkdtemp: errno \(errno)") }
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// The last `count` lines of a file (a daemon's output or log).
fileprivate func benchTail(_ path: String, _ count: Int = 30) -> String {
    benchRead(path).split(separator: "\n", omittingEmptySubsequences: false).suffix(count).joined(separator: "\n")
}

/// The daemon under measurement: how to start it and what it needs around it.
fileprivate enum BenchDaemon: String {
    case multipathd
    case keeld

    /// Where Debian's multipath-tools puts the daemon.
    static let multipathdCandidates = ["/usr/sbin/multipathd", "/sbin/multipathd"]
    static let udevdCandidates = ["/lib/systemd/systemd-udevd", "/usr/lib/systemd/systemd-udevd"]

    /// The daemon's executable; a clear error when it is not there.
    func executable() throws -> String {
        switch self {
        case .multipathd:
            guard let found = Self.multipathdCandidates.first(where: benchIsExecutable) else {
                throw BenchError(description: "multipathd not found (\(Self.multipathdCandidates.joined(separator: ", "))): "
                    + "the host needs Debian's multipath-tools (apt-get install multipath-tools udev)")
            }
            return found
        case .keeld:
            if let given = ProcessInfo.processInfo.environment["KEEL_KEELD"], !given.isEmpty {
                guard benchIsExecutable(given) else { throw BenchError(description: "KEEL_KEELD=\(given) is not an executable") }
                return given
            }
            let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
            let sibling = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("keeld").path
            guard benchIsExecutable(sibling) else {
                throw BenchError(description: "keeld not found next to the test executable (\(sibling)) and KEEL_KEELD unset: "
                    + "build it first (swift build --product keeld)")
            }
            return sibling
        }
    }
}

/// The figures of one daemon's run.
fileprivate struct BenchFigures: Sendable {
    var daemon: String
    var mapNs: Nanoseconds
    var allActiveNs: Nanoseconds
    var failNs: [Nanoseconds]
    var reinstateNs: [Nanoseconds]
    var pollPeriodNs: Nanoseconds
    /// What Debian's `multipathd` client printed for the same devices (`benchViews`).
    var views: BenchViews
}

/// The formats both daemons are asked for, with every wildcard multipathd 0.9.x knows except
/// those that cannot agree between two runs (`%d` dm-N, `%C` next check, `%F` and `%Q` timers).
fileprivate let benchPathFormat = "%d|%D|%i|%w|%t|%o|%T|%s|%c|%p|%S|%z|%M|%m|%N|%n|%R|%r|%a|%G|%g|%0|%P|%I|%L|%A|%k"
fileprivate let benchMapFormat = "%n|%w|%N|%r|%t|%S|%f|%x|%h|%A|%0|%1|%3|%4|%s|%v|%p|%e|%G|%g|%k"

/// A daemon's answers to `show wildcards` and to the two formats, through Debian's client.
fileprivate struct BenchViews: Sendable {
    var wildcards = ""
    var paths = ""
    var maps = ""
    /// What libdmmp made of the daemon's `show maps json` (Tools/libdmmp-check sets
    /// KEEL_BENCH_LIBDMMP_CLIENT); empty when not asked.
    var libdmmp = ""

    /// The wildcard letters this daemon lists.
    var letters: (maps: Set<Character>, paths: Set<Character>) {
        var maps = Set<Character>(), paths = Set<Character>()
        var inPaths = false
        for line in wildcards.split(separator: "\n") {
            if line.hasPrefix("path format") { inPaths = true }
            guard line.hasPrefix("%"), line.count > 1 else { continue }
            let letter = line[line.index(after: line.startIndex)]
            if inPaths { paths.insert(letter) } else { maps.insert(letter) }
        }
        return (maps, paths)
    }
}

/// `format` keeping only the wildcards in `known` (and their separators).
fileprivate func benchFormat(_ format: String, _ known: Set<Character>) -> String {
    format.split(separator: "|").filter { $0.count == 2 && known.contains($0.last!) }.joined(separator: "|")
}

/// Every run of this process, so the second test can print both rows in one table.
fileprivate let benchResults = Mutex<[BenchFigures]>([])

fileprivate func benchMedian(_ values: [Nanoseconds]) -> Nanoseconds {
    let sorted = values.sorted()
    let n = sorted.count
    return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
}

fileprivate func benchTable(_ rows: [BenchFigures]) -> String {
    var lines = [
        "| daemon | start -> map (ms) | start -> 4 paths A (ms) | returned -> A min (ms) | median (ms) | max (ms) | offline -> F median (ms) | rounds | dm poll period (ms) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows {
        let reinstate = row.reinstateNs.sorted()
        lines.append("| \(row.daemon) | \(benchMs(row.mapNs)) | \(benchMs(row.allActiveNs)) | \(benchMs(reinstate.first ?? 0)) | "
            + "\(benchMs(benchMedian(reinstate))) | \(benchMs(reinstate.last ?? 0)) | \(benchMs(benchMedian(row.failNs))) | "
            + "\(reinstate.count) | \(benchMs(row.pollPeriodNs)) |")
    }
    return lines.joined(separator: "\n")
}

/// One daemon over the 4 scsi_debug paths: its setup, the measured rounds, its teardown.
fileprivate final class BenchRun {
    let daemon: BenchDaemon
    let directory: String
    let outputPath: String
    let control: DMControl
    var disks: [BenchDisk] = []
    var process: Process?
    var startedUdevd = false
    var wroteSystemConfiguration = false
    var madeMultipathDirectory = false
    var polls = 0
    var pollingNs: Nanoseconds = 0

    init(daemon: BenchDaemon) throws {
        self.daemon = daemon
        directory = try benchTemporaryDirectory("bench-\(daemon.rawValue)")
        outputPath = directory + "/\(daemon.rawValue).out"
        control = try DMControl()
    }

    /// The multipath maps in the kernel now.
    func maps() -> [DMMapInfo] { (try? control.listMultipathMaps()) ?? [] }

    /// The kernel's view of `device` in `map`: true for A, false for F, nil when not in the map.
    func pathActive(map: String, device: DevNo) -> Bool? {
        guard let status = try? control.multipathStatus(name: map) else { return nil }
        for group in status.groups {
            for path in group.paths where path.device == device { return path.active }
        }
        return nil
    }

    /// Polls `condition` every `benchPollIntervalNs` until it holds; when it first held, nil after
    /// `benchWaitLimitNs`. Counts the polls to report the timer's real resolution.
    func waitUntil(_ condition: () -> Bool) -> Nanoseconds? {
        let start = kernelTestNowNs()
        let deadline = start + benchWaitLimitNs
        defer { pollingNs += kernelTestNowNs() - start }
        while true {
            polls += 1
            if condition() { return kernelTestNowNs() }
            if kernelTestNowNs() >= deadline { return nil }
            benchSleep(benchPollIntervalNs)
        }
    }

    /// Prepares the kernel: udevd first for multipathd (it only takes udev-initialised devices),
    /// then the 4 paths.
    func prepare() throws {
        guard maps().isEmpty else { throw BenchError(description: "a multipath map exists before the run: \(maps())") }
        if daemon == .multipathd {
            if try benchShell("udevadm control --ping >/dev/null 2>&1") != 0 {
                guard let udevd = BenchDaemon.udevdCandidates.first(where: benchIsExecutable) else {
                    throw BenchError(description: "systemd-udevd not found (\(BenchDaemon.udevdCandidates.joined(separator: ", "))): "
                        + "multipathd needs udevd; the host needs Debian's udev")
                }
                try benchShellChecked("\(udevd) --daemon")
                startedUdevd = true
                try benchShellChecked("udevadm control --ping -t 10 >/dev/null")
            }
        }
        disks = try benchLoadScsiDebug()
        if daemon == .multipathd { try benchShellChecked("udevadm settle -t 60") }
    }

    /// Writes the configuration and starts the daemon; returns when it was started.
    func launch() throws -> Nanoseconds {
        let executable = try daemon.executable()
        var arguments: [String]
        switch daemon {
        case .multipathd:
            // multipathd reads only /etc/multipath.conf (a tmpfs overlay in the VM); never
            // overwrite one that is there.
            guard !FileManager.default.fileExists(atPath: "/etc/multipath.conf") else {
                throw BenchError(description: "/etc/multipath.conf exists; refusing to replace it")
            }
            if !FileManager.default.fileExists(atPath: "/etc/multipath") {
                try FileManager.default.createDirectory(atPath: "/etc/multipath", withIntermediateDirectories: false)
                madeMultipathDirectory = true
            }
            try benchConfiguration.write(toFile: "/etc/multipath.conf", atomically: false, encoding: .utf8)
            wroteSystemConfiguration = true
            // -d: foreground, -s: no timestamps, -v2: its default verbosity.
            arguments = ["-d", "-s", "-v2"]
        case .keeld:
            let configuration = directory + "/multipath.conf"
            try benchConfiguration.write(toFile: configuration, atomically: false, encoding: .utf8)
            arguments = ["--config", configuration, "--log-file", directory + "/keeld.log",
                         "--control-socket", directory + "/keeld.socket"]
        }
        guard FileManager.default.createFile(atPath: outputPath, contents: nil) else {
            throw BenchError(description: "cannot create \(outputPath)")
        }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        let startedAt = kernelTestNowNs()
        try process.run()
        self.process = process
        print("reinstate-benchmark: \(daemon.rawValue): started \(executable) \(arguments.joined(separator: " ")) (pid \(process.processIdentifier))")
        return startedAt
    }

    /// What went wrong, with the daemon's last output lines.
    func failure(_ what: String) -> BenchError {
        var text = "\(daemon.rawValue): \(what)"
        if let process, !process.isRunning { text += " (the daemon exited with \(process.terminationStatus))" }
        text += "\n--- last lines of its output (\(outputPath)):\n\(benchTail(outputPath))"
        if daemon == .keeld { text += "\n--- last lines of its log:\n\(benchTail(directory + "/keeld.log"))" }
        return BenchError(description: text)
    }

    /// The whole measurement; the caller tears down.
    func measure() throws -> BenchFigures {
        try prepare()
        let startedAt = try launch()
        guard let mapAt = waitUntil({ !maps().isEmpty || process?.isRunning == false }), let map = maps().first?.name else {
            throw failure("no multipath map within 60 s of the start")
        }
        let devices = disks.map(\.device)
        guard let allActiveAt = waitUntil({ devices.allSatisfy { pathActive(map: map, device: $0) == true } || process?.isRunning == false }),
              process?.isRunning == true else {
            throw failure("\(map) does not have the 4 paths active")
        }
        if let table = try? control.table(name: map).first?.params {
            print("reinstate-benchmark: \(daemon.rawValue): table of \(map): \(table)")
        }
        // The active/optimized path (host 0, ALUA state 0): the one that carries I/O.
        guard let path = disks.first(where: { $0.host % 3 == 0 }) else { throw failure("no disk on host 0") }
        benchSleep(2 * Time.nsPerSecond)
        let views = try askViews()
        polls = 0
        pollingNs = 0
        var failNs: [Nanoseconds] = []
        var reinstateNs: [Nanoseconds] = []
        for round in 1...benchRounds {
            let offlineAt = kernelTestNowNs()
            try benchSetState(path, "offline")
            guard let failedAt = waitUntil({ pathActive(map: map, device: path.device) == false }) else {
                throw failure("round \(round): \(path.name) (\(path.device)) not F in dm 60 s after offline")
            }
            benchSleep(benchFailedDwellNs(round: round))
            let runningAt = kernelTestNowNs()
            try benchSetState(path, "running")
            guard let activeAt = waitUntil({ pathActive(map: map, device: path.device) == true }) else {
                throw failure("round \(round): \(path.name) (\(path.device)) not A in dm 60 s after running")
            }
            failNs.append(failedAt - offlineAt)
            reinstateNs.append(activeAt - runningAt)
            print("reinstate-benchmark: \(daemon.rawValue): round \(round): \(path.name) (host \(path.host)) offline -> F \(benchMs(failedAt - offlineAt)) ms, running -> A \(benchMs(activeAt - runningAt)) ms")
            benchSleep(benchRecoveredDwellNs(round: round))
        }
        guard process?.isRunning == true else { throw failure("the daemon stopped during the rounds") }
        return BenchFigures(daemon: daemon.rawValue, mapNs: mapAt - startedAt, allActiveNs: allActiveAt - startedAt,
                            failNs: failNs, reinstateNs: reinstateNs, pollPeriodNs: pollingNs / Nanoseconds(max(polls, 1)), views: views)
    }

    /// The daemon's `show wildcards`, and its paths and maps in `benchPathFormat` and
    /// `benchMapFormat`, through Debian's `multipathd` client (raw: no padding).
    func askViews() throws -> BenchViews {
        func ask(_ command: String) throws -> String {
            let file = directory + "/answer"
            try benchShellChecked("multipathd \(command) > \(file) 2>&1")
            return (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        }
        // One read through each map first: the kernel marks a group active (A) only once I/O has
        // chosen it, and under multipathd udev's probe of the new map has read it already.
        for map in maps() { _ = try? benchShell("dd if=/dev/mapper/\(map.name) of=/dev/null bs=4096 count=1 iflag=direct 2>/dev/null") }
        var views = BenchViews()
        views.wildcards = try ask("show wildcards")
        views.paths = try ask("show paths raw format '\(benchPathFormat)'")
        views.maps = try ask("show maps raw format '\(benchMapFormat)'")
        if let client = benchLibdmmpClient {
            // libdmmp refuses JSON it does not understand: a failure here is the answer.
            let file = directory + "/libdmmp"
            let status = try benchShell("\(client) > \(file) 2>&1")
            let answer = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            guard status == 0 else { throw BenchError(description: "libdmmp refused \(daemon.rawValue)'s answer (exit \(status)): \(answer)") }
            views.libdmmp = answer.split(separator: "\n").map(String.init).sorted().joined(separator: "\n")
        }
        return views
    }

    /// Stops the daemon, removes its maps (queueing off first), unloads scsi_debug and undoes
    /// what `prepare` and `launch` set up, so the next test starts from the same kernel state.
    func tearDown() {
        for disk in disks { try? benchSetState(disk, "running") }
        if let process, process.isRunning {
            process.terminate()
            let deadline = kernelTestNowNs() + 30 * Time.nsPerSecond
            while process.isRunning && kernelTestNowNs() < deadline { benchSleep(20 * Time.nsPerMs) }
            if process.isRunning {
                print("reinstate-benchmark: \(daemon.rawValue) ignored SIGTERM for 30 s; killing it")
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        for map in maps() {
            _ = try? benchShell("dmsetup message \(map.name) 0 fail_if_no_path")
            for _ in 0..<100 {
                do {
                    try control.remove(name: map.name)
                    break
                } catch {
                    if error.errno == ENXIO { break }
                    benchSleep(100 * Time.nsPerMs)
                }
            }
        }
        if startedUdevd { _ = try? benchShell("udevadm settle -t 30") }
        benchUnloadScsiDebug()
        if startedUdevd {
            _ = try? benchShell("udevadm settle -t 30; udevadm control --exit")
        }
        if wroteSystemConfiguration { try? FileManager.default.removeItem(atPath: "/etc/multipath.conf") }
        if madeMultipathDirectory { try? FileManager.default.removeItem(atPath: "/etc/multipath") }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Runs the benchmark for `daemon`, prints its figures, and the table of every daemon measured
/// so far in this process.
fileprivate func benchmark(_ daemon: BenchDaemon) throws {
    let run = try BenchRun(daemon: daemon)
    defer { run.tearDown() }
    let figures = try run.measure()
    let rows = benchResults.withLock { results in
        results.append(figures)
        return results
    }
    #expect(figures.reinstateNs.count == benchRounds)
    print("reinstate-benchmark: \(daemon.rawValue): start -> map \(benchMs(figures.mapNs)) ms; returned -> A over \(benchRounds) rounds: "
        + "min \(benchMs(figures.reinstateNs.min()!)) median \(benchMs(benchMedian(figures.reinstateNs))) max \(benchMs(figures.reinstateNs.max()!)) ms")
    print("reinstate-benchmark: table (Tools/kernel-tests --filter ReinstateBenchmark):\n\(benchTable(rows))")
    if let reference = rows.first(where: { $0.daemon == BenchDaemon.multipathd.rawValue }),
       let keeld = rows.first(where: { $0.daemon == BenchDaemon.keeld.rawValue }) {
        compareViews(reference: reference.views, keeld: keeld.views)
    }
}

/// The same devices through Debian's client: every wildcard multipathd lists prints the same
/// for keeld, path by path and map by map (lines sorted: the order of paths may differ).
fileprivate func compareViews(reference: BenchViews, keeld: BenchViews) {
    let (referenceMaps, referencePaths) = reference.letters
    let (keeldMaps, keeldPaths) = keeld.letters
    #expect(referenceMaps.subtracting(keeldMaps).isEmpty, "map wildcards keeld lacks: \(referenceMaps.subtracting(keeldMaps))")
    #expect(referencePaths.subtracting(keeldPaths).isEmpty, "path wildcards keeld lacks: \(referencePaths.subtracting(keeldPaths))")
    // %d and %D are the names the kernel gave the disks, in the order its scan found them, which
    // may differ between the two runs: paths are compared by H:C:T:L (%i), the first field kept.
    let pathFormat = benchFormat(benchPathFormat, referencePaths.subtracting(["d", "D"]))
    let mapFormat = benchFormat(benchMapFormat, referenceMaps)
    func pick(_ answer: String, _ full: String, _ kept: String) -> [String] {
        let fields = full.split(separator: "|").map(String.init)
        let keep = Set(kept.split(separator: "|").map(String.init))
        return answer.split(separator: "\n").map { line in
            zip(fields, line.split(separator: "|", omittingEmptySubsequences: false)).filter { keep.contains($0.0) }.map { String($0.1) }
                .joined(separator: "|")
        }.sorted()
    }
    let paths = (pick(reference.paths, benchPathFormat, pathFormat), pick(keeld.paths, benchPathFormat, pathFormat))
    let maps = (pick(reference.maps, benchMapFormat, mapFormat), pick(keeld.maps, benchMapFormat, mapFormat))
    print("reinstate-benchmark: show paths raw format '\(pathFormat)'\n  multipathd:\n    " + paths.0.joined(separator: "\n    ")
        + "\n  keeld:\n    " + paths.1.joined(separator: "\n    "))
    print("reinstate-benchmark: show maps raw format '\(mapFormat)'\n  multipathd:\n    " + maps.0.joined(separator: "\n    ")
        + "\n  keeld:\n    " + maps.1.joined(separator: "\n    "))
    #expect(paths.0.count == 4 && paths.0 == paths.1, "show paths differs")
    #expect(maps.0.count == 1 && maps.0 == maps.1, "show maps differs")
    if benchLibdmmpClient != nil {
        print("reinstate-benchmark: libdmmp (show maps json through multipath-tools' library)\n  multipathd:\n    "
              + reference.libdmmp.replacingOccurrences(of: "\n", with: "\n    ")
              + "\n  keeld:\n    " + keeld.libdmmp.replacingOccurrences(of: "\n", with: "\n    "))
        #expect(reference.libdmmp.split(separator: "\n").filter { $0.contains(" path ") }.count == 4, "libdmmp sees 4 paths under multipathd")
        #expect(reference.libdmmp == keeld.libdmmp, "libdmmp's view differs")
    }
}

/// The libdmmp client Tools/libdmmp-check built, when it runs the benchmark.
fileprivate let benchLibdmmpClient: String? = {
    guard let path = ProcessInfo.processInfo.environment["KEEL_BENCH_LIBDMMP_CLIENT"], !path.isEmpty else { return nil }
    return path
}()

@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["KEEL_KERNEL_TESTS"] == "1",
                             "real-kernel benchmark: runs in the VM (Tools/kernel-tests), which sets KEEL_KERNEL_TESTS=1"))
struct ReinstateBenchmarkKernelTests {
    /// Debian's multipathd (multipath-tools 0.9.4) with udevd: the reference figures.
    @Test func multipathdReinstatesReturnedPathWithFiguresPrinted() throws {
        try benchmark(.multipathd)
    }

    /// keeld under the same configuration and the same paths.
    @Test func keeldReinstatesReturnedPathWithFiguresPrinted() throws {
        try benchmark(.keeld)
    }
}
