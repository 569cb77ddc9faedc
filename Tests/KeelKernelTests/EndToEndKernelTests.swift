// End to end on the real kernel (VM only): sysfs discovery, assembly of mpatha over 4 scsi_debug
// paths, the recovery loop on TUR checks, path faults, queued I/O under no_path_retry queue.
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Testing

/// The configuration under test (multipath.conf syntax: one statement per line).
private let endToEndConfiguration = """
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
    bindings_file "/tmp/keel-end-to-end/bindings"
    wwids_file "/tmp/keel-end-to-end/wwids"
}
"""


private func monotonicNs() -> Nanoseconds { LogClock.nowNs() }

private func ms(_ ns: Nanoseconds) -> String {
    let tenths = ns / (Time.nsPerMs / 10)
    return "\(tenths / 10).\(tenths % 10) ms"
}

private struct EndToEndError: Error, CustomStringConvertible {
    var description: String
}

private func run(_ command: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw EndToEndError(description: "`\(command)` exited \(process.terminationStatus)") }
}

/// A sysfs attribute without its newline ("" when unreadable).
private func readSysfs(_ path: String) -> String {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Writes a SCSI device state; only `running` and `offline` can be written.
private func setDeviceState(_ disk: String, _ state: String) throws {
    try (state + "\n").write(toFile: "/sys/block/\(disk)/device/state", atomically: false, encoding: .utf8)
}

/// What the recovery loop reports: reloads for the control plane, a timestamped log for the reader.
private struct EndToEndOutput: RecoveryOutput {
    var reloads: [MapHandle] = []
    var log: [String] = []
    var startNs: Nanoseconds = 0

    mutating func record(_ record: RecoveryRecord, nowNs: Nanoseconds) {
        let stamp = ms(nowNs - startNs)
        switch record {
        case .reloadRequested(let map):
            reloads.append(map)
            log.append("\(stamp) reload \(map)")
        case .messageSent(let message, let errno):
            log.append("\(stamp) message \(message)\(errno == 0 ? "" : " errno \(errno)")")
        case .transition(let path, _, let from, let to):
            log.append("\(stamp) \(path) \(from) -> \(to)")
        case .checkRefused(let path, _):
            log.append("\(stamp) check of \(path) refused")
        }
    }
}

/// Holds a write running on a thread of its own: its result and when it returned.
private final class WriteOutcome: @unchecked Sendable {
    private let lock = NSLock()
    private var result: (bytes: Int, errno: Int32, doneNs: Nanoseconds)?
    func finish(bytes: Int, errno: Int32) {
        let now = monotonicNs()
        lock.withLock { result = (bytes, errno, now) }
    }
    var value: (bytes: Int, errno: Int32, doneNs: Nanoseconds)? { lock.withLock { result } }
}

/// One 4 KiB block of a recognisable pattern.
private func pattern(seed: UInt8) -> [UInt8] { (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) } }

/// An O_DIRECT|O_SYNC write of `bytes` at `offset`, on its own thread.
private func startDirectWrite(device: String, bytes: [UInt8], offset: Int, into outcome: WriteOutcome) {
    let thread = Thread {
        let fd = open(device, O_WRONLY | openDirect | O_SYNC)
        guard fd >= 0 else { outcome.finish(bytes: -1, errno: errno); return }
        defer { close(fd) }
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 4096, bytes.count) == 0, let buffer = raw else { outcome.finish(bytes: -1, errno: ENOMEM); return }
        defer { free(buffer) }
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let written = pwrite(fd, buffer, bytes.count, off_t(offset))
        outcome.finish(bytes: written, errno: written < 0 ? errno : 0)
    }
    thread.start()
}

/// An O_DIRECT read of `count` bytes at `offset`.
private func directRead(device: String, count: Int, offset: Int) throws -> [UInt8] {
    let fd = open(device, O_RDONLY | openDirect)
    guard fd >= 0 else { throw EndToEndError(description: "open \(device): errno \(errno)") }
    defer { close(fd) }
    var raw: UnsafeMutableRawPointer?
    guard posix_memalign(&raw, 4096, count) == 0, let buffer = raw else { throw EndToEndError(description: "no memory") }
    defer { free(buffer) }
    let got = pread(fd, buffer, count, off_t(offset))
    guard got == count else { throw EndToEndError(description: "read \(device): \(got) bytes, errno \(errno)") }
    return Array(UnsafeRawBufferPointer(start: buffer, count: count))
}

