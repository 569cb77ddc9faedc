// A hung subset of paths on the real kernel (VM only): two LUNs exported over iSCSI through two
// loopback portals (the kernel's own target, LIO), and one portal's session dropped, so the
// commands of its paths wait in the kernel (devices `blocked`) while the other portal's paths
// answer. This is the array-controller reboot of a firmware upgrade, or an iSCSI session in
// recovery, on a real SCSI stack: what scsi_debug cannot give, since its error options hang every
// device at once. Its own suite, so its iSCSI disks never meet the scsi_debug suites' keeld.
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Testing

private func ms(_ ns: Nanoseconds) -> String { "\(ns / 1_000_000) ms" }

/// fast_io_fail_tmo is also the iSCSI session's recovery_tmo: 60 s keeps the hung commands waiting
/// for the whole test. It goes in an iSCSI `protocol` subsection of `overrides` (which comes before
/// the overrides' own 5), with queueing: the hardware table's LIO-ORG entry says no_path_retry 12,
/// which makes dev_loss_tmo 12 s and so turns a fast_io_fail_tmo of 60 off (multipath-tools'
/// rule), leaving the session's own 120 s.
private let portalConfiguration = keeldTestConfiguration.replacingOccurrences(
    of: "    path_checker tur\n", with: "    path_checker tur\n    checker_timeout 3\n")
    + "overrides {\n    no_path_retry queue\n    fast_io_fail_tmo 5\n    protocol {\n        type scsi:iscsi\n        fast_io_fail_tmo 60\n    }\n}\n"

