// Table loads that failed, and when to ask for them again: the control plane's retry schedule.
import KeelCore

/// Maps whose table load failed (EBUSY, ENOMEM, EINVAL...), each with its attempts and the time
/// to ask the recovery thread for it again (`RecoveryInput.requestReload`): 100 ms after the
/// first failure, doubling up to 5 s, until a load succeeds. The cap bounds how long a path
/// stays out of the kernel's table once the kernel takes loads again (at 30 s, nine refusals in
/// a row left the next attempt 25.6 s away); a refused load costs one ioctl. The engine's own request was taken
/// with the failed load, so without this the kernel would keep an outdated table until the next
/// regroup. Control plane only (keeld's events thread, the simulator's control plane).
public struct ReloadRetries: Sendable {
    public static let firstDelayNs: Nanoseconds = 100 * Time.nsPerMs
    public static let maxDelayNs: Nanoseconds = 5 * Time.nsPerSecond

    private var entries: [MapHandle: (attempts: Int, atNs: Nanoseconds)] = [:]

    public init() {}

    /// Maps waiting for a retry (asked or not yet).
    public var count: Int { entries.count }

    /// The attempts that failed so far for `map` (0 when its last load succeeded).
    public func attempts(_ map: MapHandle) -> Int { entries[map]?.attempts ?? 0 }

    /// A load of `map` failed at `nowNs`: schedules the next request.
    public mutating func failed(_ map: MapHandle, nowNs: Nanoseconds) {
        let attempts = (entries[map]?.attempts ?? 0) + 1
        let delayNs = min(Self.maxDelayNs, Self.firstDelayNs << min(attempts - 1, 20))
        entries[map] = (attempts, nowNs + delayNs)
    }

    /// A load of `map` succeeded: nothing more to retry.
    public mutating func loaded(_ map: MapHandle) { entries[map] = nil }

    /// The earliest time a retry is due (`Time.never` when none waits).
    public func nextDueNs() -> Nanoseconds {
        entries.values.reduce(Time.never) { min($0, $1.atNs) }
    }

    /// The maps whose retry is due at `nowNs`; each is handed out once per failure (the outcome
    /// of the load it leads to calls `failed` or `loaded` again).
    public mutating func takeDue(nowNs: Nanoseconds) -> [MapHandle] {
        var due: [MapHandle] = []
        for (map, entry) in entries where entry.atNs <= nowNs {
            due.append(map)
            entries[map]?.atNs = Time.never
        }
        return due.sorted { $0.index < $1.index }
    }
}
