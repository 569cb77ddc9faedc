// MultipathAssembler: the control plane that turns discovered paths into engine maps and kernel multipath maps.
import Glibc
import KeelCore

/// A step of assembly, as named in error descriptions.
public enum AssemblyOperation: String, Sendable, Equatable, CaseIterable {
    case addMap = "add map"
    case addPath = "add path"
    case registerChecker = "register checker"
    case registerMap = "register map"
    case list
    case create
    case reload
    case readTable = "read table"
    case readStatus = "read status"
    case scanStatus = "scan status"
}

/// A failed assembly step: the map (its dm name, or its wwid before it has one), the operation,
/// the errno and a detail. Errors are values: one bad path or map never stops the others.
public struct AssemblyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var map: String
    public var operation: AssemblyOperation
    /// The errno of the failed call (an engine refusal maps to ENOSPC, EEXIST or ENOENT).
    public var errno: Int32
    public var detail: String
    /// Set when a path was refused because its size is not its map's (for the log record).
    public var sizeMismatch: SizeMismatch?

    /// A path whose size differs from its map's.
    public struct SizeMismatch: Sendable, Equatable {
        public var device: DevNo
        public var pathSectors: UInt64
        public var mapSectors: UInt64
    }

    public init(map: String, operation: AssemblyOperation, errno: Int32, detail: String = "") {
        self.map = map
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    /// `mpatha: reload: Invalid argument (errno 22): <detail>`
    public var description: String {
        let head = "\(map): \(operation.rawValue): \(String(cString: strerror(errno))) (errno \(errno))"
        return detail.isEmpty ? head : "\(head): \(detail)"
    }
}

/// The checker backends paths are registered with, chosen per map by `path_checker`. A backend
/// the configuration never names may be nil.
public struct PathCheckers {
    public var tur: TURChecker?
    public var directIO: DirectIOChecker?
    /// The daemon's per-path dispatch table: when present, the assembler records in it which
    /// backend checks each path as it registers the path, the one place a kind is assigned.
    public var dispatch: DaemonChecker?
    /// Backends outside the process's devices (the simulator's): when present, every path is
    /// registered here instead, with the kind keeld's own backends would have given it.
    public var simulated: (any PathCheckerRegistry)?

    public init(tur: TURChecker? = nil, directIO: DirectIOChecker? = nil, dispatch: DaemonChecker? = nil,
                simulated: (any PathCheckerRegistry)? = nil) {
        self.tur = tur
        self.directIO = directIO
        self.dispatch = dispatch
        self.simulated = simulated
    }
}

/// Checker backends that are not devices of this host (the simulator's): a path is registered
/// before its first check and unregistered when it leaves, as with `TURChecker` and
/// `DirectIOChecker`; a refusal keeps the path out of its map.
public protocol PathCheckerRegistry: AnyObject {
    func register(path: PathHandle, device: DevNo, kind: CheckerKind) throws(SystemError)
    func unregister(path: PathHandle, kind: CheckerKind)
}

/// A path whose device could not be opened yet: what reopening it needs.
public struct UnopenedPath: Sendable, Equatable {
    public var kernelName: String
    public var genericName: String?
    public var checker: MapProfile.Checker
}

/// One path as the assembler added it.
public struct AssembledPath: Sendable, Equatable {
    public var handle: PathHandle
    /// Kernel name, e.g. `sda`.
    public var kernelName: String
    public var device: DevNo
    public var address: SCSIAddress
    /// The priority its map's prioritizer gave (0 when the prioritizer had no answer).
    public var priority: Int32
    /// The backend that checks it (tur falls back to directio without a SCSI generic node).
    public var checker: CheckerKind = .unassigned
    /// Its transport and transport object (FC remote port, iSCSI session): where its map's
    /// transport timeouts are written, at assembly and again when a reconfigure changes them.
    public var transport: SCSITransport = .unspecified
    public var transportObject: String = ""
    /// Its VPD unit serial number ("" when none): what `weightedpath serial` matches.
    public var serial: String = ""
    /// Its SCSI generic node (`sg2`), where prioritizers that ask the array send their commands.
    public var genericName: String? = nil
    /// What the operator's views print of it: the target's node name as its transport gives
    /// it (`%n`: "" when it came from elsewhere, as multipathd has none then), the revision and
    /// the ALUA target port group (`%A`), from discovery.
    public var transportNodeName: String = ""
    public var revision: String = ""
    public var targetPortGroup: UInt16? = nil
}

/// One map as the assembler knows it.
public struct AssembledMap: Sendable, Equatable {
    public var handle: MapHandle
    /// The dm name: the kernel's when the map was adopted, else the one assembly chose.
    public var name: String
    public var wwid: String
    public var profile: MapProfile
    /// Vendor and product of its first path (what `devices` sections match).
    public var vendor: String
    public var product: String
    /// The size of the LUN, from discovery.
    public var sizeSectors: UInt64
    public var paths: [AssembledPath]
    /// Whether the kernel has the map (created, adopted or reloaded at least once).
    public var live: Bool
    /// Whether the map existed before and its table was kept as it was.
    public var adopted: Bool

    /// Tables created or reloaded by the assembler (an adoption without reload is not one).
    public var tableLoads: Int
    /// What `detect_prio` found on the first path (nil: no ALUA, or not asked).
    public var detectedPrio: MapProfile.Prioritizer? = nil
    /// The device handler the kernel attached to the first path (nil: none).
    public var attachedHandler: String? = nil
    /// Whether the first path reported its ALUA target port group (`detect_pgpolicy_use_tpg`).
    public var targetPortGroupKnown = false
    /// Its persistent-reservation key and whether its paths are registered.
    public var reservation = MapReservation()
    /// The SCSI revision of its first path (what a `devices` entry's `revision` matches).
    public var revision = ""

    /// The dm uuid Keel gives the map (multipath-tools' convention).
    public var uuid: String { DMControl.multipathUUIDPrefix + wwid }
}

/// Something assembly decided or could not do that the daemon logs (each names its device or map).
public enum AssemblyNotice: Sendable, Equatable {
    /// find_multipaths left this path out of any map (`decision` says why); it is reconsidered
    /// when a sibling path appears, the wwids file lists its WWID, or `smart`'s wait ends.
    case heldBack(device: DevNo, decision: FindMultipathsRule.Decision)
    /// `smart` gave up waiting for a second path: the device is left to the rest of the system.
    case released(device: DevNo)
    /// A new user-friendly name was bound to this map's WWID in the bindings file.
    case bindingAdded(map: MapHandle)
    /// The bindings file could not give this map a name (`errno`): it is named by its WWID.
    case bindingFailed(map: MapHandle, errno: Int32)
    /// The name bound to this map's WWID is used by another map or alias: named by its WWID.
    case bindingTaken(map: MapHandle)
    /// The wwids file could not be read or appended to (`errno`).
    case wwidsFileFailed(errno: Int32)
    /// The prkeys file could not be read (`errno`).
    case prkeysFileFailed(errno: Int32)
    /// A line of the bindings or wwids file was skipped (its 1-based number).
    case stateFileLineSkipped(wwidsFile: Bool, line: Int)
    /// A transport timeout could not be set on the path's FC remote port, iSCSI session or SCSI
    /// host (`attribute` is the attribute's name, e.g. dev_loss_tmo).
    case transportTimeoutRefused(device: DevNo, attribute: TransportAttribute, seconds: Int, errno: Int32)
    /// The prioritizer's command to this path was not answered within `priorityWaitNs`: the path
    /// keeps its priority, and the command stays the path's orphan until the kernel returns it.
    case priorityUnanswered(device: DevNo)
    /// `group_by_tpg` was asked for a map whose prioritizer is not alua or sysfs: failover is
    /// used, as multipath-tools does.
    case groupByTPGFallback(map: MapHandle)
    /// A map adopted at start had another size in the kernel than its paths have now (the LUN was
    /// resized while no daemon ran): its table is loaded again at the paths' size, as multipathd
    /// does (`ACT_RESIZE`).
    case resizedAtAdoption(map: MapHandle, oldSectors: UInt64, newSectors: UInt64)
    /// The kernel gives this disk 0 sectors (READ CAPACITY failed when it was probed): it is
    /// kept out of its map. multipathd would add it; its share of the map's I/O would fail.
    case noCapacity(device: DevNo)
    /// A disk kept out for having no capacity has `sectors` now and is assembled.
    case capacityFound(device: DevNo, sectors: UInt64)
    /// detect_checker found this map's array to be an RDAC one (INQUIRY page 0xC9): rdac checks it.
    case rdacDetected(map: MapHandle)
}

/// The transport attributes keeld writes.
public enum TransportAttribute: Int, Sendable, Equatable {
    case fastIOFailTmo = 1, devLossTmo = 2, recoveryTmo = 3, ehDeadline = 4

    init?(path: String) {
        if path.hasSuffix("/fast_io_fail_tmo") { self = .fastIOFailTmo }
        else if path.hasSuffix("/dev_loss_tmo") { self = .devLossTmo }
        else if path.hasSuffix("/recovery_tmo") { self = .recoveryTmo }
        else if path.hasSuffix("/eh_deadline") { self = .ehDeadline }
        else { return nil }
    }
}

/// Paths of one WWID that find_multipaths keeps out of any map for now.
public struct HeldPaths: Sendable {
    public var paths: [DiscoveredPath]
    /// When the first of them was seen (`smart` waits from here).
    public var firstSeenNs: Nanoseconds
    public var decision: FindMultipathsRule.Decision
}

/// Where assembly delivers what the kernel says and which tables it loaded: the recovery loop
/// itself when one thread runs both, or rings to the recovery thread in the daemon.
public protocol AssemblyLoopSink: KernelEventSink {
    /// A table of `map` is loaded (see `Engine.tableLoaded`).
    mutating func tableLoaded(_ map: MapHandle, initialGroup: UInt16, queueing: Bool, nowNs: Nanoseconds)
    /// The kernel's table of `map` does not hold the map's paths (a lost or failed load): the
    /// engine should hand out its layout again.
    mutating func tableDiffers(_ map: MapHandle, nowNs: Nanoseconds)
}

