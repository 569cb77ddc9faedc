// Which setting a map gets: multipaths > overrides > devices > defaults > built-in, and several files.

import KeelCore
import Testing

private let wwidA = "36001405aaaaaaaaaaaaaaaaaaaaaaaaa"
private let wwidB = "36001405bbbbbbbbbbbbbbbbbbbbbbbbb"

/// A configuration that sets `failback` at every level, each level removable.
private func layered(device: Bool = true, overrides: Bool = true, multipath: Bool = true) -> String {
    var text = "defaults {\n\tfailback 10\n}\n"
    if device {
        text += "devices {\n\tdevice {\n\t\tvendor \"ACME\"\n\t\tproduct \"disk\"\n\t\tfailback 20\n\t}\n}\n"
    }
    if overrides { text += "overrides {\n\tfailback 30\n}\n" }
    if multipath {
        text += "multipaths {\n\tmultipath {\n\t\twwid \"\(wwidA)\"\n\t\tfailback 40\n\t}\n}\n"
    }
    return text
}

private func failback(_ text: String, wwid: String = wwidA, vendor: String = "ACME", product: String = "disk0") -> Failback? {
    configFrom(text)?.profile(wwid: wwid, vendor: vendor, product: product).policy.failback
}

@Suite struct ConfigPrecedenceTests {
    @Test func builtInValuesApplyWhenNothingIsWritten() {
        let p = defaultProfile("")
        #expect(p?.policy == MapPolicy(intervalHealthyNs: 500 * Time.nsPerMs, intervalHealthyMaxNs: 500 * Time.nsPerMs,
                                       retryIntervalNs: 5 * Time.nsPerSecond, healthyChecksPerSecondMax: 4096))
        #expect(p?.pathSelector == "service-time 0")
        #expect(p?.hardwareHandler == "0")
        #expect(p?.features == "0")
        #expect(p?.prio == .const)
        #expect(p?.prioArgs == "")
        #expect(p?.checker == .tur)
        #expect(p?.checkerTimeoutSeconds == nil)
        #expect(p?.alias == nil)
        #expect(p?.userFriendlyNames == false)
    }

    @Test func defaultsValueAppliesWithoutOtherLevels() {
        #expect(failback(layered(device: false, overrides: false, multipath: false)) == .deferred(seconds: 10))
    }

    @Test func matchingDeviceBeatsDefaults() {
        #expect(failback(layered(overrides: false, multipath: false)) == .deferred(seconds: 20))
    }

    @Test func nonMatchingDeviceDoesNotApply() {
        let text = layered(overrides: false, multipath: false)
        #expect(failback(text, vendor: "IBM") == .deferred(seconds: 10))
        #expect(failback(text, product: "tape0") == .deferred(seconds: 10))
    }

    @Test("a device entry with revision applies only to that firmware level; without one it applies to every level")
    func deviceRevisionNarrowsTheEntry() {
        let text = "defaults {\n\tfailback 10\n}\ndevices {\n\tdevice {\n\t\tvendor \"ACME\"\n\t\tproduct \"disk\"\n\t\tfailback 20\n\t}\n"
            + "\tdevice {\n\t\tvendor \"ACME\"\n\t\tproduct \"disk\"\n\t\trevision \"^0[1-3]\"\n\t\tfailback 30\n\t}\n}\n"
        let c = configFrom(text)
        #expect(configWarnings(text) == [])
        #expect(c?.profile(wwid: wwidA, vendor: "ACME", product: "disk0", revision: "0191").policy.failback == .deferred(seconds: 30))
        #expect(c?.profile(wwid: wwidA, vendor: "ACME", product: "disk0", revision: "0400").policy.failback == .deferred(seconds: 20),
                "another firmware level: the entry without revision applies")
        #expect(c?.profile(wwid: wwidA, vendor: "ACME", product: "disk0", revision: "").policy.failback == .deferred(seconds: 20))
        #expect(c?.render().contains("revision \"^0[1-3]\"") == true, "show config prints it")
        #expect(configErrors("devices {\n\tdevice {\n\t\tvendor \"A\"\n\t\tproduct \"B\"\n\t\trevision \"[x\"\n\t}\n}\n").first?
                    .contains("revision: \"[x\" is not a valid regular expression") == true)
    }

    @Test("uid_attribute and uid_attrs: read where multipath-tools takes them, refused or warned about where not, printed back")
    func uidAttributeIsReadWhereMultipathToolsTakesIt() {
        let text = "defaults {\n\tuid_attrs \"sd:ID_WWN dasd:ID_UID\"\n\tuid_attribute \"ID_SERIAL\"\n}\n"
            + "multipaths {\n\tmultipath {\n\t\twwid \"\(wwidA)\"\n\t\tuid_attribute \"ID_WWN\"\n\t}\n}\n"
        let c = configFrom(text)
        #expect(c?.uidAttrs == [UIDAttributes.ByName(prefix: "sd", attribute: "ID_WWN"), UIDAttributes.ByName(prefix: "dasd", attribute: "ID_UID")])
        #expect(c?.uidAttributes.attribute(devnode: "sdq", vendor: "V", product: "P", revision: "") == "ID_WWN")
        #expect(c?.uidAttributes.attribute(devnode: "nvme0n1", vendor: "V", product: "P", revision: "") == "ID_SERIAL")
        #expect(configWarnings(text) == ["multipath.conf:8: option \"uid_attribute\" is not valid in multipath, ignored"])
        #expect(c?.render().contains("uid_attrs \"sd:ID_WWN dasd:ID_UID\"") == true)
        #expect(c?.render().contains("uid_attribute \"ID_SERIAL\"") == true)
        #expect(configErrors("defaults {\n\tuid_attrs \"sd\"\n}\n")
                == ["multipath.conf:2: uid_attrs: \"sd\" is not prefix:attribute (e.g. \"sd:ID_SERIAL dasd:ID_UID\")"])
        let none = Configuration().uidAttributes
        #expect(none.attribute(devnode: "sda", vendor: "Linux", product: "scsi_debug", revision: "") == "ID_SERIAL",
                "no configuration: ID_SERIAL for SCSI paths")
        #expect(none.attribute(devnode: "nvme0n1", vendor: "NVME", product: "Any", revision: "") == "ID_WWN",
                "and the built-in NVMe entry's ID_WWN for NVMe ones")
    }

    @Test func deviceVendorAndProductAreUnanchoredRegularExpressions() {
        let text = layered(overrides: false, multipath: false)
        #expect(failback(text, vendor: "XACMEX", product: "ramdisk") == .deferred(seconds: 20))
    }

    @Test func overridesBeatAMatchingDevice() {
        #expect(failback(layered(multipath: false)) == .deferred(seconds: 30))
    }

    @Test func multipathsEntryBeatsOverrides() {
        #expect(failback(layered()) == .deferred(seconds: 40))
    }

    @Test func multipathsEntryForAnotherWwidDoesNotApply() {
        #expect(failback(layered(), wwid: wwidB) == .deferred(seconds: 30))
    }

    @Test func multipathsWwidIsComparedExactly() {
        #expect(failback(layered(), wwid: String(wwidA.dropLast())) == .deferred(seconds: 30))
    }

    @Test func laterMatchingDeviceEntryWinsPerOption() {
        let text = """
            devices {
            \tdevice {
            \t\tvendor "AC"
            \t\tproduct ".*"
            \t\tfailback immediate
            \t\tprio alua
            \t}
            \tdevice {
            \t\tvendor "ACME"
            \t\tproduct "disk"
            \t\tfailback followover
            \t}
            \tdevice {
            \t\tvendor "OTHER"
            \t\tproduct ".*"
            \t\tfailback manual
            \t}
            }
            """
        let p = configFrom(text)?.profile(wwid: wwidA, vendor: "ACME", product: "disk0")
        #expect(p?.policy.failback == .followover)
        // The later entry does not set prio, so the earlier matching one still does.
        #expect(p?.prio == .alua)
    }

    @Test func aliasComesFromTheMultipathsEntry() {
        let text = "multipaths {\n\tmultipath {\n\t\twwid \"\(wwidA)\"\n\t\talias \"db\"\n\t}\n}\n"
        let c = configFrom(text)
        #expect(c?.profile(wwid: wwidA, vendor: "V", product: "P").alias == "db")
        #expect(c?.profile(wwid: wwidB, vendor: "V", product: "P").alias == nil)
    }

    @Test func intervalsAndTimeoutBecomeNanosecondsInThePolicy() {
        let text = "defaults {\n\tpolling_interval 3\n\tmax_polling_interval 30\n\tchecker_timeout 9\n}\n"
        let p = defaultProfile(text)
        #expect(p?.policy.intervalHealthyNs == 3 * Time.nsPerSecond)
        #expect(p?.policy.intervalHealthyMaxNs == 30 * Time.nsPerSecond)
        #expect(p?.policy.checkTimeoutNs == 9 * Time.nsPerSecond)
        #expect(p?.checkerTimeoutSeconds == 9)
    }

    @Test func withoutAPollingOptionHealthyPathsKeepKeelsCadence() {
        let p = defaultProfile("")
        #expect(p?.policy.intervalHealthyNs == 500 * Time.nsPerMs)
        #expect(p?.policy.intervalHealthyMaxNs == 500 * Time.nsPerMs, "no back-off")
        #expect(p?.policy.retryIntervalNs == 5 * Time.nsPerSecond, "no_path_retry still counts polling_interval")
        #expect(p?.policy.healthyChecksPerSecondMax == 4096)
        let tuned = defaultProfile("defaults {\n\thealthy_interval_ms 250\n\tmax_healthy_checks_per_second 0\n}\n")
        #expect(tuned?.policy.intervalHealthyNs == 250 * Time.nsPerMs)
        #expect(tuned?.policy.intervalHealthyMaxNs == 250 * Time.nsPerMs)
        #expect(tuned?.policy.healthyChecksPerSecondMax == 0)
    }

    @Test func aWrittenPollingOptionBringsBackMultipathToolsBackOff() {
        let p = defaultProfile("defaults {\n\tmax_polling_interval 8\n}\n")
        #expect(p?.policy.intervalHealthyNs == 2 * Time.nsPerSecond)
        #expect(p?.policy.intervalHealthyMaxNs == 8 * Time.nsPerSecond)
        #expect(p?.policy.retryIntervalNs == 2 * Time.nsPerSecond)
        let both = "defaults {\n\tpolling_interval 2\n\thealthy_interval_ms 100\n}\n"
        #expect(configWarnings(both) == [
            "multipath.conf:3: healthy_interval_ms: not used, since polling_interval or max_polling_interval is written (healthy paths back off from polling_interval as in multipath-tools)",
        ])
        #expect(defaultProfile(both)?.policy.intervalHealthyNs == 2 * Time.nsPerSecond)
    }

    @Test func theForgetRateKeepsItsSpanInTimeUnderKeelsCadence() {
        let damping = "\tsan_path_err_threshold 3\n\tsan_path_err_forget_rate 6\n\tsan_path_err_recovery_time 30\n"
        // 6 good checks at polling_interval 5 s span 30 s; at 500 ms that is 60 checks.
        #expect(defaultProfile("defaults {\n" + damping + "}\n")?.policy.flapDamping.forgetRate == 60)
        #expect(defaultProfile("defaults {\n\tpolling_interval 5\n" + damping + "}\n")?.policy.flapDamping.forgetRate == 6)
    }

    @Test func cadenceOptionsRefuseWhatIsOutOfRange() {
        #expect(configErrors(inDefaults("healthy_interval_ms 10")) == ["multipath.conf:2: healthy_interval_ms: 10 is out of range (50...86400000 ms)"])
        #expect(configErrors(inDefaults("max_healthy_checks_per_second -1")).count == 1)
        #expect(configErrors(inDefaults("max_healthy_checks_per_second 1000001")) == [
            "multipath.conf:2: max_healthy_checks_per_second: 1000001 is out of range (0...1000000)",
        ])
    }

    @Test func unsetCheckerTimeoutLeavesTheFallbackToTheCaller() {
        let p = defaultProfile("")
        #expect(p?.checkerTimeoutSeconds == nil)
        #expect(p?.policy.checkTimeoutNs == 30 * Time.nsPerSecond)
    }
}

