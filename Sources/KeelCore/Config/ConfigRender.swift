// Printing the effective configuration in multipath.conf syntax (`show config`).

extension Configuration {
    /// The effective configuration as multipath.conf text: `defaults` with every value in force
    /// (built-in ones included), then the other sections as read. Loading the text gives back an
    /// equal configuration.
    public func render() -> String {
        var out = ConfigWriter()
        out.open("defaults")
        if pollingWritten {
            out.option("polling_interval", "\(pollingIntervalSeconds)")
            out.option("max_polling_interval", "\(maxPollingIntervalSeconds)")
        } else {
            out.comment("polling_interval \(pollingIntervalSeconds)  (built-in; healthy paths use healthy_interval_ms)")
        }
        if let t = checkerTimeoutSeconds { out.option("checker_timeout", "\(t)") }
        out.option("find_multipaths", findMultipaths.rawValue)
        out.option("find_multipaths_timeout", "\(findMultipathsTimeoutSeconds)")
        out.option("detect_prio", detectPrio ? "yes" : "no")
        out.option("hardware_table", useHardwareTable ? "yes" : "no")
        if let q = queueWithoutDaemon { out.option("queue_without_daemon", q ? "yes" : "no") }
        out.option("retain_attached_hw_handler", retainAttachedHardwareHandler ? "yes" : "no")
        out.quoted("bindings_file", bindingsFile)
        out.quoted("wwids_file", wwidsFile)
        out.quoted("prkeys_file", prkeysFile)
        out.option("marginal_pathgroups", marginalPathGroups ? "on" : "off")
        out.quoted("config_dir", configDirectory)
        if !uidAttrs.isEmpty { out.quoted("uid_attrs", uidAttrs.map { $0.prefix + ":" + $0.attribute }.joined(separator: " ")) }
        out.settings(writtenDefaults)
        // Built-in values nobody wrote, as comments: writing them would switch off detect_prio
        // and retain_attached_hw_handler, which apply only to values nobody set.
        var builtIns = ConfigWriter()
        builtIns.settings(MapSettings().overlaid(by: defaults).notSet(in: writtenDefaults))
        for line in builtIns.text.split(separator: "\n") { out.comment(String(line) + "  (built-in)") }
        out.option("fast_probe_interval_ms", "\(fastProbeIntervalMs)")
        out.option("healthy_interval_ms", "\(healthyIntervalMs)")
        out.option("max_healthy_checks_per_second", "\(healthyChecksPerSecondMax)")
        out.option("max_paths", "\(capacities.pathsMax)")
        out.option("max_maps", "\(capacities.mapsMax)")
        out.option("max_paths_per_map", "\(capacities.pathsPerMapMax)")
        out.option("ring_slots", "\(capacities.ringSlots)")
        out.close()

        out.blacklist("blacklist", blacklist)
        out.blacklist("blacklist_exceptions", blacklistExceptions)

        if !devices.isEmpty {
            out.open("devices")
            for d in devices {
                out.open("device")
                out.quoted("vendor", d.vendor.pattern)
                out.quoted("product", d.product.pattern)
                if let revision = d.revision { out.quoted("revision", revision.pattern) }
                if let blocked = d.productBlacklist { out.quoted("product_blacklist", blocked.pattern) }
                out.settings(d.settings)
                out.close()
            }
            out.close()
        }

        if overrides != MapSettings() {
            out.open("overrides")
            out.settings(overrides)
            out.close()
        }

        if !multipaths.isEmpty {
            out.open("multipaths")
            for m in multipaths {
                out.open("multipath")
                out.quoted("wwid", m.wwid)
                if let a = m.alias { out.quoted("alias", a) }
                out.settings(m.settings)
                out.close()
            }
            out.close()
        }
        return out.text
    }
}

/// Builds indented multipath.conf text.
struct ConfigWriter {
    private(set) var text = ""
    private var depth = 0

    mutating func open(_ name: String) {
        line(name + " {")
        depth += 1
    }

    mutating func close() {
        depth -= 1
        line("}")
    }

    mutating func comment(_ text: String) {
        line("# " + text)
    }

