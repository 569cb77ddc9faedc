// The one place Keel's Linux code turns a raw syscall result into a value or a typed error.
import Glibc
import CKeelShim

/// A failed system call: which operation, and the errno the kernel gave. Fixed-size (no String),
/// so throwing it on the recovery plane allocates nothing.
public struct SystemError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was attempted, e.g. "ioctl(DM_TARGET_MSG)".
    public var operation: StaticString
    public var errno: Int32

    @inlinable public init(_ operation: StaticString, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public static func == (a: SystemError, b: SystemError) -> Bool {
        a.errno == b.errno && a.operation.description == b.operation.description
    }

    /// `operation: strerror (errno N)`, for the control plane's messages.
    public var description: String {
        "\(operation): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Runs `body` (a raw syscall returning -1 and setting errno on failure), retrying EINTR.
/// The corresponding C convention: any syscall wrapper of glibc.
@inlinable
public func systemCall(_ operation: StaticString, _ body: () -> Int) throws(SystemError) -> Int {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = keel_errno()
        if e == EINTR { continue }
        throw SystemError(operation, errno: e)
    }
}

/// `systemCall` for the Int32-returning calls.
@inlinable
public func systemCall(_ operation: StaticString, _ body: () -> Int32) throws(SystemError) -> Int32 {
    Int32(try systemCall(operation) { () -> Int in Int(body()) })
}
