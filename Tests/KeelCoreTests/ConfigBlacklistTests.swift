// blacklist and blacklist_exceptions: which devices are left alone and which rule says so.

import KeelCore
import Testing

private func device(
    _ devnode: String = "sdb", wwid: String = "36001405aaaa", vendor: String = "LIO-ORG", product: String = "disk0",
    properties: [String] = ["ID_WWN", "DEVTYPE"]
) -> DeviceIdentity {
    DeviceIdentity(devnode: devnode, wwid: wwid, vendor: vendor, product: product, properties: properties)
}

private func verdict(_ text: String, _ d: DeviceIdentity = device()) -> BlacklistVerdict? {
    configFrom(text)?.isBlacklisted(d)
}

@Suite struct ConfigBlacklistTests {
    @Test func deviceIsAllowedWithoutRules() {
        #expect(verdict("") == .allowed)
        #expect(verdict("")?.isBlacklisted == false)
    }

    @Test func devnodeEntryBlacklistsMatchingKernelNames() {
        let text = "blacklist {\n\tdevnode \"^(ram|loop)[0-9]\"\n}\n"
        #expect(verdict(text, device("loop0")) == .blacklisted(.devnode("^(ram|loop)[0-9]")))
        #expect(verdict(text, device("sda")) == .allowed)
    }

    @Test func devnodeExceptionWinsOverDevnodeBlacklist() {
        let text = "blacklist {\n\tdevnode \"^sd\"\n}\nblacklist_exceptions {\n\tdevnode \"^sdb$\"\n}\n"
        #expect(verdict(text, device("sdb")) == .excepted(.devnode("^sdb$")))
        #expect(verdict(text, device("sdc")) == .blacklisted(.devnode("^sd")))
    }

    @Test func wwidExceptionKeepsOneDeviceOutOfBlacklistingEverything() {
        let text = "blacklist {\n\twwid \".*\"\n}\nblacklist_exceptions {\n\twwid \"^36001405aaaa$\"\n}\n"
        #expect(verdict(text, device(wwid: "36001405aaaa")) == .excepted(.wwid("^36001405aaaa$")))
        #expect(verdict(text, device(wwid: "36001405bbbb")) == .blacklisted(.wwid(".*")))
    }

    @Test func exceptionOfAnotherKindDoesNotCancelABlacklistEntry() {
        // As in multipath-tools: a wwid exception does not undo a devnode blacklist entry.
        let text = "blacklist {\n\tdevnode \"^sd\"\n}\nblacklist_exceptions {\n\twwid \".*\"\n}\n"
        #expect(verdict(text) == .blacklisted(.devnode("^sd")))
    }

    @Test func deviceEntryNeedsVendorAndProductToMatch() {
        let text = "blacklist {\n\tdevice {\n\t\tvendor \"^IBM\"\n\t\tproduct \"^tape\"\n\t}\n}\n"
        let rule = BlacklistRule.device(vendor: "^IBM", product: "^tape")
        #expect(verdict(text, device(vendor: "IBM", product: "tape1")) == .blacklisted(rule))
        #expect(verdict(text, device(vendor: "IBM", product: "disk1")) == .allowed)
        #expect(verdict(text, device(vendor: "HP", product: "tape1")) == .allowed)
    }

    @Test func deviceEntryWithVendorOnlyMatchesEveryProduct() {
        let text = "blacklist {\n\tdevice {\n\t\tvendor \"^IBM\"\n\t}\n}\n"
        #expect(verdict(text, device(vendor: "IBM", product: "anything")) == .blacklisted(.device(vendor: "^IBM", product: nil)))
    }

    @Test func deviceExceptionWinsOverDeviceBlacklist() {
        let text = """
            blacklist {
            \tdevice {
            \t\tvendor ".*"
            \t}
            }
            blacklist_exceptions {
            \tdevice {
            \t\tvendor "LIO-ORG"
            \t\tproduct "disk"
            \t}
            }
            """
        #expect(verdict(text) == .excepted(.device(vendor: "LIO-ORG", product: "disk")))
        #expect(verdict(text, device(vendor: "IBM")) == .blacklisted(.device(vendor: ".*", product: nil)))
    }

    @Test func blacklistedPropertyBlacklistsADeviceThatHasIt() {
        let text = "blacklist {\n\tproperty \"^ID_CDROM$\"\n}\n"
        #expect(verdict(text, device(properties: ["ID_CDROM", "ID_WWN"])) == .blacklisted(.property("^ID_CDROM$")))
        #expect(verdict(text, device(properties: ["ID_WWN"])) == .allowed)
    }

