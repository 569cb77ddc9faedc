// One keeld per host: an flock on the pid file, held until the process ends.
import Glibc

/// The pid file, locked with `flock(LOCK_EX|LOCK_NB)` and never closed: the kernel releases the
/// lock when the process ends, however it ends (kill -9 included), so a stale file never blocks
/// a restart. A second keeld that finds the lock taken leaves before it touches any map or the
/// first one's socket.
enum InstanceLock {
    enum Failure: Error, CustomStringConvertible {
        /// Another process holds the lock; its pid as the file says (0 when unreadable).
        case held(path: String, pid: Int32)
        case cannotOpen(path: String, errno: Int32)

        var description: String {
            switch self {
            case .held(let path, let pid):
                let who = pid > 0 ? "keeld pid \(pid)" : "another keeld"
                return "\(who) is already running (\(path) is locked); one keeld per host: stop it first"
            case .cannotOpen(let path, let errno):
                return "cannot open the pid file \(path): \(String(cString: strerror(errno))) (errno \(errno))"
            }
        }
    }

    /// Takes the lock and writes this process's pid. Returns the descriptor (kept open).
    static func acquire(path: String) -> Result<Int32, Failure> {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return .failure(.cannotOpen(path: path, errno: errno)) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let error = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            close(fd)
            guard error == EWOULDBLOCK else { return .failure(.cannotOpen(path: path, errno: error)) }
            let text = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
            return .failure(.held(path: path, pid: Int32(text.split(separator: "\n").first ?? "") ?? 0))
        }
        var line = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        line.withUTF8 { _ = pwrite(fd, $0.baseAddress, $0.count, 0) }
        return .success(fd)
    }
}
