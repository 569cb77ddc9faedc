// Host-kernel tests of the directio checker: loop devices, a FUSE disk that stops answering,
// shared io contexts, and the synchronous fallback when io_setup is refused.
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Testing

private func request(_ path: Int, token: UInt32 = 1, timeoutNs: Nanoseconds = 5 * Time.nsPerSecond) -> CheckRequest {
    CheckRequest(path: PathHandle(index: path), device: DevNo(major: 7, minor: UInt32(path)), token: token, timeoutNs: timeoutNs)
}

private let seconds5 = 5 * Time.nsPerSecond

/// Reaps until `condition` holds on the checker (not on the completions) or 10 s pass.
private func reapWhile(_ checker: inout DirectIOChecker, sink: inout CheckerCollectingSink, until condition: (DirectIOChecker) -> Bool) {
    let deadline = checkerNowNs() + 10 * Time.nsPerSecond
    while !condition(checker) && checkerNowNs() < deadline {
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        usleep(1_000)
    }
}

// Serialized: these tests share the system-wide aio event count and lower fs.aio-max-nr.
@Suite(.serialized) struct CheckersDirectIOTests {
    @Test func loopDeviceReportsUp() throws {
        let loop = try CheckerLoopDevice(bytes: 1 << 20)
        defer { loop.detach() }
        var checker = try DirectIOChecker(DirectIOConfiguration(pathsMax: 4))
        defer { checker.close() }
        #expect(checker.mode == .aio(contexts: 1))
        #expect(checker.fallbackHint == nil)
        try checker.register(path: PathHandle(index: 2), devicePath: loop.path)
        #expect(checker.submit(request(2, token: 7), nowNs: checkerNowNs()))
        var sink = CheckerCollectingSink()
        checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { !$0.completions.isEmpty }
        #expect(sink.completions == [CheckCompletion(path: PathHandle(index: 2), token: 7, result: .up)])
        #expect(checker.counters.completed == 1)
    }

    @Test func completionFDBecomesReadableWhenACheckFinishes() throws {
        let loop = try CheckerLoopDevice(bytes: 1 << 20)
        defer { loop.detach() }
        let checker = try DirectIOChecker(DirectIOConfiguration(pathsMax: 2))
        defer { checker.close() }
        try checker.register(path: PathHandle(index: 0), devicePath: loop.path)
        #expect(!checker.waitForCompletions(timeoutNs: 10 * Time.nsPerMs))
        #expect(checker.submit(request(0), nowNs: checkerNowNs()))
        #expect(checker.waitForCompletions(timeoutNs: seconds5))
        var sink = CheckerCollectingSink()
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(sink.completions.map(\.result) == [.up])
        // reap drained the eventfd.
        #expect(!checker.waitForCompletions(timeoutNs: 10 * Time.nsPerMs))
    }

    @Test func secondCheckOfABusyPathIsRefused() throws {
        let loop = try CheckerLoopDevice(bytes: 1 << 20)
        defer { loop.detach() }
        var checker = try DirectIOChecker(DirectIOConfiguration(pathsMax: 2))
        defer { checker.close() }
        try checker.register(path: PathHandle(index: 1), devicePath: loop.path)
        #expect(checker.submit(request(1, token: 1), nowNs: checkerNowNs()))
        #expect(!checker.submit(request(1, token: 2), nowNs: checkerNowNs()))
        #expect(checker.counters.refusedBusy == 1)
        var sink = CheckerCollectingSink()
        checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { !$0.completions.isEmpty }
        #expect(sink.completions.map(\.token) == [1])
    }

    @Test func unregisteredPathIsRefused() throws {
        let checker = try DirectIOChecker(DirectIOConfiguration(pathsMax: 2))
        defer { checker.close() }
        #expect(!checker.submit(request(0), nowNs: checkerNowNs()))
        #expect(checker.counters.refusedUnregistered == 1)
    }

    @Test func unregisteredAfterRegisteringIsRefused() throws {
        let loop = try CheckerLoopDevice(bytes: 1 << 20)
        defer { loop.detach() }
        let checker = try DirectIOChecker(DirectIOConfiguration(pathsMax: 2))
        defer { checker.close() }
        try checker.register(path: PathHandle(index: 0), devicePath: loop.path)
        checker.unregister(path: PathHandle(index: 0))
        #expect(!checker.submit(request(0), nowNs: checkerNowNs()))
        #expect(checker.closeRetiredDescriptors() == 0)
    }

