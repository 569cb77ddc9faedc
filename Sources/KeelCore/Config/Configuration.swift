// The typed multipath.conf configuration, its built-in defaults, and the diagnostics of loading it.

/// The effective configuration read from multipath.conf and its conf.d files.
///
/// Global settings are resolved (built-in defaults filled in, interval derivation done); per-map
/// settings are kept per section as written and combined by `profile(wwid:vendor:product:)` with
/// multipath-tools' precedence.
public struct Configuration: Sendable, Equatable {
    /// `polling_interval`: first check interval of a healthy path, seconds.
    public var pollingIntervalSeconds: UInt32
    /// `max_polling_interval`: longest check interval of a healthy path, seconds.
    public var maxPollingIntervalSeconds: UInt32
    /// `checker_timeout`; nil means "the device's SCSI timeout from sysfs, else 30 s".
    public var checkerTimeoutSeconds: UInt32?
    /// `find_multipaths`.
    public var findMultipaths: FindMultipaths
    /// `find_multipaths_timeout`, seconds: how long `smart` waits for a second path of a WWID
    /// it does not know. Negative: its magnitude for devices of the built-in hardware table,
    /// `findMultipathsTimeoutUnknownSeconds` for the others; 0 means the default.
    public var findMultipathsTimeoutSeconds: Int
    /// `detect_prio`: a map whose paths support ALUA gets `sysfs` (or `alua`) whatever `prio`
    /// says.
    public var detectPrio: Bool
    /// `retain_attached_hw_handler`: a map uses the handler the kernel attached to its paths
    /// whatever `hardware_handler` says.
    public var retainAttachedHardwareHandler: Bool
    /// The `defaults` section as written, without the built-in values: whether a value was set
    /// (an unset `hardware_handler` becomes "1 alua" on ALUA paths).
    public var writtenDefaults: MapSettings
    /// Whether the built-in hardware table applies (Keel's `hardware_table no` turns it off).
    public var useHardwareTable: Bool
    /// `queue_without_daemon`: whether maps keep queueing after the daemon stops (nil: not
    /// written; keeld then keeps queueing, unlike multipathd's `no`).
    public var queueWithoutDaemon: Bool?
    /// `bindings_file`: the user-friendly name of each WWID, one `alias wwid` line each.
    public var bindingsFile: String
    /// `wwids_file`: the WWIDs that have been multipathed, one `/wwid/` line each.
    public var wwidsFile: String
    /// `marginal_pathgroups`: paths the operator marks marginal (`setmarginal path`) are grouped
    /// apart, after every group of normal paths (off: the mark is shown and changes nothing).
    public var marginalPathGroups: Bool = false
    /// `prkeys_file`: the persistent-reservation keys `setprkey` stores (`reservation_key file`).
    public var prkeysFile: String
    /// `fast_probe_interval_ms` (Keel): how often a failed or pending path is probed.
    public var fastProbeIntervalMs: UInt32
    /// Whether `polling_interval` or `max_polling_interval` was written. When neither was, healthy
    /// paths are checked every `healthyIntervalMs` without backing off (Keel's default cadence);
    /// when one was, multipath-tools' doubling from `polling_interval` to `max_polling_interval`.
    public var pollingWritten: Bool = false
    /// `healthy_interval_ms` (Keel): the check interval of a healthy path when no polling option
    /// was written.
    public var healthyIntervalMs: UInt32 = Self.healthyIntervalDefaultMs
    /// `max_healthy_checks_per_second` (Keel): the host-wide cap on healthy-path checks; 0: none.
    public var healthyChecksPerSecondMax: UInt32 = Self.healthyChecksPerSecondDefault
    /// `config_dir`: the directory whose `*.conf` files are read after the main file, in name
    /// order (multipath-tools' default); "" reads none.
    public var configDirectory: String
    /// `max_paths`, `max_maps`, `max_paths_per_map`, `ring_slots` (Keel).
    public var capacities: Capacities
    /// The `defaults` section over the built-in values: every field is set except `noPathRetry`,
    /// whose absence means "undefined" (a `queue_if_no_path` feature may still turn it into queue).
    public var defaults: MapSettings
    /// `devices { device { ... } }` in file order; a later entry wins where several match.
    public var devices: [DeviceEntry]
    /// `overrides`: applies to every map, above `devices`.
    public var overrides: MapSettings
    /// `multipaths { multipath { ... } }` in file order; applies by exact wwid, above everything.
    public var multipaths: [MultipathEntry]
    /// `blacklist`.
    public var blacklist: Blacklist
    /// `blacklist_exceptions`.
    public var blacklistExceptions: Blacklist
    /// `uid_attrs` (defaults): kernel-name prefixes and the udev property each one's WWID is
    /// read from, e.g. `sd:ID_SERIAL dasd:ID_UID`; they win over every `uid_attribute`.
    public var uidAttrs: [UIDAttributes.ByName] = []

