// keel-torture: runs the torture scenarios over many seeds and prints their figures.
import KeelCore
import KeelSim

#if canImport(Glibc)
import Glibc
#endif

let options: Options
switch Options.parse(Array(CommandLine.arguments.dropFirst())) {
case .success(let o): options = o
case .failure(let e):
    if !e.message.isEmpty { print("keel-torture: \(e.message)") }
    print(Options.usage)
    exit(e.message.isEmpty ? 0 : 2)
}

if options.list {
    for s in Scenario.all { print("\(s.name.padding(16)) \(s.about)") }
    exit(0)
}

var selected: [Scenario] = []
for name in options.scenarios {
    guard let s = Scenario.named(name) else {
        print("keel-torture: unknown scenario \"\(name)\"; --list names them")
        exit(2)
    }
    selected.append(s)
}
if selected.isEmpty { selected = Scenario.all }

var runs = 0
var failures = 0
for scenario in selected {
    var failed: [UInt64] = []
    var resume = Distribution()
    var reinstate = Distribution()
    var ios = 0, messages = 0, checks = 0, reloads = 0, holds = 0, ringFull = 0, reloadsRefused = 0, growths = 0
    var ueventsLost = 0, rediscovered = 0, timeouts = 0, undone = 0
    let startNs = monotonicNs()
    for seed in options.firstSeed ..< options.firstSeed + UInt64(options.seeds) {
        runs += 1
        let run: TortureRun
        do {
            run = try TortureRun(scenario: scenario, seed: seed, narrate: options.narrate)
        } catch {
            print("\(scenario.name) seed \(seed): setup failed: \(error)")
            failures += 1
            failed.append(seed)
            continue
        }
        let result = run.run()
        if options.narrate {
            print("== \(scenario.name) seed \(seed): \(run.plan.drawn)")
            for line in run.narration { print(line) }
        }
        resume.merge(result.resumeLatency)
        reinstate.merge(result.reinstateLatency)
        ios += result.ioCompleted
        messages += result.messages
        checks += result.checks
        reloads += result.reloads
        holds += result.delayedHolds
        ringFull += result.ringFull
        reloadsRefused += result.reloadsRefused
        growths += result.tableGrowths
        ueventsLost += result.ueventsLost
        rediscovered += result.rediscovered
        timeouts += result.topologyTimeouts
        undone += result.undoneAdds
        if options.verbose || options.narrate {
            print("\(scenario.name) seed \(seed): \(result.violations.isEmpty ? "ok" : "FAILED"); \(run.plan.drawn); "
                  + "\(result.ioCompleted) I/Os, \(result.ioErrors) errors, resume \(result.resumeLatency.summaryMs)")
        }
        if !result.violations.isEmpty {
            failures += 1
            failed.append(seed)
            print("\(scenario.name) seed \(seed) FAILED (\(run.plan.drawn)):")
            for v in result.violations { print("  \(v)") }
            print("  replay: keel-torture --scenario \(scenario.name) --seeds 1 --first-seed \(seed) --narrate")
        }
    }
    let wallMs = (monotonicNs() - startNs) / 1_000_000
    var line = "\(scenario.name): \(options.seeds) runs, \(failed.count) failures; \(ios) I/Os verified, \(checks) checks, "
        + "\(messages) dm messages, \(reloads) table loads"
    if resume.count > 0 { line += "; resume after first path back (virtual) min/p50/p90/p99/max \(resume.summaryMs)" }
    if reinstate.count > 0 { line += "; path back -> reinstated \(reinstate.summaryMs)" }
    if holds > 0 { line += "; \(holds) paths still held by flap damping at the end" }
    if reloadsRefused > 0 { line += "; \(reloadsRefused) loads refused and retried" }
    if ringFull > 0 { line += "; input ring full \(ringFull) times (senders waited)" }
    if growths > 0 { line += "; tables grown \(growths) times for hot-added paths" }
    if ueventsLost > 0 { line += "; \(ueventsLost) uevents lost" }
    if timeouts > 0 { line += "; \(timeouts) topology requests timed out, \(undone) late additions undone" }
    if rediscovered > 0 { line += "; \(rediscovered) paths added by rediscovery" }
    line += "; \(wallMs) ms wall"
    print(line)
}
print("torture: \(runs) runs, \(failures) failures")
exit(failures == 0 ? 0 : 1)

/// Wall-clock monotonic time for the runner's own speed figure (never fed to the engine).
func monotonicNs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
