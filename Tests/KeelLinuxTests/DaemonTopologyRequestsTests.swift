// Topology requests the control plane gives up on, and rediscovery's repair set.
import KeelCore
import KeelLinux
import Testing
import Glibc

@Suite struct DaemonTopologyRequestsTests {
    static let descriptor = PathDescriptor(device: DevNo(major: 8, minor: 16), priority: 1, portKey: 0, serialKey: 0, nodeKey: 0)

    @Test func anAnsweredRequestReturnsItsOwnReplyAndSkipsOthers() {
        var requests = TopologyRequests()
        var sent: [RecoveryInput] = []
        var pending: [TopologyReply] = []
        let reply = requests.ask({ .removePath(PathHandle(index: 2), ticket: $0) },
                                 send: { input in
                                     sent.append(input)
                                     if case .removePath(_, let ticket) = input {
                                         pending = [TopologyReply(ticket: ticket &+ 100), TopologyReply(ticket: ticket, errno: ENOENT)]
                                     }
                                 },
                                 nextReply: { pending.isEmpty ? nil : pending.removeFirst() },
                                 wait: { Issue.record("no wait needed"); return false })
        #expect(reply?.errno == ENOENT)
        #expect(sent.count == 1)
        #expect(!requests.awaitingLateReplies)
    }

    @Test func aLateSuccessfulAdditionIsUndoneAndALateRefusalIsNot() {
        var requests = TopologyRequests()
        var sent: [RecoveryInput] = []
        var waits = 0
        let gaveUp = requests.ask({ .addPath(Self.descriptor, MapHandle(index: 0), ticket: $0) },
                                  send: { sent.append($0) }, nextReply: { nil },
                                  wait: { waits += 1; return waits < 3 })
        #expect(gaveUp == nil)
        #expect(waits == 3, "waited until the deadline said no")
        #expect(requests.awaitingLateReplies)
        guard case .addPath(_, _, let firstTicket) = sent[0] else { Issue.record("first input is the addition"); return }
        // A second addition, also given up on.
        _ = requests.ask({ .addPath(Self.descriptor, MapHandle(index: 1), ticket: $0) }, send: { sent.append($0) },
                         nextReply: { nil }, wait: { false })
        guard case .addPath(_, _, let secondTicket) = sent[1] else { Issue.record("second input is the addition"); return }
        // Late answers: the first was applied (path#7), the second refused; an unrelated ticket is ignored.
        var late = [TopologyReply(ticket: 9_999), TopologyReply(ticket: firstTicket, path: PathHandle(index: 7)),
                    TopologyReply(ticket: secondTicket, errno: EEXIST)]
        requests.settleLate(nextReply: { late.isEmpty ? nil : late.removeFirst() }, send: { sent.append($0) })
        #expect(sent.count == 3)
        guard case .removePath(let undone, let undoTicket) = sent[2] else { Issue.record("the late addition is undone"); return }
        #expect(undone == PathHandle(index: 7))
        #expect(undoTicket != firstTicket && undoTicket != secondTicket)
        #expect(requests.lateReplies == 2 && requests.undoneAdds == 1)
        #expect(!requests.awaitingLateReplies)
    }

    @Test func aRemovalGivenUpOnLeavesNothingToUndo() {
        var requests = TopologyRequests()
        let reply = requests.ask({ .removePath(PathHandle(index: 4), ticket: $0) }, send: { _ in }, nextReply: { nil }, wait: { false })
        #expect(reply == nil)
        #expect(!requests.awaitingLateReplies)
    }

    @Test func rediscoveryAddsWhatIsPresentAndRemovesWhatIsGoneButNotHeldDevices() {
        let d = Rediscovery.differences(present: ["sdc", "sdb", "sde", "sdf"], assembled: ["sdb", "sdd"], held: ["sdf"])
        #expect(d.added == ["sdc", "sde"])
        #expect(d.gone == ["sdd"])
        let none = Rediscovery.differences(present: Set([1, 2]), assembled: Set([1, 2]))
        #expect(none.added.isEmpty && none.gone.isEmpty)
    }
}

@Suite struct DaemonCheckLatencyTests {
    @Test func latenciesFallIntoTheirBucketsAndTheExpositionIsCumulative() {
        let h = CheckLatencyHistogram()
        h.record(100_000)          // 0.1 ms: first bucket
        h.record(250_000)          // on the bound: first bucket
        h.record(3_000_000)        // 3 ms: <= 5 ms
        h.record(-5)               // a clock step backwards counts as 0
        h.record(40 * Time.nsPerSecond)  // past the last bound
        let counts = h.bucketCounts
        #expect(counts.count == CheckLatencyHistogram.boundsNs.count + 1)
        #expect(counts[0] == 3 && counts[4] == 1 && counts.last == 1)
        let text = h.exposition(name: "x", help: "h")
        #expect(text.contains("x_bucket{le=\"0.00025\"} 3\n"))
        #expect(text.contains("x_bucket{le=\"0.005\"} 4\n"))
        #expect(text.contains("x_bucket{le=\"30\"} 4\n"))
        #expect(text.contains("x_bucket{le=\"+Inf\"} 5\n"))
        #expect(text.contains("x_count 5\n"))
        #expect(text.contains("x_sum 40.00335\n"))
    }
}
