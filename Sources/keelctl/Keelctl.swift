// keelctl: the operator's client for keeld. It talks to the same control socket as multipathd's
// client (multipathd's abstract name and framing), or to keeld's socket file.
//
// Exit status: 0 done; 1 the daemon refused the command (its reason on stderr); 2 no daemon
// listens; 3 no answer in time or the connection broke; 64 a usage error.
import ArgumentParser
import Glibc
import KeelCore
import KeelCtl
import KeelLinux

enum Exit {
    static let refused: Int32 = 1
    static let notRunning: Int32 = 2
    static let noAnswer: Int32 = 3
}

/// Where keeld listens and how long to wait; shared by every subcommand.
struct Connection: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("keeld's socket file (its --control-socket), instead of the abstract socket.", valueName: "path"))
    var socket: String?

    @Option(name: .long, help: ArgumentHelp("The abstract socket name.", valueName: "name"))
    var abstractName: String = ControlClient.multipathdName

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for an answer.", valueName: "seconds"))
    var timeout: Double = 10

    @Option(name: .long, help: ArgumentHelp("Colour state words: auto (when a terminal and NO_COLOR is unset), always, never.", valueName: "when"))
    var color: ColourChoice = .auto

    enum ColourChoice: String, ExpressibleByArgument, CaseIterable { case auto, always, never }

    var painter: Painter {
        switch color {
        case .always: return Painter(colour: true)
        case .never: return Painter(colour: false)
        case .auto: return Painter(colour: isatty(STDOUT_FILENO) == 1 && getenv("NO_COLOR") == nil)
        }
    }

    func validate() throws {
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be between 0 and 3600 seconds") }
    }

    func client() throws -> ControlClient {
        let ns = Nanoseconds(timeout * 1e9)
        do {
            if let socket { return try ControlClient(path: socket, timeoutNs: ns) }
            return try ControlClient(abstract: abstractName, timeoutNs: ns)
        } catch {
            throw Failure(error)
        }
    }

    /// Sends one command; a refusal ("fail" from the daemon) becomes exit status 1.
    func ask(_ command: String) throws -> String {
        let answer: String
        do { answer = try client().ask(command) } catch let failure as Failure { throw failure } catch let error as ControlClientError { throw Failure(error) }
        if let why = Self.refusal(answer) { throw Failure(refused: why) }
        return answer
    }

    /// The daemon's reason when `answer` is a refusal: multipathd's `fail` then the reason, or
    /// keeld's line framing's `error: ...`.
    static func refusal(_ answer: String) -> String? {
        if answer == "fail" || answer.hasPrefix("fail\n") {
            let why = answer.dropFirst(4).trimmingCharacters(in: "\n")
            return why.isEmpty ? "the daemon refused the command" : why
        }
        if answer.hasPrefix("error: ") { return String(answer.dropFirst(7)) }
        return nil
    }
}

/// A failure with its exit status and message.
struct Failure: Error, CustomStringConvertible {
    let status: Int32
    let description: String
    init(_ error: ControlClientError) {
        switch error {
        case .notRunning: status = Exit.notRunning
        case .system, .timedOut, .closed: status = Exit.noAnswer
        }
        description = "\(error)"
    }
    init(refused why: String) {
        status = Exit.refused
        description = why
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        var s = self
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return String(s)
    }
}

/// Runs `body`, turning a `Failure` into its message on stderr and its exit status.
func perform(_ body: () throws -> Void) throws {
    do { try body() } catch let failure as Failure {
        let line = Array("keelctl: \(failure.description)\n".utf8)
        _ = line.withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
        throw ExitCode(failure.status)
    }
}

/// Writes `text` (and a final newline if it has none) to stdout at once, unbuffered, so that
/// top's screens appear when drawn even through a pipe.
func write(_ text: String) {
    var bytes = Array(text.utf8)
    if !bytes.isEmpty && bytes.last != UInt8(ascii: "\n") { bytes.append(UInt8(ascii: "\n")) }
    var done = 0
    while done < bytes.count {
        let n = bytes[done...].withUnsafeBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { return }
        done += n
    }
}

