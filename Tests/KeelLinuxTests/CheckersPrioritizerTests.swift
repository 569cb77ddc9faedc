// Prioritizer parsing and checker-timeout selection, over sysfs fixture trees in a temp dir.
import Foundation
import KeelCore
import KeelLinux
import Testing

/// A throw-away sysfs tree with one SCSI device, reachable by H:C:T:L and by block name.
private struct CheckerSysfsFixture {
    let root: String

    init(hctl: String = "2:0:0:0", block: String = "sdc", accessState: String?, preferredPath: String?, timeout: String?) throws {
        root = try checkerTemporaryDirectory("keel-sysfs")
        let device = root + "/devices/pseudo_0/adapter0/host2/target2:0:0/" + hctl
        let manager = FileManager.default
        try manager.createDirectory(atPath: device, withIntermediateDirectories: true)
        try manager.createDirectory(atPath: root + "/class/scsi_device/" + hctl, withIntermediateDirectories: true)
        try manager.createDirectory(atPath: root + "/block/" + block, withIntermediateDirectories: true)
        try manager.createSymbolicLink(atPath: root + "/class/scsi_device/" + hctl + "/device", withDestinationPath: device)
        try manager.createSymbolicLink(atPath: root + "/block/" + block + "/device", withDestinationPath: device)
        if let accessState { try accessState.write(toFile: device + "/access_state", atomically: true, encoding: .utf8) }
        if let preferredPath { try preferredPath.write(toFile: device + "/preferred_path", atomically: true, encoding: .utf8) }
        if let timeout { try timeout.write(toFile: device + "/timeout", atomically: true, encoding: .utf8) }
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}

@Suite struct CheckersPrioritizerTests {
    @Test func constPrioritizerIsOne() {
        #expect(ConstPrioritizer().priority() == 1)
    }

    @Test(arguments: [
        ("active/optimized\n", 50), ("active/non-optimized\n", 10), ("lba-dependent\n", 5), ("standby\n", 1),
        ("unavailable\n", 0), ("offline\n", 0), ("transitioning\n", 0),
    ])
    func accessStateGivesMultipathToolsPriority(_ text: String, _ priority: Int) {
        #expect(ALUAPrioritizer.priority(accessState: text, preferredPath: "0\n") == priority)
    }

    @Test func unknownAccessStateIsUndefinedForALUA() {
        #expect(ALUAPrioritizer.priority(accessState: "active/weird\n", preferredPath: nil) == nil)
    }

    @Test func preferredPortAdds80UnlessAlreadyOptimized() {
        #expect(ALUAPrioritizer.priority(accessState: "active/non-optimized", preferredPath: "1\n") == 90)
        #expect(ALUAPrioritizer.priority(accessState: "standby", preferredPath: "1\n") == 81)
        #expect(ALUAPrioritizer.priority(accessState: "active/optimized", preferredPath: "1\n") == 50)
        #expect(ALUAPrioritizer.priority(accessState: "active/optimized", preferredPath: "1\n", exclusivePreferredBit: true) == 130)
    }

    @Test func sysfsPrioritizerMatchesByPrefixAndGivesZeroForUnknownStates() {
        #expect(SysfsPrioritizer.priority(accessState: "active/optimized\n", preferredPath: "0") == 50)
        #expect(SysfsPrioritizer.priority(accessState: "standby", preferredPath: "1") == 81)
        #expect(SysfsPrioritizer.priority(accessState: "transitioning\n", preferredPath: nil) == 0)
        #expect(SysfsPrioritizer.priority(accessState: "something else", preferredPath: nil) == 0)
    }

    @Test func aluaReadsTheFixtureTreeByHCTLAndByBlockName() throws {
        let fixture = try CheckerSysfsFixture(accessState: "active/non-optimized\n", preferredPath: "1\n", timeout: nil)
        defer { fixture.remove() }
        let prioritizer = ALUAPrioritizer(sysfsRoot: fixture.root)
        #expect(prioritizer.priority(hctl: "2:0:0:0") == 90)
        #expect(prioritizer.priority(blockDevice: "sdc") == 90)
        #expect(prioritizer.priority(hctl: "9:0:0:0") == nil)
    }

    @Test func sysfsPrioritizerReadsTheFixtureTree() throws {
        let fixture = try CheckerSysfsFixture(accessState: "standby\n", preferredPath: nil, timeout: nil)
        defer { fixture.remove() }
        #expect(SysfsPrioritizer(sysfsRoot: fixture.root).priority(blockDevice: "sdc") == 1)
    }

    @Test func missingAccessStateIsUndefined() throws {
        let fixture = try CheckerSysfsFixture(accessState: nil, preferredPath: nil, timeout: nil)
        defer { fixture.remove() }
        #expect(ALUAPrioritizer(sysfsRoot: fixture.root).priority(blockDevice: "sdc") == nil)
        #expect(SysfsPrioritizer(sysfsRoot: fixture.root).priority(blockDevice: "sdc") == nil)
    }
}

@Suite struct CheckersTimeoutTests {
    @Test func configuredTimeoutWins() throws {
        let fixture = try CheckerSysfsFixture(accessState: nil, preferredPath: nil, timeout: "45\n")
        defer { fixture.remove() }
        #expect(CheckerTimeout.select(configuredSeconds: 7, sysfsRoot: fixture.root, blockDevice: "sdc") == 7 * Time.nsPerSecond)
    }

    @Test func deviceTimeoutFromSysfsWhenNotConfigured() throws {
        let fixture = try CheckerSysfsFixture(accessState: nil, preferredPath: nil, timeout: "45\n")
        defer { fixture.remove() }
        #expect(CheckerTimeout.select(configuredSeconds: nil, sysfsRoot: fixture.root, blockDevice: "sdc") == 45 * Time.nsPerSecond)
    }

    @Test func thirtySecondsWhenNeitherSays() throws {
        let fixture = try CheckerSysfsFixture(accessState: nil, preferredPath: nil, timeout: nil)
        defer { fixture.remove() }
        #expect(CheckerTimeout.select(configuredSeconds: nil, sysfsRoot: fixture.root, blockDevice: "sdc") == 30 * Time.nsPerSecond)
        #expect(CheckerTimeout.select(configuredSeconds: nil, sysfsRoot: fixture.root, blockDevice: "sdz") == 30 * Time.nsPerSecond)
    }

    @Test func unreadableDeviceTimeoutFallsBackToThirtySeconds() {
        #expect(CheckerTimeout.select(configuredSeconds: nil, deviceTimeoutAttribute: "abc\n") == 30 * Time.nsPerSecond)
        #expect(CheckerTimeout.select(configuredSeconds: nil, deviceTimeoutAttribute: "0\n") == 30 * Time.nsPerSecond)
        #expect(CheckerTimeout.select(configuredSeconds: nil, deviceTimeoutAttribute: "-5") == 30 * Time.nsPerSecond)
        #expect(CheckerTimeout.select(configuredSeconds: 0, deviceTimeoutAttribute: " 60 ") == 60 * Time.nsPerSecond)
    }
}
