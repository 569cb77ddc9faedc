// Real-kernel (VM) ride-through of keeld: a write-and-verify workload on its map survives every path
// going away for 30 s, also with its log device hung and with a memory-starved cgroup beside it.
import Foundation
import Glibc
import Testing

private let secondNs: UInt64 = 1_000_000_000

/// Sleeps for `ns`, calling `tick` about once a second meanwhile.
private func wait(_ ns: UInt64, tick: () -> Void = {}) {
    let deadline = rideThroughMonotonicNs() + ns
    while rideThroughMonotonicNs() < deadline {
        tick()
        let now = rideThroughMonotonicNs()
        guard now < deadline else { return }
        usleep(UInt32(min(deadline - now, secondNs) / 1000))
    }
}

// MARK: - The workload on a map made by hand (no daemon)

/// mpath over scsi_debug's 4 paths, loaded with dmsetup (groups by ALUA state as group_by_prio
/// makes them: hosts 0 and 3 optimized, 1 non-optimized, 2 standby).
private struct HandMadeMap {
    static let name = "keel-workload"
    let disks: KeeldScsiDebugDisks
    var device: String { "/dev/mapper/" + Self.name }

    init(queueIfNoPath: Bool) throws {
        let disks = try KeeldScsiDebugDisks.load()
        self.disks = disks
        do {
            let devices = try disks.byHost.map {
                try String(contentsOfFile: "/sys/block/\($0)/dev", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let features = queueIfNoPath ? "1 queue_if_no_path" : "0"
            let table = "0 131072 multipath \(features) 0 3 1 service-time 0 2 2 \(devices[0]) 1 1 \(devices[3]) 1 1 "
                + "service-time 0 1 2 \(devices[1]) 1 1 service-time 0 1 2 \(devices[2]) 1 1"
            // No udevd in the VM: no udev sync, and dmsetup makes the /dev/mapper node itself.
            try keeldGuestShell("dmsetup create --noudevsync \(Self.name) --table '\(table)' && dmsetup mknodes \(Self.name) && test -b \(device)")
        } catch {
            keeldRemoveMap(Self.name)
            disks.unload()
            throw error
        }
    }

    /// Every path failed in dm back to active (no daemon does it here).
    func reinstateAll() throws {
        for disk in disks.byHost {
            let devno = try String(contentsOfFile: "/sys/block/\(disk)/dev", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            try keeldGuestShell("dmsetup message \(Self.name) 0 reinstate_path \(devno)")
        }
    }

    func tearDown() {
        disks.allRunning()
        keeldRemoveMap(Self.name)
        disks.unload()
    }
}

/// The workload's own checks, on a map loaded by hand: what it counts is what happened.
@Suite(.serialized, .enabled(if: keeldKernelTestsEnabled))
struct WriteVerifyWorkloadKernelTests {
    @Test func healthyMapGivesWritesAndNoErrorsOrCorruption() throws {
        let map = try HandMadeMap(queueIfNoPath: true)
        defer { map.tearDown() }
        let workload = WriteVerifyWorkload(device: map.device, blockCount: 128, threads: 2)
        try workload.start()
        wait(3 * secondNs)
        #expect(workload.stop())
        let report = workload.finalReport()
        print("workload: healthy map, 3 s: \(report.summary)")
        #expect(report.writesCompleted > 0)
        #expect(report.readsVerified == report.writesCompleted)
        #expect(report.errorCount == 0, "\(report.errors.prefix(5))")
        #expect(report.corruptions.isEmpty, "\(report.corruptions.prefix(5))")
        #expect(report.blocksVerifiedFinal == min(128, report.writesCompleted))
    }

    @Test func blockOverwrittenBehindItsBackIsReportedByTheFinalPass() throws {
        let map = try HandMadeMap(queueIfNoPath: true)
        defer { map.tearDown() }
        let workload = WriteVerifyWorkload(device: map.device, blockCount: 16, threads: 2)
        try workload.start()
        wait(2 * secondNs)
        #expect(workload.stop())
        // Block 5 rewritten with zeros straight through one path's sd device.
        try keeldGuestShell("dd if=/dev/zero of=/dev/\(map.disks.byHost[0]) bs=4096 seek=5 count=1 oflag=direct status=none")
        let report = workload.finalReport()
        print("workload: one block zeroed behind its back: \(report.corruptions)")
        #expect(report.corruptions.map(\.block) == [5])
        #expect(report.corruptions.first?.pass == "final")
        #expect((report.corruptions.first?.differingBytes ?? 0) > 4000)
    }

    @Test func stallWithoutPathsEndsAtTheFirstCompletionAfterReinstatement() throws {
        let map = try HandMadeMap(queueIfNoPath: true)
        defer { map.tearDown() }
        let workload = WriteVerifyWorkload(device: map.device, blockCount: 64, threads: 2)
        try workload.start()
        wait(2 * secondNs)
        let downNs = rideThroughMonotonicNs()
        for disk in map.disks.byHost { try keeldSetDiskState(disk, "offline") }
        wait(5 * secondNs)
        for disk in map.disks.byHost { try keeldSetDiskState(disk, "running") }
        let reinstatedNs = rideThroughMonotonicNs()
        try map.reinstateAll()
        wait(3 * secondNs)
        #expect(workload.stop())
        let report = workload.finalReport()
        let stall = report.longestStall
        let resumed = report.firstCompletion(afterNs: reinstatedNs)
        print("workload: 5 s without paths: \(report.summary); first I/O \(resumed.map(rideThroughMs) ?? "never") after reinstatement")
        #expect(report.errorCount == 0, "\(report.errors.prefix(5))")
        #expect(report.corruptions.isEmpty, "\(report.corruptions.prefix(5))")
        #expect(report.completions(fromNs: downNs + secondNs, toNs: reinstatedNs) == 0)
        #expect(stall.ns >= 4 * secondNs && stall.ns < 15 * secondNs)
        #expect(resumed != nil && resumed! < 5 * secondNs)
    }

    @Test func mapWithoutQueueingGivesIOErrorsWithEIO() throws {
        let map = try HandMadeMap(queueIfNoPath: false)
        defer { map.tearDown() }
        let workload = WriteVerifyWorkload(device: map.device, blockCount: 64, threads: 2)
        try workload.start()
        wait(secondNs)
        for disk in map.disks.byHost { try keeldSetDiskState(disk, "offline") }
        wait(3 * secondNs)
        for disk in map.disks.byHost { try keeldSetDiskState(disk, "running") }
        try map.reinstateAll()
        #expect(workload.stop())
        let report = workload.finalReport()
        print("workload: no queueing, paths offline: \(report.summary); first errors \(report.errors.prefix(3))")
        #expect(report.errorCount > 0)
        #expect(report.errors.allSatisfy { $0.errno == EIO })
        #expect(report.corruptions.isEmpty, "\(report.corruptions.prefix(5))")
    }
}

// MARK: - keeld riding through an outage of every path

/// keeld on scsi_debug's 4 paths with its map up, and the way out.
private final class KeeldRideThroughRig {
    let disks: KeeldScsiDebugDisks
    let daemon: KeeldDaemon
    let map: KeeldMapLine
    var device: String { "/dev/mapper/" + map.name }

    init(logFile: String? = nil) throws {
        disks = try KeeldScsiDebugDisks.load()
        do {
            daemon = try KeeldDaemon(logFile: logFile, arguments: logFile == nil ? ["--stderr"] : [])
            try daemon.waitReady()
            map = try daemon.waitForMap(usable: 4)
        } catch {
            disks.unload()
            throw error
        }
        print("ride-through: keeld pid \(daemon.pid) up with \(map)")
    }

    func tearDown() {
        disks.allRunning()
        let status = daemon.stop()
        print("ride-through: keeld stopped, exit status \(status.map(String.init) ?? "none (killed)")")
        keeldRemoveMap(map.name)
        disks.unload()
    }
}

/// What one outage did to the workload.
private struct OutageOutcome {
    var report: WorkloadReport
    var downNs: UInt64
    var returnsNs: [UInt64]
    var workloadStopped: Bool

    /// From the first path's return to the first completed I/O after it.
    var resumeNs: UInt64? { report.firstCompletion(afterNs: returnsNs[0]) }
}

/// Runs the workload on the rig's map: 3 s healthy, every path offline for 30 s (`duringOutage`
/// called about once a second, first right after the paths went), then the paths back one by one
/// 3 s apart, host 0 (active/optimized) first, then 5 s more.
private func rideThroughOutage(_ rig: KeeldRideThroughRig, beforeOutage: () throws -> Void = {},
                               duringOutage: () -> Void = {}) throws -> OutageOutcome {
    let workload = WriteVerifyWorkload(device: rig.device, blockCount: 256, threads: 2)
    try workload.start()
    wait(3 * secondNs)
    let warm = workload.writesSoFar
    try beforeOutage()
    let downNs = rideThroughMonotonicNs()
    for disk in rig.disks.byHost { try keeldSetDiskState(disk, "offline") }
    wait(30 * secondNs, tick: duringOutage)
    let during = rig.daemon.maps()
    var returnsNs: [UInt64] = []
    for (host, disk) in rig.disks.byHost.enumerated() {
        if host > 0 { wait(3 * secondNs) }
        returnsNs.append(rideThroughMonotonicNs())
        try keeldSetDiskState(disk, "running")
    }
    wait(5 * secondNs)
    let after = rig.daemon.maps()
    let stopped = workload.stop()
    let report = workload.finalReport()
    print("ride-through: \(warm) writes before the outage; show maps at its end \(during), 5 s after the last return \(after)")
    print("ride-through: \(report.summary)")
    return OutageOutcome(report: report, downNs: downNs, returnsNs: returnsNs, workloadStopped: stopped)
}

/// The pass criteria every ride-through shares, and its figure lines.
private func expectRodeThrough(_ outcome: OutageOutcome, _ rig: KeeldRideThroughRig, figure: String) {
    let report = outcome.report
    let stall = report.longestStall
    let resume = outcome.resumeNs
    print("figure: \(figure): first completed I/O \(resume.map(rideThroughMs) ?? "never") after the first path returned; longest stall \(rideThroughMs(stall.ns))")
    #expect(outcome.workloadStopped, "workload threads still blocked 30 s after stop")
    #expect(report.errorCount == 0, "I/O errors: \(report.errors.prefix(10))")
    #expect(report.corruptions.isEmpty, "corrupted: \(report.corruptions.prefix(10))")
    // The outage was real: nothing completed from 2 s after the paths went until one came back.
    #expect(report.completions(fromNs: outcome.downNs + 2 * secondNs, toNs: outcome.returnsNs[0]) == 0)
    #expect(resume != nil && resume! < 20 * secondNs, "no I/O within 20 s of the first path's return")
    #expect(report.completions(fromNs: outcome.returnsNs.last!, toNs: report.stopNs) > 0)
    #expect(report.blocksVerifiedFinal == 256)
    if report.errorCount != 0 || !report.corruptions.isEmpty || resume == nil {
        print(rig.daemon.stderrTail(60))
    }
}

/// keeld keeps a map's I/O alive through an outage of every path: queued, then resumed with no
/// error and no corrupted block. Each test runs keeld with the EndToEnd policy (queue when no path
/// is left, 1 s polling, 100 ms fast probes, TUR, group_by_prio on ALUA, immediate failback).
@Suite(.serialized, .enabled(if: keeldKernelTestsEnabled), .timeLimit(.minutes(6)))
struct KeeldRideThroughKernelTests {
    @Test func workloadRidesThroughThirtySecondsWithoutAnyPath() throws {
        let rig = try KeeldRideThroughRig()
        defer { rig.tearDown() }
        let outcome = try rideThroughOutage(rig)
        expectRodeThrough(outcome, rig, figure: "keeld NDU ride-through (30 s all paths offline)")
    }

    @Test func workloadRidesThroughWhileTheLogDeviceHangs() throws {
        let logDevice = try HungLogDevice()
        defer { logDevice.tearDown() }
        let rig = try KeeldRideThroughRig(logFile: logDevice.logFile)
        defer { rig.tearDown() }
        // Runs before keeld is stopped: keeld must be able to flush its log on the way out.
        defer { try? logDevice.resume() }
        var answersNs: [UInt64] = []
        var failures: [String] = []
        let outcome = try rideThroughOutage(rig, beforeOutage: { try logDevice.suspend() }, duringOutage: {
            let start = rideThroughMonotonicNs()
            do {
                let answer = try rig.daemon.command("show daemon", timeoutMs: 5000)
                if answer.isEmpty { failures.append("empty answer") }
                answersNs.append(rideThroughMonotonicNs() - start)
            } catch {
                failures.append("\(error)")
            }
        })
        try logDevice.resume()
        wait(2 * secondNs)
        let slowest = answersNs.max() ?? 0
        print("ride-through: log device suspended for the outage; `show daemon` answered \(answersNs.count) times, slowest \(rideThroughMs(slowest)), \(failures.count) failures \(failures.prefix(3))")
        expectRodeThrough(outcome, rig, figure: "keeld ride-through with its log device hung")
        #expect(failures.isEmpty)
        #expect(answersNs.count >= 20)
        #expect(rig.daemon.process.isRunning)
    }

    @Test func workloadRidesThroughBesideAMemoryStarvedCgroup() throws {
        let rig = try KeeldRideThroughRig()
        defer { rig.tearDown() }
        let starved = try StarvedCgroup(limitBytes: 200 << 20)
        defer { starved.tearDown() }
        try starved.startHog(bytes: 190 << 20)
        var peakBytes = 0
        let outcome = try rideThroughOutage(rig, duringOutage: {
            // The dirty-page writer starts once the paths are gone, so its pages queue on the dead map.
            if !starved.writerStarted { try? starved.startDirtyWriter(device: rig.device, offsetMiB: 16, countMiB: 40) }
            peakBytes = max(peakBytes, starved.currentBytes)
        })
        let writer = starved.waitForWriter(timeoutNs: 60 * secondNs)
        print("ride-through: cgroup \(starved.path): memory.max \(200 << 20), peak current \(peakBytes), memory.events \(starved.events), hog starts \(starved.hogStarts), dirty writer \(writer)")
        expectRodeThrough(outcome, rig, figure: "keeld ride-through beside a 200M memory-starved cgroup")
        // The starved group did press on its limit while the paths were gone.
        #expect(peakBytes >= 150 << 20)
        #expect(starved.writerStarted)
        #expect(rig.daemon.process.isRunning)
    }
}

// MARK: - The log device that stops completing I/O

/// A small ext4 filesystem on a dm-linear device over a loop file: `suspend` makes every I/O to it
/// hang (dm holds it, --nolockfs so the filesystem is not frozen first) until `resume`.
private struct HungLogDevice {
    static let name = "keeld-logdev"
    let directory = "/tmp/keeld-logfs"
    var logFile: String { directory + "/keeld.log" }

    init() throws {
        try keeldGuestShell("""
            set -e
            modprobe loop
            truncate -s 64M /tmp/keeld-logdev.img
            loop=$(losetup -f --show /tmp/keeld-logdev.img)
            dmsetup create --noudevsync \(Self.name) --table "0 131072 linear $loop 0"
            dmsetup mknodes \(Self.name)
            mkfs.ext4 -q -F /dev/mapper/\(Self.name)
            mkdir -p \(directory)
            mount /dev/mapper/\(Self.name) \(directory)
            """)
    }

    func suspend() throws { try keeldGuestShell("dmsetup suspend --noudevsync --nolockfs \(Self.name)") }
    func resume() throws { try keeldGuestShell("dmsetup resume --noudevsync \(Self.name)") }

    func tearDown() {
        let tail = try? keeldGuestShell("dmsetup resume --noudevsync \(Self.name) 2>/dev/null; tail -n 5 \(logFile) 2>/dev/null | sed 's/^/  keeld.log| /'; umount \(directory); dmsetup remove --noudevsync \(Self.name); losetup -D")
        print("ride-through: the end of keeld's log file:\n\(tail ?? "(unreadable)")")
    }
}

// MARK: - A cgroup starved of memory, beside keeld

/// A cgroup v2 group with a small memory.max holding a memory hog and a buffered writer whose
/// dirty pages can only be written to a map without paths.
private final class StarvedCgroup: @unchecked Sendable {
    let path = "/sys/fs/cgroup/keeld-starved"
    let scratch: String
    private var hog: Process?
    private var writer: Process?

    init(limitBytes: Int) throws {
        scratch = "/tmp/keeld-starved-\(getpid())"
        try keeldGuestShell("""
            set -e
            mkdir -p \(scratch)
            grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup
            echo +memory > /sys/fs/cgroup/cgroup.subtree_control
            mkdir -p \(path)
            echo \(limitBytes) > \(path)/memory.max
            """)
    }

    /// A process started by bash inside the group (bash joins the group, then execs).
    private func startInGroup(_ command: String, output: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", "echo $$ > \(path)/cgroup.procs && \(command)"]
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: output)
        process.standardError = FileHandle(forWritingAtPath: output)
        try process.run()
        return process
    }

    /// python3 allocating and touching `bytes` in 1 MiB pieces, then holding them; restarted when
    /// the group's OOM killer takes it.
    func startHog(bytes: Int) throws {
        let script = "import time\\nchunks = []\\nprint(\"hog start\", flush=True)\\n"
            + "while len(chunks) < \(bytes >> 20): chunks.append(bytearray(b\"Z\") * (1 << 20))\\n"
            + "print(\"hog full\", flush=True)\\nwhile True: time.sleep(1)\\n"
        hog = try startInGroup("while :; do printf '\(script)' | /usr/bin/python3 -; done", output: scratch + "/hog.out")
        // Until the hog holds most of its memory, so the outage starts with the group near its limit.
        let deadline = rideThroughMonotonicNs() + 60 * secondNs
        while currentBytes < bytes * 3 / 4 && rideThroughMonotonicNs() < deadline { usleep(200_000) }
    }

    var writerStarted: Bool { writer != nil }

    /// Buffered dd of `countMiB` MiB to `device` from `offsetMiB` on (clear of the workload's blocks).
    func startDirtyWriter(device: String, offsetMiB: Int, countMiB: Int) throws {
        writer = try startInGroup("exec dd if=/dev/zero of=\(device) bs=1M seek=\(offsetMiB) count=\(countMiB) status=none",
                                  output: scratch + "/writer.out")
    }

    /// The writer's end: "exit N" / "still running" / "not started".
    func waitForWriter(timeoutNs: UInt64) -> String {
        guard let writer else { return "not started" }
        let deadline = rideThroughMonotonicNs() + timeoutNs
        while writer.isRunning && rideThroughMonotonicNs() < deadline { usleep(100_000) }
        let output = ((try? String(contentsOfFile: scratch + "/writer.out", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        return writer.isRunning ? "still running" : "exit \(writer.terminationStatus) \(writer.terminationReason == .uncaughtSignal ? "(signal)" : "")\(output)"
    }

    var currentBytes: Int {
        Int(((try? String(contentsOfFile: path + "/memory.current", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    var events: String {
        ((try? String(contentsOfFile: path + "/memory.events", encoding: .utf8)) ?? "").split(separator: "\n").joined(separator: ", ")
    }

    var hogStarts: Int {
        ((try? String(contentsOfFile: scratch + "/hog.out", encoding: .utf8)) ?? "").components(separatedBy: "hog start").count - 1
    }

    /// Kills everything in the group and removes it.
    func tearDown() {
        if let hog, hog.isRunning { kill(hog.processIdentifier, SIGKILL) }
        _ = try? keeldGuestShell("echo 1 > \(path)/cgroup.kill; for i in $(seq 100); do rmdir \(path) 2>/dev/null && break; keel_sleep 0.1; done")
    }
}
