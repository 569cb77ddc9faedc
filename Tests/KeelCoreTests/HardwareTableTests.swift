// The built-in hardware table: it loads cleanly, applies below the user's devices entries, its
// product_blacklist excludes management LUNs, and values Keel lacks fall back with a warning.
import KeelCore
import Testing

private func load(_ text: String) throws -> LoadedConfiguration {
    try Configuration.load(files: [(name: "multipath.conf", text: text)]).get()
}

@Suite struct HardwareTableTests {
    @Test func theTableLoadsWithoutAProblem() throws {
        let loaded = try Configuration.load(files: [(name: "table", text: Configuration.hardwareTableText)]).get()
        #expect(loaded.warnings.isEmpty, "\(loaded.warnings)")
        #expect(loaded.configuration.devices.count > 100)
        #expect(Configuration.hardwareTable.count == loaded.configuration.devices.count)
    }

    @Test func aNetAppLUNGetsItsArraySettings() throws {
        let p = try load("").configuration.profile(wwid: "w", vendor: "NETAPP", product: "LUN")
        #expect(p.policy.grouping == .groupByPrio)
        #expect(p.policy.noPathRetry == .queue)
        #expect(p.policy.failback == .immediate)
        #expect(p.features.contains("pg_init_retries 50") && p.features.contains("queue_if_no_path"), "\(p.features)")
    }

    @Test func userDevicesEntriesAndHardwareTableNoWinOverTheTable() throws {
        let user = try load("devices {\n    device {\n        vendor NETAPP\n        product LUN\n        no_path_retry fail\n    }\n}\n")
        let p = user.configuration.profile(wwid: "w", vendor: "NETAPP", product: "LUN")
        #expect(p.policy.noPathRetry == .fail, "the user's entry wins")
        #expect(p.policy.grouping == .groupByPrio, "what the user did not set still comes from the table")
        let off = try load("defaults {\n    hardware_table no\n}\n").configuration.profile(wwid: "w", vendor: "NETAPP", product: "LUN")
        #expect(off.policy.grouping == .failover && off.policy.noPathRetry == .fail)
        let unknown = try load("").configuration.profile(wwid: "w", vendor: "Linux", product: "scsi_debug")
        #expect(unknown.policy.grouping == .failover, "no entry: the defaults")
    }

    @Test func productBlacklistExcludesManagementLUNs() throws {
        let c = try load("devices {\n    device {\n        vendor ACME\n        product .*\n        product_blacklist \"^Gateway\"\n    }\n}\n").configuration
        func identity(_ vendor: String, _ product: String) -> DeviceIdentity {
            DeviceIdentity(devnode: "sdb", wwid: "w", vendor: vendor, product: product, properties: [])
        }
        #expect(c.isBlacklisted(identity("ACME", "Gateway LUN")).isBlacklisted)
        #expect(!c.isBlacklisted(identity("ACME", "Data LUN")).isBlacklisted)
        let entries = Configuration.hardwareTable.filter { $0.productBlacklist != nil }
        #expect(!entries.isEmpty, "the table blacklists some arrays' management LUNs")
        #expect(try Configuration.load(files: [(name: "again", text: c.render())]).get().configuration.devices.first?.productBlacklist?.pattern == "^Gateway")
    }

    @Test("the table's arrays get their own checkers: rdac for E-series, hp_sw for HP MSA, emc_clariion for CLARiiON")
    func arraysGetTheirCheckers() throws {
        let c = Configuration()
        #expect(c.profile(wwid: "w", vendor: "NETAPP", product: "INF-01-00").checker == .rdac)
        #expect(c.profile(wwid: "w", vendor: "DGC", product: "VRAID").checker == .emcClariion)
        #expect(c.profile(wwid: "w", vendor: "HP", product: "MSA110").checker == .hpSW)
        #expect(c.profile(wwid: "w", vendor: "Linux", product: "scsi_debug").checker == .tur)
        #expect(try load("defaults {\n    path_checker readsector0\n}\n").configuration.defaults.pathChecker == .readsector0)
    }

    @Test func valuesKeelLacksFallBackWithAWarningNamingTheFallback() throws {
        let loaded = try load("""
            defaults {
                path_checker cciss_tur
                path_grouping_policy group_by_tpg
            }

            """)
        #expect(loaded.configuration.defaults.pathChecker == .tur)
        #expect(loaded.configuration.defaults.prio == .const, "the built-in value stays")
        #expect(loaded.configuration.defaults.grouping == .groupByTPG)
        let texts = loaded.warnings.map(\.message)
        #expect(texts.count == 1, "\(texts)")
        #expect(texts.contains { $0.contains("cciss_tur") && $0.contains("tur is used") })
        guard case .failure = Configuration.load(files: [(name: "c", text: "defaults {\n    path_checker banana\n}\n")]) else {
            Issue.record("an unknown checker was accepted")
            return
        }
    }
}
