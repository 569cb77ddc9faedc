// The message catalogue, the record layout, the conversions from engine records and the text the formatter makes.
import Glibc
import KeelCore
@testable import KeelLinux
import Testing

/// Formats `record` with producer 0 named "recovery" and returns the line (newline included).
private func formatLine(_ record: LogRecord, names logNames: LogNames? = nil) -> String {
    let names = UnsafeMutablePointer<StaticString>.allocate(capacity: 1)
    defer { names.deallocate() }
    names.initialize(to: "recovery")
    let formatter = LogFormatter(producerNames: names, producerCount: 1, loggerName: "logger", names: logNames)
    let storage = UnsafeMutablePointer<UInt8>.allocate(capacity: 1024)
    defer { storage.deallocate() }
    var line = LogTextBuffer(base: storage, capacity: 1024)
    formatter.appendLine(record, to: &line)
    return String(decoding: line.bytes, as: UTF8.self)
}

/// Just the message text of `record`.
private func formatText(_ record: LogRecord) -> String {
    loggingText(String(formatLine(record).dropLast()))
}

@Suite("logging catalogue and formatting")
struct LoggingCatalogueTests {
    @Test("with names, lines say sdc (8:32) in mpatha instead of handles")
    func linesNameDevicesAndMaps() {
        let names = LogNames()
        names.replace(maps: [(MapHandle(0), "mpatha", [(PathHandle(2), "sdc", DevNo(major: 8, minor: 32))])])
        let changed = LogRecord(.pathStateChanged, timestampNs: 0, source: 0, LogArgument.path(PathHandle(2), device: DevNo(major: 8, minor: 32)),
                                LogArgument.state(.up), LogArgument.state(.down))
        #expect(loggingText(String(formatLine(changed, names: names).dropLast())) == "sdc (8:32) in mpatha: ready -> faulty")
        let failed = LogRecord(.pathFailed, timestampNs: 0, source: 0, LogArgument.device(DevNo(major: 8, minor: 32)), LogArgument.map(MapHandle(0)))
        #expect(loggingText(String(formatLine(failed, names: names).dropLast())) == "path sdc (8:32) of mpatha failed")
        let unknown = LogRecord(.pathFailed, timestampNs: 0, source: 0, LogArgument.device(DevNo(major: 8, minor: 48)), LogArgument.map(MapHandle(7)))
        #expect(loggingText(String(formatLine(unknown, names: names).dropLast())) == "path 8:48 of map#7 failed", "unknown ones keep their numbers")
        #expect(loggingText(String(formatLine(changed).dropLast())) == "path#2 (8:32): ready -> faulty", "without names")
    }

    @Test("a line made before its path handle was reused names the device it was made for, never the handle's new device")
    func aReusedHandleNeverNamesAnotherDevice() {
        let names = LogNames()
        names.replace(maps: [(MapHandle(0), "mpatha", [(PathHandle(2), "sdc", DevNo(major: 8, minor: 32))])])
        let before = LogRecord(RecoveryRecord.transition(PathHandle(2), device: DevNo(major: 8, minor: 32), from: .up, to: .down), timestampNs: 0)
        // sdc went away and its handle now belongs to sdq (65:0) of mpathb; the logger is behind.
        names.replace(maps: [(MapHandle(1), "mpathb", [(PathHandle(2), "sdq", DevNo(major: 65, minor: 0))])])
        #expect(loggingText(String(formatLine(before, names: names).dropLast())) == "path#2 (8:32): ready -> faulty")
        // While the old device is still known by name elsewhere, its name is used, without a map.
        names.replace(maps: [(MapHandle(1), "mpathb", [(PathHandle(2), "sdq", DevNo(major: 65, minor: 0)), (PathHandle(5), "sdc", DevNo(major: 8, minor: 32))])])
        #expect(loggingText(String(formatLine(before, names: names).dropLast())) == "sdc (8:32): ready -> faulty")
        let after = LogRecord(RecoveryRecord.transition(PathHandle(2), device: DevNo(major: 65, minor: 0), from: .down, to: .up), timestampNs: 0)
        #expect(loggingText(String(formatLine(after, names: names).dropLast())) == "sdq (65:0) in mpathb: faulty -> ready")
    }

