// The prioritizers that ask the array (multipath-tools' emc, hds, hp_sw, ontap, rdac, datacore
// and path_latency) and iet, which reads udev's by-path links: the commands each sends, and how
// its answers become a priority, as multipath-tools reads them. Pure: the commands go out through
// `SGQueryRunner` (`SCSIPriorities.evaluate`); table-tested with captured pages.
import Glibc
import KeelCore

/// A prioritizer that sends SCSI commands, with its parsed `prio_args`.
public enum SCSIPrioritizer: Sendable, Equatable {
    /// INQUIRY page 0xC0 (CLARiiON unit path report): LUN state, plus 2 on the default owner.
    case emc
    /// Standard INQUIRY of Hitachi modular arrays: 1 when the controller's and the LDEV's parity agree.
    case hds
    /// TEST UNIT READY: 4 active, 2 standby (NOT READY 04/02), 0 otherwise.
    case hpSW
    /// NetApp: the GVA page 0x41 (iSCSI software 2, iSCSI HBA 3), else the proxy bit of page 0xC1 (FCP proxy 1, else 4).
    case ontap
    /// INQUIRY page 0xC9 (volume access): owner 2, preferred 4, secondary 1, I/O shipping 8, OR-ed.
    case rdac
    /// Standard INQUIRY of DataCore SANsymphony: 1 when the SDS name holds `preferredSDS`.
    case datacore(DatacoreArguments)
    /// READ of block 0, `samples` times: the log in `base` of 10⁸ / the geometric mean latency in µs.
    case pathLatency(PathLatencyArguments)
    /// Not a prioritizer: `detect_checker`'s question whether the array is an RDAC one (INQUIRY
    /// page 0xC9 of 44 bytes whose bytes 4-7 are "vac1"): 1 when it is, 0 when not.
    case rdacDetection

    /// The prioritizer `prio` names with `args`; nil for prioritizers that send no SCSI command.
    public init?(_ prio: MapProfile.Prioritizer, args: String) {
        switch prio {
        case .emc: self = .emc
        case .hds: self = .hds
        case .hpSW: self = .hpSW
        case .ontap: self = .ontap
        case .rdac: self = .rdac
        case .datacore: self = .datacore(DatacoreArguments(args))
        case .pathLatency: self = .pathLatency(PathLatencyArguments(args))
        case .const, .alua, .sysfs, .weightedpath, .random, .iet, .ana: return nil
        }
    }
}

/// `prio_args` of datacore: `preferredsds=NAME`, optionally with `timeout=MS` before or after.
public struct DatacoreArguments: Sendable, Equatable {
    /// nil when the arguments are unusable (every path then gets 0, as in multipath-tools).
    public var preferredSDS: String?
    public var timeoutMs: UInt32?

    public init(_ args: String) {
        let words = args.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        var sds: String? = nil, timeout: UInt32? = nil
        for word in words.prefix(2) {
            if word.hasPrefix("preferredsds=") && sds == nil {
                sds = String(word.dropFirst("preferredsds=".count))
            } else if word.hasPrefix("timeout="), timeout == nil, let ms = UInt32(word.dropFirst("timeout=".count)) {
                timeout = ms
            } else {
                break
            }
        }
        // A name of one character or none is refused, as multipath-tools refuses it.
        preferredSDS = (sds?.count ?? 0) > 1 ? sds : nil
        timeoutMs = preferredSDS == nil ? nil : timeout
    }
}

/// `prio_args` of path_latency: `io_num=N base_num=X` (20...200 reads, base 1.1...10).
public struct PathLatencyArguments: Sendable, Equatable {
    public var samples: Int
    public var base: Double
    /// Whether the arguments were usable (otherwise the defaults, as in multipath-tools).
    public var valid: Bool

    public static let defaultSamples = 100
    public static let defaultBase = 1.77827941004   // 10^(1/4): four steps per factor of ten
    public static let samplesRange = 20...200
    public static let baseRange = 1.1...10.0

    public init(_ args: String) {
        var samples: Int? = nil, base: Double? = nil
        for word in args.split(whereSeparator: { $0 == " " || $0 == "\t" }).prefix(2) {
            if word.hasPrefix("io_num="), word.count > 7 {
                samples = Int(word.dropFirst(7))
            } else if word.hasPrefix("base_num="), word.count > 9 {
                base = Double(word.dropFirst(9))
            }
        }
        if let samples, let base, Self.samplesRange.contains(samples), Self.baseRange.contains(base) {
            self.samples = samples
            self.base = base
            valid = true
        } else {
            self.samples = Self.defaultSamples
            self.base = Self.defaultBase
            valid = false
        }
    }

