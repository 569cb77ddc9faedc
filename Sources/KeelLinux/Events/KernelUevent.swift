// A kernel uevent datagram, read without libudev: "ACTION@DEVPATH", then KEY=VALUE fields, each
// ending in a NUL.

/// What one kernel uevent datagram is to Keel.
public enum KernelUevent: Equatable, Sendable {
    /// A block disk's event (SUBSYSTEM=block, DEVTYPE=disk: what the libudev monitor's filter
    /// passes), with its record.
    case disk(UeventRecord)
    /// Another subsystem's or device type's event: skipped before anything is built.
    case other
    /// Not a uevent: no "@" header, or a disk event without ACTION or DEVPATH.
    case malformed

    /// The longest datagram taken (the kernel's own uevent buffer is 2,048 bytes of fields).
    public static let bytesMax = 8192

    /// Reads one datagram. The subsystem and device type are compared as bytes first, so the
    /// other subsystems' events (most of a SCSI scan's: scsi_device, scsi_disk, scsi_generic,
    /// bsg, the driver binds) cost a scan of their bytes and nothing more.
    public static func parse(_ bytes: UnsafeRawBufferPointer, uidAttribute: String = "ID_SERIAL") -> KernelUevent {
        let count = min(bytes.count, bytesMax)
        guard let headerEnd = (0..<count).first(where: { bytes[$0] == 0 }),
              (0..<headerEnd).contains(where: { bytes[$0] == UInt8(ascii: "@") }) else { return .malformed }
        // Field ranges (after the header), KEY=VALUE without the NUL.
        var fields: [(key: Range<Int>, value: Range<Int>)] = []
        var subsystemIsBlock = false, devtypeIsDisk = false
        var start = headerEnd + 1
        while start < count {
            var end = start
            while end < count && bytes[end] != 0 { end += 1 }
            if let equals = (start..<end).first(where: { bytes[$0] == UInt8(ascii: "=") }) {
                let key = start..<equals, value = (equals + 1)..<end
                if matches(bytes, key, "SUBSYSTEM") { subsystemIsBlock = matches(bytes, value, "block") }
                if matches(bytes, key, "DEVTYPE") { devtypeIsDisk = matches(bytes, value, "disk") }
                fields.append((key, value))
            }
            start = end + 1
        }
        guard subsystemIsBlock && devtypeIsDisk else { return .other }
        let record = UeventRecord.parse(uidAttribute: uidAttribute) { wanted in
            guard let field = fields.last(where: { matches(bytes, $0.key, wanted) }) else { return nil }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[field.value]), as: UTF8.self)
        }
        return record.map { .disk($0) } ?? .malformed
    }

    /// `parse` of an array's bytes.
    public static func parse(_ bytes: [UInt8], uidAttribute: String = "ID_SERIAL") -> KernelUevent {
        bytes.withUnsafeBytes { parse($0, uidAttribute: uidAttribute) }
    }

    private static func matches(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ text: String) -> Bool {
        var i = range.lowerBound
        for byte in text.utf8 {
            guard i < range.upperBound, bytes[i] == byte else { return false }
            i += 1
        }
        return i == range.upperBound
    }
}
