// keel-path-claim's decision against sysfs fixture trees: every find_multipaths mode, the wwids
// file, siblings, an existing map, the blacklist, smart's wait, and what udev is told.
import Foundation
import Testing
import KeelCore
@testable import KeelLinux

@Suite("Claiming path devices for udev")
struct PathClaimTests {
    static let lunA = "36001405aaaaaaaaaaaaaaaaaaaaaaaaa"
    static let lunB = "36001405bbbbbbbbbbbbbbbbbbbbbbbbb"

    /// sdb and sdc lead to LUN A (the kernel's wwid agrees), sdd alone to LUN B.
    func fixture() -> SysfsFixture {
        let f = SysfsFixture()
        for (name, hctl, dev, wwid) in [("sdb", "1:0:0:0", "8:16", Self.lunA), ("sdc", "2:0:0:0", "8:32", Self.lunA),
                                        ("sdd", "3:0:0:0", "8:48", Self.lunB)] {
            var disk = SysfsFixture.Disk(name: name, hctl: hctl, dev: dev)
            disk.kernelWWID = "naa." + wwid.dropFirst()
            f.add(disk)
            f.addUdevEntry(dev: dev, ["ID_SERIAL": wwid])
        }
        f.addPlainBlockDevice("loop0", dev: "7:0")
        return f
    }

    func claim(_ f: SysfsFixture, _ config: String, known: [String] = []) throws -> PathClaim {
        let configuration = try Configuration.load(files: [(name: "multipath.conf", text: config)]).get().configuration
        return PathClaim(configuration: configuration, known: KnownWWIDs(text: known.map { "/\($0)/\n" }.joined()), discovery: f.discovery)
    }

    func isClaim(_ v: PathClaim.Verdict) -> Bool { if case .claim = v { true } else { false } }

