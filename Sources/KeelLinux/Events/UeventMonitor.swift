// The libudev monitor for block uevents: poll its fd, then drain into a batch (event thread only).
import Glibc
import CUdev
import CKeelShim

/// Why the monitor could not be set up.
public struct UeventMonitorError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The libudev call that failed.
    public var operation: StaticString
    /// The errno it reported (0 when it gave none).
    public var errno: Int32

    public init(_ operation: StaticString, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.errno == b.errno && a.operation.description == b.operation.description
    }

    public var description: String { "\(operation) failed (errno \(errno))" }
}

/// Which netlink group the monitor listens to.
public enum UeventSource: Sendable, Equatable {
    /// Events after udevd processed them (with udev properties such as ID_SERIAL).
    case udev
    /// Raw kernel events (no udev properties); the only source when udevd does not run.
    case kernel

    /// `.udev` when udevd runs (its control socket exists under `runRoot`), else `.kernel`.
    public static func detect(runRoot: String = "/run") -> UeventSource {
        SysfsFiles.exists(runRoot + "/udev/control") ? .udev : .kernel
    }

    /// The name libudev takes.
    var netlinkName: String { self == .udev ? "udev" : "kernel" }
}

/// A libudev monitor filtered to block disks (paths and dm maps alike).
///
/// libudev allocates for every event, so the monitor belongs to the control plane's event thread:
/// `poll` its `fileDescriptor`, then `drain` into a batch, merge it (`UeventMerge`), and hand the
/// consumer fixed-size records. Not thread-safe (libudev is not).
public final class UeventMonitor {
    /// multipathd's receive buffer: 128 MiB, so a burst of thousands of paths does not overflow.
    public static let defaultReceiveBufferBytes: Int32 = 128 * 1024 * 1024
    /// multipathd's `MAX_UEVENTS`: at most this many events per drain, so one burst cannot
    /// starve the rest of the event loop.
    public static let defaultDrainEventsMax = 1000

    public let source: UeventSource
    /// The udev property that holds a path's WWID (multipath.conf `uid_attribute`).
    public let uidAttribute: String
    /// The monitor's non-blocking netlink socket, for `poll`/`epoll`.
    public let fileDescriptor: Int32
    /// Receive errors other than overflow and "no more data" seen so far.
    public private(set) var receiveErrorCount = 0
    /// Overflows (ENOBUFS) seen so far.
    public private(set) var overflowCount = 0

    /// libudev's monitor (udevd's events); nil for the kernel's, which are read directly.
    private let udev: OpaquePointer?
    private let monitor: OpaquePointer?
    /// The kernel source's datagram buffer.
    private var datagram: [UInt8] = []

    /// Opens the monitor, filters it to `block`/`disk`, enlarges its receive buffer (needs
    /// CAP_NET_ADMIN beyond `net.core.rmem_max`) and makes its socket non-blocking.
    public init(source: UeventSource = .detect(), receiveBufferBytes: Int32 = defaultReceiveBufferBytes,
                uidAttribute: String = "ID_SERIAL") throws(UeventMonitorError) {
        self.source = source
        self.uidAttribute = uidAttribute
        if source == .kernel {
            // Without udevd, libudev would build a device for every kernel uevent and filter it in
            // user space (about ten per SCSI disk): read the datagrams directly and look at the
            // subsystem's bytes first (KernelUevent).
            let fd = keel_uevent_kernel_socket(receiveBufferBytes)
            guard fd >= 0 else { throw UeventMonitorError("socket(NETLINK_KOBJECT_UEVENT)", errno: -fd) }
            udev = nil
            monitor = nil
            fileDescriptor = fd
            datagram = [UInt8](repeating: 0, count: KernelUevent.bytesMax)
            return
        }
        guard let udev = udev_new() else { throw UeventMonitorError("udev_new", errno: keel_errno()) }
        guard let monitor = udev_monitor_new_from_netlink(udev, source.netlinkName) else {
            let e = keel_errno()
            udev_unref(udev)
            throw UeventMonitorError("udev_monitor_new_from_netlink", errno: e)
        }
        func fail(_ op: StaticString, _ r: Int32) -> UeventMonitorError {
            udev_monitor_unref(monitor)
            udev_unref(udev)
            return UeventMonitorError(op, errno: r < 0 ? -r : keel_errno())
        }
        var r = udev_monitor_filter_add_match_subsystem_devtype(monitor, "block", "disk")
        if r < 0 { throw fail("udev_monitor_filter_add_match_subsystem_devtype", r) }
        r = udev_monitor_set_receive_buffer_size(monitor, receiveBufferBytes)
        if r < 0 { throw fail("udev_monitor_set_receive_buffer_size", r) }
        r = udev_monitor_enable_receiving(monitor)
        if r < 0 { throw fail("udev_monitor_enable_receiving", r) }
        let fd = udev_monitor_get_fd(monitor)
        if fd < 0 { throw fail("udev_monitor_get_fd", fd) }
        let flags = fcntl(fd, F_GETFL)
        if flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 { throw fail("fcntl(O_NONBLOCK)", -1) }
        self.udev = udev
        self.monitor = monitor
        self.fileDescriptor = fd
    }

