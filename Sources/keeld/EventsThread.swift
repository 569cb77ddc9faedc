// The events thread: the control plane. Loads the tables the recovery thread asks for, turns dm
// events and periodic status reads into kernel events, re-reads priorities, applies a reloaded
// configuration. It allocates and calls libdevmapper; it never shares a lock with recovery.
import Glibc
import KeelCore
import KeelLinux

final class EventsThread: @unchecked Sendable {
    let shared: DaemonShared
    var assembler: MultipathAssembler
    let checker: DaemonChecker
    let poller: DMEventPoller?
    let uevents: UeventMonitor?
    var topology: RingTopology<DaemonChannel>
    let log: LogProducer
    let options: Options
    /// How often every map's status is read and delivered (repairs missed events).
    let resyncIntervalNs: Nanoseconds
    /// How often priorities are re-read (the configuration's polling interval).
    let priorityIntervalNs: Nanoseconds
    /// How often devices that could not be opened are tried again (the fast probe interval: a
    /// path whose device returns must not wait a whole polling interval to be checked).
    let reopenIntervalNs: Nanoseconds
    /// Maps whose table load failed, asked for again with backoff until one loads.
    var reloadRetries = ReloadRetries()
    /// Devices the operator took out (`del path`, `del map`): rediscovery leaves them alone
    /// until an `add` uevent, `add path` or `add map` brings them back.
    var operatorRemoved: Set<String> = []
    /// Maps the operator deleted, with their paths, so `add map NAME` can bring one back.
    var deletedMaps: [(name: String, wwid: String, paths: [String])] = []
    /// `resize map` orders waiting for their map's table load.
    var pendingResizes: [MapHandle: [UInt32]] = [:]
    /// Per path slot: how many reservation registrations were logged (`logRegistrations`).
    var registrationsSeen: [PathHandle: UInt32] = [:]
    /// Reads again the capacity of disks found with 0 sectors, each on a thread of its own.
    let rescanner = CapacityRescanner()
    /// How often a rescan in flight is looked at.
    static let rescanPollNs: Nanoseconds = 100 * Time.nsPerMs

    init(shared: DaemonShared, assembler: MultipathAssembler, checker: DaemonChecker, poller: DMEventPoller?, uevents: UeventMonitor?,
         log: LogProducer, options: Options, growth: TableGrowth? = nil) {
        self.shared = shared
        self.uevents = uevents
        topology = RingTopology(channel: DaemonChannel(shared: shared, log: log), growth: growth)
        self.assembler = assembler
        self.checker = checker
        self.poller = poller
        self.log = log
        self.options = options
        resyncIntervalNs = 5 * Time.nsPerSecond
        priorityIntervalNs = Nanoseconds(max(1, assembler.configuration.pollingIntervalSeconds)) * Time.nsPerSecond
        reopenIntervalNs = Nanoseconds(max(10, assembler.configuration.fastProbeIntervalMs)) * Time.nsPerMs
    }

