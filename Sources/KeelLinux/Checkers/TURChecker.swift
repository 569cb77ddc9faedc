// The tur checker: SCSI TEST UNIT READY sent asynchronously through the sg driver (write the
// request, epoll for the answer, read it), so no thread ever waits on a device.
import Glibc
import Synchronization
import CKeelShim
import KeelCore

/// Sizes and limits of a TUR checker, all fixed at init.
public struct TURConfiguration: Sendable {
    /// Paths the checker's tables are reserved for; `PathHandle.index` must be below it.
    public var pathsMax: Int
    /// Paths with a usable slot at init (all of `pathsMax` when nil); `prepare` adds more.
    public var initialPaths: Int?
    /// Where the per-path tables live.
    public var memory: TableMemory

    public init(pathsMax: Int, initialPaths: Int? = nil, memory: TableMemory = .heap) {
        self.pathsMax = pathsMax
        self.initialPaths = initialPaths
        self.memory = memory
    }
}

/// What the TUR checker did, for `show` commands and tests. Read it on the recovery thread.
public struct TURCounters: Sendable, Equatable {
    public var submitted = 0
    public var completed = 0
    public var timedOut = 0
    /// Answers of commands that had already been reported as timed out (orphans coming back).
    public var lateCompletions = 0
    /// Refusals: a check of the path was still in flight.
    public var refusedBusy = 0
    /// Refusals: the path's previous command timed out and is still in the kernel.
    public var refusedOrphan = 0
    /// Refusals: no descriptor registered for the path.
    public var refusedUnregistered = 0
    /// Refusals: the sg driver would not take the request now (EAGAIN, EDOM: its queue is full).
    public var refusedSubmit = 0
    /// Returning paths registered with their map's reservation key before being reported up.
    public var registered = 0
    /// Returning paths not registered because the LUN does not have the key (nobody registered it).
    public var registrationKeyAbsent = 0
    /// Returning paths whose PERSISTENT RESERVE IN or OUT failed (reported up all the same, as
    /// multipathd reinstates them).
    public var registrationFailed = 0
    public init() {}
}

/// The tur path checker (multipath-tools' `tur`): TEST UNIT READY with `sg_io_hdr.timeout` set to
/// the check's timeout, decoded by `TURSense.decide` (UNIT ATTENTION and transient host errors
/// sent again, up to `TURSense.attemptsMax` attempts, within the same deadline).
///
/// Each path has its own descriptor on its SCSI generic node (`/dev/sgN`). A check is a `write` of
/// an `sg_io_hdr` (the sg driver's asynchronous interface: it queues the command and returns); the
/// answer is `read` from the same descriptor when epoll says it is there. Every descriptor is in
/// one edge-triggered epoll set, whose descriptor (`completionFD`) the recovery thread polls. No
/// thread is involved, so a device whose commands hang (a blocked FC rport, an iSCSI session in
/// recovery, a host in error handling) holds nothing but its own path: the check is reported
/// `.timeout` at its deadline, which counts from the `write`, and the command becomes an orphan
/// of its path: counted, visible (`isOrphaned`), and no new check of that path is sent until the
/// kernel gives the command back. Checks of every other path go on as scheduled, for any number
/// of hung paths.
public struct TURChecker: PathCheckBackend {
    @usableFromInline let core: TURCore

    /// Creates the epoll set and the per-path tables, reserved for `configuration.pathsMax` paths.
    public init(_ configuration: TURConfiguration) throws(SystemError) {
        core = try TURCore(configuration)
    }

    /// Makes room for `paths` paths (the thread that grows tables; never the recovery thread).
    public func prepare(paths: Int) { core.prepare(paths: paths) }

    /// Paths with a slot now.
    public var pathCapacity: Int { core.ready.load(ordering: .acquiring) }

    /// Bytes committed per path slot.
    public static var bytesPerPath: Int { TURCore.bytesPerPath }

    /// Readable when an answer is waiting (the epoll set's descriptor); `reap` collects them.
    public var completionFD: Int32 { core.epollFD }
    /// Counters; read them on the recovery thread.
    public var counters: TURCounters { core.counters }
    /// Commands that timed out and are still in the kernel (any thread may read it).
    public var orphansInFlight: Int { core.orphans.load(ordering: .relaxed) }
    /// Whether `path`'s last command timed out and has not come back (any thread may read it).
    public func isOrphaned(_ path: PathHandle) -> Bool {
        path.index < pathCapacity && core.state(path.index) == .orphaned
    }

