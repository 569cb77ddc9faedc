// What discovery leaves out: the configuration's blacklist, seen through a small protocol.

/// Decides which discovered paths Keel must leave alone (multipath.conf `blacklist` and
/// `blacklist_exceptions`). Discovery asks once per path, after it has read everything the
/// blacklist can match on (kernel name, vendor/model, udev property names, WWID).
public protocol DiscoveryFilter {
    /// Nil to keep the path, or the reason it is left out (for a log line).
    func exclusionReason(for path: DiscoveredPath) -> String?
}

/// Keeps every path.
public struct AdmitAllPaths: DiscoveryFilter {
    public init() {}
    public func exclusionReason(for path: DiscoveredPath) -> String? { nil }
}
