// What keelctl asks keeld for and how it reads the answers: paths and maps through multipathd's
// `show ... raw format` wildcards (one row per line, fields split on a separator no name holds),
// and Prometheus metrics text.
import KeelCore

/// One path row, from `show paths raw format`.
public struct PathRow: Sendable, Equatable {
    public var map: String
    public var dev: String
    public var devT: String
    public var hcil: String
    public var dmState: String
    public var checkerState: String
    public var devState: String
    public var priority: String
    public var checker: String
    public var nextCheck: String
    public var failures: String
    public var wwid: String

    /// The wildcards asked for, in field order.
    public static let format = ["%m", "%d", "%D", "%i", "%t", "%T", "%o", "%p", "%c", "%C", "%0", "%w"].joined(separator: Rows.separator)
    public static let headers = ["MAP", "DEV", "DEV_T", "HCIL", "DM", "CHECK", "DEVICE", "PRIO", "CHECKER", "NEXT", "FAILURES", "WWID"]

    public var fields: [String] { [map, dev, devT, hcil, dmState, checkerState, devState, priority, checker, nextCheck, failures, wwid] }
    static let keys = ["map", "dev", "dev_t", "hcil", "dm_st", "chk_st", "dev_st", "pri", "checker", "next_check", "failures", "uuid"]

    init?(_ f: [String]) {
        guard f.count == 12 else { return nil }
        (map, dev, devT, hcil, dmState, checkerState, devState, priority, checker, nextCheck, failures, wwid) =
            (f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11])
    }
}

/// One map row, from `show maps raw format`.
public struct MapRow: Sendable, Equatable {
    public var name: String
    public var wwid: String
    public var sysfs: String
    public var size: String
    public var activePaths: String
    public var queueing: String
    public var failback: String
    public var dmState: String
    public var vendor: String
    public var product: String
    public var pathFaults: String
    public var mapLoads: String

    public static let format = ["%n", "%w", "%d", "%S", "%N", "%Q", "%F", "%t", "%v", "%p", "%0", "%2"].joined(separator: Rows.separator)
    public static let headers = ["NAME", "WWID", "DM", "SIZE", "ACTIVE", "QUEUEING", "FAILBACK", "STATE", "VENDOR", "PRODUCT", "FAULTS", "LOADS"]

    public var fields: [String] { [name, wwid, sysfs, size, activePaths, queueing, failback, dmState, vendor, product, pathFaults, mapLoads] }
    static let keys = ["name", "uuid", "sysfs", "size", "paths", "queueing", "failback", "dm_st", "vend", "prod", "path_faults", "map_loads"]

    init?(_ f: [String]) {
        guard f.count == 12 else { return nil }
        (name, wwid, sysfs, size, activePaths, queueing, failback, dmState, vendor, product, pathFaults, mapLoads) =
            (f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11])
    }
}

/// Reading the answers.
public enum Rows {
    /// Between fields: no device name, WWID, state word or number holds it (map aliases and
    /// vendor strings do not in practice; a row that splits wrong is skipped, not misread).
    public static let separator = "|"

    /// The commands keelctl sends for its tables.
    public static var pathsCommand: String { "show paths raw format \"\(PathRow.format)\"" }
    public static var mapsCommand: String { "show maps raw format \"\(MapRow.format)\"" }

    public static func paths(_ answer: String) -> [PathRow] { lines(answer).compactMap { PathRow(split($0)) } }
    public static func maps(_ answer: String) -> [MapRow] { lines(answer).compactMap { MapRow(split($0)) } }

    static func lines(_ answer: String) -> [Substring] { answer.split(separator: "\n", omittingEmptySubsequences: true) }

    static func split(_ line: Substring) -> [String] {
        line.split(separator: Character(separator), omittingEmptySubsequences: false).map { String($0).trimmingSpaces() }
    }

    /// Rows as a JSON array of objects (keys are multipathd's wildcard headers).
    public static func json(_ rows: [PathRow]) -> String { json(rows.map(\.fields), keys: PathRow.keys, wrapper: "paths") }
    public static func json(_ rows: [MapRow]) -> String { json(rows.map(\.fields), keys: MapRow.keys, wrapper: "maps") }

    static func json(_ rows: [[String]], keys: [String], wrapper: String) -> String {
        var out = "{\n  \"\(wrapper)\": ["
        for (i, row) in rows.enumerated() {
            out += i == 0 ? "\n    {" : ",\n    {"
            out += zip(keys, row).map { "\(MultipathdViews.quoted($0)): \(MultipathdViews.quoted($1))" }.joined(separator: ", ")
            out += "}"
        }
        out += rows.isEmpty ? "]\n}\n" : "\n  ]\n}\n"
        return out
    }
}

/// Prometheus text exposition read back: `name{labels}` → value.
public struct MetricSamples: Sendable, Equatable {
    public var values: [String: Double] = [:]

    public init(_ text: String) {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = value
        }
    }

    public subscript(_ key: String) -> Double? { values[key] }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
