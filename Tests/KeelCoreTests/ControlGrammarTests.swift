// The operator command line: every command, its arguments, and refusals.

import KeelCore
import Testing

@Suite struct ControlGrammarTests {
    @Test func everyCommandParses() throws {
        #expect(try ControlGrammar.parse("show daemon").get() == .showDaemon)
        #expect(try ControlGrammar.parse("  show\tmaps\r").get() == .showMaps)
        #expect(try ControlGrammar.parse("show paths").get() == .showPaths)
        #expect(try ControlGrammar.parse("reconfigure").get() == .reconfigure)
        #expect(try ControlGrammar.parse("shutdown").get() == .shutdown)
        #expect(try ControlGrammar.parse("fail path sdb").get() == .failPath("sdb"))
        #expect(try ControlGrammar.parse("reinstate path 8:16").get() == .reinstatePath("8:16"))
        #expect(try ControlGrammar.parse("disablequeueing map mpatha").get() == .disableQueueing(map: "mpatha"))
        #expect(try ControlGrammar.parse("restorequeueing map mpatha").get() == .restoreQueueing(map: "mpatha"))
    }

    @Test func unknownEmptyAndOverlongCommandsAreRefusedWithAReason() {
        guard case .failure(let unknown) = ControlGrammar.parse("fail map mpatha") else { Issue.record("accepted"); return }
        #expect(unknown.description.contains("unknown command 'fail map mpatha'"))
        guard case .failure(let empty) = ControlGrammar.parse(" ") else { Issue.record("accepted"); return }
        #expect(empty.description == "empty command")
        guard case .failure(let long) = ControlGrammar.parse("show " + String(repeating: "x", count: 600)) else { Issue.record("accepted"); return }
        #expect(long.description.contains("longer than 512"))
        guard case .failure(let words) = ControlGrammar.parse(String(repeating: "a ", count: 40)) else { Issue.record("accepted"); return }
        #expect(words.description.contains("more than 16"))
        guard case .failure(let control) = ControlGrammar.parse("show \u{1}\u{7f}") else { Issue.record("accepted"); return }
        #expect(!control.description.contains("\u{1}"), "control characters are not echoed")
    }
}
