// The recovery plane's kernel text paths allocate nothing: status scanning and message formatting.
import KeelCore
import Testing

/// What a recovery loop keeps from a status read: fixed-size counters, no collections.
private struct KernelViewTally: MultipathStatusVisitor {
    var queueing = false
    var activeGroup = -1
    var pathsActive = 0
    var pathsFailed = 0
    var failCountSum = 0

    mutating func queueing(_ on: Bool) { queueing = on }
    mutating func group(_ index: Int, state: MultipathStatus.GroupState) {
        if state == .active { activeGroup = index }
    }
    mutating func path(group: Int, device: DevNo, active: Bool, failCount: Int) {
        if active { pathsActive += 1 } else { pathsFailed += 1 }
        failCountSum &+= failCount
    }
}

/// The smallest typed error, for measuring what a throw costs under the test harness.
private enum OneByteError: Error { case failed }

@inline(never) private func throwOneByteError() throws(OneByteError) { throw .failed }

@Suite(.serialized) struct StatusScannerAllocationTests {
    /// The rig's 6.1-kernel status with two paths failed and a disabled group, so every branch runs.
    static let statusText = "2 1 3 0 3 1 A 0 2 2 8:0 A 0 0 1 8:48 F 2 0 1 D 0 1 2 8:16 A 0 0 1 E 0 1 2 8:32 F 7 0 1"

    @Test func scanningAStatusBufferAllocatesNothing() {
        // The caller owns the buffer, allocated once at start-up.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        let text = Array(Self.statusText.utf8)
        buffer.copyBytes(from: text)
        let status = UnsafeRawBufferPointer(buffer)

        var tally = KernelViewTally()
        var failures = 0
        func scanOnce() {
            do throws(CodecError) {
                try MultipathStatusScanner.scan(status, into: &tally)
            } catch {
                failures += 1
            }
        }
        scanOnce()  // checked once before measuring
        #expect(failures == 0)
        #expect(tally.activeGroup == 0 && tally.pathsFailed == 2)

        let mallocs = mallocCount(iterations: 1_000_000) { scanOnce() }
        #expect(mallocs == 0)
        #expect(failures == 0)
        #expect(tally.pathsActive >= 2 * 1_000_001)
    }

    @Test func scanningMalformedStatusAllocatesNothingBeyondTheHarnessThrowHook() {
        // Swift Testing hooks every throw (it records backtraces of thrown errors) and boxes the
        // error there: one malloc per throw, even for a one-byte typed error. So the malformed
        // scan is measured against that baseline: the scanner's own error path must add nothing.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        buffer.copyBytes(from: Array("2 0 0 0 1 1 A 0 2 0 8:0 A 0 8:16 X-not-a-path-state-token-longer-than-32-bytes 0".utf8))
        let status = UnsafeRawBufferPointer(buffer)

        var tally = KernelViewTally()
        var lastError: CodecError? = nil
        func scanOnce() {
            do throws(CodecError) {
                try MultipathStatusScanner.scan(status, into: &tally)
            } catch {
                lastError = error
            }
        }
        var baselineThrows = 0
        func throwBaseline() {
            do throws(OneByteError) {
                try throwOneByteError()
            } catch {
                baselineThrows += 1
            }
        }
        scanOnce()
        throwBaseline()
        #expect(lastError?.problem == .malformed(.pathState))

        // Fewer runs than the other tests: every throw pays for the harness's backtrace capture.
        let iterations = 100_000
        let baseline = mallocCount(iterations: iterations) { throwBaseline() }
        let mallocs = mallocCount(iterations: iterations) { scanOnce() }
        #expect(baseline <= iterations, "the harness hook costs at most one malloc per throw")
        #expect(mallocs <= baseline)
        #expect(lastError?.tokenIndex == 14)
    }

    @Test func formattingMessagesAllocatesNothing() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: DMMessageText.bytesMax, alignment: 8)
        defer { buffer.deallocate() }
        let messages: [DMMessage] = [
            DMMessage(map: MapHandle(0), kind: .failPath, device: DevNo(major: 8, minor: 16)),
            DMMessage(map: MapHandle(0), kind: .reinstatePath, device: DevNo(major: 65, minor: 1_048_575)),
            DMMessage(map: MapHandle(0), kind: .switchGroup, group: 2),
            DMMessage(map: MapHandle(0), kind: .enableGroup, group: 1024),
            DMMessage(map: MapHandle(0), kind: .disableGroup, group: 3),
            DMMessage(map: MapHandle(0), kind: .queueIfNoPath),
            DMMessage(map: MapHandle(0), kind: .failIfNoPath),
        ]
        var next = 0
        var bytesWritten = 0
        var failures = 0
        func formatOnce() {
            do throws(CodecError) {
                bytesWritten &+= try DMMessageText.format(messages[next], into: buffer)
            } catch {
                failures += 1
            }
            next = next == messages.count - 1 ? 0 : next + 1
        }
        formatOnce()

        let mallocs = mallocCount(iterations: 1_000_000) { formatOnce() }
        #expect(mallocs == 0)
        #expect(failures == 0)
        #expect(bytesWritten > 0)
    }
}
