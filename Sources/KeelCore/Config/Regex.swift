// A small POSIX extended regular expression matcher: compiled once, searched like `regexec`.

/// A compiled POSIX extended regular expression (ERE), the dialect multipath.conf uses for
/// `devnode`, `wwid`, `property`, `vendor` and `product`.
///
/// `matches` answers what `regexec(REG_EXTENDED | REG_NOSUB)` answers: whether the pattern occurs
/// anywhere in the text (unanchored unless the pattern says `^` or `$`). Supported: literals, `.`,
/// `*`, `+`, `?`, intervals `{n}`, `{n,}`, `{n,m}` (at most 255), `^`, `$`, bracket expressions with
/// ranges, negation and `[:class:]`, alternation `|`, groups `()`, and `\` before a punctuation
/// character. Matching works on bytes with ASCII semantics (device names and SCSI strings are
/// ASCII); it simulates the automaton, so its time is linear in the text for a given pattern.
public struct PosixRegex: Sendable, Equatable, CustomStringConvertible {
    /// The pattern as written.
    public let pattern: String
    let program: [RegexInstruction]

    /// Compiles `pattern`; a malformed pattern throws, naming the problem and its byte offset.
    public init(_ pattern: String) throws(RegexError) {
        var parser = RegexParser(bytes: Array(pattern.utf8))
        let tree = try parser.parseWhole()
        var compiler = RegexCompiler()
        try compiler.emit(tree)
        compiler.program.append(.match)
        self.pattern = pattern
        self.program = compiler.program
    }

    /// Whether the pattern matches somewhere in `text`.
    public func matches(_ text: String) -> Bool {
        let utf8 = Array(text.utf8)
        return utf8.withUnsafeBufferPointer { search($0) }
    }

    /// Two expressions are equal when they were written the same way.
    public static func == (a: PosixRegex, b: PosixRegex) -> Bool { a.pattern == b.pattern }

    /// The pattern as written.
    public var description: String { pattern }

    /// Thompson simulation: every live state advances over one byte at a time; a new thread starts
    /// at each position, which makes the search unanchored.
    private func search(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var current: [Int] = []
        var next: [Int] = []
        var stack: [Int] = []
        // The generation in which each instruction was last added, so a list holds it once.
        var addedIn = [Int](repeating: -1, count: program.count)
        current.reserveCapacity(program.count)
        next.reserveCapacity(program.count)
        var position = 0
        while true {
            if addClosure(from: 0, at: position, length: text.count, into: &current, addedIn: &addedIn, stack: &stack) {
                return true
            }
            if position == text.count { return false }
            let byte = text[position]
            next.removeAll(keepingCapacity: true)
            for pc in current {
                guard case .byte(let set) = program[pc], set.contains(byte) else { continue }
                if addClosure(from: pc + 1, at: position + 1, length: text.count, into: &next, addedIn: &addedIn, stack: &stack) {
                    return true
                }
            }
            swap(&current, &next)
            position += 1
        }
    }

    /// Adds `start` and every instruction reachable from it without consuming a byte to `list`.
    /// Returns true when the match instruction is reachable.
    private func addClosure(
        from start: Int, at position: Int, length: Int,
        into list: inout [Int], addedIn: inout [Int], stack: inout [Int]
    ) -> Bool {
        stack.removeAll(keepingCapacity: true)
        stack.append(start)
        while let pc = stack.popLast() {
            if addedIn[pc] == position { continue }
            addedIn[pc] = position
            switch program[pc] {
            case .match:
                return true
            case .byte:
                list.append(pc)
            case .jump(let target):
                stack.append(target)
            case .split(let first, let second):
                stack.append(second)
                stack.append(first)
            case .assertStart:
                if position == 0 { stack.append(pc + 1) }
            case .assertEnd:
                if position == length { stack.append(pc + 1) }
            }
        }
        return false
    }
}

/// Why a pattern did not compile.
public struct RegexError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, e.g. `unmatched "("`.
    public var problem: String
    /// Byte offset in the pattern where the problem was found.
    public var offset: Int

    /// A problem at a byte offset of the pattern.
    public init(problem: String, offset: Int) {
        self.problem = problem
        self.offset = offset
    }

    /// `<problem> at offset <n>`.
    public var description: String { "\(problem) at offset \(offset)" }
}

/// A set of bytes as a 256-bit map.
struct ByteSet: Sendable, Equatable {
    private var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    init() {}

