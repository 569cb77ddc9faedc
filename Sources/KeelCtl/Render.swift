// Tables for people: aligned columns, state words coloured when the output is a terminal.

/// How keelctl paints its output.
public struct Painter: Sendable {
    public var colour: Bool
    public init(colour: Bool) { self.colour = colour }

    static let reset = "\u{1B}[0m"
    static let green = "\u{1B}[32m"
    static let red = "\u{1B}[31m"
    static let yellow = "\u{1B}[33m"
    static let bold = "\u{1B}[1m"

    /// The colour of a state word: usable green, failed red, in between yellow.
    static func tint(of word: String) -> String? {
        switch word {
        case "active", "ready", "running", "enabled", "on": return green
        case "failed", "faulty", "offline", "i/o timeout", "blocked", "transport-offline", "disabled", "off": return red
        case "ghost", "shaky", "i/o pending", "delayed", "orphan", "undef", "queue", "suspend": return yellow
        default: return nil
        }
    }

    public func state(_ word: String) -> String {
        guard colour, let tint = Self.tint(of: word) else { return word }
        return tint + word + Self.reset
    }

    public func heading(_ text: String) -> String { colour ? Self.bold + text + Self.reset : text }

    /// Rows under `headers`, columns padded to their widest cell; cells in `stateColumns`
    /// are coloured by their word (padding is computed on the plain text).
    public func table(headers: [String], rows: [[String]], stateColumns: Set<Int> = []) -> String {
        var widths = headers.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String], paint: Bool) -> String {
            var out = ""
            for (i, cell) in cells.enumerated() {
                let last = i == cells.count - 1
                let pad = last ? "" : String(repeating: " ", count: widths[i] - cell.count + 2)
                out += (paint && stateColumns.contains(i) ? state(cell) : cell) + pad
            }
            return out + "\n"
        }
        var out = colour ? Self.bold + line(headers, paint: false).dropLast() + Self.reset + "\n" : line(headers, paint: false)
        for row in rows { out += line(row, paint: true) }
        return out
    }

    /// `show topology` text with its state words coloured (the words after the H:C:T:L and
    /// dev_t of a path line, and `status=` of a group line).
    public func topology(_ text: String) -> String {
        guard colour else { return text }
        var out = ""
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var words = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            for i in words.indices {
                if words[i].hasPrefix("status=") {
                    words[i] = "status=" + state(String(words[i].dropFirst(7)))
                } else if Self.tint(of: words[i]) != nil, i > 0, words[..<i].contains(where: { $0.contains(":") && $0.first?.isNumber == true }) {
                    words[i] = state(words[i])
                }
            }
            out += words.joined(separator: " ") + "\n"
        }
        return String(out.dropLast())
    }
}