    /// Opens `devicePath`, which must be a SCSI generic node (`/dev/sgN`; anything else is refused
    /// with ENOTTY, since a request written to a block device would be written as data), for
    /// `path` (control plane). Replaces an earlier registration.
    /// `check` is the SCSI check the path gets (tur unless its `path_checker` names another).
    public func register(path: PathHandle, devicePath: String, check: SCSICheck = .tur) throws(SystemError) {
        let fd = Int32(try systemCall("open(sg)") { keel_checkers_open_sg(devicePath) })
        do throws(SystemError) {
            try core.install(path: path.index, fd: fd, check: check)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Opens SCSI generic nodes on `threads` threads at once (control plane): per node, its
    /// descriptor for `register(path:transport:)`, or -1 when it could not be opened as one
    /// (the caller registers that path by name, which reports why). At start, opening a
    /// thousand sg nodes one after the other is most of the time paths take to be added.
    public static func openSG(_ devicePaths: [String], threads: Int) -> [Int32] {
        ScratchThread.stridedMap(count: devicePaths.count, slices: threads, name: "keel-sg-open", stackBytes: 64 * 1024) { indices in
            indices.map { keel_checkers_open_sg(devicePaths[$0]) }
        }
    }

    /// Takes `fd` as `path`'s transport (control plane): a SCSI generic node, or a socket whose
    /// peer answers like one (a fake target: reads each `sg_io_hdr` request, writes the answering
    /// header, fills the sense buffer the request points at). Anything else is refused with
    /// ENOTTY. The checker owns `fd` from here on (it is closed on a refusal too).
    public func register(path: PathHandle, transport fd: Int32, check: SCSICheck = .tur) throws(SystemError) {
        guard keel_checkers_sg_kind(fd) != 0 else {
            Glibc.close(fd)
            throw SystemError("register(sg transport)", errno: ENOTTY)
        }
        do throws(SystemError) {
            try core.install(path: path.index, fd: fd, check: check)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Forgets the path's descriptor; closed now, or once its command in flight comes back.
    public func unregister(path: PathHandle) { core.unregister(path: path.index) }

    /// Closes descriptors parked by `unregister` whose commands have come back (control plane).
    @discardableResult
    public func closeRetiredDescriptors() -> Int { core.descriptors.closeRetired(isIdle: core.isIdle) }

    /// The SCSI check the path gets (any thread may read it).
    public func check(of path: PathHandle) -> SCSICheck {
        path.index < pathCapacity ? core.check(path.index) : .tur
    }

    /// The persistent-reservation key a returning path of this map is registered with before it
    /// is reported up (0: none), as multipathd does for a map whose paths mpathpersist registered:
    /// PERSISTENT RESERVE IN (READ KEYS) through the path, then, when the LUN has the key,
    /// PERSISTENT RESERVE OUT (REGISTER AND IGNORE EXISTING KEY) with it, both within the check's
    /// deadline. Any thread may set it; the recovery thread reads it when a check ends up.
    public func setReservationKey(_ key: UInt64, aptpl: Bool, path: PathHandle) {
        guard path.index < pathCapacity else { return }
        core.reservationFlags[path.index].store(aptpl ? 1 : 0, ordering: .relaxed)
        // A new key: what registering with the old one came to no longer says anything.
        if core.reservationKeys[path.index].exchange(key, ordering: .acquiringAndReleasing) != key {
            core.registrationOutcomes[path.index].store(ReservationRegistration.none.rawValue, ordering: .relaxed)
        }
    }

    /// What registering the path with its reservation key last came to (any thread may read it).
    public func registration(of path: PathHandle) -> ReservationRegistration {
        path.index < pathCapacity ? ReservationRegistration(rawValue: core.registrationOutcomes[path.index].load(ordering: .relaxed)) ?? .none : .none
    }

    /// Registrations of the path's slot finished so far (it only grows, across the paths that
    /// use the slot) and what the last came to: a reader that remembers the count sees each new
    /// attempt once (any thread may read it).
    public func registrationRecord(of path: PathHandle) -> (attempts: UInt32, outcome: ReservationRegistration) {
        guard path.index < pathCapacity else { return (0, .none) }
        let attempts = core.registrationAttempts[path.index].load(ordering: .acquiring)
        return (attempts, registration(of: path))
    }

    /// Why the path's last check ended as it did (any thread may read it).
    public func lastReason(of path: PathHandle) -> TURReason {
        path.index < pathCapacity ? core.lastReason(path.index) : TURReason(packed: 0)
    }

    @inlinable
    public func submit(_ request: CheckRequest, nowNs: Nanoseconds) -> Bool {
        core.submit(request, nowNs: nowNs)
    }

    @inlinable
    public func reap<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S) {
        core.reap(nowNs: nowNs, into: &sink)
    }

    /// The earliest deadline among checks in flight (`Time.never` when none).
    public func nextDeadlineNs() -> Nanoseconds { core.inFlight.nextDeadlineNs() }

    /// Blocks at most `timeoutNs` until an answer is waiting. Returns whether one is.
    public func waitForCompletions(timeoutNs: Nanoseconds) -> Bool {
        keel_checkers_wait_readable(core.epollFD, max(0, timeoutNs)) > 0
    }

    /// Closes every descriptor without a command in the kernel, and the epoll set.
    public func close() { core.close() }
}

/// What registering a returning path with its map's reservation key came to.
public enum ReservationRegistration: UInt8, Sendable, CustomStringConvertible {
    /// Not tried (no key, or the path has not come back since it was added or the key set).
    case none = 0
    case registered = 1
    /// The LUN does not have the key: nobody registered it, so this path is not registered either.
    case keyAbsent = 2
    /// PERSISTENT RESERVE IN or OUT failed; the path was reported up all the same.
    case failed = 3

    public var description: String {
        switch self {
        case .none: return "none"
        case .registered: return "registered"
        case .keyAbsent: return "key not on the LUN"
        case .failed: return "registration failed"
        }
    }

    /// One word for listings and metric labels.
    public var word: String {
        switch self {
        case .none: return "none"
        case .registered: return "registered"
        case .keyAbsent: return "key_absent"
        case .failed: return "failed"
        }
    }
}

/// Per-path states of the TUR checker. The recovery thread moves a path out of `idle` and back;
/// the control plane only reads them (to know when a descriptor may be closed).
@usableFromInline
enum TURPathState: UInt32 {
    case idle = 0
    /// A command is in the kernel and its deadline has not passed.
    case inFlight = 1
    /// The command timed out (reported) and is still in the kernel; its answer will be dropped.
    case orphaned = 2
    /// The write was refused for good (ENODEV, ENXIO...): reported down at the next reap.
    case failedAtSubmit = 3
}

/// The TUR checker's state, shared by copies of the `TURChecker` value.
@usableFromInline
final class TURCore: @unchecked Sendable {
    /// Sense buffer bytes (SCSI_SENSE_BUFFERSIZE is 96; a TUR's sense fits in 32).
    static let senseBytes = 32
    /// epoll events fetched per call (the shim's stack array).
    static let eventsPerPoll = 64

    let pathsMax: Int
    let memory: TableMemory
    /// Paths with usable slots (grown by `prepare` before the engine hands out their handles).
    let ready = Atomic<Int>(0)
    let epollFD: Int32
    let descriptors: DeviceDescriptors
    private(set) var counters = TURCounters()
    let orphans = Atomic<Int>(0)
    var inFlight: InFlightChecks
    private let states: UnsafeMutablePointer<Atomic<UInt32>>
    private let reasons: UnsafeMutablePointer<Atomic<UInt64>>
    /// Attempts made by the command in flight (UNIT ATTENTION is answered by sending it again).
    private let attempts: UnsafeMutablePointer<UInt8>
    /// Timeout of the check in flight, for a resend.
    private let timeoutsMs: UnsafeMutablePointer<UInt32>
    /// errno of a write refused for good, reported at the next reap.
    private let submitErrnos: UnsafeMutablePointer<Int32>
    /// The check each path gets (`SCSICheck.rawValue`; written at registration, before the path's
    /// first check is sent).
    private let checks: UnsafeMutablePointer<Atomic<UInt8>>
    /// The stage of the check in flight (hp_sw: 0 the INQUIRY, 1 the TUR).
    private let stages: UnsafeMutablePointer<UInt8>
    /// emc_clariion: a digest of the LUN WWN each path reported first (0: none yet).
    private let wwns: UnsafeMutablePointer<UInt64>
    /// The reservation key each path is registered with when it comes back (0: none), and its
    /// flags (bit 0: APTPL); set by the control plane.
    let reservationKeys: UnsafeMutablePointer<Atomic<UInt64>>
    let reservationFlags: UnsafeMutablePointer<Atomic<UInt8>>
    /// `ReservationRegistration` of each path's last attempt, and how many attempts finished.
    let registrationOutcomes: UnsafeMutablePointer<Atomic<UInt8>>
    let registrationAttempts: UnsafeMutablePointer<Atomic<UInt32>>
    /// 1 when the path has not been up since it was installed or last failed a check: its next
    /// up answer is followed by the registration (recovery thread, and install before the
    /// path's first check).
    private let armed: UnsafeMutablePointer<UInt8>
    /// The registration command in flight after an up answer: 0 none, 1 READ KEYS, 2 REGISTER.
    private let registering: UnsafeMutablePointer<UInt8>
    /// The result (`CheckResult`) the check came to, held while the path is registered.
    private let heldResults: UnsafeMutablePointer<UInt8>
    // One request header, CDB and sense buffer for every command: requests are written and
    // answers read on the recovery thread only, and the sg driver copies the header and CDB in at
    // `write` and the sense out (to the address given at `write`) during `read`, where the answer
    // is decoded before the next one is read.
    private let header: UnsafeMutablePointer<sg_io_hdr>
    private let command: UnsafeMutablePointer<UInt8>
    private let sense: UnsafeMutablePointer<UInt8>
    /// The data buffer of every command that returns data (INQUIRY pages, the block of
    /// readsector0): the sg driver copies an answer's data to it during that answer's `read`, and
    /// it is decoded before the next answer is read.
    private let data: UnsafeMutablePointer<UInt8>
    private let eventData: UnsafeMutablePointer<UInt64>
    private let eventFlags: UnsafeMutablePointer<UInt8>
    private var closed = false

    init(_ configuration: TURConfiguration) throws(SystemError) {
        precondition(configuration.pathsMax > 0, "a checker needs room for paths")
        pathsMax = configuration.pathsMax
        memory = configuration.memory
        epollFD = Int32(try systemCall("epoll_create1") { keel_checkers_epoll_create() })
        descriptors = DeviceDescriptors(capacity: pathsMax, memory: memory)
        inFlight = InFlightChecks(capacity: pathsMax, memory: memory)
        states = memory.reserve(Atomic<UInt32>.self, count: pathsMax)
        reasons = memory.reserve(Atomic<UInt64>.self, count: pathsMax)
        attempts = memory.reserve(UInt8.self, count: pathsMax)
        timeoutsMs = memory.reserve(UInt32.self, count: pathsMax)
        submitErrnos = memory.reserve(Int32.self, count: pathsMax)
        checks = memory.reserve(Atomic<UInt8>.self, count: pathsMax)
        stages = memory.reserve(UInt8.self, count: pathsMax)
        wwns = memory.reserve(UInt64.self, count: pathsMax)
        reservationKeys = memory.reserve(Atomic<UInt64>.self, count: pathsMax)
        reservationFlags = memory.reserve(Atomic<UInt8>.self, count: pathsMax)
        registrationOutcomes = memory.reserve(Atomic<UInt8>.self, count: pathsMax)
        registrationAttempts = memory.reserve(Atomic<UInt32>.self, count: pathsMax)
        armed = memory.reserve(UInt8.self, count: pathsMax)
        registering = memory.reserve(UInt8.self, count: pathsMax)
        heldResults = memory.reserve(UInt8.self, count: pathsMax)
        header = .allocate(capacity: 1)
        header.initialize(to: sg_io_hdr())
        command = .allocate(capacity: 10)
        command.initialize(repeating: 0, count: 10)
        data = .allocate(capacity: SCSICheck.dataBytes)
        data.initialize(repeating: 0, count: SCSICheck.dataBytes)
        sense = .allocate(capacity: TURCore.senseBytes)
        sense.initialize(repeating: 0, count: TURCore.senseBytes)
        eventData = .allocate(capacity: TURCore.eventsPerPoll)
        eventData.initialize(repeating: 0, count: TURCore.eventsPerPoll)
        eventFlags = .allocate(capacity: TURCore.eventsPerPoll)
        eventFlags.initialize(repeating: 0, count: TURCore.eventsPerPoll)
        prepare(paths: configuration.initialPaths ?? pathsMax)
    }

    /// Bytes committed per path slot over all the per-path tables.
    static let bytesPerPath = DeviceDescriptors.bytesPerPath + InFlightChecks.bytesPerSlot
        + MemoryLayout<Atomic<UInt32>>.stride + MemoryLayout<Atomic<UInt64>>.stride + MemoryLayout<UInt8>.stride
        + MemoryLayout<UInt32>.stride + MemoryLayout<Int32>.stride
        + MemoryLayout<Atomic<UInt8>>.stride + MemoryLayout<UInt8>.stride + MemoryLayout<UInt64>.stride
        + MemoryLayout<Atomic<UInt64>>.stride + 2 * MemoryLayout<Atomic<UInt8>>.stride + 3 * MemoryLayout<UInt8>.stride
        + MemoryLayout<Atomic<UInt32>>.stride

    /// Commits and clears the tables of paths up to `paths` (the thread that grows tables).
    func prepare(paths: Int) {
        let old = ready.load(ordering: .relaxed), new = min(paths, pathsMax)
        guard new > old else { return }
        descriptors.prepare(upTo: new)
        inFlight.prepare(from: old, to: new)
        memory.commit(states, from: old, to: new)
        memory.commit(reasons, from: old, to: new)
        memory.commit(attempts, from: old, to: new)
        memory.commit(timeoutsMs, from: old, to: new)
        memory.commit(submitErrnos, from: old, to: new)
        memory.commit(checks, from: old, to: new)
        memory.commit(stages, from: old, to: new)
        memory.commit(wwns, from: old, to: new)
        memory.commit(reservationKeys, from: old, to: new)
        memory.commit(reservationFlags, from: old, to: new)
        memory.commit(registrationOutcomes, from: old, to: new)
        memory.commit(registrationAttempts, from: old, to: new)
        memory.commit(armed, from: old, to: new)
        memory.commit(registering, from: old, to: new)
        memory.commit(heldResults, from: old, to: new)
        for i in old..<new {
            (states + i).initialize(to: Atomic(TURPathState.idle.rawValue))
            (reasons + i).initialize(to: Atomic(0))
            (checks + i).initialize(to: Atomic(SCSICheck.tur.rawValue))
            (reservationKeys + i).initialize(to: Atomic(0))
            (reservationFlags + i).initialize(to: Atomic(0))
            (registrationOutcomes + i).initialize(to: Atomic(0))
            (registrationAttempts + i).initialize(to: Atomic(0))
        }
        (armed + old).initialize(repeating: 1, count: new - old)
        (registering + old).initialize(repeating: 0, count: new - old)
        (heldResults + old).initialize(repeating: 0, count: new - old)
        (stages + old).initialize(repeating: 0, count: new - old)
        (wwns + old).initialize(repeating: 0, count: new - old)
        (attempts + old).initialize(repeating: 0, count: new - old)
        (timeoutsMs + old).initialize(repeating: 0, count: new - old)
        (submitErrnos + old).initialize(repeating: 0, count: new - old)
        ready.store(new, ordering: .releasing)
    }

    deinit {
        close()
        memory.release(states, count: pathsMax)
        memory.release(reasons, count: pathsMax)
        memory.release(attempts, count: pathsMax)
        memory.release(timeoutsMs, count: pathsMax)
        memory.release(submitErrnos, count: pathsMax)
        memory.release(checks, count: pathsMax)
        memory.release(stages, count: pathsMax)
        memory.release(wwns, count: pathsMax)
        memory.release(reservationKeys, count: pathsMax)
        memory.release(reservationFlags, count: pathsMax)
        memory.release(registrationOutcomes, count: pathsMax)
        memory.release(registrationAttempts, count: pathsMax)
        memory.release(armed, count: pathsMax)
        memory.release(registering, count: pathsMax)
        memory.release(heldResults, count: pathsMax)
        header.deallocate()
        command.deallocate()
        data.deallocate()
        sense.deallocate()
        eventData.deallocate()
        eventFlags.deallocate()
    }

    @inline(__always)
    func state(_ path: Int) -> TURPathState {
        TURPathState(rawValue: states[path].load(ordering: .sequentiallyConsistent)) ?? .idle
    }

    /// Whether no command of `path` is in the kernel (its descriptor may be closed).
    func isIdle(_ path: Int) -> Bool { state(path) == .idle || state(path) == .failedAtSubmit }

    /// Adds `fd` to the epoll set and makes it the path's descriptor (control plane). The epoll
    /// event carries the path and the descriptor, so an answer on a descriptor parked by
    /// `unregister` is still read from the descriptor it arrived on.
    func install(path: Int, fd: Int32, check: SCSICheck) throws(SystemError) {
        precondition(path < ready.load(ordering: .acquiring), "path handle beyond the checker's slots")
        // A slot is reused by later paths: nothing of an earlier path's check may carry over
        // (emc_clariion's remembered LUN WWN would fail the new path as "WWN changed").
        wwns[path] = 0
        stages[path] = 0
        armed[path] = 1
        registering[path] = 0
        reservationKeys[path].store(0, ordering: .relaxed)
        registrationOutcomes[path].store(ReservationRegistration.none.rawValue, ordering: .relaxed)
        checks[path].store(check.rawValue, ordering: .releasing)
        let data = (UInt64(UInt32(path)) << 32) | UInt64(UInt32(bitPattern: fd))
        _ = try systemCall("epoll_ctl(ADD)") { keel_checkers_epoll_add(epollFD, fd, data) }
        descriptors.install(path, fd: fd, blockBytes: 0, isIdle: isIdle)
    }

    func unregister(path: Int) {
        precondition(path < ready.load(ordering: .acquiring), "path handle beyond the checker's slots")
        descriptors.retire(path, isIdle: isIdle)
    }

    func check(_ path: Int) -> SCSICheck {
        SCSICheck(rawValue: checks[path].load(ordering: .acquiring)) ?? .tur
    }

    func lastReason(_ path: Int) -> TURReason {
        TURReason(packed: reasons[path].load(ordering: .relaxed))
    }

    @usableFromInline
    func submit(_ request: CheckRequest, nowNs: Nanoseconds) -> Bool {
        let path = request.path.index
        precondition(path < ready.load(ordering: .acquiring), "path handle beyond the checker's slots")
        // Claim first, then load the descriptor (paired with DeviceDescriptors.retire).
        let (claimed, current) = states[path].compareExchange(expected: TURPathState.idle.rawValue, desired: TURPathState.inFlight.rawValue,
                                                              ordering: .sequentiallyConsistent)
        if !claimed {
            if current == TURPathState.orphaned.rawValue { counters.refusedOrphan += 1 } else { counters.refusedBusy += 1 }
            return false
        }
        guard let device = descriptors.current(path) else {
            states[path].store(TURPathState.idle.rawValue, ordering: .sequentiallyConsistent)
            counters.refusedUnregistered += 1
            return false
        }
        let timeoutMs = UInt32(clamping: max(1, request.timeoutNs / Time.nsPerMs))
        timeoutsMs[path] = timeoutMs
        attempts[path] = 1
        stages[path] = 0
        registering[path] = 0
        let error = send(fd: device.fd, path: path, timeoutMs: timeoutMs)
        if error == EAGAIN || error == EDOM || error == ENOMEM {
            // The driver's queue for this descriptor is full: not an answer about the path.
            states[path].store(TURPathState.idle.rawValue, ordering: .sequentiallyConsistent)
            counters.refusedSubmit += 1
            return false
        }
        if error != 0 {
            submitErrnos[path] = error
            states[path].store(TURPathState.failedAtSubmit.rawValue, ordering: .sequentiallyConsistent)
            inFlight.add(path, token: request.token, deadlineNs: nowNs)
        } else {
            inFlight.add(path, token: request.token, deadlineNs: nowNs &+ request.timeoutNs)
        }
        counters.submitted += 1
        return true
    }

    /// Writes the command of `path`'s check at its stage (TEST UNIT READY: a CDB all zero); 0 or
    /// the write's errno.
    private func send(fd: Int32, path: Int, timeoutMs: UInt32) -> Int32 {
        switch registering[path] {
        case 1:
            return write(fd: fd, path: path, timeoutMs: timeoutMs,
                         shape: SCSIReservation.readKeys(into: command, allocationBytes: UInt16(SCSIReservation.readKeysBytes)), toDevice: false)
        case 2:
            let shape = SCSIReservation.registerAndIgnore(key: reservationKeys[path].load(ordering: .acquiring),
                                                          aptpl: reservationFlags[path].load(ordering: .relaxed) & 1 != 0,
                                                          cdb: command, parameters: data)
            return write(fd: fd, path: path, timeoutMs: timeoutMs, shape: shape, toDevice: true)
        default:
            return write(fd: fd, path: path, timeoutMs: timeoutMs, shape: check(path).writeCommand(stage: stages[path], into: command), toDevice: false)
        }
    }

    /// Writes the command already in `command` (`shape.length` bytes), with `shape.dataBytes` of
    /// `data` to or from the device; 0 or the write's errno.
    private func write(fd: Int32, path: Int, timeoutMs: UInt32, shape: (length: UInt8, dataBytes: UInt32), toDevice: Bool) -> Int32 {
        header.pointee = sg_io_hdr()
        header.pointee.interface_id = Int32(UInt8(ascii: "S"))
        if shape.dataBytes > 0 {
            header.pointee.dxfer_direction = toDevice ? SG_DXFER_TO_DEV : SG_DXFER_FROM_DEV
            header.pointee.dxfer_len = shape.dataBytes
            header.pointee.dxferp = UnsafeMutableRawPointer(data)
        } else {
            header.pointee.dxfer_direction = SG_DXFER_NONE
        }
        header.pointee.cmd_len = shape.length
        header.pointee.cmdp = command
        header.pointee.mx_sb_len = UInt8(TURCore.senseBytes)
        header.pointee.sbp = sense
        header.pointee.timeout = timeoutMs
        header.pointee.pack_id = Int32(truncatingIfNeeded: path)
        let size = MemoryLayout<sg_io_hdr>.size
        while true {
            let written = Glibc.write(fd, header, size)
            if written == size { return 0 }
            let error = written < 0 ? keel_errno() : EIO
            if error != EINTR { return error }
        }
    }

    @usableFromInline
    func reap<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S) {
        // Answers first: a command that answered just before its deadline is not a timeout.
        while true {
            let count = Int(keel_checkers_epoll_poll(epollFD, eventData, eventFlags, Int32(TURCore.eventsPerPoll)))
            if count <= 0 { break }
            for i in 0..<count {
                let data = eventData[i]
                readAnswers(path: Int(data >> 32), fd: Int32(bitPattern: UInt32(truncatingIfNeeded: data)), into: &sink)
            }
            if count < TURCore.eventsPerPoll { break }
        }
        var i = 0
        while i < inFlight.count {
            let path = inFlight.slot(at: i)
            guard inFlight.deadlineNs(path) <= nowNs else { i += 1; continue }
            inFlight.remove(path)
            let token = inFlight.token(path)
            if state(path) == .failedAtSubmit {
                states[path].store(TURPathState.idle.rawValue, ordering: .sequentiallyConsistent)
                reasons[path].store(TURSense.ioctlFailure(submitErrnos[path], check: check(path)).packed, ordering: .relaxed)
                counters.completed += 1
                sink.checkCompleted(CheckCompletion(path: PathHandle(index: path), token: token, result: .down))
                continue
            }
            // Still in the kernel: its path keeps the command as an orphan until it comes back.
            states[path].store(TURPathState.orphaned.rawValue, ordering: .sequentiallyConsistent)
            orphans.wrappingAdd(1, ordering: .relaxed)
            reasons[path].store(TURReason(kind: .timedOut, check: check(path)).packed, ordering: .relaxed)
            counters.timedOut += 1
            sink.checkCompleted(CheckCompletion(path: PathHandle(index: path), token: token, result: .timeout))
        }
    }

    /// Reads every answer waiting on `fd` (edge-triggered: read until EAGAIN) and settles `path`.
    private func readAnswers<S: CheckCompletionSink>(path: Int, fd: Int32, into sink: inout S) {
        guard path < ready.load(ordering: .relaxed) else { return }
        let size = MemoryLayout<sg_io_hdr>.size
        while true {
            // The sense buffer is not cleared: the answer says how many bytes were written.
            header.pointee = sg_io_hdr()
            header.pointee.interface_id = Int32(UInt8(ascii: "S"))
            let got = read(fd, header, size)
            if got < 0 {
                let error = keel_errno()
                if error == EINTR { continue }
                // EAGAIN: nothing (more) there. Anything else: the deadline settles the path.
                return
            }
            guard got == size else { return }
            settle(path: path, fd: fd, into: &sink)
        }
    }

    private func settle<S: CheckCompletionSink>(path: Int, fd: Int32, into sink: inout S) {
        switch state(path) {
        case .orphaned:
            // The kernel gave the timed-out command back: the path may be checked again.
            states[path].store(TURPathState.idle.rawValue, ordering: .sequentiallyConsistent)
            orphans.wrappingSubtract(1, ordering: .relaxed)
            counters.lateCompletions += 1
            return
        case .idle, .failedAtSubmit:
            return
        case .inFlight:
            break
        }
        let answer = SGAnswer(header: header.pointee, sense: sense, senseCapacity: TURCore.senseBytes)
        if registering[path] != 0 {
            settleRegistration(path: path, fd: fd, answer: answer, into: &sink)
            return
        }
        let check = self.check(path)
        // The data the command returned: what it asked for less the residual the driver reports.
        let asked = Int(header.pointee.dxfer_len)
        let returned = min(max(0, asked - Int(header.pointee.resid)), SCSICheck.dataBytes)
        let (step, wwn) = SCSICheckDecode.decide(check, stage: stages[path], answer: answer,
                                                 page: UnsafeRawBufferPointer(start: data, count: asked > 0 ? returned : 0), knownWWN: wwns[path])
        if wwn != 0 { wwns[path] = wwn }
        let result: CheckResult
        let reason: TURReason
        switch step {
        case .final(let r, let why):
            result = r
            reason = why
        case .retry(let why):
            if Int(attempts[path]) < check.attemptsMax {
                attempts[path] += 1
                let error = send(fd: fd, path: path, timeoutMs: timeoutsMs[path])
                if error == 0 { return }  // Same deadline: the check is still in flight.
            }
            result = .down
            reason = why
        case .nextStage:
            stages[path] += 1
            attempts[path] = 1
            let error = send(fd: fd, path: path, timeoutMs: timeoutsMs[path])
            if error == 0 { return }  // The next command of the same check, same deadline.
            result = .down
            reason = TURSense.ioctlFailure(error, check: check)
        }
        if result == .up || result == .ghost {
            // Back (or new): registered with the map's reservation key before it is reported up.
            if armed[path] != 0 && reservationKeys[path].load(ordering: .acquiring) != 0 {
                reasons[path].store(reason.packed, ordering: .relaxed)
                heldResults[path] = result.rawValue
                registering[path] = 1
                attempts[path] = 1
                if send(fd: fd, path: path, timeoutMs: timeoutsMs[path]) == 0 { return }
                registering[path] = 0
                registrationOutcomes[path].store(ReservationRegistration.failed.rawValue, ordering: .relaxed)
                registrationAttempts[path].wrappingAdd(1, ordering: .releasing)
                counters.registrationFailed += 1
            }
            armed[path] = 0
        } else if result != .pending {
            armed[path] = 1
        }
        finish(path: path, result: result, reason: reason, into: &sink)
    }

    /// The answer to a registration command: READ KEYS is followed by REGISTER AND IGNORE
    /// EXISTING KEY when the LUN has the key; then the check ends with the result it came to.
    /// UNIT ATTENTION (a path coming back has some to tell) is answered by sending again.
    private func settleRegistration<S: CheckCompletionSink>(path: Int, fd: Int32, answer: SGAnswer, into sink: inout S) {
        let stage = registering[path]
        if answer.senseKey == 0x06 && Int(attempts[path]) < SCSIReservation.attemptsMax {
            attempts[path] += 1
            if send(fd: fd, path: path, timeoutMs: timeoutsMs[path]) == 0 { return }
        }
        let good = answer.status == 0 && answer.hostStatus == 0 && answer.senseKey == 0
        var outcome = ReservationRegistration.failed
        if good && stage == 1 {
            let returned = min(max(0, Int(header.pointee.dxfer_len) - Int(header.pointee.resid)), SCSICheck.dataBytes)
            let key = reservationKeys[path].load(ordering: .acquiring)
            if SCSIReservation.keys(UnsafeRawBufferPointer(start: data, count: returned), contain: key) {
                registering[path] = 2
                attempts[path] = 1
                if send(fd: fd, path: path, timeoutMs: timeoutsMs[path]) == 0 { return }
            } else {
                outcome = .keyAbsent
            }
        } else if good {
            outcome = .registered
        }
        switch outcome {
        case .registered: counters.registered += 1
        case .keyAbsent: counters.registrationKeyAbsent += 1
        default: counters.registrationFailed += 1
        }
        registrationOutcomes[path].store(outcome.rawValue, ordering: .relaxed)
        registrationAttempts[path].wrappingAdd(1, ordering: .releasing)
        registering[path] = 0
        armed[path] = 0
        finish(path: path, result: CheckResult(rawValue: heldResults[path]) ?? .up, reason: TURReason(packed: reasons[path].load(ordering: .relaxed)),
               into: &sink)
    }

    private func finish<S: CheckCompletionSink>(path: Int, result: CheckResult, reason: TURReason, into sink: inout S) {
        inFlight.remove(path)
        states[path].store(TURPathState.idle.rawValue, ordering: .sequentiallyConsistent)
        reasons[path].store(reason.packed, ordering: .relaxed)
        counters.completed += 1
        sink.checkCompleted(CheckCompletion(path: PathHandle(index: path), token: inFlight.token(path), result: result))
    }

    func close() {
        guard !closed else { return }
        closed = true
        // A descriptor under a command still in the kernel is left open (its number must not be
        // reused under that command); it goes with the process.
        descriptors.closeAll(isIdle: isIdle)
        Glibc.close(epollFD)
    }
}

extension SGAnswer {
    /// The answer an `sg_io_hdr` read back from the sg driver carries, with the sense data the
    /// driver wrote (`sb_len_wr` bytes, at most `senseCapacity`) parsed. Allocates nothing.
    @inlinable
    public init(header: sg_io_hdr, sense: UnsafeRawPointer, senseCapacity: Int) {
        self.init(status: header.status, hostStatus: header.host_status, driverStatus: header.driver_status, info: header.info)
        if let parsed = TURSense.parse(UnsafeRawBufferPointer(start: sense, count: min(Int(header.sb_len_wr), senseCapacity))) {
            senseKey = parsed.key
            asc = parsed.asc
            ascq = parsed.ascq
        }
    }
}
