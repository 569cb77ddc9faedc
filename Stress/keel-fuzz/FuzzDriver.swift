// keel-fuzz without libFuzzer: replays a corpus and runs a seeded mutation fuzzer over it, so a
// short pass needs no sanitizer build. A crash leaves its input in a file before the process dies.
import Glibc

/// The input being run, kept where a signal handler can write it out (async-signal-safe: the
/// buffer is allocated once, `write` only).
nonisolated(unsafe) private var crashBuffer = UnsafeMutablePointer<UInt8>.allocate(capacity: FuzzDriver.inputBytesMax)
nonisolated(unsafe) private var crashLength = 0
nonisolated(unsafe) private var crashFileDescriptor: Int32 = -1

private func crashHandler(_ signal: Int32) {
    if crashFileDescriptor >= 0 {
        _ = ftruncate(crashFileDescriptor, 0)
        _ = pwrite(crashFileDescriptor, crashBuffer, crashLength, 0)
    }
    let message: StaticString = "keel-fuzz: CRASH: the input is in the crash file\n"
    _ = write(2, message.utf8Start, message.utf8CodeUnitCount)
    _exit(70)
}

enum FuzzDriver {
    static let inputBytesMax = 1 << 20
    static let usage = """
    usage: keel-fuzz list
           keel-fuzz replay TARGET PATH...            run every file (directories: their files)
           keel-fuzz mutate TARGET --corpus DIR [--runs N] [--seed S] [--crash-file PATH]
    TARGET: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")), or all (mutate, replay)
    A crash prints CRASH, leaves the input in --crash-file (default ./keel-fuzz-crash) and exits 70.
    """

