// The logger: one SPSC ring per producing thread, and one logger thread that drains them into the sinks.
import Glibc
import CKeelShim
import KeelCore
import Synchronization

/// How the logger is set up; everything is decided here and allocated at init.
public struct LogConfiguration: Sendable {
    /// The journal's native socket on a systemd host.
    public static let systemJournalSocketPath = "/run/systemd/journal/socket"

    /// The log file, or nil for none.
    public var filePath: String?
    /// The file's size bound, rounded down to whole 4 KiB pages (at least one); at the bound the
    /// file is rotated to `<filePath>.1`.
    public var fileBytesMax: Int
    /// Pages in the file's aligned write buffer (at least 2: a partial page and a full line).
    public var fileBufferPages: Int
    /// A descriptor that also receives every line, set non-blocking (e.g. `STDERR_FILENO`), or nil.
    public var streamDescriptor: Int32?
    /// The journal's socket (`systemJournalSocketPath`), or nil for no journal.
    public var journalSocketPath: String?
    /// `SYSLOG_IDENTIFIER` in the journal.
    public var identifier: StaticString
    /// How many producing threads may register (one ring each).
    public var producersMax: Int
    /// Records each ring holds (rounded up to a power of two).
    public var ringCapacity: Int
    /// How often the logger thread wakes when no producer rings its doorbell.
    public var wakeIntervalNs: Nanoseconds
    /// The logger thread's stack (the daemon locks its memory: keep it small). Its depth does
    /// not depend on input: 10 KiB at most in a release build, 19 KiB in a debug build.
    public var threadStackBytes: Int
    /// Whether a producer whose ring reaches half full wakes the logger at once (a non-blocking
    /// eventfd write) rather than leaving it to the timer. It saves records in a burst; its cost
    /// lands on the producer that rings: measured here, a normal-priority producer's call took
    /// ~0.2 ms when it rang (the woken logger preempted it); a SCHED_FIFO producer is not
    /// preempted by the normal-priority logger thread.
    public var wakesWhenHalfFull: Bool

    /// A configuration with Keel's defaults: 64 MiB file bound, 8 producers of 4096 records,
    /// a 50 ms wake interval and a 256 KiB stack.
    public init(filePath: String? = nil, fileBytesMax: Int = 64 << 20, fileBufferPages: Int = 16,
                streamDescriptor: Int32? = nil, journalSocketPath: String? = nil,
                identifier: StaticString = "keeld", producersMax: Int = 8, ringCapacity: Int = 4096,
                wakeIntervalNs: Nanoseconds = 50 * Time.nsPerMs, threadStackBytes: Int = 128 * 1024,
                wakesWhenHalfFull: Bool = true) {
        self.filePath = filePath
        self.fileBytesMax = fileBytesMax
        self.fileBufferPages = fileBufferPages
        self.streamDescriptor = streamDescriptor
        self.journalSocketPath = journalSocketPath
        self.identifier = identifier
        self.producersMax = producersMax
        self.ringCapacity = ringCapacity
        self.wakeIntervalNs = wakeIntervalNs
        self.threadStackBytes = threadStackBytes
        self.wakesWhenHalfFull = wakesWhenHalfFull
    }
}

/// A producing thread's handle on its own ring. Use each producer from one thread only (its ring
/// is single-producer). `log` never blocks, never allocates and never formats: it copies a
/// 48-byte record into the ring, or drops it and counts the drop when the ring is full.
public struct LogProducer: Sendable {
    @usableFromInline let ring: SPSCRing<LogRecord>
    @usableFromInline let doorbell: Int32
    /// Occupancy at which `log` rings the logger's doorbell instead of waiting for its timer
    /// (`Int.max`: never).
    @usableFromInline let wakeOccupancy: Int
    /// This producer's index, stamped into its records' `source`.
    public let source: UInt16
    /// The thread name its lines show.
    public let name: StaticString

    @usableFromInline
    init(ring: SPSCRing<LogRecord>, doorbell: Int32, source: UInt16, name: StaticString, wakesWhenHalfFull: Bool) {
        self.ring = ring
        self.doorbell = doorbell
        self.wakeOccupancy = wakesWhenHalfFull ? max(ring.capacity / 2, 1) : Int.max
        self.source = source
        self.name = name
    }

