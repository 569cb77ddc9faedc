// The control thread: the operator's unix socket. One command line per connection, a text
// answer, then the connection closes. Commands for the engine go through the recovery thread's
// ring and come back on the reply ring; names come from the directory.
import Glibc
import Synchronization
import KeelCore
import KeelLinux

final class ControlThread: @unchecked Sendable {
    let shared: DaemonShared
    let listener: Int32
    let log: LogProducer
    /// Read for the per-path checker and orphan columns (atomic loads only).
    let checker: DaemonChecker
    private var nextTicket: UInt32 = 1
    /// A descriptor kept in reserve so a connection can still be taken and shed when the
    /// process is out of descriptors (see `shedOneConnection`).
    private var spare: Int32 = open("/dev/null", O_RDONLY | O_CLOEXEC)

    /// Binds the socket (a stale socket file from an earlier run is replaced).
    init(shared: DaemonShared, path: String, log: LogProducer, checker: DaemonChecker) throws(SystemError) {
        self.shared = shared
        self.log = log
        self.checker = checker
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        unlink(path)
        var address = ControlThread.address(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            let error = errno
            close(fd)
            throw SystemError("bind", errno: error)
        }
        chmod(path, 0o600)
        guard listen(fd, 16) == 0 else {
            let error = errno
            close(fd)
            throw SystemError("listen", errno: error)
        }
        listener = fd
    }

