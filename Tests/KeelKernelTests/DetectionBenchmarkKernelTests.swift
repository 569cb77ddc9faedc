// Benchmark on the real kernel (VM only): how long keeld takes to fail a path that goes offline
// with no I/O on it, for several healthy-path cadences, against what each cadence costs: checks a
// second (keeld's own count) and keeld's CPU time.
//
// One scsi_debug LUN behind 4 SCSI hosts (4 paths). For each cadence keeld starts on its own
// configuration, builds the map, then runs rounds of "wait a while (a different phase each round),
// set one path offline, time until dm shows it failed, set it running, wait until dm shows it
// active". dm status is read in this process about every millisecond. The figures are printed as
// a Markdown table; the test asserts only that every cadence fails and reinstates the path.
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Testing

/// One cadence: its name in the table, its configuration lines and its rounds.
private struct Cadence {
    var name: String
    var lines: String
    var rounds: Int
}

private let cadences = [
    Cadence(name: "healthy_interval_ms 250", lines: "    healthy_interval_ms 250\n", rounds: 8),
    Cadence(name: "healthy_interval_ms 500 (Keel's default)", lines: "", rounds: 8),
    Cadence(name: "healthy_interval_ms 1000", lines: "    healthy_interval_ms 1000\n", rounds: 8),
    Cadence(name: "polling_interval 5, max 20 (multipathd's default)", lines: "    polling_interval 5\n", rounds: 5),
]

private func detectionConfiguration(_ cadence: Cadence) -> String {
    """
    defaults {
        find_multipaths greedy
        user_friendly_names yes
        path_grouping_policy group_by_prio
        path_checker tur
        prio alua
        failback immediate
        no_path_retry queue
    \(cadence.lines)}

    """
}

/// keeld's CPU time so far (user + system), in clock ticks.
private func cpuTicks(_ pid: Int32) -> Int {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After the command: state is field 3, utime 14 and stime 15 (1-based over the whole line).
    guard fields.count > 13, let user = Int(fields[11]), let system = Int(fields[12]) else { return 0 }
    return user + system
}

/// Checks keeld has finished so far: the count of its check-latency histogram.
private func checksDone(_ keeld: KeeldDaemon) -> Int {
    let metrics = (try? keeld.command("show metrics")) ?? ""
    for line in metrics.split(separator: "\n") where line.hasPrefix("keel_check_latency_seconds_count") {
        return Int(line.split(separator: " ").last ?? "") ?? 0
    }
    return 0
}

private func percentile(_ sorted: [Nanoseconds], _ p: Int) -> String {
    guard !sorted.isEmpty else { return "-" }
    let ns = sorted[min(sorted.count - 1, (sorted.count * p) / 100)]
    return "\(ns / Time.nsPerMs)"
}

@Suite(.serialized, .enabled(if: keeldKernelTestsEnabled), .timeLimit(.minutes(8)))
struct DetectionBenchmarkKernelTests {
    @Test func offlineToFailedAgainstTheCheckRate() throws {
        let disks = try KeeldScsiDebugDisks.load()
        defer { disks.allRunning(); disks.unload() }
        let devices = try disks.byHost.map { disk -> DevNo in
            guard let device = keeldDiskDevice(disk) else { throw RideThroughError("no device number for \(disk)") }
            return device
        }
        let control = try DMControl()
        let ticksPerSecond = sysconf(Int32(_SC_CLK_TCK))
        var table = ["| healthy cadence | checks/s (4 paths) | keeld CPU ms/s | offline -> failed ms: min / p50 / p90 / max | rounds |",
                     "|---|---|---|---|---|"]
        for cadence in cadences {
            let (keeld, names) = try keeldStartedWithMaps(detectionConfiguration(cadence), maps: 1, usable: 4)
            defer { keeldStop(keeld, removing: names) }
            #expect(keeld.stderrText.contains("healthy paths are checked every"), "keeld says which cadence applies")

            // The cost: checks and CPU over an idle window.
            let windowNs = 4 * Time.nsPerSecond
            let checksBefore = checksDone(keeld), ticksBefore = cpuTicks(keeld.pid), startNs = kernelTestNowNs()
            usleep(UInt32(windowNs / 1000))
            let elapsedNs = kernelTestNowNs() - startNs
            let checksPerSecond = Double(checksDone(keeld) - checksBefore) * 1e9 / Double(elapsedNs)
            let cpuMsPerSecond = Double(cpuTicks(keeld.pid) - ticksBefore) * 1000 / Double(ticksPerSecond) * 1e9 / Double(elapsedNs)

            var detections: [Nanoseconds] = []
            for round in 0..<cadence.rounds {
                // A different phase of the check cycle each round.
                usleep(UInt32(300_000 + (round * 613) % 1000 * 1000))
                let host = round % 4
                try keeldSetDiskState(disks.byHost[host], "offline")
                let failed = try kernelTestWait(every: 1000, timeoutNs: 60 * Time.nsPerSecond) {
                    try pathsActive(control, maps: names)[devices[host]] == false
                }
                try keeldSetDiskState(disks.byHost[host], "running")
                #expect(failed != nil, "\(cadence.name): \(disks.byHost[host]) failed: \(keeld.stderrTail())")
                if let failed { detections.append(failed) }
                let back = try kernelTestWait(every: 1000, timeoutNs: 60 * Time.nsPerSecond) {
                    try pathsActive(control, maps: names)[devices[host]] == true
                }
                #expect(back != nil, "\(cadence.name): \(disks.byHost[host]) reinstated: \(keeld.stderrTail())")
            }
            detections.sort()
            table.append("| \(cadence.name) | \(String(format: "%.1f", checksPerSecond)) | \(String(format: "%.1f", cpuMsPerSecond)) | "
                + "\(percentile(detections, 0)) / \(percentile(detections, 50)) / \(percentile(detections, 90)) / \(percentile(detections, 100)) | \(detections.count) |")
        }
        print("offline -> failed without I/O, by healthy-path cadence (VM, TCG):\n" + table.joined(separator: "\n"))
    }
}
