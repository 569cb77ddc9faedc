// The ana prioritizer: the Asymmetric Namespace Access state of an NVMe path, asked from the
// path's controller with three admin commands (Identify Controller, Identify Namespace, the ANA
// log page). The passthrough ioctl waits for the controller, so each path is asked on a thread
// of its own and the caller waits for all of them at most once per batch.
import Glibc
import Synchronization
import CKeelShim
import KeelCore

/// Decoding of the controller's answers (pure; fuzzed).
public enum NVMeANA {
    /// Identify data is one 4 KiB page.
    public static let identifyBytes = 4096
    /// The largest ANA log asked for: a header, 2,047 group descriptors, or fewer with their
    /// namespace lists. A longer log is read truncated and searched as far as it goes.
    public static let logBytesMax = 64 * 1024
    static let logHeaderBytes = 16
    static let groupDescriptorBytes = 32

    /// What a controller says of ANA in its Identify Controller page.
    public struct ControllerFacts: Sendable, Equatable {
        /// CMIC bit 3: the controller reports ANA states.
        public var reportsANA: Bool
        /// ANACAP bit 6: the log can be asked without namespace lists (RGO).
        public var groupsOnly: Bool
        /// NANAGRPID: how many ANA groups the controller has.
        public var groupCount: UInt32
        /// MNAN: the most namespaces the subsystem allows (the longest namespace list).
        public var namespacesMax: UInt32
    }

    /// The facts of an Identify Controller page; nil when the page is too short.
    public static func controllerFacts(_ page: [UInt8]) -> ControllerFacts? {
        guard page.count >= 544, let groups = le32(page, at: 348), let namespaces = le32(page, at: 540) else { return nil }
        return ControllerFacts(reportsANA: page[76] & 0x08 != 0, groupsOnly: page[343] & 0x40 != 0,
                               groupCount: groups, namespacesMax: namespaces)
    }

    /// ANAGRPID of an Identify Namespace page; nil when the page is too short.
    public static func groupID(identifyNamespace page: [UInt8]) -> UInt32? { le32(page, at: 92) }

    /// Bytes of the ANA log to ask for: the header, a descriptor per group and, unless the
    /// controller can leave them out, every namespace id; a multiple of 4, capped at
    /// `logBytesMax`.
    public static func logLength(_ facts: ControllerFacts) -> Int {
        var bytes = UInt64(logHeaderBytes) + UInt64(facts.groupCount) * UInt64(groupDescriptorBytes)
        if !facts.groupsOnly { bytes += UInt64(facts.namespacesMax) * 4 }
        return Int(min(bytes, UInt64(logBytesMax)))
    }

    /// The ANA state of namespace `nsid` (group `groupID`) in an ANA log: the state of the
    /// descriptor listing the namespace, else of the descriptor of its group (a log asked
    /// without namespace lists); nil when neither is in the log. Never reads past `log`, however
    /// its counts lie.
    public static func state(log: [UInt8], nsid: UInt32, groupID: UInt32) -> UInt8? {
        guard log.count >= logHeaderBytes else { return nil }
        let groups = Int(log[8]) | Int(log[9]) << 8
        var offset = logHeaderBytes
        var found: UInt8? = nil
        for _ in 0..<groups {
            guard offset + groupDescriptorBytes <= log.count, let group = le32(log, at: offset),
                  let listed = le32(log, at: offset + 4) else { break }
            let state = log[offset + 16] & 0x0f
            offset += groupDescriptorBytes
            let available = (log.count - offset) / 4
            for i in 0..<min(Int(listed), available) where le32(log, at: offset + 4 * i) == nsid {
                return state
            }
            if groupID != 0 && group == groupID { found = state }
            guard Int(listed) <= available else { break }
            offset += 4 * Int(listed)
        }
        return found
    }

    /// multipath-tools' ana priorities: optimized 50, non-optimized 10, inaccessible 5,
    /// persistent loss 1, change (and anything else) 0.
    public static func priority(state: UInt8) -> Int {
        switch state & 0x0f {
        case 0x1: return 50
        case 0x2: return 10
        case 0x3: return 5
        case 0x4: return 1
        default: return 0
        }
    }

    static func le32(_ bytes: [UInt8], at offset: Int) -> UInt32? {
        guard offset >= 0, offset + 4 <= bytes.count else { return nil }
        return UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }
}

/// What one path's controller answered.
public enum NVMeANAAnswer: Sendable, Equatable {
    /// The namespace's ANA state (the low 4 bits of the descriptor's state byte).
    case state(UInt8)
    /// The controller does not report ANA states (CMIC bit 3 clear).
    case notReported
    /// A command failed: -errno of the open or ioctl, or the NVMe status the controller gave.
    case failed(Int32)
}

/// Asks paths' controllers for their ANA state (events thread; allocates).
///
/// Each path is asked on a short-lived thread: the admin passthrough ioctl waits for the
/// controller, as long as the NVMe admin timeout and its reset take on a controller that does not
/// answer. The caller waits for a batch at most `waitNs`. A path still unanswered then is an
/// orphan: its thread keeps going, it is not asked again until the thread returns, and its
/// answer is dropped. At most `window` threads run at once.
public final class NVMeANAQueries {
    public static let window = 16

