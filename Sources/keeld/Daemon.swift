// keeld's start-up, supervision and shutdown: the order in which the promise is put in place.
import Glibc
import Synchronization
import KeelCore
import KeelLinux

/// Boxes the recovery service for its thread (the thread is its only user once started).
final class RecoveryBox: @unchecked Sendable {
    var service: RecoveryService<DaemonChecker, DMMessenger, LogRecoveryOutput>
    init(_ service: RecoveryService<DaemonChecker, DMMessenger, LogRecoveryOutput>) { self.service = service }
}

enum Daemon {
    /// How healthy paths are checked, said at start: Keel's cadence differs from multipathd's
    /// unless a polling option is written.
    static func cadenceLine(_ configuration: Configuration) -> String {
        let cap = configuration.healthyChecksPerSecondMax
        let capText = cap == 0 ? "no cap on healthy checks" : "at most \(cap) healthy checks a second (more paths stretch the interval)"
        if configuration.pollingWritten {
            return "healthy paths are checked every \(configuration.pollingIntervalSeconds) s, backing off to "
                + "\(configuration.maxPollingIntervalSeconds) s as multipathd does; \(capText)"
        }
        return "healthy paths are checked every \(configuration.healthyIntervalMs) ms (healthy_interval_ms; no polling_interval "
            + "written: multipathd would start at \(configuration.pollingIntervalSeconds) s and back off to "
            + "\(configuration.maxPollingIntervalSeconds) s); \(capText)"
    }

    /// What happens to queueing maps when keeld stops, and why: `--on-exit`, else
    /// `queue_without_daemon`, else keeping them queueing (multipathd's default fails them: a
    /// daemon restarted during an array upgrade must not turn queued I/O into errors).
    static func exitQueueing(_ options: Options, _ configuration: Configuration) -> (mode: ExitQueueing, reason: String) {
        if let mode = options.onExit { return (mode, "--on-exit \(mode.rawValue)") }
        switch configuration.queueWithoutDaemon {
        case true?: return (.keepQueueing, "queue_without_daemon yes")
        case false?: return (.failQueued, "queue_without_daemon no")
        case nil: return (.keepQueueing, "queue_without_daemon unset; multipathd would fail queued I/O here, keeld keeps it queueing")
        }
    }

    /// The one-line state `systemctl status` shows: maps, paths and how many are usable, maps
    /// queueing with no usable path, and how recovery is scheduled.
    static func serviceStatus(_ shared: DaemonShared, scheduling: String) -> String {
        let board = shared.board
        let maps = shared.directory.withLock { $0.maps }
        var paths = 0
        var usable = 0
        var stranded = 0
        for map in maps {
            var mapUsable = 0
            for path in map.paths {
                paths += 1
                switch board.state(path.handle) {
                case .up?, .ghost?: mapUsable += 1
                default: break
                }
            }
            usable += mapUsable
            if mapUsable == 0 && board.queueing(map.handle) { stranded += 1 }
        }
        return "\(maps.count) maps, \(paths) paths (\(usable) usable)"
            + (stranded > 0 ? ", \(stranded) queueing with no usable path" : "") + "; recovery \(scheduling)"
    }

    static func blacklistRules(_ configuration: Configuration) -> Int {
        configuration.blacklist.count
    }

    /// Reads and checks the configuration (`--config`, or the default path when present).
    static func loadConfiguration(_ options: Options) -> Result<LoadedConfiguration, ConfigurationError> {
        ConfigurationFiles.load(path: options.configPath, mustExist: options.configGiven)
    }

    /// Starts keeld and runs it until it is told to stop. Returns the exit status.
    static func run(_ options: Options) -> Int32 {
        guard let running = start(options) else { return 1 }
        let stopSignal = supervise(running)
        stop(running, signal: stopSignal)
        return 0
    }

