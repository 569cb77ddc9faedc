// The logger's counters, and the sinks that must never block it: a non-blocking stream (stderr) and the journal socket.
import Glibc
import CKeelShim
import KeelCore
import Synchronization

/// The logger's live counters (atomics, written by the logger thread, read by anyone).
final class LogCounterCells: Sendable {
    let recordsWritten = Atomic<Int>(0)
    let wakeups = Atomic<Int>(0)
    let filePagesWritten = Atomic<Int>(0)
    let fileWriteErrors = Atomic<Int>(0)
    let fileLinesLost = Atomic<Int>(0)
    let fileLastErrno = Atomic<Int>(0)
    let fileRotations = Atomic<Int>(0)
    /// When the `pwrite` in progress began (CLOCK_MONOTONIC), 0 when none is.
    let fileWriteStartedNs = Atomic<Int64>(0)
    let fileWriteNsMax = Atomic<Int64>(0)
    let streamLinesDropped = Atomic<Int>(0)
    let streamWriteErrors = Atomic<Int>(0)
    let journalLinesDropped = Atomic<Int>(0)
}

/// What the logger has done so far, for operators (`keelctl show logging`) and tests.
public struct LogCounters: Sendable, Equatable {
    /// Records formatted and handed to the sinks (including the logger's own drop reports).
    public var recordsWritten: Int
    /// Records producers could not log because their ring was full, over all rings.
    public var recordsDropped: Int
    /// Times the logger thread woke (timer or doorbell).
    public var wakeups: Int
    /// 4 KiB pages written to the file, counting each rewrite of a partial page.
    public var filePagesWritten: Int
    /// `pwrite` calls that failed, and the lines they lost.
    public var fileWriteErrors: Int
    public var fileLinesLost: Int
    /// The errno of the last failed file operation, 0 if none failed.
    public var fileLastErrno: Int32
    public var fileRotations: Int
    /// Whether the file is written with O_DIRECT (false if its filesystem refused it).
    public var fileDirectIO: Bool
    /// How long the file write in progress has been running (0 when none is): a stalled device
    /// shows here while the producers keep going.
    public var fileWriteStalledNs: Nanoseconds
    /// The longest single file write so far.
    public var fileWriteNsMax: Nanoseconds
    /// Lines the stream sink dropped because its descriptor would have blocked (or failed).
    public var streamLinesDropped: Int
    /// Stream writes that failed with an error other than EAGAIN.
    public var streamWriteErrors: Int
    /// Lines the journal refused (its socket queue full, or journald gone).
    public var journalLinesDropped: Int
}

/// A descriptor written without ever blocking: stderr, a pipe, a terminal.
///
/// The descriptor is set O_NONBLOCK (which changes its open file description, shared with
/// whoever else holds it). Lines are batched up to PIPE_BUF (4096) bytes: a pipe takes such a
/// write whole or refuses it with EAGAIN, so a reader never sees half a line. A refused batch is
/// dropped and its lines counted; a short write (terminals, sockets) drops the lines it cut.
/// The descriptor belongs to the caller and is not closed. The process must ignore SIGPIPE
/// (a pipe with no reader would otherwise kill it).
final class LogStreamSink {
    static let batchBytes = 4096

    let descriptor: Int32
    let batch: UnsafeMutablePointer<UInt8>
    private var fill = 0
    private var lines = 0
    let counters: LogCounterCells

    init(descriptor: Int32, counters: LogCounterCells) throws(SystemError) {
        _ = try systemCall("fcntl(O_NONBLOCK)") { keel_logging_set_nonblocking(descriptor) }
        self.descriptor = descriptor
        self.counters = counters
        batch = .allocate(capacity: Self.batchBytes)
    }

    deinit { batch.deallocate() }

    /// Adds one line (at most `batchBytes`), writing the batch first when it has no room.
    func append(_ line: UnsafeBufferPointer<UInt8>) {
        precondition(line.count <= Self.batchBytes, "a stream line longer than PIPE_BUF")
        if fill + line.count > Self.batchBytes { flush() }
        (batch + fill).update(from: line.baseAddress!, count: line.count)
        fill += line.count
        lines += 1
    }

    /// Writes the batch once, never waiting; what is not taken is dropped and counted.
    func flush() {
        guard fill > 0 else { return }
        defer {
            fill = 0
            lines = 0
        }
        let written: Int
        do {
            written = try systemCall("write(stream)") { write(descriptor, batch, fill) }
        } catch {
            if error.errno != EAGAIN && error.errno != EWOULDBLOCK {
                counters.streamWriteErrors.wrappingAdd(1, ordering: .relaxed)
            }
            counters.streamLinesDropped.wrappingAdd(lines, ordering: .relaxed)
            return
        }
        if written < fill {
            // Every line whose newline was not written is lost (the cut one included).
            var cut = 0
            for i in written..<fill where batch[i] == UInt8(ascii: "\n") { cut += 1 }
            counters.streamLinesDropped.wrappingAdd(cut, ordering: .relaxed)
        }
    }
}

/// The systemd journal's native protocol over its datagram socket, one record per datagram:
/// `PRIORITY=`, `SYSLOG_IDENTIFIER=`, `KEEL_MESSAGE_ID=`, `KEEL_THREAD=`, `MESSAGE=`, each a
/// line. Sent with MSG_DONTWAIT: when journald's queue is full the record is dropped and counted.
final class LogJournalSink {
    static let datagramBytes = 2048

    let descriptor: Int32
    let datagram: UnsafeMutablePointer<UInt8>
    let identifier: StaticString
    let counters: LogCounterCells

    init(socketPath: String, identifier: StaticString, counters: LogCounterCells) throws(SystemError) {
        descriptor = try systemCall("connect(journal)") { keel_logging_connect_datagram(socketPath) }
        datagram = .allocate(capacity: Self.datagramBytes)
        self.identifier = identifier
        self.counters = counters
    }

    deinit {
        close(descriptor)
        datagram.deallocate()
    }

    /// Sends `record` as one journal entry; never waits.
    func send(_ record: LogRecord, formatter: LogFormatter) {
        var text = LogTextBuffer(base: datagram, capacity: Self.datagramBytes)
        text.append("PRIORITY=")
        text.append(decimal: UInt64(record.message.level.rawValue))
        text.append("\nSYSLOG_IDENTIFIER=")
        text.append(identifier)
        text.append("\nKEEL_MESSAGE_ID=")
        text.append(decimal: UInt64(record.message.rawValue))
        text.append("\nKEEL_THREAD=")
        text.append(formatter.name(ofProducer: UInt64(record.source)))
        text.append("\nMESSAGE=")
        formatter.appendText(record, to: &text)
        if text.count == text.capacity { text.count -= 1 }
        text.append(UInt8(ascii: "\n"))
        if keel_logging_send(descriptor, datagram, text.count) < 0 {
            counters.journalLinesDropped.wrappingAdd(1, ordering: .relaxed)
        }
    }
}
