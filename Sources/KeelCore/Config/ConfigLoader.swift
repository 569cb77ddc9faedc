// Reading multipath.conf text into a Configuration: sections, options, value checks, diagnostics.

extension Configuration {
    /// Reads the main file and then each conf.d file, in the order given; a later occurrence of an
    /// option wins, `device` and `multipath` entries and blacklist entries accumulate.
    ///
    /// Every problem is collected, each naming its file and line; any problem refuses the whole
    /// configuration. Unknown or unsupported options and sections are warnings and are ignored.
    public static func load(files: [(name: String, text: String)]) -> Result<LoadedConfiguration, ConfigurationError> {
        var loader = ConfigLoader()
        for file in files { loader.read(file: file.name, text: file.text) }
        return loader.finish()
    }
}

/// A file and line, for diagnostics that are decided after the whole text is read.
struct ConfigPlace {
    var file: String
    var line: Int
}

/// Why a value was refused (the text after `option: `).
struct ConfigValueProblem: Error {
    var text: String
    init(_ text: String) { self.text = text }
}

/// Which section a statement is in: decides which options are valid there.
enum ConfigScope: String {
    case defaults
    case device
    case overrides
    case multipath
}

/// Accumulates everything read so far; `finish` derives the global values and checks what
/// involves several options.
struct ConfigLoader {
    private var configuration = Configuration()
    private var errors: [ConfigDiagnostic] = []
    private var warnings: [ConfigDiagnostic] = []
    private var file = ""
    /// The `defaults` section as written; laid over the built-in values at the end.
    private var writtenDefaults = MapSettings()
    private var pollingWritten: (seconds: UInt32, place: ConfigPlace)?
    private var maxPollingWritten: (seconds: UInt32, place: ConfigPlace)?
    private var healthyIntervalPlace: ConfigPlace?
    private var capacityPlaces: [String: ConfigPlace] = [:]
    private var multipathPlaces: [ConfigPlace] = []

    /// Options valid only in `defaults`.
    static let globalOptions: Set<String> = [
        "polling_interval", "max_polling_interval", "checker_timeout", "find_multipaths",
        "fast_probe_interval_ms", "healthy_interval_ms", "max_healthy_checks_per_second", "max_paths", "max_maps", "max_paths_per_map", "ring_slots", "config_dir",
        "find_multipaths_timeout", "bindings_file", "wwids_file", "prkeys_file", "marginal_pathgroups", "detect_prio", "retain_attached_hw_handler", "hardware_table",
        "queue_without_daemon", "uid_attrs",
    ]

    /// Options valid in `defaults`, `device`, `overrides` and (most of them) `multipath`.
    static let mapOptions: Set<String> = [
        "path_grouping_policy", "path_selector", "path_checker", "prio", "prio_args", "failback",
        "no_path_retry", "features", "hardware_handler", "san_path_err_threshold",
        "san_path_err_forget_rate", "san_path_err_recovery_time", "user_friendly_names", "alias_prefix",
        "fast_io_fail_tmo", "dev_loss_tmo", "eh_deadline", "flush_on_last_del", "auto_resize", "detect_checker",
        "detect_pgpolicy", "detect_pgpolicy_use_tpg", "reservation_key",
    ]

    /// multipath-tools checkers Keel does not have: a warning, and tur.
    static let checkersNotInKeel: Set<String> = ["cciss_tur"]

    /// Map options that multipath-tools does not accept in a `multipath` entry.
    static let notInMultipath: Set<String> = ["path_checker", "hardware_handler", "alias_prefix", "fast_io_fail_tmo",
                                               "dev_loss_tmo", "eh_deadline", "detect_checker",
                                               "detect_pgpolicy", "detect_pgpolicy_use_tpg"]

    /// Map options that multipath-tools accepts only in `defaults` and `multipath` entries.
    static let onlyDefaultsAndMultipath: Set<String> = ["reservation_key"]

