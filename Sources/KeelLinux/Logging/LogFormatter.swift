// Turns LogRecords into text lines (the only place Keel formats log text), without allocating.
import Glibc
import CKeelShim
import KeelCore

/// The `%word`s a message format may use, each rendering one argument.
public enum LogPlaceholder: CaseIterable, Sendable {
    /// `major:minor` (`LogArgument.device`).
    case dev
    /// `map#N` (`map#N.G` for a later generation of slot N).
    case map
    /// `path#N`.
    case path
    /// A path state as `show paths` prints it (`ready`, `faulty`, ...).
    case state
    /// A dm message verb (`fail_path`, ...).
    case verb
    /// A 1-based path group number.
    case group
    /// `errno N (ENAME)`.
    case errno
    /// A signed decimal.
    case n
    /// A duration in milliseconds, as a decimal.
    case ms
    /// The name of a producing thread, from its index.
    case thread
    /// A device-mapper operation (`LogDMOperation`).
    case op
    /// A checker verdict (`up`, `down`, ...).
    case result
    /// A uevent action (`add`, `remove`, ...).
    case action
    /// A log sink (`file`, `stream`, `journal`).
    case sink

    /// The word after `%`.
    public var word: StaticString {
        switch self {
        case .dev: return "dev"
        case .map: return "map"
        case .path: return "path"
        case .state: return "state"
        case .verb: return "verb"
        case .group: return "group"
        case .errno: return "errno"
        case .n: return "n"
        case .ms: return "ms"
        case .thread: return "thread"
        case .op: return "op"
        case .result: return "result"
        case .action: return "action"
        case .sink: return "sink"
        }
    }

    /// The placeholder spelled by `bytes`, or nil.
    /// A chain of comparisons rather than a walk over `allCases`, which would build an Array.
    static func named(_ bytes: UnsafeBufferPointer<UInt8>) -> LogPlaceholder? {
        if bytesEqual(bytes, "dev") { return .dev }
        if bytesEqual(bytes, "map") { return .map }
        if bytesEqual(bytes, "path") { return .path }
        if bytesEqual(bytes, "state") { return .state }
        if bytesEqual(bytes, "verb") { return .verb }
        if bytesEqual(bytes, "group") { return .group }
        if bytesEqual(bytes, "errno") { return .errno }
        if bytesEqual(bytes, "n") { return .n }
        if bytesEqual(bytes, "ms") { return .ms }
        if bytesEqual(bytes, "thread") { return .thread }
        if bytesEqual(bytes, "op") { return .op }
        if bytesEqual(bytes, "result") { return .result }
        if bytesEqual(bytes, "action") { return .action }
        if bytesEqual(bytes, "sink") { return .sink }
        return nil
    }
}

/// The sinks a line can go to (`%sink`).
@frozen
public enum LogSinkKind: UInt8, BitwiseCopyable, Sendable {
    case file = 0
    case stream = 1
    case journal = 2

    /// The name a line shows.
    public var word: StaticString {
        switch self {
        case .file: return "file"
        case .stream: return "stream"
        case .journal: return "journal"
        }
    }
}

/// Whether `bytes` spell exactly `text`.
private func bytesEqual(_ bytes: UnsafeBufferPointer<UInt8>, _ text: StaticString) -> Bool {
    guard bytes.count == text.utf8CodeUnitCount else { return false }
    let start = text.utf8Start
    for i in 0..<bytes.count where bytes[i] != start[i] { return false }
    return true
}

/// The placeholders of `format`, in order, as `(placeholder or nil for an unknown word)`.
/// Calls `visit` for each; used by the formatter and by the catalogue's tests.
func forEachPlaceholder(in format: StaticString, _ visit: (LogPlaceholder?) -> Void) {
    let bytes = UnsafeBufferPointer(start: format.utf8Start, count: format.utf8CodeUnitCount)
    var i = 0
    while i < bytes.count {
        if bytes[i] == UInt8(ascii: "%") {
            let wordStart = i + 1
            var wordEnd = wordStart
            while wordEnd < bytes.count, isPlaceholderLetter(bytes[wordEnd]) { wordEnd += 1 }
            visit(LogPlaceholder.named(UnsafeBufferPointer(rebasing: bytes[wordStart..<wordEnd])))
            i = wordEnd
        } else {
            i += 1
        }
    }
}

