// Persistent reservations on the real kernel (VM only): a LUN exported over iSCSI through two
// loopback portals by the kernel's own target (LIO, which implements SPC-3 reservations), Debian's
// mpathpersist registering a key through keeld's map and keeping it in the prkeys file through
// keeld's socket, and a path that lost its registration registered again by keeld when it comes
// back, before it carries I/O.
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Testing

/// How many keys the LUN has registered, as sg_persist reads them through `disk`.
private func registeredKeys(_ disk: String) throws -> Int {
    let text = try keeldGuestShell("sg_persist --in -k /dev/\(disk)")
    if text.contains("NO registered reservation keys") { return 0 }
    for line in text.split(separator: "\n") where line.contains("registered reservation key") {
        if let count = line.split(separator: ",").last?.split(separator: " ").first.flatMap({ Int($0) }) { return count }
    }
    throw RideThroughError("sg_persist printed: \(text)")
}

@Suite("persistent reservations through mpathpersist", .serialized, .enabled(if: keeldKernelTestsEnabled))
struct ReservationKernelTests {
    @Test("mpathpersist registers through keeld's map and stores its key with setprkey (prkeys file, getprkey through Debian's multipathd client); a path that lost its registration is registered again when it comes back")
    func returningPathIsRegisteredAgain() throws {
        let disks = try portalDisks(try keeldGuestShell("keel_iscsi 1 2"))
        defer { _ = try? keeldGuestShell("keel_iscsi_down") }
        #expect(disks.count == 2, "\(disks)")
        // mpathpersist reads /etc/multipath.conf (the VM's throw-away copy); keeld reads the same.
        let settings = "defaults {\n    reservation_key file\n}\n"
        try keeldGuestShell("mkdir -p /etc/multipath && rm -f /etc/multipath/prkeys && printf '\(settings.replacingOccurrences(of: "\n", with: "\\n"))' > /etc/multipath.conf")
        defer { _ = try? keeldGuestShell("rm -f /etc/multipath.conf /etc/multipath/prkeys") }
        let logFile = "/tmp/keeld-reservation.log"
        unlink(logFile)
        let (keeld, names) = try keeldStartedWithMaps(keeldTestConfiguration + settings, maps: 1, usable: 2, logFile: logFile)
        defer { keeldStop(keeld, removing: names) }
        let name = try #require(names.first)
        let wwid = try #require(keeld.maps().first?.wwid)

        do {
            try keeldGuestShell("mpathpersist -v 3 --out --register --param-sark=0x123abc /dev/mapper/\(name) 2>&1")
        } catch {
            Issue.record("\(error)\nkeeld: \(keeld.stderrTail())\nconfig: \((try? keeld.command("show config")) ?? "-")")
            return
        }
        #expect(try registeredKeys(disks[0].disk) == 2, "mpathpersist registered both paths")
        let prkeys = try keeldGuestShell("cat /etc/multipath/prkeys")
        #expect(prkeys.contains("0x0000000000123abc \(wwid)\n"), "keeld stored the key mpathpersist gave it: \(prkeys)")
        #expect(try keeldGuestShell("multipathd getprkey map \(name)") == "0x123abc\n")

        // One path loses its registration (its I_T nexus unregisters), as a path replaced or
        // reset by the array would; the LUN keeps the key through the other path.
        let lost = try #require(disks.first { $0.portal == 1 })
        let kept = try #require(disks.first { $0.portal == 2 })
        _ = try? keeldGuestShell("sg_persist --out --register --param-rk=0x123abc /dev/\(lost.disk)")
        #expect(try registeredKeys(kept.disk) == 1, "one registration left")

        let control = try DMControl()
        try keeldSetDiskState(lost.disk, "offline")
        let failed = try kernelTestWait(every: 50_000, timeoutNs: 20 * Time.nsPerSecond) {
            try pathsActive(control, maps: [name])[lost.device] == false
        }
        #expect(failed != nil, "\(lost.disk) failed")
        try keeldSetDiskState(lost.disk, "running")
        let back = try kernelTestWait(every: 50_000, timeoutNs: 20 * Time.nsPerSecond) {
            try pathsActive(control, maps: [name])[lost.device] == true
        }
        #expect(back != nil, "\(lost.disk) reinstated: \(keeld.stderrTail())")
        #expect(try registeredKeys(kept.disk) == 2, "keeld registered the returning path with the map's key")
        let paths = try keeld.command("show paths")
        #expect(paths.split(separator: "\n").contains { $0.hasPrefix(lost.disk + " ") && $0.contains("reservation=registered") }, "\(paths)")
        #expect(try keeldGuestShell("multipathd getprstatus map \(name)") == "1", "a path registered with the key: the map is registered")
        let logged = kernelTestWait(every: 50_000, timeoutNs: 10 * Time.nsPerSecond) {
            ((try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "").contains("path \(lost.disk) (\(lost.device)) of \(name) registered with the map's reservation key")
        }
        #expect(logged != nil, "keeld's log names the registration: \(((try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "").suffix(2000))")
        let metrics = try keeld.command("show metrics")
        #expect(metrics.contains("keel_paths_reservation{registration=\"registered\"} 1"), "\(metrics)")

        // mpathpersist unregisters (a key of 0): the LUN has no key left, and the prkeys line is
        // commented out; a path returning now is not registered.
        try keeldGuestShell("mpathpersist --out --register --param-rk=0x123abc /dev/mapper/\(name)")
        #expect(try registeredKeys(kept.disk) == 0)
        #expect(try keeldGuestShell("multipathd getprkey map \(name)") == "none\n")
        #expect(try keeldGuestShell("multipathd getprstatus map \(name)") == "0")
        #expect(try keeldGuestShell("cat /etc/multipath/prkeys").contains("#x0000000000123abc \(wwid)\n"))
        print("mpathpersist through keeld: key 0x123abc registered on 2 paths and stored in the prkeys file; \(lost.disk) unregistered, offline -> failed \(failed.map { "\($0 / 1_000_000) ms" } ?? "-"), running -> reinstated \(back.map { "\($0 / 1_000_000) ms" } ?? "-") and registered again (2 keys)")
    }
}
