// The simulated application: a bounded stream of writes and verifying reads per map, and what it detected.

import KeelCore

/// How the workload drives each map.
public struct WorkloadSpec: Sendable, Equatable {
    /// I/Os kept outstanding per map (0: no workload).
    public var outstandingPerMap: Int
    /// Blocks per LUN the workload spreads its I/O over; at least `outstandingPerMap`.
    public var blocksPerLun: Int
    /// Pause between one I/O's completion and the next I/O of its slot, drawn uniformly.
    public var thinkTimeMinNs: Nanoseconds
    public var thinkTimeMaxNs: Nanoseconds
    /// Pause after an I/O failed before its slot issues again.
    public var errorBackoffNs: Nanoseconds
    /// Anomalies kept in `SimWorkload.anomalies`; later ones are only counted.
    public var anomalyLogMax: Int
    /// Whether a map's workload starts when its first table is loaded.
    public var startsOnLoad: Bool

    public init(outstandingPerMap: Int = 4, blocksPerLun: Int = 64,
                thinkTimeMinNs: Nanoseconds = 500_000, thinkTimeMaxNs: Nanoseconds = 4 * Time.nsPerMs,
                errorBackoffNs: Nanoseconds = 100 * Time.nsPerMs, anomalyLogMax: Int = 4096, startsOnLoad: Bool = true) {
        self.outstandingPerMap = outstandingPerMap
        self.blocksPerLun = blocksPerLun
        self.thinkTimeMinNs = thinkTimeMinNs
        self.thinkTimeMaxNs = thinkTimeMaxNs
        self.errorBackoffNs = errorBackoffNs
        self.anomalyLogMax = anomalyLogMax
        self.startsOnLoad = startsOnLoad
    }

    /// No I/O at all.
    public static let none = WorkloadSpec(outstandingPerMap: 0)
}

/// A read or a write.
public enum IOKind: UInt8, Sendable, Equatable, BitwiseCopyable, CustomStringConvertible {
    case read
    case write
    public var description: String { self == .read ? "read" : "write" }
}

/// Something the workload saw go wrong.
public struct WorkloadAnomaly: Sendable, Equatable {
    /// What went wrong.
    public enum Kind: UInt8, Sendable, Equatable, CustomStringConvertible {
        /// The I/O completed with an error (EIO) to the application.
        case ioError
        /// A read returned an older version than a write that was acknowledged.
        case lostWrite
        /// A read returned a stamp never written to that block.
        case corruption
        public var description: String {
            switch self {
            case .ioError: return "I/O error"
            case .lostWrite: return "lost write"
            case .corruption: return "corruption"
            }
        }
    }

    public var kind: Kind
    public var map: MapHandle
    public var block: Int
    public var io: IOKind
    /// When the application issued the I/O.
    public var issuedNs: Nanoseconds
    /// When it completed.
    public var timeNs: Nanoseconds
    /// The version the block should hold (the last acknowledged write); for an I/O error of a
    /// write, the version that was being written.
    public var expectedVersion: UInt32
    /// What the read returned (nil for an I/O error).
    public var observed: SimStamp?
}

/// Counters of one map or of the whole workload.
public struct WorkloadStats: Sendable, Equatable {
    /// I/Os the application issued.
    public var issued = 0
    /// I/Os that completed successfully.
    public var completed = 0
    public var reads = 0
    public var writes = 0
    public var ioErrors = 0
    public var lostWrites = 0
    public var corruptions = 0
    /// Sum and maximum of successful I/Os' latency, from issue (including any time queued and
    /// any retries on other paths) to completion.
    public var latencySumNs: Int64 = 0
    public var latencyMaxNs: Nanoseconds = 0
    public var firstErrorNs: Nanoseconds?
    public var lastErrorNs: Nanoseconds?

    public init() {}

    /// I/O errors, lost writes and corruptions together.
    public var anomalyCount: Int { ioErrors + lostWrites + corruptions }
}

/// A request to be told when the first successful I/O completes at or after an instant.
public struct CompletionWatch: Hashable, Sendable {
    public let id: Int
}

/// The workload: per map, `outstandingPerMap` slots, each issuing one I/O at a time. A map
/// alternates writes (of the block's next version) and reads that verify what they find. No
/// two outstanding I/Os of a map touch the same block, so every read has one right answer
/// (or, after a write failed, one of two). Queued I/O simply waits; the workload has no timeout.
public struct SimWorkload {
    public let spec: WorkloadSpec
    public let mapCount: Int
    /// Totals over every map.
    public private(set) var total = WorkloadStats()
    /// The first `spec.anomalyLogMax` anomalies, in the order they happened.
    public private(set) var anomalies: [WorkloadAnomaly] = []
    /// Anomalies past the log's limit (counted in the stats, not kept).
    public private(set) var anomaliesDropped = 0
    /// Successful I/O latencies: bucket k counts latencies in [2^(k-1), 2^k) ns (bucket 0: 0 ns).
    public private(set) var latencyHistogram: [Int] = Array(repeating: 0, count: 65)