    @Test("on: a WWID with two paths is claimed, a single path is not unless the wwids file lists it")
    func onMode() throws {
        let f = fixture()
        let c = try claim(f, "defaults {\n find_multipaths on\n}\n")
        #expect(c.verdict(device: "sdb", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false)
                == .claim("WWID \(Self.lunA) has 2 paths (sdb sdc)"))
        #expect(c.verdict(device: "sdd", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false)
                == .release("find_multipaths on: WWID \(Self.lunB) has one path"))
        let knowing = try claim(f, "defaults {\n find_multipaths on\n}\n", known: [Self.lunB])
        #expect(knowing.verdict(device: "sdd", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false)
                == .claim("WWID \(Self.lunB) is in the wwids file"))
    }

    @Test("with no daemon answering, on and smart claim only what the wwids file lists (as multipath -u); greedy claims all")
    func noDaemon() throws {
        let f = fixture()
        for mode in ["on", "smart"] {
            let c = try claim(f, "defaults {\n find_multipaths \(mode)\n}\n")
            #expect(c.verdict(device: "sdb", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false, daemonAnswers: false)
                    == .release("find_multipaths \(mode) with no multipath daemon answering: WWID \(Self.lunA) is not in the wwids file"))
            let knowing = try claim(f, "defaults {\n find_multipaths \(mode)\n}\n", known: [Self.lunA])
            #expect(isClaim(knowing.verdict(device: "sdb", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false, daemonAnswers: false)))
        }
        let greedy = try claim(f, "defaults {\n find_multipaths greedy\n}\n")
        #expect(isClaim(greedy.verdict(device: "sdd", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false, daemonAnswers: false)))
    }

    @Test("a daemon is seen on the abstract socket while it listens, and not before")
    func daemonSeen() throws {
        let name = "/keel-test/path-claim-\(getpid())"
        #expect(!PathClaim.multipathDaemonAnswers(socketName: name))
        let server = ControlServer()
        try server.listen(abstract: name, framing: .multipathd)
        #expect(PathClaim.multipathDaemonAnswers(socketName: name))
    }

    @Test("strict (the default) claims only what the wwids file lists, whatever the path count")
    func strictMode() throws {
        let f = fixture()
        let c = try claim(f, "")
        #expect(c.verdict(device: "sdb", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false)
                == .release("find_multipaths strict: WWID \(Self.lunA) is not in the wwids file"))
        let knowing = try claim(f, "", known: [Self.lunA])
        #expect(isClaim(knowing.verdict(device: "sdb", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false)))
    }

    @Test("greedy and off claim every path that is not blacklisted; the blacklist releases")
    func greedyAndBlacklist() throws {
        let f = fixture()
        for mode in ["greedy", "off"] {
            let c = try claim(f, "defaults {\n find_multipaths \(mode)\n}\n")
            #expect(c.verdict(device: "sdd", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false)
                    == .claim("find_multipaths \(mode == "off" ? "off" : "greedy"): every path is claimed"))
        }
        let listed = try claim(f, "defaults {\n find_multipaths greedy\n}\nblacklist {\n wwid \"^36001405b\"\n}\n")
        guard case .release(let why) = listed.verdict(device: "sdd", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false) else {
            Issue.record("a blacklisted WWID was claimed")
            return
        }
        #expect(why.hasPrefix("blacklisted: "))
    }

    @Test("a device that is not a SCSI disk, or missing, is released")
    func notADisk() throws {
        let c = try claim(fixture(), "defaults {\n find_multipaths greedy\n}\n")
        #expect(c.verdict(device: "loop0", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false) == .release("not a SCSI disk"))
        #expect(c.verdict(device: "sdz", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false) == .release("not a SCSI disk"))
    }

    @Test("a WWID the kernel has a multipath map of is claimed in every mode")
    func existingMap() throws {
        let f = fixture()
        f.addPlainBlockDevice("dm-0", dev: "253:0")
        f.write(f.sysfs + "/block/dm-0/dm/uuid", "mpath-\(Self.lunB)\n")
        let c = try claim(f, "")
        #expect(c.verdict(device: "sdd", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false)
                == .claim("map of WWID \(Self.lunB) exists"))
    }

    @Test("smart: a single path waits find_multipaths_timeout from its first event, then is released; two paths are claimed at once")
    func smartWaits() throws {
        let f = fixture()
        let c = try claim(f, "defaults {\n find_multipaths smart\n find_multipaths_timeout 10\n}\n")
        let first = c.verdict(device: "sdd", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false)
        #expect(first == .maybe(untilSeconds: 1010))
        #expect(PathClaim.udevProperties(first, nowSeconds: 1000) == "DM_MULTIPATH_DEVICE_PATH=2\nFIND_MULTIPATHS_WAIT_UNTIL=1010\nKEEL_WAIT_SECONDS=10\n")
        // A later event during the wait keeps the first deadline; after it the path is released.
        #expect(c.verdict(device: "sdd", nowSeconds: 1005, waitUntilSeconds: 1010, releasedBefore: false) == .maybe(untilSeconds: 1010))
        let after = c.verdict(device: "sdd", nowSeconds: 1010, waitUntilSeconds: 1010, releasedBefore: false)
        #expect(after == .release("find_multipaths smart: WWID \(Self.lunB) has one path"))
        #expect(PathClaim.udevProperties(after, nowSeconds: 1010) == "DM_MULTIPATH_DEVICE_PATH=0\n")
        #expect(isClaim(c.verdict(device: "sdb", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false)))
        #expect(PathClaim.udevProperties(.claim("x"), nowSeconds: 1000) == "DM_MULTIPATH_DEVICE_PATH=1\n")
    }

    @Test("a device released earlier and held by another driver since is not taken back")
    func releasedAndInUse() throws {
        let f = fixture()
        f.write(f.sysfs + "/block/sdb/holders/dm-3", "")
        let c = try claim(f, "defaults {\n find_multipaths on\n}\n")
        #expect(c.verdict(device: "sdb", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: true) == .release("in use since it was released"))
        #expect(isClaim(c.verdict(device: "sdb", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false)))
    }

    @Test("siblings are found without a kernel wwid too (every disk is then looked at whole)")
    func siblingsWithoutKernelWWID() throws {
        let f = SysfsFixture()
        for (name, hctl, dev) in [("sdb", "1:0:0:0", "8:16"), ("sdc", "2:0:0:0", "8:32")] {
            f.add(SysfsFixture.Disk(name: name, hctl: hctl, dev: dev))
            f.addUdevEntry(dev: dev, ["ID_SERIAL": Self.lunA])
        }
        let c = try claim(f, "defaults {\n find_multipaths on\n}\n")
        #expect(c.verdict(device: "sdc", nowSeconds: 1000, waitUntilSeconds: nil, releasedBefore: false)
                == .claim("WWID \(Self.lunA) has 2 paths (sdc sdb)"))
    }
}
