// keeld as a process on the real kernel (VM only): it builds the map, fails and reinstates a
// path, runs pinned, real-time, sandboxed and childless, adopts its maps after kill -9 without a
// reload, and loses no queued I/O when killed while every path is down.
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Synchronization
import Testing

private let daemonConfiguration = """
defaults {
    polling_interval 1
    max_polling_interval 4
    fast_probe_interval_ms 100
    path_grouping_policy group_by_prio
    prio alua
    failback immediate
    no_path_retry queue
    path_checker tur
    user_friendly_names yes
    find_multipaths greedy
    max_paths 64
    max_maps 16
    max_paths_per_map 16
    ring_slots 1024
}
"""

private struct DaemonTestError: Error, CustomStringConvertible { var description: String }

private func readText(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

/// scsi_debug's 4 paths to one LUN, with ALUA states settled (host h: priority 50, 10, 1 by h % 3).
private func loadPaths() throws -> [UInt32: String] {
    // A fresh module: one left loaded by an earlier test would keep its hosts (and ignore the
    // parameters).
    if FileManager.default.fileExists(atPath: "/sys/module/scsi_debug") { cleanUp(nil, disks: [:]) }
    try keeldGuestShell("modprobe scsi_debug add_host=4 num_tgts=1 max_luns=1 vpd_use_hostno=0 dev_size_mb=64")
    let deadline = kernelTestNowNs() + 60 * Time.nsPerSecond
    while kernelTestNowNs() < deadline {
        let report = SysfsDiscovery().discoverAll()
        let ready = report.paths.filter {
            $0.model == "scsi_debug" && FileManager.default.fileExists(atPath: "/dev/\($0.kernelName)")
                && ALUAPrioritizer().priority(hctl: $0.address.description) == [50, 10, 1][Int($0.address.host % 3)]
        }
        if ready.count == 4 { return Dictionary(uniqueKeysWithValues: ready.map { ($0.address.host, $0.kernelName) }) }
        usleep(100_000)
    }
    throw DaemonTestError(description: "scsi_debug's 4 disks did not settle within 60 s")
}

/// scsi_debug's 4 paths, a DMControl, and a keeld started on them and ready; then `body`. keeld
/// is stopped, and the map and scsi_debug removed, whatever happened.
private func withReadyKeeld(_ directory: String, extraArguments: [String] = [], configuration: String = daemonConfiguration,
                            _ body: (_ keeld: KeeldDaemon, _ disks: [UInt32: String], _ control: DMControl) throws -> Void) throws {
    let disks = try loadPaths()
    let control = try DMControl()
    defer { cleanUp(control, disks: disks) }
    let keeld = try KeeldDaemon(directory: directory, configuration: configuration, arguments: extraArguments)
    defer { keeld.stop() }
    try keeld.waitReady()
    try body(keeld, disks, control)
}

/// The map's status, per path: (device, active, fail count).
private func pathStates(_ control: DMControl, map: String) throws -> [(device: DevNo, active: Bool, failCount: Int)] {
    let status = try control.multipathStatus(name: map)
    return status.groups.flatMap { $0.paths.map { ($0.device, $0.active, $0.failCount) } }
}



private func ms(_ ns: Nanoseconds) -> String { String(format: "%.1f ms", Double(ns) / 1e6) }

/// Removes the map and scsi_debug whatever state the test left.
private func cleanUp(_ control: DMControl?, disks: [UInt32: String]) {
    for disk in disks.values { try? keeldSetDiskState(disk, "running") }
    // The kernel may hold the map or the module a moment after the daemon has gone: retry.
    for _ in 0..<20 {
        if let control { try? control.remove(name: "mpatha") }
        if (try? keeldGuestShell("dmsetup remove --force mpatha 2>/dev/null; modprobe -r scsi_debug")) != nil { return }
        usleep(250_000)
    }
}

/// A raw connection to keeld's multipathd socket; -1 when refused.
private func connected() -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var (address, length) = ControlServer.abstractAddress(ControlClient.multipathdName)
    let ok = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) } }
    return ok == 0 ? fd : -1
}

/// Sends what the socket takes of `bytes` without waiting.
private func push(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        if n <= 0 { return }
        offset += n
    }
}

@Suite("keeld process", .serialized, .enabled(if: ProcessInfo.processInfo.environment["KEEL_KERNEL_TESTS"] == "1"))
struct KeeldProcessKernelTests {
    @Test("keeld builds mpatha over 4 paths, fails an offline path and reinstates it when it runs again")
    func buildsMapFailsAndReinstates() throws {
        try withReadyKeeld("/tmp/keeld-basic") { keeld, disks, control in
            let paths = try pathStates(control, map: "mpatha")
            #expect(paths.count == 4)
            let table = try control.multipathTable(name: "mpatha")
            #expect(table.queueIfNoPath)
            #expect(table.groups.count == 3, "group_by_prio over ALUA 50/10/1: \(table.groups.count) groups")
            let disk = try #require(disks[1])
            let device = try #require(keeldDiskDevice(disk))
            try keeldSetDiskState(disk, "offline")
            let failedAfter = try kernelTestWait(timeoutNs: 15 * Time.nsPerSecond) {
                try pathStates(control, map: "mpatha").first { $0.device == device }?.active == false
            }
            #expect(failedAfter != nil, "keeld did not fail \(disk) within 15 s")
            #expect(keeld.answer("show paths").contains("\(disk) \(device) mpatha"))
            try keeldSetDiskState(disk, "running")
            let reinstatedAfter = try kernelTestWait(timeoutNs: 15 * Time.nsPerSecond) {
                try pathStates(control, map: "mpatha").first { $0.device == device }?.active == true
            }
            #expect(reinstatedAfter != nil, "keeld did not reinstate \(disk) within 15 s")
            print("keeld figures: offline -> failed \(failedAfter.map(ms) ?? "-"); running -> reinstated \(reinstatedAfter.map(ms) ?? "-")")
            // The logger writes within its wake interval; give it a second.
            let logged = kernelTestWait(timeoutNs: 2 * Time.nsPerSecond) { readText(keeld.logFile).contains("reinstated") }
            #expect(logged != nil, "the log file shows the reinstatement")
        }
    }

    @Test("the running keeld has its memory locked, an RT recovery thread, seccomp mode 2, OOM score -1000, no children")
    func runsPinnedRealtimeSandboxed() throws {
        try withReadyKeeld("/tmp/keeld-facts") { keeld, disks, control in
            let status = ProcessStatus(text: readText("/proc/\(keeld.pid)/status"))
            let locked = try #require(status.bytes(of: "VmLck"))
            let resident = try #require(status.bytes(of: "VmRSS"))
            print("keeld figures: VmLck \(locked / 1024) KiB, VmRSS \(resident / 1024) KiB")
            // VmLck counts whole locked mappings (guard pages too), so it is at least the resident set.
            #expect(locked >= resident * 95 / 100, "VmLck \(locked) vs VmRSS \(resident)")
            #expect(status.value(of: "Seccomp")?.trimmingCharacters(in: .whitespaces) == "2")
            #expect(readText("/proc/\(keeld.pid)/oom_score_adj").trimmingCharacters(in: .whitespacesAndNewlines) == "-1000")
            let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(keeld.pid)/task")
            var recoveryPolicy: Int? = nil
            var children = ""
            for task in tasks {
                let comm = readText("/proc/\(keeld.pid)/task/\(task)/comm").trimmingCharacters(in: .whitespacesAndNewlines)
                if comm == "keel-recovery" {
                    // Field 41 of stat is the scheduling policy (1 = SCHED_FIFO); the name may hold
                    // spaces, so count from the closing parenthesis (field 3 onwards).
                    let stat = readText("/proc/\(keeld.pid)/task/\(task)/stat")
                    let fields = stat[stat.range(of: ")")!.upperBound...].split(separator: " ")
                    recoveryPolicy = Int(fields[41 - 3])
                }
                children += readText("/proc/\(keeld.pid)/task/\(task)/children").trimmingCharacters(in: .whitespacesAndNewlines)
            }
            #expect(recoveryPolicy == 1, "keel-recovery scheduling policy \(String(describing: recoveryPolicy))")
            #expect(children.isEmpty, "keeld has children: \(children)")
            let daemon = keeld.answer("show daemon")
            #expect(daemon.contains("SCHED_FIFO"), "show daemon: \(daemon)")
            #expect(daemon.contains("seccomp filter installed"), "show daemon: \(daemon)")
            // Least privilege in every thread: module loading (16), ptrace (19), raw network (13)
            // and setuid (7) are gone; device-mapper (21) and raw SCSI I/O (17) are kept.
            for task in tasks {
                let status = readText("/proc/\(keeld.pid)/task/\(task)/status")
                let line = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") } ?? ""
                let effective = UInt64(line.split(separator: "\t").last.map(String.init) ?? "", radix: 16) ?? 0
                let bounding = UInt64((status.split(separator: "\n").first { $0.hasPrefix("CapBnd:") } ?? "").split(separator: "\t").last.map(String.init) ?? "", radix: 16) ?? ~0
                for dropped in [16, 19, 13, 7] {
                    #expect(effective & (1 << UInt64(dropped)) == 0, "task \(task) still has capability \(dropped): \(line)")
                    #expect(bounding & (1 << UInt64(dropped)) == 0, "task \(task) bounding set still has \(dropped)")
                }
                #expect(effective & (1 << 21) != 0 && effective & (1 << 17) != 0, "task \(task): \(line)")
            }
            #expect(daemon.contains("capabilities kept 10 of 10"), "show daemon: \(daemon)")
            print("keeld show daemon:\n\(daemon)")
        }
    }

    @Test("keeld restarted after kill -9 adopts mpatha without reloading it (fail counts survive)")
    func restartAdoptsWithoutReload() throws {
        let disks = try loadPaths()
        let control = try DMControl()
        defer { cleanUp(control, disks: disks) }
        let first = try KeeldDaemon(directory: "/tmp/keeld-adopt-1", configuration: daemonConfiguration)
        try first.waitReady()
        let disk = try #require(disks[0])
        let device = try #require(keeldDiskDevice(disk))
        try keeldSetDiskState(disk, "offline")
        _ = try kernelTestWait(timeoutNs: 15 * Time.nsPerSecond) { try pathStates(control, map: "mpatha").first { $0.device == device }?.active == false }
        try keeldSetDiskState(disk, "running")
        _ = try kernelTestWait(timeoutNs: 15 * Time.nsPerSecond) { try pathStates(control, map: "mpatha").first { $0.device == device }?.active == true }
        let failCount = try #require(try pathStates(control, map: "mpatha").first { $0.device == device }?.failCount)
        #expect(failCount >= 1)
        first.kill9()
        let second = try KeeldDaemon(directory: "/tmp/keeld-adopt-2", configuration: daemonConfiguration)
        defer { second.stop() }
        try second.waitReady()
        // A reload would have reset every fail count to 0.
        let after = try #require(try pathStates(control, map: "mpatha").first { $0.device == device }?.failCount)
        #expect(after == failCount, "fail count \(failCount) before, \(after) after the restart")
        #expect(second.answer("show maps").contains("adopted=yes"), "show maps: \(second.answer("show maps"))")
    }