    init(byte: UInt8) { insert(byte) }

    static var all: ByteSet {
        var s = ByteSet()
        s.words = (.max, .max, .max, .max)
        return s
    }

    mutating func insert(_ byte: UInt8) {
        let bit = UInt64(1) << UInt64(byte & 63)
        switch byte >> 6 {
        case 0: words.0 |= bit
        case 1: words.1 |= bit
        case 2: words.2 |= bit
        default: words.3 |= bit
        }
    }

    mutating func insert(_ range: ClosedRange<UInt8>) {
        for b in range { insert(b) }
    }

    func contains(_ byte: UInt8) -> Bool {
        let bit = UInt64(1) << UInt64(byte & 63)
        switch byte >> 6 {
        case 0: return words.0 & bit != 0
        case 1: return words.1 & bit != 0
        case 2: return words.2 & bit != 0
        default: return words.3 & bit != 0
        }
    }

    var inverted: ByteSet {
        var s = ByteSet()
        s.words = (~words.0, ~words.1, ~words.2, ~words.3)
        return s
    }

    static func == (a: ByteSet, b: ByteSet) -> Bool {
        a.words.0 == b.words.0 && a.words.1 == b.words.1 && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }
}

/// One step of the compiled automaton.
enum RegexInstruction: Sendable, Equatable {
    /// Consume one byte in the set.
    case byte(ByteSet)
    /// Continue at both targets.
    case split(Int, Int)
    case jump(Int)
    /// `^`: only at the start of the text.
    case assertStart
    /// `$`: only at the end of the text.
    case assertEnd
    case match
}

/// The parsed form of a pattern.
indirect enum RegexNode {
    case empty
    case bytes(ByteSet)
    case sequence([RegexNode])
    case alternatives([RegexNode])
    case repetition(RegexNode, min: Int, max: Int?)
    case start
    case end
}

/// Recursive-descent parser for the ERE grammar:
/// `regex := branch ('|' branch)*`, `branch := piece*`, `piece := atom quantifier*`.
struct RegexParser {
    let bytes: [UInt8]
    var index = 0

    /// POSIX's smallest allowed RE_DUP_MAX; also keeps compiled programs small.
    static let repetitionMax = 255
    /// Limits that keep parsing, compiling and freeing a pattern off deep recursion: the parser
    /// and the tree it builds recurse once per group and per stacked quantifier.
    static let patternBytesMax = 1024
    static let groupDepthMax = 32
    static let stackedQuantifiersMax = 4

    private var groupDepth = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseWhole() throws(RegexError) -> RegexNode {
        if bytes.count > Self.patternBytesMax {
            throw RegexError(problem: "pattern of \(bytes.count) bytes, longer than \(Self.patternBytesMax)", offset: Self.patternBytesMax)
        }
        let node = try parseAlternatives()
        if index < bytes.count {
            // Only a `)` without its `(` stops the top-level alternatives early.
            throw RegexError(problem: "unmatched \")\"", offset: index)
        }
        return node
    }

    private var atEnd: Bool { index >= bytes.count }
    private var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func parseAlternatives() throws(RegexError) -> RegexNode {
        var branches = [try parseBranch()]
        while peek == UInt8(ascii: "|") {
            index += 1
            branches.append(try parseBranch())
        }
        return branches.count == 1 ? branches[0] : .alternatives(branches)
    }

    private mutating func parseBranch() throws(RegexError) -> RegexNode {
        var pieces: [RegexNode] = []
        while let c = peek, c != UInt8(ascii: "|"), c != UInt8(ascii: ")") {
            pieces.append(try parsePiece())
        }
        switch pieces.count {
        case 0: return .empty
        case 1: return pieces[0]
        default: return .sequence(pieces)
        }
    }

    private mutating func parsePiece() throws(RegexError) -> RegexNode {
        var node = try parseAtom()
        var quantifiers = 0
        while let c = peek {
            let quantifierOffset = index
            let bounds: (Int, Int?)
            switch c {
            case UInt8(ascii: "*"): index += 1; bounds = (0, nil)
            case UInt8(ascii: "+"): index += 1; bounds = (1, nil)
            case UInt8(ascii: "?"): index += 1; bounds = (0, 1)
            case UInt8(ascii: "{"): bounds = try parseInterval()
            default: return node
            }
            switch node {
            case .start, .end:
                throw RegexError(problem: "nothing to repeat before \"\(Character(Unicode.Scalar(c)))\"", offset: quantifierOffset)
            default:
                break
            }
            quantifiers += 1
            if quantifiers > Self.stackedQuantifiersMax {
                throw RegexError(problem: "more than \(Self.stackedQuantifiersMax) quantifiers on one atom", offset: quantifierOffset)
            }
            node = .repetition(node, min: bounds.0, max: bounds.1)
        }
        return node
    }

