// CapacityRescanner: rescans of disks without capacity, made off the caller's thread, bounded,
// and never waited for (a FIFO stands for a device whose rescan never returns).
import Foundation
import Glibc
import KeelCore
@testable import KeelLinux
import Testing

@Suite struct CapacityRescannerTests {
    /// A sysfs tree with `block/<name>/device/rescan` as a plain file for each name.
    private func sysfs(disks: [String]) throws -> String {
        let root = try checkerTemporaryDirectory("keel-rescan")
        for name in disks {
            try FileManager.default.createDirectory(atPath: "\(root)/block/\(name)/device", withIntermediateDirectories: true)
            #expect(FileManager.default.createFile(atPath: "\(root)/block/\(name)/device/rescan", contents: nil))
        }
        return root
    }

    /// Calls `finished()` until it reports something or 10 s pass.
    private func waitFinished(_ rescanner: CapacityRescanner) -> [(kernelName: String, errno: Int32)] {
        for _ in 0..<1000 {
            let done = rescanner.finished()
            if !done.isEmpty { return done }
            usleep(10_000)
        }
        return []
    }

    @Test func aRescanWritesOneToTheDisksRescanFileAndIsReportedOnce() throws {
        let root = try sysfs(disks: ["sdq"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let rescanner = CapacityRescanner(sysfsRoot: root)
        #expect(rescanner.request("sdq", nowNs: 0))
        let done = waitFinished(rescanner)
        #expect(done.map(\.kernelName) == ["sdq"] && done.map(\.errno) == [0])
        #expect(try String(contentsOfFile: "\(root)/block/sdq/device/rescan", encoding: .utf8) == "1\n")
        #expect(rescanner.inFlight == 0 && rescanner.finished().isEmpty, "reported once, its thread joined")
    }

    @Test func aDiskIsRescannedAtMostOncePerInterval() throws {
        let root = try sysfs(disks: ["sdq"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let rescanner = CapacityRescanner(sysfsRoot: root)
        #expect(rescanner.request("sdq", nowNs: 1_000))
        _ = waitFinished(rescanner)
        #expect(!rescanner.request("sdq", nowNs: 1_000 + CapacityRescanner.intervalNs - 1))
        #expect(rescanner.request("sdq", nowNs: 1_000 + CapacityRescanner.intervalNs))
        _ = waitFinished(rescanner)
        rescanner.forget(allBut: [])
        #expect(rescanner.request("sdq", nowNs: 1_000 + CapacityRescanner.intervalNs + 1), "a disk that went and came back starts afresh")
        _ = waitFinished(rescanner)
    }

    @Test func aFailedWriteIsReportedWithItsErrno() throws {
        let root = try sysfs(disks: [])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let rescanner = CapacityRescanner(sysfsRoot: root)
        #expect(rescanner.request("sdz", nowNs: 0))
        let done = waitFinished(rescanner)
        #expect(done.map(\.kernelName) == ["sdz"] && done.map(\.errno) == [ENOENT])
    }

    @Test func namesThatWouldLeaveTheBlockDirectoryAreRefused() throws {
        let root = try sysfs(disks: [])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let rescanner = CapacityRescanner(sysfsRoot: root)
        for name in ["", ".", "..", "../sdq", "sdq/../../x"] {
            #expect(!rescanner.request(name, nowNs: 0), "\(name)")
        }
        #expect(rescanner.inFlight == 0)
    }

    @Test("rescans that never return hold their slots, not the caller: the others wait for a free slot")
    func rescansThatNeverReturnDoNotHoldTheCaller() throws {
        let hung = (0..<CapacityRescanner.maxInFlight).map { "sdh\($0)" }
        let root = try sysfs(disks: ["sdq"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        for name in hung {
            try FileManager.default.createDirectory(atPath: "\(root)/block/\(name)/device", withIntermediateDirectories: true)
            // Opening a FIFO for writing waits for a reader: the rescan blocks as on a dead device.
            #expect(mkfifo("\(root)/block/\(name)/device/rescan", 0o600) == 0)
        }
        let rescanner = CapacityRescanner(sysfsRoot: root)
        let clock = ContinuousClock()
        let started = clock.now
        for name in hung { #expect(rescanner.request(name, nowNs: 0)) }
        #expect(clock.now - started < .seconds(5), "request does not wait for the write")
        #expect(!rescanner.request("sdq", nowNs: 0), "all slots are taken")
        usleep(50_000)
        #expect(rescanner.finished().isEmpty && rescanner.inFlight == hung.count)
        // The device answers: each rescan returns, and a slot is free again.
        var readers: [Int32] = []
        for name in hung { readers.append(open("\(root)/block/\(name)/device/rescan", O_RDONLY | O_NONBLOCK)) }
        defer { for fd in readers { close(fd) } }
        var done: [String] = []
        for _ in 0..<1000 where done.count < hung.count {
            done += rescanner.finished().map(\.kernelName)
            usleep(10_000)
        }
        #expect(done.sorted() == hung.sorted())
        #expect(rescanner.request("sdq", nowNs: 0))
        #expect(waitFinished(rescanner).map(\.kernelName) == ["sdq"])
    }
}
