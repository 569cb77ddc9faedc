// Simulated path checks: a fixed pool of in-flight check slots, and the `PathCheckBackend` the engine drives.

import KeelCore

/// The engine's checker backend in the simulation. A thin handle: the slots live in the world,
/// so the world's `nextEventNs()` knows when the next check finishes.
///
/// The world must be advanced to `nowNs` before `submit` (which requires `nowNs` to be the
/// world's time) and before `reap` (which delivers what finished up to `nowNs`).
public struct SimChecker: PathCheckBackend {
    public let world: SimWorld

    public init(world: SimWorld) { self.world = world }

    /// Starts a check at the world's time; false when every slot is taken.
    public mutating func submit(_ request: CheckRequest, nowNs: Nanoseconds) -> Bool {
        world.submitCheck(request, nowNs: nowNs)
    }

    /// Delivers every check that finished at or before `nowNs`.
    public mutating func reap<S: CheckCompletionSink>(nowNs: Nanoseconds, into sink: inout S) {
        world.reapChecks(nowNs: nowNs, into: &sink)
    }
}

/// Counters of the check pool.
public struct CheckCounters: Sendable, Equatable {
    public var submitted = 0
    /// Submissions refused because every slot was busy.
    public var refused = 0
    /// Submissions refused because the path's previous check (an orphan) was still out.
    public var refusedBusyPath = 0
    /// Completions delivered by `reap`, timeouts included.
    public var delivered = 0
    public var timeouts = 0
    /// Checks lost on a hung path (they end as timeouts).
    public var lost = 0
    public init() {}
}

/// The fixed pool of check slots, allocated once.
///
/// A slot's life: `inFlight` from `submit`; at its planned completion the path's condition is
/// evaluated *then* (so a path that came back meanwhile reports up) and the slot is `done`
/// until `reap` delivers it and frees it. A check on a path that is hung at its completion
/// time is lost. A check still in flight at `submit + timeoutNs` is delivered as `.timeout`
/// and orphaned: its slot stays taken until the request itself would have ended (its planned
/// completion, or for a lost check the SCSI command timeout after submission), and its late
/// result is never delivered.
struct CheckPool {
    enum Phase: UInt8 {
        case free
        case inFlight
        /// Finished; waiting for `reap`.
        case done
        /// Its timeout was delivered; the request has not ended yet.
        case orphaned
    }

    struct Slot {
        var phase = Phase.free
        var request = CheckRequest(path: PathHandle(0), device: DevNo(major: 0, minor: 0), token: 0, timeoutNs: 0)
        var submitNs: Nanoseconds = 0
        /// When the check's answer arrives (`Time.never` when it is lost).
        var plannedNs: Nanoseconds = 0
        var timeoutAtNs: Nanoseconds = 0
        /// When an orphaned request ends and frees the slot.
        var releaseNs: Nanoseconds = 0
        var releasedBeforeReap = false
        var result = CheckResult.down
        var doneNs: Nanoseconds = 0
    }

    private(set) var slots: [Slot]
    private var freeList: [Int32]
    private var ready: [Int32]
    private var readyHead = 0
    private(set) var readyCount = 0
    private var agenda: EventQueue<Int32>
    private(set) var counters = CheckCounters()

    /// Whether a path may have one check out at most (see `SimOptions.checkOnePerPath`).
    let onePerPath: Bool
    /// Paths (by handle index) with a check or an orphan out, when `onePerPath`.
    private var busyPaths: Set<Int> = []

    init(slotCount: Int, onePerPath: Bool = false) {
        precondition(slotCount >= 1, "the check pool needs a slot")
        self.onePerPath = onePerPath
        slots = Array(repeating: Slot(), count: slotCount)
        freeList = (0..<Int32(slotCount)).reversed().map { $0 }
        ready = Array(repeating: -1, count: slotCount)
        agenda = EventQueue(capacity: slotCount)
    }

    var capacity: Int { slots.count }
    var busyCount: Int { slots.count - freeList.count }
    var next: TimedEvent<Int32>? { agenda.first }

    /// Starts a check; false when no slot is free. `latencyNs` is the drawn answer time of a
    /// healthy or failing path; `san` says whether the path answers at all.
    mutating func submit(_ request: CheckRequest, nowNs: Nanoseconds, latencyNs: Nanoseconds, san: SimSAN,
                         commandTimeoutNs: Nanoseconds, sequence: inout UInt64) -> Bool {
        if onePerPath {
            if busyPaths.contains(request.path.index) {
                counters.refusedBusyPath += 1
                return false
            }
        }
        guard let s = freeList.popLast().map(Int.init) else {
            counters.refused += 1
            return false
        }
        precondition(slots[s].phase == .free, "slot \(s) on the free list is in use")
        if onePerPath { busyPaths.insert(request.path.index) }
        counters.submitted += 1
        var planned = nowNs + latencyNs
        if let path = san.fabric.pathIndex(of: request.device), san.isPresent(path: path) {
            switch san.effectiveCondition(ofPath: path) {
            case .hung:
                planned = Time.never
                counters.lost += 1
            case .slow(let slowNs): planned = nowNs + slowNs
            case .online, .offline: break
            }
        }
        let timeoutAt = request.timeoutNs > 0 && request.timeoutNs < Time.never - nowNs ? nowNs + request.timeoutNs : Time.never
        slots[s] = Slot(phase: .inFlight, request: request, submitNs: nowNs, plannedNs: planned, timeoutAtNs: timeoutAt,
                        releaseNs: 0, releasedBeforeReap: false, result: .down, doneNs: 0)
        schedule(s, atNs: min(planned, timeoutAt), sequence: &sequence)
        return true
    }

