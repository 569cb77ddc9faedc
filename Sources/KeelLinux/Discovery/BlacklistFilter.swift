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
    /// multipath.conf `uid_attrs` and `uid_attribute` (default `ID_SERIAL`).
    public var uidAttributes: UIDAttributes

    public init(configuration: Configuration, uidAttributes: UIDAttributes) {
        self.configuration = configuration
        self.uidAttributes = uidAttributes
    }

    /// The configuration's own `uid_attrs` and `uid_attribute`s.
    public init(configuration: Configuration) {
        self.init(configuration: configuration, uidAttributes: configuration.uidAttributes)
    }

    /// What the blacklist matches on: kernel name, WWID, vendor, model, udev property names,
    /// transport.
    public static func identity(of path: DiscoveredPath) -> DeviceIdentity {
        DeviceIdentity(devnode: path.kernelName, wwid: path.wwid ?? "", vendor: path.vendor, product: path.model,
                       properties: path.udevProperties.map { $0.keys.sorted() } ?? [], protocolName: path.transport.protocolName)
    }

    public func exclusionReason(for path: DiscoveredPath) -> String? {
        reason(for: path, verdict: configuration.isBlacklisted(Self.identity(of: path)))
    }

    /// `exclusionReason` for each of `paths`, judging each vendor and product pair once.
    public func exclusionReasons(for paths: [DiscoveredPath]) -> [String?] {
        var deviceVerdicts: [String: BlacklistVerdict] = [:]
        return paths.map { path in
            let key = path.vendor + "\u{0}" + path.model
            let device = deviceVerdicts[key] ?? configuration.deviceVerdict(vendor: path.vendor, product: path.model)
            deviceVerdicts[key] = device
            return reason(for: path, verdict: configuration.isBlacklisted(Self.identity(of: path), deviceVerdict: device))
        }
    }

    private func reason(for path: DiscoveredPath, verdict: BlacklistVerdict) -> String? {
        guard verdict.isBlacklisted else { return nil }
        let uidAttribute = uidAttributes.attribute(devnode: path.kernelName, vendor: path.vendor, product: path.model, revision: path.revision)
        if verdict == .missingRequiredProperty && (uidAttribute.isEmpty || path.udevProperties?[uidAttribute] == nil) {
            return nil
        }
        return verdict.description
    }
}
