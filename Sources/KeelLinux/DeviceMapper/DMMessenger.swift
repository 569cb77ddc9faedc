// The device-mapper recovery plane: DM_TARGET_MSG and DM_TABLE_STATUS by raw ioctl from buffers allocated once.
import Glibc
import CKeelShim
import KeelCore

/// Sends dm-multipath target messages and reads map status with raw ioctls on its own
/// `/dev/mapper/control` descriptor. Every buffer (the ioctl buffers and one preformatted
/// `struct dm_ioctl` per map slot) is allocated at init; `send` and `readStatus` allocate nothing,
/// format only a few digits, and never take a lock.
///
/// Threads: one thread (the recovery thread) calls `send` and `readStatus`. The control plane
/// calls `register` / `unregister`; registering a map must happen before the recovery thread
/// learns the map (the ring that hands it over orders the two), and unregistering after it has
/// dropped it.
public struct DMMessenger: MultipathMessenger, @unchecked Sendable {
    /// Bytes reserved for one message's text and NUL (`DMMessageText.bytesMax`, rounded up).
    public static let messageTextBytesMax = (DMMessageText.bytesMax + 7) & ~7
    /// Bytes of one map's preformatted ioctl header.
    public static var headerBytes: Int { Int(KEEL_DM_IOCTL_BYTES) }
    /// The default room for one map's status text.
    public static let statusBytesDefault = 16 * 1024

    @usableFromInline let storage: Storage

    /// How many maps can be registered (handles `0..<mapsMax`).
    public var mapsMax: Int { storage.mapsMax }
    /// The room for one map's status (or table) text; a map whose status does not fit is refused
    /// at `register`.
    public var statusBytesMax: Int { storage.statusBytesMax }
    /// The control descriptor the ioctls go to.
    public var fileDescriptor: Int32 { storage.fd }

    /// Opens `controlPath` and allocates every buffer. Throws (operation `.open`) when the control
    /// node is missing or cannot be opened: the kernel has no device-mapper or dm-mod is not loaded.
    /// The per-map headers are reserved in `memory` for `mapsMax` maps; a map's header page is
    /// committed when the map is registered.
    public init(controlPath: String = "/dev/mapper/control", mapsMax: Int,
                statusBytesMax: Int = DMMessenger.statusBytesDefault, memory: TableMemory = .heap) throws(DMError) {
        precondition(mapsMax > 0 && statusBytesMax > 0, "capacities must be positive")
        let fd = open(controlPath, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            throw DMError(map: "", operation: .open, errno: keel_errno(), detail: controlPath)
        }
        storage = Storage(fd: fd, mapsMax: mapsMax, statusBytesMax: statusBytesMax, memory: memory)
    }

    // MARK: - Control plane: registration

    /// Registers the dm name of `map`: preformats its ioctl header so `send` only adds the text.
    /// With `checkStatusFits` (the default) it also reads the map's status and table once and
    /// refuses (ENOSPC) a map whose text does not fit `statusBytesMax`: that is a configuration
    /// error, never a reason to grow. Throws ENXIO when no such map exists.
    public func register(map: MapHandle, name: String, checkStatusFits: Bool = true) throws(DMError) {
        try register(map: map, key: name, keyIsUUID: false, checkStatusFits: checkStatusFits)
    }

    /// Registers `map` by its dm uuid (`mpath-<wwid>`) instead of its name: survives a rename.
    public func register(map: MapHandle, uuid: String, checkStatusFits: Bool = true) throws(DMError) {
        try register(map: map, key: uuid, keyIsUUID: true, checkStatusFits: checkStatusFits)
    }

    /// Forgets `map`: later messages for it answer ENXIO without a syscall.
    public func unregister(map: MapHandle) {
        guard map.index < storage.mapsMax else { return }
        storage.registered[map.index] = false
    }

    /// Whether `map` is registered.
    public func isRegistered(_ map: MapHandle) -> Bool {
        map.index < storage.mapsMax && storage.registered[map.index]
    }

