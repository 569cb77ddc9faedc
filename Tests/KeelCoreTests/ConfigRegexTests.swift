// The POSIX extended regular expression matcher used by multipath.conf.

import KeelCore
import Testing

private func re(_ pattern: String, sourceLocation: SourceLocation = #_sourceLocation) -> PosixRegex? {
    do {
        return try PosixRegex(pattern)
    } catch {
        Issue.record("\(pattern): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

private func compileError(_ pattern: String) -> RegexError? {
    do {
        _ = try PosixRegex(pattern)
        return nil
    } catch {
        return error
    }
}

@Suite struct ConfigRegexTests {
    @Test func literalMatchesAnywhereInTheText() {
        let r = re("sd")
        #expect(r?.matches("sda") == true)
        #expect(r?.matches("xsdy") == true)
        #expect(r?.matches("s-d") == false)
    }

    @Test func emptyPatternMatchesEverything() {
        #expect(re("")?.matches("") == true)
        #expect(re("")?.matches("abc") == true)
    }

    @Test func caretAnchorsAtTheStart() {
        #expect(re("^sd")?.matches("sda") == true)
        #expect(re("^sd")?.matches("xsda") == false)
    }

    @Test func dollarAnchorsAtTheEnd() {
        #expect(re("[0-9]$")?.matches("sda1") == true)
        #expect(re("[0-9]$")?.matches("sd1a") == false)
        #expect(re("^$")?.matches("") == true)
        #expect(re("^$")?.matches("a") == false)
    }

    @Test func anchorsInsideAlternatives() {
        let r = re("(^a|b$)")
        #expect(r?.matches("ax") == true)
        #expect(r?.matches("xb") == true)
        #expect(r?.matches("xa") == false)
        #expect(r?.matches("bx") == false)
    }

    @Test func dotMatchesAnyOneCharacter() {
        #expect(re("^s.a$")?.matches("sda") == true)
        #expect(re("^s.a$")?.matches("sa") == false)
    }

    @Test func starMatchesZeroOrMore() {
        let r = re("^ab*c$")
        #expect(r?.matches("ac") == true)
        #expect(r?.matches("abbbc") == true)
        #expect(r?.matches("adc") == false)
    }

    @Test func plusMatchesOneOrMore() {
        let r = re("^ab+c$")
        #expect(r?.matches("ac") == false)
        #expect(r?.matches("abc") == true)
        #expect(r?.matches("abbc") == true)
    }

    @Test func questionMatchesZeroOrOne() {
        let r = re("^ab?c$")
        #expect(r?.matches("ac") == true)
        #expect(r?.matches("abc") == true)
        #expect(r?.matches("abbc") == false)
    }

    @Test func intervalsBoundRepetition() {
        let exact = re("^a{3}$")
        #expect(exact?.matches("aa") == false)
        #expect(exact?.matches("aaa") == true)
        #expect(exact?.matches("aaaa") == false)
        let range = re("^a{2,3}$")
        #expect(range?.matches("a") == false)
        #expect(range?.matches("aaa") == true)
        #expect(range?.matches("aaaa") == false)
        let open = re("^a{2,}$")
        #expect(open?.matches("a") == false)
        #expect(open?.matches("aaaaaa") == true)
    }

    @Test func bracketRangesAndLists() {
        let r = re("^sd[a-cx]$")
        #expect(r?.matches("sdb") == true)
        #expect(r?.matches("sdx") == true)
        #expect(r?.matches("sdd") == false)
    }

    @Test func negatedBracketExcludesItsCharacters() {
        let r = re("^[^0-9]+$")
        #expect(r?.matches("sda") == true)
        #expect(r?.matches("sda1") == false)
    }

    @Test func closingBracketFirstAndDashLastAreLiterals() {
        let r = re("^[]a-]+$")
        #expect(r?.matches("]-a") == true)
        #expect(r?.matches("b") == false)
        #expect(re("[^]]")?.matches("]") == false)
    }

    @Test func characterClassesInBrackets() {
        #expect(re("^[[:digit:]]+$")?.matches("0123") == true)
        #expect(re("^[[:digit:]]+$")?.matches("01a") == false)
        #expect(re("^[[:upper:][:space:]]+$")?.matches("LIO ORG") == true)
        #expect(re("^[[:alnum:]_-]+$")?.matches("disk_0-1") == true)
    }

    @Test func backslashInsideBracketIsLiteral() {
        #expect(re("[\\]")?.matches("a\\b") == true)
    }

    @Test func alternationPicksAnyBranch() {
        let r = re("^(ram|loop|fd)[0-9]")
        #expect(r?.matches("loop0") == true)
        #expect(r?.matches("ram12") == true)
        #expect(r?.matches("sda") == false)
    }

    @Test func emptyAlternativeMatchesEmpty() {
        let r = re("^a(b|)c$")
        #expect(r?.matches("ac") == true)
        #expect(r?.matches("abc") == true)
    }

    @Test func groupsTakeQuantifiers() {
        let r = re("^(ab)+$")
        #expect(r?.matches("ababab") == true)
        #expect(r?.matches("aba") == false)
    }

    @Test func backslashEscapesMetaCharacters() {
        let r = re("^a\\.b\\*$")
        #expect(r?.matches("a.b*") == true)
        #expect(r?.matches("axb*") == false)
    }

    @Test func multiByteCharacterIsOneAtom() {
        #expect(re("^é+$")?.matches("ééé") == true)
        #expect(re("^é+$")?.matches("é\u{00A9}") == false)
    }

    @Test func nestedStarsDoNotLoopForever() {
        let r = re("^(a*)*b$")
        #expect(r?.matches(String(repeating: "a", count: 5_000)) == false)
        #expect(r?.matches(String(repeating: "a", count: 5_000) + "b") == true)
    }

    @Test func equalityFollowsThePattern() {
        #expect(re("a+") == re("a+"))
        #expect(re("a+") != re("aa*"))
    }

    @Test func malformedPatternsNameTheProblemAndOffset() {
        #expect(compileError("^(sd")?.description == "unmatched \"(\" at offset 1")
        #expect(compileError("sd)")?.description == "unmatched \")\" at offset 2")
        #expect(compileError("sd[a-")?.description == "unmatched \"[\" at offset 2")
        #expect(compileError("*a")?.description == "nothing to repeat before \"*\" at offset 0")
        #expect(compileError("(+a)")?.description == "nothing to repeat before \"+\" at offset 1")
        #expect(compileError("^*")?.description == "nothing to repeat before \"*\" at offset 1")
        #expect(compileError("ab\\")?.description == "trailing backslash at offset 2")
        #expect(compileError("\\d")?.description == "unsupported escape \"\\d\" at offset 0")
        #expect(compileError("[z-a]")?.description == "invalid range \"z-a\" at offset 1")
        #expect(compileError("a{2")?.description == "invalid interval at offset 1")
        #expect(compileError("a{3,2}")?.description == "interval {3,2} has its bounds reversed at offset 1")
        #expect(compileError("a{300}")?.description == "interval bound above 255 at offset 1")
        #expect(compileError("[[:word:]]")?.description == "unknown character class \"word\" at offset 1")
        #expect(compileError("[[=a=]]") != nil)
    }

    @Test func hugeExpansionsAreRefused() {
        #expect(compileError("((a{255}){255}){255}")?.problem == "pattern too large after expanding repetitions")
    }
}