    func run() {
        var sink = RingLoopSink(channel: topology.channel)
        var nextResyncNs = monotonicNs() + resyncIntervalNs
        var nextPrioritiesNs = monotonicNs() + priorityIntervalNs
        var nextReopenNs = monotonicNs() + reopenIntervalNs
        var nextRediscoveryNs = monotonicNs() + Rediscovery.intervalNs
        let reloadFD = shared.reloads.doorbell.descriptor
        let wakeFD = shared.eventsWake.descriptor
        let dmFD = poller?.fileDescriptor ?? -1
        let ueventFD = uevents?.fileDescriptor ?? -1
        while !shared.eventsStop.load(ordering: .acquiring) {
            let now = monotonicNs()
            var wakeNs = min(nextResyncNs, nextPrioritiesNs)
            if !assembler.unopened.isEmpty { wakeNs = min(wakeNs, nextReopenNs) }
            wakeNs = min(wakeNs, nextRediscoveryNs)
            wakeNs = min(wakeNs, reloadRetries.nextDueNs())
            if let heldDeadline = assembler.nextHeldDeadlineNs { wakeNs = min(wakeNs, heldDeadline) }
            if rescanner.inFlight > 0 { wakeNs = min(wakeNs, now + Self.rescanPollNs) }
            let timeoutMs = Int32(clamping: max(0, wakeNs - now) / Time.nsPerMs + 1)
            let readable = pollReadable([reloadFD, wakeFD, dmFD, ueventFD], timeoutMs: timeoutMs)
            if shared.eventsStop.load(ordering: .acquiring) { break }
            if readable[0] { _ = shared.reloads.doorbell.drain() }
            topology.settleLateReplies()
            serviceReloads()
            if readable[1] { _ = shared.eventsWake.drain() }
            handleOrders()
            if shared.reconfigureRequested.exchange(false, ordering: .acquiringAndReleasing) { reconfigure() }
            if readable[2], let poller {
                handleDMEvents(poller, into: &sink)
            }
            if readable[3], let uevents {
                handleUevents(uevents)
            }
            logRegistrations()
            serviceRescans()
            let after = monotonicNs()
            if after >= nextResyncNs {
                for error in assembler.resync(into: &sink, nowNs: after) { report(error) }
                nextResyncNs = after + resyncIntervalNs
            }
            for map in reloadRetries.takeDue(nowNs: after) {
                // Asked again with the engine's latest layout; the outcome updates the schedule.
                shared.send(.requestReload(map), unless: shared.eventsStop)
            }
            if let heldDeadline = assembler.nextHeldDeadlineNs, after >= heldDeadline { reconsiderHeld() }
            if after >= nextRediscoveryNs {
                rediscover()
                nextRediscoveryNs = after + Rediscovery.intervalNs
            }
            if after >= nextReopenNs {
                // Devices that were offline at start: open them once they answer again.
                assembler.retryUnopened()
                reportFallbacks()
                nextReopenNs = after + reopenIntervalNs
            }
            if after >= nextPrioritiesNs {
                for change in assembler.refreshPriorities() {
                    log.log(.priorityChanged, LogArgument.path(change.path, device: change.device), LogArgument.signed(Int(change.priority)))
                    shared.send(.setPriority(change.path, change.priority), unless: shared.eventsStop)
                }
                Self.logNotices(&assembler, to: log)
                nextPrioritiesNs = after + priorityIntervalNs
            }
        }
    }

    /// Logs each reservation registration of a returning path the checker finished since the last
    /// pass (a reinstatement wakes this thread with its dm event, so the line follows it closely).
    func logRegistrations() {
        for done in assembler.finishedRegistrations(since: &registrationsSeen) {
            let event: LogMessage
            switch done.outcome {
            case .registered: event = .pathRegistered
            case .keyAbsent: event = .pathRegistrationKeyAbsent
            case .failed, .none: event = .pathRegistrationFailed
            }
            log.log(event, LogArgument.device(done.path.device), LogArgument.map(done.map))
        }
    }

    /// Loads every table the recovery thread handed over, then returns the snapshot slots.
    func serviceReloads() {
        let outcomes = TableLoads.service(shared.reloads, assembler: &assembler, retries: &reloadRetries, channel: topology.channel,
                                          nowNs: monotonicNs)
        guard !outcomes.isEmpty else { return }
        for outcome in outcomes {
            if let error = outcome.error {
                report(error)
                answerResizes(of: outcome.map, failure: "the table with the new size was not loaded: \(error.description)")
            } else {
                answerResizes(of: outcome.map, failure: nil)
                let paths = outcome.layout.reduce(0) { $0 + $1.count }
                log.log(.tableLoaded, LogArgument.map(outcome.map), LogArgument.signed(Int(paths)), LogArgument.signed(Int(outcome.layout.count)))
            }
        }
        Self.logNotices(&assembler, to: log)
        shared.publish(assembler)
    }

