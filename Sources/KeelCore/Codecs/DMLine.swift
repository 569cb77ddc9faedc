// Whole `dmsetup table` / `dmsetup status` lines of a multipath target: `[name:] <start> <length> multipath <params>`.

/// One line of `dmsetup table` for a multipath target, e.g.
/// `mpatha: 0 131072 multipath 1 queue_if_no_path 1 alua 1 1 service-time 0 1 2 8:0 1 1`.
public struct DMTableLine: Equatable, Sendable {
    /// The map name when the line starts with `name:` (dmsetup prints it when listing all maps).
    public var name: String?
    /// First sector the target covers.
    public var startSector: UInt64
    /// Sectors the target covers.
    public var lengthSectors: UInt64
    /// The target type; always `multipath` for a parsed line.
    public var targetType: String
    /// The target's params.
    public var table: MultipathTable

    /// A line from its parts.
    public init(name: String? = nil, startSector: UInt64 = 0, lengthSectors: UInt64,
                targetType: String = "multipath", table: MultipathTable) {
        self.name = name
        self.startSector = startSector
        self.lengthSectors = lengthSectors
        self.targetType = targetType
        self.table = table
    }

    /// Parses one line. Token indexes in errors count from the line's first token.
    public static func parse(_ line: String) throws(CodecError) -> DMTableLine {
        try line.withCodecBytes { (bytes) throws(CodecError) -> DMTableLine in
            var cursor = TextCursor(bytes, source: .tableLine)
            let header = try DMLineHeader.parse(&cursor)
            let table = try MultipathTable.parse(&cursor)
            try cursor.expectEnd()
            return DMTableLine(name: header.name, startSector: header.startSector, lengthSectors: header.lengthSectors,
                               targetType: header.targetType, table: table)
        }
    }

    /// The line as `dmsetup table` prints it (with `name: ` when there is a name).
    public func render() -> String {
        DMLineHeader.render(name: name, startSector: startSector, lengthSectors: lengthSectors,
                            targetType: targetType, params: table.render())
    }
}

/// One line of `dmsetup status` for a multipath target, e.g.
/// `mpatha: 0 131072 multipath 2 0 1 0 1 1 A 0 1 2 8:0 A 0 0 1`.
public struct DMStatusLine: Equatable, Sendable {
    /// The map name when the line starts with `name:`.
    public var name: String?
    /// First sector the target covers.
    public var startSector: UInt64
    /// Sectors the target covers.
    public var lengthSectors: UInt64
    /// The target type; always `multipath` for a parsed line.
    public var targetType: String
    /// The target's status params.
    public var status: MultipathStatus

    /// A line from its parts.
    public init(name: String? = nil, startSector: UInt64 = 0, lengthSectors: UInt64,
                targetType: String = "multipath", status: MultipathStatus) {
        self.name = name
        self.startSector = startSector
        self.lengthSectors = lengthSectors
        self.targetType = targetType
        self.status = status
    }

    /// Parses one line. Token indexes in errors count from the line's first token.
    public static func parse(_ line: String) throws(CodecError) -> DMStatusLine {
        try line.withCodecBytes { (bytes) throws(CodecError) -> DMStatusLine in
            var cursor = TextCursor(bytes, source: .statusLine)
            let header = try DMLineHeader.parse(&cursor)
            var builder = StatusBuilder()
            try MultipathStatusScanner.scan(&cursor, into: &builder)
            try cursor.expectEnd()
            return DMStatusLine(name: header.name, startSector: header.startSector, lengthSectors: header.lengthSectors,
                                targetType: header.targetType, status: builder.status)
        }
    }

    /// The line as `dmsetup status` prints it (with `name: ` when there is a name).
    public func render() -> String {
        DMLineHeader.render(name: name, startSector: startSector, lengthSectors: lengthSectors,
                            targetType: targetType, params: status.render())
    }
}

/// `[name:] <start> <length> <target type>`, the part both line kinds share.
struct DMLineHeader {
    var name: String?
    var startSector: UInt64
    var lengthSectors: UInt64
    var targetType: String

    static func parse(_ c: inout TextCursor) throws(CodecError) -> DMLineHeader {
        var name: String? = nil
        var start: Int
        let first = try c.token(.startSector, at: .top)
        let firstBytes = c.bytes(first)
        if firstBytes.last == 0x3A {
            guard firstBytes.count > 1 else { throw c.error(.malformed(.deviceName), token: first, at: .top) }
            name = String(decoding: UnsafeRawBufferPointer(rebasing: firstBytes.dropLast()), as: UTF8.self)
            start = try c.number(.startSector, in: 0...Int.max, at: .top)
        } else {
            guard let value = TextCursor.decimal(firstBytes) else {
                throw c.error(.malformed(.startSector), token: first, at: .top)
            }
            guard value <= UInt64(Int.max) else {
                throw c.error(.outOfRange(.startSector, min: 0, max: Int.max), token: first, at: .top)
            }
            start = Int(value)
        }
        let length = try c.number(.lengthSectors, in: 0...Int.max, at: .top)
        let t = try c.token(.targetType, at: .top)
        let type = TextToken(bytes: c.bytes(t))
        guard type.equals("multipath") else { throw c.error(.malformed(.multipathTarget), token: t, at: .top) }
        return DMLineHeader(name: name, startSector: UInt64(start), lengthSectors: UInt64(length),
                            targetType: type.string)
    }

    static func render(name: String?, startSector: UInt64, lengthSectors: UInt64,
                       targetType: String, params: String) -> String {
        var line = name.map { "\($0): " } ?? ""
        line += "\(startSector) \(lengthSectors) \(targetType)"
        if !params.isEmpty { line += " " + params }
        return line
    }
}
