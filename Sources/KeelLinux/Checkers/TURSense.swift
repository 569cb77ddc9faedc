// Decoding a TEST UNIT READY answer (SG_IO status, host status, sense data) into a check result,
// as multipath-tools' tur checker reads it. Pure: no I/O, table-tested.
import Glibc
import KeelCore

/// Why a TUR check ended as it did; readable by the control plane (`TURChecker.lastReason`).
/// Packs into one 64-bit word (the check in the top byte), kept per path in an atomic.
public struct TURReason: Sendable, Equatable, CustomStringConvertible {
    /// The kind of answer.
    public enum Kind: UInt8, Sendable {
        /// No check has finished yet.
        case none = 0
        /// GOOD status.
        case good
        /// RESERVATION CONFLICT: another initiator holds a reservation; the path itself works.
        case reservationConflict
        /// NOT READY, 04/0b: the target port is in standby.
        case standby
        /// NOT READY, 04/0a: asymmetric access state transition.
        case transitioning
        /// ILLEGAL REQUEST, 25/00: logical unit not supported (the LUN is gone).
        case lunNotSupported
        /// The ioctl failed with ENOTTY or EINVAL: the device does not speak SG_IO.
        case notSCSIDevice
        /// The ioctl failed with another errno (ENODEV: offline device, ...).
        case ioctlFailed
        /// CHECK CONDITION with sense data not listed above.
        case checkCondition
        /// A transient host/transport error (or UNIT ATTENTION) that did not clear within the retries.
        case retriesExhausted
        /// No answer within the check's timeout.
        case timedOut
        /// The INQUIRY of hp_sw, rdac or emc_clariion did not succeed.
        case inquiryFailed
        /// hp_sw: the INQUIRY answered, the TEST UNIT READY did not: the passive controller.
        case passive
        /// rdac: the LUN is not connected through this controller.
        case lunNotConnected
        /// rdac: the controller's port group is unavailable (reset, firmware download, service mode...).
        case controllerUnavailable
        /// rdac: the controller alone is transitioning: it is starting up.
        case controllerStarting
        /// rdac: not the owning controller, and neither AVT nor I/O shipping is on.
        case notOwner
        /// emc_clariion: page 0xC0 is not in the known format.
        case unknownPageFormat
        /// emc_clariion: initiator type, failover mode or arraycommpath not set for failover.
        case notConfiguredForFailover
        /// emc_clariion: the LUN is not available for normal operations.
        case notNormalOperations
        /// emc_clariion: the LUN is unbound, or it is the LUNZ.
        case unbound
        /// emc_clariion: the LUN's WWN is not the one this path had.
        case wwnChanged
    }

    public var kind: Kind
    /// The ioctl's errno (`notSCSIDevice`, `ioctlFailed`), else 0.
    public var errno: Int32
    /// The SCSI status byte.
    public var status: UInt8
    /// The host (transport) status byte.
    public var hostStatus: UInt8
    public var senseKey: UInt8
    public var asc: UInt8
    public var ascq: UInt8
    /// The check that gave the answer.
    public var check: SCSICheck

    public init(kind: Kind, errno: Int32 = 0, status: UInt8 = 0, hostStatus: UInt8 = 0, senseKey: UInt8 = 0, asc: UInt8 = 0, ascq: UInt8 = 0,
                check: SCSICheck = .tur) {
        self.check = check
        self.kind = kind
        self.errno = errno
        self.status = status
        self.hostStatus = hostStatus
        self.senseKey = senseKey
        self.asc = asc
        self.ascq = ascq
    }

    /// The 64-bit form kept per path (the check in the top byte).
    public var packed: UInt64 {
        UInt64(kind.rawValue) | UInt64(UInt8(truncatingIfNeeded: errno)) << 8 | UInt64(status) << 16 | UInt64(hostStatus) << 24
            | UInt64(senseKey) << 32 | UInt64(asc) << 40 | UInt64(ascq) << 48 | UInt64(check.rawValue) << 56
    }

