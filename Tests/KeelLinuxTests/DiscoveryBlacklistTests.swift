// The configuration's blacklist applied by discovery (BlacklistFilter) on fixture trees.
import Testing
import KeelCore
@testable import KeelLinux

@Suite("Discovery with the configuration's blacklist")
struct DiscoveryBlacklistTests {
    func fixtureWithTwoDisks() -> SysfsFixture {
        let f = SysfsFixture()
        var a = SysfsFixture.Disk(name: "sda", hctl: "0:0:0:0", dev: "8:0")
        a.page83 = VPDBytes.scsiDebugPage83(host: 0)
        f.add(a)
        var b = SysfsFixture.Disk(name: "sdb", hctl: "1:0:0:0", dev: "8:16")
        b.vendor = "NETAPP"
        b.model = "LUN C-Mode"
        b.page83 = VPDBytes.page83([VPDBytes.designator(type: 0x3, DiscoverySysfsTests.naa)])
        f.add(b)
        return f
    }

    @Test("a batch judged with one device verdict per vendor and product gives each path's own verdict")
    func batchVerdictsMatchOneByOne() throws {
        var config = Configuration()
        config.blacklist.devnodes = [try PosixRegex("^sd[c-d]$")]
        config.blacklist.devices = [Blacklist.DeviceRule(vendor: try PosixRegex("^IBM"), product: try PosixRegex("^2810"))]
        config.blacklistExceptions.devnodes = [try PosixRegex("^sdd$")]
        config.blacklist.wwids = [try PosixRegex("^3600a0980383044312d3f4a2b5a686f7e$")]
        let f = SysfsFixture()
        let kinds: [(vendor: String, model: String)] = [("Linux", "scsi_debug"), ("NETAPP", "LUN C-Mode"),
                                                         ("NETAPP", "Universal Xport"), ("IBM", "2810XIV"), ("IBM", "2145")]
        for i in 0..<20 {
            var d = SysfsFixture.Disk(name: "sd" + String(UnicodeScalar(UInt8(97 + i))), hctl: "\(i % 4):0:0:\(i)", dev: "8:\(16 * i)")
            d.vendor = kinds[i % kinds.count].vendor
            d.model = kinds[i % kinds.count].model
            d.page83 = i % 3 == 0 ? VPDBytes.page83([VPDBytes.designator(type: 0x3, DiscoverySysfsTests.naa)]) : VPDBytes.scsiDebugPage83(host: i % 4)
            f.add(d)
        }
        let paths = f.discovery.discoverAll().paths
        #expect(paths.count == 20)
        let filter = BlacklistFilter(configuration: config)
        let oneByOne = paths.map { filter.exclusionReason(for: $0) }
        #expect(filter.exclusionReasons(for: paths) == oneByOne)
        // Every kind of verdict is among them: allowed, devnode, excepted devnode, device, the
        // hardware table's product_blacklist, wwid.
        #expect(oneByOne.contains { $0 == nil })
        #expect(oneByOne.contains { $0?.contains("devnode") == true })
        #expect(oneByOne.contains { $0?.contains("Universal Xport") == true })
        #expect(oneByOne.contains { $0?.contains("2810") == true })
        #expect(oneByOne.contains { $0?.contains("wwid") == true })
        #expect(oneByOne[3] == nil || oneByOne[3]?.contains("devnode") == false, "sdd is excepted from the devnode rule")
    }

    @Test func devnodeEntryExcludesTheNamedDevice() throws {
        var config = Configuration()
        config.blacklist.devnodes = [try PosixRegex("^sda$")]
        let f = fixtureWithTwoDisks()
        let report = f.discovery.discoverAll(filter: BlacklistFilter(configuration: config))
        #expect(report.paths.map(\.kernelName) == ["sdb"])
        #expect(report.skipped.map(\.kernelName) == ["sda"])
        #expect(report.skipped.first?.reason == .excluded("blacklisted by devnode \"^sda$\""))
    }

    @Test func deviceEntryMatchesVendorAndModel() throws {
        var config = Configuration()
        config.blacklist.devices = [Blacklist.DeviceRule(vendor: try PosixRegex("NETAPP"), product: nil)]
        let f = fixtureWithTwoDisks()
        let report = f.discovery.discoverAll(filter: BlacklistFilter(configuration: config))
        #expect(report.paths.map(\.kernelName) == ["sda"])
    }

    @Test("blacklist protocol \"scsi:unspec\" leaves a disk of no known transport alone and keeps the FC and iSCSI ones")
    func protocolEntryMatchesTheDiscoveredTransport() throws {
        var config = Configuration()
        config.blacklist.protocols = [try PosixRegex("scsi:unspec")]
        let f = SysfsFixture()
        f.add(SysfsFixture.Disk(name: "sda", hctl: "0:0:0:0", dev: "8:0"))
        var fc = SysfsFixture.Disk(name: "sdb", hctl: "3:0:1:0", dev: "8:16")
        fc.transport = .fibreChannel(rport: "rport-3:0-1", nodeName: "0x50060e8007e2a600")
        f.add(fc)
        var iscsi = SysfsFixture.Disk(name: "sdc", hctl: "4:0:0:0", dev: "8:32")
        iscsi.transport = .iscsi(session: "session1", targetName: "iqn.2003-01.org.example:t1")
        f.add(iscsi)
        let report = f.discovery.discoverAll(filter: BlacklistFilter(configuration: config))
        #expect(report.paths.map(\.kernelName) == ["sdb", "sdc"])
        #expect(report.paths.map(\.transport.protocolName) == ["scsi:fcp", "scsi:iscsi"])
        #expect(report.skipped.map(\.kernelName) == ["sda"])
        #expect(report.skipped.first?.reason == .excluded("blacklisted by protocol \"scsi:unspec\""))
    }

    @Test func wwidEntryMatchesTheDiscoveredWWID() throws {
        var config = Configuration()
        config.blacklist.wwids = [try PosixRegex("^1Linux_scsi_debug")]
        let f = fixtureWithTwoDisks()
        let report = f.discovery.discoverAll(filter: BlacklistFilter(configuration: config))
        #expect(report.paths.map(\.kernelName) == ["sdb"])
    }

    @Test func requiredPropertyIsNotDemandedWithoutAUdevEntry() throws {
        var config = Configuration()
        config.blacklistExceptions.properties = [try PosixRegex("(SCSI_IDENT_|ID_WWN)")]
        let f = fixtureWithTwoDisks()
        let report = f.discovery.discoverAll(filter: BlacklistFilter(configuration: config))
        #expect(report.paths.count == 2)
    }

    @Test func requiredPropertyIsDemandedWhenUdevRecordedTheDevice() throws {
        var config = Configuration()
        config.blacklistExceptions.properties = [try PosixRegex("(SCSI_IDENT_|ID_WWN)")]
        let f = fixtureWithTwoDisks()
        f.addUdevEntry(dev: "8:0", ["ID_SERIAL": "1Linux_scsi_debug_2000", "ID_WWN": "0x33333330000007d0"])
        f.addUdevEntry(dev: "8:16", ["ID_SERIAL": "3600a0980383044312d3f4a2b5a686f7e"])
        let report = f.discovery.discoverAll(filter: BlacklistFilter(configuration: config))
        #expect(report.paths.map(\.kernelName) == ["sda"])
        #expect(report.skipped.first?.reason == .excluded(BlacklistVerdict.missingRequiredProperty.description))
    }
}
