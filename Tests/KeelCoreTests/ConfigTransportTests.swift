// fast_io_fail_tmo, dev_loss_tmo and eh_deadline: read, layered, and adjusted as multipath-tools
// adjusts them before they reach the paths' transport objects.
import KeelCore
import Testing

@Suite struct ConfigTransportTests {
    @Test func valuesAndWordsAreReadAndBadOnesRefusedNamingTheOption() {
        let c = configFrom(inDefaults("fast_io_fail_tmo off\n    dev_loss_tmo infinity\n    eh_deadline 30"))
        #expect(c?.defaults.fastIOFailTmo == .off)
        #expect(c?.defaults.devLossTmo == .infinity)
        #expect(c?.defaults.ehDeadline == .seconds(30))
        for bad in ["fast_io_fail_tmo infinity", "dev_loss_tmo off", "eh_deadline -1", "dev_loss_tmo 4294967295"] {
            guard case .failure(let e) = loadConfigText(inDefaults(bad)) else {
                Issue.record("\(bad) is refused")
                continue
            }
            #expect("\(e)".contains(String(bad.split(separator: " ")[0])), "\(e)")
        }
        let warnings = configWarnings("multipaths {\n multipath {\n  wwid 1\n  dev_loss_tmo 10\n }\n}\n")
        #expect(warnings.contains { $0.contains("dev_loss_tmo") && $0.contains("not valid in multipath") }, "\(warnings)")
    }

    @Test func theBuiltInFastIOFailIsFiveAndDevLossIsLeftToTheKernel() {
        let p = Configuration().profile(wwid: "1", vendor: "X", product: "Y")
        #expect(p.transport.fastIOFail == .seconds(5))
        #expect(p.transport.devLoss == nil)
        #expect(p.transport.ehDeadline == nil)
    }

    @Test func noPathRetryRaisesDevLossAndQueueMakesItInfinite() {
        let retries = TransportTimeouts(fastIOFail: .seconds(5), devLoss: .seconds(30), ehDeadline: nil, noPathRetry: .retries(12), pollingIntervalSeconds: 5)
        #expect(retries.devLoss == .seconds(60))
        let longer = TransportTimeouts(fastIOFail: .seconds(5), devLoss: .seconds(120), ehDeadline: nil, noPathRetry: .retries(12), pollingIntervalSeconds: 5)
        #expect(longer.devLoss == .seconds(120), "never lowered")
        let queue = TransportTimeouts(fastIOFail: .seconds(5), devLoss: .seconds(30), ehDeadline: nil, noPathRetry: .queue, pollingIntervalSeconds: 5)
        #expect(queue.devLoss == .seconds(TransportTimeout.devLossMaxSeconds))
    }

    @Test func fastIOFailNotBelowDevLossIsOffAndDevLossPast600NeedsFastIOFail() {
        let t = TransportTimeouts(fastIOFail: .seconds(30), devLoss: .seconds(30), ehDeadline: nil, noPathRetry: .fail, pollingIntervalSeconds: 5)
        #expect(t.fastIOFail == .off)
        #expect(t.devLoss == .seconds(30))
        let capped = TransportTimeouts(fastIOFail: .off, devLoss: .infinity, ehDeadline: nil, noPathRetry: .fail, pollingIntervalSeconds: 5)
        #expect(capped.devLoss == .seconds(600))
        let unset = TransportTimeouts(fastIOFail: nil, devLoss: nil, ehDeadline: nil, noPathRetry: .fail, pollingIntervalSeconds: 5)
        #expect(unset.isEmpty)
    }