    /// multipath-tools options that Keel knows by name but does not carry out, each with what
    /// Keel does instead (the warning says it).
    static let unsupportedOptions: [String: String] = [
        "verbosity": "every log record carries its syslog level; choose what to see when reading the journal or the log file",
        "reassign_maps": "maps stacked on a path are reassigned only when asked, by the reset map command",
        "multipath_dir": "checkers and prioritizers are built into keeld; there is no plugin directory",
        "getuid_callout": "keeld runs no programs; WWIDs come from uid_attribute's udev property or VPD page 0x83 in sysfs",
        "rr_min_io": "tables give each path a repeat count of 1, the request-based maps' value",
        "rr_min_io_rq": "tables give each path a repeat count of 1",
        "rr_weight": "priorities decide groups, not repeat counts; every path has a repeat count of 1",
        "max_fds": "keeld raises its open-file limit to what max_paths needs",
        "max_retries": "the SCSI layer's retry count is left as the kernel set it",
        "log_checker_err": "a path's state changes are logged, not each failed check",
        "all_tg_pt": "reservation_key registers each path (I_T nexus) separately",
        "force_sync": "checks never block a thread: TUR is sent asynchronously through the path's sg node",
        "strict_timing": "checks run on the recovery thread's timer wheel at their own deadlines",
        "deferred_remove": "a map that lost its last path is removed only once unused (flush_on_last_del)",
        "partition_delimiter": "keeld creates no partition maps (kpartx is not run)",
        "delay_watch_checks": "a flapping path is held back by san_path_err_threshold, san_path_err_forget_rate and san_path_err_recovery_time",
        "delay_wait_checks": "a flapping path is held back by san_path_err_threshold, san_path_err_forget_rate and san_path_err_recovery_time",
        "marginal_path_err_sample_time": "no marginal-path I/O test; a flapping path is held back by the san_path_err options",
        "marginal_path_err_rate_threshold": "no marginal-path I/O test; a flapping path is held back by the san_path_err options",
        "marginal_path_err_recheck_gap_time": "no marginal-path I/O test; a flapping path is held back by the san_path_err options",
        "marginal_path_double_failed_time": "no marginal-path I/O test; a flapping path is held back by the san_path_err options",
        "uxsock_timeout": "clients are answered from a published snapshot, without waiting on recovery",
        "retrigger_tries": "keeld reads a WWID udev has not given from sysfs instead of retriggering the uevent",
        "retrigger_delay": "keeld reads a WWID udev has not given from sysfs instead of retriggering the uevent",
        "missing_uev_wait_timeout": "keeld does not wait for a map's uevent; the map is used once its table is loaded",
        "skip_kpartx": "keeld creates no partition maps (kpartx is not run)",
        "disable_changed_wwids": "no effect in multipath-tools either (deprecated)",
        "remove_retries": "a map in use is not removed; flush_on_last_del removes it once unused",
        "max_sectors_kb": "the paths' and maps' max_sectors_kb are left as the kernel set them",
        "ghost_delay": "a map is created as soon as it has a path, standby (ghost) paths included",
        "enable_foreign": "keeld manages SCSI dm-multipath maps only; NVMe native multipathing is not shown",
        "recheck_wwid": "a path's WWID is read when it is added; a changed LUN behind a path needs the path removed and added",
        "purge_disconnected": "keeld never deletes SCSI devices",
        "pg_timeout": "no effect in multipath-tools either (deprecated)",
        "mode": "device node permissions are udev's",
        "uid": "device node ownership is udev's",
        "gid": "device node ownership is udev's",
        "revision": "revision is a key of a devices entry",
        "vpd_vendor": "no vendor-specific VPD page is read",
        "pgfailback": "the old spelling of failback; write failback",
        "selector": "the old spelling of path_selector; write path_selector",
        "checker": "the old spelling of path_checker; write path_checker",
        "ignore_new_boot_devs": "no effect in multipath-tools either (deprecated)",
        "san_path_err_recovery_time_ms": "write san_path_err_recovery_time, in seconds",
        "protocol": "protocol is a subsection of a devices entry or of overrides, or a blacklist key",
        "queue_mode": "tables use the kernel's default queue mode unless features names one",
        "hw_str_match": "devices entries are matched as regular expressions",
    ]

    mutating func read(file name: String, text: String) {
        file = name
        let errorsBefore = errors.count
        let warningsBefore = warnings.count
        var syntax = ConfigSyntax(file: name)
        let nodes = syntax.parse(text)
        errors += syntax.errors
        for node in nodes {
            guard node.isSection else {
                error(node.line, "\"\(node.keyword)\" outside any section (expected a section such as \"defaults {\")")
                continue
            }
            switch node.keyword {
            case "defaults": readDefaults(node)
            case "blacklist":
                var list = configuration.blacklist
                readBlacklist(node, into: &list)
                configuration.blacklist = list
            case "blacklist_exceptions":
                var list = configuration.blacklistExceptions
                readBlacklist(node, into: &list)
                configuration.blacklistExceptions = list
            case "devices": readDevices(node)
            case "multipaths": readMultipaths(node)
            case "overrides": readOverrides(node)
            default: warn(node.line, "unknown section \"\(node.keyword)\", ignored")
            }
        }
        Self.sortByLine(&errors, from: errorsBefore)
        Self.sortByLine(&warnings, from: warningsBefore)
    }

    mutating func finish() -> Result<LoadedConfiguration, ConfigurationError> {
        derivePollingIntervals()
        configuration.defaults = MapSettings.builtIn.overlaid(by: writtenDefaults)
        configuration.writtenDefaults = writtenDefaults
        checkCapacities()
        checkAliases()
        if !errors.isEmpty { return .failure(ConfigurationError(problems: errors)) }
        return .success(LoadedConfiguration(configuration: configuration, warnings: warnings))
    }

    // MARK: Sections

    private mutating func readDefaults(_ section: ConfigNode) {
        var settings = writtenDefaults
        defer { writtenDefaults = settings }
        for node in section.children! {
            if node.isSection {
                optionExpected(node, in: "defaults")
            } else if Self.globalOptions.contains(node.keyword) {
                if let value = singleValue(node) { readGlobal(node, value) }
            } else {
                readMapStatement(node, scope: .defaults, into: &settings)
            }
        }
    }

    private mutating func readOverrides(_ section: ConfigNode) {
        var settings = configuration.overrides
        for node in section.children! {
            if node.isSection && node.keyword == "protocol" {
                if let entry = readProtocol(node, in: "overrides") { settings.protocols.append(entry) }
            } else if node.isSection {
                optionExpected(node, in: "overrides")
            } else {
                readMapStatement(node, scope: .overrides, into: &settings)
            }
        }
        configuration.overrides = settings
    }

    private mutating func readDevices(_ section: ConfigNode) {
        for node in section.children! where isEntry(node, named: "device", in: "devices") {
            readDeviceEntry(node)
        }
    }

