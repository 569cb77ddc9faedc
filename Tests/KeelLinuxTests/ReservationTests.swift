// Persistent reservations: key and prkeys-file formats, the configuration options, the socket
// commands, and a returning path registered by the checker before it is reported up.
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Testing

@Suite struct ReservationFormatTests {
    @Test("reservation keys parse as multipath-tools reads them: 0x optional, up to 16 hex digits, :aptpl")
    func keys() {
        #expect(ReservationKey(parsing: "0x1a2B") == ReservationKey(0x1a2b))
        #expect(ReservationKey(parsing: "1a2b") == ReservationKey(0x1a2b))
        #expect(ReservationKey(parsing: "x1a2b") == ReservationKey(0x1a2b))
        #expect(ReservationKey(parsing: "0xffffffffffffffff:aptpl") == ReservationKey(.max, aptpl: true))
        #expect(ReservationKey(parsing: "0x12:other") == ReservationKey(0x12), "another flag word is no flag")
        #expect(ReservationKey(parsing: "0x1ffffffffffffffff") == nil, "17 digits")
        #expect(ReservationKey(parsing: "0x") == nil)
        #expect(ReservationKey(parsing: "0xzz") == nil)
        #expect(ReservationKey(parsing: "-1") == nil)
        #expect(ReservationKey(parsing: "+1f") == nil && ReservationKey(parsing: "0x+1f") == nil, "no sign, as multipath-tools")
        #expect(ReservationKey(0xab, aptpl: true).description == "0xab:aptpl")
        #expect(ReservationKeySource(parsing: "file") == .file)
        #expect(ReservationKeySource(parsing: "0x0") == nil, "0 is no key")
    }

    @Test("the prkeys file: 16-digit lines, 0X for APTPL, comments skipped, a removed key commented out, other lines kept")
    func prkeysFile() {
        let text = PRKeys.header + "0x0000000000001234 3600a0b80001\n#x00000000000000ff 3600a0b80002\n0X00000000000000aa 3600a0b80003\nnonsense\n"
        let keys = PRKeys(text: text)
        #expect(keys["3600a0b80001"] == ReservationKey(0x1234))
        #expect(keys["3600a0b80002"] == nil)
        #expect(keys["3600a0b80003"] == ReservationKey(0xaa, aptpl: true))
        #expect(keys.problems.map(\.line) == [PRKeys.header.split(separator: "\n", omittingEmptySubsequences: false).count + 3])
        #expect(PRKeys.line(ReservationKey(0x1234), wwid: "w") == "0x0000000000001234 w\n")
        let replaced = PRKeys.updating(text, wwid: "3600a0b80001", to: ReservationKey(0x99, aptpl: true))
        #expect(replaced.contains("0X0000000000000099 3600a0b80001\n") && !replaced.contains("1234"))
        #expect(replaced.contains("nonsense\n") && replaced.hasPrefix(PRKeys.header))
        let removed = PRKeys.updating(text, wwid: "3600a0b80003", to: nil)
        #expect(removed.contains("#X00000000000000aa 3600a0b80003\n"))
        #expect(PRKeys(text: removed)["3600a0b80003"] == nil && PRKeys(text: removed)["3600a0b80001"] != nil)
        let added = PRKeys.updating(text, wwid: "new", to: ReservationKey(1))
        #expect(added.hasSuffix("nonsense\n0x0000000000000001 new\n"))
        #expect(PRKeys.updating("", wwid: "w", to: ReservationKey(2)) == "0x0000000000000002 w\n")
    }

