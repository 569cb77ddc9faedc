// The log file: whole 4 KiB pages written with O_DIRECT|O_DSYNC at page-aligned offsets, rotated at a size bound.
import Glibc
import CKeelShim
import KeelCore
import Synchronization

/// Writes text lines to a file in whole pages, bypassing the page cache.
///
/// Why O_DIRECT: a logger that writes through the page cache leaves dirty pages that reclaim may
/// have to flush, and a flush can wait on the very devices Keel is recovering. With O_DIRECT and
/// O_DSYNC a write is done when `pwrite` returns, and nothing is left behind for reclaim.
///
/// Layout: lines are packed into an aligned buffer of pages whose first page sits at
/// `fileOffset` (page-aligned) in the file. A flush writes every page that holds text with one
/// `pwrite`; the last, partly filled page is padded (spaces, then a newline in its last byte),
/// and the file is then cut back to the end of the text (`ftruncate`), so readers (`less`,
/// `tail -f`, `grep`) see lines only and the file grows as lines are written. The partial page
/// is written again in place at the next flush, until it is full. Whole pages then leave the
/// buffer. O_APPEND is never used: with O_DIRECT it ignores the
/// offset and refuses writes once the file end is unaligned.
///
/// Size bound: rotation. When the next line would take the file past `bytesMax` (a whole number
/// of pages), the file is renamed to `<path>.1` (replacing the previous one) and a new file is
/// started. Lines never straddle two files, the newest lines are always in `<path>`, and the
/// disk holds at most `2 * bytesMax`. Chosen over wrapping in place because a wrapped file needs
/// a reader that finds the seam; two plain files read with `cat`.
///
/// Used only on the logger thread: a stalled device stalls only that thread.
final class LogFileSink {
    static let pageBytes = 4096

    let path: UnsafeMutablePointer<CChar>
    let rotatedPath: UnsafeMutablePointer<CChar>
    let bytesMax: Int
    let buffer: UnsafeMutableRawPointer
    let bufferBytes: Int
    /// Whether the file is open with O_DIRECT (false when the filesystem refused it).
    private(set) var directIO: Bool
    private(set) var descriptor: Int32
    /// File offset of the buffer's first byte; always a multiple of `pageBytes`.
    private(set) var fileOffset = 0
    /// Bytes of text in the buffer.
    private(set) var fill = 0
    /// Whether the buffer holds text not yet written.
    private var dirty = false
    /// Lines in the buffer not yet written (for the loss count when a write fails).
    private var unwrittenLines = 0
    let counters: LogCounterCells

    /// Opens (creating) `path`, now or at a later flush when it cannot be opened yet. An existing
    /// file written by Keel (a whole number of pages below `bytesMax`) is continued at its end;
    /// any other non-empty file is rotated first.
    init(path: String, bytesMax requestedBytesMax: Int, bufferPages: Int, lineBytesMax: Int,
         counters: LogCounterCells) throws(SystemError) {
        precondition(bufferPages >= 2, "the file buffer needs room for a partial page and a full line")
        precondition(lineBytesMax <= (bufferPages - 1) * Self.pageBytes, "a line must fit beside a partial page")
        self.bytesMax = max(requestedBytesMax / Self.pageBytes, 1) * Self.pageBytes
        self.path = strdup(path)
        self.rotatedPath = strdup(path + ".1")
        self.counters = counters
        bufferBytes = bufferPages * Self.pageBytes
        var memory: UnsafeMutableRawPointer?
        let rc = posix_memalign(&memory, Self.pageBytes, bufferBytes)
        guard rc == 0, let memory else {
            free(self.path)
            free(self.rotatedPath)
            throw SystemError("posix_memalign", errno: rc)
        }
        buffer = memory
        memset(buffer, 0x20, bufferBytes)
        descriptor = -1
        directIO = true
        // A file that cannot be opened yet (read-only root, /var not mounted, /var on a map
        // that is not built yet) is not fatal: lines wait in the buffer, and the file is
        // opened at a later flush (`openIfDue`).
        _ = openIfDue(nowNs: 0)
    }