    /// multipath-tools' default `config_dir`.
    public static let configDirectoryDefault = "/etc/multipath/conf.d"
    /// multipath-tools' bindings file.
    public static let bindingsFileDefault = "/etc/multipath/bindings"
    /// multipath-tools' prkeys file.
    public static let prkeysFileDefault = "/etc/multipath/prkeys"
    /// multipath-tools' wwids file.
    public static let wwidsFileDefault = "/etc/multipath/wwids"
    /// multipath-tools' `find_multipaths_timeout` default.
    public static let findMultipathsTimeoutDefaultSeconds = -10
    /// What a negative `find_multipaths_timeout` means for a device outside the hardware table.
    public static let findMultipathsTimeoutUnknownSeconds = 1
    /// Allowed `find_multipaths_timeout` (a day either way).
    public static let findMultipathsTimeoutRange: ClosedRange<Int> = -86_400...86_400

    /// The built-in configuration: what an empty multipath.conf means.
    public init() {
        pollingIntervalSeconds = Self.pollingIntervalDefaultSeconds
        maxPollingIntervalSeconds = 4 * Self.pollingIntervalDefaultSeconds
        checkerTimeoutSeconds = nil
        findMultipaths = .strict
        findMultipathsTimeoutSeconds = Self.findMultipathsTimeoutDefaultSeconds
        bindingsFile = Self.bindingsFileDefault
        detectPrio = true
        useHardwareTable = true
        queueWithoutDaemon = nil
        retainAttachedHardwareHandler = true
        writtenDefaults = MapSettings()
        wwidsFile = Self.wwidsFileDefault
        prkeysFile = Self.prkeysFileDefault
        configDirectory = Self.configDirectoryDefault
        fastProbeIntervalMs = 200
        capacities = .default
        defaults = MapSettings.builtIn
        devices = []
        overrides = MapSettings()
        multipaths = []
        blacklist = Blacklist()
        blacklistExceptions = Blacklist()
    }

    /// multipath-tools' `DEFAULT_CHECKINT`.
    public static let pollingIntervalDefaultSeconds: UInt32 = 5
    /// The check timeout used when neither `checker_timeout` nor sysfs gives one (`DEF_TIMEOUT`).
    public static let checkerTimeoutFallbackSeconds: UInt32 = 30
    /// Upper bound of every option given in seconds (one day), so derived nanoseconds never overflow.
    public static let secondsMax: UInt32 = 86_400
    /// Keel's healthy-path cadence: a path that goes offline without I/O is failed after half of
    /// it on average, at 2 TEST UNIT READY a second per path.
    public static let healthyIntervalDefaultMs: UInt32 = 500
    /// Allowed `healthy_interval_ms` (50 ms to a day).
    public static let healthyIntervalRangeMs: ClosedRange<UInt32> = 50...86_400_000
    /// The default cap: 2,048 paths at 500 ms; above that the interval stretches (16,384 paths: 4 s).
    public static let healthyChecksPerSecondDefault: UInt32 = 4_096
    /// Allowed `max_healthy_checks_per_second` (0: no cap).
    public static let healthyChecksPerSecondRange: ClosedRange<UInt32> = 0...1_000_000
    /// Allowed `fast_probe_interval_ms`.
    public static let fastProbeIntervalRangeMs: ClosedRange<UInt32> = 10...5_000
    /// Allowed `max_paths`, `max_maps` and `max_paths_per_map`.
    public static let capacityRange: ClosedRange<Int> = 1...1_048_576
    /// Allowed `ring_slots`.
    public static let ringSlotsRange: ClosedRange<Int> = 16...1_048_576

