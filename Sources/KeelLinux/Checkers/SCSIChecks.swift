// The SCSI path checkers other than tur (readsector0, hp_sw, rdac, emc_clariion): the command
// each sends through the sg driver and how its answer (status, sense, returned page) is read, as
// multipath-tools' checkers of the same names read them. Pure: no I/O, table-tested; they run on
// the recovery thread inside the tur checker's asynchronous machinery and allocate nothing.
import Glibc
import KeelCore

/// Which SCSI check a path of the sg-based checker gets.
public enum SCSICheck: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// TEST UNIT READY.
    case tur = 0
    /// READ(10) of block 0.
    case readsector0 = 1
    /// INQUIRY page 0x80, then TEST UNIT READY.
    case hpSW = 2
    /// INQUIRY page 0xC9 (volume access).
    case rdac = 3
    /// INQUIRY page 0xC0 (unit path report).
    case emcClariion = 4

    /// The check a `path_checker` names; nil for checkers that do not use the sg node.
    public init?(_ checker: MapProfile.Checker) {
        switch checker {
        case .tur: self = .tur
        case .readsector0: self = .readsector0
        case .hpSW: self = .hpSW
        case .rdac: self = .rdac
        case .emcClariion: self = .emcClariion
        case .directio, .none: return nil
        }
    }

    /// multipath-tools' name of the checker.
    public var description: String {
        switch self {
        case .tur: return "tur"
        case .readsector0: return "readsector0"
        case .hpSW: return "hp_sw"
        case .rdac: return "rdac"
        case .emcClariion: return "emc_clariion"
        }
    }

    /// Bytes the data buffer must hold for any check's answer (readsector0's block; sg reports a
    /// short transfer of a smaller block as a residual, not an error).
    public static let dataBytes = 4096
    /// What rdac asks for of page 0xC9, emc_clariion of page 0xC0, hp_sw of page 0x80.
    public static let rdacPageBytes: UInt8 = 48
    public static let emcPageBytes: UInt8 = 128
    public static let serialPageBytes: UInt8 = 255

    /// Writes the CDB of the command this check sends at `stage` (hp_sw: 0 the INQUIRY, 1 the
    /// TUR; the others have one stage) into `cdb` (room for 10 bytes). Returns the CDB's length
    /// and the bytes the command returns (0: no data).
    @inlinable
    public func writeCommand(stage: UInt8, into cdb: UnsafeMutablePointer<UInt8>) -> (length: UInt8, dataBytes: UInt32) {
        cdb.update(repeating: 0, count: 10)
        switch (self, stage) {
        case (.tur, _), (.hpSW, 1...):
            return (6, 0)
        case (.readsector0, _):
            cdb[0] = 0x28  // READ(10), LBA 0, one block
            cdb[8] = 1
            return (10, UInt32(Self.dataBytes))
        case (.hpSW, _):
            return Self.inquiry(page: 0x80, bytes: Self.serialPageBytes, into: cdb)
        case (.rdac, _):
            return Self.inquiry(page: 0xC9, bytes: Self.rdacPageBytes, into: cdb)
        case (.emcClariion, _):
            return Self.inquiry(page: 0xC0, bytes: Self.emcPageBytes, into: cdb)
        }
    }

    @inlinable
    public static func inquiry(page: UInt8, bytes: UInt8, into cdb: UnsafeMutablePointer<UInt8>) -> (length: UInt8, dataBytes: UInt32) {
        cdb[0] = 0x12  // INQUIRY, EVPD
        cdb[1] = 1
        cdb[2] = page
        cdb[4] = bytes
        return (6, UInt32(bytes))
    }

    /// Attempts per check when the answer is transient: readsector0 3 (UNIT ATTENTION), rdac 5
    /// (transport errors of the INQUIRY), tur and hp_sw's TUR `TURSense.attemptsMax`.
    public var attemptsMax: Int {
        switch self {
        case .tur, .hpSW: return TURSense.attemptsMax
        case .readsector0: return 3
        case .rdac: return 5
        case .emcClariion: return 1
        }
    }
}

/// What one answer of a check means: decided, sent again (same stage), or the next stage.
public enum SCSICheckStep: Sendable, Equatable {
    case final(CheckResult, TURReason)
    case retry(TURReason)
    /// hp_sw: the INQUIRY answered; send the TEST UNIT READY.
    case nextStage
}

