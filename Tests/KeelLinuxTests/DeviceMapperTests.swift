// Device-mapper backend tests that need no device-mapper: ioctl buffer layout, message text, errors, a missing control node.
import Testing
import Foundation
import CKeelShim
import KeelCore
import KeelLinux

/// A messenger whose ioctls go to /dev/null: every ioctl fails with ENOTTY, but the buffer it
/// sent stays behind for inspection.
private func nullMessenger(mapsMax: Int = 4) throws -> DMMessenger {
    try DMMessenger(controlPath: "/dev/null", mapsMax: mapsMax)
}

/// Reads the last message buffer the way the kernel's target_message() does.
private func decodedMessage(_ messenger: DMMessenger) -> (status: Int32, sector: UInt64, text: String) {
    let io = messenger.lastMessageBuffer.assumingMemoryBound(to: dm_ioctl.self)
    var sector: UInt64 = 99
    var text: UnsafePointer<CChar>? = nil
    let status = keel_dm_decode_target_msg(io, &sector, &text)
    return (status, sector, text.map { String(cString: $0) } ?? "")
}

private let nameOffset = MemoryLayout<dm_ioctl>.offset(of: \dm_ioctl.name)!
private let uuidOffset = MemoryLayout<dm_ioctl>.offset(of: \dm_ioctl.uuid)!

private func field(_ pointer: UnsafeRawPointer, offset: Int, length: Int) -> String {
    let bytes = UnsafeRawBufferPointer(start: pointer + offset, count: length)
    return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
}

@Suite("DeviceMapper ioctl layout")
struct DeviceMapperLayoutTests {
    @Test func headerConstantsMatchTheKernelStruct() {
        #expect(Int(KEEL_DM_IOCTL_BYTES) == MemoryLayout<dm_ioctl>.size)
        #expect(Int(KEEL_DM_IOCTL_BYTES) == 312)
        #expect(Int(KEEL_DM_DATA_START) % 8 == 0)
        #expect(Int(KEEL_DM_DATA_START) >= MemoryLayout<dm_ioctl>.size)
        #expect(Int(KEEL_DM_TARGET_MSG_TEXT_OFFSET) == MemoryLayout<UInt64>.size)
        #expect(Int(KEEL_DM_TARGET_SPEC_BYTES) == 40)
        #expect(nameOffset == 48)
        #expect(uuidOffset == 48 + Int(KEEL_DM_NAME_LEN))
    }

    @Test func requestNumbersAreTheKernelsIOWR() {
        // _IOWR(0xfd, nr, struct dm_ioctl): dir 3 << 30 | size << 16 | 0xfd << 8 | nr.
        func iowr(_ nr: UInt) -> UInt { (3 << 30) | (UInt(MemoryLayout<dm_ioctl>.size) << 16) | (0xfd << 8) | nr }
        #expect(keel_dm_request(KEEL_DM_CMD_VERSION) == iowr(0))
        #expect(keel_dm_request(KEEL_DM_CMD_LIST_DEVICES) == iowr(2))
        #expect(keel_dm_request(KEEL_DM_CMD_TABLE_STATUS) == iowr(12))
        #expect(keel_dm_request(KEEL_DM_CMD_TARGET_MSG) == iowr(14))
        #expect(keel_dm_request(KEEL_DM_CMD_DEV_ARM_POLL) == iowr(16))
    }

    @Test func messageBufferIsWhatTheKernelReads() throws {
        var messenger = try nullMessenger()
        try messenger.register(map: MapHandle(1), name: "mpatha", checkStatusFits: false)
        let errno = messenger.send(DMMessage(map: MapHandle(1), kind: .failPath, device: DevNo(major: 8, minor: 16)))
        #expect(errno == ENOTTY)  // /dev/null is no dm control node, but the buffer went out
        let decoded = decodedMessage(messenger)
        #expect(decoded.status == 0)
        #expect(decoded.sector == 0)
        #expect(decoded.text == "fail_path 8:16")

        let io = messenger.lastMessageBuffer.assumingMemoryBound(to: dm_ioctl.self).pointee
        #expect(io.version.0 == 4 && io.version.1 == 37 && io.version.2 == 0)
        #expect(io.data_start == KEEL_DM_DATA_START)
        // header, then the 64-bit sector, then the text and its NUL: nothing more is copied in.
        #expect(Int(io.data_size) == Int(KEEL_DM_DATA_START) + 8 + "fail_path 8:16".utf8.count + 1)
        #expect(io.flags == 0)
        #expect(field(messenger.lastMessageBuffer, offset: nameOffset, length: Int(KEEL_DM_NAME_LEN)) == "mpatha")
        #expect(field(messenger.lastMessageBuffer, offset: uuidOffset, length: Int(KEEL_DM_UUID_LEN)) == "")
    }

