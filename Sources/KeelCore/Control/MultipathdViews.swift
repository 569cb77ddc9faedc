// What the multipathd socket shows, in multipathd's shapes: the `show paths` / `show maps`
// tables and their format wildcards, `show topology` (the `multipath -ll` tree), and the JSON
// that libdmmp reads. Pure functions over a snapshot the daemon takes.

/// One path as the operator sees it.
public struct PathView: Sendable, Equatable {
    /// `H:C:T:L`.
    public var hcil: String
    /// Kernel name (`sdb`).
    public var dev: String
    /// `major:minor`.
    public var devT: String
    /// The kernel's view in the map's status: "active", "failed" or "undef".
    public var dmState: String
    /// The checker's last word: "ready", "faulty", "ghost", "shaky", "i/o pending",
    /// "i/o timeout", "delayed" or "undef".
    public var checkerState: String
    /// The SCSI device state: "running", "offline", ...
    public var devState: String
    public var priority: Int
    /// The checker's name (`tur`, `directio`, `none`).
    public var checker: String
    public var wwid: String
    public var vendor: String
    public var product: String
    public var revision: String
    public var serial: String
    /// The map it is in ("[orphan]" when none).
    public var map: String
    /// Times the kernel failed it.
    public var failures: Int
    /// Keel's note on a check still in the kernel after its deadline.
    public var orphanedCheck: Bool
    /// Marked marginal by the operator (`%M`, `marginal_st`).
    public var marginal = false
    /// The LUN's size in 512-byte sectors (`%S`).
    public var sizeSectors: UInt64 = 0
    /// multipathd's protocol name (`%P`): "scsi:fcp", "scsi:iscsi", "scsi:unspec", ...
    public var protocolName = "scsi:unspec"
    /// FC host and target port names (`%N` `%R` `%r`), the target's node name (`%n`: FC WWNN,
    /// iSCSI target name, SAS address), the host adapter (`%a`: PCI slot, or the iSCSI
    /// initiator's address). "[undef]" where the transport has none, "[unknown]" where sysfs
    /// should have had one and did not.
    public var hostWWNN = "[undef]"
    public var targetWWNN = "[undef]"
    public var hostWWPN = "[undef]"
    public var targetWWPN = "[undef]"
    public var hostAdapter = "[undef]"
    /// The ALUA target port group (`%A`), when the map uses port groups.
    public var targetPortGroup: UInt16? = nil
    /// `queue/max_sectors_kb` (`%k`); nil: not readable.
    public var maxSectorsKB: Int? = nil
    /// Discovery's progress (`%I`): "ok" for a path in a map.
    public var initState = "ok"

    public init(hcil: String, dev: String, devT: String, dmState: String, checkerState: String, devState: String, priority: Int,
                checker: String, wwid: String = "", vendor: String = "", product: String = "", revision: String = "",
                serial: String = "", map: String = "", failures: Int = 0, orphanedCheck: Bool = false) {
        self.hcil = hcil
        self.dev = dev
        self.devT = devT
        self.dmState = dmState
        self.checkerState = checkerState
        self.devState = devState
        self.priority = priority
        self.checker = checker
        self.wwid = wwid
        self.vendor = vendor
        self.product = product
        self.revision = revision
        self.serial = serial
        self.map = map
        self.failures = failures
        self.orphanedCheck = orphanedCheck
    }
}

/// One path group of a map, as the kernel's table and status give it.
public struct GroupView: Sendable, Equatable {
    /// The selector with its arguments (`service-time 0`).
    public var selector: String
    /// Average priority of its usable paths (multipathd's group priority).
    public var priority: Int
    /// "active", "enabled", "disabled" or "undef".
    public var dmState: String
    public var paths: [PathView]
    /// A group of marginal paths (`marginal_pathgroups`).
    public var marginal = false

    public init(selector: String, priority: Int, dmState: String, paths: [PathView]) {
        self.selector = selector
        self.priority = priority
        self.dmState = dmState
        self.paths = paths
    }
}