    static func run(_ arguments: [String]) -> Int32 {
        guard let verb = arguments.first else { print(usage); return 2 }
        switch verb {
        case "list":
            for target in FuzzTarget.allCases { print(target.rawValue) }
            return 0
        case "replay", "mutate":
            guard arguments.count >= 2 else { print(usage); return 2 }
            let targets: [FuzzTarget]
            if arguments[1] == "all" { targets = FuzzTarget.allCases } else if let t = FuzzTarget(rawValue: arguments[1]) { targets = [t] } else {
                print("keel-fuzz: unknown target \(arguments[1])\n\(usage)")
                return 2
            }
            var options = Array(arguments.dropFirst(2))
            var runs = 100_000
            var seed: UInt64 = 1
            var corpus = ""
            var crashFile = "keel-fuzz-crash"
            var paths: [String] = []
            while !options.isEmpty {
                let option = options.removeFirst()
                switch option {
                case "--runs": runs = Int(options.first ?? "") ?? runs; if !options.isEmpty { options.removeFirst() }
                case "--seed": seed = UInt64(options.first ?? "") ?? seed; if !options.isEmpty { options.removeFirst() }
                case "--corpus": corpus = options.first ?? ""; if !options.isEmpty { options.removeFirst() }
                case "--crash-file": crashFile = options.first ?? crashFile; if !options.isEmpty { options.removeFirst() }
                default: paths.append(option)
                }
            }
            crashFileDescriptor = open(crashFile, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            for signal in [SIGSEGV, SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGABRT] { _ = Glibc.signal(signal, crashHandler) }
            for target in targets {
                if verb == "replay" {
                    // A path naming a directory of target folders (the corpus) is read per target.
                    let inputs = paths.flatMap { path in
                        files(at: path + "/" + target.rawValue).isEmpty ? files(at: path) : files(at: path + "/" + target.rawValue)
                    }
                    for input in inputs { execute(target, readFile(input)) }
                    print("keel-fuzz: \(target.rawValue): replayed \(inputs.count) inputs, 0 crashes")
                } else {
                    let seeds = files(at: corpus + "/" + target.rawValue).map(readFile)
                    let executed = mutate(target, seeds: seeds.isEmpty ? [[]] : seeds, runs: runs, seed: seed)
                    print("keel-fuzz: \(target.rawValue): \(executed) executions (seed \(seed), \(seeds.count) corpus inputs), 0 crashes")
                }
            }
            close(crashFileDescriptor)
            unlink(crashFile)
            return 0
        default:
            print(usage)
            return 2
        }
    }

    static func execute(_ target: FuzzTarget, _ input: [UInt8]) {
        let count = min(input.count, inputBytesMax)
        input.withUnsafeBytes { raw in
            if count > 0 { crashBuffer.update(from: raw.bindMemory(to: UInt8.self).baseAddress!, count: count) }
            crashLength = count
            target.run(UnsafeRawBufferPointer(rebasing: raw[0..<count]))
        }
    }

    /// Bytes that matter to the grammars: nesting, quoting, separators, numbers.
    static let interesting: [[UInt8]] = ["{", "}", "(", ")", "[", "]", "\"", "\\", "*", "+", "?", "|", "^", "$", " ", "\n", "\0", "=",
                                         ":", "0", "1", "-1", "4294967295", "18446744073709551616", "A", "F", "E", "D", "#", "!",
                                         "{1,255}", "[[:alpha:]]", "multipath", "ACTION=add", "DEVPATH=/block/sda"].map { Array($0.utf8) }

    /// A deterministic mutation fuzzer: each run takes a corpus input or the previous one and
    /// applies 1-4 mutations (flip, insert, delete, duplicate a chunk many times, splice, insert
    /// a grammar token). Returns the executions.
    static func mutate(_ target: FuzzTarget, seeds: [[UInt8]], runs: Int, seed: UInt64) -> Int {
        // The corpus itself first, unchanged.
        for input in seeds { execute(target, input) }
        var random = SplitMix(seed: seed &+ UInt64(target.rawValue.utf8.count) &* 0x9E37_79B9)
        var current = seeds[0]
        for run in 0..<runs {
            if run % 16 == 0 || current.count > 256 * 1024 { current = seeds[random.below(seeds.count)] }
            for _ in 0...random.below(4) {
                switch random.below(7) {
                case 0 where !current.isEmpty:
                    current[random.below(current.count)] ^= UInt8(1 << random.below(8))
                case 1:
                    current.insert(UInt8(truncatingIfNeeded: random.next()), at: random.below(current.count + 1))
                case 2 where !current.isEmpty:
                    let start = random.below(current.count)
                    current.removeSubrange(start..<min(current.count, start + 1 + random.below(8)))
                case 3 where !current.isEmpty:
                    // Repetition: deep nesting and long tokens come from here.
                    let start = random.below(current.count)
                    let chunk = Array(current[start..<min(current.count, start + 1 + random.below(4))])
                    let times = 1 << random.below(12)
                    current.insert(contentsOf: Array([[UInt8]](repeating: chunk, count: times).joined()), at: start)
                case 4:
                    let other = seeds[random.below(seeds.count)]
                    if !other.isEmpty {
                        let from = random.below(other.count)
                        current.insert(contentsOf: other[from..<min(other.count, from + 1 + random.below(64))], at: random.below(current.count + 1))
                    }
                case 5:
                    current.insert(contentsOf: interesting[random.below(interesting.count)], at: random.below(current.count + 1))
                default:
                    if current.count > 1 { current.removeSubrange(random.below(current.count)...) }
                }
            }
            execute(target, current)
        }
        return runs + seeds.count
    }

    static func files(at path: String) -> [String] {
        var status = stat()
        guard stat(path, &status) == 0 else { return [] }
        if (status.st_mode & S_IFMT) != S_IFDIR { return [path] }
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(path + "/" + name) }
        }
        return names.sorted()
    }

    static func readFile(_ path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while bytes.count < inputBytesMax {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }
}

/// SplitMix64: a small seeded generator, so a mutation run replays exactly.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ bound: Int) -> Int { bound <= 1 ? 0 : Int(next() % UInt64(bound)) }
}
