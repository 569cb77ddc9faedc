// multipath.conf syntax: the tokenizer and the tree of sections and statements, before meaning.

/// One statement (`keyword value`) or one section (`name {` ... `}`) of a configuration file.
struct ConfigNode: Sendable {
    var keyword: String
    /// The words after the keyword on its line (a quoted string is one word).
    var values: [String]
    var line: Int
    /// The contents of a section; nil for a statement.
    var children: [ConfigNode]?

    var isSection: Bool { children != nil }
}

/// One token of a line.
enum ConfigToken: Equatable {
    case word(String)
    case open
    case close
}

/// Splits configuration text into lines of tokens and builds the section tree.
///
/// Rules (multipath-tools' parser): words are separated by blanks; a value in double quotes is
/// one word and may hold blanks, `#`, `!` and braces, and `""` inside quotes stands for one `"`;
/// outside quotes `#` or `!` starts a comment that runs to the end of the line, and `{` and `}`
/// are tokens of their own. A section opens with its name and `{` on the same line.
struct ConfigSyntax {
    /// Limits on what one file may hold. A file past one is refused with `file:line: problem`
    /// and the rest of it is not read: a typo or a hostile file must never exhaust the stack or
    /// memory of the thread that reads it (the events thread re-reads it on SIGHUP). The real
    /// grammar nests three deep (`devices { device { } }`); real files are a few KiB.
    static let fileBytesMax = 4 << 20
    static let linesMax = 200_000
    static let depthMax = 8
    static let wordBytesMax = 4096
    static let wordsPerLineMax = 256

    let file: String
    private(set) var errors: [ConfigDiagnostic] = []

    init(file: String) { self.file = file }

    /// Tokenizes one line; an unterminated quote is reported and the partial word kept.
    mutating func tokenize(_ line: Substring, number: Int) -> [ConfigToken] {
        var tokens: [ConfigToken] = []
        let bytes = Array(line.utf8)
        var word: [UInt8] = []
        var inWord = false
        var i = 0

        func isBlank(_ b: UInt8) -> Bool { b == 32 || b == 9 || b == 13 || b == 11 || b == 12 }

        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                if inWord {
                    tokens.append(.word(String(decoding: word, as: UTF8.self)))
                    word.removeAll()
                    inWord = false
                }
                i += 1
                var quoted: [UInt8] = []
                var closed = false
                while i < bytes.count {
                    if bytes[i] == UInt8(ascii: "\"") {
                        if i + 1 < bytes.count && bytes[i + 1] == UInt8(ascii: "\"") {
                            quoted.append(UInt8(ascii: "\""))
                            i += 2
                            continue
                        }
                        closed = true
                        i += 1
                        break
                    }
                    quoted.append(bytes[i])
                    i += 1
                }
                if quoted.count > Self.wordBytesMax {
                    errors.append(ConfigDiagnostic(file: file, line: number, message: "quoted string of \(quoted.count) bytes, longer than \(Self.wordBytesMax)"))
                    quoted.removeAll()
                }
                if !closed {
                    errors.append(ConfigDiagnostic(file: file, line: number, message: "unterminated quoted string"))
                }
                tokens.append(.word(String(decoding: quoted, as: UTF8.self)))
                continue
            }
            if b == UInt8(ascii: "#") || b == UInt8(ascii: "!") { break }
            if isBlank(b) || b == UInt8(ascii: "{") || b == UInt8(ascii: "}") {
                if inWord {
                    tokens.append(.word(String(decoding: word, as: UTF8.self)))
                    word.removeAll()
                    inWord = false
                }
                if b == UInt8(ascii: "{") { tokens.append(.open) }
                if b == UInt8(ascii: "}") { tokens.append(.close) }
                i += 1
                continue
            }
            word.append(b)
            inWord = true
            i += 1
            if word.count > Self.wordBytesMax {
                errors.append(ConfigDiagnostic(file: file, line: number, message: "word longer than \(Self.wordBytesMax) bytes"))
                return tokens
            }
        }
        if inWord { tokens.append(.word(String(decoding: word, as: UTF8.self))) }
        return tokens
    }

    /// Parses a whole file into its top-level nodes. Brace errors are collected; sections left
    /// open at the end are closed so their contents are still checked.
    mutating func parse(_ text: String) -> [ConfigNode] {
        if text.utf8.count > Self.fileBytesMax {
            errors.append(ConfigDiagnostic(file: file, line: 0, message: "file of \(text.utf8.count) bytes, larger than \(Self.fileBytesMax)"))
            return []
        }
        // stack[0] holds the top level; each open section adds one entry.
        var stack: [ConfigNode] = [ConfigNode(keyword: "", values: [], line: 0, children: [])]
        var lineNumber = 0
        // "\r\n" is one Character in Swift, so it is a separator of its own.
        lines: for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            if lineNumber > Self.linesMax {
                errors.append(ConfigDiagnostic(file: file, line: lineNumber, message: "more than \(Self.linesMax) lines; the rest of the file is not read"))
                break
            }
            let tokens = tokenize(line, number: lineNumber)
            if tokens.count > Self.wordsPerLineMax {
                errors.append(ConfigDiagnostic(file: file, line: lineNumber, message: "\(tokens.count) words on one line, more than \(Self.wordsPerLineMax)"))
                continue
            }
            var words: [String] = []
            for token in tokens {
                switch token {
                case .word(let w):
                    words.append(w)
                case .open:
                    if stack.count > Self.depthMax {
                        errors.append(ConfigDiagnostic(file: file, line: lineNumber, message: "sections nested more than \(Self.depthMax) deep; the rest of the file is not read"))
                        break lines
                    }
                    if words.isEmpty {
                        errors.append(ConfigDiagnostic(file: file, line: lineNumber, message: "\"{\" without a section name before it on the same line"))
                        stack.append(ConfigNode(keyword: "", values: [], line: lineNumber, children: []))
                    } else {
                        if words.count > 1 {
                            errors.append(ConfigDiagnostic(file: file, line: lineNumber, message: "section \"\(words[0])\": unexpected \"\(words[1])\" before \"{\""))
                        }
                        stack.append(ConfigNode(keyword: words[0], values: [], line: lineNumber, children: []))
                    }
                    words.removeAll()
                case .close:
                    if !words.isEmpty {
                        stack[stack.count - 1].children!.append(statement(words, line: lineNumber))
                        words.removeAll()
                    }
                    if stack.count == 1 {
                        errors.append(ConfigDiagnostic(file: file, line: lineNumber, message: "\"}\" without an open section"))
                    } else {
                        let done = stack.removeLast()
                        stack[stack.count - 1].children!.append(done)
                    }
                }
            }
            if !words.isEmpty {
                stack[stack.count - 1].children!.append(statement(words, line: lineNumber))
            }
        }
        while stack.count > 1 {
            let open = stack.removeLast()
            let name = open.keyword.isEmpty ? "" : " \"\(open.keyword)\""
            errors.append(ConfigDiagnostic(file: file, line: open.line, message: "section\(name) is not closed (missing \"}\")"))
            stack[stack.count - 1].children!.append(open)
        }
        return stack[0].children!
    }

    private func statement(_ words: [String], line: Int) -> ConfigNode {
        ConfigNode(keyword: words[0], values: Array(words.dropFirst()), line: line, children: nil)
    }
}