@Suite struct ConfigPollingIntervalTests {
    @Test func maxDefaultsToFourTimesPolling() {
        let c = configFrom(inDefaults("polling_interval 10"))
        #expect(c?.pollingIntervalSeconds == 10)
        #expect(c?.maxPollingIntervalSeconds == 40)
    }

    @Test func onlyMaxGivenMakesPollingAQuarterOfIt() {
        let c = configFrom(inDefaults("max_polling_interval 40"))
        #expect(c?.pollingIntervalSeconds == 10)
        #expect(c?.maxPollingIntervalSeconds == 40)
    }

    @Test func smallMaxGivesPollingOfOneSecond() {
        let c = configFrom(inDefaults("max_polling_interval 2"))
        #expect(c?.pollingIntervalSeconds == 1)
        #expect(c?.maxPollingIntervalSeconds == 2)
    }

    @Test func pollingAboveMaxIsClampedWithAWarning() {
        let text = "defaults {\n\tpolling_interval 30\n\tmax_polling_interval 10\n}\n"
        let c = configFrom(text)
        #expect(c?.pollingIntervalSeconds == 10)
        #expect(c?.maxPollingIntervalSeconds == 10)
        #expect(configWarnings(text) == ["multipath.conf:2: polling_interval: 30 is more than max_polling_interval 10; using 10"])
    }