    @Test("reservation_key in defaults and multipath entries (a key or file), refused elsewhere and when malformed; prkeys_file")
    func configuration() throws {
        func profile(_ text: String) throws -> (MapProfile, [String]) {
            let loaded = try Configuration.load(files: [(name: "c", text: text)]).get()
            return (loaded.configuration.profile(wwid: "w1", vendor: "ACME", product: "disk"), loaded.warnings.map(\.message))
        }
        #expect(try profile("").0.reservationKey == nil)
        #expect(try profile("defaults {\n    reservation_key 0x123:aptpl\n}\n").0.reservationKey == .key(ReservationKey(0x123, aptpl: true)))
        #expect(try profile("defaults {\n    reservation_key 0x123\n}\nmultipaths {\n    multipath {\n        wwid w1\n        reservation_key file\n    }\n}\n")
                    .0.reservationKey == .file)
        let inDevice = try profile("devices {\n    device {\n        vendor ACME\n        product disk\n        reservation_key 0x5\n    }\n}\n")
        #expect(inDevice.0.reservationKey == nil && inDevice.1.contains { $0.contains("reservation_key") })
        let bad = Configuration.load(files: [(name: "c", text: "defaults {\n    reservation_key 0xnope\n}\n")])
        guard case .failure(let failure) = bad else { Issue.record("a malformed key must be refused"); return }
        #expect("\(failure)".contains("reservation_key"))
        let c = try Configuration.load(files: [(name: "c", text: "defaults {\n    prkeys_file /var/lib/keys\n    reservation_key file\n}\n")]).get().configuration
        #expect(c.prkeysFile == "/var/lib/keys")
        let again = try Configuration.load(files: [(name: "c", text: c.render())]).get().configuration
        #expect(again.prkeysFile == "/var/lib/keys" && again.defaults.reservationKey == .file, "show config reads back")
    }

    @Test("mpathpersist's commands parse in multipathd's words, in any order (libmpathpersist 0.9.4 sends 'map M setprstatus')")
    func grammar() throws {
        #expect(try ControlGrammar.parse("getprstatus map mpatha").get() == .getPRStatus(map: "mpatha"))
        #expect(try ControlGrammar.parse("map mpatha setprstatus").get() == .setPRStatus(map: "mpatha"))
        #expect(try ControlGrammar.parse("unsetprstatus map mpatha").get() == .unsetPRStatus(map: "mpatha"))
        #expect(try ControlGrammar.parse("getprkey map mpatha").get() == .getPRKey(map: "mpatha"))
        #expect(try ControlGrammar.parse("setprkey map mpatha key 1a2b:aptpl").get() == .setPRKey(map: "mpatha", key: "1a2b:aptpl"))
        #expect(try ControlGrammar.parse("unsetprkey map mpatha").get() == .unsetPRKey(map: "mpatha"))
        #expect(ControlGrammar.parse("getprstatus map mpatha").map(\.readOnly) == .success(true))
        #expect(ControlGrammar.parse("setprkey map mpatha key 1").map(\.readOnly) == .success(false), "root only")
        #expect((try? ControlGrammar.parse("setprkey map mpatha").get()) == nil, "the key is needed")
    }

    @Test("READ KEYS answers are searched within their additional length; REGISTER AND IGNORE carries the key and APTPL")
    func commands() {
        var answer = [UInt8](repeating: 0, count: 40)
        answer[7] = 16  // two keys
        answer[15] = 0x11
        answer[23] = 0x22
        answer[31] = 0x33  // beyond the additional length
        answer.withUnsafeBytes { bytes in
            #expect(SCSIReservation.keys(bytes, contain: 0x22))
            #expect(!SCSIReservation.keys(bytes, contain: 0x33))
            #expect(!SCSIReservation.keys(UnsafeRawBufferPointer(rebasing: bytes[0..<20]), contain: 0x22), "a short answer")
        }
        let cdb = UnsafeMutablePointer<UInt8>.allocate(capacity: 10)
        let parameters = UnsafeMutablePointer<UInt8>.allocate(capacity: 24)
        defer { cdb.deallocate(); parameters.deallocate() }
        let read = SCSIReservation.readKeys(into: cdb, allocationBytes: 1024)
        #expect(Array(UnsafeBufferPointer(start: cdb, count: 10)) == [0x5e, 0, 0, 0, 0, 0, 0, 4, 0, 0] && read == (10, 1024))
        let register = SCSIReservation.registerAndIgnore(key: 0x0102030405060708, aptpl: true, cdb: cdb, parameters: parameters)
        #expect(Array(UnsafeBufferPointer(start: cdb, count: 10)) == [0x5f, 6, 0, 0, 0, 0, 0, 0, 24, 0] && register == (10, 24))
        #expect(Array(UnsafeBufferPointer(start: parameters, count: 24))
                == [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 1, 0, 0, 0])
    }
}

private func request(_ path: Int, token: UInt32) -> CheckRequest {
    CheckRequest(path: PathHandle(index: path), device: DevNo(major: 8, minor: UInt32(path)), token: token, timeoutNs: 5 * Time.nsPerSecond)
}