    /// errno of the last failed open; 0 while the file is open.
    private(set) var openErrno: Int32 = 0
    private var nextOpenAttemptNs: Nanoseconds = 0
    /// How often a file that could not be opened is tried again.
    static let reopenIntervalNs: Nanoseconds = 2 * 1_000_000_000

    /// Opens the file when it is not open and a retry is due; true when it is open. An existing
    /// file written by Keel (its first line starts with Keel's timestamp) below `bytesMax` is
    /// continued at its end: its last, partial page is read back in front of the lines already
    /// buffered. Any other non-empty file, or one whose partial page does not fit the buffer,
    /// is moved to `<path>.1` first. Lines already buffered are kept.
    private func openIfDue(nowNs: Nanoseconds) -> Bool {
        if descriptor >= 0 { return true }
        guard nowNs >= nextOpenAttemptNs else { return false }
        nextOpenAttemptNs = nowNs &+ Self.reopenIntervalNs
        do {
            try openFile(truncate: false)
            var status = stat()
            _ = try systemCall("fstat") { fstat(descriptor, &status) }
            let size = Int(status.st_size)
            if size < bytesMax, size == 0 || writtenByKeel(), continueAfter(size: size) {
                openErrno = 0
                return true
            }
            _ = rename(path, rotatedPath)
            close(descriptor)
            descriptor = -1
            try openFile(truncate: true)
            fileOffset = 0
            counters.fileRotations.wrappingAdd(1, ordering: .relaxed)
            openErrno = 0
            return true
        } catch {
            if descriptor >= 0 { close(descriptor) }
            descriptor = -1
            openErrno = error.errno
            counters.fileLastErrno.store(Int(error.errno), ordering: .relaxed)
            return false
        }
    }

    /// Whether the open file starts with a line of Keel's (`SSSSS.UUUUUU `: the timestamp).
    private func writtenByKeel() -> Bool {
        let probe = UnsafeMutableRawPointer.allocate(byteCount: Self.pageBytes, alignment: Self.pageBytes)
        defer { probe.deallocate() }
        let n = pread(descriptor, probe, Self.pageBytes, 0)
        guard n >= 14 else { return false }
        let bytes = probe.assumingMemoryBound(to: UInt8.self)
        var i = 0
        while i < n && bytes[i] >= UInt8(ascii: "0") && bytes[i] <= UInt8(ascii: "9") { i += 1 }
        guard i >= 1, i + 8 <= n, bytes[i] == UInt8(ascii: ".") else { return false }
        for k in 1...6 where !(bytes[i + k] >= UInt8(ascii: "0") && bytes[i + k] <= UInt8(ascii: "9")) { return false }
        return bytes[i + 7] == UInt8(ascii: " ")
    }

    /// Continues the file at `size`: its partial last page (if any) is read back in front of
    /// the buffered lines. False when it cannot be (it does not fit, or cannot be read).
    private func continueAfter(size: Int) -> Bool {
        let partial = size % Self.pageBytes
        guard partial > 0 else {
            fileOffset = size
            return true
        }
        guard partial + fill <= bufferBytes else { return false }
        let page = UnsafeMutableRawPointer.allocate(byteCount: Self.pageBytes, alignment: Self.pageBytes)
        defer { page.deallocate() }
        guard pread(descriptor, page, Self.pageBytes, off_t(size - partial)) == partial else { return false }
        if fill > 0 { memmove(buffer + partial, buffer, fill) }
        buffer.copyMemory(from: page, byteCount: partial)
        fill += partial
        fileOffset = size - partial
        return true
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
        free(buffer)
        free(path)
        free(rotatedPath)
    }

    /// Opens `path` with O_DIRECT, or without it when the filesystem refuses (EINVAL).
    private func openFile(truncate: Bool) throws(SystemError) {
        do {
            descriptor = try systemCall("open(O_DIRECT)") { keel_logging_open(path, 1, truncate ? 1 : 0) }
            directIO = true
        } catch where error.errno == EINVAL {
            descriptor = try systemCall("open") { keel_logging_open(path, 0, truncate ? 1 : 0) }
            directIO = false
        }
    }

