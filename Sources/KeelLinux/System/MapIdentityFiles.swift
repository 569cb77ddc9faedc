// The bindings, wwids and prkeys files of a multipath-tools host, read and appended to in place:
// names, known WWIDs and reservation keys survive restarts and are shared with multipath(8) and
// mpathpersist. Used on the events thread
// only; nothing here waits for another process (a held lock is retried briefly, then given up).
import Glibc
import KeelCore

/// `/etc/multipath/bindings`, `/etc/multipath/wwids` and `/etc/multipath/prkeys` (or the files
/// the configuration names).
public struct MapIdentityFiles: Sendable {
    public var bindingsPath: String
    public var wwidsPath: String
    public var prkeysPath: String

    /// The files a configuration names.
    public init(_ configuration: Configuration) {
        bindingsPath = configuration.bindingsFile
        wwidsPath = configuration.wwidsFile
        prkeysPath = configuration.prkeysFile
    }

    public init(bindingsPath: String, wwidsPath: String, prkeysPath: String = Configuration.prkeysFileDefault) {
        self.bindingsPath = bindingsPath
        self.wwidsPath = wwidsPath
        self.prkeysPath = prkeysPath
    }

    /// The reservation keys now in the prkeys file; a missing file has none.
    public func readPRKeys() -> Result<PRKeys, SystemFileError> {
        switch readWholeFile(prkeysPath) {
        case .success(let text): return .success(PRKeys(text: text))
        case .failure(let error) where error.errno == ENOENT: return .success(PRKeys())
        case .failure(let error): return .failure(error)
        }
    }

    /// Sets (or, with nil, removes) the key of `wwid` in the prkeys file, every other line kept.
    /// The file is rewritten whole beside itself, synced and renamed over the old one under the
    /// file's lock, so a crash leaves the old keys or the new ones, never a part.
    public func storePRKey(_ key: ReservationKey?, wwid: String) throws(SystemFileError) {
        let file = try LockedAppendFile(path: prkeysPath, header: PRKeys.header)
        defer { file.close() }
        let text = PRKeys.updating(try file.contents(), wwid: wwid, to: key)
        let temporary = prkeysPath + ".keel-new"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw SystemFileError(path: temporary, errno: errno) }
        let count = text.utf8.count
        let written = text.withCString { write(fd, $0, count) }
        let e = written == count ? (fsync(fd) == 0 ? 0 : errno) : (written < 0 ? errno : EIO)
        Glibc.close(fd)
        guard e == 0, rename(temporary, prkeysPath) == 0 else {
            let why = e != 0 ? e : errno
            unlink(temporary)
            throw SystemFileError(path: prkeysPath, errno: why)
        }
    }

    /// The bindings now in the file; a missing file has none.
    public func readBindings() -> Result<Bindings, SystemFileError> {
        switch readWholeFile(bindingsPath) {
        case .success(let text): return .success(Bindings(text: text))
        case .failure(let error) where error.errno == ENOENT: return .success(Bindings())
        case .failure(let error): return .failure(error)
        }
    }

    /// The WWIDs now in the file; a missing file has none.
    public func readWWIDs() -> Result<KnownWWIDs, SystemFileError> {
        switch readWholeFile(wwidsPath) {
        case .success(let text): return .success(KnownWWIDs(text: text))
        case .failure(let error) where error.errno == ENOENT: return .success(KnownWWIDs())
        case .failure(let error): return .failure(error)
        }
    }

    /// One map to name (`bindAll`).
    public struct BindingRequest: Sendable, Equatable {
        public var wwid: String
        public var prefix: String
        /// The name of a map the kernel already has for this WWID, bound when it is free.
        public var preferred: String?

        public init(wwid: String, prefix: String, preferred: String? = nil) {
            self.wwid = wwid
            self.prefix = prefix
            self.preferred = preferred
        }
    }

    /// The alias bound to `wwid`, binding the lowest free `prefix` name when it has none. The
    /// file is locked, read again (multipath(8) may have added lines) and appended to with one
    /// write and an fsync, so a name is on disk before any map carries it. `taken` refuses names
    /// in use elsewhere (live maps, configured aliases).
    /// `preferred` (the name of a map the kernel already has) is bound when it is free.
    public func bind(wwid: String, prefix: String, preferred: String? = nil,
                     taken: (String) -> Bool) throws(SystemFileError) -> (alias: String, added: Bool) {
        try bindAll([BindingRequest(wwid: wwid, prefix: prefix, preferred: preferred)], taken: { alias, _ in taken(alias) })[0]
    }

    /// `bind` for many maps at once, in order: the file is locked, read and parsed once, and
    /// every new line goes out in one write and one fsync (a host that brings hundreds of new
    /// LUNs pays for one sync, and reads the file once, not once per map). `taken(alias, wwid)`
    /// refuses names in use elsewhere for that WWID. A name given to an earlier request of the
    /// batch is not given again.
    public func bindAll(_ requests: [BindingRequest],
                        taken: (String, String) -> Bool) throws(SystemFileError) -> [(alias: String, added: Bool)] {
        guard !requests.isEmpty else { return [] }
        let file = try LockedAppendFile(path: bindingsPath, header: Bindings.header)
        defer { file.close() }
        var bindings = Bindings(text: try file.contents())
        var results: [(alias: String, added: Bool)] = []
        var lines = ""
        // Where the search for a free name goes on, per prefix: names below it were bound or
        // refused when the last one was handed out, and neither changes during the batch.
        var searchFrom: [String: Int] = [:]
        for request in requests {
            if let alias = bindings.aliasByWWID[request.wwid] {
                results.append((alias, false))
                continue
            }
            let alias: String
            if let preferred = request.preferred, bindings.wwidByAlias[preferred] == nil, !taken(preferred, request.wwid) {
                alias = preferred
            } else {
                let free = bindings.freeAlias(prefix: request.prefix, from: searchFrom[request.prefix] ?? 0,
                                              taken: { taken($0, request.wwid) })
                searchFrom[request.prefix] = free.index + 1
                alias = free.alias
            }
            bindings.bind(alias: alias, wwid: request.wwid)
            lines += Bindings.line(alias: alias, wwid: request.wwid)
            results.append((alias, true))
        }
        if !lines.isEmpty { try file.append(lines) }
        return results
    }

    /// Adds `wwid` to the wwids file unless it is there; true when a line was added.
    @discardableResult
    public func remember(wwid: String) throws(SystemFileError) -> Bool {
        try remember(wwids: [wwid]) == 1
    }

    /// Adds the WWIDs the file does not list yet, in one write and one fsync under one lock (a
    /// host with hundreds of new maps pays for one sync, not hundreds). Returns how many lines
    /// were added.
    @discardableResult
    public func remember(wwids: [String]) throws(SystemFileError) -> Int {
        guard !wwids.isEmpty else { return 0 }
        let file = try LockedAppendFile(path: wwidsPath, header: KnownWWIDs.header)
        defer { file.close() }
        var known = KnownWWIDs(text: try file.contents())
        var lines = ""
        var added = 0
        for wwid in wwids where !known.contains(wwid) {
            known.insert(wwid)
            lines += KnownWWIDs.line(wwid)
            added += 1
        }
        if added > 0 { try file.append(lines) }
        return added
    }
}

