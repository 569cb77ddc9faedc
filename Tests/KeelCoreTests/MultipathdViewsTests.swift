// multipathd's grammar and output shapes: synonyms and keyword order, format wildcards, the
// topology tree, and JSON that parses with the keys libdmmp requires.
import Foundation
import KeelCore
import Testing

private func path(_ dev: String, _ minor: Int, hcil: String, dm: String = "active", chk: String = "ready", prio: Int = 50) -> PathView {
    PathView(hcil: hcil, dev: dev, devT: "8:\(minor)", dmState: dm, checkerState: chk, devState: "running", priority: prio, checker: "tur",
             wwid: "36001405a", vendor: "LIO-ORG", product: "disk", map: "mpatha")
}

private let sample = MapView(
    name: "mpatha", wwid: "36001405a", sysfs: "dm-0", sizeSectors: 16384, features: "1 queue_if_no_path", hardwareHandler: "1 alua",
    queueing: "on", failback: "immediate", vendor: "LIO-ORG", product: "disk",
    groups: [
        GroupView(selector: "service-time 0", priority: 50, dmState: "active",
                  paths: [path("sda", 0, hcil: "0:0:0:0"), path("sdd", 48, hcil: "3:0:0:0")]),
        GroupView(selector: "service-time 0", priority: 1, dmState: "enabled",
                  paths: [path("sdc", 32, hcil: "2:0:0:0", dm: "failed", chk: "faulty", prio: 1)]),
    ])

@Suite struct MultipathdGrammarTests {
    @Test func synonymsAndKeywordOrderGiveTheSameRequest() throws {
        #expect(try ControlGrammar.parse("list paths").get() == .showPaths)
        #expect(try ControlGrammar.parse("show multipaths").get() == .showMaps)
        #expect(try ControlGrammar.parse("show multipath mpatha topology").get() == .showTopology(map: "mpatha"))
        #expect(try ControlGrammar.parse("show topology").get() == .showTopology(map: nil))
        #expect(try ControlGrammar.parse("list maps json").get() == .showJSON(map: nil))
        #expect(try ControlGrammar.parse("show map mpatha json").get() == .showJSON(map: "mpatha"))
        #expect(try ControlGrammar.parse("show paths format \"%d %t %T\"").get() == .showPathsFormat("%d %t %T", raw: false))
        #expect(try ControlGrammar.parse("show paths raw format %d").get() == .showPathsFormat("%d", raw: true))
        #expect(try ControlGrammar.parse("switch map mpatha group 2").get() == .switchGroup(map: "mpatha", group: 2))
        #expect(try ControlGrammar.parse("switchgroup group 2 map mpatha").get() == .switchGroup(map: "mpatha", group: 2))
        #expect(try ControlGrammar.parse("disablequeueing maps").get() == .disableQueueingAll)
        #expect(try ControlGrammar.parse("exit").get() == .quit)
        #expect(try ControlGrammar.parse("reconfigure all").get() == .reconfigure)
        #expect(try ControlGrammar.parse("remove map mpatha").get() == .delMap("mpatha"))
        #expect(try ControlGrammar.parse("del multipaths").get() == .delMaps)
        #expect(try ControlGrammar.parse("add map 3600a0980").get() == .addMap("3600a0980"))
        #expect(try ControlGrammar.parse("add path sdc").get() == .addPath("sdc"))
        #expect(try ControlGrammar.parse("remove path 8:32").get() == .delPath("8:32"))
        #expect(try ControlGrammar.parse("resume multipath mpatha").get() == .resumeMap("mpatha"))
        #expect(try ControlGrammar.parse("resize map mpatha").get() == .resizeMap("mpatha"))
        #expect(try ControlGrammar.parse("reset map mpatha stats").get() == .resetStats(map: "mpatha"))
        #expect(try ControlGrammar.parse("reset maps stats").get() == .resetStats(map: nil))
        #expect(try ControlGrammar.parse("show map mpatha format \"%n %S\"").get() == .showMapFormat(map: "mpatha", format: "%n %S", raw: false))
        #expect(try ControlGrammar.parse("list multipath mpatha raw format %n").get() == .showMapFormat(map: "mpatha", format: "%n", raw: true))
        #expect(try ControlGrammar.parse("show map mpatha format %n").get().readOnly)
        #expect(try ControlGrammar.parse("reset map mpatha").get() == .reassignMap("mpatha"))
        #expect(try ControlGrammar.parse("reset maps").get() == .unsupported("reset maps"))
        #expect(try ControlGrammar.parse("key 0x12 setprkey multipath mpatha").get() == .setPRKey(map: "mpatha", key: "0x12"))
        #expect(try ControlGrammar.parse("setprhold map mpatha").get() == .unsupported("setprhold map"))
        #expect(try ControlGrammar.parse("reload multipath mpatha").get() == .reloadMap("mpatha"))
        #expect(try ControlGrammar.parse("forcequeueing daemon").get() == .forceQueueingDaemon)
        #expect(try ControlGrammar.parse("restorequeueing daemon").get() == .restoreQueueingDaemon)
        #expect(try !ControlGrammar.parse("forcequeueing daemon").get().readOnly)
        #expect(try ControlGrammar.parse("suspend map mpatha").get() == .suspendMap("mpatha"))
        for change in ["add path sdc", "del path sdc", "add map m", "del maps", "suspend map m", "resume map m", "resize map m",
                       "reset maps stats", "reset map m"] {
            #expect(try !ControlGrammar.parse(change).get().readOnly, "\(change) is for root only")
        }
    }