    @Test func messageBufferIsAlignedForTheKernelStructs() throws {
        let messenger = try nullMessenger()
        #expect(UInt(bitPattern: messenger.lastMessageBuffer) % 8 == 0)
        #expect(DMMessenger.messageBufferBytes >= Int(KEEL_DM_DATA_START) + 8 + 37)
    }

    @Test(arguments: [
        (DMMessageKind.failPath, "fail_path 8:16"),
        (.reinstatePath, "reinstate_path 8:16"),
        (.switchGroup, "switch_group 3"),
        (.enableGroup, "enable_group 3"),
        (.disableGroup, "disable_group 3"),
        (.queueIfNoPath, "queue_if_no_path"),
        (.failIfNoPath, "fail_if_no_path"),
    ])
    func everyVerbIsWrittenAsTheKernelParsesIt(kind: DMMessageKind, text: String) throws {
        var messenger = try nullMessenger()
        try messenger.register(map: MapHandle(0), name: "m", checkStatusFits: false)
        _ = messenger.send(DMMessage(map: MapHandle(0), kind: kind, device: DevNo(major: 8, minor: 16), group: 3))
        #expect(decodedMessage(messenger).text == text)
    }

    @Test func largestDeviceNumbersFitTheMessageBuffer() throws {
        var messenger = try nullMessenger()
        try messenger.register(map: MapHandle(0), name: "m", checkStatusFits: false)
        let errno = messenger.send(DMMessage(map: MapHandle(0), kind: .reinstatePath,
                                             device: DevNo(major: .max, minor: .max)))
        #expect(errno == ENOTTY)
        #expect(decodedMessage(messenger).text == "reinstate_path 4294967295:4294967295")
    }

    @Test func registeringByUUIDAddressesTheMapByUUID() throws {
        var messenger = try nullMessenger()
        try messenger.register(map: MapHandle(2), uuid: "mpath-3600a0b80", checkStatusFits: false)
        _ = messenger.send(DMMessage(map: MapHandle(2), kind: .queueIfNoPath))
        #expect(decodedMessage(messenger).status == 0)
        #expect(field(messenger.lastMessageBuffer, offset: uuidOffset, length: Int(KEEL_DM_UUID_LEN)) == "mpath-3600a0b80")
        #expect(field(messenger.lastMessageBuffer, offset: nameOffset, length: Int(KEEL_DM_NAME_LEN)) == "")
    }

    @Test func eachMapKeepsItsOwnName() throws {
        var messenger = try nullMessenger()
        try messenger.register(map: MapHandle(0), name: "mpatha", checkStatusFits: false)
        try messenger.register(map: MapHandle(3), name: "mpathd", checkStatusFits: false)
        _ = messenger.send(DMMessage(map: MapHandle(3), kind: .failIfNoPath))
        #expect(field(messenger.lastMessageBuffer, offset: nameOffset, length: Int(KEEL_DM_NAME_LEN)) == "mpathd")
        _ = messenger.send(DMMessage(map: MapHandle(0), kind: .failIfNoPath))
        #expect(field(messenger.lastMessageBuffer, offset: nameOffset, length: Int(KEEL_DM_NAME_LEN)) == "mpatha")
    }
}

