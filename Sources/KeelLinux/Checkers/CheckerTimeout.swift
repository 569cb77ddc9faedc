// How long a check may take: configuration, else the SCSI device's own timeout, else 30 s
// (multipath-tools' select_checker_timeout order).
import KeelCore

/// The checker timeout rule. Control plane: it reads sysfs.
public enum CheckerTimeout {
    /// The timeout when neither the configuration nor the device says (multipath-tools' DEF_TIMEOUT).
    public static let defaultNs: Nanoseconds = 30 * Time.nsPerSecond

    /// `checker_timeout` from the configuration if set, else the device's SCSI command timeout
    /// (`<sysfsRoot>/block/<blockDevice>/device/timeout`, in seconds), else 30 s.
    public static func select(configuredSeconds: Int?, sysfsRoot: String = "/sys", blockDevice: String) -> Nanoseconds {
        let attribute = CheckerSysfs.read(sysfsRoot + "/block/" + blockDevice + "/device/timeout")
        return select(configuredSeconds: configuredSeconds, deviceTimeoutAttribute: attribute)
    }

    /// The same rule over an already-read attribute value (nil when the file was missing).
    public static func select(configuredSeconds: Int?, deviceTimeoutAttribute: String?) -> Nanoseconds {
        if let configuredSeconds, configuredSeconds > 0 { return Nanoseconds(configuredSeconds) * Time.nsPerSecond }
        if let attribute = deviceTimeoutAttribute, let seconds = parseSeconds(attribute) { return seconds * Time.nsPerSecond }
        return defaultNs
    }

    /// A positive whole number of seconds, surrounding whitespace allowed; nil otherwise.
    public static func parseSeconds(_ text: String) -> Nanoseconds? {
        let trimmed = CheckerSysfs.trimmed(text)
        guard !trimmed.isEmpty, trimmed.count <= 9, trimmed.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let value = Int64(trimmed), value > 0 else { return nil }
        return value
    }
}
