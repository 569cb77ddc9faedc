// The names log lines show for handles and devices: "sdc (8:32) in mpatha" where a record only
// carries numbers. Written by the control plane when maps and paths change, read by the logger
// thread as it formats; the recovery thread never touches it.
import KeelCore
import Synchronization

/// Names for `%map`, `%path` and `%dev`. Lookups take a mutex shared only by the logger thread
/// and the control plane, and allocate nothing.
public final class LogNames: @unchecked Sendable {
    struct PathName {
        var kernelName: String
        var device: DevNo
        var map: UInt32
    }
    struct Table {
        /// By the whole handle (slot and generation): a record of a removed map never finds
        /// the map that took its slot.
        var maps: [UInt32: String] = [:]
        var paths: [UInt32: PathName] = [:]
        var devices: [DevNo: String] = [:]
        /// Names of maps that were removed, for records made before the removal and formatted
        /// after it (a stalled log device holds them): at most `retiredMax`.
        var retiredMaps: [UInt32: String] = [:]
    }
    private let table = Mutex(Table())
    static let retiredMax = 4096

    public init() {}

    /// Replaces every name: each map's handle and name, with its paths' handles, kernel names
    /// and device numbers.
    public func replace(maps: [(handle: MapHandle, name: String, paths: [(handle: PathHandle, kernelName: String, device: DevNo)])]) {
        var fresh = Table()
        fresh.maps.reserveCapacity(maps.count)
        for map in maps {
            fresh.maps[map.handle.raw] = map.name
            for path in map.paths {
                fresh.paths[path.handle.raw] = PathName(kernelName: path.kernelName, device: path.device, map: map.handle.raw)
                fresh.devices[path.device] = path.kernelName
            }
        }
        table.withLock { old in
            fresh.retiredMaps = old.retiredMaps
            for (raw, name) in old.maps where fresh.maps[raw] == nil {
                if fresh.retiredMaps.count >= Self.retiredMax { fresh.retiredMaps.removeAll(keepingCapacity: true) }
                fresh.retiredMaps[raw] = name
            }
            for raw in fresh.maps.keys { fresh.retiredMaps[raw] = nil }
            old = fresh
        }
    }

    /// Appends the map's name (the name it had, for a map removed since), or `map#N` (`map#N.G`
    /// for a slot's later generation) when none is known.
    func appendMap(_ raw: UInt64, to line: inout LogTextBuffer) {
        let done = table.withLock { t -> Bool in
            guard raw <= UInt64(UInt32.max), let name = t.maps[UInt32(raw)] ?? t.retiredMaps[UInt32(raw)] else { return false }
            Self.append(name, to: &line)
            return true
        }
        if !done { Self.appendMapNumbers(raw, to: &line) }
    }

    /// `map#N`, or `map#N.G` for a later generation of slot N.
    static func appendMapNumbers(_ raw: UInt64, to line: inout LogTextBuffer) {
        let handle = MapHandle(UInt32(truncatingIfNeeded: raw))
        line.append("map#")
        line.append(decimal: UInt64(handle.index))
        if handle.generation != 0 {
            line.append(UInt8(ascii: "."))
            line.append(decimal: UInt64(handle.generation))
        }
    }

    /// Appends `sdc (8:32) in mpatha`. The argument carries the device the handle stood for
    /// (`LogArgument.path(_:device:)`): when the handle has been given to another device since,
    /// only that device is named (`sdc (8:32)`, or `path#N (8:32)` when its name is gone), never
    /// the handle's new device. `path#N` when nothing is known.
    func appendPath(_ raw: UInt64, to line: inout LogTextBuffer) {
        let handle = UInt32(truncatingIfNeeded: raw)
        let carried = raw >> 32 == 0 ? nil : DevNo(major: UInt32(raw >> 52), minor: UInt32((raw >> 32) & 0xF_FFFF))
        let done = table.withLock { t -> Bool in
            guard let path = t.paths[handle], carried == nil || carried == path.device else {
                guard let device = carried, let name = t.devices[device] else { return false }
                Self.append(name, to: &line)
                line.append(" (")
                line.append(decimal: UInt64(device.major))
                line.append(UInt8(ascii: ":"))
                line.append(decimal: UInt64(device.minor))
                line.append(")")
                return true
            }
            Self.append(path.kernelName, to: &line)
            line.append(" (")
            line.append(decimal: UInt64(path.device.major))
            line.append(UInt8(ascii: ":"))
            line.append(decimal: UInt64(path.device.minor))
            line.append(")")
            if let map = t.maps[path.map] {
                line.append(" in ")
                Self.append(map, to: &line)
            }
            return true
        }
        if !done { Self.appendPathNumbers(raw, to: &line) }
    }

    /// `path#N (8:32)`: the handle and the device it stood for, or `path#N` when the record
    /// carries no device.
    static func appendPathNumbers(_ raw: UInt64, to line: inout LogTextBuffer) {
        line.append("path#")
        line.append(decimal: raw & 0xFFFF_FFFF)
        guard raw >> 32 != 0 else { return }
        line.append(" (")
        line.append(decimal: raw >> 52)
        line.append(UInt8(ascii: ":"))
        line.append(decimal: (raw >> 32) & 0xF_FFFF)
        line.append(")")
    }

    /// Appends the kernel name before the device number (`sdc (8:32)`) when it is known.
    func appendDeviceName(_ device: DevNo, to line: inout LogTextBuffer) -> Bool {
        table.withLock { t -> Bool in
            guard let name = t.devices[device] else { return false }
            Self.append(name, to: &line)
            line.append(" (")
            return true
        }
    }

    private static func append(_ text: String, to line: inout LogTextBuffer) {
        var text = text
        text.withUTF8 { line.append($0) }
    }
}
