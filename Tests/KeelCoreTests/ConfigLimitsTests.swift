// Limits on configuration input: hostile or broken files are refused with file:line, never crash.

import KeelCore
import Testing

@Suite struct ConfigLimitsTests {
    @Test func deeplyNestedSectionsAreRefusedAtTheLineThatGoesTooDeep() {
        // 300,000 nested sections crashed the parser's tree teardown before the limit.
        let text = String(repeating: "a {\n", count: 300_000)
        let errors = configErrors(text)
        #expect(errors.contains { $0.contains("multipath.conf:9:") && $0.contains("nested more than 8 deep") }, "\(errors.prefix(3))")
    }

    @Test func nestedParenthesesInABlacklistRegexAreRefused() {
        let pattern = String(repeating: "(", count: 300_000) + String(repeating: ")", count: 300_000)
        let errors = configErrors("blacklist {\ndevnode \"\(pattern)\"\n}\n")
        #expect(errors.contains { $0.contains("multipath.conf:2:") }, "\(errors.prefix(3))")
    }

    @Test func regexGroupDepthAndLengthAreBounded() {
        #expect(throws: RegexError.self) { try PosixRegex(String(repeating: "(", count: 33) + "a" + String(repeating: ")", count: 33)) }
        #expect((try? PosixRegex(String(repeating: "(", count: 32) + "a" + String(repeating: ")", count: 32)))?.matches("a") == true)
        #expect(throws: RegexError.self) { try PosixRegex(String(repeating: "a", count: 1025)) }
        #expect(throws: RegexError.self) { try PosixRegex("a" + String(repeating: "*", count: 100_000)) }
    }

    @Test func overlongWordIsRefused() {
        let errors = configErrors("defaults {\nalias_prefix " + String(repeating: "x", count: 5000) + "\n}\n")
        #expect(errors.contains { $0.contains("multipath.conf:2:") && $0.contains("longer than 4096") }, "\(errors)")
    }

    @Test func overlongQuotedStringIsRefused() {
        let errors = configErrors("defaults {\nalias_prefix \"" + String(repeating: "x", count: 5000) + "\"\n}\n")
        #expect(errors.contains { $0.contains("multipath.conf:2:") && $0.contains("longer than 4096") }, "\(errors)")
    }

    @Test func tooManyLinesAreRefused() {
        let errors = configErrors(String(repeating: "\n", count: 200_001))
        #expect(errors.contains { $0.contains("more than 200000 lines") }, "\(errors)")
    }

    @Test func tooLargeAFileIsRefused() {
        let errors = configErrors("# " + String(repeating: "x", count: 4 << 20))
        #expect(errors.contains { $0.contains("larger than") }, "\(errors)")
    }
}