extension AssemblyLoopSink {
    public mutating func tableDiffers(_ map: MapHandle, nowNs: Nanoseconds) {}
}

extension RecoveryLoop: AssemblyLoopSink {
    public mutating func tableDiffers(_ map: MapHandle, nowNs: Nanoseconds) { try? engine.requestReload(map) }
}

/// Where assembly adds maps and paths: the engine itself before its thread starts, or a channel
/// to the thread that owns it (the daemon adds hot-plugged paths through its recovery thread).
public protocol EngineTopology {
    mutating func addMap(policy: MapPolicy) throws(EngineRefusal) -> MapHandle
    mutating func addPath(_ descriptor: PathDescriptor, to map: MapHandle, nowNs: Nanoseconds) throws(EngineRefusal) -> PathHandle
    mutating func removePath(_ path: PathHandle, nowNs: Nanoseconds) throws(EngineRefusal)
    mutating func removeMap(_ map: MapHandle) throws(EngineRefusal)
}

/// The engine, called directly (one thread owns both).
public struct DirectTopology: EngineTopology {
    public let engine: Engine
    public init(engine: Engine) { self.engine = engine }
    public mutating func addMap(policy: MapPolicy) throws(EngineRefusal) -> MapHandle { try engine.addMap(policy: policy) }
    public mutating func addPath(_ descriptor: PathDescriptor, to map: MapHandle, nowNs: Nanoseconds) throws(EngineRefusal) -> PathHandle {
        try engine.addPath(descriptor, to: map, nowNs: nowNs)
    }
    public mutating func removePath(_ path: PathHandle, nowNs: Nanoseconds) throws(EngineRefusal) { try engine.removePath(path, nowNs: nowNs) }
    public mutating func removeMap(_ map: MapHandle) throws(EngineRefusal) { try engine.removeMap(map) }
}

/// Builds Keel's maps from a discovery pass and keeps them loaded in the kernel. Control plane:
/// it allocates and calls libdevmapper, so it never runs on the recovery thread; only `resync`
/// (status read, scan, delivery) is free of allocation when nothing fails.
///
/// Steps: `assemble` (blacklist, group by WWID, names, profiles, priorities, interned keys, engine
/// maps and paths, checker registration), then `serviceReloads` for every `.reloadRequested`
/// record the recovery loop reports (create, adopt or reload, then `tableLoaded`), and `resync`
/// now and then to repair missed kernel events.
public struct MultipathAssembler {
    public let engine: Engine
    public private(set) var configuration: Configuration
    public let control: any MultipathKernel
    /// A copy sharing the recovery loop's messenger storage: registration is control plane.
    public let messenger: any MapStatusReader
    /// Reads statuses and tables for resync: the loop's messenger when one thread runs both, or
    /// one of the control plane's own (buffers are not shared between threads).
    public let statusReader: (any MapStatusReader)?
    public let checkers: PathCheckers
    public var sysfsRoot: String
    /// A prioritizer outside what this process can read (the simulator's array): when set, it
    /// answers every path's priority in place of its map's prioritizer, nil for no answer now.
    public var arrayPriority: ((DevNo) -> Int?)?
    /// Where the path device nodes are (`/dev`).
    public var devRoot: String
    /// multipath.conf `uid_attrs` and `uid_attribute`: where discovery reads WWIDs, and the
    /// blacklist's udev-property rule. Fixed at start (a WWID source changed under running maps
    /// would rename them).
    public var uidAttributes: UIDAttributes
    public internal(set) var maps: [AssembledMap] = []
    /// Paths assembly left out (blacklisted, no WWID), with the reason.
    public private(set) var skipped: [SkippedDevice] = []
    var mapIndex: [MapHandle: Int] = [:]
    private var portKeys: [String: UInt32] = [:]
    private var serialKeys: [String: UInt32] = [:]
    private var nodeKeys: [String: UInt32] = [:]
    /// `weightedpath` arguments parsed once per distinct `prio_args` (nil: not valid).
    private var weightedRules: [String: WeightedPathRule?] = [:]
    /// sg nodes opened ahead for the batch being added, by device (`openSGNodes`).
    private var preopened: [DevNo: Int32] = [:]
    /// Sends the commands of the prioritizers that ask the array (emc, rdac, hds, ...).
    public let priorityQueries = SGQueryRunner()
    /// Asks NVMe controllers for their paths' ANA states (the ana prioritizer, detect_prio).
    public let anaQueries: NVMeANAQueries
    /// Their answers for the paths being added or refreshed, by kernel name (nil: no priority).
    private var askedPriorities: [String: Int?] = [:]
    private var byPath: [(name: String, target: String)]? = nil
    private var statusResync: StatusResync
    /// Every device assembled so far.
    private var knownDevices: Set<DevNo> = []
    /// Paths whose device could not be opened when they were added (an offline SCSI device
    /// answers ENXIO): they stay in their map, and `retryUnopened` opens them later.
    public private(set) var unopened: [PathHandle: UnopenedPath] = [:]
    /// Devices checked with directio although their map asks for tur (no SCSI generic node: the
    /// sg driver is not loaded); the caller logs and clears them.
    public var turFallbacks: [DevNo] = []
    /// Consecutive resyncs that found a map's table without the map's paths.
    private var tableMismatches: [MapHandle: Int] = [:]
    /// The bindings and wwids files.
    public var identityFiles: MapIdentityFiles
    /// The wwids file as last read or written.
    public private(set) var knownWWIDs = KnownWWIDs()
    /// The prkeys file as last read or written (`reservation_key file`).
    public internal(set) var prkeys = PRKeys()
    /// Paths find_multipaths keeps out of any map, by WWID.
    public private(set) var held: [String: HeldPaths] = [:]
    /// WWIDs the operator asked a map for (`add map`): find_multipaths does not hold them.
    public private(set) var forcedWWIDs: Set<String> = []
    /// What happened that the caller should log; the caller empties it.
    public var notices: [AssemblyNotice] = []

    public init(configuration: Configuration, engine: Engine, control: any MultipathKernel, messenger: any MapStatusReader,
                checkers: PathCheckers, sysfsRoot: String = "/sys", devRoot: String = "/dev", uidAttributes: UIDAttributes = UIDAttributes(),
                statusReader: (any MapStatusReader)? = nil, identityFiles: MapIdentityFiles? = nil,
                anaQueries: NVMeANAQueries = NVMeANAQueries()) {
        self.anaQueries = anaQueries
        self.configuration = configuration
        self.identityFiles = identityFiles ?? MapIdentityFiles(configuration)
        self.engine = engine
        self.control = control
        self.messenger = messenger
        self.statusReader = statusReader
        self.checkers = checkers
        self.sysfsRoot = sysfsRoot
        self.devRoot = devRoot
        self.uidAttributes = uidAttributes
        statusResync = StatusResync(pathsMax: engine.capacities.pathsPerMapMax)
        rereadWWIDs()
        rereadPRKeys()
    }

    /// Reads the wwids file again (multipath(8) or an administrator may have added to it).
    public mutating func rereadWWIDs() {
        switch identityFiles.readWWIDs() {
        case .success(let read):
            knownWWIDs = read
            for problem in read.problems { notices.append(.stateFileLineSkipped(wwidsFile: true, line: problem.line)) }
        case .failure(let error):
            notices.append(.wwidsFileFailed(errno: error.errno))
        }
    }

    /// Disks found with 0 sectors (the kernel could not read their capacity), by kernel name:
    /// kept out of every map until a later discovery finds them a size.
    public private(set) var withoutCapacity: [String: DevNo] = [:]

    /// Forgets the disks without capacity that are not in `present` (their `remove` was lost).
    public mutating func forgetWithoutCapacity(allBut present: Set<String>) {
        withoutCapacity = withoutCapacity.filter { present.contains($0.key) }
    }

    /// The kernel names of the paths find_multipaths holds back.
    public var heldKernelNames: Set<String> { Set(held.values.flatMap { $0.paths.map(\.kernelName) }) }

    /// The earliest end of a `smart` wait, if any path waits.
    public var nextHeldDeadlineNs: Nanoseconds? {
        held.values.compactMap { if case .waitUntil(let t) = $0.decision { return t } else { return nil } }.min()
    }

    /// The map with this dm name.
    public func map(named name: String) -> AssembledMap? { maps.first { $0.name == name } }

    /// The map behind an engine handle.
    public func map(_ handle: MapHandle) -> AssembledMap? { mapIndex[handle].map { maps[$0] } }

    // MARK: - Assembly

    /// Adds every usable path of `report` to the engine: paths the blacklist excludes or without a
    /// WWID are skipped; the rest are grouped by WWID into one map each (in WWID order, which
    /// also orders user-friendly names), with the map's profile, each path's priority from the
    /// profile's prioritizer and interned port, serial and node keys. Each path is registered with
    /// the checker its profile names. The engine then asks for the tables (`.reloadMap`).
    public mutating func assemble(_ report: DiscoveryReport, nowNs: Nanoseconds) -> [AssemblyError] {
        var topology = DirectTopology(engine: engine)
        return assemble(report, nowNs: nowNs, topology: &topology)
    }

