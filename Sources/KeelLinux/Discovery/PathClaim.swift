// udev's question about one block device: is it a path of a multipath map, so that LVM, systemd
// and filesystem probing must leave it alone? Answered as multipath-tools' `multipath -u` answers
// it, from the files and the discovery code keeld uses.
import Glibc
import KeelCore

/// The decision `keel-path-claim` prints for udev's rules (`Tools/udev/`).
///
/// Why a separate program: keeld never forks or executes, and udev's rules run before keeld may
/// be running at all (early boot). The program reads the files keeld reads (the configuration
/// with its conf.d, the wwids file) and identifies disks with keeld's code (`SysfsDiscovery`,
/// `BlacklistFilter`), so a WWID means the same thing to both.
///
/// udev is stricter than the daemon, as with multipath-tools 0.9: a disk is claimed before its
/// map exists only when that is certain: `greedy` (every disk not blacklisted or in use), a WWID
/// the wwids file lists, a WWID the kernel already has a map of, or under `smart` a WWID with a
/// second path. `on`, `off` and `strict` claim nothing else; under `on`, keeld makes the map from
/// two paths and the `change` events that follow claim them. A disk is never claimed while no
/// multipath daemon runs or is enabled to start: nobody would make its map.
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

    /// Whether a multipath daemon will make the maps.
    public enum Daemon: Sendable, Equatable {
        /// One answers on multipathd's socket (keeld serves it), or its backlog is full.
        case answering
        /// None answers, but keeld's or multipathd's systemd unit is enabled: it is on its way.
        case enabled
        /// None answers and none is enabled.
        case absent
    }

    public var configuration: Configuration
    public var known: KnownWWIDs
    public var discovery: SysfsDiscovery
    /// Where `/proc` is (tests point it at a fixture).
    public var procRoot = "/proc"

    public init(configuration: Configuration, known: KnownWWIDs, discovery: SysfsDiscovery) {
        self.configuration = configuration
        self.known = known
        self.discovery = discovery
    }

    /// The verdict for block device `name` (`sdc`) at `nowSeconds` (realtime).
    /// `waitUntilSeconds` is the `FIND_MULTIPATHS_WAIT_UNTIL` udev kept from an earlier event
    /// (0 or nil: none).
    public func verdict(device name: String, nowSeconds: Int64, waitUntilSeconds: Int64?, daemon: Daemon) -> Verdict {
        // A disk a multipath map holds stays claimed whatever else holds: keeld leaves its maps
        // in the kernel when it stops, and a released path under a live map is one LVM may take.
        if let map = multipathHolder(of: name) { return .claim("held by the multipath map \(map)") }
        guard daemon != .absent else { return .release("no multipath daemon is running or enabled") }
        let path: DiscoveredPath
        switch discovery.discoverPath(named: name) {
        case .notSCSIDisk: return .release("not a SCSI disk")
        case .skipped(let reason): return .release(reason.description)
        case .path(let found): path = found
        }
        let filter = BlacklistFilter(configuration: configuration, uidAttributes: discovery.uidAttributes)
        if let why = filter.exclusionReason(for: path) { return .release("blacklisted: \(why)") }
        guard let wwid = path.wwid else { return .release("no WWID") }
        if kernelMapWWIDs().contains(wwid) { return .claim("a map of WWID \(wwid) exists") }
        let mode = configuration.findMultipaths
        if mode == .greedy || mode == .smart, let use = inUse(path) { return .release("in use: \(use)") }
        if mode == .greedy { return .claim("find_multipaths greedy: every disk is claimed") }
        if known.contains(wwid) { return .claim("WWID \(wwid) is in the wwids file") }
        guard mode == .smart else {
            return .release("find_multipaths \(mode.rawValue): WWID \(wwid) is not in the wwids file and has no map")
        }
        let siblings = siblings(of: path, wwid: wwid)
        if !siblings.isEmpty {
            return .claim("WWID \(wwid) has \(1 + siblings.count) paths (\(([name] + siblings).joined(separator: " ")))")
        }
        let waitNs = FindMultipathsRule(configuration)
            .smartWaitNs(knownHardware: !configuration.deviceLayers(vendor: path.vendor, product: path.model, revision: path.revision).isEmpty)
        let nowNs = Nanoseconds(max(nowSeconds, 0)) * Time.nsPerSecond
        var firstSeenNs = nowNs
        if let until = waitUntilSeconds, until > 0 {
            let untilNs = Nanoseconds(until) * Time.nsPerSecond
            firstSeenNs = untilNs >= waitNs ? untilNs - waitNs : 0
        }
        let deadlineNs = firstSeenNs &+ waitNs
        guard nowNs < deadlineNs else { return .release("find_multipaths smart: WWID \(wwid) has one path, and the wait is over") }
        // Rounded up: the wait is never cut short.
        return .maybe(untilSeconds: Int64((deadlineNs + Time.nsPerSecond - 1) / Time.nsPerSecond))
    }

    /// The KEY=VALUE lines udev's `IMPORT{program}` takes. While waiting, the deadline is kept
    /// in udev's database (`FIND_MULTIPATHS_WAIT_UNTIL`, seconds since the epoch, multipath-tools'
    /// name) and `KEEL_WAIT_SECONDS` says how long is left, for the timer the rules start.
    public static func udevProperties(_ verdict: Verdict, nowSeconds: Int64) -> String {
        switch verdict {
        case .claim: return "DM_MULTIPATH_DEVICE_PATH=1\n"
        case .release: return "DM_MULTIPATH_DEVICE_PATH=0\n"
        case .maybe(let until):
            return "DM_MULTIPATH_DEVICE_PATH=2\nFIND_MULTIPATHS_WAIT_UNTIL=\(until)\nKEEL_WAIT_SECONDS=\(max(until - nowSeconds, 1))\n"
        }
    }

    /// What uses the disk or one of its partitions: a holder (LVM, md, another dm map), a mount,
    /// swap. nil when nothing does.
    func inUse(_ path: DiscoveredPath) -> String? {
        let block = discovery.sysfsRoot + "/block/" + path.kernelName
        var names = [path.kernelName]
        var devices = ["\(path.device.major):\(path.device.minor)"]
        for entry in SysfsFiles.directoryEntries(block) where SysfsFiles.readText(block + "/\(entry)/partition") != nil {
            names.append(entry)
            if let dev = SysfsFiles.readText(block + "/\(entry)/dev") { devices.append(dev) }
        }
        for (index, name) in names.enumerated() {
            let holders = index == 0 ? block + "/holders" : block + "/\(name)/holders"
            if let holder = SysfsFiles.directoryEntries(holders).first { return "\(name) is held by \(holder)" }
        }
        if case .success(let text) = readWholeFile(procRoot + "/self/mountinfo"), let point = Self.mountPoint(of: devices, inMountinfo: text) {
            return "mounted on \(point)"
        }
        if case .success(let text) = readWholeFile(procRoot + "/swaps"), let source = Self.swapSource(of: names, inSwaps: text) {
            return "swap on \(source)"
        }
        return nil
    }

    /// Where one of `devices` (major:minor) is mounted, from `/proc/self/mountinfo` text: the
    /// third field of a line is the mounted device, the fifth its mount point.
    public static func mountPoint(of devices: [String], inMountinfo text: String) -> String? {
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 5)
            if fields.count > 4, devices.contains(String(fields[2])) { return String(fields[4]) }
        }
        return nil
    }

    /// The swap area on one of the block devices `names`, from `/proc/swaps` text (a header line,
    /// then one area per line, its file or device first).
    public static func swapSource(of names: [String], inSwaps text: String) -> String? {
        for line in text.split(separator: "\n").dropFirst() {
            guard let source = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first else { continue }
            if names.contains(where: { source == "/dev/" + $0 }) { return String(source) }
        }
        return nil
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

    /// The dm device (`dm-3`) of a multipath map that holds disk `name`, if one does.
    func multipathHolder(of name: String) -> String? {
        guard !name.isEmpty, !name.contains("/") else { return nil }
        for holder in SysfsFiles.directoryEntries(discovery.sysfsRoot + "/block/\(name)/holders") where holder.hasPrefix("dm-") {
            if let uuid = SysfsFiles.readText(discovery.sysfsRoot + "/block/\(holder)/dm/uuid"), uuid.hasPrefix(DMControl.multipathUUIDPrefix) {
                return holder
            }
        }
        return nil
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

    /// Whether a multipath daemon answers on multipathd's abstract socket (keeld serves it
    /// unless multipathd holds it; a full backlog counts: the daemon is there), else whether
    /// keeld's or multipathd's systemd unit is enabled. The socket is non-blocking, so udev's
    /// worker never waits here.
    public static func daemon(socketName: String = ControlClient.multipathdName, systemdRoots: [String] = PathClaim.systemdRoots) -> Daemon {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        if fd >= 0 {
            defer { close(fd) }
            var (address, length) = ControlServer.abstractAddress(socketName)
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
            }
            if result == 0 || errno == EAGAIN || errno == EINPROGRESS { return .answering }
        }
        for root in systemdRoots {
            for wants in SysfsFiles.directoryEntries(root) where wants.hasSuffix(".wants") {
                let units = SysfsFiles.directoryEntries(root + "/" + wants)
                if units.contains("keeld.service") || units.contains("multipathd.service") { return .enabled }
            }
        }
        return .absent
    }

    /// Where enabled units are linked (`systemctl enable` puts them in the first).
    public static let systemdRoots = ["/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"]
}
