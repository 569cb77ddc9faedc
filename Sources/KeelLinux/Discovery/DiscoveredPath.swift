// The values discovery produces for one SCSI path: address, state, identity, ALUA, grouping keys.
import KeelCore

/// A SCSI device address, `host:channel:target:lun` (the name of the `scsi_device` in sysfs).
public struct SCSIAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: UInt32
    public var channel: UInt32
    public var target: UInt32
    public var lun: UInt64

    public init(host: UInt32, channel: UInt32, target: UInt32, lun: UInt64) {
        self.host = host
        self.channel = channel
        self.target = target
        self.lun = lun
    }

    /// Parses `H:C:T:L`; nil for anything else.
    public init?(parsing text: some StringProtocol) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 4,
              let h = UInt32(parts[0]), let c = UInt32(parts[1]), let t = UInt32(parts[2]), let l = UInt64(parts[3])
        else { return nil }
        self.init(host: h, channel: c, target: t, lun: l)
    }

    public var description: String { "\(host):\(channel):\(target):\(lun)" }
}

/// The SCSI midlayer's device state (`device/state`).
public enum SCSIDeviceState: Hashable, Sendable, CustomStringConvertible {
    case running
    case offline
    case blocked
    case transportOffline
    case created
    case createdBlocked
    case quiesce
    case cancel
    case deleted
    /// A state word this version does not know.
    case other(String)

    /// Maps the sysfs word (`running`, `offline`, `transport-offline`, ...).
    public init(sysfs word: String) {
        switch word {
        case "running": self = .running
        case "offline": self = .offline
        case "blocked": self = .blocked
        case "transport-offline": self = .transportOffline
        case "created": self = .created
        case "created-blocked": self = .createdBlocked
        case "quiesce": self = .quiesce
        case "cancel": self = .cancel
        case "deleted": self = .deleted
        // An NVMe controller's `state`: connected and usable is running; gone is deleted.
        case "live": self = .running
        case "deleting", "deleting (no IO)", "dead": self = .deleted
        default: self = .other(word)
        }
    }

    /// The sysfs word.
    public var description: String {
        switch self {
        case .running: return "running"
        case .offline: return "offline"
        case .blocked: return "blocked"
        case .transportOffline: return "transport-offline"
        case .created: return "created"
        case .createdBlocked: return "created-blocked"
        case .quiesce: return "quiesce"
        case .cancel: return "cancel"
        case .deleted: return "deleted"
        case .other(let w): return w
        }
    }
}

/// The ALUA asymmetric access state the kernel's ALUA device handler reports (`device/access_state`).
public enum ALUAAccessState: String, Hashable, Sendable, CaseIterable {
    case activeOptimized = "active/optimized"
    case activeNonOptimized = "active/non-optimized"
    case standby = "standby"
    case unavailable = "unavailable"
    case lbaDependent = "lba-dependent"
    case offline = "offline"
    case transitioning = "transitioning"
    case unknown = "unknown"

    /// multipath-tools' alua prioritizer value for the state (50/10/1/0).
    public var priority: Int32 {
        switch self {
        case .activeOptimized: return 50
        case .activeNonOptimized: return 10
        case .lbaDependent: return 5
        case .standby: return 1
        case .unavailable, .offline, .transitioning, .unknown: return 0
        }
    }
}

/// ALUA facts of one path, from sysfs and VPD page 0x83. Each is nil when not reported.
public struct ALUAInfo: Hashable, Sendable {
    /// `device/access_state` (present when the ALUA device handler is attached).
    public var accessState: ALUAAccessState?
    /// `device/preferred_path` (the PREF bit of the port group).
    public var preferred: Bool?
    /// Target port group (VPD 0x83 designator type 5).
    public var targetPortGroup: UInt16?
    /// Relative target port (VPD 0x83 designator type 4).
    public var relativeTargetPort: UInt16?
    /// TPGS of the standard INQUIRY data (byte 5, bits 4-5): 0 no ALUA, 1 implicit, 2 explicit,
    /// 3 both (`device/inquiry`).
    public var tpgs: UInt8?
    /// The device handler the kernel attached (`device/dh_state`, e.g. "alua"); nil when none
    /// ("detached") or not reported.
    public var attachedHandler: String?

    public init(accessState: ALUAAccessState? = nil, preferred: Bool? = nil, targetPortGroup: UInt16? = nil, relativeTargetPort: UInt16? = nil) {
        self.accessState = accessState
        self.preferred = preferred
        self.targetPortGroup = targetPortGroup
        self.relativeTargetPort = relativeTargetPort
    }
}

/// The transport that carries a SCSI path, found the way multipath-tools finds it.
public enum SCSITransport: String, Hashable, Sendable {
    case sas
    case usb
    case fibreChannel = "fc"
    case iscsi
    case ata
    case unspecified
    /// An NVMe namespace through one controller, by the controller's `transport`.
    case nvmePCIe = "nvme:pcie"
    case nvmeTCP = "nvme:tcp"
    case nvmeRDMA = "nvme:rdma"
    case nvmeFC = "nvme:fc"
    case nvmeLoop = "nvme:loop"
    case nvmeUnspecified = "nvme:unspec"

