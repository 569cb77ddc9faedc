// Names and known WWIDs: the bindings and wwids file texts, the lowest free user-friendly name,
// and the find_multipaths decision of every mode.
import KeelCore
import Testing

@Suite struct MapIdentityTests {
    @Test func bindingsReadAliasWWIDLinesSkippingCommentsAndConflicts() {
        let text = """
            # Multipath bindings, Version : 1.0
            mpatha 3600a0980383030523424457a4a695266
            mpathc 36001405aaaaaaaaaaaaaaaaaaaaaaaaa   # trailing comment
            \tmpathb\t36001405bbbbbbbbbbbbbbbbbbbbbbbbb
            lonely
            mpatha 36001405ccccccccccccccccccccccccc
            mpathd 3600a0980383030523424457a4a695266
            """
        let b = Bindings(text: text)
        #expect(b.aliasByWWID["3600a0980383030523424457a4a695266"] == "mpatha", "the first line naming a WWID wins")
        #expect(b.aliasByWWID["36001405aaaaaaaaaaaaaaaaaaaaaaaaa"] == "mpathc")
        #expect(b.aliasByWWID["36001405bbbbbbbbbbbbbbbbbbbbbbbbb"] == "mpathb", "tabs separate words too")
        #expect(b.aliasByWWID["36001405ccccccccccccccccccccccccc"] == nil, "mpatha already names another WWID")
        #expect(b.wwidByAlias["mpathd"] == nil, "a WWID never gets a second name")
        #expect(b.problems.map(\.line) == [5, 6, 7])
    }

    @Test func aNewNameIsTheLowestFreeOneFillingGapsAndSkippingTakenNames() {
        var b = Bindings(text: "mpatha 1\nmpathc 3\nother_a 9\n")
        #expect(b.freeAlias(prefix: "mpath", taken: { _ in false }) == "mpathb", "the gap at b is filled")
        #expect(b.freeAlias(prefix: "mpath", taken: { $0 == "mpathb" }) == "mpathd", "a live map's name is skipped")
        #expect(b.freeAlias(prefix: "other_", taken: { _ in false }) == "other_b")
        for i in 0..<26 { b.bind(alias: "disk" + Bindings.friendlySuffix(i), wwid: "w\(i)") }
        #expect(b.freeAlias(prefix: "disk", taken: { _ in false }) == "diskaa", "after z comes aa")
        #expect(Bindings.line(alias: "mpathb", wwid: "2") == "mpathb 2\n")
    }

    @Test func suffixesCountInBijectiveBase26() {
        #expect(Bindings.friendlySuffix(0) == "a")
        #expect(Bindings.friendlySuffix(25) == "z")
        #expect(Bindings.friendlySuffix(26) == "aa")
        #expect(Bindings.friendlySuffix(26 + 26 * 26) == "aaa")
    }

    @Test func wwidsFileListsSlashDelimitedWWIDs() {
        let w = KnownWWIDs(text: """
            # Multipath wwids, Version : 1.0
            /3600a0980383030523424457a4a695266/
              /36001405aaaaaaaaaaaaaaaaaaaaaaaaa/ # comment
            36001405bbbbbbbbbbbbbbbbbbbbbbbbb
            //

            """)
        #expect(w.wwids == ["3600a0980383030523424457a4a695266", "36001405aaaaaaaaaaaaaaaaaaaaaaaaa"])
        #expect(w.problems.map(\.line) == [4, 5])
        #expect(KnownWWIDs.line("36001405") == "/36001405/\n")
        #expect(KnownWWIDs(text: KnownWWIDs.header + KnownWWIDs.line("x")).wwids == ["x"], "the header is comments only")
        #expect(Bindings(text: Bindings.header).aliasByWWID.isEmpty && Bindings(text: Bindings.header).problems.isEmpty)
    }

    private func rule(_ mode: Configuration.FindMultipaths, timeout: Int = -10) -> FindMultipathsRule {
        var c = Configuration()
        c.findMultipaths = mode
        c.findMultipathsTimeoutSeconds = timeout
        return FindMultipathsRule(c)
    }

    @Test func everyModeDecidesAsMultipathToolsDoes() {
        let s = Time.nsPerSecond
        func d(_ mode: Configuration.FindMultipaths, paths: Int, known: Bool = false, inKernel: Bool = false, age: Nanoseconds = 0) -> FindMultipathsRule.Decision {
            rule(mode).decide(paths: paths, known: known, inKernel: inKernel, firstSeenNs: 100 * s, nowNs: 100 * s + age)
        }
        for mode in [Configuration.FindMultipaths.off, .greedy] {
            #expect(d(mode, paths: 1) == .multipath, "\(mode): every device")
        }
        #expect(d(.strict, paths: 4) == .notKnown, "strict: four paths are not enough")
        #expect(d(.strict, paths: 1, known: true) == .multipath)
        #expect(d(.on, paths: 1) == .singlePath)
        #expect(d(.on, paths: 2) == .multipath)
        #expect(d(.on, paths: 1, known: true) == .multipath)
        #expect(d(.smart, paths: 1) == .waitUntil(101 * s), "smart: a negative timeout is 1 s for hardware outside the table")
        #expect(d(.smart, paths: 1, age: s) == .singlePath, "smart: the wait is over")
        #expect(d(.smart, paths: 2) == .multipath)
        for mode in Configuration.FindMultipaths.allCases {
            #expect(d(mode, paths: 1, inKernel: true) == .multipath, "\(mode): a map the kernel has is kept")
        }
        #expect(rule(.smart, timeout: 30).decide(paths: 1, known: false, inKernel: false, firstSeenNs: 0, nowNs: 0) == .waitUntil(30 * s))
        #expect(rule(.smart).decide(paths: 1, known: false, inKernel: false, firstSeenNs: 0, nowNs: 0, knownHardware: true) == .waitUntil(10 * s),
                "smart: a negative timeout is its magnitude for hardware a device entry knows")
        #expect(rule(.smart, timeout: 30).decide(paths: 1, known: false, inKernel: false, firstSeenNs: 0, nowNs: 0, knownHardware: true) == .waitUntil(30 * s))
    }

    @Test func theNewOptionsAreReadCheckedAndRendered() throws {
        let text = """
            defaults {
                find_multipaths smart
                find_multipaths_timeout -20
                bindings_file "/var/lib/keel/bindings"
                wwids_file /var/lib/keel/wwids
            }

            """
        let c = try Configuration.load(files: [(name: "multipath.conf", text: text)]).get().configuration
        #expect(c.findMultipathsTimeoutSeconds == -20)
        #expect(c.bindingsFile == "/var/lib/keel/bindings")
        #expect(c.wwidsFile == "/var/lib/keel/wwids")
        #expect(try Configuration.load(files: [(name: "again", text: c.render())]).get().configuration == c, "render reads back equal")
        let bad = "defaults {\n    bindings_file relative/bindings\n    find_multipaths_timeout soon\n}\n"
        guard case .failure(let error) = Configuration.load(files: [(name: "multipath.conf", text: bad)]) else {
            Issue.record("bad values were accepted")
            return
        }
        #expect(error.problems.map(\.line) == [2, 3], "\(error)")
        #expect(Configuration().bindingsFile == "/etc/multipath/bindings" && Configuration().wwidsFile == "/etc/multipath/wwids")
    }
}
