// The fixed-size log record, how arguments are packed into it, and the pure conversions from engine records.
import KeelCore

/// One log line before formatting: a message id, a monotonic time, the producing thread and up
/// to four integers. Never a String: producers copy 48 bytes into a ring and the logger thread
/// builds the text.
@frozen
public struct LogRecord: BitwiseCopyable, Sendable, Equatable {
    /// CLOCK_MONOTONIC when the event happened.
    public var timestampNs: Nanoseconds
    /// The four arguments the message's `%word`s take, in order; unused ones are 0.
    public var arguments: InlineArray<4, UInt64>
    public var message: LogMessage
    /// The producer that logged it (its index in the logger); set by `LogProducer.log`.
    public var source: UInt16

    /// A record of `message` at `timestampNs` with the given arguments.
    @inlinable
    public init(_ message: LogMessage, timestampNs: Nanoseconds, source: UInt16 = 0,
                _ a0: UInt64 = 0, _ a1: UInt64 = 0, _ a2: UInt64 = 0, _ a3: UInt64 = 0) {
        self.timestampNs = timestampNs
        self.arguments = [a0, a1, a2, a3]
        self.message = message
        self.source = source
    }

    public static func == (a: LogRecord, b: LogRecord) -> Bool {
        a.timestampNs == b.timestampNs && a.message == b.message && a.source == b.source
            && a.arguments[0] == b.arguments[0] && a.arguments[1] == b.arguments[1]
            && a.arguments[2] == b.arguments[2] && a.arguments[3] == b.arguments[3]
    }
}

/// Packs typed values into a record's UInt64 arguments the way the formatter's `%word`s read them.
public enum LogArgument {
    /// `%dev`: major in the high 32 bits, minor in the low.
    @inlinable public static func device(_ device: DevNo) -> UInt64 {
        UInt64(device.major) << 32 | UInt64(device.minor)
    }
    /// `%map`.
    @inlinable public static func map(_ map: MapHandle) -> UInt64 { UInt64(map.raw) }
    /// `%path`.
    /// A path handle with the device it stood for when the record was made (major in bits 52-63,
    /// minor in 32-51): the logger prints the handle's name only while it is still that device's.
    @inlinable public static func path(_ path: PathHandle, device: DevNo) -> UInt64 {
        UInt64(path.raw) | UInt64(device.minor & 0xF_FFFF) << 32 | UInt64(device.major & 0xFFF) << 52
    }
    /// `%state`.
    @inlinable public static func state(_ state: PathState) -> UInt64 { UInt64(state.rawValue) }
    /// `%verb`.
    @inlinable public static func verb(_ kind: DMMessageKind) -> UInt64 { UInt64(kind.rawValue) }
    /// `%result`.
    @inlinable public static func result(_ result: CheckResult) -> UInt64 { UInt64(result.rawValue) }
    /// `%errno` (sign-extended, so a negative value survives the round trip).
    @inlinable public static func errno(_ errno: Int32) -> UInt64 { UInt64(bitPattern: Int64(errno)) }
    /// `%n` for a signed value.
    @inlinable public static func signed(_ value: Int) -> UInt64 { UInt64(bitPattern: Int64(value)) }
    /// `%op`.
    @inlinable public static func operation(_ operation: LogDMOperation) -> UInt64 { UInt64(operation.rawValue) }
    /// `%action`.
    @inlinable public static func action(_ action: UeventAction) -> UInt64 { UInt64(action.rawValue) }
}

/// Device-mapper operations as a record carries them (`%op`): `DMOperation` is a String enum,
/// this is its fixed-size twin.
@frozen
public enum LogDMOperation: UInt8, BitwiseCopyable, Sendable, CaseIterable {
    case open, version, list, info, create, reload, resume, suspend, remove, table, status, register, armPoll, poll

    /// The twin of `operation`.
    public init(_ operation: DMOperation) {
        switch operation {
        case .open: self = .open
        case .version: self = .version
        case .list: self = .list
        case .info: self = .info
        case .create: self = .create
        case .reload: self = .reload
        case .resume: self = .resume
        case .suspend: self = .suspend
        case .remove: self = .remove
        case .table: self = .table
        case .status: self = .status
        case .register: self = .register
        case .armPoll: self = .armPoll
        case .poll: self = .poll
        }
    }

