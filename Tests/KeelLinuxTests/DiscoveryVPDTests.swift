// VPD page 0x83/0x80 parsing against hand-built pages, including malformed and truncated ones.
import Testing
@testable import KeelLinux

/// Builders for VPD pages.
enum VPDBytes {
    /// One identification descriptor.
    static func designator(type: UInt8, association: UInt8 = 0, codeSet: UInt8 = 1, protocolId: UInt8 = 0, piv: Bool = false,
                           _ identifier: [UInt8]) -> [UInt8] {
        [protocolId << 4 | codeSet, (piv ? 0x80 : 0) | association << 4 | type, 0, UInt8(identifier.count)] + identifier
    }

    static func ascii(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// A page 0x83 holding `designators`, with the correct length.
    static func page83(_ designators: [[UInt8]]) -> [UInt8] {
        let body = designators.flatMap { $0 }
        return [0, 0x83, UInt8(body.count >> 8), UInt8(body.count & 0xff)] + body
    }

    /// A page 0x80 holding `serial`.
    static func page80(_ serial: String) -> [UInt8] {
        let body = ascii(serial)
        return [0, 0x80, 0, UInt8(body.count)] + body
    }

    /// The page scsi_debug builds with `vpd_use_hostno=0` for LUN 0 behind host `host`
    /// (drivers/scsi/scsi_debug.c `inquiry_vpd_83`).
    static func scsiDebugPage83(host: Int) -> [UInt8] {
        let portGroup = UInt16((host + 1) & 0x7f) << 8
        return page83([
            designator(type: 0x1, codeSet: 2, ascii("Linux   ") + ascii("scsi_debug      ") + ascii("2000")),
            designator(type: 0x3, [0x33, 0x33, 0x33, 0x30, 0x00, 0x00, 0x07, 0xd0]),
            designator(type: 0x4, association: 1, codeSet: 1, protocolId: 6, piv: true, [0, 0, 0, 1]),
            designator(type: 0x3, association: 1, codeSet: 1, protocolId: 6, piv: true, [0x52, 0x22, 0x22, 0x20, 0, 0, 0x07, 0xce]),
            designator(type: 0x5, association: 1, codeSet: 1, protocolId: 6, piv: true, [0, 0, UInt8(portGroup >> 8), UInt8(portGroup & 0xff)]),
            designator(type: 0x3, association: 2, codeSet: 1, protocolId: 6, piv: true, [0x52, 0x22, 0x22, 0x20, 0, 0, 0x07, 0xcd]),
            designator(type: 0x8, association: 2, codeSet: 3, protocolId: 6, piv: true, ascii("naa.52222220000007CD") + [0, 0, 0, 0]),
        ])
    }
}

@Suite("VPD page 0x83 and 0x80 parsing")
struct DiscoveryVPDTests {
    let naaRegisteredExtended: [UInt8] = [0x60, 0x0a, 0x09, 0x80, 0x38, 0x30, 0x44, 0x31, 0x2d, 0x3f, 0x4a, 0x2b, 0x5a, 0x68, 0x6f, 0x7e]

    @Test func naaRegisteredExtendedGivesThreePlusLowercaseHex() throws {
        let page = VPDBytes.page83([VPDBytes.designator(type: 0x3, naaRegisteredExtended)])
        #expect(try VPDPage83.wwid(fromPage: page) == "3600a098038304431" + "2d3f4a2b5a686f7e")
    }

    @Test func eui64GivesTwoPlusHex() throws {
        let page = VPDBytes.page83([VPDBytes.designator(type: 0x2, [0x00, 0x25, 0x38, 0xAB, 0x71, 0xB0, 0x3C, 0x21])])
        #expect(try VPDPage83.wwid(fromPage: page) == "2002538ab71b03c21")
    }

    @Test func t10VendorIdSquashesSpaceRunsToUnderscores() throws {
        let page = VPDBytes.page83([VPDBytes.designator(type: 0x1, codeSet: 2, VPDBytes.ascii("IBM     2145            00c02001    "))])
        #expect(try VPDPage83.wwid(fromPage: page) == "1IBM_2145_00c02001")
    }

    @Test func t10LeadingSpacesBecomeOneUnderscore() throws {
        let page = VPDBytes.page83([VPDBytes.designator(type: 0x1, codeSet: 2, VPDBytes.ascii("   VENDOR1 X"))])
        #expect(try VPDPage83.wwid(fromPage: page) == "1_VENDOR1_X")
    }