    /// `assemble` through `topology` (the daemon's recovery thread owns the engine at runtime).
    /// Devices already assembled are skipped.
    public mutating func assemble<T: EngineTopology>(_ report: DiscoveryReport, nowNs: Nanoseconds, topology: inout T) -> [AssemblyError] {
        var errors: [AssemblyError] = []
        let filter = BlacklistFilter(configuration: configuration, uidAttributes: uidAttributes)
        var admitted: [DiscoveredPath] = []
        for (path, exclusion) in zip(report.paths, filter.exclusionReasons(for: report.paths)) {
            if let why = exclusion {
                skipped.append(SkippedDevice(kernelName: path.kernelName, reason: .excluded(why)))
            } else if path.wwid == nil {
                skipped.append(SkippedDevice(kernelName: path.kernelName, reason: .excluded("no WWID")))
            } else if knownDevices.contains(path.device) {
                continue  // already assembled in an earlier pass
            } else if path.sizeSectors == 0 {
                // The kernel has no capacity for it: in a table it would take a share of the
                // map's I/O and fail all of it. Kept out until it has one (the daemon asks the
                // kernel to read it again).
                if withoutCapacity.updateValue(path.device, forKey: path.kernelName) == nil {
                    notices.append(.noCapacity(device: path.device))
                }
            } else {
                if withoutCapacity.removeValue(forKey: path.kernelName) != nil {
                    notices.append(.capacityFound(device: path.device, sectors: path.sizeSectors))
                }
                admitted.append(path)
            }
        }
        let byWWID = DiscoveryReport(paths: admitted, skipped: []).pathsByWWID()
        // The devices sections matched once per vendor/product in this batch, not once per map.
        var deviceLayers: [String: [MapSettings]] = [:]
        let rule = FindMultipathsRule(configuration)
        var kernelWWIDs: Set<String>?
        // Maps first, then their friendly names in one pass over the bindings file, then the
        // paths: a burst of new LUNs reads and syncs the file once.
        var work: [(index: Int, paths: [DiscoveredPath])] = []
        var unnamed: [Int] = []
        var created: [Int] = []
        let reportsANA = askWhetherANA(byWWID.filter { item in !maps.contains { $0.wwid == item.wwid } })
        for (wwid, found) in byWWID {
            var paths = found
            let index: Int
            if let existing = maps.firstIndex(where: { $0.wwid == wwid }) {
                index = existing
            } else {
                if let waiting = held[wwid] {
                    let devices = Set(paths.map(\.device))
                    paths = waiting.paths.filter { !devices.contains($0.device) } + paths
                }
                if kernelWWIDs == nil && !knownWWIDs.contains(wwid) && rule.mode != .off && rule.mode != .greedy {
                    kernelWWIDs = kernelMapWWIDs()
                }
                let first = paths[0]
                let deviceKey = first.vendor + "\u{0}" + first.model + "\u{0}" + first.revision
                let layers = deviceLayers[deviceKey] ?? configuration.deviceLayers(vendor: first.vendor, product: first.model, revision: first.revision)
                deviceLayers[deviceKey] = layers
                let decision = forcedWWIDs.contains(wwid) ? .multipath
                    : rule.decide(paths: paths.count, known: knownWWIDs.contains(wwid), inKernel: kernelWWIDs?.contains(wwid) ?? false,
                                  firstSeenNs: held[wwid]?.firstSeenNs ?? nowNs, nowNs: nowNs, knownHardware: !layers.isEmpty)
                guard decision == .multipath else {
                    hold(wwid, paths: paths, decision: decision, nowNs: nowNs)
                    continue
                }
                held[wwid] = nil
                let detectedPrio = first.transport.isNVMe ? (reportsANA.contains(wwid) ? .ana : nil) : Self.detectPrio(first)
                var profile = configuration.profile(wwid: wwid, deviceLayers: layers)
                if paths.contains(where: { $0.transport == .nvmeTCP }) { Self.useBioQueueMode(&profile) }
                let tpgFallback = Self.applyDetection(&profile, prio: detectedPrio, handler: first.alua.attachedHandler,
                                                      targetPortGroupKnown: first.alua.targetPortGroup != nil)
                let handle: MapHandle
                do {
                    handle = try topology.addMap(policy: profile.policy)
                } catch {
                    errors.append(AssemblyError(map: wwid, operation: .addMap, errno: Self.errno(of: error), detail: error.description))
                    continue
                }
                if tpgFallback { notices.append(.groupByTPGFallback(map: handle)) }
                let name = profile.alias ?? wwid
                if profile.alias == nil && profile.userFriendlyNames { unnamed.append(maps.count) }
                maps.append(AssembledMap(handle: handle, name: name, wwid: wwid, profile: profile,
                                         vendor: first.vendor, product: first.model, sizeSectors: first.sizeSectors, paths: [], live: false, adopted: false, tableLoads: 0,
                                         detectedPrio: detectedPrio, attachedHandler: first.alua.attachedHandler,
                                         targetPortGroupKnown: first.alua.targetPortGroup != nil, revision: first.revision))
                index = maps.count - 1
                mapIndex[handle] = index
                maps[index].reservation.key = reservationKey(of: maps[index])
                created.append(index)
            }
            work.append((index, paths))
        }
        nameFriendly(unnamed)
        let made = Set(created)
        askWhetherRDAC(work.filter { made.contains($0.index) })
        askArrays(work.flatMap { item in item.paths.map { (item.index, $0.kernelName, $0.device, $0.genericName) } })
        askANA(work.flatMap { item in item.paths.map { (item.index, $0.kernelName, $0.device) } })
        defer { askedPriorities.removeAll(); byPath = nil }
        openSGNodes(work)
        defer {
            for fd in preopened.values { close(fd) }
            preopened.removeAll()
        }
        for (index, paths) in work {
            for path in paths {
                if let error = add(path, toMapAt: index, nowNs: nowNs, topology: &topology) { errors.append(error) }
            }
        }
        return errors
    }

    /// multipath-tools' `detect_prio` for a SCSI path: no ALUA support (TPGS 0 or unknown)
    /// detects nothing; ALUA with the kernel's `access_state` gives `sysfs`, without it `alua`.
    public static func detectPrio(_ path: DiscoveredPath) -> MapProfile.Prioritizer? {
        guard let tpgs = path.alua.tpgs, tpgs != 0 else { return nil }
        return path.alua.accessState != nil ? .sysfs : .alua
    }

    /// Applies what detection found, as multipathd 0.9.4 does: the detected prioritizer
    /// (`detect_prio`), the device handler the kernel attached (`retain_attached_hw_handler`),
    /// else "1 alua" for ALUA paths when nobody set `hardware_handler`. (`prio` non-nil means the
    /// paths support ALUA.)
    /// `detect_pgpolicy` (multipath-tools 0.9.6) then groups by priority when the prioritizer is
    /// alua or sysfs, detected or configured, unless a `multipath` entry or `overrides` chose
    /// the grouping; by target port group with `detect_pgpolicy_use_tpg` when the first path
    /// reports its group.
    /// Returns whether `group_by_tpg` had to give way to failover: it groups by the ALUA target
    /// port group, which multipath-tools allows only with the alua or sysfs prioritizer.
    @discardableResult
    public static func applyDetection(_ profile: inout MapProfile, prio: MapProfile.Prioritizer?, handler: String?,
                                      targetPortGroupKnown: Bool = false) -> Bool {
        if profile.detectsPrio, let prio { profile.prio = prio }
        if profile.detectsPgpolicy && !profile.groupingIsOperatorChoice && (profile.prio == .alua || profile.prio == .sysfs || profile.prio == .ana) {
            profile.policy.grouping = profile.detectedPgpolicyUsesTPG && targetPortGroupKnown && profile.prio != .ana ? .groupByTPG : .groupByPrio
        }
        // What follows is SCSI ALUA's: NVMe ANA (`.ana`) has no SCSI checker or device handler.
        let scsiALUA = prio == .alua || prio == .sysfs
        // detect_checker: ALUA paths are checked with tur, except where the configuration names
        // rdac (kept when the array does not answer); `askWhetherRDAC` then asks the array itself.
        if profile.detectsChecker && scsiALUA && profile.checker != .rdac { profile.checker = .tur }
        if profile.retainsAttachedHandler, let handler {
            profile.hardwareHandler = "1 " + handler
        } else if profile.hardwareHandlerIsDefault && scsiALUA {
            profile.hardwareHandler = "1 alua"
        }
        guard profile.policy.grouping == .groupByTPG && profile.prio != .alua && profile.prio != .sysfs else { return false }
        profile.policy.grouping = .failover
        return true
    }

    /// NVMe/TCP paths take a bio-based map (`queue_mode bio`), as multipath-tools (0.9.2 on)
    /// enforces for them: whatever queue mode `features` named is replaced.
    public static func useBioQueueMode(_ profile: inout MapProfile) {
        var words = profile.features.split(separator: " ").dropFirst().map(String.init)
        if let i = words.firstIndex(of: "queue_mode") { words.removeSubrange(i..<min(i + 2, words.count)) }
        words += ["queue_mode", "bio"]
        profile.features = ([String(words.count)] + words).joined(separator: " ")
    }

    /// Keeps `paths` of `wwid` out of any map for now; each device is noticed once.
    private mutating func hold(_ wwid: String, paths: [DiscoveredPath], decision: FindMultipathsRule.Decision, nowNs: Nanoseconds) {
        let before = Set(held[wwid]?.paths.map(\.device) ?? [])
        for path in paths where !before.contains(path.device) {
            notices.append(.heldBack(device: path.device, decision: decision))
        }
        held[wwid] = HeldPaths(paths: paths, firstSeenNs: held[wwid]?.firstSeenNs ?? nowNs, decision: decision)
    }

