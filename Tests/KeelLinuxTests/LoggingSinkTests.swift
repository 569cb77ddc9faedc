// The stream and journal sinks: they receive every line, and a reader that stops reading blocks neither producers nor the logger thread.
import Foundation
import Glibc
import KeelCore
@testable import KeelLinux
import Testing

/// A pipe whose ends are closed by `close()`.
private struct TestPipe {
    let readEnd: Int32
    let writeEnd: Int32

    init() throws {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw LoggingFixtureError(description: "pipe failed") }
        readEnd = ends[0]
        writeEnd = ends[1]
    }

    func close() {
        Glibc.close(readEnd)
        Glibc.close(writeEnd)
    }

    /// Everything readable right now (the read end is made non-blocking).
    func drain() -> String {
        _ = fcntl(readEnd, F_SETFL, fcntl(readEnd, F_GETFL) | O_NONBLOCK)
        var collected: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(readEnd, &chunk, chunk.count)
            if count <= 0 { break }
            collected.append(contentsOf: chunk[0..<count])
        }
        return String(decoding: collected, as: UTF8.self)
    }
}

/// A datagram socket bound at a path, standing in for journald.
private final class FakeJournal {
    let path: String
    let descriptor: Int32

    init(directory: String) throws {
        path = directory + "/journal.socket"
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw LoggingFixtureError(description: "socket failed") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw LoggingFixtureError(description: "bind failed: errno \(errno)") }
    }

    deinit { close(descriptor) }

    /// The next datagram, or nil when none is queued.
    func receive() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(descriptor, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        return count < 0 ? nil : String(decoding: buffer[0..<count], as: UTF8.self)
    }
}

@Suite("logging to a stream and the journal")
struct LoggingSinkTests {
    @Test("the stream sink receives every line")
    func streamReceivesLines() throws {
        let pipe = try TestPipe()
        defer { pipe.close() }
        let logger = try KeelLogger(LogConfiguration(streamDescriptor: pipe.writeEnd, producersMax: 1))
        let producer = try #require(logger.registerProducer(name: "recovery"))
        try logger.start()
        for i in 0..<50 { producer.log(.memoryLocked, UInt64(i)) }
        logger.stop()
        let lines = pipe.drain().split(separator: "\n").map(String.init)
        #expect(loggingSequence(lines) == Array(0..<50))
        #expect(logger.counterSnapshot.streamLinesDropped == 0)
    }

    @Test("a stream nobody reads blocks neither producers nor the logger thread")
    func unreadStreamBlocksNobody() throws {
        let directory = try loggingTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/keeld.log"
        let pipe = try TestPipe()
        defer { pipe.close() }
        let logger = try KeelLogger(LogConfiguration(filePath: path, fileBytesMax: 1 << 30, streamDescriptor: pipe.writeEnd,
                                                     producersMax: 1, ringCapacity: 4096, wakeIntervalNs: 10 * Time.nsPerMs))
        let producer = try #require(logger.registerProducer(name: "recovery"))
        try logger.start()
        // 64 KiB of pipe hold about 1000 lines; log far more, 5 µs apart, for about a second.
        let (latencies, accepted) = loggingTimedBurst(producer, first: 0, count: 200_000, gapNs: 5000)
        let wakeupsBefore = logger.counterSnapshot.wakeups
        // The logger thread still runs: it keeps waking and writing the file.
        let stillRunning = loggingWait { logger.counterSnapshot.wakeups > wakeupsBefore + 3 }
        logger.stop()
        let counters = logger.counterSnapshot
        let figures = LatencyFigures(latencies)
        print("unread stream: producer log() \(figures); accepted \(accepted) of 200000; stream dropped \(counters.streamLinesDropped) lines; file pages \(counters.filePagesWritten)")
        #expect(stillRunning)
        #expect(counters.streamLinesDropped > 0)
        // Generous: a blocked producer would show seconds here.
        #expect(figures.maximumNs < Time.nsPerSecond / 2)
        let fileLines = try loggingFileLines(path)
        #expect(loggingSequence(fileLines).count == accepted)
        #expect(fileLines.contains { loggingText($0).hasSuffix("log lines dropped by the stream sink (it would have blocked)") })
    }

    @Test("the journal receives native-protocol datagrams with priority, identifier and message")
    func journalReceivesEntries() throws {
        let directory = try loggingTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = try FakeJournal(directory: directory)
        let logger = try KeelLogger(LogConfiguration(journalSocketPath: journal.path, identifier: "keeld-test", producersMax: 1))
        let producer = try #require(logger.registerProducer(name: "recovery"))
        try logger.start()
        let message = DMMessage(map: MapHandle(3), kind: .failPath, device: DevNo(major: 8, minor: 16))
        producer.log(LogRecord(RecoveryRecord.messageSent(message, errno: 0), timestampNs: LogClock.nowNs()))
        logger.stop()
        var entries: [String] = []
        while let entry = journal.receive() { entries.append(entry) }
        #expect(entries.count == 2)
        #expect(entries.first?.hasPrefix("PRIORITY=5\nSYSLOG_IDENTIFIER=keeld-test\nKEEL_MESSAGE_ID=500\nKEEL_THREAD=logger\nMESSAGE=logger started") == true)
        #expect(entries.last == "PRIORITY=3\nSYSLOG_IDENTIFIER=keeld-test\nKEEL_MESSAGE_ID=2\nKEEL_THREAD=recovery\nMESSAGE=path 8:16 of map#3 failed\n")
    }

    @Test("a journal that stops reading makes the logger drop and count, not wait")
    func fullJournalDrops() throws {
        let directory = try loggingTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = try FakeJournal(directory: directory)
        let logger = try KeelLogger(LogConfiguration(journalSocketPath: journal.path, producersMax: 1, ringCapacity: 8192))
        let producer = try #require(logger.registerProducer(name: "recovery"))
        try logger.start()
        // More datagrams than net.unix.max_dgram_qlen (512 by default) and the socket buffer hold.
        for i in 0..<5000 { producer.log(.memoryLocked, UInt64(i)) }
        let stoppedNs = LogClock.nowNs()
        logger.stop()
        let stopNs = LogClock.nowNs() - stoppedNs
        let counters = logger.counterSnapshot
        #expect(counters.journalLinesDropped > 0)
        #expect(counters.recordsWritten >= 5000)
        #expect(stopNs < 2 * Time.nsPerSecond)
    }

    @Test("a journal socket that does not exist is an error at init")
    func missingJournalIsAnError() throws {
        #expect(throws: SystemError.self) {
            _ = try KeelLogger(LogConfiguration(journalSocketPath: "/nonexistent/keel/journal.socket"))
        }
    }
}
