// uevent records, filtering and per-WWID merging as pure functions, table-driven.
import Testing
import KeelCore
@testable import KeelLinux

/// Shorthand: "add sda w1" = action, kernel name, optional WWID.
func ev(_ text: String, seq: UInt64 = 0) -> UeventRecord {
    let parts = text.split(separator: " ")
    var r = UeventRecord(sequence: seq, action: UeventAction(parts[0]), kernelName: KernelNameText(parts[1]))
    if parts.count > 2 { r.wwid = WWIDText(parts[2]) }
    return r
}

func render(_ events: [UeventRecord]) -> [String] {
    events.map { e in "\(e.action) \(e.kernelName)" + (e.wwid.isEmpty ? "" : " \(e.wwid)") }
}

@Suite("uevent filtering and merging")
struct EventsMergeTests {
    static let filterCases: [(input: [String], survivors: [String])] = [
        (["add sda", "change sda", "add sdb", "remove sda"], ["add sdb", "remove sda"]),
        (["change sda", "add sda", "add sdb"], ["add sda", "add sdb"]),
        (["add sda", "change sda"], ["add sda", "change sda"]),
        (["remove sda", "add sda"], ["remove sda", "add sda"]),
        (["change sda", "change sda"], ["change sda", "change sda"]),
        (["remove sda", "remove sda"], ["remove sda"]),
        (["change dm-0", "change dm-0", "remove dm-0"], ["change dm-0", "change dm-0", "remove dm-0"]),
        (["change sda", "remove sdb", "change sdb", "add sdb"], ["change sda", "remove sdb", "add sdb"]),
        (["add sda", "change sda", "add sda"], ["add sda", "add sda"]),
        ([], []),
    ]

    @Test(arguments: filterCases)
    func laterEventsCancelRedundantEarlierOnes(input: [String], survivors: [String]) {
        let (kept, filtered) = UeventMerge.filter(input.map { ev($0) })
        #expect(render(kept) == survivors)
        #expect(filtered == input.count - survivors.count)
    }

    @Test func removeCancelsAddAndChangeOfTheSameNameOnly() {
        #expect(UeventMerge.cancels(ev("remove sda"), ev("add sda")))
        #expect(UeventMerge.cancels(ev("remove sda"), ev("change sda")))
        #expect(!UeventMerge.cancels(ev("remove sda"), ev("add sdb")))
        #expect(!UeventMerge.cancels(ev("change sda"), ev("add sda")))
        #expect(!UeventMerge.cancels(ev("add sda"), ev("remove sda")))
    }

    @Test func deviceMapperEventsAreNeverCancelled() {
        #expect(!UeventMerge.cancels(ev("remove dm-1"), ev("change dm-1")))
    }

    @Test func pathEventsGroupByWWIDInOrderOfFirstAppearance() {
        let batch = UeventBatch(records: [ev("add sda w1"), ev("add sdb w2"), ev("add sdc w1"), ev("remove sdd w2"), ev("add sde w1")])
        let merged = UeventMerge.merge(batch)
        #expect(merged.wwidGroups.map { $0.wwid.description } == ["w1", "w2"])
        #expect(merged.wwidGroups[0].eventIndices == [0, 2, 4])
        #expect(merged.wwidGroups[1].eventIndices == [1, 3])
        #expect(merged.ungrouped.isEmpty && merged.mapEvents.isEmpty)
    }

    @Test func eventsWithoutWWIDStayUngroupedUnlessTheLookupKnowsThem() {
        let batch = UeventBatch(records: [ev("remove sda"), ev("change sdb"), ev("add sdc w9")])
        let known: [String: String] = ["sda": "w9"]
        let merged = UeventMerge.merge(batch) { known[$0.kernelName.description].map { WWIDText($0) } }
        #expect(merged.wwidGroups.count == 1)
        #expect(merged.wwidGroups[0].eventIndices == [0, 2])
        #expect(merged.ungrouped == [1])
    }

