// The recovery-plane status scanner: it reports what the full parser reads, from raw bytes.
import KeelCore
import Testing

@Suite struct CodecScannerTests {
    @Test func scannerAgreesWithTheParserOnTheRigStatus() throws {
        let seen = try scanRecording(RigLines.statusParams)
        #expect(seen == RecordingVisitor.expected(from: try MultipathStatus.parse(RigLines.statusParams)))
        #expect(seen.queueingSeen == [false])
        #expect(seen.groupsSeen == [.active, .enabled, .enabled])
        #expect(seen.pathsSeen.map(\.device) == [DevNo(major: 8, minor: 0), DevNo(major: 8, minor: 48),
                                                 DevNo(major: 8, minor: 16), DevNo(major: 8, minor: 32)])
        #expect(seen.pathsSeen.map(\.group) == [0, 0, 1, 2])
    }

    @Test func scannerAgreesWithTheParserOnGeneratedStatuses() throws {
        var rng = CodecRandom(seed: 0x5CA7)
        for _ in 0..<500 {
            let text = CodecGenerate.status(&rng).render()
            #expect(try scanRecording(text) == RecordingVisitor.expected(from: try MultipathStatus.parse(text)))
        }
    }

    @Test func scannerReportsFailedPathsAndGroupStates() throws {
        let seen = try scanRecording("2 1 0 0 2 2 D 0 1 0 8:0 F 3 A 0 1 0 8:16 A 1")
        #expect(seen.queueingSeen == [true])
        #expect(seen.groupsSeen == [.disabled, .active])
        #expect(seen.pathsSeen == [.init(group: 0, device: DevNo(major: 8, minor: 0), active: false, failCount: 3),
                                   .init(group: 1, device: DevNo(major: 8, minor: 16), active: true, failCount: 1)])
    }

    @Test func scannerThrowsTheParsersErrorOnMalformedInput() {
        let inputs = ["", "2 0 0 0 1 1 A 0 1 0 8:0 X 0", "2 0 0 0 1025 1", "2 0 0 0 1 1 A 0 1 0 8:0 A 0 trailing",
                      String(RigLines.statusParams.dropLast(2))]
        for text in inputs {
            let fromScanner = codecError { () throws(CodecError) in try scanRecording(text) }
            let fromParser = codecError { () throws(CodecError) in try MultipathStatus.parse(text) }
            #expect(fromScanner != nil)
            #expect(fromScanner == fromParser)
        }
    }

    @Test func scanStopsAtTheFirstNul() throws {
        // The kernel's ioctl buffer is NUL-terminated; what follows the NUL is stale bytes.
        var bytes = Array(RigLines.statusParams.utf8)
        bytes.append(0)
        bytes.append(contentsOf: Array(" E 0 junk".utf8))
        let seen = try bytes.withUnsafeBytes { raw throws(CodecError) -> RecordingVisitor in
            var visitor = RecordingVisitor()
            try MultipathStatusScanner.scan(raw, into: &visitor)
            return visitor
        }
        #expect(seen == (try scanRecording(RigLines.statusParams)))
    }

    @Test func visitorSeesSelectorStatusWordsInOrder() throws {
        struct Words: MultipathStatusVisitor {
            var log: [String] = []
            mutating func queueing(_ on: Bool) { log.append("q\(on ? 1 : 0)") }
            mutating func pgInitCount(_ count: Int) { log.append("pg\(count)") }
            mutating func extraFeature(_ token: TextToken) { log.append("x:" + token.string) }
            mutating func hardwareHandlerStatus(_ token: TextToken) { log.append("h:" + token.string) }
            mutating func groupCount(_ count: Int, next: Int) { log.append("groups\(count)/\(next)") }
            mutating func group(_ index: Int, state: MultipathStatus.GroupState) { log.append("g\(index)\(state.rawValue)") }
            mutating func groupSelectorStatus(_ index: Int, _ token: TextToken) { log.append("gs:" + token.string) }
            mutating func groupPaths(_ index: Int, count: Int, argCount: Int) { log.append("paths\(count)x\(argCount)") }
            mutating func path(group: Int, device: DevNo, active: Bool, failCount: Int) { log.append("p\(device)") }
            mutating func pathSelectorStatus(group: Int, device: DevNo, _ token: TextToken) { log.append("ps:" + token.string) }
        }
        let text = "3 0 5 extra 1 alua 1 1 A 2 972 0 1 3 8:0 A 0 10 20 30"
        var copy = text
        let words = try copy.withUTF8 { utf8 throws(CodecError) -> Words in
            var w = Words()
            try MultipathStatusScanner.scan(UnsafeRawBufferPointer(utf8), into: &w)
            return w
        }
        #expect(words.log == ["q0", "pg5", "x:extra", "h:alua", "groups1/1", "g0A",
                              "gs:972", "gs:0", "paths1x3", "p8:0", "ps:10", "ps:20", "ps:30"])
    }
}