    @Test func checkLatencyOnALoopDevice() throws {
        let loop = try CheckerLoopDevice(bytes: 1 << 20)
        defer { loop.detach() }
        let checker = try DirectIOChecker(DirectIOConfiguration(pathsMax: 1))
        defer { checker.close() }
        try checker.register(path: PathHandle(index: 0), devicePath: loop.path)
        var sink = CheckerCollectingSink()
        sink.completions.reserveCapacity(2_000)
        let rounds = 2_000
        var latenciesNs: [Nanoseconds] = []
        latenciesNs.reserveCapacity(rounds)
        for round in 0..<rounds {
            let start = checkerNowNs()
            #expect(checker.submit(request(0, token: UInt32(round)), nowNs: start))
            while sink.completions.count == round {
                checker.reap(nowNs: checkerNowNs(), into: &sink)
            }
            latenciesNs.append(checkerNowNs() - start)
        }
        #expect(sink.completions.allSatisfy { $0.result == .up })
        latenciesNs.sort()
        print("directio check latency on loop (submit to reap, \(rounds) checks): median \(latenciesNs[rounds / 2] / 1000) µs, p99 \(latenciesNs[rounds * 99 / 100] / 1000) µs")
    }

    @Test func hungDeviceReportsTimeoutOnTimeAndTheOrphanIsReapedLater() throws {
        let fuse = try CheckerFuseDisk()
        defer { fuse.stop() }
        let loop = try CheckerLoopDevice(backingFile: fuse.diskPath)
        defer { loop.detach() }
        var checker = try DirectIOChecker(DirectIOConfiguration(pathsMax: 4))
        defer { checker.close() }
        try checker.register(path: PathHandle(index: 0), devicePath: loop.path)
        var sink = CheckerCollectingSink()
        #expect(checker.submit(request(0, token: 1), nowNs: checkerNowNs()))
        checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { $0.completions.count == 1 }
        #expect(sink.completions.last?.result == .up)

        fuse.hang()
        let timeoutNs = 300 * Time.nsPerMs
        let start = checkerNowNs()
        #expect(checker.submit(request(0, token: 2, timeoutNs: timeoutNs), nowNs: start))
        #expect(checker.nextDeadlineNs() == start + timeoutNs)
        checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { $0.completions.count == 2 }
        let elapsedNs = checkerNowNs() - start
        #expect(sink.completions.last == CheckCompletion(path: PathHandle(index: 0), token: 2, result: .timeout))
        #expect(elapsedNs >= timeoutNs && elapsedNs < timeoutNs + 200 * Time.nsPerMs, "timeout reported after \(elapsedNs / 1_000_000) ms")
        #expect(checker.orphansInFlight == 1)
        #expect(checker.nextDeadlineNs() == Time.never)

        // The path is refused while its orphan is out, not given a second slot.
        #expect(!checker.submit(request(0, token: 3), nowNs: checkerNowNs()))
        #expect(checker.counters.refusedOrphan == 1)

        fuse.release()
        reapWhile(&checker, sink: &sink) { $0.orphansInFlight == 0 }
        #expect(checker.orphansInFlight == 0)
        #expect(checker.counters.orphansReaped == 1)
        // The late answer was dropped, never delivered.
        #expect(sink.completions.count == 2)

        #expect(checker.submit(request(0, token: 4), nowNs: checkerNowNs()))
        checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { $0.completions.count == 3 }
        #expect(sink.completions.last == CheckCompletion(path: PathHandle(index: 0), token: 4, result: .up))
    }

    @Test func closeWithAnOrphanInFlightReturnsAtOnce() throws {
        let fuse = try CheckerFuseDisk()
        defer { fuse.stop() }
        let loop = try CheckerLoopDevice(backingFile: fuse.diskPath)
        defer { loop.detach() }
        var checker = try DirectIOChecker(DirectIOConfiguration(pathsMax: 2))
        try checker.register(path: PathHandle(index: 0), devicePath: loop.path)
        fuse.hang()
        #expect(checker.submit(request(0, timeoutNs: 50 * Time.nsPerMs), nowNs: checkerNowNs()))
        var sink = CheckerCollectingSink()
        checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { !$0.completions.isEmpty }
        #expect(sink.completions.map(\.result) == [.timeout])
        let start = checkerNowNs()
        checker.close()
        #expect(checkerNowNs() - start < 100 * Time.nsPerMs)
    }