    /// The name a line shows (`DMOperation`'s raw value).
    public var word: StaticString {
        switch self {
        case .open: return "open"
        case .version: return "version"
        case .list: return "list"
        case .info: return "info"
        case .create: return "create"
        case .reload: return "reload"
        case .resume: return "resume"
        case .suspend: return "suspend"
        case .remove: return "remove"
        case .table: return "table"
        case .status: return "status"
        case .register: return "register"
        case .armPoll: return "arm poll"
        case .poll: return "poll"
        }
    }
}

extension LogRecord {
    /// The line the recovery loop's `record` stands for, at `timestampNs` (pure: same input, same
    /// record). A dm message that went through becomes what it did (`pathFailed`, `reinstated`,
    /// `groupSwitched`...); a refused one names the verb, its argument, the map and the errno.
    @inlinable
    public init(_ record: RecoveryRecord, timestampNs: Nanoseconds, source: UInt16 = 0) {
        switch record {
        case .messageSent(let message, let errno):
            let map = LogArgument.map(message.map)
            let verb = LogArgument.verb(message.kind)
            let device = LogArgument.device(message.device)
            let group = UInt64(message.group)
            if errno != 0 {
                let error = LogArgument.errno(errno)
                switch message.kind {
                case .failPath, .reinstatePath:
                    self.init(.pathMessageRefused, timestampNs: timestampNs, source: source, verb, device, map, error)
                case .switchGroup, .enableGroup, .disableGroup:
                    self.init(.groupMessageRefused, timestampNs: timestampNs, source: source, verb, group, map, error)
                case .queueIfNoPath, .failIfNoPath:
                    self.init(.mapMessageRefused, timestampNs: timestampNs, source: source, verb, map, error)
                }
                return
            }
            switch message.kind {
            case .failPath: self.init(.pathFailed, timestampNs: timestampNs, source: source, device, map)
            case .reinstatePath: self.init(.reinstated, timestampNs: timestampNs, source: source, device, map)
            case .switchGroup: self.init(.groupSwitched, timestampNs: timestampNs, source: source, map, group)
            case .enableGroup: self.init(.groupEnabled, timestampNs: timestampNs, source: source, map, group)
            case .disableGroup: self.init(.groupDisabled, timestampNs: timestampNs, source: source, map, group)
            case .queueIfNoPath: self.init(.queueingEnabled, timestampNs: timestampNs, source: source, map)
            case .failIfNoPath: self.init(.queueingDisabled, timestampNs: timestampNs, source: source, map)
            }
        case .transition(let path, let device, let from, let to):
            self.init(.pathStateChanged, timestampNs: timestampNs, source: source,
                      LogArgument.path(path, device: device), LogArgument.state(from), LogArgument.state(to))
        case .reloadRequested(let map):
            self.init(.reloadRequested, timestampNs: timestampNs, source: source, LogArgument.map(map))
        case .checkRefused(let path, let device):
            self.init(.checkRefused, timestampNs: timestampNs, source: source, LogArgument.path(path, device: device))
        }
    }

    /// The line for a kernel event the events thread hands to the recovery loop (pure).
    @inlinable
    public init(_ event: KernelEvent, timestampNs: Nanoseconds, source: UInt16 = 0) {
        switch event {
        case .pathFailed(let map, let device):
            self.init(.kernelFailedPath, timestampNs: timestampNs, source: source,
                      LogArgument.device(device), LogArgument.map(map))
        case .pathKernelState(let map, let device, let active):
            self.init(.kernelPathState, timestampNs: timestampNs, source: source,
                      LogArgument.device(device), LogArgument.map(map), active ? 1 : 0)
        case .mapQueueing(let map, let queueing):
            self.init(.kernelQueueing, timestampNs: timestampNs, source: source, LogArgument.map(map), queueing ? 1 : 0)
        case .mapActiveGroup(let map, let group):
            self.init(.kernelActiveGroup, timestampNs: timestampNs, source: source, LogArgument.map(map), UInt64(group))
        }
    }
}
