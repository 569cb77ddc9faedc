// The simulated world's kernel as keeld's control plane reaches it: device-mapper calls and status
// reads (`MultipathKernel`, `MapStatusReader`) and checker registration (`PathCheckerRegistry`)
// over the simulated dm-multipath target and checker. Tables go in and statuses come out as the
// kernel's text, so the assembler parses and renders exactly what it does in keeld.
import Glibc
import KeelCore
import KeelLinux
import KeelSim

/// The world's WWID of a LUN. Zero-padded, so that the assembler's maps (made in WWID order)
/// get the engine handles of the world's maps (LUN order).
func simulatedWWID(lun: Int) -> String {
    let digits = String(lun)
    return "keel-lun-" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits
}

/// A kernel name for path `index` as the sd driver gives them: sda...sdz, sdaa...
func simulatedKernelName(_ index: Int) -> String {
    var n = index + 1
    var letters: [Character] = []
    while n > 0 {
        n -= 1
        letters.append(Character(UnicodeScalar(UInt8(97 + n % 26))))
        n /= 26
    }
    return "sd" + String(letters.reversed())
}

final class SimKernel: MultipathKernel, MapStatusReader {
    unowned let world: SimWorld
    /// The world's maps by dm name (the WWID: user_friendly_names is off).
    private let handles: [String: MapHandle]
    /// Maps created in the kernel, by name, and the table last loaded into each.
    private var created: [String: MapHandle] = [:]
    private var tables: [MapHandle: (table: MultipathTable, lengthSectors: UInt64)] = [:]
    private var registered: Set<MapHandle> = []
    /// The status and table reads' buffer (valid until the next read, as DMMessenger's).
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 8)

    init(world: SimWorld) {
        self.world = world
        var handles: [String: MapHandle] = [:]
        for info in world.maps { handles[simulatedWWID(lun: info.lun)] = info.map }
        self.handles = handles
    }

    deinit { buffer.deallocate() }

    // MARK: - MultipathKernel

    func listMaps() throws(DMError) -> [DMMapInfo] {
        created.sorted { $0.value.index < $1.value.index }.map { name, map in
            DMMapInfo(name: name, uuid: DMControl.multipathUUIDPrefix + name, device: DevNo(major: 253, minor: UInt32(map.index)),
                      eventNumber: world.target.eventNumber(map))
        }
    }

    func map(uuid: String) throws(DMError) -> DMMapInfo? {
        guard uuid.hasPrefix(DMControl.multipathUUIDPrefix) else { return nil }
        let name = String(uuid.dropFirst(DMControl.multipathUUIDPrefix.count))
        guard let map = created[name] else { return nil }
        return DMMapInfo(name: name, uuid: uuid, device: DevNo(major: 253, minor: UInt32(map.index)), eventNumber: world.target.eventNumber(map))
    }

    func info(name: String) throws(DMError) -> DMDeviceState? {
        guard let map = created[name] else { return nil }
        return DMDeviceState(suspended: false, hasLiveTable: true, hasInactiveTable: false, openCount: 1,
                             eventNumber: world.target.eventNumber(map), device: DevNo(major: 253, minor: UInt32(map.index)), targetCount: 1)
    }

    func createMultipathMap(name: String, wwid: String, lengthSectors: UInt64, params: String) throws(DMError) {
        guard let map = handles[name], created[name] == nil else {
            throw DMError(map: name, operation: .create, errno: EEXIST, detail: "no such LUN in the world, or created twice")
        }
        try load(name: name, map: map, lengthSectors: lengthSectors, params: params, operation: .create)
        created[name] = map
    }

    func reload(name: String, lengthSectors: UInt64, params: String) throws(DMError) {
        guard let map = created[name] else { throw DMError(map: name, operation: .reload, errno: ENXIO, detail: "no such device") }
        try load(name: name, map: map, lengthSectors: lengthSectors, params: params, operation: .reload)
    }

    private func load(name: String, map: MapHandle, lengthSectors: UInt64, params: String, operation: DMOperation) throws(DMError) {
        let table: MultipathTable
        do {
            table = try MultipathTable.parse(params)
        } catch {
            throw DMError(map: name, operation: operation, errno: EINVAL, detail: "table does not parse: \(error)")
        }
        let errno = world.load(table, map: map)
        guard errno == 0 else {
            throw DMError(map: name, operation: operation, errno: errno, detail: "table load refused")
        }
        tables[map] = (table, lengthSectors)
    }

    func reload(name: String, targets: [DMTarget]) throws(DMError) {
        throw DMError(map: name, operation: .reload, errno: EOPNOTSUPP, detail: "the world has only multipath maps")
    }

    func suspend(name: String, noFlush: Bool) throws(DMError) {
        guard created[name] != nil else { throw DMError(map: name, operation: .suspend, errno: ENXIO, detail: "no such device") }
    }

    func resume(name: String, noFlush: Bool) throws(DMError) {
        guard created[name] != nil else { throw DMError(map: name, operation: .resume, errno: ENXIO, detail: "no such device") }
    }

    func remove(name: String) throws(DMError) {
        throw DMError(map: name, operation: .remove, errno: EBUSY, detail: "the world's maps are always open")
    }

    func table(name: String) throws(DMError) -> [DMTarget] {
        guard let map = created[name], let loaded = tables[map] else { throw DMError(map: name, operation: .table, errno: ENXIO, detail: "no such device") }
        return [DMTarget(startSector: 0, lengthSectors: loaded.lengthSectors, targetType: "multipath", params: tableText(map))]
    }

    func status(name: String) throws(DMError) -> [DMTarget] {
        guard let map = created[name], let loaded = tables[map] else { throw DMError(map: name, operation: .status, errno: ENXIO, detail: "no such device") }
        return [DMTarget(startSector: 0, lengthSectors: loaded.lengthSectors, targetType: "multipath", params: world.target.status(map).render())]
    }

    func createAll(_ jobs: [DMCreateJob]) -> [DMError?] {
        jobs.map { job -> DMError? in
            do throws(DMError) {
                let wwid = String(job.uuid.dropFirst(DMControl.multipathUUIDPrefix.count))
                try createMultipathMap(name: job.name, wwid: wwid, lengthSectors: job.lengthSectors, params: job.params)
                return nil
            } catch {
                return error
            }
        }
    }

    /// The live table as the kernel prints it: queue_if_no_path as it is now (messages change it).
    private func tableText(_ map: MapHandle) -> String {
        guard var table = tables[map]?.table else { return "" }
        table.features.removeAll { $0 == "queue_if_no_path" }
        if world.target.queueIfNoPath(map) { table.features.insert("queue_if_no_path", at: 0) }
        return table.render()
    }

    // MARK: - MapStatusReader

    var fileDescriptor: Int32 { -2 }

    var statusBytesMax: Int { buffer.count - 1 }

    func register(map: MapHandle, name: String, checkStatusFits: Bool) throws(DMError) {
        guard created[name] == map else { throw DMError(map: name, operation: .register, errno: ENXIO, detail: "no such device") }
        registered.insert(map)
    }

    func unregister(map: MapHandle) { registered.remove(map) }

    func isRegistered(_ map: MapHandle) -> Bool { registered.contains(map) }

    func readStatus(map: MapHandle) -> Result<UnsafeRawBufferPointer, SystemError> {
        guard registered.contains(map) else { return .failure(SystemError("status", errno: ENXIO)) }
        return copy(world.target.status(map).render())
    }

    func readTable(map: MapHandle) -> Result<UnsafeRawBufferPointer, SystemError> {
        guard registered.contains(map) else { return .failure(SystemError("table", errno: ENXIO)) }
        return copy(tableText(map))
    }

    private func copy(_ text: String) -> Result<UnsafeRawBufferPointer, SystemError> {
        var text = text
        return text.withUTF8 { bytes in
            guard bytes.count < buffer.count else { return .failure(SystemError("status", errno: ENOSPC)) }
            buffer.copyMemory(from: UnsafeRawBufferPointer(bytes))
            buffer[bytes.count] = 0
            return .success(UnsafeRawBufferPointer(rebasing: buffer[0...bytes.count]))
        }
    }
}

/// The simulated checker's registrations: which paths the control plane gave a checker, and with
/// which kind. The run's end compares them with the engine's and the assembler's paths.
final class SimCheckerRegistry: PathCheckerRegistry {
    private(set) var registered: [PathHandle: DevNo] = [:]

    func register(path: PathHandle, device: DevNo, kind: CheckerKind) throws(SystemError) {
        registered[path] = device
    }

    func unregister(path: PathHandle, kind: CheckerKind) {
        registered[path] = nil
    }
}
