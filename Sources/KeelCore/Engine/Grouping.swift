// Path grouping policies (failover, multibus, group_by_prio/serial/node_name/tpg) and group choice.

/// Splits a map's paths into ordered path groups and picks the best usable group.
/// Works in preallocated scratch space: regrouping allocates nothing.
public enum Grouping {
    /// Scratch arrays sized to the largest map.
    @usableFromInline
    struct Scratch {
        @usableFromInline var members: [Int32]
        @usableFromInline var provisional: [UInt16]
        @usableFromInline var groupPrioSum: [Int64]
        @usableFromInline var groupSize: [Int32]
        /// Per group: made of marginal paths (`marginal_pathgroups`).
        @usableFromInline var groupMarginal: [Bool]
        @usableFromInline var order: [UInt16]
        @usableFromInline var rank: [UInt16]

        init(capacity: Int) {
            members = Array(repeating: -1, count: capacity)
            provisional = Array(repeating: 0, count: capacity)
            groupPrioSum = Array(repeating: 0, count: capacity)
            groupSize = Array(repeating: 0, count: capacity)
            groupMarginal = Array(repeating: false, count: capacity)
            order = Array(repeating: 0, count: capacity)
            rank = Array(repeating: 0, count: capacity)
        }
    }

    /// The key that puts paths of one group together under `policy`.
    @inlinable
    static func groupKey(_ d: PathDescriptor, _ policy: GroupingPolicy) -> Int64 {
        switch policy {
        case .failover: return Int64(d.device.key & 0x7fff_ffff_ffff_ffff)
        case .multibus: return 0
        case .groupByPrio: return -Int64(d.priority)
        case .groupBySerial: return Int64(d.serialKey)
        case .groupByNodeName: return Int64(d.nodeKey)
        case .groupByTPG: return Int64(d.tpgKey)
        }
    }

    /// Whether the path counts as marginal in its map's grouping (`marginal_pathgroups` on).
    @inlinable
    static func marginal(_ d: PathDescriptor, _ policy: MapPolicy) -> Bool { policy.marginalPathGroups && d.marginal }

    /// Assigns `group` (0-based, in table order) to every path of map `m` and sets its group count.
    /// Groups are ordered by mean path priority, highest first; ties keep the smaller key first.
    /// With `marginal_pathgroups`, marginal paths are grouped by the same policy among themselves,
    /// and their groups come after every group of normal paths (multipath-tools' marginal groups).
    static func assign(_ e: Engine, map m: Int) {
        let mapPolicy = e.maps[m].policy
        let policy = mapPolicy.grouping
        var n = 0
        var p = e.maps[m].firstPath
        while p >= 0 {
            e.groupScratch.members[n] = p
            n += 1
            p = e.paths[Int(p)].nextInMap
        }
        if n == 0 { e.maps[m].groupCount = 0; return }
        // Insertion sort by (marginal, group key, device): maps hold few paths, and this needs no memory.
        for i in 1..<n {
            let x = e.groupScratch.members[i]
            let kx = groupKey(e.paths[Int(x)].descriptor, policy)
            let dx = e.paths[Int(x)].descriptor.device
            let mx = marginal(e.paths[Int(x)].descriptor, mapPolicy)
            var j = i - 1
            while j >= 0 {
                let y = e.groupScratch.members[j]
                let ky = groupKey(e.paths[Int(y)].descriptor, policy)
                let my = marginal(e.paths[Int(y)].descriptor, mapPolicy)
                if (!my && mx) || (my == mx && (ky < kx || (ky == kx && e.paths[Int(y)].descriptor.device < dx))) { break }
                e.groupScratch.members[j + 1] = y
                j -= 1
            }
            e.groupScratch.members[j + 1] = x
        }
        // Provisional groups: runs of equal key.
        var groups = 0
        var lastKey: Int64 = 0
        var lastMarginal = false
        for i in 0..<n {
            let d = e.paths[Int(e.groupScratch.members[i])].descriptor
            let k = groupKey(d, policy)
            let isMarginal = marginal(d, mapPolicy)
            if i == 0 || k != lastKey || isMarginal != lastMarginal || policy == .failover {
                e.groupScratch.groupPrioSum[groups] = 0
                e.groupScratch.groupSize[groups] = 0
                e.groupScratch.groupMarginal[groups] = isMarginal
                groups += 1
                lastKey = k
                lastMarginal = isMarginal
            }
            e.groupScratch.provisional[i] = UInt16(groups - 1)
            e.groupScratch.groupPrioSum[groups - 1] += Int64(d.priority)
            e.groupScratch.groupSize[groups - 1] += 1
        }
        // Order groups by mean priority (descending), stable on the key order; marginal groups last.
        for g in 0..<groups { e.groupScratch.order[g] = UInt16(g) }
        if groups > 1 {
            for i in 1..<groups {
                let x = e.groupScratch.order[i]
                var j = i - 1
                while j >= 0 {
                    let y = e.groupScratch.order[j]
                    // Compare sum_x/size_x > sum_y/size_y without division (provisional groups
                    // are already normal first, so a marginal x never passes a normal y).
                    let better = e.groupScratch.groupMarginal[Int(x)] == e.groupScratch.groupMarginal[Int(y)]
                        && e.groupScratch.groupPrioSum[Int(x)] * Int64(e.groupScratch.groupSize[Int(y)])
                        > e.groupScratch.groupPrioSum[Int(y)] * Int64(e.groupScratch.groupSize[Int(x)])
                    if !better { break }
                    e.groupScratch.order[j + 1] = y
                    j -= 1
                }
                e.groupScratch.order[j + 1] = x
            }
        }
        for r in 0..<groups { e.groupScratch.rank[Int(e.groupScratch.order[r])] = UInt16(r) }
        for i in 0..<n {
            let path = Int(e.groupScratch.members[i])
            e.paths[path].group = e.groupScratch.rank[Int(e.groupScratch.provisional[i])]
        }
        e.maps[m].groupCount = UInt16(groups)
    }

