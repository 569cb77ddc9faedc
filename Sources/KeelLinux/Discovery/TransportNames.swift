// The transport names an operator's views print for a path (`%N %R %r %a`), read from sysfs
// when asked, as multipathd reads them: FC port names from fc_host and fc_remote_ports, the
// host adapter as the PCI (or s390 CCW) device the SCSI host hangs under, or the iSCSI
// initiator's address.

/// One path's transport names. "[undef]" where its transport has no such name; "[unknown]"
/// where it should have one and sysfs did not give it.
public struct TransportNames: Sendable, Equatable {
    public var hostWWNN = "[undef]"
    public var hostWWPN = "[undef]"
    public var targetWWPN = "[undef]"
    public var hostAdapter = "[undef]"

    public init() {}

    /// Reads the names of a path behind SCSI host `host` over `transport`; `transportObject` is
    /// its FC remote port (`rport-H:B-R`) or iSCSI session.
    public static func read(sysfsRoot: String, host: UInt32, transport: SCSITransport, transportObject: String) -> TransportNames {
        var names = TransportNames()
        let hostName = "host\(host)"
        if transport == .fibreChannel {
            let fcHost = sysfsRoot + "/class/fc_host/" + hostName + "/"
            names.hostWWNN = SysfsFiles.readText(fcHost + "node_name") ?? "[unknown]"
            names.hostWWPN = SysfsFiles.readText(fcHost + "port_name") ?? "[unknown]"
            names.targetWWPN = transportObject.isEmpty ? "[unknown]"
                : SysfsFiles.readText(sysfsRoot + "/class/fc_remote_ports/" + transportObject + "/port_name") ?? "[unknown]"
        }
        switch transport {
        case .iscsi:
            // iSCSI hosts have no adapter in sysfs: the initiator's address stands for it.
            names.hostAdapter = SysfsFiles.readText(sysfsRoot + "/class/iscsi_host/" + hostName + "/ipaddress") ?? "[undef]"
        case .fibreChannel, .sas:
            names.hostAdapter = adapter(sysfsRoot: sysfsRoot, hostName: hostName) ?? "[undef]"
        case .usb, .ata, .unspecified, .nvmePCIe, .nvmeTCP, .nvmeRDMA, .nvmeFC, .nvmeLoop, .nvmeUnspecified:
            break
        }
        return names
    }

    /// The SCSI host's nearest ancestor bound to the `pcieport` driver (its PCIe port) or in
    /// the `ccw` subsystem, by name: what multipathd calls the host adapter.
    static func adapter(sysfsRoot: String, hostName: String) -> String? {
        guard var dir = SysfsFiles.resolvedPath(sysfsRoot + "/class/scsi_host/" + hostName) else { return nil }
        let root = SysfsFiles.resolvedPath(sysfsRoot) ?? sysfsRoot
        while let slash = dir.lastIndex(of: "/") {
            dir = String(dir[..<slash])
            guard dir.hasPrefix(root + "/") else { return nil }
            if let driver = SysfsFiles.readLink(dir + "/driver"), SysfsFiles.lastComponent(driver) == "pcieport" {
                return String(SysfsFiles.lastComponent(dir))
            }
            if let subsystem = SysfsFiles.readLink(dir + "/subsystem"), SysfsFiles.lastComponent(subsystem) == "ccw" {
                return String(SysfsFiles.lastComponent(dir))
            }
        }
        return nil
    }
}
