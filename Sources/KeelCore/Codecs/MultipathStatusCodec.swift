// The multipath status params as text: parse into MultipathStatus, and render as the kernel prints it.

extension MultipathStatus {
    /// Parses status params (the text after `<start> <length> multipath`). The grammar and
    /// every check are `MultipathStatusScanner`'s; this only collects what it reports.
    public static func parse(_ params: String) throws(CodecError) -> MultipathStatus {
        try params.withCodecBytes { (bytes) throws(CodecError) -> MultipathStatus in
            var builder = StatusBuilder()
            try MultipathStatusScanner.scan(bytes, into: &builder)
            return builder.status
        }
    }

    /// The status params as the kernel prints them for `STATUSTYPE_INFO`:
    /// `<2 + extras> <queue_io> <pg_init_count> [extras] <#hwh> [hwh] <#pgs> <next_pg>
    /// { <A|E|D> <#ps> [ps] <#paths> <#pathargs> { <maj:min> <A|F> <fail_count> [ps] }... }...`,
    /// single spaces, no trailing space.
    ///
    /// Every path of a group must carry exactly the group's `pathArgCount` status words (checked).
    public func render() -> String {
        var out = TextWriter()
        out.count(2 + extraFeatureArgs.count)
        out.count(queueingIO ? 1 : 0)
        out.count(pgInitCount)
        for word in extraFeatureArgs { out.word(word) }
        out.count(hardwareHandlerStatus.count)
        for word in hardwareHandlerStatus { out.word(word) }
        out.count(groups.count)
        out.count(nextGroup)
        for group in groups {
            out.word(String(group.state.rawValue))
            out.count(group.selectorStatus.count)
            for word in group.selectorStatus { out.word(word) }
            out.count(group.paths.count)
            out.count(group.pathArgCount)
            for path in group.paths {
                precondition(path.selectorStatus.count == group.pathArgCount,
                             "path \(path.device) has \(path.selectorStatus.count) status words, its group declares \(group.pathArgCount)")
                out.device(path.device)
                out.word(path.active ? "A" : "F")
                out.count(path.failCount)
                for word in path.selectorStatus { out.word(word) }
            }
        }
        return out.text
    }
}

/// Collects the scanner's reports into a `MultipathStatus` (control plane: allocates).
struct StatusBuilder: MultipathStatusVisitor {
    var status = MultipathStatus(queueingIO: false, nextGroup: 0, groups: [])

    mutating func queueing(_ on: Bool) { status.queueingIO = on }
    mutating func pgInitCount(_ count: Int) { status.pgInitCount = count }
    mutating func extraFeature(_ token: TextToken) { status.extraFeatureArgs.append(token.string) }
    mutating func hardwareHandlerStatus(_ token: TextToken) { status.hardwareHandlerStatus.append(token.string) }
    mutating func groupCount(_ count: Int, next: Int) { status.nextGroup = next }

    mutating func group(_ index: Int, state: MultipathStatus.GroupState) {
        assert(index == status.groups.count, "groups arrive in order")
        status.groups.append(MultipathStatus.Group(state: state, pathArgCount: 0, paths: []))
    }

    mutating func groupSelectorStatus(_ index: Int, _ token: TextToken) {
        status.groups[index].selectorStatus.append(token.string)
    }

    mutating func groupPaths(_ index: Int, count: Int, argCount: Int) {
        status.groups[index].pathArgCount = argCount
    }

    mutating func path(group: Int, device: DevNo, active: Bool, failCount: Int) {
        status.groups[group].paths.append(MultipathStatus.Path(device: device, active: active, failCount: failCount))
    }

    mutating func pathSelectorStatus(group: Int, device: DevNo, _ token: TextToken) {
        let last = status.groups[group].paths.count - 1
        status.groups[group].paths[last].selectorStatus.append(token.string)
    }
}