    @Test func theHardwareTableAndUserEntriesLayerAsOtherSettings() {
        // multipath-tools' table gives Pure Storage FlashArray fast_io_fail_tmo 10.
        let pure = Configuration().profile(wwid: "1", vendor: "PURE", product: "FlashArray")
        #expect(pure.transport.fastIOFail == .seconds(10))
        let user = configFrom("devices {\n device {\n  vendor PURE\n  product FlashArray\n  fast_io_fail_tmo 3\n }\n}\n")
        #expect(user?.profile(wwid: "1", vendor: "PURE", product: "FlashArray").transport.fastIOFail == .seconds(3))
        let rendered = configFrom(inDefaults("dev_loss_tmo infinity\n    eh_deadline off"))
        #expect(rendered.map { configFrom($0.render()) == $0 } == true)
    }

    @Test func protocolSubsectionsComeBeforeTheirSectionsValueLayerByLayer() throws {
        let text = """
        defaults {
        \tfast_io_fail_tmo 9
        \teh_deadline 40
        }
        overrides {
        \tdev_loss_tmo 100
        \tprotocol {
        \t\ttype scsi:fcp
        \t\tdev_loss_tmo 60
        \t}
        }
        devices {
        \tdevice {
        \t\tvendor V
        \t\tproduct P
        \t\tfast_io_fail_tmo 4
        \t\tprotocol {
        \t\t\ttype scsi:iscsi
        \t\t\tfast_io_fail_tmo 2
        \t\t}
        \t\tprotocol {
        \t\t\ttype scsi:fcp
        \t\t\tfast_io_fail_tmo 3
        \t\t\teh_deadline 20
        \t\t}
        \t\tprotocol {
        \t\t\ttype scsi:fcp
        \t\t\teh_deadline 21
        \t\t}
        \t}
        }

        """
        let configuration = try #require(configFrom(text))
        let p = configuration.profile(wwid: "1", vendor: "V", product: "P")
        // FC: the overrides' FC subsection (60) over overrides (100); the device's FC subsections
        // over the device (3, not 4); of two FC subsections, the later one's eh_deadline (21).
        #expect(p.transport(protocol: "scsi:fcp").devLoss == .seconds(60))
        #expect(p.transport(protocol: "scsi:fcp").fastIOFail == .seconds(3))
        #expect(p.transport(protocol: "scsi:fcp").ehDeadline == .seconds(21))
        // iSCSI: overrides' own dev_loss_tmo, the device's iSCSI fast_io_fail_tmo, defaults' eh_deadline.
        #expect(p.transport(protocol: "scsi:iscsi").devLoss == .seconds(100))
        #expect(p.transport(protocol: "scsi:iscsi").fastIOFail == .seconds(2))
        #expect(p.transport(protocol: "scsi:iscsi").ehDeadline == .seconds(40))
        // A protocol no subsection names: the sections' own values.
        #expect(p.transport(protocol: "scsi:sas") == p.transport)
        #expect(p.transport.fastIOFail == .seconds(4) && p.transport.devLoss == .seconds(100) && p.transport.ehDeadline == .seconds(40))
        // Another device gets only the overrides' subsection.
        let other = configuration.profile(wwid: "2", vendor: "X", product: "Y")
        #expect(other.transport(protocol: "scsi:fcp").devLoss == .seconds(60))
        #expect(other.transport(protocol: "scsi:fcp").fastIOFail == .seconds(9))
        #expect(other.transport(protocol: "scsi:iscsi") == other.transport)
    }
}

@Suite struct ConfigFlushOnLastDelTests {
    @Test func itIsOffByDefaultReadInBothSpellingsAndLayeredByMap() {
        #expect(!Configuration().profile(wwid: "1", vendor: "X", product: "Y").flushesOnLastDel)
        for (word, on) in [("yes", true), ("no", false), ("always", true), ("unused", false), ("never", false)] {
            let c = configFrom(inDefaults("flush_on_last_del \(word)"))
            #expect(c?.profile(wwid: "1", vendor: "X", product: "Y").flushesOnLastDel == on, "\(word)")
        }
        guard case .failure(let e) = loadConfigText(inDefaults("flush_on_last_del sometimes")) else {
            Issue.record("a bad value is refused")
            return
        }
        #expect("\(e)".contains("flush_on_last_del"), "\(e)")
        let layered = configFrom(inDefaults("flush_on_last_del yes") + "multipaths {\n multipath {\n  wwid 7\n  flush_on_last_del no\n }\n}\n")
        #expect(layered?.profile(wwid: "7", vendor: "X", product: "Y").flushesOnLastDel == false)
        #expect(layered?.profile(wwid: "8", vendor: "X", product: "Y").flushesOnLastDel == true)
    }

