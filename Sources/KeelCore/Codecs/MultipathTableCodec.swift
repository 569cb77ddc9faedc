// The multipath table params as text: render what the kernel's constructor accepts, parse what it prints.

/// The dm-multipath target's limits on the text it accepts (dm-mpath.c `dm_arg` ranges).
/// The codecs refuse any count past them, so a corrupt count never drives a large allocation.
public enum MultipathLimits {
    /// Path groups in one map (`#pgs` and `init_pg`).
    public static let groupsMax = 1024
    /// Paths in one group; the kernel also refuses a group without paths.
    public static let pathsPerGroupMax = 1024
    /// Selector args, hardware handler args, per-path args, status word counts.
    public static let argsMax = 1024
    /// Feature args in a table (`#feat`).
    public static let featureArgsMax = 8
    /// `pg_init_retries` values.
    public static let pgInitRetries = 1...50
    /// `pg_init_delay_msecs` values.
    public static let pgInitDelayMsecs = 0...60_000
    /// Counters the kernel prints as `%u` (fail counts, pg_init_count).
    public static let counterMax = Int(UInt32.max)
}

extension MultipathTable {
    /// The params string as the kernel's multipath constructor accepts it and as its table
    /// status prints it: `<#feat> [features] <#hwh> [hwh] <#pgs> <init_pg> { <selector>
    /// <#selargs> [selargs] <#paths> <#pathargs> { <maj:min> [pathargs] }... }...`,
    /// single spaces, no trailing space (the kernel prints one; it is not part of any token).
    ///
    /// Every path of a group must carry exactly the group's `pathArgCount` args (checked).
    public func render() -> String {
        var out = TextWriter()
        out.count(features.count)
        for word in features { out.word(word) }
        out.count(hardwareHandler.count)
        for word in hardwareHandler { out.word(word) }
        out.count(groups.count)
        out.count(initialGroup)
        for group in groups {
            out.word(group.selector)
            out.count(group.selectorArgs.count)
            for arg in group.selectorArgs { out.word(arg) }
            out.count(group.paths.count)
            out.count(group.pathArgCount)
            for path in group.paths {
                precondition(path.args.count == group.pathArgCount,
                             "path \(path.device) has \(path.args.count) args, its group declares \(group.pathArgCount)")
                out.device(path.device)
                for arg in path.args { out.word(arg) }
            }
        }
        return out.text
    }

    /// Parses table params (the text after `<start> <length> multipath`).
    ///
    /// Checks the structure and the kernel's limits: counts within `MultipathLimits`, every
    /// declared token present and nothing left over, `maj:min` devices, `init_pg` 0 exactly
    /// when there are no groups, and the arguments of the features the kernel knows
    /// (`pg_init_retries N`, `pg_init_delay_msecs N`, `queue_mode bio|rq|mq|nvme`).
    /// Feature words it does not know are kept as they are.
    public static func parse(_ params: String) throws(CodecError) -> MultipathTable {
        try params.withCodecBytes { (bytes) throws(CodecError) -> MultipathTable in
            var cursor = TextCursor(bytes, source: .table)
            let table = try parse(&cursor)
            try cursor.expectEnd()
            return table
        }
    }

    /// Parses table params from the cursor's position (shared with the whole-line parser).
    static func parse(_ c: inout TextCursor) throws(CodecError) -> MultipathTable {
        let features = try parseFeatures(&c)

        let hwhCount = try c.number(.hardwareHandlerCount, in: 0...MultipathLimits.argsMax, at: .top)
        var hardwareHandler: [String] = []
        for _ in 0..<hwhCount {
            let t = try c.token(.hardwareHandlerArg, at: .top)
            hardwareHandler.append(TextToken(bytes: c.bytes(t)).string)
        }

        let groupCount = try c.number(.groupCount, in: 0...MultipathLimits.groupsMax, at: .top)
        let initialRange = groupCount == 0 ? 0...0 : 1...MultipathLimits.groupsMax
        let initialGroup = try c.number(.initialGroup, in: initialRange, at: .top)

        var groups: [Group] = []
        for index in 0..<groupCount {
            groups.append(try parseGroup(&c, number: index + 1))
        }
        return MultipathTable(features: features, hardwareHandler: hardwareHandler,
                              initialGroup: initialGroup, groups: groups)
    }

