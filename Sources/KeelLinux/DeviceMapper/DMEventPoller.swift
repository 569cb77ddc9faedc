// One poller for the events of every dm map: DM_DEV_ARM_POLL, poll(), then DM_LIST_DEVICES to see which changed.
import Glibc
import CKeelShim
import KeelCore

/// What happened to one map between two listings.
public struct MapEventChange: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The map was not in the previous listing.
        case added
        /// The map's event number grew (a target event: a path failed, a table was swapped).
        case changed
        /// The map is gone; `eventNumber` is the last one seen.
        case removed
    }

    public var name: String
    public var uuid: String
    public var eventNumber: UInt32
    public var kind: Kind

    public init(name: String, uuid: String, eventNumber: UInt32, kind: Kind) {
        self.name = name
        self.uuid = uuid
        self.eventNumber = eventNumber
        self.kind = kind
    }

    public var description: String { "\(name) \(kind) event \(eventNumber)" }
}

/// Watches every dm map with one descriptor (kernel interface 4.37+): arm the descriptor with
/// DM_DEV_ARM_POLL, wait in poll() for POLLIN (the kernel's global dm event counter moved), then
/// list all devices with their event numbers and compare with the previous listing. No thread
/// per map, no DM_DEV_WAIT per map, no polling on a timer.
///
/// Control plane: listing allocates. The listing buffer grows when the kernel says it is full.
public final class DMEventPoller {
    /// Only devices whose uuid starts with this are reported (`mpath-`); nil for every device.
    public let uuidPrefix: String?
    /// The control descriptor, for a caller who waits in its own poll/epoll set (POLLIN).
    public let fileDescriptor: Int32
    private var buffer: UnsafeMutableRawPointer
    private var bufferBytes: Int
    private var diff = DMListingDiff()

    /// Opens `controlPath`, arms it and takes the first listing as the baseline: the first
    /// `waitForEvents` reports what changed after this init.
    public init(controlPath: String = "/dev/mapper/control",
                uuidPrefix: String? = DMControl.multipathUUIDPrefix, listBytes: Int = 16 * 1024) throws(DMError) {
        let fd = open(controlPath, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw DMError(map: "", operation: .open, errno: keel_errno(), detail: controlPath) }
        fileDescriptor = fd
        self.uuidPrefix = uuidPrefix
        bufferBytes = max(listBytes, Int(KEEL_DM_DATA_START) + 1024)
        buffer = .allocate(byteCount: bufferBytes, alignment: 8)
        // Every stored property is set: if these throw, deinit closes the descriptor and frees the buffer.
        try arm()
        _ = diff.update(try listDevices())
    }

    deinit {
        close(fileDescriptor)
        buffer.deallocate()
    }

    /// DM_DEV_ARM_POLL: remembers the kernel's current global event number on this descriptor;
    /// poll() reports POLLIN once it moves on.
    public func arm() throws(DMError) {
        let io = header(flags: 0)
        do {
            _ = try systemCall("ioctl(DM_DEV_ARM_POLL)") { keel_dm_ioctl(fileDescriptor, KEEL_DM_CMD_DEV_ARM_POLL, io) }
        } catch {
            throw DMError(map: "", operation: .armPoll, errno: error.errno)
        }
    }

    /// DM_LIST_DEVICES with uuids (DM_UUID_FLAG): every device with its device number and event
    /// number (read after the name, kernel 4.37+), filtered by `uuidPrefix`. A device the kernel
    /// lists without uuid information (kernels before 4.46) has an empty uuid and passes only
    /// a nil prefix.
    public func listDevices() throws(DMError) -> [DMMapInfo] {
        while true {
            let io = header(flags: UInt32(KEEL_DM_UUID_FLAG))
            do {
                _ = try systemCall("ioctl(DM_LIST_DEVICES)") { keel_dm_ioctl(fileDescriptor, KEEL_DM_CMD_LIST_DEVICES, io) }
            } catch {
                throw DMError(map: "", operation: .list, errno: error.errno)
            }
            if io.pointee.flags & UInt32(KEEL_DM_BUFFER_FULL_FLAG) != 0 {
                grow()
                continue
            }
            return parseList(start: Int(io.pointee.data_start), end: min(Int(io.pointee.data_size), bufferBytes))
        }
    }

    /// Waits up to `timeoutMs` (-1: forever) for a dm event, then reports the maps that were
    /// added, changed (event number grew) or removed since the previous listing. Returns an
    /// empty array on timeout, and may return one when the event concerned a device outside
    /// `uuidPrefix`. Re-arms before listing, so an event during the listing wakes the next wait.
    public func waitForEvents(timeoutMs: Int32) throws(DMError) -> [MapEventChange] {
        var pfd = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        let ready: Int32
        do {
            ready = try systemCall("poll") { poll(&pfd, 1, timeoutMs) }
        } catch {
            throw DMError(map: "", operation: .poll, errno: error.errno)
        }
        guard ready > 0 else { return [] }
        if pfd.revents & Int16(POLLERR | POLLNVAL) != 0 {
            throw DMError(map: "", operation: .poll, errno: EIO, detail: "poll reported an error on the control descriptor")
        }
        try arm()
        return changes(to: try listDevices())
    }