/// scsi_debug's 4 paths, the engine, the assembler and the recovery loop, driven on this thread.
private final class EndToEndRig {
    let configuration: Configuration
    let engine: Engine
    let control: DMControl
    var assembler: MultipathAssembler
    var loop: RecoveryLoop<TURChecker, DMMessenger, EndToEndOutput>
    let report: DiscoveryReport
    var errors: [AssemblyError] = []
    var nextResyncNs: Nanoseconds = 0
    let startNs = monotonicNs()
    static let resyncIntervalNs = Time.nsPerSecond

    /// Loads the modules and scsi_debug, waits for the 4 disks, discovers and assembles them.
    init() throws {
        try run("modprobe -a dm-mod dm-multipath dm-service-time scsi_dh_alua sd_mod sg")
        try run("modprobe scsi_debug add_host=4 num_tgts=1 max_luns=1 vpd_use_hostno=0 dev_size_mb=64")
        switch Configuration.load(files: [(name: "end-to-end.conf", text: endToEndConfiguration)]) {
        case .success(let loaded): configuration = loaded.configuration
        case .failure(let error): throw EndToEndError(description: "configuration: \(error)")
        }
        var report = SysfsDiscovery().discoverAll()
        let deadline = monotonicNs() + 60 * Time.nsPerSecond
        while monotonicNs() < deadline {
            report = SysfsDiscovery().discoverAll()
            // Every disk present, with the ALUA state the kernel's handler reads asynchronously
            // after the scan (host h: state h % 3, priority 50, 10 or 1).
            let ready = report.paths.filter {
                $0.model == "scsi_debug" && $0.wwid != nil && FileManager.default.fileExists(atPath: "/dev/\($0.kernelName)")
                    && ALUAPrioritizer().priority(hctl: $0.address.description) == [50, 10, 1][Int($0.address.host % 3)]
            }
            if ready.count == 4 { break }
            usleep(100_000)
        }
        self.report = report
        let capacities = Capacities(pathsMax: 16, mapsMax: 4, pathsPerMapMax: 8, ringSlots: 64)
        engine = Engine(capacities: capacities, startNs: monotonicNs())
        control = try DMControl()
        let messenger = try DMMessenger(mapsMax: capacities.mapsMax)
        let tur = try TURChecker(TURConfiguration(pathsMax: capacities.pathsMax))
        assembler = MultipathAssembler(configuration: configuration, engine: engine, control: control,
                                       messenger: messenger, checkers: PathCheckers(tur: tur))
        var output = EndToEndOutput()
        output.startNs = startNs
        loop = RecoveryLoop(engine: engine, checker: tur, messenger: messenger, output: output)
        errors += assembler.assemble(report, nowNs: monotonicNs())
    }

    var map: AssembledMap? { assembler.map(named: "mpatha") }

    /// The disk of a path on SCSI host `host`.
    func disk(host: UInt32) -> AssembledPath? { map?.paths.first { $0.address.host == host } }

    /// One pass: the loop's step, the tables it asked for, a resync each second, then a short wait
    /// for a check completion or the next deadline.
    func pump() {
        let now = monotonicNs()
        loop.step(nowNs: now)
        if !loop.output.reloads.isEmpty {
            let requests = loop.output.reloads
            loop.output.reloads.removeAll()
            errors += assembler.serviceReloads(requests, loop: &loop, nowNs: now)
        }
        if now >= nextResyncNs {
            errors += assembler.resync(loop: &loop, nowNs: now)
            nextResyncNs = now + Self.resyncIntervalNs
        }
        let waitNs = min(max(loop.nextDeadlineNs() - monotonicNs(), 0), 5 * Time.nsPerMs)
        if waitNs > 0 { _ = loop.checker.waitForCompletions(timeoutNs: waitNs) }
    }

    /// Drives the loop until `done` holds (checked every 10 ms) or `timeoutNs` passes; returns
    /// when `done` first held, nil on timeout.
    func drive(timeoutNs: Nanoseconds, until done: () -> Bool) -> Nanoseconds? {
        let deadline = monotonicNs() + timeoutNs
        var lastCheckNs: Nanoseconds = 0
        while monotonicNs() < deadline {
            pump()
            let now = monotonicNs()
            if now - lastCheckNs >= 10 * Time.nsPerMs {
                lastCheckNs = now
                if done() { return now }
            }
        }
        return nil
    }

    /// Drives the loop for `durationNs`.
    func keepDriving(_ durationNs: Nanoseconds) { _ = drive(timeoutNs: durationNs) { false } }