    struct Slot {
        var kind = IOKind.read
        var block: Int32 = -1
        var version: UInt32 = 0
        var issuedNs: Nanoseconds = 0
    }

    struct Watch {
        var map: Int
        var atOrAfterNs: Nanoseconds
        var issuedBefore: Bool
        var resultNs: Nanoseconds?
    }

    /// One I/O to carry out.
    struct Request {
        var kind: IOKind
        var block: Int
        /// The stamp a write stores.
        var stamp: SimStamp
    }

    private var perMap: [WorkloadStats]
    private var slots: [Slot]
    private var acknowledged: [UInt32]
    private var highestIssued: [UInt32]
    private var blockBusy: [Bool]
    private var writesNext: [Bool]
    private var watches: [Watch] = []
    private var unresolvedWatches = 0
    private var random: SimRandom

    init(spec: WorkloadSpec, mapCount: Int, seed: UInt64) {
        precondition(spec.outstandingPerMap >= 0)
        precondition(spec.outstandingPerMap == 0 || spec.blocksPerLun >= spec.outstandingPerMap,
                     "each outstanding I/O needs a block of its own")
        precondition(spec.thinkTimeMinNs >= 0 && spec.thinkTimeMaxNs >= spec.thinkTimeMinNs)
        precondition(spec.errorBackoffNs > 0, "an error backoff of 0 would spin at one instant")
        self.spec = spec
        self.mapCount = mapCount
        perMap = Array(repeating: WorkloadStats(), count: mapCount)
        slots = Array(repeating: Slot(), count: mapCount * spec.outstandingPerMap)
        acknowledged = Array(repeating: 0, count: mapCount * spec.blocksPerLun)
        highestIssued = acknowledged
        blockBusy = Array(repeating: false, count: mapCount * spec.blocksPerLun)
        writesNext = Array(repeating: true, count: mapCount)
        anomalies.reserveCapacity(spec.anomalyLogMax)
        random = SimRandom(seed: seed, stream: 3)
    }

    /// Slots over all maps; slot s belongs to map `s / outstandingPerMap`.
    public var slotCount: Int { slots.count }

    /// One map's counters.
    public func stats(_ map: MapHandle) -> WorkloadStats { perMap[map.index] }

    /// The version of a block of the map's LUN the last acknowledged write stored.
    public func acknowledgedVersion(_ map: MapHandle, block: Int) -> UInt32 {
        acknowledged[map.index * spec.blocksPerLun + block]
    }

    /// The blocks the map's outstanding I/Os touch (queued or in flight), in slot order.
    public func outstandingBlocks(_ map: MapHandle) -> [Int] {
        let per = spec.outstandingPerMap
        return slots[map.index * per ..< (map.index + 1) * per].filter { $0.block >= 0 }.map { Int($0.block) }
    }

    func map(ofSlot slot: Int) -> Int { slot / spec.outstandingPerMap }

    /// A pause before a slot's first I/O or between two I/Os.
    mutating func thinkTimeNs() -> Nanoseconds { random.range(spec.thinkTimeMinNs...spec.thinkTimeMaxNs) }

    /// Starts the slot's next I/O: picks the kind (alternating per map) and a block no other
    /// outstanding I/O of the map touches.
    mutating func begin(slot s: Int, nowNs: Nanoseconds) -> Request {
        let m = map(ofSlot: s)
        precondition(slots[s].block < 0, "slot \(s) already has an I/O outstanding")
        let base = m * spec.blocksPerLun
        var block = random.below(spec.blocksPerLun)
        while blockBusy[base + block] { block = (block + 1) % spec.blocksPerLun }
        blockBusy[base + block] = true
        let kind: IOKind = writesNext[m] ? .write : .read
        writesNext[m].toggle()
        var version: UInt32 = 0
        if kind == .write {
            highestIssued[base + block] += 1
            version = highestIssued[base + block]
        }
        slots[s] = Slot(kind: kind, block: Int32(block), version: version, issuedNs: nowNs)
        perMap[m].issued += 1
        total.issued += 1
        return Request(kind: kind, block: block, stamp: SimStamp(lun: m, block: block, version: version))
    }

