// The SCSI checkers besides tur (readsector0, hp_sw, rdac, emc_clariion): the commands they send,
// how captured answers and pages are read, and each one run through the asynchronous sg checker
// against fake targets.
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Testing

private let checkInfo: UInt32 = 1  // SG_INFO_CHECK

/// A page 0xC9 (volume access) as an E-series controller returns it: peripheral byte, the
/// AVT/ownership byte 8, the current and alternate port groups' states at 10 and 12.
private func rdacPage(qualifierAndType: UInt8 = 0, flags: UInt8, current: UInt8 = 0, alternate: UInt8 = 0) -> [UInt8] {
    var page = [UInt8](repeating: 0, count: 48)
    page[0] = qualifierAndType
    page[1] = 0xc9
    page[3] = 44
    page[4] = UInt8(ascii: "v"); page[5] = UInt8(ascii: "a"); page[6] = UInt8(ascii: "c"); page[7] = UInt8(ascii: "1")
    page[8] = flags
    page[10] = current
    page[12] = alternate
    return page
}

/// A page 0xC0 (unit path report) of a CLARiiON set up for ALUA failover, LUN bound (byte 4),
/// with the LUN WWN at bytes 10-25.
private func emcPage(bound: UInt8 = 2, wwnSeed: UInt8 = 0x60, initiatorType: UInt8 = 3, failoverMode: UInt8 = 4,
                     arrayCommPath: Bool = true, operations: UInt8 = 0, pageCode: UInt8 = 0xc0) -> [UInt8] {
    var page = [UInt8](repeating: 0, count: 128)
    page[1] = pageCode
    page[4] = bound
    for i in 0..<16 { page[10 + i] = wwnSeed &+ UInt8(i) }
    page[27] = initiatorType
    page[28] = failoverMode
    page[30] = arrayCommPath ? 0x04 : 0
    page[48] = operations
    return page
}

private func decide(_ check: SCSICheck, stage: UInt8 = 0, _ answer: SGAnswer = SGAnswer(), page: [UInt8] = [], knownWWN: UInt64 = 0)
    -> (step: SCSICheckStep, wwn: UInt64) {
    page.withUnsafeBytes { SCSICheckDecode.decide(check, stage: stage, answer: answer, page: $0, knownWWN: knownWWN) }
}

private func result(_ step: SCSICheckStep) -> CheckResult? {
    if case .final(let result, _) = step { return result }
    return nil
}

private func kind(_ step: SCSICheckStep) -> TURReason.Kind? {
    switch step {
    case .final(_, let why), .retry(let why): return why.kind
    case .nextStage: return nil
    }
}

@Suite struct CheckersSCSIDecodeTests {
    @Test("each check sends multipath-tools' command: TUR, READ(10) of block 0, INQUIRY pages 0x80, 0xC9, 0xC0")
    func commands() {
        let cdb = UnsafeMutablePointer<UInt8>.allocate(capacity: 10)
        defer { cdb.deallocate() }
        func shape(_ check: SCSICheck, _ stage: UInt8 = 0) -> ([UInt8], UInt32) {
            let s = check.writeCommand(stage: stage, into: cdb)
            return (Array(UnsafeBufferPointer(start: cdb, count: Int(s.length))), s.dataBytes)
        }
        #expect(shape(.tur) == ([0, 0, 0, 0, 0, 0], 0))
        #expect(shape(.readsector0) == ([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], 4096))
        #expect(shape(.hpSW, 0) == ([0x12, 1, 0x80, 0, 255, 0], 255))
        #expect(shape(.hpSW, 1) == ([0, 0, 0, 0, 0, 0], 0))
        #expect(shape(.rdac) == ([0x12, 1, 0xc9, 0, 48, 0], 48))
        #expect(shape(.emcClariion) == ([0x12, 1, 0xc0, 0, 128, 0], 128))
        #expect(SCSICheck(.rdac) == .rdac && SCSICheck(.directio) == nil && SCSICheck(.none) == nil)
        #expect(SCSICheck.allCases.map(\.description) == ["tur", "readsector0", "hp_sw", "rdac", "emc_clariion"])
    }

