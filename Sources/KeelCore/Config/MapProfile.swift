// The settings one map runs under, resolved with multipath-tools' precedence.

/// Everything the configuration says about one map: the engine's fixed-size policy plus the text
/// the control plane puts into the map's table and uses to set up its paths.
public struct MapProfile: Sendable, Equatable {
    /// Grouping, failback, queueing, damping and intervals, ready for the engine.
    public var policy: MapPolicy
    /// Path selector with its arguments as the table carries it, e.g. "service-time 0".
    public var pathSelector: String
    /// Hardware handler as the table carries it, e.g. "0" or "1 alua".
    public var hardwareHandler: String
    /// Table features, e.g. "1 queue_if_no_path": `queue_if_no_path` is present exactly when
    /// `policy.noPathRetry` is not `.fail`.
    public var features: String
    /// `prio`: how paths are ranked for grouping.
    public var prio: Prioritizer
    /// `prio_args`, passed to the prioritizer as written.
    public var prioArgs: String
    /// `path_checker`.
    public var checker: Checker
    /// `checker_timeout`; nil means "use the device's SCSI timeout, else 30 s"
    /// (`policy.checkTimeoutNs` then holds the 30 s fallback).
    public var checkerTimeoutSeconds: UInt32?
    /// The name given by a `multipaths` entry.
    public var alias: String?
    /// `user_friendly_names`: name an alias-less map `<aliasPrefix><letters>` instead of its wwid.
    public var userFriendlyNames: Bool
    /// `alias_prefix` of user-friendly names.
    public var aliasPrefix: String
    /// `detect_prio`: ALUA paths choose the prioritizer, over any `prio` setting (as in
    /// multipath-tools, where detection comes before every section).
    public var detectsPrio: Bool = false
    /// `detect_checker`: ALUA paths get tur unless the checker is rdac (multipath-tools 0.9.4
    /// sends rdac's page 0xC9 first and keeps rdac when the array answers it).
    public var detectsChecker: Bool = true
    /// The `path_checker` the device's devices entries name (the user's, then the built-in
    /// hardware table's), if any.
    public var devicesChecker: Checker?
    /// Whether `detect_checker` asks the array whether it is an RDAC one (INQUIRY page 0xC9), as
    /// multipath-tools does: unless detection is off, or the devices entries name a checker other
    /// than rdac ("likely not an RDAC array").
    public var asksWhetherRDAC: Bool { detectsChecker && (devicesChecker == nil || devicesChecker == .rdac) }
    /// `detect_pgpolicy`: paths that all use the alua or sysfs prioritizer are grouped by
    /// priority, unless `groupingIsOperatorChoice`.
    public var detectsPgpolicy: Bool = false
    /// `detect_pgpolicy_use_tpg`: detection groups by target port group instead.
    public var detectedPgpolicyUsesTPG: Bool = false
    /// `path_grouping_policy` came from a `multipath` entry or `overrides`, which win over
    /// detection (in multipath-tools, detection sits between `overrides` and `devices`).
    public var groupingIsOperatorChoice: Bool = false
    /// `reservation_key`: where the map's persistent-reservation key comes from (nil: none).
    public var reservationKey: ReservationKeySource?
    /// `retain_attached_hw_handler`: a handler the kernel attached to the paths is used, over
    /// any `hardware_handler` setting.
    public var retainsAttachedHandler: Bool = false
    /// Nobody set `hardware_handler`: ALUA paths then get "1 alua".
    public var hardwareHandlerIsDefault: Bool = true
    /// What the paths' transport objects are set to (FC remote port, iSCSI session, SCSI host),
    /// for a path whose protocol no `protocol` subsection names.
    public var transport = TransportTimeouts()
    /// The same for the paths of each protocol a `protocol` subsection of `overrides` or of a
    /// matching `devices` entry names.
    public var transportByProtocol: [String: TransportTimeouts] = [:]

    /// The transport timeouts of a path of this protocol (`%P`, e.g. "scsi:fcp").
    public func transport(protocol name: String) -> TransportTimeouts {
        transportByProtocol[name] ?? transport
    }
    /// `flush_on_last_del`.
    public var flushesOnLastDel = false
    /// `auto_resize`.
    public var autoResize = AutoResize.never

