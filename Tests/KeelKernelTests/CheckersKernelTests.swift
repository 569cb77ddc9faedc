// Real-kernel checker tests (VM, KEEL_KERNEL_TESTS=1): TUR and directio against scsi_debug paths,
// offline/running fault injection, and the alua prioritizer on scsi_debug's implicit ALUA states.
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Testing

/// One scsi_debug disk: its block name and SCSI host number.
private struct ScsiDebugDisk: CustomStringConvertible {
    var name: String
    var host: Int
    var hctl: String
    var devicePath: String { "/dev/" + name }
    /// The SCSI generic node the TUR checker writes its requests to.
    var genericPath: String {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/block/\(name)/device/scsi_generic")) ?? []
        return "/dev/" + (entries.first ?? "missing-sg-node")
    }
    /// scsi_debug with vpd_use_hostno=0: host h reports ALUA port group state h % 3.
    var isStandby: Bool { host % 3 == 2 }
    var description: String { "\(name) (host\(host))" }
}


private func shell(_ command: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/sh")
    process.arguments = ["-c", command]
    try process.run()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw CocoaError(.executableLoad, userInfo: ["command": command]) }
}

/// Loads scsi_debug with 4 hosts, runs `body` with its disks, and unloads it again (every test
/// stands alone; `body` must have closed its checkers' descriptors when it returns).
private func withScsiDebug(_ body: ([ScsiDebugDisk]) throws -> Void) throws {
    try shell("modprobe sd_mod && modprobe sg && modprobe scsi_dh_alua && modprobe scsi_debug add_host=4 num_tgts=1 max_luns=1 vpd_use_hostno=0 dev_size_mb=64")
    defer {
        for _ in 0..<50 where (try? shell("modprobe -r scsi_debug 2>/dev/null")) == nil { usleep(100_000) }
    }
    try body(try scsiDebugDisks())
}

/// The scsi_debug disks, waiting for all 4 to appear.
private func scsiDebugDisks() throws -> [ScsiDebugDisk] {
    let deadline = kernelTestNowNs() + 60 * Time.nsPerSecond
    while true {
        var disks: [ScsiDebugDisk] = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/block")) ?? [] where name.hasPrefix("sd") {
            let model = (try? String(contentsOfFile: "/sys/block/\(name)/device/model", encoding: .utf8)) ?? ""
            guard model.contains("scsi_debug"), FileManager.default.fileExists(atPath: "/dev/\(name)") else { continue }
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/sys/block/\(name)/device")) ?? ""
            let hctl = (target as NSString).lastPathComponent
            guard let host = Int(hctl.split(separator: ":").first ?? "") else { continue }
            disks.append(ScsiDebugDisk(name: name, host: host, hctl: hctl))
        }
        // The ALUA handler learns each port's state asynchronously after the disk appears (its
        // RTPG runs in a workqueue): wait until every port reports the state its host number
        // gives, or a busy machine reads "active/optimized" on the standby port.
        let settled = disks.allSatisfy { disk in
            let state = ((try? String(contentsOfFile: "/sys/block/\(disk.name)/device/access_state", encoding: .utf8)) ?? "")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            return state == ["active/optimized", "active/non-optimized", "standby"][disk.host % 3]
        }
        if disks.count >= 4 && settled { return disks.sorted { $0.host < $1.host } }
        if kernelTestNowNs() > deadline { throw CocoaError(.fileNoSuchFile) }
        usleep(100_000)
    }
}

/// Writes the SCSI device state; the kernel wants the trailing newline `echo` adds.
private func ms(_ ns: Nanoseconds) -> String { String(format: "%.1f ms", Double(ns) / 1e6) }

private func setState(_ disk: ScsiDebugDisk, _ state: String) throws {
    try (state + "\n").write(toFile: "/sys/block/\(disk.name)/device/state", atomically: false, encoding: .utf8)
}

/// Keeps completions (test sink).
private struct KernelSink: CheckCompletionSink {
    var completions: [CheckCompletion] = []
    mutating func checkCompleted(_ completion: CheckCompletion) { completions.append(completion) }
}

