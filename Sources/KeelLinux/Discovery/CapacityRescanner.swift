// Asking the kernel to read a SCSI disk's capacity again, without waiting for the disk.
import Glibc
import Synchronization
import KeelCore

/// Rescans disks the kernel gave no capacity (0 sectors), each on a short-lived thread of its own.
///
/// A disk has 0 sectors when READ CAPACITY failed while it was probed (a unit attention, a
/// timeout under load, a LUN not ready yet). The kernel does not try again by itself, and going
/// from 0 to a size sends no uevent. Writing to `device/rescan` makes the SCSI layer read the
/// capacity again; the write returns once it has, so it can wait as long as the SCSI error
/// handler does, or for ever on a device that never answers. The write is therefore made on a
/// thread of its own, never on the caller's: the caller asks (`request`) and later collects the
/// disks whose rescan returned (`finished`), then reads their size.
///
/// Bounds: one rescan in flight per disk, at most `maxInFlight` in all (a disk asked for beyond
/// that is asked again at its next `request`), and a disk is rescanned at most once per
/// `intervalNs`. A rescan that never returns keeps its thread and its slot: the others go on.
public final class CapacityRescanner {
    /// Rescans in flight at once, at most.
    public static let maxInFlight = 4
    /// The least time between two rescans of one disk.
    public static let intervalNs: Nanoseconds = 60 * Time.nsPerSecond

    /// What a rescan thread reports: whether its write returned, and its errno.
    private final class Outcome: Sendable {
        let done = Atomic<Bool>(false)
        let errno = Atomic<Int32>(0)
    }

    private struct Flight {
        let outcome: Outcome
        let thread: ScratchThread
    }

    private let sysfsRoot: String
    private var flights: [String: Flight] = [:]
    private var lastAskedNs: [String: Nanoseconds] = [:]

    public init(sysfsRoot: String = "/sys") { self.sysfsRoot = sysfsRoot }

    /// Disks whose rescan has not returned.
    public var inFlight: Int { flights.count }

    /// Starts a rescan of `kernelName` (`sdq`) unless one is in flight, the last began less than
    /// `intervalNs` ago, `maxInFlight` are running, or no thread can be made. Returns whether one
    /// was started.
    @discardableResult
    public func request(_ kernelName: String, nowNs: Nanoseconds) -> Bool {
        guard flights[kernelName] == nil, flights.count < Self.maxInFlight,
              SysfsFiles.isPlainName(kernelName) else { return false }
        if let last = lastAskedNs[kernelName], nowNs - last < Self.intervalNs { return false }
        let outcome = Outcome()
        let file = sysfsRoot + "/block/" + kernelName + "/device/rescan"
        let thread: ScratchThread
        do {
            thread = try ScratchThread(name: "keel-rescan", stackBytes: 64 * 1024) {
                outcome.errno.store(SysfsFiles.write(file, "1"), ordering: .relaxed)
                outcome.done.store(true, ordering: .releasing)
            }
        } catch {
            return false
        }
        flights[kernelName] = Flight(outcome: outcome, thread: thread)
        lastAskedNs[kernelName] = nowNs
        return true
    }

    /// The disks whose rescan returned since the last call, with 0 or the errno of the write;
    /// their threads are joined.
    public func finished() -> [(kernelName: String, errno: Int32)] {
        var out: [(kernelName: String, errno: Int32)] = []
        for (name, flight) in flights where flight.outcome.done.load(ordering: .acquiring) {
            flight.thread.join()
            out.append((name, flight.outcome.errno.load(ordering: .relaxed)))
        }
        for item in out { flights[item.kernelName] = nil }
        return out.sorted { $0.kernelName < $1.kernelName }
    }

    /// Forgets when disks not in `present` were last rescanned (they went away).
    public func forget(allBut present: Set<String>) {
        lastAskedNs = lastAskedNs.filter { present.contains($0.key) || flights[$0.key] != nil }
    }
}
