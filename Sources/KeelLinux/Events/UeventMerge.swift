// Filtering and merging a burst of uevents (multipathd's merge_uevq, always on), as pure functions.

/// The events drained from the monitor in one go, plus what the monitor learned while draining.
public struct UeventBatch: Sendable, Equatable {
    /// Records in arrival order.
    public var records: [UeventRecord]
    /// The kernel dropped events (receive buffer overflow, ENOBUFS): the caller must rediscover
    /// everything, since any path may have changed unseen.
    public var resyncNeeded: Bool
    /// Events libudev returned that lacked `ACTION`/`DEVPATH` (not recorded).
    public var malformedCount: Int

    public init(records: [UeventRecord] = [], resyncNeeded: Bool = false, malformedCount: Int = 0) {
        self.records = records
        self.resyncNeeded = resyncNeeded
        self.malformedCount = malformedCount
    }

    /// Empties the batch, keeping its capacity.
    public mutating func removeAll() {
        records.removeAll(keepingCapacity: true)
        resyncNeeded = false
        malformedCount = 0
    }
}

/// Path events that share one WWID: the consumer applies them in order and reloads the map once.
public struct WWIDGroup: Sendable, Equatable {
    public var wwid: WWIDText
    /// Indices into `MergedUevents.events`, ascending.
    public var eventIndices: [Int]
}

/// A burst after filtering, with path events grouped by WWID.
public struct MergedUevents: Sendable, Equatable {
    /// The surviving events, in arrival order.
    public var events: [UeventRecord]
    /// Path events with a WWID, one group per WWID, ordered by each group's first event.
    public var wwidGroups: [WWIDGroup]
    /// Indices of path events whose WWID is unknown (each needs its own look at sysfs).
    public var ungrouped: [Int]
    /// Indices of device-mapper (`dm-N`) events, in order; never filtered or grouped.
    public var mapEvents: [Int]
    /// Events dropped because a later event made them redundant.
    public var filteredCount: Int
    /// Carried over from the batch: rediscover everything.
    public var resyncNeeded: Bool
}

/// multipathd's uevent filtering and merging (libmultipath/uevent.c `merge_uevq`), always on.
public enum UeventMerge {
    /// Whether `later` makes `earlier` redundant (multipath-tools' `uevent_can_filter`): same kernel
    /// name, not a dm device, and either `later` is a remove (the device is gone, whatever came
    /// before) or `later` is an add and `earlier` a change (the add reads everything afresh).
    public static func cancels(_ later: UeventRecord, _ earlier: UeventRecord) -> Bool {
        if later.isDeviceMapper || later.kernelName != earlier.kernelName { return false }
        if later.action == .remove { return true }
        return later.action == .add && earlier.action == .change
    }

    /// The events that survive filtering, in order, and how many were dropped.
    public static func filter(_ records: [UeventRecord]) -> (survivors: [UeventRecord], filteredCount: Int) {
        var alive = [Bool](repeating: true, count: records.count)
        var filtered = 0
        // Every later event judges the earlier ones still alive (newest first, like multipathd).
        for later in stride(from: records.count - 1, through: 0, by: -1) where alive[later] {
            for earlier in stride(from: later - 1, through: 0, by: -1) where alive[earlier] {
                if cancels(records[later], records[earlier]) {
                    alive[earlier] = false
                    filtered += 1
                }
            }
        }
        var survivors: [UeventRecord] = []
        survivors.reserveCapacity(records.count - filtered)
        for i in records.indices where alive[i] { survivors.append(records[i]) }
        return (survivors, filtered)
    }

    /// Filters the batch and groups path events by WWID. `wwidOf` supplies the WWID of events that
    /// carry none (e.g. kernel-source events, or a remove of a known path); return nil if unknown.
    public static func merge(_ batch: UeventBatch, wwidOf: (UeventRecord) -> WWIDText? = { _ in nil }) -> MergedUevents {
        let (events, filteredCount) = filter(batch.records)
        var groups: [WWIDGroup] = []
        var groupIndex: [String: Int] = [:]
        var ungrouped: [Int] = []
        var mapEvents: [Int] = []
        for (i, event) in events.enumerated() {
            if event.isDeviceMapper {
                mapEvents.append(i)
                continue
            }
            let wwid = event.wwid.isEmpty ? wwidOf(event) : event.wwid
            guard let wwid, !wwid.isEmpty else {
                ungrouped.append(i)
                continue
            }
            let key = wwid.description
            if let g = groupIndex[key] {
                groups[g].eventIndices.append(i)
            } else {
                groupIndex[key] = groups.count
                groups.append(WWIDGroup(wwid: wwid, eventIndices: [i]))
            }
        }
        return MergedUevents(events: events, wwidGroups: groups, ungrouped: ungrouped, mapEvents: mapEvents,
                             filteredCount: filteredCount, resyncNeeded: batch.resyncNeeded)
    }
}
