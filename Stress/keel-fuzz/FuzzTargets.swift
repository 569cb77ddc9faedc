// The parsers of outside input, each as a fuzz target: bytes in, no crash out.
import KeelCore
import KeelLinux

/// One parser of outside input. `run` must never crash, whatever the bytes; a thrown or returned
/// error is a correct answer.
enum FuzzTarget: String, CaseIterable {
    /// multipath.conf text (tokenizer, sections, options, blacklist regexes).
    case config
    /// A POSIX extended regex compiled and matched against the rest of the input.
    case regex
    /// A uevent's properties (`KEY=VALUE` separated by NUL or newline), as libudev hands them.
    case uevent
    /// dm-multipath table params, and a whole `dmsetup table` line.
    case dmTable = "dm-table"
    /// dm-multipath status params (the String parser and the allocation-free scanner).
    case dmStatus = "dm-status"
    /// VPD pages 0x83 and 0x80 as the device returns them; the same bytes as checker and
    /// prioritizer answers (SCSI pages and sense, NVMe identify pages and the ANA log).
    case vpd
    /// Operator command lines.
    case command
    /// sysfs and udev database text: SCSI addresses, link targets, the udev `E:` lines.
    case sysfs
    /// The bindings and wwids files (`alias wwid` and `/wwid/` lines).
    case stateFiles = "state-files"

