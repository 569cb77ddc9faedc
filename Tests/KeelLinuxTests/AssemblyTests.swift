// MultipathAssembler's pure rules: user-friendly name suffixes and when a kernel table is Keel's own.
import KeelCore
import KeelLinux
import Testing

private func d(_ minor: UInt32) -> DevNo { DevNo(major: 8, minor: minor) }

/// What Keel loads for the rig's LUN: 3 groups by ALUA priority, no handler asked for.
private let wanted = MultipathTable(
    features: ["queue_if_no_path"], hardwareHandler: [], initialGroup: 1,
    groups: [
        .init(selector: "service-time", paths: [.init(device: d(0)), .init(device: d(48))]),
        .init(selector: "service-time", paths: [.init(device: d(16))]),
        .init(selector: "service-time", paths: [.init(device: d(32))]),
    ])

/// The kernel's table for it as `dmsetup table` shows it (RIG.md).
private func kernelTable() throws -> MultipathTable {
    try MultipathTable.parse("1 queue_if_no_path 1 alua 3 1 service-time 0 2 2 8:0 1 1 8:48 1 1 service-time 0 1 2 8:16 1 1 service-time 0 1 2 8:32 1 1")
}

@Suite struct AssemblyTests {
    @Test func friendlySuffixesCountLikeMultipathTools() {
        #expect(MultipathAssembler.friendlySuffix(0) == "a")
        #expect(MultipathAssembler.friendlySuffix(1) == "b")
        #expect(MultipathAssembler.friendlySuffix(25) == "z")
        #expect(MultipathAssembler.friendlySuffix(26) == "aa")
        #expect(MultipathAssembler.friendlySuffix(27) == "ab")
        #expect(MultipathAssembler.friendlySuffix(26 + 26 * 26) == "aaa")
    }

    @Test func kernelsPrintedTableMatchesWhatKeelLoads() throws {
        // Two path arguments, the attached alua handler, its current group: all the kernel's own view.
        #expect(MultipathAssembler.sameTable(kernel: try kernelTable(), wanted: wanted))
    }

    @Test func differentPathOrderIsNotTheSameTable() throws {
        var other = wanted
        other.groups[0].paths.reverse()
        #expect(!MultipathAssembler.sameTable(kernel: try kernelTable(), wanted: other))
    }

    @Test func missingQueueIfNoPathIsNotTheSameTable() throws {
        var other = wanted
        other.features = []
        #expect(!MultipathAssembler.sameTable(kernel: try kernelTable(), wanted: other))
    }

    @Test func differentGroupingIsNotTheSameTable() throws {
        var other = wanted
        other.groups = [.init(selector: "service-time", paths: [d(0), d(16), d(32), d(48)].map { .init(device: $0) })]
        #expect(!MultipathAssembler.sameTable(kernel: try kernelTable(), wanted: other))
    }

    @Test func anExplicitHandlerMustMatchTheKernels() throws {
        var other = wanted
        other.hardwareHandler = ["emc"]
        #expect(!MultipathAssembler.sameTable(kernel: try kernelTable(), wanted: other))
        other.hardwareHandler = ["alua"]
        #expect(MultipathAssembler.sameTable(kernel: try kernelTable(), wanted: other))
    }

    @Test func differentSelectorIsNotTheSameTable() throws {
        var other = wanted
        other.groups[1].selector = "round-robin"
        #expect(!MultipathAssembler.sameTable(kernel: try kernelTable(), wanted: other))
    }

    @Test func errorDescriptionNamesMapOperationAndErrno() {
        let error = AssemblyError(map: "mpatha", operation: .reload, errno: 22, detail: "bad table")
        #expect(error.description == "mpatha: reload: Invalid argument (errno 22): bad table")
    }
}

/// detect_prio and retain_attached_hw_handler, as multipathd 0.9.4 applies them.
@Suite struct DetectionTests {
    private func path(tpgs: UInt8?, accessState: ALUAAccessState?, handler: String?) -> DiscoveredPath {
        var p = DiscoveredPath(kernelName: "sdb", device: d(16), address: SCSIAddress(host: 1, channel: 0, target: 0, lun: 0), deviceState: .running)
        p.alua.tpgs = tpgs
        p.alua.accessState = accessState
        p.alua.attachedHandler = handler
        return p
    }

    @Test func aluaPathsGetSysfsWithTheKernelsStateAluaWithoutAndNoALUANothing() {
        #expect(MultipathAssembler.detectPrio(path(tpgs: 1, accessState: .activeOptimized, handler: "alua")) == .sysfs)
        #expect(MultipathAssembler.detectPrio(path(tpgs: 3, accessState: nil, handler: nil)) == .alua)
        #expect(MultipathAssembler.detectPrio(path(tpgs: 0, accessState: nil, handler: nil)) == nil)
        #expect(MultipathAssembler.detectPrio(path(tpgs: nil, accessState: .standby, handler: nil)) == nil, "no INQUIRY data: no guess")
    }

