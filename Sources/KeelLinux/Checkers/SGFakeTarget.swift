// A fake SCSI target behind the sg asynchronous protocol, for tests and simulations of the TUR
// checker: its paths can answer, stay silent (a hung device) or answer late, on demand.
import Glibc
import CKeelShim
import KeelCore

/// Fake SCSI targets for a `TURChecker`: one `SOCK_SEQPACKET` socket pair per path, whose checker
/// end is registered as the path's transport. The checker writes `sg_io_hdr` requests and reads
/// answers exactly as it does on `/dev/sgN`; this side reads the requests and answers them when
/// told to, filling the sense buffer the request points at (same process) as the sg driver does.
/// A path that is never answered is a device whose commands hang. Control-plane object: it
/// allocates at init only; `take` and `answer` allocate nothing.
public final class SGFakeTargets {
    /// The answer a target gives.
    public struct Answer: Sendable, Equatable {
        public var status: UInt8
        public var hostStatus: UInt16
        public var senseKey: UInt8
        public var asc: UInt8
        public var ascq: UInt8
        /// The data the command returns (an INQUIRY page, a block): copied to the request's
        /// buffer when the answer is given (the sg driver copies it when the answer is read, so a
        /// test answers one data-carrying path per reap: the checker has one buffer).
        public var data: [UInt8]
        public init(status: UInt8 = 0, hostStatus: UInt16 = 0, senseKey: UInt8 = 0, asc: UInt8 = 0, ascq: UInt8 = 0, data: [UInt8] = []) {
            self.data = data
            self.status = status
            self.hostStatus = hostStatus
            self.senseKey = senseKey
            self.asc = asc
            self.ascq = ascq
        }
        /// TEST UNIT READY: GOOD.
        public static let good = Answer()
        /// CHECK CONDITION with fixed-format sense data.
        public static func checkCondition(key: UInt8, asc: UInt8, ascq: UInt8) -> Answer {
            Answer(status: 0x02, senseKey: key, asc: asc, ascq: ascq)
        }
    }

    public let pathsCount: Int
    /// This side's end of each path's socket pair (non-blocking).
    private let ends: UnsafeMutablePointer<Int32>
    /// Requests read and not answered yet, per path (the sense pointer of the oldest).
    private let waiting: UnsafeMutablePointer<Int>
    private let senseOfWaiting: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let senseCapacity: UnsafeMutablePointer<Int>
    private let dataOfWaiting: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let dataCapacity: UnsafeMutablePointer<UInt32>
    /// Operation code and page (CDB bytes 0 and 2) of each path's latest request.
    private let commands: UnsafeMutablePointer<(UInt8, UInt8)>
    private let header: UnsafeMutablePointer<sg_io_hdr>

    /// Creates `paths` targets and registers each with `checker` as path `index` (0..<paths).
    public init(paths: Int, checker: TURChecker, check: SCSICheck = .tur) throws(SystemError) {
        pathsCount = paths
        ends = .allocate(capacity: paths)
        ends.initialize(repeating: -1, count: paths)
        waiting = .allocate(capacity: paths)
        waiting.initialize(repeating: 0, count: paths)
        senseOfWaiting = .allocate(capacity: paths)
        senseOfWaiting.initialize(repeating: nil, count: paths)
        senseCapacity = .allocate(capacity: paths)
        senseCapacity.initialize(repeating: 0, count: paths)
        dataOfWaiting = .allocate(capacity: paths)
        dataOfWaiting.initialize(repeating: nil, count: paths)
        dataCapacity = .allocate(capacity: paths)
        dataCapacity.initialize(repeating: 0, count: paths)
        commands = .allocate(capacity: paths)
        commands.initialize(repeating: (0, 0), count: paths)
        header = .allocate(capacity: 1)
        header.initialize(to: sg_io_hdr())
        for path in 0..<paths {
            var pair: [Int32] = [-1, -1]
            let type = Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
            _ = try systemCall("socketpair") { socketpair(AF_UNIX, type, 0, &pair) }
            ends[path] = pair[0]
            try checker.register(path: PathHandle(index: path), transport: pair[1], check: check)
        }
    }

