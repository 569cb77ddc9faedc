// KernelUevent: kernel uevent datagrams read without libudev, block disks kept, the rest skipped.
import KeelCore
@testable import KeelLinux
import Testing

/// A datagram as the kernel sends it: "ACTION@DEVPATH", then each field and a NUL.
private func datagram(_ header: String, _ fields: [String]) -> [UInt8] {
    var bytes = Array(header.utf8) + [0]
    for field in fields { bytes += Array(field.utf8) + [0] }
    return bytes
}

@Suite struct KernelUeventTests {
    private let diskFields = ["ACTION=add", "DEVPATH=/devices/pseudo_0/adapter0/host2/target2:0:0/2:0:0:5/block/sdq",
                              "SUBSYSTEM=block", "MAJOR=65", "MINOR=0", "DEVNAME=sdq", "DEVTYPE=disk", "DISKSEQ=20", "SEQNUM=4711"]

    @Test func aBlockDiskBecomesARecord() throws {
        let event = KernelUevent.parse(datagram("add@/devices/pseudo_0/adapter0/host2/target2:0:0/2:0:0:5/block/sdq", diskFields))
        guard case .disk(let record) = event else { Issue.record("\(event)"); return }
        #expect(record.action == .add && record.kernelName.description == "sdq")
        #expect(record.device == DevNo(major: 65, minor: 0) && record.sequence == 4711)
    }

    @Test func otherSubsystemsAndPartitionsAreSkipped() {
        let scsiDevice = ["ACTION=add", "DEVPATH=/devices/pseudo_0/adapter0/host2/target2:0:0/2:0:0:5", "SUBSYSTEM=scsi",
                          "DEVTYPE=scsi_device", "SEQNUM=4700"]
        #expect(KernelUevent.parse(datagram("add@/devices/pseudo_0/adapter0/host2/target2:0:0/2:0:0:5", scsiDevice)) == .other)
        let partition = diskFields.map { $0 == "DEVTYPE=disk" ? "DEVTYPE=partition" : $0 }
        #expect(KernelUevent.parse(datagram("add@/block/sdq/sdq1", partition)) == .other)
        // Prefixes are not matches: SUBSYSTEM=blockx, DEVTYPE=disks.
        #expect(KernelUevent.parse(datagram("add@/x", diskFields.map { $0 == "SUBSYSTEM=block" ? "SUBSYSTEM=blockx" : $0 })) == .other)
        #expect(KernelUevent.parse(datagram("add@/x", diskFields.map { $0 == "DEVTYPE=disk" ? "DEVTYPE=disks" : $0 })) == .other)
    }

    @Test func whatIsNotAUeventIsMalformedAndNeverACrash() {
        #expect(KernelUevent.parse([]) == .malformed)
        #expect(KernelUevent.parse(Array("libudev".utf8) + [0] + Array("SUBSYSTEM=block".utf8)) == .malformed, "udevd's framing has no @ header")
        #expect(KernelUevent.parse(datagram("add@/x", diskFields.filter { !$0.hasPrefix("DEVPATH=") })) == .malformed)
        // No NUL at all, a field without "=", a last field without its NUL.
        #expect(KernelUevent.parse(Array("add@/block/sdq".utf8)) == .malformed)
        let ragged = datagram("change@/block/sdq", ["garbage", "SUBSYSTEM=block", "DEVTYPE=disk", "ACTION=change"])
            + Array("DEVPATH=/block/sdq".utf8)
        guard case .disk(let record) = KernelUevent.parse(ragged) else { Issue.record("ragged"); return }
        #expect(record.action == .change && record.kernelName.description == "sdq")
    }

    @Test func aDatagramIsReadNoFurtherThanTheLongestTaken() {
        var long = datagram("add@/block/sdq", ["ACTION=add", "DEVPATH=/block/sdq"])
        long += [UInt8](repeating: UInt8(ascii: "x"), count: KernelUevent.bytesMax)
        long += Array("SUBSYSTEM=block".utf8) + [0] + Array("DEVTYPE=disk".utf8) + [0]
        #expect(KernelUevent.parse(long) == .other, "fields past bytesMax are not read")
    }
}