    /// Block-device uevents: a SCSI disk that appears is discovered and, when it is a path Keel
    /// wants (not blacklisted, with a WWID, not known yet), added to its map (or a new map)
    /// through the recovery thread; the engine then asks for the table. Other actions are logged.
    func handleUevents(_ uevents: UeventMonitor) {
        var batch = UeventBatch()
        let drainStartNs = monotonicNs()
        let drained = uevents.drain(into: &batch)
        // Without udevd, every kernel uevent is read and filtered here, not in the kernel: what
        // a burst costs the events thread (the other subsystems' uevents wake it with 0).
        let drainMs = Int((monotonicNs() - drainStartNs) / Time.nsPerMs)
        if drained > 0 || drainMs >= 10 { log.log(.ueventsDrained, LogArgument.signed(drained), LogArgument.signed(drainMs)) }
        if batch.resyncNeeded {
            // The kernel dropped uevents (receive buffer overflow): what they said is unknown.
            log.log(.ueventOverflow, LogArgument.signed(Int(uevents.overflowCount)))
            rediscover()
        }
        var added: [String] = []
        var addedNames: Set<String> = []
        var removed = false
        var changedMaps: Set<MapHandle> = []
        for record in batch.records where !record.isDeviceMapper {
            log.log(.uevent, LogArgument.action(record.action), LogArgument.device(record.device))
            let name = record.kernelName.description
            // An `add` brings back a device the operator deleted; a `change` does not.
            if record.action == .add { operatorRemoved.remove(name) }
            if (record.action == .add || (record.action == .change && !operatorRemoved.contains(name))) && addedNames.insert(name).inserted {
                added.append(name)
            }
            if record.action == .change, let map = assembler.maps.first(where: { $0.paths.contains { $0.kernelName == name } }) {
                changedMaps.insert(map.handle)
            }
            if record.action == .remove {
                let map = assembler.maps.first { $0.paths.contains { $0.kernelName == name } }
                if assembler.remove(kernelName: name, nowNs: monotonicNs(), topology: &topology) != nil {
                    removed = true
                    if let map { flushIfLastPathWent(map) }
                }
            }
        }
        for map in changedMaps { resizeIfAsked(map) }
        if removed || !changedMaps.isEmpty {
            let assembler = self.assembler
            shared.publish(assembler)
        }
        guard !added.isEmpty else { return }
        // A burst (a new array, a fabric coming back) is discovered on a thread per CPU, as at
        // start-up: each device's sysfs reads are milliseconds, and nothing else is read here
        // meanwhile.
        let discoveryStartNs = monotonicNs()
        let paths = SysfsDiscovery(uidAttributes: assembler.uidAttributes).discover(names: added, threads: SysfsDiscovery.threadsForHost).paths
        let assemblyStartNs = monotonicNs()
        guard !paths.isEmpty else { return }
        assembleAndReport(paths)
        // Where a burst's time went (a table is loaded later, when the recovery thread asks).
        log.log(.burstAssembled, LogArgument.signed(added.count), LogArgument.signed(Int((assemblyStartNs - discoveryStartNs) / Time.nsPerMs)),
                LogArgument.signed(paths.count), LogArgument.signed(Int((monotonicNs() - assemblyStartNs) / Time.nsPerMs)))
        let assembler = self.assembler
        shared.publish(assembler)
    }

    /// A dm event: re-arm, list, and resync the maps whose event number moved.
    func handleDMEvents(_ poller: DMEventPoller, into sink: inout RingLoopSink<DaemonChannel>) {
        do throws(DMError) {
            try poller.arm()
            let changes = poller.changes(to: try poller.listDevices())
            for change in changes where change.kind == .changed {
                guard let map = assembler.map(named: change.name) else { continue }
                log.log(.dmEvent, LogArgument.map(map.handle), LogArgument.signed(Int(change.eventNumber)))
                if let error = assembler.resync(mapNamed: change.name, into: &sink, nowNs: monotonicNs()) { report(error) }
            }
        } catch {
            log.log(.dmDriverOperationFailed, LogArgument.operation(LogDMOperation(error.operation)), LogArgument.errno(error.errno))
        }
    }

