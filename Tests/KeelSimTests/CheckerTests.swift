// The simulated checker: results from path conditions, timeouts, orphans, and a fixed slot pool.

import KeelCore
import KeelSim
import Testing

private let ms = Time.nsPerMs

private func world(options: SimOptions = SimOptions()) -> (SimWorld, DevNo) {
    let world = SimWorld(seed: 5, fabric: smallFabric(ports: 1, hosts: 1), workload: .none, options: options)
    return (world, devices(world)[0])
}

private func request(_ device: DevNo, token: UInt32, timeoutNs: Nanoseconds = Time.nsPerSecond) -> CheckRequest {
    CheckRequest(path: PathHandle(0), device: device, token: token, timeoutNs: timeoutNs)
}

/// Submits one check at the world's time and returns what it reports once everything settled.
private func checkOnce(_ world: SimWorld, _ device: DevNo) -> [CheckResult] {
    var checker = world.checker
    let started = checker.submit(request(device, token: 1), nowNs: world.nowNs)
    #expect(started)
    world.advance(toNs: world.nowNs + 5 * Time.nsPerSecond)
    var sink = CompletionList()
    checker.reap(nowNs: world.nowNs, into: &sink)
    return sink.items.map(\.result)
}

@Test func aHealthyPathChecksUp() {
    let (world, device) = world()
    #expect(checkOnce(world, device) == [.up])
}

@Test func anOfflinePathChecksDown() {
    let (world, device) = world()
    world.apply(.setPath(device, .offline))
    #expect(checkOnce(world, device) == [.down])
}

@Test func aStandbyPortChecksGhost() {
    let (world, device) = world()
    world.apply(.setAlua(targetPort: 0, .standby))
    #expect(checkOnce(world, device) == [.ghost])
}

@Test func aTransitioningPortChecksPending() {
    let (world, device) = world()
    world.apply(.setAlua(targetPort: 0, .transitioning))
    #expect(checkOnce(world, device) == [.pending])
}

@Test func aRemovedPathChecksRemoved() {
    let (world, device) = world()
    world.apply(.removePath(device))
    #expect(checkOnce(world, device) == [.removed])
}

@Test func aCheckOnAHungPathTimesOutAndItsOrphanEndsWhenTheDeviceAnswers() {
    let (world, device) = world(options: SimOptions(commandTimeoutNs: 10 * Time.nsPerSecond))
    world.apply(.setPath(device, .hung))
    var checker = world.checker
    let started = checker.submit(request(device, token: 7), nowNs: 0)
    #expect(started)
    var sink = CompletionList()
    world.advance(toNs: Time.nsPerSecond - 1)
    checker.reap(nowNs: world.nowNs, into: &sink)
    #expect(sink.items.isEmpty)
    world.advance(toNs: Time.nsPerSecond)
    checker.reap(nowNs: world.nowNs, into: &sink)
    #expect(sink.items == [CheckCompletion(path: PathHandle(0), token: 7, result: .timeout)])
    // While the device stays hung the orphaned command holds its slot.
    world.advance(toNs: 5 * Time.nsPerSecond)
    #expect(world.checkSlotsBusy == 1)
    // The device answers again: the kernel gives the command back (within 100 ms), long before
    // the command timeout, and its late answer is never delivered.
    world.apply(.setPath(device, .online))
    world.advance(toNs: 5 * Time.nsPerSecond + 100 * ms)
    #expect(world.checkSlotsBusy == 0)
    world.advance(toNs: 60 * Time.nsPerSecond)
    checker.reap(nowNs: world.nowNs, into: &sink)
    #expect(sink.items.count == 1)
}

@Test func aSlowCheckPastItsTimeoutIsReportedOnceAsATimeout() {
    let (world, device) = world()
    world.apply(.setPath(device, .slow(latencyNs: 5 * Time.nsPerSecond)))
    var checker = world.checker
    let started = checker.submit(request(device, token: 3), nowNs: 0)
    #expect(started)
    var sink = CompletionList()
    world.advance(toNs: Time.nsPerSecond)
    checker.reap(nowNs: world.nowNs, into: &sink)
    world.advance(toNs: 10 * Time.nsPerSecond)
    checker.reap(nowNs: world.nowNs, into: &sink)
    #expect(sink.items.map(\.result) == [.timeout])
    #expect(world.checkSlotsBusy == 0)
}

