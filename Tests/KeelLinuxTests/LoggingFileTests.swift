// The logger with its file sink on ext4: order and text, O_DIRECT whole pages, partial-page rewrites, rotation, drops.
import Foundation
import Glibc
import KeelCore
@testable import KeelLinux
import Testing

@Suite("logging to a file")
struct LoggingFileTests {
    @Test("lines come out in the order they were logged, with their text")
    func linesInOrder() throws {
        let directory = try loggingTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/keeld.log"
        let logger = try KeelLogger(LogConfiguration(filePath: path, producersMax: 2, ringCapacity: 1024))
        let producer = try #require(logger.registerProducer(name: "recovery"))
        try logger.start()
        for i in 0..<500 {
            #expect(producer.log(.memoryLocked, UInt64(i)))
            if i % 100 == 99 { usleep(2000) }
        }
        logger.stop()
        let lines = try loggingFileLines(path)
        let mine = loggingLines(lines, thread: "recovery")
        #expect(loggingSequence(mine) == Array(0..<500))
        #expect(mine.allSatisfy { $0.contains(" notice recovery: memory locked: ") && $0.hasSuffix(" KiB resident") })
        #expect(loggingText(try #require(lines.first)).hasPrefix("logger started: monotonic "))
    }

    @Test("the file is opened O_DIRECT and holds text only: no NUL, no padding after the last line")
    func wholePagesOfText() throws {
        let directory = try loggingTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/keeld.log"
        let logger = try KeelLogger(LogConfiguration(filePath: path, producersMax: 1))
        let producer = try #require(logger.registerProducer(name: "events"))
        try logger.start()
        for i in 0..<300 { producer.log(.dmEvent, UInt64(i % 7), UInt64(i)) }
        logger.stop()
        #expect(logger.counterSnapshot.fileDirectIO)
        let bytes = try loggingFileBytes(path)
        #expect(bytes.count > 0)
        #expect(bytes.count % 4096 != 0, "300 lines do not fill whole pages exactly, and the padding was cut")
        // Text only: no NUL from a hole or an unwritten pad, and the file ends with its last line.
        #expect(!bytes.contains(0))
        #expect(bytes.last == UInt8(ascii: "\n"))
        #expect(loggingText(String(decoding: bytes, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? "") == "map#5: dm event 299")
        let events = loggingLines(try loggingFileLines(path), thread: "events")
        #expect(events.count == 300)
        #expect(loggingText(events[299]) == "map#5: dm event 299")
    }

    @Test("a partly filled page is written again in place until it is full; the file ends where the text does")
    func partialPageRewrittenInPlace() throws {
        let directory = try loggingTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/keeld.log"
        let logger = try KeelLogger(LogConfiguration(filePath: path, producersMax: 1, wakeIntervalNs: 5 * Time.nsPerMs))
        let producer = try #require(logger.registerProducer(name: "control"))
        try logger.start()
        defer { logger.stop() }
        // Between the padded page's pwrite and the ftruncate that follows it, a reader can see the
        // whole padded page (spaces and a newline: still text). The settled file is what is
        // checked: the line is there and the file is cut back to it.
        func settledBytes(ending suffix: String) -> [UInt8]? {
            var settled: [UInt8]?
            _ = loggingWait {
                guard let bytes = try? loggingFileBytes(path), bytes.count < 4096 else { return false }
                let text = String(decoding: bytes, as: UTF8.self)
                guard text.hasSuffix(suffix + "\n") else { return false }
                settled = bytes
                return true
            }
            return settled
        }
        producer.log(.tableLoaded, 1, 4, 2)
        let first = try #require(settledBytes(ending: "map#1: table loaded with 4 paths in 2 path groups"))
        #expect(first.last == UInt8(ascii: "\n") && !first.contains(0))
        producer.log(.tableLoaded, 2, 8, 2)
        let second = try #require(settledBytes(ending: "map#2: table loaded with 8 paths in 2 path groups"))
        let lines = loggingLines(try loggingFileLines(path), thread: "control")
        #expect(lines.count == 2)
        #expect(second.count < 4096 && second.count > first.count, "the file grew by the new line (tail -f sees it)")
        #expect(Array(second.prefix(first.count)) == first, "the earlier text is unchanged")
    }