    /// `{n}`, `{n,}` or `{n,m}`; `index` is at the `{`.
    private mutating func parseInterval() throws(RegexError) -> (Int, Int?) {
        let open = index
        index += 1
        let bad = RegexError(problem: "invalid interval", offset: open)
        guard let low = readNumber() else { throw bad }
        var high: Int? = low
        if peek == UInt8(ascii: ",") {
            index += 1
            high = readNumber()
        }
        guard peek == UInt8(ascii: "}") else { throw bad }
        index += 1
        if let h = high, h < low { throw RegexError(problem: "interval {\(low),\(h)} has its bounds reversed", offset: open) }
        if low > Self.repetitionMax || (high ?? 0) > Self.repetitionMax {
            throw RegexError(problem: "interval bound above \(Self.repetitionMax)", offset: open)
        }
        return (low, high)
    }

    private mutating func readNumber() -> Int? {
        var value: Int? = nil
        while let c = peek, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") {
            value = min((value ?? 0) * 10 + Int(c - UInt8(ascii: "0")), 100_000)
            index += 1
        }
        return value
    }

    private mutating func parseAtom() throws(RegexError) -> RegexNode {
        let offset = index
        let c = bytes[index]
        index += 1
        switch c {
        case UInt8(ascii: "("):
            groupDepth += 1
            defer { groupDepth -= 1 }
            if groupDepth > Self.groupDepthMax {
                throw RegexError(problem: "groups nested more than \(Self.groupDepthMax) deep", offset: offset)
            }
            let inner = try parseAlternatives()
            guard peek == UInt8(ascii: ")") else { throw RegexError(problem: "unmatched \"(\"", offset: offset) }
            index += 1
            return inner
        case UInt8(ascii: "["):
            return .bytes(try parseBracket(openedAt: offset))
        case UInt8(ascii: "."):
            return .bytes(.all)
        case UInt8(ascii: "^"):
            return .start
        case UInt8(ascii: "$"):
            return .end
        case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"), UInt8(ascii: "{"):
            throw RegexError(problem: "nothing to repeat before \"\(Character(Unicode.Scalar(c)))\"", offset: offset)
        case UInt8(ascii: "\\"):
            guard let escaped = peek else { throw RegexError(problem: "trailing backslash", offset: offset) }
            if Self.isAlphanumeric(escaped) {
                throw RegexError(problem: "unsupported escape \"\\\(Character(Unicode.Scalar(escaped)))\"", offset: offset)
            }
            index += 1
            return .bytes(ByteSet(byte: escaped))
        default:
            if c >= 0xC0 {
                // A multi-byte UTF-8 character is one atom, so a quantifier repeats all of it.
                var sequence: [RegexNode] = [.bytes(ByteSet(byte: c))]
                while let next = peek, next & 0xC0 == 0x80 {
                    sequence.append(.bytes(ByteSet(byte: next)))
                    index += 1
                }
                return sequence.count == 1 ? sequence[0] : .sequence(sequence)
            }
            return .bytes(ByteSet(byte: c))
        }
    }

    /// A bracket expression; `index` is just after the `[`.
    private mutating func parseBracket(openedAt open: Int) throws(RegexError) -> ByteSet {
        var set = ByteSet()
        var negated = false
        if peek == UInt8(ascii: "^") {
            negated = true
            index += 1
        }
        var first = true
        while true {
            guard let c = peek else { throw RegexError(problem: "unmatched \"[\"", offset: open) }
            if c == UInt8(ascii: "]") && !first {
                index += 1
                break
            }
            first = false
            if c == UInt8(ascii: "[") && index + 1 < bytes.count {
                let kind = bytes[index + 1]
                if kind == UInt8(ascii: ":") {
                    try parseClass(into: &set)
                    continue
                }
                if kind == UInt8(ascii: "=") || kind == UInt8(ascii: ".") {
                    throw RegexError(problem: "collating elements and equivalence classes are not supported", offset: index)
                }
            }
            guard c < 0x80 else { throw RegexError(problem: "non-ASCII character in a bracket expression", offset: index) }
            index += 1
            // `a-z` is a range unless the `-` is the last character before `]`.
            if peek == UInt8(ascii: "-"), index + 1 < bytes.count, bytes[index + 1] != UInt8(ascii: "]") {
                let upper = bytes[index + 1]
                guard upper < 0x80 else { throw RegexError(problem: "non-ASCII character in a bracket expression", offset: index + 1) }
                guard c <= upper else {
                    throw RegexError(problem: "invalid range \"\(Character(Unicode.Scalar(c)))-\(Character(Unicode.Scalar(upper)))\"", offset: index - 1)
                }
                set.insert(c...upper)
                index += 2
            } else {
                set.insert(c)
            }
        }
        return negated ? set.inverted : set
    }

    /// `[:name:]` inside a bracket expression; `index` is at its `[`.
    private mutating func parseClass(into set: inout ByteSet) throws(RegexError) {
        let start = index
        index += 2
        var name: [UInt8] = []
        while let c = peek, c != UInt8(ascii: ":") {
            name.append(c)
            index += 1
        }
        guard index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "]") else {
            throw RegexError(problem: "unterminated character class", offset: start)
        }
        index += 2
        let className = String(decoding: name, as: UTF8.self)
        for b in UInt8(0)...UInt8(127) where Self.classContains(className, b) {
            set.insert(b)
        }
        guard Self.knownClasses.contains(className) else {
            throw RegexError(problem: "unknown character class \"\(className)\"", offset: start)
        }
    }

    static let knownClasses = ["alpha", "digit", "alnum", "upper", "lower", "space", "blank", "punct", "xdigit", "cntrl", "print", "graph"]

    static func classContains(_ name: String, _ b: UInt8) -> Bool {
        let upper = b >= 65 && b <= 90
        let lower = b >= 97 && b <= 122
        let digit = b >= 48 && b <= 57
        let printable = b >= 32 && b < 127
        switch name {
        case "alpha": return upper || lower
        case "digit": return digit
        case "alnum": return upper || lower || digit
        case "upper": return upper
        case "lower": return lower
        case "space": return b == 32 || (b >= 9 && b <= 13)
        case "blank": return b == 32 || b == 9
        case "punct": return printable && b != 32 && !(upper || lower || digit)
        case "xdigit": return digit || (b >= 65 && b <= 70) || (b >= 97 && b <= 102)
        case "cntrl": return b < 32 || b == 127
        case "print": return printable
        case "graph": return printable && b != 32
        default: return false
        }
    }

    static func isAlphanumeric(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
    }
}

