// Path prioritizers: const, alua and sysfs, read from the ALUA state the kernel's scsi_dh_alua
// keeps in sysfs. Pure parsing functions plus readers that take a sysfs root (tests use fixtures).

/// Prioritizers and their shared pieces.
public enum Prioritizers {
    /// An ALUA asymmetric access state as the kernel names it in `access_state`.
    public enum AccessState: String, Sendable, CaseIterable {
        case activeOptimized = "active/optimized"
        case activeNonOptimized = "active/non-optimized"
        case lbaDependent = "lba-dependent"
        case standby = "standby"
        case unavailable = "unavailable"
        case offline = "offline"
        case transitioning = "transitioning"

        /// The state named by an `access_state` value (exact name, surrounding whitespace
        /// ignored); nil for anything else.
        public static func parse(_ text: String) -> AccessState? {
            AccessState(rawValue: CheckerSysfs.trimmed(text))
        }

        /// multipath-tools' priority of the state: 50, 10, 5 (lba-dependent), 1, and 0 for
        /// unavailable, offline and transitioning.
        public var priority: Int {
            switch self {
            case .activeOptimized: return 50
            case .activeNonOptimized: return 10
            case .lbaDependent: return 5
            case .standby: return 1
            case .unavailable, .offline, .transitioning: return 0
            }
        }
    }

    /// The bonus for a port the array marks preferred (the PREF bit).
    public static let preferredBonus = 80

    /// The priority of a path in `state`: the state's value, plus 80 when the port is preferred
    /// and not already active/optimized (multipath-tools' alua and sysfs prioritizers; with
    /// `exclusivePreferredBit` the bonus applies to an optimized port too).
    public static func priority(state: AccessState?, preferred: Bool, exclusivePreferredBit: Bool = false) -> Int {
        let base = state?.priority ?? 0
        if preferred && (state != .activeOptimized || exclusivePreferredBit) { return base + preferredBonus }
        return base
    }

    /// Whether a `preferred_path` value says preferred ("1").
    public static func parsePreferred(_ text: String) -> Bool {
        CheckerSysfs.trimmed(text) == "1"
    }

    /// The SCSI device directory of a path: `<sysfsRoot>/class/scsi_device/<H:C:T:L>/device`.
    public static func scsiDeviceDirectory(sysfsRoot: String, hctl: String) -> String {
        sysfsRoot + "/class/scsi_device/" + hctl + "/device"
    }

    /// The SCSI device directory of a block device: `<sysfsRoot>/block/<name>/device`.
    public static func blockDeviceDirectory(sysfsRoot: String, blockDevice: String) -> String {
        sysfsRoot + "/block/" + blockDevice + "/device"
    }
}

/// `const`: every path has priority 1.
public struct ConstPrioritizer: Sendable {
    public init() {}
    /// Always 1.
    public func priority() -> Int { 1 }
}

/// `alua`: the path's ALUA access state, read from the `access_state` and `preferred_path`
/// attributes the kernel's ALUA device handler keeps up to date. Unlike multipath-tools, no
/// REPORT TARGET PORT GROUPS is sent: the kernel already tracks the state, and a read of sysfs
/// cannot hang on a dead path. An unknown or missing state gives nil (priority undefined).
public struct ALUAPrioritizer: Sendable {
    public var sysfsRoot: String
    public var exclusivePreferredBit: Bool

    public init(sysfsRoot: String = "/sys", exclusivePreferredBit: Bool = false) {
        self.sysfsRoot = sysfsRoot
        self.exclusivePreferredBit = exclusivePreferredBit
    }

    /// The priority from already-read attribute values (pure).
    public static func priority(accessState: String, preferredPath: String?, exclusivePreferredBit: Bool = false) -> Int? {
        guard let state = Prioritizers.AccessState.parse(accessState) else { return nil }
        return Prioritizers.priority(state: state, preferred: preferredPath.map(Prioritizers.parsePreferred) ?? false,
                                     exclusivePreferredBit: exclusivePreferredBit)
    }

    /// The priority of the SCSI device `hctl` ("H:C:T:L").
    public func priority(hctl: String) -> Int? {
        read(Prioritizers.scsiDeviceDirectory(sysfsRoot: sysfsRoot, hctl: hctl))
    }

    /// The priority of the block device `blockDevice` ("sda").
    public func priority(blockDevice: String) -> Int? {
        read(Prioritizers.blockDeviceDirectory(sysfsRoot: sysfsRoot, blockDevice: blockDevice))
    }

    private func read(_ directory: String) -> Int? {
        guard let state = CheckerSysfs.read(directory + "/access_state") else { return nil }
        return ALUAPrioritizer.priority(accessState: state, preferredPath: CheckerSysfs.read(directory + "/preferred_path"),
                                        exclusivePreferredBit: exclusivePreferredBit)
    }
}

/// `sysfs`: multipath-tools' sysfs prioritizer over the same attributes. It matches the state by
/// prefix and knows only the four usable states (others give 0), and a readable but unknown
/// state gives 0 rather than undefined; a missing attribute gives nil.
public struct SysfsPrioritizer: Sendable {
    public var sysfsRoot: String
    public var exclusivePreferredBit: Bool

    public init(sysfsRoot: String = "/sys", exclusivePreferredBit: Bool = false) {
        self.sysfsRoot = sysfsRoot
        self.exclusivePreferredBit = exclusivePreferredBit
    }

    /// The priority from already-read attribute values (pure).
    public static func priority(accessState: String, preferredPath: String?, exclusivePreferredBit: Bool = false) -> Int {
        let usable: [Prioritizers.AccessState] = [.activeOptimized, .activeNonOptimized, .lbaDependent, .standby]
        let state = usable.first { accessState.hasPrefix($0.rawValue) }
        return Prioritizers.priority(state: state, preferred: preferredPath.map(Prioritizers.parsePreferred) ?? false,
                                     exclusivePreferredBit: exclusivePreferredBit)
    }

    /// The priority of the SCSI device `hctl` ("H:C:T:L").
    public func priority(hctl: String) -> Int? {
        read(Prioritizers.scsiDeviceDirectory(sysfsRoot: sysfsRoot, hctl: hctl))
    }

    /// The priority of the block device `blockDevice` ("sda").
    public func priority(blockDevice: String) -> Int? {
        read(Prioritizers.blockDeviceDirectory(sysfsRoot: sysfsRoot, blockDevice: blockDevice))
    }

    private func read(_ directory: String) -> Int? {
        guard let state = CheckerSysfs.read(directory + "/access_state") else { return nil }
        return SysfsPrioritizer.priority(accessState: state, preferredPath: CheckerSysfs.read(directory + "/preferred_path"),
                                         exclusivePreferredBit: exclusivePreferredBit)
    }
}
