// SCSI commands for the prioritizers that ask the array (rdac, emc, hds, hp_sw, ontap, datacore,
// path_latency): sent to many paths at once through the sg driver's asynchronous interface, with
// one deadline for the whole batch, so a path whose device never answers costs the events thread
// at most that deadline once, and nothing after: its command stays an orphan of the path, which is
// not asked again until the kernel gives the command back.
import Glibc
import CKeelShim
import KeelCore

/// One command a prioritizer sends to one path.
public struct SGQuery: Sendable, Equatable {
    /// The path's kernel name (`sdc`): what the answer and any orphan are kept under.
    public var key: String
    /// The path's SCSI generic node (`/dev/sg2`).
    public var genericPath: String
    /// The CDB (6, 10 or 16 bytes).
    public var cdb: [UInt8]
    /// Bytes the command returns (0: none).
    public var dataBytes: Int
    /// `sg_io_hdr.timeout`: when the kernel aborts the command itself.
    public var timeoutMs: UInt32

    public init(key: String, genericPath: String, cdb: [UInt8], dataBytes: Int, timeoutMs: UInt32) {
        self.key = key
        self.genericPath = genericPath
        self.cdb = cdb
        self.dataBytes = dataBytes
        self.timeoutMs = timeoutMs
    }
}

/// A command's answer: status, sense and the bytes it returned.
public struct SGReply: Sendable, Equatable {
    public var answer: SGAnswer
    public var data: [UInt8]
    /// From the write of the request to the read of its answer.
    public var latencyNs: Nanoseconds

    public init(answer: SGAnswer, data: [UInt8] = [], latencyNs: Nanoseconds = 0) {
        self.answer = answer
        self.data = data
        self.latencyNs = latencyNs
    }

    /// GOOD, with no host or driver status.
    public var isGood: Bool { answer.ioctlErrno == 0 && answer.status & 0x7e == 0 && answer.hostStatus == 0 && answer.driverStatus & 0xf == 0 }
}

/// Sends batches of `SGQuery`s and collects their answers (events thread; allocates).
public final class SGQueryRunner {
    /// Opens a query's node: a descriptor, or -errno. Tests give the fake target's end.
    public typealias Opener = (SGQuery) -> Int32

    /// Commands in flight at once (descriptors opened beside the checkers' own; `FileLimit`
    /// keeps room for them).
    public static let window = 128
    static let senseBytes = 32

    private struct Request {
        var key: String
        var fd: Int32
        var header: UnsafeMutablePointer<sg_io_hdr>
        var cdb: UnsafeMutablePointer<UInt8>
        var sense: UnsafeMutablePointer<UInt8>
        var data: UnsafeMutableRawPointer?
        var sentNs: Nanoseconds

        func release() {
            _ = Glibc.close(fd)
            header.deallocate()
            cdb.deallocate()
            sense.deallocate()
            data?.deallocate()
        }
    }

    private let open: Opener
    private let clock: () -> Nanoseconds
    /// Paths whose last command was not answered by its deadline: the descriptor and buffers
    /// stay until the kernel returns it (the sg driver copies a late answer into them).
    private var orphans: [String: Request] = [:]
    /// Commands that were still in the kernel at their deadline, and the ones that came back.
    public private(set) var timedOut = 0
    public private(set) var lateAnswers = 0

    public init(open: @escaping Opener = SGQueryRunner.openGeneric, clock: @escaping () -> Nanoseconds = LogClock.nowNs) {
        self.open = open
        self.clock = clock
    }

    deinit {
        for (_, request) in orphans { request.release() }
    }

    /// Opens `/dev/sgN` read-write and non-blocking; -errno on failure (not a sg node: ENOTTY).
    public static func openGeneric(_ query: SGQuery) -> Int32 {
        let fd = keel_checkers_open_sg(query.genericPath)
        return fd >= 0 ? fd : -keel_errno()
    }

    /// Paths with a command still in the kernel.
    public var orphanKeys: Set<String> {
        reapOrphans()
        return Set(orphans.keys)
    }