/// How every SCSI check reads its answers (tur's through `TURSense.decide`).
public enum SCSICheckDecode {
    /// Decides one answer of `check` at `stage`. `page` is the data the command returned (the
    /// INQUIRY page; empty for commands without data); `knownWWN` is emc_clariion's record of the
    /// LUN's WWN for the path (0: none yet), and `wwn` the one this answer carries (0 if none).
    public static func decide(_ check: SCSICheck, stage: UInt8, answer: SGAnswer, page: UnsafeRawBufferPointer,
                              knownWWN: UInt64) -> (step: SCSICheckStep, wwn: UInt64) {
        func reason(_ kind: TURReason.Kind) -> TURReason {
            TURReason(kind: kind, status: answer.status, hostStatus: UInt8(truncatingIfNeeded: answer.hostStatus),
                      senseKey: answer.senseKey, asc: answer.asc, ascq: answer.ascq, check: check)
        }
        // tur's own table reads a failed ioctl too.
        if answer.ioctlErrno != 0 && check != .tur { return (.final(.down, TURSense.ioctlFailure(answer.ioctlErrno, check: check)), 0) }
        switch (check, stage) {
        case (.tur, _):
            switch TURSense.decide(answer) {
            case .final(let result, let why): return (.final(result, why), 0)
            case .retry(let why): return (.retry(why), 0)
            }
        case (.readsector0, _):
            if answer.status == 0 && answer.hostStatus == 0 && answer.driverStatus == 0 { return (.final(.up, reason(.good)), 0) }
            if answer.senseKey == 0x6 { return (.retry(reason(.retriesExhausted)), 0) }
            return (.final(.down, reason(.checkCondition)), 0)
        case (.hpSW, 1...):
            // The TUR after a good INQUIRY: a path that refuses it is the passive one.
            return answer.info & 0x1 == 0 ? (.final(.up, reason(.good)), 0) : (.final(.ghost, reason(.passive)), 0)
        case (.hpSW, _):
            return inquiryAnswered(answer) ? (.nextStage, 0) : (.final(.down, reason(.inquiryFailed)), 0)
        case (.rdac, _):
            if !inquiryAnswered(answer) {
                return isTransientHost(answer) ? (.retry(reason(.retriesExhausted)), 0) : (.final(.down, reason(.inquiryFailed)), 0)
            }
            let (result, kind) = rdac(page)
            return (.final(result, reason(kind)), 0)
        case (.emcClariion, _):
            if answer.info & 0x1 != 0 { return (.final(.down, reason(.inquiryFailed)), 0) }
            let (result, kind, wwn) = emcClariion(page, knownWWN: knownWWN)
            return (.final(result, reason(kind)), wwn)
        }
    }

    /// multipath-tools' INQUIRY success test (`do_inq`): GOOD with no host or driver status, or
    /// a CHECK CONDITION / COMMAND TERMINATED / driver sense whose key is RECOVERED ERROR.
    static func inquiryAnswered(_ answer: SGAnswer) -> Bool {
        let status = answer.status & 0x7e
        if status == 0 && answer.hostStatus == 0 && answer.driverStatus == 0 { return true }
        let sensed = status == 0x02 || status == 0x22 || answer.driverStatus & 0xf == 0x08
        return sensed && answer.senseKey == 0x1
    }

    /// rdac's transport errors worth a retry: DID_BUS_BUSY, DID_ERROR, DID_SOFT_ERROR,
    /// DID_TRANSPORT_DISRUPTED.
    static func isTransientHost(_ answer: SGAnswer) -> Bool {
        guard answer.info & 0x1 != 0 else { return false }
        switch answer.hostStatus {
        case 0x02, 0x07, 0x0b, 0x0e: return true
        default: return false
        }
    }

    /// Page 0xC9 (volume access): a LUN not connected (peripheral qualifier 1, or a device type
    /// other than disk) is down; with target port group data, an unavailable port group, or one
    /// transitioning while the other controller is not (it is starting up), is down; the owning
    /// controller, or any with AVT or I/O shipping on, is up; otherwise the path is a ghost.
    public static func rdac(_ page: UnsafeRawBufferPointer) -> (CheckResult, TURReason.Kind) {
        func byte(_ i: Int) -> UInt8 { i < page.count ? page[i] : 0 }
        let qualifierAndType = byte(0)
        if qualifierAndType & 0xe0 == 0x20 || qualifierAndType & 0x7f != 0 { return (.down, .lunNotConnected) }
        let flags = byte(8)
        if flags & 0x10 != 0 {
            let current = byte(10) & 0x0f, alternate = byte(12) & 0x0f
            if current == 0x3 { return (.down, .controllerUnavailable) }
            if current == 0xf && alternate != 0xf { return (.down, .controllerStarting) }
        }
        if flags & 0x01 != 0 || flags & 0x20 != 0 { return (.up, .good) }
        return (.ghost, .notOwner)
    }

