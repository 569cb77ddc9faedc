// The SAN's state: conditions of hosts, target ports and paths, ALUA states, and the LUN stores.

import KeelCore

/// How a host, a target port or a single path behaves. The condition a path sees is the worst
/// of its host's, its target port's and its own: offline, then hung, then slow (the longest
/// latency), then online.
public enum PathCondition: Sendable, Equatable, BitwiseCopyable, CustomStringConvertible {
    /// I/O and checks work with a small random latency.
    case online
    /// I/O and checks fail fast (the device is offline, the link is down).
    case offline
    /// I/O and checks are lost: a check never completes; an I/O errors after the SCSI command
    /// timeout, at which point the multipath target fails the path.
    case hung
    /// I/O and checks take this long.
    case slow(latencyNs: Nanoseconds)

    var severity: Int {
        switch self {
        case .online: return 0
        case .slow: return 1
        case .hung: return 2
        case .offline: return 3
        }
    }

    /// The worse of two conditions.
    public func worse(_ other: PathCondition) -> PathCondition {
        if case .slow(let a) = self, case .slow(let b) = other { return .slow(latencyNs: max(a, b)) }
        return other.severity > severity ? other : self
    }

    public var description: String {
        switch self {
        case .online: return "online"
        case .offline: return "offline"
        case .hung: return "hung"
        case .slow(let ns): return "slow(\(ns)ns)"
        }
    }
}

/// The asymmetric access state of a target port (ALUA), per port as scsi_dh_alua sees it.
public enum AluaState: UInt8, Sendable, Equatable, BitwiseCopyable, CaseIterable, CustomStringConvertible {
    case activeOptimized
    case activeNonOptimized
    /// Checks say ghost; I/O is rejected (scsi_dh_alua fails it), so the target fails the path.
    case standby
    /// Checks say pending; I/O is rejected like standby (dm-multipath treats the retry status
    /// as a path error).
    case transitioning

    /// The alua prioritizer's value: 50 optimized, 10 non-optimized, 1 standby, 0 otherwise.
    public var priority: Int {
        switch self {
        case .activeOptimized: return 50
        case .activeNonOptimized: return 10
        case .standby: return 1
        case .transitioning: return 0
        }
    }

    /// Whether I/O sent through a port in this state is serviced.
    public var servicesIO: Bool { self == .activeOptimized || self == .activeNonOptimized }

    public var description: String {
        switch self {
        case .activeOptimized: return "active/optimized"
        case .activeNonOptimized: return "active/non-optimized"
        case .standby: return "standby"
        case .transitioning: return "transitioning"
        }
    }
}

/// A block's content in the simulation: which LUN and block a write was meant for, and the
/// write's version (per block, from 1; version 0 is the block's initial content). A read that
/// returns another LUN's or block's stamp is corruption; an older version is a lost write.
public struct SimStamp: Sendable, Equatable, Hashable, BitwiseCopyable, CustomStringConvertible {
    public var raw: UInt64
    public init(raw: UInt64) { self.raw = raw }
    public init(lun: Int, block: Int, version: UInt32) {
        precondition(lun < 1 << 16 && block < 1 << 16)
        raw = UInt64(lun) << 48 | UInt64(block) << 32 | UInt64(version)
    }
    public var lun: Int { Int(raw >> 48) }
    public var block: Int { Int((raw >> 32) & 0xFFFF) }
    public var version: UInt32 { UInt32(truncatingIfNeeded: raw) }
    public var description: String { "lun\(lun)/blk\(block)/v\(version)" }
}

/// The SAN's mutable state: conditions, ALUA states, which paths exist, and one store of block
/// stamps per LUN, shared by every path to that LUN.
public struct SimSAN: Sendable {
    public let fabric: FabricSpec
    public let blocksPerLun: Int
    private(set) var hostConditions: [PathCondition]
    private(set) var portConditions: [PathCondition]
    private(set) var pathConditions: [PathCondition]
    private(set) var portAlua: [AluaState]
    private(set) var present: [Bool]
    private var store: [UInt64]
    private var writesToDrop: [Int]
    private var readsToCorrupt: [Int]