    @Test("a LUN grown while keeld was down: the restarted keeld loads the adopted map again at the paths' new size, as multipathd does")
    func restartResizesALunGrownMeanwhile() throws {
        let disks = try loadPaths()
        let control = try DMControl()
        defer { cleanUp(control, disks: disks) }
        let first = try KeeldDaemon(directory: "/tmp/keeld-regrow-1", configuration: daemonConfiguration)
        try first.waitReady()
        #expect(try control.table(name: "mpatha").first?.lengthSectors == 64 * 2048)
        first.kill9()
        try "1\n".write(toFile: "/sys/bus/pseudo/drivers/scsi_debug/virtual_gb", atomically: false, encoding: .utf8)
        for d in disks.values { try "1\n".write(toFile: "/sys/block/\(d)/device/rescan", atomically: false, encoding: .utf8) }
        let second = try KeeldDaemon(directory: "/tmp/keeld-regrow-2", configuration: daemonConfiguration)
        defer { second.stop() }
        try second.waitReady()
        let grown = try kernelTestWait(timeoutNs: 20 * Time.nsPerSecond) { try control.table(name: "mpatha").first?.lengthSectors == 2 * 1024 * 1024 }
        #expect(grown != nil, "mpatha's length: \((try? control.table(name: "mpatha").first?.lengthSectors).map { "\($0)" } ?? "-")")
        let logged = kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { readText(second.logFile).contains("resized from 131072 to 2097152 sectors") }
        #expect(logged != nil, "\(readText(second.logFile).suffix(1500))")
        #expect(try pathStates(control, map: "mpatha").count == 4)
    }