    @Test("at fileBytesMax the file is rotated to .1 and a new one started, lines whole and in order")
    func rotationAtBytesMax() throws {
        let directory = try loggingTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/keeld.log"
        // 16 KiB + 100 bytes: rounded down to 4 pages.
        let logger = try KeelLogger(LogConfiguration(filePath: path, fileBytesMax: 16 * 1024 + 100, producersMax: 1, ringCapacity: 4096))
        let producer = try #require(logger.registerProducer(name: "recovery"))
        try logger.start()
        for i in 0..<1000 {
            #expect(producer.log(.memoryLocked, UInt64(i)))
        }
        logger.stop()
        let counters = logger.counterSnapshot
        #expect(counters.fileRotations >= 1)
        let older = try loggingFileBytes(path + ".1")
        let newer = try loggingFileBytes(path)
        #expect(older.count <= 16 * 1024 && older.count > 16 * 1024 - 200, "\(older.count)")
        #expect(newer.count <= 16 * 1024)
        #expect(older.last == UInt8(ascii: "\n") && newer.last == UInt8(ascii: "\n"))
        let olderNumbers = loggingSequence(try loggingFileLines(path + ".1"))
        let newerNumbers = loggingSequence(try loggingFileLines(path))
        #expect(!olderNumbers.isEmpty)
        #expect(!newerNumbers.isEmpty)
        // The two files together are the latest lines, contiguous across the seam.
        let joined = olderNumbers + newerNumbers
        #expect(joined == Array(joined.first!...999))
    }

    @Test("a file Keel wrote before is continued at its end")
    func existingFileContinued() throws {
        let directory = try loggingTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/keeld.log"
        for run in 0..<2 {
            let logger = try KeelLogger(LogConfiguration(filePath: path, producersMax: 1))
            let producer = try #require(logger.registerProducer(name: "recovery"))
            try logger.start()
            producer.log(.memoryLocked, UInt64(run))
            logger.stop()
        }
        #expect(loggingSequence(try loggingFileLines(path)) == [0, 1])
        #expect(!FileManager.default.fileExists(atPath: path + ".1"))
        let bytes = try loggingFileBytes(path)
        #expect(bytes.count < 4096, "the second run continued the first one's partial page")
        #expect(!bytes.contains(0) && !String(decoding: bytes, as: UTF8.self).contains("  "), "no padding between the runs")
    }

    @Test("a file of foreign, unaligned content is rotated away at start")
    func foreignFileRotated() throws {
        let directory = try loggingTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/keeld.log"
        try "written by someone else\n".write(toFile: path, atomically: true, encoding: .utf8)
        let logger = try KeelLogger(LogConfiguration(filePath: path, producersMax: 1))
        let producer = try #require(logger.registerProducer(name: "recovery"))
        try logger.start()
        producer.log(.memoryLocked, 7)
        logger.stop()
        #expect(try String(contentsOfFile: path + ".1", encoding: .utf8) == "written by someone else\n")
        #expect(loggingSequence(try loggingFileLines(path)) == [7])
    }

    @Test("a full ring drops and counts, and the drop line appears once the logger drains")
    func fullRingDropsAndReports() throws {
        let directory = try loggingTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/keeld.log"
        let logger = try KeelLogger(LogConfiguration(filePath: path, producersMax: 2, ringCapacity: 8))
        let producer = try #require(logger.registerProducer(name: "recovery"))
        var accepted = 0
        // Not started yet: nothing drains, the ring holds 8.
        for i in 0..<20 where producer.log(.memoryLocked, UInt64(i)) { accepted += 1 }
        #expect(accepted == 8)
        #expect(producer.droppedCount == 12)
        #expect(logger.droppedCount(source: producer.source) == 12)
        #expect(logger.counterSnapshot.recordsDropped == 12)
        try logger.start()
        logger.stop()
        let lines = try loggingFileLines(path)
        #expect(loggingSequence(lines) == Array(0..<8))
        let reports = lines.filter { loggingText($0) == "12 log records dropped on thread recovery" }
        #expect(reports.count == 1)
        #expect(reports.first?.contains(" warning logger: ") == true)
    }

