// Reading the configuration files: multipath.conf, then the *.conf files of its config_dir.
import Glibc
import KeelCore

/// Loads keeld's configuration as multipath-tools does: the main file (no file at all means the
/// built-in defaults, unless it was named explicitly), then every `*.conf` file of `config_dir`
/// (default `/etc/multipath/conf.d`) in name order, all read as one configuration so later files
/// add to and override earlier ones. Errors name the file (and line).
public enum ConfigurationFiles {
    /// Largest configuration file read (the parser's own limit is lower; this only bounds the read).
    static let fileBytesMax = 16 << 20

    public static func load(path: String, mustExist: Bool) -> Result<LoadedConfiguration, ConfigurationError> {
        var text = ""
        switch readWholeFile(path) {
        case .success(let read): text = read
        case .failure(let error):
            if mustExist || error.errno != ENOENT { return .failure(unreadable(path, error.errno)) }
        }
        var files = [(name: path, text: text)]
        let directory: String
        switch Configuration.load(files: files) {
        case .failure(let error): return .failure(error)
        case .success(let main): directory = main.configuration.configDirectory
        }
        if !directory.isEmpty {
            // A missing or unreadable directory reads as empty, as in multipath-tools.
            for name in SysfsFiles.directoryEntries(directory) where name.hasSuffix(".conf") && !name.hasPrefix(".") {
                let file = directory + "/" + name
                switch readWholeFile(file) {
                case .success(let read): files.append((name: file, text: read))
                case .failure(let error): return .failure(unreadable(file, error.errno))
                }
            }
        }
        return Configuration.load(files: files)
    }

    private static func unreadable(_ path: String, _ errno: Int32) -> ConfigurationError {
        ConfigurationError(problems: [ConfigDiagnostic(file: path, line: 0, message: "cannot read: \(String(cString: strerror(errno)))")])
    }
}

/// Reads a whole file (a configuration file) without Foundation, at most 16 MiB (EFBIG past it).
public func readWholeFile(_ path: String) -> Result<String, SystemFileError> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return .failure(SystemFileError(path: path, errno: errno)) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return .failure(SystemFileError(path: path, errno: errno))
        }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
        if bytes.count > ConfigurationFiles.fileBytesMax { return .failure(SystemFileError(path: path, errno: EFBIG)) }
    }
    return .success(String(decoding: bytes, as: UTF8.self))
}

/// A file that could not be read.
public struct SystemFileError: Error, CustomStringConvertible {
    public var path: String
    public var errno: Int32
    public var description: String { "\(path): \(String(cString: strerror(errno)))" }
}
