// SCSI VPD pages 0x83 (device identification) and 0x80 (unit serial): WWID, serial, ALUA port ids.

/// Why a VPD page gave no identifier. Malformed pages are errors, never crashes.
public enum VPDError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer than the 4 header bytes.
    case pageTooShort(lengthBytes: Int)
    /// Byte 1 names another page than the one asked for.
    case wrongPage(expected: UInt8, found: UInt8)
    /// A designator's length runs past the end of the page (multipath-tools: EOVERFLOW).
    case designatorOverflow(offset: Int)
    /// No usable logical-unit designator, and at least one was malformed (multipath-tools: EINVAL).
    case invalidDesignator(offset: Int)
    /// The page holds no designator that names the logical unit (multipath-tools: ENODATA).
    case noLogicalUnitDesignator
    /// Page 0x80 holds an empty (or all-blank) serial number.
    case emptySerial

    public var description: String {
        switch self {
        case .pageTooShort(let n): return "VPD page too short (\(n) bytes)"
        case .wrongPage(let e, let f): return "VPD page 0x\(String(f, radix: 16)) where 0x\(String(e, radix: 16)) was expected"
        case .designatorOverflow(let o): return "VPD designator at offset \(o) runs past the page end"
        case .invalidDesignator(let o): return "invalid VPD designator at offset \(o)"
        case .noLogicalUnitDesignator: return "no logical unit designator in VPD page 0x83"
        case .emptySerial: return "empty serial number in VPD page 0x80"
        }
    }
}

/// What a designator is associated with (byte 1, bits 5-4).
@frozen
public enum VPDAssociation: UInt8, Sendable, Equatable {
    case logicalUnit = 0
    case targetPort = 1
    case targetDevice = 2
    case reserved = 3
}

/// One identification descriptor of VPD page 0x83.
public struct VPDDesignator: Equatable, Sendable {
    /// Offset of the descriptor header in the page.
    public var offset: Int
    /// Protocol identifier (byte 0, bits 7-4); meaningful only when `protocolIdentifierValid`.
    public var protocolIdentifier: UInt8
    /// Code set (byte 0, bits 3-0): 1 binary, 2 ASCII, 3 UTF-8.
    public var codeSet: UInt8
    /// PIV bit (byte 1, bit 7).
    public var protocolIdentifierValid: Bool
    public var association: VPDAssociation
    /// Designator type (byte 1, bits 3-0): 1 T10 vendor id, 2 EUI-64, 3 NAA, 4 relative target
    /// port, 5 target port group, 6 logical unit group, 7 MD5, 8 SCSI name string, 0xa UUID.
    public var type: UInt8
    /// The designator bytes, without the 4-byte descriptor header.
    public var identifier: [UInt8]

    public init(offset: Int, protocolIdentifier: UInt8, codeSet: UInt8, protocolIdentifierValid: Bool,
                association: VPDAssociation, type: UInt8, identifier: [UInt8]) {
        self.offset = offset
        self.protocolIdentifier = protocolIdentifier
        self.codeSet = codeSet
        self.protocolIdentifierValid = protocolIdentifierValid
        self.association = association
        self.type = type
        self.identifier = identifier
    }
}

/// VPD page 0x83 (Device Identification), read from sysfs `device/vpd_pg83`.
///
/// The WWID follows multipath-tools' `parse_vpd_pg83` (libmultipath/discovery.c) exactly, so maps
/// Keel builds carry the same `mpath-<wwid>` UUIDs as maps multipathd built:
/// only logical-unit designators count, ranked NAA IEEE Registered Extended (8) > NAA IEEE
/// Registered (7) > NAA IEEE Extended (6) > EUI-64 (4) > SCSI name string (3) > T10 vendor id (2)
/// > NAA locally assigned (1). That ranking is why scsi_debug's LUN is `1Linux_scsi_debug_2000`:
/// its NAA designator is locally assigned (NAA 3, rank 1), so the T10 vendor id (rank 2) wins.
public enum VPDPage83 {
    /// multipath-tools' `WWID_SIZE`: designators are cut to this many bytes, WWIDs to one less.
    public static let wwidSizeBytes = 128
    /// multipath-tools' `VPD_BUFLEN`: the most of a page that is parsed.
    public static let pageBytesMax = 4096

    /// The page's declared length bounded by the bytes at hand; validates the header.
    static func usableLength(_ page: [UInt8], pageCode: UInt8) throws(VPDError) -> Int {
        guard page.count >= 4 else { throw .pageTooShort(lengthBytes: page.count) }
        guard page[1] == pageCode else { throw .wrongPage(expected: pageCode, found: page[1]) }
        let declared = (Int(page[2]) << 8 | Int(page[3])) + 4
        return min(declared, page.count, pageBytesMax)
    }