    @Test("a line made before its map was removed names that map, never the map that took its slot; the engine refuses the old handle")
    func aReusedMapSlotNeverNamesAnotherMap() throws {
        let engine = Engine(capacities: Capacities(pathsMax: 4, mapsMax: 1, pathsPerMapMax: 4, ringSlots: 16))
        let first = try engine.addMap(policy: MapPolicy())
        let names = LogNames()
        names.replace(maps: [(first, "mpatha", [])])
        let before = LogRecord(.queueingDisabled, timestampNs: 0, source: 0, LogArgument.map(first))
        try engine.removeMap(first)
        let second = try engine.addMap(policy: MapPolicy())
        #expect(second.index == first.index && second != first, "one slot, a new generation")
        #expect(second.description == "map#0.1")
        #expect(throws: EngineRefusal.self) { try engine.removeMap(first) }
        #expect(throws: EngineRefusal.self) { _ = try engine.addPath(PathDescriptor(device: DevNo(major: 8, minor: 16)), to: first, nowNs: 0) }
        // The logger is behind: mpatha is gone and mpathb has its slot.
        names.replace(maps: [(second, "mpathb", [])])
        #expect(formatText(before) != "" && loggingText(String(formatLine(before, names: names).dropLast())).hasPrefix("mpatha"))
        let after = LogRecord(.queueingDisabled, timestampNs: 0, source: 0, LogArgument.map(second))
        #expect(loggingText(String(formatLine(after, names: names).dropLast())).hasPrefix("mpathb"))
        #expect(loggingText(String(formatLine(after).dropLast())).hasPrefix("map#0.1"), "without names: the slot and its generation")
    }

    @Test("a LogRecord takes 48 bytes in a ring")
    func recordSize() {
        #expect(MemoryLayout<LogRecord>.stride == 48)
    }

    @Test("every message format uses only known placeholders, at most four")
    func formatsUseKnownPlaceholders() {
        for message in LogMessage.allCases {
            var count = 0
            var unknown = 0
            forEachPlaceholder(in: message.format) { placeholder in
                count += 1
                if placeholder == nil { unknown += 1 }
            }
            #expect(unknown == 0, "\(message) has an unknown %word")
            #expect(count <= 4, "\(message) takes \(count) arguments")
        }
    }