    /// The kernel's status of mpatha, parsed (nil before the map exists).
    func status() -> MultipathStatus? { try? control.multipathStatus(name: "mpatha") }

    /// Whether the kernel has every one of `devices` in state `active`.
    func kernelShows(_ devices: [DevNo], active: Bool) -> Bool {
        guard let status = status() else { return false }
        let states = Dictionary(status.groups.flatMap(\.paths).map { ($0.device, $0.active) }, uniquingKeysWith: { a, _ in a })
        return devices.allSatisfy { states[$0] == active }
    }

    /// Builds the map and waits until the kernel routes to every path.
    func bringUp() throws {
        guard drive(timeoutNs: 30 * Time.nsPerSecond, until: { map?.live == true && kernelShows(map!.paths.map(\.device), active: true) }) != nil else {
            throw EndToEndError(description: "mpatha not up with 4 active paths; errors \(errors); log \(loop.output.log)")
        }
    }

    /// Removes the map (releasing queued I/O first), closes the checker, unloads scsi_debug.
    func tearDown() {
        for disk in report.paths { try? setDeviceState(disk.kernelName, "running") }
        if let map {
            _ = loop.messenger.send(DMMessage(map: map.handle, kind: .failIfNoPath))
            loop.messenger.unregister(map: map.handle)
        }
        loop.checker.close()
        for _ in 0..<50 {
            do {
                try control.remove(name: "mpatha")
                break
            } catch {
                if error.errno == ENXIO { break }
                usleep(100_000)
            }
        }
        for _ in 0..<50 where (try? run("modprobe -r scsi_debug 2>/dev/null")) == nil { usleep(100_000) }
    }

    func dumpLog(last count: Int = 40) {
        for line in loop.output.log.suffix(count) { print("  \(line)") }
    }
}

/// Runs `body` on a rig whose mpatha is up, and tears the rig down whatever happens.
extension EndToEndRig {
    /// The engine, messenger and TUR checker of a second daemon over the rig's kernel (a
    /// restarted one); the caller closes the checker.
    func secondDaemon() throws -> (engine: Engine, messenger: DMMessenger, tur: TURChecker) {
        let engine = Engine(capacities: Capacities(pathsMax: 16, mapsMax: 4, pathsPerMapMax: 8, ringSlots: 64), startNs: monotonicNs())
        return (engine, try DMMessenger(mapsMax: 4), try TURChecker(TURConfiguration(pathsMax: 16)))
    }
}

private func withEndToEndRig(_ body: (EndToEndRig) throws -> Void) throws {
    let rig = try EndToEndRig()
    defer { rig.tearDown() }
    try rig.bringUp()
    do {
        try body(rig)
    } catch {
        rig.dumpLog()
        throw error
    }
}

@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["KEEL_KERNEL_TESTS"] == "1"))
struct EndToEndKernelTests {
    @Test func assemblerBuildsMpathaByALUAPriorityFromDiscovery() throws {
        try withEndToEndRig { rig in
            #expect(rig.report.paths.filter { $0.model == "scsi_debug" }.count == 4)
            #expect(rig.errors.isEmpty, "\(rig.errors)")
            let map = try #require(rig.map)
            #expect(map.paths.count == 4)
            #expect(map.uuid == "mpath-" + map.wwid)
            #expect(map.tableLoads == 1 && !map.adopted)
            let table = try rig.control.multipathTable(name: "mpatha")
            print("end-to-end: kernel table of mpatha: \(table.render())")
            // Three groups by ALUA state: host h is in port group state h % 3 (50, 10, 1).
            func devices(_ state: UInt32) -> [DevNo] { map.paths.filter { $0.address.host % 3 == state }.map(\.device).sorted() }
            #expect(table.groups.map { $0.paths.map(\.device) } == [devices(0), devices(1), devices(2)])
            #expect(map.paths.allSatisfy { $0.priority == [50, 10, 1][Int($0.address.host % 3)] })
            #expect(table.features == ["queue_if_no_path"])
            #expect(table.groups.allSatisfy { $0.selector == "service-time" })
            // scsi_dh_alua is attached to every path, so the profile retains it
            // (retain_attached_hw_handler) and the table carries `1 alua`, as multipathd's does.
            #expect(map.profile.hardwareHandler == "1 alua")
            let attached = Set(map.paths.map { readSysfs("/sys/block/\($0.kernelName)/device/dh_state") })
            print("end-to-end: device handlers attached to the paths: \(attached.sorted())")
            #expect(attached == ["alua"])
            #expect(table.hardwareHandler == ["alua"])
            let wanted = TableBuilder.table(layout: rig.engine.groupLayout(of: map.handle), profile: map.profile, initialGroup: 1)
            #expect(MultipathAssembler.sameTable(kernel: table, wanted: wanted))
        }
    }

