// The configuration's blacklist as discovery's filter, with multipath-tools' udev-property nuance.
import KeelCore

/// Applies `Configuration.isBlacklisted` to discovered paths.
///
/// As multipath-tools' `filter_property` does, a path is not blacklisted for lacking a required
/// property (`blacklist_exceptions { property ... }`) when udev has not recorded its
/// `uid_attribute`: udev simply has not seen the device (or does not run), which says nothing
/// about the device itself.
public struct BlacklistFilter: DiscoveryFilter, Sendable {
    public var configuration: Configuration
    /// multipath.conf `uid_attribute` (default `ID_SERIAL`).
    public var uidAttribute: String

    public init(configuration: Configuration, uidAttribute: String = "ID_SERIAL") {
        self.configuration = configuration
        self.uidAttribute = uidAttribute
    }

    /// What the blacklist matches on: kernel name, WWID, vendor, model, udev property names.
    public static func identity(of path: DiscoveredPath) -> DeviceIdentity {
        DeviceIdentity(devnode: path.kernelName, wwid: path.wwid ?? "", vendor: path.vendor, product: path.model,
                       properties: path.udevProperties.map { $0.keys.sorted() } ?? [])
    }

    public func exclusionReason(for path: DiscoveredPath) -> String? {
        let verdict = configuration.isBlacklisted(Self.identity(of: path))
        guard verdict.isBlacklisted else { return nil }
        if verdict == .missingRequiredProperty && (uidAttribute.isEmpty || path.udevProperties?[uidAttribute] == nil) {
            return nil
        }
        return verdict.description
    }
}
