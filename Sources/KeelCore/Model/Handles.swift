// Small integer handles and identifiers shared by every part of Keel.

/// A slot in the engine's path table. Stable while the path exists; reused after removal.
@frozen
public struct PathHandle: Hashable, Comparable, BitwiseCopyable, Sendable, CustomStringConvertible {
    public var raw: UInt32
    @inlinable public init(_ raw: UInt32) { self.raw = raw }
    @inlinable public init(index: Int) { self.raw = UInt32(truncatingIfNeeded: index) }
    @inlinable public var index: Int { Int(raw) }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.raw < b.raw }
    public var description: String { "path#\(raw)" }
}

/// A slot in the engine's map table.
@frozen
public struct MapHandle: Hashable, Comparable, BitwiseCopyable, Sendable, CustomStringConvertible {
    public var raw: UInt32
    @inlinable public init(_ raw: UInt32) { self.raw = raw }
    @inlinable public init(index: Int) { self.raw = UInt32(truncatingIfNeeded: index) }
    @inlinable public var index: Int { Int(raw) }
    @inlinable public static func < (a: Self, b: Self) -> Bool { a.raw < b.raw }
    public var description: String { "map#\(raw)" }
}

/// A block device number, as the kernel's multipath table names a path (`major:minor`).
@frozen
public struct DevNo: Hashable, Comparable, BitwiseCopyable, Sendable, CustomStringConvertible {
    public var major: UInt32
    public var minor: UInt32
    @inlinable public init(major: UInt32, minor: UInt32) { self.major = major; self.minor = minor }
    @inlinable public static func < (a: Self, b: Self) -> Bool {
        a.major != b.major ? a.major < b.major : a.minor < b.minor
    }
    public var description: String { "\(major):\(minor)" }
}

/// Time is always an input to Keel's engine: nanoseconds on a monotonic clock, as a plain integer.
/// Names carry the unit last (`nowNs`, `intervalFastNs`).
public typealias Nanoseconds = Int64

public enum Time {
    public static let nsPerMs: Nanoseconds = 1_000_000
    public static let nsPerSecond: Nanoseconds = 1_000_000_000
    /// A deadline that never arrives.
    public static let never: Nanoseconds = .max
}