    mutating func option(_ key: String, _ value: String) {
        line(key + " " + value)
    }

    /// A string value in quotes; a `"` inside is doubled, as the tokenizer reads it back.
    mutating func quoted(_ key: String, _ value: String) {
        var escaped = ""
        for c in value {
            if c == "\"" { escaped += "\"\"" } else { escaped.append(c) }
        }
        line(key + " \"" + escaped + "\"")
    }

    mutating func settings(_ s: MapSettings) {
        if let v = s.uidAttribute { quoted("uid_attribute", v) }
        if let v = s.grouping { option("path_grouping_policy", v.description) }
        if let v = s.pathSelector { quoted("path_selector", v) }
        if let v = s.pathChecker { option("path_checker", v.rawValue) }
        if let v = s.detectChecker { option("detect_checker", v ? "yes" : "no") }
        if let v = s.detectPgpolicy { option("detect_pgpolicy", v ? "yes" : "no") }
        if let v = s.detectPgpolicyUseTPG { option("detect_pgpolicy_use_tpg", v ? "yes" : "no") }
        if let v = s.reservationKey { option("reservation_key", v.description) }
        if let v = s.prio { option("prio", v.rawValue) }
        if let v = s.prioArgs { quoted("prio_args", v) }
        if let v = s.failback { option("failback", v.description) }
        if let v = s.noPathRetry { option("no_path_retry", v.description) }
        if let v = s.features { quoted("features", v) }
        if let v = s.hardwareHandler { quoted("hardware_handler", v) }
        if let v = s.sanPathErrThreshold { option("san_path_err_threshold", "\(v)") }
        if let v = s.sanPathErrForgetRate { option("san_path_err_forget_rate", "\(v)") }
        if let v = s.sanPathErrRecoveryTimeSeconds { option("san_path_err_recovery_time", "\(v)") }
        if let v = s.userFriendlyNames { option("user_friendly_names", v ? "yes" : "no") }
        if let v = s.aliasPrefix { quoted("alias_prefix", v) }
        if let v = s.fastIOFailTmo { option("fast_io_fail_tmo", v.description) }
        if let v = s.devLossTmo { option("dev_loss_tmo", v.description) }
        if let v = s.ehDeadline { option("eh_deadline", v.description) }
        if let v = s.flushOnLastDel { option("flush_on_last_del", v ? "yes" : "no") }
        if let v = s.autoResize { option("auto_resize", v.rawValue) }
        for entry in s.protocols {
            open("protocol")
            quoted("type", entry.type)
            if let v = entry.fastIOFailTmo { option("fast_io_fail_tmo", v.description) }
            if let v = entry.devLossTmo { option("dev_loss_tmo", v.description) }
            if let v = entry.ehDeadline { option("eh_deadline", v.description) }
            close()
        }
    }

    mutating func blacklist(_ name: String, _ list: Blacklist) {
        guard !list.isEmpty else { return }
        open(name)
        for r in list.devnodes { quoted("devnode", r.pattern) }
        for r in list.wwids { quoted("wwid", r.pattern) }
        for r in list.properties { quoted("property", r.pattern) }
        for r in list.protocols { quoted("protocol", r.pattern) }
        for d in list.devices {
            open("device")
            if let v = d.vendor { quoted("vendor", v.pattern) }
            if let p = d.product { quoted("product", p.pattern) }
            close()
        }
        close()
    }

    private mutating func line(_ s: String) {
        for _ in 0..<depth { text += "\t" }
        text += s
        text += "\n"
    }
}

/// Where one setting of a map comes from (`show config`'s last part).
public struct SettingOrigin: Sendable, Equatable {
    /// The option as multipath.conf spells it, e.g. `no_path_retry`.
    public var option: String
    /// Its value, as multipath.conf writes it.
    public var value: String
    /// The layer that set it: `multipaths entry`, `overrides`, `devices entry "V" "P"`,
    /// `built-in hardware table "V" "P"`, `defaults` or `built-in`.
    public var origin: String
}