    @Test func readsector0IsUpOnGoodRetriesUnitAttentionAndIsDownOtherwise() {
        #expect(result(decide(.readsector0).step) == .up)
        #expect(kind(decide(.readsector0, SGAnswer(status: 2, info: checkInfo, senseKey: 6, asc: 0x29)).step) == .retriesExhausted)
        if case .retry = decide(.readsector0, SGAnswer(status: 2, info: checkInfo, senseKey: 6, asc: 0x29)).step {} else {
            Issue.record("UNIT ATTENTION is not retried")
        }
        #expect(result(decide(.readsector0, SGAnswer(status: 2, info: checkInfo, senseKey: 3, asc: 0x11)).step) == .down, "medium error")
        #expect(result(decide(.readsector0, SGAnswer(status: 0x18, info: checkInfo)).step) == .down, "a reservation conflict fails a read")
        #expect(result(decide(.readsector0, SGAnswer(ioctlErrno: ENODEV)).step) == .down)
        #expect(SCSICheck.readsector0.attemptsMax == 3)
    }

    @Test func hpSWAsksTheSerialPageThenTURAndAPathRefusingTheTURIsAGhost() {
        #expect(decide(.hpSW, stage: 0).step == .nextStage)
        #expect(decide(.hpSW, stage: 0, SGAnswer(status: 2, info: checkInfo, senseKey: 1)).step == .nextStage, "RECOVERED ERROR is success")
        #expect(result(decide(.hpSW, stage: 0, SGAnswer(status: 2, info: checkInfo, senseKey: 5, asc: 0x24)).step) == .down)
        #expect(kind(decide(.hpSW, stage: 0, SGAnswer(hostStatus: 1, info: checkInfo)).step) == .inquiryFailed)
        #expect(result(decide(.hpSW, stage: 1).step) == .up)
        let passive = decide(.hpSW, stage: 1, SGAnswer(status: 2, info: checkInfo, senseKey: 2, asc: 4, ascq: 2)).step
        #expect(result(passive) == .ghost)
        #expect(kind(passive) == .passive)
    }

    @Test("rdac: owner, AVT or I/O shipping up; else ghost; unavailable, starting up, not connected or no answer down")
    func rdacPages() {
        func rdac(_ page: [UInt8], _ answer: SGAnswer = SGAnswer()) -> (CheckResult?, TURReason.Kind?) {
            let step = decide(.rdac, answer, page: page).step
            return (result(step), kind(step))
        }
        #expect(rdac(rdacPage(flags: 0x01)) == (.up, .good), "owning controller")
        #expect(rdac(rdacPage(flags: 0x20)) == (.up, .good), "I/O shipping")
        #expect(rdac(rdacPage(flags: 0x00)) == (.ghost, .notOwner))
        #expect(rdac(rdacPage(flags: 0x10, current: 0x0)) == (.ghost, .notOwner), "port group data, active/optimized elsewhere")
        #expect(rdac(rdacPage(flags: 0x11, current: 0x3)) == (.down, .controllerUnavailable), "unavailable wins over ownership")
        #expect(rdac(rdacPage(flags: 0x11, current: 0xf, alternate: 0x0)) == (.down, .controllerStarting))
        #expect(rdac(rdacPage(flags: 0x11, current: 0xf, alternate: 0xf)) == (.up, .good), "both transitioning: a failover in progress")
        #expect(rdac(rdacPage(flags: 0x01, current: 0x3)) == (.up, .good), "without port group data the states are not read")
        #expect(rdac(rdacPage(qualifierAndType: 0x20, flags: 0x01)) == (.down, .lunNotConnected))
        #expect(rdac(rdacPage(qualifierAndType: 0x05, flags: 0x01)) == (.down, .lunNotConnected), "not a disk")
        #expect(rdac(rdacPage(flags: 0x01), SGAnswer(status: 2, info: checkInfo, senseKey: 5, asc: 0x24)) == (.down, .inquiryFailed),
                "an array without page 0xC9 (scsi_debug) refuses it")
        if case .retry = decide(.rdac, SGAnswer(hostStatus: 0x07, info: checkInfo), page: rdacPage(flags: 1)).step {} else {
            Issue.record("DID_ERROR is not retried")
        }
        #expect(SCSICheck.rdac.attemptsMax == 5)
        #expect(rdac([]) == (.down, .lunNotConnected) || rdac([]) == (.ghost, .notOwner), "an empty page decides without reading past it")
    }

    @Test("emc_clariion: format, failover set-up, normal operations, bound LUN, and the same WWN every time")
    func emcPages() {
        func emc(_ page: [UInt8], known: UInt64 = 0, _ answer: SGAnswer = SGAnswer()) -> (CheckResult?, TURReason.Kind?, UInt64) {
            let (step, wwn) = decide(.emcClariion, answer, page: page, knownWWN: known)
            return (result(step), kind(step), wwn)
        }
        let first = emc(emcPage())
        #expect(first.0 == .up && first.1 == .good && first.2 != 0)
        #expect(emc(emcPage(bound: 1)).0 == .up, "a passive path is up (CLARiiON trespasses)")
        #expect(emc(emcPage(), known: first.2).0 == .up, "the same LUN")
        #expect(emc(emcPage(wwnSeed: 0x61), known: first.2).1 == .wwnChanged)
        #expect(emc(emcPage(wwnSeed: 0x61), known: first.2).2 == first.2, "the first WWN is kept")
        #expect(emc(emcPage(pageCode: 0xc1)).1 == .unknownPageFormat)
        #expect(emc(Array(emcPage().prefix(40))).1 == .unknownPageFormat, "a short page")
        #expect(emc(emcPage(initiatorType: 1)).1 == .notConfiguredForFailover)
        #expect(emc(emcPage(failoverMode: 1)).1 == .notConfiguredForFailover)
        #expect(emc(emcPage(failoverMode: 6)).0 == .up)
        #expect(emc(emcPage(arrayCommPath: false)).1 == .notConfiguredForFailover)
        #expect(emc(emcPage(operations: 1)) .0 == .down && emc(emcPage(operations: 1)).1 == .notNormalOperations)
        #expect(emc(emcPage(bound: 0)).1 == .unbound)
        #expect(emc(emcPage(), SGAnswer(status: 2, info: checkInfo, senseKey: 1)).1 == .inquiryFailed, "any error fails it")
    }

    @Test func reasonsNameTheirCheckAndSurvivePacking() {
        for check in SCSICheck.allCases {
            let reason = TURReason(kind: .checkCondition, status: 2, senseKey: 3, asc: 0x11, check: check)
            #expect(TURReason(packed: reason.packed) == reason)
        }
        #expect(TURReason(kind: .notOwner, check: .rdac).description.contains("INQUIRY page 0xC9"))
        #expect(TURReason(kind: .checkCondition, check: .readsector0).description.hasPrefix("READ(10)"))
        #expect(TURReason(kind: .good).description == "TEST UNIT READY: GOOD")
    }
}

