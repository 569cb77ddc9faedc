// multipath-tools' `weightedpath` prioritizer: `prio_args` name what identifies a path (its
// H:C:T:L, kernel name, serial, or FC WWNs) and pairs of regular expression and priority; the
// first expression that matches gives the path its priority, and none gives 0.

/// Parsed `prio_args` of `prio weightedpath`, e.g. `hbtl 1:.:.:. 2 4:.:.:. 4` or
/// `devname sda 10 sde 20`.
public struct WeightedPathRule: Sendable, Equatable {
    /// What the expressions are matched against.
    public enum Key: String, Sendable, CaseIterable {
        /// `host:channel:target:lun`.
        case hbtl
        /// The kernel name, e.g. `sdc`.
        case devname
        /// The VPD unit serial number.
        case serial
        /// `host_wwnn:host_wwpn:target_wwnn:target_wwpn` (FC; empty fields elsewhere).
        case wwn
    }

    /// One expression and the priority it gives.
    public struct Weight: Sendable, Equatable {
        public var expression: PosixRegex
        public var priority: Int
    }

    public let key: Key
    public let weights: [Weight]

    /// Longest `prio_args` read (a configuration word is at most 4,096 bytes anyway).
    public static let argumentBytesMax = 4_096

    /// Parses `arguments`; nil when the first word is not a key (multipath-tools then gives
    /// every path 0). A pair whose expression does not compile is skipped, as multipath-tools
    /// skips it; a priority that is not a number counts as 0 (`atoi`), and a last expression
    /// without a priority is ignored.
    public init?(arguments: String) {
        guard arguments.utf8.count <= Self.argumentBytesMax else { return nil }
        let words = arguments.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let first = words.first, let key = Key(rawValue: first) else { return nil }
        self.key = key
        var weights: [Weight] = []
        var i = 1
        while i + 1 < words.count {
            if let expression = try? PosixRegex(words[i]) {
                weights.append(Weight(expression: expression, priority: Self.leadingInteger(words[i + 1])))
            }
            i += 2
        }
        self.weights = weights
    }

    /// The priority of the path `value` identifies (its H:C:T:L, name, serial or WWNs, as `key`
    /// says): the first matching expression's, else 0.
    public func priority(of value: String) -> Int {
        weights.first { $0.expression.matches(value) }?.priority ?? 0
    }

    /// `atoi`: optional sign, then the digits up to the first non-digit; 0 when there are none.
    static func leadingInteger(_ word: String) -> Int {
        var digits = Substring(word)
        var sign = 1
        if let c = digits.first, c == "-" || c == "+" {
            sign = c == "-" ? -1 : 1
            digits = digits.dropFirst()
        }
        let prefix = digits.prefix { $0.isASCII && $0.isNumber }.prefix(9)
        return sign * (Int(prefix) ?? 0)
    }
}