    @Test func pollingBelowMaxIsKept() {
        let c = configFrom("defaults {\n\tpolling_interval 4\n\tmax_polling_interval 60\n}\n")
        #expect(c?.pollingIntervalSeconds == 4)
        #expect(c?.maxPollingIntervalSeconds == 60)
    }
}

@Suite struct ConfigQueueingTests {
    @Test func undefinedNoPathRetryMeansFailWithoutTheFeature() {
        let p = defaultProfile("")
        #expect(p?.policy.noPathRetry == .fail)
        #expect(p?.features == "0")
    }

    @Test func queueAddsTheQueueIfNoPathFeature() {
        let p = defaultProfile(inDefaults("no_path_retry queue"))
        #expect(p?.policy.noPathRetry == .queue)
        #expect(p?.features == "1 queue_if_no_path")
    }

    @Test func retriesAddTheQueueIfNoPathFeature() {
        let p = defaultProfile(inDefaults("no_path_retry 5"))
        #expect(p?.policy.noPathRetry == .retries(5))
        #expect(p?.features == "1 queue_if_no_path")
    }

    @Test func queueingFeatureIsAddedAfterTheOtherFeatures() {
        let p = defaultProfile("defaults {\n\tno_path_retry queue\n\tfeatures \"2 pg_init_retries 50\"\n}\n")
        #expect(p?.features == "3 pg_init_retries 50 queue_if_no_path")
    }