@Suite("DeviceMapper messenger refusals")
struct DeviceMapperMessengerRefusalTests {
    @Test func unregisteredMapAnswersENXIO() throws {
        var messenger = try nullMessenger()
        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .queueIfNoPath)) == ENXIO)
        #expect(messenger.send(DMMessage(map: MapHandle(999), kind: .queueIfNoPath)) == ENXIO)
    }

    @Test func unregisteredMapAnswersENXIOAgain() throws {
        var messenger = try nullMessenger()
        try messenger.register(map: MapHandle(1), name: "mpatha", checkStatusFits: false)
        messenger.unregister(map: MapHandle(1))
        #expect(!messenger.isRegistered(MapHandle(1)))
        #expect(messenger.send(DMMessage(map: MapHandle(1), kind: .queueIfNoPath)) == ENXIO)
    }

    @Test func groupZeroIsRefusedWithEINVAL() throws {
        var messenger = try nullMessenger()
        try messenger.register(map: MapHandle(0), name: "mpatha", checkStatusFits: false)
        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .switchGroup, group: 0)) == EINVAL)
        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .enableGroup, group: 1025)) == EINVAL)
    }

    @Test func nameTooLongIsRefusedAtRegister() throws {
        let messenger = try nullMessenger()
        let name = String(repeating: "m", count: Int(KEEL_DM_NAME_LEN))
        #expect(throws: DMError(map: name, operation: .register, errno: EINVAL,
                                detail: "a dm name is 1 to 127 bytes without NUL")) {
            try messenger.register(map: MapHandle(0), name: name, checkStatusFits: false)
        }
        #expect(!messenger.isRegistered(MapHandle(0)))
    }

    @Test func handlePastMapsMaxIsRefusedAtRegister() throws {
        let messenger = try nullMessenger(mapsMax: 2)
        let error = try #require(throws: DMError.self) {
            try messenger.register(map: MapHandle(2), name: "mpathc", checkStatusFits: false)
        }
        #expect(error.errno == ENOSPC)
        #expect(error.operation == .register)
    }

    @Test func registerReportsAStatusProbeFailure() throws {
        let messenger = try nullMessenger()
        let error = try #require(throws: DMError.self) {
            try messenger.register(map: MapHandle(0), name: "mpatha")
        }
        #expect(error.errno == ENOTTY)
        #expect(error.description.hasPrefix("mpatha: register: "))
        #expect(!messenger.isRegistered(MapHandle(0)))
    }

    @Test func statusOfUnregisteredMapIsENXIO() throws {
        let messenger = try nullMessenger()
        #expect(throws: SystemError("ioctl(DM_TABLE_STATUS)", errno: ENXIO)) {
            _ = try messenger.readStatus(map: MapHandle(0)).get()
        }
    }

    @Test func statusReadReportsTheIoctlErrno() throws {
        let messenger = try nullMessenger()
        try messenger.register(map: MapHandle(0), name: "mpatha", checkStatusFits: false)
        #expect(throws: SystemError("ioctl(DM_TABLE_STATUS)", errno: ENOTTY)) {
            _ = try messenger.readTable(map: MapHandle(0)).get()
        }
    }
}

@Suite("DeviceMapper errors")
struct DeviceMapperErrorTests {
    @Test func descriptionNamesMapOperationErrnoAndLibdmText() {
        let error = DMError(map: "mpatha", operation: .reload, errno: EINVAL,
                            detail: "device-mapper: reload ioctl on mpatha failed: Invalid argument")
        #expect(error.description ==
            "mpatha: reload: Invalid argument (errno 22): device-mapper: reload ioctl on mpatha failed: Invalid argument")
    }

    @Test func driverWideErrorsNameDeviceMapper() {
        #expect(DMError(map: "", operation: .armPoll, errno: ENOTTY).description
            == "device-mapper: arm poll: Inappropriate ioctl for device (errno 25)")
    }

    @Test func errnoZeroBecomesEIO() {
        #expect(DMError(map: "m", operation: .remove, errno: 0).errno == EIO)
    }

    @Test func missingControlNodeIsAnOpenError() {
        #expect(throws: DMError(map: "", operation: .open, errno: ENOENT, detail: "/nonexistent/mapper/control")) {
            _ = try DMMessenger(controlPath: "/nonexistent/mapper/control", mapsMax: 1)
        }
        #expect(throws: DMError(map: "", operation: .open, errno: ENOENT, detail: "/nonexistent/mapper/control")) {
            _ = try DMEventPoller(controlPath: "/nonexistent/mapper/control")
        }
    }

    @Test func pollerOnANonDMDescriptorFailsToArm() {
        #expect(throws: DMError(map: "", operation: .armPoll, errno: ENOTTY)) {
            _ = try DMEventPoller(controlPath: "/dev/null")
        }
    }

    /// This machine's kernel has no device-mapper: libdm must fail with a clear error, not crash,
    /// and not print to stderr.
    @Test(.enabled(if: !FileManager.default.fileExists(atPath: "/sys/module/dm_mod")
                   && ProcessInfo.processInfo.environment["KEEL_KERNEL_TESTS"] != "1"))
    func controlPlaneWithoutDeviceMapperThrowsAClearError() {
        // libdm creates /dev/mapper/control (10:236) itself, so that opening it can load dm-mod;
        // without device-mapper in the kernel the node stays useless: remove what it left.
        let hadMapperDirectory = FileManager.default.fileExists(atPath: "/dev/mapper")
        let hadControlNode = FileManager.default.fileExists(atPath: "/dev/mapper/control")
        defer {
            if !hadControlNode { unlink("/dev/mapper/control") }
            if !hadMapperDirectory { rmdir("/dev/mapper") }
        }
        let error = #expect(throws: DMError.self) { _ = try DMControl() }
        #expect(error?.operation == .version)
        #expect(error?.errno != 0)
        #expect(error?.description.hasPrefix("device-mapper: version: ") == true)
    }
}

