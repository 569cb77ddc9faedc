// Logging from a producer allocates nothing, while the logger thread drains and writes concurrently (release builds).
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Testing

@Suite("logging allocations", .serialized)
struct LoggingAllocationTests {
    @Test("1,000,000 log calls allocate nothing on the calling thread while the logger drains")
    func logCallsAllocateNothing() throws {
        let directory = NSTemporaryDirectory() + "keel-logging-alloc-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logger = try KeelLogger(LogConfiguration(filePath: directory + "/keeld.log", fileBytesMax: 1 << 20,
                                                     producersMax: 1, ringCapacity: 4096, wakeIntervalNs: 1_000_000))
        let producer = try #require(logger.registerProducer(name: "recovery"))
        try logger.start()
        var sequence: UInt64 = 0
        var accepted = 0
        let mallocs = mallocCount(iterations: 1_000_000) {
            sequence &+= 1
            if producer.log(.pathFailed, sequence, 3) { accepted += 1 }
        }
        logger.stop()
        let counters = logger.counterSnapshot
        #expect(mallocs == 0)
        // The logger really was draining meanwhile (more went through than one ring holds).
        #expect(accepted > 4096)
        #expect(counters.recordsWritten > 4096)
        #expect(accepted + producer.droppedCount == 1_000_001)
    }

    @Test("1,000,000 recovery records logged through LogRecoveryOutput allocate nothing")
    func recoveryOutputAllocatesNothing() throws {
        let logger = try KeelLogger(LogConfiguration(producersMax: 1, ringCapacity: 4096, wakeIntervalNs: 1_000_000))
        var output = LogRecoveryOutput(producer: try #require(logger.registerProducer(name: "recovery")))
        try logger.start()
        var nowNs: Nanoseconds = 0
        let mallocs = mallocCount(iterations: 1_000_000) {
            nowNs += 1
            let message = DMMessage(map: MapHandle(2), kind: .reinstatePath, device: DevNo(major: 8, minor: UInt32(nowNs & 0xff)))
            output.record(.messageSent(message, errno: nowNs & 1 == 0 ? 0 : EIO), nowNs: nowNs)
            output.record(.transition(PathHandle(1), device: DevNo(major: 8, minor: 16), from: .down, to: .up), nowNs: nowNs)
        }
        logger.stop()
        #expect(mallocs == 0)
        #expect(logger.counterSnapshot.recordsWritten > 4096)
    }
}
