// The control thread: the operator's sockets. keeld's own (`--control-socket`: one line in, the
// answer, then the connection closes) and multipathd's abstract socket with its framing, so
// Debian's `multipathd` client and libdmmp talk to keeld unchanged. One poll loop serves every
// client (ControlServer): a slow or hostile client never holds the others. Commands for the
// engine go through the recovery thread's ring; their answers come back on the reply ring
// without the loop waiting for them. Names come from the directory, kernel states from
// read-only dm ioctls.
import Glibc
import Synchronization
import KeelCore
import KeelLinux

/// multipathd's socket name (abstract: `@/org/kernel/linux/storage/multipathd`).
let multipathdSocketName = "/org/kernel/linux/storage/multipathd"

final class ControlThread: ControlService, @unchecked Sendable {
    let shared: DaemonShared
    let log: LogProducer
    /// Read for the per-path checker and orphan columns (atomic loads only).
    let checker: DaemonChecker
    let server: ControlServer
    /// Read-only dm queries (tables, statuses) for the views; nil when /dev/mapper/control
    /// cannot be opened.
    let control: DMControl?
    /// Why multipathd's socket is not served (another process holds it), if it is not.
    private(set) var multipathdSocketProblem: SystemError?
    /// multipathd's socket file, when keeld bound it (removed at exit).
    private(set) var multipathdPath: String?
    private var nextTicket: UInt32 = 1

    /// An operator request waiting for the recovery thread: its tickets not answered yet and
    /// the first failure.
    private struct Waiting {
        var framing: ControlFraming
        var tickets: Set<UInt32>
        var failure: String?
    }
    private var waiting: [ControlToken: Waiting] = [:]
    private var ticketOwners: [UInt32: ControlToken] = [:]
    private var answers: [(token: ControlToken, answer: String)] = []
    /// Orders handed to the events thread, by id: who asked and how to answer.
    private var orderOwners: [UInt32: (token: ControlToken, framing: ControlFraming)] = [:]
    /// `reset map(s) stats`: each map's counters (by WWID) when they were reset; shown counts
    /// are taken from there (a reload resets the kernel's counts, which drops the baseline).
    private var statBaselines: [String: StatBaseline] = [:]
    /// A map's counts when `reset map stats` was last said; each shown count is taken from it.
    private struct StatBaseline {
        var faults = 0, loads = 0, switches = 0, timeouts = 0, failures = 0, seconds = 0

        /// `count` less the baseline, which is dropped to 0 first when the count went below it
        /// (a table load restarts the kernel's counts; a map added again starts at zero).
        static func shown(_ count: Int, _ base: inout Int) -> Int {
            if count < base { base = 0 }
            return count - base
        }
    }

    /// Binds keeld's socket (a stale socket file from an earlier run is replaced) and, unless
    /// another process holds it, multipathd's: the abstract name, and the file newer
    /// multipathds also listen on (`multipathdPath`, for containers that bind-mount it and
    /// exporters that read it), which is taken only when the abstract name was free, so a
    /// running multipathd's file is never replaced.
    init(shared: DaemonShared, path: String, multipathdPath: String? = nil, metricsPort: UInt16? = nil, log: LogProducer,
         checker: DaemonChecker) throws(SystemError) {
        self.shared = shared
        self.log = log
        self.checker = checker
        server = ControlServer()
        try server.listen(path: path, framing: .line)
        do throws(SystemError) {
            try server.listen(abstract: multipathdSocketName, framing: .multipathd)
            if let multipathdPath {
                do throws(SystemError) {
                    // Anyone may connect, as to the abstract name; SO_PEERCRED keeps changes to root.
                    try server.listen(path: multipathdPath, framing: .multipathd, mode: 0o666)
                    self.multipathdPath = multipathdPath
                } catch {
                    say("warning: multipathd's socket file \(multipathdPath) not served: \(error)")
                }
            }
        } catch {
            multipathdSocketProblem = error
        }
        if let metricsPort {
            do throws(SystemError) {
                try server.listen(localhostPort: metricsPort, framing: .http)
            } catch {
                metricsPortProblem = error
                say("warning: metrics not served on 127.0.0.1:\(metricsPort): \(error)")
            }
        }
        control = try? DMControl()
    }