    @Test func scsiDebugPicksT10OverLocallyAssignedNAA() throws {
        #expect(try VPDPage83.wwid(fromPage: VPDBytes.scsiDebugPage83(host: 0)) == "1Linux_scsi_debug_2000")
    }

    @Test func locallyAssignedNAAAloneIsStillAWWID() throws {
        let page = VPDBytes.page83([VPDBytes.designator(type: 0x3, [0x33, 0x33, 0x33, 0x30, 0, 0, 0x07, 0xd0])])
        #expect(try VPDPage83.wwid(fromPage: page) == "333333330000007d0")
    }

    @Test func naaRegisteredBeatsEUI64WhateverTheOrder() throws {
        let eui = VPDBytes.designator(type: 0x2, [1, 2, 3, 4, 5, 6, 7, 8])
        let naa = VPDBytes.designator(type: 0x3, [0x50, 0x01, 0x43, 0x80, 0x12, 0x34, 0x56, 0x78])
        #expect(try VPDPage83.wwid(fromPage: VPDBytes.page83([eui, naa])) == "35001438012345678")
        #expect(try VPDPage83.wwid(fromPage: VPDBytes.page83([naa, eui])) == "35001438012345678")
    }

    @Test func firstOfTwoEqualRankDesignatorsWins() throws {
        let a = VPDBytes.designator(type: 0x2, [1, 1, 1, 1, 1, 1, 1, 1])
        let b = VPDBytes.designator(type: 0x2, [2, 2, 2, 2, 2, 2, 2, 2])
        #expect(try VPDPage83.wwid(fromPage: VPDBytes.page83([a, b])) == "20101010101010101")
    }

    @Test func targetPortDesignatorsNeverBecomeTheWWID() throws {
        let port = VPDBytes.designator(type: 0x3, association: 1, naaRegisteredExtended)
        let lun = VPDBytes.designator(type: 0x1, codeSet: 2, VPDBytes.ascii("VENDOR  LUN0"))
        #expect(try VPDPage83.wwid(fromPage: VPDBytes.page83([port, lun])) == "1VENDOR_LUN0")
    }

    @Test func scsiNameStringNAAIsLowercasedWithTypeThree() throws {
        let page = VPDBytes.page83([VPDBytes.designator(type: 0x8, codeSet: 3, VPDBytes.ascii("naa.600A0980383044312D3F4A2B") + [0, 0, 0, 0])])
        #expect(try VPDPage83.wwid(fromPage: page) == "3600a0980383044312d3f4a2b")
    }

    @Test func scsiNameStringIQNKeepsCaseAndDropsThePrefix() throws {
        let page = VPDBytes.page83([VPDBytes.designator(type: 0x8, codeSet: 3, VPDBytes.ascii("iqn.2003-01.org.Linux:Tgt,t,0x1"))])
        #expect(try VPDPage83.wwid(fromPage: page) == "82003-01.org.Linux:Tgt,t,0x1")
    }

    @Test func designatorRunningPastThePageIsAnOverflowError() {
        var page = VPDBytes.page83([VPDBytes.designator(type: 0x2, [1, 2, 3, 4, 5, 6, 7, 8])])
        page.removeLast(3)
        page[3] = UInt8(page.count - 4)
        #expect(throws: VPDError.designatorOverflow(offset: 4)) { try VPDPage83.wwid(fromPage: page) }
    }

    @Test func validDesignatorBeforeAnOverflowIsStillUsed() throws {
        var page = VPDBytes.page83([
            VPDBytes.designator(type: 0x1, codeSet: 2, VPDBytes.ascii("VENDOR  PRODUCT1")),
            VPDBytes.designator(type: 0x3, naaRegisteredExtended),
        ])
        page.removeLast(5)
        page[3] = UInt8(page.count - 4)
        #expect(try VPDPage83.wwid(fromPage: page) == "1VENDOR_PRODUCT1")
    }

    @Test func headerClaimingMoreThanTheBytesReadParsesWhatIsThere() throws {
        var page = VPDBytes.page83([VPDBytes.designator(type: 0x2, [9, 9, 9, 9, 9, 9, 9, 9])])
        page[2] = 0x0f
        #expect(try VPDPage83.wwid(fromPage: page) == "20909090909090909")
    }

    @Test func pageShorterThanItsHeaderIsAnError() {
        #expect(throws: VPDError.pageTooShort(lengthBytes: 3)) { try VPDPage83.wwid(fromPage: [0, 0x83, 0]) }
        #expect(throws: VPDError.pageTooShort(lengthBytes: 0)) { try VPDPage83.wwid(fromPage: []) }
    }