    @Test("every placeholder word is recognised by its own spelling")
    func placeholderWordsRoundTrip() {
        for placeholder in LogPlaceholder.allCases {
            let word = placeholder.word
            let recognised = LogPlaceholder.named(UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount))
            #expect(recognised == placeholder)
        }
    }

    @Test("LogDMOperation words are DMOperation's names")
    func dmOperationWords() {
        for operation in DMOperation.allCases {
            #expect(LogDMOperation(operation).word.description == operation.rawValue)
        }
    }

    @Test("a fail_path that went through becomes pathFailed with device and map")
    func failPathSentBecomesPathFailed() {
        let message = DMMessage(map: MapHandle(3), kind: .failPath, device: DevNo(major: 8, minor: 16))
        let record = LogRecord(RecoveryRecord.messageSent(message, errno: 0), timestampNs: 42)
        #expect(record.message == .pathFailed)
        #expect(record.timestampNs == 42)
        #expect(formatText(record) == "path 8:16 of map#3 failed")
    }

    @Test("a reinstate_path that went through becomes reinstated")
    func reinstateSentBecomesReinstated() {
        let message = DMMessage(map: MapHandle(1), kind: .reinstatePath, device: DevNo(major: 65, minor: 32))
        let record = LogRecord(RecoveryRecord.messageSent(message, errno: 0), timestampNs: 0)
        #expect(record.message == .reinstated)
        #expect(formatText(record) == "path 65:32 of map#1 reinstated")
    }

    @Test("a refused path message names verb, device, map and errno")
    func refusedPathMessage() {
        let message = DMMessage(map: MapHandle(2), kind: .reinstatePath, device: DevNo(major: 8, minor: 0))
        let record = LogRecord(RecoveryRecord.messageSent(message, errno: ENXIO), timestampNs: 0)
        #expect(record.message == .pathMessageRefused)
        #expect(formatText(record) == "dm message reinstate_path 8:0 to map#2 refused: errno 6 (ENXIO)")
    }

    @Test("a refused group message names the group")
    func refusedGroupMessage() {
        let message = DMMessage(map: MapHandle(2), kind: .switchGroup, group: 2)
        let record = LogRecord(RecoveryRecord.messageSent(message, errno: EINVAL), timestampNs: 0)
        #expect(formatText(record) == "dm message switch_group 2 to map#2 refused: errno 22 (EINVAL)")
    }

    @Test("a refused queueing message names only the map")
    func refusedMapMessage() {
        let message = DMMessage(map: MapHandle(7), kind: .queueIfNoPath)
        let record = LogRecord(RecoveryRecord.messageSent(message, errno: EIO), timestampNs: 0)
        #expect(formatText(record) == "dm message queue_if_no_path to map#7 refused: errno 5 (EIO)")
    }

    @Test("group and queueing messages that went through say what changed")
    func groupAndQueueingSent() {
        let switched = LogRecord(RecoveryRecord.messageSent(DMMessage(map: MapHandle(4), kind: .switchGroup, group: 2), errno: 0), timestampNs: 0)
        #expect(formatText(switched) == "map#4 switched to path group 2")
        let disabled = LogRecord(RecoveryRecord.messageSent(DMMessage(map: MapHandle(4), kind: .disableGroup, group: 1), errno: 0), timestampNs: 0)
        #expect(formatText(disabled) == "map#4: path group 1 disabled")
        let failing = LogRecord(RecoveryRecord.messageSent(DMMessage(map: MapHandle(4), kind: .failIfNoPath), errno: 0), timestampNs: 0)
        #expect(formatText(failing) == "map#4: fail_if_no_path set, I/O fails while no path is usable")
    }

    @Test("a transition shows both states as show paths names them")
    func transitionText() {
        let record = LogRecord(RecoveryRecord.transition(PathHandle(9), device: DevNo(major: 8, minor: 16), from: .up, to: .down), timestampNs: 0)
        #expect(record.message == .pathStateChanged)
        #expect(formatText(record) == "path#9 (8:16): ready -> faulty")
    }

    @Test("reload requests and refused checks have lines of their own")
    func reloadAndRefusedCheck() {
        #expect(formatText(LogRecord(RecoveryRecord.reloadRequested(MapHandle(5)), timestampNs: 0)) == "map#5: table reload requested")
        #expect(formatText(LogRecord(RecoveryRecord.checkRefused(PathHandle(11), device: DevNo(major: 8, minor: 176)), timestampNs: 0))
            == "path#11 (8:176): checker has no free slot, check retried at the fast interval")
    }

    @Test("kernel events convert to kernel lines")
    func kernelEvents() {
        let failed = LogRecord(KernelEvent.pathFailed(MapHandle(1), DevNo(major: 8, minor: 48)), timestampNs: 0)
        #expect(formatText(failed) == "kernel failed path 8:48 of map#1")
        let group = LogRecord(KernelEvent.mapActiveGroup(MapHandle(1), group: 3), timestampNs: 0)
        #expect(formatText(group) == "kernel reports map#1 active path group 3")
    }

    @Test("the checker fallback hint names the errno and the sysctl")
    func checkerFallbackText() {
        let record = LogRecord(.checkerFallback, timestampNs: 0, source: 0, LogArgument.errno(EAGAIN))
        #expect(formatText(record) == "io_setup failed (errno 11 (EAGAIN)): falling back to synchronous checks; raise fs.aio-max-nr")
    }

    @Test("device-mapper errors name the operation, the map and the errno")
    func dmErrorText() {
        let record = LogRecord(.dmOperationFailed, timestampNs: 0, source: 0,
                               LogArgument.operation(LogDMOperation(.armPoll)), LogArgument.map(MapHandle(2)), LogArgument.errno(ENOMEM))
        #expect(formatText(record) == "device-mapper arm poll on map#2 failed: errno 12 (ENOMEM)")
    }

    @Test("signed arguments and uevent actions render")
    func signedAndActions() {
        let refused = LogRecord(.configurationRejected, timestampNs: 0, source: 0, LogArgument.signed(12), LogArgument.signed(-3))
        #expect(formatText(refused) == "configuration rejected at line 12 (error -3): previous configuration kept")
        let uevent = LogRecord(.uevent, timestampNs: 0, source: 0, LogArgument.action(.remove), LogArgument.device(DevNo(major: 8, minor: 64)))
        #expect(formatText(uevent) == "uevent remove 8:64")
    }

    @Test("a line is '<seconds>.<microseconds> <level> <thread>: <text>' and ends in a newline")
    func linePrefix() {
        let record = LogRecord(.reloadRequested, timestampNs: 12 * Time.nsPerSecond + 345_678_901, source: 0, 5)
        #expect(formatLine(record) == "00012.345678 info recovery: map#5: table reload requested\n")
        let own = LogRecord(.ringDropped, timestampNs: 1_000, source: 9, 17, 0)
        #expect(formatLine(own) == "00000.000001 warning logger: 17 log records dropped on thread recovery\n")
    }

    @Test("an unknown value for an enumerated placeholder shows as '?'")
    func unknownEnumeratedValue() {
        let record = LogRecord(.pathStateChanged, timestampNs: 0, source: 0, 1, 200, 1)
        #expect(formatText(record) == "path#1: ? -> ready")
    }
}