    /// Why the metrics port is not served, if it was asked for and is not.
    private(set) var metricsPortProblem: SystemError?

    /// A scraper's HTTP request: `GET /metrics` answers the Prometheus exposition, anything
    /// else 404 or 405. Read-only, so any peer may ask.
    func httpAnswer(_ requestLine: String) -> String {
        let words = requestLine.split(separator: " ")
        guard words.count >= 2, words[0] == "GET" || words[0] == "HEAD" else {
            return ControlServer.httpResponse(status: "405 Method Not Allowed", body: "keeld answers GET /metrics\n")
        }
        guard words[1] == "/metrics" || words[1].hasPrefix("/metrics?") else {
            return ControlServer.httpResponse(status: "404 Not Found", body: "keeld answers GET /metrics\n")
        }
        let body = words[0] == "HEAD" ? "" : metrics()
        return ControlServer.httpResponse(status: "200 OK", contentType: "text/plain; version=0.0.4; charset=utf-8", body: body)
    }

    var wakeDescriptor: Int32 { shared.replyDoorbell.descriptor }

    func run() {
        let wake = shared.controlWake.descriptor
        while !shared.controlStop.load(ordering: .acquiring) {
            let readable = server.turn(service: self, timeoutMs: 1000, extra: [wake])
            if readable[0] { _ = shared.controlWake.drain() }
        }
    }

    // MARK: - ControlService

