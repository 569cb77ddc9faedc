// The prioritizers that ask the array (emc, rdac, hds, hp_sw, ontap, datacore, path_latency) and
// iet: their arguments, how captured pages and answers become priorities, and the batch runner
// that sends their commands through the sg asynchronous interface, against fake targets that can
// answer, answer late or never.
import Foundation
import CKeelShim
import Glibc
import KeelCore
import KeelLinux
import Testing

private let good = SGReply(answer: SGAnswer())
private func reply(_ data: [UInt8]) -> SGReply { SGReply(answer: SGAnswer(), data: data) }
private func checkCondition(key: UInt8, asc: UInt8, ascq: UInt8) -> SGReply {
    SGReply(answer: SGAnswer(status: 0x02, info: 1, senseKey: key, asc: asc, ascq: ascq))
}
private let failedIoctl = SGReply(answer: SGAnswer(ioctlErrno: ENODEV))

/// Page 0xC0 of a CLARiiON LUN set up for failover: LUN state at 4, default owner at 5, this
/// path's SP at 8.
private func emcPage(state: UInt8, defaultOwner: UInt8, pathSP: UInt8, mode: UInt8 = 4, operations: UInt8 = 0) -> [UInt8] {
    var page = [UInt8](repeating: 0, count: 128)
    page[1] = 0xC0
    page[4] = state; page[5] = defaultOwner; page[8] = pathSP
    page[27] = 3; page[28] = mode; page[30] = 0x04
    page[48] = operations
    return page
}

/// Page 0xC9 ("vac") with ownership byte 8 and preferred/secondary byte 9.
private func rdacPage(flags: UInt8, preference: UInt8) -> [UInt8] {
    var page = [UInt8](repeating: 0, count: 128)
    page[1] = 0xC9; page[3] = 0x2C
    page[4] = UInt8(ascii: "v"); page[5] = UInt8(ascii: "a"); page[6] = UInt8(ascii: "c")
    page[8] = flags; page[9] = preference
    return page
}

/// A standard INQUIRY of a Hitachi DF with LDEV `ldev` (4 characters) and controller `ctrl`.
private func hdsInquiry(ldev: String, ctrl: Character) -> [UInt8] {
    var data = [UInt8](repeating: 0x20, count: 255)
    for (i, c) in "HITACHI ".utf8.enumerated() { data[8 + i] = c }
    for (i, c) in ldev.utf8.enumerated() { data[44 + i] = c }
    data[49] = ctrl.asciiValue!
    data[50] = UInt8(ascii: "A")
    return data
}

private func evaluate(_ prioritizer: SCSIPrioritizer, _ replies: [SGReply]) -> (Int?, commands: [[UInt8]]) {
    var evaluation = SCSIPriorityEvaluation(prioritizer)
    var commands: [[UInt8]] = []
    for r in replies {
        commands.append(evaluation.command().cdb)
        if case .done(let priority) = evaluation.take(r) { return (priority, commands) }
    }
    Issue.record("the evaluation wanted more than \(replies.count) answers")
    return (nil, commands)
}

@Suite struct PrioritizersSCSIDecodeTests {
    @Test func emcGivesTheLUNStatePlusTwoOnTheDefaultOwner() {
        #expect(evaluate(.emc, [reply(emcPage(state: 2, defaultOwner: 1, pathSP: 1))]).0 == 4)
        #expect(evaluate(.emc, [reply(emcPage(state: 2, defaultOwner: 0, pathSP: 1))]).0 == 2)
        #expect(evaluate(.emc, [reply(emcPage(state: 1, defaultOwner: 0, pathSP: 0, mode: 6))]).0 == 3)
        #expect(evaluate(.emc, [reply(emcPage(state: 0, defaultOwner: 0, pathSP: 1))]).0 == 0)
        // Not set up for failover, not in normal operation, a foreign page, a failed command: none.
        #expect(evaluate(.emc, [reply(emcPage(state: 2, defaultOwner: 1, pathSP: 1, mode: 1))]).0 == nil)
        #expect(evaluate(.emc, [reply(emcPage(state: 2, defaultOwner: 1, pathSP: 1, operations: 1))]).0 == nil)
        #expect(evaluate(.emc, [reply([0, 0xC9] + [UInt8](repeating: 0, count: 100))]).0 == nil)
        #expect(evaluate(.emc, [checkCondition(key: 5, asc: 0x24, ascq: 0)]).0 == nil)
        #expect(evaluate(.emc, [good]).commands == [[0x12, 0x01, 0xC0, 0, 0x80, 0]])
    }