    /// Logs `record` (its `source` is set to this producer). False when the ring was full: the
    /// record is dropped and counted, and the logger reports the count once it has drained.
    ///
    /// When the ring reaches half full the logger's eventfd is rung (a non-blocking write) so it
    /// drains before its timer would (`LogConfiguration.wakesWhenHalfFull`).
    @inlinable
    @discardableResult
    public func log(_ record: LogRecord) -> Bool {
        var stamped = record
        stamped.source = source
        guard ring.push(stamped) else { return false }
        if ring.count == wakeOccupancy {
            _ = keel_logging_ring_doorbell(doorbell)
        }
        return true
    }

    /// Logs `message` now (CLOCK_MONOTONIC) with up to four arguments (see `LogArgument`).
    @inlinable
    @discardableResult
    public func log(_ message: LogMessage, _ a0: UInt64 = 0, _ a1: UInt64 = 0, _ a2: UInt64 = 0, _ a3: UInt64 = 0) -> Bool {
        log(LogRecord(message, timestampNs: LogClock.nowNs(), source: source, a0, a1, a2, a3))
    }

    /// Wakes the logger thread now (a non-blocking eventfd write), e.g. before a deliberate exit.
    public func wake() {
        _ = keel_logging_ring_doorbell(doorbell)
    }

    /// Records this producer could not log because its ring was full, since start.
    public var droppedCount: Int { ring.droppedCount }
}

/// The recovery loop's output going to the log: each `RecoveryRecord` becomes a `LogRecord`
/// stamped with the loop's `nowNs` (CLOCK_MONOTONIC in the daemon).
public struct LogRecoveryOutput: RecoveryOutput {
    public let producer: LogProducer

    /// Logs through `producer`, which belongs to the recovery thread.
    public init(producer: LogProducer) { self.producer = producer }

    @inlinable
    public mutating func record(_ record: RecoveryRecord, nowNs: Nanoseconds) {
        producer.log(LogRecord(record, timestampNs: nowNs))
    }
}

/// Entry of the logger thread; the logger is handed over retained and released when it leaves.
private func loggerThreadMain(_ argument: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let logger = Unmanaged<KeelLogger>.fromOpaque(argument!).takeRetainedValue()
    logger.runThread()
    return nil
}

/// Keel's logger. Producers (a fixed number, registered with `registerProducer`) log fixed-size
/// records into rings of their own; one logger thread (`start`/`stop`) wakes on a timer or a
/// doorbell, drains every ring in timestamp order, formats the lines (the only place Keel
/// formats log text) and hands them to the sinks: the O_DIRECT file, a non-blocking stream,
/// the journal.
///
/// Nothing a sink does can reach a producer: a stalled file device stalls the logger thread,
/// the rings fill, and producers drop and count. When the logger drains a ring that dropped
/// records it writes "N log records dropped on thread X".
///
/// Memory: the rings, the page buffer and every text buffer are allocated at init; the logger
/// thread allocates nothing while it runs.
public final class KeelLogger: @unchecked Sendable {
    public let configuration: LogConfiguration
    /// The names lines show for maps, paths and devices (the control plane keeps them current).
    public let names = LogNames()
    /// How deep the logger thread's stack has gone.
    public let stack = StackWatermark(name: "keel-logger")
    let rings: [SPSCRing<LogRecord>]
    let producerNames: UnsafeMutablePointer<StaticString>
    /// Producers handed out so far; the logger thread reads it (acquiring) each pass.
    let producerCount = Atomic<Int>(0)
    let registration = Mutex<Int>(0)
    let doorbell: Int32
    let counters = LogCounterCells()
    let stopRequested = Atomic<Bool>(false)
    let threadState = Mutex<LoggerThreadState>(.notStarted)

    // Logger-thread state (touched only by the logger thread once it runs).
    let file: LogFileSink?
    let stream: LogStreamSink?
    let journal: LogJournalSink?
    static let lineBytesMax = 1024
    let lineStorage: UnsafeMutablePointer<UInt8>
    let lookahead: UnsafeMutablePointer<LogRecord>
    let hasLookahead: UnsafeMutablePointer<Bool>
    let dropsReported: UnsafeMutablePointer<Int>
    var streamDropsReported = 0
    var journalDropsReported = 0
    var fileLossesReported = 0