    /// What a started keeld is made of, for supervision and shutdown.
    struct Running {
        let options: Options
        let shared: DaemonShared
        let signals: SignalChannel
        let notifier: ServiceNotifier?
        let schedulingFact: String
        let mainLog: LogProducer
        let logger: KeelLogger
        let exitPolicy: (mode: ExitQueueing, reason: String)
        let mapHandles: [MapHandle]
        let recoveryThread: RealtimeThread
        let eventsThread: RealtimeThread
        let controlThread: RealtimeThread
        /// multipathd's socket file when keeld bound it (removed at exit).
        let multipathdSocketFile: String?
        let tur: TURChecker
        let directIO: DirectIOChecker
    }

    /// Steps 0-11: privileges, configuration, the logger, discovery and assembly, pinning, the
    /// threads, seccomp, and the first tables. Nil when keeld cannot start (it said why).
    static func start(_ options: Options) -> Running? {
        signal(SIGPIPE, SIG_IGN)
        var phases = StartupPhases()
        // 0. Least privilege, before the first thread (capabilities are per thread; every thread
        // created later inherits the reduced sets).
        var capabilityFact: String
        do {
            let effective = try Capabilities.keepOnlyNeeded()
            capabilityFact = "kept \(Capabilities.needed.filter { effective & (1 << UInt64($0.rawValue)) != 0 }.count) of \(Capabilities.needed.count) needed, every other dropped (effective 0x\(String(effective, radix: 16)))"
        } catch {
            say("warning: could not drop capabilities: \(error)")
            capabilityFact = "not reduced (\(error))"
        }

        // 1. malloc: one arena; large start-up buffers in mappings of their own, so what start-up
        // frees does not stay in the heap that mlockall pins (step 7 stops mmap and trimming).
        do { try MemoryDiscipline.tuneMallocForStartUp() } catch { say("warning: \(error)") }

        // 2. Configuration: a bad file stops keeld here, naming file:line.
        let configuration: Configuration
        switch loadConfiguration(options) {
        case .failure(let error):
            say("configuration rejected:\n\(error)")
            return nil
        case .success(let loaded):
            for warning in loaded.warnings { say("configuration warning: \(warning)") }
            configuration = loaded.configuration
        }
        let capacities = configuration.capacities
        let exitPolicy = exitQueueing(options, configuration)
        say("on exit, queueing maps \(exitPolicy.mode == .failQueued ? "are switched to fail_if_no_path" : "keep queueing") (\(exitPolicy.reason))")

        // One keeld per host, before anything touches a map or the socket.
        switch InstanceLock.acquire(path: options.pidFile) {
        case .success: break
        case .failure(let failure):
            say("\(failure)")
            return nil
        }
        // Room for one descriptor per path before any path is opened.
        let fileLimit = FileLimit.raise(forPaths: capacities.pathsMax)
        say(fileLimit.isEnough ? "\(fileLimit)" : "warning: \(fileLimit)")

        // Signals go to a signalfd; every thread created from here (the
        // logger's first) inherits the mask, so no thread takes SIGHUP's default action.
        let signals: SignalChannel
        do { signals = try SignalChannel() } catch {
            say("cannot set up signals: \(error)")
            return nil
        }

        phases.mark("configuration")
        // 3. The logger, so everything after is logged without blocking.
        let logger: KeelLogger
        do {
            logger = try KeelLogger(LogConfiguration(
                filePath: options.logFile, fileBytesMax: options.logFileBytesMax,
                streamDescriptor: options.logToStderr ? 2 : nil,
                journalSocketPath: options.logToJournal ? LogConfiguration.systemJournalSocketPath : nil,
                // One ring per thread that logs (main, recovery, events, control): a ring is
                // 4,096 records of 48 bytes, locked like everything else.
                identifier: "keeld", producersMax: 4))
            if let path = options.logFile, logger.fileOpenErrno != 0 {
                say("warning: cannot open the log file \(path) yet (\(String(cString: strerror(logger.fileOpenErrno)))): "
                    + "logging to \(options.logToJournal ? "the journal" : options.logToStderr ? "stderr" : "no other sink"); "
                    + "the file is opened as soon as it can be")
            }
            try logger.start()
        } catch {
            say("cannot start the logger: \(error)")
            return nil
        }
        guard let mainLog = logger.registerProducer(name: "main"),
              let recoveryLog = logger.registerProducer(name: "recovery"),
              let eventsLog = logger.registerProducer(name: "events"),
              let controlLog = logger.registerProducer(name: "control") else {
            say("logger has no room for keeld's threads")
            return nil
        }
        mainLog.log(.started, LogArgument.signed(capacities.pathsMax), LogArgument.signed(capacities.mapsMax))
        mainLog.log(.configurationLoaded, LogArgument.signed(configuration.multipaths.count + configuration.devices.count),
                    LogArgument.signed(blacklistRules(configuration)))

        // The event sources first, so nothing that happens from discovery on is missed. Their
        // descriptors are opened before any path's: a host with more paths than descriptors loses
        // paths one by one (each refused with a log line), never its control socket or its events.
        let uidAttributes = configuration.uidAttributes
        let poller: DMEventPoller?
        do {
            poller = try DMEventPoller(uuidPrefix: DMControl.multipathUUIDPrefix)
        } catch {
            say("warning: no dm event poller (\(error)); maps are resynced every 5 s only")
            poller = nil
        }
        let uevents: UeventMonitor?
        do { uevents = try UeventMonitor(uidAttribute: uidAttributes.defaultAttribute) } catch {
            say("warning: no uevent monitor (\(error)): paths added later need a restart")
            uevents = nil
        }

        phases.mark("logger and event sources")
        // 5. Discovery, then arenas sized from it: twice what the host has (at least 64 paths and
        // 16 maps), reserved up to max_paths / max_maps and grown in place when more arrive.
        // One thread per online CPU, at most 8: on a host of a thousand paths the per-disk reads
        // are most of the start-up time, and they do not depend on each other. Their stacks are
        // unmapped when they end (ScratchThread), so nothing of them is pinned.
        let report = SysfsDiscovery(uidAttributes: uidAttributes).discoverAll(threads: SysfsDiscovery.threadsForHost)
        phases.mark("discovery (\(report.paths.count) paths)")
        let discoveredMaps = Set(report.paths.compactMap(\.wwid)).count
        let initial = (paths: TableSizing.capacity(for: report.paths.count, floor: TableSizing.pathsFloor, ceiling: capacities.pathsMax),
                       maps: TableSizing.capacity(for: discoveredMaps, floor: TableSizing.mapsFloor, ceiling: capacities.mapsMax))
        let memory = PinnedTableMemory.memory
        let shared: DaemonShared
        let engine = Engine(capacities: capacities, initial: initial, memory: memory, startNs: monotonicNs())
        let tur: TURChecker, directIO: DirectIOChecker
        let messenger: DMMessenger, statusReader: DMMessenger, control: DMControl
        do {
            shared = try DaemonShared(capacities: capacities, initial: initial, memory: memory, logger: logger)
            tur = try TURChecker(TURConfiguration(pathsMax: capacities.pathsMax, initialPaths: initial.paths, memory: memory))
            directIO = try DirectIOChecker(DirectIOConfiguration(pathsMax: capacities.pathsMax, initialPaths: initial.paths, memory: memory))
            messenger = try DMMessenger(mapsMax: capacities.mapsMax, memory: memory)
            statusReader = try DMMessenger(mapsMax: capacities.mapsMax, memory: memory)
            control = try DMControl()
        } catch {
            say("cannot set up: \(error)")
            return nil
        }
        if let hint = directIO.fallbackHint { say("warning: \(hint)") }
        let checker = DaemonChecker(pathsMax: capacities.pathsMax, initial: initial.paths, memory: memory, tur: tur, directIO: directIO)
        let growth = TableGrowth(ceilings: capacities, paths: initial.paths, maps: initial.maps, preparers: [
            { [arenas = engine.arenas] paths, maps in arenas.prepare(paths: paths, maps: maps) },
            { [board = shared.board] paths, maps in board.prepare(paths: paths, maps: maps) },
            { [checker] paths, _ in checker.prepare(paths: paths) },
        ])
        say(Self.cadenceLine(configuration))
        say("tables sized for \(initial.paths) paths and \(initial.maps) maps (\(report.paths.count) paths, "
            + "\(discoveredMaps) WWIDs found; they grow to max_paths \(capacities.pathsMax) / max_maps \(capacities.mapsMax))")

        let controlThread: ControlThread
        do { controlThread = try ControlThread(shared: shared, path: options.controlSocket, multipathdPath: options.multipathdSocket,
                                               metricsPort: options.metricsPort, log: controlLog, checker: checker) } catch {
            say("cannot open the control socket: \(error)")
            return nil
        }

        phases.mark("arenas, checkers, sockets")
        // 6. Discovery and assembly, before the recovery thread owns the engine.
        var assembler = MultipathAssembler(configuration: configuration, engine: engine, control: control, messenger: messenger,
                                           checkers: PathCheckers(tur: tur, directIO: directIO, dispatch: checker), uidAttributes: uidAttributes,
                                           statusReader: statusReader)
        for error in assembler.assemble(report, nowNs: monotonicNs()) { say("assembly: \(error)") }
        for device in assembler.turFallbacks {
            say("warning: \(device) has no SCSI generic node (load the sg module): checked with directio instead of tur")
        }
        assembler.turFallbacks.removeAll()
        if !assembler.held.isEmpty {
            let names = assembler.heldKernelNames.sorted()
            say("find_multipaths \(configuration.findMultipaths.rawValue): \(names.count) device(s) left alone for now: "
                + names.prefix(16).joined(separator: " ") + (names.count > 16 ? " ..." : ""))
        }
        EventsThread.logNotices(&assembler, to: mainLog)
        for map in assembler.maps {
            say("\(map.name) (\(map.handle), wwid \(map.wwid)): " + map.paths.map { "\($0.kernelName) \($0.device) prio \($0.priority)" }.joined(separator: ", "))
        }
        let pathCount = assembler.maps.reduce(0) { $0 + $1.paths.count }
        let recoveryOutput = DaemonRecoveryOutput(log: LogRecoveryOutput(producer: recoveryLog), engine: engine,
                                                  board: shared.board, reloads: shared.reloads, checker: checker)
        let loop = RecoveryLoop(engine: engine, checker: checker, messenger: messenger, output: recoveryOutput)
        let box = RecoveryBox(RecoveryService(loop: loop, inputs: shared.inputs, inputDoorbell: shared.inputDoorbell,
                                              replies: shared.replies, replyDoorbell: shared.replyDoorbell,
                                              topologyReplies: shared.topologyReplies, topologyDoorbell: shared.topologyDoorbell))
        let events = EventsThread(shared: shared, assembler: assembler, checker: checker, poller: poller, uevents: uevents,
                                  log: eventsLog, options: options, growth: growth)
        shared.publish(assembler)
        shared.directory.withLock {
            $0.configPath = options.configPath
            $0.capabilities = capabilityFact
            $0.startedUnixSeconds = time(nil)
        }

        phases.mark("assembly (checkers registered)")
        // 7. Pin: everything allocated so far, and every page mapped from now on.
        guard let memoryFact = pinMemory(options, mainLog: mainLog, logger: logger) else { return nil }

        phases.mark("pinning")
        // 8. The OOM killer leaves keeld alone.
        let oomFact = protectFromOOMKiller()

        // 9. Threads: recovery (real-time when permitted), events, control. Every stack is locked
        //    whole. Sizes from the stacks' high-water marks (`show daemon`, Tools/footprint:
        //    start, a reconfigure, the largest views, a hot-added burst). Release build, 1,024
        //    paths: recovery 15 KiB, events 44, control 25. Debug build, 256 paths: 18, 72 and 48.
        //    The recovery thread's depth does not depend on input; the other two get over 3x the
        //    debug build's worst.
        let recoveryStackBytes = 128 * 1024
        let threadStackBytes = 256 * 1024
        let recoveryThread: RealtimeThread, eventsThread: RealtimeThread, controlHandle: RealtimeThread
        do {
            let policy: SchedulingPolicy = options.realtimePriority > 0 ? .fifo : .other
            recoveryThread = try RealtimeThread.spawn(name: "keel-recovery", stackBytes: recoveryStackBytes, policy: policy,
                                                      priority: options.realtimePriority) { [box, shared] in
                box.service.run(stop: shared.recoveryStop)
            }
            eventsThread = try RealtimeThread.spawn(name: "keel-events", stackBytes: threadStackBytes, policy: .other, priority: 0) { [events] in
                events.run()
            }
            controlHandle = try RealtimeThread.spawn(name: "keel-control", stackBytes: threadStackBytes, policy: .other, priority: 0) { [controlThread] in
                controlThread.run()
            }
        } catch {
            say("cannot start threads: \(error)")
            return nil
        }
        shared.stacks.withLock { $0 = [recoveryThread.stack, eventsThread.stack, controlHandle.stack, shared.logger.stack] }
        let schedulingFact: String
        if let degradation = recoveryThread.degradation {
            mainLog.log(.realtimeRefused, LogArgument.signed(Int(options.realtimePriority)), LogArgument.errno(degradation.errno))
            say("warning: \(degradation)")
            schedulingFact = "SCHED_OTHER (real-time refused: \(degradation))"
        } else if recoveryThread.scheduling.policy.isRealtime {
            mainLog.log(.realtimeEnabled, LogArgument.signed(Int(recoveryThread.scheduling.priority)))
            schedulingFact = recoveryThread.scheduling.description
        } else {
            schedulingFact = "SCHED_OTHER (--rt-priority 0)"
        }

        // 10. No process creation from here on, in any thread.
        let seccompFact = denyProcessCreation(mainLog)
        shared.directory.withLock {
            $0.memory = memoryFact
            $0.oomScore = oomFact
            $0.recoveryScheduling = schedulingFact
            $0.seccomp = seccompFact
        }

        phases.mark("threads and seccomp")
        // 11. Ready once every map's first table is loaded (or a minute passed).
        let notifier: ServiceNotifier?
        do { notifier = try ServiceNotifier.fromEnvironment() } catch {
            say("warning: sd_notify: \(error)")
            notifier = nil
        }
        let mapHandles = assembler.maps.map(\.handle)
        let readyDeadline = monotonicNs() + 60 * Time.nsPerSecond
        while monotonicNs() < readyDeadline && !mapHandles.allSatisfy({ shared.board.loaded($0) }) {
            usleep(10_000)
        }
        let loadedMaps = mapHandles.filter { shared.board.loaded($0) }.count
        phases.mark("first tables (\(mapHandles.count) maps)")
        say("start-up: " + phases.summary)
        shared.ready.store(true, ordering: .releasing)
        mainLog.log(.ready, LogArgument.signed(loadedMaps), LogArgument.signed(pathCount))
        say("ready: \(loadedMaps) maps, \(pathCount) paths" + (loadedMaps < mapHandles.count ? " (\(mapHandles.count - loadedMaps) maps failed to load; see the log)" : ""))
        notifier?.notifyReady()
        notifier?.notifyStatus(Self.serviceStatus(shared, scheduling: schedulingFact))
        return Running(options: options, shared: shared, signals: signals, notifier: notifier, schedulingFact: schedulingFact,
                       mainLog: mainLog, logger: logger, exitPolicy: exitPolicy, mapHandles: mapHandles,
                       recoveryThread: recoveryThread, eventsThread: eventsThread, controlThread: controlHandle,
                       multipathdSocketFile: controlThread.multipathdPath, tur: tur, directIO: directIO)
    }

