// The zero-allocation multipath status scanner for the recovery plane, and the visitor it reports to.

/// Receives what `MultipathStatusScanner` reads, in text order. A concrete type, so the scan is
/// specialised and never boxed. Only `queueing`, `group` and `path` must be written; the other
/// calls default to doing nothing.
///
/// Calls arrive while the text is still being checked: when the scan throws, the whole status
/// is invalid and whatever the visitor gathered must be dropped.
public protocol MultipathStatusVisitor {
    /// Feature arg 1: whether the kernel is queueing I/O right now (`queue_io`).
    mutating func queueing(_ on: Bool)
    /// Feature arg 2: `pg_init_count`.
    mutating func pgInitCount(_ count: Int)
    /// One feature arg after the first two (newer kernels may print more).
    mutating func extraFeature(_ token: TextToken)
    /// One hardware handler status word.
    mutating func hardwareHandlerStatus(_ token: TextToken)
    /// The number of path groups and the 1-based group the kernel uses next (0 with no groups).
    mutating func groupCount(_ count: Int, next: Int)
    /// A path group's state. `index` is 0-based; the kernel's group number is `index + 1`.
    mutating func group(_ index: Int, state: MultipathStatus.GroupState)
    /// One word of a group's selector status (service-time prints none, historical-service-time two).
    mutating func groupSelectorStatus(_ index: Int, _ token: TextToken)
    /// How many paths the group has and how many selector status words each path carries.
    mutating func groupPaths(_ index: Int, count: Int, argCount: Int)
    /// One path: the kernel's view of it (`A` active / `F` failed) and its cumulative fail count.
    mutating func path(group: Int, device: DevNo, active: Bool, failCount: Int)
    /// One selector status word of the path last reported (e.g. service-time's in-flight size).
    mutating func pathSelectorStatus(group: Int, device: DevNo, _ token: TextToken)
}

/// Defaults: the recovery plane needs only queueing, group states and paths.
extension MultipathStatusVisitor {
    public mutating func pgInitCount(_ count: Int) {}
    public mutating func extraFeature(_ token: TextToken) {}
    public mutating func hardwareHandlerStatus(_ token: TextToken) {}
    public mutating func groupCount(_ count: Int, next: Int) {}
    public mutating func groupSelectorStatus(_ index: Int, _ token: TextToken) {}
    public mutating func groupPaths(_ index: Int, count: Int, argCount: Int) {}
    public mutating func pathSelectorStatus(group: Int, device: DevNo, _ token: TextToken) {}
}

/// Reads multipath status text (the params after `<start> <length> multipath`, exactly what
/// `DM_TABLE_STATUS` returns for the target) and reports it to a visitor. No String, no Array,
/// no allocation: the caller owns the bytes, errors are typed and fixed-size.
///
/// Grammar (dm-mpath.c `multipath_status`, `STATUSTYPE_INFO`):
/// `<#feat ≥ 2> <queue_io 0|1> <pg_init_count> [more feature args] <#hwh> [hwh status]
/// <#pgs> <next_pg> { <A|E|D> <#ps> [ps status] <#paths> <#pathargs>
/// { <maj:min> <A|F> <fail_count> [path selector status] }... }...`
public enum MultipathStatusScanner {
    /// Scans `text` (it ends at its first NUL or its end) and reports to `visitor`.
    /// Throws at the first token that breaks the grammar or a kernel limit, and if any token
    /// is left after the last path.
    public static func scan<V: MultipathStatusVisitor>(_ text: UnsafeRawBufferPointer,
                                                        into visitor: inout V) throws(CodecError) {
        var cursor = TextCursor(text, source: .status)
        try scan(&cursor, into: &visitor)
        try cursor.expectEnd()
    }

    /// Scans status from the cursor's position (shared with the whole-line parser).
    static func scan<V: MultipathStatusVisitor>(_ c: inout TextCursor, into visitor: inout V) throws(CodecError) {
        let featureCount = try c.number(.featureCount, in: 2...MultipathLimits.argsMax, at: .top)
        let q = try c.token(.queueIO, at: .top)
        let queueIO = TextToken(bytes: c.bytes(q))
        if queueIO.equals("1") {
            visitor.queueing(true)
        } else if queueIO.equals("0") {
            visitor.queueing(false)
        } else {
            throw c.error(.malformed(.queueIO), token: q, at: .top)
        }
        visitor.pgInitCount(try c.number(.pgInitCount, in: 0...MultipathLimits.counterMax, at: .top))
        for _ in 2..<featureCount {
            let t = try c.token(.feature, at: .top)
            visitor.extraFeature(TextToken(bytes: c.bytes(t)))
        }

        let hwhCount = try c.number(.hardwareHandlerCount, in: 0...MultipathLimits.argsMax, at: .top)
        for _ in 0..<hwhCount {
            let t = try c.token(.hardwareHandlerArg, at: .top)
            visitor.hardwareHandlerStatus(TextToken(bytes: c.bytes(t)))
        }

        let groupCount = try c.number(.groupCount, in: 0...MultipathLimits.groupsMax, at: .top)
        // The kernel prints its next or current group, or 1 when it has none chosen yet.
        let nextGroup = try c.number(.nextGroup, in: groupCount == 0 ? 0...0 : 1...groupCount, at: .top)
        visitor.groupCount(groupCount, next: nextGroup)

        for index in 0..<groupCount {
            try scanGroup(&c, index: index, into: &visitor)
        }
    }

    private static func scanGroup<V: MultipathStatusVisitor>(_ c: inout TextCursor, index: Int,
                                                             into visitor: inout V) throws(CodecError) {
        let place = TextPlace(group: index + 1, device: nil)
        let s = try c.token(.groupState, at: place)
        let state = TextToken(bytes: c.bytes(s))
        if state.equals("A") {
            visitor.group(index, state: .active)
        } else if state.equals("E") {
            visitor.group(index, state: .enabled)
        } else if state.equals("D") {
            visitor.group(index, state: .disabled)
        } else {
            throw c.error(.malformed(.groupState), token: s, at: place)
        }

        let selectorCount = try c.number(.selectorArgCount, in: 0...MultipathLimits.argsMax, at: place)
        for _ in 0..<selectorCount {
            let t = try c.token(.selectorArg, at: place)
            visitor.groupSelectorStatus(index, TextToken(bytes: c.bytes(t)))
        }

        let pathCount = try c.number(.pathCount, in: 1...MultipathLimits.pathsPerGroupMax, at: place)
        let pathArgCount = try c.number(.pathArgCount, in: 0...MultipathLimits.argsMax, at: place)
        visitor.groupPaths(index, count: pathCount, argCount: pathArgCount)

        for _ in 0..<pathCount {
            let device = try c.device(at: place)
            let pathPlace = TextPlace(group: index + 1, device: device)
            let a = try c.token(.pathState, at: pathPlace)
            let activeToken = TextToken(bytes: c.bytes(a))
            let active: Bool
            if activeToken.equals("A") {
                active = true
            } else if activeToken.equals("F") {
                active = false
            } else {
                throw c.error(.malformed(.pathState), token: a, at: pathPlace)
            }
            let failCount = try c.number(.failCount, in: 0...MultipathLimits.counterMax, at: pathPlace)
            visitor.path(group: index, device: device, active: active, failCount: failCount)
            for _ in 0..<pathArgCount {
                let t = try c.token(.pathArg, at: pathPlace)
                visitor.pathSelectorStatus(group: index, device: device, TextToken(bytes: c.bytes(t)))
            }
        }
    }
}