    /// The path checkers Keel has (`path_checker`).
    public enum Checker: String, Sendable, Equatable, CaseIterable {
        /// SCSI TEST UNIT READY.
        case tur
        /// One `O_DIRECT` read.
        case directio
        /// No check: the path is taken as up.
        case none
        /// READ(10) of the first block (multipath-tools' `readsector0`).
        case readsector0
        /// INQUIRY page 0x80, then TEST UNIT READY: a path that fails only the TUR is a passive
        /// path (ghost) of an HP active/passive array.
        case hpSW = "hp_sw"
        /// INQUIRY page 0xC9 (volume access) of LSI/Engenio/NetApp E-series arrays: owner, AVT or
        /// I/O shipping up, otherwise ghost; a controller unavailable or starting up is down.
        case rdac
        /// INQUIRY page 0xC0 (unit path report) of EMC CLARiiON/VNX arrays.
        case emcClariion = "emc_clariion"

        /// Whether the checker speaks SCSI through the path's SCSI generic node.
        public var usesSCSIGeneric: Bool { self != .directio && self != .none }
    }

    /// The prioritizers Keel has (`prio`).
    public enum Prioritizer: String, Sendable, Equatable, CaseIterable {
        /// Every path has the same priority.
        case const
        /// From the ALUA access state of the path's target port group.
        case alua
        /// From the `access_state` / `preferred_path` sysfs attributes.
        case sysfs
        /// From `prio_args` (`WeightedPathRule`): the first expression matching the path's
        /// H:C:T:L, name, serial or WWNs.
        case weightedpath
        /// A random priority from 1 to 10 at every evaluation.
        case random
        /// INQUIRY page 0xC0 of EMC CLARiiON/VNX: LUN state, plus 2 on the default owner.
        case emc
        /// Standard INQUIRY of Hitachi modular arrays: controller and LDEV parity.
        case hds
        /// TEST UNIT READY of HP active/standby arrays: 4 active, 2 standby.
        case hpSW = "hp_sw"
        /// NetApp ONTAP: iSCSI kind, else FCP proxy or not.
        case ontap
        /// INQUIRY page 0xC9 of LSI/Engenio/NetApp E-series: owner, preferred, I/O shipping.
        case rdac
        /// Standard INQUIRY of DataCore SANsymphony: the preferred SDS (`prio_args preferredsds=`).
        case datacore
        /// READ latency of block 0 on a logarithmic scale (`prio_args io_num= base_num=`).
        case pathLatency = "path_latency"
        /// iSCSI paths to the portal `prio_args preferredip=` names: 20, others 10.
        case iet
        /// NVMe Asymmetric Namespace Access: the namespace's ANA state, asked from the path's
        /// controller (optimized 50, non-optimized 10, inaccessible 5, persistent loss 1).
        case ana

        /// Whether it sends SCSI commands through the path's SCSI generic node.
        public var asksTheArray: Bool {
            switch self {
            case .emc, .hds, .hpSW, .ontap, .rdac, .datacore, .pathLatency: return true
            case .const, .alua, .sysfs, .weightedpath, .random, .iet, .ana: return false
            }
        }
    }
}

extension Configuration {
    /// The profile of the map with this wwid whose paths report this SCSI vendor and product.
    ///
    /// Each setting comes from the first place that sets it: matching `multipaths` entries (later
    /// first), `overrides`, matching `devices` entries (later first), `defaults`, built-in values.
    /// As in multipath-tools, a `queue_if_no_path` feature counts as `no_path_retry queue` only
    /// where no `no_path_retry` is set anywhere; the profile's features then carry
    /// `queue_if_no_path` exactly when queueing is on.
    public func profile(wwid: String, vendor: String, product: String, revision: String? = nil) -> MapProfile {
        profile(wwid: wwid, deviceLayers: deviceLayers(vendor: vendor, product: product, revision: revision))
    }

    /// The `devices` entries (the user's, then the hardware table's) that match this vendor and
    /// product, later first: the part of a profile that only the device decides, worth reusing
    /// across the maps of one array (each match is a regular expression test).
    public func deviceLayers(vendor: String, product: String, revision: String?) -> [MapSettings] {
        var layers: [MapSettings] = []
        for entry in devices.reversed() where entry.matches(vendor: vendor, product: product, revision: revision) {
            layers.append(entry.settings)
        }
        if useHardwareTable {
            for entry in Self.hardwareTable.reversed() where entry.matches(vendor: vendor, product: product, revision: revision) {
                layers.append(entry.settings)
            }
        }
        return layers
    }

