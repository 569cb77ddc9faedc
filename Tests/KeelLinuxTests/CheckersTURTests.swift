// TUR checker tests on the host: the sense decision table, sense parsing, and the asynchronous
// sg checker against fake targets that answer, answer late or hang (this host has no SCSI).
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
    @Test func aBlockDeviceIsRefusedAtRegistration() throws {
        // A request written to a block device would be written to the disk as data.
        let loop = try CheckerLoopDevice(bytes: 1 << 20)
        defer { loop.detach() }
        let checker = try TURChecker(TURConfiguration(pathsMax: 4))
        defer { checker.close() }
        #expect(throws: SystemError.self) { try checker.register(path: PathHandle(index: 1), devicePath: loop.path) }
        do { try checker.register(path: PathHandle(index: 1), devicePath: loop.path) } catch { #expect(error.errno == ENOTTY) }
        #expect(!checker.submit(request(1), nowNs: checkerNowNs()))
        #expect(checker.counters.refusedUnregistered == 1)
    }

    @Test func goodAnswerIsUpAndCheckConditionIsDecodedFromSense() throws {
        var checker = try TURChecker(TURConfiguration(pathsMax: 2))
        defer { checker.close() }
        let targets = try SGFakeTargets(paths: 2, checker: checker)
        let now = checkerNowNs()
        #expect(checker.submit(request(0, token: 1), nowNs: now))
        #expect(checker.submit(request(1, token: 2), nowNs: now))
        #expect(targets.answer(0, .good))
        var sink = CheckerCollectingSink()
        #expect(checker.waitForCompletions(timeoutNs: 5 * Time.nsPerSecond))
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(sink.completions == [CheckCompletion(path: PathHandle(index: 0), token: 1, result: .up)])
        #expect(targets.answer(1, .checkCondition(key: 0x5, asc: 0x25, ascq: 0x00)))
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { $0.completions.count == 2 }
        #expect(sink.completions.last == CheckCompletion(path: PathHandle(index: 1), token: 2, result: .removed))
        #expect(checker.lastReason(of: PathHandle(index: 1)).kind == .lunNotSupported)
    }

    @Test func unitAttentionIsSentAgainWithinTheSameCheck() throws {
        var checker = try TURChecker(TURConfiguration(pathsMax: 1))
        defer { checker.close() }
        let targets = try SGFakeTargets(paths: 1, checker: checker)
        #expect(checker.submit(request(0, token: 9), nowNs: checkerNowNs()))
        #expect(targets.answer(0, .checkCondition(key: 0x6, asc: 0x29, ascq: 0x00)))
        var sink = CheckerCollectingSink()
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(sink.completions.isEmpty, "a UNIT ATTENTION is not the check's answer")
        #expect(targets.take(0) == 1, "the TUR was sent again")
        #expect(targets.answer(0, .good))
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { !$0.completions.isEmpty }
        #expect(sink.completions == [CheckCompletion(path: PathHandle(index: 0), token: 9, result: .up)])
    }

    /// The fault class the thread pool could not survive: many devices whose commands hang. With
    /// 600 hung paths among 1,000 (any number would do: no thread is involved), every answering
    /// path is checked and answered in every round, each hung path times out once at its own
    /// deadline, is an orphan until its command comes back, and is not sent another TUR meanwhile.
    @Test func hungPathsHoldOnlyTheirOwnCheck() throws {
        let paths = 1_000
        let hung = 0..<600
        let answering = 600..<paths
        var checker = try TURChecker(TURConfiguration(pathsMax: paths))
        defer { checker.close() }
        let targets = try SGFakeTargets(paths: paths, checker: checker)
        let timeoutNs = 200 * Time.nsPerMs
        var token: UInt32 = 0
        var orphanedOnce = false
        for round in 0..<5 {
            token += 1
            let start = checkerNowNs()
            var sent = 0
            for p in 0..<paths where checker.submit(request(p, token: token, timeoutNs: timeoutNs), nowNs: start) { sent += 1 }
            // Round 0 sends to every path; later rounds to the answering ones only (the hung
            // ones are orphans).
            #expect(sent == (round == 0 ? paths : answering.count), "round \(round)")
            #expect(targets.answerAll(answering) == answering.count)
            var sink = CheckerCollectingSink()
            checker.reap(nowNs: checkerNowNs(), into: &sink)
            let ups = sink.completions.filter { $0.result == .up && $0.token == token }
            #expect(ups.count == answering.count, "every answering path is answered at once, round \(round)")
            #expect(Set(ups.map(\.path.index)) == Set(answering))
            if round == 0 {
                // The hung paths time out at their own deadline, counted from the write.
                checker.reap(nowNs: start + timeoutNs - 1, into: &sink)
                #expect(sink.completions.count == answering.count)
                checker.reap(nowNs: start + timeoutNs, into: &sink)
                let timeouts = sink.completions.filter { $0.result == .timeout }
                #expect(Set(timeouts.map(\.path.index)) == Set(hung))
                #expect(checker.orphansInFlight == hung.count)
                #expect(hung.allSatisfy { checker.isOrphaned(PathHandle(index: $0)) })
                orphanedOnce = true
            }
            for p in hung { #expect(targets.take(p) == 1, "one request per hung path, never a second") }
        }
        #expect(orphanedOnce)
        #expect(checker.counters.refusedOrphan == 4 * hung.count)
        #expect(checker.counters.timedOut == hung.count)

        // The devices answer at last: the late answers are dropped, the slots come back.
        #expect(targets.answerAll(hung) == hung.count)
        var sink = CheckerCollectingSink()
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(sink.completions.isEmpty, "late answers of orphans are not check results")
        #expect(checker.orphansInFlight == 0)
        #expect(checker.counters.lateCompletions == hung.count)
        token += 1
        let now = checkerNowNs()
        for p in hung { #expect(checker.submit(request(p, token: token, timeoutNs: timeoutNs), nowNs: now)) }
        #expect(targets.answerAll(hung) == hung.count)
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { $0.completions.count == hung.count }
        #expect(sink.completions.allSatisfy { $0.result == .up && $0.token == token })
    }

    @Test func anUnregisteredOrphanKeepsItsDescriptorUntilItsCommandReturns() throws {
        let checker = try TURChecker(TURConfiguration(pathsMax: 1))
        defer { checker.close() }
        let targets = try SGFakeTargets(paths: 1, checker: checker)
        let start = checkerNowNs()
        #expect(checker.submit(request(0, token: 1, timeoutNs: 100 * Time.nsPerMs), nowNs: start))
        var sink = CheckerCollectingSink()
        checker.reap(nowNs: start + 100 * Time.nsPerMs, into: &sink)
        #expect(sink.completions.map(\.result) == [.timeout])
        checker.unregister(path: PathHandle(index: 0))
        #expect(checker.closeRetiredDescriptors() == 1, "parked while its command is in the kernel")
        #expect(targets.answer(0))
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(checker.orphansInFlight == 0)
        #expect(checker.closeRetiredDescriptors() == 0)
    }

    @Test func unregisteredPathIsRefused() throws {
        let checker = try TURChecker(TURConfiguration(pathsMax: 2))
        defer { checker.close() }
        #expect(!checker.submit(request(1), nowNs: checkerNowNs()))
        #expect(checker.counters.refusedUnregistered == 1)
    }
}
