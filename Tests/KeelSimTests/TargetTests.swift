// The simulated dm-multipath target: routing, messages, reloads and status.

import KeelCore
import KeelSim
import Testing

private let map = MapHandle(0)
private func dev(_ i: UInt32) -> DevNo { DevNo(major: 8, minor: 16 * i) }

private func loadedTarget(_ groups: [[DevNo]], queueIfNoPath: Bool = false, initialGroup: Int = 1) -> SimMultipathTarget {
    var target = SimMultipathTarget(mapCount: 1)
    #expect(target.load(table(groups, queueIfNoPath: queueIfNoPath, initialGroup: initialGroup), map: map) == 0)
    return target
}

@Test func routingUsesTheCurrentGroupAndRoundRobins() {
    var target = loadedTarget([[dev(0), dev(1)], [dev(2), dev(3)]])
    let chosen = (0..<4).map { _ in target.choosePath(map) }
    #expect(chosen == [dev(0), dev(1), dev(0), dev(1)])
    #expect(target.currentGroup(map) == 1)
}

@Test func routingSkipsFailedPathsInTheGroup() {
    var target = loadedTarget([[dev(0), dev(1), dev(2)]])
    #expect(target.send(DMMessage(map: map, kind: .failPath, device: dev(1))) == 0)
    let chosen = (0..<4).map { _ in target.choosePath(map) }
    #expect(chosen == [dev(0), dev(2), dev(0), dev(2)])
}

@Test func switchGroupMakesThatGroupCurrent() {
    var target = loadedTarget([[dev(0)], [dev(1), dev(2)]])
    _ = target.choosePath(map)
    #expect(target.send(DMMessage(map: map, kind: .switchGroup, group: 2)) == 0)
    #expect(target.status(map).nextGroup == 2)
    #expect(target.choosePath(map) == dev(1))
    #expect(target.choosePath(map) == dev(2))
    #expect(target.currentGroup(map) == 2)
}

@Test func anEmptyCurrentGroupFallsToTheFirstGroupWithAnActivePath() {
    var target = loadedTarget([[dev(0)], [dev(1)], [dev(2)]])
    _ = target.choosePath(map)
    _ = target.send(DMMessage(map: map, kind: .failPath, device: dev(0)))
    #expect(target.choosePath(map) == dev(1))
    #expect(target.currentGroup(map) == 2)
}

@Test func disabledGroupsAreUsedOnlyAsALastResort() {
    var target = loadedTarget([[dev(0)], [dev(1)], [dev(2)]])
    _ = target.send(DMMessage(map: map, kind: .failPath, device: dev(0)))
    _ = target.send(DMMessage(map: map, kind: .disableGroup, group: 2))
    #expect(target.choosePath(map) == dev(2))
    _ = target.send(DMMessage(map: map, kind: .failPath, device: dev(2)))
    #expect(target.choosePath(map) == dev(1))
}

@Test func failPathFailsTheDeviceCountsAndEmitsAnEvent() {
    var target = loadedTarget([[dev(0), dev(1)]])
    let before = target.eventNumber(map)
    #expect(target.send(DMMessage(map: map, kind: .failPath, device: dev(1))) == 0)
    #expect(target.isActive(map, device: dev(1)) == false)
    #expect(target.status(map).groups[0].paths[1].failCount == 1)
    #expect(target.eventNumber(map) > before)
    #expect(target.popEvent() == .pathFailed(map, dev(1)))
}

@Test func messageFailuresCanBeKeptQuiet() {
    var target = SimMultipathTarget(mapCount: 1, options: .init(reportsMessageFailures: false))
    _ = target.load(table([[dev(0)]]), map: map)
    _ = target.send(DMMessage(map: map, kind: .failPath, device: dev(0)))
    #expect(target.popEvent() == nil)
}

@Test func pathVerbsOnADeviceNotInTheTableAnswerEINVAL() {
    var target = loadedTarget([[dev(0)]])
    #expect(target.send(DMMessage(map: map, kind: .failPath, device: dev(5))) == SimErrno.einval)
    #expect(target.send(DMMessage(map: map, kind: .reinstatePath, device: dev(5))) == SimErrno.einval)
}

