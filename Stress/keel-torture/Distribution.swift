// Collects samples and prints their distribution (virtual-time figures).

/// A set of samples in nanoseconds with percentile summaries.
struct Distribution {
    private(set) var samples: [Int64] = []

    mutating func add(_ ns: Int64) { samples.append(ns) }
    mutating func merge(_ other: Distribution) { samples += other.samples }

    var count: Int { samples.count }

    /// The p-th percentile (0...100), nearest rank.
    func percentile(_ p: Double) -> Int64? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[max(0, min(sorted.count - 1, rank - 1))]
    }

    /// `min/p50/p90/p99/max` in milliseconds, e.g. `12.0/150.3/210.9/230.1/240.0 ms`.
    var summaryMs: String {
        guard !samples.isEmpty else { return "-" }
        let values = [percentile(0), percentile(50), percentile(90), percentile(99), percentile(100)]
        return values.map { formatMs($0 ?? 0) }.joined(separator: "/") + " ms"
    }
}

/// Nanoseconds as milliseconds with one decimal.
func formatMs(_ ns: Int64) -> String {
    let tenths = (ns + 50_000) / 100_000
    return "\(tenths / 10).\(tenths % 10)"
}
