// keel-path-claim: tells udev whether a block device is a path of a multipath map, so the rules
// in Tools/udev/ can mark it (DM_MULTIPATH_DEVICE_PATH, SYSTEMD_READY=0) before LVM, systemd or a
// filesystem probe takes it. A small program of its own: keeld never forks or executes.
//
//   keel-path-claim [--config FILE] [--quiet] DEVICE
//
// Prints udev properties on stdout, and why on stderr (unless --quiet). Exits 0 with a verdict,
// 1 when the configuration or the wwids file cannot be read (udev then leaves the device alone),
// 64 on a usage error.
import Glibc
import KeelCore
import KeelLinux

/// Writes `text` to file descriptor `fd` (1 or 2) whole.
func emit(_ fd: Int32, _ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else { return }
        bytes = bytes.dropFirst(written)
    }
}

/// The answer for udev, or an exit status on error.
func run(_ argumentList: [String]) -> Int32 {
    var configPath = "/etc/multipath.conf"
    var configNamed = false
    var quiet = false
    var device: String?
    var arguments = argumentList[...]
    while let argument = arguments.popFirst() {
        switch argument {
        case "--config":
            guard let value = arguments.popFirst() else { return usage("--config needs a file") }
            configPath = value
            configNamed = true
        case "--quiet":
            quiet = true
        case "-h", "--help":
            emit(1, "usage: keel-path-claim [--config FILE] [--quiet] DEVICE\n"
                 + "Prints DM_MULTIPATH_DEVICE_PATH=1 (a path of a multipath map), 0 (not), or 2 with\n"
                 + "FIND_MULTIPATHS_WAIT_UNTIL (find_multipaths smart: waiting for a second path).\n")
            return 0
        default:
            guard !argument.hasPrefix("-"), device == nil else { return usage("unexpected argument: \(argument)") }
            device = argument
        }
    }
    // udev passes %k (sdc); a /dev path works too.
    guard var name = device, !name.isEmpty else { return usage("no device named") }
    if name.hasPrefix("/dev/") { name.removeFirst(5) }
    guard !name.contains("/"), name != ".", name != ".." else { return usage("not a block device name: \(name)") }

    let configuration: Configuration
    switch ConfigurationFiles.load(path: configPath, mustExist: configNamed) {
    case .failure(let error):
        emit(2, "keel-path-claim: \(error)\n")
        return 1
    case .success(let loaded): configuration = loaded.configuration
    }
    let known: KnownWWIDs
    switch MapIdentityFiles(configuration).readWWIDs() {
    case .failure(let error):
        emit(2, "keel-path-claim: \(configuration.wwidsFile): \(error)\n")
        return 1
    case .success(let read): known = read
    }

    func environment(_ key: String) -> String? { getenv(key).map { String(cString: $0) } }
    let claim = PathClaim(configuration: configuration, known: known, discovery: SysfsDiscovery(uidAttributes: configuration.uidAttributes))
    let now = Int64(time(nil))
    let verdict = claim.verdict(device: name, nowSeconds: now,
                                waitUntilSeconds: environment("FIND_MULTIPATHS_WAIT_UNTIL").flatMap { Int64($0.split(separator: ".").first ?? "") },
                                daemon: PathClaim.daemon())
    emit(1, PathClaim.udevProperties(verdict, nowSeconds: now))
    if !quiet {
        switch verdict {
        case .claim(let why): emit(2, "\(name): claimed: \(why)\n")
        case .release(let why): emit(2, "\(name): not claimed: \(why)\n")
        case .maybe(let until): emit(2, "\(name): waiting for another path until \(until) (find_multipaths smart)\n")
        }
    }
    return 0
}

func usage(_ problem: String) -> Int32 {
    emit(2, "keel-path-claim: \(problem)\nusage: keel-path-claim [--config FILE] [--quiet] DEVICE\n")
    return 64
}

exit(run(Array(CommandLine.arguments.dropFirst())))