    /// `find_multipaths`: which devices become multipath maps.
    public enum FindMultipaths: String, Sendable, Equatable, CaseIterable {
        /// Every non-blacklisted device (`off`, `no`).
        case off
        /// Devices with at least two paths or a known wwid (`on`, `yes`).
        case on
        /// Only wwids already known (multipath-tools' default).
        case strict
        /// Every non-blacklisted device, even with one path.
        case greedy
        /// A single path waits `find_multipaths_timeout` for a sibling.
        case smart

        /// Accepts multipath-tools' words, including the `yes`/`no` spellings.
        public init?(configWord: String) {
            switch configWord {
            case "off", "no": self = .off
            case "on", "yes": self = .on
            default:
                guard let v = Self(rawValue: configWord) else { return nil }
                self = v
            }
        }
    }
}

/// Per-map settings as written in one place (`defaults`, a `device`, `overrides`, a `multipath`
/// entry); nil means "not set here, ask the next place".
public struct MapSettings: Sendable, Equatable {
    /// `uid_attribute` (defaults, devices, overrides): the udev property a path's WWID is read
    /// from. Discovery reads it per path (`UIDAttributes`); maps do not.
    public var uidAttribute: String?
    /// `path_grouping_policy`.
    public var grouping: GroupingPolicy?
    /// `path_selector`, as the table carries it, e.g. "service-time 0".
    public var pathSelector: String?
    /// `path_checker`.
    public var pathChecker: MapProfile.Checker?
    /// `prio`.
    public var prio: MapProfile.Prioritizer?
    /// `prio_args`.
    public var prioArgs: String?
    /// `failback`.
    public var failback: Failback?
    /// `no_path_retry`.
    public var noPathRetry: NoPathRetry?
    /// `features`, as written, e.g. "1 queue_if_no_path".
    public var features: String?
    /// `hardware_handler`, e.g. "0" or "1 alua".
    public var hardwareHandler: String?
    /// `san_path_err_threshold` (0 = off).
    public var sanPathErrThreshold: UInt32?
    /// `san_path_err_forget_rate` (0 = off).
    public var sanPathErrForgetRate: UInt32?
    /// `san_path_err_recovery_time`, seconds (0 = off).
    public var sanPathErrRecoveryTimeSeconds: UInt32?
    /// `user_friendly_names`.
    public var userFriendlyNames: Bool?
    /// `alias_prefix`.
    public var aliasPrefix: String?
    /// `fast_io_fail_tmo`, `dev_loss_tmo`, `eh_deadline`: the transport's timeouts, written to
    /// the FC remote port, iSCSI session or SCSI host of each path.
    public var fastIOFailTmo: TransportTimeout?
    public var devLossTmo: TransportTimeout?
    public var ehDeadline: TransportTimeout?
    /// `flush_on_last_del`: when a map's last path is removed, queueing is turned off and the
    /// map is removed unless something holds it open.
    public var flushOnLastDel: Bool?
    /// `auto_resize`: whether a map follows its paths' new size when they report one (a
    /// `change` uevent after the LUN was resized).
    public var autoResize: AutoResize?
    /// `detect_checker`: paths that support ALUA are checked with tur (an rdac array keeps
    /// rdac), whatever `path_checker` says.
    public var detectChecker: Bool?
    /// `detect_pgpolicy`: a map whose paths all use the alua or sysfs prioritizer is grouped by
    /// priority (by target port group with `detect_pgpolicy_use_tpg`), unless a `multipath`
    /// entry or `overrides` sets `path_grouping_policy`. multipath-tools has it from 0.9.6, on by
    /// default; Debian 12's multipathd (0.9.4) does not, so it is off unless written.
    public var detectPgpolicy: Bool?
    /// `detect_pgpolicy_use_tpg`: what `detect_pgpolicy` picks is `group_by_tpg`, when the
    /// first path reports its target port group.
    public var detectPgpolicyUseTPG: Bool?
    /// `reservation_key` (`defaults` and `multipath` entries): the key mpathpersist registers,
    /// which a path new to the map is registered with before it carries I/O.
    public var reservationKey: ReservationKeySource?
    /// `protocol` subsections (`devices` entries and `overrides` only): transport timeouts for
    /// the paths of one transport protocol, in the order written.
    public var protocols: [ProtocolTimeouts] = []

    /// Nothing set.
    public init() {}

