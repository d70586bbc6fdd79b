import AlignerServer
import Testing

@Suite struct ConfigurationTests {
    @Test func defaultsNeedNoFile() {
        let c = AlignerConfiguration()
        #expect(c.listen == ListenAddress(host: "127.0.0.1", port: 9095))
        #expect(c.ingest.maxDecodedBytes == 32 << 20)
    }

    @Test func fileValuesApply() throws {
        let c = try AlignerConfiguration.parse(yaml: """
            listen: 0.0.0.0:9200
            log_level: debug
            ingest:
              max_series: 5000
              series_idle_timeout: 1h30m
              ha_replica_label: __replica__
              ha_cluster_labels: [cluster]
              ha_failover_timeout: 1m
            rules:
              external_labels: {cluster: prod-eu}
              external_url: https://prometheus.example
              subquery_step: 30s
              query_offset: 30s
            """)
        #expect(c.ruleQueryOffset == .seconds(30) && AlignerConfiguration().ruleQueryOffset == .zero)
        #expect(throws: ConfigurationError.self) { try AlignerConfiguration.parse(yaml: "rules: {query_offset: soon}") }
        #expect(c.ruleExternalLabels == ["cluster": "prod-eu"])
        #expect(c.ruleSubqueryStep == .seconds(30) && AlignerConfiguration().ruleSubqueryStep == .seconds(60))
        #expect(c.ruleExternalURL == "https://prometheus.example")
        #expect(c.listen == ListenAddress(host: "0.0.0.0", port: 9200))
        #expect(c.ingest.maxSeries == 5000)
        #expect(c.ingest.seriesIdleTimeout == .seconds(5400))
        #expect(c.ingest.replicas.replicaLabel == "__replica__" && c.ingest.replicas.clusterLabels == ["cluster"])
        #expect(c.ingest.replicas.failoverTimeout == .seconds(60))
        #expect(try AlignerConfiguration.parse(yaml: "ingest: {ha_replica_label: \"\"}").ingest.replicas.replicaLabel.isEmpty)
        #expect(AlignerConfiguration().ingest.replicas.replicaLabel == "prometheus_replica")
    }

    @Test func cpuScheduling() throws {
        #expect(AlignerConfiguration().batchScheduling)
        #expect(try !AlignerConfiguration.parse(yaml: "cpu_scheduling: normal").batchScheduling)
        #expect(try AlignerConfiguration.parse(yaml: "cpu_scheduling: Batch").batchScheduling)
        #expect(throws: ConfigurationError.self) { try AlignerConfiguration.parse(yaml: "cpu_scheduling: fifo") }
        var c = AlignerConfiguration()
        try c.applyEnvironment(["ALIGNER_CPU_SCHEDULING": "normal"])
        #expect(!c.batchScheduling)
        #expect(throws: ConfigurationError.self) { try c.applyEnvironment(["ALIGNER_CPU_SCHEDULING": "idle"]) }
    }

    @Test func noiseControlKeys() throws {
        let c = try AlignerConfiguration.parse(yaml: """
            events:
              max_open: 50
              flood_threshold: 4
              flood_window: 30s
              flap_reopenings: 5
              flap_window: 15m
              retention: 30d
            """)
        #expect(c.eventLimits.maxOpen == 50)
        #expect(c.eventLimits.floodThreshold == 4)
        #expect(c.eventLimits.floodWindow == 30_000)
        #expect(c.eventLimits.flapReopenings == 5)
        #expect(c.eventLimits.flapWindow == 900_000)
        #expect(c.eventLimits.retention == 30 * 86_400_000)
        #expect(try AlignerConfiguration.parse(yaml: "events: {retention: 0}").eventLimits.retention == 0)
        #expect(AlignerConfiguration().eventLimits.retention == 90 * 86_400_000)
    }

    @Test func everyProblemIsReportedWithItsPosition() {
        do {
            _ = try AlignerConfiguration.parse(yaml: """
                listen: nowhere
                ingest:
                  max_series: -3
                  colour: blue
                  ha_cluster_labels: [cluster, 1-bad]
                extra: 1
                events:
                  flap_reopenings: 2
                  flap_window: soon
                  flap: on
                """, file: "aligner.yml")
            Issue.record("a bad file was accepted")
        } catch let error as ConfigurationError {
            #expect(error.problems == [
                "aligner.yml:1:9: listen must be host:port, got \"nowhere\"",
                "aligner.yml:3:15: ingest.max_series must be a positive integer, got \"-3\"",
                "aligner.yml:4:3: unknown key \"ingest.colour\" (known: ingest.max_body_bytes, ingest.max_decoded_bytes, ingest.max_inflight_bytes, ingest.max_series, ingest.series_idle_timeout, ingest.ha_replica_label, ingest.ha_cluster_labels, ingest.ha_failover_timeout)",
                "aligner.yml:5:22: ingest.ha_cluster_labels must be a list of label names such as [cluster, prometheus]",
                "aligner.yml:6:1: unknown key \"extra\" (known: listen, log_level, cpu_scheduling, ingest.max_body_bytes, ingest.max_decoded_bytes, ingest.max_inflight_bytes, ingest.max_series, ingest.series_idle_timeout, ingest.ha_replica_label, ingest.ha_cluster_labels, ingest.ha_failover_timeout, rules.paths, rules.evaluation_interval, rules.subquery_step, rules.query_offset, rules.gap_tolerance, rules.external_labels, rules.external_url, events.data_dir, events.resolve_after, events.cooldown, events.max_open, events.flood_threshold, events.flood_window, events.flap_reopenings, events.flap_window, events.retention)",
                "aligner.yml:9:16: events.flap_window must be a duration such as 1m",
                "aligner.yml:10:3: unknown key \"events.flap\" (known: events.data_dir, events.resolve_after, events.cooldown, events.max_open, events.flood_threshold, events.flood_window, events.flap_reopenings, events.flap_window, events.retention)",
            ])
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func environmentOverridesFile() throws {
        var c = try AlignerConfiguration.parse(yaml: "listen: 127.0.0.1:1")
        try c.applyEnvironment(["ALIGNER_LISTEN": "127.0.0.1:2"])
        #expect(c.listen.port == 2)
    }

    @Test func prometheusDurations() {
        #expect(parsePrometheusDuration("250ms") == .milliseconds(250))
        #expect(parsePrometheusDuration("1h30m") == .seconds(5400))
        #expect(parsePrometheusDuration("2d") == .seconds(172_800))
        #expect(parsePrometheusDuration("5") == nil)
        #expect(parsePrometheusDuration("") == nil)
    }
}
