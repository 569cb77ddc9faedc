// Creating a batch of new maps in the kernel from several threads: raw dm ioctls (libdevmapper
// keeps process-wide state and is not thread-safe), then libdevmapper's own node making.
import Glibc
import CDeviceMapper
import CKeelShim
import KeelCore

/// One device to create, as `DMControl.createMultipathMap` takes it.
public struct DMCreateJob: Sendable, Equatable {
    public var name: String
    /// The dm uuid (`mpath-<wwid>`).
    public var uuid: String
    public var lengthSectors: UInt64
    /// The `multipath` target's table params.
    public var params: String

    public init(name: String, uuid: String, lengthSectors: UInt64, params: String) {
        self.name = name
        self.uuid = uuid
        self.lengthSectors = lengthSectors
        self.params = params
    }
}

/// Creates new multipath maps several at a time. The kernel builds a request-based map (its disk,
/// its queue, the table's devices) in a few milliseconds of CPU, and builds several at once: in the
/// VM (2 CPUs, 256 one-path maps) one thread took 6.7-9.9 ms a map, two 3.5-4.2 ms.
/// Control plane only (the events thread waits for the batch).
public enum DMCreate {
    /// The fewest new maps worth creating this way; the daemon sends smaller batches through
    /// libdevmapper one map at a time.
    public static let threadedBatchMin = 8

    /// Creates every job's device (create, load, resume) on up to `threads` threads, each with its
    /// own descriptor of `controlPath` and buffers, then has libdevmapper make the `/dev/mapper`
    /// node of each device it created. Returns, in the jobs' order, nil for a device now live or
    /// the error (a device whose load or resume failed is removed again).
    public static func createAll(_ jobs: [DMCreateJob], threads: Int, controlPath: String = "/dev/mapper/control") -> [DMError?] {
        let errors = ScratchThread.stridedMap(count: jobs.count, slices: threads, name: "keel-dm-create", stackBytes: 128 * 1024) {
            indices -> [DMError?] in
            let fd = open(controlPath, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else {
                let e = errno
                return indices.map { DMError(map: jobs[$0].name, operation: .create, errno: e, detail: controlPath) }
            }
            defer { close(fd) }
            return indices.map { create(jobs[$0], fd: fd) }
        }
        makeNodes(zip(jobs, errors).compactMap { $0.1 == nil ? $0.0.name : nil })
        return errors
    }

    /// One job on `fd`, with a buffer sized for its params.
    static func create(_ job: DMCreateJob, fd: Int32) -> DMError? {
        let capacity = (Int(KEEL_DM_DATA_START) + Int(KEEL_DM_TARGET_SPEC_BYTES) + job.params.utf8.count + 1 + 7) & ~7
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
        defer { buffer.deallocate() }
        var dev: UInt64 = 0
        var stage: Int32 = 0
        let e = keel_dm_create_device(fd, job.name, job.uuid, job.lengthSectors, "multipath", job.params, buffer, capacity, &dev, &stage)
        guard e != 0 else { return nil }
        let step = stage == 1 ? "create" : stage == 2 ? "table load" : "resume"
        return DMError(map: job.name, operation: .create, errno: e, detail: "\(step) refused")
    }

    /// libdevmapper's nodes for the devices (`/dev/mapper/<name>`, its mode and owner), as a
    /// create through libdevmapper makes them.
    static func makeNodes(_ names: [String]) {
        guard !names.isEmpty else { return }
        for name in names {
            keel_dm_log_clear()
            _ = dm_mknodes(name)
        }
        dm_task_update_nodes()
    }
}