    deinit {
        if let monitor { udev_monitor_unref(monitor) }
        if let udev { udev_unref(udev) }
        if monitor == nil { close(fileDescriptor) }
    }

    /// The socket's receive buffer as the kernel accounts it (`SO_RCVBUF`, twice what was asked).
    public var receiveBufferBytes: Int32 {
        var value: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fileDescriptor, SOL_SOCKET, SO_RCVBUF, &value, &size)
        return value
    }

    /// Waits up to `timeoutMs` (-1: forever) for events. The corresponding C function is `poll`.
    public func waitReadable(timeoutMs: Int32) -> Bool {
        var pfd = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        let n = try? systemCall("poll(uevent)") { poll(&pfd, 1, timeoutMs) }
        return (n ?? 0) > 0
    }

    /// Receives every queued event (at most `eventsMax`) into `batch` without blocking; returns
    /// how many records were appended. A receive-buffer overflow sets `batch.resyncNeeded`:
    /// the kernel dropped events, so the caller must rediscover rather than trust the stream.
    ///
    /// libudev 252 passes the socket's ENOBUFS through: `udev_monitor_receive_device` returns NULL
    /// with errno ENOBUFS once per overflow, and later calls return the events still queued.
    @discardableResult
    public func drain(into batch: inout UeventBatch, eventsMax: Int = defaultDrainEventsMax) -> Int {
        guard let monitor else { return drainKernel(into: &batch, eventsMax: eventsMax) }
        var appended = 0
        var attempts = 0
        // Bounded even if the socket kept failing: at most twice as many receives as events.
        while appended < eventsMax && attempts < 2 * eventsMax {
            attempts += 1
            guard let device = udev_monitor_receive_device(monitor) else {
                if receiveFailed(keel_errno(), &batch) { continue }
                break
            }
            defer { udev_device_unref(device) }
            let record = UeventRecord.parse(uidAttribute: uidAttribute) { key in
                udev_device_get_property_value(device, key).map { String(cString: $0) }
            }
            if let record {
                batch.records.append(record)
                appended += 1
            } else {
                batch.malformedCount += 1
            }
        }
        return appended
    }

    /// A receive that returned nothing, with `errno`: whether to receive again. An overflow
    /// (ENOBUFS: the kernel dropped events) marks the batch for a rediscovery and goes on to
    /// what is still queued; EINTR goes on; EAGAIN ends the drain; anything else is counted.
    private func receiveFailed(_ errno: Int32, _ batch: inout UeventBatch) -> Bool {
        if errno == ENOBUFS {
            overflowCount += 1
            batch.resyncNeeded = true
            return true
        }
        if errno == EINTR { return true }
        if errno != EAGAIN && errno != EWOULDBLOCK { receiveErrorCount += 1 }
        return false
    }

    /// `drain` for the kernel source: datagrams straight from the socket. At most `eventsMax`
    /// disk events are appended, and at most 16 times as many datagrams read in all (other
    /// subsystems' events, another process's messages) before the turn ends.
    private func drainKernel(into batch: inout UeventBatch, eventsMax: Int) -> Int {
        var appended = 0
        var received = 0
        while appended < eventsMax && received < 16 * eventsMax {
            received += 1
            var truncated: Int32 = 0
            let n = datagram.withUnsafeMutableBytes { keel_uevent_receive(fileDescriptor, $0.baseAddress, $0.count, &truncated) }
            if n < 0 {
                if receiveFailed(Int32(-n), &batch) { continue }
                break
            }
            if truncated != 0 {
                batch.malformedCount += 1
                continue
            }
            if n == 0 { continue }   // not from the kernel
            switch datagram.withUnsafeBytes({ KernelUevent.parse(UnsafeRawBufferPointer(rebasing: $0[0..<n]), uidAttribute: uidAttribute) }) {
            case .disk(let record):
                batch.records.append(record)
                appended += 1
            case .other: break
            case .malformed: batch.malformedCount += 1
            }
        }
        return appended
    }
}