    @Test("records from several producers come out in timestamp order")
    func producersMergedByTime() throws {
        let directory = try loggingTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/keeld.log"
        let logger = try KeelLogger(LogConfiguration(filePath: path, producersMax: 3, ringCapacity: 64))
        let first = try #require(logger.registerProducer(name: "recovery"))
        let second = try #require(logger.registerProducer(name: "events"))
        let third = try #require(logger.registerProducer(name: "control"))
        for i in 0..<30 {
            let producer = [first, second, third][(i * 7) % 3]
            producer.log(LogRecord(.memoryLocked, timestampNs: Nanoseconds(1000 + i), source: 0, UInt64(i)))
        }
        try logger.start()
        logger.stop()
        #expect(loggingSequence(try loggingFileLines(path)) == Array(0..<30))
    }

    @Test("a ring reaching half full wakes the logger before its timer, unless told not to")
    func halfFullRingWakesLogger() throws {
        for wakes in [true, false] {
            let logger = try KeelLogger(LogConfiguration(producersMax: 1, ringCapacity: 64, wakeIntervalNs: 30 * Time.nsPerSecond,
                                                         wakesWhenHalfFull: wakes))
            let producer = try #require(logger.registerProducer(name: "recovery"))
            try logger.start()
            // The thread's first pass ran (its start line is written) and it sleeps on its timer.
            #expect(loggingWait { logger.counterSnapshot.recordsWritten == 1 })
            for i in 0..<32 { producer.log(.memoryLocked, UInt64(i)) }
            let drained = loggingWait(timeoutNs: 300 * Time.nsPerMs) { logger.counterSnapshot.recordsWritten == 33 }
            #expect(drained == wakes)
            logger.stop()
            #expect(logger.counterSnapshot.recordsWritten == 33)
        }
    }

    @Test("no more producers than producersMax are handed out")
    func producersBounded() throws {
        let logger = try KeelLogger(LogConfiguration(producersMax: 2))
        #expect(logger.registerProducer(name: "a")?.source == 0)
        #expect(logger.registerProducer(name: "b")?.source == 1)
        #expect(logger.registerProducer(name: "c") == nil)
    }

    @Test("sustained logging: every line written is in order, and the gaps are exactly the reported drops")
    func sustainedLoggingAccountsForEveryRecord() throws {
        let directory = try loggingTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/keeld.log"
        let logger = try KeelLogger(LogConfiguration(filePath: path, fileBytesMax: 1 << 30, producersMax: 1, ringCapacity: 4096))
        let producer = try #require(logger.registerProducer(name: "recovery"))
        try logger.start()
        let startedNs = LogClock.nowNs()
        var logged = 0
        var accepted = 0
        while LogClock.nowNs() - startedNs < Time.nsPerSecond {
            if producer.log(.memoryLocked, UInt64(logged)) { accepted += 1 }
            logged += 1
            // About 2 µs apart: fast enough to fill pages, slow enough not to drop everything.
            let next = LogClock.nowNs() + 2000
            while LogClock.nowNs() < next {}
        }
        let elapsedNs = LogClock.nowNs() - startedNs
        logger.stop()
        let counters = logger.counterSnapshot
        let lines = try loggingFileLines(path)
        let numbers = loggingSequence(lines)
        #expect(numbers.count == accepted)
        #expect(zip(numbers, numbers.dropFirst()).allSatisfy { $0 < $1 })
        let reported = lines.compactMap { line -> Int? in
            let text = loggingText(line)
            guard text.hasSuffix(" log records dropped on thread recovery") else { return nil }
            return Int(text.prefix { $0.isNumber })
        }.reduce(0, +)
        #expect(reported == logged - accepted)
        #expect(counters.recordsDropped == logged - accepted)
        let seconds = Double(elapsedNs) / 1e9
        print("logging throughput: \(logged) log calls in \(String(format: "%.2f", seconds)) s, \(accepted) written, \(logged - accepted) dropped; "
              + "\(counters.filePagesWritten) pages written (\(Int(Double(counters.filePagesWritten) / seconds)) pages/s), "
              + "file size \(try loggingFileBytes(path).count / 4096) pages, longest write \(counters.fileWriteNsMax / 1000) µs, wakeups \(counters.wakeups)")
    }
}

