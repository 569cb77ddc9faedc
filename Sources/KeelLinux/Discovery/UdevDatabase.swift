// The udev database entry of a block device (/run/udev/data/b<major>:<minor>), read without libudev.
import KeelCore

/// Reads udev's per-device database files. Their absence is normal (no udevd on the host, or the
/// device not yet processed): callers get nil, never an error.
public enum UdevDatabase {
    /// The directory udevd writes to.
    public static let defaultDataRoot = "/run/udev/data"

    /// The file name udev uses for a block device: `b<major>:<minor>`.
    public static func fileName(for device: DevNo) -> String {
        "b\(device.major):\(device.minor)"
    }

    /// The device's properties (`E:KEY=VALUE` lines), or nil when udev has no entry for it.
    public static func properties(for device: DevNo, dataRoot: String = defaultDataRoot) -> [String: String]? {
        guard let bytes = try? SysfsFiles.readBytes(dataRoot + "/" + fileName(for: device), limit: 65536) else {
            return nil
        }
        return parse(String(decoding: bytes, as: UTF8.self))
    }

    /// Parses the text of a database file; other line kinds (S:, L:, I:, G:, Q:, V:) are ignored.
    public static func parse(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard line.hasPrefix("E:") else { continue }
            let body = line.dropFirst(2)
            guard let eq = body.firstIndex(of: "="), eq != body.startIndex else { continue }
            result[String(body[..<eq])] = String(body[body.index(after: eq)...])
        }
        return result
    }
}