    /// Decides again about every held WWID (after the wwids file was re-read, a reconfigure, or
    /// the end of a `smart` wait): those that now qualify are assembled; a `smart` wait that
    /// ended releases its device. Returns the assembly errors.
    public mutating func reconsiderHeld<T: EngineTopology>(nowNs: Nanoseconds, topology: inout T) -> [AssemblyError] {
        guard !held.isEmpty else { return [] }
        let rule = FindMultipathsRule(configuration)
        let kernelWWIDs = kernelMapWWIDs()
        var ready: [DiscoveredPath] = []
        for (wwid, waiting) in held {
            let decision = forcedWWIDs.contains(wwid) ? .multipath
                : rule.decide(paths: waiting.paths.count, known: knownWWIDs.contains(wwid), inKernel: kernelWWIDs.contains(wwid),
                              firstSeenNs: waiting.firstSeenNs, nowNs: nowNs,
                              knownHardware: waiting.paths.first.map {
                                  !configuration.deviceLayers(vendor: $0.vendor, product: $0.model, revision: $0.revision).isEmpty
                              } ?? false)
            if decision == .multipath {
                ready += waiting.paths
            } else if decision != waiting.decision {
                if case .waitUntil = waiting.decision {
                    for path in waiting.paths { notices.append(.released(device: path.device)) }
                }
                held[wwid]?.decision = decision
            }
        }
        guard !ready.isEmpty else { return [] }
        return assemble(DiscoveryReport(paths: ready, skipped: []), nowNs: nowNs, topology: &topology)
    }

    /// The WWIDs of the multipath maps the kernel has now (uuid `mpath-<wwid>`); empty when the
    /// list cannot be read.
    private func kernelMapWWIDs() -> Set<String> {
        guard let listed = try? control.listMultipathMaps() else { return [] }
        return Set(listed.map { String($0.uuid.dropFirst(DMControl.multipathUUIDPrefix.count)) })
    }

    /// Notes the map's WWID for the wwids file once the kernel has the map (multipath-tools
    /// does the same), so find_multipaths strict and the udev rules know it from then on. The
    /// notes are written by `writeRememberedWWIDs`, at the end of a batch of table loads.
    private mutating func rememberWWID(_ index: Int) {
        let wwid = maps[index].wwid
        guard !knownWWIDs.contains(wwid), !wwidsToRemember.contains(wwid) else { return }
        wwidsToRemember.append(wwid)
    }

    /// WWIDs of maps the kernel now has, not written to the wwids file yet.
    public private(set) var wwidsToRemember: [String] = []

    /// Writes the WWIDs noted since the last call to the wwids file: one write and one fsync
    /// for a whole batch of new maps. A failure is a notice; the WWIDs are tried again with the
    /// next batch.
    public mutating func writeRememberedWWIDs() {
        guard !wwidsToRemember.isEmpty else { return }
        do throws(SystemFileError) {
            try identityFiles.remember(wwids: wwidsToRemember)
            for wwid in wwidsToRemember { knownWWIDs.insert(wwid) }
            wwidsToRemember.removeAll()
        } catch {
            notices.append(.wwidsFileFailed(errno: error.errno))
        }
    }

    private mutating func add<T: EngineTopology>(_ path: DiscoveredPath, toMapAt index: Int, nowNs: Nanoseconds, topology: inout T) -> AssemblyError? {
        let map = maps[index]
        if path.sizeSectors != map.sizeSectors {
            // A table holds one length: a path of another size would make every later load of
            // the map fail. Refused as multipathd refuses it; the map keeps its paths.
            var error = AssemblyError(map: map.name, operation: .addPath, errno: EINVAL,
                                      detail: "\(path.kernelName) has \(path.sizeSectors) sectors, the map has \(map.sizeSectors): path refused")
            error.sizeMismatch = AssemblyError.SizeMismatch(device: path.device, pathSectors: path.sizeSectors, mapSectors: map.sizeSectors)
            return error
        }
        let priority = Int32(clamping: priority(map.profile.prio, args: map.profile.prioArgs, of: PrioritizedPath(path)) ?? 0)
        let descriptor = PathDescriptor(
            device: path.device, priority: priority,
            portKey: Self.intern(path.portKey.isEmpty ? "\(path.address.host):\(path.address.channel):\(path.address.target)" : path.portKey, in: &portKeys),
            serialKey: Self.intern(path.serial ?? "", in: &serialKeys),
            nodeKey: Self.intern(path.targetNodeName, in: &nodeKeys),
            tpgKey: path.alua.targetPortGroup.map { UInt32($0) + 1 } ?? 0)
        let handle: PathHandle
        do {
            handle = try topology.addPath(descriptor, to: map.handle, nowNs: nowNs)
        } catch {
            return AssemblyError(map: map.name, operation: .addPath, errno: Self.errno(of: error), detail: "\(path.kernelName): \(error)")
        }
        let entry = UnopenedPath(kernelName: path.kernelName, genericName: path.genericName, checker: map.profile.checker)
        var kind = CheckerKind.unassigned
        do throws(SystemError) {
            kind = try registerChecker(handle, entry, device: path.device, reservation: map.reservation.key)
        } catch where error.errno == ENXIO {
            // An offline device: it keeps its place in the map (the kernel may hold I/O for it)
            // and is opened again later; until then it counts as down.
            unopened[handle] = entry
            kind = .unopened
            checkers.dispatch?.assign(handle, to: .unopened)
        } catch {
            // A path that cannot be checked must not stay: the engine would wait on it forever.
            try? topology.removePath(handle, nowNs: nowNs)
            return AssemblyError(map: map.name, operation: .registerChecker, errno: error.errno, detail: "\(path.kernelName): \(error)")
        }
        let assembled = AssembledPath(handle: handle, kernelName: path.kernelName, device: path.device, address: path.address,
                                      priority: priority, checker: kind, transport: path.transport, transportObject: path.transportObject,
                                      serial: path.serial ?? "", genericName: path.genericName,
                                      transportNodeName: path.nodeNameSource == .transport ? path.targetNodeName : "", revision: path.revision, targetPortGroup: path.alua.targetPortGroup)
        maps[index].paths.append(assembled)
        knownDevices.insert(path.device)
        applyTransport(map.profile.transport(protocol: assembled.transport.protocolName), to: assembled)
        return nil
    }

    /// Writes a map's transport timeouts to one of its paths (`TransportTimeoutsWriter`); each
    /// refusal is a notice.
    private mutating func applyTransport(_ timeouts: TransportTimeouts, to path: AssembledPath) {
        guard !timeouts.isEmpty else { return }
        let writes = TransportTimeoutsWriter.apply(timeouts, transport: path.transport, object: path.transportObject,
                                                   host: path.address.host, sysfsRoot: sysfsRoot)
        for write in writes where write.errno != 0 {
            guard let attribute = TransportAttribute(path: write.attribute) else { continue }
            notices.append(.transportTimeoutRefused(device: path.device, attribute: attribute,
                                                    seconds: write.value == "off" ? -1 : Int(write.value) ?? -1, errno: write.errno))
        }
    }

    /// Opens the path's device with the backend its map's `path_checker` names and records the
    /// backend in the dispatch table, before the path's first check can be sent. tur needs the
    /// SCSI generic node (its checks are asynchronous sg requests); without one (the sg driver is
    /// not loaded) the path is checked with directio, and the device is noted in `turFallbacks`.
    /// A path checked through its sg node gets its map's reservation key (`reservation`) before
    /// its first check, so that coming up it is registered with it first.
    /// The sg nodes of a large batch of paths that tur will check, opened several at a time
    /// (`TURChecker.openSG`) before the paths are added one by one; `registerChecker` takes them.
    private mutating func openSGNodes(_ work: [(index: Int, paths: [DiscoveredPath])]) {
        guard checkers.tur != nil, checkers.simulated == nil else { return }
        var devices: [DevNo] = [], nodes: [String] = []
        for (index, paths) in work where maps[index].profile.checker.usesSCSIGeneric {
            for path in paths {
                guard let generic = path.genericName, SysfsFiles.isPlainName(generic) else { continue }
                devices.append(path.device)
                nodes.append(devRoot + "/" + generic)
            }
        }
        guard nodes.count >= Self.parallelOpenMin else { return }
        for (device, fd) in zip(devices, TURChecker.openSG(nodes, threads: SysfsDiscovery.threadsForHost)) where fd >= 0 {
            if let earlier = preopened.updateValue(fd, forKey: device) { close(earlier) }
        }
    }

    /// The fewest sg nodes worth opening on several threads.
    static let parallelOpenMin = 32

    private mutating func registerChecker(_ handle: PathHandle, _ entry: UnopenedPath, device: DevNo,
                                          reservation: ReservationKey?) throws(SystemError) -> CheckerKind {
        let kind: CheckerKind
        if let simulated = checkers.simulated {
            switch entry.checker {
            case .none: kind = .alwaysUp
            case let checker where checker.usesSCSIGeneric && entry.genericName != nil: kind = .tur
            default: kind = .directIO
            }
            if kind != .alwaysUp { try simulated.register(path: handle, device: device, kind: kind) }
            checkers.dispatch?.assign(handle, to: kind)
            return kind
        }
        switch entry.checker {
        case let checker where checker.usesSCSIGeneric && entry.genericName != nil && checkers.tur != nil:
            // Every SCSI check goes through the sg node asynchronously, tur's machinery with the
            // path's own command.
            if let fd = preopened.removeValue(forKey: device) {
                try checkers.tur!.register(path: handle, transport: fd, check: SCSICheck(entry.checker) ?? .tur)
            } else {
                try checkers.tur!.register(path: handle, devicePath: devRoot + "/" + entry.genericName!, check: SCSICheck(entry.checker) ?? .tur)
            }
            if let reservation { checkers.tur!.setReservationKey(reservation.value, aptpl: reservation.aptpl, path: handle) }
            kind = .tur
        case .tur, .readsector0, .hpSW, .rdac, .emcClariion, .directio:
            guard let directIO = checkers.directIO else { throw SystemError("directio checker", errno: ENODEV) }
            try directIO.register(path: handle, devicePath: devRoot + "/" + entry.kernelName)
            if entry.checker.usesSCSIGeneric { turFallbacks.append(device) }
            kind = .directIO
        case .none:
            kind = .alwaysUp
        }
        checkers.dispatch?.assign(handle, to: kind)
        return kind
    }

