// multipath.conf syntax, option values, Keel's own options, diagnostics and rendering.

@testable import KeelCore
import Testing

@Suite struct ConfigSyntaxTests {
    @Test func emptyTextIsTheBuiltInConfiguration() {
        #expect(configFrom("") == Configuration())
    }

    @Test func queueWithoutDaemonIsReadRenderedAndLeftUnsetByDefault() {
        #expect(Configuration().queueWithoutDaemon == nil)
        #expect(configFrom(inDefaults("queue_without_daemon no"))?.queueWithoutDaemon == false)
        let yes = configFrom(inDefaults("queue_without_daemon yes"))
        #expect(yes?.queueWithoutDaemon == true)
        #expect(yes.map { configFrom($0.render()) == $0 } == true, "rendered text loads back equal")
        #expect(configWarnings(inDefaults("queue_without_daemon no")).isEmpty, "no longer an unsupported option")
        guard case .failure(let e) = loadConfigText(inDefaults("queue_without_daemon maybe")) else {
            Issue.record("a value that is not yes/no is refused")
            return
        }
        #expect("\(e)".contains("queue_without_daemon"))
    }

    @Test func hashAndBangCommentsAreIgnored() {
        let text = """
            # a comment
            defaults { ! another
            \tpolling_interval 7 # trailing
            \t! prio alua
            }
            """
        let c = configFrom(text)
        #expect(c?.pollingIntervalSeconds == 7)
        #expect(c?.defaults.prio == .const)
    }

    @Test func quotedValueKeepsBlanksCommentCharactersAndBraces() {
        let c = configFrom(inDefaults("prio_args \"a # b ! c { }\""))
        #expect(c?.defaults.prioArgs == "a # b ! c { }")
    }

    @Test func doubledQuoteInsideQuotesStandsForOneQuote() {
        let c = configFrom(inDefaults("alias_prefix \"mp\"\"x\""))
        #expect(c?.defaults.aliasPrefix == "mp\"x")
    }

    @Test func emptyQuotedValueIsAValue() {
        let c = configFrom(inDefaults("prio_args \"\""))
        #expect(c?.defaults.prioArgs == "")
    }

    @Test func bracesNeedNoBlanksAndSectionsMayBeOnOneLine() {
        let c = configFrom("defaults{polling_interval 9}\noverrides { prio alua }\ndevices { device {\nvendor \"V\"\nproduct \"P\" } }\n")
        #expect(c?.pollingIntervalSeconds == 9)
        #expect(c?.overrides.prio == .alua)
        #expect(c?.devices.count == 1)
    }

