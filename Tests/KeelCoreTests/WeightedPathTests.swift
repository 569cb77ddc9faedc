// The weightedpath prioritizer's arguments: parsed as multipath-tools parses them, first match
// wins, no match and bad arguments give 0.
import KeelCore
import Testing

@Suite struct WeightedPathTests {
    @Test func hbtlExpressionsInOrderFirstMatchWins() throws {
        let rule = try #require(WeightedPathRule(arguments: "hbtl 1:.:.:. 2 4:.:.:. 4"))
        #expect(rule.key == .hbtl)
        #expect(rule.weights.map(\.priority) == [2, 4])
        #expect(rule.priority(of: "1:0:0:3") == 2)
        #expect(rule.priority(of: "4:0:1:0") == 4)
        #expect(rule.priority(of: "2:0:0:0") == 0, "no match: 0")
        let overlapping = try #require(WeightedPathRule(arguments: "devname sd 10 sda 20"))
        #expect(overlapping.priority(of: "sda") == 10, "the first expression that matches, not the best")
    }

    @Test func everyKeyAndTabsBetweenWords() throws {
        #expect(WeightedPathRule(arguments: "devname\tsda\t10 sde 20")?.priority(of: "sde") == 20)
        #expect(WeightedPathRule(arguments: "serial ^ABC 7")?.priority(of: "ABC123") == 7)
        #expect(WeightedPathRule(arguments: "wwn :0x5006:.*:0x5006 9")?.key == .wwn)
        #expect(WeightedPathRule.Key.allCases.map(\.rawValue) == ["hbtl", "devname", "serial", "wwn"])
    }

    @Test("bad arguments: an unknown key gives nothing, a bad expression or a missing priority is skipped, a word priority is 0")
    func badArguments() throws {
        #expect(WeightedPathRule(arguments: "hostname x 1") == nil)
        #expect(WeightedPathRule(arguments: "") == nil)
        #expect(WeightedPathRule(arguments: String(repeating: "a", count: 5_000)) == nil, "longer than a configuration word")
        let skipping = try #require(WeightedPathRule(arguments: "devname sd( 5 sdb 6 sdc"))
        #expect(skipping.weights.map(\.expression.pattern) == ["sdb"])
        #expect(skipping.priority(of: "sdc") == 0)
        #expect(WeightedPathRule(arguments: "devname sda high")?.priority(of: "sda") == 0)
        #expect(WeightedPathRule(arguments: "devname sda 12abc")?.priority(of: "sda") == 12, "atoi reads the leading digits")
        #expect(WeightedPathRule(arguments: "devname sda -3")?.priority(of: "sda") == -3)
    }

    @Test func theConfigurationAcceptsWeightedpathAndRandom() throws {
        let text = "defaults {\n    prio weightedpath\n    prio_args \"hbtl 1:.:.:. 2\"\n}\ndevices {\n    device {\n        vendor ACME\n        product X\n        prio random\n    }\n}\n"
        let c = try Configuration.load(files: [(name: "multipath.conf", text: text)]).get()
        #expect(c.warnings.isEmpty, "\(c.warnings)")
        #expect(c.configuration.profile(wwid: "w", vendor: "Linux", product: "d").prio == .weightedpath)
        #expect(c.configuration.profile(wwid: "w", vendor: "Linux", product: "d").prioArgs == "hbtl 1:.:.:. 2")
        #expect(c.configuration.profile(wwid: "w", vendor: "ACME", product: "X").prio == .random)
    }
}
