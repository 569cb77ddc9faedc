// The operator command line: multipathd's grammar (keywords in any order, a parameter after the
// keyword that takes one, multipathd's synonyms), parsed into a request before anything acts.

/// What an operator asked for.
public enum ControlRequest: Sendable, Equatable {
    case showDaemon
    case showMaps
    case showPaths
    /// `show paths [raw] format F`.
    case showPathsFormat(String, raw: Bool)
    /// `show path P`: the path's device state, as multipathd answers it (`%o`).
    case showPath(String)
    /// `show maps [raw] format F`.
    case showMapsFormat(String, raw: Bool)
    /// `show map X [raw] format F`: that map's line (no header), padded as in the whole table.
    case showMapFormat(map: String, format: String, raw: Bool)
    /// `show maps status`, `show maps stats`.
    case showMapsStatus
    case showMapsStats
    /// `show [maps] topology` (nil) or `show map X topology`.
    case showTopology(map: String?)
    /// `show maps json` (nil) or `show map X json`.
    case showJSON(map: String?)
    case showStatus
    /// `show config [local]`.
    case showConfig
    case showBlacklist
    case showDevices
    case showWildcards
    /// `show metrics` (Keel): Prometheus text exposition.
    case showMetrics
    case reconfigure
    case shutdown
    /// `quit` / `exit`: the client is done (the connection closes).
    case quit
    /// `fail path DEV` / `reinstate path DEV`: DEV is a kernel name (sdb) or MAJ:MIN.
    case failPath(String)
    case reinstatePath(String)
    /// `disablequeueing map NAME` / `restorequeueing map NAME`: NAME is a map name or WWID.
    case disableQueueing(map: String)
    case restoreQueueing(map: String)
    /// `disablequeueing maps` / `restorequeueing maps`.
    case disableQueueingAll
    case restoreQueueingAll
    /// `switchgroup map NAME group N` (1-based).
    case switchGroup(map: String, group: Int)
    /// `reload map NAME`: the map's table is built and loaded again.
    case reloadMap(String)
    /// `forcequeueing daemon`: maps keep queueing when the daemon stops, whatever
    /// `queue_without_daemon` says; `restorequeueing daemon` undoes it.
    case forceQueueingDaemon
    case restoreQueueingDaemon
    /// `add path DEV`: the device is discovered and joins its map (or a new one) as an `add`
    /// uevent would; `del path DEV`: it leaves its map and is not checked any more (until an
    /// `add` uevent or `add path`).
    case addPath(String)
    case delPath(String)
    /// `add map M`: a map for M (a WWID, an alias, or one of its path devices), whatever
    /// find_multipaths says. `del map M` / `del maps`: the map is removed from the kernel
    /// (refused while it is open) and its paths are not checked any more.
    case addMap(String)
    case delMap(String)
    case delMaps
    /// `suspend map M` / `resume map M` (noflush).
    case suspendMap(String)
    case resumeMap(String)
    /// `resize map M`: the map takes its paths' current size.
    case resizeMap(String)
    /// `reset map M stats` / `reset maps stats` (nil): the map's counters start again from 0.
    case resetStats(map: String?)
    /// `reset map M` (multipathd's reassign): device-mapper devices built on M's path devices
    /// (a linear or LVM volume made before the map) are moved onto the map.
    case reassignMap(String)
    /// `getprstatus map M`: whether mpathpersist registered M's paths ("1" or "0", as multipathd
    /// 0.9.4 answers); `setprstatus` / `unsetprstatus map M` record it.
    case getPRStatus(map: String)
    case setPRStatus(map: String)
    case unsetPRStatus(map: String)
    /// `getprkey map M`: M's reservation key (`0x...[:aptpl]` or `none`); `setprkey map M key K`
    /// and `unsetprkey map M` store it in the prkeys file (`reservation_key file`).
    case getPRKey(map: String)
    case setPRKey(map: String, key: String)
    case unsetPRKey(map: String)
    /// `setmarginal path P` / `unsetmarginal path P`: P is marked marginal or normal; with
    /// `marginal_pathgroups` its map is regrouped. `unsetmarginal map M`: every path of M normal.
    case setMarginal(path: String)
    case unsetMarginal(path: String)
    case unsetMarginalMap(String)
    /// A multipathd command Keel knows but does not carry out; the text names it.
    case unsupported(String)

    /// Whether any user may ask it (multipathd lets non-root users `list`/`show` only).
    public var readOnly: Bool {
        switch self {
        case .showDaemon, .showMaps, .showPaths, .showPathsFormat, .showPath, .showMapsFormat, .showMapFormat, .showMapsStatus, .showMapsStats,
             .showTopology, .showJSON, .showStatus, .showConfig, .showBlacklist, .showDevices, .showWildcards, .showMetrics, .quit,
             .getPRStatus, .getPRKey:
            return true
        default:
            return false
        }
    }
}