    @Test func wordsAfterAValueOnTheSameLineAreAnError() {
        #expect(configErrors("overrides { prio alua failback immediate }\n") == [
            "multipath.conf:1: prio: expected one value, found 3 words (quote a value that contains blanks)",
        ])
    }

    @Test func carriageReturnsAreBlanks() {
        let c = configFrom("defaults {\r\n\tpolling_interval 8\r\n}\r\n")
        #expect(c?.pollingIntervalSeconds == 8)
    }

    @Test func unterminatedQuoteIsAnError() {
        #expect(configErrors(inDefaults("prio_args \"abc")) == ["multipath.conf:2: unterminated quoted string"])
    }

    @Test func unclosedSectionIsReportedAtItsOpeningLine() {
        let text = "defaults {\n\tpolling_interval 5\ndevices {\n}\n"
        #expect(configErrors(text) == ["multipath.conf:1: section \"defaults\" is not closed (missing \"}\")"])
    }

    @Test func closingBraceWithoutSectionIsAnError() {
        #expect(configErrors("defaults {\n}\n}\n") == ["multipath.conf:3: \"}\" without an open section"])
    }

    @Test func openingBraceOnTheNextLineIsAnError() {
        #expect(configErrors("defaults\n{\n}\n") == [
            "multipath.conf:1: \"defaults\" outside any section (expected a section such as \"defaults {\")",
            "multipath.conf:2: \"{\" without a section name before it on the same line",
        ])
    }

    @Test func sectionWhereAValueIsExpectedIsAnError() {
        let text = "defaults {\n\tpolling_interval {\n\t}\n}\n"
        #expect(configErrors(text) == ["multipath.conf:2: polling_interval: expected a value, found a section"])
    }

    @Test func optionWhereASectionIsExpectedIsAnError() {
        #expect(configErrors("devices {\n\tvendor \"X\"\n}\n") == [
            "multipath.conf:2: devices: expected \"device {\", found option \"vendor\"",
        ])
        #expect(configErrors("multipaths {\n\tmultipath\n}\n") == [
            "multipath.conf:2: multipath: must open a section (\"multipath {\" on the same line)",
        ])
    }

    @Test func missingValueIsAnError() {
        #expect(configErrors(inDefaults("polling_interval")) == ["multipath.conf:2: polling_interval: value missing"])
    }

    @Test func unquotedValueWithBlanksIsAnError() {
        #expect(configErrors(inDefaults("features 1 queue_if_no_path")) == [
            "multipath.conf:2: features: expected one value, found 2 words (quote a value that contains blanks)",
        ])
    }

    @Test func optionOutsideAnySectionIsAnError() {
        #expect(configErrors("polling_interval 5\n") == [
            "multipath.conf:1: \"polling_interval\" outside any section (expected a section such as \"defaults {\")",
        ])
    }

    @Test func everyErrorIsCollectedInLineOrder() {
        let text = """
            defaults {
            \tpolling_interval abc
            \tprio banana
            \tfailback soon
            }
            blacklist {
            \tdevnode "^(sd"
            }
            """
        #expect(configErrors(text) == [
            "multipath.conf:2: polling_interval: \"abc\" is not a whole number of seconds",
            "multipath.conf:3: prio: \"banana\" is not a supported prioritizer (const, alua, sysfs, weightedpath, random, emc, hds, hp_sw, ontap, rdac, datacore, path_latency, iet, ana)",
            "multipath.conf:4: failback: \"soon\" must be manual, immediate, followover or a number of seconds",
            "multipath.conf:7: devnode: \"^(sd\" is not a valid regular expression: unmatched \"(\" at offset 1",
        ])
    }

    @Test func unknownOptionIsAWarningAndIgnored() {
        #expect(configWarnings(inDefaults("foo 1")) == ["multipath.conf:2: unknown option \"foo\" in defaults, ignored"])
    }

    @Test func unknownSectionIsAWarningAndIgnored() {
        #expect(configWarnings("frobnicate {\n\tfoo 1\n}\n") == ["multipath.conf:1: unknown section \"frobnicate\", ignored"])
        #expect(configWarnings("defaults {\n\tsub {\n\t}\n}\n") == ["multipath.conf:2: unknown section \"sub\" in defaults, ignored"])
    }

    @Test func unknownSectionContentsAreStillCheckedForBraces() {
        #expect(configErrors("frobnicate {\n\tfoo {\n}\n") == ["multipath.conf:1: section \"frobnicate\" is not closed (missing \"}\")"])
    }

    @Test func multipathToolsOptionKeelLacksIsAWarning() {
        #expect(configWarnings(inDefaults("rr_weight priorities")) == [
            "multipath.conf:2: option \"rr_weight\" in defaults is not supported by Keel, ignored: "
                + "priorities decide groups, not repeat counts; every path has a repeat count of 1",
        ])
        #expect(configWarnings(inDefaults("checker tur")) == [
            "multipath.conf:2: option \"checker\" in defaults is not supported by Keel, ignored: the old spelling of path_checker; write path_checker",
        ])
    }

    @Test func everyOptionKeelLacksSaysWhatKeelDoesInstead() {
        for (option, instead) in ConfigLoader.unsupportedOptions {
            #expect(!instead.isEmpty, "\(option)")
            #expect(!ConfigLoader.mapOptions.contains(option) && !ConfigLoader.globalOptions.contains(option), "\(option) is also carried out")
        }
    }

    @Test func globalOptionInADeviceIsAWarning() {
        let text = "devices {\n\tdevice {\n\t\tvendor \"V\"\n\t\tproduct \"P\"\n\t\tpolling_interval 3\n\t}\n}\n"
        #expect(configWarnings(text) == ["multipath.conf:5: option \"polling_interval\" is only valid in defaults, ignored in device"])
        #expect(configFrom(text)?.pollingIntervalSeconds == 5)
    }

    @Test func protocolSubsectionsAreReadInOverridesAndDevices() throws {
        let text = """
        overrides {
        \tprotocol {
        \t\ttype "scsi:fcp"
        \t\tdev_loss_tmo 60
        \t}
        }
        devices {
        \tdevice {
        \t\tvendor "V"
        \t\tproduct "P"
        \t\tprotocol {
        \t\t\ttype scsi:iscsi
        \t\t\tfast_io_fail_tmo off
        \t\t\teh_deadline 7
        \t\t}
        \t}
        }

        """
        #expect(configWarnings(text) == [])
        let configuration = try #require(configFrom(text))
        #expect(configuration.overrides.protocols == [ProtocolTimeouts(type: "scsi:fcp", devLossTmo: .seconds(60))])
        #expect(configuration.devices.last?.settings.protocols == [ProtocolTimeouts(type: "scsi:iscsi", fastIOFailTmo: .off, ehDeadline: .seconds(7))])
        // show config prints them back, and what it prints loads to the same configuration.
        let rendered = configuration.render()
        #expect(rendered.contains("\tprotocol {\n\t\ttype \"scsi:fcp\"\n\t\tdev_loss_tmo 60\n\t}"), "\(rendered)")
        #expect(configFrom(rendered)?.overrides.protocols == configuration.overrides.protocols)
        #expect(configFrom(rendered)?.devices.last?.settings.protocols == configuration.devices.last?.settings.protocols)
    }

    @Test func protocolSubsectionProblemsNameTheLine() {
        #expect(configErrors("overrides {\n\tprotocol {\n\t\tdev_loss_tmo 60\n\t}\n}\n") == ["multipath.conf:2: protocol: type missing"])
        #expect(configErrors("overrides {\n\tprotocol {\n\t\ttype scsi:fc\n\t}\n}\n").first?.hasPrefix(
            "multipath.conf:3: type: \"scsi:fc\" is not a protocol (expected one of scsi:fcp, ") == true)
        #expect(configErrors("overrides {\n\tprotocol {\n\t\ttype scsi:fcp\n\t\tdev_loss_tmo soon\n\t}\n}\n").count == 1)
        #expect(configWarnings("overrides {\n\tprotocol {\n\t\ttype scsi:fcp\n\t\tno_path_retry 5\n\t}\n}\n") == [
            "multipath.conf:4: option \"no_path_retry\" is not valid in a protocol subsection (type, fast_io_fail_tmo, dev_loss_tmo, eh_deadline), ignored",
        ])
        #expect(configWarnings("defaults {\n\tprotocol {\n\t\ttype scsi:fcp\n\t}\n}\n") == [
            "multipath.conf:2: \"protocol\" subsection is only valid in a devices entry and in overrides, ignored in defaults",
        ])
    }

    @Test func deviceEntryNeedsVendorAndProduct() {
        #expect(configErrors("devices {\n\tdevice {\n\t\tvendor \"V\"\n\t}\n}\n") == ["multipath.conf:2: device: product missing"])
    }

    @Test func multipathEntryNeedsWwid() {
        #expect(configErrors("multipaths {\n\tmultipath {\n\t\talias \"a\"\n\t}\n}\n") == ["multipath.conf:2: multipath: wwid missing"])
    }
}

