// keelctl's reading and drawing of keeld's answers: rows from raw format output, JSON, tables,
// colour, the top screen and its transitions, and the latency histogram read back.
import KeelCore
import KeelCtl
import Testing

@Suite struct KeelCtlRowsTests {
    static let pathsAnswer = """
    mpatha|sdb|8:16|2:0:0:0|active|ready|running|50|tur|-|0|3600a0b80000001
    mpatha|sdc|8:32|3:0:0:0|failed|faulty|offline|10|tur|orphan|2|3600a0b80000001
    broken line without fields
    """

    @Test func pathRowsAreReadFieldByFieldAndMalformedLinesSkipped() {
        let rows = Rows.paths(Self.pathsAnswer)
        #expect(rows.count == 2)
        #expect(rows[1].dev == "sdc" && rows[1].dmState == "failed" && rows[1].checkerState == "faulty" && rows[1].nextCheck == "orphan")
        #expect(rows[0].fields == ["mpatha", "sdb", "8:16", "2:0:0:0", "active", "ready", "running", "50", "tur", "-", "0", "3600a0b80000001"])
    }

    @Test func theCommandsAskForEveryFieldInOrder() {
        #expect(Rows.pathsCommand == "show paths raw format \"%m|%d|%D|%i|%t|%T|%o|%p|%c|%C|%0|%w\"")
        #expect(Rows.mapsCommand.hasPrefix("show maps raw format \"%n|%w|"))
        #expect(Rows.mapsCommand.utf8.count <= ControlGrammar.lineBytesMax)
        #expect(PathRow.headers.count == 12 && MapRow.headers.count == 12)
    }

    @Test func mapRowsAreRead() {
        let rows = Rows.maps("mpatha|3600a|dm-0|10G|2|queue|immediate|active|NETAPP|LUN C-Mode|3|7\n")
        #expect(rows.count == 1)
        #expect(rows[0].product == "LUN C-Mode" && rows[0].mapLoads == "7" && rows[0].queueing == "queue")
    }

    @Test func jsonEscapesValuesAndIsEmptyForNoRows() {
        var rows = Rows.paths(Self.pathsAnswer)
        rows[0].map = "odd \"name\"\\"
        let json = Rows.json(rows)
        #expect(json.contains("\"map\": \"odd \\\"name\\\"\\\\\""))
        #expect(json.contains("\"chk_st\": \"faulty\""))
        #expect(Rows.json([PathRow]()) == "{\n  \"paths\": []\n}\n")
    }

    @Test func metricsAreReadBackByNameAndLabels() {
        let m = MetricSamples("# HELP x y\nkeel_paths{state=\"ready\"} 4\nkeel_maps 1\ngarbage\nkeel_bad x\n")
        #expect(m["keel_paths{state=\"ready\"}"] == 4)
        #expect(m["keel_maps"] == 1)
        #expect(m["keel_bad"] == nil && m.values.count == 2)
    }
}

@Suite struct KeelCtlRenderTests {
    @Test func tablesAlignOnThePlainTextAndColourOnlyStateColumns() {
        let plain = Painter(colour: false).table(headers: ["DEV", "DM"], rows: [["sdb", "active"], ["sdaa", "failed"]], stateColumns: [1])
        #expect(plain == "DEV   DM\nsdb   active\nsdaa  failed\n")
        let coloured = Painter(colour: true).table(headers: ["DEV", "DM"], rows: [["sdb", "active"], ["sdaa", "failed"]], stateColumns: [1])
        #expect(coloured.contains("sdb   \u{1B}[32mactive\u{1B}[0m"))
        #expect(coloured.contains("sdaa  \u{1B}[31mfailed\u{1B}[0m"))
        let notState = Painter(colour: true).table(headers: ["A"], rows: [["active"]])
        #expect(!notState.contains("\u{1B}[32m"), "only state columns are coloured")
    }

    @Test func topologyColoursPathAndGroupStatesOnly() {
        let text = """
        mpatha (3600a) dm-0 NETAPP,LUN
        size=10G features='1 queue_if_no_path' hwhandler='1 alua' wp=rw
        |-+- policy='service-time 0' prio=50 status=active
        | `- 2:0:0:0 sdb 8:16 active ready running
        """
        let out = Painter(colour: true).topology(text)
        #expect(out.contains("status=\u{1B}[32mactive\u{1B}[0m"))
        #expect(out.contains("8:16 \u{1B}[32mactive\u{1B}[0m \u{1B}[32mready\u{1B}[0m \u{1B}[32mrunning\u{1B}[0m"))
        #expect(out.hasPrefix("mpatha (3600a) dm-0"), "the map line is left alone")
        #expect(Painter(colour: false).topology(text) == text)
    }
}