    /// Opens the sinks and allocates everything. Throws when a configured sink cannot be opened
    /// (the file, the stream's fcntl, the journal's connect: ENOENT without journald).
    public init(_ configuration: LogConfiguration) throws(SystemError) {
        precondition(configuration.producersMax >= 1 && configuration.producersMax < Int(UInt16.max),
                     "producersMax out of range")
        self.configuration = configuration
        var rings: [SPSCRing<LogRecord>] = []
        rings.reserveCapacity(configuration.producersMax)
        for _ in 0..<configuration.producersMax {
            rings.append(SPSCRing<LogRecord>(capacity: configuration.ringCapacity))
        }
        self.rings = rings
        producerNames = .allocate(capacity: configuration.producersMax)
        producerNames.initialize(repeating: "?", count: configuration.producersMax)
        lineStorage = .allocate(capacity: Self.lineBytesMax)
        lookahead = .allocate(capacity: configuration.producersMax)
        hasLookahead = .allocate(capacity: configuration.producersMax)
        hasLookahead.initialize(repeating: false, count: configuration.producersMax)
        dropsReported = .allocate(capacity: configuration.producersMax)
        dropsReported.initialize(repeating: 0, count: configuration.producersMax)
        let counters = self.counters
        var opened: (LogFileSink?, LogStreamSink?, LogJournalSink?, Int32) = (nil, nil, nil, -1)
        do {
            opened.3 = Int32(try systemCall("eventfd") { keel_logging_eventfd() })
            if let path = configuration.filePath {
                opened.0 = try LogFileSink(path: path, bytesMax: configuration.fileBytesMax,
                                           bufferPages: configuration.fileBufferPages,
                                           lineBytesMax: Self.lineBytesMax, counters: counters)
            }
            if let descriptor = configuration.streamDescriptor {
                opened.1 = try LogStreamSink(descriptor: descriptor, counters: counters)
            }
            if let socketPath = configuration.journalSocketPath {
                opened.2 = try LogJournalSink(socketPath: socketPath, identifier: configuration.identifier,
                                              counters: counters)
            }
        } catch {
            if opened.3 >= 0 { close(opened.3) }
            producerNames.deallocate()
            lineStorage.deallocate()
            lookahead.deallocate()
            hasLookahead.deallocate()
            dropsReported.deallocate()
            throw error
        }
        file = opened.0
        stream = opened.1
        journal = opened.2
        doorbell = opened.3
    }

    deinit {
        close(doorbell)
        producerNames.deallocate()
        lineStorage.deallocate()
        lookahead.deallocate()
        hasLookahead.deallocate()
        dropsReported.deallocate()
    }

    /// Hands out the next ring to the thread named `name`; nil once `producersMax` are taken.
    /// Call at start-up, before or after `start`, from any thread.
    public func registerProducer(name: StaticString) -> LogProducer? {
        registration.withLock { next -> LogProducer? in
            guard next < configuration.producersMax else { return nil }
            producerNames[next] = name
            let producer = LogProducer(ring: rings[next], doorbell: doorbell, source: UInt16(next), name: name,
                                       wakesWhenHalfFull: configuration.wakesWhenHalfFull)
            next += 1
            // Releasing: the logger thread sees the name before it sees the count.
            producerCount.store(next, ordering: .releasing)
            return producer
        }
    }

    /// Starts the logger thread (detached from nothing: `stop` joins it) with the configured
    /// small stack. Call once.
    public func start() throws(SystemError) {
        try threadState.withLock { state throws(SystemError) in
            guard case .notStarted = state else { preconditionFailure("KeelLogger.start called twice") }
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            defer { pthread_attr_destroy(&attributes) }
            pthread_attr_setstacksize(&attributes, max(configuration.threadStackBytes, Int(PTHREAD_STACK_MIN)))
            let retained = Unmanaged.passRetained(self)
            var thread = pthread_t()
            let rc = pthread_create(&thread, &attributes, loggerThreadMain, retained.toOpaque())
            if rc != 0 {
                retained.release()
                throw SystemError("pthread_create", errno: rc)
            }
            state = .running(thread)
        }
    }

