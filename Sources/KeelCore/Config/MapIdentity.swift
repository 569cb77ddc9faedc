// Which WWIDs become maps and what they are called: the bindings file (user-friendly names that
// never move), the wwids file (WWIDs multipathed before) and the find_multipaths rule. Text in,
// decisions out; the files themselves are read and appended to by KeelLinux.

/// The bindings file: one `alias wwid` line per map, `#` starts a comment. An alias, once
/// written, stays with its WWID across restarts and reboots; new names are appended, never
/// reshuffled.
public struct Bindings: Sendable, Equatable {
    /// Each WWID's alias (the first line naming the WWID wins).
    public private(set) var aliasByWWID: [String: String] = [:]
    /// Each alias's WWID (the first line naming the alias wins).
    public private(set) var wwidByAlias: [String: String] = [:]
    /// Lines that were not used, each with its 1-based number and why.
    public private(set) var problems: [(line: Int, why: String)] = []

    /// Longest line read; a longer one is a problem, not a binding.
    public static let lineBytesMax = 4_096

    /// No bindings.
    public init() {}

    /// The bindings in `text`. Nothing in it is fatal: a bad line is listed in `problems` and
    /// skipped, as are later lines that would give an alias or WWID a second partner.
    public init(text: String) {
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            guard line.utf8.count <= Self.lineBytesMax else {
                problems.append((number, "line longer than \(Self.lineBytesMax) bytes"))
                continue
            }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if words.isEmpty { continue }
            guard words.count >= 2 else {
                problems.append((number, "\"\(words[0])\" has no WWID"))
                continue
            }
            let alias = String(words[0]), wwid = String(words[1])
            if let other = wwidByAlias[alias], other != wwid {
                problems.append((number, "alias \(alias) is already bound to \(other)"))
                continue
            }
            if let other = aliasByWWID[wwid], other != alias {
                problems.append((number, "WWID \(wwid) is already bound to \(other)"))
                continue
            }
            aliasByWWID[wwid] = alias
            wwidByAlias[alias] = wwid
        }
    }

    /// Records a binding read back or just appended.
    public mutating func bind(alias: String, wwid: String) {
        aliasByWWID[wwid] = alias
        wwidByAlias[alias] = wwid
    }

    /// The lowest-numbered `prefix` name (`mpatha`, `mpathb`, ... `mpathz`, `mpathaa`, ...) that
    /// no binding holds and `taken` does not refuse (a live map or a configured alias).
    public func freeAlias(prefix: String, taken: (String) -> Bool) -> String {
        freeAlias(prefix: prefix, from: 0, taken: taken).alias
    }

    /// `freeAlias`, searching from the `from`-th name on; also gives the name's index.
    public func freeAlias(prefix: String, from: Int, taken: (String) -> Bool) -> (alias: String, index: Int) {
        var index = max(0, from)
        while true {
            let name = prefix + Self.friendlySuffix(index)
            if wwidByAlias[name] == nil && !taken(name) { return (name, index) }
            index += 1
        }
    }

    /// The line that binds `alias` to `wwid`.
    public static func line(alias: String, wwid: String) -> String { alias + " " + wwid + "\n" }

    /// The comment a new bindings file starts with.
    public static let header = """
        # Keel multipath bindings: one "alias wwid" line per map.
        # Lines are only ever added; keep them, or names move to other LUNs.

        """

    /// multipath-tools' user-friendly suffix: 0 `a`, 25 `z`, 26 `aa`, 27 `ab`, ... (bijective base 26).
    public static func friendlySuffix(_ index: Int) -> String {
        precondition(index >= 0)
        var n = index + 1
        var letters: [UInt8] = []
        while n > 0 {
            n -= 1
            letters.append(UInt8(ascii: "a") + UInt8(n % 26))
            n /= 26
        }
        return String(decoding: letters.reversed(), as: UTF8.self)
    }

    public static func == (a: Bindings, b: Bindings) -> Bool { a.aliasByWWID == b.aliasByWWID }
}

/// The wwids file: the WWIDs that have been multipathed on this host, one `/wwid/` line each;
/// `#` starts a comment. find_multipaths `strict` makes maps only of these.
public struct KnownWWIDs: Sendable, Equatable {
    /// The WWIDs listed.
    public private(set) var wwids: Set<String> = []
    /// Lines that were not used, each with its 1-based number and why.
    public private(set) var problems: [(line: Int, why: String)] = []