    /// `profile(wwid:vendor:product:)` with the device's layers already found (`deviceLayers`).
    public func profile(wwid: String, deviceLayers: [MapSettings]) -> MapProfile {
        var layers: [MapSettings] = []
        var alias: String? = nil
        for entry in multipaths.reversed() where entry.wwid == wwid {
            layers.append(entry.settings)
            if alias == nil { alias = entry.alias }
        }
        layers.append(overrides)
        let operatorLayers = layers.count
        layers += deviceLayers
        let explicitLayers = layers + [writtenDefaults]   // the hardware table counts as set, as in multipath-tools
        layers.append(defaults)
        layers.append(MapSettings.builtIn)
        let handlerSet = explicitLayers.contains { $0.hardwareHandler != nil }

        func pick<T>(_ field: KeyPath<MapSettings, T?>) -> T? {
            for layer in layers {
                if let v = layer[keyPath: field] { return v }
            }
            return nil
        }

        var featureWords = Self.words(pick(\.features) ?? "0").dropFirst().map { String($0) }
        let featureQueues = featureWords.contains("queue_if_no_path")
        let noPathRetry = pick(\.noPathRetry) ?? (featureQueues ? .queue : .fail)
        featureWords.removeAll { $0 == "queue_if_no_path" }
        if noPathRetry.queuesInitially { featureWords.append("queue_if_no_path") }
        var features = "\(featureWords.count)"
        for w in featureWords { features += " " + w }

        // Keel's cadence checks a healthy path every healthyIntervalMs instead of polling_interval:
        // a forget rate (good checks) is scaled so that it still spans the time it spans in
        // multipath-tools.
        let healthyNs = pollingWritten ? Nanoseconds(pollingIntervalSeconds) * Time.nsPerSecond
                                       : Nanoseconds(healthyIntervalMs) * Time.nsPerMs
        let healthyMaxNs = pollingWritten ? Nanoseconds(maxPollingIntervalSeconds) * Time.nsPerSecond : healthyNs
        let retryNs = Nanoseconds(pollingIntervalSeconds) * Time.nsPerSecond
        let forgetRate = pick(\.sanPathErrForgetRate) ?? 0
        let scaledForgetRate = pollingWritten ? forgetRate
            : UInt32(min(UInt64(forgetRate) * UInt64(max(retryNs / healthyNs, 1)), UInt64(UInt32.max)))
        let damping = FlapDamping(
            threshold: pick(\.sanPathErrThreshold) ?? 0,
            forgetRate: scaledForgetRate,
            recoveryTimeNs: Nanoseconds(pick(\.sanPathErrRecoveryTimeSeconds) ?? 0) * Time.nsPerSecond
        )
        let policy = MapPolicy(
            grouping: pick(\.grouping) ?? .failover,
            failback: pick(\.failback) ?? .manual,
            noPathRetry: noPathRetry,
            flapDamping: damping,
            intervalFastNs: Nanoseconds(fastProbeIntervalMs) * Time.nsPerMs,
            intervalHealthyNs: healthyNs,
            intervalHealthyMaxNs: healthyMaxNs,
            checkTimeoutNs: Nanoseconds(checkerTimeoutSeconds ?? Self.checkerTimeoutFallbackSeconds) * Time.nsPerSecond,
            marginalPathGroups: marginalPathGroups,
            retryIntervalNs: retryNs,
            healthyChecksPerSecondMax: healthyChecksPerSecondMax
        )
        var profile = MapProfile(
            policy: policy,
            pathSelector: pick(\.pathSelector) ?? "service-time 0",
            hardwareHandler: pick(\.hardwareHandler) ?? "0",
            features: features,
            prio: pick(\.prio) ?? .const,
            prioArgs: pick(\.prioArgs) ?? "",
            checker: pick(\.pathChecker) ?? .tur,
            checkerTimeoutSeconds: checkerTimeoutSeconds,
            alias: alias,
            userFriendlyNames: pick(\.userFriendlyNames) ?? false,
            aliasPrefix: pick(\.aliasPrefix) ?? "mpath"
        )
        profile.detectsPrio = detectPrio
        profile.detectsChecker = pick(\.detectChecker) ?? true
        profile.devicesChecker = deviceLayers.lazy.compactMap(\.pathChecker).first
        profile.detectsPgpolicy = pick(\.detectPgpolicy) ?? false
        profile.reservationKey = pick(\.reservationKey)
        profile.detectedPgpolicyUsesTPG = pick(\.detectPgpolicyUseTPG) ?? false
        profile.groupingIsOperatorChoice = layers.prefix(operatorLayers).contains { $0.grouping != nil }
        profile.retainsAttachedHandler = retainAttachedHardwareHandler
        profile.flushesOnLastDel = pick(\.flushOnLastDel) ?? false
        profile.autoResize = pick(\.autoResize) ?? .never
        profile.hardwareHandlerIsDefault = !handlerSet
        profile.transport = TransportTimeouts(fastIOFail: pick(\.fastIOFailTmo), devLoss: pick(\.devLossTmo), ehDeadline: pick(\.ehDeadline),
                                              noPathRetry: noPathRetry, pollingIntervalSeconds: pollingIntervalSeconds)
        // As multipath-tools selects them: in each layer (overrides, then the devices entries),
        // a matching protocol subsection (the last written first) before the layer's own value.
        for type in Set(layers.flatMap { $0.protocols.map(\.type) }) {
            func pickFor(_ field: KeyPath<ProtocolTimeouts, TransportTimeout?>, _ own: KeyPath<MapSettings, TransportTimeout?>) -> TransportTimeout? {
                for layer in layers {
                    if let v = layer.protocols.last(where: { $0.type == type && $0[keyPath: field] != nil })?[keyPath: field] { return v }
                    if let v = layer[keyPath: own] { return v }
                }
                return nil
            }
            profile.transportByProtocol[type] = TransportTimeouts(
                fastIOFail: pickFor(\.fastIOFailTmo, \.fastIOFailTmo), devLoss: pickFor(\.devLossTmo, \.devLossTmo),
                ehDeadline: pickFor(\.ehDeadline, \.ehDeadline), noPathRetry: noPathRetry, pollingIntervalSeconds: pollingIntervalSeconds)
        }
        return profile
    }