    private func unregisterChecker(_ handle: PathHandle, kind: CheckerKind) {
        if let simulated = checkers.simulated {
            if kind == .tur || kind == .directIO { simulated.unregister(path: handle, kind: kind) }
            checkers.dispatch?.assign(handle, to: .unassigned)
            return
        }
        switch kind {
        case .tur: checkers.tur?.unregister(path: handle)
        case .directIO: checkers.directIO?.unregister(path: handle)
        case .alwaysUp, .unopened, .unassigned: break
        }
        checkers.dispatch?.assign(handle, to: .unassigned)
    }

    /// What a prioritizer looks at of a path.
    struct PrioritizedPath {
        var address: SCSIAddress
        var kernelName: String
        var serial: String
        var transport: SCSITransport
        var transportObject: String
        var genericName: String?
        var device: DevNo
        /// What discovery read of the path's ALUA state moments ago (a path being added): the
        /// same `access_state` and `preferred_path` the alua and sysfs prioritizers read.
        var discoveredALUA: ALUAInfo?

        init(_ path: DiscoveredPath) {
            address = path.address
            kernelName = path.kernelName
            serial = path.serial ?? ""
            transport = path.transport
            transportObject = path.transportObject
            genericName = path.genericName
            device = path.device
            discoveredALUA = path.alua
        }

        init(_ path: AssembledPath) {
            address = path.address
            kernelName = path.kernelName
            device = path.device
            serial = path.serial
            transport = path.transport
            transportObject = path.transportObject
            genericName = path.genericName
        }
    }

    /// Longest wait for the array's answers to one round of prioritizer commands. A path slower
    /// than this (or hung) keeps the priority it has; its command stays an orphan of the path
    /// until the kernel returns it, and the path is not asked again before.
    public static let priorityWaitNs: Nanoseconds = 2 * Time.nsPerSecond

    /// Asks the array for the priorities of `paths` (map index, kernel name, sg node) whose map's
    /// prioritizer sends SCSI commands, all in one batch; the answers wait in `askedPriorities`.
    private mutating func askArrays(_ paths: [(map: Int, kernelName: String, device: DevNo, genericName: String?)]) {
        var subjects: [SCSIPriorities.Subject] = []
        var devices: [String: DevNo] = [:]
        for path in paths {
            let profile = maps[path.map].profile
            guard profile.prio.asksTheArray, let generic = path.genericName,
                  let prioritizer = SCSIPrioritizer(profile.prio, args: profile.prioArgs) else { continue }
            subjects.append(subject(path.kernelName, generic: generic, prioritizer))
            devices[path.kernelName] = path.device
        }
        guard !subjects.isEmpty else { return }
        let orphansBefore = priorityQueries.orphanKeys
        askedPriorities = SCSIPriorities.evaluate(subjects, runner: priorityQueries, waitNs: Self.priorityWaitNs)
        for key in priorityQueries.orphanKeys.subtracting(orphansBefore).sorted() {
            if let device = devices[key] { notices.append(.priorityUnanswered(device: device)) }
        }
    }

    /// detect_prio for NVMe, for maps about to be made (`byWWID` items): asks the first NVMe
    /// path of each whether its controller reports ANA, all at once, waiting at most
    /// `priorityWaitNs`. Returns the WWIDs whose controller does (multipath-tools then uses the
    /// ana prioritizer); unanswered: no.
    private mutating func askWhetherANA(_ new: [(wwid: String, paths: [DiscoveredPath])]) -> Set<String> {
        var queries: [(key: String, devicePath: String)] = []
        var wwidByKey: [String: String] = [:]
        for (wwid, paths) in new {
            guard let path = paths.first, path.transport.isNVMe, SysfsFiles.isPlainName(path.kernelName) else { continue }
            queries.append((path.kernelName, devRoot + "/" + path.kernelName))
            wwidByKey[path.kernelName] = wwid
        }
        guard !queries.isEmpty else { return [] }
        var reporting: Set<String> = []
        for (key, answer) in anaQueries.run(queries, timeoutMs: anaTimeoutMs, waitNs: Self.priorityWaitNs) {
            if case .state = answer, let wwid = wwidByKey[key] { reporting.insert(wwid) }
        }
        return reporting
    }

    /// The ana prioritizer for the NVMe paths (map index, kernel name, device) whose map uses it,
    /// all at once; the priorities wait in `askedPriorities` (nil: the controller gave no state).
    private mutating func askANA(_ paths: [(map: Int, kernelName: String, device: DevNo)]) {
        var queries: [(key: String, devicePath: String)] = []
        var devices: [String: DevNo] = [:]
        for path in paths where maps[path.map].profile.prio == .ana && SysfsFiles.isPlainName(path.kernelName) {
            queries.append((path.kernelName, devRoot + "/" + path.kernelName))
            devices[path.kernelName] = path.device
        }
        guard !queries.isEmpty else { return }
        let orphansBefore = anaQueries.orphanKeys
        for (key, answer) in anaQueries.run(queries, timeoutMs: anaTimeoutMs, waitNs: Self.priorityWaitNs) {
            if case .state(let state) = answer { askedPriorities[key] = NVMeANA.priority(state: state) } else { askedPriorities[key] = .some(nil) }
        }
        for key in anaQueries.orphanKeys.subtracting(orphansBefore).sorted() {
            if let device = devices[key] { notices.append(.priorityUnanswered(device: device)) }
        }
    }

    /// The admin commands' timeout: the configured checker_timeout, else 30 s (multipath-tools
    /// gives its prioritizers the checker's timeout).
    private var anaTimeoutMs: UInt32 {
        UInt32(clamping: (configuration.checkerTimeoutSeconds.map(Int.init) ?? 30) * 1000)
    }

    /// A path's SCSI question for the async sg runner, with the checker's timeout, as
    /// multipath-tools gives its prioritizers.
    private func subject(_ kernelName: String, generic: String, _ prioritizer: SCSIPrioritizer) -> SCSIPriorities.Subject {
        let timeoutNs = CheckerTimeout.select(configuredSeconds: configuration.checkerTimeoutSeconds.map(Int.init), sysfsRoot: sysfsRoot,
                                              blockDevice: kernelName)
        return SCSIPriorities.Subject(key: kernelName, genericPath: devRoot + "/" + generic, prioritizer: prioritizer,
                                      timeoutMs: UInt32(clamping: timeoutNs / 1_000_000))
    }

    /// detect_checker, for maps made in this batch: asks one path of each (with an sg node)
    /// whether its array is an RDAC one, all at once, waiting at most `priorityWaitNs`. An RDAC
    /// array's map is checked with rdac, and a detected sysfs prioritizer becomes alua unless the
    /// array supports explicit ALUA only, as multipath-tools does (RDAC firmware balances on the
    /// REPORT TARGET PORT GROUPS the alua prioritizer sends). Unanswered: not RDAC.
    private mutating func askWhetherRDAC(_ new: [(index: Int, paths: [DiscoveredPath])]) {
        var subjects: [SCSIPriorities.Subject] = []
        var asked: [String: (index: Int, tpgs: UInt8?)] = [:]
        for (index, paths) in new where maps[index].profile.asksWhetherRDAC {
            guard let path = paths.first(where: { $0.genericName != nil }), let generic = path.genericName else { continue }
            subjects.append(subject(path.kernelName, generic: generic, .rdacDetection))
            asked[path.kernelName] = (index, path.alua.tpgs)
        }
        guard !subjects.isEmpty else { return }
        for (key, answer) in SCSIPriorities.evaluate(subjects, runner: priorityQueries, waitNs: Self.priorityWaitNs) where answer == 1 {
            guard let (index, tpgs) = asked[key] else { continue }
            var map = maps[index]
            Self.applyRDAC(&map.profile, detectedPrio: &map.detectedPrio, tpgs: tpgs)
            maps[index] = map
            notices.append(.rdacDetected(map: maps[index].handle))
        }
    }

    /// What detection makes of an RDAC array (`askWhetherRDAC`): path_checker rdac, and a
    /// detected sysfs prioritizer replaced by alua unless the paths support explicit ALUA only
    /// (TPGS 2).
    public static func applyRDAC(_ profile: inout MapProfile, detectedPrio: inout MapProfile.Prioritizer?, tpgs: UInt8?) {
        profile.checker = .rdac
        guard detectedPrio == .sysfs, tpgs != 2 else { return }
        detectedPrio = .alua
        if profile.detectsPrio && profile.prio == .sysfs { profile.prio = .alua }
    }

    /// `iet`'s view of udev's by-path links: entry names and link targets, read once per batch.
    private mutating func byPathLinks() -> [(name: String, target: String)] {
        if let links = byPath { return links }
        let directory = devRoot + "/disk/by-path"
        let links = SysfsFiles.directoryEntries(directory).compactMap { name in
            SysfsFiles.readLink(directory + "/" + name).map { (name, $0) }
        }
        byPath = links
        return links
    }

