// TUR checker tests on the host: the sense decision table, sense parsing, and the thread pool
// against devices that do not speak SG_IO (this host has no SCSI).
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Testing

/// One row of the TUR decision table.
struct TURRow: Sendable, CustomTestStringConvertible {
    var name: String
    var answer: SGAnswer
    var verdict: TURVerdict
    var testDescription: String { name }
}

private let checkInfo: UInt32 = 1  // SG_INFO_CHECK

private let turTable: [TURRow] = [
    TURRow(name: "GOOD is up", answer: SGAnswer(), verdict: .final(.up, TURReason(kind: .good))),
    TURRow(name: "reservation conflict is up", answer: SGAnswer(status: 0x18, info: checkInfo),
           verdict: .final(.up, TURReason(kind: .reservationConflict, status: 0x18))),
    TURRow(name: "NOT READY 04/0b is ghost", answer: SGAnswer(status: 0x02, info: checkInfo, senseKey: 0x2, asc: 0x04, ascq: 0x0b),
           verdict: .final(.ghost, TURReason(kind: .standby, status: 0x02, senseKey: 0x2, asc: 0x04, ascq: 0x0b))),
    TURRow(name: "NOT READY 04/0a is pending", answer: SGAnswer(status: 0x02, info: checkInfo, senseKey: 0x2, asc: 0x04, ascq: 0x0a),
           verdict: .final(.pending, TURReason(kind: .transitioning, status: 0x02, senseKey: 0x2, asc: 0x04, ascq: 0x0a))),
    TURRow(name: "NOT READY 04/02 is down", answer: SGAnswer(status: 0x02, info: checkInfo, senseKey: 0x2, asc: 0x04, ascq: 0x02),
           verdict: .final(.down, TURReason(kind: .checkCondition, status: 0x02, senseKey: 0x2, asc: 0x04, ascq: 0x02))),
    TURRow(name: "UNIT ATTENTION is retried", answer: SGAnswer(status: 0x02, info: checkInfo, senseKey: 0x6, asc: 0x29, ascq: 0x00),
           verdict: .retry(TURReason(kind: .retriesExhausted, status: 0x02, senseKey: 0x6, asc: 0x29, ascq: 0x00))),
    TURRow(name: "ILLEGAL REQUEST 25/00 is removed", answer: SGAnswer(status: 0x02, info: checkInfo, senseKey: 0x5, asc: 0x25, ascq: 0x00),
           verdict: .final(.removed, TURReason(kind: .lunNotSupported, status: 0x02, senseKey: 0x5, asc: 0x25, ascq: 0x00))),
    TURRow(name: "ILLEGAL REQUEST 20/00 is down", answer: SGAnswer(status: 0x02, info: checkInfo, senseKey: 0x5, asc: 0x20, ascq: 0x00),
           verdict: .final(.down, TURReason(kind: .checkCondition, status: 0x02, senseKey: 0x5, asc: 0x20, ascq: 0x00))),
    TURRow(name: "DID_BUS_BUSY is retried", answer: SGAnswer(hostStatus: 0x02, info: checkInfo),
           verdict: .retry(TURReason(kind: .retriesExhausted, hostStatus: 0x02))),
    TURRow(name: "DID_TIME_OUT is retried", answer: SGAnswer(hostStatus: 0x03, info: checkInfo),
           verdict: .retry(TURReason(kind: .retriesExhausted, hostStatus: 0x03))),
    TURRow(name: "DID_NO_CONNECT is down", answer: SGAnswer(hostStatus: 0x01, info: checkInfo),
           verdict: .final(.down, TURReason(kind: .checkCondition, hostStatus: 0x01))),
    TURRow(name: "DID_TRANSPORT_FAILFAST is down", answer: SGAnswer(hostStatus: 0x0f, info: checkInfo),
           verdict: .final(.down, TURReason(kind: .checkCondition, hostStatus: 0x0f))),
    TURRow(name: "ENOTTY is down, not a SCSI device", answer: SGAnswer(ioctlErrno: ENOTTY),
           verdict: .final(.down, TURReason(kind: .notSCSIDevice, errno: ENOTTY))),
    TURRow(name: "EINVAL is down, not a SCSI device", answer: SGAnswer(ioctlErrno: EINVAL),
           verdict: .final(.down, TURReason(kind: .notSCSIDevice, errno: EINVAL))),
    TURRow(name: "ENODEV is down", answer: SGAnswer(ioctlErrno: ENODEV),
           verdict: .final(.down, TURReason(kind: .ioctlFailed, errno: ENODEV))),
]

private func request(_ path: Int, token: UInt32 = 1, timeoutNs: Nanoseconds = 5 * Time.nsPerSecond) -> CheckRequest {
    CheckRequest(path: PathHandle(index: path), device: DevNo(major: 8, minor: UInt32(path)), token: token, timeoutNs: timeoutNs)
}

@Suite struct CheckersTURSenseTests {
    @Test(arguments: turTable) func turAnswerDecidesTheResult(_ row: TURRow) {
        #expect(TURSense.decide(row.answer) == row.verdict)
    }