@main
struct KeelctlCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keelctl",
        abstract: "Operate keeld, the Keel multipath daemon.",
        discussion: """
        keelctl talks to keeld through multipathd's control socket, so it also works against a \
        multipathd that answers the same commands. Exit status: 0 done; 1 the daemon refused the \
        command; 2 no daemon listens; 3 no answer in time or the connection broke; 64 usage error.
        """,
        subcommands: [Paths.self, Maps.self, Topology.self, Status.self, Daemon.self, Config.self, Metrics.self,
                      Fail.self, Reinstate.self, Switch.self, Queueing.self, Reconfigure.self, Shutdown.self,
                      Command.self, Top.self])
}

struct Paths: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Every path: its map, device, kernel and checker states.")
    @OptionGroup var connection: Connection
    @Flag(help: "JSON instead of a table.") var json = false

    func run() throws {
        try perform {
            let rows = Rows.paths(try connection.ask(Rows.pathsCommand))
            if json { write(Rows.json(rows)); return }
            write(connection.painter.table(headers: PathRow.headers, rows: rows.map(\.fields), stateColumns: [4, 5, 6, 9]))
        }
    }
}

struct Maps: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Every map: WWID, size, active paths, queueing.")
    @OptionGroup var connection: Connection
    @Flag(help: "multipathd's JSON (show maps json: groups and paths included).") var json = false

    func run() throws {
        try perform {
            if json { write(try connection.ask("show maps json")); return }
            let rows = Rows.maps(try connection.ask(Rows.mapsCommand))
            write(connection.painter.table(headers: MapRow.headers, rows: rows.map(\.fields), stateColumns: [5, 7]))
        }
    }
}

struct Topology: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The multipath -ll tree of every map, or of one.")
    @OptionGroup var connection: Connection
    @Argument(help: "A map name or WWID.") var map: String?
    @Flag(help: "multipathd's JSON of the map(s).") var json = false

    func run() throws {
        try perform {
            let command = map.map { "show map \($0) \(json ? "json" : "topology")" } ?? (json ? "show maps json" : "show topology")
            let answer = try connection.ask(command)
            write(json ? answer : connection.painter.topology(answer))
        }
    }
}

/// A subcommand that prints the answer of one fixed command.
protocol Passthrough: ParsableCommand {
    var connection: Connection { get }
    static var command: String { get }
}

extension Passthrough {
    func run() throws { try perform { write(try connection.ask(Self.command)) } }
}

struct Status: Passthrough {
    static let configuration = CommandConfiguration(abstract: "Paths counted by checker state.")
    static let command = "show status"
    @OptionGroup var connection: Connection
}

struct Daemon: Passthrough {
    static let configuration = CommandConfiguration(abstract: "The daemon's pid and state.")
    static let command = "show daemon"
    @OptionGroup var connection: Connection
}

struct Config: Passthrough {
    static let configuration = CommandConfiguration(abstract: "The effective configuration, in multipath.conf syntax.")
    static let command = "show config"
    @OptionGroup var connection: Connection
}

struct Metrics: Passthrough {
    static let configuration = CommandConfiguration(abstract: "Prometheus text: paths by state, transitions, check latency, drops, memory.")
    static let command = "show metrics"
    @OptionGroup var connection: Connection
}

struct Fail: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Fail a path (the kernel stops using it until reinstated).")
    @OptionGroup var connection: Connection
    @Argument(help: "The path: sdb or MAJ:MIN.") var path: String
    func run() throws { try perform { write(try connection.ask("fail path \(try word(path))")) } }
}

struct Reinstate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Reinstate a failed path.")
    @OptionGroup var connection: Connection
    @Argument(help: "The path: sdb or MAJ:MIN.") var path: String
    func run() throws { try perform { write(try connection.ask("reinstate path \(try word(path))")) } }
}

