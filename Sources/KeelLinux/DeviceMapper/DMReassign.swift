// `reset map M` (multipathd's reassign): a device-mapper device built directly on a path device
// of M (a linear or LVM volume activated before the map existed, holding `sdc` itself) is moved
// onto the map, so its I/O gets M's failover. Whole disks only; a device on a path's partition is
// left alone (and named in the answer).
import KeelCore

public enum DMReassign {
    /// `params` with every device word equal to `from` (`8:32`) replaced by `to`; nil when no
    /// word names `from`.
    public static func rewrite(params: String, from: DevNo, to: DevNo) -> String? {
        let old = from.description
        var changed = false
        let words = params.split(separator: " ", omittingEmptySubsequences: false).map { word -> Substring in
            guard word == old else { return word }
            changed = true
            return Substring(to.description)
        }
        return changed ? words.joined(separator: " ") : nil
    }

    /// What reassigning one map did.
    public struct Outcome: Sendable {
        /// dm devices whose tables now use the map instead of a path.
        public var reassigned: [String] = []
        /// dm devices on a path's partition, left as they are.
        public var onPartitions: [String] = []
        /// dm devices whose table could not be read or loaded, with why.
        public var failed: [(device: String, why: String)] = []
    }

    /// Moves every dm device other than the map itself that holds one of `paths` (kernel name
    /// and device number) onto `mapDevice` (the map's own device number).
    public static func reassign(mapName: String, mapDevice: DevNo, paths: [(kernelName: String, device: DevNo)],
                                control: any MultipathKernel, sysfsRoot: String = "/sys") -> Outcome {
        var outcome = Outcome()
        let own = "dm-\(mapDevice.minor)"
        for path in paths {
            for holder in SysfsFiles.directoryEntries("\(sysfsRoot)/block/\(path.kernelName)/holders").sorted()
            where holder.hasPrefix("dm-") && holder != own {
                guard let name = SysfsFiles.readText("\(sysfsRoot)/block/\(holder)/dm/name") else {
                    outcome.failed.append((holder, "no dm name in sysfs"))
                    continue
                }
                do throws(DMError) {
                    var targets = try control.table(name: name)
                    var changed = false
                    for i in targets.indices {
                        if let params = rewrite(params: targets[i].params, from: path.device, to: mapDevice) {
                            targets[i].params = params
                            changed = true
                        }
                    }
                    guard changed else { continue }
                    try control.reload(name: name, targets: targets)
                    outcome.reassigned.append(name)
                } catch {
                    outcome.failed.append((name, error.description))
                }
            }
            // Holders of the path's partitions (sdc1): multipath-tools moves them to the map's
            // partitions; Keel creates none, so it names them instead.
            for partition in SysfsFiles.directoryEntries("\(sysfsRoot)/block/\(path.kernelName)").sorted()
            where partition.hasPrefix(path.kernelName) {
                for holder in SysfsFiles.directoryEntries("\(sysfsRoot)/block/\(path.kernelName)/\(partition)/holders") where holder.hasPrefix("dm-") {
                    outcome.onPartitions.append(SysfsFiles.readText("\(sysfsRoot)/block/\(holder)/dm/name") ?? holder)
                }
            }
        }
        return outcome
    }
}