    @Test func removedDeviceReportsRemoved() throws {
        let fuse = try CheckerFuseDisk()
        defer { fuse.stop() }
        var checker = try DirectIOChecker(DirectIOConfiguration(pathsMax: 2))
        defer { checker.close() }
        // Every read of this file fails with ENXIO, as a vanished device answers.
        try checker.register(path: PathHandle(index: 1), devicePath: fuse.gonePath)
        #expect(checker.submit(request(1, token: 9), nowNs: checkerNowNs()))
        var sink = CheckerCollectingSink()
        checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { !$0.completions.isEmpty }
        #expect(sink.completions == [CheckCompletion(path: PathHandle(index: 1), token: 9, result: .removed)])
    }

    @Test func readResultsMapToCheckResults() {
        #expect(DirectIOChecker.result(bytesOrNegativeErrno: 4096, expectedBytes: 4096) == .up)
        #expect(DirectIOChecker.result(bytesOrNegativeErrno: 512, expectedBytes: 4096) == .down)
        #expect(DirectIOChecker.result(bytesOrNegativeErrno: 0, expectedBytes: 4096) == .down)
        #expect(DirectIOChecker.result(bytesOrNegativeErrno: -Int(EIO), expectedBytes: 4096) == .down)
        #expect(DirectIOChecker.result(bytesOrNegativeErrno: -Int(EINVAL), expectedBytes: 4096) == .down)
        #expect(DirectIOChecker.result(bytesOrNegativeErrno: -Int(ENODEV), expectedBytes: 4096) == .removed)
        #expect(DirectIOChecker.result(bytesOrNegativeErrno: -Int(ENXIO), expectedBytes: 4096) == .removed)
    }

    @Test func blockSizeIsTheSoftSizeCappedAt4096AndNeverBelowTheSectorSize() {
        #expect(DirectIOChecker.blockBytes(logical: 512, soft: 1024) == 1024)
        #expect(DirectIOChecker.blockBytes(logical: 512, soft: 65536) == 4096)
        #expect(DirectIOChecker.blockBytes(logical: 4096, soft: 512) == 4096)
        #expect(DirectIOChecker.blockBytes(logical: nil, soft: nil) == 4096)
        #expect(DirectIOChecker.blockBytes(logical: 512, soft: nil) == 4096)
    }

    @Test func morePathsThan1024ShareOneIoContextPer1024() throws {
        // One descriptor per path: make room for 1,100 of them.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let saved = limit
        limit.rlim_cur = max(limit.rlim_cur, min(limit.rlim_max, 4096))
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        defer {
            var restore = saved
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &restore)
        }
        let loop = try CheckerLoopDevice(bytes: 1 << 20)
        defer { loop.detach() }

        let before = try checkerAioEventsInUse()
        let single = try DirectIOChecker(DirectIOConfiguration(pathsMax: 1024))
        #expect(single.ioSetupCalls == 1)
        let eventsPerContext = try checkerAioEventsInUse() - before
        single.close()
        #expect(eventsPerContext > 0)