private func request(_ path: Int, token: UInt32 = 1) -> CheckRequest {
    CheckRequest(path: PathHandle(index: path), device: DevNo(major: 8, minor: UInt32(path)), token: token, timeoutNs: 5 * Time.nsPerSecond)
}

@Suite(.serialized) struct CheckersSCSIAsyncTests {
    @Test("hp_sw through the sg checker: INQUIRY 0x80, then a TUR on the same deadline; the refused TUR makes a ghost")
    func hpSWTwoCommands() throws {
        var checker = try TURChecker(TURConfiguration(pathsMax: 1))
        defer { checker.close() }
        let targets = try SGFakeTargets(paths: 1, checker: checker, check: .hpSW)
        #expect(checker.check(of: PathHandle(index: 0)) == .hpSW)
        var sink = CheckerCollectingSink()
        #expect(checker.submit(request(0, token: 3), nowNs: checkerNowNs()))
        #expect(targets.take(0) == 1)
        #expect(targets.lastCommand(0) == (0x12, 0x80))
        #expect(targets.answer(0, .init(data: Array("\0\u{80}\0\u{4}ABCD".utf8))))
        #expect(checker.waitForCompletions(timeoutNs: 5 * Time.nsPerSecond))
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(sink.completions.isEmpty, "the INQUIRY is not the check's answer")
        #expect(targets.take(0) == 1)
        #expect(targets.lastCommand(0).operation == 0x00, "then TEST UNIT READY")
        #expect(targets.answer(0, .checkCondition(key: 0x2, asc: 0x04, ascq: 0x02)))
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { !$0.completions.isEmpty }
        #expect(sink.completions == [CheckCompletion(path: PathHandle(index: 0), token: 3, result: .ghost)])
        #expect(checker.lastReason(of: PathHandle(index: 0)).kind == .passive)
        // The next check starts from the INQUIRY again.
        #expect(checker.submit(request(0, token: 4), nowNs: checkerNowNs()))
        #expect(targets.take(0) == 1 && targets.lastCommand(0) == (0x12, 0x80))
    }

