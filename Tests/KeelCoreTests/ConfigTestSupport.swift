// Shared shortcuts for the multipath.conf tests: load text, get the configuration or the diagnostics.

import KeelCore
import Testing

/// Loads one file named multipath.conf.
func loadConfigText(_ text: String) -> Result<LoadedConfiguration, ConfigurationError> {
    Configuration.load(files: [(name: "multipath.conf", text: text)])
}

/// The configuration, or nil with a recorded issue when loading failed.
func configFrom(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> Configuration? {
    switch loadConfigText(text) {
    case .success(let loaded): return loaded.configuration
    case .failure(let e):
        Issue.record("unexpected configuration error:\n\(e)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The warnings of a configuration that must load.
func configWarnings(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
    switch loadConfigText(text) {
    case .success(let loaded): return loaded.warnings.map(\.description)
    case .failure(let e):
        Issue.record("unexpected configuration error:\n\(e)", sourceLocation: sourceLocation)
        return []
    }
}

/// The error lines of a configuration that must be refused.
func configErrors(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
    switch loadConfigText(text) {
    case .success:
        Issue.record("configuration loaded but errors were expected", sourceLocation: sourceLocation)
        return []
    case .failure(let e): return e.problems.map(\.description)
    }
}

/// `defaults { <line> }` as text, the option on line 2.
func inDefaults(_ line: String) -> String {
    "defaults {\n\t\(line)\n}\n"
}

/// The profile of a map with no device or multipaths entry in play.
func defaultProfile(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> MapProfile? {
    configFrom(text, sourceLocation: sourceLocation)?.profile(wwid: "3600000000000000000000000000000aa", vendor: "VENDOR", product: "PRODUCT")
}
