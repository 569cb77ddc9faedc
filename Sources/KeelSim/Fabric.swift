// The simulated SAN's shape: arrays, target ports, SCSI hosts, LUNs, and the paths between them.

import KeelCore

/// Which target ports start active/optimized.
public enum AluaLayout: Sendable, Equatable {
    /// Every port active/optimized (prio 50 everywhere).
    case allOptimized
    /// In each array, the ports of controller 0 are active/optimized and the others
    /// active/non-optimized (an asymmetric array whose LUNs one controller owns).
    case firstControllerOptimized
}

/// The fabric of one simulated machine and its arrays.
///
/// A *host* is a SCSI host (an HBA port, `hostN` in sysfs): an initiator port of the one
/// simulated machine. Every host sees every target port (one zone), so every LUN has
/// `hosts × portsPerArray` paths. Target ports of an array belong to its controllers in turn
/// (port k to controller k % controllersPerArray).
///
/// Numbering, all 0-based and global: target port `p` is port `p % portsPerArray` of array
/// `p / portsPerArray`; LUN `l` is on array `l / lunsPerArray` and is served by map `l`; path `i`
/// goes to LUN `i / pathsPerLun` through host `(i % pathsPerLun) / portsPerArray` and that
/// LUN's array's port `i % portsPerArray`. Path `i` is the block device `8:(16 × i)`, as sd
/// numbers whole disks.
public struct FabricSpec: Sendable, Equatable {
    public var arrays: Int
    public var portsPerArray: Int
    public var controllersPerArray: Int
    public var hosts: Int
    public var lunsPerArray: Int
    public var alua: AluaLayout

    /// The most paths a fabric may have: device minors must stay below 2^20.
    public static let pathsMax = 65_536
    /// The most LUNs: the LUN number is 16 bits of a data stamp.
    public static let lunsMax = 65_536

    public init(arrays: Int = 1, portsPerArray: Int = 4, controllersPerArray: Int = 2, hosts: Int = 2,
                lunsPerArray: Int = 1, alua: AluaLayout = .firstControllerOptimized) {
        self.arrays = arrays
        self.portsPerArray = portsPerArray
        self.controllersPerArray = controllersPerArray
        self.hosts = hosts
        self.lunsPerArray = lunsPerArray
        self.alua = alua
    }

    /// Stops on a shape the simulation cannot number.
    public func validate() {
        precondition(arrays >= 1 && portsPerArray >= 1 && hosts >= 1 && lunsPerArray >= 1, "empty fabric")
        precondition(controllersPerArray >= 1 && controllersPerArray <= portsPerArray, "each controller needs a port")
        precondition(lunCount <= Self.lunsMax, "at most \(Self.lunsMax) LUNs")
        precondition(pathCount <= Self.pathsMax, "at most \(Self.pathsMax) paths")
    }

    public var targetPortCount: Int { arrays * portsPerArray }
    public var controllerCount: Int { arrays * controllersPerArray }
    public var lunCount: Int { arrays * lunsPerArray }
    public var pathsPerLun: Int { hosts * portsPerArray }
    public var pathCount: Int { lunCount * pathsPerLun }

    /// The array a target port belongs to.
    public func array(ofTargetPort port: Int) -> Int { port / portsPerArray }
    /// The global controller number of a target port.
    public func controller(ofTargetPort port: Int) -> Int {
        array(ofTargetPort: port) * controllersPerArray + (port % portsPerArray) % controllersPerArray
    }
    /// The target ports of one array.
    public func targetPorts(ofArray array: Int) -> Range<Int> {
        array * portsPerArray ..< (array + 1) * portsPerArray
    }
    /// The target ports of one controller (global controller number).
    public func targetPorts(ofController controller: Int) -> [Int] {
        let array = controller / controllersPerArray
        return targetPorts(ofArray: array).filter { self.controller(ofTargetPort: $0) == controller }
    }
    /// The array that serves a LUN.
    public func array(ofLun lun: Int) -> Int { lun / lunsPerArray }