    /// Page 0xC0 (unit path report): the page must be 0xC0 revision 0; the path must be set up
    /// for failover (initiator type 3, failover mode 4 or 6, arraycommpath on); a LUN not in
    /// normal operation is down (multipath-tools' "shaky", which it fails), an unbound LUN (or
    /// LUNZ) down, and a LUN whose WWN changed since the path's last check down. Otherwise up
    /// (a passive path too: CLARiiON trespasses). Returns the WWN's 64-bit digest to remember.
    public static func emcClariion(_ page: UnsafeRawBufferPointer, knownWWN: UInt64) -> (CheckResult, TURReason.Kind, UInt64) {
        func byte(_ i: Int) -> UInt8 { i < page.count ? page[i] : 0 }
        guard page.count > 48, byte(1) == 0xc0, byte(9) == 0 else { return (.down, .unknownPageFormat, knownWWN) }
        let mode = byte(28) & 0x07
        if byte(27) != 0x03 || (mode != 0x04 && mode != 0x06) || byte(30) & 0x04 == 0 {
            return (.down, .notConfiguredForFailover, knownWWN)
        }
        if byte(48) != 0 { return (.down, .notNormalOperations, knownWWN) }
        if byte(4) == 0 { return (.down, .unbound, knownWWN) }
        // FNV-1a over the 16 WWN bytes; never 0 (0 means "none yet").
        var digest: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in 10..<26 { digest = (digest ^ UInt64(byte(i))) &* 0x0000_0100_0000_01b3 }
        digest |= 1
        if knownWWN != 0 && knownWWN != digest { return (.down, .wwnChanged, knownWWN) }
        return (.up, .good, digest)
    }
}

/// The persistent-reservation commands a returning path is registered with (SPC-4 PERSISTENT
/// RESERVE IN / OUT). Writing and decoding them allocates nothing.
public enum SCSIReservation {
    /// Bytes asked of READ KEYS: its 8-byte header and up to 127 keys.
    public static let readKeysBytes = 1024
    /// Sends of one command while it answers UNIT ATTENTION.
    public static let attemptsMax = 3

    /// PERSISTENT RESERVE IN, READ KEYS (service action 0).
    public static func readKeys(into cdb: UnsafeMutablePointer<UInt8>, allocationBytes: UInt16) -> (length: UInt8, dataBytes: UInt32) {
        cdb.update(repeating: 0, count: 10)
        cdb[0] = 0x5E
        cdb[7] = UInt8(allocationBytes >> 8)
        cdb[8] = UInt8(truncatingIfNeeded: allocationBytes)
        return (10, UInt32(allocationBytes))
    }

    /// PERSISTENT RESERVE OUT, REGISTER AND IGNORE EXISTING KEY (service action 6) with `key` as
    /// the service action reservation key; its 24-byte parameter list is written to `parameters`.
    public static func registerAndIgnore(key: UInt64, aptpl: Bool, cdb: UnsafeMutablePointer<UInt8>,
                                         parameters: UnsafeMutablePointer<UInt8>) -> (length: UInt8, dataBytes: UInt32) {
        cdb.update(repeating: 0, count: 10)
        cdb[0] = 0x5F
        cdb[1] = 0x06
        cdb[8] = 24
        parameters.update(repeating: 0, count: 24)
        for i in 0..<8 { parameters[8 + i] = UInt8(truncatingIfNeeded: key >> (56 - 8 * UInt64(i))) }
        if aptpl { parameters[20] = 0x01 }
        return (10, 24)
    }

    /// Whether a READ KEYS answer lists `key` (the header's additional length bounds the list,
    /// as does what the device returned).
    public static func keys(_ answer: UnsafeRawBufferPointer, contain key: UInt64) -> Bool {
        guard answer.count >= 8, key != 0 else { return false }
        var listed = 0
        for i in 4..<8 { listed = listed << 8 | Int(answer[i]) }
        let end = min(answer.count, 8 + listed)
        var offset = 8
        while offset + 8 <= end {
            var k: UInt64 = 0
            for i in 0..<8 { k = k << 8 | UInt64(answer[offset + i]) }
            if k == key { return true }
            offset += 8
        }
        return false
    }
}
