// udev's question about one block device: is it a path of a multipath map, so that LVM, systemd
// and filesystem probing must leave it alone? Answered the way keeld decides which maps to make.
import Glibc
import KeelCore

/// The decision `keel-path-claim` prints for udev's rules (`Tools/udev/`).
///
/// Why a separate program: keeld never forks or executes, and udev's rules run before keeld may
/// be running at all (early boot). The program reads the same files keeld reads (the
/// configuration with its conf.d, the wwids file) and decides with the same code
/// (`SysfsDiscovery`, `BlacklistFilter`, `FindMultipathsRule`), so a device udev claims is one
/// keeld puts in a map, and the other way round.
public struct PathClaim: Sendable {
    public enum Verdict: Sendable, Equatable {
        /// A path of a multipath map: claimed.
        case claim(String)
        /// Not a path of a multipath map; the reason.
        case release(String)
        /// `find_multipaths smart`: one path of an unknown WWID, held back until this time
        /// (seconds since the epoch) for a sibling to appear.
        case maybe(untilSeconds: Int64)
    }

    public var configuration: Configuration
    public var known: KnownWWIDs
    public var discovery: SysfsDiscovery

    public init(configuration: Configuration, known: KnownWWIDs, discovery: SysfsDiscovery) {
        self.configuration = configuration
        self.known = known
        self.discovery = discovery
    }

    /// The verdict for block device `name` (`sdc`) at `nowSeconds` (realtime).
    /// `waitUntilSeconds` is the `FIND_MULTIPATHS_WAIT_UNTIL` udev kept from an earlier event
    /// (0 or nil: none); `releasedBefore` says udev's database has the device as not claimed.
    /// `daemonAnswers` says a multipath daemon (keeld, or multipathd) serves multipathd's socket:
    /// without one, `on` and `smart` claim only what the wwids file lists or the kernel has a map
    /// of, as multipath-tools' `multipath -u` does. A disk claimed on the strength of a second
    /// path would otherwise be hidden from the system with nobody to make its map.
    public func verdict(device name: String, nowSeconds: Int64, waitUntilSeconds: Int64?, releasedBefore: Bool,
                        daemonAnswers: Bool = true) -> Verdict {
        let path: DiscoveredPath
        switch discovery.discoverPath(named: name) {
        case .notSCSIDisk: return .release("not a SCSI disk")
        case .skipped(let reason): return .release(reason.description)
        case .path(let found): path = found
        }
        let filter = BlacklistFilter(configuration: configuration, uidAttribute: discovery.uidAttribute)
        if let why = filter.exclusionReason(for: path) { return .release("blacklisted: \(why)") }
        guard let wwid = path.wwid else { return .release("no WWID") }
        let inKernel = kernelMapWWIDs().contains(wwid)
        let rule = FindMultipathsRule(configuration)
        if !daemonAnswers && (rule.mode == .on || rule.mode == .smart) && !inKernel && !known.contains(wwid) {
            return .release("find_multipaths \(rule.mode.rawValue) with no multipath daemon answering: WWID \(wwid) is not in the wwids file")
        }
        let siblings = inKernel ? [] : siblings(of: path, wwid: wwid)
        // A device handed to the system earlier and in use since is not taken back from it.
        if releasedBefore && !inKernel && !SysfsFiles.directoryEntries(discovery.sysfsRoot + "/block/\(name)/holders").isEmpty {
            return .release("in use since it was released")
        }
        let nowNs = Nanoseconds(max(nowSeconds, 0)) * Time.nsPerSecond
        var firstSeenNs = nowNs
        if let until = waitUntilSeconds, until > 0 {
            let untilNs = Nanoseconds(until) * Time.nsPerSecond
            firstSeenNs = untilNs >= rule.smartWaitNs ? untilNs - rule.smartWaitNs : 0
        }
        let decision = rule.decide(paths: 1 + siblings.count, known: known.contains(wwid), inKernel: inKernel,
                                   firstSeenNs: firstSeenNs, nowNs: nowNs)
        switch decision {
        case .multipath:
            if inKernel { return .claim("map of WWID \(wwid) exists") }
            if known.contains(wwid) { return .claim("WWID \(wwid) is in the wwids file") }
            if siblings.isEmpty { return .claim("find_multipaths \(rule.mode.rawValue): every path is claimed") }
            return .claim("WWID \(wwid) has \(1 + siblings.count) paths (\(([name] + siblings).joined(separator: " ")))")
        case .notKnown:
            return .release("find_multipaths strict: WWID \(wwid) is not in the wwids file")
        case .singlePath:
            return .release("find_multipaths \(rule.mode.rawValue): WWID \(wwid) has one path")
        case .waitUntil(let deadlineNs):
            // Rounded up: the wait is never cut short.
            return .maybe(untilSeconds: Int64((deadlineNs + Time.nsPerSecond - 1) / Time.nsPerSecond))
        }
    }