    /// The priority `prio` (with `args`, its `prio_args`) gives `path`; nil when it has no
    /// answer now (the path keeps the priority it has).
    private mutating func priority(_ prio: MapProfile.Prioritizer, args: String, of path: PrioritizedPath) -> Int? {
        if let arrayPriority { return arrayPriority(path.device) }
        if (prio == .alua || prio == .sysfs), let alua = path.discoveredALUA, let read = alua.accessState {
            // Discovery has just read both attributes (at start, one read per disk instead of two
            // more opens and reads each). A state it did not recognise is read again below.
            return Self.priority(prio, accessState: read, preferred: alua.preferred ?? false)
        }
        let hctl = path.address.description
        switch prio {
        case .const: return ConstPrioritizer().priority()
        case .alua: return ALUAPrioritizer(sysfsRoot: sysfsRoot).priority(hctl: hctl)
        case .sysfs: return SysfsPrioritizer(sysfsRoot: sysfsRoot).priority(hctl: hctl)
        case .random: return Int.random(in: 1...10)
        case .emc, .hds, .hpSW, .ontap, .rdac, .datacore, .pathLatency, .ana:
            // Asked in a batch before (`askArrays`, `askANA`); absent: no answer in time, or no
            // sg node.
            return askedPriorities[path.kernelName] ?? nil
        case .iet:
            guard let rule = IETRule(arguments: args) else { return 0 }
            return rule.priority(of: path.kernelName, byPath: byPathLinks())
        case .weightedpath:
            let rule: WeightedPathRule?
            if let parsed = weightedRules[args] {
                rule = parsed
            } else {
                rule = WeightedPathRule(arguments: args)
                weightedRules[args] = .some(rule)
            }
            guard let rule else { return 0 }
            switch rule.key {
            case .hbtl: return rule.priority(of: hctl)
            case .devname: return rule.priority(of: path.kernelName)
            case .serial: return rule.priority(of: path.serial)
            case .wwn: return rule.priority(of: fcWWNs(path))
            }
        }
    }

    /// The alua or sysfs prioritizer's answer for an access state and PREF bit already read:
    /// alua knows every state (nil for one it does not), sysfs only the four usable ones (0
    /// for the rest), both add the preferred bonus.
    public static func priority(_ prio: MapProfile.Prioritizer, accessState: ALUAAccessState, preferred: Bool) -> Int? {
        let state = Prioritizers.AccessState(rawValue: accessState.rawValue)
        if prio == .alua {
            return state.map { Prioritizers.priority(state: $0, preferred: preferred) }
        }
        let usable: [Prioritizers.AccessState] = [.activeOptimized, .activeNonOptimized, .lbaDependent, .standby]
        return Prioritizers.priority(state: state.flatMap { usable.contains($0) ? $0 : nil }, preferred: preferred)
    }

    /// `host_wwnn:host_wwpn:target_wwnn:target_wwpn` of an FC path (empty fields otherwise), as
    /// `weightedpath wwn` matches it.
    private func fcWWNs(_ path: PrioritizedPath) -> String {
        let fcHost = sysfsRoot + "/class/fc_host/host\(path.address.host)/"
        let port = sysfsRoot + "/class/fc_remote_ports/" + path.transportObject + "/"
        let fc = path.transport == .fibreChannel && !path.transportObject.isEmpty
        func read(_ file: String) -> String { fc ? SysfsFiles.readText(file) ?? "" : "" }
        return [read(fcHost + "node_name"), read(fcHost + "port_name"), read(port + "node_name"), read(port + "port_name")]
            .joined(separator: ":")
    }

    /// Names the maps at `indices` (new, with `user_friendly_names` and no `multipaths` alias)
    /// from the bindings file, binding new names where it has none, all in one locked pass over
    /// the file. A name held by another map or alias, or a bindings file that cannot be written,
    /// leaves the WWID: a name that might not survive a restart is worse than none. A map the
    /// kernel already has (made before a restart, or by multipathd) keeps its name, which is
    /// bound to its WWID when the file has no name for it.
    private mutating func nameFriendly(_ indices: [Int]) {
        guard !indices.isEmpty else { return }
        let kernelMaps = (try? control.listMultipathMaps()) ?? []
        var uuidByKernelName: [String: String] = [:]
        var kernelNameByUUID: [String: String] = [:]
        for map in kernelMaps {
            uuidByKernelName[map.name] = map.uuid
            kernelNameByUUID[map.uuid] = map.name
        }
        let pending = Set(indices)
        var used = Set(configuration.multipaths.compactMap(\.alias))
        for m in maps.indices where !pending.contains(m) { used.insert(maps[m].name) }
        let requests = indices.map { m -> MapIdentityFiles.BindingRequest in
            let wwid = maps[m].wwid
            let existing = kernelNameByUUID[DMControl.multipathUUIDPrefix + wwid]
            return MapIdentityFiles.BindingRequest(wwid: wwid, prefix: maps[m].profile.aliasPrefix,
                                                   preferred: existing == wwid ? nil : existing)
        }
        // Taken for `wwid`: a configured alias, another map's name, or a kernel map of another uuid.
        func taken(_ alias: String, _ wwid: String) -> Bool {
            used.contains(alias) || uuidByKernelName[alias].map { $0 != DMControl.multipathUUIDPrefix + wwid } ?? false
        }
        var results: [(alias: String, added: Bool)?]
        var failure: Int32 = 0
        do throws(SystemFileError) {
            results = try identityFiles.bindAll(requests, taken: taken)
        } catch {
            // A read-only bindings file still names the WWIDs it lists.
            failure = error.errno
            let bindings = try? identityFiles.readBindings().get()
            results = requests.map { request in bindings?.aliasByWWID[request.wwid].map { ($0, false) } }
        }
        for (k, m) in indices.enumerated() {
            guard let bound = results[k] else {
                notices.append(.bindingFailed(map: maps[m].handle, errno: failure))
                continue
            }
            if taken(bound.alias, maps[m].wwid) {
                notices.append(.bindingTaken(map: maps[m].handle))
                continue
            }
            if bound.added { notices.append(.bindingAdded(map: maps[m].handle)) }
            maps[m].name = bound.alias
            used.insert(bound.alias)
        }
    }

    /// multipath-tools' user-friendly suffix (`Bindings.friendlySuffix`).
    public static func friendlySuffix(_ index: Int) -> String { Bindings.friendlySuffix(index) }

    /// A small non-zero key per distinct text; 0 for the empty text (unknown).
    private static func intern(_ text: String, in keys: inout [String: UInt32]) -> UInt32 {
        if text.isEmpty { return 0 }
        if let key = keys[text] { return key }
        let key = UInt32(keys.count + 1)
        keys[text] = key
        return key
    }

    private static func errno(of refusal: EngineRefusal) -> Int32 {
        switch refusal {
        case .pathTableFull, .mapTableFull, .mapFull: return ENOSPC
        case .duplicateDevice: return EEXIST
        case .unknownMap, .unknownPath: return ENOENT
        }
    }

    // MARK: - Tables

    /// Loads the tables the engine asked for (`RecoveryRecord.reloadRequested`), then confirms each
    /// load to the loop. The first time, a map whose uuid the kernel already has is adopted: its
    /// table is read and, when it is what Keel would load (`sameTable`), kept as it is; the engine
    /// learns the kernel's current group and queueing, and the map is resynced from its status.
    /// Otherwise the map is created (size from discovery, uuid `mpath-<wwid>`) or reloaded
    /// (noflush: queued I/O survives). The messenger learns each map once the kernel has it.
    public mutating func serviceReloads<C: PathCheckBackend, O: RecoveryOutput>(
        _ requests: [MapHandle], loop: inout RecoveryLoop<C, DMMessenger, O>, nowNs: Nanoseconds
    ) -> [AssemblyError] {
        var errors: [AssemblyError] = []
        for handle in requests {
            let layout = engine.groupLayout(of: handle)
            if let error = serviceReload(handle, layout: layout, initialGroup: engine.initialGroup(of: handle),
                                         reader: loop.messenger, into: &loop, nowNs: nowNs) {
                errors.append(error)
            }
        }
        writeRememberedWWIDs()
        return errors
    }

    /// Loads one table from a layout taken on the engine's thread (`Engine.snapshotLayout`), for
    /// a daemon whose engine lives on another thread: the confirmation and the resync events go
    /// to `sink`, statuses are read through `statusReader`. Same steps as `serviceReloads`.
    public mutating func serviceReload<S: AssemblyLoopSink>(
        _ handle: MapHandle, layout: [[DevNo]], initialGroup: UInt16, into sink: inout S, nowNs: Nanoseconds
    ) -> AssemblyError? {
        guard let reader = statusReader else {
            return AssemblyError(map: "\(handle)", operation: .readStatus, errno: EINVAL, detail: "no status reader")
        }
        return serviceReload(handle, layout: layout, initialGroup: initialGroup, reader: reader, into: &sink, nowNs: nowNs)
    }

    private mutating func serviceReload<S: AssemblyLoopSink>(
        _ handle: MapHandle, layout: [[DevNo]], initialGroup: UInt16, reader: any MapStatusReader, into sink: inout S, nowNs: Nanoseconds
    ) -> AssemblyError? {
        guard let index = mapIndex[handle] else { return nil }
        if layout.isEmpty { return nil }
        let table = TableBuilder.table(layout: layout, profile: maps[index].profile, initialGroup: initialGroup)
        do throws(AssemblyError) {
            if maps[index].live {
                try reload(index, table: table)
            } else if let existing = try kernelMap(uuid: maps[index].uuid, name: maps[index].name) {
                maps[index].name = existing.name
                let current = try readTable(index)
                // The LUN may have been resized while no daemon ran: the kernel's length is then
                // not the paths' size, and the table is loaded again at the new size.
                let kernelSectors = (try? control.table(name: maps[index].name))?.first?.lengthSectors
                let resized = kernelSectors.map { $0 != maps[index].sizeSectors && maps[index].sizeSectors > 0 } ?? false
                if resized, let old = kernelSectors {
                    notices.append(.resizedAtAdoption(map: handle, oldSectors: old, newSectors: maps[index].sizeSectors))
                }
                if !resized && Self.sameTable(kernel: current, wanted: table) {
                    try register(index)
                    maps[index].live = true
                    maps[index].adopted = true
                    rememberWWID(index)
                    let group = try kernelGroup(index)
                    sink.tableLoaded(handle, initialGroup: group, queueing: current.queueIfNoPath, nowNs: nowNs)
                    return resync(mapAt: index, reader: reader, into: &sink, nowNs: nowNs)
                }
                try reload(index, table: table)
            } else {
                try create(index, table: table)
            }
            sink.tableLoaded(handle, initialGroup: UInt16(table.initialGroup), queueing: table.queueIfNoPath, nowNs: nowNs)
        } catch {
            return error
        }
        return nil
    }