extension Configuration {
    /// The map settings that apply to a map of this WWID whose paths report this vendor,
    /// product and revision, each with the layer it comes from, in multipath-tools' precedence
    /// (multipaths entries, later first; overrides; devices entries, the user's then the
    /// hardware table's, later first; defaults; built-in values). `deviceLayers` may be given
    /// when already found for the array (`settingLayers(vendor:product:revision:)`).
    public func settingOrigins(wwid: String, deviceLayers: [(settings: MapSettings, origin: String)]) -> [SettingOrigin] {
        var layers: [(settings: MapSettings, origin: String)] = []
        for entry in multipaths.reversed() where entry.wwid == wwid { layers.append((entry.settings, "multipaths entry")) }
        layers.append((overrides, "overrides"))
        layers += deviceLayers
        layers.append((writtenDefaults, "defaults"))
        layers.append((MapSettings.builtIn, "built-in"))
        var seen: Set<String> = []
        var origins: [SettingOrigin] = []
        for layer in layers {
            var writer = ConfigWriter()
            writer.settings(layer.settings)
            // One `key value` line per option; protocol subsections (indented or braced) are
            // the transport's and listed by their section.
            for line in writer.text.split(separator: "\n") where !line.hasPrefix("\t") && !line.contains("{") && !line.contains("}") {
                let parts = line.split(separator: " ", maxSplits: 1)
                let option = String(parts[0])
                guard !seen.contains(option) else { continue }
                seen.insert(option)
                origins.append(SettingOrigin(option: option, value: parts.count > 1 ? String(parts[1]) : "", origin: layer.origin))
            }
            if !layer.settings.protocols.isEmpty && !seen.contains("protocol") {
                seen.insert("protocol")
                let types = layer.settings.protocols.map(\.type).joined(separator: ", ")
                origins.append(SettingOrigin(option: "protocol", value: "{ \(types) }", origin: layer.origin))
            }
        }
        return origins
    }

    /// The `devices` entries that apply to this vendor, product and revision, later first, each
    /// with its origin: the user's, then the built-in hardware table's.
    public func settingLayers(vendor: String, product: String, revision: String?) -> [(settings: MapSettings, origin: String)] {
        var layers: [(settings: MapSettings, origin: String)] = []
        for entry in devices.reversed() where entry.matches(vendor: vendor, product: product, revision: revision) {
            layers.append((entry.settings, "devices entry \"\(entry.vendor.pattern)\" \"\(entry.product.pattern)\""))
        }
        if useHardwareTable {
            for entry in Self.hardwareTable.reversed() where entry.matches(vendor: vendor, product: product, revision: revision) {
                layers.append((entry.settings, "built-in hardware table \"\(entry.vendor.pattern)\" \"\(entry.product.pattern)\""))
            }
        }
        return layers
    }

    /// `show config`'s last part: for each map, every setting in force and where it comes from,
    /// as comments (the text stays multipath.conf). `maps` are (name, wwid, vendor, product,
    /// revision); the devices entries are matched once per array.
    public func renderOrigins(maps: [(name: String, wwid: String, vendor: String, product: String, revision: String)]) -> String {
        guard !maps.isEmpty else { return "" }
        var text = "# Where each map's settings come from (multipaths entry, overrides, devices entry, built-in\n"
            + "# hardware table, defaults, built-in; detect_prio, detect_checker and detect_pgpolicy may\n"
            + "# change prio, path_checker and path_grouping_policy from what is listed):\n"
        var layersByDevice: [String: [(settings: MapSettings, origin: String)]] = [:]
        for map in maps {
            let key = map.vendor + "\u{0}" + map.product + "\u{0}" + map.revision
            let layers = layersByDevice[key] ?? settingLayers(vendor: map.vendor, product: map.product, revision: map.revision)
            layersByDevice[key] = layers
            text += "# \(map.name) (\(map.wwid), \(map.vendor),\(map.product),\(map.revision)):\n"
            for origin in settingOrigins(wwid: map.wwid, deviceLayers: layers) {
                text += "#\t\(origin.option) \(origin.value)  (\(origin.origin))\n"
            }
        }
        return text
    }
}