    @Test func queueingFeatureIsNotDuplicated() {
        let p = defaultProfile("defaults {\n\tno_path_retry queue\n\tfeatures \"1 queue_if_no_path\"\n}\n")
        #expect(p?.features == "1 queue_if_no_path")
    }

    @Test func featureAloneMeansNoPathRetryQueue() {
        let p = defaultProfile(inDefaults("features \"1 queue_if_no_path\""))
        #expect(p?.policy.noPathRetry == .queue)
        #expect(p?.features == "1 queue_if_no_path")
    }

    @Test func featureFormIsWarnedAsDeprecated() {
        #expect(configWarnings(inDefaults("features \"1 queue_if_no_path\"")) == [
            "multipath.conf:2: features: \"1 queue_if_no_path\" is deprecated, use \"no_path_retry queue\"; where no_path_retry is set the feature is ignored",
        ])
    }

    @Test func noPathRetrySetAnywhereOverridesTheFeature() {
        // The device's feature is above the defaults' no_path_retry, but no_path_retry wins.
        let text = """
            defaults {
            \tno_path_retry fail
            }
            devices {
            \tdevice {
            \t\tvendor "V"
            \t\tproduct "P"
            \t\tfeatures "2 queue_if_no_path pg_init_retries"
            \t}
            }
            """
        let p = configFrom(text)?.profile(wwid: wwidA, vendor: "V", product: "P")
        #expect(p?.policy.noPathRetry == .fail)
        #expect(p?.features == "1 pg_init_retries")
    }

    @Test func retriesSetElsewhereBeatTheFeature() {
        let text = "defaults {\n\tno_path_retry 12\n}\noverrides {\n\tfeatures \"1 queue_if_no_path\"\n}\n"
        let p = defaultProfile(text)
        #expect(p?.policy.noPathRetry == .retries(12))
        #expect(p?.features == "1 queue_if_no_path")
    }
}