private func deviceState(_ disk: String) -> String {
    ((try? String(contentsOfFile: "/sys/block/\(disk)/device/state", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
}

@Suite("a hung iSCSI portal", .serialized, .enabled(if: keeldKernelTestsEnabled))
struct HungPortalKernelTests {
    @Test("one portal's commands hang: only its paths are failed, each hung check is its path's orphan, the other portal's paths are never failed and stay checked on schedule, the maps read through them; the portal back, every path is reinstated")
    func aHungPortalHoldsOnlyItsOwnPaths() throws {
        let disks = try portalDisks(try keeldGuestShell("keel_iscsi 2 2"))
        defer { _ = try? keeldGuestShell("keel_iscsi_down") }
        #expect(disks.count == 4, "\(disks)")
        let (keeld, names) = try keeldStartedWithMaps(portalConfiguration, maps: 2, usable: 2)
        defer { keeldStop(keeld, removing: names) }
        // keeld wrote the iSCSI subsection's fast_io_fail_tmo to both sessions (multipathd's reading of it for iSCSI).
        let sessions = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/iscsi_session")) ?? []
        let recovery = sessions.map {
            ((try? String(contentsOfFile: "/sys/class/iscsi_session/\($0)/recovery_tmo", encoding: .utf8)) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(recovery.count == 2 && recovery.allSatisfy { $0 == "60" }, "recovery_tmo: \(recovery)")

        let control = try DMControl()
        func states() throws -> [DevNo: Bool] { try pathsActive(control, maps: names) }
        let hung = disks.filter { $0.portal == 2 }
        let healthy = disks.filter { $0.portal == 1 }
        #expect(try states().values.allSatisfy { $0 }, "every path active before the hang")

        try keeldGuestShell("keel_iscsi_portal_hang 2")
        var healthyFailures: [String] = []
        var mostOrphans = 0
        var orphanRows: [String] = []
        var slowestAnswerNs: Nanoseconds = 0
        func shown() -> String { (try? keeld.command("show paths format \"%d %t %C\"")) ?? "(no answer)" }
        let failed = try kernelTestWait(every: 50_000, timeoutNs: 40 * Time.nsPerSecond) {
            let asked = kernelTestNowNs()
            let daemon = try keeld.command("show daemon")
            let paths = try keeld.command("show paths format \"%d %t %C\"")
            slowestAnswerNs = max(slowestAnswerNs, kernelTestNowNs() - asked)
            let orphans = keeldOrphanedChecks(daemon)
            if orphans > mostOrphans {
                mostOrphans = orphans
                orphanRows = paths.split(separator: "\n").map(String.init).filter { $0.hasSuffix("orphan") }
            }
            let now = try states()
            for path in healthy where now[path.device] != true { healthyFailures.append(path.disk) }
            return mostOrphans > 0 && hung.allSatisfy { now[$0.device] == false }
        }
        #expect(failed != nil, "the hung portal's paths failed and an orphan seen (most \(mostOrphans)): \(shown())")
        #expect(healthyFailures.isEmpty, "a path of the answering portal was failed: \(healthyFailures)")
        #expect(orphanRows.allSatisfy { row in hung.contains { row.hasPrefix($0.disk + " ") } }, "orphans: \(orphanRows)")
        #expect(!orphanRows.isEmpty, "show paths marks the orphaned paths")

        // The maps read through the answering portal while the other one hangs.
        for name in names {
            try keeldGuestShell("timeout 20 dd if=/dev/mapper/\(name) of=/dev/null bs=4096 count=16 iflag=direct 2>/dev/null")
        }
        // The answering portal's paths are still checked on schedule: one taken offline is failed
        // within a polling interval or so, and reinstated as soon as it runs again.
        let probe = try #require(healthy.first)
        try keeldSetDiskState(probe.disk, "offline")
        let probeFailed = try kernelTestWait(every: 50_000, timeoutNs: 20 * Time.nsPerSecond) { try states()[probe.device] == false }
        try keeldSetDiskState(probe.disk, "running")
        let probeBack = try kernelTestWait(every: 50_000, timeoutNs: 20 * Time.nsPerSecond) { try states()[probe.device] == true }
        #expect(probeFailed != nil && probeBack != nil, "\(probe.disk) offline -> failed \(probeFailed.map(ms) ?? "never"), running -> reinstated \(probeBack.map(ms) ?? "never")")
        // All of this happened while the hung portal's devices still held their commands.
        for path in hung {
            let state = deviceState(path.disk)
            #expect(state == "blocked", "\(path.disk) is \(state), not blocked: the proof above was not taken during the hang")
        }

        try keeldGuestShell("keel_iscsi_portal_answer 2")
        let back = try kernelTestWait(every: 50_000, timeoutNs: 60 * Time.nsPerSecond) { try states().values.allSatisfy { $0 } }
        #expect(back != nil, "paths after the portal answers again: \(shown())")
        let settled = kernelTestWait(every: 50_000, timeoutNs: 10 * Time.nsPerSecond) { (try? keeld.command("show daemon"))?.contains("orphaned checks 0") == true }
        #expect(settled != nil, "orphans left: \((try? keeld.command("show daemon")) ?? "(no answer)")")
        print("keeld with one of two iSCSI portals hung: its \(hung.count) paths failed after \(failed.map(ms) ?? "-"), at most \(mostOrphans) checks orphaned (\(orphanRows)), 0 of the \(healthy.count) answering paths failed; slowest show daemon + show paths \(ms(slowestAnswerNs)); during the hang \(probe.disk) offline -> failed \(probeFailed.map(ms) ?? "-"), running -> reinstated \(probeBack.map(ms) ?? "-"); portal back -> every path reinstated \(back.map(ms) ?? "-")")
    }

    @Test("keeld started while one portal hangs (a restart in the middle of a controller's firmware upgrade): it is ready without waiting on the hung devices, builds both maps, fails only the hung portal's paths and serves I/O through the other; the portal back, every path is reinstated")
    func startsWhileAPortalHangs() throws {
        let disks = try portalDisks(try keeldGuestShell("keel_iscsi 2 2"))
        defer { _ = try? keeldGuestShell("keel_iscsi_down") }
        #expect(disks.count == 4, "\(disks)")
        let hung = disks.filter { $0.portal == 2 }
        let healthy = disks.filter { $0.portal == 1 }
        try keeldGuestShell("keel_iscsi_portal_hang 2")
        let blocked = kernelTestWait(every: 50_000, timeoutNs: 30 * Time.nsPerSecond) { hung.allSatisfy { deviceState($0.disk) == "blocked" } }
        try #require(blocked != nil, "the hung portal's devices: \(hung.map { deviceState($0.disk) })")

        let started = kernelTestNowNs()
        let keeld = try KeeldDaemon(configuration: portalConfiguration)
        var names: [String] = []
        defer { keeldStop(keeld, removing: names) }
        try keeld.waitReady()
        let ready = kernelTestNowNs() - started
        let control = try DMControl()
        let failed = try kernelTestWait(every: 50_000, timeoutNs: 60 * Time.nsPerSecond) {
            names = keeld.maps().map(\.name)
            guard names.count == 2 else { return false }
            let now = try pathsActive(control, maps: names)
            return hung.allSatisfy { now[$0.device] == false } && healthy.allSatisfy { now[$0.device] == true }
        }
        let shown = (try? keeld.command("show paths format \"%d %t %C\"")) ?? "(no answer)"
        #expect(failed != nil, "maps \(names); paths: \(shown)\n\(keeld.stderrTail())")
        for name in names {
            try keeldGuestShell("timeout 20 dd if=/dev/mapper/\(name) of=/dev/null bs=4096 count=16 iflag=direct 2>/dev/null")
        }
        #expect(hung.allSatisfy { deviceState($0.disk) == "blocked" }, "still hung while the maps were built and read")
        try keeldGuestShell("keel_iscsi_portal_answer 2")
        let back = try kernelTestWait(every: 50_000, timeoutNs: 60 * Time.nsPerSecond) { try pathsActive(control, maps: names).values.allSatisfy { $0 } }
        #expect(back != nil, "paths after the portal answers again: \((try? keeld.command("show paths format \"%d %t %C\"")) ?? "(no answer)")")
        print("keeld started with one of two iSCSI portals hung: ready after \(ms(ready)), hung paths failed and answering paths active \(failed.map(ms) ?? "-") after ready (\(shown.split(separator: "\n").joined(separator: ", "))); portal back -> every path reinstated \(back.map(ms) ?? "-")")
    }
}
