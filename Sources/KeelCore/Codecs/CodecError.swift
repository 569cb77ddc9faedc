// CodecError: what was wrong with kernel text (table, status, dmsetup line, message) and where.

/// Why a piece of dm-multipath text could not be parsed or written, and where the problem is.
///
/// Fixed-size and free of heap storage, so the recovery plane can throw it (typed throws)
/// without allocating; the text of `description` is only built when someone reads it.
/// Example: `status: expected A|F after 8:16, found "X" (token 14)`.
public struct CodecError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Which kind of text was being read or written.
    public enum Source: UInt8, Equatable, Sendable, CustomStringConvertible {
        /// Multipath table params (`dmsetup table` after `multipath`).
        case table
        /// Multipath status params (`dmsetup status` after `multipath`).
        case status
        /// A whole `dmsetup table` line.
        case tableLine
        /// A whole `dmsetup status` line.
        case statusLine
        /// A target message being formatted.
        case message

        public var description: String {
            switch self {
            case .table: return "table"
            case .status: return "status"
            case .tableLine: return "table line"
            case .statusLine: return "status line"
            case .message: return "message"
            }
        }
    }

    /// The element of the format that was expected at the failing position.
    public enum Expectation: UInt8, Equatable, Sendable, CustomStringConvertible {
        case featureCount
        case feature
        case pgInitRetries
        case pgInitDelayMsecs
        case queueMode
        case hardwareHandlerCount
        case hardwareHandlerArg
        case groupCount
        case initialGroup
        case selector
        case selectorArgCount
        case selectorArg
        case pathCount
        case pathArgCount
        case device
        case pathArg
        case queueIO
        case pgInitCount
        case nextGroup
        case groupState
        case pathState
        case failCount
        case deviceName
        case startSector
        case lengthSectors
        case targetType
        case multipathTarget
        case groupNumber
        case endOfInput

        public var description: String {
            switch self {
            case .featureCount: return "feature arg count"
            case .feature: return "feature arg"
            case .pgInitRetries: return "pg_init_retries value"
            case .pgInitDelayMsecs: return "pg_init_delay_msecs value"
            case .queueMode: return "queue_mode bio|rq|mq|nvme"
            case .hardwareHandlerCount: return "hardware handler arg count"
            case .hardwareHandlerArg: return "hardware handler arg"
            case .groupCount: return "path group count"
            case .initialGroup: return "initial path group"
            case .selector: return "path selector name"
            case .selectorArgCount: return "selector arg count"
            case .selectorArg: return "selector arg"
            case .pathCount: return "path count"
            case .pathArgCount: return "per-path arg count"
            case .device: return "maj:min"
            case .pathArg: return "per-path arg"
            case .queueIO: return "queue_io 0|1"
            case .pgInitCount: return "pg_init_count"
            case .nextGroup: return "next path group"
            case .groupState: return "A|E|D"
            case .pathState: return "A|F"
            case .failCount: return "fail count"
            case .deviceName: return "device name"
            case .startSector: return "start sector"
            case .lengthSectors: return "length in sectors"
            case .targetType: return "target type"
            case .multipathTarget: return "target type multipath"
            case .groupNumber: return "group number"
            case .endOfInput: return "end of input"
            }
        }
    }

    /// What was wrong.
    public enum Problem: Equatable, Sendable {
        /// The text ended where this element was expected (truncated input, or a count larger
        /// than what follows it).
        case missing(Expectation)
        /// A token is not of the expected form (not a number, not `maj:min`, not `A|F`...).
        case malformed(Expectation)
        /// A well-formed number outside what the kernel allows (caps every count the text declares).
        case outOfRange(Expectation, min: Int, max: Int)
        /// The feature arg count ends right after a feature that takes a value (the kernel
        /// refuses such a feature as unrecognised); the token is the feature.
        case featureCountEnds(Expectation)
        /// Tokens are left after a complete value (a count smaller than what follows it).
        case trailing
        /// The caller's buffer cannot hold the formatted text and its NUL.
        case bufferTooSmall(neededBytes: Int, capacityBytes: Int)
    }

    /// Which kind of text was being read or written.
    public var source: Source
    /// What was wrong.
    public var problem: Problem
    /// Zero-based index of the offending token in the input (for `.missing`, the index the
    /// token would have had); nil when no input token applies.
    public var tokenIndex: Int?
    /// The offending token (its first bytes); empty when the input ended.
    public var token: TokenExcerpt
    /// The 1-based path group the token belongs to, when it is inside a group.
    public var group: Int?
    /// The path whose arguments were being read, when the token follows a `maj:min`.
    public var device: DevNo?

    /// Makes an error; parsers build these through their cursor, which fills in the position.
    public init(source: Source, problem: Problem, tokenIndex: Int? = nil, token: TokenExcerpt = TokenExcerpt(),
                group: Int? = nil, device: DevNo? = nil) {
        self.source = source
        self.problem = problem
        self.tokenIndex = tokenIndex
        self.token = token
        self.group = group
        self.device = device
    }

    /// The expectation the problem names, if it names one.
    public var expectation: Expectation? {
        switch problem {
        case .missing(let e), .malformed(let e), .outOfRange(let e, _, _), .featureCountEnds(let e): return e
        case .trailing: return .endOfInput
        case .bufferTooSmall: return nil
        }
    }

    public var description: String {
        var text = "\(source): "
        var place = ""
        if let device { place = " after \(device)" } else if let group { place = " in group \(group)" }
        switch problem {
        case .missing(let e):
            text += "expected \(e)\(place), found end of input"
        case .malformed(let e):
            text += "expected \(e)\(place), found \"\(token)\""
        case .outOfRange(let e, let min, let max):
            text += "\(e)\(place) must be \(min)...\(max), found \"\(token)\""
        case .featureCountEnds(let e):
            text += "expected \(e) after \"\(token)\", found the end of the feature args"
        case .trailing:
            text += "expected end of input, found \"\(token)\""
        case .bufferTooSmall(let needed, let capacity):
            text += "needs \(needed) bytes including its NUL, the buffer holds \(capacity)"
        }
        if let tokenIndex { text += " (token \(tokenIndex))" }
        return text
    }
}