    @Test func propertyExceptionsAreRequiredProperties() {
        let text = "blacklist_exceptions {\n\tproperty \"(SCSI_IDENT_|ID_WWN)\"\n}\n"
        #expect(verdict(text, device(properties: ["DEVTYPE", "ID_WWN"])) == .excepted(.property("(SCSI_IDENT_|ID_WWN)")))
        #expect(verdict(text, device(properties: ["DEVTYPE"])) == .missingRequiredProperty)
        #expect(verdict(text, device(properties: [])) == .missingRequiredProperty)
        #expect(verdict(text, device(properties: []))?.isBlacklisted == true)
    }

    @Test func propertyExceptionWinsOverPropertyBlacklist() {
        let text = "blacklist {\n\tproperty \"ID_\"\n}\nblacklist_exceptions {\n\tproperty \"^ID_WWN$\"\n}\n"
        #expect(verdict(text, device(properties: ["ID_SERIAL", "ID_WWN"])) == .excepted(.property("^ID_WWN$")))
        #expect(verdict(text, device(properties: ["ID_SERIAL"])) == .blacklisted(.property("ID_")))
    }

    @Test func starPatternMeansEverythingWithAWarning() {
        let text = "blacklist {\n\twwid \"*\"\n}\n"
        #expect(verdict(text) == .blacklisted(.wwid(".*")))
        #expect(configWarnings(text) == ["multipath.conf:2: wwid: \"*\" is not a valid regular expression; using \".*\""])
    }

    @Test func badPatternIsAnErrorNamingFileAndLine() {
        let text = "blacklist_exceptions {\n\n\twwid \"[abc\"\n}\n"
        #expect(configErrors(text) == ["multipath.conf:3: wwid: \"[abc\" is not a valid regular expression: unmatched \"[\" at offset 0"])
    }

    @Test func blacklistDeviceWithoutVendorOrProductIsAnError() {
        #expect(configErrors("blacklist {\n\tdevice {\n\t}\n}\n") == ["multipath.conf:2: device: needs vendor or product"])
    }

    @Test func unknownBlacklistKeywordIsAWarning() {
        #expect(configWarnings("blacklist {\n\tserial \"x\"\n}\n") == ["multipath.conf:2: unknown option \"serial\" in blacklist, ignored"])
    }

    @Test("protocol entries match the transport as %P names it; an exception of the kind cancels them; an unknown transport is not judged")
    func protocolEntriesMatchTheTransport() {
        let text = "blacklist {\n\tprotocol \"scsi:(unspec|ata)\"\n}\n"
        var local = device()
        local.protocolName = "scsi:unspec"
        var fc = device()
        fc.protocolName = "scsi:fcp"
        #expect(verdict(text, local) == .blacklisted(.protocol("scsi:(unspec|ata)")))
        #expect(verdict(text, fc) == .allowed)
        #expect(verdict(text, device()) == .allowed, "a device whose transport is not known is not judged by protocol")
        let excepted = "blacklist {\n\tprotocol \".*\"\n}\nblacklist_exceptions {\n\tprotocol \"scsi:fcp\"\n}\n"
        #expect(verdict(excepted, fc) == .excepted(.protocol("scsi:fcp")))
        #expect(verdict(excepted, local) == .blacklisted(.protocol(".*")))
        // An exception of another kind does not undo it; a protocol exception does not undo a devnode entry.
        let mixed = "blacklist {\n\tdevnode \"^sdb$\"\n\tprotocol \"scsi:unspec\"\n}\nblacklist_exceptions {\n\tprotocol \"scsi:unspec\"\n\twwid \".*\"\n}\n"
        #expect(verdict(mixed, local) == .blacklisted(.devnode("^sdb$")))
        #expect(configWarnings(text) == [])
        #expect(configFrom(text)?.render().contains("protocol \"scsi:(unspec|ata)\"") == true, "show config and show blacklist print it")
    }

    @Test func verdictReadsAsALogLine() {
        #expect(BlacklistVerdict.blacklisted(.devnode("^sd")).description == "blacklisted by devnode \"^sd\"")
        #expect(BlacklistVerdict.excepted(.device(vendor: "V", product: nil)).description == "excepted from the blacklist by device vendor \"V\"")
        #expect(BlacklistVerdict.missingRequiredProperty.description == "blacklisted: no udev property matches blacklist_exceptions")
        #expect(BlacklistVerdict.allowed.description == "not blacklisted")
    }
}