    private func register(map: MapHandle, key: String, keyIsUUID: Bool, checkStatusFits: Bool) throws(DMError) {
        guard map.index < storage.mapsMax else {
            throw DMError(map: key, operation: .register, errno: ENOSPC,
                          detail: "\(map) is past the messenger's \(storage.mapsMax) map slots")
        }
        let keyBytes = Array(key.utf8)
        let limit = Int(keyIsUUID ? KEEL_DM_UUID_LEN : KEEL_DM_NAME_LEN)
        guard !keyBytes.isEmpty, keyBytes.count < limit, !keyBytes.contains(0) else {
            throw DMError(map: key, operation: .register, errno: EINVAL,
                          detail: "a dm \(keyIsUUID ? "uuid" : "name") is 1 to \(limit - 1) bytes without NUL")
        }
        // Build the header in a scratch slot first, so a refused map never disturbs a live slot.
        let header = UnsafeMutableRawPointer.allocate(byteCount: Int(KEEL_DM_IOCTL_BYTES), alignment: 8)
        defer { header.deallocate() }
        header.initializeMemory(as: UInt8.self, repeating: 0, count: Int(KEEL_DM_IOCTL_BYTES))
        let io = header.assumingMemoryBound(to: dm_ioctl.self)
        io.pointee.version = (UInt32(KEEL_DM_REQUEST_VERSION_MAJOR), UInt32(KEEL_DM_REQUEST_VERSION_MINOR), 0)
        io.pointee.data_start = UInt32(KEEL_DM_DATA_START)
        let keyOffset = keyIsUUID ? DMLayout.uuidOffset : DMLayout.nameOffset
        keyBytes.withUnsafeBytes { (header + keyOffset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }

        if checkStatusFits {
            try DMMessenger.probe(header: header, fd: storage.fd, statusBytesMax: storage.statusBytesMax, key: key)
        }
        storage.memory.commitBytes(storage.headers(of: map.index), Int(KEEL_DM_IOCTL_BYTES))
        storage.headers(of: map.index).copyMemory(from: header, byteCount: Int(KEEL_DM_IOCTL_BYTES))
        storage.registered[map.index] = true
    }

    /// Reads status and table of the map `header` names into a scratch buffer of the recovery
    /// buffer's size; refuses a map whose text does not fit.
    private static func probe(header: UnsafeRawPointer, fd: Int32, statusBytesMax: Int, key: String) throws(DMError) {
        let bytes = Int(KEEL_DM_DATA_START) + statusBytesMax
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 8)
        defer { buffer.deallocate() }
        for flags in [UInt32(0), UInt32(KEEL_DM_STATUS_TABLE_FLAG)] {
            if case .failure(let error) = DMLayout.tableStatus(buffer: buffer, bufferBytes: bytes, header: header,
                                                                fd: fd, flags: flags) {
                let what = flags == 0 ? "status" : "table"
                let detail = error.errno == ENOSPC
                    ? "the map's \(what) text does not fit the \(statusBytesMax)-byte status buffer (raise statusBytesMax)"
                    : "reading the map's \(what) failed"
                throw DMError(map: key, operation: .register, errno: error.errno, detail: detail)
            }
        }
    }

    // MARK: - Recovery plane

    /// Sends `message` to its map (DM_TARGET_MSG, sector 0). Returns 0, or the errno: ENXIO for
    /// a map not registered or unknown to the kernel, EBUSY while the map is suspended, EINVAL
    /// for an argument the kernel (or the formatter: group 0) refuses. Allocates nothing.
    public mutating func send(_ message: DMMessage) -> Int32 {
        let index = message.map.index
        guard index < storage.mapsMax, storage.registered[index] else { return ENXIO }
        let buffer = storage.messageBuffer
        buffer.copyMemory(from: storage.headers(of: index), byteCount: Int(KEEL_DM_IOCTL_BYTES))
        let textStart = Int(KEEL_DM_DATA_START) + Int(KEEL_DM_TARGET_MSG_TEXT_OFFSET)
        let text = UnsafeMutableRawBufferPointer(start: buffer + textStart, count: DMMessenger.messageTextBytesMax)
        let length: Int
        do {
            length = try DMMessageText.format(message, into: text)
        } catch {
            return EINVAL  // a group number the kernel would refuse (0, past 1024)
        }
        // struct dm_target_msg: the 64-bit sector (0: multipath ignores it), then the text.
        (buffer + Int(KEEL_DM_DATA_START)).storeBytes(of: UInt64(0), as: UInt64.self)
        let io = buffer.assumingMemoryBound(to: dm_ioctl.self)
        io.pointee.data_size = UInt32(textStart + length + 1)
        io.pointee.flags = 0
        return DMLayout.ioctl(storage.fd, KEEL_DM_CMD_TARGET_MSG, io)
    }