    @Test func onlyShowAndListAreForEveryUser() throws {
        #expect(try ControlGrammar.parse("show maps json").get().readOnly)
        #expect(try !ControlGrammar.parse("fail path sdb").get().readOnly)
        #expect(try !ControlGrammar.parse("reconfigure").get().readOnly)
        #expect(try !ControlGrammar.parse("del map mpatha").get().readOnly)
    }

    @Test func malformedCommandsAreRefusedWithAReason() {
        for bad in ["show", "show paths format", "switchgroup map mpatha group zero", "show show", "fail path", "show paths \"unclosed",
                    "list maps banana", "switchgroup map m group 0"] {
            guard case .failure(let error) = ControlGrammar.parse(bad) else {
                Issue.record("'\(bad)' was accepted")
                continue
            }
            #expect(!error.description.isEmpty)
        }
    }
}

@Suite struct MultipathdViewsTests {
    @Test func pathsTableHasMultipathdsHeaderAndAlignedColumns() {
        let text = MultipathdViews.paths(sample.paths)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0] == "hcil    dev dev_t pri dm_st  chk_st dev_st  next_check")
        #expect(lines[1] == "0:0:0:0 sda 8:0   50  active ready  running -")
        #expect(lines[3] == "2:0:0:0 sdc 8:32  1   failed faulty running -")
        #expect(MultipathdViews.paths(sample.paths, format: "%d %t", raw: true) == "sda active\nsdd active\nsdc failed\n")
    }

    @Test("show map X format: that map's line, no header, padded as in the whole table; raw unpadded; unknown map nil")
    func oneMapsLine() {
        var other = sample
        other.name = "mpathlongername"
        other.wwid = "36001405b"
        let maps = [other, sample]
        #expect(MultipathdViews.map("mpatha", in: maps, format: "%n %S") == "mpatha          8.0M\n")
        #expect(MultipathdViews.map("36001405a", in: maps, format: "%n %S") == "mpatha          8.0M\n", "by WWID too")
        #expect(MultipathdViews.map("mpatha", in: maps, format: "%n %S", raw: true) == "mpatha 8.0M\n")
        #expect(MultipathdViews.map("mpathz", in: maps, format: "%n") == nil)
    }

    @Test("show path P: the path's device state, by name, /dev/ name or dev_t")
    func onePath() throws {
        #expect(try ControlGrammar.parse("show path sdc").get() == .showPath("sdc"))
        #expect(try ControlGrammar.parse("show path sdc").get().readOnly)
        #expect(MultipathdViews.path("sda", in: sample.paths) == "running\n")
        #expect(MultipathdViews.path("/dev/sdc", in: sample.paths) == "running\n")
        #expect(MultipathdViews.path("8:32", in: sample.paths) == MultipathdViews.path("sdc", in: sample.paths))
        #expect(MultipathdViews.path("sdz", in: sample.paths) == nil)
    }

    @Test("an unknown wildcard prints nothing, as multipathd's; a trailing % stays text, never a crash")
    func formatsWithUnknownOrTrailingPercentAreTextNotCrashes() {
        #expect(MultipathdViews.paths([sample.paths[0]], format: "%d %q 100%", raw: true) == "sda  100%\n")
        #expect(MultipathdViews.paths([sample.paths[0]], format: "%d|%Z|%t", raw: true) == "sda||active\n")
        #expect(MultipathdViews.paths([sample.paths[0]], format: "%", raw: true) == "%\n")
        #expect(MultipathdViews.maps([sample], format: "%n %S %f", raw: true) == "mpatha 8.0M 1 queue_if_no_path\n")
        #expect(MultipathdViews.paths([], format: "%d") == "")
    }

    @Test func topologyIsTheMultipathLLTree() {
        let expected = """
            mpatha (36001405a) dm-0 LIO-ORG,disk
            size=8.0M features='1 queue_if_no_path' hwhandler='1 alua' wp=rw
            |-+- policy='service-time 0' prio=50 status=active
            | |- 0:0:0:0 sda 8:0 active ready running
            | `- 3:0:0:0 sdd 8:48 active ready running
            `-+- policy='service-time 0' prio=1 status=enabled
              `- 2:0:0:0 sdc 8:32 failed faulty running

            """
        #expect(MultipathdViews.topology([sample]) == expected)
        var named = sample
        named.name = named.wwid
        #expect(MultipathdViews.topology([named]).hasPrefix("36001405a dm-0 LIO-ORG,disk\n"), "(wwid) is left out when it is the name")
    }

    @Test("sizes as multipathd prints them: one decimal below 10, none from 10 up")
    func sizesUseMultipathdsUnits() {
        #expect(MultipathdViews.size(2) == "1.0K")
        #expect(MultipathdViews.size(3) == "1.0K", "half KiB dropped first")
        #expect(MultipathdViews.size(16384) == "8.0M")
        #expect(MultipathdViews.size(2 * 1024 * 1024 * 3 / 2) == "1.5G")
        #expect(MultipathdViews.size(2 * 1024 * 100) == "100M")
        #expect(MultipathdViews.size(2 * 1024 * 1024 * 1024 * 20) == "20T")
        #expect(MultipathdViews.size(2 * 1023) == "1023K")
        #expect(MultipathdViews.size(0) == "0.0K")
    }

    @Test("every wildcard of multipathd's lists has a value; the newer ones print what multipathd prints for them")
    func everyWildcardIsKnown() throws {
        for letter in MultipathdViews.mapLetters { #expect(MultipathdViews.mapField(letter, sample) != nil, "map %\(letter)") }
        for letter in MultipathdViews.pathLetters { #expect(MultipathdViews.pathField(letter, sample.paths[0]) != nil, "path %\(letter)") }
        let wildcards = MultipathdViews.wildcards()
        #expect(wildcards.hasPrefix("multipath format wildcards:\n%n  name\n%w  uuid\n"))
        #expect(wildcards.contains("%N  host WWNN\n%n  target WWNN\n%R  host WWPN\n%r  target WWPN\n%a  host adapter\n"))
        #expect(wildcards.contains("%s  vend/prod\n"), "a map's %s is vendor and product only")
        var p = sample.paths[2]
        p.protocolName = "scsi:fcp"
        p.hostWWNN = "0x20000000c9a1b2c3"
        p.hostWWPN = "0x10000000c9a1b2c3"
        p.targetWWNN = "0x50060e8007e2a600"
        p.targetWWPN = "0x50060e8007e2a612"
        p.hostAdapter = "0000:00:1c.0"
        p.sizeSectors = 2 * 1024 * 1024 * 50
        p.maxSectorsKB = 1280
        p.targetPortGroup = 0x102
        p.revision = ""
        #expect(MultipathdViews.paths([p], format: "%P %N %R %n %r %a %S %k %A %I %G %g %s", raw: true)
                == "scsi:fcp 0x20000000c9a1b2c3 0x10000000c9a1b2c3 0x50060e8007e2a600 0x50060e8007e2a612 0000:00:1c.0 50G 1280 0x0102 ok -- [undef] LIO-ORG,disk\n")
        p.vendor = ""
        #expect(MultipathdViews.paths([p], format: "%s", raw: true) == "##,disk\n", "an empty inquiry field prints ##")
        #expect(MultipathdViews.paths([sample.paths[0]], format: "%P %N %a %k %A", raw: true) == "scsi:unspec [undef] [undef] n/a [undef]\n")
        var m = sample
        m.groupSwitches = 3
        m.queueingSeconds = 12
        m.queueingTimeouts = 2
        m.mapFailures = 1
        m.product = ""
        #expect(MultipathdViews.maps([m], format: "%1 %3 %4 %x %s %p %G %A|%k", raw: true) == "3 12 2 1 LIO-ORG,## ## -- |n/a\n")
        m.action = "create"
        #expect(MultipathdViews.maps([m], format: "%A", raw: true) == "create\n")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(MultipathdViews.json(map: m).utf8)) as? [String: Any])
        let map = try #require(object["map"] as? [String: Any])
        #expect(map["switch_grp"] as? Int == 3 && map["total_q_time"] as? Int == 12 && map["q_timeouts"] as? Int == 2)
    }

    @Test("%L: the LUN as the kernel's 8-byte SCSI LUN, 16-bit levels swapped; all ones without an address")
    func lunHexSwapsLevels() {
        #expect(MultipathdViews.lunHex("0:0:0:0") == "0x0000000000000000")
        #expect(MultipathdViews.lunHex("3:0:1:5") == "0x0005000000000000")
        #expect(MultipathdViews.lunHex("3:0:1:16384") == "0x4000000000000000")
        #expect(MultipathdViews.lunHex("3:0:1:\(0x0001_0002)") == "0x0002000100000000")
        #expect(MultipathdViews.lunHex("#:#:#:#") == "0xffffffffffffffff")
    }

    @Test("marginal paths and groups: %M and marginal_st say marginal, others normal")
    func marginalState() throws {
        var map = sample
        map.groups[1].paths[0].marginal = true
        map.groups[1].marginal = true
        #expect(MultipathdViews.paths(map.paths, format: "%d %M", raw: true) == "sda normal\nsdd normal\nsdc marginal\n")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(MultipathdViews.json(map: map).utf8)) as? [String: Any])
        let groups = try #require((object["map"] as? [String: Any])?["path_groups"] as? [[String: Any]])
        #expect(groups.map { $0["marginal_st"] as? String } == ["normal", "marginal"])
        #expect((groups[1]["paths"] as? [[String: Any]])?.first?["marginal_st"] as? String == "marginal")
        #expect(try ControlGrammar.parse("setmarginal path sdc").get() == .setMarginal(path: "sdc"))
        #expect(try ControlGrammar.parse("path sdc unsetmarginal").get() == .unsetMarginal(path: "sdc"))
        #expect(try ControlGrammar.parse("unsetmarginal multipath mpatha").get() == .unsetMarginalMap("mpatha"))
        #expect(try !ControlGrammar.parse("setmarginal path sdc").get().readOnly)
    }

    @Test func jsonParsesAndHasWhatLibdmmpRequires() throws {
        var odd = sample
        odd.name = "weird\"name\\with\ttab"
        for text in [MultipathdViews.json([sample, odd]), MultipathdViews.json([])] {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
            #expect(object["major_version"] as? Int == 0)
            let maps = try #require(object["maps"] as? [[String: Any]])
            for map in maps {
                #expect(!(map["uuid"] as? String ?? "").isEmpty && !(map["name"] as? String ?? "").isEmpty && map["sysfs"] is String)
                let groups = try #require(map["path_groups"] as? [[String: Any]])
                for group in groups {
                    #expect(["undef", "active", "disabled", "enabled"].contains(group["dm_st"] as? String ?? ""))
                    #expect(!(group["selector"] as? String ?? "").isEmpty && group["pri"] is Int && (group["group"] as? Int ?? 0) != 0)
                    for p in try #require(group["paths"] as? [[String: Any]]) {
                        #expect(!(p["dev"] as? String ?? "").isEmpty)
                        #expect(["undef", "ready", "faulty", "shaky", "ghost", "i/o pending", "i/o timeout", "delayed"].contains(p["chk_st"] as? String ?? ""))
                    }
                }
            }
        }
        let single = try #require(try JSONSerialization.jsonObject(with: Data(MultipathdViews.json(map: odd).utf8)) as? [String: Any])
        #expect((single["map"] as? [String: Any])?["name"] as? String == "weird\"name\\with\ttab", "escaped and read back")
    }
}