    @Test("detect_checker's RDAC question: a 44-byte INQUIRY of page 0xC9, yes only for \"vac1\" at byte 4")
    func rdacDetectionAsksPage0xC9ForVac1() {
        var page = rdacPage(flags: 0, preference: 0)
        page[7] = UInt8(ascii: "1")
        #expect(evaluate(.rdacDetection, [reply(Array(page.prefix(44)))]).0 == 1)
        #expect(evaluate(.rdacDetection, [reply(Array(page.prefix(44)))]).commands == [[0x12, 0x01, 0xC9, 0, 44, 0]])
        var other = page
        other[7] = UInt8(ascii: "2")
        #expect(evaluate(.rdacDetection, [reply(other)]).0 == 0, "another version of the page is not asked about")
        #expect(evaluate(.rdacDetection, [reply(Array(page.prefix(7)))]).0 == 0, "a short answer")
        #expect(evaluate(.rdacDetection, [checkCondition(key: 5, asc: 0x24, ascq: 0)]).0 == 0, "page not supported (scsi_debug's answer)")
        #expect(evaluate(.rdacDetection, [good]).0 == 0, "no data")
    }

    @Test("an RDAC array is checked with rdac, and a detected sysfs prioritizer becomes alua unless ALUA is explicit only")
    func rdacDetectionSetsTheCheckerAndThePrioritizer() throws {
        let configuration = try Configuration.load(files: [(name: "c", text: "")]).get().configuration
        var profile = configuration.profile(wwid: "w", vendor: "ACME", product: "disk")
        var detected: MapProfile.Prioritizer? = .sysfs
        MultipathAssembler.applyDetection(&profile, prio: detected, handler: "alua")
        #expect(profile.checker == .tur && profile.prio == .sysfs)
        MultipathAssembler.applyRDAC(&profile, detectedPrio: &detected, tpgs: 1)
        #expect(profile.checker == .rdac && profile.prio == .alua && detected == .alua)
        var explicit = configuration.profile(wwid: "w", vendor: "ACME", product: "disk")
        var explicitPrio: MapProfile.Prioritizer? = .sysfs
        MultipathAssembler.applyDetection(&explicit, prio: explicitPrio, handler: "alua")
        MultipathAssembler.applyRDAC(&explicit, detectedPrio: &explicitPrio, tpgs: 2)
        #expect(explicit.checker == .rdac && explicit.prio == .sysfs && explicitPrio == .sysfs)
        var plain = configuration.profile(wwid: "w", vendor: "ACME", product: "disk")
        var none: MapProfile.Prioritizer? = nil
        MultipathAssembler.applyRDAC(&plain, detectedPrio: &none, tpgs: nil)
        #expect(plain.checker == .rdac && plain.prio == .const, "an RDAC array without ALUA: the checker only")
    }

    @Test("the array is asked whether it is RDAC unless detect_checker is off or its devices entry names another checker")
    func whoIsAskedWhetherRDAC() throws {
        func asks(_ text: String, vendor: String = "ACME", product: String = "disk") throws -> Bool {
            let configuration = try Configuration.load(files: [(name: "c", text: text)]).get().configuration
            return configuration.profile(wwid: "w", vendor: vendor, product: product).asksWhetherRDAC
        }
        #expect(try asks(""))
        #expect(try !asks("defaults {\n    detect_checker no\n}\n"))
        #expect(try !asks("devices {\n    device {\n        vendor ACME\n        product disk\n        path_checker tur\n    }\n}\n"))
        #expect(try asks("devices {\n    device {\n        vendor ACME\n        product disk\n        path_checker rdac\n    }\n}\n"))
        #expect(try asks("defaults {\n    path_checker directio\n}\n"), "only a devices entry's checker says it is likely not RDAC")
        #expect(try !asks("", vendor: "DGC", product: "RAID 5"), "CLARiiON's hardware-table entry names emc_clariion (and turns detection off)")
        #expect(try asks("", vendor: "NETAPP", product: "INF-01-00"), "the hardware table names rdac for E-series")
    }

