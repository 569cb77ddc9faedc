// Persistent reservations of maps (mpathpersist's side of the daemon): each map's key, from
// `reservation_key` or the prkeys file, and whether its paths are registered (`setprstatus`).
// Kept by the events thread, which owns the assembler; the prkeys file is written only here.
// The key goes to the checker of each path, which registers a returning path with it before
// reporting it up (TURChecker.setReservationKey), so the recovery thread never waits on it.
import KeelCore

/// A map's persistent-reservation state.
public struct MapReservation: Sendable, Equatable {
    /// The key in force: the configured one, or the prkeys file's under `reservation_key file`;
    /// nil when there is none.
    public var key: ReservationKey?
    /// What `setprstatus` (true) or `unsetprstatus` (false) said last (multipathd's prflag); nil
    /// when neither came, and then `getprstatus` tells whether keeld registered one of the map's
    /// paths with its key, as multipathd sets the flag when it finds the key on the LUN.
    public var registered: Bool?

    public init() {}
}

/// Why a reservation change was refused.
public struct ReservationRefusal: Error, Equatable, CustomStringConvertible {
    public var description: String
}

extension MultipathAssembler {
    /// Reads the prkeys file again (at start, on reconfigure).
    public mutating func rereadPRKeys() {
        switch identityFiles.readPRKeys() {
        case .success(let read): prkeys = read
        case .failure(let error): notices.append(.prkeysFileFailed(errno: error.errno))
        }
    }

    /// The key `map` has under `profile` (its own by default).
    func reservationKey(of map: AssembledMap, profile: MapProfile? = nil) -> ReservationKey? {
        switch (profile ?? map.profile).reservationKey {
        case .key(let key): return key
        case .file: return prkeys[map.wwid]
        case nil: return nil
        }
    }

    /// `setprstatus` / `unsetprstatus`: whether the map's paths are registered.
    /// Returns whether that changed.
    public mutating func setRegistered(_ registered: Bool?, map handle: MapHandle) -> Bool {
        guard let m = mapIndex[handle], maps[m].reservation.registered != registered else { return false }
        maps[m].reservation.registered = registered
        return true
    }

    /// `setprkey` / `unsetprkey` (nil): stores the key of the map in the prkeys file, which only a
    /// map with `reservation_key file` reads its key from (as multipathd refuses otherwise).
    public mutating func storeReservationKey(_ key: ReservationKey?, map handle: MapHandle) throws(ReservationRefusal) {
        guard let m = mapIndex[handle] else { throw ReservationRefusal(description: "no such map") }
        guard maps[m].profile.reservationKey == .file else {
            let now = maps[m].profile.reservationKey.map { "is \($0)" } ?? "is not set"
            throw ReservationRefusal(description: "\(maps[m].name): reservation_key \(now); the prkeys file is used only with \"reservation_key file\"")
        }
        guard key?.value != 0 else { throw ReservationRefusal(description: "\(maps[m].name): a reservation key of 0 is no key; use unsetprkey") }
        do throws(SystemFileError) {
            try identityFiles.storePRKey(key, wwid: maps[m].wwid)
        } catch {
            throw ReservationRefusal(description: "\(maps[m].name): \(error)")
        }
        prkeys[maps[m].wwid] = key
        maps[m].reservation.key = key
        giveReservationKey(ofMapAt: m)
    }

    /// The registrations of returning paths that finished since the last call (paths of maps with
    /// a key, checked through the sg node), for the caller to log. `seen` keeps each slot's count.
    public func finishedRegistrations(since seen: inout [PathHandle: UInt32]) -> [(path: AssembledPath, map: MapHandle, outcome: ReservationRegistration)] {
        guard let tur = checkers.tur else { return [] }
        var finished: [(path: AssembledPath, map: MapHandle, outcome: ReservationRegistration)] = []
        for map in maps where map.reservation.key != nil {
            for path in map.paths where path.checker == .tur {
                let record = tur.registrationRecord(of: path.handle)
                guard seen[path.handle] != record.attempts else { continue }
                seen[path.handle] = record.attempts
                if record.outcome != .none { finished.append((path, map.handle, record.outcome)) }
            }
        }
        return finished
    }

    /// Hands the map's key to the checker of each of its paths checked through the sg node: a
    /// path that comes back is registered with it before it is reported up (multipathd's
    /// re-registration of returning paths). Paths checked with directio are not registered.
    func giveReservationKey(ofMapAt m: Int) {
        guard let tur = checkers.tur else { return }
        let key = maps[m].reservation.key
        for path in maps[m].paths where path.checker == .tur {
            tur.setReservationKey(key?.value ?? 0, aptpl: key?.aptpl ?? false, path: path.handle)
        }
    }
}