    deinit {
        for path in 0..<pathsCount where ends[path] >= 0 { close(ends[path]) }
        ends.deallocate()
        waiting.deallocate()
        senseOfWaiting.deallocate()
        senseCapacity.deallocate()
        dataOfWaiting.deallocate()
        dataCapacity.deallocate()
        commands.deallocate()
        header.deallocate()
    }

    /// Reads the requests `path`'s checker has written since the last call; returns how many
    /// requests now wait for an answer. A fake target holds at most one (the checker never sends
    /// a second while one is out); the sense pointer of the latest is kept.
    @discardableResult
    public func take(_ path: Int) -> Int {
        let size = MemoryLayout<sg_io_hdr>.size
        while true {
            let got = read(ends[path], header, size)
            guard got == size else { break }
            waiting[path] += 1
            senseOfWaiting[path] = header.pointee.sbp.map { UnsafeMutableRawPointer($0) }
            senseCapacity[path] = Int(header.pointee.mx_sb_len)
            dataOfWaiting[path] = header.pointee.dxferp
            dataCapacity[path] = header.pointee.dxfer_len
            if let cdb = header.pointee.cmdp, header.pointee.cmd_len >= 3 { commands[path] = (cdb[0], cdb[2]) }
        }
        return waiting[path]
    }

    /// Operation code and page (CDB bytes 0 and 2) of `path`'s latest request read by `take`.
    public func lastCommand(_ path: Int) -> (operation: UInt8, page: UInt8) { commands[path] }

    /// The first `count` bytes of the data buffer of `path`'s latest request (what a data-out
    /// command sends), read from the checker's buffer in this process. For tests.
    public func requestData(_ path: Int, count: Int) -> [UInt8] {
        guard let data = dataOfWaiting[path] else { return [] }
        let bytes = min(count, Int(dataCapacity[path]))
        return Array(UnsafeRawBufferPointer(start: data, count: bytes))
    }

    /// Answers `path`'s oldest waiting request; false when none waits.
    @discardableResult
    public func answer(_ path: Int, _ answer: Answer = .good) -> Bool {
        take(path)
        guard waiting[path] > 0 else { return false }
        waiting[path] -= 1
        header.pointee = sg_io_hdr()
        header.pointee.interface_id = Int32(UInt8(ascii: "S"))
        header.pointee.status = answer.status
        header.pointee.masked_status = answer.status >> 1
        header.pointee.host_status = answer.hostStatus
        if answer.status != 0 || answer.hostStatus != 0 { header.pointee.info = 1 }
        let capacity = dataCapacity[path]
        header.pointee.dxfer_len = capacity
        header.pointee.resid = Int32(capacity)
        if capacity > 0, let buffer = dataOfWaiting[path] {
            let count = min(answer.data.count, Int(capacity))
            answer.data.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: count) }
            header.pointee.resid = Int32(Int(capacity) - count)
        }
        if answer.senseKey != 0, let sense = senseOfWaiting[path], senseCapacity[path] >= 14 {
            // Fixed-format sense: response code 0x70, key at 2, ASC/ASCQ at 12/13.
            let bytes = sense.assumingMemoryBound(to: UInt8.self)
            bytes.update(repeating: 0, count: 14)
            bytes[0] = 0x70
            bytes[2] = answer.senseKey
            bytes[7] = 6
            bytes[12] = answer.asc
            bytes[13] = answer.ascq
            header.pointee.sb_len_wr = 14
        }
        let size = MemoryLayout<sg_io_hdr>.size
        return write(ends[path], header, size) == size
    }

    /// Answers every path in `paths` that has a request waiting; returns how many it answered.
    @discardableResult
    public func answerAll(_ paths: Range<Int>, _ answer: Answer = .good) -> Int {
        var answered = 0
        for path in paths where self.answer(path, answer) { answered += 1 }
        return answered
    }
}