    /// Asks the logger thread to drain what was logged before this call, write it, and leave;
    /// waits for it (joins). A logger thread stuck in a stalled file write keeps `stop` waiting
    /// until the write returns: call it at shutdown only.
    public func stop() {
        let thread: pthread_t? = threadState.withLock { state in
            guard case .running(let thread) = state else { return nil }
            state = .stopped
            return thread
        }
        guard let thread else { return }
        stopRequested.store(true, ordering: .releasing)
        _ = keel_logging_ring_doorbell(doorbell)
        pthread_join(thread, nil)
    }

    /// A snapshot of the counters.
    /// errno of the log file's failed open when the logger was made (0: open, or no file).
    /// Read it before `start`: the logger thread retries the open afterwards.
    public var fileOpenErrno: Int32 { file?.openErrno ?? 0 }

    public var counterSnapshot: LogCounters {
        var dropped = 0
        for ring in rings { dropped += ring.droppedCount }
        let started = counters.fileWriteStartedNs.load(ordering: .relaxed)
        return LogCounters(
            recordsWritten: counters.recordsWritten.load(ordering: .relaxed),
            recordsDropped: dropped,
            wakeups: counters.wakeups.load(ordering: .relaxed),
            filePagesWritten: counters.filePagesWritten.load(ordering: .relaxed),
            fileWriteErrors: counters.fileWriteErrors.load(ordering: .relaxed),
            fileLinesLost: counters.fileLinesLost.load(ordering: .relaxed),
            fileLastErrno: Int32(truncatingIfNeeded: counters.fileLastErrno.load(ordering: .relaxed)),
            fileRotations: counters.fileRotations.load(ordering: .relaxed),
            fileDirectIO: file?.directIO ?? false,
            fileWriteStalledNs: started == 0 ? 0 : max(LogClock.nowNs() - started, 0),
            fileWriteNsMax: counters.fileWriteNsMax.load(ordering: .relaxed),
            streamLinesDropped: counters.streamLinesDropped.load(ordering: .relaxed),
            streamWriteErrors: counters.streamWriteErrors.load(ordering: .relaxed),
            journalLinesDropped: counters.journalLinesDropped.load(ordering: .relaxed))
    }

    /// Records dropped by one producer's ring (by its `source`).
    public func droppedCount(source: UInt16) -> Int {
        Int(source) < rings.count ? rings[Int(source)].droppedCount : 0
    }

    // MARK: The logger thread

    /// The `source` of the logger's own records: past every producer, so lines show "logger".
    var loggerSource: UInt16 { UInt16(configuration.producersMax) }

    func runThread() {
        keel_logging_name_thread("keel-logger")
        stack.paintCallingThread()
        defer { stack.forget() }
        var formatter = LogFormatter(producerNames: producerNames, producerCount: 0, loggerName: "logger", names: names)
        var realtime = timespec()
        clock_gettime(CLOCK_REALTIME, &realtime)
        let startedNs = LogClock.nowNs()
        emit(LogRecord(.loggerStarted, timestampNs: startedNs, source: loggerSource,
                       UInt64(startedNs / Time.nsPerMs), UInt64(realtime.tv_sec)),
             to: .all, formatter: formatter)
        while true {
            // Read before draining, so the last pass covers everything logged before `stop`.
            let stopping = stopRequested.load(ordering: .acquiring)
            formatter.producerCount = producerCount.load(ordering: .acquiring)
            drain(formatter: formatter, final: stopping)
            reportLosses(formatter: formatter)
            stream?.flush()
            file?.flush()
            if stopping { break }
            _ = keel_logging_wait_doorbell(doorbell, configuration.wakeIntervalNs)
            counters.wakeups.wrappingAdd(1, ordering: .relaxed)
        }
    }

