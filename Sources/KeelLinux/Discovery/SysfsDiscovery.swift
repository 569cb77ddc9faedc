// Path discovery from sysfs alone: every SCSI disk under <root>/block, with its WWID and keys.
import Glibc
import KeelCore

/// Why a SCSI disk was not reported as a path.
public enum DiscoverySkipReason: Hashable, Sendable, CustomStringConvertible {
    /// The configuration's blacklist excluded it.
    case excluded(String)
    /// `dev` is missing or unreadable (the device is going away).
    case noDeviceNumber
    /// The `device` link could not be resolved.
    case unresolvedDeviceLink

    public var description: String {
        switch self {
        case .excluded(let why): return why
        case .noDeviceNumber: return "no device number"
        case .unresolvedDeviceLink: return "device link does not resolve"
        }
    }
}

/// A SCSI disk discovery saw but did not report.
public struct SkippedDevice: Hashable, Sendable {
    public var kernelName: String
    public var reason: DiscoverySkipReason
}

/// What one discovery pass found.
public struct DiscoveryReport: Sendable, Equatable {
    /// The paths, ordered by kernel name.
    public var paths: [DiscoveredPath]
    /// SCSI disks left out, with the reason.
    public var skipped: [SkippedDevice]

    public init(paths: [DiscoveredPath], skipped: [SkippedDevice]) {
        self.paths = paths
        self.skipped = skipped
    }

    /// Paths with a WWID grouped by it (the candidate maps), ordered by WWID; paths inside a
    /// group keep kernel-name order.
    public func pathsByWWID() -> [(wwid: String, paths: [DiscoveredPath])] {
        var groups: [String: [DiscoveredPath]] = [:]
        for path in paths {
            guard let w = path.wwid else { continue }
            groups[w, default: []].append(path)
        }
        return groups.keys.sorted().map { ($0, groups[$0]!) }
    }

    public static func == (a: DiscoveryReport, b: DiscoveryReport) -> Bool {
        a.paths == b.paths && a.skipped == b.skipped
    }
}

/// Discovers SCSI paths by reading sysfs (no fork/exec, no udev requirement). Control plane only.
///
/// A path is a block device whose `device` link leads to a SCSI device (`H:C:T:L`) of type 0
/// (direct access) or 14 (RBC). The WWID comes, like multipathd's, from the udev property named
/// by `uidAttribute` when udev has a database entry, else from `device/vpd_pg83`; then from the
/// kernel's `device/wwid` and finally the VPD 0x80 serial (see `WWIDSource`).
public struct SysfsDiscovery: Sendable {
    /// Where sysfs is mounted ("/sys"); tests point this at a fixture tree.
    public var sysfsRoot: String
    /// Where udev keeps its database ("/run/udev/data").
    public var udevDataRoot: String
    /// multipath.conf `uid_attrs` and `uid_attribute`: the udev property holding each path's
    /// WWID; "" ignores udev.
    public var uidAttributes: UIDAttributes

    public init(sysfsRoot: String = "/sys", udevDataRoot: String = UdevDatabase.defaultDataRoot, uidAttributes: UIDAttributes) {
        self.sysfsRoot = sysfsRoot
        self.udevDataRoot = udevDataRoot
        self.uidAttributes = uidAttributes
    }

    /// Every path's WWID read from `uidAttribute`.
    public init(sysfsRoot: String = "/sys", udevDataRoot: String = UdevDatabase.defaultDataRoot, uidAttribute: String = UIDAttributes.builtIn) {
        self.init(sysfsRoot: sysfsRoot, udevDataRoot: udevDataRoot, uidAttributes: UIDAttributes(defaults: uidAttribute))
    }

