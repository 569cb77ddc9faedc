// The device-mapper control plane through libdevmapper: list, create, reload, suspend/resume, remove, table and status.
import Glibc
import CDeviceMapper
import CKeelShim
import KeelCore

/// One dm device as the kernel lists it.
public struct DMMapInfo: Sendable, Equatable, CustomStringConvertible {
    /// The dm name (`mpatha`).
    public var name: String
    /// The dm uuid (`mpath-<wwid>` for multipath maps); empty when the device has none.
    public var uuid: String
    /// The device number of the dm block device (`253:0`).
    public var device: DevNo
    /// The device's event counter: it grows on every target event (a path failed, a table swap).
    public var eventNumber: UInt32

    public init(name: String, uuid: String, device: DevNo, eventNumber: UInt32) {
        self.name = name
        self.uuid = uuid
        self.device = device
        self.eventNumber = eventNumber
    }

    public var description: String { "\(name) (\(uuid)) \(device) event \(eventNumber)" }
}

/// The kernel's state of one dm device (`dmsetup info`).
public struct DMDeviceState: Sendable, Equatable {
    public var suspended: Bool
    public var hasLiveTable: Bool
    public var hasInactiveTable: Bool
    public var openCount: Int32
    public var eventNumber: UInt32
    public var device: DevNo
    public var targetCount: Int32

    public init(suspended: Bool, hasLiveTable: Bool, hasInactiveTable: Bool, openCount: Int32, eventNumber: UInt32,
                device: DevNo, targetCount: Int32) {
        self.suspended = suspended
        self.hasLiveTable = hasLiveTable
        self.hasInactiveTable = hasInactiveTable
        self.openCount = openCount
        self.eventNumber = eventNumber
        self.device = device
        self.targetCount = targetCount
    }
}

/// One target line of a table or status (`<start> <length> <type> <params>`).
public struct DMTarget: Sendable, Equatable {
    public var startSector: UInt64
    public var lengthSectors: UInt64
    /// The target type, `multipath` for Keel's maps.
    public var targetType: String
    /// The target's table params or status text, as the kernel printed it.
    public var params: String

    public init(startSector: UInt64, lengthSectors: UInt64, targetType: String, params: String) {
        self.startSector = startSector
        self.lengthSectors = lengthSectors
        self.targetType = targetType
        self.params = params
    }
}

/// Loads, swaps and removes multipath maps through libdevmapper (control plane: every call
/// allocates and may block on the kernel; never use it on the recovery thread).
///
/// libdm's log goes to a per-thread buffer (never to stderr) and is attached to the error of the
/// call that produced it. udev synchronisation is off: Keel addresses maps by dm name through the
/// control node, not through udev-made symlinks, so waiting for udev buys nothing, and udevd may
/// not run at all; libdm creates and removes the `/dev/mapper/<name>` nodes itself instead.
/// Calls on one instance are not meant to run concurrently (libdm itself is not thread-safe).
public struct DMControl: Sendable {
    /// The uuid prefix of multipath maps (multipath-tools' convention, which Keel keeps).
    public static let multipathUUIDPrefix = "mpath-"

    /// The kernel driver's interface version, e.g. `4.47.0`.
    public let driverVersion: String

