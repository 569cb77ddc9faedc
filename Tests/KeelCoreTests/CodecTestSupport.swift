// Shared fixtures for the codec tests: the real-kernel lines from RIG.md, value generators, a recording visitor.
import KeelCore

/// Lines captured from Debian's 6.1 kernel (dm-multipath 1.14.0) in the rig (RIG.md).
enum RigLines {
    static let table = "mpatha: 0 131072 multipath 1 queue_if_no_path 1 alua 3 1 service-time 0 2 2 8:0 1 1 8:48 1 1 service-time 0 1 2 8:16 1 1 service-time 0 1 2 8:32 1 1"
    static let status = "mpatha: 0 131072 multipath 2 0 1 0 3 1 A 0 2 2 8:0 A 0 0 1 8:48 A 0 0 1 E 0 1 2 8:16 A 0 0 1 E 0 1 2 8:32 A 0 0 1"
    static let tableParams = "1 queue_if_no_path 1 alua 3 1 service-time 0 2 2 8:0 1 1 8:48 1 1 service-time 0 1 2 8:16 1 1 service-time 0 1 2 8:32 1 1"
    static let statusParams = "2 0 1 0 3 1 A 0 2 2 8:0 A 0 0 1 8:48 A 0 0 1 E 0 1 2 8:16 A 0 0 1 E 0 1 2 8:32 A 0 0 1"
}

/// A deterministic generator (SplitMix64) so generated cases are the same on every run.
struct CodecRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The kernel's selectors with the arg counts they print (dm-ps-*.c `table_args` / `info_args`
/// and their `status()` output).
struct SelectorShape {
    var name: String
    var tableSelectorArgs: [String]
    var tableArgs: [String]
    var statusSelectorArgs: [String]
    var infoArgs: Int

    static let all: [SelectorShape] = [
        SelectorShape(name: "round-robin", tableSelectorArgs: [], tableArgs: ["1"], statusSelectorArgs: [], infoArgs: 0),
        SelectorShape(name: "queue-length", tableSelectorArgs: [], tableArgs: ["1"], statusSelectorArgs: [], infoArgs: 1),
        SelectorShape(name: "service-time", tableSelectorArgs: [], tableArgs: ["1", "1"], statusSelectorArgs: [], infoArgs: 2),
        SelectorShape(name: "historical-service-time", tableSelectorArgs: ["972", "0"], tableArgs: ["0"],
                      statusSelectorArgs: ["972", "0"], infoArgs: 3),
        SelectorShape(name: "io-affinity", tableSelectorArgs: [], tableArgs: ["3"], statusSelectorArgs: [], infoArgs: 1),
    ]
}

enum CodecGenerate {
    static func device<R: RandomNumberGenerator>(_ rng: inout R) -> DevNo {
        DevNo(major: UInt32.random(in: 0...4095, using: &rng), minor: UInt32.random(in: 0...1_048_575, using: &rng))
    }

    static func table<R: RandomNumberGenerator>(_ rng: inout R) -> MultipathTable {
        let featureChoices: [[String]] = [
            [], ["queue_if_no_path"], ["queue_if_no_path", "pg_init_retries", "50"],
            ["pg_init_delay_msecs", "2000", "retain_attached_hw_handler"], ["queue_mode", "bio"],
            ["queue_if_no_path", "queue_mode", "rq", "pg_init_retries", "1", "pg_init_delay_msecs", "0"],
        ]
        let handlers: [[String]] = [[], ["alua"], ["rdac"], ["emc", "1", "0"]]
        let groupCount = Int.random(in: 0...5, using: &rng)
        var groups: [MultipathTable.Group] = []
        for _ in 0..<groupCount {
            let shape = SelectorShape.all.randomElement(using: &rng)!
            let paths = (0..<Int.random(in: 1...6, using: &rng)).map { _ in
                MultipathTable.Path(device: device(&rng), args: shape.tableArgs)
            }
            groups.append(MultipathTable.Group(selector: shape.name, selectorArgs: shape.tableSelectorArgs,
                                               pathArgCount: shape.tableArgs.count, paths: paths))
        }
        return MultipathTable(features: featureChoices.randomElement(using: &rng)!,
                              hardwareHandler: handlers.randomElement(using: &rng)!,
                              initialGroup: groupCount == 0 ? 0 : Int.random(in: 1...groupCount, using: &rng),
                              groups: groups)
    }