    /// The priority of samples whose latencies' logs in `base` (of µs) sum to `logSum`:
    /// trunc(log_base(10⁸) - mean), clamped at 0 (a mean at or past 100 s gives 0).
    public func priority(logSum: Double) -> Int {
        let ceiling = log(1e8) / log(base)
        let mean = logSum / Double(samples)
        if mean >= ceiling { return 0 }
        return Int(ceiling - max(mean, 0))
    }

    /// One sample's contribution: log_base of the latency in whole µs (0 for under 1 µs).
    public func logOf(latencyNs: Nanoseconds) -> Double {
        let micros = latencyNs / 1_000
        return micros == 0 ? 0 : log(Double(micros)) / log(base)
    }
}

/// One path's evaluation by a `SCSIPrioritizer`: the command to send next, and what each answer
/// makes of it.
public struct SCSIPriorityEvaluation: Sendable, Equatable {
    public enum Step: Sendable, Equatable {
        /// Send `command()` (again, or the next one).
        case more
        /// The priority; nil when the prioritizer has none (multipath-tools' undefined, -1).
        case done(Int?)
    }

    public let prioritizer: SCSIPrioritizer
    /// ontap: 0 the GVA page, 1 the proxy INQUIRY. hp_sw: TURs sent after a reset's UNIT ATTENTION.
    public private(set) var stage = 0
    public private(set) var samplesTaken = 0
    private var logSum = 0.0

    /// hp_sw resends its TUR after a power-on/reset UNIT ATTENTION; multipath-tools without limit.
    public static let unitAttentionRetries = 5
    /// Bytes path_latency reads (a block of up to 4 KiB; a smaller block is a short transfer).
    public static let latencyBlockBytes = 4096

    public init(_ prioritizer: SCSIPrioritizer) {
        self.prioritizer = prioritizer
    }

    /// The command to send now: CDB and the bytes it returns.
    public func command() -> (cdb: [UInt8], dataBytes: Int) {
        switch prioritizer {
        case .emc: return (Self.inquiry(page: 0xC0, bytes: 128), 128)
        case .rdac: return (Self.inquiry(page: 0xC9, bytes: 128), 128)
        case .rdacDetection: return (Self.inquiry(page: 0xC9, bytes: 44), 44)
        case .hds, .datacore: return ([0x12, 0, 0, 0, 0xFF, 0], 255)
        case .hpSW: return ([0, 0, 0, 0, 0, 0], 0)
        case .ontap:
            if stage == 0 { return ([0xC0, 0x00, 0x01, 0x0A, 0x98, 0x0A, 0x41, 0x80, 0x00, 0x00], 256) }
            return (Self.inquiry(page: 0xC1, bytes: 128), 256)
        case .pathLatency:
            return ([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], Self.latencyBlockBytes)   // READ(10) of block 0
        }
    }

    /// A timeout datacore's arguments set (ms), else nil (the checker timeout).
    public var timeoutMs: UInt32? {
        if case .datacore(let arguments) = prioritizer { return arguments.timeoutMs }
        return nil
    }

    static func inquiry(page: UInt8, bytes: UInt8) -> [UInt8] { [0x12, 0x01, page, 0x00, bytes, 0x00] }

    /// Takes the answer to `command()`.
    public mutating func take(_ reply: SGReply) -> Step {
        let data = reply.data
        func byte(_ i: Int) -> UInt8 { i < data.count ? data[i] : 0 }
        switch prioritizer {
        case .emc:
            guard reply.isGood else { return .done(nil) }
            return .done(Self.emc(data))
        case .rdac:
            guard reply.isGood else { return .done(0) }
            return .done(Self.rdac(data))
        case .rdacDetection:
            return .done(reply.isGood && Self.isRDAC(data) ? 1 : 0)
        case .hds:
            guard reply.isGood else { return .done(nil) }
            return .done(Self.hds(data))
        case .datacore(let arguments):
            guard let preferred = arguments.preferredSDS, reply.isGood else { return .done(0) }
            return .done(Self.datacore(data, preferredSDS: preferred))
        case .hpSW:
            if reply.answer.ioctlErrno != 0 { return .done(0) }
            if reply.isGood { return .done(4) }
            let sensed = reply.answer.status & 0x7e == 0x02 || reply.answer.status & 0x7e == 0x22 || reply.answer.driverStatus & 0xf == 0x08
            guard sensed else { return .done(0) }
            switch (reply.answer.senseKey, reply.answer.asc, reply.answer.ascq) {
            case (0x1, _, _): return .done(4)
            case (0x2, 0x04, 0x02): return .done(2)
            case (0x6, 0x29, _) where stage < Self.unitAttentionRetries:
                stage += 1
                return .more
            default: return .done(0)
            }
        case .ontap:
            if stage == 0 {
                guard reply.isGood, byte(4) == 0x0A, byte(5) == 0x98, byte(6) == 0x0A, byte(7) == 0x01 else { return .done(0) }
                if let iscsi = Self.ontapISCSI(data) { return .done(iscsi) }
                stage = 1
                return .more
            }
            return .done(reply.isGood && Self.ontapIsProxy(data) ? 1 : 4)
        case .pathLatency(let arguments):
            guard reply.isGood else { return .done(nil) }
            logSum += arguments.logOf(latencyNs: reply.latencyNs)
            samplesTaken += 1
            return samplesTaken < arguments.samples ? .more : .done(arguments.priority(logSum: logSum))
        }
    }

