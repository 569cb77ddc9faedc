// keelctl top: one screen of maps, paths by state, recent transitions, drops and memory, drawn
// again in place at every refresh. The transitions are the ones top saw between refreshes.

/// What top remembers between refreshes.
public struct TopModel: Sendable {
    /// A path's states as last seen: (dm, checker).
    var lastSeen: [String: (dm: String, check: String)] = [:]
    /// Newest last, at most `recentMax`.
    public private(set) var recent: [String] = []
    public static let recentMax = 12
    var previousMetrics: MetricSamples?
    var previousAtNs: Int64 = 0

    public init() {}

    /// Takes one refresh's answers and returns the screen. `clock` is the wall time shown on
    /// transition lines (HH:MM:SS), `nowNs` a monotonic time for rates.
    public mutating func screen(paths: [PathRow], maps: [MapRow], metrics: MetricSamples, daemon: String,
                                clock: String, nowNs: Int64, painter: Painter, width: Int = 120) -> String {
        for p in paths {
            let key = p.dev.isEmpty ? p.devT : p.dev
            let now = (dm: p.dmState, check: p.checkerState)
            if let before = lastSeen[key], before.dm != now.dm || before.check != now.check {
                recent.append("\(clock) \(key) in \(p.map): \(before.check)/\(before.dm) -> \(now.check)/\(now.dm)")
            }
            lastSeen[key] = now
        }
        let present = Set(paths.map { $0.dev.isEmpty ? $0.devT : $0.dev })
        for key in lastSeen.keys where !present.contains(key) {
            recent.append("\(clock) \(key): removed")
            lastSeen[key] = nil
        }
        if recent.count > Self.recentMax { recent.removeFirst(recent.count - Self.recentMax) }

        var out = painter.heading("keeld \(daemon.split(separator: "\n").first.map(String.init) ?? "")") + "   \(clock)\n"
        let locked = metrics["keel_memory_locked_bytes"].map { "\(Int($0) / 1024) kB" } ?? "?"
        let resident = metrics["keel_memory_resident_bytes"].map { "\(Int($0) / 1024) kB" } ?? "?"
        out += "memory locked \(locked), resident \(resident)"
        if let passes = metrics["keel_loop_passes_total"] {
            out += "; loop passes \(Int(passes))"
            if let before = previousMetrics?["keel_loop_passes_total"], nowNs > previousAtNs {
                out += " (\(Int((passes - before) * 1e9 / Double(nowNs - previousAtNs)))/s)"
            }
        }
        out += "\n"
        func count(_ key: String) -> Int { Int(metrics[key] ?? 0) }
        out += "drops: input ring \(count("keel_input_ring_drops_total")), log \(count("keel_log_records_total{outcome=\"dropped\"}"))"
            + "; orphaned checks \(count("keel_orphaned_checks")); control timeouts \(count("keel_control_timeouts_total"))\n"
        let latency = CheckLatency(metrics)
        if latency.count > 0 {
            out += "check latency: \(latency.count) checks, p50 \(latency.quantileText(0.5)), p99 \(latency.quantileText(0.99))\n"
        }
        let pathBack = CheckLatency(metrics, name: "keel_path_back_seconds")
        if pathBack.count > 0 {
            out += "paths taken back: \(pathBack.count), check sent to reinstated p50 \(pathBack.quantileText(0.5)), p99 \(pathBack.quantileText(0.99))\n"
        }
        let stacks = ThreadStacks(metrics)
        if !stacks.threads.isEmpty {
            out += "thread stacks used: " + stacks.threads.map { "\($0.name) \($0.usedBytes / 1024)/\($0.stackBytes / 1024) KiB" }
                .joined(separator: ", ") + "\n"
        }
        var states: [String: Int] = [:]
        for p in paths { states[p.checkerState, default: 0] += 1 }
        out += "paths \(paths.count): " + states.sorted { $0.key < $1.key }.map { "\(painter.state($0.key)) \($0.value)" }.joined(separator: ", ") + "\n\n"
        let mapRows = maps.map { m -> [String] in
            let total = paths.filter { $0.map == m.name }.count
            return [m.name, m.sysfs, m.size, "\(m.activePaths)/\(total)", m.queueing, m.dmState, m.pathFaults]
        }
        out += painter.table(headers: ["MAP", "DM", "SIZE", "ACTIVE", "QUEUEING", "STATE", "FAULTS"], rows: mapRows, stateColumns: [4, 5])
        out += "\n" + painter.heading("recent transitions") + "\n"
        out += recent.isEmpty ? "  (none seen yet)\n" : recent.reversed().map { "  " + String($0.prefix(width - 2)) + "\n" }.joined()
        previousMetrics = metrics
        previousAtNs = nowNs
        return out
    }
}

/// Each thread's deepest stack use from `keel_thread_stack_used_bytes` and
/// `keel_thread_stack_bytes`, by thread name.
public struct ThreadStacks: Sendable {
    public var threads: [(name: String, usedBytes: Int, stackBytes: Int)] = []

    public init(_ metrics: MetricSamples) {
        let prefix = "keel_thread_stack_used_bytes{thread=\""
        for (key, value) in metrics.values where key.hasPrefix(prefix) {
            let name = String(key.dropFirst(prefix.count).prefix { $0 != "\"" })
            let size = metrics["keel_thread_stack_bytes{thread=\"\(name)\"}"] ?? 0
            threads.append((name, Int(value), Int(size)))
        }
        threads.sort { $0.name < $1.name }
    }
}

/// A latency histogram from its `<name>_bucket` samples: `keel_check_latency_seconds` by default,
/// or `keel_path_back_seconds`.
public struct CheckLatency: Sendable {
    /// (upper bound in seconds, cumulative count), ascending; +Inf last.
    public var buckets: [(le: Double, count: Double)] = []
    public var count: Int { Int(buckets.last?.count ?? 0) }

    public init(_ metrics: MetricSamples, name: String = "keel_check_latency_seconds") {
        let prefix = name + "_bucket{le=\""
        for (key, value) in metrics.values where key.hasPrefix(prefix) {
            let bound = key.dropFirst(prefix.count).prefix { $0 != "\"" }
            buckets.append((bound == "+Inf" ? Double.infinity : Double(bound) ?? .infinity, value))
        }
        buckets.sort { $0.le < $1.le }
    }

    /// The bucket bound the quantile falls under ("≤ 5 ms"), "-" without checks.
    public func quantileText(_ q: Double) -> String {
        guard let total = buckets.last?.count, total > 0 else { return "-" }
        for b in buckets where b.count >= q * total {
            return b.le.isInfinite ? "> \(Self.ms(buckets.dropLast().last?.le ?? 0))" : "<= \(Self.ms(b.le))"
        }
        return "-"
    }

    static func ms(_ seconds: Double) -> String {
        let ms = seconds * 1000
        return ms >= 1 ? "\(Int(ms.rounded())) ms" : "\(Int((ms * 1000).rounded())) us"
    }
}