    @Test func theHardwareTableSetsItForNetApp() {
        #expect(Configuration().profile(wwid: "1", vendor: "NETAPP", product: "LUN").flushesOnLastDel)
        #expect(configWarnings(inDefaults("flush_on_last_del yes")).isEmpty, "no longer an unsupported option")
    }
}

@Suite struct ConfigAutoResizeTests {
    @Test func itIsNeverByDefaultAndTakesMultipathToolsWords() {
        #expect(Configuration().profile(wwid: "1", vendor: "X", product: "Y").autoResize == .never)
        for mode in AutoResize.allCases {
            let c = configFrom(inDefaults("auto_resize \(mode.rawValue)"))
            #expect(c?.profile(wwid: "1", vendor: "X", product: "Y").autoResize == mode, "\(mode)")
            #expect(c?.render().contains("auto_resize \(mode.rawValue)") == true, "rendered back")
        }
        guard case .failure(let e) = loadConfigText(inDefaults("auto_resize always")) else {
            Issue.record("a bad value is refused")
            return
        }
        #expect("\(e)".contains("auto_resize") && "\(e)".contains("grow_only"), "\(e)")
    }
}

@Suite struct ConfigOriginTests {
    @Test func eachSettingNamesTheLayerItComesFrom() throws {
        let text = """
        defaults {
        \tuser_friendly_names yes
        }
        devices {
        \tdevice {
        \t\tvendor "PURE"
        \t\tproduct "FlashArray"
        \t\tfast_io_fail_tmo 3
        \t}
        }
        overrides {
        \tfailback manual
        }
        multipaths {
        \tmultipath {
        \t\twwid 3600a0b80001
        \t\tno_path_retry 12
        \t}
        }

        """
        let configuration = try #require(configFrom(text))
        let layers = configuration.settingLayers(vendor: "PURE", product: "FlashArray", revision: "8888")
        let origins = configuration.settingOrigins(wwid: "3600a0b80001", deviceLayers: layers)
        func origin(_ option: String) -> String? { origins.first { $0.option == option }.map { "\($0.value) (\($0.origin))" } }
        #expect(origin("no_path_retry") == "12 (multipaths entry)")
        #expect(origin("failback") == "manual (overrides)", "over the hardware table's immediate")
        #expect(origin("fast_io_fail_tmo") == "3 (devices entry \"PURE\" \"FlashArray\")", "over the hardware table's 10")
        #expect(origin("path_grouping_policy") == "group_by_prio (built-in hardware table \"PURE\" \"FlashArray\")")
        #expect(origin("user_friendly_names") == "yes (defaults)")
        #expect(origin("path_selector") == "\"service-time 0\" (built-in)")
        #expect(Set(origins.map(\.option)).count == origins.count, "each option once")
        // The values listed are the ones the map's profile uses.
        let profile = configuration.profile(wwid: "3600a0b80001", vendor: "PURE", product: "FlashArray", revision: "8888")
        #expect(profile.policy.failback == .manual && profile.transport.fastIOFail == .seconds(3) && profile.policy.grouping == .groupByPrio)
        let shown = configuration.renderOrigins(maps: [("mpatha", "3600a0b80001", "PURE", "FlashArray", "8888")])
        #expect(shown.contains("# mpatha (3600a0b80001, PURE,FlashArray,8888):\n"), "\(shown)")
        #expect(shown.split(separator: "\n").allSatisfy { $0.hasPrefix("#") }, "comments only: the text stays multipath.conf")
        #expect(configuration.renderOrigins(maps: []) == "")
    }
}