/// A READ KEYS answer listing `keys`.
private func readKeysAnswer(_ keys: [UInt64]) -> SGFakeTargets.Answer {
    var data = [UInt8](repeating: 0, count: 8)
    data[7] = UInt8(keys.count * 8)
    for key in keys { for i in 0..<8 { data.append(UInt8(truncatingIfNeeded: key >> (56 - 8 * UInt64(i)))) } }
    return SGFakeTargets.Answer(data: data)
}

@Suite(.serialized) struct ReservationCheckerTests {
    /// Sends a check of path 0 and answers its TUR GOOD.
    private func checkUp(_ checker: inout TURChecker, _ targets: SGFakeTargets, token: UInt32) {
        #expect(checker.submit(request(0, token: token), nowNs: checkerNowNs()))
        #expect(targets.take(0) == 1 && targets.lastCommand(0).operation == 0x00)
        #expect(targets.answer(0))
        #expect(checker.waitForCompletions(timeoutNs: 5 * Time.nsPerSecond))
    }

    /// Sends a check of path 0, answers it with `answer` (a failure) and reaps its completion.
    private func checkDown(_ checker: inout TURChecker, _ targets: SGFakeTargets, token: UInt32,
                           _ answer: SGFakeTargets.Answer = .checkCondition(key: 0x02, asc: 0x04, ascq: 0x03)) -> CheckResult? {
        var sink = CheckerCollectingSink()
        #expect(checker.submit(request(0, token: token), nowNs: checkerNowNs()))
        #expect(targets.answer(0, answer))
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { !$0.completions.isEmpty }
        return sink.completions.first?.result
    }

    @Test("a new or returning path is registered with its map's key (READ KEYS, then REGISTER AND IGNORE) before it is reported up; an up path is not")
    func returningPathIsRegisteredFirst() throws {
        var checker = try TURChecker(TURConfiguration(pathsMax: 1))
        defer { checker.close() }
        let targets = try SGFakeTargets(paths: 1, checker: checker)
        let path = PathHandle(index: 0)
        checker.setReservationKey(0xabc, aptpl: true, path: path)
        var sink = CheckerCollectingSink()
        checkUp(&checker, targets, token: 1)
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(sink.completions.isEmpty, "not up before it is registered")
        #expect(targets.take(0) == 1 && targets.lastCommand(0).operation == 0x5e)
        #expect(targets.answer(0, readKeysAnswer([0x1, 0xabc])))
        #expect(checker.waitForCompletions(timeoutNs: 5 * Time.nsPerSecond))
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(sink.completions.isEmpty)
        #expect(targets.take(0) == 1 && targets.lastCommand(0).operation == 0x5f)
        #expect(targets.requestData(0, count: 24) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0xbc, 0, 0, 0, 0, 1, 0, 0, 0])
        #expect(targets.answer(0))
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { !$0.completions.isEmpty }
        #expect(sink.completions == [CheckCompletion(path: path, token: 1, result: .up)])
        #expect(checker.registration(of: path) == .registered)
        #expect(checker.registrationRecord(of: path).attempts == 1)
        #expect(checker.lastReason(of: path).kind == .good)

        // Up and staying up: a plain TUR.
        sink = CheckerCollectingSink()
        checkUp(&checker, targets, token: 2)
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { !$0.completions.isEmpty }
        #expect(sink.completions == [CheckCompletion(path: path, token: 2, result: .up)])

        // Down, then back: registered again; a UNIT ATTENTION to the READ KEYS is sent again.
        #expect(checkDown(&checker, targets, token: 3, .checkCondition(key: 0x02, asc: 0x3a, ascq: 0)) == .down)
        sink = CheckerCollectingSink()
        checkUp(&checker, targets, token: 4)
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(targets.take(0) == 1 && targets.lastCommand(0).operation == 0x5e)
        #expect(targets.answer(0, .checkCondition(key: 0x06, asc: 0x2a, ascq: 0x03)))
        #expect(checker.waitForCompletions(timeoutNs: 5 * Time.nsPerSecond))
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(targets.take(0) == 1 && targets.lastCommand(0).operation == 0x5e, "sent again after UNIT ATTENTION")
        #expect(targets.answer(0, readKeysAnswer([0xabc])))
        #expect(checker.waitForCompletions(timeoutNs: 5 * Time.nsPerSecond))
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(targets.take(0) == 1 && targets.lastCommand(0).operation == 0x5f)
        #expect(targets.answer(0))
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { !$0.completions.isEmpty }
        #expect(sink.completions == [CheckCompletion(path: path, token: 4, result: .up)])
        #expect(checker.counters.registered == 2)
        #expect(checker.registrationRecord(of: path) == (2, .registered), "each registration counted once")
    }