    /// Sends every query (at most `window` in flight) and waits for the answers until `waitNs`
    /// after its start. Returns what was answered, by key. A query whose path has an orphan is
    /// not sent (no answer); a query that cannot be sent gets an answer carrying the errno (but
    /// none when the process is out of descriptors); one unanswered at the deadline becomes its
    /// path's orphan and gets no answer.
    public func run(_ queries: [SGQuery], waitNs: Nanoseconds) -> [String: SGReply] {
        reapOrphans()
        let deadline = clock() &+ waitNs
        var replies: [String: SGReply] = [:]
        var pending = queries.filter { orphans[$0.key] == nil }[...]
        var inFlight: [Request] = []
        var polls: [pollfd] = []
        while !pending.isEmpty || !inFlight.isEmpty {
            while inFlight.count < Self.window, let query = pending.popFirst() {
                let sent = send(query)
                if let request = sent.request {
                    inFlight.append(request)
                } else if sent.errno != EMFILE && sent.errno != ENFILE {
                    replies[query.key] = SGReply(answer: SGAnswer(ioctlErrno: sent.errno))
                }   // out of descriptors: no answer, the path keeps its priority until next time
            }
            guard !inFlight.isEmpty else { break }
            let now = clock()
            if now >= deadline {
                for request in inFlight { orphan(request) }
                inFlight.removeAll()
                break   // queries not sent yet get no answer: asked again next time
            }
            polls = inFlight.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let timeoutMs = Int32(clamping: max(1, (deadline - now + 999_999) / 1_000_000))
            let ready = poll(&polls, nfds_t(polls.count), timeoutMs)
            if ready < 0 && keel_errno() != EINTR { break }
            var still: [Request] = []
            for (request, polled) in zip(inFlight, polls) {
                guard polled.revents != 0, let reply = receive(request) else { still.append(request); continue }
                replies[request.key] = reply
                request.release()
            }
            inFlight = still
        }
        for request in inFlight { orphan(request) }
        return replies
    }

    private func orphan(_ request: Request) {
        timedOut += 1
        orphans[request.key] = request
    }

    /// Reads the orphans the kernel has given back, and frees them.
    private func reapOrphans() {
        guard !orphans.isEmpty else { return }
        var polls = orphans.values.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        guard poll(&polls, nfds_t(polls.count), 0) > 0 else { return }
        let readable = Set(polls.filter { $0.revents != 0 }.map(\.fd))
        for (key, request) in orphans where readable.contains(request.fd) {
            _ = receive(request)
            request.release()
            orphans[key] = nil
            lateAnswers += 1
        }
    }

    /// The request in flight, or the errno that kept it from being sent.
    private func send(_ query: SGQuery) -> (request: Request?, errno: Int32) {
        let fd = open(query)
        guard fd >= 0 else { return (nil, -fd) }
        let cdbLength = min(query.cdb.count, 16)
        let request = Request(key: query.key, fd: fd, header: .allocate(capacity: 1), cdb: .allocate(capacity: 16),
                              sense: .allocate(capacity: Self.senseBytes),
                              data: query.dataBytes > 0 ? .allocate(byteCount: query.dataBytes, alignment: 16) : nil,
                              sentNs: clock())
        request.cdb.initialize(repeating: 0, count: 16)
        for i in 0..<cdbLength { request.cdb[i] = query.cdb[i] }
        request.sense.initialize(repeating: 0, count: Self.senseBytes)
        request.data?.initializeMemory(as: UInt8.self, repeating: 0, count: query.dataBytes)
        var header = sg_io_hdr()
        header.interface_id = Int32(UInt8(ascii: "S"))
        if let data = request.data {
            header.dxfer_direction = SG_DXFER_FROM_DEV
            header.dxfer_len = UInt32(query.dataBytes)
            header.dxferp = data
        } else {
            header.dxfer_direction = SG_DXFER_NONE
        }
        header.cmd_len = UInt8(cdbLength)
        header.cmdp = request.cdb
        header.mx_sb_len = UInt8(Self.senseBytes)
        header.sbp = request.sense
        header.timeout = query.timeoutMs
        request.header.initialize(to: header)
        let size = MemoryLayout<sg_io_hdr>.size
        while true {
            let written = write(fd, request.header, size)
            if written == size { return (request, 0) }
            let error = written < 0 ? keel_errno() : EIO
            if error == EINTR { continue }
            request.release()
            return (nil, error)
        }
    }

