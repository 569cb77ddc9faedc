// The kernel as the control plane reaches it: device-mapper's control calls (`DMControl`) and the
// per-map status reader (`DMMessenger`). The assembler and the events thread's reload step talk
// to these protocols only, so the simulator runs them over its own dm-multipath target, text in
// and text out, exactly as keeld runs them over the kernel.

import KeelCore

#if canImport(Glibc)
import Glibc
#endif

/// device-mapper's control calls the control plane makes. Every call is the kernel's text: a
/// table goes in as `multipath` target params, tables and statuses come back as targets.
public protocol MultipathKernel {
    /// Every dm device: name, uuid, device number and event number.
    func listMaps() throws(DMError) -> [DMMapInfo]
    /// The device with this uuid, nil when there is none.
    func map(uuid: String) throws(DMError) -> DMMapInfo?
    /// The device's state, nil when no device has this name.
    func info(name: String) throws(DMError) -> DMDeviceState?
    /// Creates map `name` with uuid `mpath-<wwid>` and one multipath target, live on return.
    func createMultipathMap(name: String, wwid: String, lengthSectors: UInt64, params: String) throws(DMError)
    /// Replaces the live multipath table of `name` without flushing queued I/O.
    func reload(name: String, lengthSectors: UInt64, params: String) throws(DMError)
    /// Replaces the live table of any device with `targets`, without flushing.
    func reload(name: String, targets: [DMTarget]) throws(DMError)
    func suspend(name: String, noFlush: Bool) throws(DMError)
    func resume(name: String, noFlush: Bool) throws(DMError)
    /// Removes `name`; EBUSY while it is open.
    func remove(name: String) throws(DMError)
    /// The live table (`dmsetup table`).
    func table(name: String) throws(DMError) -> [DMTarget]
    /// The status (`dmsetup status`).
    func status(name: String) throws(DMError) -> [DMTarget]
    /// Creates every job's map, several at a time where the kernel allows it. Returns, in the
    /// jobs' order, nil for a map now live or the error.
    func createAll(_ jobs: [DMCreateJob]) -> [DMError?]
}

extension MultipathKernel {
    /// The multipath maps (uuid `mpath-...`).
    public func listMultipathMaps() throws(DMError) -> [DMMapInfo] {
        try listMaps().filter { $0.uuid.hasPrefix(DMControl.multipathUUIDPrefix) }
    }

    /// `createMultipathMap` with the table rendered by `MultipathTable.render()`.
    public func createMultipathMap(name: String, wwid: String, lengthSectors: UInt64, table: MultipathTable) throws(DMError) {
        try createMultipathMap(name: name, wwid: wwid, lengthSectors: lengthSectors, params: table.render())
    }

    /// `reload` with the table rendered by `MultipathTable.render()`.
    public func reload(name: String, lengthSectors: UInt64, table: MultipathTable) throws(DMError) {
        try reload(name: name, lengthSectors: lengthSectors, params: table.render())
    }

    /// The live table of `name`, parsed. Throws EMEDIUMTYPE when the map is not one multipath
    /// target, EBADMSG when the kernel's text does not parse (the codec's error is the detail).
    public func multipathTable(name: String) throws(DMError) -> MultipathTable {
        let params = try multipathParams(try table(name: name), name: name, operation: .table)
        do {
            return try MultipathTable.parse(params)
        } catch {
            throw DMError(map: name, operation: .table, errno: EBADMSG, detail: error.description)
        }
    }

    /// The status of `name`, parsed; errors as for `multipathTable`.
    public func multipathStatus(name: String) throws(DMError) -> MultipathStatus {
        let params = try multipathParams(try status(name: name), name: name, operation: .status)
        do {
            return try MultipathStatus.parse(params)
        } catch {
            throw DMError(map: name, operation: .status, errno: EBADMSG, detail: error.description)
        }
    }

    private func multipathParams(_ targets: [DMTarget], name: String, operation: DMOperation) throws(DMError) -> String {
        guard targets.count == 1, let target = targets.first, target.targetType == "multipath" else {
            let types = targets.map(\.targetType).joined(separator: ", ")
            throw DMError(map: name, operation: operation, errno: EMEDIUMTYPE,
                          detail: "not one multipath target: [\(types)]")
        }
        return target.params
    }
}

extension DMControl: MultipathKernel {
    /// `DMCreate.createAll` on up to four threads (one per CPU).
    public func createAll(_ jobs: [DMCreateJob]) -> [DMError?] {
        DMCreate.createAll(jobs, threads: min(SysfsDiscovery.threadsForHost, 4))
    }
}

/// Where the control plane registers maps by name and reads a map's status and table for resync
/// (`DMMessenger`: preformatted ioctl headers, one buffer; not shared between threads).
public protocol MapStatusReader {
    /// The descriptor the reads go to: two readers with the same one share their buffers.
    var fileDescriptor: Int32 { get }
    /// The longest status or table text it reads.
    var statusBytesMax: Int { get }
    func register(map: MapHandle, name: String, checkStatusFits: Bool) throws(DMError)
    func unregister(map: MapHandle)
    func isRegistered(_ map: MapHandle) -> Bool
    /// The map's status text (NUL-terminated within the buffer), valid until the next read.
    func readStatus(map: MapHandle) -> Result<UnsafeRawBufferPointer, SystemError>
    /// The map's table text, as `readStatus`.
    func readTable(map: MapHandle) -> Result<UnsafeRawBufferPointer, SystemError>
}

extension DMMessenger: MapStatusReader {}