    @Test func deviceMapperEventsGoToMapEventsNotGroups() {
        var failed = ev("change dm-0 w1")
        failed.dmAction = .pathFailed
        failed.dmPath = DevNo(major: 8, minor: 16)
        let merged = UeventMerge.merge(UeventBatch(records: [ev("add sda w1"), failed]))
        #expect(merged.mapEvents == [1])
        #expect(merged.wwidGroups.first?.eventIndices == [0])
        #expect(merged.events[1].dmPath == DevNo(major: 8, minor: 16))
    }

    @Test func burstForOneLUNBecomesOneGroupAfterFiltering() {
        let records = ["add sda L", "add sdb L", "change sda L", "add sdc L", "remove sdb L", "add sdd L"].map { ev($0) }
        let merged = UeventMerge.merge(UeventBatch(records: records))
        #expect(render(merged.events) == ["add sda L", "change sda L", "add sdc L", "remove sdb L", "add sdd L"])
        #expect(merged.wwidGroups.count == 1)
        #expect(merged.wwidGroups[0].eventIndices == [0, 1, 2, 3, 4])
        #expect(merged.filteredCount == 1)
    }

    @Test func resyncFlagIsCarriedThroughTheMerge() {
        #expect(UeventMerge.merge(UeventBatch(records: [], resyncNeeded: true)).resyncNeeded)
        #expect(!UeventMerge.merge(UeventBatch(records: [ev("add sda")])).resyncNeeded)
    }

    @Test func recordParsesAPathFailedUeventOfAMultipathMap() throws {
        let props = ["ACTION": "change", "DEVPATH": "/devices/virtual/block/dm-0", "MAJOR": "254", "MINOR": "0",
                     "SEQNUM": "4711", "DM_ACTION": "PATH_FAILED", "DM_PATH": "8:16", "DM_NAME": "mpatha",
                     "DM_UUID": "mpath-1Linux_scsi_debug_2000"]
        let r = try #require(UeventRecord.parse { props[$0] })
        #expect(r.action == .change && r.kernelName.description == "dm-0" && r.isDeviceMapper)
        #expect(r.device == DevNo(major: 254, minor: 0) && r.sequence == 4711)
        #expect(r.dmAction == .pathFailed && r.dmPath == DevNo(major: 8, minor: 16))
        #expect(r.hasDMName && r.hasDMUUID)
        #expect(r.wwid.description == "1Linux_scsi_debug_2000")
    }

    @Test func recordTakesThePathWWIDFromTheUidAttribute() throws {
        let props = ["ACTION": "add", "DEVPATH": "/devices/platform/host0/target0:0:0/0:0:0:0/block/sda",
                     "MAJOR": "8", "MINOR": "0", "ID_SERIAL": "1Linux_scsi_debug_2000", "ID_WWN": "0x33"]
        #expect(try #require(UeventRecord.parse { props[$0] }).wwid.description == "1Linux_scsi_debug_2000")
        #expect(try #require(UeventRecord.parse(uidAttribute: "ID_WWN") { props[$0] }).wwid.description == "0x33")
        #expect(try #require(UeventRecord.parse(uidAttribute: "") { props[$0] }).wwid.isEmpty)
    }

    @Test func recordWithoutActionOrDevpathIsRejected() {
        #expect(UeventRecord.parse { ["DEVPATH": "/x/sda"][$0] } == nil)
        #expect(UeventRecord.parse { ["ACTION": "add"][$0] } == nil)
    }

    @Test func unknownActionsBecomeOther() throws {
        let r = try #require(UeventRecord.parse { ["ACTION": "offline", "DEVPATH": "/x/sda"][$0] })
        #expect(r.action == .other)
    }

    @Test func fixedTextTruncatesAndSaysSo() {
        let long = KernelNameText(String(repeating: "x", count: 40))
        #expect(long.count == 32 && long.truncated)
        #expect(KernelNameText("sda") == KernelNameText("sda"))
        #expect(KernelNameText("sda") != KernelNameText("sdb"))
        #expect(KernelNameText("dm-3").hasPrefix("dm-"))
        #expect(!KernelNameText("d").hasPrefix("dm-"))
    }

    @Test func recordIsFixedSizeAndBitwiseCopyable() {
        func requireBitwiseCopyable<T: BitwiseCopyable>(_: T.Type) -> Int { MemoryLayout<T>.size }
        #expect(requireBitwiseCopyable(UeventRecord.self) < 256)
    }
}
