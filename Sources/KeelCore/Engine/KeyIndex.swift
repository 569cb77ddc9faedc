// Fixed-capacity open-addressing hash index from a 64-bit key to a slot number.

/// Maps keys (device numbers, port keys) to table slots without allocating after init.
/// Linear probing with backward-shift deletion, so no tombstones accumulate.
public struct KeyIndex {
    @usableFromInline static let empty: UInt64 = .max
    @usableFromInline var keys: [UInt64]
    @usableFromInline var values: [Int32]
    @usableFromInline let mask: Int
    @usableFromInline var countStorage: Int
    public var count: Int { countStorage }

    /// Room for `capacity` keys; the table is sized to at least twice that (a power of two).
    public init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = Array(repeating: Self.empty, count: size)
        values = Array(repeating: -1, count: size)
        mask = size - 1
        countStorage = 0
    }

    @inlinable static func hash(_ key: UInt64) -> Int {
        var x = key &+ 0x9E37_79B9_7F4A_7C15
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int(truncatingIfNeeded: x ^ (x >> 31))
    }

    /// The slot stored for `key`, or nil.
    @inlinable public func find(_ key: UInt64) -> Int? {
        var i = Self.hash(key) & mask
        while true {
            let k = keys[i]
            if k == key { return Int(values[i]) }
            if k == Self.empty { return nil }
            i = (i + 1) & mask
        }
    }

    /// Inserts or replaces. Returns false when the index is full (callers size it so this never
    /// happens: it holds at most as many keys as their table has slots).
    @inlinable @discardableResult
    public mutating func set(_ key: UInt64, _ value: Int) -> Bool {
        precondition(key != Self.empty)
        var i = Self.hash(key) & mask
        while true {
            let k = keys[i]
            if k == key { values[i] = Int32(value); return true }
            if k == Self.empty {
                if countStorage * 2 >= keys.count { return false }
                keys[i] = key
                values[i] = Int32(value)
                countStorage += 1
                return true
            }
            i = (i + 1) & mask
        }
    }

    /// Removes `key` if present.
    @inlinable public mutating func remove(_ key: UInt64) {
        var i = Self.hash(key) & mask
        while true {
            let k = keys[i]
            if k == Self.empty { return }
            if k == key { break }
            i = (i + 1) & mask
        }
        // Backward-shift: move later members of the probe run into the hole.
        var hole = i
        var j = (i + 1) & mask
        while keys[j] != Self.empty {
            let home = Self.hash(keys[j]) & mask
            // j may move to the hole if its home is not cyclically within (hole, j].
            let dist = (j - home) & mask
            let gap = (j - hole) & mask
            if dist >= gap {
                keys[hole] = keys[j]
                values[hole] = values[j]
                hole = j
            }
            j = (j + 1) & mask
        }
        keys[hole] = Self.empty
        values[hole] = -1
        countStorage -= 1
    }
}

extension DevNo {
    /// The device number as one key for `KeyIndex`.
    @inlinable public var key: UInt64 { UInt64(major) << 32 | UInt64(minor) }
}