/// Submits one check per path and returns each path's result (index = path), `.timeout` when none came.
private func checkAll<C: PathCheckBackend>(_ checker: inout C, paths: Int, token: UInt32) -> [CheckResult] {
    let now = kernelTestNowNs()
    var results = [CheckResult](repeating: .timeout, count: paths)
    var submitted = 0
    for p in 0..<paths where checker.submit(CheckRequest(path: PathHandle(index: p), device: DevNo(major: 8, minor: UInt32(p * 16)),
                                                              token: token, timeoutNs: 20 * Time.nsPerSecond), nowNs: now) {
        submitted += 1
    }
    var sink = KernelSink()
    let deadline = kernelTestNowNs() + 30 * Time.nsPerSecond
    while sink.completions.count < submitted && kernelTestNowNs() < deadline {
        checker.reap(nowNs: kernelTestNowNs(), into: &sink)
        usleep(1_000)
    }
    for completion in sink.completions { results[completion.path.index] = completion.result }
    return results
}

@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["KEEL_KERNEL_TESTS"] == "1"))
struct CheckersKernelTests {
    // scsi_debug answers TEST UNIT READY with GOOD on every port, the standby one included: it
    // emulates ALUA states only in REPORT TARGET PORT GROUPS, and the kernel's ALUA handler lets
    // SG_IO pass-through reach it. So no real-kernel path here yields NOT READY 04/0b; the ghost
    // mapping is covered by the decision table (CheckersTURSenseTests).
    @Test func turIsUpOnEveryPortIncludingStandby() throws {
        try withScsiDebug { disks in
            var checker = try TURChecker(TURConfiguration(pathsMax: disks.count))
            defer { checker.close() }
            for (p, disk) in disks.enumerated() { try checker.register(path: PathHandle(index: p), devicePath: disk.genericPath) }
            let results = checkAll(&checker, paths: disks.count, token: 1)
            for (p, disk) in disks.enumerated() {
                print("tur \(disk): \(results[p]) (\(checker.lastReason(of: PathHandle(index: p))))")
                #expect(results[p] == .up, "\(disk)")
            }
        }
    }

    /// The other SCSI checks on real sg nodes. readsector0 reads block 0 and is up on every port,
    /// the standby one included: the ALUA handler rejects block-layer reads there (directio is
    /// down), but an sg pass-through read reaches scsi_debug, which serves it in any port state.
    /// hp_sw (INQUIRY 0x80, then TUR) is up on every port. scsi_debug has no vendor
    /// pages 0xC9 or 0xC0: it refuses the INQUIRY (ILLEGAL REQUEST), so rdac and emc_clariion are
    /// down with that reason, which shows the command went to the device and back.
    @Test func otherSCSIChecksOnScsiDebug() throws {
        try withScsiDebug { disks in
            for check in [SCSICheck.readsector0, .hpSW, .rdac, .emcClariion] {
                var checker = try TURChecker(TURConfiguration(pathsMax: disks.count))
                defer { checker.close() }
                for (p, disk) in disks.enumerated() {
                    try checker.register(path: PathHandle(index: p), devicePath: disk.genericPath, check: check)
                }
                let results = checkAll(&checker, paths: disks.count, token: 1)
                for (p, disk) in disks.enumerated() {
                    let reason = checker.lastReason(of: PathHandle(index: p))
                    print("\(check) \(disk): \(results[p]) (\(reason))")
                    switch check {
                    case .readsector0, .hpSW: #expect(results[p] == .up, "\(disk): \(reason)")
                    default:
                        #expect(results[p] == .down, "\(disk): \(reason)")
                        #expect(reason.kind == .inquiryFailed && reason.senseKey == 0x5, "\(disk): \(reason)")
                    }
                }
            }
            // Offline and back, through readsector0 and hp_sw.
            let disk = try #require(disks.first { $0.host % 3 == 0 })
            var read = try TURChecker(TURConfiguration(pathsMax: 1))
            defer { read.close() }
            var hp = try TURChecker(TURConfiguration(pathsMax: 1))
            defer { hp.close() }
            try read.register(path: PathHandle(index: 0), devicePath: disk.genericPath, check: .readsector0)
            try hp.register(path: PathHandle(index: 0), devicePath: disk.genericPath, check: .hpSW)
            try setState(disk, "offline")
            defer { try? setState(disk, "running") }
            #expect(checkAll(&read, paths: 1, token: 2) == [.down])
            #expect(checkAll(&hp, paths: 1, token: 2) == [.down])
            try setState(disk, "running")
            #expect(checkAll(&read, paths: 1, token: 3) == [.up])
            #expect(checkAll(&hp, paths: 1, token: 3) == [.up])
        }
    }