    /// None known.
    public init() {}

    /// The WWIDs in `text`; a line that is not `/wwid/` is listed in `problems` and skipped.
    public init(text: String) {
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            var line = Substring(raw)
            while let c = line.first, c == " " || c == "\t" { line = line.dropFirst() }
            if line.isEmpty || line.first == "#" { continue }
            guard line.first == "/", let end = line.dropFirst().firstIndex(of: "/") else {
                problems.append((number, "not a /wwid/ line"))
                continue
            }
            let wwid = line[line.index(after: line.startIndex)..<end]
            guard !wwid.isEmpty, wwid.utf8.count <= Bindings.lineBytesMax else {
                problems.append((number, "empty or overlong WWID"))
                continue
            }
            wwids.insert(String(wwid))
        }
    }

    /// Whether `wwid` is listed.
    public func contains(_ wwid: String) -> Bool { wwids.contains(wwid) }

    /// Records a WWID read back or just appended.
    public mutating func insert(_ wwid: String) { wwids.insert(wwid) }

    /// The line that lists `wwid`.
    public static func line(_ wwid: String) -> String { "/" + wwid + "/\n" }

    /// The comment a new wwids file starts with.
    public static let header = """
        # Keel multipath wwids: the WWIDs that have been multipathed on this host.
        # find_multipaths strict builds maps of these only; udev rules read it at boot.

        """

    public static func == (a: KnownWWIDs, b: KnownWWIDs) -> Bool { a.wwids == b.wwids }
}

/// find_multipaths: whether the paths of one WWID become a map now, wait, or are left alone.
public struct FindMultipathsRule: Sendable {
    /// What to do with the paths of one WWID.
    public enum Decision: Sendable, Equatable {
        /// Make (or keep) the map.
        case multipath
        /// Not a map: the WWID is not known and the mode needs it to be (`strict`).
        case notKnown
        /// Not a map yet: one path and the mode wants two (`on`, or `smart` after its wait).
        case singlePath
        /// `smart`: one path of an unknown WWID, waiting for a second until this time.
        case waitUntil(Nanoseconds)
    }

    public var mode: Configuration.FindMultipaths
    /// `find_multipaths_timeout` as written (0 already made the default, -10).
    public var timeoutSeconds: Int

    /// The rule of a configuration.
    public init(_ configuration: Configuration) {
        mode = configuration.findMultipaths
        timeoutSeconds = configuration.findMultipathsTimeoutSeconds
    }

    /// `smart`'s wait for a second path: the timeout as written when positive; when negative,
    /// its magnitude for a device a `devices` entry or the built-in hardware table knows, and
    /// multipath-tools' 1 s for unknown hardware.
    public func smartWaitNs(knownHardware: Bool) -> Nanoseconds {
        let seconds = timeoutSeconds >= 0 ? timeoutSeconds
            : knownHardware ? -timeoutSeconds : Configuration.findMultipathsTimeoutUnknownSeconds
        return Nanoseconds(seconds) * Time.nsPerSecond
    }

    /// The decision for a WWID with `paths` usable paths, `known` when the wwids file lists it,
    /// `inKernel` when a multipath map of that WWID exists already (it is kept whatever the
    /// mode), first seen at `firstSeenNs`; `knownHardware` when the device matches a hardware
    /// entry (it sets `smart`'s wait).
    public func decide(paths: Int, known: Bool, inKernel: Bool, firstSeenNs: Nanoseconds, nowNs: Nanoseconds,
                       knownHardware: Bool = false) -> Decision {
        if inKernel { return .multipath }
        switch mode {
        case .off, .greedy:
            return .multipath
        case .strict:
            return known ? .multipath : .notKnown
        case .on:
            return known || paths >= 2 ? .multipath : .singlePath
        case .smart:
            if known || paths >= 2 { return .multipath }
            let deadline = firstSeenNs &+ smartWaitNs(knownHardware: knownHardware)
            return nowNs < deadline ? .waitUntil(deadline) : .singlePath
        }
    }
}