    func begin(_ text: String, framing: ControlFraming, peer: PeerCredentials, token: ControlToken) -> ControlStart {
        if framing == .http { return .reply(httpAnswer(text)) }
        let request: ControlRequest
        switch ControlGrammar.parse(text) {
        case .failure(let error):
            log.log(.commandReceived, LogArgument.signed(0))
            return .reply(failure(error.description, framing))
        case .success(let parsed):
            request = parsed
        }
        log.log(.commandReceived, LogArgument.signed(text.split(separator: " ").count))
        if !request.readOnly && peer.uid != 0 {
            return .reply(failure("permission deny: need to be root", framing))
        }
        switch request {
        case .quit: return .close
        case .showDaemon: return .reply(framing == .line ? showDaemon() : "pid \(getpid()) \(shared.ready.load(ordering: .relaxed) ? "idle" : "configure")\n")
        case .showMaps: return .reply(framing == .line ? showMaps() : MultipathdViews.maps(views()))
        case .showPaths: return .reply(framing == .line ? showPaths() : MultipathdViews.paths(views().flatMap(\.paths)))
        case .showPathsFormat(let format, let raw): return .reply(MultipathdViews.paths(views().flatMap(\.paths), format: format, raw: raw))
        case .showMapsFormat(let format, let raw): return .reply(MultipathdViews.maps(views(), format: format, raw: raw))
        case .showPath(let name):
            guard let line = MultipathdViews.path(name, in: views().flatMap(\.paths)) else { return .reply(failure("device not found", framing)) }
            return .reply(line)
        case .showMapFormat(let name, let format, let raw):
            guard let line = MultipathdViews.map(name, in: views(), format: format, raw: raw) else { return .reply(failure("device not found", framing)) }
            return .reply(line)
        case .showMapsStatus: return .reply(MultipathdViews.maps(views(), format: MultipathdViews.mapsStatusFormat))
        case .showMapsStats: return .reply(MultipathdViews.maps(views(), format: "%n %0 %2"))
        case .showTopology(let name):
            let maps = views().filter { name == nil || $0.name == name || $0.wwid == name }
            if name != nil && maps.isEmpty { return .reply(failure("device not found", framing)) }
            return .reply(MultipathdViews.topology(maps))
        case .showJSON(let name):
            let maps = views()
            guard let name else { return .reply(MultipathdViews.json(maps)) }
            guard let map = maps.first(where: { $0.name == name || $0.wwid == name }) else { return .reply(failure("device not found", framing)) }
            return .reply(MultipathdViews.json(map: map))
        case .showStatus: return .reply(MultipathdViews.status(views().flatMap(\.paths)))
        case .showConfig:
            // Copied under the lock, matched outside it: the events thread publishes through it.
            let (text, configuration, maps) = shared.directory.withLock { d in
                (d.configurationText, d.configuration, d.maps.map { ($0.name, $0.wwid, $0.vendor, $0.product, $0.revision) })
            }
            let origins = configuration.renderOrigins(maps: maps)
            return .reply(origins.isEmpty ? text : text + origins)
        case .showBlacklist:
            let text = shared.directory.withLock { $0.configurationText }
            return .reply(Self.sections(["blacklist", "blacklist_exceptions"], of: text))
        case .showDevices:
            let paths = views().flatMap(\.paths)
            return .reply("available block devices:\n" + paths.map { "    \($0.dev) devnode whitelisted, monitored\n" }.joined())
        case .showWildcards: return .reply(MultipathdViews.wildcards())
        case .showMetrics: return .reply(metrics())
        case .reconfigure:
            shared.reconfigureRequested.store(true, ordering: .releasing)
            shared.eventsWake.signal()
            return .reply(success(framing, detail: "configuration reload requested"))
        case .shutdown:
            shared.shutdownRequest.signal()
            return .reply(success(framing, detail: "shutting down"))
        case .failPath(let name), .reinstatePath(let name):
            guard let path = findPath(name) else { return .reply(failure("device not found: no path named \(name) (give sdb or MAJ:MIN)", framing)) }
            if case .failPath = request { return send([.failPath(path)], token: token, framing: framing) }
            return send([.reinstatePath(path)], token: token, framing: framing)
        case .disableQueueing(let name), .restoreQueueing(let name):
            guard let map = findMap(name) else { return .reply(failure("device not found: no map named \(name)", framing)) }
            if case .disableQueueing = request { return send([.disableQueueing(map)], token: token, framing: framing) }
            return send([.restoreQueueing(map)], token: token, framing: framing)
        case .disableQueueingAll, .restoreQueueingAll:
            let maps = shared.directory.withLock { $0.maps.map(\.handle) }
            let disable = request == .disableQueueingAll
            return send(maps.map { disable ? .disableQueueing($0) : .restoreQueueing($0) }, token: token, framing: framing)
        case .switchGroup(let name, let group):
            guard let map = findMap(name) else { return .reply(failure("device not found: no map named \(name)", framing)) }
            return send([.switchGroup(map, group: UInt16(group))], token: token, framing: framing)
        case .reloadMap(let name):
            guard let map = findMap(name) else { return .reply(failure("device not found: no map named \(name)", framing)) }
            shared.send(.requestReload(map), unless: shared.controlStop)
            return .reply(success(framing, detail: "table reload of \(name) requested"))
        case .forceQueueingDaemon, .restoreQueueingDaemon:
            shared.forceQueueingAtExit.store(request == .forceQueueingDaemon, ordering: .releasing)
            return .reply(success(framing, detail: request == .forceQueueingDaemon
                                  ? "maps keep queueing when keeld stops" : "queueing at exit follows the configuration again"))
        case .addPath, .delPath, .addMap, .delMap, .delMaps, .suspendMap, .resumeMap, .resizeMap, .reassignMap:
            return order(request, token: token, framing: framing)
        case .resetStats(let name):
            let maps = views().filter { name == nil || $0.name == name || $0.wwid == name }
            if let name, maps.isEmpty { return .reply(failure("device not found: no map named \(name)", framing)) }
            for map in maps {
                var base = statBaselines[map.wwid] ?? StatBaseline()
                base.faults += map.pathFaults
                base.loads += map.mapLoads
                base.switches += map.groupSwitches
                base.timeouts += map.queueingTimeouts
                base.failures += map.mapFailures
                base.seconds += map.queueingSeconds
                statBaselines[map.wwid] = base
            }
            return .reply(success(framing, detail: "statistics of \(maps.count) map\(maps.count == 1 ? "" : "s") reset"))
        case .getPRStatus(let name), .getPRKey(let name):
            guard let map = shared.directory.withLock({ $0.maps.first { $0.name == name || $0.wwid == name } }) else {
                return .reply(failure("device not found: no map named \(name)", framing))
            }
            if case .getPRStatus = request {
                let registered = map.reservation.registered ?? map.paths.contains { checker.registration(of: $0.handle) == .registered }
                return .reply(registered ? "1" : "0")
            }
            return .reply((map.reservation.key?.description ?? "none") + "\n")
        case .setPRKey(let name, let key):
            guard let parsed = ReservationKey(parsing: key), parsed.value != 0 else {
                return .reply(failure("\(name): invalid reservation key '\(key)' (up to 16 hex digits, 0x optional, :aptpl optional)", framing))
            }
            return order(.setPRKey(map: name, key: parsed.description), token: token, framing: framing)
        case .setMarginal(let name), .unsetMarginal(let name):
            guard let path = findPath(name) else { return .reply(failure("device not found: no path named \(name) (give sdb or MAJ:MIN)", framing)) }
            return send([.setMarginal(path, request == .setMarginal(path: name))], token: token, framing: framing)
        case .unsetMarginalMap(let name):
            guard let map = findMap(name) else { return .reply(failure("device not found: no map named \(name)", framing)) }
            let paths = shared.directory.withLock { $0.maps.first { $0.handle == map }?.paths.map(\.handle) ?? [] }
            return send(paths.map { .setMarginal($0, false) }, token: token, framing: framing)
        case .setPRStatus, .unsetPRStatus, .unsetPRKey:
            return order(request, token: token, framing: framing)
        case .unsupported(let what):
            return .reply(failure("'\(what)' is a multipathd command keeld does not carry out", framing))
        }
    }

