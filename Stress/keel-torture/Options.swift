// Command line of keel-torture: scenario selection and seed range.

/// `keel-torture [--scenario NAME]... [--seeds N] [--first-seed S] [--list] [--verbose] [--narrate]`
struct Options {
    var scenarios: [String] = []
    var seeds: Int = 100
    var firstSeed: UInt64 = 1
    var list = false
    var verbose = false
    var narrate = false

    static let usage = """
        usage: keel-torture [--scenario NAME]... [--seeds N] [--first-seed S] [--list] [--verbose] [--narrate]
          --scenario NAME  run only this scenario (repeatable; default: all)
          --seeds N        seeds per scenario (default 100)
          --first-seed S   first seed (default 1); seeds S..S+N-1 run
          --list           name the scenarios and exit
          --verbose        print one line per run
          --narrate        print each run's timeline: faults, uevents, engine decisions, table loads
        """

    /// Parses the arguments; a bad argument is an error that names it.
    static func parse(_ arguments: [String]) -> Result<Options, OptionError> {
        var o = Options()
        var i = 0
        func value(_ flag: String) -> Result<String, OptionError> {
            guard i + 1 < arguments.count else { return .failure(OptionError("\(flag) needs a value")) }
            i += 1
            return .success(arguments[i])
        }
        while i < arguments.count {
            let a = arguments[i]
            switch a {
            case "--scenario":
                switch value(a) {
                case .success(let v): o.scenarios.append(v)
                case .failure(let e): return .failure(e)
                }
            case "--seeds":
                switch value(a) {
                case .success(let v):
                    guard let n = Int(v), n > 0 else { return .failure(OptionError("--seeds: \"\(v)\" is not a positive whole number")) }
                    o.seeds = n
                case .failure(let e): return .failure(e)
                }
            case "--first-seed":
                switch value(a) {
                case .success(let v):
                    guard let n = UInt64(v) else { return .failure(OptionError("--first-seed: \"\(v)\" is not a whole number")) }
                    o.firstSeed = n
                case .failure(let e): return .failure(e)
                }
            case "--list": o.list = true
            case "--verbose", "-v": o.verbose = true
            case "--narrate": o.narrate = true
            case "--help", "-h": return .failure(OptionError(""))
            default: return .failure(OptionError("unknown argument \"\(a)\""))
            }
            i += 1
        }
        return .success(o)
    }
}

struct OptionError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
