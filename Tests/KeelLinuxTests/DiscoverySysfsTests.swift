// Sysfs discovery against fixture trees: which devices are paths, and every fact read about them.
import Foundation
import Testing
import KeelCore
@testable import KeelLinux

@Suite("Discovery from sysfs fixture trees")
struct DiscoverySysfsTests {
    static let naa: [UInt8] = [0x60, 0x0a, 0x09, 0x80, 0x38, 0x30, 0x44, 0x31, 0x2d, 0x3f, 0x4a, 0x2b, 0x5a, 0x68, 0x6f, 0x7e]

    func disk(_ name: String, _ hctl: String, _ dev: String, page83: [UInt8]? = VPDBytes.scsiDebugPage83(host: 0)) -> SysfsFixture.Disk {
        var d = SysfsFixture.Disk(name: name, hctl: hctl, dev: dev)
        d.page83 = page83
        return d
    }

    func onlyPath(_ fixture: SysfsFixture) throws -> DiscoveredPath {
        let report = fixture.discovery.discoverAll()
        try #require(report.paths.count == 1)
        return report.paths[0]
    }

    @Test func scsiDiskIsFoundWithItsAddressDeviceNumberAndInquiryStrings() throws {
        let f = SysfsFixture()
        f.add(disk("sda", "2:0:1:5", "8:0"))
        let p = try onlyPath(f)
        #expect(p.kernelName == "sda")
        #expect(p.device == DevNo(major: 8, minor: 0))
        #expect(p.address == SCSIAddress(host: 2, channel: 0, target: 1, lun: 5))
        #expect(p.vendor == "Linux" && p.model == "scsi_debug" && p.revision == "0191")
        #expect(p.sizeSectors == 131072)
        #expect(p.deviceState == .running)
        #expect(p.portKey == "2:0:1")
    }

    @Test("discovery over several threads gives the same report, in the same order, as one thread")
    func threadedDiscoveryMatchesSerial() {
        let f = SysfsFixture()
        for i in 0..<300 {
            var d = disk("sd\(i)", "\(i % 4):0:0:\(i / 4)", "8:\(i)", page83: i % 7 == 0 ? nil : VPDBytes.scsiDebugPage83(host: i % 4))
            if i % 50 == 3 { d.type = "5" }  // a cdrom among them: not a path
            f.add(d)
        }
        for i in 0..<20 { f.addPlainBlockDevice("loop\(i)", dev: "7:\(i)") }
        let serial = f.discovery.discoverAll()
        #expect(serial.paths.count > 250)
        for threads in [2, 3, 4, 8] {
            #expect(f.discovery.discoverAll(threads: threads) == serial, "\(threads) threads")
        }
        #expect(f.discovery.discoverAll(threads: 1) == serial)
        // A burst of uevents: some of the names, in their own order, one of them gone already.
        let names = (0..<300).reversed().filter { $0 % 3 != 1 }.map { "sd\($0)" } + ["sdgone", "loop3"]
        let expected = names.compactMap { name -> DiscoveredPath? in
            if case .path(let path) = f.discovery.discoverPath(named: name) { return path } else { return nil }
        }
        #expect(expected.count > 150)
        for threads in [1, 2, 8] {
            #expect(f.discovery.discover(names: names, threads: threads).paths == expected, "\(threads) threads")
        }
    }

    @Test func nonSCSIBlockDevicesAreIgnored() {
        let f = SysfsFixture()
        f.addPlainBlockDevice("loop0", dev: "7:0")
        f.addPlainBlockDevice("vda", dev: "254:0", deviceLinkTo: "devices/pci0000:00/0000:00:04.0/virtio2")
        var cdrom = disk("sr0", "1:0:0:0", "11:0")
        cdrom.type = "5"
        f.add(cdrom)
        let report = f.discovery.discoverAll()
        #expect(report.paths.isEmpty)
        #expect(report.skipped.isEmpty)
    }

    @Test func wwidFromNAADesignator() throws {
        let f = SysfsFixture()
        f.add(disk("sda", "0:0:0:0", "8:0", page83: VPDBytes.page83([VPDBytes.designator(type: 0x3, Self.naa)])))
        let p = try onlyPath(f)
        #expect(p.wwid == "3600a0980383044312d3f4a2b5a686f7e")
        #expect(p.wwidSource == .vpdPage83)
    }

