// MultipathTable text: rendering as the kernel accepts it, parsing what the kernel prints, round trips.
import KeelCore
import Testing

@Suite struct CodecTableTests {
    @Test func rendersTheFormMultipathToolsLoads() {
        let table = MultipathTable(
            features: ["queue_if_no_path"], hardwareHandler: ["alua"], initialGroup: 1,
            groups: [
                .init(selector: "service-time", pathArgCount: 1, paths: [.init(device: DevNo(major: 8, minor: 0)),
                                                                         .init(device: DevNo(major: 8, minor: 48))]),
                .init(selector: "service-time", pathArgCount: 1, paths: [.init(device: DevNo(major: 8, minor: 16))]),
                .init(selector: "service-time", pathArgCount: 1, paths: [.init(device: DevNo(major: 8, minor: 32))]),
            ])
        #expect(table.render() == "1 queue_if_no_path 1 alua 3 1 service-time 0 2 1 8:0 1 8:48 1 service-time 0 1 1 8:16 1 service-time 0 1 1 8:32 1")
    }

    @Test func rendersAnEmptyTableAsFourZeros() {
        #expect(MultipathTable(initialGroup: 0, groups: []).render() == "0 0 0 0")
    }

    @Test func parsesTheRigTableEveryField() throws {
        let table = try MultipathTable.parse(RigLines.tableParams)
        #expect(table.features == ["queue_if_no_path"])
        #expect(table.queueIfNoPath)
        #expect(table.hardwareHandler == ["alua"])
        #expect(table.initialGroup == 1)
        #expect(table.groups.count == 3)
        for group in table.groups {
            #expect(group.selector == "service-time")
            #expect(group.selectorArgs == [])
            #expect(group.pathArgCount == 2)
            for path in group.paths { #expect(path.args == ["1", "1"]) }
        }
        #expect(table.groups.map { $0.paths.map(\.device) } == [
            [DevNo(major: 8, minor: 0), DevNo(major: 8, minor: 48)],
            [DevNo(major: 8, minor: 16)],
            [DevNo(major: 8, minor: 32)],
        ])
    }

    @Test func rigTableRendersBackToTheKernelText() throws {
        #expect(try MultipathTable.parse(RigLines.tableParams).render() == RigLines.tableParams)
    }

    @Test func parseAcceptsTheKernelsTrailingSpaceAndNewline() throws {
        let table = try MultipathTable.parse(RigLines.tableParams + " \n")
        #expect(table == (try MultipathTable.parse(RigLines.tableParams)))
    }

    @Test(arguments: SelectorShape.all.map(\.name))
    func roundTripsEverySelector(_ name: String) throws {
        let shape = SelectorShape.all.first { $0.name == name }!
        let table = MultipathTable(
            features: ["queue_if_no_path"], initialGroup: 1,
            groups: [.init(selector: shape.name, selectorArgs: shape.tableSelectorArgs, pathArgCount: shape.tableArgs.count,
                           paths: [.init(device: DevNo(major: 8, minor: 0), args: shape.tableArgs),
                                   .init(device: DevNo(major: 65, minor: 16), args: shape.tableArgs)])])
        #expect(try MultipathTable.parse(table.render()) == table)
    }

    @Test(arguments: [
        ["queue_if_no_path"],
        ["pg_init_retries", "50"],
        ["pg_init_delay_msecs", "60000"],
        ["retain_attached_hw_handler"],
        ["queue_mode", "bio"],
        ["queue_if_no_path", "pg_init_retries", "3", "pg_init_delay_msecs", "0", "retain_attached_hw_handler", "queue_mode", "mq"],
    ])
    func roundTripsFeatures(_ features: [String]) throws {
        let table = MultipathTable(features: features, initialGroup: 1,
                                   groups: [.init(selector: "round-robin", paths: [.init(device: DevNo(major: 8, minor: 0))])])
        let text = table.render()
        #expect(text.hasPrefix("\(features.count) \(features.joined(separator: " ")) 0 1 1 "))
        #expect(try MultipathTable.parse(text) == table)
    }

    @Test func roundTripsHardwareHandlerWithArgs() throws {
        let table = MultipathTable(hardwareHandler: ["emc", "1", "0"], initialGroup: 2,
                                   groups: [.init(selector: "round-robin", paths: [.init(device: DevNo(major: 8, minor: 0))]),
                                            .init(selector: "round-robin", paths: [.init(device: DevNo(major: 8, minor: 16))])])
        #expect(table.render() == "0 3 emc 1 0 2 2 round-robin 0 1 1 8:0 1 round-robin 0 1 1 8:16 1")
        #expect(try MultipathTable.parse(table.render()) == table)
    }

    @Test func keepsFeatureWordsItDoesNotKnow() throws {
        let table = try MultipathTable.parse("2 queue_if_no_path some_future_feature 0 0 0")
        #expect(table.features == ["queue_if_no_path", "some_future_feature"])
    }

    @Test func roundTripsGeneratedTables() throws {
        var rng = CodecRandom(seed: 0x7AB1E)
        for _ in 0..<500 {
            let table = CodecGenerate.table(&rng)
            #expect(try MultipathTable.parse(table.render()) == table)
        }
    }

    @Test func roundTripsTheKernelLimits() throws {
        let paths = (0..<MultipathLimits.pathsPerGroupMax).map {
            MultipathTable.Path(device: DevNo(major: 4095, minor: UInt32(1_048_575 - $0)), args: [])
        }
        let groups = (0..<MultipathLimits.groupsMax).map { i in
            MultipathTable.Group(selector: "round-robin", pathArgCount: 0, paths: i == 0 ? paths : [paths[i]])
        }
        let table = MultipathTable(initialGroup: MultipathLimits.groupsMax, groups: groups)
        #expect(try MultipathTable.parse(table.render()) == table)
    }
}