    @Test("a LUN without the key is not registered with it; a failed REGISTER still reports the path up, as multipathd does; no key, no commands")
    func keyAbsentOrRefused() throws {
        var checker = try TURChecker(TURConfiguration(pathsMax: 1))
        defer { checker.close() }
        let targets = try SGFakeTargets(paths: 1, checker: checker)
        let path = PathHandle(index: 0)
        var sink = CheckerCollectingSink()
        checkUp(&checker, targets, token: 1)
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { !$0.completions.isEmpty }
        #expect(sink.completions.first?.result == .up, "no key: a plain check")
        #expect(checker.registration(of: path) == .none)

        // A key given to a path that is up already: nothing until it fails and comes back.
        checker.setReservationKey(0x77, aptpl: false, path: path)
        _ = checkDown(&checker, targets, token: 2)
        sink = CheckerCollectingSink()
        checkUp(&checker, targets, token: 3)
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(targets.answer(0, readKeysAnswer([0x1])))
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { !$0.completions.isEmpty }
        #expect(sink.completions.first?.result == .up)
        #expect(checker.registration(of: path) == .keyAbsent)
        #expect(targets.take(0) == 0, "no REGISTER sent")

        _ = checkDown(&checker, targets, token: 4)
        sink = CheckerCollectingSink()
        checkUp(&checker, targets, token: 5)
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(targets.answer(0, readKeysAnswer([0x77])))
        #expect(checker.waitForCompletions(timeoutNs: 5 * Time.nsPerSecond))
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(targets.take(0) == 1 && targets.lastCommand(0).operation == 0x5f)
        #expect(targets.answer(0, SGFakeTargets.Answer(status: 0x18)))  // RESERVATION CONFLICT
        checkerReapUntil(&checker, sink: &sink, timeoutNs: 5 * Time.nsPerSecond) { !$0.completions.isEmpty }
        #expect(sink.completions.first?.result == .up)
        #expect(checker.registration(of: path) == .failed)
        #expect(checker.counters.registrationFailed == 1 && checker.counters.registrationKeyAbsent == 1)
        checker.setReservationKey(0x77, aptpl: true, path: path)
        #expect(checker.registration(of: path) == .failed, "the same key: the outcome stands")
        checker.setReservationKey(0, aptpl: false, path: path)
        #expect(checker.registration(of: path) == .none, "the key removed: no outcome")
    }

    @Test("a registration that never answers times the check out: the path stays down, its command an orphan")
    func hungRegistrationIsATimeout() throws {
        var checker = try TURChecker(TURConfiguration(pathsMax: 1))
        defer { checker.close() }
        let targets = try SGFakeTargets(paths: 1, checker: checker)
        checker.setReservationKey(0x5, aptpl: false, path: PathHandle(index: 0))
        var sink = CheckerCollectingSink()
        let start = checkerNowNs()
        #expect(checker.submit(CheckRequest(path: PathHandle(index: 0), device: DevNo(major: 8, minor: 0), token: 1, timeoutNs: 200 * Time.nsPerMs),
                               nowNs: start))
        #expect(targets.answer(0))
        #expect(checker.waitForCompletions(timeoutNs: 5 * Time.nsPerSecond))
        checker.reap(nowNs: checkerNowNs(), into: &sink)
        #expect(targets.take(0) == 1 && targets.lastCommand(0).operation == 0x5e)
        checker.reap(nowNs: start + 300 * Time.nsPerMs, into: &sink)
        #expect(sink.completions == [CheckCompletion(path: PathHandle(index: 0), token: 1, result: .timeout)])
        #expect(checker.isOrphaned(PathHandle(index: 0)))
    }
}