    /// The path from `host` to `lun` through its array's port `portInArray`.
    public func pathIndex(lun: Int, host: Int, portInArray: Int) -> Int {
        lun * pathsPerLun + host * portsPerArray + portInArray
    }
    /// The LUN (and map) a path leads to.
    public func lun(ofPath path: Int) -> Int { path / pathsPerLun }
    /// The host a path leaves from.
    public func host(ofPath path: Int) -> Int { (path % pathsPerLun) / portsPerArray }
    /// The target port a path goes through.
    public func targetPort(ofPath path: Int) -> Int {
        array(ofLun: lun(ofPath: path)) * portsPerArray + path % portsPerArray
    }

    /// The block device of path `path` (`8:16i`).
    public func device(ofPath path: Int) -> DevNo { DevNo(major: 8, minor: UInt32(path) * 16) }

    /// The path a block device is, if it belongs to this fabric.
    public func pathIndex(of device: DevNo) -> Int? {
        guard device.major == 8, device.minor % 16 == 0 else { return nil }
        let index = Int(device.minor / 16)
        return index < pathCount ? index : nil
    }

    /// The key of a host-port/target-port pair: paths through the same pair share it.
    public func portKey(host: Int, targetPort: Int) -> UInt32 { UInt32(host * targetPortCount + targetPort) }

    /// Every path through a target port, in path order.
    public func forEachPath(throughTargetPort port: Int, _ body: (Int) -> Void) {
        let array = array(ofTargetPort: port)
        let portInArray = port % portsPerArray
        for lun in array * lunsPerArray ..< (array + 1) * lunsPerArray {
            for host in 0..<hosts { body(pathIndex(lun: lun, host: host, portInArray: portInArray)) }
        }
    }

    /// Every path through a host, in path order.
    public func forEachPath(throughHost host: Int, _ body: (Int) -> Void) {
        for lun in 0..<lunCount {
            for port in 0..<portsPerArray { body(pathIndex(lun: lun, host: host, portInArray: port)) }
        }
    }

    /// Where one path leads, and the keys a grouping policy needs.
    public func pathInfo(_ path: Int) -> SimPathInfo {
        let port = targetPort(ofPath: path)
        let host = host(ofPath: path)
        return SimPathInfo(
            device: device(ofPath: path), map: MapHandle(index: lun(ofPath: path)), lun: lun(ofPath: path),
            host: host, targetPort: port, array: array(ofTargetPort: port),
            controller: controller(ofTargetPort: port),
            portKey: portKey(host: host, targetPort: port),
            serialKey: UInt32(controller(ofTargetPort: port)),
            nodeKey: UInt32(port))
    }

    /// The ALUA state a target port starts in.
    public func initialAlua(ofTargetPort port: Int) -> AluaState {
        switch alua {
        case .allOptimized: return .activeOptimized
        case .firstControllerOptimized:
            return (port % portsPerArray) % controllersPerArray == 0 ? .activeOptimized : .activeNonOptimized
        }
    }
}

/// One path of the fabric: the device, where it leads, and its grouping keys.
///
/// `serialKey` is the global controller number (the serial a per-controller array reports, for
/// `group_by_serial`); `nodeKey` is the global target port number (each target port its own
/// target node, for `group_by_node_name`); `portKey` names the host/target port pair.
public struct SimPathInfo: Sendable, Equatable {
    public var device: DevNo
    public var map: MapHandle
    public var lun: Int
    public var host: Int
    public var targetPort: Int
    public var array: Int
    public var controller: Int
    public var portKey: UInt32
    public var serialKey: UInt32
    public var nodeKey: UInt32
}

/// One map of the simulated machine: a LUN and its present paths, with their current priorities.
public struct SimMapInfo: Sendable, Equatable {
    public var map: MapHandle
    public var lun: Int
    public var array: Int
    public var paths: [Path]

    /// A present path and its priority now (from its target port's ALUA state).
    public struct Path: Sendable, Equatable {
        public var info: SimPathInfo
        public var priority: Int
        public var device: DevNo { info.device }

        /// The engine's description of this path.
        public var descriptor: PathDescriptor {
            PathDescriptor(device: info.device, priority: Int32(priority), portKey: info.portKey,
                           serialKey: info.serialKey, nodeKey: info.nodeKey)
        }
    }
}
