// MultipathStatus text: parsing the kernel's status, rendering it the way the kernel prints it.
import KeelCore
import Testing

@Suite struct CodecStatusTests {
    @Test func parsesTheRigStatusEveryField() throws {
        let status = try MultipathStatus.parse(RigLines.statusParams)
        #expect(status.queueingIO == false)
        #expect(status.pgInitCount == 1)
        #expect(status.extraFeatureArgs == [])
        #expect(status.hardwareHandlerStatus == [])
        #expect(status.nextGroup == 1)
        #expect(status.groups.map(\.state) == [.active, .enabled, .enabled])
        for group in status.groups {
            #expect(group.selectorStatus == [])
            #expect(group.pathArgCount == 2)
            for path in group.paths {
                #expect(path.active)
                #expect(path.failCount == 0)
                #expect(path.selectorStatus == ["0", "1"])
            }
        }
        #expect(status.groups.map { $0.paths.map(\.device) } == [
            [DevNo(major: 8, minor: 0), DevNo(major: 8, minor: 48)],
            [DevNo(major: 8, minor: 16)],
            [DevNo(major: 8, minor: 32)],
        ])
    }

    @Test func rigStatusRendersBackToTheKernelText() throws {
        #expect(try MultipathStatus.parse(RigLines.statusParams).render() == RigLines.statusParams)
    }

    @Test func parsesFailedPathsAndEnabledAndDisabledGroups() throws {
        let text = "2 1 0 0 3 2 D 0 1 0 8:0 F 3 A 0 2 0 8:16 A 1 8:32 F 7 E 0 1 0 8:48 A 0"
        let status = try MultipathStatus.parse(text)
        #expect(status.queueingIO)
        #expect(status.nextGroup == 2)
        #expect(status.groups.map(\.state) == [.disabled, .active, .enabled])
        #expect(status.groups[0].paths == [.init(device: DevNo(major: 8, minor: 0), active: false, failCount: 3)])
        #expect(status.groups[1].paths == [.init(device: DevNo(major: 8, minor: 16), active: true, failCount: 1),
                                           .init(device: DevNo(major: 8, minor: 32), active: false, failCount: 7)])
        #expect(status.groups[2].paths == [.init(device: DevNo(major: 8, minor: 48), active: true, failCount: 0)])
    }

    @Test func keepsFeatureArgsPastTheFirstTwo() throws {
        let status = try MultipathStatus.parse("4 0 0 queue_mode bio 0 0 0")
        #expect(status.extraFeatureArgs == ["queue_mode", "bio"])
        #expect(status.groups.isEmpty)
        #expect(status.nextGroup == 0)
    }

    @Test func keepsHardwareHandlerAndSelectorStatusWords() throws {
        let text = "2 0 0 1 alua 1 1 A 2 972 0 1 3 8:0 A 0 1024 0 0"
        let status = try MultipathStatus.parse(text)
        #expect(status.hardwareHandlerStatus == ["alua"])
        #expect(status.groups[0].selectorStatus == ["972", "0"])
        #expect(status.groups[0].paths[0].selectorStatus == ["1024", "0", "0"])
        #expect(status.render() == text)
    }

    @Test func rendersFailedPathsAsF() {
        let status = MultipathStatus(queueingIO: true, pgInitCount: 2, nextGroup: 1, groups: [
            .init(state: .active, pathArgCount: 1, paths: [.init(device: DevNo(major: 8, minor: 16), active: false,
                                                                 failCount: 4, selectorStatus: ["0"])]),
        ])
        #expect(status.render() == "2 1 2 0 1 1 A 0 1 1 8:16 F 4 0")
    }

    @Test func keepsNegativeInFlightCountsAsWords() throws {
        // service-time prints its in-flight size with %d.
        let status = try MultipathStatus.parse("2 0 0 0 1 1 A 0 1 2 8:0 A 0 -512 1")
        #expect(status.groups[0].paths[0].selectorStatus == ["-512", "1"])
    }

    @Test func roundTripsGeneratedStatuses() throws {
        var rng = CodecRandom(seed: 0x57A7)
        for _ in 0..<500 {
            let status = CodecGenerate.status(&rng)
            #expect(try MultipathStatus.parse(status.render()) == status)
        }
    }
}
