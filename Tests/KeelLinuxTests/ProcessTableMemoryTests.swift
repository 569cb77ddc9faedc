// keeld's growable tables: reserved addresses cost no memory and no lock; committed ranges are
// resident and locked, whatever mlockall did to the reservation.
import Glibc
import Synchronization
import KeelCore
import KeelLinux
import Testing

@Suite("Process table memory", .serialized)
struct ProcessTableMemoryTests {
    @Test("a 64 MiB reservation costs nothing; a committed MiB is resident and locked, after mlockall too")
    func reservationsCostOnlyWhatIsCommitted() {
        let report = runInProcessChild { log in
            do {
                let memory = PinnedTableMemory.memory
                try MemoryDiscipline.lockAll()
                let start = try MemoryDiscipline.lockedMemory()
                let table = memory.reserve(UInt64.self, count: 8 << 20)  // 64 MiB of addresses
                PinnedTableMemory.unlockUncommitted()
                let reserved = try MemoryDiscipline.lockedMemory()
                log.note("reservedLockedDelta", "\(Int(reserved.lockedBytes) - Int(start.lockedBytes))")
                log.check(reserved.lockedBytes < start.lockedBytes + (1 << 20), "a reservation was locked: \(reserved.lockedBytes - start.lockedBytes) bytes")
                log.check(reserved.residentBytes < start.residentBytes + (1 << 20), "a reservation became resident")
                memory.commit(table, from: 0, to: 128 * 1024)  // 1 MiB
                (table + 0).initialize(repeating: 7, count: 128 * 1024)
                let committed = try MemoryDiscipline.lockedMemory()
                let lockedDelta = Int(committed.lockedBytes) - Int(reserved.lockedBytes)
                let residentDelta = Int(committed.residentBytes) - Int(reserved.residentBytes)
                log.note("committedLockedDelta", "\(lockedDelta)")
                log.check(lockedDelta >= 1 << 20 && lockedDelta < 2 << 20, "VmLck grew by \(lockedDelta) for a 1 MiB commit")
                log.check(residentDelta >= 1 << 20 - 64 * 1024, "VmRSS grew by \(residentDelta) for a 1 MiB commit")
                log.check(PinnedTableMemory.committedBytes >= 1 << 20, "committed \(PinnedTableMemory.committedBytes)")
                log.check(PinnedTableMemory.lockErrno == 0, "mlock refused: \(PinnedTableMemory.lockErrno)")
                // A commit that overlaps one already made counts only its new pages.
                memory.commit(table, from: 64 * 1024, to: 192 * 1024)
                let overlap = try MemoryDiscipline.lockedMemory()
                let overlapDelta = Int(overlap.lockedBytes) - Int(committed.lockedBytes)
                log.check(overlapDelta >= 512 * 1024 - 4096 && overlapDelta <= 512 * 1024 + 4096, "overlapping commit locked \(overlapDelta)")
                memory.release(table, count: 8 << 20)
                let released = try MemoryDiscipline.lockedMemory()
                log.check(released.lockedBytes <= reserved.lockedBytes + 8192, "release left \(released.lockedBytes - reserved.lockedBytes) locked")
            } catch {
                log.fail("\(error)")
            }
        }
        #expect(report.passed, "\(report)")
    }

    @Test("the board, the checker and the tur checker answer for handles past what they have room for without touching memory")
    func handlesPastTheCommittedSlotsAreRefusedQuietly() throws {
        let memory = PinnedTableMemory.memory
        let board = StateBoard(pathsMax: 4096, mapsMax: 1024, initial: (paths: 8, maps: 2), memory: memory)
        #expect(board.pathCapacity == 8 && board.mapCapacity == 2)
        board.setState(PathHandle(index: 3000), .up)
        #expect(board.state(PathHandle(index: 3000)) == nil)
        #expect(!board.queueing(MapHandle(700)))
        board.setState(PathHandle(index: 7), .up)
        #expect(board.state(PathHandle(index: 7)) == .up)
        board.prepare(paths: 4000, maps: 1000)
        #expect(board.state(PathHandle(index: 7)) == .up, "growth keeps what was published")
        board.setState(PathHandle(index: 3000), .down)
        #expect(board.state(PathHandle(index: 3000)) == .down)

        let tur = try TURChecker(TURConfiguration(pathsMax: 4096, initialPaths: 16, memory: memory))
        defer { tur.close() }
        var checker = DaemonChecker(pathsMax: 4096, initial: 16, memory: memory, tur: tur, directIO: nil)
        #expect(checker.pathCapacity == 16 && tur.pathCapacity == 16)
        #expect(!checker.isOrphaned(PathHandle(index: 2000)))
        #expect(checker.kind(of: PathHandle(index: 2000)) == .unassigned)
        let early = checker.submit(CheckRequest(path: PathHandle(index: 2000), device: DevNo(major: 8, minor: 0), token: 1,
                                                timeoutNs: Time.nsPerSecond), nowNs: 0)
        #expect(!early)
        checker.prepare(paths: 2048)
        #expect(checker.pathCapacity == 2048 && tur.pathCapacity == 2048)
        checker.assign(PathHandle(index: 2000), to: .alwaysUp)
        let grown = checker.submit(CheckRequest(path: PathHandle(index: 2000), device: DevNo(major: 8, minor: 0), token: 2,
                                                timeoutNs: Time.nsPerSecond), nowNs: 0)
        #expect(grown)
    }

    @Test("TableGrowth doubles every table together, from the floors, and stops at the ceilings")
    func growthDoublesUpToTheCeilings() {
        let seen = Mutex<[(Int, Int)]>([])
        let growth = TableGrowth(ceilings: Capacities(pathsMax: 300, mapsMax: 40, pathsPerMapMax: 16, ringSlots: 64),
                                 paths: 64, maps: 16, preparers: [{ p, m in seen.withLock { $0.append((p, m)) } }])
        #expect(growth.grow(paths: true, maps: false)! == (128, 16))
        #expect(growth.grow(paths: true, maps: true)! == (256, 32))
        #expect(growth.grow(paths: true, maps: true)! == (300, 40))
        #expect(growth.grow(paths: true, maps: true) == nil)
        #expect(seen.withLock { $0.map(\.0) } == [128, 256, 300])
        #expect(growth.growths == 3)
    }
}
