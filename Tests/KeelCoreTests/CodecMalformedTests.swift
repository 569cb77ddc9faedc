// Malformed kernel text: every problem is a CodecError naming what was wrong and where, never a crash.
import KeelCore
import Testing

@Suite struct CodecMalformedTests {
    private func statusError(_ text: String) -> CodecError? {
        codecError { () throws(CodecError) in try MultipathStatus.parse(text) }
    }

    private func tableError(_ text: String) -> CodecError? {
        codecError { () throws(CodecError) in try MultipathTable.parse(text) }
    }

    @Test func namesTheBadPathStateTheDeviceAndTheTokenIndex() {
        let error = statusError("2 0 0 0 1 1 A 0 2 0 8:0 A 0 8:16 X 0")
        #expect(error?.problem == .malformed(.pathState))
        #expect(error?.device == DevNo(major: 8, minor: 16))
        #expect(error?.group == 1)
        #expect(error?.tokenIndex == 14)
        #expect(error?.token == TokenExcerpt("X"))
        #expect(error?.description == "status: expected A|F after 8:16, found \"X\" (token 14)")
    }

    @Test func truncatedStatusNamesTheMissingElement() {
        let truncated = String(RigLines.statusParams.dropLast(2))  // drops the last path's last status word
        let error = statusError(truncated)
        #expect(error?.problem == .missing(.pathArg))
        #expect(error?.device == DevNo(major: 8, minor: 32))
        #expect(error?.group == 3)
        #expect(error?.tokenIndex == 37)
        #expect(error?.description == "status: expected per-path arg after 8:32, found end of input (token 37)")
    }

    @Test func truncatedTableNamesTheMissingElement() {
        let error = tableError("1 queue_if_no_path 1 alua 3 1 service-time 0 2 2 8:0 1")
        #expect(error?.problem == .missing(.pathArg))
        #expect(error?.device == DevNo(major: 8, minor: 0))
    }

    @Test func emptyTextIsMissingItsFeatureCount() {
        #expect(statusError("")?.problem == .missing(.featureCount))
        #expect(tableError("   ")?.problem == .missing(.featureCount))
    }

    @Test func moreGroupsDeclaredThanPresentIsAnError() {
        let error = statusError("2 0 0 0 2 1 A 0 1 0 8:0 A 0")
        #expect(error?.problem == .missing(.groupState))
        #expect(error?.group == 2)
        #expect(error?.description == "status: expected A|E|D in group 2, found end of input (token 13)")
    }

    @Test func fewerGroupsDeclaredThanPresentIsAnError() {
        let error = statusError("2 0 0 0 1 1 A 0 1 0 8:0 A 0 E 0 1 0 8:16 A 0")
        #expect(error?.problem == .trailing)
        #expect(error?.token == TokenExcerpt("E"))
        #expect(error?.tokenIndex == 13)
    }

    @Test func fewerPathArgsDeclaredThanPresentIsAnError() {
        let error = tableError("0 0 1 1 round-robin 0 1 0 8:0 1")
        #expect(error?.problem == .trailing)
        #expect(error?.token == TokenExcerpt("1"))
    }

    @Test(arguments: ["8-16", "8:", ":16", "8:16:1", "a:b", "4096:0", "8:1048576", "-8:16", "99999999999999999999:1"])
    func badDeviceNumbersAreErrors(_ device: String) {
        let error = tableError("0 0 1 1 round-robin 0 1 1 \(device) 1")
        #expect(error?.problem == .malformed(.device))
        #expect(error?.token == TokenExcerpt(device))
        #expect(error?.tokenIndex == 8)
    }

    @Test func largestDeviceNumberIsAccepted() throws {
        let table = try MultipathTable.parse("0 0 1 1 round-robin 0 1 1 4095:1048575 1")
        #expect(table.groups[0].paths[0].device == DevNo(major: 4095, minor: 1_048_575))
    }

    @Test func groupCountPastTheKernelLimitIsAnError() {
        let error = statusError("2 0 0 0 1025 1")
        #expect(error?.problem == .outOfRange(.groupCount, min: 0, max: 1024))
        #expect(error?.description == "status: path group count must be 0...1024, found \"1025\" (token 4)")
    }

    @Test func pathCountPastTheKernelLimitIsAnError() {
        #expect(tableError("0 0 1 1 round-robin 0 5000 1 8:0 1")?.problem == .outOfRange(.pathCount, min: 1, max: 1024))
    }

    @Test func aGroupWithoutPathsIsAnError() {
        #expect(tableError("0 0 1 1 round-robin 0 0 1")?.problem == .outOfRange(.pathCount, min: 1, max: 1024))
        #expect(statusError("2 0 0 0 1 1 A 0 0 0")?.problem == .outOfRange(.pathCount, min: 1, max: 1024))
    }

    @Test func hugeCountsAreRangeErrorsNotAllocations() {
        let error = tableError("0 0 1 1 round-robin 999999999999999999999999999999 1 1 8:0 1")
        #expect(error?.problem == .outOfRange(.selectorArgCount, min: 0, max: 1024))
        #expect(tableError("0 1024 alua")?.problem == .missing(.hardwareHandlerArg))
        #expect(statusError("1024 0 0")?.problem == .missing(.feature))
    }