    /// Compares `listing` with the previous one, remembers it, and returns the differences.
    public func changes(to listing: [DMMapInfo]) -> [MapEventChange] {
        diff.update(listing)
    }

    private func header(flags: UInt32) -> UnsafeMutablePointer<dm_ioctl> {
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: Int(KEEL_DM_IOCTL_BYTES))
        let io = buffer.assumingMemoryBound(to: dm_ioctl.self)
        io.pointee.version = (UInt32(KEEL_DM_REQUEST_VERSION_MAJOR), UInt32(KEEL_DM_REQUEST_VERSION_MINOR), 0)
        io.pointee.data_size = UInt32(bufferBytes)
        io.pointee.data_start = UInt32(KEEL_DM_DATA_START)
        io.pointee.flags = flags
        return io
    }

    private func grow() {
        let bigger = bufferBytes * 2
        buffer.deallocate()
        buffer = .allocate(byteCount: bigger, alignment: 8)
        bufferBytes = bigger
    }

    /// Walks `struct dm_name_list` records: dev, next, name, then (8-aligned) event_nr and flags,
    /// then (8-aligned) the uuid when flags has DM_NAME_LIST_FLAG_HAS_UUID.
    private func parseList(start: Int, end: Int) -> [DMMapInfo] {
        var maps: [DMMapInfo] = []
        var at = start
        while at + Int(KEEL_DM_NAME_LIST_NAME_OFFSET) < end {
            let dev = buffer.loadUnaligned(fromByteOffset: at, as: UInt64.self)
            if dev == 0 { break }  // the kernel's "no devices"
            let next = Int(buffer.loadUnaligned(fromByteOffset: at + Int(KEEL_DM_NAME_LIST_NEXT_OFFSET), as: UInt32.self))
            let nameStart = at + Int(KEEL_DM_NAME_LIST_NAME_OFFSET)
            let nameEnd = terminator(from: nameStart, end: end)
            let name = string(from: nameStart, to: nameEnd)
            let trailer = align8(nameEnd + 1)
            var eventNumber: UInt32 = 0
            var uuid = ""
            if trailer + 8 <= end {
                eventNumber = buffer.loadUnaligned(fromByteOffset: trailer, as: UInt32.self)
                let flags = buffer.loadUnaligned(fromByteOffset: trailer + 4, as: UInt32.self)
                if flags & UInt32(KEEL_DM_NAME_LIST_FLAG_HAS_UUID) != 0 {
                    let uuidStart = align8(trailer + 8)
                    uuid = string(from: uuidStart, to: terminator(from: uuidStart, end: end))
                }
            }
            if uuidPrefix.map({ uuid.hasPrefix($0) }) ?? true {
                maps.append(DMMapInfo(name: name, uuid: uuid, device: DMEventPoller.decodeDevice(dev), eventNumber: eventNumber))
            }
            if next == 0 { break }
            at += next
        }
        return maps
    }

    /// Decodes a device number as the kernel encodes it in dm ioctls (huge_encode_dev: minor
    /// bits 0-7 and 20-31, major bits 8-19).
    public static func decodeDevice(_ dev: UInt64) -> DevNo {
        DevNo(major: UInt32(truncatingIfNeeded: (dev & 0xfff00) >> 8),
              minor: UInt32(truncatingIfNeeded: (dev & 0xff) | ((dev >> 12) & 0xfff00)))
    }

    private func align8(_ offset: Int) -> Int { (offset + 7) & ~7 }

    private func terminator(from start: Int, end: Int) -> Int {
        var i = start
        while i < end, buffer.load(fromByteOffset: i, as: UInt8.self) != 0 { i += 1 }
        return i
    }

    private func string(from start: Int, to end: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(start: buffer + start, count: max(0, end - start)), as: UTF8.self)
    }
}

/// The difference between successive device listings: which maps were added, changed their
/// event number, or went away. The poller's bookkeeping, separate so it can be tested alone.
public struct DMListingDiff: Sendable {
    private var known: [String: DMMapInfo] = [:]

    /// An empty baseline: the first `update` reports every listed map as added.
    public init() {}

    /// Remembers `listing` and returns how it differs from the previous one.
    public mutating func update(_ listing: [DMMapInfo]) -> [MapEventChange] {
        var result: [MapEventChange] = []
        var next: [String: DMMapInfo] = [:]
        next.reserveCapacity(listing.count)
        for map in listing {
            next[map.name] = map
            if let old = known[map.name], old.uuid == map.uuid, old.device == map.device {
                if map.eventNumber != old.eventNumber {
                    result.append(MapEventChange(name: map.name, uuid: map.uuid, eventNumber: map.eventNumber, kind: .changed))
                }
            } else {
                if let old = known[map.name] {
                    // Same name, another device: the old one went away in between.
                    result.append(MapEventChange(name: old.name, uuid: old.uuid, eventNumber: old.eventNumber, kind: .removed))
                }
                result.append(MapEventChange(name: map.name, uuid: map.uuid, eventNumber: map.eventNumber, kind: .added))
            }
        }
        for (name, old) in known.sorted(by: { $0.key < $1.key }) where next[name] == nil {
            result.append(MapEventChange(name: name, uuid: old.uuid, eventNumber: old.eventNumber, kind: .removed))
        }
        known = next
        return result
    }
}