private func isPlaceholderLetter(_ byte: UInt8) -> Bool {
    byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")
}

/// A bounded byte buffer that text is appended to; what does not fit is cut (and `truncated` set).
struct LogTextBuffer {
    let base: UnsafeMutablePointer<UInt8>
    let capacity: Int
    var count = 0
    var truncated = false

    init(base: UnsafeMutablePointer<UInt8>, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: base, count: count) }

    mutating func reset() {
        count = 0
        truncated = false
    }

    mutating func append(_ byte: UInt8) {
        guard count < capacity else { truncated = true; return }
        base[count] = byte
        count += 1
    }

    mutating func append(_ text: StaticString) {
        append(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        for byte in bytes { append(byte) }
    }

    /// A NUL-terminated C string.
    mutating func append(cString: UnsafePointer<CChar>) {
        var p = cString
        while p.pointee != 0 {
            append(UInt8(bitPattern: p.pointee))
            p += 1
        }
    }

    /// `value` in decimal, at least `width` digits (zero-padded).
    mutating func append(decimal value: UInt64, width: Int = 1) {
        var digits: InlineArray<20, UInt8> = .init(repeating: 0)
        var remaining = value
        var used = 0
        repeat {
            digits[used] = UInt8(ascii: "0") + UInt8(remaining % 10)
            remaining /= 10
            used += 1
        } while remaining != 0
        var padding = width - used
        while padding > 0 { append(UInt8(ascii: "0")); padding -= 1 }
        while used > 0 {
            used -= 1
            append(digits[used])
        }
    }

    mutating func append(signed value: Int64) {
        if value < 0 {
            append(UInt8(ascii: "-"))
            append(decimal: value.magnitude)
        } else {
            append(decimal: UInt64(value))
        }
    }
}

/// Formats records into lines: `<seconds>.<microseconds> <level> <thread>: <text>\n` for the file
/// and stream sinks, and the bare text for the journal (which stamps and prioritises itself).
struct LogFormatter {
    /// Names of the producers, by index (`%thread` and the line prefix).
    let producerNames: UnsafePointer<StaticString>
    /// Number of names (producers registered so far; the logger's own name when the index is past it).
    var producerCount: Int
    /// The name of records the logger makes itself (drop reports).
    let loggerName: StaticString
    /// Names for maps, paths and devices; without them lines show `map#N`, `path#N`, `8:32`.
    var names: LogNames? = nil

    func name(ofProducer index: UInt64) -> StaticString {
        index < UInt64(producerCount) ? producerNames[Int(index)] : loggerName
    }

    /// Appends the full line for `record` (prefix, text, newline) to `line`.
    func appendLine(_ record: LogRecord, to line: inout LogTextBuffer) {
        let timestamp = UInt64(max(record.timestampNs, 0))
        line.append(decimal: timestamp / 1_000_000_000, width: 5)
        line.append(UInt8(ascii: "."))
        line.append(decimal: timestamp % 1_000_000_000 / 1000, width: 6)
        line.append(UInt8(ascii: " "))
        line.append(record.message.level.word)
        line.append(UInt8(ascii: " "))
        line.append(name(ofProducer: UInt64(record.source)))
        line.append(": ")
        appendText(record, to: &line)
        if line.count == line.capacity {
            // Cut: end the line where it was cut so the next one starts on its own line.
            line.count -= 1
        }
        line.append(UInt8(ascii: "\n"))
    }

    /// Appends the message text of `record`, its placeholders filled in.
    func appendText(_ record: LogRecord, to line: inout LogTextBuffer) {
        let format = record.message.format
        let bytes = UnsafeBufferPointer(start: format.utf8Start, count: format.utf8CodeUnitCount)
        var argument = 0
        var i = 0
        while i < bytes.count {
            guard bytes[i] == UInt8(ascii: "%") else {
                line.append(bytes[i])
                i += 1
                continue
            }
            let wordStart = i + 1
            var wordEnd = wordStart
            while wordEnd < bytes.count, isPlaceholderLetter(bytes[wordEnd]) { wordEnd += 1 }
            let word = UnsafeBufferPointer(rebasing: bytes[wordStart..<wordEnd])
            if let placeholder = LogPlaceholder.named(word), argument < 4 {
                render(placeholder, record.arguments[argument], to: &line)
                argument += 1
            } else {
                // Not a placeholder (the catalogue's tests keep this from happening): keep the text.
                line.append(UnsafeBufferPointer(rebasing: bytes[i..<wordEnd]))
            }
            i = wordEnd
        }
    }