    /// Reads `request`'s answer; nil when none is there yet.
    private func receive(_ request: Request) -> SGReply? {
        let size = MemoryLayout<sg_io_hdr>.size
        var header = sg_io_hdr()
        header.interface_id = Int32(UInt8(ascii: "S"))
        while true {
            let got = read(request.fd, &header, size)
            if got == size { break }
            if got < 0 && keel_errno() == EINTR { continue }
            if got < 0 && keel_errno() == EAGAIN { return nil }
            return SGReply(answer: SGAnswer(ioctlErrno: got < 0 ? keel_errno() : EIO))
        }
        let answer = SGAnswer(header: header, sense: request.sense, senseCapacity: Self.senseBytes)
        var data: [UInt8] = []
        if let buffer = request.data {
            let length = Int(header.dxfer_len)
            let count = max(0, min(length, length - Int(header.resid)))
            data = Array(UnsafeRawBufferPointer(start: buffer, count: count))
        }
        return SGReply(answer: answer, data: data, latencyNs: clock() - request.sentNs)
    }
}

/// Evaluates many paths' SCSI prioritizers at once: every path's command goes out in the same
/// batch, the answers decide the next round (ontap's second page, hp_sw's resent TUR,
/// path_latency's next read), and each round waits at most `waitNs`.
public enum SCSIPriorities {
    /// One path to evaluate.
    public struct Subject: Sendable {
        public var key: String
        public var genericPath: String
        public var prioritizer: SCSIPrioritizer
        /// The commands' `sg_io_hdr.timeout` (datacore's `timeout=` wins).
        public var timeoutMs: UInt32
        public init(key: String, genericPath: String, prioritizer: SCSIPrioritizer, timeoutMs: UInt32) {
            self.key = key
            self.genericPath = genericPath
            self.prioritizer = prioritizer
            self.timeoutMs = timeoutMs
        }
    }

    /// The priorities of `subjects` by key: a value, or nil when the prioritizer has none. A path
    /// whose command was not answered in time, or has an orphan, is absent (it keeps what it has).
    /// So is a path the command could not reach (the ioctl failed, or the host or transport
    /// reported an error): the device did not answer, and a dead path keeps its priority until it
    /// answers again, as multipathd does not ask a path it knows is down. Only the device's own
    /// answers (GOOD, or a status with sense) are read.
    public static func evaluate(_ subjects: [Subject], runner: SGQueryRunner, waitNs: Nanoseconds) -> [String: Int?] {
        var results: [String: Int?] = [:]
        var open: [String: (path: String, timeoutMs: UInt32, evaluation: SCSIPriorityEvaluation)] = [:]
        for subject in subjects {
            open[subject.key] = (subject.genericPath, subject.timeoutMs, SCSIPriorityEvaluation(subject.prioritizer))
        }
        while !open.isEmpty {
            let queries = open.map { key, entry in
                let command = entry.evaluation.command()
                return SGQuery(key: key, genericPath: entry.path, cdb: command.cdb, dataBytes: command.dataBytes,
                               timeoutMs: entry.evaluation.timeoutMs ?? entry.timeoutMs)
            }
            let replies = runner.run(queries, waitNs: waitNs)
            var next: [String: (path: String, timeoutMs: UInt32, evaluation: SCSIPriorityEvaluation)] = [:]
            for (key, var entry) in open {
                guard let reply = replies[key] else { continue }   // unanswered: no result this time
                guard reply.answer.ioctlErrno == 0 && reply.answer.hostStatus == 0 else { continue }   // not reached
                switch entry.evaluation.take(reply) {
                case .done(let priority): results[key] = .some(priority)
                case .more: next[key] = entry
                }
            }
            open = next
        }
        return results
    }
}