    /// The KEY=VALUE lines udev's `IMPORT{program}` takes. While waiting, the deadline is kept
    /// in udev's database (`FIND_MULTIPATHS_WAIT_UNTIL`, seconds since the epoch, multipath-tools'
    /// name, so a switch between the two keeps it) and `KEEL_WAIT_SECONDS` says how long is left,
    /// for the timer the rules start.
    public static func udevProperties(_ verdict: Verdict, nowSeconds: Int64) -> String {
        switch verdict {
        case .claim: return "DM_MULTIPATH_DEVICE_PATH=1\n"
        case .release: return "DM_MULTIPATH_DEVICE_PATH=0\n"
        case .maybe(let until):
            return "DM_MULTIPATH_DEVICE_PATH=2\nFIND_MULTIPATHS_WAIT_UNTIL=\(until)\nKEEL_WAIT_SECONDS=\(max(until - nowSeconds, 1))\n"
        }
    }

    /// Other SCSI disks with the same WWID. The kernel's `device/wwid` is compared first (one read
    /// a disk, so a host of a thousand paths stays cheap during coldplug); a disk without one
    /// is looked at whole.
    func siblings(of path: DiscoveredPath, wwid: String) -> [String] {
        let root = discovery.sysfsRoot + "/block/"
        let mine = SysfsFiles.readText(root + path.kernelName + "/device/wwid")
        var found: [String] = []
        for name in discovery.blockDeviceNames() where name != path.kernelName {
            if let mine {
                guard let theirs = SysfsFiles.readText(root + name + "/device/wwid"), theirs == mine else { continue }
            }
            if case .path(let other) = discovery.discoverPath(named: name), other.wwid == wwid {
                found.append(name)
            }
        }
        return found
    }

    /// Whether a daemon accepts connections on multipathd's abstract socket (keeld serves it
    /// unless multipathd holds it). A full backlog counts as an answer: the daemon is there. The
    /// socket is non-blocking, so udev's worker never waits here.
    public static func multipathDaemonAnswers(socketName: String = ControlClient.multipathdName) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var (address, length) = ControlServer.abstractAddress(socketName)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        return result == 0 || errno == EAGAIN || errno == EINPROGRESS
    }

    /// WWIDs of the multipath maps the kernel has, from sysfs (`dm/uuid` is `mpath-<wwid>`).
    func kernelMapWWIDs() -> Set<String> {
        var wwids: Set<String> = []
        for name in discovery.blockDeviceNames() where name.hasPrefix("dm-") {
            guard let uuid = SysfsFiles.readText(discovery.sysfsRoot + "/block/\(name)/dm/uuid"),
                  uuid.hasPrefix(DMControl.multipathUUIDPrefix) else { continue }
            wwids.insert(String(uuid.dropFirst(DMControl.multipathUUIDPrefix.count)))
        }
        return wwids
    }
}