/// One map as the operator sees it.
public struct MapView: Sendable, Equatable {
    public var name: String
    public var wwid: String
    /// `dm-N`.
    public var sysfs: String
    public var sizeSectors: UInt64
    /// As the table carries them (`1 queue_if_no_path`).
    public var features: String
    public var hardwareHandler: String
    public var writeProtected: Bool
    /// "active" or "suspend".
    public var dmState: String
    /// multipathd's queueing words: "on", "off", "N chk", "-".
    public var queueing: String
    public var failback: String
    public var vendor: String
    public var product: String
    public var revision: String
    public var groups: [GroupView]
    /// Path failures the kernel counted, and table loads.
    public var pathFaults: Int
    public var mapLoads: Int
    /// The recovery statistics (`%1` `%3` `%4` `%x`).
    public var groupSwitches = 0
    public var queueingSeconds = 0
    public var queueingTimeouts = 0
    public var mapFailures = 0
    /// The map device's `queue/max_sectors_kb` (`%k`); nil: not readable.
    public var maxSectorsKB: Int? = nil
    /// What the daemon did to set the map up (`%A`): "create", or "" for a map it adopted.
    public var action = ""

    public init(name: String, wwid: String, sysfs: String, sizeSectors: UInt64, features: String, hardwareHandler: String,
                writeProtected: Bool = false, dmState: String = "active", queueing: String, failback: String,
                vendor: String, product: String, revision: String = "", groups: [GroupView], pathFaults: Int = 0, mapLoads: Int = 0) {
        self.name = name
        self.wwid = wwid
        self.sysfs = sysfs
        self.sizeSectors = sizeSectors
        self.features = features
        self.hardwareHandler = hardwareHandler
        self.writeProtected = writeProtected
        self.dmState = dmState
        self.queueing = queueing
        self.failback = failback
        self.vendor = vendor
        self.product = product
        self.revision = revision
        self.groups = groups
        self.pathFaults = pathFaults
        self.mapLoads = mapLoads
    }

    /// Paths the kernel has active.
    public var activePaths: Int { groups.reduce(0) { $0 + $1.paths.filter { $0.dmState == "active" }.count } }
    public var paths: [PathView] { groups.flatMap(\.paths) }
}

/// multipathd's output shapes.
public enum MultipathdViews {
    /// `show paths`' default format.
    public static let pathsFormat = "%i %d %D %p %t %T %o %C"
    /// `show maps`' default format.
    public static let mapsFormat = "%n %d %w"
    /// `show maps status`.
    public static let mapsStatusFormat = "%n %F %Q %N %t %r"

    /// A path wildcard's column header and value; nil for a letter that is not one.
    public static func pathField(_ letter: Character, _ p: PathView) -> (header: String, value: String)? {
        switch letter {
        case "w": return ("uuid", p.wwid)
        case "i": return ("hcil", p.hcil)
        case "d": return ("dev", p.dev)
        case "D": return ("dev_t", p.devT)
        case "t": return ("dm_st", p.dmState)
        case "o": return ("dev_st", p.devState)
        case "T": return ("chk_st", p.checkerState)
        // multipathd 0.9.4 prints vendor and product only under this header (later ones add the revision).
        case "s": return ("vend/prod/rev", "\(orHashes(p.vendor)),\(orHashes(p.product))")
        case "c": return ("checker", p.checker)
        case "C": return ("next_check", p.orphanedCheck ? "orphan" : "-")
        case "p": return ("pri", "\(p.priority)")
        case "S": return ("size", size(p.sizeSectors))
        case "z": return ("serial", p.serial)
        case "M": return ("marginal_st", p.marginal ? "marginal" : "normal")
        case "m": return ("multipath", p.map)
        case "N": return ("host WWNN", p.hostWWNN)
        case "n": return ("target WWNN", p.targetWWNN)
        case "R": return ("host WWPN", p.hostWWPN)
        case "r": return ("target WWPN", p.targetWWPN)
        case "a": return ("host adapter", p.hostAdapter)
        case "G": return ("foreign", "--")
        case "g": return ("vpd page data", "[undef]")
        case "0": return ("failures", "\(p.failures)")
        case "P": return ("protocol", p.protocolName)
        case "I": return ("init_st", p.initState)
        case "L": return ("LUN hex", lunHex(p.hcil))
        case "A": return ("TPG", p.targetPortGroup.map { "0x" + hex($0, digits: 4) } ?? "[undef]")
        case "k": return ("max_sectors_kb", p.maxSectorsKB.map(String.init) ?? "n/a")
        default: return nil
        }
    }