    /// Installs the libdm log capture and asks the kernel for its dm version.
    /// Throws when the kernel has no device-mapper (or `/dev/mapper/control` is unusable).
    public init() throws(DMError) {
        DMControl.installLog()
        var buffer = [CChar](repeating: 0, count: 64)
        keel_dm_log_clear()
        let ok = buffer.withUnsafeMutableBufferPointer { dm_driver_version($0.baseAddress, 64) }
        guard ok != 0 else {
            throw DMError(map: "", operation: .version, errno: DMControl.libdmErrno(task: nil),
                          detail: DMControl.libdmText(or: "no device-mapper driver answered"))
        }
        driverVersion = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Every dm device. One DM_DEVICE_LIST, then one DM_DEVICE_INFO per device for its uuid and
    /// event number (libdm 1.02.185 has no list call that returns uuids). A device removed
    /// between the two is left out.
    public func listMaps() throws(DMError) -> [DMMapInfo] {
        let names: [String] = try withTask(DM_DEVICE_LIST, map: "", operation: .list, configure: { _ in true }) { task in
            var names: [String] = []
            var entry = keel_dm_names_first(task)
            while let e = entry {
                names.append(String(cString: keel_dm_names_name(e)))
                entry = keel_dm_names_next(e)
            }
            return names
        }
        var maps: [DMMapInfo] = []
        for name in names {
            guard let (state, uuid) = try infoAndUUID(name: name) else { continue }
            maps.append(DMMapInfo(name: name, uuid: uuid, device: state.device, eventNumber: state.eventNumber))
        }
        return maps
    }

    /// The device with this uuid, or nil when there is none: one DM_DEVICE_INFO looked up by
    /// uuid (listing every device costs one ioctl per device).
    public func map(uuid: String) throws(DMError) -> DMMapInfo? {
        do {
            return try withTask(DM_DEVICE_INFO, map: uuid, operation: .info, configure: { task in
                dm_task_set_uuid(task, uuid) != 0
            }) { task -> DMMapInfo? in
                var info = dm_info()
                guard dm_task_get_info(task, &info) != 0, info.exists != 0, let name = dm_task_get_name(task) else { return nil }
                return DMMapInfo(name: String(cString: name), uuid: uuid, device: DevNo(major: info.major, minor: info.minor),
                                 eventNumber: info.event_nr)
            }
        } catch where error.errno == ENXIO {
            return nil
        }
    }

    /// The device's state, or nil when no device has this name.
    public func info(name: String) throws(DMError) -> DMDeviceState? {
        try infoAndUUID(name: name)?.0
    }

    /// Creates a multipath map `name` with uuid `mpath-<wwid>` and one `multipath` target
    /// (start 0, `lengthSectors`, `params`), and resumes it: the map is live on return. If the
    /// table is refused, libdm removes the half-made device again.
    public func createMultipathMap(name: String, wwid: String, lengthSectors: UInt64, params: String) throws(DMError) {
        let uuid = DMControl.multipathUUIDPrefix + wwid
        try withTask(DM_DEVICE_CREATE, map: name, operation: .create, configure: { task in
            dm_task_set_name(task, name) != 0
                && dm_task_set_uuid(task, uuid) != 0
                && dm_task_add_target(task, 0, lengthSectors, "multipath", params) != 0
        }) { _ in () }
        dm_task_update_nodes()
    }

    /// Replaces the live table of `name`: loads `params` into the inactive slot (DM_DEVICE_RELOAD),
    /// then swaps it in with a resume that does not flush queued I/O (noflush), as multipathd does,
    /// so I/O queued with no path survives the swap. A refused table leaves the live table as it was.
    public func reload(name: String, lengthSectors: UInt64, params: String) throws(DMError) {
        try withTask(DM_DEVICE_RELOAD, map: name, operation: .reload, configure: { task in
            dm_task_set_name(task, name) != 0
                && dm_task_add_target(task, 0, lengthSectors, "multipath", params) != 0
        }) { _ in () }
        try resume(name: name, noFlush: true)
    }

    /// Replaces the live table of any device `name` with `targets` (any target types), then
    /// resumes it without flushing: `reset map`'s reassignment of a device built on a path.
    public func reload(name: String, targets: [DMTarget]) throws(DMError) {
        try withTask(DM_DEVICE_RELOAD, map: name, operation: .reload, configure: { task in
            guard dm_task_set_name(task, name) != 0 else { return false }
            return targets.allSatisfy { dm_task_add_target(task, $0.startSector, $0.lengthSectors, $0.targetType, $0.params) != 0 }
        }) { _ in () }
        try resume(name: name, noFlush: true)
    }

    /// Suspends `name` (DM_DEVICE_SUSPEND). With `noFlush`, queued I/O stays queued instead of
    /// being flushed (and failed) first. Messages to a suspended map fail with EBUSY.
    public func suspend(name: String, noFlush: Bool = true) throws(DMError) {
        try withTask(DM_DEVICE_SUSPEND, map: name, operation: .suspend, configure: { task in
            dm_task_set_name(task, name) != 0 && (!noFlush || dm_task_no_flush(task) != 0)
        }) { _ in () }
    }

    /// Resumes `name` (DM_DEVICE_RESUME), swapping in an inactive table if one was loaded.
    public func resume(name: String, noFlush: Bool = true) throws(DMError) {
        try withTask(DM_DEVICE_RESUME, map: name, operation: .resume, configure: { task in
            dm_task_set_name(task, name) != 0 && (!noFlush || dm_task_no_flush(task) != 0)
        }) { _ in () }
        dm_task_update_nodes()
    }

    /// Removes `name` (DM_DEVICE_REMOVE). Fails with EBUSY while the map is open.
    public func remove(name: String) throws(DMError) {
        try withTask(DM_DEVICE_REMOVE, map: name, operation: .remove, configure: { task in
            dm_task_set_name(task, name) != 0
        }) { _ in () }
        dm_task_update_nodes()
    }

    /// The live table of `name` (`dmsetup table`).
    public func table(name: String) throws(DMError) -> [DMTarget] {
        try targets(DM_DEVICE_TABLE, name: name, operation: .table)
    }

    /// The status of `name` (`dmsetup status`).
    public func status(name: String) throws(DMError) -> [DMTarget] {
        try targets(DM_DEVICE_STATUS, name: name, operation: .status)
    }

    // MARK: - libdm plumbing

    private func targets(_ type: Int, name: String, operation: DMOperation) throws(DMError) -> [DMTarget] {
        try withTask(type, map: name, operation: operation, configure: { task in
            dm_task_set_name(task, name) != 0
        }) { task in
            var targets: [DMTarget] = []
            var next: UnsafeMutableRawPointer? = nil
            repeat {
                var start: UInt64 = 0
                var length: UInt64 = 0
                var type: UnsafeMutablePointer<CChar>? = nil
                var params: UnsafeMutablePointer<CChar>? = nil
                next = dm_get_next_target(task, next, &start, &length, &type, &params)
                // An empty table reports one target without a type.
                guard let type else { break }
                targets.append(DMTarget(startSector: start, lengthSectors: length, targetType: String(cString: type),
                                        params: params.map { String(cString: $0) } ?? ""))
            } while next != nil
            return targets
        }
    }

    private func infoAndUUID(name: String) throws(DMError) -> (DMDeviceState, String)? {
        do {
            return try withTask(DM_DEVICE_INFO, map: name, operation: .info, configure: { task in
                dm_task_set_name(task, name) != 0
            }) { task -> (DMDeviceState, String)? in
                var info = dm_info()
                guard dm_task_get_info(task, &info) != 0, info.exists != 0 else { return nil }
                let state = DMDeviceState(suspended: info.suspended != 0, hasLiveTable: info.live_table != 0,
                                          hasInactiveTable: info.inactive_table != 0, openCount: info.open_count,
                                          eventNumber: info.event_nr, device: DevNo(major: info.major, minor: info.minor),
                                          targetCount: info.target_count)
                let uuid = dm_task_get_uuid(task).map { String(cString: $0) } ?? ""
                return (state, uuid)
            }
        } catch where error.errno == ENXIO {
            return nil
        }
    }

    /// Creates a task of `type`, lets `configure` fill it, runs it and hands it to `result`.
    /// Any failure becomes a DMError naming the map, the operation, the errno and libdm's log.
    private func withTask<R>(_ type: Int, map: String, operation: DMOperation,
                             configure: (OpaquePointer) -> Bool,
                             result: (OpaquePointer) -> R) throws(DMError) -> R {
        keel_dm_log_clear()
        guard let task = dm_task_create(Int32(type)) else {
            throw DMError(map: map, operation: operation, errno: DMControl.libdmErrno(task: nil),
                          detail: DMControl.libdmText(or: "libdm could not create the task"))
        }
        defer { dm_task_destroy(task) }
        guard configure(task) else {
            throw DMError(map: map, operation: operation, errno: DMControl.libdmErrno(task: nil, fallback: EINVAL),
                          detail: DMControl.libdmText(or: "libdm refused the task's arguments"))
        }
        guard dm_task_run(task) != 0 else {
            throw DMError(map: map, operation: operation, errno: DMControl.libdmErrno(task: task),
                          detail: DMControl.libdmText(or: ""))
        }
        return result(task)
    }

    /// The errno of a failed libdm call: the ioctl's (dm_task_get_errno), else the one libdm
    /// logged, else `fallback`.
    private static func libdmErrno(task: OpaquePointer?, fallback: Int32 = ENODEV) -> Int32 {
        if let task {
            let e = dm_task_get_errno(task)
            if e != 0 { return e }
        }
        let logged = keel_dm_log_errno()
        return logged != 0 ? logged : fallback
    }

    private static func libdmText(or fallback: String) -> String {
        let text = String(cString: keel_dm_log_text())
        return text.isEmpty ? fallback : text
    }

    /// Installs the log capture once per process (libdm's log function is process-global).
    private static let logInstalled: Bool = {
        keel_dm_log_install()
        return true
    }()

    private static func installLog() {
        _ = logInstalled
    }
}