    /// emc: nil unless page 0xC0 revision 0 of a LUN set up for failover (initiator type 3,
    /// failover mode 4 or 6, arraycommpath) in normal operation; then the LUN state (0 unbound,
    /// 1 bound, 2 owned), plus 2 when this path goes to the LUN's default owner.
    public static func emc(_ page: [UInt8]) -> Int? {
        func byte(_ i: Int) -> UInt8 { i < page.count ? page[i] : 0 }
        guard page.count > 48, byte(1) == 0xC0, byte(9) == 0 else { return nil }
        let mode = byte(28) & 0x07
        guard byte(27) == 0x03, mode == 0x04 || mode == 0x06, byte(30) & 0x04 != 0, byte(48) == 0 else { return nil }
        return Int(byte(4)) + (byte(5) == byte(8) ? 2 : 0)
    }

    /// Whether an INQUIRY page 0xC9 answer is an RDAC array's volume access page: "vac1" at
    /// byte 4, as multipath-tools' `detect_checker` asks.
    public static func isRDAC(_ page: [UInt8]) -> Bool {
        page.count >= 8 && Array(page[4..<8]) == Array("vac1".utf8)
    }

    /// rdac: 0 unless page 0xC9 ("vac", length 0x2C); then owner 2, preferred 4 or secondary 1,
    /// I/O shipping 8, OR-ed.
    public static func rdac(_ page: [UInt8]) -> Int {
        func byte(_ i: Int) -> UInt8 { i < page.count ? page[i] : 0 }
        guard byte(1) == 0xC9, byte(3) == 0x2C, byte(4) == UInt8(ascii: "v"), byte(5) == UInt8(ascii: "a"),
              byte(6) == UInt8(ascii: "c") else { return 0 }
        var priority = 0
        if byte(8) & 0x01 != 0 { priority |= 0x02 }
        switch byte(9) & 0x0F {
        case 0x01: priority |= 0x04
        case 0x02: priority |= 0x01
        default: break
        }
        if byte(8) & 0x20 != 0 { priority |= 0x08 }
        return priority
    }

