// DMMessage text: the exact bytes multipath_message() parses, NUL-terminated, in a caller's buffer.
import KeelCore
import Testing

@Suite struct CodecMessageTests {
    /// Formats into a buffer of `capacity` bytes filled with 0xEE; returns the length and the bytes.
    private func format(_ message: DMMessage, capacity: Int = 64) throws(CodecError) -> (length: Int, bytes: [UInt8]) {
        var buffer = [UInt8](repeating: 0xEE, count: capacity)
        let result: Result<Int, CodecError> = buffer.withUnsafeMutableBytes { raw in
            Result { () throws(CodecError) -> Int in try DMMessageText.format(message, into: raw) }
        }
        return (try result.get(), buffer)
    }

    private static let map = MapHandle(3)

    static let cases: [(DMMessage, String)] = [
        (DMMessage(map: map, kind: .failPath, device: DevNo(major: 8, minor: 16)), "fail_path 8:16"),
        (DMMessage(map: map, kind: .reinstatePath, device: DevNo(major: 8, minor: 16)), "reinstate_path 8:16"),
        (DMMessage(map: map, kind: .switchGroup, group: 2), "switch_group 2"),
        (DMMessage(map: map, kind: .enableGroup, group: 2), "enable_group 2"),
        (DMMessage(map: map, kind: .disableGroup, group: 2), "disable_group 2"),
        (DMMessage(map: map, kind: .queueIfNoPath), "queue_if_no_path"),
        (DMMessage(map: map, kind: .failIfNoPath), "fail_if_no_path"),
    ]

    @Test func everyKindHasACase() {
        #expect(Set(Self.cases.map(\.0.kind)) == Set(DMMessageKind.allCases))
    }

    @Test(arguments: cases)
    func formatsTheKernelsMessageText(_ message: DMMessage, _ text: String) throws {
        let (length, bytes) = try format(message)
        #expect(length == text.utf8.count)
        #expect(Array(bytes[0..<length]) == Array(text.utf8))
        #expect(bytes[length] == 0)
        #expect(bytes[length + 1] == 0xEE, "wrote past the NUL")
    }

    @Test func formatsLargeDeviceAndGroupNumbers() throws {
        let device = DMMessage(map: Self.map, kind: .reinstatePath, device: DevNo(major: 4095, minor: 1_048_575))
        let (n1, b1) = try format(device)
        #expect(String(decoding: b1[0..<n1], as: UTF8.self) == "reinstate_path 4095:1048575")
        let group = DMMessage(map: Self.map, kind: .switchGroup, group: 1024)
        let (n2, b2) = try format(group)
        #expect(String(decoding: b2[0..<n2], as: UTF8.self) == "switch_group 1024")
    }

    @Test func theLongestMessageFitsBytesMax() throws {
        let longest = DMMessage(map: Self.map, kind: .reinstatePath, device: DevNo(major: .max, minor: .max))
        let (length, bytes) = try format(longest, capacity: DMMessageText.bytesMax)
        #expect(length + 1 == DMMessageText.bytesMax)
        #expect(String(decoding: bytes[0..<length], as: UTF8.self) == "reinstate_path 4294967295:4294967295")
    }

    @Test func anExactFitSucceeds() throws {
        let message = DMMessage(map: Self.map, kind: .failPath, device: DevNo(major: 8, minor: 16))
        let (length, bytes) = try format(message, capacity: 15)
        #expect(length == 14)
        #expect(bytes[14] == 0)
    }

    @Test func aBufferOneByteShortIsAnErrorAndStaysUntouched() {
        let message = DMMessage(map: Self.map, kind: .failPath, device: DevNo(major: 8, minor: 16))
        var buffer = [UInt8](repeating: 0xEE, count: 14)
        let result: Result<Int, CodecError> = buffer.withUnsafeMutableBytes { raw in
            Result { () throws(CodecError) -> Int in try DMMessageText.format(message, into: raw) }
        }
        let error = codecError { () throws(CodecError) -> Int in try result.get() }
        #expect(error?.problem == .bufferTooSmall(neededBytes: 15, capacityBytes: 14))
        #expect(error?.source == .message)
        #expect(error?.description == "message: needs 15 bytes including its NUL, the buffer holds 14")
        #expect(buffer.allSatisfy { $0 == 0xEE })
    }

    @Test func anEmptyBufferIsAnError() {
        let error = codecError { () throws(CodecError) -> Int in
            try DMMessageText.format(DMMessage(map: Self.map, kind: .queueIfNoPath), into: UnsafeMutableRawBufferPointer(start: nil, count: 0))
        }
        #expect(error?.problem == .bufferTooSmall(neededBytes: 17, capacityBytes: 0))
    }

    @Test(arguments: [UInt16(0), 1025, .max])
    func groupNumbersOutsideTheKernelsRangeAreErrors(_ group: UInt16) {
        let error = codecError { () throws(CodecError) -> (length: Int, bytes: [UInt8]) in
            try format(DMMessage(map: Self.map, kind: .switchGroup, group: group))
        }
        #expect(error?.problem == .outOfRange(.groupNumber, min: 1, max: 1024))
        #expect(error?.token == TokenExcerpt(String(group)))
        #expect(error?.description == "message: group number must be 1...1024, found \"\(group)\"")
    }
}