    /// A map wildcard's column header and value; nil for a letter that is not one.
    public static func mapField(_ letter: Character, _ m: MapView) -> (header: String, value: String)? {
        switch letter {
        case "n": return ("name", m.name)
        case "w": return ("uuid", m.wwid)
        case "d": return ("sysfs", m.sysfs)
        case "F": return ("failback", m.failback)
        case "Q": return ("queueing", m.queueing)
        case "N": return ("paths", "\(m.activePaths)")
        case "r": return ("write_prot", m.writeProtected ? "ro" : "rw")
        case "t": return ("dm-st", m.dmState)
        case "S": return ("size", size(m.sizeSectors))
        case "f": return ("features", m.features)
        case "x": return ("failures", "\(m.mapFailures)")
        case "h": return ("hwhandler", m.hardwareHandler)
        case "A": return ("action", m.action)
        case "0": return ("path_faults", "\(m.pathFaults)")
        case "1": return ("switch_grp", "\(m.groupSwitches)")
        case "2": return ("map_loads", "\(m.mapLoads)")
        case "3": return ("total_q_time", "\(m.queueingSeconds)")
        case "4": return ("q_timeouts", "\(m.queueingTimeouts)")
        case "s": return ("vend/prod", "\(orHashes(m.vendor)),\(orHashes(m.product))")
        case "v": return ("vend", orHashes(m.vendor))
        case "p": return ("prod", orHashes(m.product))
        case "e": return ("rev", orHashes(m.revision))
        case "G": return ("foreign", "--")
        case "g": return ("vpd page data", "[undef]")
        case "k": return ("max_sectors_kb", m.maxSectorsKB.map(String.init) ?? "n/a")
        default: return nil
        }
    }

    /// The letters of every wildcard, in multipathd's order.
    public static let mapLetters = "nwdFQNrtSfxhA01234svpeGgk"
    public static let pathLetters = "widDtoTscCpSzMmNnRraGg0PILAk"

    /// `show wildcards`: each letter with its column header.
    public static func wildcards() -> String {
        var out = "multipath format wildcards:\n"
        let map = MapView(name: "", wwid: "", sysfs: "", sizeSectors: 0, features: "", hardwareHandler: "", queueing: "", failback: "",
                          vendor: "", product: "", groups: [])
        for letter in mapLetters { if let f = mapField(letter, map) { out += "%\(letter)  \(f.header)\n" } }
        out += "\npath format wildcards:\n"
        let path = PathView(hcil: "", dev: "", devT: "", dmState: "", checkerState: "", devState: "", priority: 0, checker: "")
        for letter in pathLetters { if let f = pathField(letter, path) { out += "%\(letter)  \(f.header)\n" } }
        return out
    }

    /// multipathd prints `##` for an inquiry field the device left empty.
    static func orHashes(_ s: String) -> String { s.isEmpty ? "##" : s }

