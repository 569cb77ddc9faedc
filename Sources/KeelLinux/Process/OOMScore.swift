// Keeping the OOM killer away from the daemon: oom_score_adj -1000, with a typed refusal.
import Glibc

/// Why the OOM score could not be read or set.
public struct OOMScoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: Equatable, Sendable {
        /// The file could not be read.
        case read(SystemError)
        /// The kernel refused the write (EACCES: lowering needs CAP_SYS_RESOURCE).
        case write(SystemError)
        /// The file held something other than an integer.
        case unreadableValue(String)
        /// The write succeeded but the value read back differs.
        case notApplied(readBack: Int32)
    }

    public var kind: Kind
    /// Whether CAP_SYS_RESOURCE is effective; nil when unknown.
    public var hasSysResource: Bool?

    public init(kind: Kind, hasSysResource: Bool?) {
        self.kind = kind
        self.hasSysResource = hasSysResource
    }

    /// One line for the log, with the cause and the remedy.
    public var description: String {
        let remedy = "set OOMScoreAdjust=-1000 in the unit or grant CAP_SYS_RESOURCE"
        switch kind {
        case .read(let error):
            return "reading \(OOMScore.path) failed: \(error)"
        case .write(let error) where error.errno == EACCES && hasSysResource == false:
            return "writing \(OOMScore.protectedValue) to \(OOMScore.path) was refused (EACCES): the process lacks CAP_SYS_RESOURCE; \(remedy)"
        case .write(let error):
            return "writing \(OOMScore.protectedValue) to \(OOMScore.path) failed: \(ProcessText.errno(error.errno)); \(remedy)"
        case .unreadableValue(let text):
            return "\(OOMScore.path) holds '\(text)', not an integer"
        case .notApplied(let value):
            return "\(OOMScore.path) reads \(value) after writing \(OOMScore.protectedValue)"
        }
    }
}

/// The outcome of `OOMScore.protect()`.
public enum OOMProtection: Equatable, Sendable {
    /// The value was written now.
    case applied
    /// It was already -1000 (e.g. the unit's OOMScoreAdjust=-1000); nothing was written.
    case alreadyProtected
}

/// The process's OOM-killer adjustment (/proc/self/oom_score_adj).
public enum OOMScore {
    /// The file.
    public static let path = "/proc/self/oom_score_adj"
    /// OOM_SCORE_ADJ_MIN: the OOM killer never picks this process.
    public static let protectedValue: Int32 = -1000

    /// The current adjustment (-1000...1000).
    public static func current() throws(OOMScoreError) -> Int32 {
        let text: Substring
        do {
            text = ProcFile.trimmed(Substring(try ProcFile.readText(path)))
        } catch {
            throw OOMScoreError(kind: .read(error), hasSysResource: nil)
        }
        guard let value = Int32(text) else {
            throw OOMScoreError(kind: .unreadableValue(String(text)), hasSysResource: nil)
        }
        return value
    }

    /// Sets the adjustment to -1000 so the kernel's OOM killer never chooses the daemon (it is
    /// what recovers the paths the rest of the host's memory may be waiting on). Lowering the
    /// value needs CAP_SYS_RESOURCE, unless the unit already set it.
    @discardableResult
    public static func protect() throws(OOMScoreError) -> OOMProtection {
        if try current() == protectedValue { return .alreadyProtected }
        do {
            try ProcFile.writeText(path, "\(protectedValue)\n")
        } catch {
            let capability = (try? ProcessStatus.read())?.hasEffective(.sysResource)
            throw OOMScoreError(kind: .write(error), hasSysResource: capability)
        }
        let readBack = try current()
        guard readBack == protectedValue else {
            throw OOMScoreError(kind: .notApplied(readBack: readBack), hasSysResource: nil)
        }
        return .applied
    }
}