/// Early boot: a logger is started on `path`, which cannot be opened yet (`openErrno`), logs a
/// line, and `makeOpenable` then makes the file possible. Logs a line every 50 ms until the file
/// holds it (the logger retries opening every 2 s), for at most 5 s; the file's text.
private func loggingDeferredFileText(path: String, openErrno: Int32, makeOpenable: () -> Void) throws -> String {
    let logger = try KeelLogger(LogConfiguration(filePath: path, identifier: "keel-test", producersMax: 2))
    #expect(logger.fileOpenErrno == openErrno)
    try logger.start()
    defer { logger.stop() }
    let producer = try #require(logger.registerProducer(name: "test"))
    #expect(producer.log(.started, LogArgument.signed(7), LogArgument.signed(3)))
    usleep(300_000)
    makeOpenable()
    var text = ""
    for _ in 0..<100 {
        _ = producer.log(.started, LogArgument.signed(8), LogArgument.signed(3))
        usleep(50_000)
        if let data = FileManager.default.contents(atPath: path) { text = String(decoding: data, as: UTF8.self) }
        if text.contains("at most 8 paths") { break }
    }
    return text
}

@Suite(.serialized) struct LoggingDeferredFileTests {
    /// Early boot: the log's directory does not exist yet (/var not mounted). The logger starts
    /// anyway, keeps the lines, and writes them once the file can be opened.
    @Test func aFileThatCannotBeOpenedYetIsOpenedLaterWithTheEarlyLines() throws {
        let directory = try loggingTemporaryDirectory()
        defer { _ = directory.withCString { rmdir($0) } }
        let notYet = directory + "/var-log"
        let path = notYet + "/keeld.log"
        defer { unlink(path); rmdir(notYet) }
        // The next retry (every 2 s) opens it; the early line is written.
        let text = try loggingDeferredFileText(path: path, openErrno: ENOENT) { #expect(mkdir(notYet, 0o755) == 0) }
        #expect(text.contains("at most 7 paths"), "the line logged before the file existed")
        #expect(text.contains("at most 8 paths"))
    }

    /// Early boot: the root is still read-only (the log's file system is mounted read-only, then
    /// remounted read-write, as an initramfs hands over). EROFS is not fatal either.
    @Test(.enabled(if: getuid() == 0, "needs root to mount a tmpfs"))
    func aFileOnAReadOnlyFileSystemIsOpenedOnceItIsWritable() throws {
        let directory = try loggingTemporaryDirectory()
        defer { _ = directory.withCString { rmdir($0) } }
        try #require(mount("tmpfs", directory, "tmpfs", UInt(MS_RDONLY), "size=4m") == 0, "mount: \(String(cString: strerror(errno)))")
        defer { _ = umount2(directory, Int32(MNT_DETACH)) }
        let text = try loggingDeferredFileText(path: directory + "/keeld.log", openErrno: EROFS) {
            #expect(mount("tmpfs", directory, "tmpfs", UInt(MS_REMOUNT), "size=4m") == 0, "remount: \(String(cString: strerror(errno)))")
        }
        #expect(text.contains("at most 7 paths"), "the line logged while the file system was read-only")
        #expect(text.contains("at most 8 paths"))
    }
}