    @Test func wwidFromEUI64Designator() throws {
        let f = SysfsFixture()
        f.add(disk("sda", "0:0:0:0", "8:0", page83: VPDBytes.page83([VPDBytes.designator(type: 0x2, [0, 0x25, 0x38, 0xab, 0x71, 0xb0, 0x3c, 0x21])])))
        #expect(try onlyPath(f).wwid == "2002538ab71b03c21")
    }

    @Test func wwidFromT10Designator() throws {
        let f = SysfsFixture()
        f.add(disk("sda", "0:0:0:0", "8:0", page83: VPDBytes.page83([VPDBytes.designator(type: 0x1, codeSet: 2, VPDBytes.ascii("VENDOR  PRODUCT         SERIAL42"))])))
        #expect(try onlyPath(f).wwid == "1VENDOR_PRODUCT_SERIAL42")
    }

    @Test func scsiDebugLUNHasMultipathToolsWWID() throws {
        let f = SysfsFixture()
        f.add(disk("sda", "0:0:0:0", "8:0"))
        #expect(try onlyPath(f).wwid == "1Linux_scsi_debug_2000")
    }

    @Test func kernelWWIDAttributeIsTheFallbackWithoutVPD83() throws {
        let f = SysfsFixture()
        var d = disk("sda", "0:0:0:0", "8:0", page83: nil)
        d.kernelWWID = "naa.600a098038304431"
        d.page80 = VPDBytes.page80("SN1")
        f.add(d)
        let p = try onlyPath(f)
        #expect(p.wwid == "3600a098038304431")
        #expect(p.wwidSource == .kernelWWID)
        #expect(p.vpdWWID == nil)
    }

    @Test func serialIsTheLastResortWWID() throws {
        let f = SysfsFixture()
        var d = disk("sda", "0:0:0:0", "8:0", page83: nil)
        d.page80 = VPDBytes.page80(" SN000123 ")
        f.add(d)
        let p = try onlyPath(f)
        #expect(p.wwid == "SN000123")
        #expect(p.wwidSource == .serial)
        #expect(p.serial == "SN000123")
    }

    @Test func malformedVPD83FallsBackInsteadOfFailing() throws {
        let f = SysfsFixture()
        var page = VPDBytes.page83([VPDBytes.designator(type: 0x3, Self.naa)])
        page.removeLast(4)
        var d = disk("sda", "0:0:0:0", "8:0", page83: page)
        d.kernelWWID = "eui.0011223344556677"
        f.add(d)
        let p = try onlyPath(f)
        #expect(p.wwid == "20011223344556677")
        #expect(p.wwidSource == .kernelWWID)
    }

    @Test func pathWithoutAnyIdentifierHasNoWWID() throws {
        let f = SysfsFixture()
        f.add(disk("sda", "0:0:0:0", "8:0", page83: nil))
        let p = try onlyPath(f)
        #expect(p.wwid == nil && p.wwidSource == nil)
    }

    @Test func udevIDSerialWinsWhenTheDatabaseHasIt() throws {
        let f = SysfsFixture()
        f.add(disk("sda", "0:0:0:0", "8:0"))
        f.addUdevEntry(dev: "8:0", ["ID_SERIAL": "1Linux_scsi_debug_2000", "ID_WWN": "0x33333330000007d0", "DEVTYPE": "disk"])
        let p = try onlyPath(f)
        #expect(p.wwidSource == .udev)
        #expect(p.wwid == "1Linux_scsi_debug_2000")
        #expect(p.udevProperties?["ID_WWN"] == "0x33333330000007d0")
        #expect(p.udevProperties?.count == 3)
    }

    @Test func absentUdevDatabaseIsNormal() throws {
        let f = SysfsFixture()
        f.add(disk("sda", "0:0:0:0", "8:0"))
        let p = try onlyPath(f)
        #expect(p.udevProperties == nil)
        #expect(p.wwidSource == .vpdPage83)
    }

    @Test func emptyUidAttributeIgnoresUdev() throws {
        let f = SysfsFixture()
        f.add(disk("sda", "0:0:0:0", "8:0"))
        f.addUdevEntry(dev: "8:0", ["ID_SERIAL": "something-else"])
        var discovery = f.discovery
        discovery.uidAttributes = UIDAttributes(defaults: "")
        guard case .path(let p) = discovery.discoverPath(named: "sda") else { Issue.record("no path"); return }
        #expect(p.wwid == "1Linux_scsi_debug_2000")
        #expect(p.wwidSource == .vpdPage83)
    }