    private final class Flight: @unchecked Sendable {
        let done = Atomic<Bool>(false)
        /// Written by the thread before `done` is set (releasing), read after it is seen.
        var answer = NVMeANAAnswer.failed(ETIMEDOUT)
    }

    private var orphans: [String: (flight: Flight, thread: ScratchThread)] = [:]
    private let ask: @Sendable (String, UInt32) -> NVMeANAAnswer

    /// `ask(devicePath, timeoutMs)` answers one path; tests give their own.
    public init(ask: @escaping @Sendable (String, UInt32) -> NVMeANAAnswer = NVMeANAQueries.askController) {
        self.ask = ask
    }

    /// Paths whose last question has not returned.
    public var orphanKeys: Set<String> {
        reapOrphans()
        return Set(orphans.keys)
    }

    /// Asks every `(key, devicePath)` not orphaned and returns the answers that came within
    /// `waitNs`, by key.
    public func run(_ queries: [(key: String, devicePath: String)], timeoutMs: UInt32, waitNs: Nanoseconds) -> [String: NVMeANAAnswer] {
        reapOrphans()
        let deadline = LogClock.nowNs() &+ waitNs
        var pending = queries.filter { orphans[$0.key] == nil }[...]
        var running: [(key: String, flight: Flight, thread: ScratchThread)] = []
        var answers: [String: NVMeANAAnswer] = [:]
        let ask = self.ask
        while true {
            while running.count < Self.window, let query = pending.popFirst() {
                let flight = Flight()
                let path = query.devicePath
                guard let thread = try? ScratchThread(name: "keel-ana", stackBytes: 64 * 1024, body: {
                    flight.answer = ask(path, timeoutMs)
                    flight.done.store(true, ordering: .releasing)
                }) else { continue }
                running.append((query.key, flight, thread))
            }
            var i = 0
            while i < running.count {
                if running[i].flight.done.load(ordering: .acquiring) {
                    running[i].thread.join()
                    answers[running[i].key] = running[i].flight.answer
                    running.remove(at: i)
                } else {
                    i += 1
                }
            }
            if running.isEmpty && pending.isEmpty { break }
            if LogClock.nowNs() >= deadline { break }
            usleep(1_000)
        }
        for item in running { orphans[item.key] = (item.flight, item.thread) }
        return answers
    }

    private func reapOrphans() {
        for (key, orphan) in orphans where orphan.flight.done.load(ordering: .acquiring) {
            orphan.thread.join()
            orphans[key] = nil
        }
    }

    /// The three admin commands multipath-tools' ana prioritizer sends, through the namespace
    /// block device: Identify Controller (does it report ANA, how long is its log), the
    /// namespace's id and Identify Namespace (its ANA group), then the ANA log page with
    /// "retain asynchronous event" set, so the host's own ANA handling still sees the change.
    @Sendable
    public static func askController(devicePath: String, timeoutMs: UInt32) -> NVMeANAAnswer {
        let fd = keel_nvme_open(devicePath)
        guard fd >= 0 else { return .failed(fd) }
        defer { _ = Glibc.close(fd) }
        var controller = [UInt8](repeating: 0, count: NVMeANA.identifyBytes)
        var rc = controller.withUnsafeMutableBytes {
            keel_nvme_admin(fd, 0x06, 0, 1, 0, $0.baseAddress, UInt32($0.count), timeoutMs)
        }
        guard rc == 0 else { return .failed(rc) }
        guard let facts = NVMeANA.controllerFacts(controller) else { return .failed(-EPROTO) }
        guard facts.reportsANA else { return .notReported }
        let nsid = keel_nvme_namespace_id(fd)
        guard nsid > 0 else { return .failed(nsid < 0 ? nsid : -EPROTO) }
        var namespace = [UInt8](repeating: 0, count: NVMeANA.identifyBytes)
        rc = namespace.withUnsafeMutableBytes {
            keel_nvme_admin(fd, 0x06, UInt32(nsid), 0, 0, $0.baseAddress, UInt32($0.count), timeoutMs)
        }
        guard rc == 0 else { return .failed(rc) }
        let group = NVMeANA.groupID(identifyNamespace: namespace) ?? 0
        var log = [UInt8](repeating: 0, count: NVMeANA.logLength(facts))
        let dwords = UInt32(log.count / 4 - 1)
        // Log page 0x0C (ANA), RAE (bit 15), RGO (log specific field bit 0) when supported, and
        // the dword count split between cdw10 and cdw11.
        let cdw10 = 0x0C | (1 << 15) | (facts.groupsOnly ? 1 << 8 : 0) | (dwords & 0xffff) << 16
        rc = log.withUnsafeMutableBytes {
            keel_nvme_admin(fd, 0x02, 0xffff_ffff, cdw10, dwords >> 16, $0.baseAddress, UInt32($0.count), timeoutMs)
        }
        guard rc == 0 else { return .failed(rc) }
        guard let state = NVMeANA.state(log: log, nsid: UInt32(nsid), groupID: group) else { return .failed(-ENODATA) }
        return .state(state)
    }
}
