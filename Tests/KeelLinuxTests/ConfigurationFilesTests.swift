// The configuration files keeld reads: multipath.conf, its absence, and config_dir's *.conf files.
import Foundation
import Glibc
import KeelCore
import KeelLinux
import Testing

@Suite struct ConfigurationFilesTests {
    final class Scratch {
        let root = NSTemporaryDirectory() + "keel-conf-\(UUID().uuidString)"
        init() throws { try FileManager.default.createDirectory(atPath: root + "/conf.d", withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: root) }
        func write(_ name: String, _ text: String) throws { try text.write(toFile: root + "/" + name, atomically: true, encoding: .utf8) }
    }

    @Test func confDFilesAreReadInNameOrderAfterTheMainFileAndOverrideIt() throws {
        let s = try Scratch()
        try s.write("multipath.conf", "defaults {\n  config_dir \(s.root)/conf.d\n  polling_interval 7\n  max_paths 512\n  max_paths_per_map 64\n}\n")
        try s.write("conf.d/20-b.conf", "defaults {\n  polling_interval 3\n}\n")
        try s.write("conf.d/10-a.conf", "defaults {\n  polling_interval 9\n  max_maps 64\n}\n")
        try s.write("conf.d/30-ignored.txt", "defaults {\n  polling_interval 1\n}\n")
        let loaded = try ConfigurationFiles.load(path: s.root + "/multipath.conf", mustExist: true).get()
        #expect(loaded.configuration.pollingIntervalSeconds == 3, "20-b.conf is read last of the *.conf files")
        #expect(loaded.configuration.capacities.mapsMax == 64)
        #expect(loaded.configuration.capacities.pathsMax == 512)
    }

    @Test func anErrorInAConfDFileNamesThatFile() throws {
        let s = try Scratch()
        try s.write("multipath.conf", "defaults {\n  config_dir \(s.root)/conf.d\n}\n")
        try s.write("conf.d/50-bad.conf", "defaults {\n  polling_interval soon\n}\n")
        guard case .failure(let error) = ConfigurationFiles.load(path: s.root + "/multipath.conf", mustExist: true) else {
            Issue.record("a bad conf.d file was accepted")
            return
        }
        #expect(error.description.contains("50-bad.conf:2"), "\(error)")
    }

    @Test func noMainFileMeansBuiltInDefaultsUnlessItWasNamed() throws {
        let s = try Scratch()
        let missing = s.root + "/multipath.conf"
        let loaded = try ConfigurationFiles.load(path: missing, mustExist: false).get()
        #expect(loaded.configuration.capacities == Capacities.default)
        #expect(loaded.configuration.configDirectory == Configuration.configDirectoryDefault)
        guard case .failure(let error) = ConfigurationFiles.load(path: missing, mustExist: true) else {
            Issue.record("a named file that does not exist was accepted")
            return
        }
        #expect(error.description.contains("multipath.conf") && error.description.contains("No such file"), "\(error)")
    }

    @Test func anEmptyConfigDirReadsNoDirectoryAndARelativeOneIsRefused() throws {
        let s = try Scratch()
        try s.write("multipath.conf", "defaults {\n  config_dir \"\"\n}\n")
        #expect(try ConfigurationFiles.load(path: s.root + "/multipath.conf", mustExist: true).get().configuration.configDirectory == "")
        try s.write("multipath.conf", "defaults {\n  config_dir conf.d\n}\n")
        guard case .failure(let error) = ConfigurationFiles.load(path: s.root + "/multipath.conf", mustExist: true) else {
            Issue.record("a relative config_dir was accepted")
            return
        }
        #expect(error.description.contains("config_dir"), "\(error)")
    }
}