    @Test("rdac and emc_clariion read the page the target returns: owner up, non-owner ghost, a changed LUN WWN down")
    func pagesThroughTheChecker() throws {
        var checker = try TURChecker(TURConfiguration(pathsMax: 2))
        defer { checker.close() }
        let rdacTargets = try SGFakeTargets(paths: 1, checker: checker, check: .rdac)
        var sink = CheckerCollectingSink()
        func check(_ answer: SGFakeTargets.Answer, path: Int, token: UInt32, targets: SGFakeTargets) -> CheckResult? {
            sink.completions.removeAll()
            #expect(checker.submit(request(path, token: token), nowNs: checkerNowNs()))
            #expect(targets.answer(0, answer))
            checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { !$0.completions.isEmpty }
            return sink.completions.first?.result
        }
        #expect(check(.init(data: rdacPage(flags: 0x01)), path: 0, token: 1, targets: rdacTargets) == .up)
        #expect(rdacTargets.lastCommand(0) == (0x12, 0xc9))
        #expect(check(.init(data: rdacPage(flags: 0x00)), path: 0, token: 2, targets: rdacTargets) == .ghost)
        #expect(check(.init(data: rdacPage(flags: 0x11, current: 0x3)), path: 0, token: 3, targets: rdacTargets) == .down)
        #expect(checker.lastReason(of: PathHandle(index: 0)).kind == .controllerUnavailable)
        #expect(check(.init(data: Array(rdacPage(flags: 0x01).prefix(4))), path: 0, token: 4, targets: rdacTargets) == .ghost,
                "a short answer is read as far as it goes (sg's residual), the rest is not stale data")

        // emc_clariion on its own checker (a fake target set registers paths from 0).
        var emcChecker = try TURChecker(TURConfiguration(pathsMax: 1))
        defer { emcChecker.close() }
        let emcTargets = try SGFakeTargets(paths: 1, checker: emcChecker, check: .emcClariion)
        func emc(_ page: [UInt8], token: UInt32) -> CheckResult? {
            var s = CheckerCollectingSink()
            #expect(emcChecker.submit(request(0, token: token), nowNs: checkerNowNs()))
            #expect(emcTargets.answer(0, .init(data: page)))
            checkerReapUntil(&emcChecker, sink: &s, timeoutNs: 5 * Time.nsPerSecond) { !$0.completions.isEmpty }
            return s.completions.first?.result
        }
        #expect(emc(emcPage(), token: 1) == .up)
        #expect(emcTargets.lastCommand(0) == (0x12, 0xc0))
        #expect(emc(emcPage(), token: 2) == .up)
        #expect(emc(emcPage(wwnSeed: 0x70), token: 3) == .down, "the path now leads to another LUN")
        #expect(emcChecker.lastReason(of: PathHandle(index: 0)).kind == .wwnChanged)
        // The slot given to another path (another LUN): its first WWN is its own, not a change.
        emcChecker.unregister(path: PathHandle(index: 0))
        _ = emcChecker.closeRetiredDescriptors()
        let again = try SGFakeTargets(paths: 1, checker: emcChecker, check: .emcClariion)
        var s = CheckerCollectingSink()
        #expect(emcChecker.submit(request(0, token: 4), nowNs: checkerNowNs()))
        #expect(again.answer(0, .init(data: emcPage(wwnSeed: 0x70))))
        checkerReapUntil(&emcChecker, sink: &s, timeoutNs: 5 * Time.nsPerSecond) { !$0.completions.isEmpty }
        #expect(s.completions.first?.result == .up, "\(emcChecker.lastReason(of: PathHandle(index: 0)))")
    }

    @Test func readsector0ReadsBlockZero() throws {
        var checker = try TURChecker(TURConfiguration(pathsMax: 1))
        defer { checker.close() }
        let targets = try SGFakeTargets(paths: 1, checker: checker, check: .readsector0)
        var sink = CheckerCollectingSink()
        #expect(checker.submit(request(0, token: 1), nowNs: checkerNowNs()))
        #expect(targets.answer(0, .init(data: [UInt8](repeating: 0xab, count: 512))))
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { !$0.completions.isEmpty }
        #expect(targets.lastCommand(0).operation == 0x28)
        #expect(sink.completions.first?.result == .up)
        #expect(checker.submit(request(0, token: 2), nowNs: checkerNowNs()))
        #expect(targets.answer(0, .checkCondition(key: 0x3, asc: 0x11, ascq: 0)))
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { $0.completions.count == 2 }
        #expect(sink.completions.last?.result == .down)
        #expect(checker.lastReason(of: PathHandle(index: 0)).description.hasPrefix("READ(10) of block 0"))
    }
}