    /// hds: the controller digit (byte 49) and the LDEV's last hex digit (byte 47, upper case):
    /// 1 when their parities agree, 0 when not, nil when either is not such a digit.
    public static func hds(_ inquiry: [UInt8]) -> Int? {
        func byte(_ i: Int) -> UInt8 { i < inquiry.count ? inquiry[i] : 0 }
        // A NUL inside the LDEV shortens it: its fourth character is then not there.
        guard (44..<47).allSatisfy({ byte($0) != 0 }) else { return nil }
        let controller = byte(49), ldev = byte(47)
        guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(controller) else { return nil }
        let ldevValue: UInt8
        switch ldev {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): ldevValue = ldev - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): ldevValue = ldev - UInt8(ascii: "A") + 10
        default: return nil
        }
        return (controller - UInt8(ascii: "0")) % 2 == ldevValue % 2 ? 1 : 0
    }

    /// datacore: 1 when the SDS name (bytes 112-127, up to a NUL) contains `preferredSDS`.
    public static func datacore(_ inquiry: [UInt8], preferredSDS: String) -> Int {
        let field = inquiry.count > 112 ? Array(inquiry[112..<min(128, inquiry.count)]) : []
        let name = Array(field.prefix { $0 != 0 }), wanted = Array(preferredSDS.utf8)
        guard wanted.count <= name.count else { return 0 }
        for start in 0...(name.count - wanted.count) where name[start..<start + wanted.count].elementsEqual(wanted) { return 1 }
        return 0
    }

    /// ontap's GVA page 0x41: 2 for iSCSI software ("ism_sw" or "iswt" at byte 12), 3 for an
    /// iSCSI HBA ("ism_sn"); nil when the page says neither (ask the proxy page).
    public static func ontapISCSI(_ page: [UInt8]) -> Int? {
        guard page.count >= 18 else { return nil }
        let total = UInt32(page[0]) << 24 | UInt32(page[1]) << 16 | UInt32(page[2]) << 8 | UInt32(page[3])
        guard total > 8, page[8] == 0x41 else { return nil }
        let tag = page[12..<18]
        if tag.elementsEqual("ism_sw".utf8) || page[12..<16].elementsEqual("iswt".utf8) { return 2 }
        if tag.elementsEqual("ism_sn".utf8) { return 3 }
        return nil
    }

    /// ontap's page 0xC1: whether this path goes through the partner (the proxy bit), for a page
    /// in NetApp's format.
    public static func ontapIsProxy(_ page: [UInt8]) -> Bool {
        func byte(_ i: Int) -> UInt8 { i < page.count ? page[i] : 0 }
        guard byte(1) == 0xC1, byte(8) == 0x0A, byte(9) == 0x98, byte(10) == 0x0A, byte(11) == 0x00,
              byte(12) == 0xC1, byte(13) == 0x00 else { return false }
        return byte(19) & 0x02 != 0
    }
}

/// `iet`: iSCSI paths to the portal `preferredip=` names get 20, others 10 (0 for unusable
/// arguments). The portal comes from udev's `/dev/disk/by-path` link naming the path's disk.
/// Unlike multipath-tools, the disk name and the address are compared whole: its prefix tests
/// take `sda` for `sdaa` and 10.1.1.1 for 10.1.1.10.
public struct IETRule: Sendable, Equatable {
    public var preferredIP: String

    /// nil for arguments multipath-tools refuses (no `preferredip=`, or an address under 8 characters).
    public init?(arguments: String) {
        guard arguments.hasPrefix("preferredip=") else { return nil }
        let rest = arguments.dropFirst("preferredip=".count).drop { $0 == " " || $0 == "\t" }
        let token = rest.prefix { $0 != " " && $0 != "\t" && $0 != "\n" }
        guard token.count >= 8 else { return nil }
        preferredIP = String(token)
    }

    /// The priority of the disk `kernelName` from the by-path entries (name, link target).
    public func priority(of kernelName: String, byPath entries: [(name: String, target: String)]) -> Int {
        for entry in entries where !entry.name.hasPrefix(".") {
            guard Self.disk(inLink: entry.target) == kernelName, let ip = Self.ipv4(in: entry.name) else { continue }
            if ip == preferredIP { return 20 }
        }
        return 10
    }

    /// The first `sd` + letters in a link target (`../../sdab1` -> `sdab`).
    static func disk(inLink target: String) -> String? {
        let bytes = Array(target.utf8)
        var i = 0
        while i + 2 < bytes.count {
            if bytes[i] == UInt8(ascii: "s") && bytes[i + 1] == UInt8(ascii: "d") && Self.isLower(bytes[i + 2]) {
                var end = i + 2
                while end < bytes.count && Self.isLower(bytes[end]) { end += 1 }
                return String(decoding: bytes[i..<end], as: UTF8.self)
            }
            i += 1
        }
        return nil
    }

    /// The first dotted quad (1-3 digits each) in an entry name, as written.
    static func ipv4(in name: String) -> String? {
        let bytes = Array(name.utf8)
        func digits(from start: Int) -> Int {
            var end = start
            while end < bytes.count && end - start < 3 && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[end]) { end += 1 }
            return end - start
        }
        var i = 0
        while i < bytes.count {
            // Only at the start of a run of digits.
            if (i == 0 || !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i - 1])), digits(from: i) > 0 {
                var at = i, parts = 0
                while parts < 4 {
                    let n = digits(from: at)
                    guard n > 0 else { break }
                    at += n
                    parts += 1
                    if parts < 4 { guard at < bytes.count, bytes[at] == UInt8(ascii: ".") else { break }; at += 1 }
                }
                if parts == 4 && (at == bytes.count || !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at])) {
                    return String(decoding: bytes[i..<at], as: UTF8.self)
                }
            }
            i += 1
        }
        return nil
    }

    private static func isLower(_ c: UInt8) -> Bool { c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z") }
}
