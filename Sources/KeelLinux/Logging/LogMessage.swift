// The message catalogue: every line Keel can log, with its level and static format text.

/// How urgent a line is: the syslog priorities (the journal's `PRIORITY=` field).
@frozen
public enum LogLevel: UInt8, BitwiseCopyable, Sendable, CaseIterable {
    case emergency = 0
    case alert = 1
    case critical = 2
    case error = 3
    case warning = 4
    case notice = 5
    case info = 6
    case debug = 7

    /// The word a log line shows, as syslog spells it.
    public var word: StaticString {
        switch self {
        case .emergency: return "emerg"
        case .alert: return "alert"
        case .critical: return "crit"
        case .error: return "err"
        case .warning: return "warning"
        case .notice: return "notice"
        case .info: return "info"
        case .debug: return "debug"
        }
    }
}

/// Every message Keel logs. A record carries only this id and up to four integers; the text is
/// put together on the logger thread from `format`.
///
/// To add a message: add a case (new raw values at the end of its group's range, never reuse
/// one: ids reach the journal as `KEEL_MESSAGE_ID`), give it a level and a format. In a format,
/// `%word` takes the record's next argument (in order, at most four) and renders it as the word
/// says; the words are `LogPlaceholder`'s cases (`%dev`, `%map`, `%path`, `%state`, `%verb`,
/// `%group`, `%errno`, `%n`, `%ms`, `%thread`, `%op`, `%result`, `%action`, `%sink`). A test
/// checks every format against that list.
@frozen
public enum LogMessage: UInt16, BitwiseCopyable, Sendable, CaseIterable {
    // Recovery loop (RecoveryRecord) and kernel events.
    case pathStateChanged = 1
    case pathFailed = 2
    case reinstated = 3
    case groupSwitched = 4
    case groupEnabled = 5
    case groupDisabled = 6
    case queueingEnabled = 7
    case queueingDisabled = 8
    case pathMessageRefused = 9
    case groupMessageRefused = 10
    case mapMessageRefused = 11
    case reloadRequested = 12
    case checkRefused = 13
    case kernelFailedPath = 14
    case kernelPathState = 15
    case kernelQueueing = 16
    case kernelActiveGroup = 17
    case priorityChanged = 18

    // Checkers.
    case checkerFallback = 100
    case checkTimedOut = 101
    case checkerThreadsStuck = 102
    case checkResult = 103
    case turWithoutGeneric = 104

    // Events thread.
    case ueventOverflow = 200
    case uevent = 201
    case dmEvent = 202
    case resyncFinished = 203

    // Device-mapper (control plane).
    case dmOperationFailed = 300
    case dmDriverOperationFailed = 301
    case tableLoaded = 302

    // Start-up and process discipline.
    case started = 400
    case memoryLocked = 401
    case mlockFailed = 402
    case realtimeEnabled = 403
    case realtimeRefused = 404
    case seccompInstalled = 405
    case seccompFailed = 406
    case configurationLoaded = 407
    case configurationRejected = 408
    case pathRefused = 409
    case stopping = 410
    case ready = 411
    case reconfigured = 412
    case queueingFailedForExit = 413
    case assemblyFailed = 414
    case commandReceived = 415
    case pathSizeMismatch = 416
    case tablesGrown = 417
    case tablesAtCeiling = 418
    case pathNotKnown = 419
    case pathSinglePath = 420
    case pathWaitsForSibling = 421
    case pathReleased = 422
    case bindingAdded = 423
    case bindingFailed = 424
    case bindingTaken = 425
    case wwidsFileFailed = 426
    case bindingsLineSkipped = 427
    case wwidsLineSkipped = 428
    case topologyRequestTimedOut = 429
    case transportTimeoutRefused = 430
    case operatorRemovedPath = 431
    case operatorRemovedMap = 432
    case mapResized = 433
    case flushedOnLastDel = 434
    case flushOnLastDelKept = 435
    case priorityUnanswered = 436
    case groupByTPGFallback = 437
    case reservationFlagSet = 438
    case reservationFlagCleared = 439
    case reservationKeyStored = 440
    case reservationKeyRemoved = 441
    case prkeysFileFailed = 442
    case pathRegistered = 443
    case pathRegistrationKeyAbsent = 444
    case pathRegistrationFailed = 445
    case removedWithLastPath = 446
    case keptWithoutPaths = 447
    case uidAttributeChangeDeferred = 448
    case pathWithoutCapacity = 449
    case pathCapacityFound = 450
    case capacityRescanFailed = 451
    case rdacDetected = 452
    case ueventsDrained = 453
    case burstAssembled = 454

