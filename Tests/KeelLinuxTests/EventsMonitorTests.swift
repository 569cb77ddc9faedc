// The libudev monitor against this host's real kernel uevents (loop devices), and its overflow flag.
import Foundation
import Testing
import KeelCore
@testable import KeelLinux

/// Runs a command and returns its trimmed standard output.
@discardableResult
func runCommand(_ path: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "\(path) \(arguments) exited \(process.terminationStatus)"])
    }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Drains `monitor` until `done` holds for the collected records or `timeoutMs` passes.
func collect(_ monitor: UeventMonitor, timeoutMs: Int, until done: ([UeventRecord]) -> Bool) -> UeventBatch {
    var batch = UeventBatch()
    let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
    while !done(batch.records) && Date() < deadline {
        if monitor.waitReadable(timeoutMs: 100) { monitor.drain(into: &batch) }
    }
    return batch
}

let hostHasLoopDevices = FileManager.default.fileExists(atPath: "/sys/block/loop0") && getuid() == 0

@Suite("uevent monitor on the host kernel", .serialized, .enabled(if: hostHasLoopDevices))
struct EventsMonitorTests {
    @Test func sourceIsUdevOnlyWhenUdevdControlSocketExists() throws {
        let dir = NSTemporaryDirectory() + "keel-run-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/udev", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(UeventSource.detect(runRoot: dir) == .kernel)
        _ = FileManager.default.createFile(atPath: dir + "/udev/control", contents: nil)
        #expect(UeventSource.detect(runRoot: dir) == .udev)
    }

    @Test func monitorFileDescriptorIsNonBlocking() throws {
        let monitor = try UeventMonitor(source: .kernel)
        #expect(fcntl(monitor.fileDescriptor, F_GETFL) & O_NONBLOCK != 0)
        var batch = UeventBatch()
        // Nothing queued for this brand-new socket, or only unrelated events: drain returns at once.
        let start = Date()
        monitor.drain(into: &batch)
        #expect(Date().timeIntervalSince(start) < 1)
    }

    @Test func loopDeviceAttachAndDetachArriveAsChangeEvents() throws {
        let monitor = try UeventMonitor(source: .kernel)
        let file = NSTemporaryDirectory() + "keel-loop-\(UUID().uuidString).img"
        _ = FileManager.default.createFile(atPath: file, contents: Data(count: 1 << 20))
        defer { try? FileManager.default.removeItem(atPath: file) }

        let device = try runCommand("/usr/sbin/losetup", ["-f", "--show", file])
        var detached = false
        defer { if !detached { _ = try? runCommand("/usr/sbin/losetup", ["-d", device]) } }
        let name = String(device.split(separator: "/").last!)
        let attach = collect(monitor, timeoutMs: 5000) { $0.contains { $0.kernelName.description == name } }
        let attachEvent = try #require(attach.records.first { $0.kernelName.description == name })
        #expect(attachEvent.action == .change || attachEvent.action == .add)
        #expect(attachEvent.device.major == 7)
        #expect(attachEvent.sequence > 0)
        #expect(!attach.resyncNeeded)

        try runCommand("/usr/sbin/losetup", ["-d", device])
        detached = true
        let detach = collect(monitor, timeoutMs: 5000) { $0.contains { $0.kernelName.description == name && $0.sequence > attachEvent.sequence } }
        #expect(detach.records.contains { $0.kernelName.description == name && $0.action == .change })
    }

    /// Writes "change" into a loop device's `uevent` file `count` times: each is one kernel uevent.
    func synthesizeChangeEvents(count: Int) throws -> String {
        let name = "loop7"
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "/sys/block/\(name)/uevent"))
        defer { try? handle.close() }
        for _ in 0..<count { try handle.write(contentsOf: Data("change".utf8)) }
        return name
    }

    @Test func overflowOfATinyReceiveBufferSetsResyncNeeded() throws {
        let monitor = try UeventMonitor(source: .kernel, receiveBufferBytes: 1)
        let name = try synthesizeChangeEvents(count: 300)
        var batch = UeventBatch()
        while monitor.waitReadable(timeoutMs: 200) { monitor.drain(into: &batch) }
        #expect(batch.resyncNeeded)
        #expect(monitor.overflowCount >= 1)
        let seen = batch.records.filter { $0.kernelName.description == name }.count
        #expect(seen < 300)
        #expect(UeventMerge.merge(batch).resyncNeeded)
    }

    @Test func largeReceiveBufferTakesTheSameBurstWithoutLoss() throws {
        let monitor = try UeventMonitor(source: .kernel)
        let name = try synthesizeChangeEvents(count: 300)
        let batch = collect(monitor, timeoutMs: 5000) { $0.filter { $0.kernelName.description == name }.count >= 300 }
        #expect(!batch.resyncNeeded)
        #expect(batch.records.filter { $0.kernelName.description == name }.count == 300)
        let sequences = batch.records.map { $0.sequence }
        #expect(sequences == sequences.sorted())
    }
}