    /// The built-in hardware table, read once from `hardwareTableText` (a test checks that it
    /// loads without a problem).
    public static let hardwareTable: [DeviceEntry] = {
        switch load(files: [(name: "built-in hardware table", text: hardwareTableText)]) {
        case .success(let loaded): return loaded.configuration.devices
        case .failure: return []
        }
    }()

    /// The hardware-table entry that applies to a device (the last that matches), if any.
    public func hardwareEntry(vendor: String, product: String, revision: String? = nil) -> DeviceEntry? {
        guard useHardwareTable else { return nil }
        return Self.hardwareTable.last { $0.matches(vendor: vendor, product: product, revision: revision) }
    }

    /// Blank-separated words of a value.
    static func words(_ text: String) -> [Substring] {
        text.split(whereSeparator: { $0 == " " || $0 == "\t" })
    }
}

/// The transport timeouts of a map's paths, after multipath-tools' adjustments. nil: leave the
/// kernel's value alone.
public struct TransportTimeouts: Sendable, Equatable {
    /// FC remote port `fast_io_fail_tmo`; also the iSCSI session's `recovery_tmo`.
    public var fastIOFail: TransportTimeout?
    /// FC remote port `dev_loss_tmo`.
    public var devLoss: TransportTimeout?
    /// SCSI host `eh_deadline`.
    public var ehDeadline: TransportTimeout?

    public init() {}

    /// Resolves the written values as multipath-tools does:
    /// - `no_path_retry N`: dev_loss_tmo is at least N polling intervals, so a path is not
    ///   removed while its map still queues for it; `no_path_retry queue`: dev_loss_tmo is
    ///   infinity (2^31 - 1 s).
    /// - fast_io_fail_tmo not below dev_loss_tmo is turned off (it would never fire).
    /// - The kernel refuses dev_loss_tmo above 600 s without fast_io_fail_tmo: it is capped there.
    public init(fastIOFail: TransportTimeout?, devLoss: TransportTimeout?, ehDeadline: TransportTimeout?,
                noPathRetry: NoPathRetry, pollingIntervalSeconds: UInt32) {
        self.ehDeadline = ehDeadline
        var loss: UInt32? = devLoss.map { $0.seconds }
        switch noPathRetry {
        case .retries(let n):
            let wanted = UInt32(min(UInt64(n) * UInt64(pollingIntervalSeconds), UInt64(TransportTimeout.devLossMaxSeconds)))
            if wanted > (loss ?? 0) { loss = wanted }
        case .queue:
            loss = TransportTimeout.devLossMaxSeconds
        case .fail:
            break
        }
        var fast = fastIOFail
        if let l = loss, case .seconds(let f)? = fast, f >= l { fast = .off }
        let fastOn: Bool
        if case .seconds? = fast { fastOn = true } else { fastOn = false }
        if let l = loss, l > TransportTimeout.devLossWithoutFastIOFailMaxSeconds, !fastOn {
            loss = TransportTimeout.devLossWithoutFastIOFailMaxSeconds
        }
        self.fastIOFail = fast
        self.devLoss = loss.map { .seconds($0) }
    }

    /// Whether anything is to be written.
    public var isEmpty: Bool { fastIOFail == nil && devLoss == nil && ehDeadline == nil }
}

extension TransportTimeout {
    /// Seconds as the kernel's attribute takes them (`infinity`: the largest dev_loss_tmo; `off`: 0
    /// is not used, callers write the word).
    public var seconds: UInt32 {
        switch self {
        case .off: return 0
        case .infinity: return Self.devLossMaxSeconds
        case .seconds(let s): return s
        }
    }
}
