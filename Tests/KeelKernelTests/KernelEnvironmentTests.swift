// Real-kernel smoke tests: the VM gives Keel device-mapper, the multipath target and scsi_debug paths.
import Foundation
import Testing

/// What every other real-kernel suite builds on: after Tools/kernel-tests' prelude the guest has
/// device-mapper with the multipath target, and scsi_debug turns N SCSI hosts into N paths to one
/// logical unit. Runs only inside the VM (KEEL_KERNEL_TESTS=1).
@Suite(
    .enabled(if: ProcessInfo.processInfo.environment["KEEL_KERNEL_TESTS"] == "1"),
    .timeLimit(.minutes(2))
)
struct KernelEnvironmentTests {
    @Test func deviceMapperControlNodeExistsAfterPrelude() throws {
        let attributes = try FileManager.default.attributesOfItem(atPath: "/dev/mapper/control")
        #expect(attributes[.type] as? FileAttributeType == .typeCharacterSpecial)
        let misc = try String(contentsOfFile: "/proc/misc", encoding: .utf8)
        #expect(misc.split(separator: "\n").contains { $0.hasSuffix(" device-mapper") })
    }

    @Test func multipathTargetIsRegisteredWithDeviceMapper() throws {
        #expect(FileManager.default.fileExists(atPath: "/sys/module/dm_multipath"))
        let targets = try guestShell("dmsetup targets")
        #expect(targets.split(separator: "\n").contains { $0.hasPrefix("multipath ") })
    }

    @Test func fourScsiDebugHostsGiveFourPathsToOneLogicalUnit() throws {
        let disks = try loadScsiDebug(hosts: 4)
        defer { _ = try? guestShell("keel_scsi_debug_unload") }

        try #require(disks.count == 4)
        let hosts = try disks.map { try scsiHost(of: $0) }
        #expect(Set(hosts).count == 4)
        let wwids = try disks.map { try String(contentsOfFile: "/sys/block/\($0)/device/wwid", encoding: .utf8) }
        #expect(Set(wwids).count == 1)
        let designators = try disks.map { disk in
            logicalUnitDesignators(inPage83: try sysfsBytes("/sys/block/\(disk)/device/vpd_pg83"))
        }
        #expect(!designators[0].isEmpty)
        #expect(designators.allSatisfy { $0 == designators[0] })
    }

    @Test func unloadingScsiDebugRemovesItsDisks() throws {
        let disks = try loadScsiDebug(hosts: 2)
        try #require(disks.count == 2)

        _ = try guestShell("keel_scsi_debug_unload")

        #expect(!FileManager.default.fileExists(atPath: "/sys/module/scsi_debug"))
        for disk in disks {
            #expect(!FileManager.default.fileExists(atPath: "/sys/block/\(disk)"))
        }
    }
}

/// A failed guest shell command, with its status and error output.
private struct GuestShellError: Error, CustomStringConvertible {
    let command: String
    let status: Int32
    let standardError: String
    var description: String { "`\(command)` exited \(status): \(standardError)" }
}

/// Runs `command` in bash with Tools/guest/keel-guest.sh sourced; returns its standard output.
private func guestShell(_ command: String) throws -> String {
    let library = try #require(
        ProcessInfo.processInfo.environment["KEEL_GUEST_LIB"], "KEEL_GUEST_LIB is set by Tools/kernel-tests")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-c", "source \"$1\" && \(command)", "bash", library]
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw GuestShellError(
            command: command, status: process.terminationStatus,
            standardError: String(decoding: errorData, as: UTF8.self))
    }
    return String(decoding: outputData, as: UTF8.self)
}

/// Loads scsi_debug with one LUN behind `hosts` SCSI hosts; returns its sd disks once probed.
private func loadScsiDebug(hosts: Int) throws -> [String] {
    let listing = try guestShell("keel_scsi_debug \(hosts) && keel_sd_disks")
    return listing.split(separator: "\n").map(String.init)
}

/// The SCSI host number of an sd disk: the H of the H:C:T:L its device link ends in.
private func scsiHost(of disk: String) throws -> Int {
    let device = try FileManager.default.destinationOfSymbolicLink(atPath: "/sys/block/\(disk)/device")
    let hctl = device.split(separator: "/").last ?? ""
    return try #require(hctl.split(separator: ":").first.flatMap { Int($0) })
}

/// The raw bytes of a sysfs binary attribute.
private func sysfsBytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// The designation descriptors (header included) of a VPD page 0x83 whose association is the
/// logical unit (0): what names the LUN itself. The others name the port and differ per path.
private func logicalUnitDesignators(inPage83 page: [UInt8]) -> [[UInt8]] {
    guard page.count >= 4, page[1] == 0x83 else { return [] }
    let end = min(page.count, 4 + (Int(page[2]) << 8 | Int(page[3])))
    var designators: [[UInt8]] = []
    var offset = 4
    while offset + 4 <= end {
        let next = offset + 4 + Int(page[offset + 3])
        guard next <= end else { break }
        let association = (page[offset + 1] >> 4) & 0x3
        if association == 0 { designators.append(Array(page[offset..<next])) }
        offset = next
    }
    return designators
}