    func render(_ placeholder: LogPlaceholder, _ value: UInt64, to line: inout LogTextBuffer) {
        switch placeholder {
        case .dev:
            let named = names?.appendDeviceName(DevNo(major: UInt32(truncatingIfNeeded: value >> 32), minor: UInt32(truncatingIfNeeded: value)), to: &line) ?? false
            line.append(decimal: value >> 32)
            line.append(UInt8(ascii: ":"))
            line.append(decimal: value & 0xFFFF_FFFF)
            if named { line.append(UInt8(ascii: ")")) }
        case .map:
            if let names {
                names.appendMap(value, to: &line)
            } else {
                LogNames.appendMapNumbers(value, to: &line)
            }
        case .path:
            if let names {
                names.appendPath(value, to: &line)
            } else {
                LogNames.appendPathNumbers(value, to: &line)
            }
        case .state:
            line.append(stateWord(value))
        case .verb:
            if let kind = DMMessageKind(rawValue: UInt8(truncatingIfNeeded: value)), value <= UInt64(UInt8.max) {
                line.append(kind.verb)
            } else {
                unknown(value, to: &line)
            }
        case .group, .ms:
            line.append(decimal: value)
        case .n:
            line.append(signed: Int64(bitPattern: value))
        case .errno:
            let error = Int32(truncatingIfNeeded: Int64(bitPattern: value))
            line.append("errno ")
            line.append(signed: Int64(error))
            if let name = keel_logging_errno_name(error) {
                line.append(" (")
                line.append(cString: name)
                line.append(UInt8(ascii: ")"))
            }
        case .thread:
            line.append(name(ofProducer: value))
        case .op:
            if value <= UInt64(UInt8.max), let operation = LogDMOperation(rawValue: UInt8(value)) {
                line.append(operation.word)
            } else {
                unknown(value, to: &line)
            }
        case .result:
            line.append(resultWord(value))
        case .action:
            line.append(actionWord(value))
        case .sink:
            if value <= UInt64(UInt8.max), let sink = LogSinkKind(rawValue: UInt8(value)) {
                line.append(sink.word)
            } else {
                unknown(value, to: &line)
            }
        }
    }

    private func unknown(_ value: UInt64, to line: inout LogTextBuffer) {
        line.append("?")
        line.append(decimal: value)
    }

    private func stateWord(_ value: UInt64) -> StaticString {
        guard value <= UInt64(UInt8.max), let state = PathState(rawValue: UInt8(value)) else { return "?" }
        // PathState's own words are Strings; these match them (`show paths`), plus the operator case.
        switch state {
        case .unchecked: return "undef"
        case .up: return "ready"
        case .down: return "faulty"
        case .ghost: return "ghost"
        case .pending: return "i/o pending"
        case .delayed: return "delayed"
        case .removed: return "removed"
        case .operatorFailed: return "faulty (operator)"
        }
    }

    private func resultWord(_ value: UInt64) -> StaticString {
        guard value <= UInt64(UInt8.max), let result = CheckResult(rawValue: UInt8(value)) else { return "?" }
        switch result {
        case .up: return "up"
        case .down: return "down"
        case .ghost: return "ghost"
        case .pending: return "pending"
        case .timeout: return "timeout"
        case .removed: return "removed"
        case .notStarted: return "not started"
        }
    }

    private func actionWord(_ value: UInt64) -> StaticString {
        guard value <= UInt64(UInt8.max), let action = UeventAction(rawValue: UInt8(value)) else { return "?" }
        switch action {
        case .add: return "add"
        case .remove: return "remove"
        case .change: return "change"
        case .other: return "other"
        }
    }
}
