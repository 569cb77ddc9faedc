// TableBuilder: a map's kernel table from the engine's grouping and the map's profile.

/// Builds the dm-multipath table the control plane loads for a map. Control plane: allocates.
public enum TableBuilder {
    /// The table for `layout` (the engine's groups in table order, each a list of devices),
    /// with the profile's features, hardware handler and path selector. Every path carries one
    /// selector argument, `1` (the repeat count). `initialGroup` is 1-based; 0 becomes 1, as the
    /// kernel refuses 0 when there are groups.
    public static func table(layout: [[DevNo]], profile: MapProfile, initialGroup: UInt16) -> MultipathTable {
        // Each of these strings starts with its own word count ("1 queue_if_no_path", "1 alua",
        // "service-time 0"), which the table's value type does not carry.
        let features = words(profile.features).dropFirst().map(String.init)
        let handler = words(profile.hardwareHandler).dropFirst().map(String.init)
        let selectorWords = words(profile.pathSelector)
        let selector = selectorWords.first.map(String.init) ?? "service-time"
        let selectorArgs = selectorWords.dropFirst().dropFirst().map(String.init)
        return MultipathTable(
            features: features, hardwareHandler: handler, initialGroup: Int(max(initialGroup, 1)),
            groups: layout.map { devices in
                MultipathTable.Group(selector: selector, selectorArgs: selectorArgs, pathArgCount: 1,
                                     paths: devices.map { MultipathTable.Path(device: $0, args: ["1"]) })
            })
    }

    static func words(_ s: String) -> [Substring] { s.split(whereSeparator: { $0 == " " || $0 == "\t" }) }
}
