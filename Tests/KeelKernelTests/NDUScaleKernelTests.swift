// Scale benchmark on the real kernel (VM only, run by name: `Tools/ndu-scale`): an array NDU at
// 1,024 paths. scsi_debug gives KEEL_BENCH_NDU_LUNS LUNs (default 256) behind 4 SCSI hosts; keeld
// (default cadence) builds a queueing map of each; one reader per map keeps an O_DIRECT read in
// flight. Every path goes offline for KEEL_BENCH_NDU_OUTAGE_S seconds (default 30), then the
// 4 hosts come back together, each host's paths in turn. The figures: path back -> reinstated in the kernel, and
// per map first path back -> its queued read done; the test asserts that no read failed, that
// every queued read completed and every path was reinstated.
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Synchronization
import Testing

private let nduEnabled = ProcessInfo.processInfo.environment["KEEL_KERNEL_TESTS"] == "1"
private func benchSetting(_ name: String, _ fallback: Int) -> Int {
    ProcessInfo.processInfo.environment[name].flatMap { Int($0) } ?? fallback
}

/// One map's reader: an O_DIRECT 4 KiB read after another, its results kept for the main thread.
private final class MapReader: @unchecked Sendable {
    let device: String
    let stop = Atomic<Bool>(false)
    let errors = Atomic<Int>(0)
    let reads = Atomic<Int>(0)
    /// Set by the main thread just before the paths come back; the first read completed after it
    /// is the one that was queued through the outage.
    let resumeMarkNs = Atomic<UInt64>(UInt64.max)
    let resumedNs = Atomic<UInt64>(0)
    var thread: Thread?
    var firstError = ""

    init(device: String) { self.device = device }

    func start() {
        let t = Thread { [self] in
            let fd = open(device, O_RDONLY | openDirect)
            guard fd >= 0 else {
                firstError = "open \(device): errno \(errno)"
                errors.add(1, ordering: .relaxed)
                return
            }
            defer { close(fd) }
            var buffer: UnsafeMutableRawPointer?
            posix_memalign(&buffer, 4096, 4096)
            defer { free(buffer) }
            var block = 0
            while !stop.load(ordering: .relaxed) {
                let n = pread(fd, buffer, 4096, off_t(block * 4096))
                if n != 4096 {
                    if errors.add(1, ordering: .relaxed).oldValue == 0 { firstError = "read \(device) block \(block): \(n), errno \(errno)" }
                }
                reads.add(1, ordering: .relaxed)
                let now = UInt64(kernelTestNowNs())
                if now > resumeMarkNs.load(ordering: .acquiring) && resumedNs.load(ordering: .relaxed) == 0 {
                    resumedNs.store(now, ordering: .releasing)
                }
                block = (block + 97) % 2048
                usleep(200_000)   // five reads a second per map: 1,280 a second at 256 maps, on an emulated CPU
            }
        }
        thread = t
        t.start()
    }
}

private func distribution(_ values: [Nanoseconds]) -> String {
    guard !values.isEmpty else { return "-" }
    let sorted = values.sorted()
    func at(_ p: Int) -> String { String(format: "%.1f", Double(sorted[min(sorted.count - 1, sorted.count * p / 100)]) / 1e6) }
    return "min \(at(0)) / p50 \(at(50)) / p90 \(at(90)) / p99 \(at(99)) / max \(at(100)) ms (n=\(sorted.count))"
}