    @Test func detectionFillsOnlyWhatNobodySet() throws {
        func profile(_ text: String) throws -> MapProfile {
            let c = try Configuration.load(files: [(name: "multipath.conf", text: text)]).get().configuration
            var p = c.profile(wwid: "w1", vendor: "ACME", product: "disk")
            MultipathAssembler.applyDetection(&p, prio: .sysfs, handler: "alua")
            return p
        }
        let plain = try profile("")
        #expect(plain.prio == .sysfs && plain.hardwareHandler == "1 alua")
        let set = try profile("defaults {\n    prio const\n    hardware_handler \"0\"\n}\n")
        #expect(set.prio == .sysfs && set.hardwareHandler == "1 alua", "detection comes before the sections, as in multipath-tools")
        let off = try profile("defaults {\n    detect_prio no\n    retain_attached_hw_handler no\n}\n")
        #expect(off.prio == .const && off.hardwareHandler == "1 alua", "ALUA paths get the alua handler when nobody set one")
        let offSet = try profile("defaults {\n    detect_prio no\n    retain_attached_hw_handler no\n    prio const\n    hardware_handler \"0\"\n}\n")
        #expect(offSet.prio == .const && offSet.hardwareHandler == "0", "with detection off, the sections decide")
        var noALUA = try Configuration.load(files: [(name: "c", text: "")]).get().configuration.profile(wwid: "w", vendor: "v", product: "p")
        MultipathAssembler.applyDetection(&noALUA, prio: nil, handler: nil)
        #expect(noALUA.prio == .const && noALUA.hardwareHandler == "0")
    }

    @Test("group_by_tpg stands with prio alua or sysfs (detected or set), and gives way to failover otherwise, as in multipath-tools")
    func groupByTPGNeedsAnALUAPrioritizer() throws {
        func grouping(_ text: String, alua: Bool) throws -> (GroupingPolicy, fellBack: Bool) {
            let c = try Configuration.load(files: [(name: "multipath.conf", text: text)]).get().configuration
            var p = c.profile(wwid: "w1", vendor: "ACME", product: "disk")
            let fellBack = MultipathAssembler.applyDetection(&p, prio: alua ? .sysfs : nil, handler: nil)
            return (p.policy.grouping, fellBack)
        }
        let tpg = "defaults {\n    path_grouping_policy group_by_tpg\n}\n"
        #expect(try grouping(tpg, alua: true) == (.groupByTPG, false))
        #expect(try grouping(tpg, alua: false) == (.failover, true), "no ALUA: const prio, failover")
        #expect(try grouping("defaults {\n    path_grouping_policy group_by_tpg\n    detect_prio no\n    prio alua\n}\n", alua: false) == (.groupByTPG, false))
        #expect(try grouping("defaults {\n    path_grouping_policy group_by_tpg\n    detect_prio no\n    prio rdac\n}\n", alua: true) == (.failover, true))
    }