    private static func parseFeatures(_ c: inout TextCursor) throws(CodecError) -> [String] {
        let count = try c.number(.featureCount, in: 0...MultipathLimits.featureArgsMax, at: .top)
        var words: [String] = []
        var left = count
        while left > 0 {
            let t = try c.token(.feature, at: .top)
            let word = TextToken(bytes: c.bytes(t))
            words.append(word.string)
            left -= 1
            // The kernel reads these features' values itself; a feature without its value
            // (the count ends first) is refused as unrecognised.
            let valueOf: CodecError.Expectation?
            if word.equals("pg_init_retries") {
                valueOf = .pgInitRetries
            } else if word.equals("pg_init_delay_msecs") {
                valueOf = .pgInitDelayMsecs
            } else if word.equals("queue_mode") {
                valueOf = .queueMode
            } else {
                valueOf = nil
            }
            guard let valueOf else { continue }
            guard left > 0 else { throw c.error(.featureCountEnds(valueOf), token: t, at: .top) }
            let v = try c.token(valueOf, at: .top)
            let value = TextToken(bytes: c.bytes(v))
            left -= 1
            switch valueOf {
            case .queueMode:
                guard value.equals("bio") || value.equals("rq") || value.equals("mq") || value.equals("nvme") else {
                    throw c.error(.malformed(.queueMode), token: v, at: .top)
                }
            default:
                let range = valueOf == .pgInitRetries ? MultipathLimits.pgInitRetries : MultipathLimits.pgInitDelayMsecs
                guard let n = TextCursor.decimal(value.bytes) else {
                    throw c.error(.malformed(valueOf), token: v, at: .top)
                }
                guard n >= UInt64(range.lowerBound), n <= UInt64(range.upperBound) else {
                    throw c.error(.outOfRange(valueOf, min: range.lowerBound, max: range.upperBound), token: v, at: .top)
                }
            }
            words.append(value.string)
        }
        return words
    }

    private static func parseGroup(_ c: inout TextCursor, number: Int) throws(CodecError) -> Group {
        let place = TextPlace(group: number, device: nil)
        let s = try c.token(.selector, at: place)
        let selector = TextToken(bytes: c.bytes(s)).string

        let selectorArgCount = try c.number(.selectorArgCount, in: 0...MultipathLimits.argsMax, at: place)
        var selectorArgs: [String] = []
        for _ in 0..<selectorArgCount {
            let t = try c.token(.selectorArg, at: place)
            selectorArgs.append(TextToken(bytes: c.bytes(t)).string)
        }

        let pathCount = try c.number(.pathCount, in: 1...MultipathLimits.pathsPerGroupMax, at: place)
        let pathArgCount = try c.number(.pathArgCount, in: 0...MultipathLimits.argsMax, at: place)
        var paths: [Path] = []
        for _ in 0..<pathCount {
            let device = try c.device(at: place)
            let pathPlace = TextPlace(group: number, device: device)
            var args: [String] = []
            for _ in 0..<pathArgCount {
                let t = try c.token(.pathArg, at: pathPlace)
                args.append(TextToken(bytes: c.bytes(t)).string)
            }
            paths.append(Path(device: device, args: args))
        }
        return Group(selector: selector, selectorArgs: selectorArgs, pathArgCount: pathArgCount, paths: paths)
    }
}

/// Builds kernel text: tokens joined by single spaces.
struct TextWriter {
    private(set) var text = ""

    mutating func word(_ token: String) {
        assert(!token.isEmpty && !token.utf8.contains(where: { TextCursor.isSpace($0) || $0 == 0 }),
               "a token must be non-empty and free of whitespace: \"\(token)\"")
        if !text.isEmpty { text += " " }
        text += token
    }

    mutating func count(_ n: Int) { word(String(n)) }

    mutating func device(_ d: DevNo) { word(d.description) }
}