/// The first bytes of an offending token, stored inline so that building an error never allocates.
public struct TokenExcerpt: Equatable, Sendable, CustomStringConvertible {
    /// How many bytes are kept; longer tokens are cut and marked as cut.
    public static let bytesMax = 32

    private var b0: UInt64 = 0
    private var b1: UInt64 = 0
    private var b2: UInt64 = 0
    private var b3: UInt64 = 0
    /// Bytes kept (at most `bytesMax`).
    public private(set) var count: Int = 0
    /// Whether the token was longer than what is kept.
    public private(set) var isCut: Bool = false

    /// An empty excerpt (end of input, or no token).
    public init() {}

    /// The first `bytesMax` bytes of `bytes`.
    public init(_ bytes: UnsafeRawBufferPointer) {
        let kept = Swift.min(bytes.count, Self.bytesMax)
        for i in 0..<kept { setByte(i, bytes[i]) }
        count = kept
        isCut = bytes.count > kept
    }

    /// The excerpt of a string's UTF-8 bytes (for tests and control-plane callers).
    public init(_ text: String) {
        var copy = text
        self = copy.withUTF8 { TokenExcerpt(UnsafeRawBufferPointer($0)) }
    }

    /// The decimal digits of a non-negative number, without allocating.
    init(decimal value: Int) {
        precondition(value >= 0, "TokenExcerpt(decimal:) takes a non-negative number")
        var digits = value
        var n = 0
        repeat {
            n += 1
            digits /= 10
        } while digits > 0
        digits = value
        var i = n - 1
        repeat {
            setByte(i, UInt8(truncatingIfNeeded: 48 + digits % 10))
            digits /= 10
            i -= 1
        } while i >= 0
        count = n
    }

    /// The byte at `index` (below `count`).
    public subscript(index: Int) -> UInt8 {
        precondition(index >= 0 && index < count, "TokenExcerpt index out of range")
        let word: UInt64
        switch index / 8 {
        case 0: word = b0
        case 1: word = b1
        case 2: word = b2
        default: word = b3
        }
        return UInt8(truncatingIfNeeded: word >> UInt64((index % 8) * 8))
    }

    private mutating func setByte(_ index: Int, _ byte: UInt8) {
        let shift = UInt64((index % 8) * 8)
        let bits = UInt64(byte) << shift
        let mask = ~(UInt64(0xFF) << shift)
        switch index / 8 {
        case 0: b0 = (b0 & mask) | bits
        case 1: b1 = (b1 & mask) | bits
        case 2: b2 = (b2 & mask) | bits
        default: b3 = (b3 & mask) | bits
        }
    }

    /// The kept bytes as text, with `…` when the token was cut.
    public var description: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        for i in 0..<count { bytes.append(self[i]) }
        return String(decoding: bytes, as: UTF8.self) + (isCut ? "…" : "")
    }
}