    /// SIGHUP or `reconfigure`: read the configuration again; a bad one is refused and the
    /// running one kept; a good one gives every map its new profile (tables reloaded, noflush,
    /// never torn down).
    func reconfigure() {
        switch Daemon.loadConfiguration(options) {
        case .failure(let error):
            let line = error.problems.first?.line ?? 0
            log.log(.configurationRejected, LogArgument.signed(Int(line)), LogArgument.signed(Int(error.problems.count)))
        case .success(let loaded):
            if loaded.configuration.uidAttributes != assembler.uidAttributes { log.log(.uidAttributeChangeDeferred) }
            let changes = assembler.reconfigure(loaded.configuration)
            for change in changes {
                shared.send(.setPolicy(change.map, change.policy), unless: shared.eventsStop)
            }
            log.log(.reconfigured, LogArgument.signed(Int(changes.count)))
            reconsiderHeld()
        }
    }

    /// Compares /sys/block with the paths assembled and repairs both ways: a SCSI disk not
    /// assembled yet is discovered and added (an `add` uevent that was lost), an assembled path
    /// whose device is gone is removed (a lost `remove`). Runs after a uevent overflow and every
    /// minute. Known disks cost one directory entry each; only new ones are read in full.
    func rediscover() {
        let discovery = SysfsDiscovery(uidAttributes: assembler.uidAttributes)
        let present = Set(discovery.blockDeviceNames())
        assembler.forgetWithoutCapacity(allBut: present)
        rescanner.forget(allBut: present)
        let differences = Rediscovery.differences(present: present,
                                                  assembled: Set(assembler.maps.flatMap { $0.paths.map(\.kernelName) }),
                                                  held: assembler.heldKernelNames.union(operatorRemoved))
        var changed = false
        for gone in differences.gone {
            let map = assembler.maps.first { $0.paths.contains { $0.kernelName == gone } }
            if assembler.remove(kernelName: gone, nowNs: monotonicNs(), topology: &topology) != nil {
                changed = true
                if let map { flushIfLastPathWent(map) }
            }
        }
        var paths: [DiscoveredPath] = []
        for name in differences.added where name.hasPrefix("sd") || SysfsDiscovery.isNVMeNamespaceName(name) {
            if case .path(let path) = discovery.discoverPath(named: name) { paths.append(path) }
        }
        if !paths.isEmpty {
            assembleAndReport(paths)
            changed = true
        }
        // The wwids file may have been added to (multipath -a): held paths may qualify now.
        assembler.rereadWWIDs()
        reconsiderHeld()
        let pathCount = assembler.maps.reduce(0) { $0 + $1.paths.count }
        log.log(.resyncFinished, LogArgument.signed(pathCount), LogArgument.signed(assembler.maps.count))
        if changed {
            let assembler = self.assembler
            shared.publish(assembler)
        }
    }

    /// Disks without capacity: those whose rescan returned are discovered again (the write
    /// returns once the kernel has read the capacity, and 0 -> N sends no uevent), then every
    /// one still without capacity is asked for again (at most once a minute each, a few at a time).
    func serviceRescans() {
        var returned: [String] = []
        for done in rescanner.finished() {
            if done.errno == 0 {
                returned.append(done.kernelName)
            } else if let device = assembler.withoutCapacity[done.kernelName] {
                log.log(.capacityRescanFailed, LogArgument.device(device), LogArgument.errno(done.errno))
            }
        }
        if !returned.isEmpty {
            let discovery = SysfsDiscovery(uidAttributes: assembler.uidAttributes)
            var paths: [DiscoveredPath] = []
            for name in returned {
                if case .path(let path) = discovery.discoverPath(named: name) { paths.append(path) }
            }
            assembleAndReport(paths)
            let assembler = self.assembler
            shared.publish(assembler)
        }
        guard !assembler.withoutCapacity.isEmpty else { return }
        let now = monotonicNs()
        for name in assembler.withoutCapacity.keys.sorted() { rescanner.request(name, nowNs: now) }
    }

    /// Assembles paths just discovered (found by a uevent, rediscovery, a rescan or the
    /// operator), logs what went wrong and what assembly noticed; returns the errors.
    @discardableResult
    func assembleAndReport(_ paths: [DiscoveredPath]) -> [AssemblyError] {
        let errors = assembler.assemble(DiscoveryReport(paths: paths, skipped: []), nowNs: monotonicNs(), topology: &topology)
        for error in errors { report(error) }
        reportFallbacks()
        return errors
    }