    static func hex<T: BinaryInteger>(_ value: T, digits: Int) -> String {
        let h = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - h.count)) + h
    }

    /// `%L`: the LUN of `H:C:T:L` as the 8-byte SCSI LUN the kernel sends (`int_to_scsilun`:
    /// each 16-bit level swapped into place), in hex; all ones when the address is unknown.
    public static func lunHex(_ hcil: String) -> String {
        let parts = hcil.split(separator: ":")
        guard parts.count == 4, let lun = UInt64(parts[3]) else { return "0x" + hex(UInt64.max, digits: 16) }
        let swapped = (lun & 0xffff) << 48 | (lun & 0xffff_0000) << 16 | (lun & 0xffff_0000_0000) >> 16 | (lun & 0xffff_0000_0000_0000) >> 48
        return "0x" + hex(swapped, digits: 16)
    }

    /// The pieces of a format: literal text and wildcard letters. A `%` before a letter that is
    /// not a wildcard is dropped with the letter, as multipathd does; a `%` at the end is kept
    /// as text (multipathd reads past the end there).
    enum Piece: Equatable {
        case text(String)
        case field(Character)
    }

    static func pieces(_ format: String, known: (Character) -> Bool) -> [Piece] {
        var out: [Piece] = []
        var text = ""
        var chars = format.makeIterator()
        while let c = chars.next() {
            guard c == "%" else {
                text.append(c)
                continue
            }
            guard let letter = chars.next() else {
                text.append("%")
                break
            }
            if known(letter) {
                if !text.isEmpty { out.append(.text(text)) }
                text = ""
                out.append(.field(letter))
            }
        }
        if !text.isEmpty { out.append(.text(text)) }
        return out
    }

    /// Rows in `format` with a header line, every column as wide as its widest cell (multipathd's
    /// layout); `raw` drops the header and the padding.
    static func table<T>(_ items: [T], format: String, raw: Bool, field: (Character, T) -> (header: String, value: String)?) -> String {
        if items.isEmpty { return "" }
        // A letter is a wildcard when it names a field (the same for every item).
        let first = items[0]
        let parts = pieces(format, known: { field($0, first) != nil })
        var rows: [[String]] = []
        var headers: [String] = []
        for piece in parts {
            switch piece {
            case .text(let t): headers.append(t)
            case .field(let letter): headers.append(field(letter, first)?.header ?? "")
            }
        }
        for item in items {
            rows.append(parts.map { piece in
                switch piece {
                case .text(let t): return t
                case .field(let letter): return field(letter, item)?.value ?? ""
                }
            })
        }
        if raw { return rows.map { $0.joined() }.joined(separator: "\n") + (rows.isEmpty ? "" : "\n") }
        var widths = headers.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            var s = ""
            for (i, cell) in cells.enumerated() {
                if case .text = parts[i] { s += cell } else { s += cell + String(repeating: " ", count: widths[i] - cell.count) }
            }
            while s.hasSuffix(" ") { s.removeLast() }
            return s
        }
        var lines = [line(headers)]
        for row in rows { lines.append(line(row)) }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `show paths [raw] format F`.
    public static func paths(_ paths: [PathView], format: String = pathsFormat, raw: Bool = false) -> String {
        table(paths, format: format, raw: raw, field: pathField)
    }

    /// `show maps [raw] format F`.
    public static func maps(_ maps: [MapView], format: String = mapsFormat, raw: Bool = false) -> String {
        table(maps, format: format, raw: raw, field: mapField)
    }

    /// `show path P` (P a kernel name, `/dev/` name or major:minor): the path's `%o` field
    /// (device state) and a newline, as multipathd prints it; nil when there is no such path.
    public static func path(_ name: String, in paths: [PathView]) -> String? {
        let wanted = name.hasPrefix("/dev/") ? String(name.dropFirst(5)) : name
        guard let path = paths.first(where: { $0.dev == wanted || $0.devT == wanted }) else { return nil }
        return Self.paths([path], format: "%o", raw: true)
    }

    /// `show map X [raw] format F`: the line of the map named (or with the WWID) `name`, without
    /// a header; padded as in the table of every map unless `raw`. Nil when there is no such map.
    public static func map(_ name: String, in maps: [MapView], format: String, raw: Bool = false) -> String? {
        guard let index = maps.firstIndex(where: { $0.name == name || $0.wwid == name }) else { return nil }
        if raw { return Self.maps([maps[index]], format: format, raw: true) }
        let lines = Self.maps(maps, format: format).split(separator: "\n", omittingEmptySubsequences: false)
        return 1 + index < lines.count ? String(lines[1 + index]) + "\n" : nil
    }

    /// multipathd's size: whole KiB in single precision, divided down to M, G, T or P while
    /// 1024 or more, printed with one decimal below 10 and none from 10 (`8.0M`, `100G`).
    public static func size(_ sectors: UInt64) -> String {
        var value = Float(sectors >> 1)
        let units: [Character] = ["K", "M", "G", "T", "P"]
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if value < 10 {
            let tenths = Int((value * 10).rounded(.toNearestOrEven))
            return "\(tenths / 10).\(tenths % 10)\(units[unit])"
        }
        return "\(Int(value.rounded(.toNearestOrEven)))\(units[unit])"
    }

    /// `show topology` / `multipath -ll`: the map line, its size line, then each group with its
    /// paths as a tree.
    public static func topology(_ maps: [MapView]) -> String {
        var out = ""
        for m in maps {
            out += m.name == m.wwid ? m.name : "\(m.name) (\(m.wwid))"
            out += " \(m.sysfs) \(m.vendor),\(m.product)\n"
            out += "size=\(size(m.sizeSectors)) features='\(m.features)' hwhandler='\(m.hardwareHandler)' wp=\(m.writeProtected ? "ro" : "rw")\n"
            for (g, group) in m.groups.enumerated() {
                let lastGroup = g == m.groups.count - 1
                out += (lastGroup ? "`-+- " : "|-+- ") + "policy='\(group.selector)' prio=\(group.priority) status=\(group.dmState)\n"
                for (p, path) in group.paths.enumerated() {
                    let lastPath = p == group.paths.count - 1
                    out += (lastGroup ? "  " : "| ") + (lastPath ? "`- " : "|- ")
                    out += "\(path.hcil) \(path.dev) \(path.devT) \(path.dmState) \(path.checkerState) \(path.devState)\n"
                }
            }
        }
        return out
    }

    /// `show status`: how many paths the checker has in each state.
    public static func status(_ paths: [PathView]) -> String {
        var counts: [String: Int] = [:]
        for p in paths { counts[p.checkerState, default: 0] += 1 }
        var out = "path checker states:\n"
        for state in ["up", "down", "ghost", "pending", "delayed", "undef"] {
            let word: String
            switch state {
            case "up": word = "ready"
            case "down": word = "faulty"
            case "pending": word = "i/o pending"
            default: word = state
            }
            if let n = counts[word] { out += "\(state) \(n)\n" }
        }
        out += "\npaths: \(paths.count)\nbusy: False\n"
        return out
    }

    // MARK: - JSON

    /// `show maps json`: multipath-tools' schema, version 0.1.
    public static func json(_ maps: [MapView]) -> String {
        var out = "{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"maps\": ["
        for (i, m) in maps.enumerated() {
            out += i == 0 ? "\n" : ",\n"
            out += mapJSON(m, indent: "      ")
        }
        out += maps.isEmpty ? "]\n}\n" : "\n   ]\n}\n"
        return out
    }

    /// `show map X json`.
    public static func json(map m: MapView) -> String {
        "{\n   \"major_version\": 0,\n   \"minor_version\": 1,\n   \"map\":\n" + mapJSON(m, indent: "      ") + "\n}\n"
    }

    static func mapJSON(_ m: MapView, indent: String) -> String {
        var fields: [String] = [
            pair("name", m.name), pair("uuid", m.wwid), pair("sysfs", m.sysfs), pair("failback", m.failback),
            pair("queueing", m.queueing), pair("paths", m.paths.count), pair("write_prot", m.writeProtected ? "ro" : "rw"),
            pair("dm_st", m.dmState), pair("features", m.features), pair("hwhandler", m.hardwareHandler),
            pair("action", m.action), pair("path_faults", m.pathFaults), pair("vend", orHashes(m.vendor)), pair("prod", orHashes(m.product)),
            pair("rev", orHashes(m.revision)), pair("switch_grp", m.groupSwitches), pair("map_loads", m.mapLoads),
            pair("total_q_time", m.queueingSeconds), pair("q_timeouts", m.queueingTimeouts),
        ]
        var groups: [String] = []
        for (g, group) in m.groups.enumerated() {
            var paths: [String] = []
            for p in group.paths {
                let pathFields = [
                    pair("dev", p.dev), pair("dev_t", p.devT), pair("dm_st", p.dmState), pair("dev_st", p.devState),
                    pair("chk_st", p.checkerState), pair("checker", p.checker), pair("pri", p.priority),
                    pair("host_wwnn", p.hostWWNN), pair("target_wwnn", p.targetWWNN), pair("host_wwpn", p.hostWWPN),
                    pair("target_wwpn", p.targetWWPN), pair("host_adapter", p.hostAdapter), pair("lun_hex", lunHex(p.hcil)),
                    pair("marginal_st", p.marginal ? "marginal" : "normal"),
                ]
                paths.append(object(pathFields, indent: indent + "            "))
            }
            let groupFields = [
                pair("selector", group.selector), pair("pri", group.priority), pair("dm_st", group.dmState),
                pair("marginal_st", group.marginal ? "marginal" : "normal"), pair("group", g + 1),
                "\"paths\": [" + (paths.isEmpty ? "]" : "\n" + paths.joined(separator: ",\n") + "\n" + indent + "         ]"),
            ]
            groups.append(object(groupFields, indent: indent + "      "))
        }
        fields.append("\"path_groups\": [" + (groups.isEmpty ? "]" : "\n" + groups.joined(separator: ",\n") + "\n" + indent + "   ]"))
        return object(fields, indent: indent)
    }

    static func object(_ fields: [String], indent: String) -> String {
        indent + "{\n" + fields.map { indent + "   " + $0 }.joined(separator: ",\n") + "\n" + indent + "}"
    }

    static func pair(_ key: String, _ value: String) -> String { "\"\(key)\" : " + quoted(value) }
    static func pair(_ key: String, _ value: Int) -> String { "\"\(key)\" : \(value)" }

    /// A JSON string: quotes, backslashes and control characters escaped (multipathd writes its
    /// values unescaped; a map name with a quote would break its JSON).
    public static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    out += "\\u" + hex(u.value, digits: 4)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
