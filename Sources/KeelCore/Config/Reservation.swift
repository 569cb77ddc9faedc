// Persistent-reservation keys: the `reservation_key` option and the prkeys file that
// mpathpersist and the daemon share (multipath-tools' formats).

/// A SCSI persistent-reservation key and its APTPL flag (activate persist through power loss).
public struct ReservationKey: Sendable, Equatable, CustomStringConvertible {
    /// The 8-byte key; 0 is no key.
    public var value: UInt64
    public var aptpl: Bool

    public init(_ value: UInt64, aptpl: Bool = false) {
        self.value = value
        self.aptpl = aptpl
    }

    /// multipath-tools' text of a key: `0x` and up to 16 hex digits (the `0x` optional), then
    /// `:aptpl` optionally; another word after the colon is no flag, as there.
    public init?(parsing text: String) {
        var digits = Substring(text)
        var flag: Substring = ""
        if let colon = digits.firstIndex(of: ":") {
            flag = digits[digits.index(after: colon)...]
            digits = digits[..<colon]
        }
        if digits.first == "0" { digits = digits.dropFirst() }
        if digits.first == "x" || digits.first == "X" { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.utf8.count <= 16, digits.utf8.allSatisfy({ Self.isHexDigit($0) }),
              let v = UInt64(digits, radix: 16) else { return nil }
        value = v
        aptpl = flag == "aptpl"
    }

    private static func isHexDigit(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f"))
            || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "F"))
    }

    /// As `getprkey` and `show config` print it: `0x1a2b` or `0x1a2b:aptpl`.
    public var description: String { "0x" + String(value, radix: 16) + (aptpl ? ":aptpl" : "") }
}

/// Where a map's reservation key comes from (`reservation_key`).
public enum ReservationKeySource: Sendable, Equatable, CustomStringConvertible {
    /// The key written in the configuration.
    case key(ReservationKey)
    /// The prkeys file, which mpathpersist fills through `setprkey`.
    case file

    public init?(parsing text: String) {
        if text == "file" {
            self = .file
        } else if let key = ReservationKey(parsing: text), key.value != 0 {
            self = .key(key)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .key(let key): return key.description
        case .file: return "file"
        }
    }
}

/// The prkeys file (`prkeys_file`, /etc/multipath/prkeys): one `0x<16 hex digits> <wwid>` line per
/// map whose key came through `setprkey`; `0X` marks a key registered with APTPL; `#` starts a
/// comment (multipathd removes a key by turning its line into one).
public struct PRKeys: Sendable, Equatable {
    public private(set) var keys: [String: ReservationKey] = [:]
    /// Lines that were not used, each with its 1-based number and why.
    public private(set) var problems: [(line: Int, why: String)] = []

    public init() {}

    public init(text: String) {
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let words = raw.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let first = words.first, first.first != "#" else { continue }
            guard words.count == 2, first.utf8.count <= 18, first.hasPrefix("0x") || first.hasPrefix("0X"),
                  let key = ReservationKey(parsing: String(first)), words[1].utf8.count <= Bindings.lineBytesMax else {
                problems.append((number, "not a \"0x<key> <wwid>\" line"))
                continue
            }
            keys[String(words[1])] = ReservationKey(key.value, aptpl: first.hasPrefix("0X"))
        }
    }

    public subscript(wwid: String) -> ReservationKey? {
        get { keys[wwid] }
        set { keys[wwid] = newValue }
    }

    /// The line for `key` of `wwid`, as multipathd writes it (16 digits, `0X` for APTPL).
    public static func line(_ key: ReservationKey, wwid: String) -> String {
        let hex = String(key.value, radix: 16)
        return (key.aptpl ? "0X" : "0x") + String(repeating: "0", count: 16 - hex.utf8.count) + hex + " " + wwid + "\n"
    }

    /// `text` with `wwid`'s key replaced by `key` (appended when it had none; its line turned
    /// into a comment when `key` is nil). Every other line stays as it was.
    public static func updating(_ text: String, wwid: String, to key: ReservationKey?) -> String {
        var out = ""
        var placed = key == nil
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast(text.hasSuffix("\n") || text.isEmpty ? 1 : 0) {
            let words = raw.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if words.count == 2, words[1] == wwid, words[0].first != "#" {
                if let key, !placed {
                    out += line(key, wwid: wwid)
                    placed = true
                } else {
                    out += "#" + raw.dropFirst() + "\n"
                }
                continue
            }
            out += raw + "\n"
        }
        if let key, !placed { out += line(key, wwid: wwid) }
        return out
    }

    /// The comment a new prkeys file starts with.
    public static let header = """
        # Multipath persistent reservation keys: one "prkey wwid" line per map,
        # kept by the multipath daemon for mpathpersist (reservation_key file).

        """

    public static func == (a: PRKeys, b: PRKeys) -> Bool { a.keys == b.keys }
}