    /// Step 7: locks everything allocated so far and every page mapped from now on (then
    /// unlocks the tables' uncommitted reservations). Returns what `show daemon` says about it;
    /// nil when memory cannot be locked and `--allow-unpinned` was not given (keeld then stops).
    static func pinMemory(_ options: Options, mainLog: LogProducer, logger: KeelLogger) -> String? {
        do { try MemoryDiscipline.tuneMalloc() } catch { say("warning: \(error)") }
        do {
            try MemoryDiscipline.lockAll()
            // mlockall locked the tables' reservations whole; only their committed parts stay.
            PinnedTableMemory.unlockUncommitted()
            let locked = try? MemoryDiscipline.lockedMemory()
            mainLog.log(.memoryLocked, LogArgument.signed(Int((locked?.lockedBytes ?? 0) / 1024)))
            let heap = MemoryDiscipline.mallocStatistics()
            say("memory locked: \((locked?.lockedBytes ?? 0) / 1024) KiB, resident \((locked?.residentBytes ?? 0) / 1024) KiB; "
                + "malloc heap \(heap.heapBytes / 1024) KiB, \(heap.inUseBytes / 1024) KiB in use")
            return "mlockall(MCL_CURRENT|MCL_FUTURE), \((locked?.lockedBytes ?? 0) / 1024) KiB locked"
        } catch {
            mainLog.log(.mlockFailed, LogArgument.errno(error.errno))
            guard options.allowUnpinned else {
                say("cannot lock memory: \(error)\nrefusing to run unpinned (start with --allow-unpinned to accept it)")
                logger.stop()
                return nil
            }
            say("warning: running unpinned (--allow-unpinned): \(error)")
            return "NOT pinned (\(error))"
        }
    }