    @Test("kill -9 while every path is down loses no queued write; the restarted keeld reinstates the returning path")
    func killDuringAllPathsDownLosesNothing() throws {
        let disks = try loadPaths()
        let control = try DMControl()
        defer { cleanUp(control, disks: disks) }
        let first = try KeeldDaemon(directory: "/tmp/keeld-apd-1", configuration: daemonConfiguration)
        try first.waitReady()
        for disk in disks.values { try keeldSetDiskState(disk, "offline") }
        let allDown = try kernelTestWait(timeoutNs: 20 * Time.nsPerSecond) { try pathStates(control, map: "mpatha").allSatisfy { !$0.active } }
        #expect(allDown != nil, "not every path failed within 20 s")
        // A write queued on the dead map, on a thread of its own.
        let block = (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let done = WriteResult()
        Thread {
            let fd = open("/dev/mapper/mpatha", O_WRONLY | 0o40000 | O_SYNC)
            guard fd >= 0 else { done.set(-1, errno); return }
            defer { close(fd) }
            var raw: UnsafeMutableRawPointer?
            _ = posix_memalign(&raw, 4096, 4096)
            block.withUnsafeBytes { raw!.copyMemory(from: $0.baseAddress!, byteCount: 4096) }
            let n = pwrite(fd, raw, 4096, 8192)
            done.set(n, n < 0 ? errno : 0)
            free(raw)
        }.start()
        usleep(1_000_000)
        #expect(done.value == nil, "the write did not queue")
        first.kill9()
        usleep(500_000)
        #expect(done.value == nil, "the write ended when keeld died")
        let second = try KeeldDaemon(directory: "/tmp/keeld-apd-2", configuration: daemonConfiguration)
        defer { second.stop() }
        try second.waitReady()
        #expect(done.value == nil, "the write ended before a path returned")
        let optimized = try #require(disks[0])
        let returned = kernelTestNowNs()
        try keeldSetDiskState(optimized, "running")
        let completed = kernelTestWait(timeoutNs: 30 * Time.nsPerSecond) { done.value != nil }
        let result = try #require(done.value, "the queued write never completed")
        #expect(result.bytes == 4096, "write returned \(result.bytes), errno \(result.errno)")
        print("keeld figures: path back -> queued write completed \(completed.map(ms) ?? "-") (after restart during all paths down)")
        _ = returned
        // The block reads back through the map.
        let fd = open("/dev/mapper/mpatha", O_RDONLY | 0o40000)
        #expect(fd >= 0)
        var raw: UnsafeMutableRawPointer?
        _ = posix_memalign(&raw, 4096, 4096)
        defer { free(raw); close(fd) }
        #expect(pread(fd, raw, 4096, 8192) == 4096)
        #expect(Array(UnsafeRawBufferPointer(start: raw, count: 4096)) == block)
    }

    @Test("SIGHUP applies a changed no_path_retry without tearing the map down, and a new eh_deadline to every path's SCSI host; a bad file is refused and the old one kept")
    func sighupReloadsWithoutTeardown() throws {
        try withReadyKeeld("/tmp/keeld-hup") { keeld, disks, control in
            #expect(try control.multipathTable(name: "mpatha").queueIfNoPath)
            // Holding the map open across the reload: a teardown would fail (busy) or change it.
            let holder = open("/dev/mapper/mpatha", O_RDONLY)
            #expect(holder >= 0)
            defer { close(holder) }
            let before = try #require(try control.listMultipathMaps().first { $0.name == "mpatha" })
            // A broken file first: refused, nothing changes.
            try "defaults {\n    no_path_retry sometimes\n}\n".write(toFile: keeld.configPath, atomically: true, encoding: .utf8)
            kill(keeld.pid, SIGHUP)
            let rejected = kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { readText(keeld.logFile).contains("configuration rejected") }
            #expect(rejected != nil, "the log does not show the bad file refused")
            #expect(keeld.process.isRunning)
            // A hostile one: 300,000 nested sections and a blacklist regex of 300,000 nested groups,
            // parsed on the events thread's small stack. Refused; keeld lives.
            let hostile = String(repeating: "a {\n", count: 300_000) + "blacklist {\ndevnode \"" + String(repeating: "(", count: 300_000) + "\"\n}\n"
            try hostile.write(toFile: keeld.configPath, atomically: true, encoding: .utf8)
            let rejectionsBefore = readText(keeld.logFile).components(separatedBy: "configuration rejected").count
            kill(keeld.pid, SIGHUP)
            let rejectedAgain = kernelTestWait(timeoutNs: 20 * Time.nsPerSecond) {
                readText(keeld.logFile).components(separatedBy: "configuration rejected").count > rejectionsBefore
            }
            #expect(rejectedAgain != nil, "the log does not show the nested file refused")
            #expect(keeld.process.isRunning, "keeld died on a nested file: \(readText(keeld.stderrPath).suffix(2000))")
            #expect(try control.multipathTable(name: "mpatha").queueIfNoPath)
            // Then a good one that stops queueing and sets eh_deadline (the one transport timeout
            // a scsi_debug host has).
            let deadline = { (host: UInt32) in readText("/sys/class/scsi_host/host\(host)/eh_deadline").trimmingCharacters(in: .whitespacesAndNewlines) }
            #expect(disks.keys.allSatisfy { deadline($0) != "17" })
            try daemonConfiguration.replacingOccurrences(of: "no_path_retry queue", with: "no_path_retry fail\n    eh_deadline 17")
                .write(toFile: keeld.configPath, atomically: true, encoding: .utf8)
            kill(keeld.pid, SIGHUP)
            let applied = try kernelTestWait(timeoutNs: 15 * Time.nsPerSecond) { try !control.multipathTable(name: "mpatha").queueIfNoPath }
            #expect(applied != nil, "queue_if_no_path still set 15 s after SIGHUP")
            let after = try #require(try control.listMultipathMaps().first { $0.name == "mpatha" })
            #expect(after.device == before.device, "the map was recreated: \(before.device) -> \(after.device)")
            #expect(keeld.answer("show maps").contains("queueing=no"), "show maps: \(keeld.answer("show maps"))")
            #expect(try pathStates(control, map: "mpatha").count == 4)
            for host in disks.keys.sorted() { #expect(deadline(host) == "17", "host\(host) eh_deadline after SIGHUP") }
        }
    }

    @Test("a log file that cannot be opened at start is not fatal: keeld runs and opens the file once it can")
    func logFileOpenedOnceItCan() throws {
        let disks = try loadPaths()
        let control = try DMControl()
        defer { cleanUp(control, disks: disks) }
        let directory = "/tmp/keeld-late-log"
        let notYet = directory + "/var-log"
        try? FileManager.default.removeItem(atPath: notYet)
        // The later --log-file wins over the one the helper passes.
        let keeld = try KeeldDaemon(directory: directory, configuration: daemonConfiguration, arguments: ["--log-file", notYet + "/keeld.log"])
        defer { keeld.stop() }
        try keeld.waitReady()
        #expect(readText(keeld.stderrPath).contains("cannot open the log file \(notYet)/keeld.log yet"), "\(readText(keeld.stderrPath))")
        #expect(try pathStates(control, map: "mpatha").count == 4)
        try FileManager.default.createDirectory(atPath: notYet, withIntermediateDirectories: true)
        let opened = kernelTestWait(timeoutNs: 15 * Time.nsPerSecond) { readText(notYet + "/keeld.log").contains("keeld ready") }
        #expect(opened != nil, "the log file never got the lines written before it could be opened")
    }

    @Test("with the open-file limit at 1,024, keeld raises it and builds 256 maps over 1,024 paths")
    func fileLimitRaisedForAThousandPaths() throws {
        if FileManager.default.fileExists(atPath: "/sys/module/scsi_debug") { cleanUp(nil, disks: [:]) }
        try keeldGuestShell("modprobe scsi_debug add_host=4 num_tgts=1 max_luns=256 vpd_use_hostno=0 dev_size_mb=16")
        defer {
            for _ in 0..<20 {
                if (try? keeldGuestShell("dmsetup remove_all --force >/dev/null 2>&1; modprobe -r scsi_debug")) != nil { break }
                usleep(250_000)
            }
        }
        let appeared = kernelTestWait(timeoutNs: 180 * Time.nsPerSecond) {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/block")) ?? []
            return names.filter { $0.hasPrefix("sd") && FileManager.default.fileExists(atPath: "/dev/" + $0) }.count >= 1024
        }
        #expect(appeared != nil, "scsi_debug's 1,024 disks did not appear")
        // What systemd gives a service by default, soft and hard, inherited by keeld.
        var saved = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &saved)
        var low = rlimit(rlim_cur: 1024, rlim_max: 1024)
        setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &low)
        let configuration = daemonConfiguration.split(separator: "\n").filter {
            !$0.contains("max_paths") && !$0.contains("max_maps") && !$0.contains("ring_slots")
        }.joined(separator: "\n")
        let keeld = try KeeldDaemon(directory: "/tmp/keeld-fds", configuration: configuration)
        setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &saved)
        defer { keeld.stop() }
        let started = kernelTestNowNs()
        try keeld.waitReady(timeoutNs: 600 * Time.nsPerSecond)
        let said = readText(keeld.stderrPath)
        print("keeld figures: 1,024 paths, start -> ready \(ms(kernelTestNowNs() - started)); \(said.split(separator: "\n").first { $0.contains("open files") } ?? "")")
        // max_paths' default, plus what keeld keeps for everything else (prioritizer commands included).
        let wanted = 16_384 + Int(FileLimit.reserve)
        #expect(said.contains("keeld: open files: \(wanted)"), "\(said.prefix(2000))")
        #expect(said.contains("ready: 256 maps, 1024 paths"), "\(said.suffix(2000))")
        let limits = readText("/proc/\(keeld.pid)/limits").split(separator: "\n").first { $0.hasPrefix("Max open files") } ?? ""
        #expect(limits.contains("\(wanted)"), "\(limits)")
        #expect(keeld.answer("show daemon").contains("maps 256 paths 1024"))
    }

    @Test("a second keeld exits 1 naming the running one's pid and leaves its socket and maps alone")
    func secondInstanceIsRefused() throws {
        let disks = try loadPaths()
        let control = try DMControl()
        defer { cleanUp(control, disks: disks) }
        let first = try KeeldDaemon(directory: "/tmp/keeld-first", configuration: daemonConfiguration)
        defer { first.stop() }
        try first.waitReady()
        let second = try KeeldDaemon(directory: "/tmp/keeld-second", configuration: daemonConfiguration)
        defer { second.stop() }
        let exited = kernelTestWait(timeoutNs: 20 * Time.nsPerSecond) { !second.process.isRunning }
        #expect(exited != nil, "the second keeld is still running")
        #expect(second.process.terminationStatus == 1)
        let said = readText(second.stderrPath)
        #expect(said.contains("keeld pid \(first.pid) is already running"), "second keeld said: \(said)")
        #expect(first.process.isRunning)
        #expect(first.answer("show maps").contains("mpatha"), "the first keeld still answers")
        #expect(try pathStates(control, map: "mpatha").count == 4)
    }

    @Test("SIGTERM leaves maps queueing by default; --on-exit fail-queued switches them to fail_if_no_path first")
    func exitQueueingFollowsTheOption() throws {
        let disks = try loadPaths()
        let control = try DMControl()
        defer { cleanUp(control, disks: disks) }
        let keeping = try KeeldDaemon(directory: "/tmp/keeld-exit-keep", configuration: daemonConfiguration)
        try keeping.waitReady()
        keeping.stop()
        #expect(keeping.process.terminationStatus == 0, "keeld exited \(keeping.process.terminationStatus): \(readText(keeping.stderrPath))")
        #expect(try control.multipathTable(name: "mpatha").queueIfNoPath, "queueing dropped by a plain stop")
        let failing = try KeeldDaemon(directory: "/tmp/keeld-exit-fail", configuration: daemonConfiguration, arguments: ["--on-exit", "fail-queued"])
        try failing.waitReady()
        failing.stop()
        #expect(failing.process.terminationStatus == 0)
        #expect(try !control.multipathTable(name: "mpatha").queueIfNoPath, "still queueing after --on-exit fail-queued")
        #expect(readText(failing.logFile).contains("switched to fail_if_no_path before exit"))

        // queue_without_daemon no decides when --on-exit is not given; forcequeueing daemon overrides it.
        let noQueueing = daemonConfiguration.replacingOccurrences(of: "defaults {", with: "defaults {\n    queue_without_daemon no")
        let forced = try KeeldDaemon(directory: "/tmp/keeld-exit-forced", configuration: noQueueing)
        try forced.waitReady()
        #expect(try control.multipathTable(name: "mpatha").queueIfNoPath, "keeld loads the map queueing again")
        #expect(readText(forced.stderrPath).contains("queue_without_daemon no"), "\(readText(forced.stderrPath))")
        #expect(forced.answer("forcequeueing daemon").hasPrefix("ok"))
        forced.stop()
        #expect(try control.multipathTable(name: "mpatha").queueIfNoPath, "forcequeueing daemon keeps maps queueing at exit")
        let configured = try KeeldDaemon(directory: "/tmp/keeld-exit-configured", configuration: noQueueing)
        try configured.waitReady()
        configured.stop()
        #expect(try !control.multipathTable(name: "mpatha").queueIfNoPath, "queue_without_daemon no fails queued I/O at exit")
    }

    @Test("keeld speaks sd_notify: READY=1, STATUS=, WATCHDOG=1 while it runs, STOPPING=1 on SIGTERM")
    func speaksServiceNotify() throws {
        let disks = try loadPaths()
        let control = try DMControl()
        defer { cleanUp(control, disks: disks) }
        let socketPath = "/tmp/keeld-notify.socket"
        unlink(socketPath)
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd); unlink(socketPath) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(socketPath.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let keeld = try KeeldDaemon(directory: "/tmp/keeld-notify", configuration: daemonConfiguration, environment: ["NOTIFY_SOCKET": socketPath, "WATCHDOG_USEC": "2000000"])
        var messages: [String] = []
        func receive(untilNs deadline: Nanoseconds) {
            var buffer = [UInt8](repeating: 0, count: 2048)
            while kernelTestNowNs() < deadline {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n > 0 { messages.append(String(decoding: buffer[0..<n], as: UTF8.self)) }
            }
        }
        try keeld.waitReady()
        receive(untilNs: kernelTestNowNs() + 3 * Time.nsPerSecond)
        // A path going offline changes the status line.
        let offline = try #require(disks[2])
        let offlineDevice = try #require(keeldDiskDevice(offline))
        try keeldSetDiskState(offline, "offline")
        // Healthy paths are checked every max_polling_interval (4 s here): wait for the failure.
        _ = try kernelTestWait(timeoutNs: 15 * Time.nsPerSecond) {
            try pathStates(control, map: "mpatha").first { $0.device == offlineDevice }?.active == false
        }
        receive(untilNs: kernelTestNowNs() + 2 * Time.nsPerSecond)
        keeld.stop()
        receive(untilNs: kernelTestNowNs() + Time.nsPerSecond)
        #expect(messages.contains("READY=1"), "messages: \(messages)")
        #expect(messages.contains { $0.hasPrefix("STATUS=1 maps, 4 paths (4 usable)") }, "messages: \(messages)")
        #expect(messages.contains { $0.hasPrefix("STATUS=1 maps, 4 paths (3 usable)") }, "STATUS= follows a path going offline: \(messages)")
        // WATCHDOG_USEC 2 s: fed at least every second while the loop runs, so 5 s gives several.
        #expect(messages.filter { $0 == "WATCHDOG=1" }.count >= 3, "messages: \(messages)")
        #expect(messages.contains("STOPPING=1"), "messages: \(messages)")
    }

    @Test("a path that appears while keeld runs joins its map: uevent, discovery, recovery thread, table reload, checks")
    func hotAddedPathJoinsTheMap() throws {
        try withReadyKeeld("/tmp/keeld-hotplug") { keeld, disks, control in
            #expect(try pathStates(control, map: "mpatha").count == 4)
            // scsi_debug with vpd_use_hostno=0: one more host is one more path to the same LUN.
            let added = kernelTestNowNs()
            try "1\n".write(toFile: "/sys/bus/pseudo/drivers/scsi_debug/add_host", atomically: false, encoding: .utf8)
            let joined = try kernelTestWait(timeoutNs: 30 * Time.nsPerSecond) { try pathStates(control, map: "mpatha").count == 5 }
            let pathCount = try pathStates(control, map: "mpatha").count
            #expect(joined != nil, "mpatha still has \(pathCount) paths 30 s after a fifth appeared")
            let checked = kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) {
                let lines = keeld.answer("show paths").split(separator: "\n")
                return lines.count == 5 && lines.allSatisfy { $0.contains(" ready ") || $0.contains(" ghost ") }
            }
            #expect(checked != nil, "show paths: \(keeld.answer("show paths"))")
            #expect(try pathStates(control, map: "mpatha").allSatisfy { $0.active })
            print("keeld figures: fifth path appeared -> in the table \(joined.map(ms) ?? "-"), all 5 checked \(ms(kernelTestNowNs() - added))")
        }
    }

    @Test("a hot-added path of another size than its map's is refused with a line naming both sizes; the map keeps its paths and its length")
    func hotAddedPathOfAnotherSizeIsRefused() throws {
        try withReadyKeeld("/tmp/keeld-wrongsize") { keeld, disks, control in
            #expect(try pathStates(control, map: "mpatha").count == 4)
            // scsi_debug's size is the module's: a host added after it grows to 1 GiB has a disk
            // of 2,097,152 sectors with the same WWID, while the four known paths keep 131,072.
            try "1\n".write(toFile: "/sys/bus/pseudo/drivers/scsi_debug/virtual_gb", atomically: false, encoding: .utf8)
            try "1\n".write(toFile: "/sys/bus/pseudo/drivers/scsi_debug/add_host", atomically: false, encoding: .utf8)
            let refused = kernelTestWait(timeoutNs: 30 * Time.nsPerSecond) {
                readText(keeld.logFile).contains("refused: 2097152 sectors, but its map mpatha has 131072")
            }
            #expect(refused != nil, "keeld's log: \(readText(keeld.logFile).suffix(1500))")
            #expect(try pathStates(control, map: "mpatha").count == 4, "the map keeps its four paths")
            #expect(try control.table(name: "mpatha").first?.lengthSectors == 131_072, "and its length")
            #expect(try pathStates(control, map: "mpatha").allSatisfy { $0.active })
            _ = disks
        }
    }

    @Test("a disk the kernel gives 0 sectors waits outside its map while its rescan hangs, recovery goes on, and it joins when the rescan returns")
    func aDiskWithoutCapacityIsRescannedWithoutWaitingForIt() throws {
        let disks = try loadPaths()
        let control = try DMControl()
        defer { cleanUp(control, disks: disks) }
        let empty = try #require(disks[3]), other = try #require(disks[0])
        // The kernel's view of the disk, replaced: its size file reads 0, and its rescan file is a
        // FIFO, whose open for writing waits for a reader as a rescan waits for a dead device.
        let sizeFile = "/sys/block/\(empty)/size", rescanFile = "/sys/block/\(empty)/device/rescan"
        let zero = "/tmp/keeld-nocapacity-size", fifo = "/tmp/keeld-nocapacity-rescan"
        try "0\n".write(toFile: zero, atomically: false, encoding: .utf8)
        unlink(fifo)
        #expect(mkfifo(fifo, 0o600) == 0)
        _ = try keeldGuestShell("mount --bind \(zero) \(sizeFile) && mount --bind \(fifo) \(rescanFile)")
        var sizeMounted = true
        defer { _ = try? keeldGuestShell("\(sizeMounted ? "umount \(sizeFile); " : "")umount \(rescanFile)") }
        let keeld = try KeeldDaemon(directory: "/tmp/keeld-nocapacity", configuration: daemonConfiguration)
        defer { keeld.stop() }
        try keeld.waitReady()
        let three = kernelTestWait(timeoutNs: 30 * Time.nsPerSecond) { (try? pathStates(control, map: "mpatha").count) == 3 }
        #expect(three != nil, "mpatha without \(empty): \((try? pathStates(control, map: "mpatha")).map { "\($0)" } ?? "none")")
        let noticed = kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) {
            readText(keeld.logFile).contains("has 0 sectors (the kernel could not read its capacity)")
        }
        #expect(noticed != nil, "\(readText(keeld.logFile).suffix(1500))")
        // keeld's rescan of the disk is stuck meanwhile: a path of the map still fails and returns.
        try keeldSetDiskState(other, "offline")
        let failed = kernelTestWait(timeoutNs: 20 * Time.nsPerSecond) {
            (try? pathStates(control, map: "mpatha"))?.contains { !$0.active } == true
        }
        #expect(failed != nil, "\(other) not failed while the rescan of \(empty) hangs")
        try keeldSetDiskState(other, "running")
        let back = kernelTestWait(timeoutNs: 20 * Time.nsPerSecond) {
            (try? pathStates(control, map: "mpatha"))?.allSatisfy(\.active) == true
        }
        #expect(back != nil, "\(other) not reinstated while the rescan of \(empty) hangs")
        // The device answers: its size is the kernel's again, and the rescan's write goes through.
        _ = try keeldGuestShell("umount \(sizeFile)")
        sizeMounted = false
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        #expect(reader >= 0)
        var bytes = [UInt8](repeating: 0, count: 8)
        var count = 0
        _ = kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) {
            count = read(reader, &bytes, bytes.count)
            return count > 0
        }
        close(reader)
        #expect(count == 2 && Array(bytes.prefix(2)) == Array("1\n".utf8), "keeld writes 1 to device/rescan")
        let four = kernelTestWait(timeoutNs: 30 * Time.nsPerSecond) { (try? pathStates(control, map: "mpatha").count) == 4 }
        #expect(four != nil, "\(empty) did not join mpatha: \(readText(keeld.logFile).suffix(1500))")
        // The logger writes behind the events thread: the line may follow the table by a moment.
        let said = kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { readText(keeld.logFile).contains("sectors now: added to its map") }
        #expect(said != nil, "keeld's log: \(readText(keeld.logFile).suffix(1500))")
        #expect(try pathStates(control, map: "mpatha").allSatisfy(\.active))
    }

    @Test("NVMe over TCP, native multipath off: keeld makes one map of the two controllers' namespaces, detect_prio picks ana, the groups follow the ANA states, and a port made inaccessible loses its group's place")
    func nvmeANAPaths() throws {
        let setup = FileManager.default.currentDirectoryPath + "/Tools/guest/nvme-ana-setup.sh"
        print(try keeldGuestShell("bash \(setup) up"))
        let control = try DMControl()
        defer {
            for _ in 0..<20 {
                try? control.remove(name: "mpatha")
                if (try? control.map(uuid: "mpath-uuid.4b45454c-414e-4154-8573-000000000001")) == nil { break }
                usleep(250_000)
            }
            _ = try? keeldGuestShell("bash \(setup) down")
        }
        // The built-in NVMe entry and detect_prio decide the grouping and the prioritizer.
        let configuration = """
            defaults {
                polling_interval 1
                max_polling_interval 4
                fast_probe_interval_ms 100
                user_friendly_names yes
                find_multipaths greedy
                max_paths 64
                max_maps 16
                max_paths_per_map 16
            }
            """
        let keeld = try KeeldDaemon(directory: "/tmp/keeld-nvme", configuration: configuration)
        defer { keeld.stop() }
        try keeld.waitReady()
        func priorities() -> [String: Int] {
            var out: [String: Int] = [:]
            for line in keeld.answer("show paths format \"%d %p\"").split(separator: "\n") {
                let words = line.split(separator: " ")
                if words.count == 2, let value = Int(words[1]) { out[String(words[0])] = value }
            }
            return out
        }
        let settled = kernelTestWait(timeoutNs: 30 * Time.nsPerSecond) { priorities() == ["nvme0n1": 50, "nvme1n1": 10] }
        #expect(settled != nil, "ANA priorities: \(priorities()); log: \(readText(keeld.logFile).suffix(1500))")
        let table = try control.multipathTable(name: "mpatha")
        #expect(table.groups.map { $0.paths.map(\.device) } == [[DevNo(major: 259, minor: 0)], [DevNo(major: 259, minor: 1)]],
                "group_by_prio, the optimized port's path first: \(table.groups)")
        #expect(table.hardwareHandler.isEmpty || table.hardwareHandler == ["0"], "no SCSI device handler: \(table.hardwareHandler)")
        let config = keeld.answer("show paths format \"%d %P\"")
        #expect(config.contains("nvme0n1 nvme:tcp"), "\(config)")
        // The array moves: port 1 inaccessible, port 2 optimized. The next priority round sees
        // it, and under failback immediate the kernel is switched to nvme1n1's group.
        _ = try keeldGuestShell("bash \(setup) set-ana 1 inaccessible && bash \(setup) set-ana 2 optimized")
        let moved = kernelTestWait(timeoutNs: 30 * Time.nsPerSecond) { priorities() == ["nvme0n1": 5, "nvme1n1": 50] }
        #expect(moved != nil, "ANA priorities after the move: \(priorities())")
        // The group the kernel uses: the active one, or (no I/O yet) the one it will use next.
        let switched = kernelTestWait(timeoutNs: 30 * Time.nsPerSecond) {
            guard let status = try? control.multipathStatus(name: "mpatha") else { return false }
            let index = status.groups.firstIndex { $0.state == .active } ?? status.nextGroup - 1
            return status.groups.indices.contains(index) && status.groups[index].paths.map(\.device) == [DevNo(major: 259, minor: 1)]
        }
        #expect(switched != nil, "the kernel does not use nvme1n1's group: \((try? control.multipathStatus(name: "mpatha")).map { "\($0)" } ?? "none")")
    }

    @Test("prio weightedpath gives the paths the priorities prio_args names, and group_by_prio groups them by it")
    func weightedPathPriorities() throws {
        let configuration = daemonConfiguration
            .replacingOccurrences(of: "    prio alua\n", with: "    prio weightedpath\n    prio_args \"hbtl ^0: 50 ^[12]: 20 .* 5\"\n    detect_prio no\n")
        try withReadyKeeld("/tmp/keeld-weighted", configuration: configuration) { keeld, disks, control in
            let lines = keeld.answer("show paths format \"%d %p\"").split(separator: "\n").map(String.init)
            for (host, disk) in disks {
                let want = host == 0 ? 50 : host <= 2 ? 20 : 5
                #expect(lines.contains("\(disk) \(want)"), "\(disk) (host\(host)) should have priority \(want): \(lines)")
            }
            let groups = try control.multipathStatus(name: "mpatha").groups
            #expect(groups.count == 3, "one group per priority: \(groups)")
            #expect(try control.multipathTable(name: "mpatha").groups.first?.paths.count == 1, "the priority-50 path's group first")
        }
    }

    @Test("prio path_latency: keeld times READs of block 0 on every path at once and shows the priorities; the map's groups follow them")
    func pathLatencyPriorities() throws {
        let configuration = daemonConfiguration
            .replacingOccurrences(of: "    prio alua\n", with: "    prio path_latency\n    prio_args \"io_num=20 base_num=10\"\n    detect_prio no\n")
        try withReadyKeeld("/tmp/keeld-latency", configuration: configuration) { keeld, disks, control in
            let lines = keeld.answer("show paths format \"%d %p\"").split(separator: "\n").map(String.init)
            print("keeld path_latency priorities: \(lines)")
            var priorities: Set<Int> = []
            for disk in disks.values {
                let line = lines.first { $0.hasPrefix(disk + " ") }
                let priority = line.flatMap { Int($0.split(separator: " ").last ?? "") }
                #expect(priority.map { (1...8).contains($0) } == true, "\(disk): \(line ?? "no line"): \(lines)")
                if let priority { priorities.insert(priority) }
            }
            let groups = try control.multipathStatus(name: "mpatha").groups
            #expect(groups.count == priorities.count, "one group per priority \(priorities.sorted()): \(groups)")
        }
    }

    @Test("path_grouping_policy group_by_tpg: one group per ALUA target port group (scsi_debug gives each host its own)")
    func groupByTargetPortGroup() throws {
        let configuration = daemonConfiguration.replacingOccurrences(of: "group_by_prio", with: "group_by_tpg")
        try withReadyKeeld("/tmp/keeld-tpg", configuration: configuration) { keeld, disks, control in
            let table = try control.multipathTable(name: "mpatha")
            print("keeld group_by_tpg: \(table.groups.map { $0.paths.map(\.device) }), paths \(keeld.answer("show paths format \"%d %p\""))")
            #expect(table.groups.count == Set(disks.keys).count, "one group per host's port group: \(table.groups)")
            #expect(table.groups.allSatisfy { $0.paths.count == 1 })
            #expect(!readText(keeld.logFile).contains("group_by_tpg needs"), "prio alua: no fallback")
        }
    }

    @Test("every device hangs (scsi_debug drops every command): keeld keeps answering, each hung check is its path's orphan, the paths fail; once the devices answer again every path is reinstated")
    func hungDevicesAreOrphansNotAStall() throws {
        let configuration = daemonConfiguration.replacingOccurrences(of: "    ring_slots 1024\n", with: "    ring_slots 1024\n    checker_timeout 3\n")
        try withReadyKeeld("/tmp/keeld-hung", configuration: configuration) { keeld, disks, control in
            let parameters = "/sys/bus/pseudo/drivers/scsi_debug/"
            func drop(_ on: Bool) throws {
                try (on ? "1\n" : "0\n").write(toFile: parameters + "every_nth", atomically: false, encoding: .utf8)
                try (on ? "4\n" : "0\n").write(toFile: parameters + "opts", atomically: false, encoding: .utf8)
            }
            try drop(true)
            let hungAt = kernelTestNowNs()
            var lifted = false
            defer { if !lifted { try? drop(false) } }
            // The checks time out after checker_timeout: each stays its path's orphan until the
            // kernel gives it back (sg's own timeout and error handling), and the paths are failed
            // in the kernel (the map queues: no_path_retry queue). keeld answers throughout.
            var slowestAnswerNs: Nanoseconds = 0
            var mostOrphans = 0
            var orphanRows: [String] = []
            let failed = try kernelTestWait(timeoutNs: 40 * Time.nsPerSecond) {
                let asked = kernelTestNowNs()
                let daemon = keeld.answer("show daemon")
                let paths = keeld.answer("show paths format \"%d %t %C\"")
                slowestAnswerNs = max(slowestAnswerNs, kernelTestNowNs() - asked)
                let orphans = keeldOrphanedChecks(daemon)
                if orphans > mostOrphans {
                    mostOrphans = orphans
                    orphanRows = paths.split(separator: "\n").map(String.init).filter { $0.hasSuffix("orphan") }
                }
                usleep(50_000)
                let allFailed = try pathStates(control, map: "mpatha").allSatisfy { !$0.active }
                return mostOrphans > 0 && allFailed
            }
            #expect(failed != nil, "every path failed and an orphan seen (most \(mostOrphans)): \(keeld.answer("show paths format \"%d %t %C\""))")
            #expect(!orphanRows.isEmpty, "show paths marks the orphaned paths")
            print("keeld with every device hung: all \(disks.count) paths failed after \(failed.map(ms) ?? "-"), at most \(mostOrphans) checks orphaned at once (\(orphanRows)); slowest show daemon + show paths answer \(ms(slowestAnswerNs))")
            // Still serving while the devices hang.
            #expect(keeld.answer("show maps").contains("mpatha"))
            try drop(false)
            lifted = true
            let back = try kernelTestWait(timeoutNs: 90 * Time.nsPerSecond) { try pathStates(control, map: "mpatha").allSatisfy(\.active) }
            #expect(back != nil, "paths after the devices answer again: \(keeld.answer("show paths format \"%d %t %C\""))")
            let settled = kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { keeld.answer("show daemon").contains("orphaned checks 0") }
            #expect(settled != nil, "orphans left: \(keeld.answer("show daemon"))")
            print("keeld: every path reinstated \(back.map(ms) ?? "-") after the devices answered again (\(ms(kernelTestNowNs() - hungAt)) after they hung)")
        }
    }

    @Test("a map whose last path is deleted is removed when unused, whatever flush_on_last_del says; held open it stays, queueing unless flush_on_last_del is yes")
    func flushOnLastDelRemovesTheMap() throws {
        // (flush_on_last_del, whether the test holds the map open)
        for (flush, held) in [(true, false), (false, false), (false, true)] {
            let disks = try loadPaths()
            let control = try DMControl()
            defer { cleanUp(control, disks: disks) }
            let configuration = daemonConfiguration.replacingOccurrences(of: "    ring_slots 1024\n",
                                                                         with: "    ring_slots 1024\n    flush_on_last_del \(flush ? "yes" : "no")\n")
            let keeld = try KeeldDaemon(directory: "/tmp/keeld-flush-\(flush)-\(held)", configuration: configuration)
            defer { keeld.stop() }
            try keeld.waitReady()
            #expect(try pathStates(control, map: "mpatha").count == 4)
            let holder = held ? open("/dev/mapper/mpatha", O_RDONLY) : -1
            defer { if holder >= 0 { close(holder) } }
            #expect(!held || holder >= 0, "open /dev/mapper/mpatha: errno \(errno)")
            for disk in disks.values {
                try "1\n".write(toFile: "/sys/block/\(disk)/device/delete", atomically: false, encoding: .utf8)
            }
            let gone = try kernelTestWait(timeoutNs: (held ? 10 : 30) * Time.nsPerSecond) { try control.info(name: "mpatha") == nil }
            let expected = flush ? "flush_on_last_del" : held ? "the map is in use and kept" : "the map was unused and is removed"
            let logged = kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { readText(keeld.logFile).contains(expected) }
            #expect(logged != nil, "keeld says \"\(expected)\": \(readText(keeld.logFile).suffix(1500))")
            if held {
                // multipathd 0.9.4 keeps a map someone holds; without flush_on_last_del it keeps queueing.
                #expect(gone == nil, "a map held open stays (10 s watched)")
                #expect(try control.multipathTable(name: "mpatha").queueIfNoPath, "queueing kept without flush_on_last_del")
                #expect(keeld.answer("show paths").hasPrefix("no paths"))
            } else {
                // Unused: removed whatever flush_on_last_del says, as multipathd 0.9.4 does.
                #expect(gone != nil, "mpatha is still there 30 s after its last path went")
            }
            keeld.stop()
        }
    }

    @Test("with auto_resize grow_only, a map grows once every path reports the LUN's new size (change uevents)")
    func autoResizeFollowsTheLUN() throws {
        let disks = try loadPaths()
        let control = try DMControl()
        defer { cleanUp(control, disks: disks) }
        let configuration = daemonConfiguration.replacingOccurrences(of: "    ring_slots 1024\n", with: "    ring_slots 1024\n    auto_resize grow_only\n")
        let keeld = try KeeldDaemon(directory: "/tmp/keeld-autoresize", configuration: configuration)
        defer { keeld.stop() }
        try keeld.waitReady()
        #expect(try control.table(name: "mpatha").first?.lengthSectors == 64 * 2048)
        try "1\n".write(toFile: "/sys/bus/pseudo/drivers/scsi_debug/virtual_gb", atomically: false, encoding: .utf8)
        for d in disks.values { try "1\n".write(toFile: "/sys/block/\(d)/device/rescan", atomically: false, encoding: .utf8) }
        let grown = try kernelTestWait(timeoutNs: 30 * Time.nsPerSecond) { try control.table(name: "mpatha").first?.lengthSectors == 2 * 1024 * 1024 }
        let length = try control.table(name: "mpatha").first?.lengthSectors ?? 0
        #expect(grown != nil, "mpatha has \(length) sectors; log: \(readText(keeld.logFile))")
        #expect(try pathStates(control, map: "mpatha").count == 4)
        print("keeld figures: rescan of 4 paths -> map grown \(grown.map(ms) ?? "-")")
    }

    @Test("a table another program loads behind keeld's back, without one of the map's paths, is replaced by keeld's own within two resyncs")
    func foreignTableIsRepaired() throws {
        try withReadyKeeld("/tmp/keeld-foreign-table") { keeld, disks, control in
            #expect(try pathStates(control, map: "mpatha").count == 4)
            let disk = try #require(disks[2])
            let device = try #require(keeldDiskDevice(disk))
            var table = try control.multipathTable(name: "mpatha")
            for g in table.groups.indices { table.groups[g].paths.removeAll { $0.device == device } }
            table.groups.removeAll { $0.paths.isEmpty }
            table.initialGroup = min(table.initialGroup, table.groups.count)
            let length = try #require(control.table(name: "mpatha").first?.lengthSectors)
            try control.reload(name: "mpatha", lengthSectors: length, table: table)
            let loaded = kernelTestNowNs()
            #expect(try pathStates(control, map: "mpatha").count == 3)
            // keeld's resync runs every 5 s; a difference seen twice in a row is repaired.
            let repaired = try kernelTestWait(every: 20_000, timeoutNs: 30 * Time.nsPerSecond) {
                try pathStates(control, map: "mpatha").contains { $0.device == device }
            }
            #expect(repaired != nil, "mpatha still lacks \(device) 30 s after the foreign table was loaded")
            #expect(try pathStates(control, map: "mpatha").count == 4)
            #expect(keeld.answer("show paths").split(separator: "\n").count == 4)
            print("keeld figures: foreign table without \(device) -> keeld's table back \(repaired.map(ms) ?? "-") (\(ms(kernelTestNowNs() - loaded)) after the load)")
        }
    }

    @Test("SIGTERM while clients hold the socket (half a command, unread answers, an idle connection) ends keeld promptly with status 0")
    func shutdownWithClientsHoldingTheSocket() throws {
        try withReadyKeeld("/tmp/keeld-held-socket") { keeld, _, _ in
            let trickler = connected()
            push(trickler, [9])   // one byte of a length, then nothing
            let nonReader = connected()
            for _ in 0..<2_000 { push(nonReader, ControlServer.frame("show config", framing: .multipathd)) }
            let idle = connected()
            defer { for fd in [trickler, nonReader, idle] where fd >= 0 { close(fd) } }
            #expect(trickler >= 0 && nonReader >= 0 && idle >= 0)
            #expect(keeld.answer("show maps").contains("mpatha"))
            let asked = kernelTestNowNs()
            let status = keeld.stop()
            let took = kernelTestNowNs() - asked
            #expect(status == 0, "keeld exit status \(status.map(String.init) ?? "none: killed after 10 s"): \(keeld.stderrTail())")
            print("keeld figures: SIGTERM with 3 clients holding the socket -> exited in \(ms(took))")
        }
    }

    @Test("a path whose device is deleted leaves its map (table reloaded without it); the map keeps serving I/O")
    func deletedPathLeavesTheMap() throws {
        try withReadyKeeld("/tmp/keeld-unplug") { keeld, disks, control in
            #expect(try pathStates(control, map: "mpatha").count == 4)
            let disk = try #require(disks[1])
            let device = try #require(keeldDiskDevice(disk))
            let deleted = kernelTestNowNs()
            try "1\n".write(toFile: "/sys/block/\(disk)/device/delete", atomically: false, encoding: .utf8)
            let left = try kernelTestWait(timeoutNs: 30 * Time.nsPerSecond) {
                let paths = try pathStates(control, map: "mpatha")
                return paths.count == 3 && !paths.contains { $0.device == device }
            }
            #expect(left != nil, "mpatha still lists \(device) 30 s after \(disk) was deleted")
            let shown = keeld.answer("show paths")
            #expect(!shown.contains(disk + " "), "show paths: \(shown)")
            #expect(shown.split(separator: "\n").count == 3, "show paths: \(shown)")
            let fd = open("/dev/mapper/mpatha", O_RDONLY | 0o40000)
            #expect(fd >= 0)
            var raw: UnsafeMutableRawPointer?
            _ = posix_memalign(&raw, 4096, 4096)
            defer { free(raw); close(fd) }
            #expect(pread(fd, raw, 4096, 0) == 4096)
            print("keeld figures: \(disk) deleted -> out of the table \(left.map(ms) ?? "-") (after \(ms(kernelTestNowNs() - deleted)) the map still reads)")
        }
    }
}