    @Test func existingIdenticalMapIsAdoptedWithoutReload() throws {
        try withEndToEndRig { rig in
            let before = try rig.control.listMultipathMaps().first { $0.name == "mpatha" }
            // A second engine and assembler over the same kernel: a restarted daemon.
            let (engine, messenger, tur) = try rig.secondDaemon()
            defer { tur.close() }
            var assembler = MultipathAssembler(configuration: rig.configuration, engine: engine, control: rig.control,
                                               messenger: messenger, checkers: PathCheckers(tur: tur))
            var loop = RecoveryLoop(engine: engine, checker: tur, messenger: messenger, output: EndToEndOutput())
            #expect(assembler.assemble(rig.report, nowNs: monotonicNs()).isEmpty)
            loop.step(nowNs: monotonicNs())
            let requests = loop.output.reloads
            #expect(requests.count == 1)
            #expect(assembler.serviceReloads(requests, loop: &loop, nowNs: monotonicNs()).isEmpty)
            let map = try #require(assembler.map(named: "mpatha"))
            #expect(map.adopted && map.live)
            #expect(map.tableLoads == 0)
            let after = try rig.control.listMultipathMaps().first { $0.name == "mpatha" }
            // No table swap: the kernel's event number did not move.
            #expect(before?.eventNumber == after?.eventNumber)
            #expect(engine.map(map.handle)?.loaded == true)
            #expect(engine.map(map.handle)?.kernelGroup == 1)
            messenger.unregister(map: map.handle)
        }
    }

    @Test("a disk the kernel gives 0 sectors is kept out of its map, said once, and joins when it has the map's size")
    func aDiskWithoutCapacityWaitsOutsideItsMap() throws {
        try withEndToEndRig { rig in
            let (engine, messenger, tur) = try rig.secondDaemon()
            defer { tur.close() }
            var assembler = MultipathAssembler(configuration: rig.configuration, engine: engine, control: rig.control,
                                               messenger: messenger, checkers: PathCheckers(tur: tur))
            assembler.notices.removeAll()
            var report = rig.report
            let empty = try #require(report.paths.indices.last)
            let sectors = report.paths[empty].sizeSectors
            #expect(sectors > 0)
            report.paths[empty].sizeSectors = 0
            let device = report.paths[empty].device
            #expect(assembler.assemble(report, nowNs: monotonicNs()).isEmpty, "a path without capacity is not a size mismatch")
            #expect(assembler.maps.map(\.paths.count) == [report.paths.count - 1])
            #expect(assembler.withoutCapacity == [report.paths[empty].kernelName: device])
            #expect(assembler.notices == [.noCapacity(device: device)], "nor an RDAC array: scsi_debug refuses page 0xC9")
            #expect(assembler.maps.first?.profile.checker == .tur)
            assembler.notices.removeAll()
            // Rediscovery finds it again without capacity: no second notice.
            #expect(assembler.assemble(DiscoveryReport(paths: [report.paths[empty]], skipped: []), nowNs: monotonicNs()).isEmpty)
            #expect(assembler.notices.isEmpty && assembler.maps.map(\.paths.count) == [report.paths.count - 1])
            // The kernel read its capacity: it joins.
            report.paths[empty].sizeSectors = sectors
            #expect(assembler.assemble(DiscoveryReport(paths: [report.paths[empty]], skipped: []), nowNs: monotonicNs()).isEmpty)
            #expect(assembler.maps.map(\.paths.count) == [report.paths.count])
            #expect(assembler.withoutCapacity.isEmpty)
            #expect(assembler.notices == [.capacityFound(device: device, sectors: sectors)])
            for map in assembler.maps { messenger.unregister(map: map.handle) }
        }
    }

