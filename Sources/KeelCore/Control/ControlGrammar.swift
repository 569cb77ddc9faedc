// The operator command line: one line of words, parsed into a request before anything acts on it.

/// What an operator asked for (the control socket's commands).
public enum ControlRequest: Sendable, Equatable {
    case showDaemon
    case showMaps
    case showPaths
    case reconfigure
    case shutdown
    /// `fail path DEV` / `reinstate path DEV`: DEV is a kernel name (sdb) or MAJ:MIN.
    case failPath(String)
    case reinstatePath(String)
    /// `disablequeueing map NAME` / `restorequeueing map NAME`: NAME is a map name or WWID.
    case disableQueueing(map: String)
    case restoreQueueing(map: String)
}

/// Why a command line was refused; `description` is the text the client gets after `error: `.
public struct ControlParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Parses operator command lines. Bounded: a line longer than `lineBytesMax` or with more than
/// `wordsMax` words is refused before it is split, so a hostile client costs nothing.
public enum ControlGrammar {
    public static let lineBytesMax = 512
    public static let wordsMax = 16
    public static let commandList = "show daemon, show maps, show paths, fail path DEV, reinstate path DEV, disablequeueing map NAME, restorequeueing map NAME, reconfigure, shutdown"

    public static func parse(_ line: String) -> Result<ControlRequest, ControlParseError> {
        let bytes = line.utf8.count
        guard bytes <= lineBytesMax else {
            return .failure(ControlParseError("command of \(bytes) bytes, longer than \(lineBytesMax)"))
        }
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
        guard words.count <= wordsMax else {
            return .failure(ControlParseError("command of \(words.count) words, more than \(wordsMax)"))
        }
        switch words {
        case []: return .failure(ControlParseError("empty command"))
        case ["show", "daemon"]: return .success(.showDaemon)
        case ["show", "maps"]: return .success(.showMaps)
        case ["show", "paths"]: return .success(.showPaths)
        case ["reconfigure"]: return .success(.reconfigure)
        case ["shutdown"]: return .success(.shutdown)
        case _ where words.count == 3 && words[1] == "path" && words[0] == "fail": return .success(.failPath(words[2]))
        case _ where words.count == 3 && words[1] == "path" && words[0] == "reinstate": return .success(.reinstatePath(words[2]))
        case _ where words.count == 3 && words[1] == "map" && words[0] == "disablequeueing": return .success(.disableQueueing(map: words[2]))
        case _ where words.count == 3 && words[1] == "map" && words[0] == "restorequeueing": return .success(.restoreQueueing(map: words[2]))
        default:
            let shown = line.unicodeScalars.prefix(80).map { $0.value >= 0x20 && $0.value < 0x7f ? String($0) : "?" }.joined()
            return .failure(ControlParseError("unknown command '\(shown)'; commands: \(commandList)"))
        }
    }
}
