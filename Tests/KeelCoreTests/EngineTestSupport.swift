// Shared fixtures for engine tests: a recording sink and a small map builder.
import KeelCore

/// Records every action the engine asks for.
struct RecordingSink: EngineActionSink {
    var actions: [EngineAction] = []
    mutating func perform(_ action: EngineAction) { actions.append(action) }

    var checks: [CheckRequest] {
        actions.compactMap { if case .check(let r) = $0 { return r } else { return nil } }
    }
    var messages: [DMMessage] {
        actions.compactMap { if case .message(let m) = $0 { return m } else { return nil } }
    }
    var reloads: [MapHandle] {
        actions.compactMap { if case .reloadMap(let m) = $0 { return m } else { return nil } }
    }
    mutating func clear() { actions.removeAll() }
}

func dev(_ minor: UInt32) -> DevNo { DevNo(major: 8, minor: minor) }

let ms = Time.nsPerMs
let sec = Time.nsPerSecond

/// An engine with one loaded map whose paths have the given descriptors; every path checked up.
struct EngineFixture {
    let engine: Engine
    let map: MapHandle
    var paths: [PathHandle]
    var sink = RecordingSink()
    var nowNs: Nanoseconds = 0

    init(policy: MapPolicy, descriptors: [PathDescriptor], capacities: Capacities = Capacities(pathsMax: 64, mapsMax: 8, pathsPerMapMax: 32, ringSlots: 64)) throws {
        engine = Engine(capacities: capacities)
        map = try engine.addMap(policy: policy)
        paths = []
        for d in descriptors { paths.append(try engine.addPath(d, to: map, nowNs: 0)) }
        engine.tick(nowNs: 0, sink: &sink)
        engine.tableLoaded(map, initialGroup: engine.initialGroup(of: map), queueing: policy.noPathRetry.queuesInitially, nowNs: 0, sink: &sink)
        answerChecks { _ in .up }
        sink.clear()
    }

    /// Answers every outstanding check request in the sink with `result(path)`.
    /// `result` gets the path's position in `paths`.
    mutating func answerChecks(_ result: (Int) -> CheckResult) {
        let requests = sink.checks
        sink.clear()
        for r in requests {
            let position = paths.firstIndex(of: r.path) ?? -1
            engine.handle(CheckCompletion(path: r.path, token: r.token, result: result(position)), nowNs: nowNs, sink: &sink)
        }
    }

    /// Hands a check completion to the engine at the current time.
    mutating func deliverCompletion(_ c: CheckCompletion) {
        engine.handle(c, nowNs: nowNs, sink: &sink)
    }

    /// Hands an event to the engine at the current time.
    mutating func deliver(_ event: KernelEvent) {
        engine.handle(event, nowNs: nowNs, sink: &sink)
    }

    /// Hands an operator command to the engine at the current time.
    mutating func command(_ c: OperatorCommand) -> OperatorOutcome {
        engine.handle(c, nowNs: nowNs, sink: &sink)
    }

    /// Moves time to `t` and runs the engine's timers; returns the check requests issued.
    @discardableResult
    mutating func advance(to t: Nanoseconds) -> [CheckRequest] {
        nowNs = t
        sink.clear()
        engine.tick(nowNs: t, sink: &sink)
        return sink.checks
    }

    /// Runs time forward in steps, answering every check with `result`, until `t`.
    mutating func run(until t: Nanoseconds, step: Nanoseconds = 10 * Time.nsPerMs, _ result: (Int) -> CheckResult) -> [EngineAction] {
        var all: [EngineAction] = []
        var now = nowNs
        while now < t {
            now += step
            advance(to: now)
            all += sink.actions
            answerChecks(result)
            all += sink.actions
        }
        return all
    }

    func state(_ i: Int) -> PathState { engine.path(paths[i])!.state }
    func kernelActive(_ i: Int) -> Bool { engine.path(paths[i])!.kernelActive }
}

func messages(_ actions: [EngineAction]) -> [DMMessage] {
    actions.compactMap { if case .message(let m) = $0 { return m } else { return nil } }
}