    @Test func rdacOrsOwnerPreferenceAndIOShipping() {
        #expect(evaluate(.rdac, [reply(rdacPage(flags: 0x01, preference: 0x01))]).0 == 6)
        #expect(evaluate(.rdac, [reply(rdacPage(flags: 0x00, preference: 0x02))]).0 == 1)
        #expect(evaluate(.rdac, [reply(rdacPage(flags: 0x21, preference: 0x01))]).0 == 14)
        #expect(evaluate(.rdac, [reply(rdacPage(flags: 0x00, preference: 0x00))]).0 == 0)
        // Bits above the low nibble of byte 9 do not count.
        #expect(evaluate(.rdac, [reply(rdacPage(flags: 0x01, preference: 0xF1))]).0 == 6)
        // rdac gives 0, not "none", for a failure or a foreign page.
        var foreign = rdacPage(flags: 0x01, preference: 0x01)
        foreign[4] = UInt8(ascii: "x")
        #expect(evaluate(.rdac, [reply(foreign)]).0 == 0)
        #expect(evaluate(.rdac, [failedIoctl]).0 == 0)
        #expect(evaluate(.rdac, [good]).commands == [[0x12, 0x01, 0xC9, 0, 0x80, 0]])
    }

    @Test func hdsComparesControllerAndLDEVParity() {
        #expect(evaluate(.hds, [reply(hdsInquiry(ldev: "004A", ctrl: "0"))]).0 == 1)
        #expect(evaluate(.hds, [reply(hdsInquiry(ldev: "004B", ctrl: "0"))]).0 == 0)
        #expect(evaluate(.hds, [reply(hdsInquiry(ldev: "004B", ctrl: "1"))]).0 == 1)
        #expect(evaluate(.hds, [reply(hdsInquiry(ldev: "0048", ctrl: "1"))]).0 == 0)
        // Lower-case hex, a controller that is not a digit, a short LDEV: none.
        #expect(evaluate(.hds, [reply(hdsInquiry(ldev: "004b", ctrl: "1"))]).0 == nil)
        #expect(evaluate(.hds, [reply(hdsInquiry(ldev: "0048", ctrl: "X"))]).0 == nil)
        var short = hdsInquiry(ldev: "0048", ctrl: "0")
        short[45] = 0
        #expect(evaluate(.hds, [reply(short)]).0 == nil)
        #expect(evaluate(.hds, [failedIoctl]).0 == nil)
        #expect(evaluate(.hds, [good]).commands == [[0x12, 0, 0, 0, 0xFF, 0]])
    }

    @Test func hpSWReadsTheTURAndResendsItAfterAReset() {
        #expect(evaluate(.hpSW, [good]).0 == 4)
        #expect(evaluate(.hpSW, [checkCondition(key: 0x2, asc: 0x04, ascq: 0x02)]).0 == 2)
        #expect(evaluate(.hpSW, [checkCondition(key: 0x1, asc: 0x17, ascq: 0x01)]).0 == 4)
        #expect(evaluate(.hpSW, [checkCondition(key: 0x2, asc: 0x04, ascq: 0x03)]).0 == 0)
        #expect(evaluate(.hpSW, [failedIoctl]).0 == 0)
        let reset = checkCondition(key: 0x6, asc: 0x29, ascq: 0x00)
        let (priority, commands) = evaluate(.hpSW, [reset, reset, good])
        #expect(priority == 4)
        #expect(commands == [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
        // A device that keeps resetting ends (multipath-tools would ask forever).
        let endless = [SGReply](repeating: reset, count: SCSIPriorityEvaluation.unitAttentionRetries + 1)
        #expect(evaluate(.hpSW, endless).0 == 0)
    }

    /// NetApp's GVA page 0x41 with the protocol tag at 12.
    private func gva(_ tag: String, total: UInt8 = 0x20) -> [UInt8] {
        var page = [UInt8](repeating: 0, count: 256)
        page[3] = total
        page[4] = 0x0A; page[5] = 0x98; page[6] = 0x0A; page[7] = 0x01
        page[8] = 0x41
        for (i, c) in tag.utf8.enumerated() { page[12 + i] = c }
        return page
    }

