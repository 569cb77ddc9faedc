// DMError: a failed device-mapper operation, naming the map, the operation, the errno and what libdm said.
import Glibc

/// A device-mapper operation Keel performs, as named in error descriptions.
public enum DMOperation: String, Sendable, Equatable, CaseIterable {
    case open
    case version
    case list
    case info
    case create
    case reload
    case resume
    case suspend
    case remove
    case table
    case status
    case register
    case armPoll = "arm poll"
    case poll
}

/// A failed device-mapper operation (control plane: it carries Strings, so building it allocates).
///
/// `description` reads like `mpatha: reload: Invalid argument (errno 22): <libdm message>`; for
/// operations on no particular map the map part is `device-mapper`.
public struct DMError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The dm name (or uuid) of the map; empty for whole-driver operations (version, list, poll).
    public var map: String
    public var operation: DMOperation
    /// The errno the kernel (or libdm) reported; never 0.
    public var errno: Int32
    /// What libdevmapper logged during the call, or Keel's own explanation; may be empty.
    public var detail: String

    /// Builds an error; an errno of 0 (libdm failed without saying why) becomes EIO.
    public init(map: String, operation: DMOperation, errno: Int32, detail: String = "") {
        self.map = map
        self.operation = operation
        self.errno = errno == 0 ? EIO : errno
        self.detail = detail
    }

    public var description: String {
        let subject = map.isEmpty ? "device-mapper" : map
        let reason = String(cString: strerror(errno))
        let head = "\(subject): \(operation.rawValue): \(reason) (errno \(errno))"
        return detail.isEmpty ? head : "\(head): \(detail)"
    }
}
