// Zero-allocation proof for the device-mapper recovery plane: message formatting plus the ioctl, and status reads.
import Testing
import Glibc
import KeelCore
import KeelLinux

/// The control node when this kernel has device-mapper, else /dev/null (every ioctl then fails
/// with ENOTTY at once; the Swift path up to the syscall is the same).
private let controlPath = access("/sys/class/misc/device-mapper", F_OK) == 0 ? "/dev/mapper/control" : "/dev/null"

@Suite(.serialized) struct DeviceMapperAllocationTests {
    @Test func sendingMessagesAllocatesNothing() throws {
        var messenger = try DMMessenger(controlPath: controlPath, mapsMax: 8)
        // No such map in the kernel: the ioctl fails with ENXIO (or ENOTTY on /dev/null), fast.
        for map in 0..<8 {
            try messenger.register(map: MapHandle(UInt32(map)), name: "keel-alloc-\(map)", checkStatusFits: false)
        }
        let kinds = DMMessageKind.allCases
        var step = 0
        var failures = 0
        let mallocs = mallocCount(iterations: 1_000_000) {
            step &+= 1
            let message = DMMessage(map: MapHandle(UInt32(step & 7)), kind: kinds[step % kinds.count],
                                    device: DevNo(major: 8, minor: UInt32(step & 0xffff)), group: UInt16(1 + step % 4))
            if messenger.send(message) != 0 { failures += 1 }
        }
        #expect(mallocs == 0)
        // Every send reached the kernel and was refused there, not before.
        #expect(failures == 1_000_001)
    }

    @Test func readingStatusAllocatesNothing() throws {
        let messenger = try DMMessenger(controlPath: controlPath, mapsMax: 1)
        try messenger.register(map: MapHandle(0), name: "keel-alloc-status", checkStatusFits: false)
        var refused = 0
        let mallocs = mallocCount(iterations: 1_000_000) {
            if case .failure(let error) = messenger.readStatus(map: MapHandle(0)),
               error.errno == ENXIO || error.errno == ENOTTY {
                refused += 1
            }
        }
        #expect(mallocs == 0)
        #expect(refused == 1_000_001)
    }
}
