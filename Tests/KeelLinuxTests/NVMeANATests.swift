// NVMe paths: discovery of namespaces through their controllers, the ANA answers' decoding, and
// the threaded query runner's bounds (a controller that never answers).
import Foundation
import Glibc
import Synchronization
import Testing
import KeelCore
@testable import KeelLinux

/// An Identify Controller page with the ANA fields set.
private func controllerPage(reportsANA: Bool, groupsOnly: Bool = false, groups: UInt32 = 128, namespaces: UInt32 = 1024) -> [UInt8] {
    var page = [UInt8](repeating: 0, count: NVMeANA.identifyBytes)
    page[76] = reportsANA ? 0x0b : 0x03
    page[343] = groupsOnly ? 0x5f : 0x1f
    for i in 0..<4 {
        page[348 + i] = UInt8(truncatingIfNeeded: groups >> (8 * i))
        page[540 + i] = UInt8(truncatingIfNeeded: namespaces >> (8 * i))
    }
    return page
}

/// An ANA log: a header, then each group's descriptor and namespace list.
private func anaLog(_ groups: [(id: UInt32, state: UInt8, nsids: [UInt32])]) -> [UInt8] {
    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    var log: [UInt8] = [7, 0, 0, 0, 0, 0, 0, 0, UInt8(groups.count), 0, 0, 0, 0, 0, 0, 0]
    for group in groups {
        var descriptor = le32(group.id) + le32(UInt32(group.nsids.count)) + [UInt8](repeating: 0, count: 8)
        descriptor += [group.state] + [UInt8](repeating: 0, count: 15)
        log += descriptor + group.nsids.flatMap(le32)
    }
    return log
}

@Suite struct NVMeANATests {
    @Test func identifyPagesGiveTheANAFacts() {
        let facts = NVMeANA.controllerFacts(controllerPage(reportsANA: true))
        #expect(facts == NVMeANA.ControllerFacts(reportsANA: true, groupsOnly: false, groupCount: 128, namespacesMax: 1024))
        #expect(NVMeANA.controllerFacts(controllerPage(reportsANA: false))?.reportsANA == false)
        #expect(NVMeANA.controllerFacts([UInt8](repeating: 0xff, count: 100)) == nil, "a short page is no answer")
        var namespace = [UInt8](repeating: 0, count: NVMeANA.identifyBytes)
        namespace[92] = 3
        #expect(NVMeANA.groupID(identifyNamespace: namespace) == 3)
        #expect(NVMeANA.groupID(identifyNamespace: [1, 2, 3]) == nil)
    }

    @Test func theLogIsAskedLongEnoughAndNeverBeyondItsCap() {
        let withLists = NVMeANA.ControllerFacts(reportsANA: true, groupsOnly: false, groupCount: 128, namespacesMax: 1024)
        #expect(NVMeANA.logLength(withLists) == 16 + 128 * 32 + 1024 * 4)
        var groupsOnly = withLists
        groupsOnly.groupsOnly = true
        #expect(NVMeANA.logLength(groupsOnly) == 16 + 128 * 32)
        let huge = NVMeANA.ControllerFacts(reportsANA: true, groupsOnly: false, groupCount: .max, namespacesMax: .max)
        #expect(NVMeANA.logLength(huge) == NVMeANA.logBytesMax)
        #expect(NVMeANA.logLength(huge) % 4 == 0)
    }

    @Test func aNamespaceStateIsFoundByItsIdElseByItsGroup() {
        let log = anaLog([(1, 0x01, [1, 2]), (2, 0x02, [3]), (3, 0x03, [])])
        #expect(NVMeANA.state(log: log, nsid: 1, groupID: 1) == 0x01)
        #expect(NVMeANA.state(log: log, nsid: 3, groupID: 9) == 0x02, "listed in group 2 whatever its identify said")
        #expect(NVMeANA.state(log: log, nsid: 7, groupID: 3) == 0x03, "a log without lists: by group")
        #expect(NVMeANA.state(log: log, nsid: 7, groupID: 0) == nil)
        #expect(NVMeANA.state(log: log, nsid: 7, groupID: 9) == nil)
        // Counts that claim more than the log holds are not followed past its end.
        var lying = anaLog([(1, 0x02, [5])])
        lying[8] = 0xff
        lying[20] = 0xff
        lying[21] = 0xff
        #expect(NVMeANA.state(log: lying, nsid: 5, groupID: 0) == 0x02)
        #expect(NVMeANA.state(log: Array(lying.prefix(20)), nsid: 5, groupID: 1) == nil)
        #expect(NVMeANA.state(log: [], nsid: 1, groupID: 1) == nil)
    }

