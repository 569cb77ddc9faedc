// The daemon's whole recovery thread allocates nothing: ring inputs -> check completion ->
// decision -> dm message -> log record, state board and reload hand-off (release builds).
import Foundation
import Glibc
import Synchronization
import KeelCore
import KeelLinux
import Testing

@Suite("daemon recovery thread allocations", .serialized)
struct DaemonAllocationTests {
    @Test("1,000,000 recovery service passes with inputs, commands, reloads and logging allocate nothing")
    func recoveryServicePassesAllocateNothing() throws {
        let directory = NSTemporaryDirectory() + "keel-daemon-alloc-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logger = try KeelLogger(LogConfiguration(filePath: directory + "/keeld.log", fileBytesMax: 1 << 20,
                                                     producersMax: 1, ringCapacity: 4096, wakeIntervalNs: 1_000_000))
        let producer = try #require(logger.registerProducer(name: "recovery"))
        try logger.start()

        let capacities = Capacities(pathsMax: 64, mapsMax: 4, pathsPerMapMax: 16, ringSlots: 256)
        let engine = Engine(capacities: capacities)
        let policy = MapPolicy(grouping: .groupByPrio, failback: .immediate, noPathRetry: .retries(2),
                               flapDamping: FlapDamping(threshold: 3, forgetRate: 2, recoveryTimeNs: 5 * Time.nsPerMs),
                               intervalFastNs: Time.nsPerMs, intervalHealthyNs: Time.nsPerMs,
                               intervalHealthyMaxNs: 4 * Time.nsPerMs, checkTimeoutNs: 10 * Time.nsPerMs, marginalPathGroups: true)
        var paths: [PathHandle] = []
        var maps: [MapHandle] = []
        for m in 0..<4 {
            let map = try engine.addMap(policy: policy)
            maps.append(map)
            for p in 0..<16 {
                paths.append(try engine.addPath(PathDescriptor(device: DevNo(major: 8, minor: UInt32(m * 256 + p * 16)),
                                                               priority: p % 2 == 0 ? 50 : 10, portKey: UInt32(p % 4)),
                                                to: map, nowNs: 0))
            }
        }
        let board = StateBoard(pathsMax: capacities.pathsMax, mapsMax: capacities.mapsMax)
        let reloads = ReloadHandoff(mapsMax: capacities.mapsMax, pathsPerMapMax: capacities.pathsPerMapMax, slotsMax: 2, doorbell: try EventFD())
        // keeld's checker front, told of every reinstate for the path-back histogram.
        let pathBack = DaemonChecker(pathsMax: capacities.pathsMax, tur: nil, directIO: nil)
        let output = DaemonRecoveryOutput(log: LogRecoveryOutput(producer: producer), engine: engine, board: board, reloads: reloads,
                                          checker: pathBack)
        let inputs = MPSCRing<RecoveryInput>(capacity: capacities.ringSlots)
        let replies = SPSCRing<CommandReply>(capacity: 64)
        var service = RecoveryService(loop: RecoveryLoop(engine: engine, checker: FlipChecker(capacity: 64), messenger: CountingMessenger(), output: output),
                                      inputs: inputs, inputDoorbell: try EventFD(), replies: replies, replyDoorbell: try EventFD())
        var nowNs: Nanoseconds = 0
        service.pass(nowNs: nowNs)

        // The control plane's side, inline: tickets popped and answered with tableLoaded + reloadDone.
        var ticketsServed = 0
        var repliesSeen = 0
        var iteration = 0
        let mallocs = mallocCount(iterations: 1_000_000) {
            iteration &+= 1
            nowNs += 500_000
            while let ticket = reloads.ring.pop() {
                _ = inputs.push(.tableLoaded(ticket.map, initialGroup: reloads.snapshot(ticket).initialGroup, queueing: true))
                _ = inputs.push(.reloadDone(ticket))
                ticketsServed &+= 1
            }
            let path = paths[iteration & 63]
            _ = inputs.push(.kernel(.pathFailed(maps[0], DevNo(major: 8, minor: 16))))
            if iteration & 7 == 0 {
                _ = inputs.push(.command(iteration & 8 == 0 ? .failPath(path) : .reinstatePath(path), ticket: UInt32(truncatingIfNeeded: iteration)))
            }
            if iteration & 511 == 256 {
                // An operator's marginal mark (marginal_pathgroups on): a regroup and a table reload.
                _ = inputs.push(.command(.setMarginal(path, iteration & 512 == 0), ticket: UInt32(truncatingIfNeeded: iteration)))
            }
            if iteration & 1023 == 0 {
                // A priority change regroups (group_by_prio, failback immediate): a table reload.
                _ = inputs.push(.setPriority(path, iteration & 1024 == 0 ? 1 : 50))
            }
            service.pass(nowNs: nowNs)
            while replies.pop() != nil { repliesSeen &+= 1 }
        }
        logger.stop()
        #expect(mallocs == 0)
        // The whole loop really ran: paths failed and reinstated, messages sent, records logged,
        // commands answered, reloads handed over and returned, the board published.
        #expect(engine.counters.pathsFailed > 100_000)
        #expect(engine.counters.pathsReinstated > 100_000)
        #expect(pathBack.pathBack.bucketCounts.reduce(0, +) > 100_000, "reinstates were counted in the path-back histogram")
        #expect(service.loop.messenger.sent > 200_000)
        #expect(logger.counterSnapshot.recordsWritten > 100_000)
        #expect(repliesSeen > 100_000)
        #expect(ticketsServed > 100)
        #expect(board.loopPasses.load(ordering: .relaxed) > 1_000_000)
        #expect(board.state(paths[1]) != nil)
        #expect(paths.contains { board.marginal($0) }, "marginal marks were applied and published")
    }

    @Test("growing the tables on the recovery thread (adopt through the ring, then hot-added paths) allocates nothing")
    func growthHandOverAllocatesNothing() throws {
        let capacities = Capacities(pathsMax: 1024, mapsMax: 8, pathsPerMapMax: 128, ringSlots: 64)
        let engine = Engine(capacities: capacities, initial: (paths: 64, maps: 8))
        let board = StateBoard(pathsMax: capacities.pathsMax, mapsMax: capacities.mapsMax, initial: (paths: 64, maps: 8))
        let policy = MapPolicy(grouping: .multibus, failback: .immediate, noPathRetry: .queue)
        var maps: [MapHandle] = []
        for _ in 0..<8 { maps.append(try engine.addMap(policy: policy)) }
        for p in 0..<64 {
            _ = try engine.addPath(PathDescriptor(device: DevNo(major: 8, minor: UInt32(p))), to: maps[p % 8], nowNs: 0)
        }
        // The growing thread's half, done before: every table prepared for the ceiling.
        engine.arenas.prepare(paths: capacities.pathsMax, maps: capacities.mapsMax)
        board.prepare(paths: capacities.pathsMax, maps: capacities.mapsMax)
        let reloads = ReloadHandoff(mapsMax: capacities.mapsMax, pathsPerMapMax: capacities.pathsPerMapMax, slotsMax: 8, doorbell: try EventFD())
        let output = DaemonRecoveryOutput(log: LastRecordOutput(), engine: engine, board: board, reloads: reloads)
        let inputs = MPSCRing<RecoveryInput>(capacity: capacities.ringSlots)
        let topology = SPSCRing<TopologyReply>(capacity: 64)
        var service = RecoveryService(loop: RecoveryLoop(engine: engine, checker: FlipChecker(capacity: capacities.pathsMax),
                                                         messenger: CountingMessenger(), output: output),
                                      inputs: inputs, inputDoorbell: try EventFD(), replies: SPSCRing(capacity: 8),
                                      replyDoorbell: try EventFD(), topologyReplies: topology, topologyDoorbell: try EventFD())
        var added = 0, refused = 0, adopted = 64, nowNs: Nanoseconds = 0
        let mallocs = mallocCount(iterations: 959) {
            nowNs += Time.nsPerMs
            let next = 64 + added
            if next >= adopted {
                adopted *= 2
                _ = inputs.push(.adopt(paths: Int32(adopted), maps: 8))
            }
            _ = inputs.push(.addPath(PathDescriptor(device: DevNo(major: 65, minor: UInt32(next))), maps[next % 8], ticket: UInt32(next)))
            service.pass(nowNs: nowNs)
            while let reply = topology.pop() {
                if reply.errno == 0 { added += 1 } else { refused += 1 }
            }
            while let ticket = reloads.ring.pop() { _ = inputs.push(.reloadDone(ticket)) }
        }
        #expect(mallocs == 0)
        #expect(refused == 0)
        #expect(engine.pathCapacity == 1024 && engine.pathCount == 1024)
        #expect(added == 960)
    }
}
