// Discovery and uevent intake against scsi_debug in the VM: 4 paths to one LUN, ALUA, delete/rescan.
import Foundation
import Testing
import KeelCore
@testable import KeelLinux

let discoveryKernelTestsEnabled = ProcessInfo.processInfo.environment["KEEL_KERNEL_TESTS"] == "1"

/// scsi_debug set up as RIG.md describes: 4 hosts, one target, one LUN, shared VPD identity.
enum ScsiDebugRig {
    static let hostCount = 4

    static func shell(_ command: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "\(command) exited \(p.terminationStatus)"])
        }
    }

    /// SCSI host numbers that belong to scsi_debug.
    static func hosts() -> [UInt32] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/scsi_host")) ?? []
        return names.compactMap { name -> UInt32? in
            let proc = (try? String(contentsOfFile: "/sys/class/scsi_host/\(name)/proc_name", encoding: .utf8)) ?? ""
            guard proc.trimmingCharacters(in: .whitespacesAndNewlines) == "scsi_debug" else { return nil }
            return UInt32(name.dropFirst(4))
        }.sorted()
    }

    static func scsiDebugPaths() -> [DiscoveredPath] {
        SysfsDiscovery().discoverAll().paths.filter { $0.model == "scsi_debug" }
    }

    /// Loads the modules once (no-op when scsi_debug is already there) and waits until every
    /// host's disk is visible and its ALUA state settled.
    static func ensureLoaded() throws -> [DiscoveredPath] {
        if !FileManager.default.fileExists(atPath: "/sys/module/scsi_debug") {
            try shell("modprobe sd_mod && modprobe sg && modprobe scsi_dh_alua && modprobe scsi_debug add_host=\(hostCount) num_tgts=1 max_luns=1 vpd_use_hostno=0 dev_size_mb=64")
        }
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline {
            let paths = scsiDebugPaths()
            if paths.count == hosts().count && paths.count > 0 && paths.allSatisfy({ $0.alua.accessState != nil && $0.alua.accessState != .unknown }) {
                return paths
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return scsiDebugPaths()
    }
}

@Suite("Discovery and uevents on scsi_debug (real kernel)", .serialized, .enabled(if: discoveryKernelTestsEnabled))
struct DiscoveryKernelTests {
    @Test func fourHostsGiveFourPathsWithOneWWID() throws {
        let paths = try ScsiDebugRig.ensureLoaded()
        for p in paths {
            print("discovered \(p.kernelName) \(p.device) \(p.address) state=\(p.deviceState) wwid=\(p.wwid ?? "-") (\(p.wwidSource?.rawValue ?? "-")) alua=\(p.alua.accessState?.rawValue ?? "-") tpg=\(p.alua.targetPortGroup.map { String($0) } ?? "-") serial=\(p.serial ?? "-") node=\(p.targetNodeName) port=\(p.portKey)")
        }
        #expect(paths.count == ScsiDebugRig.hostCount)
        #expect(Set(paths.compactMap(\.wwid)) == ["1Linux_scsi_debug_2000"])
        #expect(Set(paths.compactMap(\.vpdWWID)) == ["1Linux_scsi_debug_2000"])
        #expect(Set(paths.map(\.address)).count == paths.count)
        #expect(Set(paths.map(\.portKey)).count == paths.count)
        #expect(paths.allSatisfy { $0.deviceState == .running && $0.sizeSectors == 131072 && $0.vendor == "Linux" })
    }

    @Test func aluaStateFollowsTheHostNumber() throws {
        _ = try ScsiDebugRig.ensureLoaded()
        let expected: [ALUAAccessState] = [.activeOptimized, .activeNonOptimized, .standby]
        // Until the ALUA handler's first RTPG completes (it retries after the power-on unit
        // attention, ~2 s here) access_state reads a provisional "active/optimized".
        var paths = ScsiDebugRig.scsiDebugPaths()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && !paths.allSatisfy({ $0.alua.accessState == expected[Int($0.address.host % 3)] }) {
            Thread.sleep(forTimeInterval: 0.25)
            paths = ScsiDebugRig.scsiDebugPaths()
        }
        #expect(paths.count == ScsiDebugRig.hostCount)
        for p in paths {
            #expect(p.alua.accessState == expected[Int(p.address.host % 3)], "\(p.kernelName) on host \(p.address.host)")
            #expect(p.alua.targetPortGroup == UInt16((p.address.host + 1) & 0x7f) << 8)
        }
    }

    @Test func offlinedPathReportsOfflineState() throws {
        let paths = try ScsiDebugRig.ensureLoaded()
        let victim = try #require(paths.first)
        try ScsiDebugRig.shell("echo offline > /sys/block/\(victim.kernelName)/device/state")
        defer { try? ScsiDebugRig.shell("echo running > /sys/block/\(victim.kernelName)/device/state") }
        guard case .path(let p) = SysfsDiscovery().discoverPath(named: victim.kernelName) else {
            Issue.record("\(victim.kernelName) vanished")
            return
        }
        #expect(p.deviceState == .offline)
    }

    @Test func deletedPathGivesRemoveAndRescanGivesAdd() throws {
        let paths = try ScsiDebugRig.ensureLoaded()
        let victim = try #require(paths.max { $0.address.host < $1.address.host })
        let monitor = try UeventMonitor(source: .kernel)

        let deleteStart = Date()
        try ScsiDebugRig.shell("echo 1 > /sys/block/\(victim.kernelName)/device/delete")
        let removed = collectKernelEvents(monitor, timeoutMs: 30_000) {
            $0.contains { $0.action == .remove && $0.kernelName.description == victim.kernelName }
        }
        let removeEvent = try #require(removed.records.first { $0.action == .remove && $0.kernelName.description == victim.kernelName })
        print("remove \(victim.kernelName) seen after \(Date().timeIntervalSince(deleteStart)) s: \(removeEvent)")
        #expect(removeEvent.device == victim.device)
        #expect(ScsiDebugRig.scsiDebugPaths().count == paths.count - 1)

        let scanStart = Date()
        try ScsiDebugRig.shell("echo '- - -' > /sys/class/scsi_host/host\(victim.address.host)/scan")
        let added = collectKernelEvents(monitor, timeoutMs: 60_000) {
            $0.contains { $0.action == .add && $0.kernelName.hasPrefix("sd") }
        }
        let addEvent = try #require(added.records.first { $0.action == .add && $0.kernelName.hasPrefix("sd") })
        print("add \(addEvent.kernelName) seen after \(Date().timeIntervalSince(scanStart)) s: \(addEvent)")
        #expect(!removed.resyncNeeded && !added.resyncNeeded)

        let back = try ScsiDebugRig.ensureLoaded()
        #expect(back.count == paths.count)
        #expect(back.contains { $0.kernelName == addEvent.kernelName.description && $0.address.host == victim.address.host })
        let merged = UeventMerge.merge(UeventBatch(records: removed.records + added.records)) { _ in WWIDText("1Linux_scsi_debug_2000") }
        #expect(merged.wwidGroups.count == 1)
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "/run/udev/control")))
    func vpdWWIDEqualsUdevIDSerial() throws {
        _ = try ScsiDebugRig.ensureLoaded()
        // udevd finishes a rescanned path's database entry some time after the add uevent.
        var paths = ScsiDebugRig.scsiDebugPaths()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && !paths.allSatisfy({ $0.udevProperties?["ID_SERIAL"] != nil }) {
            Thread.sleep(forTimeInterval: 0.25)
            paths = ScsiDebugRig.scsiDebugPaths()
        }
        #expect(paths.count == ScsiDebugRig.hostCount)
        for p in paths {
            let serial = try #require(p.udevProperties?["ID_SERIAL"], "no udev entry for \(p.kernelName)")
            print("\(p.kernelName): udev ID_SERIAL=\(serial) ID_WWN=\(p.udevProperties?["ID_WWN"] ?? "-") keel vpd=\(p.vpdWWID ?? "-")")
            #expect(p.vpdWWID == serial)
            #expect(p.wwidSource == .udev)
        }
    }
}

/// Drains `monitor` until `done` holds or `timeoutMs` passes.
func collectKernelEvents(_ monitor: UeventMonitor, timeoutMs: Int, until done: ([UeventRecord]) -> Bool) -> UeventBatch {
    var batch = UeventBatch()
    let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
    while !done(batch.records) && Date() < deadline {
        if monitor.waitReadable(timeoutMs: 200) { monitor.drain(into: &batch) }
    }
    return batch
}
