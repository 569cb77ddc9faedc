// Ring sizing and the padding that keeps fields written by different threads on different cache lines.

/// 128 bytes of unused storage placed between ring fields that different threads write.
///
/// 128 rather than 64 because x86 prefetches cache lines in adjacent pairs: two fields 64 bytes
/// apart can still bounce together between cores. Swift lays out a class's stored properties in
/// declaration order, so a pad property between two fields keeps them apart.
@usableFromInline
struct CacheLinePad {
    /// The unused bytes; never read.
    let bytes: InlineArray<16, UInt64>

    /// A zeroed pad.
    init() {
        bytes = InlineArray(repeating: 0)
    }
}

/// The largest slot count a ring accepts: 2^30 slots is far beyond any Keel queue, and the
/// bound keeps the rounding and the arena size away from overflow.
@usableFromInline
let ringSlotsMax = 1 << 30

/// The smallest power of two that is at least `count`, for `count` in `1...ringSlotsMax`.
///
/// Rings index slots with `position & (capacity - 1)`, which needs a power of two.
@usableFromInline
func ringCapacity(roundingUp count: Int) -> Int {
    precondition(count >= 1, "a ring needs at least one slot")
    precondition(count <= ringSlotsMax, "ring capacity above ringSlotsMax")
    let rounded = count == 1 ? 1 : 1 << (Int.bitWidth - (count - 1).leadingZeroBitCount)
    assert(rounded >= count && rounded < 2 * count && rounded & (rounded - 1) == 0)
    return rounded
}