    func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .config:
            _ = Configuration.load(files: [(name: "fuzz.conf", text: String(decoding: bytes, as: UTF8.self))])
        case .regex:
            // The first line is the pattern, the rest the text it is matched against.
            let text = String(decoding: bytes, as: UTF8.self)
            let parts = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
            if let regex = try? PosixRegex(String(parts[0])) {
                _ = regex.matches(parts.count > 1 ? String(parts[1]) : "")
            }
        case .uevent:
            var properties: [String: String] = [:]
            for field in bytes.split(whereSeparator: { $0 == 0 || $0 == 10 }) {
                let text = String(decoding: field, as: UTF8.self)
                guard let equals = text.firstIndex(of: "=") else { continue }
                properties[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            _ = UeventRecord.parse { properties[$0] }
            // The same bytes as a kernel datagram read without libudev.
            _ = KernelUevent.parse(Array(bytes))
        case .dmTable:
            let text = String(decoding: bytes, as: UTF8.self)
            _ = try? MultipathTable.parse(text)
            _ = try? DMTableLine.parse(text)
            // `reset map`'s rewrite of another device's table.
            _ = DMReassign.rewrite(params: text, from: DevNo(major: 8, minor: 32), to: DevNo(major: 253, minor: 0))
        case .dmStatus:
            let text = String(decoding: bytes, as: UTF8.self)
            _ = try? MultipathStatus.parse(text)
            _ = try? DMStatusLine.parse(text)
            var visitor = FuzzStatusVisitor()
            try? MultipathStatusScanner.scan(bytes, into: &visitor)
        case .vpd:
            let page = Array(bytes)
            _ = try? VPDPage83.wwid(fromPage: page)
            _ = try? VPDPage83.designators(in: page)
            _ = VPDPage83.targetPortGroup(in: page)
            _ = VPDPage83.relativeTargetPort(in: page)
            _ = VPDPage83.targetDeviceName(in: page)
            _ = try? VPDPage80.serial(fromPage: page)
            _ = VPDPage83.wwid(fromKernelWWID: String(decoding: bytes, as: UTF8.self))
            // The same bytes as an NVMe controller's answers to the ana prioritizer: Identify
            // Controller and Namespace pages and the ANA log, with the namespace id and group
            // taken from the front.
            if let facts = NVMeANA.controllerFacts(page) { _ = NVMeANA.logLength(facts) }
            let group = NVMeANA.groupID(identifyNamespace: page) ?? UInt32(page.first ?? 0)
            if let state = NVMeANA.state(log: page, nsid: UInt32(page.count > 1 ? page[1] : 1), groupID: group) {
                _ = NVMeANA.priority(state: state)
            }
            // The same bytes as a path checker's answer: a returned page (rdac 0xC9, emc_clariion
            // 0xC0) and sense data, with status bytes taken from the front.
            page.withUnsafeBytes { raw in
                _ = SCSICheckDecode.rdac(raw)
                _ = SCSICheckDecode.emcClariion(raw, knownWWN: 1)
                let sense = TURSense.parse(raw)
                func byte(_ i: Int) -> UInt8 { i < page.count ? page[i] : 0 }
                let answer = SGAnswer(status: byte(0), hostStatus: UInt16(byte(1)), driverStatus: UInt16(byte(2)), info: UInt32(byte(3) & 1),
                                      senseKey: sense?.key ?? 0, asc: sense?.asc ?? 0, ascq: sense?.ascq ?? 0)
                for check in SCSICheck.allCases {
                    for stage: UInt8 in 0...1 { _ = SCSICheckDecode.decide(check, stage: stage, answer: answer, page: raw, knownWWN: 0) }
                }
                // And as a prioritizer's answer, to every stage it has (ontap's two pages,
                // hp_sw's resent TUR, path_latency's reads).
                let text = String(decoding: bytes, as: UTF8.self)
                for prio in MapProfile.Prioritizer.allCases {
                    guard let prioritizer = SCSIPrioritizer(prio, args: text) else { continue }
                    var evaluation = SCSIPriorityEvaluation(prioritizer)
                    var rounds = 0
                    while case .more = evaluation.take(SGReply(answer: answer, data: page, latencyNs: Nanoseconds(byte(4)) << 20)) {
                        rounds += 1
                        if rounds > 1_000 { fatalError("\(prio) never settles") }
                    }
                }
                // detect_checker's RDAC question.
                var detection = SCSIPriorityEvaluation(.rdacDetection)
                if case .more = detection.take(SGReply(answer: answer, data: page)) { fatalError("rdac detection wants more") }
                _ = SCSIPriorityEvaluation.isRDAC(page)
                _ = IETRule(arguments: text)?.priority(of: "sda", byPath: [(text, text)])
                _ = IETRule.init(arguments: "preferredip=" + text)
            }
        case .command:
            let text = String(decoding: bytes, as: UTF8.self)
            _ = ControlGrammar.parse(text)
            // The same bytes as multipathd-framed socket input, and as a show ... format string.
            var input = Array(bytes)
            while case .complete = ControlServer.request(in: &input, framing: .multipathd, bytesMax: 512) {}
            var lines = Array(bytes)
            while case .complete = ControlServer.request(in: &lines, framing: .line, bytesMax: 512) {}
            _ = MultipathdViews.paths([Self.samplePath], format: text)
            _ = MultipathdViews.maps([Self.sampleMap], format: text, raw: true)
            _ = MultipathdViews.map(Self.sampleMap.name, in: [Self.sampleMap], format: text)
            _ = MultipathdViews.path(text, in: Self.sampleMap.paths)
        case .sysfs:
            let text = String(decoding: bytes, as: UTF8.self)
            _ = SCSIAddress(parsing: text)
            _ = SysfsDiscovery.isNVMeNamespaceName(text)
            _ = SCSITransport(nvmeTransport: text)
            _ = UdevDatabase.parse(text)
            // A sysfs link's target, resolved as discovery resolves /sys/block/<name>'s.
            _ = SysfsFiles.lexicallyNormalized("/sys/block/" + text)
            // keel-path-claim's /proc readers.
            _ = PathClaim.mountPoint(of: ["8:33", "8:32"], inMountinfo: text)
            _ = PathClaim.swapSource(of: ["sdc", "sdc1"], inSwaps: text)
        case .stateFiles:
            let text = String(decoding: bytes, as: UTF8.self)
            let bindings = Bindings(text: text)
            _ = bindings.freeAlias(prefix: "mpath", taken: { $0.count % 3 == 0 })
            _ = KnownWWIDs(text: text)
            // The prkeys file, read and rewritten with one key changed, then read back.
            let keys = PRKeys(text: text)
            let wwid = keys.keys.keys.first ?? "w"
            _ = PRKeys(text: PRKeys.updating(text, wwid: wwid, to: ReservationKey(UInt64(text.utf8.count))))
            _ = PRKeys.updating(text, wwid: wwid, to: nil)
            _ = ReservationKeySource(parsing: text)
        }
    }

    static let samplePath = PathView(hcil: "0:0:0:0", dev: "sda", devT: "8:0", dmState: "active", checkerState: "ready",
                                     devState: "running", priority: 50, checker: "tur")
    static let sampleMap = MapView(name: "mpatha", wwid: "w", sysfs: "dm-0", sizeSectors: 8, features: "0", hardwareHandler: "0",
                                   queueing: "off", failback: "manual", vendor: "v", product: "p",
                                   groups: [GroupView(selector: "service-time 0", priority: 50, dmState: "active", paths: [samplePath])])
}

/// Counts what the status scanner reports (it must report without crashing, not correctly).
struct FuzzStatusVisitor: MultipathStatusVisitor {
    var reports = 0
    mutating func queueing(_ on: Bool) { reports += 1 }
    mutating func pgInitCount(_ count: Int) { reports += 1 }
    mutating func extraFeature(_ token: TextToken) { reports += 1 }
    mutating func hardwareHandlerStatus(_ token: TextToken) { reports += 1 }
    mutating func groupCount(_ count: Int, next: Int) { reports += 1 }
    mutating func group(_ index: Int, state: MultipathStatus.GroupState) { reports += 1 }
    mutating func path(group: Int, device: DevNo, active: Bool, failCount: Int) { reports += 1 }
}