    /// The slot's I/O succeeded; `observed` is what a read returned. Returns the pause before
    /// the slot's next I/O.
    mutating func succeeded(slot s: Int, nowNs: Nanoseconds, observed: SimStamp) -> Nanoseconds {
        let m = map(ofSlot: s)
        let slot = slots[s]
        let b = m * spec.blocksPerLun + Int(slot.block)
        let latencyNs = nowNs - slot.issuedNs
        count(map: m) { stats in
            stats.completed += 1
            stats.latencySumNs += latencyNs
            stats.latencyMaxNs = max(stats.latencyMaxNs, latencyNs)
            if slot.kind == .write { stats.writes += 1 } else { stats.reads += 1 }
        }
        latencyHistogram[latencyNs <= 0 ? 0 : 64 - latencyNs.leadingZeroBitCount] += 1
        if slot.kind == .write {
            acknowledged[b] = slot.version
        } else {
            verify(map: m, slot: slot, blockIndex: b, observed: observed, nowNs: nowNs)
        }
        resolveWatches(map: m, issuedNs: slot.issuedNs, nowNs: nowNs)
        release(slot: s, blockIndex: b)
        return thinkTimeNs()
    }

    /// The slot's I/O completed with an error to the application. Returns the pause before the
    /// slot's next I/O. A failed write leaves the block holding either version.
    mutating func failed(slot s: Int, nowNs: Nanoseconds) -> Nanoseconds {
        let m = map(ofSlot: s)
        let slot = slots[s]
        let b = m * spec.blocksPerLun + Int(slot.block)
        count(map: m) { stats in
            stats.ioErrors += 1
            if stats.firstErrorNs == nil { stats.firstErrorNs = nowNs }
            stats.lastErrorNs = nowNs
        }
        log(WorkloadAnomaly(kind: .ioError, map: MapHandle(index: m), block: Int(slot.block), io: slot.kind,
                            issuedNs: slot.issuedNs, timeNs: nowNs,
                            expectedVersion: slot.kind == .write ? slot.version : acknowledged[b], observed: nil))
        release(slot: s, blockIndex: b)
        return spec.errorBackoffNs
    }

    /// Asks for the time of the first successful completion at or after `atOrAfterNs`, of one
    /// map's I/O or (map nil) any map's. With `issuedBefore`, only I/O issued before that
    /// instant counts: "the first I/O that waited through it completes".
    public mutating func watchFirstCompletion(map: MapHandle?, atOrAfterNs: Nanoseconds, issuedBefore: Bool = false) -> CompletionWatch {
        watches.append(Watch(map: map?.index ?? -1, atOrAfterNs: atOrAfterNs, issuedBefore: issuedBefore, resultNs: nil))
        unresolvedWatches += 1
        return CompletionWatch(id: watches.count - 1)
    }

    /// The answer to a watch, nil while no such completion has happened.
    public func firstCompletionNs(_ watch: CompletionWatch) -> Nanoseconds? { watches[watch.id].resultNs }

    private mutating func verify(map m: Int, slot: Slot, blockIndex b: Int, observed: SimStamp, nowNs: Nanoseconds) {
        let kind: WorkloadAnomaly.Kind
        if observed.lun != m || observed.block != Int(slot.block) || observed.version > highestIssued[b] {
            kind = .corruption
            count(map: m) { $0.corruptions += 1 }
        } else if observed.version < acknowledged[b] {
            kind = .lostWrite
            count(map: m) { $0.lostWrites += 1 }
        } else {
            return
        }
        log(WorkloadAnomaly(kind: kind, map: MapHandle(index: m), block: Int(slot.block), io: .read,
                            issuedNs: slot.issuedNs, timeNs: nowNs, expectedVersion: acknowledged[b], observed: observed))
        // Report each loss once: the block now holds what was read.
        if kind == .lostWrite { acknowledged[b] = observed.version }
    }

    private mutating func resolveWatches(map m: Int, issuedNs: Nanoseconds, nowNs: Nanoseconds) {
        guard unresolvedWatches > 0 else { return }
        for i in watches.indices where watches[i].resultNs == nil {
            let w = watches[i]
            if (w.map < 0 || w.map == m) && nowNs >= w.atOrAfterNs && (!w.issuedBefore || issuedNs < w.atOrAfterNs) {
                watches[i].resultNs = nowNs
                unresolvedWatches -= 1
            }
        }
    }

    private mutating func release(slot s: Int, blockIndex b: Int) {
        blockBusy[b] = false
        slots[s].block = -1
    }

    private mutating func count(map m: Int, _ update: (inout WorkloadStats) -> Void) {
        update(&perMap[m])
        update(&total)
    }

    private mutating func log(_ anomaly: WorkloadAnomaly) {
        if anomalies.count < spec.anomalyLogMax { anomalies.append(anomaly) } else { anomaliesDropped += 1 }
    }
}
