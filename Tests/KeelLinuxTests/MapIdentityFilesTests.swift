// The bindings and wwids files on disk: created with their directory, appended to and never
// rewritten, shared with another writer, locked, and refused cleanly when they cannot be written.
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Testing

@Suite struct MapIdentityFilesTests {
    final class Scratch {
        let root = NSTemporaryDirectory() + "keel-ids-\(UUID().uuidString)"
        var files: MapIdentityFiles { MapIdentityFiles(bindingsPath: root + "/multipath/bindings", wwidsPath: root + "/multipath/wwids") }
        init() throws { try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true) }
        deinit {
            chmod(root + "/multipath", 0o755)
            try? FileManager.default.removeItem(atPath: root)
        }
        func text(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
    }

    @Test func bindingCreatesTheFileAndKeepsEveryNameWhereItWas() throws {
        let s = try Scratch()
        let files = s.files
        #expect(try files.bind(wwid: "3600a", prefix: "mpath", taken: { _ in false }) == ("mpatha", true))
        #expect(try files.bind(wwid: "3600b", prefix: "mpath", taken: { _ in false }) == ("mpathb", true))
        #expect(try files.bind(wwid: "3600a", prefix: "mpath", taken: { _ in false }) == ("mpatha", false), "bound once, found again")
        #expect(try files.bind(wwid: "3600c", prefix: "mpath", taken: { $0 == "mpathc" }) == ("mpathd", true), "a live map's name is skipped")
        let text = s.text(files.bindingsPath)
        #expect(text.hasPrefix(Bindings.header))
        #expect(text.hasSuffix("mpatha 3600a\nmpathb 3600b\nmpathd 3600c\n"), "\(text)")
        #expect(try files.readBindings().get().aliasByWWID == ["3600a": "mpatha", "3600b": "mpathb", "3600c": "mpathd"])
    }

    @Test func aFileWrittenByAnotherProgramIsHonouredAndAppendedTo() throws {
        let s = try Scratch()
        try FileManager.default.createDirectory(atPath: s.root + "/multipath", withIntermediateDirectories: true)
        // multipath-tools' own layout, with no newline at the end of the last line.
        try "# Multipath bindings, Version : 1.0\n# alias wwid\nmpathb 3600b\nmpatha 3600a".write(toFile: s.files.bindingsPath, atomically: true, encoding: .utf8)
        #expect(try s.files.bind(wwid: "3600a", prefix: "mpath", taken: { _ in false }).alias == "mpatha")
        #expect(try s.files.bind(wwid: "3600e", prefix: "mpath", taken: { _ in false }).alias == "mpathc")
        #expect(s.text(s.files.bindingsPath).hasSuffix("mpatha 3600a\nmpathc 3600e\n"), "a newline is added before the new line")
    }

