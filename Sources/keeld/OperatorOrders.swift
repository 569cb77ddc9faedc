// The operator's changes to maps and paths (`add`/`del path`, `add`/`del map`, `del maps`,
// `suspend`/`resume map`, `resize map`, `reset map`, the persistent-reservation flag and key), carried out on the events thread: it owns assembly and
// table loads, so an order never races a load. Answers go back through the order desk.
import Glibc
import KeelCore
import KeelLinux

extension EventsThread {
    /// Carries out the orders the control thread queued and hands back their answers.
    func handleOrders() {
        let orders = shared.orders.withLock { desk in
            defer { desk.pending.removeAll() }
            return desk.pending
        }
        guard !orders.isEmpty else { return }
        var answers: [OrderDesk.Answer] = []
        for (id, order) in orders {
            if let answer = carryOut(order, id: id) { answers.append(answer) }
        }
        let assembler = self.assembler
        shared.publish(assembler)
        answer(answers)
    }

    /// Answers `resize map` orders once their map's table load is done (or failed).
    func answerResizes(of map: MapHandle, failure: String?) {
        guard let ids = pendingResizes.removeValue(forKey: map) else { return }
        let name = assembler.map(map)?.name ?? "\(map)"
        answer(ids.map { OrderDesk.Answer(id: $0, failure: failure, detail: "\(name) loaded with its new size") })
    }

    private func answer(_ answers: [OrderDesk.Answer]) {
        guard !answers.isEmpty else { return }
        shared.orders.withLock { $0.answered += answers }
        shared.controlWake.signal()
    }

    /// One order; nil when the answer comes later (a resize waits for its table load).
    private func carryOut(_ order: ControlRequest, id: UInt32) -> OrderDesk.Answer? {
        func done(_ detail: String) -> OrderDesk.Answer { OrderDesk.Answer(id: id, failure: nil, detail: detail) }
        func refused(_ why: String) -> OrderDesk.Answer { OrderDesk.Answer(id: id, failure: why, detail: "") }
        switch order {
        case .addPath(let device):
            guard let name = Self.kernelName(device) else { return refused("device not found: no block device \(device)") }
            operatorRemoved.remove(name)
            return addPath(name).map(refused) ?? done(whereIs(name))
        case .delPath(let device):
            let name = Self.kernelName(device) ?? device
            let devno = assembler.maps.lazy.flatMap(\.paths).first { $0.kernelName == name }?.device
            guard let devno, assembler.remove(kernelName: name, nowNs: monotonicNs(), topology: &topology) != nil else {
                return refused("device not found: \(device) is not a path of any map")
            }
            operatorRemoved.insert(name)
            log.log(.operatorRemovedPath, LogArgument.device(devno))
            return done("\(name) removed; it is not checked until it is added again")
        case .addMap(let key):
            return addMap(key).map(refused) ?? done(whereIs(map: key))
        case .delMap(let key):
            guard let map = findMap(key) else { return refused("device not found: no map named \(key)") }
            return deleteMap(map).map(refused) ?? done("\(map.name) removed")
        case .delMaps:
            var busy: [String] = []
            for map in assembler.maps {
                if deleteMap(map) != nil { busy.append(map.name) }
            }
            return busy.isEmpty ? done("every map removed") : refused("map or partition in use: \(busy.joined(separator: " "))")
        case .suspendMap(let key), .resumeMap(let key):
            guard let map = findMap(key) else { return refused("device not found: no map named \(key)") }
            do throws(DMError) {
                if case .suspendMap = order {
                    try assembler.control.suspend(name: map.name, noFlush: true)
                } else {
                    try assembler.control.resume(name: map.name, noFlush: true)
                }
            } catch {
                return refused("\(map.name): \(error.description)")
            }
            return done(order == .suspendMap(key) ? "\(map.name) suspended" : "\(map.name) resumed")
        case .resizeMap(let key):
            guard let map = findMap(key) else { return refused("device not found: no map named \(key)") }
            let sizes: (old: UInt64, new: UInt64)
            do throws(AssemblyError) {
                sizes = try assembler.resize(map.handle)
            } catch {
                return refused(error.detail)
            }
            guard sizes.old != sizes.new else { return done("\(map.name) already has \(sizes.new) sectors") }
            log.log(.mapResized, LogArgument.map(map.handle), LogArgument.signed(Int(sizes.old)), LogArgument.signed(Int(sizes.new)))
            pendingResizes[map.handle, default: []].append(id)
            shared.send(.requestReload(map.handle), unless: shared.eventsStop)
            return nil
        case .reassignMap(let key):
            guard let map = findMap(key) else { return refused("device not found: no map named \(key)") }
            let device: DevNo
            do throws(DMError) {
                guard let state = try assembler.control.info(name: map.name) else { return refused("device not found: \(map.name) is not in the kernel") }
                device = state.device
            } catch {
                return refused("\(map.name): \(error.description)")
            }
            let outcome = DMReassign.reassign(mapName: map.name, mapDevice: device, paths: map.paths.map { ($0.kernelName, $0.device) },
                                              control: assembler.control)
            var detail = outcome.reassigned.isEmpty ? "no device-mapper device held a path of \(map.name)"
                : "\(outcome.reassigned.joined(separator: " ")) moved onto \(map.name)"
            if !outcome.onPartitions.isEmpty { detail += "; left on path partitions: \(outcome.onPartitions.joined(separator: " "))" }
            guard outcome.failed.isEmpty else {
                return refused(detail + "; not moved: " + outcome.failed.map { "\($0.device) (\($0.why))" }.joined(separator: ", "))
            }
            return done(detail)
        case .setPRStatus(let key), .unsetPRStatus(let key):
            guard let map = findMap(key) else { return refused("device not found: no map named \(key)") }
            let registered = order == .setPRStatus(map: key)
            if assembler.setRegistered(registered, map: map.handle) {
                log.log(registered ? .reservationFlagSet : .reservationFlagCleared, LogArgument.map(map.handle))
            }
            return done("\(map.name): " + (registered ? "registered for persistent reservations" : "not registered"))
        case .setPRKey(let key, let text):
            guard let parsed = ReservationKey(parsing: text) else { return refused("\(key): invalid reservation key '\(text)'") }
            return storeReservationKey(parsed, map: key, id: id)
        case .unsetPRKey(let key):
            return storeReservationKey(nil, map: key, id: id)
        default:
            return refused("not a change the events thread carries out")
        }
    }