/// Why a command line was refused; `description` is the text the client gets.
public struct ControlParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Parses operator command lines. Bounded: a line longer than `lineBytesMax` or with more than
/// `wordsMax` words is refused before it is split, so a hostile client costs nothing.
public enum ControlGrammar {
    public static let lineBytesMax = 512
    public static let wordsMax = 16
    public static let commandList = """
        show paths, show paths [raw] format F, show maps, show maps [raw] format F, show maps status, show maps stats, \
        show [maps] topology, show map M topology, show maps json, show map M json, show status, show daemon, show config, \
        show blacklist, show devices, show wildcards, show metrics, fail path P, reinstate path P, switchgroup map M group N, \
        add path P, del path P, add map M, del map M, del maps, suspend map M, resume map M, resize map M, reload map M, \
        reset map M stats, reset maps stats, reset map M, disablequeueing map M|maps|daemon, restorequeueing map M|maps|daemon, \
        forcequeueing daemon, getprstatus map M, setprstatus map M, unsetprstatus map M, getprkey map M, \
        setprkey map M key K, unsetprkey map M, setmarginal path P, unsetmarginal path P, unsetmarginal map M, \
        reconfigure, shutdown, quit \
        (list = show, multipath = map, multipaths = maps, switch = switchgroup, exit = quit)
        """

    /// Keywords followed by a parameter.
    static let takesParameter: Set<String> = ["path", "map", "group", "format", "key", "pathlist"]
    /// multipathd's synonyms, mapped to one spelling.
    static let synonyms: [String: String] = [
        "list": "show", "remove": "del", "multipath": "map", "multipaths": "maps", "switch": "switchgroup",
        "exit": "quit", "disable": "disablequeueing", "restore": "restorequeueing",
    ]
    /// Every keyword (after synonyms); anything else in keyword position is an error.
    static let keywords: Set<String> = [
        "show", "add", "del", "switchgroup", "suspend", "resume", "reinstate", "fail", "resize", "reset", "reload",
        "forcequeueing", "disablequeueing", "restorequeueing", "paths", "maps", "path", "map", "group", "reconfigure",
        "daemon", "status", "stats", "topology", "config", "blacklist", "devices", "raw", "wildcards", "quit",
        "shutdown", "getprstatus", "setprstatus", "unsetprstatus", "format", "json", "getprkey", "setprkey",
        "unsetprkey", "key", "local", "setmarginal", "unsetmarginal", "all", "getprhold", "setprhold", "unsetprhold",
        "pathlist", "metrics",
    ]

    /// Splits a line into words; a `"..."` word may hold blanks (multipathd's client quotes a
    /// format argument that has them).
    static func words(_ line: String) -> [String]? {
        var words: [String] = []
        var current = ""
        var inQuotes = false
        var started = false
        for c in line {
            if inQuotes {
                if c == "\"" { inQuotes = false } else { current.append(c) }
            } else if c == "\"" {
                inQuotes = true
                started = true
            } else if c == " " || c == "\t" || c == "\r" || c == "\n" {
                if started { words.append(current) }
                current = ""
                started = false
            } else {
                current.append(c)
                started = true
            }
            if words.count > wordsMax { return nil }
        }
        if started { words.append(current) }
        return words.count > wordsMax ? nil : words
    }

    public static func parse(_ line: String) -> Result<ControlRequest, ControlParseError> {
        let bytes = line.utf8.count
        guard bytes <= lineBytesMax else {
            return .failure(ControlParseError("command of \(bytes) bytes, longer than \(lineBytesMax)"))
        }
        guard let words = words(line) else {
            return .failure(ControlParseError("command of more than \(wordsMax) words"))
        }
        if words.isEmpty { return .failure(ControlParseError("empty command")) }
        var seen: Set<String> = []
        var parameters: [String: String] = [:]
        var i = 0
        while i < words.count {
            let word = synonyms[words[i]] ?? words[i]
            guard keywords.contains(word) else { return .failure(unknown(line)) }
            guard seen.insert(word).inserted else { return .failure(unknown(line)) }
            if takesParameter.contains(word) {
                guard i + 1 < words.count else {
                    return .failure(ControlParseError("'\(word)' needs a value; commands: \(commandList)"))
                }
                parameters[word] = words[i + 1]
                i += 2
            } else {
                i += 1
            }
        }
        guard let request = request(seen, parameters) else { return .failure(unknown(line)) }
        return .success(request)
    }