        let paths = 1_100
        let before2 = try checkerAioEventsInUse()
        var checker = try DirectIOChecker(DirectIOConfiguration(pathsMax: paths))
        defer { checker.close() }
        #expect(checker.ioSetupCalls == 2)
        #expect(checker.mode == .aio(contexts: 2))
        // The second context is sized for the 76 paths it holds.
        #expect(try checkerAioEventsInUse() - before2 <= 2 * eventsPerContext)
        for p in 0..<paths { try checker.register(path: PathHandle(index: p), devicePath: loop.path) }
        let now = checkerNowNs()
        for p in 0..<paths { #expect(checker.submit(request(p, token: UInt32(p)), nowNs: now)) }
        var sink = CheckerCollectingSink()
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 10 * Time.nsPerSecond) { $0.completions.count == paths }
        #expect(sink.completions.count == paths)
        #expect(sink.completions.allSatisfy { $0.result == .up && $0.token == $0.path.raw })
    }

    @Test func refusedIoSetupFallsBackToSynchronousReadsAndNamesTheLimit() throws {
        let loop = try CheckerLoopDevice(bytes: 1 << 20)
        defer { loop.detach() }
        // No events left system-wide: io_setup answers EAGAIN.
        var checker = try withCheckerAioMaxNr(try checkerAioEventsInUse()) {
            try DirectIOChecker(DirectIOConfiguration(pathsMax: 8))
        }
        defer { checker.close() }
        #expect(checker.mode == .synchronous(threads: 4))
        #expect(checker.ioSetupCalls == 1)
        let hint = try #require(checker.fallbackHint)
        #expect(hint.setupErrno == EAGAIN)
        #expect(hint.description.contains("fs.aio-max-nr"))
        try checker.register(path: PathHandle(index: 3), devicePath: loop.path)
        #expect(checker.submit(request(3, token: 5), nowNs: checkerNowNs()))
        #expect(checker.waitForCompletions(timeoutNs: seconds5))
        var sink = CheckerCollectingSink()
        checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { !$0.completions.isEmpty }
        #expect(sink.completions == [CheckCompletion(path: PathHandle(index: 3), token: 5, result: .up)])
    }

    /// A thread stuck on a hung device is replaced (the recovery thread only posts a semaphore):
    /// the healthy path is checked at once, as often as asked, while the hung read is still in
    /// the kernel; the hung path itself is not asked again until its read returns.
    @Test func fallbackReportsTimeoutOnTimeAndReplacesTheStuckThread() throws {
        try withOneThreadFallbackOverTwoFuseDisks { checker, hung, _ in
            #expect(checker.mode == .synchronous(threads: 1))
            #expect(checker.fallbackHint?.setupErrno == 0)
            var sink = CheckerCollectingSink()
            hung.hang()
            let timeoutNs = 300 * Time.nsPerMs
            let start = checkerNowNs()
            #expect(checker.submit(request(0, token: 1, timeoutNs: timeoutNs), nowNs: start))
            checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { !$0.completions.isEmpty }
            let elapsedNs = checkerNowNs() - start
            #expect(sink.completions == [CheckCompletion(path: PathHandle(index: 0), token: 1, result: .timeout)])
            #expect(elapsedNs >= timeoutNs && elapsedNs < timeoutNs + 200 * Time.nsPerMs, "timeout reported after \(elapsedNs / 1_000_000) ms")
            #expect(checker.orphansInFlight == 1)

            for token: UInt32 in 2...4 {
                #expect(checker.submit(request(1, token: token), nowNs: checkerNowNs()))
                checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { $0.completions.count == Int(token) }
                #expect(sink.completions.last == CheckCompletion(path: PathHandle(index: 1), token: token, result: .up))
            }
            #expect(checker.counters.refusedStuck == 0)
            #expect(!checker.submit(request(0, token: 5), nowNs: checkerNowNs()), "the hung path's read is still out")
            #expect(checker.counters.refusedOrphan == 1)

            hung.release()
            reapWhile(&checker, sink: &sink) { $0.orphansInFlight == 0 }
            #expect(checker.orphansInFlight == 0)
            #expect(checker.submit(request(0, token: 6), nowNs: checkerNowNs()))
            checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { $0.completions.count == 5 }
            #expect(sink.completions.last == CheckCompletion(path: PathHandle(index: 0), token: 6, result: .up))
        }
    }

    /// N hung paths cost N stuck threads and nothing else: with one thread configured and three
    /// paths hung one after the other, the healthy path is checked up after each.
    @Test func anyNumberOfHungPathsLeavesAThreadForTheOthers() throws {
        try withOneThreadFallbackOverTwoFuseDisks(alsoOnFirst: [2, 3]) { checker, hung, _ in
            var sink = CheckerCollectingSink()
            hung.hang()
            var token: UInt32 = 0
            for path in [0, 2, 3] {
                token += 1
                #expect(checker.submit(request(path, token: token, timeoutNs: 100 * Time.nsPerMs), nowNs: checkerNowNs()))
                checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { $0.completions.last?.token == token }
                #expect(sink.completions.last == CheckCompletion(path: PathHandle(index: path), token: token, result: .timeout))
                token += 1
                let healthyToken = token
                let deadline = checkerNowNs() + seconds5
                while !checker.submit(request(1, token: healthyToken, timeoutNs: seconds5), nowNs: checkerNowNs()) && checkerNowNs() < deadline {
                    checker.reap(nowNs: checkerNowNs(), into: &sink)
                    usleep(1_000)
                }
                checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { $0.completions.last?.token == healthyToken }
                #expect(sink.completions.last == CheckCompletion(path: PathHandle(index: 1), token: healthyToken, result: .up),
                        "with \(checker.orphansInFlight) hung")
            }
            #expect(checker.orphansInFlight == 3)
            #expect(checker.counters.refusedStuck == 0)
            hung.release()
            reapWhile(&checker, sink: &sink) { $0.orphansInFlight == 0 }
            #expect(checker.orphansInFlight == 0)
        }
    }

    /// A check that waited in the fallback's queue for its whole timeout, behind a thread held by
    /// a hung neighbour, is given up without a verdict (`.notStarted`): the engine asks again
    /// later and the path, which answers, is never failed for its neighbour's hang.
    @Test func fallbackGivesUpAQueuedCheckWithoutAVerdictWhileAHungNeighbourHoldsTheThread() throws {
        try withOneThreadFallbackOverTwoFuseDisks { checker, hung, _ in
            var sink = CheckerCollectingSink()
            hung.hang()
            let start = checkerNowNs()
            #expect(checker.submit(request(0, token: 1, timeoutNs: 5 * Time.nsPerSecond), nowNs: start))
            #expect(checker.submit(request(1, token: 2, timeoutNs: 200 * Time.nsPerMs), nowNs: start))
            checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { !$0.completions.isEmpty }
            #expect(sink.completions == [CheckCompletion(path: PathHandle(index: 1), token: 2, result: .notStarted)])
            #expect(checker.counters.notStarted == 1)
            #expect(checker.counters.timedOut == 0)

            // The neighbour's read returns: its thread frees the cancelled slot, and the healthy
            // path is checked and found up.
            hung.release()
            checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { $0.completions.count == 2 }
            #expect(sink.completions.last == CheckCompletion(path: PathHandle(index: 0), token: 1, result: .up))
            let again = checkerNowNs() + 5 * Time.nsPerSecond
            while !checker.submit(request(1, token: 3), nowNs: checkerNowNs()) && checkerNowNs() < again { usleep(1_000) }
            checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { $0.completions.count == 3 }
            #expect(sink.completions.last == CheckCompletion(path: PathHandle(index: 1), token: 3, result: .up))
        }
    }

    /// A fallback check's timeout counts from when a thread took it, not from when it was queued:
    /// a check that waited behind a slow neighbour still gets its whole timeout on the device.
    @Test func fallbackCountsATimeoutFromWhenAThreadTookTheCheck() throws {
        try withOneThreadFallbackOverTwoFuseDisks { checker, slow, hung in
            var sink = CheckerCollectingSink()
            slow.hang()
            hung.hang()
            let timeoutNs = 1_000 * Time.nsPerMs
            let start = checkerNowNs()
            #expect(checker.submit(request(0, token: 1, timeoutNs: 5 * Time.nsPerSecond), nowNs: start))
            #expect(checker.submit(request(1, token: 2, timeoutNs: timeoutNs), nowNs: start))
            checkerReapUntil(&checker, sink: &sink, timeoutNs: 100 * Time.nsPerMs) { _ in false }
            // The slow device answers: the thread takes the second check now, and it hangs.
            let releasedNs = checkerNowNs()
            slow.release()
            checkerReapUntil(&checker, sink: &sink, timeoutNs: seconds5) { $0.completions.count == 2 }
            let endNs = checkerNowNs()
            #expect(sink.completions == [CheckCompletion(path: PathHandle(index: 0), token: 1, result: .up),
                                         CheckCompletion(path: PathHandle(index: 1), token: 2, result: .timeout)])
            #expect(endNs - releasedNs >= timeoutNs,
                    "timed out \((endNs - releasedNs) / Time.nsPerMs) ms after it could first be sent (timeout \(timeoutNs / Time.nsPerMs) ms)")
            #expect(endNs - start >= timeoutNs + 100 * Time.nsPerMs)
            hung.release()
            reapWhile(&checker, sink: &sink) { $0.orphansInFlight == 0 }
            #expect(checker.orphansInFlight == 0)
        }
    }
}

