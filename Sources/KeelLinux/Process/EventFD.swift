// A wake-up counter (eventfd) a ring producer signals and a poller drains; neither ever blocks.
import Glibc
import CKeelShim

/// An eventfd opened with EFD_NONBLOCK|EFD_CLOEXEC: producers `signal()` after pushing to a ring,
/// the consumer polls `descriptor` for POLLIN and `drain()`s before reading the ring.
///
/// `signal()` is a single 8-byte write: no allocation, no lock, no wait. If the counter is at its
/// maximum the write fails with EAGAIN, and the descriptor is readable already, so nothing is lost.
public final class EventFD: Sendable {
    /// The eventfd, for poll/epoll (readable while the counter is above 0).
    public let descriptor: Int32

    /// Opens a new eventfd with counter 0. The corresponding C function is
    /// `eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC)`.
    public init() throws(SystemError) {
        descriptor = try systemCall("eventfd") { keel_process_eventfd() }
    }

    deinit {
        close(descriptor)
    }

    /// Adds 1 to the counter, waking a poller. Never blocks.
    @inlinable
    public func signal() {
        var one: UInt64 = 1
        while true {
            let written = write(descriptor, &one, 8)
            if written == 8 { return }
            let error = keel_errno()
            if error == EINTR { continue }
            // EAGAIN: the counter is saturated, so the descriptor is readable already.
            assert(error == EAGAIN, "eventfd write failed with errno \(error)")
            return
        }
    }

    /// Takes the counter (the signals since the last drain) and resets it to 0; 0 when nothing
    /// was signalled. Never blocks.
    @inlinable
    public func drain() -> UInt64 {
        var count: UInt64 = 0
        while true {
            let n = read(descriptor, &count, 8)
            if n == 8 { return count }
            let error = keel_errno()
            if error == EINTR { continue }
            assert(error == EAGAIN, "eventfd read failed with errno \(error)")
            return 0
        }
    }
}
