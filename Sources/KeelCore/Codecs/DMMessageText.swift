// DMMessage as the text the kernel's multipath_message() parses, written into caller-owned bytes.

/// Formats `DMMessage`s as dm-multipath target message text (`fail_path 8:16`,
/// `switch_group 2`, `queue_if_no_path`...) into a caller-provided buffer: no allocation, so
/// the recovery plane can send messages from preallocated ioctl buffers.
public enum DMMessageText {
    /// The longest message plus its NUL: `reinstate_path 4294967295:4294967295`.
    public static let bytesMax = 37

    /// Writes the message text and a NUL into `buffer`; returns the text's length in bytes,
    /// not counting the NUL (so `length + 1` bytes were written).
    ///
    /// Throws `.bufferTooSmall` when `buffer` cannot hold text and NUL (nothing is written
    /// then), and `.outOfRange(.groupNumber)` for a group verb whose group is not 1...1024
    /// (the kernel refuses group 0 and knows no group past 1024).
    public static func format(_ message: DMMessage, into buffer: UnsafeMutableRawBufferPointer) throws(CodecError) -> Int {
        let verb = message.kind.verb
        var needed = verb.utf8CodeUnitCount
        switch message.kind {
        case .failPath, .reinstatePath:
            needed += 1 + digitCount(UInt64(message.device.major)) + 1 + digitCount(UInt64(message.device.minor))
        case .switchGroup, .enableGroup, .disableGroup:
            let group = Int(message.group)
            guard group >= 1, group <= MultipathLimits.groupsMax else {
                throw CodecError(source: .message,
                                 problem: .outOfRange(.groupNumber, min: 1, max: MultipathLimits.groupsMax),
                                 token: TokenExcerpt(decimal: group))
            }
            needed += 1 + digitCount(UInt64(group))
        case .queueIfNoPath, .failIfNoPath:
            break
        }
        guard needed + 1 <= buffer.count else {
            throw CodecError(source: .message, problem: .bufferTooSmall(neededBytes: needed + 1, capacityBytes: buffer.count))
        }

        var at = 0
        let verbBytes = UnsafeRawBufferPointer(start: verb.utf8Start, count: verb.utf8CodeUnitCount)
        for byte in verbBytes {
            buffer[at] = byte
            at += 1
        }
        switch message.kind {
        case .failPath, .reinstatePath:
            buffer[at] = 0x20
            at += 1
            at = writeDecimal(UInt64(message.device.major), into: buffer, at: at)
            buffer[at] = 0x3A
            at += 1
            at = writeDecimal(UInt64(message.device.minor), into: buffer, at: at)
        case .switchGroup, .enableGroup, .disableGroup:
            buffer[at] = 0x20
            at += 1
            at = writeDecimal(UInt64(message.group), into: buffer, at: at)
        case .queueIfNoPath, .failIfNoPath:
            break
        }
        assert(at == needed, "message length was computed as \(needed), wrote \(at)")
        buffer[at] = 0
        return at
    }

    private static func digitCount(_ value: UInt64) -> Int {
        var n = 1
        var rest = value / 10
        while rest > 0 {
            n += 1
            rest /= 10
        }
        return n
    }

    /// Writes `value` in decimal at `offset`; returns the offset after the last digit.
    private static func writeDecimal(_ value: UInt64, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        let digits = digitCount(value)
        var rest = value
        var i = offset + digits - 1
        while i >= offset {
            buffer[i] = UInt8(truncatingIfNeeded: 0x30 + rest % 10)
            rest /= 10
            i -= 1
        }
        return offset + digits
    }
}
