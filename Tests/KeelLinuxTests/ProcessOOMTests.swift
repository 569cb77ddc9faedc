// OOMScore: -1000 in /proc/self/oom_score_adj, or a refusal that names CAP_SYS_RESOURCE.
import Glibc
import KeelLinux
import Testing

@Suite("Process OOM score", .serialized)
struct ProcessOOMTests {
    @Test("protect sets -1000 with CAP_SYS_RESOURCE, and without it is refused naming the capability")
    func protectFollowsCapability() {
        let report = runInProcessChild { log in
            let hasSysResource = processEffectiveCapabilities() & (1 << 24) != 0
            log.note("hasSysResource", "\(hasSysResource)")
            let before = try? OOMScore.current()
            do throws(OOMScoreError) {
                let outcome = try OOMScore.protect()
                log.check(hasSysResource || before == -1000, "protect succeeded without CAP_SYS_RESOURCE")
                log.check(outcome == (before == -1000 ? .alreadyProtected : .applied), "outcome \(outcome)")
                log.check((try? OOMScore.current()) == -1000, "value after")
            } catch {
                log.check(!hasSysResource, "refused with CAP_SYS_RESOURCE: \(error)")
                if case .write(let systemError) = error.kind {
                    log.check(systemError.errno == EACCES, "errno \(systemError.errno)")
                } else {
                    log.fail("kind \(error.kind)")
                }
                log.check(error.hasSysResource == false, "hasSysResource \(String(describing: error.hasSysResource))")
                log.check(error.description.contains("the process lacks CAP_SYS_RESOURCE; set OOMScoreAdjust=-1000 in the unit or grant CAP_SYS_RESOURCE"), error.description)
                log.check((try? OOMScore.current()) == before, "value changed")
                log.note("message", error.description)
            }
        }
        #expect(report.passed, "\(report)")
    }

    @Test("as nobody, protect is refused with EACCES and the value is unchanged")
    func protectRefusedForNobody() {
        let report = runInProcessChild { log in
            processChildBecomeNobody(log)
            let before = try? OOMScore.current()
            do throws(OOMScoreError) {
                try OOMScore.protect()
                log.fail("protect succeeded as nobody")
            } catch {
                if case .write(let systemError) = error.kind {
                    log.check(systemError.errno == EACCES, "errno \(systemError.errno)")
                } else {
                    log.fail("kind \(error.kind)")
                }
                log.check(error.description.contains("CAP_SYS_RESOURCE"), error.description)
            }
            log.check((try? OOMScore.current()) == before, "value changed")
        }
        #expect(report.passed, "\(report)")
    }

    @Test("current reads the adjustment as an integer")
    func currentReadsInteger() throws {
        let value = try OOMScore.current()
        #expect((-1000...1000).contains(value))
    }
}