@Suite struct ConfigOptionValueTests {
    @Test func pollingIntervalAcceptsWholeSeconds() {
        #expect(configFrom(inDefaults("polling_interval 7"))?.pollingIntervalSeconds == 7)
    }

    @Test(arguments: ["abc", "-5", "5s", "+5", "1.5", ""])
    func pollingIntervalRefusesWhatIsNotAWholeNumber(_ value: String) {
        #expect(configErrors(inDefaults("polling_interval \"\(value)\"")) == [
            "multipath.conf:2: polling_interval: \"\(value)\" is not a whole number of seconds",
        ])
    }

    @Test func pollingIntervalRefusesZeroAndMoreThanADay() {
        #expect(configErrors(inDefaults("polling_interval 0")) == ["multipath.conf:2: polling_interval: 0 is out of range (1...86400 seconds)"])
        #expect(configErrors(inDefaults("polling_interval 86401")) == ["multipath.conf:2: polling_interval: 86401 is out of range (1...86400 seconds)"])
    }

    @Test func checkerTimeoutIsUnsetUnlessWritten() {
        #expect(configFrom("")?.checkerTimeoutSeconds == nil)
        #expect(configFrom(inDefaults("checker_timeout 12"))?.checkerTimeoutSeconds == 12)
        #expect(configErrors(inDefaults("checker_timeout 0")) == ["multipath.conf:2: checker_timeout: 0 is out of range (1...86400 seconds)"])
    }

    @Test(arguments: MapProfile.Checker.allCases)
    func pathCheckerAcceptsKeelsCheckers(_ checker: MapProfile.Checker) {
        #expect(configFrom(inDefaults("path_checker \(checker.rawValue)"))?.defaults.pathChecker == checker)
    }

    @Test func pathCheckerRefusesWordsMultipathToolsDoesNotKnow() {
        #expect(configErrors(inDefaults("path_checker banana")) == [
            "multipath.conf:2: path_checker: \"banana\" is not a supported checker (tur, directio, none, readsector0, hp_sw, rdac, emc_clariion)",
        ])
    }

    @Test(arguments: GroupingPolicy.allCases)
    func groupingPolicyAcceptsEveryPolicyWord(_ policy: GroupingPolicy) {
        #expect(configFrom(inDefaults("path_grouping_policy \(policy.description)"))?.defaults.grouping == policy)
    }

    @Test func groupingPolicyRefusesOthers() {
        #expect(configErrors(inDefaults("path_grouping_policy by_mood")) == [
            "multipath.conf:2: path_grouping_policy: \"by_mood\" is not a grouping policy (failover, multibus, group_by_prio, group_by_serial, group_by_node_name, group_by_tpg)",
        ])
    }

    @Test(arguments: ["round-robin 0", "queue-length 0", "service-time 0", "historical-service-time 0", "service-time 2 a b"])
    func pathSelectorAcceptsKernelSelectorsWithTheirArguments(_ selector: String) {
        #expect(configFrom(inDefaults("path_selector \"\(selector)\""))?.defaults.pathSelector == selector)
    }

    @Test func pathSelectorRefusesUnknownNamesAndBadArgumentCounts() {
        let text = """
            defaults {
            \tpath_selector "random 0"
            }
            devices {
            \tdevice {
            \t\tvendor "A"
            \t\tproduct "B"
            \t\tpath_selector "service-time"
            \t}
            \tdevice {
            \t\tvendor "A"
            \t\tproduct "B"
            \t\tpath_selector "service-time x"
            \t}
            \tdevice {
            \t\tvendor "A"
            \t\tproduct "B"
            \t\tpath_selector "service-time 1"
            \t}
            }
            """
        #expect(configErrors(text) == [
            "multipath.conf:2: path_selector: \"random 0\" does not name a path selector (round-robin, queue-length, service-time, historical-service-time)",
            "multipath.conf:8: path_selector: \"service-time\" needs its argument count, e.g. \"service-time 0\"",
            "multipath.conf:13: path_selector: \"service-time x\": the argument count \"x\" is not a number",
            "multipath.conf:18: path_selector: \"service-time 1\" announces 1 arguments but has 0",
        ])
    }

    @Test(arguments: MapProfile.Prioritizer.allCases)
    func prioAcceptsKeelsPrioritizers(_ prio: MapProfile.Prioritizer) {
        #expect(configFrom(inDefaults("prio \(prio.rawValue)"))?.defaults.prio == prio)
    }

    @Test func prioArgsAreKeptAsWritten() {
        #expect(defaultProfile("defaults {\n\tprio alua\n\tprio_args \"exclusive_pref_bit\"\n}\n")?.prioArgs == "exclusive_pref_bit")
    }

    @Test func failbackAcceptsItsWordsAndSeconds() {
        #expect(configFrom(inDefaults("failback manual"))?.defaults.failback == .manual)
        #expect(configFrom(inDefaults("failback immediate"))?.defaults.failback == .immediate)
        #expect(configFrom(inDefaults("failback followover"))?.defaults.failback == .followover)
        #expect(configFrom(inDefaults("failback 15"))?.defaults.failback == .deferred(seconds: 15))
    }

    @Test func failbackRefusesZeroSeconds() {
        #expect(configErrors(inDefaults("failback 0")) == ["multipath.conf:2: failback: 0 is out of range (1...86400 seconds)"])
    }

    @Test func noPathRetryAcceptsFailQueueAndRetries() {
        #expect(configFrom(inDefaults("no_path_retry fail"))?.defaults.noPathRetry == .fail)
        #expect(configFrom(inDefaults("no_path_retry queue"))?.defaults.noPathRetry == .queue)
        #expect(configFrom(inDefaults("no_path_retry 12"))?.defaults.noPathRetry == .retries(12))
    }

    @Test func noPathRetryZeroMeansFailAsInMultipathTools() {
        #expect(configFrom(inDefaults("no_path_retry 0"))?.defaults.noPathRetry == .fail)
    }

    @Test(arguments: ["forever", "-1", "queue_if_no_path"])
    func noPathRetryRefusesOtherWords(_ value: String) {
        #expect(configErrors(inDefaults("no_path_retry \(value)")) == [
            "multipath.conf:2: no_path_retry: \"\(value)\" must be fail, queue or a number of retries",
        ])
    }

    @Test(arguments: ["0", "2 pg_init_retries 50", "1 retain_attached_hw_handler"])
    func featuresAcceptCountedWords(_ value: String) {
        #expect(configFrom(inDefaults("features \"\(value)\""))?.defaults.features == value)
    }

    @Test func featuresRefuseAWrongOrMissingCount() {
        let text = "defaults {\n\tfeatures \"2 queue_if_no_path\"\n}\noverrides {\n\tfeatures \"queue_if_no_path\"\n\thardware_handler \"\"\n}\n"
        #expect(configErrors(text) == [
            "multipath.conf:2: features: \"2 queue_if_no_path\" announces 2 words but has 1",
            "multipath.conf:5: features: \"queue_if_no_path\" must start with the number of words that follow, e.g. \"0\"",
            "multipath.conf:6: hardware_handler: empty; write \"0\" for no hardware handler",
        ])
    }

    @Test func hardwareHandlerAcceptsCountedWords() {
        #expect(configFrom(inDefaults("hardware_handler \"1 alua\""))?.defaults.hardwareHandler == "1 alua")
        #expect(configErrors(inDefaults("hardware_handler \"alua\"")) == [
            "multipath.conf:2: hardware_handler: \"alua\" must start with the number of words that follow, e.g. \"0\"",
        ])
    }

    @Test func sanPathErrOptionsBuildFlapDamping() {
        // polling_interval written: the forget rate is taken as written (Keel's cadence scales it).
        let text = "defaults {\n\tpolling_interval 5\n\tsan_path_err_threshold 3\n\tsan_path_err_forget_rate 10\n\tsan_path_err_recovery_time 60\n}\n"
        let damping = defaultProfile(text)?.policy.flapDamping
        #expect(damping == FlapDamping(threshold: 3, forgetRate: 10, recoveryTimeNs: 60 * Time.nsPerSecond))
        #expect(damping?.isEnabled == true)
    }

    @Test func sanPathErrNoTurnsTheOptionOff() {
        let text = "defaults {\n\tpolling_interval 5\n\tsan_path_err_threshold no\n\tsan_path_err_forget_rate 10\n\tsan_path_err_recovery_time no\n}\n"
        #expect(defaultProfile(text)?.policy.flapDamping == FlapDamping(threshold: 0, forgetRate: 10, recoveryTimeNs: 0))
        #expect(configErrors(inDefaults("san_path_err_threshold many")) == [
            "multipath.conf:2: san_path_err_threshold: \"many\" must be no or a whole number",
        ])
    }

    @Test func userFriendlyNamesIsYesOrNo() {
        #expect(configFrom(inDefaults("user_friendly_names yes"))?.defaults.userFriendlyNames == true)
        #expect(configErrors(inDefaults("user_friendly_names true")) == [
            "multipath.conf:2: user_friendly_names: \"true\" must be yes or no",
        ])
    }

    @Test func aliasPrefixDefaultsToMpathAndRefusesSlashes() {
        #expect(defaultProfile("")?.aliasPrefix == "mpath")
        #expect(configFrom(inDefaults("alias_prefix \"disk\""))?.defaults.aliasPrefix == "disk")
        #expect(configErrors(inDefaults("alias_prefix \"a/b\"")) == [
            "multipath.conf:2: alias_prefix: \"a/b\" contains \"/\", which a map name cannot",
        ])
    }

    @Test func findMultipathsAcceptsEveryWordIncludingYesAndNo() {
        let expected: [(String, Configuration.FindMultipaths)] = [
            ("strict", .strict), ("off", .off), ("no", .off), ("on", .on), ("yes", .on), ("greedy", .greedy), ("smart", .smart),
        ]
        for (word, mode) in expected {
            #expect(configFrom(inDefaults("find_multipaths \(word)"))?.findMultipaths == mode, "\(word)")
        }
        #expect(configFrom("")?.findMultipaths == .strict)
        #expect(configErrors(inDefaults("find_multipaths maybe")) == [
            "multipath.conf:2: find_multipaths: \"maybe\" must be strict, off, no, on, yes, greedy or smart",
        ])
    }

    @Test func aliasMustBeAMapName() {
        let text = "multipaths {\n\tmultipath {\n\t\twwid \"36001\"\n\t\talias \"a/b\"\n\t}\n}\n"
        #expect(configErrors(text) == ["multipath.conf:4: alias: \"a/b\" contains \"/\", which a map name cannot"])
    }

    @Test func twoWwidsCannotShareAnAlias() {
        let text = """
            multipaths {
            \tmultipath {
            \t\twwid "36001"
            \t\talias "data"
            \t}
            \tmultipath {
            \t\twwid "36002"
            \t\talias "data"
            \t}
            }
            """
        #expect(configErrors(text) == [
            "multipath.conf:6: alias \"data\" of wwid 36002 is already used by wwid 36001 (multipath.conf:2)",
        ])
    }

    @Test func optionsMultipathToolsRefusesInAMultipathEntryAreWarnings() {
        let text = "multipaths {\n\tmultipath {\n\t\twwid \"36001\"\n\t\tpath_checker directio\n\t}\n}\n"
        #expect(configWarnings(text) == ["multipath.conf:4: option \"path_checker\" is not valid in multipath, ignored"])
    }
}