    @Test func pageWithAnotherPageCodeIsAnError() {
        #expect(throws: VPDError.wrongPage(expected: 0x83, found: 0x80)) { try VPDPage83.wwid(fromPage: VPDBytes.page80("ABC")) }
    }

    @Test func malformedNAALengthWithNothingElseIsInvalid() {
        let page = VPDBytes.page83([VPDBytes.designator(type: 0x3, [0x60, 1, 2, 3, 4, 5, 6, 7])])
        #expect(throws: VPDError.invalidDesignator(offset: 4)) { try VPDPage83.wwid(fromPage: page) }
    }

    @Test func shortT10DesignatorIsInvalid() {
        let page = VPDBytes.page83([VPDBytes.designator(type: 0x1, codeSet: 2, VPDBytes.ascii("SHORT"))])
        #expect(throws: VPDError.invalidDesignator(offset: 4)) { try VPDPage83.wwid(fromPage: page) }
    }

    @Test func pageWithOnlyVendorSpecificDesignatorsHasNoWWID() {
        let page = VPDBytes.page83([VPDBytes.designator(type: 0x0, [1, 2, 3])])
        #expect(throws: VPDError.noLogicalUnitDesignator) { try VPDPage83.wwid(fromPage: page) }
    }

    @Test func emptyPageHasNoWWID() {
        #expect(throws: VPDError.noLogicalUnitDesignator) { try VPDPage83.wwid(fromPage: [0, 0x83, 0, 0]) }
    }

    @Test func overlongDesignatorIsCutTo127Characters() throws {
        let text = VPDBytes.ascii(String(repeating: "A", count: 200))
        let page = VPDBytes.page83([VPDBytes.designator(type: 0x1, codeSet: 2, text)])
        let wwid = try VPDPage83.wwid(fromPage: page)
        #expect(wwid.count == 127)
        #expect(wwid.hasPrefix("1AAAA"))
    }

    @Test func randomPagesNeverCrash() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt8 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
        var parsed = 0
        for _ in 0..<5000 {
            let count = Int(next()) % 80
            var page = (0..<count).map { _ in next() }
            if page.count > 1 { page[1] = 0x83 }
            if (try? VPDPage83.wwid(fromPage: page)) != nil { parsed += 1 }
            _ = VPDPage83.targetPortGroup(in: page)
            _ = VPDPage83.targetDeviceName(in: page)
            _ = try? VPDPage80.serial(fromPage: page)
        }
        #expect(parsed < 5000)
    }

    @Test func targetPortGroupAndRelativePortComeFromTypesFiveAndFour() {
        let page = VPDBytes.scsiDebugPage83(host: 2)
        #expect(VPDPage83.targetPortGroup(in: page) == 0x0300)
        #expect(VPDPage83.relativeTargetPort(in: page) == 1)
    }

    @Test func targetDeviceNamePrefersTheSCSINameString() {
        #expect(VPDPage83.targetDeviceName(in: VPDBytes.scsiDebugPage83(host: 0)) == "352222220000007cd")
    }

    @Test func designatorsListsEveryDescriptorWithItsAssociation() throws {
        let all = try VPDPage83.designators(in: VPDBytes.scsiDebugPage83(host: 0))
        #expect(all.count == 7)
        #expect(all.map(\.association) == [.logicalUnit, .logicalUnit, .targetPort, .targetPort, .targetPort, .targetDevice, .targetDevice])
        #expect(all[2].protocolIdentifierValid && all[2].protocolIdentifier == 6)
    }

    @Test func serialIsTrimmedOfSurroundingSpaces() throws {
        #expect(try VPDPage80.serial(fromPage: VPDBytes.page80("  SN0042  ")) == "SN0042")
    }

    @Test func blankSerialIsAnError() {
        #expect(throws: VPDError.emptySerial) { try VPDPage80.serial(fromPage: VPDBytes.page80("    ")) }
    }

    @Test func kernelWWIDAttributeConvertsToMultipathFormat() {
        #expect(VPDPage83.wwid(fromKernelWWID: "naa.600a098038304431\n") == "3600a098038304431")
        #expect(VPDPage83.wwid(fromKernelWWID: "eui.002538ab71b03c21") == "2002538ab71b03c21")
        #expect(VPDPage83.wwid(fromKernelWWID: "t10.Linux   scsi_debug      2000") == "1Linux_scsi_debug_2000")
        #expect(VPDPage83.wwid(fromKernelWWID: "") == nil)
    }
}