    /// Unpacks `packed`.
    public init(packed: UInt64) {
        func byte(_ shift: UInt64) -> UInt8 { UInt8(truncatingIfNeeded: packed >> shift) }
        self.init(kind: Kind(rawValue: byte(0)) ?? .none, errno: Int32(byte(8)), status: byte(16), hostStatus: byte(24),
                  senseKey: byte(32), asc: byte(40), ascq: byte(48), check: SCSICheck(rawValue: byte(56)) ?? .tur)
    }

    /// The command the answer is about, as the description names it.
    var command: String {
        switch check {
        case .tur: return "TEST UNIT READY"
        case .readsector0: return "READ(10) of block 0"
        case .hpSW: return kind == .passive || kind == .good ? "hp_sw TEST UNIT READY" : "hp_sw INQUIRY page 0x80"
        case .rdac: return "rdac INQUIRY page 0xC9"
        case .emcClariion: return "emc_clariion INQUIRY page 0xC0"
        }
    }

    public var description: String {
        func hex(_ v: UInt8) -> String { v < 16 ? "0\(String(v, radix: 16))" : String(v, radix: 16) }
        let sense = "sense key \(hex(senseKey)) asc/ascq \(hex(asc))/\(hex(ascq))"
        let command = self.command
        switch kind {
        case .none: return "not checked yet"
        case .good: return "\(command): GOOD"
        case .reservationConflict: return "\(command): reservation conflict (path usable)"
        case .standby: return "\(command): not ready, target port in standby (04/0b)"
        case .transitioning: return "\(command): not ready, ALUA state transition (04/0a)"
        case .lunNotSupported: return "\(command): logical unit not supported (25/00)"
        case .notSCSIDevice: return "not a SCSI generic device: SG_IO failed with \(String(cString: strerror(errno))) (errno \(errno))"
        case .ioctlFailed: return "SG_IO failed: \(String(cString: strerror(errno))) (errno \(errno))"
        case .checkCondition: return "\(command): check condition, status 0x\(hex(status)), \(sense)"
        case .retriesExhausted: return "\(command): still failing after retries (host status 0x\(hex(hostStatus)), \(sense))"
        case .timedOut: return "\(command): no answer within the checker timeout"
        case .inquiryFailed: return "\(command): failed, status 0x\(hex(status)), host status 0x\(hex(hostStatus)), \(sense)"
        case .passive: return "\(command): refused after INQUIRY answered: passive controller (ghost)"
        case .lunNotConnected: return "\(command): logical unit not connected"
        case .controllerUnavailable: return "\(command): controller unavailable (reset, firmware download, quiesced or service mode)"
        case .controllerStarting: return "\(command): controller in its start-up sequence"
        case .notOwner: return "\(command): not the owning controller, AVT off (ghost)"
        case .unknownPageFormat: return "\(command): unit path report in an unknown format"
        case .notConfiguredForFailover: return "\(command): path not set up for failover (initiator type, failover mode, arraycommpath)"
        case .notNormalOperations: return "\(command): logical unit not available for normal operations"
        case .unbound: return "\(command): logical unit unbound, or LUNZ"
        case .wwnChanged: return "\(command): the logical unit's WWN changed since the last check"
        }
    }
}

/// One SG_IO answer, reduced to what the decision needs.
public struct SGAnswer: Sendable, Equatable {
    /// errno of a failed ioctl, 0 when the ioctl returned.
    public var ioctlErrno: Int32
    public var status: UInt8
    public var hostStatus: UInt16
    public var driverStatus: UInt16
    /// sg_io_hdr.info (bit 0: SG_INFO_CHECK, something was not OK).
    public var info: UInt32
    /// Parsed sense data (zero when none).
    public var senseKey: UInt8
    public var asc: UInt8
    public var ascq: UInt8

    public init(ioctlErrno: Int32 = 0, status: UInt8 = 0, hostStatus: UInt16 = 0, driverStatus: UInt16 = 0, info: UInt32 = 0,
                senseKey: UInt8 = 0, asc: UInt8 = 0, ascq: UInt8 = 0) {
        self.ioctlErrno = ioctlErrno
        self.status = status
        self.hostStatus = hostStatus
        self.driverStatus = driverStatus
        self.info = info
        self.senseKey = senseKey
        self.asc = asc
        self.ascq = ascq
    }
}