    /// Threads for a large discovery: one per online CPU, at most 8.
    public static var threadsForHost: Int { min(max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1), 8) }

    /// Every block device name under `<root>/block`, sorted.
    public func blockDeviceNames() -> [String] {
        SysfsFiles.directoryEntries(sysfsRoot + "/block")
    }

    /// Discovers every SCSI disk, leaving out what `filter` excludes.
    public func discoverAll<F: DiscoveryFilter>(filter: F) -> DiscoveryReport {
        let names = blockDeviceNames()
        return report(names: names, outcomes: names.map { discoverPath(named: $0) }, filter: filter)
    }

    /// Discovers every SCSI disk with up to `threads` threads, each looking at every
    /// `threads`-th device (the reads of one device do not depend on another's), and returns the
    /// same report as `discoverAll()`. For start-up on a large host, before memory is pinned: the
    /// threads end, and their stacks are unmapped, before this returns. A host with fewer than 64
    /// devices per thread, or a thread that cannot be created, is served by the calling thread.
    public func discoverAll(threads: Int) -> DiscoveryReport {
        discover(names: blockDeviceNames(), threads: threads)
    }

    /// The report of the block devices `names` (a burst of `add` uevents, or every device),
    /// discovered as `discoverAll(threads:)` does: up to `threads` threads, at least 64 devices
    /// each, on stacks of their own unmapped when they end (after mlockall they are locked
    /// while they run, and gone after).
    public func discover(names: [String], threads: Int) -> DiscoveryReport {
        let count = min(max(threads, 1), max(names.count / 64, 1))
        let outcomes = ScratchThread.stridedMap(count: names.count, slices: count, name: "keel-discover", stackBytes: 256 * 1024) {
            [self] indices in indices.map { discoverPath(named: names[$0]) }
        }
        return report(names: names, outcomes: outcomes, filter: AdmitAllPaths())
    }

    /// The report of `outcomes` (one per name, in the names' order).
    private func report<F: DiscoveryFilter>(names: [String], outcomes: [Outcome], filter: F) -> DiscoveryReport {
        var report = DiscoveryReport(paths: [], skipped: [])
        for (name, outcome) in zip(names, outcomes) {
            switch outcome {
            case .notSCSIDisk:
                continue
            case .skipped(let reason):
                report.skipped.append(SkippedDevice(kernelName: name, reason: reason))
            case .path(let path):
                if let why = filter.exclusionReason(for: path) {
                    report.skipped.append(SkippedDevice(kernelName: name, reason: .excluded(why)))
                } else {
                    report.paths.append(path)
                }
            }
        }
        return report
    }

    /// Discovers every SCSI disk.
    public func discoverAll() -> DiscoveryReport {
        discoverAll(filter: AdmitAllPaths())
    }

    /// The result of looking at one block device.
    public enum Outcome: Hashable, Sendable {
        case path(DiscoveredPath)
        /// Not a SCSI disk (loop, virtio, dm, cdrom, ...): not Keel's business.
        case notSCSIDisk
        /// A SCSI disk that cannot be used now.
        case skipped(DiscoverySkipReason)
    }

    /// Looks at one block device (e.g. after an `add` uevent). The blacklist is not applied here.
    public func discoverPath(named name: String) -> Outcome {
        if Self.isNVMeNamespaceName(name) { return discoverNVMe(named: name) }
        let blockDir = sysfsRoot + "/block/" + name
        let deviceLink = blockDir + "/device"
        guard let link = SysfsFiles.readLink(deviceLink),
              let address = SCSIAddress(parsing: SysfsFiles.lastComponent(link))
        else { return .notSCSIDisk }
        let deviceDir = deviceLink
        let dev = SysfsDirectory(deviceDir), block = SysfsDirectory(blockDir)
        if let type = dev.text("type"), type != "0", type != "14" {
            return .notSCSIDisk
        }
        // The device's real directory. `realpath` would read every component of it as a link (a
        // dozen failed readlinks per disk); sysfs's two links, resolved lexically, are enough:
        // /sys/block/sdX -> ../devices/.../H:C:T:L/block/sdX, and its `device` -> ../../../H:C:T:L.
        let root = SysfsFiles.resolvedPath(sysfsRoot) ?? sysfsRoot
        let resolvedByLinks = SysfsFiles.linkTarget(name, in: root + "/block").map { SysfsFiles.lexicallyNormalized($0 + "/" + link) }
        guard let resolved = resolvedByLinks.flatMap({ SysfsFiles.exists($0 + "/type") ? $0 : nil }) ?? SysfsFiles.resolvedPath(deviceLink)
        else { return .skipped(.unresolvedDeviceLink) }
        guard let devText = block.text("dev"), let device = Self.parseDevNo(devText) else {
            return .skipped(.noDeviceNumber)
        }

        var path = DiscoveredPath(
            kernelName: name, device: device, address: address,
            deviceState: SCSIDeviceState(sysfs: dev.text("state") ?? "unknown"))
        path.vendor = dev.text("vendor") ?? ""
        path.model = dev.text("model") ?? ""
        path.revision = dev.text("rev") ?? ""
        path.sizeSectors = block.text("size").flatMap { UInt64($0) } ?? 0
        path.portKey = "\(address.host):\(address.channel):\(address.target)"
        path.udevProperties = UdevDatabase.properties(for: device, dataRoot: udevDataRoot)
        path.genericName = dev.entries("scsi_generic").first { $0.hasPrefix("sg") }

        let page83 = try? dev.bytes("vpd_pg83")
        let page80 = try? dev.bytes("vpd_pg80")
        path.vpdWWID = page83.flatMap { try? VPDPage83.wwid(fromPage: $0) }
        path.serial = page80.flatMap { try? VPDPage80.serial(fromPage: $0) }
        (path.wwid, path.wwidSource) = chooseWWID(path: path, device: dev)

        path.alua = ALUAInfo(
            accessState: dev.text("access_state").flatMap { ALUAAccessState(rawValue: $0) },
            preferred: dev.text("preferred_path").flatMap { Self.parseUnsigned($0) }.map { $0 != 0 },
            targetPortGroup: page83.flatMap { VPDPage83.targetPortGroup(in: $0) },
            relativeTargetPort: page83.flatMap { VPDPage83.relativeTargetPort(in: $0) })
        if let inquiry = try? dev.bytes("inquiry", limit: 256), inquiry.count > 5 {
            path.alua.tpgs = (inquiry[5] >> 4) & 0x3
        }
        if let handler = dev.text("dh_state"), !handler.isEmpty, handler != "detached" {
            path.alua.attachedHandler = handler
        }

        (path.transport, path.targetNodeName, path.transportObject) = transportAndNodeName(resolvedDevice: resolved, resolvedRoot: root, device: dev, address: address)
        if !path.targetNodeName.isEmpty {
            path.nodeNameSource = .transport
        } else if let derived = page83.flatMap({ VPDPage83.targetDeviceName(in: $0) }) {
            path.targetNodeName = derived
            path.nodeNameSource = .vpdTargetDevice
        }
        return .path(path)
    }

    /// `nvme<C>n<N>`: an NVMe namespace block device. (`nvme<S>c<C>n<N>`, one controller's path
    /// under native NVMe multipath, has no device node and is the kernel's own business.)
    public static func isNVMeNamespaceName(_ name: String) -> Bool {
        guard name.hasPrefix("nvme") else { return false }
        let rest = name.utf8.dropFirst(4)
        guard let n = rest.firstIndex(of: UInt8(ascii: "n")) else { return false }
        let controller = rest[..<n], namespace = rest[rest.index(after: n)...]
        func digits(_ part: Substring.UTF8View.SubSequence) -> Bool {
            !part.isEmpty && part.count <= 10 && part.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        }
        return digits(controller) && digits(namespace)
    }

    /// An NVMe namespace seen through one controller: a path when NVMe's native multipath is off
    /// (the `device` link leads to the controller, `nvme<C>`); under native multipath the block
    /// device is the kernel's multipath head (its `device` is `nvme-subsys<S>`) and not a path.
    ///
    /// - Address: `C:0:cntlid:nsid` (controller instance, controller id, namespace id).
    /// - Vendor "NVME" (what multipath-tools' table matches), product the controller's `model`,
    ///   revision its `firmware_rev`, serial its `serial`.
    /// - WWID: the udev property `uid_attribute` names (the built-in NVMe entry's `ID_WWN`, as
    ///   multipath-tools'), else the namespace's `wwid` attribute, which udev copies into `ID_WWN`.
    /// - Port key: the controller (its namespaces fail together); node name: the subsystem NQN.
    private func discoverNVMe(named name: String) -> Outcome {
        let blockDir = sysfsRoot + "/block/" + name
        let deviceDir = blockDir + "/device"
        guard let link = SysfsFiles.readLink(deviceDir) else { return .notSCSIDisk }
        let controllerName = SysfsFiles.lastComponent(link)
        guard controllerName.hasPrefix("nvme"), let instance = UInt32(controllerName.dropFirst(4)) else { return .notSCSIDisk }
        guard let devText = SysfsFiles.readText(blockDir + "/dev"), let device = Self.parseDevNo(devText) else {
            return .skipped(.noDeviceNumber)
        }
        let nsid = SysfsFiles.readText(blockDir + "/nsid").flatMap { Self.parseUnsigned($0) } ?? 0
        let controllerID = SysfsFiles.readText(deviceDir + "/cntlid").flatMap { Self.parseUnsigned($0) } ?? 0
        let address = SCSIAddress(host: instance, channel: 0, target: UInt32(clamping: controllerID), lun: nsid)
        var path = DiscoveredPath(kernelName: name, device: device, address: address,
                                  deviceState: SCSIDeviceState(sysfs: SysfsFiles.readText(deviceDir + "/state") ?? "unknown"))
        path.vendor = "NVME"
        path.model = SysfsFiles.readText(deviceDir + "/model") ?? ""
        path.revision = SysfsFiles.readText(deviceDir + "/firmware_rev") ?? ""
        path.serial = SysfsFiles.readText(deviceDir + "/serial")
        path.sizeSectors = SysfsFiles.readText(blockDir + "/size").flatMap { UInt64($0) } ?? 0
        path.transport = SCSITransport(nvmeTransport: SysfsFiles.readText(deviceDir + "/transport") ?? "")
        path.portKey = String(controllerName)
        path.udevProperties = UdevDatabase.properties(for: device, dataRoot: udevDataRoot)
        if let nqn = SysfsFiles.readText(deviceDir + "/subsysnqn"), !nqn.isEmpty {
            path.targetNodeName = nqn
            path.nodeNameSource = .transport
        }
        let uidAttribute = uidAttributes.attribute(devnode: name, vendor: path.vendor, product: path.model, revision: path.revision)
        if !uidAttribute.isEmpty, let value = path.udevProperties?[uidAttribute], !value.isEmpty {
            (path.wwid, path.wwidSource) = (value, .udev)
        } else if let wwid = SysfsFiles.readText(blockDir + "/wwid"), !wwid.isEmpty {
            (path.wwid, path.wwidSource) = (wwid, .kernelWWID)
        }
        return .path(path)
    }

    /// multipathd's order (udev `uid_attribute`, then VPD 0x83), then Keel's last resorts.
    private func chooseWWID(path: DiscoveredPath, device: borrowing SysfsDirectory) -> (String?, WWIDSource?) {
        let uidAttribute = uidAttributes.attribute(devnode: path.kernelName, vendor: path.vendor, product: path.model, revision: path.revision)
        if !uidAttribute.isEmpty, let value = path.udevProperties?[uidAttribute] {
            let wwid = VPDPage83.finish(Array(value.utf8))
            if !wwid.isEmpty { return (wwid, .udev) }
        }
        if let w = path.vpdWWID, !w.isEmpty { return (w, .vpdPage83) }
        if let text = device.text("wwid"), let w = VPDPage83.wwid(fromKernelWWID: text) {
            return (w, .kernelWWID)
        }
        if let s = path.serial { return (s, .serial) }
        return (nil, nil)
    }

    /// The transport and its node name, probed in multipath-tools' order: SAS, USB, FC, iSCSI, ATA.
    private func transportAndNodeName(resolvedDevice: String, resolvedRoot root: String, device: borrowing SysfsDirectory,
                                      address: SCSIAddress) -> (SCSITransport, String, String) {
        // Ancestors of the scsi_device, nearest first, up to (not including) the sysfs root.
        var ancestors: [String] = []
        var current = resolvedDevice
        while let slash = current.lastIndex(of: "/") {
            current = String(current[..<slash])
            guard current.hasPrefix(root + "/") else { break }
            ancestors.append(current)
        }
        let names = ancestors.map { String(SysfsFiles.lastComponent($0)) }

        if let sasAddress = device.text("sas_address"),
           names.contains(where: { $0.hasPrefix("end_device-") }) {
            return (.sas, sasAddress, "")
        }
        // A USB device sits under its bus's root hub (`usbN`): without one among the ancestors
        // there is no USB parent, and the subsystem links need not be read (a dozen failed
        // readlinks per disk otherwise, most of discovery's system calls on a large host).
        if names.contains(where: { $0.hasPrefix("usb") }) {
            for dir in ancestors {
                if let subsystem = SysfsFiles.readLink(dir + "/subsystem"), SysfsFiles.lastComponent(subsystem) == "usb" {
                    return (.usb, String(SysfsFiles.lastComponent(dir)), "")
                }
            }
        }
        // The target is the device's parent; an FC remote port is the target's parent.
        if names.count >= 2, names[1].hasPrefix("rport-"),
           let node = SysfsFiles.readText(sysfsRoot + "/class/fc_remote_ports/" + names[1] + "/node_name") {
            return (.fibreChannel, node, names[1])
        }
        let target = "target\(address.host):\(address.channel):\(address.target)"
        if let node = SysfsFiles.readText(sysfsRoot + "/class/fc_transport/" + target + "/node_name") {
            return (.fibreChannel, node, names.first { $0.hasPrefix("rport-") } ?? "")
        }
        if let session = names.first(where: { $0.hasPrefix("session") && UInt32($0.dropFirst(7)) != nil }) {
            if let node = SysfsFiles.readText(sysfsRoot + "/class/iscsi_session/" + session + "/targetname") {
                return (.iscsi, node, session)
            }
        }
        if let ata = names.first(where: { $0.hasPrefix("ata") && UInt32($0.dropFirst(3)) != nil }) {
            return (.ata, "ata-\(ata.dropFirst(3)).00", "")
        }
        return (.unspecified, "", "")
    }

    /// Parses `major:minor`.
    static func parseDevNo(_ text: String) -> DevNo? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let major = UInt32(parts[0]), let minor = UInt32(parts[1]) else { return nil }
        return DevNo(major: major, minor: minor)
    }

    /// Parses a decimal or 0x-prefixed unsigned number (sysfs writes both).
    static func parseUnsigned(_ text: String) -> UInt64? {
        if text.hasPrefix("0x") { return UInt64(text.dropFirst(2), radix: 16) }
        return UInt64(text)
    }
}

/// One discovery thread's outcomes; written by that thread only, read after it is joined.