@Suite struct ConfigKeelOptionTests {
    @Test func fastProbeIntervalDefaultsTo200Ms() {
        #expect(defaultProfile("")?.policy.intervalFastNs == 200 * Time.nsPerMs)
    }

    @Test func fastProbeIntervalSetsTheFastInterval() {
        #expect(defaultProfile(inDefaults("fast_probe_interval_ms 50"))?.policy.intervalFastNs == 50 * Time.nsPerMs)
    }

    @Test func fastProbeIntervalAcceptsItsBounds() {
        #expect(configFrom(inDefaults("fast_probe_interval_ms 10"))?.fastProbeIntervalMs == 10)
        #expect(configFrom(inDefaults("fast_probe_interval_ms 5000"))?.fastProbeIntervalMs == 5000)
    }

    @Test(arguments: [9, 5001, 0])
    func fastProbeIntervalRefusesValuesOutsideItsRange(_ value: Int) {
        #expect(configErrors(inDefaults("fast_probe_interval_ms \(value)")) == [
            "multipath.conf:2: fast_probe_interval_ms: \(value) is out of range (10...5000 ms)",
        ])
    }

    @Test func capacitiesDefaultToTheBuiltInLimits() {
        #expect(configFrom("")?.capacities == Capacities.default)
    }

    @Test func capacitiesComeFromKeelsOptions() {
        let text = "defaults {\n\tmax_paths 2048\n\tmax_maps 512\n\tmax_paths_per_map 64\n\tring_slots 4096\n}\n"
        #expect(configFrom(text)?.capacities == Capacities(pathsMax: 2048, mapsMax: 512, pathsPerMapMax: 64, ringSlots: 4096))
    }

    @Test func capacitiesRefuseZeroAndValuesAboveTheirRange() {
        let text = "defaults {\n\tmax_paths 0\n\tmax_maps 2000000\n\tmax_paths_per_map x\n\tring_slots 8\n}\n"
        #expect(configErrors(text) == [
            "multipath.conf:2: max_paths: 0 is out of range (1...1048576)",
            "multipath.conf:3: max_maps: 2000000 is out of range (1...1048576)",
            "multipath.conf:4: max_paths_per_map: \"x\" is not a whole number",
            "multipath.conf:5: ring_slots: 8 is out of range (16...1048576)",
        ])
    }

    @Test func pathsPerMapCannotExceedPaths() {
        let text = "defaults {\n\tmax_paths 100\n\tmax_paths_per_map 200\n}\n"
        #expect(configErrors(text) == ["multipath.conf:3: max_paths_per_map: 200 is more than max_paths (100)"])
    }
}

