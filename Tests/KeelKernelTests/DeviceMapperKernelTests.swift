// Device-mapper backend against the real kernel (VM only): a multipath map over 4 scsi_debug paths.
import Testing
import Foundation
import KeelCore
import KeelLinux

/// The 4 scsi_debug paths to one LUN, found through sysfs (no udevd needed).
struct ScsiDebugPaths: Sendable {
    struct Path: Sendable {
        var disk: String
        var host: Int
        var device: DevNo
    }
    var paths: [Path]
    var sizeSectors: UInt64

    /// Paths on SCSI hosts whose implicit ALUA state is active/optimized (host % 3 == 0), or
    /// active/non-optimized (1), or standby (2): scsi_debug `vpd_use_hostno=0`.
    func paths(aluaState: Int) -> [Path] { paths.filter { $0.host % 3 == aluaState } }

    /// Loads the modules and waits for the 4 disks. Runs once per process.
    static let shared: Result<ScsiDebugPaths, RigError> = {
        do throws(RigError) { return .success(try setUp()) } catch { return .failure(error) }
    }()

    private static func setUp() throws(RigError) -> ScsiDebugPaths {
        // sd_mod is not loaded on its own in the VM; scsi_dh_alua must be there before the disks.
        for module in ["dm-mod", "dm-multipath", "dm-round-robin", "dm-service-time", "scsi_dh_alua", "sd_mod", "sg"] {
            try run("/sbin/modprobe", [module])
        }
        if !FileManager.default.fileExists(atPath: "/sys/module/scsi_debug") {
            try run("/sbin/modprobe", ["scsi_debug", "add_host=4", "num_tgts=1", "max_luns=1",
                                       "vpd_use_hostno=0", "dev_size_mb=64"])
        }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let found = scsiDebugDisks()
            if found.count == 4 {
                let size = UInt64(read("/sys/block/\(found[0].disk)/size")) ?? 0
                return ScsiDebugPaths(paths: found, sizeSectors: size)
            }
            usleep(100_000)
        }
        throw RigError(what: "scsi_debug disks did not appear: \(scsiDebugDisks().map(\.disk))")
    }

    private static func scsiDebugDisks() -> [Path] {
        let disks = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/block")) ?? []
        var found: [Path] = []
        for disk in disks.sorted() where disk.hasPrefix("sd") {
            guard read("/sys/block/\(disk)/device/model").hasPrefix("scsi_debug") else { continue }
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/sys/block/\(disk)")) ?? ""
            guard let hostPart = target.split(separator: "/").first(where: { $0.hasPrefix("host") }),
                  let host = Int(hostPart.dropFirst(4)) else { continue }
            let numbers = read("/sys/block/\(disk)/dev").split(separator: ":").compactMap { UInt32($0) }
            guard numbers.count == 2 else { continue }
            found.append(Path(disk: disk, host: host, device: DevNo(major: numbers[0], minor: numbers[1])))
        }
        return found.sorted { $0.host < $1.host }
    }

    static func read(_ path: String) -> String {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func run(_ tool: String, _ arguments: [String]) throws(RigError) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        do { try process.run() } catch { throw RigError(what: "\(tool) \(arguments): \(error)") }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw RigError(what: "\(tool) \(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
        }
    }
}

struct RigError: Error, CustomStringConvertible {
    var what: String
    var description: String { what }
}

/// A group_by_prio-like table over the 4 paths: optimized paths together, then non-optimized,
/// then standby alone (a standby path must never share a group with active ones).
func groupByPrioParams(_ rig: ScsiDebugPaths, features: String = "0") -> String {
    let groups = [rig.paths(aluaState: 0), rig.paths(aluaState: 1), rig.paths(aluaState: 2)].filter { !$0.isEmpty }
    var words = [features, "1", "alua", "\(groups.count)", "1"]
    for group in groups {
        // service-time paths carry <repeat_count> <relative_throughput>; the kernel prints both.
        words += ["service-time", "0", "\(group.count)", "2"]
        for path in group { words += ["\(path.device)", "1", "1"] }
    }
    return words.joined(separator: " ")
}