    /// Logs the devices checked with directio because they have no SCSI generic node, and what
    /// else assembly noticed (find_multipaths decisions, bindings and wwids files).
    func reportFallbacks() {
        for device in assembler.turFallbacks { log.log(.turWithoutGeneric, LogArgument.device(device)) }
        assembler.turFallbacks.removeAll()
        Self.logNotices(&assembler, to: log)
    }

    /// Logs and clears the assembler's notices.
    static func logNotices(_ assembler: inout MultipathAssembler, to log: LogProducer) {
        for notice in assembler.notices {
            switch notice {
            case .heldBack(let device, .notKnown): log.log(.pathNotKnown, LogArgument.device(device))
            case .heldBack(let device, .waitUntil(let deadline)):
                log.log(.pathWaitsForSibling, LogArgument.device(device), LogArgument.signed(Int(max(0, deadline - monotonicNs()) / Time.nsPerMs)))
            case .heldBack(let device, _): log.log(.pathSinglePath, LogArgument.device(device))
            case .released(let device): log.log(.pathReleased, LogArgument.device(device))
            case .bindingAdded(let map): log.log(.bindingAdded, LogArgument.map(map))
            case .bindingFailed(let map, let errno): log.log(.bindingFailed, LogArgument.map(map), LogArgument.errno(errno))
            case .bindingTaken(let map): log.log(.bindingTaken, LogArgument.map(map))
            case .wwidsFileFailed(let errno): log.log(.wwidsFileFailed, LogArgument.errno(errno))
            case .prkeysFileFailed(let errno): log.log(.prkeysFileFailed, LogArgument.errno(errno))
            case .stateFileLineSkipped(let wwids, let line):
                log.log(wwids ? .wwidsLineSkipped : .bindingsLineSkipped, LogArgument.signed(line))
            case .transportTimeoutRefused(let device, let attribute, let seconds, let errno):
                log.log(.transportTimeoutRefused, LogArgument.device(device), LogArgument.signed(attribute.rawValue),
                        LogArgument.signed(seconds), LogArgument.errno(errno))
            case .priorityUnanswered(let device): log.log(.priorityUnanswered, LogArgument.device(device))
            case .groupByTPGFallback(let map): log.log(.groupByTPGFallback, LogArgument.map(map))
            case .noCapacity(let device): log.log(.pathWithoutCapacity, LogArgument.device(device))
            case .rdacDetected(let map): log.log(.rdacDetected, LogArgument.map(map))
            case .capacityFound(let device, let sectors): log.log(.pathCapacityFound, LogArgument.device(device), LogArgument.signed(Int(clamping: sectors)))
            case .resizedAtAdoption(let map, let old, let new):
                log.log(.mapResized, LogArgument.map(map), LogArgument.signed(Int(old)), LogArgument.signed(Int(new)))
            }
        }
        assembler.notices.removeAll()
    }

    /// find_multipaths: decides again about the paths it holds back (the wwids file may list
    /// them now, a `smart` wait may have ended); those that qualify become maps.
    func reconsiderHeld() {
        let before = assembler.maps.count
        for error in assembler.reconsiderHeld(nowNs: monotonicNs(), topology: &topology) { report(error) }
        reportFallbacks()
        if assembler.maps.count != before {
            let assembler = self.assembler
            shared.publish(assembler)
        }
    }

    func report(_ error: AssemblyError) {
        let handle = assembler.map(named: error.map)?.handle ?? MapHandle(index: 0)
        if let mismatch = error.sizeMismatch {
            log.log(.pathSizeMismatch, LogArgument.device(mismatch.device), LogArgument.signed(Int(mismatch.pathSectors)),
                    LogArgument.map(handle), LogArgument.signed(Int(mismatch.mapSectors)))
            return
        }
        let step = AssemblyOperation.allCases.firstIndex(of: error.operation) ?? -1
        log.log(.assemblyFailed, LogArgument.map(handle), LogArgument.signed(Int(step)), LogArgument.errno(error.errno))
    }
}
