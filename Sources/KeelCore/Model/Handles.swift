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

/// A slot in the engine's map table (the low 20 bits) and the slot's generation (the 12 above),
/// which the engine bumps when it frees the slot: a handle kept after its map was removed (in a
/// log record waiting for a stalled log device, a late topology answer) is not the handle of the
/// map that reuses the slot, and the engine refuses it. The first map of every slot has
/// generation 0, so its handle is its index.
@frozen
public struct MapHandle: Hashable, Comparable, BitwiseCopyable, Sendable, CustomStringConvertible {
    public var raw: UInt32
    public static let indexBits: UInt32 = 20
    public static let indexMask: UInt32 = (1 << indexBits) - 1
    @inlinable public init(_ raw: UInt32) { self.raw = raw }
    @inlinable public init(index: Int, generation: UInt16 = 0) {
        self.raw = UInt32(truncatingIfNeeded: index) & Self.indexMask | UInt32(generation & 0xFFF) << Self.indexBits
    }
    @inlinable public var index: Int { Int(raw & Self.indexMask) }
    /// How many times the slot was freed before this map took it (modulo 4,096).
    @inlinable public var generation: UInt16 { UInt16(truncatingIfNeeded: raw >> Self.indexBits) }
    @inlinable public static func < (a: Self, b: Self) -> Bool { (a.index, a.generation) < (b.index, b.generation) }
    public var description: String { generation == 0 ? "map#\(index)" : "map#\(index).\(generation)" }
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