@Suite struct ConfigRenderTests {
    @Test func renderOfTheBuiltInConfigurationShowsEveryDefault() {
        let text = Configuration().render()
        #expect(text.contains("\t# polling_interval 5  (built-in; healthy paths use healthy_interval_ms)\n"),
                "an unwritten polling_interval stays unwritten, or the reloaded text would switch the cadence")
        #expect(!text.contains("\tmax_polling_interval"))
        #expect(text.contains("\thealthy_interval_ms 500\n"))
        #expect(text.contains("\tmax_healthy_checks_per_second 4096\n"))
        #expect(text.contains("\t# path_selector \"service-time 0\"  (built-in)\n"), "built-in map values are shown as comments")
        #expect(text.contains("\t# prio const  (built-in)\n"))
        #expect(text.contains("\tdetect_prio yes\n"))
        #expect(text.contains("\tfast_probe_interval_ms 200\n"))
        #expect(!text.contains("checker_timeout"))
        #expect(!text.contains("no_path_retry"))
        #expect(!text.contains("blacklist"))
    }

    @Test func renderThenLoadGivesTheSameConfiguration() throws {
        let text = """
            defaults {
            \tmax_polling_interval 40
            \tchecker_timeout 15
            \tfind_multipaths greedy
            \tno_path_retry 6
            \tfeatures "1 pg_init_retries"
            \tprio_args "say ""hi"" there"
            \tfast_probe_interval_ms 100
            \tmax_paths 4096
            }
            blacklist {
            \tdevnode "^(ram|loop)[0-9]"
            \twwid "*"
            \tproperty "ID_NOPE"
            \tdevice {
            \t\tvendor "IBM"
            \t}
            }
            blacklist_exceptions {
            \twwid "^3600"
            \tproperty "(SCSI_IDENT_|ID_WWN)"
            \tdevice {
            \t\tproduct "disk[0-9]+"
            \t}
            }
            devices {
            \tdevice {
            \t\tvendor "LIO-ORG"
            \t\tproduct ".*"
            \t\tpath_grouping_policy group_by_prio
            \t\tprio alua
            \t\thardware_handler "1 alua"
            \t\tfailback 30
            \t}
            }
            overrides {
            \tsan_path_err_threshold 2
            \tuser_friendly_names yes
            }
            multipaths {
            \tmultipath {
            \t\twwid "36001405aaaa"
            \t\talias "db"
            \t\tno_path_retry queue
            \t}
            }
            """
        let original = try #require(configFrom(text))
        let rendered = original.render()
        let again = try #require(configFrom(rendered))
        #expect(again == original)
        #expect(again.render() == rendered)
    }
}