    private func proxyPage(proxy: Bool) -> [UInt8] {
        var page = [UInt8](repeating: 0, count: 256)
        page[1] = 0xC1; page[8] = 0x0A; page[9] = 0x98; page[10] = 0x0A; page[12] = 0xC1
        page[19] = proxy ? 0x02 : 0x00
        return page
    }

    @Test func ontapTellsISCSIFromItsGVAPageElseAsksForTheProxyBit() {
        #expect(evaluate(.ontap, [reply(gva("ism_sw"))]).0 == 2)
        #expect(evaluate(.ontap, [reply(gva("iswt"))]).0 == 2)
        #expect(evaluate(.ontap, [reply(gva("ism_sn"))]).0 == 3)
        let (proxied, commands) = evaluate(.ontap, [reply(gva("fcp")), reply(proxyPage(proxy: true))])
        #expect(proxied == 1)
        #expect(commands == [[0xC0, 0, 0x01, 0x0A, 0x98, 0x0A, 0x41, 0x80, 0, 0], [0x12, 0x01, 0xC1, 0, 0x80, 0]])
        #expect(evaluate(.ontap, [reply(gva("fcp")), reply(proxyPage(proxy: false))]).0 == 4)
        #expect(evaluate(.ontap, [reply(gva("fcp")), failedIoctl]).0 == 4)
        // A page too short to name a protocol goes to the proxy page too.
        #expect(evaluate(.ontap, [reply(gva("ism_sw", total: 8)), reply(proxyPage(proxy: true))]).0 == 1)
        // The GVA command failing, or an answer without NetApp's signature: 0 at once.
        #expect(evaluate(.ontap, [failedIoctl]).0 == 0)
        var unsigned = gva("ism_sw")
        unsigned[5] = 0
        #expect(evaluate(.ontap, [reply(unsigned)]).0 == 0)
    }

    @Test func datacoreLooksForThePreferredSDSInTheInquiry() {
        var inquiry = [UInt8](repeating: 0, count: 255)
        for (i, c) in "SDS-NORTH-02".utf8.enumerated() { inquiry[112 + i] = c }
        let north = SCSIPrioritizer(.datacore, args: "preferredsds=NORTH")!
        #expect(evaluate(north, [reply(inquiry)]).0 == 1)
        #expect(evaluate(SCSIPrioritizer(.datacore, args: "timeout=500 preferredsds=SOUTH")!, [reply(inquiry)]).0 == 0)
        #expect(evaluate(north, [failedIoctl]).0 == 0)
        // Unusable arguments give every path 0 without reading the answer.
        #expect(evaluate(SCSIPrioritizer(.datacore, args: "preferredsds=N")!, [reply(inquiry)]).0 == 0)
        #expect(evaluate(SCSIPrioritizer(.datacore, args: "")!, [reply(inquiry)]).0 == 0)
    }

    @Test func datacoreArguments() {
        #expect(DatacoreArguments("preferredsds=alpha").preferredSDS == "alpha")
        #expect(DatacoreArguments("preferredsds=alpha").timeoutMs == nil)
        #expect(DatacoreArguments("timeout=5000 preferredsds=alpha").timeoutMs == 5000)
        #expect(DatacoreArguments("preferredsds=alpha timeout=700").timeoutMs == 700)
        #expect(DatacoreArguments("timeout=5000").preferredSDS == nil)
        #expect(DatacoreArguments("preferredsds=a").preferredSDS == nil)
        #expect(DatacoreArguments("sds=alpha").preferredSDS == nil)
        #expect(SCSIPriorityEvaluation(SCSIPrioritizer(.datacore, args: "preferredsds=ab timeout=900")!).timeoutMs == 900)
    }