    /// The NVMe transport named by a controller's `transport` attribute.
    public init(nvmeTransport word: String) {
        switch word {
        case "pcie": self = .nvmePCIe
        case "tcp": self = .nvmeTCP
        case "rdma": self = .nvmeRDMA
        case "fc": self = .nvmeFC
        case "loop": self = .nvmeLoop
        default: self = .nvmeUnspecified
        }
    }

    /// Whether the path is an NVMe namespace (no SCSI generic node, no ALUA).
    public var isNVMe: Bool { rawValue.hasPrefix("nvme:") }

    /// multipathd's name for it (`%P`, blacklist `protocol`).
    public var protocolName: String {
        switch self {
        case .nvmePCIe, .nvmeTCP, .nvmeRDMA, .nvmeFC, .nvmeLoop, .nvmeUnspecified: return rawValue
        case .sas: return "scsi:sas"
        case .usb: return "scsi:usb"
        case .fibreChannel: return "scsi:fcp"
        case .iscsi: return "scsi:iscsi"
        case .ata: return "scsi:ata"
        case .unspecified: return "scsi:unspec"
        }
    }
}

/// Where a path's WWID came from, best first. Only `udev` and `vpdPage83` are what multipathd
/// itself uses for SCSI; `kernelWWID` and `serial` are Keel's last resorts and are reported so a
/// caller can refuse them.
public enum WWIDSource: String, Hashable, Sendable {
    /// The udev database property named by `uid_attribute` (default `ID_SERIAL`).
    case udev
    /// Parsed from sysfs `device/vpd_pg83` with multipath-tools' rules.
    case vpdPage83
    /// The kernel's `device/wwid` attribute, converted to multipath-tools' format.
    case kernelWWID
    /// The unit serial number (VPD 0x80); not guaranteed unique across vendors.
    case serial
}

/// Where the target node name came from.
public enum NodeNameSource: String, Hashable, Sendable {
    /// The transport's own name: FC WWNN, iSCSI target name, SAS address, USB or ATA port.
    case transport
    /// The VPD 0x83 target device designator (transport unknown).
    case vpdTargetDevice
    /// Nothing found: the node name is empty (as multipath-tools leaves it).
    case none
}

/// Everything discovery learns about one SCSI disk path. Control-plane value: Strings allowed.
public struct DiscoveredPath: Hashable, Sendable {
    /// Kernel name, e.g. "sda".
    public var kernelName: String
    /// Block device number (`dev`).
    public var device: DevNo
    /// The `scsi_device` address (the `device` link's last component).
    public var address: SCSIAddress
    /// `device/state`.
    public var deviceState: SCSIDeviceState
    /// `device/vendor`, `device/model`, `device/rev`, trimmed; empty when absent.
    public var vendor: String
    public var model: String
    public var revision: String
    /// `size`, in 512-byte sectors.
    public var sizeSectors: UInt64
    /// The WWID (multipath-tools' format), or nil when no source gave one.
    public var wwid: String?
    public var wwidSource: WWIDSource?
    /// The WWID from VPD page 0x83 alone, whichever source won (for comparison with udev's).
    public var vpdWWID: String?
    /// Unit serial number (VPD 0x80), for group_by_serial.
    public var serial: String?
    public var alua: ALUAInfo
    public var transport: SCSITransport
    /// Target node name for group_by_node_name; empty when unknown.
    public var targetNodeName: String
    public var nodeNameSource: NodeNameSource
    /// The I_T nexus `H:C:T`: paths with the same key share a host port and a target port, so a
    /// failure of one makes its siblings worth probing at once.
    public var portKey: String
    /// The udev database entry (`E:` lines), or nil when udev has none (normal without udevd).
    public var udevProperties: [String: String]?
    /// The SCSI generic node's name (`device/scsi_generic/sgN`), the TUR checker's device; nil
    /// when the sg driver is not loaded.
    public var genericName: String?
    /// The transport object whose timeouts govern the path: the FC remote port (`rport-H:B-R`)
    /// or the iSCSI session (`sessionN`); "" for other transports.
    public var transportObject: String = ""

    public init(kernelName: String, device: DevNo, address: SCSIAddress, deviceState: SCSIDeviceState,
                vendor: String = "", model: String = "", revision: String = "", sizeSectors: UInt64 = 0,
                wwid: String? = nil, wwidSource: WWIDSource? = nil, vpdWWID: String? = nil, serial: String? = nil,
                alua: ALUAInfo = ALUAInfo(), transport: SCSITransport = .unspecified,
                targetNodeName: String = "", nodeNameSource: NodeNameSource = .none,
                portKey: String = "", udevProperties: [String: String]? = nil) {
        self.kernelName = kernelName
        self.device = device
        self.address = address
        self.deviceState = deviceState
        self.vendor = vendor
        self.model = model
        self.revision = revision
        self.sizeSectors = sizeSectors
        self.wwid = wwid
        self.wwidSource = wwidSource
        self.vpdWWID = vpdWWID
        self.serial = serial
        self.alua = alua
        self.transport = transport
        self.targetNodeName = targetNodeName
        self.nodeNameSource = nodeNameSource
        self.portKey = portKey
        self.udevProperties = udevProperties
    }
}