    private mutating func readDeviceEntry(_ section: ConfigNode) {
        var vendor: PosixRegex? = nil
        var product: PosixRegex? = nil
        var vendorWritten = false
        var productWritten = false
        var productBlacklist: PosixRegex? = nil
        var revision: PosixRegex? = nil
        var settings = MapSettings()
        for node in section.children! {
            if node.isSection && node.keyword == "protocol" {
                if let entry = readProtocol(node, in: "device") { settings.protocols.append(entry) }
                continue
            }
            if node.isSection {
                optionExpected(node, in: "device")
                continue
            }
            switch node.keyword {
            case "vendor":
                vendorWritten = true
                if let v = singleValue(node), let r = regex(node, v) { vendor = r }
            case "product":
                productWritten = true
                if let v = singleValue(node), let r = regex(node, v) { product = r }
            case "product_blacklist":
                if let v = singleValue(node), let r = regex(node, v) { productBlacklist = r }
            case "revision":
                if let v = singleValue(node), let r = regex(node, v) { revision = r }
            default:
                readMapStatement(node, scope: .device, into: &settings)
            }
        }
        if !vendorWritten { error(section.line, "device: vendor missing") }
        if !productWritten { error(section.line, "device: product missing") }
        if let vendor, let product {
            configuration.devices.append(DeviceEntry(vendor: vendor, product: product, settings: settings, productBlacklist: productBlacklist,
                                                     revision: revision))
        }
    }

    /// A `protocol` subsection of a device entry or of overrides: its `type` and the transport
    /// timeouts it sets; nil (with an error) without a known type.
    private mutating func readProtocol(_ section: ConfigNode, in parent: String) -> ProtocolTimeouts? {
        var entry = ProtocolTimeouts(type: "")
        var typeWritten = false
        for node in section.children! {
            if node.isSection {
                optionExpected(node, in: "\(parent) protocol")
                continue
            }
            guard let value = singleValue(node) else { continue }
            if readTransportTimeout(node, value, into: &entry, fast: \.fastIOFailTmo, loss: \.devLossTmo, eh: \.ehDeadline) { continue }
            switch node.keyword {
            case "type":
                typeWritten = true
                if ProtocolTimeouts.names.contains(value) {
                    entry.type = value
                } else {
                    error(node.line, "type: \"\(value)\" is not a protocol (expected one of \(ProtocolTimeouts.names.joined(separator: ", ")))")
                }
            default:
                warn(node.line, "option \"\(node.keyword)\" is not valid in a protocol subsection (type, fast_io_fail_tmo, dev_loss_tmo, eh_deadline), ignored")
            }
        }
        if !typeWritten { error(section.line, "protocol: type missing") }
        return entry.type.isEmpty ? nil : entry
    }

    private mutating func readMultipaths(_ section: ConfigNode) {
        for node in section.children! where isEntry(node, named: "multipath", in: "multipaths") {
            readMultipathEntry(node)
        }
    }

    private mutating func readMultipathEntry(_ section: ConfigNode) {
        var wwid: String? = nil
        var wwidWritten = false
        var alias: String? = nil
        var settings = MapSettings()
        for node in section.children! {
            if node.isSection {
                optionExpected(node, in: "multipath")
                continue
            }
            switch node.keyword {
            case "wwid":
                wwidWritten = true
                if let v = singleValue(node) {
                    if v.isEmpty { error(node.line, "wwid: empty value") } else { wwid = v }
                }
            case "alias":
                if let v = singleValue(node), let a = check(node, Self.alias(v)) { alias = a }
            default:
                readMapStatement(node, scope: .multipath, into: &settings)
            }
        }
        if !wwidWritten { error(section.line, "multipath: wwid missing") }
        if let wwid {
            configuration.multipaths.append(MultipathEntry(wwid: wwid, alias: alias, settings: settings))
            multipathPlaces.append(ConfigPlace(file: file, line: section.line))
        }
    }

    private mutating func readBlacklist(_ section: ConfigNode, into list: inout Blacklist) {
        let name = section.keyword
        for node in section.children! {
            if node.isSection {
                if node.keyword == "device" {
                    readBlacklistDevice(node, in: name, into: &list)
                } else {
                    warn(node.line, "unknown section \"\(node.keyword)\" in \(name), ignored")
                }
                continue
            }
            switch node.keyword {
            case "devnode":
                if let v = singleValue(node), let r = regex(node, v) { list.devnodes.append(r) }
            case "wwid":
                if let v = singleValue(node), let r = regex(node, v) { list.wwids.append(r) }
            case "property":
                if let v = singleValue(node), let r = regex(node, v) { list.properties.append(r) }
            case "device":
                sectionExpected(node, name: "device", in: name)
            case "protocol":
                if let v = singleValue(node), let r = regex(node, v) { list.protocols.append(r) }
            default:
                warn(node.line, "unknown option \"\(node.keyword)\" in \(name), ignored")
            }
        }
    }