    /// multipath-tools' built-in values (defaults.h). `no_path_retry` stays undefined.
    public static let builtIn: MapSettings = {
        var s = MapSettings()
        s.grouping = .failover
        s.pathSelector = "service-time 0"
        s.pathChecker = .tur
        s.prio = .const
        s.prioArgs = ""
        s.failback = .manual
        s.features = "0"
        s.hardwareHandler = "0"
        s.sanPathErrThreshold = 0
        s.sanPathErrForgetRate = 0
        s.sanPathErrRecoveryTimeSeconds = 0
        s.userFriendlyNames = false
        s.aliasPrefix = "mpath"
        s.fastIOFailTmo = .seconds(5)
        s.detectChecker = true
        s.detectPgpolicy = false
        s.detectPgpolicyUseTPG = false
        return s
    }()

    /// These settings without the fields `other` sets.
    func notSet(in other: MapSettings) -> MapSettings {
        var s = self
        if other.grouping != nil { s.grouping = nil }
        if other.pathSelector != nil { s.pathSelector = nil }
        if other.pathChecker != nil { s.pathChecker = nil }
        if other.prio != nil { s.prio = nil }
        if other.prioArgs != nil { s.prioArgs = nil }
        if other.failback != nil { s.failback = nil }
        if other.noPathRetry != nil { s.noPathRetry = nil }
        if other.features != nil { s.features = nil }
        if other.hardwareHandler != nil { s.hardwareHandler = nil }
        if other.sanPathErrThreshold != nil { s.sanPathErrThreshold = nil }
        if other.sanPathErrForgetRate != nil { s.sanPathErrForgetRate = nil }
        if other.sanPathErrRecoveryTimeSeconds != nil { s.sanPathErrRecoveryTimeSeconds = nil }
        if other.userFriendlyNames != nil { s.userFriendlyNames = nil }
        if other.aliasPrefix != nil { s.aliasPrefix = nil }
        if other.fastIOFailTmo != nil { s.fastIOFailTmo = nil }
        if other.devLossTmo != nil { s.devLossTmo = nil }
        if other.ehDeadline != nil { s.ehDeadline = nil }
        if other.flushOnLastDel != nil { s.flushOnLastDel = nil }
        if other.autoResize != nil { s.autoResize = nil }
        if other.detectChecker != nil { s.detectChecker = nil }
        if other.detectPgpolicy != nil { s.detectPgpolicy = nil }
        if other.detectPgpolicyUseTPG != nil { s.detectPgpolicyUseTPG = nil }
        if other.reservationKey != nil { s.reservationKey = nil }
        if other.uidAttribute != nil { s.uidAttribute = nil }
        if !other.protocols.isEmpty { s.protocols = [] }
        return s
    }

    /// These settings with every field that `other` sets replaced by `other`'s value.
    func overlaid(by other: MapSettings) -> MapSettings {
        var s = self
        if let v = other.grouping { s.grouping = v }
        if let v = other.pathSelector { s.pathSelector = v }
        if let v = other.pathChecker { s.pathChecker = v }
        if let v = other.prio { s.prio = v }
        if let v = other.prioArgs { s.prioArgs = v }
        if let v = other.failback { s.failback = v }
        if let v = other.noPathRetry { s.noPathRetry = v }
        if let v = other.features { s.features = v }
        if let v = other.hardwareHandler { s.hardwareHandler = v }
        if let v = other.sanPathErrThreshold { s.sanPathErrThreshold = v }
        if let v = other.sanPathErrForgetRate { s.sanPathErrForgetRate = v }
        if let v = other.sanPathErrRecoveryTimeSeconds { s.sanPathErrRecoveryTimeSeconds = v }
        if let v = other.userFriendlyNames { s.userFriendlyNames = v }
        if let v = other.aliasPrefix { s.aliasPrefix = v }
        if let v = other.fastIOFailTmo { s.fastIOFailTmo = v }
        if let v = other.devLossTmo { s.devLossTmo = v }
        if let v = other.ehDeadline { s.ehDeadline = v }
        if let v = other.flushOnLastDel { s.flushOnLastDel = v }
        if let v = other.autoResize { s.autoResize = v }
        if let v = other.detectChecker { s.detectChecker = v }
        if let v = other.detectPgpolicy { s.detectPgpolicy = v }
        if let v = other.detectPgpolicyUseTPG { s.detectPgpolicyUseTPG = v }
        if let v = other.reservationKey { s.reservationKey = v }
        if let v = other.uidAttribute { s.uidAttribute = v }
        if !other.protocols.isEmpty { s.protocols = other.protocols }
        return s
    }
}