    @Test func pathLatencyArgumentsAndScale() {
        let defaults = PathLatencyArguments("")
        #expect(defaults.samples == 100 && !defaults.valid)
        let twenty = PathLatencyArguments("io_num=20 base_num=10")
        #expect(twenty.samples == 20 && twenty.base == 10 && twenty.valid)
        #expect(PathLatencyArguments("base_num=2 io_num=50").samples == 50)
        for bad in ["io_num=19 base_num=10", "io_num=201 base_num=10", "io_num=50 base_num=1.0", "io_num=50 base_num=11",
                    "io_num=50", "junk io_num=50 base_num=2", "io_num=x base_num=2"] {
            #expect(!PathLatencyArguments(bad).valid, "\(bad)")
        }
        // Base 10: 1 µs -> 8, 1 ms -> 5, 100 s -> 0; the default base's ceiling truncates to 31.
        let ten = PathLatencyArguments("io_num=20 base_num=10")
        #expect(ten.priority(logSum: 20 * ten.logOf(latencyNs: 1_000)) == 8)
        #expect(ten.priority(logSum: 20 * ten.logOf(latencyNs: 1_000_000)) == 5)
        #expect(ten.priority(logSum: 20 * ten.logOf(latencyNs: 100 * 1_000_000_000)) == 0)
        #expect(ten.logOf(latencyNs: 999) == 0)
        #expect(defaults.priority(logSum: 0) == 31)
    }

    @Test func pathLatencyReadsBlockZeroSamplesTimes() {
        let arguments = PathLatencyArguments("io_num=20 base_num=10")
        var evaluation = SCSIPriorityEvaluation(.pathLatency(arguments))
        #expect(evaluation.command().cdb == [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0])
        var step = SCSIPriorityEvaluation.Step.more
        for _ in 0..<20 {
            #expect(step == .more)
            step = evaluation.take(SGReply(answer: SGAnswer(), latencyNs: 10_000_000))   // 10 ms: 10^4 µs
        }
        #expect(step == .done(4))
        var failing = SCSIPriorityEvaluation(.pathLatency(arguments))
        #expect(failing.take(checkCondition(key: 3, asc: 0x11, ascq: 0)) == .done(nil))
    }

    @Test func ietMatchesThePortalOfThePathsByPathLink() {
        let links: [(name: String, target: String)] = [
            ("ip-10.1.1.10:3260-iscsi-iqn.2001-04.com.example:disk-lun-0", "../../sdab"),
            ("ip-10.1.1.10:3260-iscsi-iqn.2001-04.com.example:disk-lun-0-part1", "../../sdab1"),
            ("ip-10.1.1.1:3260-iscsi-iqn.2001-04.com.example:disk-lun-0", "../../sda"),
            ("pci-0000:00:1f.2-ata-1", "../../sdz"),
        ]
        let rule = IETRule(arguments: "preferredip=10.1.1.10")!
        #expect(rule.priority(of: "sdab", byPath: links) == 20)
        // Whole names and addresses: sda's portal 10.1.1.1 is not 10.1.1.10, and sda is not sdab.
        #expect(rule.priority(of: "sda", byPath: links) == 10)
        #expect(IETRule(arguments: "preferredip=10.1.1.1")!.priority(of: "sdab", byPath: links) == 10)
        #expect(rule.priority(of: "sdz", byPath: links) == 10)
        #expect(IETRule(arguments: "preferredip=1.2.3") == nil)
        #expect(IETRule(arguments: "ip=10.1.1.10") == nil)
        #expect(IETRule(arguments: "") == nil)
    }

    @Test func prioritizerNamesInConfiguration() throws {
        let loaded = try Configuration.load(files: [(name: "multipath.conf", text: """
            devices {
                device {
                    vendor "DGC"
                    product ".*"
                    prio emc
                }
                device {
                    vendor "NVME"
                    product ".*"
                    prio ana
                }
            }
            """)]).get()
        #expect(loaded.configuration.devices.first?.settings.prio == .emc)
        #expect(loaded.configuration.devices.last?.settings.prio == .ana)
        #expect(loaded.warnings.isEmpty, "\(loaded.warnings)")
        for prio in MapProfile.Prioritizer.allCases where prio.asksTheArray {
            #expect(SCSIPrioritizer(prio, args: "") != nil, "\(prio)")
        }
        // The built-in table's arrays get their own prioritizers again.
        let builtIn = Configuration()
        #expect(builtIn.profile(wwid: "x", vendor: "HITACHI", product: "DF600F").prio == .hds)
        #expect(builtIn.profile(wwid: "x", vendor: "NETAPP", product: "LUN").prio == .ontap)
        #expect(builtIn.profile(wwid: "x", vendor: "DELL", product: "MD32xx").prio == .rdac)
    }
}