    /// Step 8: the OOM killer leaves keeld alone. Returns the score, and why when it is not.
    static func protectFromOOMKiller() -> String {
        do {
            _ = try OOMScore.protect()
            return "\((try? OOMScore.current()) ?? 0)"
        } catch {
            say("warning: \(error)")
            return "\((try? OOMScore.current()) ?? 0) (not protected: \(error))"
        }
    }

    /// Step 10: no process creation from here on, in any thread. Returns what `show daemon`
    /// says about the filter.
    static func denyProcessCreation(_ mainLog: LogProducer) -> String {
        do {
            try Seccomp.denyProcessCreation()
            mainLog.log(.seccompInstalled, LogArgument.signed(5))
            return "filter installed: fork, vfork, process clone, execve and execveat denied"
        } catch {
            mainLog.log(.seccompFailed, LogArgument.errno(0))
            say("warning: seccomp filter not installed: \(error)")
            return "not installed (\(error))"
        }
    }

    /// Step 12, until a stop: signals (SIGHUP reconfigures), shutdown requests, the watchdog
    /// (fed only while the recovery loop makes progress) and the service status. Returns the
    /// signal that stops keeld (SIGTERM for a `shutdown` command).
    static func supervise(_ running: Running) -> Int32 {
        let shared = running.shared, signals = running.signals, notifier = running.notifier
        var lastStatus = Self.serviceStatus(shared, scheduling: running.schedulingFact)
        var stopSignal: Int32 = 0
        var lastPasses = shared.board.loopPasses.load(ordering: .relaxed)
        let watchdogMs = notifier?.watchdogIntervalNs.map { Int32(clamping: $0 / Time.nsPerMs / 4) } ?? 1000
        while stopSignal == 0 {
            let readable = pollReadable([signals.descriptor, shared.shutdownRequest.descriptor], timeoutMs: max(10, min(watchdogMs, 1000)))
            if readable[0] {
                while let received = try? signals.receive() {
                    if received.signal == SIGHUP {
                        notifier?.notifyReloading()
                        shared.reconfigureRequested.store(true, ordering: .releasing)
                        shared.eventsWake.signal()
                        notifier?.notifyReady()
                    } else {
                        stopSignal = received.signal
                    }
                }
            }
            if readable[1] {
                _ = shared.shutdownRequest.drain()
                stopSignal = SIGTERM
            }
            let passes = shared.board.loopPasses.load(ordering: .relaxed)
            if let notifier, passes != lastPasses, notifier.watchdogDue(nowNs: monotonicNs()) {
                notifier.notifyWatchdog(nowNs: monotonicNs())
            }
            lastPasses = passes
            if let notifier {
                // STATUS= follows the maps and usable paths as they change (checked each wake-up).
                let status = Self.serviceStatus(shared, scheduling: running.schedulingFact)
                if status != lastStatus {
                    notifier.notifyStatus(status)
                    lastStatus = status
                }
            }
        }

        return stopSignal
    }