@Suite(.serialized, .enabled(if: nduEnabled), .timeLimit(.minutes(20)))
struct NDUScaleKernelTests {
    @Test func everyPathOfAThousandGoesAndComesBack() throws {
        let luns = benchSetting("KEEL_BENCH_NDU_LUNS", 256)
        let outageS = benchSetting("KEEL_BENCH_NDU_OUTAGE_S", 30)
        // KEEL_BENCH_NDU_FEATURES: a features line for every map (e.g. "2 pg_init_retries 50").
        let features = ProcessInfo.processInfo.environment["KEEL_BENCH_NDU_FEATURES"].flatMap { $0.isEmpty ? nil : $0 }
        let pathCount = 4 * luns
        try keeldGuestShell("""
            modprobe scsi_debug add_host=4 num_tgts=1 max_luns=\(luns) vpd_use_hostno=0 dev_size_mb=8 || exit 1
            for i in $(seq 1200); do n=0; for d in /sys/block/sd*; do [ -e "$d/dev" ] && n=$((n + 1)); done
              [ $n -ge \(pathCount) ] && break; keel_sleep 0.25; done
            keel_sleep 3
            """)
        defer { _ = try? keeldGuestShell("for s in /sys/block/sd*/device/state; do echo running > $s; done; keel_scsi_debug_unload") }
        var diskByDevice: [DevNo: String] = [:]
        for disk in try FileManager.default.contentsOfDirectory(atPath: "/sys/block") where disk.hasPrefix("sd") {
            if let device = keeldDiskDevice(disk) { diskByDevice[device] = disk }
        }
        #expect(diskByDevice.count == pathCount, "scsi_debug gave \(diskByDevice.count) disks")

        let configuration = """
            defaults {
                find_multipaths greedy
                user_friendly_names yes
                path_grouping_policy group_by_prio
                prio alua
                failback immediate
                no_path_retry queue
            \(features.map { "    features \"\($0)\"" } ?? "")
            }

            """
        let startNs = kernelTestNowNs()
        let (keeld, names) = try keeldStartedWithMaps(configuration, maps: luns, usable: 4, logFile: "/tmp/keeld-ndu.log",
                                                    timeoutNs: 300 * Time.nsPerSecond)
        defer { keeldStop(keeld, removing: names) }
        let readyS = Double(kernelTestNowNs() - startNs) / 1e9
        let control = try DMControl()
        var pathsOfMap: [String: [DevNo]] = [:]
        for name in names { pathsOfMap[name] = try control.multipathStatus(name: name).groups.flatMap { $0.paths.map(\.device) } }

        // keeld's CPU in steady state: every path healthy, checked at Keel's default cadence
        // (every 500 ms, capped host-wide at 4,096 checks a second).
        func cpuTicks() -> Int {
            let stat = (try? String(contentsOfFile: "/proc/\(keeld.pid)/stat", encoding: .utf8)) ?? ""
            let fields = stat.split(separator: ")").last.map { $0.split(separator: " ") } ?? []
            return fields.count > 12 ? (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0) : 0   // utime, stime
        }
        usleep(5_000_000)
        let ticksBefore = cpuTicks(), cpuStartNs = kernelTestNowNs()
        usleep(10_000_000)
        let cpuShare = Double(cpuTicks() - ticksBefore) / Double(sysconf(Int32(_SC_CLK_TCK)))
            / (Double(kernelTestNowNs() - cpuStartNs) / 1e9)
        print("keeld in steady state at \(pathCount) paths: \(String(format: "%.1f", cpuShare * 100)) % of one (emulated) CPU over 10 s")

        let readers = names.map { MapReader(device: "/dev/mapper/" + $0) }
        readers.forEach { $0.start() }
        defer {
            readers.forEach { $0.stop.store(true, ordering: .relaxed) }
        }
        usleep(2_000_000)
        #expect(readers.allSatisfy { $0.reads.load(ordering: .relaxed) > 0 }, "every map serves reads before the outage")

        // Each path's ALUA state before the outage (scsi_debug keeps it per host).
        var accessState: [DevNo: String] = [:]
        for (device, disk) in diskByDevice {
            accessState[device] = ((try? String(contentsOfFile: "/sys/block/\(disk)/device/access_state", encoding: .utf8)) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        print("ALUA states of the paths: " + Dictionary(grouping: accessState.values) { $0 }.map { "\($0.key.isEmpty ? "-" : $0.key) \($0.value.count)" }
            .sorted().joined(separator: ", "))

        // The outage: every path offline at once.
        for disk in diskByDevice.values { try keeldSetDiskState(disk, "offline") }
        let allFailed = try kernelTestWait(every: 100_000, timeoutNs: 120 * Time.nsPerSecond) {
            try names.allSatisfy { try control.multipathStatus(name: $0).groups.allSatisfy { $0.paths.allSatisfy { !$0.active } } }
        }
        #expect(allFailed != nil, "every path failed in the kernel")
        let outageStartNs = kernelTestNowNs()
        usleep(UInt32(outageS) * 1_000_000)
        let markNs = UInt64(kernelTestNowNs())
        readers.forEach { $0.resumeMarkNs.store(markNs, ordering: .releasing) }

        // The array comes back, one host (every LUN's path through it) after the other, written by
        // a thread of its own while this one sweeps the maps' status. A write of "running" takes
        // the kernel tens of milliseconds (it probes the device again), so each path's return is
        // timed from just before its write: the figures include the write.
        let devicesByHost = Dictionary(grouping: diskByDevice.keys) { device -> String in
            let link = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/sys/block/\(diskByDevice[device]!)/device")) ?? ""
            return String((link as NSString).lastPathComponent.split(separator: ":").first ?? "")
        }
        let order = devicesByHost.keys.sorted().flatMap { devicesByHost[$0]! }.map { ($0, diskByDevice[$0]!) }
        let backLock = Mutex<[DevNo: Nanoseconds]>([:])
        // Each host on a thread of its own: the array's ports come back together, and each
        // host's paths return in turn (the kernel probes each device as it is set running).
        let writers = devicesByHost.keys.sorted().map { host in
            let paths = order.filter { pair in devicesByHost[host]!.contains(pair.0) }
            return Thread {
                for (device, disk) in paths {
                    let before = kernelTestNowNs()
                    backLock.withLock { $0[device] = before }
                    try? keeldSetDiskState(disk, "running")
                }
            }
        }
        writers.forEach { $0.start() }
        // Path back -> active in the kernel, sampled by sweeping every map's status.
        var activeNs: [DevNo: Nanoseconds] = [:]
        var sweeps = 0
        let sweepStartNs = kernelTestNowNs()
        var writersDoneNs: Nanoseconds?
        while activeNs.count < pathCount && kernelTestNowNs() - (writersDoneNs ?? kernelTestNowNs()) < 60 * Time.nsPerSecond
              && kernelTestNowNs() - sweepStartNs < 1200 * Time.nsPerSecond {
            if writersDoneNs == nil && writers.allSatisfy(\.isFinished) { writersDoneNs = kernelTestNowNs() }
            // Only maps with a path still down are read: the sweep gets quicker as paths return.
            for name in names where pathsOfMap[name]!.contains(where: { activeNs[$0] == nil }) {
                for group in try control.multipathStatus(name: name).groups {
                    for path in group.paths where path.active && activeNs[path.device] == nil { activeNs[path.device] = kernelTestNowNs() }
                }
            }
            sweeps += 1
        }
        while !writers.allSatisfy(\.isFinished) { usleep(1000) }
        let backNs = backLock.withLock { $0 }
        let sweepMs = Double(kernelTestNowNs() - sweepStartNs) / 1e6 / Double(max(sweeps, 1))
        // First path back -> the map's queued read done.
        let queuedDone = kernelTestWait(every: 10_000, timeoutNs: 120 * Time.nsPerSecond) {
            readers.allSatisfy { $0.resumedNs.load(ordering: .acquiring) != 0 }
        }
        #expect(activeNs.count == pathCount, "\(activeNs.count) of \(pathCount) paths reinstated")
        #expect(queuedDone != nil, "every map's queued read completed")
        let reinstated = backNs.compactMap { device, back in activeNs[device].map { $0 - back } }
        var resumed: [Nanoseconds] = []
        // A path in an ALUA standby port group cannot carry I/O (the kernel's ALUA handler fails
        // it): a map whose first path back is one waits for a path of another group. So the
        // read is also timed from the first path back that can serve it.
        var resumedFromServing: [Nanoseconds] = []
        var standbyFirst = 0
        for (reader, name) in zip(readers, names) {
            guard let firstBack = pathsOfMap[name]?.compactMap({ backNs[$0] }).min() else { continue }
            let done = Nanoseconds(reader.resumedNs.load(ordering: .acquiring))
            if done > firstBack { resumed.append(done - firstBack) }
            let serving = pathsOfMap[name]?.filter { accessState[$0] != "standby" && accessState[$0] != "unavailable" } ?? []
            if let firstServing = serving.compactMap({ backNs[$0] }).min() {
                if firstServing > firstBack { standbyFirst += 1 }
                resumedFromServing.append(max(done - firstServing, 0))
            }
        }
        let errors = readers.reduce(0) { $0 + $1.errors.load(ordering: .relaxed) }
        #expect(errors == 0, "read errors: \(errors); first: \(readers.first { !$0.firstError.isEmpty }?.firstError ?? "-")")
        let bound = 2 * 200 * Time.nsPerMs + Nanoseconds(pathCount) * Time.nsPerSecond / 4096
        let late = reinstated.filter { $0 > bound }.count
        print("""
            NDU at \(pathCount) paths (\(luns) maps, 4 hosts), outage \(outageS) s: keeld ready after \(String(format: "%.1f", readyS)) s
              every path failed in the kernel \(allFailed.map { String(format: "%.1f", Double($0) / 1e6) } ?? "-") ms after the first offline write
              path back -> reinstated: \(distribution(reinstated)) (dm status swept every \(String(format: "%.0f", sweepMs)) ms on average)
              over 2 x fast_probe_interval + share of the check rate (\(bound / Time.nsPerMs) ms): \(late) of \(reinstated.count)
              first path back -> queued read done, per map: \(distribution(resumed))
              first path back that can serve I/O (not ALUA standby) -> queued read done: \(distribution(resumedFromServing)) (\(standbyFirst) maps had a standby path back first)
              read errors: \(errors); reads \(readers.reduce(0) { $0 + $1.reads.load(ordering: .relaxed) }); outage began \(String(format: "%.1f", Double(kernelTestNowNs() - outageStartNs) / 1e9)) s ago
            """)
        if let slowest = backNs.compactMap({ device, back in activeNs[device].map { (device, $0 - back) } }).max(by: { $0.1 < $1.1 }),
           let disk = diskByDevice[slowest.0] {
            let log = (try? String(contentsOfFile: "/tmp/keeld-ndu.log", encoding: .utf8)) ?? ""
            let lines = log.split(separator: "\n").filter { $0.contains(disk + " ") || $0.contains(disk + ":") || $0.contains("(" + disk) }
            let sinceMark = { (ns: Nanoseconds) in "\((ns - Nanoseconds(markNs)) / Time.nsPerMs) ms" }
            print("the slowest path, \(disk), reinstated \(slowest.1 / Time.nsPerMs) ms after it came back (back \(sinceMark(backNs[slowest.0]!)), "
                  + "active \(sinceMark(activeNs[slowest.0]!)) after the first write; every write done after \(sinceMark(backNs.values.max()!)); "
                  + "keeld started \(Double(Nanoseconds(markNs) - startNs) / 1e9) s before the first write); keeld's lines about it:\n"
                  + lines.suffix(12).joined(separator: "\n"))
        }
        // What keeld itself saw: its counters and how many lines of each kind it logged.
        print("keeld's show daemon after the NDU:\n" + ((try? keeld.command("show daemon")) ?? "-"))
        let log = (try? String(contentsOfFile: "/tmp/keeld-ndu.log", encoding: .utf8)) ?? ""
        for needle in ["reinstated", "failed", "table loaded", "reload requested", "no free slot", "timed out", "priority"] {
            print("  log lines with \"\(needle)\": \(log.split(separator: "\n").filter { $0.contains(needle) }.count)")
        }
        // What the kernel said while the paths came back: paths dm failed itself (I/O errors,
        // failed path-group initialisations) and the ALUA handler's words.
        let kernelLog = (try? keeldGuestShell("dmesg")) ?? ""
        let kernelLines = kernelLog.split(separator: "\n")
        for needle in ["Failing path", "pg_init", "alua", "rejecting I/O", "timing out command", "I/O error"] {
            print("  kernel lines with \"\(needle)\": \(kernelLines.filter { $0.contains(needle) }.count)")
        }
        for needle in ["alua", "Failing path", "pg_init"] {
            print("  last kernel lines with \"\(needle)\":\n" + kernelLines.filter { $0.contains(needle) }.suffix(4).map { "    " + $0 }.joined(separator: "\n"))
        }
        readers.forEach { $0.stop.store(true, ordering: .relaxed) }
        let joined = kernelTestWait(every: 10_000, timeoutNs: 10 * Time.nsPerSecond) { readers.allSatisfy { $0.thread?.isFinished ?? true } }
        #expect(joined != nil, "every reader ended")
    }
}