    @Test("uid_attribute per path as multipath-tools picks it: uid_attrs by name prefix, overrides, the matching devices entry, defaults")
    func uidAttributeIsChosenPerPath() throws {
        let f = SysfsFixture()
        f.add(disk("sda", "0:0:0:0", "8:0"))
        var netapp = disk("sdb", "1:0:0:0", "8:16")
        netapp.vendor = "NETAPP"
        netapp.model = "LUN C-Mode"
        f.add(netapp)
        for dev in ["8:0", "8:16"] { f.addUdevEntry(dev: dev, ["ID_SERIAL": "serial-\(dev)", "ID_WWN": "wwn-\(dev)", "ID_UID": "uid-\(dev)"]) }
        func wwids(_ text: String) throws -> [String] {
            let configuration = try Configuration.load(files: [("multipath.conf", text)]).get().configuration
            var discovery = f.discovery
            discovery.uidAttributes = configuration.uidAttributes
            return discovery.discoverAll().paths.map { $0.wwid ?? "-" }
        }
        #expect(try wwids("") == ["serial-8:0", "serial-8:16"])
        let device = "devices {\n\tdevice {\n\t\tvendor \"NETAPP\"\n\t\tproduct \"LUN\"\n\t\tuid_attribute \"ID_WWN\"\n\t}\n}\n"
        #expect(try wwids(device) == ["serial-8:0", "wwn-8:16"], "the devices entry applies to its array only")
        #expect(try wwids("defaults {\n\tuid_attribute \"ID_UID\"\n}\n" + device) == ["uid-8:0", "wwn-8:16"])
        #expect(try wwids("overrides {\n\tuid_attribute \"ID_UID\"\n}\n" + device) == ["uid-8:0", "uid-8:16"], "overrides beat devices")
        #expect(try wwids("defaults {\n\tuid_attrs \"sdb:ID_WWN sd:ID_UID\"\n}\noverrides {\n\tuid_attribute \"ID_SERIAL\"\n}\n")
                == ["uid-8:0", "wwn-8:16"], "uid_attrs beat everything, first prefix first")
    }

    @Test func udevDatabaseParserKeepsOnlyPropertyLines() {
        let parsed = UdevDatabase.parse("S:disk/by-id/x\nE:ID_SERIAL=abc=def\nE:EMPTY=\nL:0\nE:=bad\nQ:5\n")
        #expect(parsed == ["ID_SERIAL": "abc=def", "EMPTY": ""])
    }

    @Test(arguments: [
        ("active/optimized", ALUAAccessState.activeOptimized),
        ("active/non-optimized", .activeNonOptimized),
        ("standby", .standby),
        ("unavailable", .unavailable),
        ("transitioning", .transitioning),
    ])
    func aluaAccessStateIsRead(word: String, state: ALUAAccessState) throws {
        let f = SysfsFixture()
        var d = disk("sda", "2:0:0:0", "8:0", page83: VPDBytes.scsiDebugPage83(host: 2))
        d.accessState = word
        d.preferredPath = "1"
        f.add(d)
        let p = try onlyPath(f)
        #expect(p.alua.accessState == state)
        #expect(p.alua.preferred == true)
        #expect(p.alua.targetPortGroup == 0x0300)
        #expect(p.alua.relativeTargetPort == 1)
    }

    @Test func pathWithoutALUAHandlerHasNoAccessState() throws {
        let f = SysfsFixture()
        f.add(disk("sda", "0:0:0:0", "8:0", page83: VPDBytes.page83([VPDBytes.designator(type: 0x3, Self.naa)])))
        let p = try onlyPath(f)
        #expect(p.alua == ALUAInfo())
    }

    @Test(arguments: [("offline", SCSIDeviceState.offline), ("blocked", .blocked), ("transport-offline", .transportOffline), ("weird", .other("weird"))])
    func deviceStateIsRead(word: String, state: SCSIDeviceState) throws {
        let f = SysfsFixture()
        var d = disk("sdb", "0:0:0:1", "8:16")
        d.state = word
        f.add(d)
        #expect(try onlyPath(f).deviceState == state)
    }

    @Test func fourHostsOfOneLUNShareOneWWID() {
        let f = SysfsFixture()
        for h in 0..<4 {
            f.add(disk("sd" + String(UnicodeScalar(UInt8(97 + h))), "\(h):0:0:0", "8:\(h * 16)", page83: VPDBytes.scsiDebugPage83(host: h)))
        }
        let report = f.discovery.discoverAll()
        #expect(report.paths.count == 4)
        let groups = report.pathsByWWID()
        #expect(groups.count == 1)
        #expect(groups.first?.wwid == "1Linux_scsi_debug_2000")
        #expect(Set(report.paths.map(\.address)).count == 4)
        #expect(Set(report.paths.map(\.portKey)).count == 4)
        #expect(Set(report.paths.compactMap(\.alua.targetPortGroup)) == [0x100, 0x200, 0x300, 0x400])
    }

    @Test func fibreChannelNodeNameComesFromTheRemotePort() throws {
        let f = SysfsFixture()
        var d = disk("sda", "3:0:1:0", "8:0")
        d.transport = .fibreChannel(rport: "rport-3:0-1", nodeName: "0x50060e8007e2a600")
        f.add(d)
        let p = try onlyPath(f)
        #expect(p.transport == .fibreChannel)
        #expect(p.targetNodeName == "0x50060e8007e2a600")
        #expect(p.nodeNameSource == .transport)
        #expect(p.transportObject == "rport-3:0-1")
    }

    @Test("transport names for the operator: FC port names from fc_host and the remote port, the adapter as the host's PCIe port, iSCSI's initiator address")
    func transportNamesAreReadAsMultipathdReadsThem() {
        let f = SysfsFixture()
        let sys = f.sysfs
        f.write(sys + "/class/fc_host/host3/node_name", "0x20000000c9a1b2c3\n")
        f.write(sys + "/class/fc_host/host3/port_name", "0x10000000c9a1b2c3\n")
        f.write(sys + "/class/fc_remote_ports/rport-3:0-1/port_name", "0x50060e8007e2a612\n")
        let port = sys + "/devices/pci0000:00/0000:00:1c.0"
        f.write(port + "/0000:03:00.0/host3/scsi_host/host3/proc_name", "lpfc\n")
        f.link(port + "/driver", to: sys + "/bus/pci/drivers/pcieport")
        f.link(port + "/0000:03:00.0/driver", to: sys + "/bus/pci/drivers/lpfc")
        f.link(sys + "/class/scsi_host/host3", to: port + "/0000:03:00.0/host3/scsi_host/host3")
        let fc = TransportNames.read(sysfsRoot: sys, host: 3, transport: .fibreChannel, transportObject: "rport-3:0-1")
        #expect(fc.hostWWNN == "0x20000000c9a1b2c3")
        #expect(fc.hostWWPN == "0x10000000c9a1b2c3")
        #expect(fc.targetWWPN == "0x50060e8007e2a612")
        #expect(fc.hostAdapter == "0000:00:1c.0", "the nearest ancestor bound to pcieport, not the HBA itself")
        // An FC path whose fc_host is gone: unknown, not undefined.
        let lost = TransportNames.read(sysfsRoot: sys, host: 4, transport: .fibreChannel, transportObject: "rport-4:0-0")
        #expect(lost.hostWWNN == "[unknown]" && lost.hostWWPN == "[unknown]" && lost.targetWWPN == "[unknown]")
        #expect(lost.hostAdapter == "[undef]")
        f.write(sys + "/class/iscsi_host/host5/ipaddress", "192.0.2.7\n")
        let iscsi = TransportNames.read(sysfsRoot: sys, host: 5, transport: .iscsi, transportObject: "session1")
        #expect(iscsi.hostAdapter == "192.0.2.7")
        #expect(iscsi.hostWWNN == "[undef]" && iscsi.targetWWPN == "[undef]")
        #expect(TransportNames.read(sysfsRoot: sys, host: 3, transport: .unspecified, transportObject: "") == TransportNames(),
                "scsi_debug and other unknown transports: every name undefined")
    }

    @Test("a disk under a USB root hub is USB, named by its nearest usb-subsystem parent; others are not probed as USB")
    func usbDiskIsFoundByItsParents() throws {
        let f = SysfsFixture()
        var d = disk("sda", "6:0:0:0", "8:0")
        d.transport = .usb(port: "2-1")
        f.add(d)
        let p = try onlyPath(f)
        #expect(p.transport == .usb)
        #expect(p.targetNodeName == "2-1:1.0")
        // A plain disk next to a subsystem link that says usb is not USB: no usbN hub above it.
        let g = SysfsFixture()
        g.add(disk("sdb", "1:0:0:0", "8:16"))
        g.link(g.sysfs + "/devices/platform/subsystem", to: g.sysfs + "/bus/usb")
        #expect(try onlyPath(g).transport == .unspecified)
    }

    @Test func transportTimeoutsAreWrittenToTheRemotePortAndHostAndRefusalsReported() throws {
        let f = SysfsFixture()
        var d = disk("sda", "3:0:1:0", "8:0")
        d.transport = .fibreChannel(rport: "rport-3:0-1", nodeName: "0x50060e8007e2a600")
        f.add(d)
        let port = f.sysfs + "/class/fc_remote_ports/rport-3:0-1"
        f.write(port + "/fast_io_fail_tmo", "off\n")
        f.write(port + "/dev_loss_tmo", "60\n")
        f.write(f.sysfs + "/class/scsi_host/host3/eh_deadline", "off\n")
        let p = try onlyPath(f)
        // no_path_retry 12 at a 5 s polling interval: dev_loss_tmo at least 60 s; fast 5.
        let timeouts = TransportTimeouts(fastIOFail: .seconds(5), devLoss: .seconds(30), ehDeadline: .seconds(10),
                                         noPathRetry: .retries(12), pollingIntervalSeconds: 5)
        let writes = TransportTimeoutsWriter.apply(timeouts, to: p, sysfsRoot: f.sysfs)
        #expect(writes.allSatisfy { $0.errno == 0 }, "\(writes)")
        #expect(SysfsFiles.readText(port + "/fast_io_fail_tmo") == "5")
        #expect(SysfsFiles.readText(port + "/dev_loss_tmo") == "60", "already 60: left as it is")
        #expect(SysfsFiles.readText(f.sysfs + "/class/scsi_host/host3/eh_deadline") == "10")
        // A path whose remote port has no such attribute: the refusal names it.
        try FileManager.default.removeItem(atPath: port + "/dev_loss_tmo")
        let refused = TransportTimeoutsWriter.apply(TransportTimeouts(fastIOFail: nil, devLoss: .seconds(90), ehDeadline: nil,
                                                                      noPathRetry: .fail, pollingIntervalSeconds: 5),
                                                    to: p, sysfsRoot: f.sysfs)
        #expect(refused.map(\.errno) == [ENOENT])
        #expect(refused.first?.attribute.hasSuffix("/dev_loss_tmo") == true)
    }

    @Test func anISCSISessionTakesFastIOFailAsItsRecoveryTimeout() throws {
        let f = SysfsFixture()
        var d = disk("sda", "4:0:0:0", "8:0")
        d.transport = .iscsi(session: "session7", targetName: "iqn.2003-01.org.linux-iscsi.array:tgt1")
        f.add(d)
        let session = f.sysfs + "/class/iscsi_session/session7/recovery_tmo"
        f.write(session, "120\n")
        let p = try onlyPath(f)
        #expect(p.transportObject == "session7")
        TransportTimeoutsWriter.apply(TransportTimeouts(fastIOFail: .seconds(5), devLoss: nil, ehDeadline: nil,
                                                        noPathRetry: .queue, pollingIntervalSeconds: 5), to: p, sysfsRoot: f.sysfs)
        #expect(SysfsFiles.readText(session) == "5")
    }

    @Test func theKernelsLinkLayoutResolvesToTheDeviceAndItsTransport() throws {
        let f = SysfsFixture()
        f.kernelLayout = true
        var d = disk("sdab", "4:0:0:3", "65:176")
        d.transport = .iscsi(session: "session7", targetName: "iqn.2003-01.org.linux-iscsi.array:tgt1")
        f.add(d)
        let p = try onlyPath(f)
        #expect(p.kernelName == "sdab")
        #expect(p.device == DevNo(major: 65, minor: 176))
        #expect(p.transport == .iscsi)
        #expect(p.transportObject == "session7")
        #expect(p.targetNodeName == "iqn.2003-01.org.linux-iscsi.array:tgt1")
    }

    @Test func sysfsLinksResolveLexically() {
        #expect(SysfsFiles.lexicallyNormalized("/sys/block/../devices/platform/host4/session7/target4:0:0/4:0:0:3/block/sdab/../../../4:0:0:3")
                == "/sys/devices/platform/host4/session7/target4:0:0/4:0:0:3")
        #expect(SysfsFiles.lexicallyNormalized("/a//b/./c/") == "/a/b/c")
        #expect(SysfsFiles.lexicallyNormalized("/../..") == "/")
    }

    @Test func aSysfsAttributeIsReadWhole() throws {
        let f = SysfsFixture()
        let small = f.sysfs + "/class/x/attr", large = f.sysfs + "/class/x/bin"
        f.write(small, "running\n")
        let bytes = (0..<6000).map { UInt8($0 & 0xff) }
        f.write(large, bytes)
        #expect(SysfsFiles.readText(small) == "running")
        #expect(try SysfsFiles.readBytes(large) == bytes, "a file over a page is read to its end")
        #expect(try SysfsFiles.readBytes(large, limit: 100) == Array(bytes[0..<100]))
    }

    @Test func iscsiNodeNameIsTheSessionTargetName() throws {
        let f = SysfsFixture()
        var d = disk("sda", "4:0:0:0", "8:0")
        d.transport = .iscsi(session: "session7", targetName: "iqn.2003-01.org.linux-iscsi.array:tgt1")
        f.add(d)
        let p = try onlyPath(f)
        #expect(p.transport == .iscsi)
        #expect(p.targetNodeName == "iqn.2003-01.org.linux-iscsi.array:tgt1")
    }

    @Test func sasNodeNameIsTheSASAddress() throws {
        let f = SysfsFixture()
        var d = disk("sda", "5:0:0:0", "8:0")
        d.transport = .sas(address: "0x5000c500a1b2c3d4")
        f.add(d)
        let p = try onlyPath(f)
        #expect(p.transport == .sas)
        #expect(p.targetNodeName == "0x5000c500a1b2c3d4")
    }

    @Test func unknownTransportDerivesNodeNameFromTheTargetDeviceDesignator() throws {
        let f = SysfsFixture()
        f.add(disk("sda", "0:0:0:0", "8:0"))
        let p = try onlyPath(f)
        #expect(p.transport == .unspecified)
        #expect(p.targetNodeName == "352222220000007cd")
        #expect(p.nodeNameSource == .vpdTargetDevice)
    }

    @Test func serialComesFromVPD80() throws {
        let f = SysfsFixture()
        var d = disk("sda", "0:0:0:0", "8:0")
        d.page80 = VPDBytes.page80("2000")
        f.add(d)
        #expect(try onlyPath(f).serial == "2000")
    }

    @Test func filterExcludesWithItsReason() {
        struct NoScsiDebug: DiscoveryFilter {
            func exclusionReason(for path: DiscoveredPath) -> String? {
                path.model == "scsi_debug" ? "device vendor \"Linux\" product \"scsi_debug\"" : nil
            }
        }
        let f = SysfsFixture()
        f.add(disk("sda", "0:0:0:0", "8:0"))
        var other = disk("sdb", "1:0:0:0", "8:16", page83: VPDBytes.page83([VPDBytes.designator(type: 0x3, Self.naa)]))
        other.model = "LUN C-Mode"
        f.add(other)
        let report = f.discovery.discoverAll(filter: NoScsiDebug())
        #expect(report.paths.map(\.kernelName) == ["sdb"])
        #expect(report.skipped == [SkippedDevice(kernelName: "sda", reason: .excluded("device vendor \"Linux\" product \"scsi_debug\""))])
    }

    @Test func diskWithoutDeviceNumberIsSkippedWithReason() throws {
        let f = SysfsFixture()
        f.add(disk("sda", "0:0:0:0", "8:0"))
        try FileManager.default.removeItem(atPath: f.sysfs + "/block/sda/dev")
        #expect(f.discovery.discoverAll().skipped == [SkippedDevice(kernelName: "sda", reason: .noDeviceNumber)])
    }

    @Test func missingSysfsRootFindsNothing() {
        let report = SysfsDiscovery(sysfsRoot: "/nonexistent-keel-sysfs").discoverAll()
        #expect(report.paths.isEmpty && report.skipped.isEmpty)
    }
}