    /// `setprkey` (a key) and `unsetprkey` (nil): the key goes to the prkeys file and to the
    /// checkers of the map's paths.
    private func storeReservationKey(_ reservation: ReservationKey?, map key: String, id: UInt32) -> OrderDesk.Answer {
        guard let map = findMap(key) else { return OrderDesk.Answer(id: id, failure: "device not found: no map named \(key)", detail: "") }
        do throws(ReservationRefusal) {
            try assembler.storeReservationKey(reservation, map: map.handle)
        } catch {
            return OrderDesk.Answer(id: id, failure: error.description, detail: "")
        }
        log.log(reservation == nil ? .reservationKeyRemoved : .reservationKeyStored, LogArgument.map(map.handle))
        return OrderDesk.Answer(id: id, failure: nil, detail: "\(map.name): " + (reservation.map { "reservation key \($0)" } ?? "reservation key removed"))
    }

    /// `auto_resize`: a path of `handle`'s map changed (a resized LUN sends a `change` uevent
    /// per path). Once every path reports the same new size, the map takes it (grow_only: only
    /// a larger one) and its table is loaded again; until then nothing changes.
    func resizeIfAsked(_ handle: MapHandle) {
        guard let map = assembler.map(handle), map.profile.autoResize != .never else { return }
        guard let sizes = try? assembler.resize(handle, shrink: map.profile.autoResize == .growShrink), sizes.old != sizes.new else { return }
        log.log(.mapResized, LogArgument.map(handle), LogArgument.signed(Int(sizes.old)), LogArgument.signed(Int(sizes.new)))
        shared.send(.requestReload(handle), unless: shared.eventsStop)
    }

    /// A map by name or WWID.
    private func findMap(_ key: String) -> AssembledMap? {
        assembler.maps.first { $0.name == key || $0.wwid == key }
    }

    /// The kernel name of a block device given as `sdc`, `/dev/sdc` or `MAJ:MIN`; nil when
    /// there is no such device.
    static func kernelName(_ device: String) -> String? {
        var name = device.hasPrefix("/dev/") ? String(device.dropFirst(5)) : device
        if name.contains(":") {
            guard let target = SysfsFiles.readLink("/sys/dev/block/\(name)") else { return nil }
            name = String(target.split(separator: "/").last ?? "")
        }
        guard !name.isEmpty, !name.contains("/"), !name.hasPrefix("."), access("/sys/block/\(name)", F_OK) == 0 else { return nil }
        return name
    }

    /// Where a path is after `add path`: its map, or why it is in none.
    private func whereIs(_ name: String) -> String {
        if let map = assembler.maps.first(where: { $0.paths.contains { $0.kernelName == name } }) { return "\(name) is in \(map.name)" }
        if assembler.heldKernelNames.contains(name) { return "\(name) is held back by find_multipaths ('add map' makes a map of it)" }
        return "\(name) is in no map"
    }

    private func whereIs(map key: String) -> String {
        guard let map = findMap(key) ?? deletedMaps.lazy.compactMap({ self.findMap($0.wwid) }).first else { return "no map" }
        return "\(map.name) has \(map.paths.count) path\(map.paths.count == 1 ? "" : "s")"
    }