/// A state file opened for appending under an open-file-description lock, created (with its
/// directory) when missing.
private struct LockedAppendFile {
    let path: String
    let fd: Int32

    /// How often a lock held by another process is tried before giving up, 10 ms apart.
    static let lockAttempts = 20

    init(path: String, header: String) throws(SystemFileError) {
        self.path = path
        var fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 && errno == ENOENT, let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            _ = mkdir(String(path[..<slash]), 0o755)
            fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        }
        guard fd >= 0 else { throw SystemFileError(path: path, errno: errno) }
        self.fd = fd
        var attempt = 0
        while true {
            var lock = flock()
            lock.l_type = Int16(F_WRLCK)
            lock.l_whence = Int16(SEEK_SET)
            // F_OFD_SETLK (37): an fcntl lock owned by this open file, so it excludes
            // multipath(8)'s POSIX locks on the same file and is safe among threads.
            if fcntl(fd, 37, &lock) == 0 { break }
            let e = errno
            attempt += 1
            guard (e == EAGAIN || e == EACCES || e == EINTR) && attempt < Self.lockAttempts else {
                Glibc.close(fd)
                throw SystemFileError(path: path, errno: e)
            }
            usleep(10_000)
        }
        var info = stat()
        if fstat(fd, &info) == 0 && info.st_size == 0 {
            do throws(SystemFileError) { try append(header, sync: false) } catch {
                Glibc.close(fd)
                throw error
            }
        }
    }

    /// The whole file, at most 16 MiB.
    func contents() throws(SystemFileError) -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var offset = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemFileError(path: path, errno: errno)
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            offset += n
            if bytes.count > 16 << 20 { throw SystemFileError(path: path, errno: EFBIG) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends `text` in one write (a line is never interleaved with another writer's) and
    /// syncs it to disk. A file that does not end in a newline gets one first.
    func append(_ text: String, sync: Bool = true) throws(SystemFileError) {
        var line = text
        var info = stat()
        if fstat(fd, &info) == 0 && info.st_size > 0 {
            var last: UInt8 = 0
            if pread(fd, &last, 1, info.st_size - 1) == 1 && last != UInt8(ascii: "\n") { line = "\n" + line }
        }
        let count = line.utf8.count
        let written = line.withCString { write(fd, $0, count) }
        guard written == count else { throw SystemFileError(path: path, errno: written < 0 ? errno : EIO) }
        if sync && fsync(fd) != 0 { throw SystemFileError(path: path, errno: errno) }
    }

    func close() { Glibc.close(fd) }
}