    init(fabric: FabricSpec, blocksPerLun: Int) {
        fabric.validate()
        precondition(blocksPerLun >= 1 && blocksPerLun <= 1 << 16, "1...65536 blocks per LUN")
        self.fabric = fabric
        self.blocksPerLun = blocksPerLun
        hostConditions = Array(repeating: .online, count: fabric.hosts)
        portConditions = Array(repeating: .online, count: fabric.targetPortCount)
        pathConditions = Array(repeating: .online, count: fabric.pathCount)
        portAlua = (0..<fabric.targetPortCount).map { fabric.initialAlua(ofTargetPort: $0) }
        present = Array(repeating: true, count: fabric.pathCount)
        store = []
        store.reserveCapacity(fabric.lunCount * blocksPerLun)
        for lun in 0..<fabric.lunCount {
            for block in 0..<blocksPerLun { store.append(SimStamp(lun: lun, block: block, version: 0).raw) }
        }
        writesToDrop = Array(repeating: 0, count: fabric.lunCount)
        readsToCorrupt = Array(repeating: 0, count: fabric.lunCount)
    }

    // MARK: - Reading the state

    /// A host's own condition.
    public func condition(ofHost host: Int) -> PathCondition { hostConditions[host] }
    /// A target port's own condition.
    public func condition(ofTargetPort port: Int) -> PathCondition { portConditions[port] }
    /// The path's own condition (not combined with its host's and port's).
    public func ownCondition(ofPath path: Int) -> PathCondition { pathConditions[path] }
    /// A target port's ALUA state.
    public func alua(ofTargetPort port: Int) -> AluaState { portAlua[port] }
    /// Whether the path's device exists (not removed).
    public func isPresent(path: Int) -> Bool { present[path] }

    /// The condition the path sees: the worst of its host's, its target port's and its own.
    public func effectiveCondition(ofPath path: Int) -> PathCondition {
        pathConditions[path]
            .worse(portConditions[fabric.targetPort(ofPath: path)])
            .worse(hostConditions[fabric.host(ofPath: path)])
    }

    /// The path's priority now, from its target port's ALUA state.
    public func priority(ofPath path: Int) -> Int { portAlua[fabric.targetPort(ofPath: path)].priority }

    /// What a check of the path would report if it completed now; `.timeout` when the path is
    /// hung (the check is lost).
    public func expectedCheckResult(ofPath path: Int) -> CheckResult {
        guard present[path] else { return .removed }
        switch effectiveCondition(ofPath: path) {
        case .offline: return .down
        case .hung: return .timeout
        case .online, .slow:
            switch portAlua[fabric.targetPort(ofPath: path)] {
            case .activeOptimized, .activeNonOptimized: return .up
            case .standby: return .ghost
            case .transitioning: return .pending
            }
        }
    }

    /// Whether I/O sent down the path now would succeed.
    public func servicesIO(path: Int) -> Bool { expectedCheckResult(ofPath: path) == .up }

    /// The block stamp a LUN store holds.
    public func stamp(lun: Int, block: Int) -> SimStamp { SimStamp(raw: store[lun * blocksPerLun + block]) }

    // MARK: - Changing the state

    mutating func setCondition(host: Int, _ condition: PathCondition) { hostConditions[host] = condition }
    mutating func setCondition(targetPort: Int, _ condition: PathCondition) { portConditions[targetPort] = condition }
    mutating func setCondition(path: Int, _ condition: PathCondition) { pathConditions[path] = condition }
    mutating func setAlua(targetPort: Int, _ state: AluaState) { portAlua[targetPort] = state }
    mutating func setPresent(path: Int, _ isPresent: Bool) { present[path] = isPresent }
    mutating func dropWrites(lun: Int, count: Int) { writesToDrop[lun] += count }
    mutating func corruptReads(lun: Int, count: Int) { readsToCorrupt[lun] += count }

    /// Stores a write; an injected fault may acknowledge it without storing it.
    mutating func write(lun: Int, block: Int, stamp: SimStamp) {
        if writesToDrop[lun] > 0 {
            writesToDrop[lun] -= 1
            return
        }
        store[lun * blocksPerLun + block] = stamp.raw
    }

    /// Reads a block; an injected fault may return a stamp nobody wrote.
    mutating func read(lun: Int, block: Int) -> SimStamp {
        let stored = SimStamp(raw: store[lun * blocksPerLun + block])
        if readsToCorrupt[lun] > 0 {
            readsToCorrupt[lun] -= 1
            return SimStamp(lun: stored.lun, block: stored.block, version: .max)
        }
        return stored
    }
}