    func collect() -> [(token: ControlToken, answer: String)] {
        let done = shared.orders.withLock { desk in
            defer { desk.answered.removeAll() }
            return desk.answered
        }
        for answer in done {
            guard let owner = orderOwners.removeValue(forKey: answer.id) else { continue }
            answers.append((owner.token, answer.failure.map { failure($0, owner.framing) } ?? success(owner.framing, detail: answer.detail)))
        }
        _ = shared.replyDoorbell.drain()
        while let reply = shared.replies.pop() {
            guard let token = ticketOwners.removeValue(forKey: reply.ticket), var request = waiting[token] else { continue }
            request.tickets.remove(reply.ticket)
            if request.failure == nil, let why = Self.refusal(reply.outcome) { request.failure = why }
            if request.tickets.isEmpty {
                waiting[token] = nil
                answers.append((token, request.failure.map { failure($0, request.framing) } ?? success(request.framing)))
            } else {
                waiting[token] = request
            }
        }
        defer { answers.removeAll() }
        return answers
    }

    func abandon(_ token: ControlToken) {
        for (id, owner) in orderOwners where owner.token == token { orderOwners[id] = nil }
        guard let request = waiting.removeValue(forKey: token) else { return }
        for ticket in request.tickets { ticketOwners[ticket] = nil }
    }

    /// Hands `order` to the events thread; the answer comes from `collect`.
    private func order(_ order: ControlRequest, token: ControlToken, framing: ControlFraming) -> ControlStart {
        let id = nextTicket
        nextTicket &+= 1
        orderOwners[id] = (token, framing)
        shared.orders.withLock { $0.pending.append((id, order)) }
        shared.eventsWake.signal()
        return .later
    }