    // The logger itself.
    case loggerStarted = 500
    case ringDropped = 501
    case sinkDropped = 502
    case fileWriteFailed = 503
    case fileRotated = 504

    /// How urgent the message is.
    public var level: LogLevel {
        switch self {
        case .pathStateChanged, .groupEnabled, .reloadRequested, .kernelPathState, .kernelQueueing,
             .kernelActiveGroup, .checkResult, .uevent, .dmEvent, .priorityChanged, .commandReceived, .ueventsDrained,
             .burstAssembled:
            return .info
        case .pathFailed, .pathMessageRefused, .groupMessageRefused, .mapMessageRefused,
             .kernelFailedPath, .checkerThreadsStuck, .dmOperationFailed, .dmDriverOperationFailed,
             .mlockFailed, .configurationRejected, .assemblyFailed, .pathSizeMismatch, .bindingFailed, .bindingTaken,
             .wwidsFileFailed, .prkeysFileFailed, .pathRegistrationFailed:
            return .error
        case .groupDisabled, .queueingDisabled, .checkRefused, .checkerFallback, .checkTimedOut, .turWithoutGeneric,
             .ueventOverflow, .realtimeRefused, .seccompFailed, .pathRefused, .ringDropped,
             .sinkDropped, .fileWriteFailed, .tablesAtCeiling, .bindingsLineSkipped, .wwidsLineSkipped,
             .topologyRequestTimedOut, .transportTimeoutRefused, .flushOnLastDelKept, .priorityUnanswered, .groupByTPGFallback,
             .pathRegistrationKeyAbsent, .keptWithoutPaths, .uidAttributeChangeDeferred, .pathWithoutCapacity,
             .capacityRescanFailed:
            return .warning
        case .reinstated, .groupSwitched, .queueingEnabled, .resyncFinished, .tableLoaded, .started,
             .memoryLocked, .realtimeEnabled, .seccompInstalled, .configurationLoaded, .stopping,
             .loggerStarted, .fileRotated, .ready, .reconfigured, .queueingFailedForExit, .tablesGrown,
             .pathNotKnown, .pathSinglePath, .pathWaitsForSibling, .pathReleased, .bindingAdded,
             .operatorRemovedPath, .operatorRemovedMap, .mapResized, .flushedOnLastDel, .removedWithLastPath,
             .reservationFlagSet, .reservationFlagCleared, .reservationKeyStored, .reservationKeyRemoved, .pathRegistered,
             .pathCapacityFound, .rdacDetected:
            return .notice
        }
    }

