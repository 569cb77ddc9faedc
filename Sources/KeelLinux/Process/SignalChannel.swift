// Termination and reload signals as a pollable descriptor (signalfd), never as async handlers.
import Glibc
import CKeelShim

/// One signal taken from a `SignalChannel`.
public struct ReceivedSignal: Equatable, Sendable {
    /// The signal number (SIGTERM, SIGINT, SIGHUP).
    public var signal: Int32
    /// The process that sent it (0 for the kernel).
    public var senderPid: Int32
    /// The real user id of the sender.
    public var senderUid: UInt32

    public init(signal: Int32, senderPid: Int32, senderUid: UInt32) {
        self.signal = signal
        self.senderPid = senderPid
        self.senderUid = senderUid
    }
}

/// The process's shutdown and reload signals, delivered through a non-blocking signalfd that the
/// control thread polls with its other descriptors, so no code ever runs in a signal handler.
///
/// Create it on the main thread before any other thread exists: it blocks the signals in the
/// calling thread, and threads inherit the mask of their creator, so they stay blocked in every
/// thread and wait in the descriptor. A thread created earlier could take them instead.
public final class SignalChannel: Sendable {
    /// SIGTERM (stop), SIGINT (stop, interactive) and SIGHUP (reload).
    public static let daemonSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP]

    /// The signalfd (non-blocking, close-on-exec), for poll/epoll.
    public let descriptor: Int32
    /// The signals it carries.
    public let signals: [Int32]

    /// Blocks `signals` in the calling thread and opens a signalfd for them.
    /// The corresponding C functions are `pthread_sigmask(SIG_BLOCK)` and `signalfd`.
    public init(signals: [Int32] = SignalChannel.daemonSignals) throws(SystemError) {
        precondition(!signals.isEmpty, "a signal channel needs signals")
        self.signals = signals
        descriptor = try signals.withUnsafeBufferPointer { (list) throws(SystemError) -> Int32 in
            try systemCall("signalfd") { keel_process_signalfd(list.baseAddress, Int32(list.count)) }
        }
    }

    deinit {
        close(descriptor)
    }

    /// The next pending signal, or nil when none is pending; never blocks.
    public func receive() throws(SystemError) -> ReceivedSignal? {
        var record = keel_signal_record()
        let result = try systemCall("read(signalfd)") { keel_process_signalfd_read(descriptor, &record) }
        guard result == 1 else { return nil }
        return ReceivedSignal(signal: Int32(record.signal), senderPid: record.sender_pid, senderUid: record.sender_uid)
    }

    /// Whether `signal` is blocked in the calling thread (it then waits for the channel).
    public static func isBlockedInCallingThread(_ signal: Int32) throws(SystemError) -> Bool {
        try systemCall("pthread_sigmask") { keel_process_signal_blocked(signal) } == 1
    }
}