@Test func groupVerbsWithABadGroupAnswerEINVAL() {
    var target = loadedTarget([[dev(0)], [dev(1)]])
    for kind in [DMMessageKind.switchGroup, .enableGroup, .disableGroup] {
        #expect(target.send(DMMessage(map: map, kind: kind, group: 0)) == SimErrno.einval)
        #expect(target.send(DMMessage(map: map, kind: kind, group: 3)) == SimErrno.einval)
        #expect(target.send(DMMessage(map: map, kind: kind, group: 2)) == 0)
    }
}

@Test func messagesToAMapWithoutATableAnswerEINVALAndToNoMapENXIO() {
    var target = SimMultipathTarget(mapCount: 1)
    #expect(target.send(DMMessage(map: map, kind: .queueIfNoPath)) == SimErrno.einval)
    #expect(target.send(DMMessage(map: MapHandle(3), kind: .queueIfNoPath)) == SimErrno.enxio)
}

@Test func queueingVerbsSetTheFlagStatusReports() {
    var target = loadedTarget([[dev(0)]])
    #expect(target.status(map).queueingIO == false)
    _ = target.send(DMMessage(map: map, kind: .queueIfNoPath))
    #expect(target.status(map).queueingIO == true)
    _ = target.send(DMMessage(map: map, kind: .failIfNoPath))
    #expect(target.status(map).queueingIO == false)
}

@Test func reloadMakesEveryPathActiveWithNoFailures() {
    var target = loadedTarget([[dev(0), dev(1)]], queueIfNoPath: true)
    _ = target.send(DMMessage(map: map, kind: .failPath, device: dev(0)))
    _ = target.send(DMMessage(map: map, kind: .failPath, device: dev(1)))
    #expect(target.load(table([[dev(1)], [dev(0)]]), map: map) == 0)
    let status = target.status(map)
    #expect(status.groups.map { $0.paths.map(\.device) } == [[dev(1)], [dev(0)]])
    #expect(status.groups.allSatisfy { $0.paths.allSatisfy { $0.active && $0.failCount == 0 } })
    #expect(status.queueingIO == false)
}

@Test func loadRefusesMissingDevicesDuplicatesAndBadInitialGroups() {
    var target = SimMultipathTarget(mapCount: 1)
    #expect(target.load(table([[dev(0)]]), map: map) { $0 != dev(0) } == SimErrno.enxio)
    #expect(target.load(table([[dev(0)], [dev(0)]]), map: map) == SimErrno.einval)
    #expect(target.load(table([[dev(0)]], initialGroup: 2), map: map) == SimErrno.einval)
    #expect(!target.hasTable(map))
}

@Test func statusShowsGroupStatesPathsAndNextGroup() {
    var target = loadedTarget([[dev(0)], [dev(1)], [dev(2)]], initialGroup: 2)
    #expect(target.status(map).nextGroup == 2)
    #expect(target.status(map).groups.map(\.state) == [.enabled, .enabled, .enabled])
    #expect(target.choosePath(map) == dev(1))
    // Disabling a group clears the current group, as the kernel's bypass_pg does.
    _ = target.send(DMMessage(map: map, kind: .disableGroup, group: 3))
    #expect(target.status(map).groups.map(\.state) == [.enabled, .enabled, .disabled])
    _ = target.send(DMMessage(map: map, kind: .failPath, device: dev(0)))
    #expect(target.choosePath(map) == dev(1))
    let status = target.status(map)
    #expect(status.groups.map(\.state) == [.enabled, .active, .disabled])
    #expect(status.nextGroup == 2)
    #expect(status.groups[0].paths == [MultipathStatus.Path(device: dev(0), active: false, failCount: 1)])
}

@Test func reinstatingAnActivePathChangesNothing() {
    var target = loadedTarget([[dev(0)]])
    let before = target.eventNumber(map)
    #expect(target.send(DMMessage(map: map, kind: .reinstatePath, device: dev(0))) == 0)
    #expect(target.eventNumber(map) == before)
}

@Test func statusRecordsDescribeEveryPathQueueingAndTheActiveGroup() {
    var target = loadedTarget([[dev(0)], [dev(1)]], queueIfNoPath: true)
    _ = target.choosePath(map)
    _ = target.send(DMMessage(map: map, kind: .failPath, device: dev(1)))
    var records: [KernelEvent] = []
    target.statusRecords(map) { records.append($0) }
    #expect(records == [.pathKernelState(map, dev(0), active: true), .pathKernelState(map, dev(1), active: false),
                        .mapQueueing(map, queueing: true), .mapActiveGroup(map, group: 1)])
}
