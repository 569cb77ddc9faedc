// keel-path-claim's decision against sysfs fixture trees, with multipath -u's semantics: every
// find_multipaths mode, the wwids file, an existing map, the blacklist, disks in use, smart's
// siblings and wait, no daemon, and what udev is told.
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
        f.write(f.root + "/proc/self/mountinfo", "22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n")
        f.write(f.root + "/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n")
        return f
    }

    func claim(_ f: SysfsFixture, _ mode: String?, known: [String] = [], extra: String = "") throws -> PathClaim {
        let text = (mode.map { "defaults {\n find_multipaths \($0)\n}\n" } ?? "") + extra
        let configuration = try Configuration.load(files: [(name: "multipath.conf", text: text)]).get().configuration
        var claim = PathClaim(configuration: configuration, known: KnownWWIDs(text: known.map { "/\($0)/\n" }.joined()), discovery: f.discovery)
        claim.procRoot = f.root + "/proc"
        return claim
    }

    func ask(_ c: PathClaim, _ device: String, now: Int64 = 1000, waitUntil: Int64? = nil, daemon: PathClaim.Daemon = .answering) -> PathClaim.Verdict {
        c.verdict(device: device, nowSeconds: now, waitUntilSeconds: waitUntil, daemon: daemon)
    }

    func isClaim(_ v: PathClaim.Verdict) -> Bool { if case .claim = v { true } else { false } }
    func isRelease(_ v: PathClaim.Verdict) -> Bool { if case .release = v { true } else { false } }

    @Test("on, off and strict claim a WWID the wwids file lists, and nothing else before its map exists, even with two paths")
    func strictLikeModes() throws {
        let f = fixture()
        for mode in ["on", "off", "strict", nil] {
            let c = try claim(f, mode)
            #expect(ask(c, "sdb") == .release("find_multipaths \(mode ?? "strict"): WWID \(Self.lunA) is not in the wwids file and has no map"))
            let knowing = try claim(f, mode, known: [Self.lunB])
            #expect(ask(knowing, "sdd") == .claim("WWID \(Self.lunB) is in the wwids file"))
        }
    }

    @Test("a WWID the kernel has a multipath map of is claimed in every mode")
    func existingMap() throws {
        let f = fixture()
        f.addPlainBlockDevice("dm-0", dev: "253:0")
        f.write(f.sysfs + "/block/dm-0/dm/uuid", "mpath-\(Self.lunB)\n")
        for mode in ["on", "strict", "smart", "greedy"] {
            #expect(ask(try claim(f, mode), "sdd") == .claim("a map of WWID \(Self.lunB) exists"))
        }
    }

    @Test("greedy claims every disk that is not blacklisted or in use")
    func greedyAndBlacklist() throws {
        let f = fixture()
        #expect(ask(try claim(f, "greedy"), "sdd") == .claim("find_multipaths greedy: every disk is claimed"))
        let listed = try claim(f, "greedy", extra: "blacklist {\n wwid \"^36001405b\"\n}\n")
        guard case .release(let why) = ask(listed, "sdd") else {
            Issue.record("a blacklisted WWID was claimed")
            return
        }
        #expect(why.hasPrefix("blacklisted: "))
    }

    @Test("greedy and smart leave a disk in use alone: a holder, a mounted partition, swap")
    func inUse() throws {
        let f = fixture()
        f.write(f.sysfs + "/block/sdb/holders/dm-3", "")
        f.write(f.sysfs + "/block/sdc/sdc1/partition", "1\n")
        f.write(f.sysfs + "/block/sdc/sdc1/dev", "8:33\n")
        f.write(f.root + "/proc/self/mountinfo", "22 1 254:1 / / rw - ext4 /dev/vda1 rw\n40 22 8:33 / /data rw - xfs /dev/sdc1 rw\n")
        f.write(f.root + "/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/dev/sdd                                partition\t1024\t0\t-2\n")
        for mode in ["greedy", "smart"] {
            let c = try claim(f, mode)
            #expect(ask(c, "sdb") == .release("in use: sdb is held by dm-3"))
            #expect(ask(c, "sdc") == .release("in use: mounted on /data"))
            #expect(ask(c, "sdd") == .release("in use: swap on /dev/sdd"))
        }
        #expect(isClaim(ask(try claim(f, "strict", known: [Self.lunA]), "sdb")), "strict asks the wwids file only")
    }

    @Test("a device that is not a SCSI disk, or missing, is released")
    func notADisk() throws {
        let c = try claim(fixture(), "greedy")
        #expect(ask(c, "loop0") == .release("not a SCSI disk"))
        #expect(ask(c, "sdz") == .release("not a SCSI disk"))
    }

    @Test("smart: a second path claims at once; a single path waits find_multipaths_timeout from its first event, then is released")
    func smart() throws {
        let f = fixture()
        let c = try claim(f, "smart", extra: "defaults {\n find_multipaths_timeout 10\n}\n")
        #expect(ask(c, "sdb") == .claim("WWID \(Self.lunA) has 2 paths (sdb sdc)"))
        let first = ask(c, "sdd")
        #expect(first == .maybe(untilSeconds: 1010))
        #expect(PathClaim.udevProperties(first, nowSeconds: 1000) == "DM_MULTIPATH_DEVICE_PATH=2\nFIND_MULTIPATHS_WAIT_UNTIL=1010\nKEEL_WAIT_SECONDS=10\n")
        // A later event during the wait keeps the first deadline; after it the path is released.
        #expect(ask(c, "sdd", now: 1005, waitUntil: 1010) == .maybe(untilSeconds: 1010))
        let after = ask(c, "sdd", now: 1010, waitUntil: 1010)
        #expect(after == .release("find_multipaths smart: WWID \(Self.lunB) has one path, and the wait is over"))
        #expect(PathClaim.udevProperties(after, nowSeconds: 1010) == "DM_MULTIPATH_DEVICE_PATH=0\n")
        #expect(PathClaim.udevProperties(.claim("x"), nowSeconds: 1000) == "DM_MULTIPATH_DEVICE_PATH=1\n")
    }

    @Test("smart with a negative find_multipaths_timeout (the default, -10): 1 s for unknown hardware, 10 s for a device a hardware entry knows")
    func smartWaitFollowsTheHardwareEntry() throws {
        let f = fixture()
        #expect(ask(try claim(f, "smart"), "sdd") == .maybe(untilSeconds: 1001), "scsi_debug is in no hardware entry")
        let known = "devices {\n device {\n  vendor \"Linux\"\n  product \"scsi_debug\"\n  path_checker tur\n }\n}\n"
        #expect(ask(try claim(f, "smart", extra: known), "sdd") == .maybe(untilSeconds: 1010))
        #expect(ask(try claim(f, "smart", extra: known + "defaults {\n find_multipaths_timeout -20\n}\n"), "sdd") == .maybe(untilSeconds: 1020))
    }

    @Test("with no daemon running or enabled nothing is claimed; an enabled one counts as coming")
    func noDaemon() throws {
        let f = fixture()
        let greedy = try claim(f, "greedy", known: [Self.lunA])
        #expect(ask(greedy, "sdb", daemon: .absent) == .release("no multipath daemon is running or enabled"))
        #expect(isClaim(ask(greedy, "sdb", daemon: .enabled)))
    }

    @Test("a disk held by a multipath map stays claimed with no daemon, and in every mode")
    func heldByAMap() throws {
        let f = fixture()
        f.addPlainBlockDevice("dm-2", dev: "253:2")
        f.write(f.sysfs + "/block/dm-2/dm/uuid", "mpath-\(Self.lunA)\n")
        f.write(f.sysfs + "/block/sdb/holders/dm-2", "")
        f.addPlainBlockDevice("dm-5", dev: "253:5")
        f.write(f.sysfs + "/block/dm-5/dm/uuid", "LVM-abcdef\n")
        f.write(f.sysfs + "/block/sdd/holders/dm-5", "")
        for mode in ["strict", "greedy", "smart"] {
            let c = try claim(f, mode)
            #expect(ask(c, "sdb", daemon: .absent) == .claim("held by the multipath map dm-2"))
            #expect(!isClaim(ask(c, "sdd", daemon: .absent)), "an LVM holder is not a multipath map")
        }
    }

    @Test("a daemon is seen on the abstract socket while it listens; else an enabled keeld or multipathd unit")
    func daemonSeen() throws {
        let name = "/keel-test/path-claim-\(getpid())"
        let units = NSTemporaryDirectory() + "keel-units-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: units) }
        try FileManager.default.createDirectory(atPath: units + "/multi-user.target.wants", withIntermediateDirectories: true)
        #expect(PathClaim.daemon(socketName: name, systemdRoots: [units]) == .absent)
        #expect(FileManager.default.createFile(atPath: units + "/multi-user.target.wants/keeld.service", contents: nil))
        #expect(PathClaim.daemon(socketName: name, systemdRoots: [units]) == .enabled)
        let server = ControlServer()
        try server.listen(abstract: name, framing: .multipathd)
        #expect(PathClaim.daemon(socketName: name, systemdRoots: []) == .answering)
    }

    @Test("smart finds siblings without a kernel wwid too (every disk is then looked at whole)")
    func siblingsWithoutKernelWWID() throws {
        let f = SysfsFixture()
        for (name, hctl, dev) in [("sdb", "1:0:0:0", "8:16"), ("sdc", "2:0:0:0", "8:32")] {
            f.add(SysfsFixture.Disk(name: name, hctl: hctl, dev: dev))
            f.addUdevEntry(dev: dev, ["ID_SERIAL": Self.lunA])
        }
        f.write(f.root + "/proc/self/mountinfo", "")
        #expect(ask(try claim(f, "smart"), "sdc") == .claim("WWID \(Self.lunA) has 2 paths (sdc sdb)"))
    }
}