    /// Every descriptor of the page, in order. Throws on a descriptor that runs past the page.
    public static func designators(in page: [UInt8]) throws(VPDError) -> [VPDDesignator] {
        let length = try usableLength(page, pageCode: 0x83)
        var result: [VPDDesignator] = []
        var d = 4
        while d + 4 <= length {
            let size = Int(page[d + 3])
            guard d + 4 + size <= length else { throw .designatorOverflow(offset: d) }
            result.append(VPDDesignator(
                offset: d,
                protocolIdentifier: page[d] >> 4,
                codeSet: page[d] & 0x0f,
                protocolIdentifierValid: page[d + 1] & 0x80 != 0,
                association: VPDAssociation(rawValue: (page[d + 1] >> 4) & 0x3)!,
                type: page[d + 1] & 0x0f,
                identifier: Array(page[(d + 4)..<(d + 4 + size)])))
            d += 4 + size
        }
        return result
    }

    /// The WWID multipath-tools derives from this page: `3`+hex (NAA), `2`+hex (EUI-64),
    /// `1`+text with space runs squashed to `_` (T10), or `2`/`3`/`8`+text (SCSI name string).
    public static func wwid(fromPage page: [UInt8]) throws(VPDError) -> String {
        let length = try usableLength(page, pageCode: 0x83)
        var best = -1
        var bestRank = -1
        var failure = VPDError.noLogicalUnitDesignator
        var d = 4
        while d + 4 <= length {
            let size = Int(page[d + 3])
            let association = page[d + 1] & 0x30
            var invalid = false
            var rank = -1
            if association == 0x30 {
                invalid = true
            } else if association == 0 {
                (invalid, rank) = judge(page, at: d, size: size)
            }
            if d + 4 + size > length {
                failure = .designatorOverflow(offset: d)
                break
            } else if invalid {
                failure = .invalidDesignator(offset: d)
            } else if rank > bestRank {
                best = d
                bestRank = rank
            }
            d += 4 + size
        }
        guard bestRank > 0 else { throw failure }
        let type = page[best + 1] & 0x0f
        let size = min(Int(page[best + 3]), wwidSizeBytes)
        let identifier = page[(best + 4)..<(best + 4 + size)]
        return finish(format(type: type, identifier))
    }

    /// Validity and rank of one logical-unit designator, as multipath-tools judges them.
    private static func judge(_ page: [UInt8], at d: Int, size: Int) -> (invalid: Bool, rank: Int) {
        switch page[d + 1] & 0x0f {
        case 0x3:
            // NAA: the rank and the only valid length depend on the NAA field.
            let naa = d + 4 < page.count ? page[d + 4] >> 4 : 0
            switch naa {
            case 6: return (size != 16, 8)
            case 5: return (size != 8, 7)
            case 2: return (size != 8, 6)
            case 3: return (size != 8, 1)
            default: return (true, -1)
            }
        case 0x2:
            return (size != 8 && size != 12 && size != 16, 4)
        case 0x8:
            guard size >= 4 else { return (true, 3) }
            let prefix = Array(page[(d + 4)..<min(d + 8, page.count)])
            let known = prefix == Array("eui.".utf8) || prefix == Array("naa.".utf8) || prefix == Array("iqn.".utf8)
            return (!known, 3)
        case 0x1:
            return (size < 8, 2)
        case 0x6:
            return (size != 4, -1)
        case 0x7:
            return (size != 16, -1)
        case 0x0, 0xa:
            return (false, -1)
        default:
            return (true, -1)
        }
    }

    /// The textual WWID of one designator (before the final length and NUL handling).
    static func format(type: UInt8, _ identifier: ArraySlice<UInt8>) -> [UInt8] {
        switch type {
        case 0x2, 0x3:
            var out: [UInt8] = [UInt8(ascii: "0") + type]
            for byte in identifier { out.append(hexDigit(byte >> 4)); out.append(hexDigit(byte & 0xf)) }
            return out
        case 0x8:
            let text = Array(identifier)
            let prefix = Array(text.prefix(4))
            let tag: UInt8 = prefix == Array("eui.".utf8) ? UInt8(ascii: "2")
                : prefix == Array("naa.".utf8) ? UInt8(ascii: "3") : UInt8(ascii: "8")
            // The name string is NUL-padded: the text ends at the first NUL.
            var rest = Array(text.dropFirst(4).prefix(while: { $0 != 0 }))
            if tag != UInt8(ascii: "8") { rest = rest.map(asciiLowercased) }
            return [tag] + rest
        case 0x1:
            return [UInt8(ascii: "1")] + squashSpaces(identifier)
        default:
            return []
        }
    }