@Test func aCheckInFlightWhenThePathReturnsReportsUp() {
    let options = SimOptions(failFastMinNs: 10 * ms, failFastMaxNs: 10 * ms)
    let (world, device) = world(options: options)
    world.apply(.setPath(device, .offline))
    var checker = world.checker
    let started = checker.submit(request(device, token: 1), nowNs: 0)
    #expect(started)
    world.advance(toNs: 5 * ms)
    world.apply(.setPath(device, .online))
    world.advance(toNs: 10 * ms)
    var sink = CompletionList()
    checker.reap(nowNs: world.nowNs, into: &sink)
    #expect(sink.items.map(\.result) == [.up])
}

@Test func aCheckPlannedOnAPathThatHangsMeanwhileIsLost() {
    let (world, device) = world()
    var checker = world.checker
    let started = checker.submit(request(device, token: 1), nowNs: 0)
    #expect(started)
    world.apply(.setPath(device, .hung))
    world.advance(toNs: 500 * ms)
    var sink = CompletionList()
    checker.reap(nowNs: world.nowNs, into: &sink)
    #expect(sink.items.isEmpty)
    world.advance(toNs: Time.nsPerSecond)
    checker.reap(nowNs: world.nowNs, into: &sink)
    #expect(sink.items.map(\.result) == [.timeout])
}

@Test func submitIsRefusedWhenEverySlotIsTaken() {
    // A shared pool (a checker thread pool): two checks of one path may be out.
    let (world, device) = world(options: SimOptions(checkSlots: 2, checkOnePerPath: false))
    var checker = world.checker
    let started = checker.submit(request(device, token: 1), nowNs: 0)
    #expect(started)
    let started2 = checker.submit(request(device, token: 2), nowNs: 0)
    #expect(started2)
    let refused = checker.submit(request(device, token: 3), nowNs: 0)
    #expect(!refused)
    #expect(world.checkCounters.refused == 1)
    world.advance(toNs: 10 * ms)
    var sink = CompletionList()
    checker.reap(nowNs: world.nowNs, into: &sink)
    #expect(sink.items.map(\.token).sorted() == [1, 2])
    let startedAgain = checker.submit(request(device, token: 4), nowNs: world.nowNs)
    #expect(startedAgain)
}

@Test func nextEventTimeIncludesAPendingCheck() {
    let (world, device) = world()
    #expect(world.nextEventNs() == Time.never)
    var checker = world.checker
    _ = checker.submit(request(device, token: 1), nowNs: 0)
    let due = world.nextEventNs()
    #expect(due >= SimOptions().checkLatencyMinNs && due <= SimOptions().checkLatencyMaxNs)
    world.advance(toNs: due)
    #expect(world.checksWaitingForReap == 1)
}

@Test func onePerPathRefusesAPathWhoseOrphanIsOutAndNothingElse() {
    // keeld's checkers: a hung path holds its own check, never another path's.
    let world = SimWorld(seed: 5, fabric: smallFabric(ports: 2, hosts: 1), workload: .none, options: SimOptions(checkSlots: 1))
    let device = devices(world)[0]
    var checker = world.checker
    world.apply(.setPath(device, .hung))
    let first = checker.submit(request(device, token: 1, timeoutNs: 100 * ms), nowNs: 0)
    #expect(first)
    world.advance(toNs: 100 * ms)
    var sink = CompletionList()
    checker.reap(nowNs: world.nowNs, into: &sink)
    #expect(sink.items.map(\.result) == [.timeout])
    let again = checker.submit(request(device, token: 2), nowNs: world.nowNs)
    #expect(!again, "the orphan still holds the path")
    #expect(world.checkCounters.refusedBusyPath == 1)
    let other = CheckRequest(path: PathHandle(index: 1), device: devices(world)[1], token: 3, timeoutNs: Time.nsPerSecond)
    let otherStarted = checker.submit(other, nowNs: world.nowNs)
    #expect(otherStarted, "another path is checked although one slot was configured")
}

@Test func anOrphanOfADeviceThatNeverAnswersEndsAtTheCommandTimeout() {
    let (world, device) = world(options: SimOptions(commandTimeoutNs: 10 * Time.nsPerSecond))
    world.apply(.setPath(device, .hung))
    var checker = world.checker
    let started = checker.submit(request(device, token: 7), nowNs: 0)
    #expect(started)
    var sink = CompletionList()
    world.advance(toNs: Time.nsPerSecond)
    checker.reap(nowNs: world.nowNs, into: &sink)
    world.advance(toNs: 10 * Time.nsPerSecond - 1)
    #expect(world.checkSlotsBusy == 1)
    world.advance(toNs: 10 * Time.nsPerSecond)
    #expect(world.checkSlotsBusy == 0)
}
