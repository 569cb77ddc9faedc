// The world's trace: every event it runs, folded into a digest and, on request, kept in order.

import KeelCore

/// What happened, for the trace.
public enum SimTraceKind: UInt8, Sendable, Equatable, CaseIterable {
    /// a: fault step index.
    case fault
    /// a: I/O slot, b: device.
    case ioDispatched
    /// a: I/O slot, b: the stamp written or read.
    case ioCompleted
    /// a: I/O slot, b: device whose I/O failed.
    case ioPathError
    /// a: I/O slot (no path; queued).
    case ioQueued
    /// a: I/O slot (completed with an error to the application).
    case ioFailed
    /// a: token, b: device.
    case checkSubmitted
    /// a: token, b: device.
    case checkRefused
    /// a: token, b: result raw value.
    case checkDelivered
    /// a: map << 32 | kind << 16 | errno, b: device or group.
    case message
    /// a: map, b: errno.
    case load
}

/// One trace entry.
public struct SimTraceEntry: Sendable, Equatable, CustomStringConvertible {
    public var timeNs: Nanoseconds
    public var kind: SimTraceKind
    public var a: UInt64
    public var b: UInt64

    public var description: String { "\(timeNs) \(kind) \(a) \(b)" }
}

extension DevNo {
    /// The device as one integer, for traces.
    var traceValue: UInt64 { UInt64(major) << 32 | UInt64(minor) }
}

/// Folds entries into a 64-bit digest (FNV-1a over the fields, then a final mix).
struct TraceDigest {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func fold(_ entry: SimTraceEntry) {
        fold(UInt64(bitPattern: entry.timeNs))
        fold(UInt64(entry.kind.rawValue))
        fold(entry.a)
        fold(entry.b)
    }

    private mutating func fold(_ word: UInt64) {
        var w = word
        for _ in 0..<8 {
            value ^= w & 0xFF
            value &*= 0x0000_0100_0000_01B3
            w >>= 8
        }
    }
}