    /// Runs the next due slot event at `nowNs` (the agenda's first). Returns the slot and
    /// whether it finished (its result is then waiting for `reap`).
    mutating func runNext(nowNs: Nanoseconds, san: SimSAN, commandTimeoutNs: Nanoseconds,
                          sequence: inout UInt64) -> (slot: Int, finished: Bool) {
        guard let event = agenda.pop() else { preconditionFailure("no check event is due") }
        precondition(event.timeNs == nowNs, "check events run at their time")
        let s = Int(event.payload)
        switch slots[s].phase {
        case .inFlight:
            if nowNs >= slots[s].timeoutAtNs {
                // Timed out: deliver `.timeout`; the request lives on, orphaned, until it ends.
                counters.timeouts += 1
                // A lost command ends when the device answers again (looked at every
                // `orphanPollNs`) or at the SCSI command timeout, whichever comes first.
                let ends = slots[s].plannedNs == Time.never
                    ? min(slots[s].submitNs + commandTimeoutNs, nowNs + Self.orphanPollNs) : slots[s].plannedNs
                slots[s].releaseNs = max(ends, nowNs)
                finish(s, result: .timeout, nowNs: nowNs)
                if slots[s].releaseNs > nowNs {
                    schedule(s, atNs: slots[s].releaseNs, sequence: &sequence)
                } else {
                    slots[s].releasedBeforeReap = true
                }
                return (s, true)
            }
            let result = Self.answer(for: slots[s].request.device, san: san)
            if result == .timeout {
                // The path is hung now: the answer is lost and the check will time out.
                counters.lost += 1
                slots[s].plannedNs = Time.never
                schedule(s, atNs: slots[s].timeoutAtNs, sequence: &sequence)
                return (s, false)
            }
            finish(s, result: result, nowNs: nowNs)
            return (s, true)
        case .done:
            if stillLost(s, nowNs: nowNs, san: san, commandTimeoutNs: commandTimeoutNs) {
                schedule(s, atNs: min(nowNs + Self.orphanPollNs, slots[s].submitNs + commandTimeoutNs), sequence: &sequence)
                return (s, false)
            }
            // The orphaned request ended before its timeout was reaped.
            slots[s].releasedBeforeReap = true
            return (s, false)
        case .orphaned:
            if stillLost(s, nowNs: nowNs, san: san, commandTimeoutNs: commandTimeoutNs) {
                schedule(s, atNs: min(nowNs + Self.orphanPollNs, slots[s].submitNs + commandTimeoutNs), sequence: &sequence)
                return (s, false)
            }
            release(s)
            return (s, false)
        case .free:
            preconditionFailure("a free check slot had an event")
        }
    }

    /// Frees a slot and its path.
    private mutating func release(_ s: Int) {
        slots[s].phase = .free
        freeList.append(Int32(s))
        if onePerPath { busyPaths.remove(slots[s].request.path.index) }
    }

    /// Takes the oldest finished check if it finished at or before `nowNs`, freeing its slot
    /// (or orphaning it, for a timeout whose request has not ended). One at a time, so the
    /// receiver may submit new checks between two completions.
    mutating func popReady(nowNs: Nanoseconds) -> CheckCompletion? {
        guard readyCount > 0 else { return nil }
        let s = Int(ready[readyHead])
        guard slots[s].doneNs <= nowNs else { return nil }
        readyHead = (readyHead + 1) % ready.count
        readyCount -= 1
        precondition(slots[s].phase == .done, "a delivered check must be done")
        let slot = slots[s]
        counters.delivered += 1
        if slot.result == .timeout && !slot.releasedBeforeReap {
            slots[s].phase = .orphaned
        } else {
            release(s)
        }
        return CheckCompletion(path: slot.request.path, token: slot.request.token, result: slot.result)
    }

    /// How often a lost command's orphan looks whether its device answers again: a blocked
    /// queue that restarts dispatches the command, and the device answers it.
    static let orphanPollNs: Nanoseconds = 100 * Time.nsPerMs

    /// Whether slot `s` holds a lost command (its path hung) that is still in the kernel.
    private func stillLost(_ s: Int, nowNs: Nanoseconds, san: SimSAN, commandTimeoutNs: Nanoseconds) -> Bool {
        slots[s].plannedNs == Time.never && nowNs < slots[s].submitNs + commandTimeoutNs
            && Self.answer(for: slots[s].request.device, san: san) == .timeout
    }

    /// What a check of `device` reports now (`.timeout`: the path is hung, no answer).
    static func answer(for device: DevNo, san: SimSAN) -> CheckResult {
        guard let path = san.fabric.pathIndex(of: device) else { return .removed }
        return san.expectedCheckResult(ofPath: path)
    }

    private mutating func finish(_ s: Int, result: CheckResult, nowNs: Nanoseconds) {
        slots[s].phase = .done
        slots[s].result = result
        slots[s].doneNs = nowNs
        precondition(readyCount < ready.count, "more finished checks than slots")
        ready[(readyHead + readyCount) % ready.count] = Int32(s)
        readyCount += 1
    }

    private mutating func schedule(_ s: Int, atNs: Nanoseconds, sequence: inout UInt64) {
        sequence += 1
        precondition(agenda.count < slots.count, "a check slot has more than one event")
        agenda.push(TimedEvent(timeNs: atNs, sequence: sequence, payload: Int32(s)))
    }
}
