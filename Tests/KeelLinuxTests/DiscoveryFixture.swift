// A sysfs fixture tree written into a temporary directory: SCSI disks, transports, udev database.
import Foundation
@testable import KeelLinux

/// Builds a miniature sysfs (`<root>/sys`) and udev database (`<root>/udev`) for discovery tests.
final class SysfsFixture {
    enum Transport {
        case none
        case fibreChannel(rport: String, nodeName: String)
        case iscsi(session: String, targetName: String)
        case sas(address: String)
        /// A USB storage device on port `port` (e.g. "2-1") of root hub usb2.
        case usb(port: String)
    }

    struct Disk {
        var name: String
        var hctl: String
        var dev: String
        var state = "running"
        var type = "0"
        var vendor = "Linux   "
        var model = "scsi_debug      "
        var rev = "0191"
        var sizeSectors = "131072"
        var page83: [UInt8]?
        var page80: [UInt8]?
        var kernelWWID: String?
        var accessState: String?
        var preferredPath: String?
        var transport = Transport.none
    }

    let root: String
    /// Lay disks out as the kernel does (`block/<name>` a link into `devices/`) instead of as a
    /// directory of its own holding a `device` link.
    var kernelLayout = false
    var sysfs: String { root + "/sys" }
    var udevData: String { root + "/udev" }

    init() {
        root = NSTemporaryDirectory() + "keel-sysfs-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: root + "/sys/block", withIntermediateDirectories: true)
        try! FileManager.default.createDirectory(atPath: root + "/udev", withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    var discovery: SysfsDiscovery { SysfsDiscovery(sysfsRoot: sysfs, udevDataRoot: udevData) }

    func write(_ path: String, _ text: String) { write(path, Array(text.utf8)) }

    func write(_ path: String, _ bytes: [UInt8]) {
        let dir = (path as NSString).deletingLastPathComponent
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    }

    func link(_ path: String, to destination: String) {
        let dir = (path as NSString).deletingLastPathComponent
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try! FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: destination)
    }

    /// Adds a SCSI disk: `devices/.../hostH/[transport]/targetH:C:T/H:C:T:L` plus `block/<name>`.
    func add(_ disk: Disk) {
        let parts = disk.hctl.split(separator: ":")
        let host = parts[0], target = "target\(parts[0]):\(parts[1]):\(parts[2])"
        var parent = "devices/platform/host\(host)"
        switch disk.transport {
        case .none: break
        case .fibreChannel(let rport, let node):
            parent += "/\(rport)"
            write(sysfs + "/class/fc_remote_ports/\(rport)/node_name", node + "\n")
        case .iscsi(let session, let name):
            parent += "/\(session)"
            write(sysfs + "/class/iscsi_session/\(session)/targetname", name + "\n")
        case .sas:
            parent += "/port-\(host):0/end_device-\(host):0"
        case .usb(let port):
            // Root hub, device and interface all have subsystem usb.
            let hub = "devices/pci0000:00/0000:00:14.0/usb2"
            parent = "\(hub)/\(port)/\(port):1.0/host\(host)"
            for dir in [hub, "\(hub)/\(port)", "\(hub)/\(port)/\(port):1.0"] { link(sysfs + "/" + dir + "/subsystem", to: sysfs + "/bus/usb") }
        }
        let deviceDir = "\(parent)/\(target)/\(disk.hctl)"
        let d = sysfs + "/" + deviceDir
        write(d + "/state", disk.state + "\n")
        write(d + "/type", disk.type + "\n")
        write(d + "/vendor", disk.vendor + "\n")
        write(d + "/model", disk.model + "\n")
        write(d + "/rev", disk.rev + "\n")
        if let p = disk.page83 { write(d + "/vpd_pg83", p) }
        if let p = disk.page80 { write(d + "/vpd_pg80", p) }
        if let w = disk.kernelWWID { write(d + "/wwid", w + "\n") }
        if let a = disk.accessState { write(d + "/access_state", a + "\n") }
        if let p = disk.preferredPath { write(d + "/preferred_path", p + "\n") }
        if case .sas(let address) = disk.transport { write(d + "/sas_address", address + "\n") }
        if kernelLayout {
            // As the kernel lays it out: the block directory under its device, and
            // /sys/block/<name> a link to it.
            let block = d + "/block/" + disk.name
            write(block + "/dev", disk.dev + "\n")
            write(block + "/size", disk.sizeSectors + "\n")
            link(block + "/device", to: "../../../" + disk.hctl)
            link(sysfs + "/block/" + disk.name, to: "../" + deviceDir + "/block/" + disk.name)
            return
        }
        let block = sysfs + "/block/" + disk.name
        write(block + "/dev", disk.dev + "\n")
        write(block + "/size", disk.sizeSectors + "\n")
        link(block + "/device", to: "../../" + deviceDir)
    }

    /// A block device that is not SCSI (loop, virtio, zram).
    func addPlainBlockDevice(_ name: String, dev: String, deviceLinkTo target: String? = nil) {
        write(sysfs + "/block/\(name)/dev", dev + "\n")
        write(sysfs + "/block/\(name)/size", "0\n")
        if let target {
            write(sysfs + "/" + target + "/uevent", "")
            link(sysfs + "/block/\(name)/device", to: "../../" + target)
        }
    }

    /// Writes the udev database entry of `dev` (`E:` lines plus the other kinds udev writes).
    func addUdevEntry(dev: String, _ properties: [String: String]) {
        var text = "S:disk/by-id/scsi-x\nI:1234567\nG:systemd\n"
        for (k, v) in properties.sorted(by: { $0.key < $1.key }) { text += "E:\(k)=\(v)\n" }
        write(udevData + "/b" + dev, text)
    }
}