    static func status<R: RandomNumberGenerator>(_ rng: inout R) -> MultipathStatus {
        let groupCount = Int.random(in: 0...5, using: &rng)
        var groups: [MultipathStatus.Group] = []
        for _ in 0..<groupCount {
            let shape = SelectorShape.all.randomElement(using: &rng)!
            let paths = (0..<Int.random(in: 1...6, using: &rng)).map { _ in
                MultipathStatus.Path(device: device(&rng), active: Bool.random(using: &rng),
                                     failCount: Int.random(in: 0...4_294_967_295, using: &rng),
                                     selectorStatus: (0..<shape.infoArgs).map { _ in String(Int.random(in: 0...99_999, using: &rng)) })
            }
            let state: MultipathStatus.GroupState = [.active, .enabled, .disabled].randomElement(using: &rng)!
            groups.append(MultipathStatus.Group(state: state, selectorStatus: shape.statusSelectorArgs,
                                                pathArgCount: shape.infoArgs, paths: paths))
        }
        let extras: [[String]] = [[], ["1"], ["queue_mode", "bio"]]
        return MultipathStatus(queueingIO: Bool.random(using: &rng),
                               pgInitCount: Int.random(in: 0...100, using: &rng),
                               extraFeatureArgs: extras.randomElement(using: &rng)!,
                               hardwareHandlerStatus: Bool.random(using: &rng) ? [] : ["alua"],
                               nextGroup: groupCount == 0 ? 0 : Int.random(in: 1...groupCount, using: &rng),
                               groups: groups)
    }
}

/// Records only what the recovery plane asks the scanner for.
struct RecordingVisitor: MultipathStatusVisitor {
    struct PathSeen: Equatable {
        var group: Int
        var device: DevNo
        var active: Bool
        var failCount: Int
    }

    var queueingSeen: [Bool] = []
    var groupsSeen: [MultipathStatus.GroupState] = []
    var groupIndexes: [Int] = []
    var pathsSeen: [PathSeen] = []

    mutating func queueing(_ on: Bool) { queueingSeen.append(on) }
    mutating func group(_ index: Int, state: MultipathStatus.GroupState) {
        groupIndexes.append(index)
        groupsSeen.append(state)
    }
    mutating func path(group: Int, device: DevNo, active: Bool, failCount: Int) {
        pathsSeen.append(PathSeen(group: group, device: device, active: active, failCount: failCount))
    }

    /// What a correct scan of `status` must have recorded.
    static func expected(from status: MultipathStatus) -> RecordingVisitor {
        var v = RecordingVisitor()
        v.queueingSeen = [status.queueingIO]
        for (index, group) in status.groups.enumerated() {
            v.groupIndexes.append(index)
            v.groupsSeen.append(group.state)
            for path in group.paths {
                v.pathsSeen.append(PathSeen(group: index, device: path.device, active: path.active, failCount: path.failCount))
            }
        }
        return v
    }
}

extension RecordingVisitor: Equatable {}

/// Scans `text` with a `RecordingVisitor`, the way the recovery plane scans its status buffer.
func scanRecording(_ text: String) throws(CodecError) -> RecordingVisitor {
    var copy = text
    let result: Result<RecordingVisitor, CodecError> = copy.withUTF8 { utf8 in
        Result { () throws(CodecError) -> RecordingVisitor in
            var visitor = RecordingVisitor()
            try MultipathStatusScanner.scan(UnsafeRawBufferPointer(utf8), into: &visitor)
            return visitor
        }
    }
    return try result.get()
}

/// The error `body` throws, or nil.
func codecError<T>(_ body: () throws(CodecError) -> T) -> CodecError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}
