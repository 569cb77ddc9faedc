// The control plane's retry schedule for table loads that failed.
import KeelCore
import KeelLinux
import Testing

@Suite struct DaemonReloadRetriesTests {
    @Test func aFailedLoadIsAskedAgainWithBackoffUntilItLoads() {
        var retries = ReloadRetries()
        let map = MapHandle(index: 3)
        #expect(retries.nextDueNs() == Time.never)
        retries.failed(map, nowNs: 1_000)
        #expect(retries.nextDueNs() == 1_000 + 100 * Time.nsPerMs)
        #expect(retries.takeDue(nowNs: 1_000 + 100 * Time.nsPerMs - 1).isEmpty)
        #expect(retries.takeDue(nowNs: 1_000 + 100 * Time.nsPerMs) == [map])
        #expect(retries.takeDue(nowNs: Time.nsPerSecond).isEmpty, "handed out once per failure")
        retries.failed(map, nowNs: 2_000)
        #expect(retries.nextDueNs() == 2_000 + 200 * Time.nsPerMs, "the delay doubles")
        for _ in 0..<20 { retries.failed(map, nowNs: 0) }
        #expect(retries.nextDueNs() == 5 * Time.nsPerSecond, "capped at 5 s")
        #expect(retries.attempts(map) == 22)
        retries.loaded(map)
        #expect(retries.count == 0)
        #expect(retries.nextDueNs() == Time.never)
    }
}