/// What to do with one TUR answer.
public enum TURVerdict: Sendable, Equatable {
    /// The check is decided.
    case final(CheckResult, TURReason)
    /// Transient (UNIT ATTENTION, a host or transport hiccup): send the TUR again.
    case retry(TURReason)
}

/// Sense decoding and the TUR decision table.
public enum TURSense {
    /// Attempts per check before a transient answer counts as down (multipath-tools: 5).
    public static let attemptsMax = 5

    /// Sense key, ASC and ASCQ from fixed-format (0x70/0x71) or descriptor-format (0x72/0x73)
    /// sense data; nil when the data is too short or of another format.
    public static func parse(_ sense: UnsafeRawBufferPointer) -> (key: UInt8, asc: UInt8, ascq: UInt8)? {
        guard sense.count > 3 else { return nil }
        let code = sense[0] & 0x7f
        if code == 0x72 || code == 0x73 {
            return (sense[1] & 0x0f, sense[2], sense[3])
        }
        if (code == 0x70 || code == 0x71) && sense.count > 13 {
            return (sense[2] & 0x0f, sense[12], sense[13])
        }
        return nil
    }

    /// Why a check whose SG_IO failed with `errno` is down: ENOTTY or EINVAL, the device does not
    /// speak SG_IO; anything else (ENODEV: an offline device, ...), the ioctl failed.
    public static func ioctlFailure(_ errno: Int32, check: SCSICheck = .tur) -> TURReason {
        TURReason(kind: errno == ENOTTY || errno == EINVAL ? .notSCSIDevice : .ioctlFailed, errno: errno, check: check)
    }

    /// Host statuses that mean "the path answered, do not retry": DID_OK, DID_NO_CONNECT,
    /// DID_BAD_TARGET, DID_ABORT, DID_TRANSPORT_FAILFAST. Any other host status is transient.
    @inlinable
    static func isFinalHostStatus(_ host: UInt16) -> Bool {
        host == 0x00 || host == 0x01 || host == 0x04 || host == 0x05 || host == 0x0f
    }

    /// The decision table, in multipath-tools' order:
    /// ioctl ENOTTY/EINVAL -> down (not a SCSI device); other ioctl errors -> down;
    /// status RESERVATION CONFLICT -> up; all OK -> up; transient host status -> retry;
    /// UNIT ATTENTION -> retry; NOT READY 04/0b -> ghost; NOT READY 04/0a -> pending;
    /// ILLEGAL REQUEST 25/00 -> removed; anything else -> down.
    public static func decide(_ answer: SGAnswer) -> TURVerdict {
        let host = UInt8(truncatingIfNeeded: answer.hostStatus)
        if answer.ioctlErrno != 0 { return .final(.down, ioctlFailure(answer.ioctlErrno)) }
        let reason = { (kind: TURReason.Kind) in
            TURReason(kind: kind, status: answer.status, hostStatus: host, senseKey: answer.senseKey, asc: answer.asc, ascq: answer.ascq)
        }
        if answer.status & 0x7e == 0x18 { return .final(.up, reason(.reservationConflict)) }
        if answer.info & 0x1 == 0 { return .final(.up, reason(.good)) }
        if !isFinalHostStatus(answer.hostStatus) { return .retry(reason(.retriesExhausted)) }
        switch (answer.senseKey, answer.asc, answer.ascq) {
        case (0x6, _, _): return .retry(reason(.retriesExhausted))
        case (0x2, 0x04, 0x0b): return .final(.ghost, reason(.standby))
        case (0x2, 0x04, 0x0a): return .final(.pending, reason(.transitioning))
        case (0x5, 0x25, 0x00): return .final(.removed, reason(.lunNotSupported))
        default: return .final(.down, reason(.checkCondition))
        }
    }
}