    /// Adds one line (ending in a newline, at most `lineBytesMax` bytes). Rotates first if the
    /// line would take the file past `bytesMax`; writes the buffer first if it has no room.
    func append(_ line: UnsafeBufferPointer<UInt8>) {
        if fileOffset + fill + line.count > bytesMax {
            flush()
            rotate()
        }
        if fill + line.count > bufferBytes {
            flush()
        }
        if fill + line.count > bufferBytes {
            // The file is not open (yet) and the buffer is full: the earliest lines are kept.
            counters.fileLinesLost.wrappingAdd(1, ordering: .relaxed)
            return
        }
        (buffer + fill).copyMemory(from: line.baseAddress!, byteCount: line.count)
        fill += line.count
        unwrittenLines += 1
        dirty = true
    }

    /// Writes every page holding text (the last one padded), then keeps only the partial page.
    func flush() {
        guard dirty, openIfDue(nowNs: LogClock.nowNs()) else { return }
        let pages = (fill + Self.pageBytes - 1) / Self.pageBytes
        let end = pages * Self.pageBytes
        if end > fill {
            // Pad: spaces, and a newline in the page's last byte, so the text reads cleanly.
            memset(buffer + fill, 0x20, end - fill)
            buffer.storeBytes(of: UInt8(ascii: "\n"), toByteOffset: end - 1, as: UInt8.self)
        }
        let started = LogClock.nowNs()
        counters.fileWriteStartedNs.store(started, ordering: .relaxed)
        do throws(SystemError) {
            let written = try systemCall("pwrite") { pwrite(descriptor, buffer, end, off_t(fileOffset)) }
            if written != end {
                throw SystemError("pwrite", errno: EIO)
            }
            if end > fill {
                // The padding goes: the file ends where the text does. (Failing leaves the
                // padded page, which still reads as text.)
                _ = ftruncate(descriptor, off_t(fileOffset + fill))
            }
            counters.filePagesWritten.wrappingAdd(pages, ordering: .relaxed)
        } catch {
            counters.fileWriteErrors.wrappingAdd(1, ordering: .relaxed)
            counters.fileLinesLost.wrappingAdd(unwrittenLines, ordering: .relaxed)
            counters.fileLastErrno.store(Int(error.errno), ordering: .relaxed)
        }
        counters.fileWriteStartedNs.store(0, ordering: .relaxed)
        let elapsed = LogClock.nowNs() - started
        if elapsed > counters.fileWriteNsMax.load(ordering: .relaxed) {
            counters.fileWriteNsMax.store(elapsed, ordering: .relaxed)
        }
        unwrittenLines = 0
        dirty = false
        // Whole pages are done; the partial page moves to the front and is written again later.
        let fullPages = fill / Self.pageBytes
        if fullPages > 0 {
            let partial = fill - fullPages * Self.pageBytes
            if partial > 0 {
                buffer.copyMemory(from: buffer + fullPages * Self.pageBytes, byteCount: partial)
            }
            fileOffset += fullPages * Self.pageBytes
            fill = partial
        }
    }

    /// Renames the file to `<path>.1` and starts an empty one. The buffer's text is already
    /// written (callers flush first); the new file starts with an empty buffer.
    private func rotate() {
        // A missing file (removed by an operator) is no reason not to start a new one.
        _ = rename(path, rotatedPath)
        let old = descriptor
        do {
            try openFile(truncate: true)
        } catch {
            descriptor = -1
            counters.fileWriteErrors.wrappingAdd(1, ordering: .relaxed)
            counters.fileLastErrno.store(Int(error.errno), ordering: .relaxed)
        }
        if old >= 0 { close(old) }
        fileOffset = 0
        fill = 0
        dirty = false
        unwrittenLines = 0
        counters.fileRotations.wrappingAdd(1, ordering: .relaxed)
    }
}

/// The clock log records are stamped with.
public enum LogClock {
    /// CLOCK_MONOTONIC in nanoseconds (vDSO: no syscall, no allocation); the C side is inline.
    @inlinable
    public static func nowNs() -> Nanoseconds {
        keel_logging_monotonic_ns()
    }
}