    private mutating func create(_ index: Int, table: MultipathTable) throws(AssemblyError) {
        let map = maps[index]
        do {
            try control.createMultipathMap(name: map.name, wwid: map.wwid, lengthSectors: map.sizeSectors, table: table)
        } catch {
            throw AssemblyError(map: map.name, operation: .create, errno: error.errno, detail: error.detail)
        }
        try created(index)
    }

    /// The map is in the kernel now, with its first table.
    private mutating func created(_ index: Int) throws(AssemblyError) {
        maps[index].live = true
        maps[index].tableLoads += 1
        rememberWWID(index)
        try register(index)
    }

    /// A map's first table, to be created in the kernel beside others (`DMCreate.createAll`), then
    /// completed by `finishCreate`.
    public struct PlannedCreate: Sendable {
        public let handle: MapHandle
        let table: MultipathTable
        public let job: DMCreateJob
    }

    /// For a reload whose map is in no kernel table yet and has no dm device of its uuid: the
    /// device to create. nil for everything else (a live map, one to adopt, a failed lookup),
    /// which `serviceReload` handles, errors included.
    public func plannedCreate(_ handle: MapHandle, layout: [[DevNo]], initialGroup: UInt16) -> PlannedCreate? {
        guard statusReader != nil, let index = mapIndex[handle], !layout.isEmpty, !maps[index].live else { return nil }
        do throws(AssemblyError) {
            if try kernelMap(uuid: maps[index].uuid, name: maps[index].name) != nil { return nil }
        } catch {
            return nil
        }
        let map = maps[index]
        let table = TableBuilder.table(layout: layout, profile: map.profile, initialGroup: initialGroup)
        return PlannedCreate(handle: handle, table: table,
                             job: DMCreateJob(name: map.name, uuid: map.uuid, lengthSectors: map.sizeSectors, params: table.render()))
    }

    /// Completes a planned creation with the kernel's answer, as `serviceReload` completes one
    /// it makes itself: the map is live, registered and confirmed to `sink`, or the error.
    public mutating func finishCreate<S: AssemblyLoopSink>(_ plan: PlannedCreate, error: DMError?, into sink: inout S,
                                                           nowNs: Nanoseconds) -> AssemblyError? {
        guard let index = mapIndex[plan.handle] else { return nil }
        if let error { return AssemblyError(map: maps[index].name, operation: .create, errno: error.errno, detail: error.detail) }
        do throws(AssemblyError) {
            try created(index)
        } catch {
            return error
        }
        sink.tableLoaded(plan.handle, initialGroup: UInt16(plan.table.initialGroup), queueing: plan.table.queueIfNoPath, nowNs: nowNs)
        return nil
    }

    private mutating func reload(_ index: Int, table: MultipathTable) throws(AssemblyError) {
        let map = maps[index]
        do {
            try control.reload(name: map.name, lengthSectors: map.sizeSectors, table: table)
        } catch {
            throw AssemblyError(map: map.name, operation: .reload, errno: error.errno, detail: error.detail)
        }
        maps[index].live = true
        maps[index].tableLoads += 1
        if !messenger.isRegistered(map.handle) { try register(index) }
    }

    private func register(_ index: Int) throws(AssemblyError) {
        let map = maps[index]
        do {
            try messenger.register(map: map.handle, name: map.name, checkStatusFits: true)
            if let reader = statusReader, reader.fileDescriptor != messenger.fileDescriptor, !reader.isRegistered(map.handle) {
                // The messenger has just read both texts against its limit: read again only
                // for a reader whose limit is lower (two more ioctls a map at start otherwise).
                try reader.register(map: map.handle, name: map.name, checkStatusFits: reader.statusBytesMax < messenger.statusBytesMax)
            }
        } catch {
            throw AssemblyError(map: map.name, operation: .registerMap, errno: error.errno, detail: error.detail)
        }
    }

    private func kernelMap(uuid: String, name: String) throws(AssemblyError) -> DMMapInfo? {
        do {
            return try control.map(uuid: uuid)
        } catch {
            throw AssemblyError(map: name, operation: .list, errno: error.errno, detail: error.detail)
        }
    }

    private func readTable(_ index: Int) throws(AssemblyError) -> MultipathTable {
        do {
            return try control.multipathTable(name: maps[index].name)
        } catch {
            throw AssemblyError(map: maps[index].name, operation: .readTable, errno: error.errno, detail: error.detail)
        }
    }

    /// The group the kernel uses now: the one in state `A`, else its next group.
    private func kernelGroup(_ index: Int) throws(AssemblyError) -> UInt16 {
        let status: MultipathStatus
        do {
            status = try control.multipathStatus(name: maps[index].name)
        } catch {
            throw AssemblyError(map: maps[index].name, operation: .readStatus, errno: error.errno, detail: error.detail)
        }
        let active = status.groups.firstIndex { $0.state == .active }.map { $0 + 1 } ?? status.nextGroup
        return UInt16(clamping: active)
    }

    /// Whether the kernel's table of a map is the one Keel would load. Compared: the features (as
    /// a set of words), the path groups in order with their selector and devices in order, and
    /// the hardware handler. Not compared, because the kernel prints its own view of them: the
    /// initial group (the kernel prints its current one), selector and path arguments (service-time
    /// prints two per path whatever was loaded), and a handler when Keel asks for none (a kernel
    /// that retains the handler attached to the devices, `retain_attached_hw_handler`, prints
    /// that one; 6.1 with Keel's tables prints none).
    public static func sameTable(kernel: MultipathTable, wanted: MultipathTable) -> Bool {
        var kernelFeatures = Set(kernel.features)
        // A bio-based map always retains the attached handler, and the kernel says so.
        if wanted.features.contains("bio") && !wanted.features.contains("retain_attached_hw_handler") {
            kernelFeatures.remove("retain_attached_hw_handler")
        }
        guard kernelFeatures == Set(wanted.features) else { return false }
        if !wanted.hardwareHandler.isEmpty && kernel.hardwareHandler.first != wanted.hardwareHandler.first { return false }
        guard kernel.groups.count == wanted.groups.count else { return false }
        for (k, w) in zip(kernel.groups, wanted.groups) {
            guard k.selector == w.selector, k.paths.map(\.device) == w.paths.map(\.device) else { return false }
        }
        return true
    }

    // MARK: - Resync

    /// Reads every live map's status through the loop's messenger, scans it and delivers it to the
    /// loop (`StatusResync`): repairs whatever kernel events were missed. Allocates nothing unless
    /// a map fails.
    public mutating func resync<C: PathCheckBackend, O: RecoveryOutput>(
        loop: inout RecoveryLoop<C, DMMessenger, O>, nowNs: Nanoseconds
    ) -> [AssemblyError] {
        let reader = loop.messenger
        return resync(reader: reader, into: &loop, nowNs: nowNs)
    }

    /// `resync` for a daemon: statuses read through `statusReader`, events to `sink`.
    public mutating func resync<S: AssemblyLoopSink>(into sink: inout S, nowNs: Nanoseconds) -> [AssemblyError] {
        guard let reader = statusReader else { return [] }
        return resync(reader: reader, into: &sink, nowNs: nowNs)
    }

    /// Resyncs the one map named `name` (a dm event arrived for it); nil when it went well or
    /// the map is not Keel's.
    public mutating func resync<S: AssemblyLoopSink>(mapNamed name: String, into sink: inout S, nowNs: Nanoseconds) -> AssemblyError? {
        guard let reader = statusReader, let index = maps.firstIndex(where: { $0.name == name && $0.live }) else { return nil }
        return resync(mapAt: index, reader: reader, into: &sink, nowNs: nowNs)
    }

    private mutating func resync<S: AssemblyLoopSink>(reader: any MapStatusReader, into sink: inout S, nowNs: Nanoseconds) -> [AssemblyError] {
        var errors: [AssemblyError] = []
        for index in maps.indices where maps[index].live {
            if let error = resync(mapAt: index, reader: reader, into: &sink, nowNs: nowNs) { errors.append(error) }
        }
        return errors
    }

    private mutating func resync<S: AssemblyLoopSink>(
        mapAt index: Int, reader: any MapStatusReader, into sink: inout S, nowNs: Nanoseconds
    ) -> AssemblyError? {
        let handle = maps[index].handle
        switch reader.readStatus(map: handle) {
        case .failure(let error):
            return AssemblyError(map: maps[index].name, operation: .readStatus, errno: error.errno, detail: error.description)
        case .success(let status):
            do {
                try statusResync.resync(map: handle, status: status, nowNs: nowNs, into: &sink)
            } catch {
                return AssemblyError(map: maps[index].name, operation: .scanStatus, errno: EBADMSG, detail: error.description)
            }
        }
        // queue_if_no_path is a table feature (the status' queue_io flag means something else).
        switch reader.readTable(map: handle) {
        case .failure(let error):
            return AssemblyError(map: maps[index].name, operation: .readTable, errno: error.errno, detail: error.description)
        case .success(let bytes):
            let text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            do {
                let table = try MultipathTable.parse(text)
                sink.deliver(.mapQueueing(handle, queueing: table.queueIfNoPath), nowNs: nowNs)
                // The table's device set against the map's paths. A difference seen at two
                // resyncs in a row is not a load in progress: the table is asked for again.
                let inTable = Set(table.groups.flatMap { $0.paths.map(\.device) })
                let assembled = Set(maps[index].paths.map(\.device))
                if inTable != assembled && !assembled.isEmpty {
                    tableMismatches[handle, default: 0] += 1
                    if tableMismatches[handle]! >= 2 {
                        tableMismatches[handle] = 0
                        sink.tableDiffers(handle, nowNs: nowNs)
                    }
                } else {
                    tableMismatches[handle] = nil
                }
            } catch {
                return AssemblyError(map: maps[index].name, operation: .readTable, errno: EBADMSG, detail: error.description)
            }
        }
        return nil
    }