    private mutating func readBlacklistDevice(_ section: ConfigNode, in name: String, into list: inout Blacklist) {
        var vendor: PosixRegex? = nil
        var product: PosixRegex? = nil
        var written = false
        var failed = false
        for node in section.children! {
            if node.isSection {
                optionExpected(node, in: "\(name) device")
                continue
            }
            switch node.keyword {
            case "vendor", "product":
                written = true
                guard let v = singleValue(node), let r = regex(node, v) else {
                    failed = true
                    continue
                }
                if node.keyword == "vendor" { vendor = r } else { product = r }
            default:
                warn(node.line, "unknown option \"\(node.keyword)\" in \(name) device, ignored")
            }
        }
        if !written { error(section.line, "device: needs vendor or product") }
        if written && !failed { list.devices.append(Blacklist.DeviceRule(vendor: vendor, product: product)) }
    }

    // MARK: Statements

    /// One statement of `defaults`, `device`, `overrides` or `multipath` that is not an entry's own key.
    private mutating func readMapStatement(_ node: ConfigNode, scope: ConfigScope, into settings: inout MapSettings) {
        let key = node.keyword
        if key == "uid_attribute" {
            // A path's option: valid where multipath-tools takes it (not in a multipath entry).
            if scope == .multipath {
                warn(node.line, "option \"uid_attribute\" is not valid in multipath, ignored")
            } else if let value = singleValue(node) {
                settings.uidAttribute = value
            }
            return
        }
        if Self.mapOptions.contains(key) {
            if scope == .multipath && Self.notInMultipath.contains(key) {
                warn(node.line, "option \"\(key)\" is not valid in multipath, ignored")
            } else if (scope == .device || scope == .overrides) && Self.onlyDefaultsAndMultipath.contains(key) {
                warn(node.line, "option \"\(key)\" is only valid in defaults and multipath, ignored in \(scope.rawValue)")
            } else if let value = singleValue(node) {
                readMapOption(node, value, into: &settings)
            }
        } else if Self.globalOptions.contains(key) {
            warn(node.line, "option \"\(key)\" is only valid in defaults, ignored in \(scope.rawValue)")
        } else if let instead = Self.unsupportedOptions[key] {
            warn(node.line, "option \"\(key)\" in \(scope.rawValue) is not supported by Keel, ignored: \(instead)")
        } else {
            warn(node.line, "unknown option \"\(key)\" in \(scope.rawValue), ignored")
        }
    }

    /// `fast_io_fail_tmo` (seconds or off), `dev_loss_tmo` (seconds or infinity) or `eh_deadline`
    /// (seconds or off) into the matching field of `target`; false for any other option.
    @discardableResult
    private mutating func readTransportTimeout<T>(_ node: ConfigNode, _ value: String, into target: inout T,
                                                  fast: WritableKeyPath<T, TransportTimeout?>, loss: WritableKeyPath<T, TransportTimeout?>,
                                                  eh: WritableKeyPath<T, TransportTimeout?>) -> Bool {
        let field: WritableKeyPath<T, TransportTimeout?>, word: String
        switch node.keyword {
        case "fast_io_fail_tmo": (field, word) = (fast, "off")
        case "dev_loss_tmo": (field, word) = (loss, "infinity")
        case "eh_deadline": (field, word) = (eh, "off")
        default: return false
        }
        if let v = check(node, Self.transportTimeout(value, word: word)) { target[keyPath: field] = v }
        return true
    }

    private mutating func readMapOption(_ node: ConfigNode, _ value: String, into s: inout MapSettings) {
        switch node.keyword {
        case "path_grouping_policy":
            if let v = check(node, Self.grouping(value)) { s.grouping = v }
        case "path_selector":
            if let v = check(node, Self.selector(value)) { s.pathSelector = v }
        case "path_checker":
            if Self.checkersNotInKeel.contains(value) {
                warn(node.line, "path_checker \(value) is not in Keel: tur is used (a passive or standby path may then be reported ready)")
                s.pathChecker = .tur
            } else if let v = check(node, Self.checker(value)) { s.pathChecker = v }
        case "prio":
            if let v = check(node, Self.prio(value)) { s.prio = v }
        case "prio_args":
            s.prioArgs = value
        case "detect_checker":
            if let v = check(node, Self.yesNo(value)) { s.detectChecker = v }
        case "reservation_key":
            if let v = check(node, Self.reservationKey(value)) { s.reservationKey = v }
        case "detect_pgpolicy":
            if let v = check(node, Self.yesNo(value)) { s.detectPgpolicy = v }
        case "detect_pgpolicy_use_tpg":
            if let v = check(node, Self.yesNo(value)) { s.detectPgpolicyUseTPG = v }
        case "failback":
            if let v = check(node, Self.failback(value)) { s.failback = v }
        case "fast_io_fail_tmo", "dev_loss_tmo", "eh_deadline":
            readTransportTimeout(node, value, into: &s, fast: \.fastIOFailTmo, loss: \.devLossTmo, eh: \.ehDeadline)
        case "auto_resize":
            if let v = AutoResize(rawValue: value) {
                s.autoResize = v
            } else {
                _ = check(node, Result<AutoResize, ConfigValueProblem>.failure(.init("\"\(value)\" must be never, grow_only or grow_shrink")))
            }
        case "flush_on_last_del":
            // 0.9's yes/no, and the words later versions use (`unused` is what Keel does for
            // yes anyway: a map held open is never removed).
            switch value {
            // Later multipath-tools: `always` is yes; `unused` turns queueing off only for a map
            // nobody holds, which is removed anyway, so it keeps queueing as `no` does.
            case "always": s.flushOnLastDel = true
            case "unused": s.flushOnLastDel = false
            case "never": s.flushOnLastDel = false
            default: if let v = check(node, Self.yesNo(value)) { s.flushOnLastDel = v }
            }
        case "no_path_retry":
            if let v = check(node, Self.noPathRetry(value)) { s.noPathRetry = v }
        case "features":
            if let v = check(node, Self.countedWords(value, what: "feature")) {
                s.features = v
                if Configuration.words(v).contains("queue_if_no_path") {
                    warn(node.line, "features: \"\(value)\" is deprecated, use \"no_path_retry queue\"; where no_path_retry is set the feature is ignored")
                }
            }
        case "hardware_handler":
            if let v = check(node, Self.countedWords(value, what: "hardware handler")) { s.hardwareHandler = v }
        case "san_path_err_threshold":
            if let v = check(node, Self.countOrNo(value)) { s.sanPathErrThreshold = v }
        case "san_path_err_forget_rate":
            if let v = check(node, Self.countOrNo(value)) { s.sanPathErrForgetRate = v }
        case "san_path_err_recovery_time":
            if let v = check(node, Self.secondsOrNo(value)) { s.sanPathErrRecoveryTimeSeconds = v }
        case "user_friendly_names":
            if let v = check(node, Self.yesNo(value)) { s.userFriendlyNames = v }
        case "alias_prefix":
            if let v = check(node, Self.aliasPrefix(value)) { s.aliasPrefix = v }
        default:
            preconditionFailure("\(node.keyword) is listed in mapOptions without a reader")
        }
    }