    /// Reads the status text of `map` (DM_TABLE_STATUS, the info kind that `dmsetup status`
    /// prints after `multipath`) into the preallocated buffer. The bytes are valid until the next
    /// `readStatus` / `readTable` call. Fails with ENXIO for an unregistered or unknown map,
    /// ENODATA for a map without a live table, ENOSPC when the text did not fit. Allocates nothing.
    ///
    /// Returns a `Result` rather than throwing: nothing is thrown across a call on the recovery
    /// plane, so no error hook (a debugger's, a test runner's) can box the error on the way.
    public func readStatus(map: MapHandle) -> Result<UnsafeRawBufferPointer, SystemError> {
        read(map: map, flags: 0)
    }

    /// Reads the live table text of `map` (DM_TABLE_STATUS with DM_STATUS_TABLE_FLAG), as
    /// `readStatus` does.
    public func readTable(map: MapHandle) -> Result<UnsafeRawBufferPointer, SystemError> {
        read(map: map, flags: UInt32(KEEL_DM_STATUS_TABLE_FLAG))
    }

    private func read(map: MapHandle, flags: UInt32) -> Result<UnsafeRawBufferPointer, SystemError> {
        let index = map.index
        guard index < storage.mapsMax, storage.registered[index] else {
            return .failure(SystemError("ioctl(DM_TABLE_STATUS)", errno: ENXIO))
        }
        return DMLayout.tableStatus(buffer: storage.statusBuffer, bufferBytes: storage.statusBufferBytes,
                                    header: storage.headers(of: index), fd: storage.fd, flags: flags)
    }

    // MARK: - Storage

    /// The arena: the descriptor, the two ioctl buffers and the per-map headers.
    @usableFromInline final class Storage {
        let fd: Int32
        let mapsMax: Int
        let statusBytesMax: Int
        let statusBufferBytes: Int
        /// One `struct dm_ioctl` per map slot, preformatted by `register`.
        let headerArena: UnsafeMutableRawPointer
        let registered: UnsafeMutableBufferPointer<Bool>
        let messageBuffer: UnsafeMutableRawPointer
        let statusBuffer: UnsafeMutableRawPointer

        let memory: TableMemory

        init(fd: Int32, mapsMax: Int, statusBytesMax: Int, memory: TableMemory) {
            self.fd = fd
            self.mapsMax = mapsMax
            self.statusBytesMax = statusBytesMax
            self.memory = memory
            statusBufferBytes = Int(KEEL_DM_DATA_START) + statusBytesMax
            headerArena = memory.reserveBytes(Int(KEEL_DM_IOCTL_BYTES) * mapsMax)
            registered = .allocate(capacity: mapsMax)
            registered.initialize(repeating: false)
            let messageBytes = DMMessenger.messageBufferBytes
            messageBuffer = .allocate(byteCount: messageBytes, alignment: 64)
            messageBuffer.initializeMemory(as: UInt8.self, repeating: 0, count: messageBytes)
            statusBuffer = .allocate(byteCount: statusBufferBytes, alignment: 64)
            // Zeroing writes every page now, so the recovery thread never faults one in.
            statusBuffer.initializeMemory(as: UInt8.self, repeating: 0, count: statusBufferBytes)
        }

        func headers(of index: Int) -> UnsafeMutableRawPointer {
            headerArena + index * Int(KEEL_DM_IOCTL_BYTES)
        }