    /// Hands `commands` to the recovery thread; the answer comes from `collect`.
    private func send(_ commands: [OperatorCommand], token: ControlToken, framing: ControlFraming) -> ControlStart {
        if commands.isEmpty { return .reply(success(framing)) }
        var request = Waiting(framing: framing, tickets: [], failure: nil)
        for command in commands {
            let ticket = nextTicket
            nextTicket &+= 1
            request.tickets.insert(ticket)
            ticketOwners[ticket] = token
            shared.send(.command(command, ticket: ticket), unless: shared.controlStop)
        }
        waiting[token] = request
        return .later
    }

    private static func refusal(_ outcome: OperatorOutcome) -> String? {
        switch outcome {
        case .done: return nil
        case .unknownPath: return "device not found: the engine has no such path"
        case .unknownMap: return "device not found: the engine has no such map"
        case .noSuchGroup: return "no such path group"
        case .queueingNotDisabled: return "queueing was not disabled on this map"
        }
    }

    /// multipathd answers `ok` or `fail` and a reason; keeld's own socket says `ok: ...` or
    /// `error: ...`.
    private func success(_ framing: ControlFraming, detail: String = "") -> String {
        framing == .multipathd ? "ok\n" : (detail.isEmpty ? "ok" : "ok: " + detail)
    }