    @Test func fixedFormatSenseGivesKeyAscAscq() {
        var sense = [UInt8](repeating: 0, count: 18)
        sense[0] = 0x70
        sense[2] = 0x02
        sense[12] = 0x04
        sense[13] = 0x0b
        let parsed = sense.withUnsafeBytes { TURSense.parse($0) }
        #expect(parsed?.key == 0x2 && parsed?.asc == 0x04 && parsed?.ascq == 0x0b)
    }

    @Test func descriptorFormatSenseGivesKeyAscAscq() {
        let sense: [UInt8] = [0x72, 0x05, 0x25, 0x00, 0, 0, 0, 0]
        let parsed = sense.withUnsafeBytes { TURSense.parse($0) }
        #expect(parsed?.key == 0x5 && parsed?.asc == 0x25 && parsed?.ascq == 0x00)
    }

    @Test func shortOrUnknownSenseIsIgnored() {
        let short: [UInt8] = [0x70, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        let unknown: [UInt8] = [0x7f, 0x05, 0x25, 0x00, 0, 0]
        #expect(short.withUnsafeBytes { TURSense.parse($0) } == nil)
        #expect(unknown.withUnsafeBytes { TURSense.parse($0) } == nil)
    }

    @Test func reasonSurvivesPacking() {
        let reason = TURReason(kind: .checkCondition, errno: 0, status: 0x02, hostStatus: 0x07, senseKey: 0x3, asc: 0x11, ascq: 0x01)
        #expect(TURReason(packed: reason.packed) == reason)
        let failure = TURReason(kind: .notSCSIDevice, errno: ENOTTY)
        #expect(TURReason(packed: failure.packed) == failure)
        #expect(failure.description.contains("not a SCSI generic device"))
    }
}

@Suite(.serialized) struct CheckersTURTests {
    @Test func turOnANonSCSIDeviceIsDownWithAReason() throws {
        let loop = try CheckerLoopDevice(bytes: 1 << 20)
        defer { loop.detach() }
        var checker = try TURChecker(TURConfiguration(pathsMax: 4, threads: 2))
        defer { checker.close() }
        try checker.register(path: PathHandle(index: 1), devicePath: loop.path)
        #expect(checker.lastReason(of: PathHandle(index: 1)).kind == .none)
        #expect(checker.submit(request(1, token: 3), nowNs: checkerNowNs()))
        #expect(checker.waitForCompletions(timeoutNs: 5 * Time.nsPerSecond))
        var sink = CheckerCollectingSink()
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { !$0.completions.isEmpty }
        #expect(sink.completions == [CheckCompletion(path: PathHandle(index: 1), token: 3, result: .down)])
        let reason = checker.lastReason(of: PathHandle(index: 1))
        #expect(reason.kind == .notSCSIDevice)
        #expect(reason.errno == ENOTTY || reason.errno == EINVAL)
    }

    @Test func turTimesOutOnTimeWhileItsThreadIsStuckInTheIoctl() throws {
        // The FUSE server holds ioctls while hung, so SG_IO blocks in the kernel.
        let fuse = try CheckerFuseDisk()
        defer { fuse.stop() }
        var checker = try TURChecker(TURConfiguration(pathsMax: 4, threads: 1))
        defer { checker.close() }
        try checker.register(path: PathHandle(index: 0), devicePath: fuse.diskPath)
        try checker.register(path: PathHandle(index: 2), devicePath: fuse.diskPath)
        fuse.hang()
        let timeoutNs = 300 * Time.nsPerMs
        let start = checkerNowNs()
        #expect(checker.submit(request(0, token: 1, timeoutNs: timeoutNs), nowNs: start))
        var sink = CheckerCollectingSink()
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { !$0.completions.isEmpty }
        let elapsedNs = checkerNowNs() - start
        #expect(sink.completions == [CheckCompletion(path: PathHandle(index: 0), token: 1, result: .timeout)])
        #expect(elapsedNs >= timeoutNs && elapsedNs < timeoutNs + 200 * Time.nsPerMs, "timeout reported after \(elapsedNs / 1_000_000) ms")
        #expect(checker.lastReason(of: PathHandle(index: 0)).kind == .timedOut)
        #expect(checker.stuckThreads == 1)

        // Its only thread is stuck: the next check is refused, never queued forever.
        #expect(!checker.submit(request(2, token: 2), nowNs: checkerNowNs()))
        #expect(checker.counters.refusedStuck == 1)

        fuse.release()
        let deadline = checkerNowNs() + 10 * Time.nsPerSecond
        while checker.stuckThreads > 0 && checkerNowNs() < deadline { usleep(1_000) }
        #expect(checker.stuckThreads == 0)
        #expect(checker.submit(request(2, token: 3), nowNs: checkerNowNs()))
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { $0.completions.count == 2 }
        // The stuck thread's late answer was dropped; the new check got its own.
        #expect(sink.completions.map(\.token) == [1, 3])
        #expect(sink.completions.last?.result == .down)
    }

    @Test func unregisteredPathIsRefused() throws {
        let checker = try TURChecker(TURConfiguration(pathsMax: 2, threads: 1))
        defer { checker.close() }
        #expect(!checker.submit(request(1), nowNs: checkerNowNs()))
        #expect(checker.counters.refusedUnregistered == 1)
    }
}