    static func address(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    func run() {
        while !shared.controlStop.load(ordering: .acquiring) {
            let readable = pollReadable([listener, shared.controlWake.descriptor], timeoutMs: 1000)
            if readable[1] { _ = shared.controlWake.drain() }
            guard readable[0] else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                let error = errno
                if error == EMFILE || error == ENFILE { shedOneConnection() }
                continue
            }
            // The listener is non-blocking; the conversation is not (bounded by its timeouts).
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) & ~O_NONBLOCK)
            serve(client)
            close(client)
        }
        close(listener)
    }

    /// Out of descriptors, a pending connection would keep the listener readable and the loop
    /// spinning: give the spare descriptor back, take the connection and close it at once (the
    /// client sees its command refused), keep the spare again, and pause briefly.
    func shedOneConnection() {
        if spare >= 0 { close(spare) }
        let client = accept(listener, nil, nil)
        if client >= 0 { close(client) }
        spare = open("/dev/null", O_RDONLY | O_CLOEXEC)
        usleep(10_000)
    }

    /// Reads one line (2 s at most), answers it.
    func serve(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        // The 2 s cover the whole request, not each receive: a client that trickles bytes is
        // dropped rather than holding the control thread.
        let deadlineNs = monotonicNs() + 2 * Time.nsPerSecond
        while bytes.count < 4096, !bytes.contains(UInt8(ascii: "\n")), monotonicNs() < deadlineNs {
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        let line = String(decoding: bytes.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        var answer = execute(line)
        if !answer.hasSuffix("\n") { answer += "\n" }
        answer.withUTF8 { out in
            var offset = 0
            while offset < out.count {
                let n = send(client, out.baseAddress! + offset, out.count - offset, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                offset += n
            }
        }
    }

    /// One command's answer. Unknown commands and bad arguments answer with `error:`.
    func execute(_ line: String) -> String {
        let request: ControlRequest
        switch ControlGrammar.parse(line) {
        case .failure(let error):
            log.log(.commandReceived, LogArgument.signed(0))
            return "error: \(error)"
        case .success(let parsed):
            request = parsed
        }
        log.log(.commandReceived, LogArgument.signed(line.split(separator: " ").count))
        switch request {
        case .showDaemon: return showDaemon()
        case .showMaps: return showMaps()
        case .showPaths: return showPaths()
        case .reconfigure:
            shared.reconfigureRequested.store(true, ordering: .releasing)
            shared.eventsWake.signal()
            return "ok: configuration reload requested"
        case .shutdown:
            shared.shutdownRequest.signal()
            return "ok: shutting down"
        case .failPath(let name), .reinstatePath(let name):
            guard let path = findPath(name) else { return "error: no path named \(name) (give a device name like sdb or MAJ:MIN)" }
            if case .failPath = request { return engineCommand(.failPath(path)) }
            return engineCommand(.reinstatePath(path))
        case .disableQueueing(let name), .restoreQueueing(let name):
            guard let map = findMap(name) else { return "error: no map named \(name)" }
            if case .disableQueueing = request { return engineCommand(.disableQueueing(map)) }
            return engineCommand(.restoreQueueing(map))
        }
    }

    /// Hands `command` to the recovery thread and waits (2 s at most) for its outcome.
    func engineCommand(_ command: OperatorCommand) -> String {
        let ticket = nextTicket
        nextTicket &+= 1
        shared.send(.command(command, ticket: ticket), unless: shared.controlStop)
        let deadline = monotonicNs() + 2 * Time.nsPerSecond
        while monotonicNs() < deadline {
            while let reply = shared.replies.pop() {
                guard reply.ticket == ticket else { continue }
                switch reply.outcome {
                case .done: return "ok"
                case .unknownPath: return "error: the engine has no such path"
                case .unknownMap: return "error: the engine has no such map"
                case .noSuchGroup: return "error: no such path group"
                case .queueingNotDisabled: return "error: queueing was not disabled on this map"
                }
            }
            _ = pollReadable([shared.replyDoorbell.descriptor], timeoutMs: 100)
            _ = shared.replyDoorbell.drain()
        }
        return "error: the recovery thread did not answer within 2 s"
    }

    func findPath(_ name: String) -> PathHandle? {
        shared.directory.withLock { directory in
            for map in directory.maps {
                for path in map.paths where path.kernelName == name || path.device.description == name { return path.handle }
            }
            return nil
        }
    }

    func findMap(_ name: String) -> MapHandle? {
        shared.directory.withLock { directory in directory.maps.first { $0.name == name || $0.wwid == name }?.handle }
    }

    func showDaemon() -> String {
        let board = shared.board
        let directory = shared.directory.withLock { $0 }
        let pathCount = directory.maps.reduce(0) { $0 + $1.paths.count }
        var lines: [String] = []
        lines.append("pid \(getpid()) \(shared.ready.load(ordering: .relaxed) ? "running" : "starting")")
        lines.append("configuration \(directory.configPath)")
        lines.append("maps \(directory.maps.count) paths \(pathCount)")
        if let memory = try? MemoryDiscipline.lockedMemory() {
            lines.append("memory locked \(memory.lockedBytes / 1024) KiB resident \(memory.residentBytes / 1024) KiB")
        }
        lines.append("pinned at start: \(directory.memory)")
        lines.append("tables \(board.pathCapacity) paths \(board.mapCapacity) maps (ceilings max_paths \(board.pathsMax) max_maps \(board.mapsMax)), "
                     + "committed \(PinnedTableMemory.committedBytes / 1024) KiB of \(PinnedTableMemory.reservedBytes / 1024) KiB reserved, "
                     + "\(TableFootprint.bytesPerPath) bytes per path + \(DirectIOChecker.bytesPerRegisteredPath) per directio path, "
                     + "\(TableFootprint.bytesPerMap) bytes per map")
        lines.append("recovery thread \(directory.recoveryScheduling)")
        lines.append("seccomp \(directory.seccomp)")
        lines.append("capabilities \(directory.capabilities)")
        lines.append("oom_score_adj \(directory.oomScore)")
        lines.append("orphaned checks \(checker.orphansInFlight) (timed out, still in the kernel)")
        lines.append("loop passes \(board.loopPasses.load(ordering: .relaxed)) inputs \(board.inputsHandled.load(ordering: .relaxed)) input ring drops \(shared.inputs.droppedCount)")
        let counters = shared.logger.counterSnapshot
        lines.append("log records written \(counters.recordsWritten) dropped \(counters.recordsDropped) file pages \(counters.filePagesWritten) file write errors \(counters.fileWriteErrors)")
        return lines.joined(separator: "\n")
    }

    func showMaps() -> String {
        let board = shared.board
        let maps = shared.directory.withLock { $0.maps }
        if maps.isEmpty { return "no maps" }
        return maps.map { map in
            let usable = map.paths.filter { path in
                switch board.state(path.handle) {
                case .up?, .ghost?: return true
                default: return false
                }
            }.count
            return "\(map.name) \(map.wwid) \(map.handle) paths=\(map.paths.count) usable=\(usable) queueing=\(board.queueing(map.handle) ? "yes" : "no") loaded=\(board.loaded(map.handle) ? "yes" : "no") adopted=\(map.adopted ? "yes" : "no")"
        }.joined(separator: "\n")
    }

    func showPaths() -> String {
        let board = shared.board
        let maps = shared.directory.withLock { $0.maps }
        var lines: [String] = []
        for map in maps {
            for path in map.paths.sorted(by: { $0.kernelName < $1.kernelName }) {
                let state = board.state(path.handle)?.description ?? "undef"
                let orphan = checker.isOrphaned(path.handle) ? " orphan=yes" : ""
                lines.append("\(path.kernelName) \(path.device) \(map.name) \(path.handle) \(map.handle) \(state) prio=\(path.priority) checker=\(checker.kind(of: path.handle))\(orphan)")
            }
        }
        return lines.isEmpty ? "no paths" : lines.joined(separator: "\n")
    }
}

/// `keeld --command TEXT`: sends one command to a running keeld and prints the answer.
func runClient(command: String, socketPath: String) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { say("socket: \(String(cString: strerror(errno)))"); return 1 }
    defer { close(fd) }
    var address = ControlThread.address(socketPath)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard connected == 0 else {
        say("cannot reach keeld at \(socketPath): \(String(cString: strerror(errno)))")
        return 1
    }
    var request = command + "\n"
    request.withUTF8 { _ = send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    var answer: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        answer.append(contentsOf: chunk[0..<n])
    }
    let text = String(decoding: answer, as: UTF8.self)
    var out = text
    out.withUTF8 { _ = write(1, $0.baseAddress, $0.count) }
    return text.hasPrefix("error:") ? 1 : 0
}
