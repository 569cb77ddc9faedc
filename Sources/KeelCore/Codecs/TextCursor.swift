// The byte-level tokenizer every dm text codec reads with: whitespace-separated tokens, no allocation.

/// One whitespace-free token of kernel text, valid only during the call that hands it out.
public struct TextToken {
    /// The token's bytes (no separators, no NUL). Do not keep the pointer past the call.
    public let bytes: UnsafeRawBufferPointer

    /// Wraps the bytes of one token.
    public init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// The token as a String (allocates for tokens over 15 bytes: control plane only).
    public var string: String { String(decoding: bytes, as: UTF8.self) }

    /// Whether the token is exactly `text` (byte for byte).
    public func equals(_ text: StaticString) -> Bool {
        guard text.utf8CodeUnitCount == bytes.count else { return false }
        let other = UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
        for i in 0..<bytes.count where bytes[i] != other[i] { return false }
        return true
    }
}

/// Where a token sits in the structure, for error messages.
struct TextPlace {
    /// 1-based path group number, when inside a group.
    var group: Int?
    /// The path device the token follows, when inside a path.
    var device: DevNo?

    static let top = TextPlace(group: nil, device: nil)
}

/// Reads whitespace-separated tokens from a byte buffer. Text ends at the buffer's end or at
/// its first NUL (the kernel's ioctl buffers are NUL-terminated). Every read that can fail
/// throws a `CodecError` naming the token and its index.
struct TextCursor {
    let text: UnsafeRawBufferPointer
    let source: CodecError.Source
    /// Byte offset of the next unread byte.
    private(set) var offset: Int = 0
    /// Index of the next token to be read.
    private(set) var tokenIndex: Int = 0

    init(_ text: UnsafeRawBufferPointer, source: CodecError.Source) {
        self.text = text
        self.source = source
    }

    /// The next token's byte range, or nil at the end of the text.
    mutating func next() -> Range<Int>? {
        var i = offset
        let end = text.count
        while i < end, Self.isSpace(text[i]) { i += 1 }
        guard i < end, text[i] != 0 else {
            offset = i
            return nil
        }
        let start = i
        while i < end, text[i] != 0, !Self.isSpace(text[i]) { i += 1 }
        offset = i
        tokenIndex += 1
        return start..<i
    }

    /// The bytes of a range `next()` returned.
    func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: text[range])
    }

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D || byte == 0x0B || byte == 0x0C
    }

    // MARK: Errors at the current position

    /// An error about the token just read (`range`).
    func error(_ problem: CodecError.Problem, token range: Range<Int>, at place: TextPlace) -> CodecError {
        CodecError(source: source, problem: problem, tokenIndex: tokenIndex - 1,
                   token: TokenExcerpt(bytes(range)), group: place.group, device: place.device)
    }

    /// The error for text that ended where `expected` should be.
    func missing(_ expected: CodecError.Expectation, at place: TextPlace) -> CodecError {
        CodecError(source: source, problem: .missing(expected), tokenIndex: tokenIndex,
                   group: place.group, device: place.device)
    }

    // MARK: Typed reads

    /// The next token, or a `.missing` error naming what was expected.
    mutating func token(_ expected: CodecError.Expectation, at place: TextPlace) throws(CodecError) -> Range<Int> {
        guard let range = next() else { throw missing(expected, at: place) }
        return range
    }

    /// A decimal number within `range` (the kernel's limit for this field).
    mutating func number(_ expected: CodecError.Expectation, in range: ClosedRange<Int>,
                         at place: TextPlace) throws(CodecError) -> Int {
        let t = try token(expected, at: place)
        guard let value = Self.decimal(bytes(t)) else {
            throw error(.malformed(expected), token: t, at: place)
        }
        guard value <= UInt64(range.upperBound), value >= UInt64(range.lowerBound) else {
            throw error(.outOfRange(expected, min: range.lowerBound, max: range.upperBound), token: t, at: place)
        }
        return Int(value)
    }

    /// A `major:minor` device number within the kernel's dev_t limits (12-bit major, 20-bit minor).
    mutating func device(at place: TextPlace) throws(CodecError) -> DevNo {
        let t = try token(.device, at: place)
        guard let dev = Self.devNo(bytes(t)) else { throw error(.malformed(.device), token: t, at: place) }
        return dev
    }

    /// Fails with `.trailing` if any token is left.
    mutating func expectEnd() throws(CodecError) {
        if let t = next() { throw error(.trailing, token: t, at: .top) }
    }

    // MARK: Number forms

    /// Largest major the kernel's dev_t holds.
    static let majorMax: UInt64 = (1 << 12) - 1
    /// Largest minor the kernel's dev_t holds.
    static let minorMax: UInt64 = (1 << 20) - 1

    /// Unsigned decimal digits only (no sign, no spaces); nil when empty or not all digits.
    /// Values past `UInt64.max` saturate, so callers reject them with a range check.
    static func decimal(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        guard !bytes.isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in bytes {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(byte - 0x30))
            value = (o1 || o2) ? .max : sum
        }
        return value
    }

    /// `maj:min` with both parts in range; nil otherwise.
    static func devNo(_ bytes: UnsafeRawBufferPointer) -> DevNo? {
        var colon = -1
        for i in 0..<bytes.count where bytes[i] == 0x3A {
            colon = i
            break
        }
        guard colon > 0, colon < bytes.count - 1 else { return nil }
        guard let major = decimal(UnsafeRawBufferPointer(rebasing: bytes[0..<colon])), major <= majorMax,
              let minor = decimal(UnsafeRawBufferPointer(rebasing: bytes[(colon + 1)...])), minor <= minorMax
        else { return nil }
        return DevNo(major: UInt32(major), minor: UInt32(minor))
    }
}

extension String {
    /// Runs `body` over this string's UTF-8 bytes and passes its typed error through.
    func withCodecBytes<R>(_ body: (UnsafeRawBufferPointer) throws(CodecError) -> R) throws(CodecError) -> R {
        var copy = self
        let result: Result<R, CodecError> = copy.withUTF8 { utf8 in
            Result { () throws(CodecError) -> R in try body(UnsafeRawBufferPointer(utf8)) }
        }
        return try result.get()
    }
}