    private func failure(_ why: String, _ framing: ControlFraming) -> String {
        framing == .multipathd ? "fail\n\(why)\n" : "error: " + why
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

    // MARK: - Views

    /// Every map as the operator sees it: names from the directory, groups and kernel states
    /// from the map's table and status, checker states from the state board.
    func views() -> [MapView] {
        let board = shared.board
        let maps = shared.directory.withLock { $0.maps }
        let kernelMaps = (try? control?.listMultipathMaps()) ?? []
        var transportNames: [String: TransportNames] = [:]  // per host and remote port, shared by their maps
        return maps.map { map in
            var byDevice: [DevNo: Directory.PathEntry] = [:]
            for p in map.paths { byDevice[p.device] = p }
            let table = try? control?.multipathTable(name: map.name)
            let status = try? control?.multipathStatus(name: map.name)
            func pathView(_ device: DevNo, active: Bool?) -> PathView {
                let entry = byDevice[device]
                let state = entry.flatMap { board.state($0.handle) }
                let name = entry?.kernelName ?? ""
                let devState = name.isEmpty ? "undef" : (SysfsFiles.readText("/sys/block/\(name)/device/state") ?? "undef")
                var view = PathView(hcil: entry?.address.description ?? "#:#:#:#", dev: name.isEmpty ? "#" : name, devT: device.description,
                                dmState: active.map { $0 ? "active" : "failed" } ?? "undef",
                                checkerState: Self.checkerWord(state), devState: devState, priority: Int(entry?.priority ?? 0),
                                checker: Self.checkerName(entry?.checker, check: entry.flatMap { e in checker.tur?.check(of: e.handle) }), wwid: map.wwid, vendor: map.vendor, product: map.product,
                                map: map.name, orphanedCheck: entry.map { checker.isOrphaned($0.handle) } ?? false)
                view.marginal = entry.map { board.marginal($0.handle) } ?? false
                view.sizeSectors = map.sizeSectors
                if let entry {
                    view.serial = entry.serial
                    view.revision = entry.revision
                    view.protocolName = entry.transport.protocolName
                    view.targetWWNN = entry.transportNodeName.isEmpty ? "[undef]" : entry.transportNodeName
                    let key = "\(entry.address.host) \(entry.transportObject)"
                    let names = transportNames[key] ?? TransportNames.read(sysfsRoot: "/sys", host: entry.address.host,
                                                                            transport: entry.transport, transportObject: entry.transportObject)
                    transportNames[key] = names
                    view.hostWWNN = names.hostWWNN
                    view.hostWWPN = names.hostWWPN
                    view.targetWWPN = names.targetWWPN
                    view.hostAdapter = names.hostAdapter
                    view.targetPortGroup = map.usesTargetPortGroups ? entry.targetPortGroup : nil
                    view.maxSectorsKB = SysfsFiles.readText("/sys/block/\(name)/queue/max_sectors_kb").flatMap { Int($0) }
                }
                return view
            }
            var groups: [GroupView] = []
            if let table {
                for (g, group) in table.groups.enumerated() {
                    let groupStatus = status.flatMap { g < $0.groups.count ? $0.groups[g] : nil }
                    var paths: [PathView] = []
                    for (i, path) in group.paths.enumerated() {
                        let active = groupStatus.flatMap { i < $0.paths.count ? $0.paths[i].active : nil }
                        paths.append(pathView(path.device, active: active))
                    }
                    let usable = paths.filter { $0.checkerState == "ready" || $0.checkerState == "ghost" }
                    let priority = usable.isEmpty ? 0 : usable.reduce(0) { $0 + $1.priority } / usable.count
                    let state: String
                    switch groupStatus?.state {
                    case .active?: state = "active"
                    case .enabled?: state = "enabled"
                    case .disabled?: state = "disabled"
                    case nil: state = "undef"
                    }
                    var view = GroupView(selector: ([group.selector, String(group.selectorArgs.count)] + group.selectorArgs).joined(separator: " "),
                                         priority: priority, dmState: state, paths: paths)
                    view.marginal = map.marginalPathGroups && !paths.isEmpty && paths.allSatisfy(\.marginal)
                    groups.append(view)
                }
            } else {
                groups = [GroupView(selector: "", priority: 0, dmState: "undef", paths: map.paths.map { pathView($0.device, active: nil) })]
            }
            let info = kernelMaps.first { $0.name == map.name }
            let queueing: String
            switch map.noPathRetry {
            case .fail: queueing = "off"
            case .queue: queueing = board.queueing(map.handle) ? "on" : "off"
            case .retries(let n): queueing = board.queueing(map.handle) ? "\(n) chk" : "off"
            }
            let features = table.map { ([String($0.features.count)] + $0.features).joined(separator: " ") } ?? "0"
            let handler = table.map { $0.hardwareHandler.isEmpty ? "0" : ([String($0.hardwareHandler.count)] + $0.hardwareHandler).joined(separator: " ") } ?? "0"
            let failures = status.map { $0.groups.reduce(0) { $0 + $1.paths.reduce(0) { $0 + $1.failCount } } } ?? 0
            let suspended = (try? control?.info(name: map.name))??.suspended ?? false
            var base = statBaselines[map.wwid] ?? StatBaseline()
            var view = MapView(name: map.name, wwid: map.wwid, sysfs: info.map { "dm-\($0.device.minor)" } ?? "", sizeSectors: map.sizeSectors,
                               features: features, hardwareHandler: handler, dmState: suspended ? "suspend" : "active", queueing: queueing,
                               failback: map.failback.description, vendor: map.vendor, product: map.product,
                               revision: map.paths.first?.revision ?? "", groups: groups,
                               pathFaults: StatBaseline.shown(failures, &base.faults), mapLoads: StatBaseline.shown(map.tableLoads, &base.loads))
            view.action = map.adopted ? "" : "create"
            let statistics = board.statistics(map.handle)
            view.groupSwitches = StatBaseline.shown(Int(statistics.groupSwitches), &base.switches)
            view.queueingTimeouts = StatBaseline.shown(Int(statistics.countdownsBegun), &base.timeouts)
            view.mapFailures = StatBaseline.shown(Int(statistics.countdownsExpired), &base.failures)
            view.queueingSeconds = StatBaseline.shown(Int(statistics.countdownSeconds(nowNs: monotonicNs())), &base.seconds)
            if statBaselines[map.wwid] != nil { statBaselines[map.wwid] = base }
            if let info {
                view.maxSectorsKB = SysfsFiles.readText("/sys/block/dm-\(info.device.minor)/queue/max_sectors_kb").flatMap { Int($0) }
            }
            return view
        }
    }

    /// Prometheus text exposition of keeld's counters and gauges.
    func metrics() -> String {
        let board = shared.board
        let maps = shared.directory.withLock { $0.maps }
        var byState: [String: Int] = [:]
        for map in maps { for path in map.paths { byState[Self.checkerWord(board.state(path.handle)), default: 0] += 1 } }
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for s in samples { out += name + (s.labels.isEmpty ? "" : "{\(s.labels)}") + " " + s.value + "\n" }
        }
        metric("keel_paths", "gauge", "Paths by checker state.",
               ["ready", "faulty", "ghost", "i/o pending", "delayed", "undef"].map { ("state=\"\($0)\"", "\(byState[$0] ?? 0)") })
        metric("keel_maps", "gauge", "Multipath maps.", [("", "\(maps.count)")])
        metric("keel_maps_queueing", "gauge", "Maps queueing I/O while no path is usable.",
               [("", "\(maps.filter { board.queueing($0.handle) }.count)")])
        metric("keel_path_transitions_total", "counter", "Path state changes.", [("", "\(board.transitions.load(ordering: .relaxed))")])
        metric("keel_orphaned_checks", "gauge", "Checks timed out and still in the kernel.", [("", "\(checker.orphansInFlight)")])
        var registrations: [ReservationRegistration: Int] = [:]
        for map in maps where map.reservation.key != nil {
            for path in map.paths { registrations[checker.registration(of: path.handle), default: 0] += 1 }
        }
        metric("keel_paths_reservation", "gauge",
               "Paths of maps with a reservation key, by what registering them with it on their last return came to.",
               [ReservationRegistration.none, .registered, .keyAbsent, .failed].map { ("registration=\"\($0.word)\"", "\(registrations[$0] ?? 0)") })
        out += checker.latency.exposition(name: "keel_check_latency_seconds",
                                          help: "Path checks from dispatch to the recovery pass that took their answer (timeouts at their deadline).")
        out += checker.pathBack.exposition(name: "keel_path_back_seconds",
                                           help: "Paths taken back by the kernel: from sending the check that found the path answering to the reinstate_path the kernel accepted (operator reinstates included).")
        metric("keel_loop_passes_total", "counter", "Recovery loop passes.", [("", "\(board.loopPasses.load(ordering: .relaxed))")])
        metric("keel_inputs_total", "counter", "Inputs the recovery thread handled.", [("", "\(board.inputsHandled.load(ordering: .relaxed))")])
        metric("keel_input_ring_drops_total", "counter", "Inputs dropped on a full ring.", [("", "\(shared.inputs.droppedCount)")])
        let log = shared.logger.counterSnapshot
        metric("keel_log_records_total", "counter", "Log records by outcome.",
               [("outcome=\"written\"", "\(log.recordsWritten)"), ("outcome=\"dropped\"", "\(log.recordsDropped)")])
        metric("keel_log_file_write_errors_total", "counter", "Log file writes that failed.", [("", "\(log.fileWriteErrors)")])
        if let memory = try? MemoryDiscipline.lockedMemory() {
            metric("keel_memory_locked_bytes", "gauge", "VmLck.", [("", "\(memory.lockedBytes)")])
            metric("keel_memory_resident_bytes", "gauge", "VmRSS.", [("", "\(memory.residentBytes)")])
        }
        let stacks = shared.stacks.withLock { $0 }.compactMap { watermark in watermark.usage.map { (watermark.name, $0) } }
        metric("keel_thread_stack_used_bytes", "gauge", "Most of each thread's stack ever used (a lower bound: painted at thread start).",
               stacks.map { ("thread=\"\($0.0)\"", "\($0.1.usedBytes)") })
        metric("keel_thread_stack_bytes", "gauge", "Each thread's stack size (locked whole).",
               stacks.map { ("thread=\"\($0.0)\"", "\($0.1.stackBytes)") })
        metric("keel_table_slots", "gauge", "Committed table slots.",
               [("kind=\"paths\"", "\(board.pathCapacity)"), ("kind=\"maps\"", "\(board.mapCapacity)")])
        metric("keel_control_clients", "gauge", "Connected control clients.", [("", "\(server.clientCount)")])
        metric("keel_control_refused_total", "counter", "Control connections refused (past a process's or user's share, or the client cap) or evicted.", [("", "\(server.refused)")])
        metric("keel_control_timeouts_total", "counter", "Control requests past their deadline.", [("", "\(server.timedOut)")])
        return out
    }