/// A synchronous fallback checker with one thread, its paths 0 (and `alsoOnFirst`) and 1 on loop
/// devices over two FUSE disks (each can be made to hang on its own); everything is taken down
/// afterwards.
private func withOneThreadFallbackOverTwoFuseDisks(
    alsoOnFirst: [Int] = [],
    _ body: (_ checker: inout DirectIOChecker, _ first: CheckerFuseDisk, _ second: CheckerFuseDisk) throws -> Void
) throws {
    let first = try CheckerFuseDisk()
    defer { first.stop() }
    let second = try CheckerFuseDisk()
    defer { second.stop() }
    let firstLoop = try CheckerLoopDevice(backingFile: first.diskPath)
    defer { firstLoop.detach() }
    let secondLoop = try CheckerLoopDevice(backingFile: second.diskPath)
    defer { secondLoop.detach() }
    var checker = try DirectIOChecker(DirectIOConfiguration(pathsMax: 4, fallbackThreads: 1, forceSynchronous: true))
    defer { checker.close() }
    try checker.register(path: PathHandle(index: 0), devicePath: firstLoop.path)
    try checker.register(path: PathHandle(index: 1), devicePath: secondLoop.path)
    for path in alsoOnFirst { try checker.register(path: PathHandle(index: path), devicePath: firstLoop.path) }
    try body(&checker, first, second)
}