    /// Takes records from every ring, oldest timestamp first among the rings' heads (each ring
    /// is in order already), at most one ring-full per producer per pass so a flood cannot keep
    /// the thread from flushing. A final pass also writes the heads it still holds.
    func drain(formatter: LogFormatter, final: Bool) {
        let count = formatter.producerCount
        var budget = count * configuration.ringCapacity
        while budget > 0 {
            var oldest = -1
            for i in 0..<count {
                if !hasLookahead[i], let record = rings[i].pop() {
                    lookahead[i] = record
                    hasLookahead[i] = true
                }
                if hasLookahead[i] && (oldest < 0 || lookahead[i].timestampNs < lookahead[oldest].timestampNs) {
                    oldest = i
                }
            }
            guard oldest >= 0 else { break }
            hasLookahead[oldest] = false
            emit(lookahead[oldest], to: .all, formatter: formatter)
            budget -= 1
        }
        if final {
            for i in 0..<count where hasLookahead[i] {
                hasLookahead[i] = false
                emit(lookahead[i], to: .all, formatter: formatter)
            }
        }
        let nowNs = LogClock.nowNs()
        for i in 0..<count {
            // The ring has just been drained: there is room again, say what was lost.
            let dropped = rings[i].droppedCount
            if dropped != dropsReported[i] {
                emit(LogRecord(.ringDropped, timestampNs: nowNs, source: loggerSource,
                               UInt64(dropped - dropsReported[i]), UInt64(i)),
                     to: .all, formatter: formatter)
                dropsReported[i] = dropped
            }
        }
    }

    /// Reports lines a sink lost, through the other sinks (a blocked sink would only lose the
    /// report too, and report that, every pass).
    func reportLosses(formatter: LogFormatter) {
        let nowNs = LogClock.nowNs()
        let streamDrops = counters.streamLinesDropped.load(ordering: .relaxed)
        if streamDrops != streamDropsReported {
            emit(LogRecord(.sinkDropped, timestampNs: nowNs, source: loggerSource,
                           UInt64(streamDrops - streamDropsReported), UInt64(LogSinkKind.stream.rawValue)),
                 to: LogSinkSet.file.union(.journal), formatter: formatter)
            streamDropsReported = streamDrops
        }
        let journalDrops = counters.journalLinesDropped.load(ordering: .relaxed)
        if journalDrops != journalDropsReported {
            emit(LogRecord(.sinkDropped, timestampNs: nowNs, source: loggerSource,
                           UInt64(journalDrops - journalDropsReported), UInt64(LogSinkKind.journal.rawValue)),
                 to: LogSinkSet.file.union(.stream), formatter: formatter)
            journalDropsReported = journalDrops
        }
        let fileLosses = counters.fileLinesLost.load(ordering: .relaxed)
        if fileLosses != fileLossesReported {
            emit(LogRecord(.fileWriteFailed, timestampNs: nowNs, source: loggerSource,
                           LogArgument.signed(counters.fileLastErrno.load(ordering: .relaxed)),
                           UInt64(fileLosses - fileLossesReported)),
                 to: LogSinkSet.stream.union(.journal), formatter: formatter)
            fileLossesReported = fileLosses
        }
    }

    /// Formats `record` once and hands the line to the chosen sinks.
    func emit(_ record: LogRecord, to sinks: LogSinkSet, formatter: LogFormatter) {
        var line = LogTextBuffer(base: lineStorage, capacity: Self.lineBytesMax)
        formatter.appendLine(record, to: &line)
        if sinks.contains(.file) { file?.append(line.bytes) }
        if sinks.contains(.stream) { stream?.append(line.bytes) }
        if sinks.contains(.journal) { journal?.send(record, formatter: formatter) }
        counters.recordsWritten.wrappingAdd(1, ordering: .relaxed)
    }
}

/// Where the logger thread is in its life.
enum LoggerThreadState: Sendable {
    case notStarted
    case running(pthread_t)
    case stopped
}

/// A set of sinks for one line.
struct LogSinkSet: OptionSet {
    let rawValue: UInt8
    static let file = LogSinkSet(rawValue: 1)
    static let stream = LogSinkSet(rawValue: 2)
    static let journal = LogSinkSet(rawValue: 4)
    static let all = LogSinkSet(rawValue: 7)
}
