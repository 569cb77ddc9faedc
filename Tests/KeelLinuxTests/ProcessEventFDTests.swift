// EventFD: signals never block, drain returns the count and resets it.
import Glibc
import KeelLinux
import Testing

@Suite("Process eventfd")
struct ProcessEventFDTests {
    @Test("100,000 signals add up and one drain takes them all")
    func signalsAddUp() throws {
        let event = try EventFD()
        for _ in 0..<100_000 { event.signal() }
        #expect(event.drain() == 100_000)
        #expect(event.drain() == 0)
    }

    @Test("the descriptor polls readable after a signal and not after the drain")
    func descriptorReadableAfterSignal() throws {
        let event = try EventFD()
        var descriptor = pollfd(fd: event.descriptor, events: Int16(POLLIN), revents: 0)
        #expect(poll(&descriptor, 1, 0) == 0)
        event.signal()
        #expect(poll(&descriptor, 1, 0) == 1)
        #expect(event.drain() == 1)
        #expect(poll(&descriptor, 1, 0) == 0)
    }

    @Test("signal returns at once when the counter is saturated, and the count survives")
    func saturatedCounterDoesNotBlock() throws {
        let event = try EventFD()
        var nearlyFull: UInt64 = 0xffff_ffff_ffff_fffe
        #expect(write(event.descriptor, &nearlyFull, 8) == 8)
        // A blocking eventfd would wait here for a reader.
        event.signal()
        event.signal()
        #expect(event.drain() == 0xffff_ffff_ffff_fffe)
    }

    @Test("the descriptor is non-blocking and close-on-exec")
    func descriptorFlags() throws {
        let event = try EventFD()
        #expect(fcntl(event.descriptor, F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(event.descriptor, F_GETFD) & FD_CLOEXEC != 0)
    }
}