/// A `protocol` subsection: the transport timeouts of the paths whose protocol (`%P`, e.g.
/// "scsi:fcp") is `type`. Within a `devices` entry or `overrides`, a matching subsection's value
/// comes before the section's own; a later subsection of one type before an earlier one.
public struct ProtocolTimeouts: Sendable, Equatable {
    /// The protocol names multipath-tools knows (`type` takes one of them).
    public static let names: [String] = [
        "scsi:fcp", "scsi:spi", "scsi:ssa", "scsi:sbp", "scsi:srp", "scsi:iscsi", "scsi:sas", "scsi:adt",
        "scsi:ata", "scsi:usb", "scsi:unspec", "ccw", "cciss", "nvme:pcie", "nvme:rdma", "nvme:fc", "nvme:tcp",
        "nvme:loop", "nvme:apple-nvme", "nvme:unspec", "undef",
    ]
    public var type: String
    public var fastIOFailTmo: TransportTimeout?
    public var devLossTmo: TransportTimeout?
    public var ehDeadline: TransportTimeout?

    public init(type: String, fastIOFailTmo: TransportTimeout? = nil, devLossTmo: TransportTimeout? = nil, ehDeadline: TransportTimeout? = nil) {
        self.type = type
        self.fastIOFailTmo = fastIOFailTmo
        self.devLossTmo = devLossTmo
        self.ehDeadline = ehDeadline
    }
}

/// A transport timeout as multipath.conf writes it: seconds, `off` (fast_io_fail_tmo,
/// eh_deadline) or `infinity` (dev_loss_tmo).
public enum TransportTimeout: Sendable, Equatable, CustomStringConvertible {
    case off
    case infinity
    case seconds(UInt32)

    /// The kernel's FC transport allows dev_loss_tmo up to this many seconds (and multipath-tools
    /// writes it for `infinity`); above 600 only with fast_io_fail_tmo set.
    public static let devLossMaxSeconds: UInt32 = 2_147_483_647
    public static let devLossWithoutFastIOFailMaxSeconds: UInt32 = 600

    public var description: String {
        switch self {
        case .off: return "off"
        case .infinity: return "infinity"
        case .seconds(let s): return "\(s)"
        }
    }
}

/// One `device` entry of the `devices` section.
public struct DeviceEntry: Sendable, Equatable {
    /// Matched against the SCSI vendor (unanchored, like `regexec`).
    public var vendor: PosixRegex
    /// Matched against the SCSI product.
    public var product: PosixRegex
    /// The options this entry sets.
    public var settings: MapSettings
    /// `product_blacklist`: products of this vendor that are never paths (an array's management
    /// LUNs, say).
    public var productBlacklist: PosixRegex?
    /// `revision`: when written, the entry applies only to devices whose SCSI revision (firmware
    /// level) matches it, as in multipath-tools.
    public var revision: PosixRegex?

    /// An entry as the devices section writes it.
    public init(vendor: PosixRegex, product: PosixRegex, settings: MapSettings, productBlacklist: PosixRegex? = nil,
                revision: PosixRegex? = nil) {
        self.vendor = vendor
        self.product = product
        self.settings = settings
        self.productBlacklist = productBlacklist
        self.revision = revision
    }

    /// Whether this entry applies to a device with this vendor, product and revision (nil:
    /// revision not known, which an entry's `revision` then does not judge).
    public func matches(vendor v: String, product p: String, revision r: String?) -> Bool {
        guard vendor.matches(v) && product.matches(p) else { return false }
        guard let revision, let r else { return true }
        return revision.matches(r)
    }
}

/// One `multipath` entry of the `multipaths` section.
public struct MultipathEntry: Sendable, Equatable {
    /// The map's wwid, compared exactly.
    public var wwid: String
    /// The map's name instead of the wwid or a user-friendly name.
    public var alias: String?
    /// The options this entry sets.
    public var settings: MapSettings

    /// An entry as the multipaths section writes it.
    public init(wwid: String, alias: String?, settings: MapSettings) {
        self.wwid = wwid
        self.alias = alias
        self.settings = settings
    }
}