struct Switch: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Switch a map to another path group (1-based).")
    @OptionGroup var connection: Connection
    @Argument(help: "The map name or WWID.") var map: String
    @Argument(help: "The path group, from 1.") var group: Int
    func validate() throws { guard group >= 1 else { throw ValidationError("the group is counted from 1") } }
    func run() throws { try perform { write(try connection.ask("switchgroup map \(try word(map)) group \(group)")) } }
}

struct Queueing: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Disable or restore queueing when no path is left, for one map or all.")
    enum Action: String, ExpressibleByArgument, CaseIterable { case disable, restore }
    @OptionGroup var connection: Connection
    @Argument(help: "disable or restore.") var action: Action
    @Argument(help: "The map name or WWID (all maps when omitted).") var map: String?
    func run() throws {
        try perform {
            let target = try map.map { "map \(try word($0))" } ?? "maps"
            write(try connection.ask("\(action.rawValue)queueing \(target)"))
        }
    }
}

struct Reconfigure: Passthrough {
    static let configuration = CommandConfiguration(abstract: "Reload the configuration (as SIGHUP does).")
    static let command = "reconfigure"
    @OptionGroup var connection: Connection
}

struct Shutdown: Passthrough {
    static let configuration = CommandConfiguration(abstract: "Stop keeld.")
    static let command = "shutdown"
    @OptionGroup var connection: Connection
}

struct Command: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send any multipathd command and print the answer as it comes.")
    @OptionGroup var connection: Connection
    @Argument(parsing: .captureForPassthrough, help: "The command's words, e.g. show paths format \"%d %t\".") var words: [String]
    func validate() throws { guard !words.isEmpty else { throw ValidationError("give the command's words") } }
    func run() throws {
        let line = words.map { $0.contains(" ") ? "\"\($0)\"" : $0 }.joined(separator: " ")
        try perform { write(try connection.ask(line)) }
    }
}

struct Top: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A live view of maps, paths, recent transitions, check and path-back latency, drops, memory and thread stacks.")
    @OptionGroup var connection: Connection
    @Option(help: "Seconds between refreshes.") var interval: Double = 1
    @Option(help: "Stop after this many refreshes (default: until interrupted).") var iterations: Int?

    func validate() throws {
        guard interval >= 0.1 else { throw ValidationError("--interval must be at least 0.1 s") }
        if let iterations, iterations < 1 { throw ValidationError("--iterations must be at least 1") }
    }

    func run() throws {
        let painter = connection.painter
        let inPlace = isatty(STDOUT_FILENO) == 1
        var model = TopModel()
        var n = 0
        try perform {
            while iterations.map({ n < $0 }) ?? true {
                let paths = Rows.paths(try connection.ask(Rows.pathsCommand))
                let maps = Rows.maps(try connection.ask(Rows.mapsCommand))
                let metrics = MetricSamples(try connection.ask("show metrics"))
                let daemon = try connection.ask("show daemon")
                let screen = model.screen(paths: paths, maps: maps, metrics: metrics, daemon: daemon,
                                          clock: wallClock(), nowNs: LogClock.nowNs(), painter: painter)
                // Home the cursor and clear below: the screen is redrawn in place.
                write((inPlace ? "\u{1B}[H\u{1B}[J" : "") + screen)
                n += 1
                if iterations.map({ n >= $0 }) ?? false { break }
                usleep(useconds_t(interval * 1_000_000))
            }
        }
    }

    func wallClock() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
    }
}

/// A device or map name as one word of a command line (no spaces or quotes that would change
/// the command).
func word(_ text: String) throws -> String {
    guard !text.isEmpty, !text.contains(where: { $0 == " " || $0 == "\"" || $0 == "\n" || $0 == "\t" }) else {
        throw ValidationError("\"\(text)\" is not a device or map name")
    }
    return text
}