    @Test func aKernelMapsNameIsBoundWhenFree() throws {
        let s = try Scratch()
        #expect(try s.files.bind(wwid: "3600x", prefix: "mpath", preferred: "mpathq", taken: { _ in false }) == ("mpathq", true))
        #expect(try s.files.bind(wwid: "3600y", prefix: "mpath", preferred: "mpathq", taken: { _ in false }) == ("mpatha", true),
                "a name bound to another WWID is not taken over")
    }

    @Test("a batch of maps is named in one pass: the file's names kept, new ones distinct and lowest first, one write")
    func aBatchOfMapsIsNamedInOnePass() throws {
        let s = try Scratch()
        #expect(try s.files.bind(wwid: "3600b", prefix: "mpath", taken: { _ in false }) == ("mpatha", true))
        let before = s.text(s.files.bindingsPath)
        let requests = [
            MapIdentityFiles.BindingRequest(wwid: "3600c", prefix: "mpath"),
            MapIdentityFiles.BindingRequest(wwid: "3600b", prefix: "mpath"),
            MapIdentityFiles.BindingRequest(wwid: "3600d", prefix: "mpath", preferred: "mpathq"),
            MapIdentityFiles.BindingRequest(wwid: "3600e", prefix: "mpath"),
            MapIdentityFiles.BindingRequest(wwid: "3600f", prefix: "data"),
            MapIdentityFiles.BindingRequest(wwid: "3600g", prefix: "mpath", preferred: "mpathc"),
            MapIdentityFiles.BindingRequest(wwid: "3600h", prefix: "mpath"),
        ]
        // mpathc is a live map of 3600g: refused for the others, its own for 3600g.
        let results = try s.files.bindAll(requests) { alias, wwid in alias == "mpathc" && wwid != "3600g" }
        #expect(results.map(\.alias) == ["mpathb", "mpatha", "mpathq", "mpathd", "dataa", "mpathc", "mpathe"])
        #expect(results.map(\.added) == [true, false, true, true, true, true, true])
        #expect(s.text(s.files.bindingsPath) == before + "mpathb 3600c\nmpathq 3600d\nmpathd 3600e\ndataa 3600f\nmpathc 3600g\nmpathe 3600h\n",
                "the new lines follow the old ones, in the batch's order")
        #expect(try s.files.bindAll([]) { _, _ in false }.isEmpty)
        // Read back: every name is where the batch put it.
        let bindings = try s.files.readBindings().get()
        for (request, result) in zip(requests, results) { #expect(bindings.aliasByWWID[request.wwid] == result.alias) }
    }

    @Test func rememberingAWWIDAddsOneLineOnce() throws {
        let s = try Scratch()
        #expect(try s.files.remember(wwid: "3600a"))
        #expect(try !s.files.remember(wwid: "3600a"))
        #expect(try s.files.remember(wwid: "3600b"))
        #expect(try s.files.readWWIDs().get().wwids == ["3600a", "3600b"])
        #expect(s.text(s.files.wwidsPath).hasSuffix("/3600a/\n/3600b/\n"))
        #expect(try MapIdentityFiles(bindingsPath: s.root + "/none", wwidsPath: s.root + "/none").readWWIDs().get().wwids.isEmpty,
                "a missing file lists nothing")
    }

    @Test func aBatchOfWWIDsIsAddedInOneWriteWithoutRepeats() throws {
        let s = try Scratch()
        #expect(try s.files.remember(wwid: "3600b"))
        #expect(try s.files.remember(wwids: ["3600a", "3600b", "3600a", "3600c"]) == 2)
        #expect(try s.files.readWWIDs().get().wwids == ["3600b", "3600a", "3600c"])
        #expect(try s.files.remember(wwids: []) == 0)
        #expect(s.text(s.files.wwidsPath).hasSuffix("/3600b/\n/3600a/\n/3600c/\n"))
    }

    @Test func aFileLockedByAnotherWriterIsGivenUpOnNotWaitedFor() throws {
        let s = try Scratch()
        _ = try s.files.remember(wwid: "3600a")
        let fd = open(s.files.wwidsPath, O_RDWR)
        defer { close(fd) }
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        #expect(fcntl(fd, 37, &lock) == 0, "F_OFD_SETLK")
        #expect(throws: SystemFileError.self) { try s.files.remember(wwid: "3600b") }
        close(fd)
        #expect(try s.files.remember(wwid: "3600b"), "the lock went with its file")
    }

    @Test func twoWritersAtOnceNeverShareAName() async throws {
        let s = try Scratch()
        let files = s.files
        let names = await withTaskGroup(of: [String].self) { group in
            for writer in 0..<2 {
                group.addTask {
                    (0..<50).compactMap { i in try? files.bind(wwid: "w\(writer)-\(i)", prefix: "mpath", taken: { _ in false }).alias }
                }
            }
            var all: [String] = []
            for await batch in group { all += batch }
            return all
        }
        #expect(names.count == 100)
        #expect(Set(names).count == 100, "every WWID got its own name")
        #expect(try files.readBindings().get().aliasByWWID.count == 100)
    }

    @Test func anUnwritableDirectoryIsAnErrorNamingTheFile() throws {
        guard geteuid() != 0 else { return }  // root writes anyway; the daemon-level fallback is tested in the VM
        let s = try Scratch()
        try FileManager.default.createDirectory(atPath: s.root + "/multipath", withIntermediateDirectories: true)
        chmod(s.root + "/multipath", 0o555)
        #expect(throws: SystemFileError.self) { try s.files.bind(wwid: "3600a", prefix: "mpath", taken: { _ in false }) }
    }
}