    // MARK: - Priorities and reconfiguration

    /// A path's device went away (a `remove` uevent): the path leaves the engine through
    /// `topology` (its map is regrouped and its table reloaded without it), its checker forgets
    /// it, and assembly forgets the device. Returns the path's handle, nil when the device was
    /// not one of Keel's paths. A map that loses its last path keeps its kernel table.
    public mutating func remove<T: EngineTopology>(kernelName: String, nowNs: Nanoseconds, topology: inout T) -> PathHandle? {
        withoutCapacity[kernelName] = nil
        for (wwid, waiting) in held where waiting.paths.contains(where: { $0.kernelName == kernelName }) {
            held[wwid]?.paths.removeAll { $0.kernelName == kernelName }
            if held[wwid]?.paths.isEmpty == true { held[wwid] = nil }
        }
        for m in maps.indices {
            guard let p = maps[m].paths.firstIndex(where: { $0.kernelName == kernelName }) else { continue }
            let path = maps[m].paths[p]
            try? topology.removePath(path.handle, nowNs: nowNs)
            unregisterChecker(path.handle, kind: path.checker)
            maps[m].paths.remove(at: p)
            knownDevices.remove(path.device)
            unopened[path.handle] = nil
            return path.handle
        }
        return nil
    }

    // MARK: - Operator changes (add map, del map, resize map)

    /// `add map`: a map for `wwid` whatever find_multipaths says; its held paths are assembled
    /// now (their WWID then goes to the wwids file, as multipath-tools does). Returns the
    /// assembly errors.
    public mutating func force<T: EngineTopology>(wwid: String, nowNs: Nanoseconds, topology: inout T) -> [AssemblyError] {
        forcedWWIDs.insert(wwid)
        guard let waiting = held[wwid] else { return [] }
        return assemble(DiscoveryReport(paths: waiting.paths, skipped: []), nowNs: nowNs, topology: &topology)
    }

    /// Why a map cannot be deleted now.
    public enum MapRemovalRefusal: Error, Equatable, Sendable {
        /// The map's block device is open (a filesystem, LVM or a process holds it).
        case inUse(openCount: Int32)
        /// The kernel refused to remove it.
        case kernel(errno: Int32, detail: String)
    }

    /// `del map`: removes the map from the kernel (only when nothing holds it open), then its
    /// paths and the map leave the engine through `topology`, their checkers forget them and
    /// assembly forgets the map. Its WWID is no longer forced. A map the kernel no longer has
    /// is only forgotten.
    public mutating func removeMap<T: EngineTopology>(_ handle: MapHandle, nowNs: Nanoseconds,
                                                      topology: inout T) throws(MapRemovalRefusal) {
        guard let index = mapIndex[handle] else { return }
        let map = maps[index]
        let state: DMDeviceState?
        do { state = try control.info(name: map.name) } catch { throw .kernel(errno: error.errno, detail: error.detail) }
        if let state {
            guard state.openCount == 0 else { throw .inUse(openCount: state.openCount) }
            do { try control.remove(name: map.name) } catch { throw .kernel(errno: error.errno, detail: error.detail) }
        }
        messenger.unregister(map: handle)
        statusReader?.unregister(map: handle)
        for path in map.paths {
            try? topology.removePath(path.handle, nowNs: nowNs)
            unregisterChecker(path.handle, kind: path.checker)
            knownDevices.remove(path.device)
            unopened[path.handle] = nil
        }
        try? topology.removeMap(handle)
        tableMismatches[handle] = nil
        forcedWWIDs.remove(map.wwid)
        maps.remove(at: index)
        mapIndex = [:]
        for (i, m) in maps.enumerated() { mapIndex[m.handle] = i }
    }

    /// `resize map` (and `auto_resize`): the size every path of the map has now (read from
    /// sysfs), for the next table load. Throws when the paths disagree or a size cannot be read;
    /// returns the old and new size (equal: nothing to do; a smaller size without `shrink` is
    /// left alone).
    public mutating func resize(_ handle: MapHandle, shrink: Bool = true) throws(AssemblyError) -> (old: UInt64, new: UInt64) {
        guard let index = mapIndex[handle] else { throw AssemblyError(map: "\(handle)", operation: .reload, errno: ENOENT, detail: "no such map") }
        let map = maps[index]
        var sizes: Set<UInt64> = []
        for path in map.paths {
            guard let text = SysfsFiles.readText("\(sysfsRoot)/block/\(path.kernelName)/size"), let sectors = UInt64(text) else {
                throw AssemblyError(map: map.name, operation: .reload, errno: EIO, detail: "cannot read the size of \(path.kernelName)")
            }
            sizes.insert(sectors)
        }
        guard let size = sizes.first, sizes.count == 1 else {
            throw AssemblyError(map: map.name, operation: .reload, errno: EINVAL,
                                detail: sizes.isEmpty ? "the map has no paths" : "its paths have different sizes: \(sizes.sorted())")
        }
        guard size > 0 else { throw AssemblyError(map: map.name, operation: .reload, errno: EINVAL, detail: "its paths have size 0") }
        guard shrink || size >= map.sizeSectors else { return (map.sizeSectors, map.sizeSectors) }
        maps[index].sizeSectors = size
        return (map.sizeSectors, size)
    }

    /// Tries again to open and register the paths in `unopened`; returns those that now are
    /// (their checker kind is already recorded in the dispatch table).
    @discardableResult
    public mutating func retryUnopened() -> [PathHandle] {
        var opened: [PathHandle] = []
        for (handle, entry) in unopened {
            guard let device = maps.lazy.flatMap(\.paths).first(where: { $0.handle == handle })?.device else {
                unopened[handle] = nil
                continue
            }
            do throws(SystemError) {
                let key = maps.first { $0.paths.contains { $0.handle == handle } }?.reservation.key
                let kind = try registerChecker(handle, entry, device: device, reservation: key)
                unopened[handle] = nil
                for m in maps.indices {
                    if let p = maps[m].paths.firstIndex(where: { $0.handle == handle }) { maps[m].paths[p].checker = kind }
                }
                opened.append(handle)
            } catch {
                continue
            }
        }
        return opened
    }

    /// Re-reads every path's priority from its map's prioritizer (ALUA states settle after a disk
    /// appears, and change when the array moves its optimized port). Returns the paths whose
    /// priority changed, with the new value, for the engine's thread to apply (`setPriority`).
    public mutating func refreshPriorities() -> [(path: PathHandle, device: DevNo, priority: Int32)] {
        var changed: [(path: PathHandle, device: DevNo, priority: Int32)] = []
        if maps.contains(where: { $0.profile.prio.asksTheArray }) {
            askArrays(maps.indices.flatMap { m in maps[m].paths.map { (m, $0.kernelName, $0.device, $0.genericName) } })
        }
        if maps.contains(where: { $0.profile.prio == .ana }) {
            askANA(maps.indices.flatMap { m in maps[m].paths.map { (m, $0.kernelName, $0.device) } })
        }
        defer { askedPriorities.removeAll(); byPath = nil }
        for m in maps.indices {
            let prio = maps[m].profile.prio, args = maps[m].profile.prioArgs
            for p in maps[m].paths.indices {
                let path = maps[m].paths[p]
                let now = priority(prio, args: args, of: PrioritizedPath(path))
                guard let value = now.map({ Int32(clamping: $0) }), value != path.priority else { continue }
                maps[m].paths[p].priority = value
                changed.append((path.handle, path.device, value))
            }
        }
        return changed
    }

    /// Takes a reloaded configuration: every map gets the profile the new configuration gives it
    /// (its name stays: maps are never renamed under their users). Returns the maps whose policy
    /// changed, for the engine's thread to apply (`setPolicy`), and whose table is reloaded then.
    /// A map whose checker kind changed keeps its current checker until the path is re-added.
    public mutating func reconfigure(_ newConfiguration: Configuration) -> [(map: MapHandle, policy: MapPolicy)] {
        configuration = newConfiguration
        identityFiles = MapIdentityFiles(newConfiguration)
        rereadWWIDs()
        rereadPRKeys()
        var changed: [(map: MapHandle, policy: MapPolicy)] = []
        var deviceLayers: [String: [MapSettings]] = [:]
        for m in maps.indices {
            let deviceKey = maps[m].vendor + "\u{0}" + maps[m].product + "\u{0}" + maps[m].revision
            let layers = deviceLayers[deviceKey]
                ?? newConfiguration.deviceLayers(vendor: maps[m].vendor, product: maps[m].product, revision: maps[m].revision)
            deviceLayers[deviceKey] = layers
            var profile = newConfiguration.profile(wwid: maps[m].wwid, deviceLayers: layers)
            maps[m].reservation.key = reservationKey(of: maps[m], profile: profile)
            giveReservationKey(ofMapAt: m)
            Self.applyDetection(&profile, prio: maps[m].detectedPrio, handler: maps[m].attachedHandler,
                                targetPortGroupKnown: maps[m].targetPortGroupKnown)
            profile.checker = maps[m].profile.checker
            guard profile != maps[m].profile else { continue }
            // New transport timeouts go to the paths now, as multipathd's reconfigure does (the
            // kernel keeps the old ones otherwise until the path is added again).
            if profile.transport != maps[m].profile.transport || profile.transportByProtocol != maps[m].profile.transportByProtocol {
                for path in maps[m].paths { applyTransport(profile.transport(protocol: path.transport.protocolName), to: path) }
            }
            // Any change (features, selector, policy) needs a new table: `setPolicy` asks for one.
            maps[m].profile = profile
            changed.append((maps[m].handle, profile.policy))
        }
        return changed
    }
}