    @Test func statesGiveMultipathToolsPriorities() {
        #expect([0x01, 0x02, 0x03, 0x04, 0x0f, 0x00, 0x07, 0x81].map { NVMeANA.priority(state: $0) } == [50, 10, 5, 1, 0, 0, 0, 50])
    }

    @Test func aControllerThatNeverAnswersCostsOneWaitAndIsNotAskedAgainUntilItReturns() throws {
        let release = Atomic<Bool>(false)
        let asked = Atomic<Int>(0)
        let queries = NVMeANAQueries { path, _ in
            asked.wrappingAdd(1, ordering: .relaxed)
            if path.hasSuffix("hung") {
                while !release.load(ordering: .acquiring) { usleep(1_000) }
                return .failed(-EIO)
            }
            return path.hasSuffix("n1") ? .state(0x01) : .notReported
        }
        let start = LogClock.nowNs()
        let answers = queries.run([("nvme0n1", "/dev/nvme0n1"), ("nvme1n2", "/dev/nvme1n2"), ("nvme2n1", "/dev/hung")],
                                  timeoutMs: 1_000, waitNs: 300 * Time.nsPerMs)
        let waitedNs = LogClock.nowNs() - start
        #expect(answers == ["nvme0n1": .state(0x01), "nvme1n2": .notReported])
        #expect(waitedNs >= 300 * Time.nsPerMs)
        #expect(queries.orphanKeys == ["nvme2n1"])
        // Asked again while its first question is out: not sent, no wait for it.
        let again = queries.run([("nvme2n1", "/dev/hung")], timeoutMs: 1_000, waitNs: 5 * Time.nsPerSecond)
        #expect(again.isEmpty)
        #expect(asked.load(ordering: .relaxed) == 3)
        release.store(true, ordering: .releasing)
        let deadline = LogClock.nowNs() + 5 * Time.nsPerSecond
        while !queries.orphanKeys.isEmpty && LogClock.nowNs() < deadline { usleep(1_000) }
        #expect(queries.orphanKeys.isEmpty)
        #expect(queries.run([("nvme2n1", "/dev/hung")], timeoutMs: 1_000, waitNs: 5 * Time.nsPerSecond) == ["nvme2n1": .failed(-EIO)])
    }

    @Test func aDeviceThatIsNotNVMeAnswersWithAnError() {
        // A regular file refuses the passthrough ioctl: an answer carrying the errno, no crash.
        let file = NSTemporaryDirectory() + "keel-ana-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: file, contents: Data(count: 4096))
        defer { try? FileManager.default.removeItem(atPath: file) }
        guard case .failed(let code) = NVMeANAQueries.askController(devicePath: file, timeoutMs: 1_000) else {
            Issue.record("a regular file answered ANA")
            return
        }
        #expect(code < 0)
        #expect(NVMeANAQueries.askController(devicePath: file + "-absent", timeoutMs: 1_000) == .failed(-ENOENT))
    }

    @Test func namespaceNamesAreTellApartFromControllerPathsAndPartitions() {
        #expect(SysfsDiscovery.isNVMeNamespaceName("nvme0n1"))
        #expect(SysfsDiscovery.isNVMeNamespaceName("nvme12n345"))
        #expect(!SysfsDiscovery.isNVMeNamespaceName("nvme0c1n1"))
        #expect(!SysfsDiscovery.isNVMeNamespaceName("nvme0n1p2"))
        #expect(!SysfsDiscovery.isNVMeNamespaceName("nvme0"))
        #expect(!SysfsDiscovery.isNVMeNamespaceName("nvmen1"))
        #expect(!SysfsDiscovery.isNVMeNamespaceName("sda"))
    }

    /// `block/nvme<C>n<N>` with `device` -> the controller (native multipath off) or the
    /// subsystem (on), as the kernel lays them out.
    private func addNamespace(_ fixture: SysfsFixture, name: String, controller: String, dev: String, cntlid: String) {
        let sys = fixture.sysfs
        let controllerDir = sys + "/devices/virtual/nvme-fabrics/ctl/" + controller
        fixture.write(controllerDir + "/model", "Keel ANA test                           \n")
        fixture.write(controllerDir + "/serial", "keel-ana-test       \n")
        fixture.write(controllerDir + "/firmware_rev", "6.1.0-57\n")
        fixture.write(controllerDir + "/transport", "tcp\n")
        fixture.write(controllerDir + "/cntlid", cntlid + "\n")
        fixture.write(controllerDir + "/state", "live\n")
        fixture.write(controllerDir + "/subsysnqn", "keel-ana-test\n")
        let block = controllerDir + "/" + name
        fixture.write(block + "/dev", dev + "\n")
        fixture.write(block + "/size", "262144\n")
        fixture.write(block + "/nsid", "1\n")
        fixture.write(block + "/wwid", "uuid.4b45454c-414e-4154-8573-000000000001\n")
        fixture.link(block + "/device", to: "../../" + controller)
        fixture.link(sys + "/block/" + name, to: "../devices/virtual/nvme-fabrics/ctl/" + controller + "/" + name)
    }