    /// Shutdown: queueing maps failed if the exit policy says so, the events and recovery
    /// threads joined, the checkers closed and the log flushed. A stuck kernel call must not
    /// keep keeld from exiting.
    static func stop(_ running: Running, signal stopSignal: Int32) {
        let shared = running.shared, mainLog = running.mainLog, options = running.options
        alarm(10)
        mainLog.log(.stopping, LogArgument.signed(Int(stopSignal)))
        running.notifier?.notifyStopping()
        // The control thread is told to stop but not waited for: a client holding it (a slow or
        // silent one) must not delay the stop, nor let the alarm end keeld before queued I/O is
        // failed as asked and the log is flushed. It ends with the process.
        shared.controlStop.store(true, ordering: .releasing)
        shared.controlWake.signal()
        unlink(options.controlSocket)
        _ = running.controlThread
        if let path = running.multipathdSocketFile { unlink(path) }
        if running.exitPolicy.mode == .failQueued && !shared.forceQueueingAtExit.load(ordering: .acquiring) {
            let queueing = running.mapHandles.filter { shared.board.queueing($0) }
            for (i, map) in queueing.enumerated() {
                shared.send(.command(.disableQueueing(map), ticket: 0x8000_0000 | UInt32(i)), unless: shared.recoveryStop)
            }
            // The recovery thread sends fail_if_no_path and marks the board; the replies are left
            // to the control thread's ring (two readers must never pop it). 2 s at most.
            let deadline = monotonicNs() + 2 * Time.nsPerSecond
            while queueing.contains(where: { shared.board.queueing($0) }) && monotonicNs() < deadline { usleep(10_000) }
            mainLog.log(.queueingFailedForExit, LogArgument.signed(queueing.filter { !shared.board.queueing($0) }.count))
        }
        shared.eventsStop.store(true, ordering: .releasing)
        shared.eventsWake.signal()
        try? running.eventsThread.join()
        shared.recoveryStop.store(true, ordering: .releasing)
        shared.inputDoorbell.signal()
        try? running.recoveryThread.join()
        running.tur.close()
        running.directIO.close()
        running.logger.stop()
        say("stopped (signal \(stopSignal))")
    }
}

/// Where start-up time goes: each phase's wall time since the previous mark (for profiling a
/// large host's start; printed once, at ready).
struct StartupPhases {
    private var lastNs = monotonicNs()
    private var phases: [(name: String, ns: Nanoseconds)] = []

    mutating func mark(_ name: String) {
        let now = monotonicNs()
        phases.append((name, now - lastNs))
        lastNs = now
    }

    var summary: String {
        let total = phases.reduce(0) { $0 + $1.ns }
        return phases.map { "\($0.name) \(Self.ms($0.ns))" }.joined(separator: ", ") + "; total \(Self.ms(total))"
    }

    static func ms(_ ns: Nanoseconds) -> String {
        let tenths = (ns + 50_000) / 100_000
        return "\(tenths / 10).\(tenths % 10) ms"
    }
}
