// A log file on a FUSE filesystem that stops answering: the logger thread hangs in pwrite, producers do not notice.
import Foundation
import Glibc
import KeelCore
@testable import KeelLinux
import Testing

@Suite("logging to a stalled file", .enabled(if: LoggingStallingFuse.isAvailable, "needs root, /dev/fuse and python3-fusepy"))
struct LoggingStallTests {
    @Test("producers keep their per-call latency while the file sink hangs; writing resumes and drops are reported")
    func stalledFileSinkDoesNotReachProducers() throws {
        let fuse = try LoggingStallingFuse()
        defer { fuse.unmount() }
        let path = fuse.mountpoint + "/keeld.log"
        let logger = try KeelLogger(LogConfiguration(filePath: path, fileBytesMax: 1 << 30, producersMax: 1,
                                                     ringCapacity: 1024, wakeIntervalNs: 10 * Time.nsPerMs))
        let producer = try #require(logger.registerProducer(name: "recovery"))
        try logger.start()
        var stopped = false
        defer {
            fuse.resume()
            if !stopped { logger.stop() }
        }
        let callsPerPhase = 100_000
        // 10 µs apart: 100,000 calls take about a second per phase.
        let gapNs: Nanoseconds = 10_000

        let healthy = loggingTimedBurst(producer, first: 0, count: callsPerPhase, gapNs: gapNs)
        let pagesHealthy = logger.counterSnapshot.filePagesWritten
        #expect(pagesHealthy > 0)

        // Whether the logger is still draining the healthy burst when the server stops answering
        // depends on the machine's load; one record after the stall makes sure a flush is due.
        // On a loaded machine the ring may still be full of the healthy burst: the record is then
        // offered again until there is room, or until the logger's write of what it still held
        // blocks in the stalled server (which is what the record is for).
        fuse.stall()
        var trigger = loggingTimedBurst(producer, first: callsPerPhase, count: 1, gapNs: gapNs)
        let triggerDeadline = LogClock.nowNs() + 10 * Time.nsPerSecond
        while trigger.accepted == 0 && !fuse.isWriteBlocked && LogClock.nowNs() < triggerDeadline {
            usleep(1_000)
            trigger = loggingTimedBurst(producer, first: callsPerPhase, count: 1, gapNs: gapNs)
        }
        #expect(trigger.accepted == 1 || fuse.isWriteBlocked)
        // The logger thread's next flush hangs in the server.
        #expect(loggingWait(timeoutNs: 20 * Time.nsPerSecond) { fuse.isWriteBlocked && logger.counterSnapshot.fileWriteStalledNs > 0 })
        let droppedBefore = logger.counterSnapshot.recordsDropped
        let writtenBefore = logger.counterSnapshot.recordsWritten
        let stalled = loggingTimedBurst(producer, first: callsPerPhase + 1, count: callsPerPhase - 1, gapNs: gapNs)
        let duringStall = logger.counterSnapshot
        // Still hanging, nothing drained meanwhile, the ring filled and the rest was dropped.
        #expect(fuse.isWriteBlocked)
        #expect(duringStall.fileWriteStalledNs > Time.nsPerSecond / 2)
        #expect(duringStall.recordsWritten == writtenBefore)
        #expect(duringStall.recordsDropped - droppedBefore >= callsPerPhase - 1 - 1024)
        #expect(stalled.accepted <= 1024)

        fuse.resume()
        #expect(loggingWait { logger.counterSnapshot.fileWriteStalledNs == 0 && !fuse.isWriteBlocked })
        // The records taken during the stall are drained before the last burst, so the ring has
        // room for all of it (on a busy machine the logger thread may need a moment).
        let acceptedBefore = healthy.accepted + trigger.accepted + stalled.accepted
        #expect(loggingWait(timeoutNs: 20 * Time.nsPerSecond) { logger.counterSnapshot.recordsWritten >= acceptedBefore })
        let after = loggingTimedBurst(producer, first: 2 * callsPerPhase, count: 1000, gapNs: gapNs)
        logger.stop()
        stopped = true
        let final = logger.counterSnapshot

        let healthyFigures = LatencyFigures(healthy.latencies)
        let stalledFigures = LatencyFigures(stalled.latencies)
        print("stalled file sink: producer log() healthy \(healthyFigures)")
        print("stalled file sink: producer log() stalled \(stalledFigures)")
        print("stalled file sink: logger stuck in pwrite for \(final.fileWriteNsMax / 1_000_000) ms; dropped \(final.recordsDropped); "
              + "accepted healthy \(healthy.accepted), stalled \(stalled.accepted), after \(after.accepted); pages \(pagesHealthy) -> \(final.filePagesWritten)")
        // Generous bounds: a producer waiting on the sink would show the stall (seconds) here.
        #expect(stalledFigures.maximumNs < Time.nsPerSecond / 2)
        #expect(stalledFigures.percentile(0.99) < 100 * Time.nsPerMs)

        #expect(final.filePagesWritten > pagesHealthy)
        let lines = try loggingFileLines(path)
        let numbers = loggingSequence(lines)
        #expect(numbers.count == healthy.accepted + trigger.accepted + stalled.accepted + after.accepted)
        #expect(numbers.last == 2 * callsPerPhase + 999)
        let reports = lines.filter { loggingText($0).hasSuffix("log records dropped on thread recovery") }
        #expect(!reports.isEmpty)
        let reported = reports.compactMap { Int(loggingText($0).prefix { $0.isNumber }) }.reduce(0, +)
        #expect(reported == final.recordsDropped)
    }
}
