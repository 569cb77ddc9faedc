// EventFD.signal and the notifier's WATCHDOG=1 allocate nothing (release builds).
import Glibc
import KeelLinux
import Testing

@Suite("process allocations", .serialized)
struct ProcessAllocationTests {
    @Test("1,000,000 EventFD.signal calls allocate nothing")
    func eventSignalAllocatesNothing() throws {
        let event = try EventFD()
        let mallocs = mallocCount(iterations: 1_000_000) {
            event.signal()
        }
        #expect(mallocs == 0)
        #expect(event.drain() == 1_000_001)
    }

    @Test("1,000,000 EventFD.drain calls allocate nothing")
    func eventDrainAllocatesNothing() throws {
        let event = try EventFD()
        var total: UInt64 = 0
        let mallocs = mallocCount(iterations: 1_000_000) {
            event.signal()
            total &+= event.drain()
        }
        #expect(mallocs == 0)
        #expect(total == 1_000_001)
    }

    @Test("1,000,000 WATCHDOG=1 sends to a socket nobody reads allocate nothing and drop")
    func watchdogSendAllocatesNothing() throws {
        // The stand-in for systemd's socket: bound, never read, so its queue fills and stays full.
        let receiver = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(receiver >= 0)
        defer { close(receiver) }
        let name = "keel-alloc-notify-\(getpid())"
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in name.utf8.enumerated() { raw[i + 1] = byte }
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + 1 + name.utf8.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(receiver, $0, length) }
        }
        try #require(bound == 0)
        let notifier = try ServiceNotifier(socketAddress: "@" + name, watchdogIntervalNs: 1_000_000_000)
        var nowNs: Int64 = 0
        let mallocs = mallocCount(iterations: 1_000_000) {
            nowNs += 1
            notifier.notifyWatchdog(nowNs: nowNs)
        }
        #expect(mallocs == 0)
        #expect(notifier.sentCount + notifier.droppedCount == 1_000_001)
        #expect(notifier.droppedCount > 999_000)
        #expect(notifier.failedCount == 0)
    }
}