@Suite struct ConfigFilesTests {
    @Test func laterFileWinsForTheSameOption() {
        let r = Configuration.load(files: [
            (name: "multipath.conf", text: inDefaults("polling_interval 5")),
            (name: "conf.d/10-fast.conf", text: inDefaults("polling_interval 2")),
        ])
        #expect((try? r.get())?.configuration.pollingIntervalSeconds == 2)
    }

    @Test func optionsNotRepeatedInALaterFileAreKept() {
        let r = Configuration.load(files: [
            (name: "multipath.conf", text: "defaults {\n\tprio alua\n\tfailback immediate\n}\n"),
            (name: "conf.d/a.conf", text: inDefaults("failback 7")),
        ])
        let c = try? r.get().configuration
        #expect(c?.defaults.prio == .alua)
        #expect(c?.defaults.failback == .deferred(seconds: 7))
    }

    @Test func deviceEntriesOfALaterFileWin() {
        let device = { (fb: String) in "devices {\n\tdevice {\n\t\tvendor \"V\"\n\t\tproduct \"P\"\n\t\tfailback \(fb)\n\t}\n}\n" }
        let r = Configuration.load(files: [
            (name: "multipath.conf", text: device("immediate")),
            (name: "conf.d/a.conf", text: device("followover")),
        ])
        let c = try? r.get().configuration
        #expect(c?.devices.count == 2)
        #expect(c?.profile(wwid: wwidA, vendor: "V", product: "P").policy.failback == .followover)
    }

    @Test func blacklistEntriesOfAllFilesAccumulate() {
        let r = Configuration.load(files: [
            (name: "multipath.conf", text: "blacklist {\n\tdevnode \"^loop\"\n}\n"),
            (name: "conf.d/a.conf", text: "blacklist {\n\tdevnode \"^ram\"\n}\n"),
        ])
        let c = try? r.get().configuration
        #expect(c?.blacklist.devnodes.map(\.pattern) == ["^loop", "^ram"])
    }

    @Test func problemsNameTheFileTheyAreIn() {
        let r = Configuration.load(files: [
            (name: "multipath.conf", text: inDefaults("polling_interval x")),
            (name: "conf.d/b.conf", text: "\n" + inDefaults("prio banana") + inDefaults("bogus 1")),
        ])
        guard case .failure(let e) = r else {
            Issue.record("expected errors")
            return
        }
        #expect(e.problems.map(\.description) == [
            "multipath.conf:2: polling_interval: \"x\" is not a whole number of seconds",
            "conf.d/b.conf:3: prio: \"banana\" is not a supported prioritizer (const, alua, sysfs, weightedpath, random, emc, hds, hp_sw, ontap, rdac, datacore, path_latency, iet, ana)",
        ])
    }

    @Test func warningsNameTheFileTheyAreIn() {
        let r = Configuration.load(files: [
            (name: "multipath.conf", text: ""),
            (name: "conf.d/c.conf", text: inDefaults("bogus 1")),
        ])
        #expect((try? r.get())?.warnings.map(\.description) == ["conf.d/c.conf:2: unknown option \"bogus\" in defaults, ignored"])
    }
}
