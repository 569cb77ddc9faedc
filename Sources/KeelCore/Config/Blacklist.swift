// Blacklist and blacklist_exceptions: which devices Keel leaves alone, and why.

/// The entries of a `blacklist` or `blacklist_exceptions` section.
public struct Blacklist: Sendable, Equatable {
    /// `devnode`: matched against the kernel name, e.g. "sda".
    public var devnodes: [PosixRegex]
    /// `wwid`: matched against the device's wwid.
    public var wwids: [PosixRegex]
    /// `property`: matched against the names of the device's udev properties.
    public var properties: [PosixRegex]
    /// `device { vendor product }`.
    public var devices: [DeviceRule]
    /// `protocol`: matched against the path's transport as `%P` prints it, e.g. "scsi:fcp",
    /// "scsi:unspec" (a common way to leave local disks alone).
    public var protocols: [PosixRegex]

    /// An empty section.
    public init(devnodes: [PosixRegex] = [], wwids: [PosixRegex] = [], properties: [PosixRegex] = [], devices: [DeviceRule] = [],
                protocols: [PosixRegex] = []) {
        self.devnodes = devnodes
        self.wwids = wwids
        self.properties = properties
        self.devices = devices
        self.protocols = protocols
    }

    /// Whether the section has no entry at all.
    public var isEmpty: Bool { devnodes.isEmpty && wwids.isEmpty && properties.isEmpty && devices.isEmpty && protocols.isEmpty }

    /// How many entries it has.
    public var count: Int { devnodes.count + wwids.count + properties.count + devices.count + protocols.count }

    /// A `device` entry: it matches when every pattern it has matches (a missing one matches all).
    public struct DeviceRule: Sendable, Equatable {
        /// Matched against the SCSI vendor; nil matches every vendor.
        public var vendor: PosixRegex?
        /// Matched against the SCSI product; nil matches every product.
        public var product: PosixRegex?

        /// A rule with the patterns given.
        public init(vendor: PosixRegex?, product: PosixRegex?) {
            self.vendor = vendor
            self.product = product
        }

        /// Whether the rule applies to a device with this vendor and product.
        public func matches(vendor v: String, product p: String) -> Bool {
            (vendor?.matches(v) ?? true) && (product?.matches(p) ?? true)
        }
    }
}

/// What the blacklist looks at to judge one path device.
public struct DeviceIdentity: Sendable, Equatable {
    /// Kernel name, e.g. "sda".
    public var devnode: String
    /// The wwid the map would get (empty when not yet known).
    public var wwid: String
    /// SCSI vendor (INQUIRY), e.g. "LIO-ORG".
    public var vendor: String
    /// SCSI product, e.g. "disk0".
    public var product: String
    /// Names of the device's udev properties, e.g. "ID_WWN", "SCSI_IDENT_LUN_NAA_REG".
    public var properties: [String]
    /// Its transport as multipathd names it ("scsi:fcp", "scsi:iscsi", "scsi:unspec", ...); nil
    /// when not known yet, which `protocol` entries then do not judge.
    public var protocolName: String?

    /// A device as discovery sees it.
    public init(devnode: String, wwid: String, vendor: String, product: String, properties: [String] = [], protocolName: String? = nil) {
        self.devnode = devnode
        self.wwid = wwid
        self.vendor = vendor
        self.product = product
        self.properties = properties
        self.protocolName = protocolName
    }
}

/// The entry that decided a blacklist verdict.
public enum BlacklistRule: Sendable, Equatable, CustomStringConvertible {
    case devnode(String)
    case wwid(String)
    case property(String)
    case device(vendor: String?, product: String?)
    case `protocol`(String)

    /// The rule as multipath.conf writes it, e.g. `devnode "^sd[a-z]"`.
    public var description: String {
        switch self {
        case .devnode(let p): return "devnode \"\(p)\""
        case .wwid(let p): return "wwid \"\(p)\""
        case .property(let p): return "property \"\(p)\""
        case .protocol(let p): return "protocol \"\(p)\""
        case .device(let v, let p):
            var text = "device"
            if let v { text += " vendor \"\(v)\"" }
            if let p { text += " product \"\(p)\"" }
            return text
        }
    }
}

/// The blacklist's verdict on one device, with the rule that decided it (for a log line).
public enum BlacklistVerdict: Sendable, Equatable, CustomStringConvertible {
    /// No rule applies.
    case allowed
    /// A `blacklist_exceptions` entry matched and no other kind of rule blacklists the device.
    case excepted(BlacklistRule)
    /// A `blacklist` entry matched and no exception of the same kind did.
    case blacklisted(BlacklistRule)
    /// `blacklist_exceptions` lists required properties and the device has none of them.
    case missingRequiredProperty