    /// The text, with one `%word` per argument.
    public var format: StaticString {
        switch self {
        case .pathStateChanged: return "%path: %state -> %state"
        case .pathFailed: return "path %dev of %map failed"
        case .reinstated: return "path %dev of %map reinstated"
        case .groupSwitched: return "%map switched to path group %group"
        case .groupEnabled: return "%map: path group %group enabled"
        case .groupDisabled: return "%map: path group %group disabled"
        case .queueingEnabled: return "%map: queue_if_no_path set, I/O is queued while no path is usable"
        case .queueingDisabled: return "%map: fail_if_no_path set, I/O fails while no path is usable"
        case .pathMessageRefused: return "dm message %verb %dev to %map refused: %errno"
        case .groupMessageRefused: return "dm message %verb %group to %map refused: %errno"
        case .mapMessageRefused: return "dm message %verb to %map refused: %errno"
        case .reloadRequested: return "%map: table reload requested"
        case .checkRefused: return "%path: checker has no free slot, check retried at the fast interval"
        case .kernelFailedPath: return "kernel failed path %dev of %map"
        case .kernelPathState: return "kernel reports path %dev of %map active: %n"
        case .kernelQueueing: return "kernel reports %map queueing: %n"
        case .kernelActiveGroup: return "kernel reports %map active path group %group"
        case .priorityChanged: return "%path: priority now %n"
        case .checkerFallback: return "io_setup failed (%errno): falling back to synchronous checks; raise fs.aio-max-nr"
        case .checkTimedOut: return "%path: check of %dev timed out after %ms ms"
        case .checkerThreadsStuck: return "all %n checker threads are stuck in the kernel: checks refused until one returns"
        case .checkResult: return "%path: check of %dev: %result"
        case .turWithoutGeneric: return "%dev has no SCSI generic node (load the sg module): checked with directio instead of tur"
        case .ueventOverflow: return "uevent receive buffer overflowed (%n times so far): rediscovering paths"
        case .uevent: return "uevent %action %dev"
        case .ueventsDrained: return "%n block uevents taken from the socket in %ms ms"
        case .burstAssembled: return "%n devices added or changed: discovered in %ms ms, %n paths assembled in %ms ms"
        case .dmEvent: return "%map: dm event %n"
        case .resyncFinished: return "rediscovery finished: %n paths in %n maps"
        case .dmOperationFailed: return "device-mapper %op on %map failed: %errno"
        case .dmDriverOperationFailed: return "device-mapper %op failed: %errno"
        case .tableLoaded: return "%map: table loaded with %n paths in %n path groups"
        case .started: return "keeld started: at most %n paths in %n maps"
        case .memoryLocked: return "memory locked: %n KiB resident"
        case .mlockFailed: return "mlockall failed (%errno): memory is not pinned, recovery may wait on reclaim"
        case .realtimeEnabled: return "recovery thread runs at SCHED_FIFO priority %n"
        case .realtimeRefused: return "SCHED_FIFO priority %n refused (%errno): recovery thread runs at normal priority"
        case .seccompInstalled: return "seccomp filter installed: %n process-creating system calls denied"
        case .seccompFailed: return "seccomp filter not installed (%errno)"
        case .configurationLoaded: return "configuration loaded: %n map profiles, %n blacklist rules"
        case .configurationRejected: return "configuration rejected at line %n (error %n): previous configuration kept"
        case .pathRefused: return "path %dev refused: path table full (%n paths)"
        case .stopping: return "keeld stopping (signal %n)"
        case .ready: return "keeld ready: %n maps, %n paths"
        case .reconfigured: return "configuration reloaded: %n maps take a new profile"
        case .uidAttributeChangeDeferred:
            return "uid_attribute or uid_attrs changed: WWIDs are read as before until keeld restarts (the maps would change identity)"
        case .queueingFailedForExit: return "%n maps switched to fail_if_no_path before exit"
        case .assemblyFailed: return "%map: assembly step %n failed: %errno"
        case .commandReceived: return "operator command received (%n words)"
        case .pathSizeMismatch: return "path %dev refused: %n sectors, but its map %map has %n"
        case .pathWithoutCapacity:
            return "%dev has 0 sectors (the kernel could not read its capacity): kept out of its map, its capacity is read again (device/rescan) each minute"
        case .rdacDetected: return "%map: INQUIRY page 0xC9 says an RDAC array: path_checker rdac (detect_checker)"
        case .pathCapacityFound: return "%dev has %n sectors now: added to its map"
        case .capacityRescanFailed: return "%dev: asking the kernel to read its capacity again (device/rescan) failed: %errno"
        case .pathNotKnown: return "%dev left alone: find_multipaths strict, and its WWID is not in the wwids file"
        case .pathSinglePath: return "%dev left alone: one path, and its WWID is not in the wwids file (find_multipaths on/smart)"
        case .pathWaitsForSibling: return "%dev waits up to %ms ms for a second path (find_multipaths smart)"
        case .pathReleased: return "%dev released: no second path came (find_multipaths smart)"
        case .bindingAdded: return "%map: its new name is written to the bindings file"
        case .bindingFailed: return "%map: the bindings file cannot name it (%errno): named by its WWID"
        case .bindingTaken: return "%map: the name the bindings file gives it is used by another map or alias: named by its WWID"
        case .wwidsFileFailed: return "wwids file not read or written (%errno): find_multipaths knows fewer WWIDs"
        case .bindingsLineSkipped: return "bindings file line %n skipped: malformed, or a second name for one WWID or alias"
        case .wwidsLineSkipped: return "wwids file line %n skipped: not a /wwid/ line"
        case .groupByTPGFallback: return "%map: path_grouping_policy group_by_tpg needs prio alua or sysfs on every path: failover used"
        case .priorityUnanswered: return "prioritizer's command to %dev not answered within 2 s: the path keeps its priority and is not asked again until the kernel returns the command"
        case .transportTimeoutRefused: return "transport timeout of %dev not set (attribute %n: 1 fast_io_fail_tmo, 2 dev_loss_tmo, 3 iSCSI recovery_tmo, 4 eh_deadline; %n s, -1 off): %errno"
        case .topologyRequestTimedOut: return "the recovery thread did not answer a topology request in 2 s; a late path addition is undone and rediscovery adds the path again"
        case .operatorRemovedPath: return "%dev removed by the operator (del path); not checked until it is added again"
        case .operatorRemovedMap: return "map of %dev and %n other paths removed by the operator (del map); its paths are not checked until the map is added again"
        case .pathRegistered: return "path %dev of %map registered with the map's reservation key before it was reported up"
        case .pathRegistrationKeyAbsent: return "path %dev of %map: the LUN does not have the map's reservation key; the path was reported up unregistered"
        case .pathRegistrationFailed: return "path %dev of %map: registering with the map's reservation key failed; the path was reported up unregistered and may meet reservation conflicts"
        case .reservationFlagSet: return "%map: its paths are registered for persistent reservations (setprstatus)"
        case .reservationFlagCleared: return "%map: no longer registered for persistent reservations (unsetprstatus)"
        case .reservationKeyStored: return "%map: reservation key stored in the prkeys file (setprkey)"
        case .reservationKeyRemoved: return "%map: reservation key removed from the prkeys file (unsetprkey)"
        case .prkeysFileFailed: return "prkeys file not read or written (%errno): reservation keys kept there are unknown to keeld"
        case .flushedOnLastDel: return "the last path of a map, %dev, was removed: queueing off and the map removed (flush_on_last_del)"
        case .removedWithLastPath: return "the last path of a map, %dev, was removed: the map was unused and is removed (queueing left as it was)"
        case .keptWithoutPaths: return "the last path of a map, %dev, was removed: the map is in use and kept, queueing as configured, until a path joins it again (%errno)"
        case .flushOnLastDelKept: return "the last path of a map, %dev, was removed: queueing off, the map kept (flush_on_last_del; %errno)"
        case .mapResized: return "%map resized from %n to %n sectors; table reload requested"
        case .tablesGrown: return "tables grown to %n paths and %n maps (locked in place, nothing moved)"
        case .tablesAtCeiling: return "tables full at max_paths %n / max_maps %n: raise them to take more"
        case .loggerStarted: return "logger started: monotonic %ms ms is unix time %n s"
        case .ringDropped: return "%n log records dropped on thread %thread"
        case .sinkDropped: return "%n log lines dropped by the %sink sink (it would have blocked)"
        case .fileWriteFailed: return "log file write failed (%errno): %n lines lost"
        case .fileRotated: return "log file rotated after %n bytes"
        }
    }
}
