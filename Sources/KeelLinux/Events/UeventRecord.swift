// One uevent reduced to a fixed-size record: action, kernel name, devnum, dm facts, WWID, sequence.
import KeelCore

/// Up to `capacity` bytes of text stored inline (no heap), with a truncation flag.
@frozen
public struct FixedText<let capacity: Int>: BitwiseCopyable, Sendable, Equatable, CustomStringConvertible {
    @usableFromInline var storage: InlineArray<capacity, UInt8>
    /// Bytes in use.
    public private(set) var count: UInt16
    /// True when the source text was longer than `capacity` and was cut.
    public private(set) var truncated: Bool

    /// Empty text.
    public init() {
        storage = InlineArray(repeating: 0)
        count = 0
        truncated = false
    }

    /// The first `capacity` bytes of `text`'s UTF-8.
    public init(_ text: some StringProtocol) {
        self.init()
        for byte in text.utf8 {
            if Int(count) == capacity { truncated = true; break }
            storage[Int(count)] = byte
            count += 1
        }
    }

    public var isEmpty: Bool { count == 0 }

    /// The stored bytes.
    public var bytes: [UInt8] { (0..<Int(count)).map { storage[$0] } }

    /// Whether the text starts with `prefix` (ASCII comparison).
    public func hasPrefix(_ prefix: StaticString) -> Bool {
        guard prefix.utf8CodeUnitCount <= Int(count) else { return false }
        return prefix.withUTF8Buffer { p in
            for i in 0..<p.count where storage[i] != p[i] { return false }
            return true
        }
    }

    public var description: String { String(decoding: bytes, as: UTF8.self) }

    public static func == (a: Self, b: Self) -> Bool {
        guard a.count == b.count, a.truncated == b.truncated else { return false }
        for i in 0..<Int(a.count) where a.storage[i] != b.storage[i] { return false }
        return true
    }
}

/// Kernel names ("sda", "dm-3", "nvme0n1") fit in 32 bytes.
public typealias KernelNameText = FixedText<32>
/// A WWID fits in multipath-tools' `WWID_SIZE` (128 bytes, 127 used).
public typealias WWIDText = FixedText<128>

/// The uevent action.
@frozen
public enum UeventAction: UInt8, BitwiseCopyable, Sendable, CustomStringConvertible {
    case add
    case remove
    case change
    /// move, online, offline, bind, unbind: not acted upon, kept for the record.
    case other

    /// Maps the `ACTION` value.
    public init(_ text: some StringProtocol) {
        switch text {
        case "add": self = .add
        case "remove": self = .remove
        case "change": self = .change
        default: self = .other
        }
    }

    public var description: String {
        switch self {
        case .add: return "add"
        case .remove: return "remove"
        case .change: return "change"
        case .other: return "other"
        }
    }
}

/// What dm-multipath's own uevents report (`DM_ACTION`).
@frozen
public enum DMUeventAction: UInt8, BitwiseCopyable, Sendable {
    case none
    /// `PATH_FAILED` with `DM_PATH` = the failed path's `major:minor`.
    case pathFailed
    /// `PATH_REINSTATED` with `DM_PATH`.
    case pathReinstated
    /// Another `DM_ACTION` value.
    case other
}

/// One uevent, fixed-size and copyable through a ring. Built on the event thread.
@frozen
public struct UeventRecord: BitwiseCopyable, Sendable, Equatable, CustomStringConvertible {
    /// The kernel's `SEQNUM` (0 when absent).
    public var sequence: UInt64
    public var action: UeventAction
    /// The last component of `DEVPATH`.
    public var kernelName: KernelNameText
    /// `MAJOR`:`MINOR` (0:0 when absent).
    public var device: DevNo
    /// `DM_NAME` / `DM_UUID` present (udev-processed dm events carry them).
    public var hasDMName: Bool
    public var hasDMUUID: Bool
    public var dmAction: DMUeventAction
    /// `DM_PATH` of a `PATH_FAILED`/`PATH_REINSTATED` event (0:0 otherwise).
    public var dmPath: DevNo
    /// The WWID: the `uid_attribute` property (default `ID_SERIAL`) of a path event, or the part
    /// after `mpath-` of a dm event's `DM_UUID`. Empty when the event does not carry one
    /// (kernel-source events never do).
    public var wwid: WWIDText

    public init(sequence: UInt64 = 0, action: UeventAction, kernelName: KernelNameText, device: DevNo = DevNo(major: 0, minor: 0),
                hasDMName: Bool = false, hasDMUUID: Bool = false, dmAction: DMUeventAction = .none,
                dmPath: DevNo = DevNo(major: 0, minor: 0), wwid: WWIDText = WWIDText()) {
        self.sequence = sequence
        self.action = action
        self.kernelName = kernelName
        self.device = device
        self.hasDMName = hasDMName
        self.hasDMUUID = hasDMUUID
        self.dmAction = dmAction
        self.dmPath = dmPath
        self.wwid = wwid
    }

    /// A device-mapper device (`dm-N`): never filtered by kernel name, never merged by WWID.
    public var isDeviceMapper: Bool { kernelName.hasPrefix("dm-") }

    /// Builds a record from an event's properties (`ACTION`, `DEVPATH`, `MAJOR`, `MINOR`, `SEQNUM`,
    /// `DM_*`, and `uidAttribute`). Nil when `ACTION` or `DEVPATH` is missing.
    public static func parse(uidAttribute: String = "ID_SERIAL", property: (String) -> String?) -> UeventRecord? {
        guard let action = property("ACTION"), let devpath = property("DEVPATH") else { return nil }
        let name = devpath.split(separator: "/").last ?? Substring(devpath)
        var record = UeventRecord(action: UeventAction(action), kernelName: KernelNameText(name))
        record.sequence = property("SEQNUM").flatMap { UInt64($0) } ?? 0
        if let major = property("MAJOR").flatMap({ UInt32($0) }), let minor = property("MINOR").flatMap({ UInt32($0) }) {
            record.device = DevNo(major: major, minor: minor)
        }
        record.hasDMName = property("DM_NAME") != nil
        let uuid = property("DM_UUID")
        record.hasDMUUID = uuid != nil
        if let dmAction = property("DM_ACTION") {
            switch dmAction {
            case "PATH_FAILED": record.dmAction = .pathFailed
            case "PATH_REINSTATED": record.dmAction = .pathReinstated
            default: record.dmAction = .other
            }
            if let path = property("DM_PATH") {
                let parts = path.split(separator: ":")
                if parts.count == 2, let major = UInt32(parts[0]), let minor = UInt32(parts[1]) {
                    record.dmPath = DevNo(major: major, minor: minor)
                }
            }
        }
        if record.isDeviceMapper {
            if let uuid, uuid.hasPrefix("mpath-"), uuid.count > 6 { record.wwid = WWIDText(uuid.dropFirst(6)) }
        } else if !uidAttribute.isEmpty, let value = property(uidAttribute), !value.isEmpty {
            record.wwid = WWIDText(value)
        }
        return record
    }

    public var description: String {
        var text = "#\(sequence) \(action) \(kernelName) \(device)"
        if dmAction == .pathFailed { text += " PATH_FAILED \(dmPath)" }
        if dmAction == .pathReinstated { text += " PATH_REINSTATED \(dmPath)" }
        if !wwid.isEmpty { text += " wwid=\(wwid)" }
        return text
    }
}