    /// Whether Keel must leave the device alone.
    public var isBlacklisted: Bool {
        switch self {
        case .allowed, .excepted: return false
        case .blacklisted, .missingRequiredProperty: return true
        }
    }

    /// The verdict for a log line, e.g. `blacklisted by devnode "^sd"`.
    public var description: String {
        switch self {
        case .allowed: return "not blacklisted"
        case .excepted(let r): return "excepted from the blacklist by \(r)"
        case .blacklisted(let r): return "blacklisted by \(r)"
        case .missingRequiredProperty: return "blacklisted: no udev property matches blacklist_exceptions"
        }
    }
}

extension Configuration {
    /// Judges one device, as multipath-tools does: kind by kind (devnode, device, protocol,
    /// property, wwid),
    /// an exception of a kind cancels the blacklist entries of that same kind; the first kind that
    /// still blacklists decides. Property exceptions are required properties: when there are any,
    /// a device that has none of them is blacklisted.
    public func isBlacklisted(_ device: DeviceIdentity) -> BlacklistVerdict {
        isBlacklisted(device, deviceVerdict: deviceVerdict(vendor: device.vendor, product: device.product))
    }

    /// `isBlacklisted` with the verdict of the `device` sections (`deviceVerdict`) already
    /// known: it depends on vendor and product only, and paths to one array share them, so a
    /// batch of paths judges each pair once (it tries every entry of the hardware table).
    public func isBlacklisted(_ device: DeviceIdentity, deviceVerdict: BlacklistVerdict) -> BlacklistVerdict {
        let verdicts = [
            Self.judge(device.devnode, blacklist.devnodes, blacklistExceptions.devnodes, BlacklistRule.devnode),
            deviceVerdict,
            device.protocolName.map { Self.judge($0, blacklist.protocols, blacklistExceptions.protocols, BlacklistRule.protocol) } ?? .allowed,
            judgeProperties(device.properties),
            Self.judge(device.wwid, blacklist.wwids, blacklistExceptions.wwids, BlacklistRule.wwid),
        ]
        if let blocked = verdicts.first(where: { $0.isBlacklisted }) { return blocked }
        return verdicts.first(where: { $0 != .allowed }) ?? .allowed
    }

    private static func judge(
        _ value: String, _ blocked: [PosixRegex], _ excepted: [PosixRegex], _ rule: (String) -> BlacklistRule
    ) -> BlacklistVerdict {
        if let e = excepted.first(where: { $0.matches(value) }) { return .excepted(rule(e.pattern)) }
        if let b = blocked.first(where: { $0.matches(value) }) { return .blacklisted(rule(b.pattern)) }
        return .allowed
    }

    /// The verdict of the `device` sections of blacklist and exceptions, and of the
    /// `product_blacklist` of the devices entries and the hardware table.
    public func deviceVerdict(vendor: String, product: String) -> BlacklistVerdict {
        let device = (vendor: vendor, product: product)
        func rule(_ r: Blacklist.DeviceRule) -> BlacklistRule { .device(vendor: r.vendor?.pattern, product: r.product?.pattern) }
        if let e = blacklistExceptions.devices.first(where: { $0.matches(vendor: device.vendor, product: device.product) }) {
            return .excepted(rule(e))
        }
        if let b = blacklist.devices.first(where: { $0.matches(vendor: device.vendor, product: device.product) }) {
            return .blacklisted(rule(b))
        }
        // `product_blacklist` of the devices entries and the hardware table (management LUNs).
        var entries = devices
        if useHardwareTable { entries += Self.hardwareTable }
        for entry in entries.reversed() where entry.vendor.matches(device.vendor) {
            if let blocked = entry.productBlacklist, blocked.matches(device.product) {
                return .blacklisted(.device(vendor: entry.vendor.pattern, product: blocked.pattern))
            }
        }
        return .allowed
    }

    private func judgeProperties(_ names: [String]) -> BlacklistVerdict {
        for e in blacklistExceptions.properties where names.contains(where: { e.matches($0) }) {
            return .excepted(.property(e.pattern))
        }
        for b in blacklist.properties where names.contains(where: { b.matches($0) }) {
            return .blacklisted(.property(b.pattern))
        }
        return blacklistExceptions.properties.isEmpty ? .allowed : .missingRequiredProperty
    }
}
