import AlignerTesting
import Foundation
import Testing

/// A real Prometheus (Debian's `prometheus`) scrapes itself and Aligner on loopback and
/// remote-writes everything to Aligner; every sample and metadata entry it sent must arrive.
@Suite(.serialized) struct PrometheusEndToEndTests {
    @Test(.timeLimit(.minutes(2))) func prometheusRemoteWritesToAligner() async throws {
        let s = try await RunningServer.start()
        defer { Task { await s.stop() } }
        let promPort = try freeLoopbackPort()
        let prometheus = try Self.startPrometheus(port: promPort, scrapeConfigs: """
              - job_name: prometheus
                static_configs: [{targets: ['127.0.0.1:\(promPort)']}]
              - job_name: aligner
                static_configs: [{targets: ['127.0.0.1:\(s.port)']}]
            """, writeTo: s.port)
        defer { prometheus.stop() }

        // Both scrape jobs' `up` series arrive, with the sender's external label.
        var upJobs: Set<String> = []
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let body = try await HTTPClient.request("GET", "\(s.base)/api/v1/series?match[]=up").text
            upJobs = Set(["prometheus", "aligner"].filter { body.contains("\"job\":\"\($0)\"") && body.contains("\"sender\":\"e2e\"") })
            if upJobs.count == 2, try await s.metric("aligner_ingest_metadata_total") ?? 0 > 0 { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        #expect(upJobs == ["prometheus", "aligner"])

        // Every sample the sender counts as sent was accepted: compare at a quiet moment.
        func sender(_ name: String) async throws -> Double {
            let text = try await HTTPClient.request("GET", "http://127.0.0.1:\(promPort)/metrics").text
            let line = text.split(separator: "\n").first { $0.hasPrefix(name + "{") }
            return line.flatMap { Double($0.split(separator: " ").last!) } ?? -1
        }
        var matched = false
        var last = ""
        while ContinuousClock.now < deadline + .seconds(30) {
            let sentBefore = try await sender("prometheus_remote_storage_samples_total")
            let received = try await s.metric("aligner_ingest_samples_total") ?? 0
            let sentAfter = try await sender("prometheus_remote_storage_samples_total")
            let metadataSent = try await sender("prometheus_remote_storage_metadata_total")
            let metadataReceived = try await s.metric("aligner_ingest_metadata_total") ?? 0
            last = "sent \(sentBefore)/\(sentAfter), received \(received); metadata sent \(metadataSent), received \(metadataReceived)"
            if sentBefore == sentAfter && sentAfter == received && sentAfter > 100 && metadataSent == metadataReceived {
                matched = true
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(matched, "\(last)")
        #expect(try await sender("prometheus_remote_storage_samples_failed_total") == 0)
        #expect(try await s.metric("aligner_http_requests_total{handler=\"write\",code=\"400\"}") == 0)
        #expect(try await s.metric("aligner_ingest_series_active") ?? 0 > 100)
    }

    /// A highly available pair (kube-prometheus' external labels) scraping the same target: the
    /// series arrive once, without the replica label; the standby's requests are answered 202; when
    /// the elected replica stops, the standby's samples are taken after the failover timeout.
    @Test(.timeLimit(.minutes(2))) func highlyAvailablePairIsTakenOnce() async throws {
        let s = try await RunningServer.start { $0.ingest.replicas.failoverTimeout = .seconds(2) }
        defer { Task { await s.stop() } }
        func start(_ replica: Int) throws -> Prometheus {
            let port = try freeLoopbackPort()
            return try Self.startPrometheus(port: port, scrapeConfigs: """
                  - job_name: aligner
                    static_configs: [{targets: ['127.0.0.1:\(s.port)']}]
                """, writeTo: s.port, externalLabels: "{prometheus: monitoring/k8s, prometheus_replica: prometheus-k8s-\(replica)}")
        }
        func until(_ what: String, _ condition: () async throws -> Bool) async throws {
            let deadline = ContinuousClock.now + .seconds(45)
            while ContinuousClock.now < deadline {
                if try await condition() { return }
                try await Task.sleep(for: .milliseconds(200))
            }
            Issue.record("timed out waiting for \(what)")
        }
        let up = "\(s.base)/api/v1/series?match[]=up"
        let first = try start(0)
        var firstRunning = true
        defer { if firstRunning { first.stop() } }
        try await until("the first replica's samples") { try await HTTPClient.request("GET", up).text.contains(#""job":"aligner""#) }
        let second = try start(1)
        defer { second.stop() }
        try await until("the standby's requests answered 202") {
            try await s.metric(#"aligner_http_requests_total{handler="write",code="202"}"#) ?? 0 >= 3
        }
        // One `up` series, without the replica label.
        let series = try await HTTPClient.request("GET", up).text
        #expect(series == #"{"data":[{"__name__":"up","instance":"127.0.0.1:\#(s.port)","job":"aligner","prometheus":"monitoring/k8s"}],"status":"success"}"#)
        #expect(try await s.metric("aligner_ingest_requests_deduplicated_total") ?? 0 >= 3)
        #expect(try await s.metric(#"aligner_http_requests_total{handler="write",code="400"}"#) == 0)
        // The elected replica stops: the standby's samples are taken, into the same series.
        let created = try await s.metric("aligner_ingest_series_created_total") ?? 0
        first.stop()
        firstRunning = false
        try await Task.sleep(for: .seconds(1))
        let before = try await s.metric("aligner_ingest_samples_total") ?? 0
        try await until("the standby's samples taken") { try await s.metric("aligner_ingest_samples_total") ?? 0 > before + 50 }
        // Taken, not a last flush of the stopped one: samples keep coming, none dropped any more.
        try await Task.sleep(for: .seconds(2))
        let (taken, dropped) = (try await s.metric("aligner_ingest_samples_total") ?? 0, try await s.metric("aligner_ingest_requests_deduplicated_total") ?? 0)
        try await until("more of the standby's samples") { try await s.metric("aligner_ingest_samples_total") ?? 0 > taken + 50 }
        #expect(try await s.metric("aligner_ingest_requests_deduplicated_total") == dropped)
        #expect(try await HTTPClient.request("GET", up).text == series)
        #expect(try await s.metric("aligner_ingest_series_created_total") ?? 0 < created + 10)
    }
}

extension PrometheusEndToEndTests {
    /// A running Prometheus and its folder.
    struct Prometheus {
        let process: Process
        let directory: URL

        func stop() {
            process.terminate()
            process.waitUntilExit()
            try? FileManager.default.removeItem(at: directory)
        }
    }

    /// Starts Debian's Prometheus (or `PROMETHEUS_BINARY`) on `port`, scraping every second with
    /// `scrapeConfigs` (YAML list items, indented by 2) and remote-writing to Aligner on `writeTo`
    /// in batches sent within a second.
    static func startPrometheus(port: Int, scrapeConfigs: String, writeTo alignerPort: Int,
                                externalLabels: String = "{sender: e2e}") throws -> Prometheus {
        let binary = ProcessInfo.processInfo.environment["PROMETHEUS_BINARY"] ?? "/usr/bin/prometheus"
        try #require(FileManager.default.isExecutableFile(atPath: binary),
                     "Prometheus is not installed: run ./scripts/test.sh, which installs it (apt-get install prometheus)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aligner-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let config = """
            global:
              scrape_interval: 1s
              external_labels: \(externalLabels)
            scrape_configs:
            \(scrapeConfigs)
            remote_write:
              - url: http://127.0.0.1:\(alignerPort)/api/v1/write
                queue_config: {batch_send_deadline: 1s, max_samples_per_send: 500, min_backoff: 50ms}
                metadata_config: {send_interval: 2s}
            """
        try config.write(to: dir.appendingPathComponent("prometheus.yml"), atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "--config.file=\(dir.path)/prometheus.yml", "--storage.tsdb.path=\(dir.path)/data",
            "--web.listen-address=127.0.0.1:\(port)",
        ]
        let log = FileHandle(forWritingAtPath: "/dev/null")
        process.standardOutput = log
        process.standardError = log
        try process.run()
        return Prometheus(process: process, directory: dir)
    }
}

/// An unused TCP port on 127.0.0.1 (bound to 0, read back, released).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw HTTPClient.Failure(description: "cannot find a free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}