/// Turns the parsed tree into the instruction list the matcher runs.
struct RegexCompiler {
    var program: [RegexInstruction] = []

    /// Patterns such as `(a{255}){255}` would compile into millions of steps; refuse them.
    static let instructionsMax = 20_000

    mutating func emit(_ node: RegexNode) throws(RegexError) {
        guard program.count < Self.instructionsMax else {
            throw RegexError(problem: "pattern too large after expanding repetitions", offset: 0)
        }
        switch node {
        case .empty:
            break
        case .bytes(let set):
            program.append(.byte(set))
        case .start:
            program.append(.assertStart)
        case .end:
            program.append(.assertEnd)
        case .sequence(let parts):
            for part in parts { try emit(part) }
        case .alternatives(let branches):
            // split b1, next; b1; jump end; next: split b2, next2; ... last branch falls through.
            var jumpsToEnd: [Int] = []
            for (i, branch) in branches.enumerated() {
                if i == branches.count - 1 {
                    try emit(branch)
                } else {
                    let split = program.count
                    program.append(.split(split + 1, 0))
                    try emit(branch)
                    jumpsToEnd.append(program.count)
                    program.append(.jump(0))
                    program[split] = .split(split + 1, program.count)
                }
            }
            for j in jumpsToEnd { program[j] = .jump(program.count) }
        case .repetition(let inner, let min, let max):
            for _ in 0..<min { try emit(inner) }
            if let max {
                // Each optional copy may be skipped straight to the end.
                var splits: [Int] = []
                for _ in min..<max {
                    splits.append(program.count)
                    program.append(.split(program.count + 1, 0))
                    try emit(inner)
                }
                for s in splits { program[s] = .split(s + 1, program.count) }
            } else {
                let loop = program.count
                program.append(.split(loop + 1, 0))
                try emit(inner)
                program.append(.jump(loop))
                program[loop] = .split(loop + 1, program.count)
            }
        }
    }
}