/// A problem found while reading configuration text, with where it is.
public struct ConfigDiagnostic: Sendable, Equatable, CustomStringConvertible {
    /// The file's name as given to `Configuration.load`.
    public var file: String
    /// 1-based line number.
    public var line: Int
    /// What is wrong, starting with the option it concerns.
    public var message: String

    /// A diagnostic at `file:line`.
    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    /// `file:line: message`, the form of a log line.
    public var description: String { "\(file):\(line): \(message)" }
}

/// Why a configuration was refused: every problem found, in file and line order.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Every problem found, at least one.
    public var problems: [ConfigDiagnostic]

    /// An error carrying these problems.
    public init(problems: [ConfigDiagnostic]) { self.problems = problems }

    /// One problem per line.
    public var description: String {
        var text = ""
        for (i, p) in problems.enumerated() {
            if i > 0 { text += "\n" }
            text += p.description
        }
        return text
    }
}

/// A configuration that loaded, and what was ignored on the way (unknown options and sections,
/// deprecated forms, adjusted values).
public struct LoadedConfiguration: Sendable, Equatable {
    /// The configuration in force.
    public var configuration: Configuration
    /// What was ignored or adjusted, each naming its file and line.
    public var warnings: [ConfigDiagnostic]

    /// A loaded configuration with its warnings.
    public init(configuration: Configuration, warnings: [ConfigDiagnostic]) {
        self.configuration = configuration
        self.warnings = warnings
    }
}

/// `auto_resize` (multipath-tools' words): what a map does when all its paths report a new size.
public enum AutoResize: String, Sendable, Equatable, CaseIterable {
    /// The map keeps its size until `resize map` (multipath-tools' default).
    case never
    /// The map grows with its paths; a smaller size waits for `resize map`.
    case growOnly = "grow_only"
    /// The map takes its paths' size, larger or smaller.
    case growShrink = "grow_shrink"
}

/// Which udev property holds a path's WWID, as multipath-tools picks it: `uid_attrs` by the
/// kernel name's prefix, then `uid_attribute` of `overrides`, of the matching `devices` entry
/// (the later first), of `defaults`, then `ID_SERIAL`. "" means "read VPD page 0x83, not udev".
public struct UIDAttributes: Sendable, Equatable {
    /// One `uid_attrs` pair.
    public struct ByName: Sendable, Equatable {
        public var prefix: String
        public var attribute: String
        public init(prefix: String, attribute: String) {
            self.prefix = prefix
            self.attribute = attribute
        }
    }

    public static let builtIn = "ID_SERIAL"
    public var byName: [ByName] = []
    public var overrides: String?
    /// The `devices` entries that set one: the configuration's, then the built-in table's, each
    /// the later first.
    public var devices: [DeviceEntry] = []
    public var defaults: String?

    /// Every path read from `attribute` (a host without configuration: `ID_SERIAL`).
    public init(defaults: String? = nil) {
        self.defaults = defaults
    }

    /// What a path not matched by anything more specific uses (kernel uevents, say).
    public var defaultAttribute: String { defaults ?? Self.builtIn }

    /// The attribute for one path.
    public func attribute(devnode: String, vendor: String, product: String, revision: String) -> String {
        if let pair = byName.first(where: { devnode.hasPrefix($0.prefix) }) { return pair.attribute }
        if let overrides { return overrides }
        if let entry = devices.first(where: { $0.matches(vendor: vendor, product: product, revision: revision) }),
           let attribute = entry.settings.uidAttribute {
            return attribute
        }
        return defaultAttribute
    }
}

extension Configuration {
    /// The configuration's `uid_attrs` and `uid_attribute`s.
    public var uidAttributes: UIDAttributes {
        var rule = UIDAttributes(defaults: writtenDefaults.uidAttribute)
        rule.byName = uidAttrs
        rule.overrides = overrides.uidAttribute
        // The user's entries first, then the built-in table's (its NVMe entry names ID_WWN),
        // each the later first: multipath-tools merges them in that order.
        rule.devices = devices.reversed().filter { $0.settings.uidAttribute != nil }
        if useHardwareTable { rule.devices += Self.hardwareTable.reversed().filter { $0.settings.uidAttribute != nil } }
        return rule
    }
}