    private mutating func readGlobal(_ node: ConfigNode, _ value: String) {
        let place = ConfigPlace(file: file, line: node.line)
        switch node.keyword {
        case "polling_interval":
            if let v = check(node, Self.seconds(value, min: 1)) { pollingWritten = (v, place) }
        case "max_polling_interval":
            if let v = check(node, Self.seconds(value, min: 1)) { maxPollingWritten = (v, place) }
        case "checker_timeout":
            if let v = check(node, Self.seconds(value, min: 1)) { configuration.checkerTimeoutSeconds = v }
        case "find_multipaths":
            if let v = check(node, Self.findMultipaths(value)) { configuration.findMultipaths = v }
        case "uid_attrs":
            var pairs: [UIDAttributes.ByName] = []
            for word in Configuration.words(value) {
                let parts = word.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                    error(node.line, "uid_attrs: \"\(word)\" is not prefix:attribute (e.g. \"sd:ID_SERIAL dasd:ID_UID\")")
                    return
                }
                pairs.append(UIDAttributes.ByName(prefix: String(parts[0]), attribute: String(parts[1])))
            }
            configuration.uidAttrs = pairs
        case "config_dir":
            if value.isEmpty || value.hasPrefix("/") {
                configuration.configDirectory = value
            } else {
                error(node.line, "config_dir: \"\(value)\" is not an absolute path (\"\" reads no directory)")
            }
        case "find_multipaths_timeout":
            if let v = check(node, Self.signedNumber(value, in: Configuration.findMultipathsTimeoutRange, unit: " s")) {
                configuration.findMultipathsTimeoutSeconds = v == 0 ? Configuration.findMultipathsTimeoutDefaultSeconds : v
            }
        case "hardware_table":
            if let v = check(node, Self.yesNo(value)) { configuration.useHardwareTable = v }
        case "marginal_pathgroups":
            switch value {
            case "on", "yes", "1": configuration.marginalPathGroups = true
            case "off", "no", "0": configuration.marginalPathGroups = false
            case "fpin":
                configuration.marginalPathGroups = true
                warn(node.line, "marginal_pathgroups fpin: Keel has no FC fabric notification (FPIN) receiver; taken as on, so only paths the operator marks (setmarginal) are grouped apart")
            default:
                error(node.line, "marginal_pathgroups: \"\(value)\" must be on, off or fpin")
            }
        case "queue_without_daemon":
            if let v = check(node, Self.yesNo(value)) { configuration.queueWithoutDaemon = v }
        case "detect_prio":
            if let v = check(node, Self.yesNo(value)) { configuration.detectPrio = v }
        case "retain_attached_hw_handler":
            if let v = check(node, Self.yesNo(value)) { configuration.retainAttachedHardwareHandler = v }
        case "bindings_file", "wwids_file", "prkeys_file":
            if value.hasPrefix("/") && value.utf8.count > 1 {
                switch node.keyword {
                case "bindings_file": configuration.bindingsFile = value
                case "wwids_file": configuration.wwidsFile = value
                default: configuration.prkeysFile = value
                }
            } else {
                error(node.line, "\(node.keyword): \"\(value)\" is not an absolute file path")
            }
        case "fast_probe_interval_ms":
            let range = Configuration.fastProbeIntervalRangeMs
            if let v = check(node, Self.number(value, in: Int(range.lowerBound)...Int(range.upperBound), unit: " ms")) {
                configuration.fastProbeIntervalMs = UInt32(v)
            }
        case "healthy_interval_ms":
            let range = Configuration.healthyIntervalRangeMs
            if let v = check(node, Self.number(value, in: Int(range.lowerBound)...Int(range.upperBound), unit: " ms")) {
                configuration.healthyIntervalMs = UInt32(v)
                healthyIntervalPlace = place
            }
        case "max_healthy_checks_per_second":
            let range = Configuration.healthyChecksPerSecondRange
            if let v = check(node, Self.number(value, in: Int(range.lowerBound)...Int(range.upperBound), unit: "")) {
                configuration.healthyChecksPerSecondMax = UInt32(v)
            }
        case "max_paths":
            if let v = check(node, Self.number(value, in: Configuration.capacityRange, unit: "")) {
                configuration.capacities.pathsMax = v
                capacityPlaces[node.keyword] = place
            }
        case "max_maps":
            if let v = check(node, Self.number(value, in: Configuration.capacityRange, unit: "")) {
                configuration.capacities.mapsMax = v
            }
        case "max_paths_per_map":
            if let v = check(node, Self.number(value, in: Configuration.capacityRange, unit: "")) {
                configuration.capacities.pathsPerMapMax = v
                capacityPlaces[node.keyword] = place
            }
        case "ring_slots":
            if let v = check(node, Self.number(value, in: Configuration.ringSlotsRange, unit: "")) {
                configuration.capacities.ringSlots = v
            }
        default:
            preconditionFailure("\(node.keyword) is listed in globalOptions without a reader")
        }
    }

    // MARK: Checks that involve several options

    /// multipath-tools' rule: max defaults to 4 x polling; with only max given, polling is max / 4;
    /// polling is never above max.
    private mutating func derivePollingIntervals() {
        configuration.pollingWritten = pollingWritten != nil || maxPollingWritten != nil
        if configuration.pollingWritten, let place = healthyIntervalPlace {
            warnings.append(ConfigDiagnostic(
                file: place.file, line: place.line,
                message: "healthy_interval_ms: not used, since polling_interval or max_polling_interval is written (healthy paths back off from polling_interval as in multipath-tools)"
            ))
        }
        switch (pollingWritten, maxPollingWritten) {
        case (nil, nil):
            configuration.pollingIntervalSeconds = Configuration.pollingIntervalDefaultSeconds
            configuration.maxPollingIntervalSeconds = 4 * Configuration.pollingIntervalDefaultSeconds
        case (let p?, nil):
            configuration.pollingIntervalSeconds = p.seconds
            configuration.maxPollingIntervalSeconds = 4 * p.seconds
        case (nil, let m?):
            configuration.pollingIntervalSeconds = max(m.seconds / 4, 1)
            configuration.maxPollingIntervalSeconds = m.seconds
        case (let p?, let m?):
            configuration.maxPollingIntervalSeconds = m.seconds
            if p.seconds > m.seconds {
                warnings.append(ConfigDiagnostic(
                    file: p.place.file, line: p.place.line,
                    message: "polling_interval: \(p.seconds) is more than max_polling_interval \(m.seconds); using \(m.seconds)"
                ))
                configuration.pollingIntervalSeconds = m.seconds
            } else {
                configuration.pollingIntervalSeconds = p.seconds
            }
        }
    }

    private mutating func checkCapacities() {
        let c = configuration.capacities
        if c.pathsPerMapMax > c.pathsMax {
            let place = capacityPlaces["max_paths_per_map"] ?? capacityPlaces["max_paths"]!
            errors.append(ConfigDiagnostic(
                file: place.file, line: place.line,
                message: "max_paths_per_map: \(c.pathsPerMapMax) is more than max_paths (\(c.pathsMax))"
            ))
        }
    }

    /// Two maps cannot share a name.
    private mutating func checkAliases() {
        var owners: [String: (wwid: String, place: ConfigPlace)] = [:]
        for (entry, place) in zip(configuration.multipaths, multipathPlaces) {
            guard let alias = entry.alias else { continue }
            if let owner = owners[alias], owner.wwid != entry.wwid {
                errors.append(ConfigDiagnostic(
                    file: place.file, line: place.line,
                    message: "alias \"\(alias)\" of wwid \(entry.wwid) is already used by wwid \(owner.wwid) (\(owner.place.file):\(owner.place.line))"
                ))
            } else if owners[alias] == nil {
                owners[alias] = (entry.wwid, place)
            }
        }
    }

    // MARK: Diagnostics

    private mutating func error(_ line: Int, _ message: String) {
        errors.append(ConfigDiagnostic(file: file, line: line, message: message))
    }

    private mutating func warn(_ line: Int, _ message: String) {
        warnings.append(ConfigDiagnostic(file: file, line: line, message: message))
    }

    /// The one value of a statement, or an error naming the option.
    private mutating func singleValue(_ node: ConfigNode) -> String? {
        switch node.values.count {
        case 0:
            error(node.line, "\(node.keyword): value missing")
            return nil
        case 1:
            return node.values[0]
        default:
            error(node.line, "\(node.keyword): expected one value, found \(node.values.count) words (quote a value that contains blanks)")
            return nil
        }
    }

    private mutating func check<T>(_ node: ConfigNode, _ result: Result<T, ConfigValueProblem>) -> T? {
        switch result {
        case .success(let v): return v
        case .failure(let p):
            error(node.line, "\(node.keyword): \(p.text)")
            return nil
        }
    }

    /// A section where an option was expected: an error for a known option, else a warning.
    private mutating func optionExpected(_ node: ConfigNode, in section: String) {
        let known = Self.globalOptions.contains(node.keyword) || Self.mapOptions.contains(node.keyword)
            || ["vendor", "product", "wwid", "alias", "devnode", "property"].contains(node.keyword)
        if known {
            error(node.line, "\(node.keyword): expected a value, found a section")
        } else if node.keyword == "protocol" {
            warn(node.line, "\"protocol\" subsection is only valid in a devices entry and in overrides, ignored in \(section)")
        } else {
            warn(node.line, "unknown section \"\(node.keyword)\" in \(section), ignored")
        }
    }

    /// Whether `node` is one of the `name { }` entries of the list section `list` (`devices`,
    /// `multipaths`). Anything else is reported here and skipped: an option is an error, another
    /// section a warning.
    private mutating func isEntry(_ node: ConfigNode, named name: String, in list: String) -> Bool {
        if !node.isSection {
            sectionExpected(node, name: name, in: list)
            return false
        }
        if node.keyword != name {
            warn(node.line, "unknown section \"\(node.keyword)\" in \(list), ignored")
            return false
        }
        return true
    }

    /// An option where a subsection was expected.
    private mutating func sectionExpected(_ node: ConfigNode, name: String, in section: String) {
        if node.keyword == name {
            error(node.line, "\(name): must open a section (\"\(name) {\" on the same line)")
        } else {
            error(node.line, "\(section): expected \"\(name) {\", found option \"\(node.keyword)\"")
        }
    }

    /// Compiles a pattern; `"*"`, a common mistake, means `".*"` as in multipath-tools.
    private mutating func regex(_ node: ConfigNode, _ value: String) -> PosixRegex? {
        var pattern = value
        if pattern == "*" {
            warn(node.line, "\(node.keyword): \"*\" is not a valid regular expression; using \".*\"")
            pattern = ".*"
        }
        do {
            return try PosixRegex(pattern)
        } catch {
            self.error(node.line, "\(node.keyword): \"\(value)\" is not a valid regular expression: \(error)")
            return nil
        }
    }

    private static func sortByLine(_ list: inout [ConfigDiagnostic], from start: Int) {
        let tail = list[start...].enumerated().sorted { a, b in
            a.element.line != b.element.line ? a.element.line < b.element.line : a.offset < b.offset
        }
        list.replaceSubrange(start..., with: tail.map(\.element))
    }

    // MARK: Values

    /// Decimal digits only (no sign, no blanks), at most `UInt32.max`.
    static func wholeNumber(_ text: String) -> UInt32? {
        guard !text.isEmpty, text.utf8.count <= 10 else { return nil }
        var v: UInt64 = 0
        for b in text.utf8 {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            v = v * 10 + UInt64(b - UInt8(ascii: "0"))
        }
        return v <= UInt64(UInt32.max) ? UInt32(v) : nil
    }

    /// Seconds (0 up to 2^31 - 1) or the option's word (`off`, `infinity`).
    static func transportTimeout(_ text: String, word: String) -> Result<TransportTimeout, ConfigValueProblem> {
        if text == word { return .success(word == "off" ? .off : .infinity) }
        guard let v = wholeNumber(text) else { return .failure(.init("\"\(text)\" is neither a whole number of seconds nor \(word)")) }
        guard v <= TransportTimeout.devLossMaxSeconds else {
            return .failure(.init("\(v) is out of range (0...\(TransportTimeout.devLossMaxSeconds) seconds, or \(word))"))
        }
        return .success(.seconds(v))
    }

    static func seconds(_ text: String, min: UInt32) -> Result<UInt32, ConfigValueProblem> {
        guard let v = wholeNumber(text) else { return .failure(.init("\"\(text)\" is not a whole number of seconds")) }
        guard v >= min, v <= Configuration.secondsMax else {
            return .failure(.init("\(v) is out of range (\(min)...\(Configuration.secondsMax) seconds)"))
        }
        return .success(v)
    }

    static func number(_ text: String, in range: ClosedRange<Int>, unit: String) -> Result<Int, ConfigValueProblem> {
        guard let v = wholeNumber(text) else { return .failure(.init("\"\(text)\" is not a whole number")) }
        guard range.contains(Int(v)) else {
            return .failure(.init("\(v) is out of range (\(range.lowerBound)...\(range.upperBound)\(unit))"))
        }
        return .success(Int(v))
    }

    /// A whole number with an optional leading minus sign, within `range`.
    static func signedNumber(_ text: String, in range: ClosedRange<Int>, unit: String) -> Result<Int, ConfigValueProblem> {
        let negative = text.hasPrefix("-")
        guard let magnitude = wholeNumber(negative ? String(text.dropFirst()) : text) else {
            return .failure(.init("\"\(text)\" is not a whole number"))
        }
        let v = negative ? -Int(magnitude) : Int(magnitude)
        guard range.contains(v) else { return .failure(.init("\(v) is out of range (\(range.lowerBound)...\(range.upperBound)\(unit))")) }
        return .success(v)
    }

    /// `no` or 0 turns the option off.
    static func countOrNo(_ text: String) -> Result<UInt32, ConfigValueProblem> {
        if text == "no" { return .success(0) }
        guard let v = wholeNumber(text) else { return .failure(.init("\"\(text)\" must be no or a whole number")) }
        return .success(v)
    }

    static func secondsOrNo(_ text: String) -> Result<UInt32, ConfigValueProblem> {
        if text == "no" { return .success(0) }
        return seconds(text, min: 0)
    }

    static func reservationKey(_ text: String) -> Result<ReservationKeySource, ConfigValueProblem> {
        guard let source = ReservationKeySource(parsing: text) else {
            return .failure(.init("\"\(text)\" is neither \"file\" nor a non-zero key of up to 16 hex digits (0x optional, \":aptpl\" after it optional)"))
        }
        return .success(source)
    }

    static func yesNo(_ text: String) -> Result<Bool, ConfigValueProblem> {
        switch text {
        case "yes": return .success(true)
        case "no": return .success(false)
        default: return .failure(.init("\"\(text)\" must be yes or no"))
        }
    }

    static func grouping(_ text: String) -> Result<GroupingPolicy, ConfigValueProblem> {
        if let g = GroupingPolicy(configWord: text) { return .success(g) }
        let names = GroupingPolicy.allCases.map(\.description).joined(separator: ", ")
        return .failure(.init("\"\(text)\" is not a grouping policy (\(names))"))
    }

    static func checker(_ text: String) -> Result<MapProfile.Checker, ConfigValueProblem> {
        if let c = MapProfile.Checker(rawValue: text) { return .success(c) }
        let names = MapProfile.Checker.allCases.map(\.rawValue).joined(separator: ", ")
        return .failure(.init("\"\(text)\" is not a supported checker (\(names))"))
    }

    static func prio(_ text: String) -> Result<MapProfile.Prioritizer, ConfigValueProblem> {
        if let p = MapProfile.Prioritizer(rawValue: text) { return .success(p) }
        let names = MapProfile.Prioritizer.allCases.map(\.rawValue).joined(separator: ", ")
        return .failure(.init("\"\(text)\" is not a supported prioritizer (\(names))"))
    }

    static func findMultipaths(_ text: String) -> Result<Configuration.FindMultipaths, ConfigValueProblem> {
        if let f = Configuration.FindMultipaths(configWord: text) { return .success(f) }
        return .failure(.init("\"\(text)\" must be strict, off, no, on, yes, greedy or smart"))
    }

    static func failback(_ text: String) -> Result<Failback, ConfigValueProblem> {
        switch text {
        case "manual": return .success(.manual)
        case "immediate": return .success(.immediate)
        case "followover": return .success(.followover)
        default:
            guard let v = wholeNumber(text) else {
                return .failure(.init("\"\(text)\" must be manual, immediate, followover or a number of seconds"))
            }
            guard v >= 1, v <= Configuration.secondsMax else {
                return .failure(.init("\(v) is out of range (1...\(Configuration.secondsMax) seconds)"))
            }
            return .success(.deferred(seconds: v))
        }
    }

    /// `fail`, `queue` or a retry count; `0` means fail, as in multipath-tools.
    static func noPathRetry(_ text: String) -> Result<NoPathRetry, ConfigValueProblem> {
        switch text {
        case "fail", "0": return .success(.fail)
        case "queue": return .success(.queue)
        default:
            guard let v = wholeNumber(text) else {
                return .failure(.init("\"\(text)\" must be fail, queue or a number of retries"))
            }
            return .success(.retries(v))
        }
    }

    static let selectorNames: Set<String> = ["round-robin", "queue-length", "service-time", "historical-service-time"]

    /// `<name> <#args> <args...>`, as the kernel table takes it.
    static func selector(_ text: String) -> Result<String, ConfigValueProblem> {
        let words = Configuration.words(text)
        guard let name = words.first, selectorNames.contains(String(name)) else {
            return .failure(.init("\"\(text)\" does not name a path selector (round-robin, queue-length, service-time, historical-service-time)"))
        }
        guard words.count >= 2 else {
            return .failure(.init("\"\(text)\" needs its argument count, e.g. \"\(name) 0\""))
        }
        guard let count = wholeNumber(String(words[1])) else {
            return .failure(.init("\"\(text)\": the argument count \"\(words[1])\" is not a number"))
        }
        guard Int(count) == words.count - 2 else {
            return .failure(.init("\"\(text)\" announces \(count) arguments but has \(words.count - 2)"))
        }
        return .success(words.joined(separator: " "))
    }

    /// `<count> <words...>` where the count is the number of words (features, hardware_handler).
    static func countedWords(_ text: String, what: String) -> Result<String, ConfigValueProblem> {
        let words = Configuration.words(text)
        guard let first = words.first else { return .failure(.init("empty; write \"0\" for no \(what)")) }
        guard let count = wholeNumber(String(first)) else {
            return .failure(.init("\"\(text)\" must start with the number of words that follow, e.g. \"0\""))
        }
        guard Int(count) == words.count - 1 else {
            return .failure(.init("\"\(text)\" announces \(count) words but has \(words.count - 1)"))
        }
        return .success(words.joined(separator: " "))
    }

    /// A device-mapper name: not empty, no `/`, shorter than `DM_NAME_LEN` (128).
    static func alias(_ text: String) -> Result<String, ConfigValueProblem> {
        guard !text.isEmpty else { return .failure(.init("empty value")) }
        guard !text.contains("/") else { return .failure(.init("\"\(text)\" contains \"/\", which a map name cannot")) }
        guard text.utf8.count < 128 else { return .failure(.init("\"\(text)\" is longer than 127 bytes")) }
        return .success(text)
    }

    static func aliasPrefix(_ text: String) -> Result<String, ConfigValueProblem> {
        guard !text.isEmpty else { return .failure(.init("empty value")) }
        guard !text.contains("/") else { return .failure(.init("\"\(text)\" contains \"/\", which a map name cannot")) }
        guard text.utf8.count < 100 else { return .failure(.init("\"\(text)\" is longer than 99 bytes")) }
        return .success(text)
    }
}