    @Test func tooManyTableFeaturesIsAnError() {
        #expect(tableError("9 a b c d e f g h i 0 0 0")?.problem == .outOfRange(.featureCount, min: 0, max: 8))
    }

    @Test func statusNeedsItsTwoFeatureArgs() {
        #expect(statusError("1 0 0 0 0")?.problem == .outOfRange(.featureCount, min: 2, max: 1024))
    }

    @Test func queueIOMustBeZeroOrOne() {
        let error = statusError("2 2 0 0 0 0")
        #expect(error?.problem == .malformed(.queueIO))
        #expect(error?.tokenIndex == 1)
    }

    @Test(arguments: ["-1", "+1", "1x", "0x10", "１"])
    func numbersMustBePlainDecimal(_ number: String) {
        let error = tableError("0 0 \(number) 1")
        #expect(error?.problem == .malformed(.groupCount))
        #expect(error?.token == TokenExcerpt(number))
    }

    @Test func initialGroupZeroWithGroupsIsAnError() {
        #expect(tableError("0 0 1 0 round-robin 0 1 1 8:0 1")?.problem == .outOfRange(.initialGroup, min: 1, max: 1024))
    }

    @Test func initialGroupWithoutGroupsIsAnError() {
        #expect(tableError("0 0 0 1")?.problem == .outOfRange(.initialGroup, min: 0, max: 0))
    }

    @Test func nextGroupMustNameAnExistingGroup() {
        #expect(statusError("2 0 0 0 1 2 A 0 1 0 8:0 A 0")?.problem == .outOfRange(.nextGroup, min: 1, max: 1))
    }

    @Test func groupStateMustBeAOrEOrD() {
        let error = statusError("2 0 0 0 1 1 B 0 1 0 8:0 A 0")
        #expect(error?.problem == .malformed(.groupState))
        #expect(error?.group == 1)
        #expect(error?.device == nil)
    }

    @Test(arguments: [("1 pg_init_retries 0 0 0", CodecError.Problem.featureCountEnds(.pgInitRetries)),
                      ("2 pg_init_retries 0 0 0 0", .outOfRange(.pgInitRetries, min: 1, max: 50)),
                      ("2 pg_init_retries 51 0 0 0", .outOfRange(.pgInitRetries, min: 1, max: 50)),
                      ("2 pg_init_delay_msecs 60001 0 0 0", .outOfRange(.pgInitDelayMsecs, min: 0, max: 60000)),
                      ("2 pg_init_delay_msecs soon 0 0 0", .malformed(.pgInitDelayMsecs)),
                      ("2 queue_mode fast 0 0 0", .malformed(.queueMode))])
    func knownFeatureValuesAreChecked(_ text: String, _ problem: CodecError.Problem) {
        #expect(tableError(text)?.problem == problem)
    }

    @Test func featureCountEndingBeforeItsValueSaysSo() {
        #expect(tableError("1 pg_init_retries 0 0 0")?.description
            == "table: expected pg_init_retries value after \"pg_init_retries\", found the end of the feature args (token 1)")
    }

    @Test func failCountPastAnUnsignedIntIsAnError() {
        let error = statusError("2 0 0 0 1 1 A 0 1 0 8:0 A 4294967296")
        #expect(error?.problem == .outOfRange(.failCount, min: 0, max: 4_294_967_295))
        #expect(error?.device == DevNo(major: 8, minor: 0))
    }

    @Test func longTokensAreCutInTheError() {
        let long = String(repeating: "z", count: 100)
        let error = statusError("2 0 0 0 1 1 \(long)")
        #expect(error?.token.count == TokenExcerpt.bytesMax)
        #expect(error?.token.isCut == true)
        #expect(error?.description == "status: expected A|E|D in group 1, found \"\(String(repeating: "z", count: 32))…\" (token 6)")
    }

    @Test func generatedTruncationsAreAllErrors() throws {
        var rng = CodecRandom(seed: 0xC0FFEE)
        for _ in 0..<100 {
            let status = CodecGenerate.status(&rng)
            let tokens = status.render().split(separator: " ")
            for keep in 0..<tokens.count {
                let text = tokens[0..<keep].joined(separator: " ")
                #expect(statusError(text) != nil, "accepted a truncated status: \(text)")
            }
        }
    }

    @Test func generatedTokenReplacementsNeverCrash() throws {
        var rng = CodecRandom(seed: 0xBAD)
        let junk = ["", "X", "-1", "1025", "99999999999999999999", "8:", "A", "F", "0", "1", "2", "4096:0"]
        for _ in 0..<300 {
            let table = CodecGenerate.table(&rng)
            var tokens = table.render().split(separator: " ").map(String.init)
            let at = Int.random(in: 0..<tokens.count, using: &rng)
            tokens[at] = junk.randomElement(using: &rng)!
            let text = tokens.joined(separator: " ")
            // Either an error, or a table that renders back to the same tokens.
            if let parsed = try? MultipathTable.parse(text) {
                #expect(parsed.render().split(separator: " ") == text.split(separator: " "))
            }
        }
    }
}