/// Fake targets behind socket pairs: a thread reads each request and answers it (filling the
/// requester's data and sense buffers, same process), late or never, as `answer` says.
private final class SGResponder: @unchecked Sendable {
    struct Answer {
        var status: UInt8 = 0
        var hostStatus: UInt16 = 0
        var data: [UInt8] = []
        var delayMs: Int = 0
    }

    private var pairs: [String: (runner: Int32, target: Int32)] = [:]
    private let lock = NSLock()
    private var stopping = false
    private var thread: Thread?
    private var requests: [String: Int] = [:]
    /// What each key's target answers; nil: never.
    let answer: @Sendable (String, [UInt8]) -> Answer?

    init(answer: @escaping @Sendable (String, [UInt8]) -> Answer?) {
        self.answer = answer
        let thread = Thread { [unowned self] in self.serve() }
        self.thread = thread
        thread.start()
    }

    func stop() {
        lock.withLock { stopping = true }
        Thread.sleep(forTimeInterval: 0.05)
        lock.withLock { for (_, pair) in pairs { close(pair.runner); close(pair.target) } }
    }

    func requestCount(_ key: String) -> Int { lock.withLock { requests[key] ?? 0 } }

    /// The runner's end for `key` (a duplicate: the runner closes what it opens).
    func open(_ query: SGQuery) -> Int32 {
        lock.withLock {
            if pairs[query.key] == nil {
                var pair: [Int32] = [-1, -1]
                _ = socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &pair)
                pairs[query.key] = (pair[0], pair[1])
            }
            return dup(pairs[query.key]!.runner)
        }
    }

    private func serve() {
        var late: [(due: Date, fd: Int32, header: sg_io_hdr, answer: Answer)] = []
        while !lock.withLock({ stopping }) {
            let current = lock.withLock { pairs }
            for (key, pair) in current {
                var header = sg_io_hdr()
                while read(pair.target, &header, MemoryLayout<sg_io_hdr>.size) == MemoryLayout<sg_io_hdr>.size {
                    let cdb = Array(UnsafeBufferPointer(start: header.cmdp, count: Int(header.cmd_len)))
                    lock.withLock { requests[key, default: 0] += 1 }
                    guard let a = answer(key, cdb) else { continue }
                    late.append((Date().addingTimeInterval(Double(a.delayMs) / 1000), pair.target, header, a))
                }
            }
            let now = Date()
            for entry in late where entry.due <= now {
                var header = entry.header
                if let buffer = header.dxferp, header.dxfer_len > 0 {
                    let count = min(entry.answer.data.count, Int(header.dxfer_len))
                    entry.answer.data.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: count) }
                    header.resid = Int32(Int(header.dxfer_len) - count)
                }
                header.status = entry.answer.status
                header.host_status = entry.answer.hostStatus
                header.info = entry.answer.status != 0 || entry.answer.hostStatus != 0 ? 1 : 0
                _ = write(entry.fd, &header, MemoryLayout<sg_io_hdr>.size)
            }
            late.removeAll { $0.due <= now }
            usleep(500)
        }
    }
}

@Suite(.serialized) struct PrioritizersSCSIRunnerTests {
    private func rdacSubject(_ key: String) -> SCSIPriorities.Subject {
        SCSIPriorities.Subject(key: key, genericPath: "/dev/null", prioritizer: .rdac, timeoutMs: 30_000)
    }

    @Test func answersOfManyPathsComeBackInOneBatch() {
        let owner = rdacPage(flags: 0x01, preference: 0x01)
        let responder = SGResponder { key, cdb in
            cdb[0] == 0x12 && cdb[2] == 0xC9 ? SGResponder.Answer(data: key.hasSuffix("0") ? owner : rdacPage(flags: 0, preference: 2)) : nil
        }
        defer { responder.stop() }
        let runner = SGQueryRunner(open: responder.open)
        // More paths than the window: the batch refills it as answers come back.
        let keys = (0..<(SGQueryRunner.window + 40)).map { "sd\($0)" }
        let results = SCSIPriorities.evaluate(keys.map(rdacSubject), runner: runner, waitNs: 10 * Time.nsPerSecond)
        #expect(results.count == keys.count)
        #expect(results["sd10"] == .some(6))
        #expect(results["sd11"] == .some(1))
        #expect(runner.timedOut == 0)
    }

