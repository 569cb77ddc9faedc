// Writing a map's transport timeouts to its paths' FC remote ports, iSCSI sessions and SCSI
// hosts, as multipathd does when it sets a path up. Control plane only (the events thread).
import Glibc
import KeelCore

/// One attribute written, or why it was not.
public struct TransportWrite: Sendable, Equatable, CustomStringConvertible {
    /// The attribute's path.
    public var attribute: String
    public var value: String
    /// 0: written (or already so); otherwise the errno of the refusal.
    public var errno: Int32

    public var description: String {
        errno == 0 ? "\(attribute) = \(value)" : "\(attribute) = \(value) refused: \(String(cString: strerror(errno)))"
    }
}

/// Sets the transport timeouts of one path from its map's profile.
public enum TransportTimeoutsWriter {
    /// Writes what `timeouts` asks for to `path`'s transport objects under `sysfsRoot`, skipping
    /// attributes that already hold the value. FC: `fast_io_fail_tmo` and `dev_loss_tmo` of the
    /// remote port, in the order the kernel accepts (it refuses a fast_io_fail_tmo not below
    /// dev_loss_tmo, and a dev_loss_tmo above 600 s without fast_io_fail_tmo). iSCSI: the
    /// session's `recovery_tmo` takes fast_io_fail_tmo. Any SCSI host: `eh_deadline`.
    @discardableResult
    public static func apply(_ timeouts: TransportTimeouts, to path: DiscoveredPath, sysfsRoot: String = "/sys") -> [TransportWrite] {
        apply(timeouts, transport: path.transport, object: path.transportObject, host: path.address.host, sysfsRoot: sysfsRoot)
    }

    /// `apply` for a path known by its transport, its transport object (remote port or session
    /// name) and its SCSI host number.
    @discardableResult
    public static func apply(_ timeouts: TransportTimeouts, transport: SCSITransport, object: String, host: UInt32,
                             sysfsRoot: String = "/sys") -> [TransportWrite] {
        var writes: [TransportWrite] = []
        switch transport {
        case .fibreChannel where !object.isEmpty:
            let port = sysfsRoot + "/class/fc_remote_ports/" + object
            let fast = timeouts.fastIOFail.map { (port + "/fast_io_fail_tmo", $0.description) }
            let loss = timeouts.devLoss.map { (port + "/dev_loss_tmo", "\($0.seconds)") }
            // Lowering dev_loss_tmo below the current fast_io_fail_tmo needs fast_io_fail_tmo
            // first; raising it past 600 s needs fast_io_fail_tmo first too. Otherwise
            // dev_loss_tmo first. Try fast first and, refused, the other order.
            let ordered = [fast, loss].compactMap { $0 }
            var first = ordered.map { write($0.0, $0.1) }
            if first.contains(where: { $0.errno != 0 }), ordered.count == 2 {
                first = ordered.reversed().map { write($0.0, $0.1) }
            }
            writes += first
        case .iscsi where !object.isEmpty:
            if case .seconds(let s)? = timeouts.fastIOFail {
                writes.append(write(sysfsRoot + "/class/iscsi_session/" + object + "/recovery_tmo", "\(s)"))
            }
        default:
            break
        }
        if let deadline = timeouts.ehDeadline {
            writes.append(write(sysfsRoot + "/class/scsi_host/host\(host)/eh_deadline", deadline.description))
        }
        return writes
    }

    /// Writes `value` unless the attribute already says it; the attribute must exist.
    static func write(_ attribute: String, _ value: String) -> TransportWrite {
        if let current = SysfsFiles.readText(attribute), current == value || (value == "off" && current == "-1") {
            return TransportWrite(attribute: attribute, value: value, errno: 0)
        }
        return TransportWrite(attribute: attribute, value: value, errno: SysfsFiles.write(attribute, value))
    }
}