    /// Discovers one device and assembles it; a refusal's reason, or nil.
    private func addPath(_ name: String) -> String? {
        let discovery = SysfsDiscovery(uidAttributes: assembler.uidAttributes)
        guard case .path(let path) = discovery.discoverPath(named: name) else {
            return "\(name) is not a SCSI disk Keel can use"
        }
        let filter = BlacklistFilter(configuration: assembler.configuration, uidAttributes: assembler.uidAttributes)
        if let why = filter.exclusionReason(for: path) { return "\(name) is blacklisted: \(why)" }
        guard path.wwid != nil else { return "\(name) has no WWID" }
        return assembleAndReport([path]).first.map(\.description)
    }

    /// `add map KEY`: KEY is a WWID, a configured alias, a deleted map's name, or a path device.
    /// The map is made whatever find_multipaths says; a refusal's reason, or nil.
    private func addMap(_ key: String) -> String? {
        if findMap(key) != nil { return nil }
        var wwid: String?
        var devices: [String] = []
        if let deleted = deletedMaps.first(where: { $0.name == key || $0.wwid == key }) {
            wwid = deleted.wwid
            devices = deleted.paths
        } else if let entry = assembler.configuration.multipaths.first(where: { $0.alias == key || $0.wwid == key }) {
            wwid = entry.wwid
        } else if assembler.held[key] != nil {
            wwid = key
        } else if let name = Self.kernelName(key) {
            let discovery = SysfsDiscovery(uidAttributes: assembler.uidAttributes)
            if case .path(let path) = discovery.discoverPath(named: name) { wwid = path.wwid }
            devices = [name]
        }
        guard let wwid else { return "device not found: \(key) is no map, alias, WWID or path device Keel knows" }
        // The WWID's devices the operator deleted, and any not seen yet, are read again.
        let discovery = SysfsDiscovery(uidAttributes: assembler.uidAttributes)
        var paths: [DiscoveredPath] = []
        for name in devices {
            operatorRemoved.remove(name)
            if case .path(let path) = discovery.discoverPath(named: name), path.wwid == wwid { paths.append(path) }
        }
        deletedMaps.removeAll { $0.wwid == wwid }
        var errors = assembler.force(wwid: wwid, nowNs: monotonicNs(), topology: &topology)
        if !paths.isEmpty {
            errors += assembler.assemble(DiscoveryReport(paths: paths, skipped: []), nowNs: monotonicNs(), topology: &topology)
        }
        for error in errors { report(error) }
        reportFallbacks()
        if findMap(wwid) == nil {
            return errors.first?.description ?? "device not found: no path of \(wwid) is present"
        }
        return nil
    }

    /// The last path of `map` (as it was before a removal) went away. As multipathd 0.9.4 does,
    /// the map is removed unless something holds it open; with `flush_on_last_del yes` (or
    /// `always`) queueing is turned off first, so I/O held for the map fails instead of waiting
    /// for a path that is gone. A map kept (in use) takes a path that appears later again.
    func flushIfLastPathWent(_ map: AssembledMap) {
        guard let now = assembler.map(map.handle), now.paths.isEmpty else { return }
        let flushes = map.profile.flushesOnLastDel
        if flushes { shared.send(.command(.disableQueueing(map.handle), ticket: Self.internalTicket), unless: shared.eventsStop) }
        let device = map.paths.first?.device ?? DevNo(major: 0, minor: 0)
        if let refusal = deleteMap(now, operator: false) {
            let errno = refusal == "map or partition in use" ? Int(EBUSY) : Int(EIO)
            log.log(flushes ? .flushOnLastDelKept : .keptWithoutPaths, LogArgument.device(device), LogArgument.signed(errno))
        } else {
            log.log(flushes ? .flushedOnLastDel : .removedWithLastPath, LogArgument.device(device))
        }
    }

    /// Tickets of commands the events thread sends for itself: no one waits for their answer
    /// (the control thread drops answers whose ticket it did not issue).
    static let internalTicket: UInt32 = 0xC000_0000

    /// `del map`: a refusal's reason (multipathd's words for a map in use), or nil. An operator's
    /// deletion keeps the map's devices out of rediscovery until they are added again.
    private func deleteMap(_ map: AssembledMap, operator byOperator: Bool = true) -> String? {
        do throws(MultipathAssembler.MapRemovalRefusal) {
            try assembler.removeMap(map.handle, nowNs: monotonicNs(), topology: &topology)
        } catch {
            switch error {
            case .inUse: return "map or partition in use"
            case .kernel(let errno, let detail):
                return errno == EBUSY ? "map or partition in use" : "\(map.name): \(detail.isEmpty ? String(cString: strerror(errno)) : detail)"
            }
        }
        reloadRetries.loaded(map.handle)
        pendingResizes[map.handle] = nil
        guard byOperator else { return nil }
        let names = map.paths.map(\.kernelName)
        operatorRemoved.formUnion(names)
        deletedMaps.removeAll { $0.wwid == map.wwid }
        deletedMaps.append((map.name, map.wwid, names))
        if deletedMaps.count > 4096 { deletedMaps.removeFirst() }
        if let first = map.paths.first {
            log.log(.operatorRemovedMap, LogArgument.device(first.device), LogArgument.signed(names.count - 1))
        }
        return nil
    }
}