    /// T10 vendor id text with every run of spaces replaced by one `_`; trailing spaces dropped
    /// (a leading run still becomes `_`), as multipath-tools and udev's scsi_id do.
    static func squashSpaces(_ text: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        var i = text.startIndex
        while i < text.endIndex {
            if text[i] == UInt8(ascii: " ") {
                var j = i
                while j < text.endIndex && text[j] == UInt8(ascii: " ") { j += 1 }
                if j < text.endIndex { out.append(UInt8(ascii: "_")) }
                i = j
            } else {
                out.append(text[i])
                i += 1
            }
        }
        return out
    }

    /// multipath-tools' last steps: the string ends at a NUL, is cut to `WWID_SIZE - 1`
    /// characters, and loses trailing blanks (`get_uid`).
    static func finish(_ bytes: [UInt8]) -> String {
        var text = Array(bytes.prefix(while: { $0 != 0 }).prefix(wwidSizeBytes - 1))
        while text.last == UInt8(ascii: " ") { text.removeLast() }
        return String(decoding: text, as: UTF8.self)
    }

    /// The target port group (designator type 5, any association), as the kernel's
    /// `scsi_vpd_tpg_id` reads it; nil when absent or the page is malformed.
    public static func targetPortGroup(in page: [UInt8]) -> UInt16? {
        portIdentifier(in: page, type: 0x5)
    }

    /// The relative target port (designator type 4), as `scsi_vpd_tpg_id` reads it.
    public static func relativeTargetPort(in page: [UInt8]) -> UInt16? {
        portIdentifier(in: page, type: 0x4)
    }

    private static func portIdentifier(in page: [UInt8], type: UInt8) -> UInt16? {
        guard let all = try? designators(in: page) else { return nil }
        guard let d = all.last(where: { $0.type == type && $0.identifier.count >= 4 }) else { return nil }
        return UInt16(d.identifier[2]) << 8 | UInt16(d.identifier[3])
    }

    /// The identifier of the target device (association 2: the SCSI target's own name), formatted
    /// like a WWID; used as the node name when the transport has none. Nil when absent.
    public static func targetDeviceName(in page: [UInt8]) -> String? {
        guard let all = try? designators(in: page) else { return nil }
        let preferred: [UInt8] = [0x8, 0x3, 0x2, 0x1]
        for type in preferred {
            if let d = all.first(where: { $0.association == .targetDevice && $0.type == type && !$0.identifier.isEmpty }) {
                let text = finish(format(type: d.type, d.identifier.prefix(wwidSizeBytes)))
                if text.count > 1 { return text }
            }
        }
        return nil
    }

    /// The WWID multipath-tools would derive from the kernel's own `device/wwid` attribute
    /// (`naa.…`, `eui.…`, `t10.…` or a SCSI name string), or nil when it is empty.
    public static func wwid(fromKernelWWID text: String) -> String? {
        let bytes = Array(SysfsFiles.trimmed(text).utf8)
        guard bytes.count > 4 else { return nil }
        let prefix = Array(bytes.prefix(4))
        let body = bytes.dropFirst(4)
        let result: [UInt8]
        if prefix == Array("t10.".utf8) {
            result = [UInt8(ascii: "1")] + squashSpaces(body)
        } else {
            // naa./eui./iqn. and other SCSI name strings take the name-string rule.
            result = format(type: 0x8, bytes[...])
        }
        let wwid = finish(result)
        return wwid.count > 1 ? wwid : nil
    }

    @inline(__always) private static func hexDigit(_ v: UInt8) -> UInt8 {
        v < 10 ? UInt8(ascii: "0") + v : UInt8(ascii: "a") + v - 10
    }

    @inline(__always) private static func asciiLowercased(_ c: UInt8) -> UInt8 {
        c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") ? c + 32 : c
    }
}

/// VPD page 0x80 (Unit Serial Number), read from sysfs `device/vpd_pg80`.
public enum VPDPage80 {
    /// The serial as multipath-tools' `parse_vpd_pg80` returns it: at most 128 bytes, leading and
    /// trailing spaces removed, ending at a NUL.
    public static func serial(fromPage page: [UInt8]) throws(VPDError) -> String {
        let length = try VPDPage83.usableLength(page, pageCode: 0x80)
        var body = page[4..<length].prefix(VPDPage83.wwidSizeBytes)
        while body.last == UInt8(ascii: " ") { body.removeLast() }
        while body.first == UInt8(ascii: " ") { body.removeFirst() }
        let text = body.prefix(while: { $0 != 0 })
        guard !text.isEmpty else { throw .emptySerial }
        return String(decoding: text, as: UTF8.self)
    }
}