/// Tokens of kernel text, for comparing tables that differ only in spacing.
func words(_ text: String) -> [Substring] { text.split(separator: " ") }

/// The `A`/`F` state of `device` in multipath status text.
func pathState(_ status: String, _ device: DevNo) -> Substring? {
    let w = words(status)
    guard let i = w.firstIndex(of: Substring("\(device)")), i + 1 < w.count else { return nil }
    return w[i + 1]
}

/// The 1-based next group of multipath status text (after the feature and handler words).
func nextGroup(_ status: String) -> Int? {
    let w = words(status)
    guard let features = Int(w[0]) else { return nil }
    let hwhAt = 1 + features
    guard let hwh = Int(w[hwhAt]) else { return nil }
    return Int(w[hwhAt + 1 + hwh + 1])
}

/// One test's own map: created over the rig's paths, removed when the test ends.
final class TestMap {
    let name: String
    let control: DMControl
    let rig: ScsiDebugPaths
    let params: String

    init(_ name: String) throws {
        rig = try ScsiDebugPaths.shared.get()
        control = try DMControl()
        self.name = name
        params = groupByPrioParams(rig)
        if try control.info(name: name) != nil { try control.remove(name: name) }
        try control.createMultipathMap(name: name, wwid: "keel_\(name)", lengthSectors: rig.sizeSectors, params: params)
    }

    deinit { try? control.remove(name: name) }