    /// multipathd's checker words for an engine state.
    static func checkerWord(_ state: PathState?) -> String {
        switch state {
        case .up?: return "ready"
        case .down?, .operatorFailed?: return "faulty"
        case .ghost?: return "ghost"
        case .pending?: return "i/o pending"
        case .delayed?: return "delayed"
        case .unchecked?, .removed?, nil: return "undef"
        }
    }

    /// multipathd's checker name of a path: for the sg-based backend, the SCSI check it gets.
    static func checkerName(_ kind: CheckerKind?, check: SCSICheck? = nil) -> String {
        switch kind {
        case .tur?: return (check ?? .tur).description
        case .directIO?: return "directio"
        default: return "none"
        }
    }

    /// The named top-level sections of configuration text.
    static func sections(_ names: [String], of text: String) -> String {
        var out = ""
        var keeping = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if !line.hasPrefix("\t") && !line.hasPrefix(" ") {
                keeping = names.contains { line.hasPrefix($0 + " {") }
            }
            if keeping { out += line + "\n" }
        }
        return out
    }

    // MARK: - keeld's own views (its socket)

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
        let stacks = shared.stacks.withLock { $0 }.compactMap { watermark in
            watermark.usage.map { "\(watermark.name) \($0.usedBytes / 1024) of \($0.stackBytes / 1024) KiB" }
        }
        if !stacks.isEmpty { lines.append("thread stacks used (most ever): " + stacks.joined(separator: ", ")) }
        lines.append("seccomp \(directory.seccomp)")
        lines.append("capabilities \(directory.capabilities)")
        lines.append("oom_score_adj \(directory.oomScore)")
        lines.append("orphaned checks \(checker.orphansInFlight) (timed out, still in the kernel)")
        lines.append("loop passes \(board.loopPasses.load(ordering: .relaxed)) inputs \(board.inputsHandled.load(ordering: .relaxed)) input ring drops \(shared.inputs.droppedCount)")
        let counters = shared.logger.counterSnapshot
        lines.append("log records written \(counters.recordsWritten) dropped \(counters.recordsDropped) file pages \(counters.filePagesWritten) file write errors \(counters.fileWriteErrors)")
        let sockets = server.listening.joined(separator: " ")
        let problem = multipathdSocketProblem.map { " (multipathd's socket not served: \($0))" } ?? ""
        lines.append("control sockets \(sockets)\(problem), clients \(server.clientCount), refused \(server.refused), timed out \(server.timedOut)")
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
                let registration = checker.registration(of: path.handle)
                let reservation = registration == .none ? "" : " reservation=\(registration.word)"
                lines.append("\(path.kernelName) \(path.device) \(map.name) \(path.handle) \(map.handle) \(state) prio=\(path.priority) checker=\(checker.kind(of: path.handle))\(orphan)\(reservation)")
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
    var address = ControlServer.address(socketPath)
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