    /// The prioritizers that ask the array, on scsi_debug: hp_sw's TUR is answered (4), the READs
    /// of path_latency are timed (a priority on base 10's scale), and the vendor pages and the
    /// NetApp command scsi_debug does not have are refused, which rdac, ontap and datacore read as
    /// 0 and emc and hds as no priority. Then every device stops answering (scsi_debug's
    /// `every_nth 1` with `opts 4`: commands are dropped): the batch returns after its wait,
    /// each path's command is its orphan, and once the kernel gives them back (sg's timeout) the
    /// paths are asked again.
    @Test func prioritizersThatAskTheArrayOnScsiDebug() throws {
        try withScsiDebug { disks in
            let runner = SGQueryRunner()
            func subjects(_ prioritizer: SCSIPrioritizer, timeoutMs: UInt32 = 10_000) -> [SCSIPriorities.Subject] {
                disks.map { SCSIPriorities.Subject(key: $0.name, genericPath: $0.genericPath, prioritizer: prioritizer, timeoutMs: timeoutMs) }
            }
            let expected: [(SCSIPrioritizer, Int?)] = [
                (.hpSW, 4), (.rdac, 0), (.ontap, 0), (SCSIPrioritizer(.datacore, args: "preferredsds=NORTH")!, 0), (.emc, nil), (.hds, nil),
            ]
            for (prioritizer, want) in expected {
                let results = SCSIPriorities.evaluate(subjects(prioritizer), runner: runner, waitNs: 20 * Time.nsPerSecond)
                for disk in disks {
                    #expect(results[disk.name] == .some(want), "\(prioritizer) \(disk): \(String(describing: results[disk.name]))")
                }
            }
            let latency = SCSIPrioritizer(.pathLatency, args: "io_num=20 base_num=10")!
            let started = kernelTestNowNs()
            let timed = SCSIPriorities.evaluate(subjects(latency), runner: runner, waitNs: 20 * Time.nsPerSecond)
            print("path_latency (20 reads of block 0 per path, \(disks.count) paths at once) took \(ms(kernelTestNowNs() - started)): \(timed)")
            for disk in disks {
                let priority = timed[disk.name] ?? nil
                #expect(priority != nil && (1...8).contains(priority!), "\(disk): \(String(describing: priority))")
            }
            #expect(runner.timedOut == 0)

            // Every device drops its commands.
            let parameters = "/sys/bus/pseudo/drivers/scsi_debug/"
            try "1\n".write(toFile: parameters + "every_nth", atomically: false, encoding: .utf8)
            try "4\n".write(toFile: parameters + "opts", atomically: false, encoding: .utf8)
            let hungAt = kernelTestNowNs()
            let hung = SCSIPriorities.evaluate(subjects(.rdac, timeoutMs: 3_000), runner: runner, waitNs: 500_000_000)
            let waited = kernelTestNowNs() - hungAt
            try "0\n".write(toFile: parameters + "opts", atomically: false, encoding: .utf8)
            try "0\n".write(toFile: parameters + "every_nth", atomically: false, encoding: .utf8)
            print("rdac with every device hung: returned after \(ms(waited)), orphans \(runner.orphanKeys.sorted())")
            #expect(hung.isEmpty, "\(hung)")
            #expect(runner.orphanKeys == Set(disks.map(\.name)))
            #expect(waited < 10 * Time.nsPerSecond, "the batch waited \(ms(waited)) for hung devices")
            // Orphans are not asked again: an evaluation now sends nothing and answers nothing.
            #expect(SCSIPriorities.evaluate(subjects(.rdac), runner: runner, waitNs: 100_000_000).isEmpty)
            let giveUp = kernelTestNowNs() + 60 * Time.nsPerSecond
            while !runner.orphanKeys.isEmpty && kernelTestNowNs() < giveUp { usleep(100_000) }
            #expect(runner.orphanKeys.isEmpty, "orphans still out: \(runner.orphanKeys)")
            print("the kernel gave the hung commands back after \(ms(kernelTestNowNs() - hungAt)) (sg timeout 3 s)")
            let again = SCSIPriorities.evaluate(subjects(.rdac), runner: runner, waitNs: 20 * Time.nsPerSecond)
            #expect(again.count == disks.count, "\(again)")
        }
    }