    @Test("detect_pgpolicy: alua or sysfs prioritizers group by priority (by TPG with use_tpg), under multipaths and overrides, over devices and defaults")
    func groupingDetection() throws {
        func grouping(_ text: String, alua: Bool = true, tpgKnown: Bool = true) throws -> GroupingPolicy {
            let c = try Configuration.load(files: [(name: "multipath.conf", text: text)]).get().configuration
            var p = c.profile(wwid: "w1", vendor: "ACME", product: "disk")
            MultipathAssembler.applyDetection(&p, prio: alua ? .sysfs : nil, handler: nil, targetPortGroupKnown: tpgKnown)
            return p.policy.grouping
        }
        #expect(try grouping("") == .failover, "off unless written, as in multipathd 0.9.4")
        let on = "defaults {\n    detect_pgpolicy yes\n}\n"
        #expect(try grouping(on) == .groupByPrio)
        #expect(try grouping(on, alua: false) == .failover, "no ALUA: const prio, the setting stands")
        #expect(try grouping("defaults {\n    detect_pgpolicy yes\n    detect_prio no\n    prio alua\n}\n", alua: false) == .groupByPrio,
                "a configured alua prioritizer counts too")
        #expect(try grouping("defaults {\n    detect_pgpolicy yes\n    path_grouping_policy multibus\n}\n") == .groupByPrio, "over defaults")
        #expect(try grouping("defaults {\n    detect_pgpolicy yes\n}\ndevices {\n    device {\n        vendor ACME\n        product disk\n        path_grouping_policy multibus\n    }\n}\n") == .groupByPrio,
                "over a devices entry")
        #expect(try grouping("defaults {\n    detect_pgpolicy yes\n}\noverrides {\n    path_grouping_policy multibus\n}\n") == .multibus,
                "overrides win")
        #expect(try grouping("defaults {\n    detect_pgpolicy yes\n}\nmultipaths {\n    multipath {\n        wwid w1\n        path_grouping_policy multibus\n    }\n}\n") == .multibus,
                "a multipath entry wins")
        let tpg = "defaults {\n    detect_pgpolicy yes\n    detect_pgpolicy_use_tpg yes\n}\n"
        #expect(try grouping(tpg) == .groupByTPG)
        #expect(try grouping(tpg, tpgKnown: false) == .groupByPrio, "no target port group reported: by priority")
        #expect(try grouping("overrides {\n    detect_pgpolicy yes\n}\n") == .groupByPrio, "an overrides option too")
        #expect(try grouping("overrides {\n    detect_pgpolicy no\n}\ndefaults {\n    detect_pgpolicy yes\n}\n") == .failover)
        let inMultipath = try Configuration.load(files: [(name: "c", text: "multipaths {\n    multipath {\n        wwid w\n        detect_pgpolicy yes\n    }\n}\n")]).get()
        #expect(inMultipath.warnings.contains { $0.message.contains("detect_pgpolicy") }, "not a multipath-section option, as in multipath-tools")
        let rendered = try Configuration.load(files: [(name: "c", text: tpg)]).get().configuration.render()
        #expect(rendered.contains("detect_pgpolicy yes") && rendered.contains("detect_pgpolicy_use_tpg yes"))
    }

    @Test("detect_checker: ALUA paths get tur over a configured checker, rdac arrays keep rdac, CLARiiON keeps emc_clariion")
    func checkerDetection() throws {
        func checker(_ text: String, vendor: String = "ACME", product: String = "disk", alua: Bool = true) throws -> MapProfile.Checker {
            let c = try Configuration.load(files: [(name: "multipath.conf", text: text)]).get().configuration
            var p = c.profile(wwid: "w1", vendor: vendor, product: product)
            MultipathAssembler.applyDetection(&p, prio: alua ? .sysfs : nil, handler: nil)
            return p.checker
        }
        #expect(try checker("defaults {\n    path_checker readsector0\n}\n") == .tur, "detected over defaults")
        #expect(try checker("devices {\n    device {\n        vendor ACME\n        product disk\n        path_checker hp_sw\n    }\n}\n") == .tur,
                "and over a devices entry")
        #expect(try checker("defaults {\n    path_checker readsector0\n}\n", alua: false) == .readsector0, "no ALUA: the setting")
        #expect(try checker("defaults {\n    path_checker readsector0\n    detect_checker no\n}\n") == .readsector0)
        #expect(try checker("overrides {\n    detect_checker no\n}\ndefaults {\n    path_checker directio\n}\n") == .directio)
        #expect(try checker("", vendor: "NETAPP", product: "INF-01-00") == .rdac, "E-series keeps rdac with ALUA")
        #expect(try checker("", vendor: "DGC", product: "VRAID") == .emcClariion, "the table turns detection off for CLARiiON")
        #expect(try checker("", vendor: "HP", product: "MSA110") == .tur, "an ALUA MSA gets tur")
        #expect(try checker("", vendor: "HP", product: "MSA110", alua: false) == .hpSW)
        let inMultipath = try Configuration.load(files: [(name: "c", text: "multipaths {\n    multipath {\n        wwid w\n        detect_checker no\n    }\n}\n")]).get()
        #expect(inMultipath.warnings.contains { $0.message.contains("detect_checker") }, "not a multipath-section option, as in multipath-tools")
    }
}

@Suite struct DiscoveredPriorityTests {
    @Test("a path's first priority from discovery's ALUA reading is what the alua and sysfs prioritizers read from the same attributes")
    func discoveredStateGivesThePrioritizersAnswer() {
        for state in ALUAAccessState.allCases {
            for preferred in [false, true] {
                let text = preferred ? "1" : "0"
                #expect(MultipathAssembler.priority(.alua, accessState: state, preferred: preferred)
                        == ALUAPrioritizer.priority(accessState: state.rawValue, preferredPath: text), "alua \(state) preferred \(preferred)")
                #expect(MultipathAssembler.priority(.sysfs, accessState: state, preferred: preferred)
                        == SysfsPrioritizer.priority(accessState: state.rawValue, preferredPath: text), "sysfs \(state) preferred \(preferred)")
            }
        }
        #expect(MultipathAssembler.priority(.alua, accessState: .activeNonOptimized, preferred: true) == 90)
        #expect(MultipathAssembler.priority(.sysfs, accessState: .offline, preferred: false) == 0)
        #expect(MultipathAssembler.priority(.alua, accessState: .unknown, preferred: false) == nil)
    }
}