@Suite struct KeelCtlTopTests {
    static func path(_ dev: String, _ dm: String, _ check: String) -> PathRow {
        Rows.paths("mpatha|\(dev)|8:16|2:0:0:0|\(dm)|\(check)|running|50|tur|-|0|3600a").first!
    }

    @Test func topReportsTransitionsBetweenRefreshesAndRemovedPaths() {
        var model = TopModel()
        let painter = Painter(colour: false)
        let metrics = MetricSamples("keel_memory_locked_bytes 20480000\nkeel_loop_passes_total 100\n")
        let first = model.screen(paths: [Self.path("sdb", "active", "ready"), Self.path("sdc", "active", "ready")], maps: [],
                                 metrics: metrics, daemon: "pid 7 idle\n", clock: "10:00:00", nowNs: 0, painter: painter)
        #expect(first.contains("(none seen yet)"))
        #expect(first.contains("memory locked 20000 kB"))
        #expect(first.contains("paths 2: ready 2"))
        let second = model.screen(paths: [Self.path("sdb", "failed", "faulty")], maps: [],
                                  metrics: MetricSamples("keel_loop_passes_total 300\n"), daemon: "pid 7 idle",
                                  clock: "10:00:01", nowNs: Time.nsPerSecond, painter: painter)
        #expect(second.contains("10:00:01 sdb in mpatha: ready/active -> faulty/failed"))
        #expect(second.contains("10:00:01 sdc: removed"))
        #expect(second.contains("loop passes 300 (200/s)"))
        #expect(model.recent.count == 2)
        for i in 0..<20 {
            let dm = i % 2 == 0 ? "active" : "failed"
            _ = model.screen(paths: [Self.path("sdb", dm, "ready")], maps: [], metrics: metrics, daemon: "", clock: "x",
                             nowNs: Int64(i + 2) * Time.nsPerSecond, painter: painter)
        }
        #expect(model.recent.count == TopModel.recentMax, "the list is bounded")
    }

    @Test func checkLatencyQuantilesComeFromCumulativeBuckets() {
        let m = MetricSamples("""
        keel_check_latency_seconds_bucket{le="0.001"} 50
        keel_check_latency_seconds_bucket{le="0.005"} 98
        keel_check_latency_seconds_bucket{le="0.5"} 100
        keel_check_latency_seconds_bucket{le="+Inf"} 100
        """)
        let latency = CheckLatency(m)
        #expect(latency.count == 100)
        #expect(latency.quantileText(0.5) == "<= 1 ms")
        #expect(latency.quantileText(0.99) == "<= 500 ms")
        #expect(CheckLatency(MetricSamples("")).quantileText(0.5) == "-")
    }

    @Test func topShowsPathsTakenBackAndThreadStacks() {
        let metrics = MetricSamples("""
        keel_check_latency_seconds_bucket{le="0.001"} 7
        keel_check_latency_seconds_bucket{le="+Inf"} 7
        keel_path_back_seconds_bucket{le="0.05"} 2
        keel_path_back_seconds_bucket{le="0.1"} 3
        keel_path_back_seconds_bucket{le="+Inf"} 3
        keel_thread_stack_used_bytes{thread="keel-recovery"} 15360
        keel_thread_stack_used_bytes{thread="keel-events"} 45056
        keel_thread_stack_bytes{thread="keel-recovery"} 131072
        keel_thread_stack_bytes{thread="keel-events"} 262144
        """)
        var model = TopModel()
        let screen = model.screen(paths: [], maps: [], metrics: metrics, daemon: "", clock: "x", nowNs: 1, painter: Painter(colour: false))
        #expect(screen.contains("paths taken back: 3, check sent to reinstated p50 <= 50 ms, p99 <= 100 ms"), "\(screen)")
        #expect(screen.contains("thread stacks used: keel-events 44/256 KiB, keel-recovery 15/128 KiB"), "\(screen)")
        var fresh = TopModel()
        #expect(!fresh.screen(paths: [], maps: [], metrics: MetricSamples(""), daemon: "", clock: "x", nowNs: 1,
                              painter: Painter(colour: false)).contains("paths taken back"), "no line without path-backs")
    }
}