/// Another process abusing multipathd's socket: a client that sends one byte of a length and
/// stops, one that sends 2,000 requests and never reads, a 1 MiB command, then 10,000 connections
/// that each send a request and close. Prints "connections 10000 refused R" (R: those whose
/// connect or send failed because keeld had already closed them).
private let socketAbuser = """
import socket, struct
NAME = b"\\0/org/kernel/linux/storage/multipathd"
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(NAME)
    return s
def frame(command):
    body = command.encode() + b"\\0"
    return struct.pack("=Q", len(body)) + body
def push(s, data):
    s.setblocking(False)
    try:
        s.send(data)
    except OSError:
        pass
trickler = connect()
push(trickler, b"\\x09")
non_reader = connect()
for _ in range(2000):
    push(non_reader, frame("show config"))
big = connect()
push(big, struct.pack("=Q", 1 << 20) + b"a" * (1 << 20))
big.close()
refused = 0
for _ in range(10000):
    try:
        s = connect()
        s.sendall(frame("show daemon"))
        s.close()
    except OSError:
        refused += 1
trickler.close()
non_reader.close()
print("connections 10000 refused %d" % refused)
"""

/// Runs a program with `arguments` and `input` on stdin; its exit status and stdout+stderr.
private func capture(_ arguments: [String], input: String = "") throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let out = Pipe(), inPipe = Pipe()
    process.standardOutput = out
    process.standardError = out
    process.standardInput = inPipe
    try process.run()
    inPipe.fileHandleForWriting.write(Data(input.utf8))
    try inPipe.fileHandleForWriting.close()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Whether Debian's multipathd (used as the client) is installed; records an issue when not.
