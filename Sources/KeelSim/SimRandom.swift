// A seeded pseudo-random generator: every random choice in the simulation comes from one of these.

import KeelCore

/// xoshiro256** seeded through splitmix64. The same seed and stream give the same sequence on
/// every machine and every run; nothing here reads a clock or the system's entropy.
///
/// A world draws from several streams of one seed (I/O latencies, check latencies, workload
/// choices, lost events), so that one part consuming more numbers does not shift another's.
public struct SimRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// A generator for `seed`; different `stream`s of one seed are independent sequences.
    public init(seed: UInt64, stream: UInt64 = 0) {
        // The stream is mixed into the splitmix64 state rather than added to it: added streams
        // would produce shifted copies of one splitmix sequence.
        var state = seed ^ Self.mix(stream &+ 0x6A09_E667_F3BC_C909)
        s0 = Self.splitmix(&state)
        s1 = Self.splitmix(&state)
        s2 = Self.splitmix(&state)
        s3 = Self.splitmix(&state)
        // xoshiro's state must not be all zero; splitmix64 cannot produce four zero words in a
        // row, but say so where a reader would ask.
        assert(s0 | s1 | s2 | s3 != 0)
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = rotateLeft(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotateLeft(s3, 45)
        return result
    }

    /// A uniform value in `0..<bound` (Lemire's multiply-and-reject, without bias).
    public mutating func below(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0, "below(0) has no values")
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold {
                product = next().multipliedFullWidth(by: bound)
            }
        }
        return product.high
    }

    /// A uniform value in `0..<bound`.
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0, "below(0) has no values")
        return Int(below(UInt64(bound)))
    }

    /// True with probability `perMillion` / 1,000,000.
    public mutating func chance(perMillion: UInt32) -> Bool {
        perMillion > 0 && below(UInt64(1_000_000)) < UInt64(perMillion)
    }

    /// A uniform value in `range` (both ends included).
    public mutating func range(_ range: ClosedRange<Int64>) -> Int64 {
        let span = UInt64(bitPattern: range.upperBound &- range.lowerBound)
        if span == .max { return Int64(bitPattern: next()) }
        return range.lowerBound &+ Int64(bitPattern: below(span &+ 1))
    }

    private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    private static func splitmix(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return mix(state)
    }

    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