    private static func request(_ k: Set<String>, _ p: [String: String]) -> ControlRequest? {
        let raw = k.contains("raw")
        switch k {
        case ["show", "daemon"]: return .showDaemon
        case ["show", "maps"]: return .showMaps
        case ["show", "paths"]: return .showPaths
        case ["show", "paths", "format"], ["show", "paths", "raw", "format"]: return .showPathsFormat(p["format"]!, raw: raw)
        case ["show", "maps", "format"], ["show", "maps", "raw", "format"]: return .showMapsFormat(p["format"]!, raw: raw)
        case ["show", "map", "format"], ["show", "map", "raw", "format"]: return .showMapFormat(map: p["map"]!, format: p["format"]!, raw: raw)
        case ["show", "path"]: return .showPath(p["path"]!)
        case ["show", "maps", "status"]: return .showMapsStatus
        case ["show", "maps", "stats"]: return .showMapsStats
        case ["show", "topology"], ["show", "maps", "topology"]: return .showTopology(map: nil)
        case ["show", "map", "topology"]: return .showTopology(map: p["map"])
        case ["show", "maps", "json"]: return .showJSON(map: nil)
        case ["show", "map", "json"]: return .showJSON(map: p["map"])
        case ["show", "status"]: return .showStatus
        case ["show", "config"], ["show", "config", "local"]: return .showConfig
        case ["show", "blacklist"]: return .showBlacklist
        case ["show", "devices"]: return .showDevices
        case ["show", "wildcards"]: return .showWildcards
        case ["show", "metrics"]: return .showMetrics
        case ["reconfigure"], ["reconfigure", "all"]: return .reconfigure
        case ["shutdown"]: return .shutdown
        case ["quit"]: return .quit
        case ["fail", "path"]: return .failPath(p["path"]!)
        case ["reinstate", "path"]: return .reinstatePath(p["path"]!)
        case ["disablequeueing", "map"]: return .disableQueueing(map: p["map"]!)
        case ["restorequeueing", "map"]: return .restoreQueueing(map: p["map"]!)
        case ["disablequeueing", "maps"]: return .disableQueueingAll
        case ["restorequeueing", "maps"]: return .restoreQueueingAll
        case ["reload", "map"]: return .reloadMap(p["map"]!)
        case ["forcequeueing", "daemon"]: return .forceQueueingDaemon
        case ["restorequeueing", "daemon"]: return .restoreQueueingDaemon
        case ["add", "path"]: return .addPath(p["path"]!)
        case ["del", "path"]: return .delPath(p["path"]!)
        case ["add", "map"]: return .addMap(p["map"]!)
        case ["del", "map"]: return .delMap(p["map"]!)
        case ["del", "maps"]: return .delMaps
        case ["suspend", "map"]: return .suspendMap(p["map"]!)
        case ["resume", "map"]: return .resumeMap(p["map"]!)
        case ["resize", "map"]: return .resizeMap(p["map"]!)
        case ["reset", "map", "stats"]: return .resetStats(map: p["map"]!)
        case ["reset", "maps", "stats"]: return .resetStats(map: nil)
        case ["reset", "map"]: return .reassignMap(p["map"]!)
        case ["switchgroup", "map", "group"]:
            guard let n = Int(p["group"]!), n >= 1, n <= Int(UInt16.max) else { return nil }
            return .switchGroup(map: p["map"]!, group: n)
        case ["getprstatus", "map"]: return .getPRStatus(map: p["map"]!)
        case ["setprstatus", "map"]: return .setPRStatus(map: p["map"]!)
        case ["unsetprstatus", "map"]: return .unsetPRStatus(map: p["map"]!)
        case ["getprkey", "map"]: return .getPRKey(map: p["map"]!)
        case ["setprkey", "map", "key"]: return .setPRKey(map: p["map"]!, key: p["key"]!)
        case ["unsetprkey", "map"]: return .unsetPRKey(map: p["map"]!)
        case ["setmarginal", "path"]: return .setMarginal(path: p["path"]!)
        case ["unsetmarginal", "path"]: return .unsetMarginal(path: p["path"]!)
        case ["unsetmarginal", "map"]: return .unsetMarginalMap(p["map"]!)
        case ["reset", "maps"], ["getprhold", "map"], ["setprhold", "map"],
             ["unsetprhold", "map"],
             ["show", "maps", "status", "json"]:
            let order = ["getprstatus", "setprstatus", "unsetprstatus", "getprkey", "setprkey", "unsetprkey", "getprhold",
                         "setprhold", "unsetprhold", "setmarginal", "unsetmarginal", "forcequeueing", "restorequeueing", "show",
                         "add", "del", "resize", "reload", "reset", "suspend", "resume", "raw", "map", "maps", "path", "format",
                         "stats", "status", "json", "daemon", "key"]
            return .unsupported(order.filter { k.contains($0) }.joined(separator: " "))
        default:
            return nil
        }
    }

    private static func unknown(_ line: String) -> ControlParseError {
        let shown = line.unicodeScalars.prefix(80).map { $0.value >= 0x20 && $0.value < 0x7f ? String($0) : "?" }.joined()
        return ControlParseError("unknown command '\(shown)'; commands: \(commandList)")
    }
}