    @Test func directIOIsUpOnActivePaths() throws {
        try withScsiDebug { disks in
            var checker = try DirectIOChecker(DirectIOConfiguration(pathsMax: disks.count))
            defer { checker.close() }
            #expect(checker.mode == .aio(contexts: 1))
            for (p, disk) in disks.enumerated() { try checker.register(path: PathHandle(index: p), devicePath: disk.devicePath) }
            let results = checkAll(&checker, paths: disks.count, token: 1)
            for (p, disk) in disks.enumerated() {
                print("directio \(disk): \(results[p])")
                // The kernel's ALUA handler rejects reads to a standby port.
                #expect(results[p] == (disk.isStandby ? .down : .up), "\(disk)")
            }
        }
    }

    @Test func offlinePathIsDownAndUpAgainWhenRunning() throws {
        try withScsiDebug { disks in
            let disk = try #require(disks.first { $0.host % 3 == 0 })
            var tur = try TURChecker(TURConfiguration(pathsMax: 1))
            defer { tur.close() }
            var directIO = try DirectIOChecker(DirectIOConfiguration(pathsMax: 1))
            defer { directIO.close() }
            try tur.register(path: PathHandle(index: 0), devicePath: disk.genericPath)
            try directIO.register(path: PathHandle(index: 0), devicePath: disk.devicePath)
            #expect(checkAll(&tur, paths: 1, token: 1) == [.up])
            #expect(checkAll(&directIO, paths: 1, token: 1) == [.up])

            try setState(disk, "offline")
            defer { try? setState(disk, "running") }
            #expect(checkAll(&tur, paths: 1, token: 2) == [.down])
            print("tur \(disk) offline: \(tur.lastReason(of: PathHandle(index: 0)))")
            #expect(checkAll(&directIO, paths: 1, token: 2) == [.down])

            try setState(disk, "running")
            #expect(checkAll(&tur, paths: 1, token: 3) == [.up])
            #expect(checkAll(&directIO, paths: 1, token: 3) == [.up])
        }
    }

    @Test func aluaPrioritizerGives50And10And1ByPortState() throws {
        try withScsiDebug { disks in
            let alua = ALUAPrioritizer()
            for disk in disks {
                let expected = [50, 10, 1][disk.host % 3]
                let priority = alua.priority(hctl: disk.hctl)
                print("alua \(disk): \(priority.map(String.init) ?? "undefined")")
                #expect(priority == expected, "\(disk)")
                #expect(alua.priority(blockDevice: disk.name) == expected)
            }
        }
    }

    @Test func checkerTimeoutComesFromTheSCSIDevice() throws {
        try withScsiDebug { disks in
            // The sd default command timeout is 30 s; set one to 17 s and read it back.
            let disk = disks[0]
            let file = "/sys/block/\(disk.name)/device/timeout"
            let original = try String(contentsOfFile: file, encoding: .utf8)
            try "17".write(toFile: file, atomically: false, encoding: .utf8)
            defer { try? original.write(toFile: file, atomically: false, encoding: .utf8) }
            #expect(CheckerTimeout.select(configuredSeconds: nil, blockDevice: disk.name) == 17 * Time.nsPerSecond)
            #expect(CheckerTimeout.select(configuredSeconds: 5, blockDevice: disk.name) == 5 * Time.nsPerSecond)
        }
    }
}
