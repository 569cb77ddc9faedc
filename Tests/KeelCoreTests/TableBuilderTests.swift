// TableBuilder: the kernel table a map's grouping and profile make.
import KeelCore
import Testing

private func rigProfile(extra: String = "") -> MapProfile {
    let text = """
    defaults {
        path_grouping_policy group_by_prio
        prio alua
        no_path_retry queue
        hardware_handler "1 alua"
        \(extra)
    }
    """
    guard case .success(let loaded) = Configuration.load(files: [(name: "t.conf", text: text)]) else {
        Issue.record("configuration did not load")
        return Configuration().profile(wwid: "w", vendor: "v", product: "p")
    }
    return loaded.configuration.profile(wwid: "1Linux_scsi_debug_2000", vendor: "Linux", product: "scsi_debug")
}

private let rigLayout: [[DevNo]] = [
    [DevNo(major: 8, minor: 0), DevNo(major: 8, minor: 48)],
    [DevNo(major: 8, minor: 16)],
    [DevNo(major: 8, minor: 32)],
]

@Suite struct TableBuilderTests {
    @Test func groupByPrioLayoutRendersAsTheRigsMultipathTable() {
        let table = TableBuilder.table(layout: rigLayout, profile: rigProfile(), initialGroup: 1)
        // multipathd's table for the same LUN (RIG.md), with one path argument instead of two.
        #expect(table.render() == "1 queue_if_no_path 1 alua 3 1 service-time 0 2 1 8:0 1 8:48 1 service-time 0 1 1 8:16 1 service-time 0 1 1 8:32 1")
    }

    @Test func profileWordCountsAreDroppedFromFeaturesHandlerAndSelector() {
        let table = TableBuilder.table(layout: rigLayout, profile: rigProfile(), initialGroup: 2)
        #expect(table.features == ["queue_if_no_path"])
        #expect(table.hardwareHandler == ["alua"])
        #expect(table.groups.allSatisfy { $0.selector == "service-time" && $0.selectorArgs.isEmpty })
        #expect(table.initialGroup == 2)
        #expect(table.queueIfNoPath)
    }

    @Test func initialGroupZeroBecomesOne() {
        let table = TableBuilder.table(layout: rigLayout, profile: rigProfile(), initialGroup: 0)
        #expect(table.initialGroup == 1)
    }

    @Test func noPathRetryFailAndNoHandlerGiveAnEmptyFeatureAndHandlerList() {
        let profile = Configuration().profile(wwid: "w", vendor: "v", product: "p")
        let table = TableBuilder.table(layout: [[DevNo(major: 8, minor: 0)]], profile: profile, initialGroup: 1)
        #expect(table.features.isEmpty)
        #expect(table.hardwareHandler.isEmpty)
        #expect(table.render() == "0 0 1 1 service-time 0 1 1 8:0 1")
    }

    @Test func everyPathCarriesTheRepeatCountOne() {
        let table = TableBuilder.table(layout: rigLayout, profile: rigProfile(), initialGroup: 1)
        let paths = table.groups.flatMap(\.paths)
        #expect(paths.map(\.device) == rigLayout.flatMap { $0 })
        #expect(paths.allSatisfy { $0.args == ["1"] })
        #expect(table.groups.allSatisfy { $0.pathArgCount == 1 })
    }
}
