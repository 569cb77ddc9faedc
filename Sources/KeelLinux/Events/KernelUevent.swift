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
        let fields = UnsafeRawBufferPointer(rebasing: bytes[0..<min(bytes.count, bytesMax)])
        guard let headerEnd = fields.firstIndex(of: 0), fields[..<headerEnd].contains(UInt8(ascii: "@")) else { return .malformed }
        let body = UnsafeRawBufferPointer(rebasing: fields[(headerEnd + 1)...])
        guard let subsystem = value(of: "SUBSYSTEM", in: body), matches(body, subsystem, "block"),
              let devtype = value(of: "DEVTYPE", in: body), matches(body, devtype, "disk") else { return .other }
        let record = UeventRecord.parse(uidAttribute: uidAttribute) { key in
            value(of: key, in: body).map { String(decoding: UnsafeRawBufferPointer(rebasing: body[$0]), as: UTF8.self) }
        }
        return record.map { .disk($0) } ?? .malformed
    }

    /// Where the last `key=` field's value lies in `body` (NUL-separated KEY=VALUE fields; the
    /// last may lack its NUL), or nil.
    private static func value(of key: String, in body: UnsafeRawBufferPointer) -> Range<Int>? {
        var found: Range<Int>?
        var start = 0
        while start < body.count {
            let end = body[start...].firstIndex(of: 0) ?? body.count
            if let equals = body[start..<end].firstIndex(of: UInt8(ascii: "=")), matches(body, start..<equals, key) {
                found = (equals + 1)..<end
            }
            start = end + 1
        }
        return found
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