@Suite("DeviceMapper listing diff")
struct DeviceMapperListingDiffTests {
    let a = DMMapInfo(name: "mpatha", uuid: "mpath-a", device: DevNo(major: 253, minor: 0), eventNumber: 1)
    let b = DMMapInfo(name: "mpathb", uuid: "mpath-b", device: DevNo(major: 253, minor: 1), eventNumber: 0)

    @Test func firstListingReportsEveryMapAsAdded() {
        var diff = DMListingDiff()
        #expect(diff.update([a, b]).map(\.kind) == [.added, .added])
    }

    @Test func unchangedListingReportsNothing() {
        var diff = DMListingDiff()
        _ = diff.update([a, b])
        #expect(diff.update([a, b]).isEmpty)
    }

    @Test func grownEventNumberIsAChange() {
        var diff = DMListingDiff()
        _ = diff.update([a, b])
        var a2 = a
        a2.eventNumber = 4
        #expect(diff.update([a2, b]) == [MapEventChange(name: "mpatha", uuid: "mpath-a", eventNumber: 4, kind: .changed)])
    }

    @Test func vanishedMapIsRemovedWithItsLastEventNumber() {
        var diff = DMListingDiff()
        _ = diff.update([a, b])
        #expect(diff.update([b]) == [MapEventChange(name: "mpatha", uuid: "mpath-a", eventNumber: 1, kind: .removed)])
    }

    @Test func recreatedMapUnderTheSameNameIsRemovedThenAdded() {
        var diff = DMListingDiff()
        _ = diff.update([a])
        var again = a
        again.device = DevNo(major: 253, minor: 7)
        again.eventNumber = 0
        #expect(diff.update([again]).map(\.kind) == [.removed, .added])
    }

    @Test func kernelDeviceNumbersDecodeLikeHugeEncodeDev() {
        // huge_encode_dev(MKDEV(253, 0)) and MKDEV(259, 300): minor bits above 8 go to bit 20.
        #expect(DMEventPoller.decodeDevice(253 << 8) == DevNo(major: 253, minor: 0))
        #expect(DMEventPoller.decodeDevice((259 << 8) | (300 & 0xff) | ((300 & ~0xff) << 12)) == DevNo(major: 259, minor: 300))
    }
}

@Suite struct DMReassignTests {
    @Test func aPathsDeviceWordIsReplacedWholeAndOnlyIt() {
        let path = DevNo(major: 8, minor: 32), map = DevNo(major: 253, minor: 4)
        #expect(DMReassign.rewrite(params: "8:32 0", from: path, to: map) == "253:4 0")
        #expect(DMReassign.rewrite(params: "2 8:32 2048 8:48 2048", from: path, to: map) == "2 253:4 2048 8:48 2048")
        // 8:320 and 18:32 are other devices.
        #expect(DMReassign.rewrite(params: "8:320 0", from: path, to: map) == nil)
        #expect(DMReassign.rewrite(params: "18:32 0", from: path, to: map) == nil)
        #expect(DMReassign.rewrite(params: "", from: path, to: map) == nil)
    }
}