    @Test func nvmeNamespacesThroughControllersArePathsOfOneLUN() throws {
        let fixture = SysfsFixture()
        addNamespace(fixture, name: "nvme0n1", controller: "nvme0", dev: "259:0", cntlid: "1")
        addNamespace(fixture, name: "nvme1n1", controller: "nvme1", dev: "259:1", cntlid: "2")
        let report = fixture.discovery.discoverAll()
        #expect(report.paths.map(\.kernelName) == ["nvme0n1", "nvme1n1"])
        let first = try #require(report.paths.first)
        #expect(first.device == DevNo(major: 259, minor: 0))
        #expect(first.address == SCSIAddress(host: 0, channel: 0, target: 1, lun: 1))
        #expect(first.vendor == "NVME")
        #expect(first.model == "Keel ANA test")
        #expect(first.revision == "6.1.0-57")
        #expect(first.serial == "keel-ana-test")
        #expect(first.sizeSectors == 262144)
        #expect(first.wwid == "uuid.4b45454c-414e-4154-8573-000000000001")
        #expect(first.wwidSource == .kernelWWID)
        #expect(first.transport == .nvmeTCP)
        #expect(first.transport.protocolName == "nvme:tcp")
        #expect(first.deviceState == .running)
        #expect(first.portKey == "nvme0")
        #expect(first.targetNodeName == "keel-ana-test")
        #expect(first.genericName == nil)
        #expect(report.pathsByWWID().count == 1)
        #expect(report.pathsByWWID().first?.paths.count == 2)
    }

    @Test func withUdevTheWWIDIsIDWWNAsMultipathToolsReadsIt() throws {
        let fixture = SysfsFixture()
        addNamespace(fixture, name: "nvme0n1", controller: "nvme0", dev: "259:0", cntlid: "1")
        fixture.write(fixture.udevData + "/b259:0", "E:ID_SERIAL=Keel ANA test_keel-ana-test\nE:ID_WWN=uuid.from-udev\n")
        let discovery = SysfsDiscovery(sysfsRoot: fixture.sysfs, udevDataRoot: fixture.udevData, uidAttributes: Configuration().uidAttributes)
        guard case .path(let path) = discovery.discoverPath(named: "nvme0n1") else {
            Issue.record("nvme0n1 is not a path")
            return
        }
        #expect(path.wwid == "uuid.from-udev")
        #expect(path.wwidSource == .udev)
    }

    @Test func aNativeMultipathHeadIsNotAPath() {
        let fixture = SysfsFixture()
        let sys = fixture.sysfs
        let head = sys + "/devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1"
        fixture.write(head + "/dev", "259:0\n")
        fixture.write(head + "/wwid", "uuid.1\n")
        fixture.link(head + "/device", to: "../../nvme-subsys0")
        fixture.link(sys + "/block/nvme0n1", to: "../devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1")
        #expect(fixture.discovery.discoverPath(named: "nvme0n1") == .notSCSIDisk)
    }

    @Test func nvmeMapsTakeTheBuiltInNVMeEntryAndDetectANAWithoutASCSIHandler() {
        var profile = Configuration().profile(wwid: "uuid.1", vendor: "NVME", product: "Keel ANA test")
        #expect(profile.checker == .none)
        #expect(Configuration().uidAttributes.attribute(devnode: "nvme0n1", vendor: "NVME", product: "Keel ANA test", revision: "1") == "ID_WWN")
        #expect(Configuration().uidAttributes.attribute(devnode: "sda", vendor: "Linux", product: "scsi_debug", revision: "1") == "ID_SERIAL")
        #expect(profile.policy.grouping == .groupByPrio)
        MultipathAssembler.useBioQueueMode(&profile)
        #expect(profile.features == "2 queue_mode bio")
        var queueing = profile
        queueing.features = "3 queue_if_no_path queue_mode rq"
        MultipathAssembler.useBioQueueMode(&queueing)
        #expect(queueing.features == "3 queue_if_no_path queue_mode bio")
        MultipathAssembler.applyDetection(&profile, prio: .ana, handler: nil, targetPortGroupKnown: true)
        #expect(profile.prio == .ana)
        #expect(profile.policy.grouping == .groupByPrio)
        #expect(profile.checker == .none, "detect_checker's tur is for SCSI ALUA")
        #expect(profile.hardwareHandler.isEmpty || profile.hardwareHandler == "0", "no alua handler on NVMe: \(profile.hardwareHandler)")
    }
}