private func multipathdClientInstalled() -> Bool {
    if FileManager.default.fileExists(atPath: "/sbin/multipathd") || FileManager.default.fileExists(atPath: "/usr/sbin/multipathd") { return true }
    Issue.record("multipath-tools is not installed (Tools/test installs it)")
    return false
}

/// One request on a multipathd-framed socket file (`size_t` length, then the NUL-terminated
/// text, both ways), as clients that connect to /run/multipathd.socket speak it; nil when the
/// socket cannot be reached or the answer is cut short.
private func multipathdFileRequest(_ path: String, _ command: String) -> String? {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (i, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
    }
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard connected == 0 else { return nil }
    var request = withUnsafeBytes(of: UInt64(command.utf8.count + 1)) { Array($0) }
    request += Array(command.utf8) + [0]
    guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else { return nil }
    func receive(_ count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var have = 0
        while have < count {
            let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + have, count - have, 0) }
            guard n > 0 else { return nil }
            have += n
        }
        return bytes
    }
    guard let header = receive(8) else { return nil }
    let length = header.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    guard length > 0, length < 1 << 24, let body = receive(Int(length)) else { return nil }
    return String(decoding: body.prefix { $0 != 0 }, as: UTF8.self)
}

@Suite("multipathd's client against keeld", .serialized, .enabled(if: ProcessInfo.processInfo.environment["KEEL_KERNEL_TESTS"] == "1"))
struct MultipathdClientKernelTests {
    @Test("Debian's multipathd, used as a client, reads keeld's maps, JSON and topology, fails and reinstates a path, and is refused changes when not root")
    func debiansClientWorksUnchanged() throws {
        guard multipathdClientInstalled() else { return }
        try withReadyKeeld("/tmp/keeld-mpclient") { keeld, disks, control in
            #expect(keeld.answer("show daemon").contains("@/org/kernel/linux/storage/multipathd"), "keeld serves multipathd's socket")
            // The socket file newer multipathds listen on too (bind-mounted into containers,
            // read by exporters): multipathd's framing, anyone may show, only root may change.
            #expect(keeld.answer("show daemon").contains("/run/multipathd.socket"), "\(keeld.answer("show daemon"))")
            var status = stat()
            #expect(stat("/run/multipathd.socket", &status) == 0 && status.st_mode & 0o777 == 0o666)
            let overFile = multipathdFileRequest("/run/multipathd.socket", "show maps")
            #expect(overFile?.contains("mpatha") == true, "show maps over /run/multipathd.socket: \(overFile ?? "no answer")")
            let firstDisk = try #require(disks[0])
            let strangerOverFile = try capture(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                                                "import socket,struct;s=socket.socket(socket.AF_UNIX);s.connect('/run/multipathd.socket');"
                                                + "c=b'fail path \(firstDisk)\\0';s.sendall(struct.pack('=Q',len(c))+c);"
                                                + "n=struct.unpack('=Q',s.recv(8))[0];print(s.recv(n).decode().rstrip('\\0'))"])
            #expect(strangerOverFile.output.contains("permission deny"), "an unprivileged fail over the file: \(strangerOverFile.output)")

            let json = try capture(["multipathd", "show", "maps", "json"])
            #expect(json.status == 0, "\(json.output)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any], "\(json.output)")
            #expect(object["major_version"] as? Int == 0)
            let maps = try #require(object["maps"] as? [[String: Any]])
            #expect(maps.count == 1 && maps.first?["name"] as? String == "mpatha")
            let groups = try #require(maps.first?["path_groups"] as? [[String: Any]])
            #expect(groups.count == 3, "group_by_prio over ALUA 50/10/1")
            #expect(groups.flatMap { ($0["paths"] as? [[String: Any]]) ?? [] }.count == 4)

            let topology = try capture(["multipathd", "show", "topology"])
            #expect(topology.output.contains("mpatha (") && topology.output.contains("policy='service-time 0' prio=50 status="), "\(topology.output)")
            // show config ends with where each of mpatha's settings comes from.
            let config = try capture(["multipathd", "show", "config"])
            #expect(config.output.contains("# mpatha (1Linux_scsi_debug_2000, Linux,scsi_debug,"), "\(config.output)")
            #expect(config.output.contains("#\tpath_checker tur  (defaults)\n"), "\(config.output)")
            #expect(config.output.contains("#\tpath_selector \"service-time 0\"  (built-in)\n"), "\(config.output)")
            let paths = try capture(["multipathd", "show", "paths", "format", "%d %t %T"])
            #expect(paths.output.split(separator: "\n").count == 5, "a header and 4 paths: \(paths.output)")

            let disk = try #require(disks[1])
            let device = try #require(keeldDiskDevice(disk))
            let failed = try capture(["multipathd", "fail", "path", disk])
            #expect(failed.output.hasPrefix("ok"), "\(failed.output)")
            #expect(try kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { try pathStates(control, map: "mpatha").first { $0.device == device }?.active == false } != nil)
            let stranger = try capture(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "multipathd", "reinstate", "path", disk])
            #expect(stranger.output.contains("permission deny"), "\(stranger.output)")
            let strangerShows = try capture(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "multipathd", "show", "maps"])
            #expect(strangerShows.output.contains("mpatha"), "\(strangerShows.output)")
            let reinstated = try capture(["multipathd", "reinstate", "path", disk])
            #expect(reinstated.output.hasPrefix("ok"), "\(reinstated.output)")
            #expect(try kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { try pathStates(control, map: "mpatha").first { $0.device == device }?.active == true } != nil)
            let interactive = try capture(["multipathd", "-k"], input: "show maps\nshow paths format %d\nquit\n")
            #expect(interactive.output.contains("mpatha") && interactive.output.contains(disk), "multipathd -k: \(interactive.output)")
            let unknown = try capture(["multipathd", "show", "bananas"])
            #expect(unknown.output.contains("fail") || unknown.output.contains("unknown"), "\(unknown.output)")
            print("multipathd client: show topology\n\(topology.output)\nshow paths format\n\(paths.output)")
        }
    }

    @Test("Debian's multipathd client switches path groups and turns queueing off and back on, for one map, every map and the daemon")
    func debiansClientSwitchesGroupsAndQueueing() throws {
        guard multipathdClientInstalled() else { return }
        let manual = daemonConfiguration.replacingOccurrences(of: "failback immediate", with: "failback manual")
        try withReadyKeeld("/tmp/keeld-mpswitch", configuration: manual) { keeld, disks, control in
            #expect(try kernelTestWait(timeoutNs: 20 * Time.nsPerSecond) { try control.multipathStatus(name: "mpatha").groups.count == 3 } != nil)
            #expect(try control.multipathStatus(name: "mpatha").groups.first?.state == .active || control.multipathStatus(name: "mpatha").nextGroup == 1)
            let switched = try capture(["multipathd", "switchgroup", "map", "mpatha", "group", "2"])
            #expect(switched.output.hasPrefix("ok"), "\(switched.output)")
            let second = try kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) {
                let status = try control.multipathStatus(name: "mpatha")
                return status.nextGroup == 2 || status.groups.count > 1 && status.groups[1].state == .active
            }
            #expect(second != nil, "group 2 in use: \((try? control.multipathStatus(name: "mpatha")).map { "\($0)" } ?? "-")")
            let beyond = try capture(["multipathd", "switchgroup", "map", "mpatha", "group", "9"])
            #expect(beyond.output.hasPrefix("fail"), "no group 9: \(beyond.output)")

            #expect(try control.multipathTable(name: "mpatha").queueIfNoPath)
            let off = try capture(["multipathd", "disablequeueing", "map", "mpatha"])
            #expect(off.output.hasPrefix("ok"), "\(off.output)")
            #expect(try kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { try !control.multipathTable(name: "mpatha").queueIfNoPath } != nil)
            let on = try capture(["multipathd", "restorequeueing", "map", "mpatha"])
            #expect(on.output.hasPrefix("ok"), "\(on.output)")
            #expect(try kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { try control.multipathTable(name: "mpatha").queueIfNoPath } != nil)
            #expect(try capture(["multipathd", "disablequeueing", "maps"]).output.hasPrefix("ok"))
            #expect(try kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { try !control.multipathTable(name: "mpatha").queueIfNoPath } != nil)
            #expect(try capture(["multipathd", "restorequeueing", "maps"]).output.hasPrefix("ok"))
            #expect(try kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { try control.multipathTable(name: "mpatha").queueIfNoPath } != nil)
            let forced = try capture(["multipathd", "forcequeueing", "daemon"])
            #expect(forced.output.hasPrefix("ok"), "\(forced.output)")
            #expect(try capture(["multipathd", "restorequeueing", "daemon"]).output.hasPrefix("ok"))
            let topology = try capture(["multipathd", "show", "topology"])
            print("multipathd switchgroup map mpatha group 2: group 2 in use after \(second.map(ms) ?? "-"); disable/restorequeueing map and maps followed in the kernel's table\n\(topology.output)")
            _ = keeld
            _ = disks
        }
    }

    @Test("abuse of multipathd's socket by another process (10,000 connections, a trickler, a non-reader, a 1 MiB command) while a path fails and returns: another client keeps being answered and the path is failed and reinstated")
    func socketAbuseLeavesRecoveryAlone() throws {
        try withReadyKeeld("/tmp/keeld-abuse") { keeld, disks, control in
            let disk = try #require(disks[1])
            let device = try #require(keeldDiskDevice(disk))
            var latencies: [Nanoseconds] = []
            var connects: [Nanoseconds] = []
            var failures = 0
            var slow: [String] = []
            let began = kernelTestNowNs()
            func probe() {
                let start = kernelTestNowNs()
                if let client = try? ControlClient(abstract: ControlClient.multipathdName, timeoutNs: 5 * Time.nsPerSecond),
                   case let connectedAt = kernelTestNowNs(),
                   (try? client.ask("show maps"))?.contains("mpatha") == true {
                    connects.append(connectedAt - start)
                    latencies.append(kernelTestNowNs() - start)
                    if latencies.last! > 100 * Time.nsPerMs { slow.append("\(ms(start - began)): \(ms(latencies.last!)) (connect \(ms(connectedAt - start)))") }
                } else {
                    failures += 1
                }
            }
            // The same probe with nobody else on the socket, for comparison.
            for _ in 0..<20 { probe(); usleep(20_000) }
            let quiet = latencies.sorted()
            latencies = []
            connects = []
            // The abusers are another process, as a runaway script would be: keeld shares its
            // connections out per process, so this one's flood leaves the probes' place alone.
            let abusers = Process()
            abusers.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            abusers.arguments = ["-c", socketAbuser]
            let report = Pipe()
            abusers.standardOutput = report
            try abusers.run()
            defer {
                if abusers.isRunning { abusers.terminate() }
                abusers.waitUntilExit()
            }
            probe()
            try keeldSetDiskState(disk, "offline")
            let failed = try kernelTestWait(timeoutNs: 20 * Time.nsPerSecond) {
                probe()
                return try pathStates(control, map: "mpatha").first { $0.device == device }?.active == false
            }
            try keeldSetDiskState(disk, "running")
            let back = try kernelTestWait(timeoutNs: 20 * Time.nsPerSecond) {
                probe()
                return try pathStates(control, map: "mpatha").first { $0.device == device }?.active == true
            }
            while abusers.isRunning { probe(); usleep(20_000) }
            let abuse = String(decoding: report.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(failed != nil, "\(disk) failed during the abuse")
            #expect(back != nil, "\(disk) reinstated during the abuse: \(readText(keeld.stderrPath).suffix(2000))")
            #expect(abusers.terminationStatus == 0 && abuse.hasPrefix("connections 10000 "), "the abusers: \(abuse)")
            #expect(failures == 0, "every probe answered; \(failures) were not")
            latencies.sort()
            connects.sort()
            let p99 = latencies.isEmpty ? 0 : latencies[latencies.count * 99 / 100]
            print("socket abuse: probes over 100 ms (since the first probe: took): \(slow)")
            print("socket quiet: another client: \(quiet.count) answers, p50 \(quiet.isEmpty ? "-" : ms(quiet[quiet.count / 2])), max \(ms(quiet.last ?? 0))")
            print("socket abuse (\(abuse.trimmingCharacters(in: .whitespacesAndNewlines)); a trickler, a non-reader, a 1 MiB command): \(disk) offline -> failed \(failed.map(ms) ?? "-"), "
                  + "running -> reinstated \(back.map(ms) ?? "-"); another client: \(latencies.count) answers, p50 "
                  + "\(latencies.isEmpty ? "-" : ms(latencies[latencies.count / 2])), p99 \(ms(p99)), max \(ms(latencies.last ?? 0)), \(failures) unanswered; "
                  + "of which connect: p50 \(connects.isEmpty ? "-" : ms(connects[connects.count / 2])), max \(ms(connects.last ?? 0)); "
                  + "keeld: \(keeld.answer("show daemon").split(separator: "\n").first { $0.hasPrefix("control sockets") } ?? "-")")
        }
    }

    @Test("Debian's multipathd client marks a path marginal: with marginal_pathgroups on it leaves its group for a last group of its own in the kernel's table, %M and marginal_st say so; unsetmarginal map puts it back")
    func debiansClientMarksAPathMarginal() throws {
        guard multipathdClientInstalled() else { return }
        try withReadyKeeld("/tmp/keeld-marginal", configuration: daemonConfiguration + "defaults {\n    marginal_pathgroups on\n}\n") { keeld, disks, control in
            func groups() throws -> [[DevNo]] { try control.multipathTable(name: "mpatha").groups.map { $0.paths.map(\.device) } }
            #expect(try kernelTestWait(timeoutNs: 20 * Time.nsPerSecond) { try groups().count == 3 } != nil, "group_by_prio over ALUA 50/10/1")
            let before = try groups()
            let device = try #require(before.first?.first)
            let disk = try #require(disks.values.first { keeldDiskDevice($0) == device })
            let marked = try capture(["multipathd", "setmarginal", "path", disk])
            #expect(marked.output.hasPrefix("ok"), "\(marked.output)")
            let moved = try kernelTestWait(timeoutNs: 20 * Time.nsPerSecond) { try groups().last == [device] && !groups().dropLast().joined().contains(device) }
            #expect(moved != nil, "the kernel's groups: \((try? groups()) ?? [])")
            let shown = try capture(["multipathd", "show", "paths", "format", "%d %M"])
            #expect(shown.output.contains("\(disk) marginal"), "\(shown.output)")
            let json = try capture(["multipathd", "show", "maps", "json"])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any], "\(json.output)")
            let jsonGroups = try #require((object["maps"] as? [[String: Any]])?.first?["path_groups"] as? [[String: Any]])
            #expect(jsonGroups.last?["marginal_st"] as? String == "marginal" && jsonGroups.first?["marginal_st"] as? String == "normal")
            let topology = try capture(["multipathd", "show", "topology"])
            let cleared = try capture(["multipathd", "unsetmarginal", "map", "mpatha"])
            #expect(cleared.output.hasPrefix("ok"), "\(cleared.output)")
            let back = try kernelTestWait(timeoutNs: 20 * Time.nsPerSecond) { try groups() == before }
            #expect(back != nil, "the kernel's groups after unsetmarginal: \((try? groups()) ?? []), before \(before)")
            #expect(try capture(["multipathd", "show", "paths", "format", "%d %M"]).output.contains("\(disk) normal"))
            print("multipathd setmarginal path \(disk): in its own last group after \(moved.map(ms) ?? "-"); unsetmarginal map: back after \(back.map(ms) ?? "-")\n\(shown.output)\n\(topology.output)")
        }
    }

    @Test("Debian's multipathd client changes keeld's topology: del/add path, suspend/resume, resize, reset stats, reset map (reassign), del map (refused while open), add map")
    func debiansClientChangesTopology() throws {
        guard multipathdClientInstalled() else { return }
        try withReadyKeeld("/tmp/keeld-mptopology") { keeld, disks, control in
            var transcript = ""
            func run(_ command: String) throws -> String {
                let result = try capture(["multipathd"] + command.split(separator: " ").map(String.init))
                transcript += "# multipathd \(command)\n\(result.output)"
                return result.output
            }
            let disk = try #require(disks[1])
            let device = try #require(keeldDiskDevice(disk))

            // del path / add path
            #expect(try run("del path \(disk)").hasPrefix("ok"), "\(transcript)")
            #expect(try kernelTestWait(timeoutNs: 20 * Time.nsPerSecond) { try !pathStates(control, map: "mpatha").contains { $0.device == device } } != nil)
            #expect(!keeld.answer("show paths").contains(disk + " "), "a deleted path is not checked")
            #expect(try run("del path \(disk)").contains("device not found"), "\(transcript)")
            #expect(try run("add path \(disk)").hasPrefix("ok"), "\(transcript)")
            #expect(try kernelTestWait(timeoutNs: 20 * Time.nsPerSecond) { try pathStates(control, map: "mpatha").contains { $0.device == device } } != nil)

            // suspend / resume
            #expect(try run("suspend map mpatha").hasPrefix("ok"), "\(transcript)")
            #expect(try control.info(name: "mpatha")?.suspended == true)
            #expect(try run("show maps format %n:%t").contains("mpatha:suspend"), "\(transcript)")
            #expect(try run("resume map mpatha").hasPrefix("ok"), "\(transcript)")
            #expect(try control.info(name: "mpatha")?.suspended == false)

            // resize: scsi_debug reports 1 GiB once its disks are rescanned
            let before = try control.table(name: "mpatha").first?.lengthSectors
            #expect(before == 64 * 2048)
            try "1\n".write(toFile: "/sys/bus/pseudo/drivers/scsi_debug/virtual_gb", atomically: false, encoding: .utf8)
            for d in disks.values { try "1\n".write(toFile: "/sys/block/\(d)/device/rescan", atomically: false, encoding: .utf8) }
            #expect(try run("resize map mpatha").hasPrefix("ok"), "\(transcript)")
            #expect(try control.table(name: "mpatha").first?.lengthSectors == 2 * 1024 * 1024, "the table has the paths' new size")

            // reset stats: a failed path counts, then the count starts from 0
            #expect(try run("fail path \(disk)").hasPrefix("ok"))
            #expect(try kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { try pathStates(control, map: "mpatha").first { $0.device == device }?.active == false } != nil)
            #expect(try run("reinstate path \(disk)").hasPrefix("ok"))
            let counted = try run("show maps format %n:%0")
            #expect(!counted.contains("mpatha:0"), "the fail was counted: \(counted)")
            #expect(try run("reset map mpatha stats").hasPrefix("ok"))
            #expect(try run("show maps format %n:%0").contains("mpatha:0"), "\(transcript)")

            // reset map (multipathd's reassign): a linear device made on a path itself moves onto the map
            let mapDevice = try #require(try control.info(name: "mpatha")?.device)
            _ = try keeldGuestShell("dmsetup create --noudevsync keel-on-path --table '0 2048 linear \(device) 0'")
            defer { _ = try? keeldGuestShell("dmsetup remove --noudevsync keel-on-path 2>/dev/null") }
            #expect(try control.table(name: "keel-on-path").first?.params == "\(device) 0")
            #expect(try run("reset map mpatha").hasPrefix("ok"), "\(transcript)")
            #expect(try control.table(name: "keel-on-path").first?.params == "\(mapDevice) 0", "\(transcript)")
            #expect(try run("reset map mpatha").hasPrefix("ok"), "a second reset finds nothing left on the paths: \(transcript)")
            _ = try keeldGuestShell("dmsetup remove --noudevsync keel-on-path")

            // del map: refused while open, done once closed; add map brings it back
            let fd = open("/dev/mapper/mpatha", O_RDONLY)
            #expect(fd >= 0)
            #expect(try run("del map mpatha").contains("map or partition in use"), "\(transcript)")
            #expect(try control.info(name: "mpatha") != nil)
            close(fd)
            #expect(try run("del map mpatha").hasPrefix("ok"), "\(transcript)")
            #expect(try control.info(name: "mpatha") == nil, "the kernel's map is gone")
            #expect(keeld.answer("show paths").hasPrefix("no paths"), "its paths are not checked")
            #expect(try run("add map mpatha").hasPrefix("ok"), "\(transcript)")
            #expect(kernelTestWait(timeoutNs: 20 * Time.nsPerSecond) { (try? pathStates(control, map: "mpatha").count) == 4 } != nil, "\(transcript)")
            // The map took its old engine slot again, under a new generation: messages reach it.
            #expect(try run("fail path \(disk)").hasPrefix("ok"), "\(transcript)")
            #expect(try kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { try pathStates(control, map: "mpatha").first { $0.device == device }?.active == false } != nil)
            #expect(try run("reinstate path \(disk)").hasPrefix("ok"), "\(transcript)")
            #expect(try kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { try pathStates(control, map: "mpatha").first { $0.device == device }?.active == true } != nil)
            #expect(try run("del map nosuchmap").contains("device not found"), "\(transcript)")
            print("multipathd client changing keeld's topology:\n\(transcript)")
        }
    }

    @Test("keelctl shows keeld's paths, maps, JSON and metrics, fails and reinstates a path, and says by its exit status what went wrong")
    func keelctlOperatesKeeld() throws {
        let keelctl = ((try KeeldDaemon.executablePath()) as NSString).deletingLastPathComponent + "/keelctl"
        try #require(FileManager.default.isExecutableFile(atPath: keelctl), "no keelctl beside keeld (swift build builds it)")
        let notRunning = try capture([keelctl, "paths"])
        #expect(notRunning.status == 2, "no daemon: exit 2; \(notRunning.output)")
        try withReadyKeeld("/tmp/keeld-keelctl", extraArguments: ["--metrics-port", "9464"]) { keeld, disks, control in

            let paths = try capture([keelctl, "paths", "--json"])
            #expect(paths.status == 0, "\(paths.output)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(paths.output.utf8)) as? [String: Any], "\(paths.output)")
            let rows = try #require(object["paths"] as? [[String: String]])
            #expect(rows.count == 4 && rows.allSatisfy { $0["map"] == "mpatha" && $0["dm_st"] == "active" && $0["chk_st"] == "ready" }, "\(rows)")
            let table = try capture([keelctl, "maps", "--color", "never"])
            #expect(table.status == 0 && table.output.contains("mpatha") && table.output.hasPrefix("NAME"), "\(table.output)")
            let metrics = try capture([keelctl, "metrics"])
            #expect(metrics.output.contains("keel_check_latency_seconds_bucket{le=\"+Inf\"}"), "\(metrics.output)")
            let samples = MetricSamplesProbe(metrics.output)
            #expect((samples["keel_check_latency_seconds_count"] ?? 0) > 0, "checks were counted in the latency histogram")

            let disk = try #require(disks[1])
            let device = try #require(keeldDiskDevice(disk))
            let failed = try capture([keelctl, "fail", disk])
            #expect(failed.status == 0, "\(failed.output)")
            #expect(try kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { try pathStates(control, map: "mpatha").first { $0.device == device }?.active == false } != nil)
            let reinstated = try capture([keelctl, "reinstate", disk])
            #expect(reinstated.status == 0, "\(reinstated.output)")
            #expect(try kernelTestWait(timeoutNs: 10 * Time.nsPerSecond) { try pathStates(control, map: "mpatha").first { $0.device == device }?.active == true } != nil)
            // The same metrics over HTTP on the localhost port, as a Prometheus scraper reads them.
            let scraped = httpGet(port: 9464, path: "/metrics")
            #expect(scraped.hasPrefix("HTTP/1.0 200 OK\r\n") && scraped.contains("keel_path_back_seconds_count"), "\(scraped.prefix(300))")
            #expect(httpGet(port: 9464, path: "/").hasPrefix("HTTP/1.0 404"))
            print("scraped from 127.0.0.1:9464/metrics:\n" + scraped.split(separator: "\n").filter {
                $0.hasPrefix("HTTP/") || $0.hasPrefix("keel_paths") || $0.hasPrefix("keel_path_back_seconds_count") || $0.hasPrefix("keel_memory_locked")
            }.joined(separator: "\n"))
            let backMetrics = MetricSamplesProbe(try capture([keelctl, "metrics"]).output)
            #expect((backMetrics["keel_path_back_seconds_count"] ?? 0) >= 1, "the reinstate was counted in the path-back histogram")
            let unknown = try capture([keelctl, "fail", "sdzz"])
            #expect(unknown.status == 1 && unknown.output.contains("device not found"), "a refusal: exit 1; \(unknown.output)")
            let usage = try capture([keelctl, "switch", "mpatha", "0"])
            #expect(usage.status == 64, "a usage error: exit 64; \(usage.output)")
            let top = try capture([keelctl, "top", "--iterations", "2", "--interval", "0.2", "--color", "never"])
            #expect(top.status == 0 && top.output.contains("recent transitions") && top.output.contains("mpatha"), "\(top.output)")
            #expect(top.output.contains("thread stacks used: keel-control "), "each thread's deepest stack use; \(top.output)")
            print("keelctl: maps\n\(table.output)\ntop\n\(top.output)")
        }
    }

    @Test("keel-path-claim tells udev which disks are paths, as multipath -u: strict and on claim none of 4 unknown paths, smart and greedy all four")
    func pathClaimForUdev() throws {
        let claimer = ((try KeeldDaemon.executablePath()) as NSString).deletingLastPathComponent + "/keel-path-claim"
        try #require(FileManager.default.isExecutableFile(atPath: claimer), "no keel-path-claim beside keeld (swift build builds it)")
        let directory = "/tmp/keel-path-claim-test"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func config(_ mode: String) throws -> String {
            let path = directory + "/\(mode).conf"
            try "defaults {\n    find_multipaths \(mode)\n    wwids_file \(directory)/wwids\n}\n".write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let disks = try loadPaths()
        defer { cleanUp(nil, disks: disks) }
        let names = disks.values.sorted()
        // A daemon must answer or be enabled: the test stands in on multipathd's socket.
        let server = ControlServer()
        try server.listen(abstract: ControlClient.multipathdName, framing: .multipathd)
        func answers(_ mode: String) throws -> [(status: Int32, output: String)] {
            let file = try config(mode)
            return try names.map { try capture([claimer, "--config", file, $0]) }
        }
        for mode in ["strict", "on"] {
            for answer in try answers(mode) {
                #expect(answer.status == 0 && answer.output.contains("DM_MULTIPATH_DEVICE_PATH=0")
                        && answer.output.contains("is not in the wwids file and has no map"), "\(mode): \(answer.output)")
            }
        }
        for answer in try answers("smart") {
            #expect(answer.status == 0 && answer.output.contains("DM_MULTIPATH_DEVICE_PATH=1") && answer.output.contains("has 4 paths"), "\(answer.output)")
        }
        for answer in try answers("greedy") {
            #expect(answer.status == 0 && answer.output.contains("DM_MULTIPATH_DEVICE_PATH=1"), "\(answer.output)")
        }
        let missing = try capture([claimer, "--config", directory + "/none.conf", names[0]])
        #expect(missing.status == 1 && missing.output.contains("none.conf"), "a named configuration that cannot be read: exit 1; \(missing.output)")
        print("keel-path-claim, find_multipaths smart:\n" + (try answers("smart")).map(\.output).joined())
    }
}

/// Prometheus samples by name (the test reads keelctl's output without the client library).
/// One HTTP GET to 127.0.0.1:`port`; the whole response ("" when nothing answers).
private func httpGet(port: UInt16, path: String) -> String {
    let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var address = ControlServer.localhostAddress(port: port)
    let ok = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard ok == 0 else { return "" }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: keel-test\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var answer: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        answer += chunk[0..<n]
    }
    return String(decoding: answer, as: UTF8.self)
}

private struct MetricSamplesProbe {
    var values: [String: Double] = [:]
    init(_ text: String) {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let v = Double(parts[1]) { values[String(parts[0])] = v }
        }
    }
    subscript(_ key: String) -> Double? { values[key] }
}

/// A write's outcome, set once from its thread.
private final class WriteResult: @unchecked Sendable {
    private let lock = NSLock()
    private var result: (bytes: Int, errno: Int32)?
    func set(_ bytes: Int, _ errno: Int32) { lock.withLock { result = (bytes, errno) } }
    var value: (bytes: Int, errno: Int32)? { lock.withLock { result } }
}