    @Test func aHungPathCostsOneWaitThenStaysAnOrphanUntilItAnswers() {
        let responder = SGResponder { key, _ in
            if key == "sdh" { return nil }
            if key == "sdl" { return SGResponder.Answer(data: rdacPage(flags: 1, preference: 1), delayMs: 400) }
            return SGResponder.Answer(data: rdacPage(flags: 0, preference: 0))
        }
        defer { responder.stop() }
        let runner = SGQueryRunner(open: responder.open)
        let started = LogClock.nowNs()
        let first = SCSIPriorities.evaluate(["sda", "sdh", "sdl"].map(rdacSubject), runner: runner, waitNs: 200_000_000)
        let waited = LogClock.nowNs() - started
        // The healthy path answered; the hung one and the slow one are orphans, with no priority.
        #expect(first["sda"] == .some(0))
        #expect(first["sdh"] == nil && first["sdl"] == nil)
        #expect(waited < 5 * Time.nsPerSecond)
        #expect(runner.timedOut == 2)
        #expect(runner.orphanKeys == ["sdh", "sdl"])
        // Once the slow path's answer is in, only the hung one is still an orphan, and it is not
        // asked again while its first command is out.
        usleep(600_000)
        let second = SCSIPriorities.evaluate(["sda", "sdh", "sdl"].map(rdacSubject), runner: runner, waitNs: 1 * Time.nsPerSecond)
        #expect(runner.lateAnswers == 1)
        #expect(second["sdl"] == .some(6))
        #expect(second["sdh"] == nil)
        #expect(responder.requestCount("sdh") == 1)
        #expect(runner.orphanKeys == ["sdh"])
    }

    @Test func aNodeThatCannotBeOpenedAnswersWithItsErrno() {
        let runner = SGQueryRunner(open: { _ in -ENXIO })
        let replies = runner.run([SGQuery(key: "sdq", genericPath: "/dev/sgq", cdb: [0x12, 1, 0xC9, 0, 0x80, 0], dataBytes: 128, timeoutMs: 1000)],
                                 waitNs: Time.nsPerSecond)
        #expect(replies["sdq"]?.answer.ioctlErrno == ENXIO)
        // A device that cannot be reached keeps its priority: no result, where multipath-tools'
        // rdac would read the failed command as 0 (it does not ask a path it knows is down).
        #expect(SCSIPriorities.evaluate([rdacSubject("sdq")], runner: runner, waitNs: Time.nsPerSecond).isEmpty)
        let emc = SCSIPriorities.Subject(key: "sdq", genericPath: "/dev/sgq", prioritizer: .emc, timeoutMs: 1000)
        #expect(SCSIPriorities.evaluate([emc], runner: runner, waitNs: Time.nsPerSecond).isEmpty)
    }

    @Test func aPathTheCommandCannotReachKeepsItsPriority() {
        // DID_NO_CONNECT from the host: the device said nothing; a GOOD neighbour is read.
        let responder = SGResponder { key, _ in
            key == "sdx" ? SGResponder.Answer(hostStatus: 0x01) : SGResponder.Answer(data: rdacPage(flags: 1, preference: 1))
        }
        defer { responder.stop() }
        let results = SCSIPriorities.evaluate(["sdx", "sdy"].map(rdacSubject), runner: SGQueryRunner(open: responder.open),
                                              waitNs: 10 * Time.nsPerSecond)
        #expect(results["sdx"] == nil)
        #expect(results["sdy"] == .some(6))
    }

    @Test func outOfDescriptorsIsNoAnswerNotAPriority() {
        // rdac reads a failed command as 0: a process out of descriptors must not demote its paths.
        let runner = SGQueryRunner(open: { _ in -EMFILE })
        #expect(SCSIPriorities.evaluate([rdacSubject("sdq")], runner: runner, waitNs: Time.nsPerSecond).isEmpty)
        #expect(FileLimit.reserve >= 256 + UInt64(SGQueryRunner.window))
    }

    @Test func aRealNodeThatIsNotSCSIGenericIsRefused() {
        let runner = SGQueryRunner()
        let replies = runner.run([SGQuery(key: "null", genericPath: "/dev/null", cdb: [0, 0, 0, 0, 0, 0], dataBytes: 0, timeoutMs: 1000)],
                                 waitNs: Time.nsPerSecond)
        #expect(replies["null"]?.answer.ioctlErrno == ENOTTY)
    }
}