    func status() throws -> String { try #require(try control.status(name: name).first).params }
    func table() throws -> String { try #require(try control.table(name: name).first).params }
}

/// A device number as `st_rdev` holds it (glibc's makedev).
private func encodedDevice(_ d: DevNo) -> UInt64 {
    let major = UInt64(d.major), minor = UInt64(d.minor)
    return (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12) | ((major & ~0xfff) << 32)
}

private func text(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }

@Suite("DeviceMapper on the real kernel", .serialized,
       .enabled(if: ProcessInfo.processInfo.environment["KEEL_KERNEL_TESTS"] == "1"))
struct DeviceMapperKernelTests {
    @Test func createdMapIsListedWithUUIDDeviceAndEventNumber() throws {
        let map = try TestMap("keel-list")
        let listed = try #require(try map.control.listMultipathMaps().first { $0.name == "keel-list" })
        #expect(listed.uuid == "mpath-keel_keel-list")
        #expect(listed.device.major != 0)
        let state = try #require(try map.control.info(name: "keel-list"))
        #expect(state.device == listed.device)
        #expect(state.hasLiveTable && !state.suspended)
        #expect(state.eventNumber == listed.eventNumber)
        #expect(try map.control.map(uuid: "mpath-keel_keel-list") == listed, "looked up by uuid: the same map")
        #expect(try map.control.map(uuid: "mpath-keel_no-such-map") == nil)
    }

    @Test("a batch of maps created from several threads: each live with its table and /dev/mapper node; a refused table is named and leaves no device")
    func batchCreateOverThreads() throws {
        let rig = try ScsiDebugPaths.shared.get()
        let control = try DMControl()
        let params = groupByPrioParams(rig)
        var jobs = (0..<12).map { DMCreateJob(name: "keel-batch\($0)", uuid: "mpath-keel_batch\($0)", lengthSectors: rig.sizeSectors, params: params) }
        // A table the kernel refuses (a path selector it does not have).
        jobs[5].params = "0 0 1 1 no-such-selector 0 1 1 \(rig.paths[0].device) 1"
        defer { for job in jobs { try? control.remove(name: job.name) } }
        let errors = DMCreate.createAll(jobs, threads: 2)
        #expect(errors.count == jobs.count)
        for (i, job) in jobs.enumerated() {
            if i == 5 {
                let error = try #require(errors[i], "the refused table is an error")
                #expect(error.map == job.name && error.detail.contains("table load"), "\(error)")
                #expect(try control.info(name: job.name) == nil, "the half-made device is removed again")
                continue
            }
            #expect(errors[i] == nil, "\(job.name): \(String(describing: errors[i]))")
            let state = try #require(try control.info(name: job.name))
            #expect(state.hasLiveTable && !state.suspended)
            #expect(try control.map(uuid: job.uuid)?.name == job.name)
            let target = try #require(try control.table(name: job.name).first)
            #expect(target.targetType == "multipath" && target.lengthSectors == rig.sizeSectors)
            #expect(try control.multipathStatus(name: job.name).groups.flatMap(\.paths).count == rig.paths.count)
            var node = stat()
            #expect(stat("/dev/mapper/" + job.name, &node) == 0 && (node.st_mode & S_IFMT) == S_IFBLK
                    && node.st_rdev == encodedDevice(state.device), "/dev/mapper/\(job.name)")
        }
    }

    @Test func tableReadsBackAsLoaded() throws {
        let map = try TestMap("keel-table")
        let target = try #require(try map.control.table(name: "keel-table").first)
        #expect(target.targetType == "multipath")
        #expect(target.startSector == 0)
        #expect(target.lengthSectors == map.rig.sizeSectors)
        #expect(words(target.params) == words(map.params))
    }

    @Test func tableAndStatusParseWithTheCodecs() throws {
        let map = try TestMap("keel-parse")
        let table = try map.control.multipathTable(name: map.name)
        let loaded = try MultipathTable.parse(map.params)
        #expect(table == loaded)
        #expect(table.hardwareHandler == ["alua"])
        #expect(table.groups.count == 3)
        #expect(table.groups[2].paths.map(\.device) == map.rig.paths(aluaState: 2).map(\.device))
        let status = try map.control.multipathStatus(name: map.name)
        #expect(status.groups.count == 3)
        #expect(status.groups.flatMap(\.paths).allSatisfy { $0.active })
        // queueingIO may be 1 here: a fresh map with the alua handler queues until its first pg_init.
        #expect(status.nextGroup == 1)
    }

    @Test func recoveryStatusReadScansWithoutAllocation() throws {
        let map = try TestMap("keel-scan")
        var messenger = try DMMessenger(mapsMax: 1)
        try messenger.register(map: MapHandle(0), name: map.name)
        let victim = map.rig.paths[0].device
        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .failPath, device: victim)) == 0)
        var seen = PathStates()
        try MultipathStatusScanner.scan(try messenger.readStatus(map: MapHandle(0)).get(), into: &seen)
        #expect(seen.failed == [victim])
        #expect(seen.active.count == 3)
    }

    @Test func statusShowsEveryPathActive() throws {
        let map = try TestMap("keel-status")
        let status = try map.status()
        for path in map.rig.paths {
            #expect(pathState(status, path.device) == "A", "\(path.disk) in \(status)")
        }
        #expect(nextGroup(status) == 1)
    }

    @Test func failAndReinstatePathShowInStatus() throws {
        let map = try TestMap("keel-fail")
        var messenger = try DMMessenger(mapsMax: 4)
        try messenger.register(map: MapHandle(0), name: "keel-fail")
        let victim = try #require(map.rig.paths(aluaState: 1).first).device

        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .failPath, device: victim)) == 0)
        #expect(pathState(text(try messenger.readStatus(map: MapHandle(0)).get()), victim) == "F")
        #expect(pathState(try map.status(), victim) == "F")

        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .reinstatePath, device: victim)) == 0)
        #expect(pathState(text(try messenger.readStatus(map: MapHandle(0)).get()), victim) == "A")
    }

    @Test func switchGroupChangesTheNextGroup() throws {
        let map = try TestMap("keel-switch")
        var messenger = try DMMessenger(mapsMax: 1)
        try messenger.register(map: MapHandle(0), name: "keel-switch")
        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .switchGroup, group: 2)) == 0)
        #expect(nextGroup(text(try messenger.readStatus(map: MapHandle(0)).get())) == 2)
        #expect(nextGroup(try map.status()) == 2)
    }

    @Test func queueingMessagesShowInTheTable() throws {
        let map = try TestMap("keel-queue")
        var messenger = try DMMessenger(mapsMax: 1)
        try messenger.register(map: MapHandle(0), uuid: "mpath-keel_keel-queue")
        #expect(!words(text(try messenger.readTable(map: MapHandle(0)).get())).contains("queue_if_no_path"))
        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .queueIfNoPath)) == 0)
        #expect(words(text(try messenger.readTable(map: MapHandle(0)).get())).contains("queue_if_no_path"))
        #expect(words(try map.table()).contains("queue_if_no_path"))
        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .failIfNoPath)) == 0)
        #expect(!words(text(try messenger.readTable(map: MapHandle(0)).get())).contains("queue_if_no_path"))
    }

    @Test func disableAndEnableGroupShowInStatus() throws {
        let map = try TestMap("keel-disable")
        var messenger = try DMMessenger(mapsMax: 1)
        try messenger.register(map: MapHandle(0), name: "keel-disable")
        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .disableGroup, group: 2)) == 0)
        #expect(groupStates(try map.status()).dropFirst().first == "D")
        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .enableGroup, group: 2)) == 0)
        #expect(groupStates(try map.status()).dropFirst().first == "E")
    }

    @Test func badReloadFailsAndLeavesTheLiveTable() throws {
        let map = try TestMap("keel-badreload")
        let before = try map.table()
        let error = try #require(throws: DMError.self) {
            try map.control.reload(name: "keel-badreload", lengthSectors: map.rig.sizeSectors,
                                   params: "0 0 1 1 no-such-selector 0 1 1 8:0 1")
        }
        #expect(error.operation == .reload)
        #expect(error.errno == EINVAL)
        #expect(error.description.hasPrefix("keel-badreload: reload: Invalid argument (errno 22): "))
        #expect(!error.detail.isEmpty)
        print("bad reload error: \(error)")
        #expect(try map.table() == before)
        let state = try #require(try map.control.info(name: "keel-badreload"))
        #expect(!state.suspended && !state.hasInactiveTable)
    }

    @Test func goodReloadSwapsTheTable() throws {
        let map = try TestMap("keel-reload")
        let optimized = map.rig.paths(aluaState: 0)
        var params = ["1", "queue_if_no_path", "1", "alua", "1", "1", "round-robin", "0", "\(optimized.count)", "1"]
        for path in optimized { params += ["\(path.device)", "1"] }
        try map.control.reload(name: "keel-reload", lengthSectors: map.rig.sizeSectors, params: params.joined(separator: " "))
        #expect(words(try map.table()) == params.map { Substring($0) })
        let state = try #require(try map.control.info(name: "keel-reload"))
        #expect(!state.suspended)
    }

    @Test func suspendedMapAnswersEBUSY() throws {
        let map = try TestMap("keel-suspend")
        var messenger = try DMMessenger(mapsMax: 1)
        try messenger.register(map: MapHandle(0), name: "keel-suspend")
        try map.control.suspend(name: "keel-suspend")
        #expect(try map.control.info(name: "keel-suspend")?.suspended == true)
        let victim = map.rig.paths[0].device
        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .failPath, device: victim)) == EBUSY)
        try map.control.resume(name: "keel-suspend")
        #expect(try map.control.info(name: "keel-suspend")?.suspended == false)
        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .failPath, device: victim)) == 0)
    }

    @Test func unknownMapAnswersENXIO() throws {
        _ = try ScsiDebugPaths.shared.get()
        var messenger = try DMMessenger(mapsMax: 1)
        let error = try #require(throws: DMError.self) { try messenger.register(map: MapHandle(0), name: "keel-nosuchmap") }
        #expect(error.errno == ENXIO)
        try messenger.register(map: MapHandle(0), name: "keel-nosuchmap", checkStatusFits: false)
        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .queueIfNoPath)) == ENXIO)
    }

    @Test func badPathArgumentAnswersEINVAL() throws {
        let map = try TestMap("keel-badarg")
        var messenger = try DMMessenger(mapsMax: 1)
        try messenger.register(map: MapHandle(0), name: map.name)
        // A device that is not a path of the map.
        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .failPath, device: DevNo(major: 7, minor: 200))) == EINVAL)
        // A group the map does not have.
        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .switchGroup, group: 9)) == EINVAL)
    }

    @Test func statusTooLargeForTheBufferIsRefusedAtRegister() throws {
        let map = try TestMap("keel-small")
        let messenger = try DMMessenger(mapsMax: 1, statusBytesMax: 16)
        let error = try #require(throws: DMError.self) { try messenger.register(map: MapHandle(0), name: map.name) }
        #expect(error.errno == ENOSPC)
        #expect(!messenger.isRegistered(MapHandle(0)))
    }

    @Test func pollerReportsTheMapAfterFailPath() throws {
        let map = try TestMap("keel-event")
        let poller = try DMEventPoller()
        var messenger = try DMMessenger(mapsMax: 1)
        try messenger.register(map: MapHandle(0), name: map.name)
        let before = try #require(try map.control.info(name: map.name)).eventNumber
        #expect(messenger.send(DMMessage(map: MapHandle(0), kind: .failPath, device: map.rig.paths[0].device)) == 0)

        var seen: MapEventChange? = nil
        let deadline = Date().addingTimeInterval(10)
        while seen == nil, Date() < deadline {
            seen = try poller.waitForEvents(timeoutMs: 2000).first { $0.name == map.name && $0.kind == .changed }
        }
        let change = try #require(seen)
        #expect(change.eventNumber > before)
        #expect(change.uuid == "mpath-keel_keel-event")
    }

    @Test func pollerTimesOutQuietlyWithoutEvents() throws {
        _ = try TestMap("keel-quiet")
        let poller = try DMEventPoller()
        let start = Date()
        #expect(try poller.waitForEvents(timeoutMs: 300).isEmpty)
        #expect(Date().timeIntervalSince(start) >= 0.25)
    }

    @Test func pollerReportsCreatedAndRemovedMaps() throws {
        let poller = try DMEventPoller()
        var map: TestMap? = try TestMap("keel-gone")
        var kinds: [MapEventChange.Kind] = []
        let deadline = Date().addingTimeInterval(10)
        while !kinds.contains(.added), Date() < deadline {
            kinds += try poller.waitForEvents(timeoutMs: 2000).filter { $0.name == "keel-gone" }.map(\.kind)
        }
        #expect(kinds.contains(.added))
        map = nil  // removes it
        #expect(map == nil)
        while !kinds.contains(.removed), Date() < deadline {
            kinds += try poller.waitForEvents(timeoutMs: 2000).filter { $0.name == "keel-gone" }.map(\.kind)
        }
        #expect(kinds.contains(.removed))
    }

    @Test func removedMapIsGone() throws {
        let map = try TestMap("keel-remove")
        try map.control.remove(name: "keel-remove")
        #expect(try map.control.info(name: "keel-remove") == nil)
        #expect(try !map.control.listMultipathMaps().contains { $0.name == "keel-remove" })
        let error = try #require(throws: DMError.self) { try map.control.remove(name: "keel-remove") }
        #expect(error.errno == ENXIO)
        #expect(error.description.hasPrefix("keel-remove: remove: "))
    }
}

/// The `A`/`E`/`D` state of each group in multipath status text.
func groupStates(_ status: String) -> [Substring] {
    let w = words(status)
    var i = 0
    let features = Int(w[i])!; i += 1 + features
    let hwh = Int(w[i])!; i += 1 + hwh
    let groups = Int(w[i])!; i += 2
    var states: [Substring] = []
    for _ in 0..<groups {
        states.append(w[i]); i += 1
        let selectorArgs = Int(w[i])!; i += 1 + selectorArgs
        let paths = Int(w[i])!, pathArgs = Int(w[i + 1])!; i += 2
        i += paths * (3 + pathArgs)
    }
    return states
}

/// Collects the path states the status scanner reports.
struct PathStates: MultipathStatusVisitor {
    var active: [DevNo] = []
    var failed: [DevNo] = []
    mutating func queueing(_ on: Bool) {}
    mutating func group(_ index: Int, state: MultipathStatus.GroupState) {}
    mutating func path(group: Int, device: DevNo, active: Bool, failCount: Int) {
        if active { self.active.append(device) } else { failed.append(device) }
    }
}