        deinit {
            close(fd)
            memory.releaseBytes(headerArena, Int(KEEL_DM_IOCTL_BYTES) * mapsMax)
            registered.deallocate()
            messageBuffer.deallocate()
            statusBuffer.deallocate()
        }
    }

    /// The size of the message ioctl buffer: header, `struct dm_target_msg`, the text.
    public static var messageBufferBytes: Int {
        Int(KEEL_DM_DATA_START) + Int(KEEL_DM_TARGET_MSG_TEXT_OFFSET) + messageTextBytesMax
    }

    /// The message ioctl buffer as the last `send` left it: a `struct dm_ioctl` followed by the
    /// `struct dm_target_msg`. For checking the layout against the kernel's reading of it.
    public var lastMessageBuffer: UnsafeRawPointer { UnsafeRawPointer(storage.messageBuffer) }
}

/// Offsets in `struct dm_ioctl` and the status read shared by the recovery read and the probe.
enum DMLayout {
    static let nameOffset = MemoryLayout<dm_ioctl>.offset(of: \dm_ioctl.name)!
    static let uuidOffset = MemoryLayout<dm_ioctl>.offset(of: \dm_ioctl.uuid)!

    /// One dm ioctl, retrying EINTR: 0 or the errno. The recovery plane's variant of `systemCall`
    /// that never throws: measured under the test runner, a status read whose error went through
    /// `systemCall` and out as a Result made one malloc per failure; this path makes none.
    @inline(__always)
    static func ioctl(_ fd: Int32, _ command: keel_dm_command, _ io: UnsafeMutablePointer<dm_ioctl>) -> Int32 {
        while true {
            if keel_dm_ioctl(fd, command, io) >= 0 { return 0 }
            let errno = keel_errno()
            if errno != EINTR { return errno }
        }
    }

    /// Runs DM_TABLE_STATUS for the map `header` names into `buffer` and returns the first
    /// target's text. Zero allocation; the syscall's error is caught here, never thrown on.
    static func tableStatus(buffer: UnsafeMutableRawPointer, bufferBytes: Int, header: UnsafeRawPointer,
                            fd: Int32, flags: UInt32) -> Result<UnsafeRawBufferPointer, SystemError> {
        buffer.copyMemory(from: header, byteCount: Int(KEEL_DM_IOCTL_BYTES))
        let io = buffer.assumingMemoryBound(to: dm_ioctl.self)
        io.pointee.data_size = UInt32(bufferBytes)
        io.pointee.data_start = UInt32(KEEL_DM_DATA_START)
        io.pointee.flags = flags
        let errno = DMLayout.ioctl(fd, KEEL_DM_CMD_TABLE_STATUS, io)
        if errno != 0 { return .failure(SystemError("ioctl(DM_TABLE_STATUS)", errno: errno)) }
        // Truncated text is refused, never parsed: the caller's buffer was sized at register.
        if io.pointee.flags & UInt32(KEEL_DM_BUFFER_FULL_FLAG) != 0 {
            return .failure(SystemError("ioctl(DM_TABLE_STATUS)", errno: ENOSPC))
        }
        guard io.pointee.target_count >= 1 else { return .failure(SystemError("ioctl(DM_TABLE_STATUS)", errno: ENODATA)) }
        let specStart = Int(io.pointee.data_start)
        let end = min(Int(io.pointee.data_size), bufferBytes)
        let textStart = specStart + Int(KEEL_DM_TARGET_SPEC_BYTES)
        guard textStart <= end else { return .failure(SystemError("ioctl(DM_TABLE_STATUS)", errno: EPROTO)) }
        // The text ends at its NUL; the kernel's table text may carry one trailing space.
        var length = 0
        while textStart + length < end, buffer.load(fromByteOffset: textStart + length, as: UInt8.self) != 0 {
            length += 1
        }
        while length > 0, buffer.load(fromByteOffset: textStart + length - 1, as: UInt8.self) == 0x20 {
            length -= 1
        }
        return .success(UnsafeRawBufferPointer(start: buffer + textStart, count: length))
    }
}