    @Test func offlinedActivePathFailsInDMAndIsReinstatedWhenRunning() throws {
        try withEndToEndRig { rig in
            // Host 0 is active/optimized: its path carries I/O (RIG.md: choose by host, not name).
            let path = try #require(rig.disk(host: 0))
            let rounds = 10
            var detectNs: [Nanoseconds] = []
            var reinstateNs: [Nanoseconds] = []
            for round in 1...rounds {
                let offlineAt = monotonicNs()
                try setDeviceState(path.kernelName, "offline")
                let failed = rig.drive(timeoutNs: 20 * Time.nsPerSecond) { rig.kernelShows([path.device], active: false) }
                let failedAt = try #require(failed, "round \(round): \(path.kernelName) not F in dm after 20 s")
                detectNs.append(failedAt - offlineAt)
                let runningAt = monotonicNs()
                try setDeviceState(path.kernelName, "running")
                let back = rig.drive(timeoutNs: 20 * Time.nsPerSecond) { rig.kernelShows([path.device], active: true) }
                let backAt = try #require(back, "round \(round): \(path.kernelName) not A in dm 20 s after running")
                reinstateNs.append(backAt - runningAt)
                print("end-to-end: round \(round): \(path.kernelName) (host \(path.address.host)) offline -> F in \(ms(failedAt - offlineAt)), running -> A in \(ms(backAt - runningAt))")
            }
            let detect = detectNs.sorted()
            let reinstate = reinstateNs.sorted()
            print("end-to-end: offline -> F in dm, \(rounds) rounds: min \(ms(detect.first!)) median \(ms(detect[rounds / 2])) max \(ms(detect.last!))")
            print("end-to-end: running -> reinstated (A) in dm, \(rounds) rounds: min \(ms(reinstate.first!)) median \(ms(reinstate[rounds / 2])) max \(ms(reinstate.last!))")
            // Bounds with slack for the emulated VM: detection within the longest healthy interval
            // (4 s) plus a check; reinstatement within a few fast probes (100 ms).
            #expect(detect.last! < 10 * Time.nsPerSecond)
            #expect(reinstate.last! < 5 * Time.nsPerSecond)
            #expect(rig.errors.isEmpty, "\(rig.errors)")
        }
    }

    @Test func queuedWriteCompletesWhenAnActivePathReturns() throws {
        try withEndToEndRig { rig in
            let map = try #require(rig.map)
            let optimized = try #require(rig.disk(host: 0))
            let readBack = try #require(rig.disk(host: 1))
            for path in map.paths { try setDeviceState(path.kernelName, "offline") }
            let allFailed = rig.drive(timeoutNs: 20 * Time.nsPerSecond) { rig.kernelShows(map.paths.map(\.device), active: false) }
            try #require(allFailed != nil, "not every path F in dm after 20 s")

            let block = pattern(seed: 0x5a)
            let offset = 1 << 20
            let outcome = WriteOutcome()
            let writeStartNs = monotonicNs()
            startDirectWrite(device: "/dev/mapper/mpatha", bytes: block, offset: offset, into: outcome)
            rig.keepDriving(2 * Time.nsPerSecond)
            #expect(outcome.value == nil, "the write returned with no path: \(String(describing: outcome.value))")
            let status = try #require(rig.status())
            let table = try rig.control.multipathTable(name: "mpatha")
            print("end-to-end: all paths down, write blocked for \(ms(monotonicNs() - writeStartNs)); status queue_io \(status.queueingIO ? 1 : 0), table features \(table.features)")
            #expect(table.queueIfNoPath)
            #expect(status.groups.flatMap(\.paths).allSatisfy { !$0.active })

            // Bring back an active/optimized path (RIG.md: the standby one alone never resumes I/O).
            let runningAt = monotonicNs()
            try setDeviceState(optimized.kernelName, "running")
            let done = rig.drive(timeoutNs: 30 * Time.nsPerSecond) { outcome.value != nil }
            try #require(done != nil, "the queued write did not complete 30 s after \(optimized.kernelName) returned")
            let result = try #require(outcome.value)
            print("end-to-end: \(optimized.kernelName) (host 0) running -> queued write completed in \(ms(result.doneNs - runningAt)) (\(result.bytes) bytes, errno \(result.errno))")
            #expect(result.bytes == block.count)

            // Read the block back through another path, straight from its sd device.
            try setDeviceState(readBack.kernelName, "running")
            let data = try directRead(device: "/dev/\(readBack.kernelName)", count: block.count, offset: offset)
            #expect(data == block, "the block read through \(readBack.kernelName) differs")

            for path in map.paths { try setDeviceState(path.kernelName, "running") }
            let allBackAt = monotonicNs()
            let allBack = rig.drive(timeoutNs: 30 * Time.nsPerSecond) { rig.kernelShows(map.paths.map(\.device), active: true) }
            try #require(allBack != nil, "not every path reinstated 30 s after running")
            print("end-to-end: all paths running -> all A in dm in \(ms(allBack! - allBackAt))")
            #expect(rig.errors.isEmpty, "\(rig.errors)")
        }
    }
}