    /// The best group to use now, 1-based: the one with the highest mean priority over its usable
    /// paths (ties: table order), a marginal group only when no normal group has a usable path;
    /// 0 when no path is usable.
    static func bestGroup(_ e: Engine, map m: Int) -> UInt16 {
        let groups = Int(e.maps[m].groupCount)
        if groups == 0 { return 0 }
        let mapPolicy = e.maps[m].policy
        for g in 0..<groups { e.groupScratch.groupPrioSum[g] = 0; e.groupScratch.groupSize[g] = 0; e.groupScratch.groupMarginal[g] = false }
        var normalUsable = false
        var p = e.maps[m].firstPath
        while p >= 0 {
            let r = e.paths[Int(p)]
            if Int(r.group) < groups && marginal(r.descriptor, mapPolicy) { e.groupScratch.groupMarginal[Int(r.group)] = true }
            if r.isUsable && Int(r.group) < groups {
                e.groupScratch.groupPrioSum[Int(r.group)] += Int64(r.descriptor.priority)
                e.groupScratch.groupSize[Int(r.group)] += 1
                if !marginal(r.descriptor, mapPolicy) { normalUsable = true }
            }
            p = r.nextInMap
        }
        var best = -1
        for g in 0..<groups where e.groupScratch.groupSize[g] > 0 && !(normalUsable && e.groupScratch.groupMarginal[g]) {
            if best < 0 {
                best = g
            } else if e.groupScratch.groupPrioSum[g] * Int64(e.groupScratch.groupSize[best])
                        > e.groupScratch.groupPrioSum[best] * Int64(e.groupScratch.groupSize[g]) {
                best = g
            }
        }
        return best < 0 ? 0 : UInt16(best + 1)
    }

    /// Usable paths in one group (1-based).
    static func usableCount(_ e: Engine, map m: Int, group: UInt16) -> Int {
        var n = 0
        var p = e.maps[m].firstPath
        while p >= 0 {
            let r = e.paths[Int(p)]
            if r.isUsable && Int(r.group) + 1 == Int(group) { n += 1 }
            p = r.nextInMap
        }
        return n
    }
}
