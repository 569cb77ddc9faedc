// Least privilege: the capabilities keeld keeps, dropped to before its first thread exists.
import CKeelShim

extension Capability {
    public static let chown = Capability(rawValue: 0)
    public static let dacOverride = Capability(rawValue: 1)
    public static let fowner = Capability(rawValue: 3)
    public static let sysRawIO = Capability(rawValue: 17)
    public static let sysAdmin = Capability(rawValue: 21)
    public static let mknod = Capability(rawValue: 27)
    public static let netAdmin = Capability(rawValue: 12)
}

/// Dropping every capability keeld does not use (module loading, ptrace, raw network, setuid,
/// clock, reboot...). Capabilities are per thread on Linux: call it before the first thread is
/// created, and every later thread inherits the reduced sets.
public enum Capabilities {
    /// What keeld keeps, and why: device-mapper ioctls (SYS_ADMIN), SCSI commands to the paths
    /// (SYS_RAWIO), mlockall (IPC_LOCK), SCHED_FIFO (SYS_NICE), oom_score_adj and the open-file
    /// limit (SYS_RESOURCE), the /dev/mapper nodes libdevmapper makes without udev (MKNOD,
    /// CHOWN, FOWNER), root-owned files under /run, /var/log, /sys and /dev (DAC_OVERRIDE), and
    /// the uevent socket's receive buffer beyond rmem_max (NET_ADMIN, for SO_RCVBUFFORCE: a burst
    /// of uevents must not overflow it).
    public static let needed: [Capability] = [.sysAdmin, .sysRawIO, .ipcLock, .sysNice, .sysResource,
                                              .mknod, .chown, .fowner, .dacOverride, .netAdmin]

    /// Keeps `needed` and drops the rest from the bounding, effective, permitted and
    /// inheritable sets. Returns the effective set afterwards (bit n = capability n).
    @discardableResult
    public static func keepOnlyNeeded() throws(SystemError) -> UInt64 {
        let keep = needed.reduce(UInt64(0)) { $0 | (1 << UInt64($1.rawValue)) }
        _ = try systemCall("capset") { keel_process_keep_capabilities(keep) }
        return keel_process_effective_capabilities()
    }

    /// The calling thread's effective capabilities (bit n = capability n).
    public static var effective: UInt64 { keel_process_effective_capabilities() }
}
