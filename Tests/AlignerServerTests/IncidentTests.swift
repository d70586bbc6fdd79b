import AlignerCore
import AlignerIngest
import AlignerServer
import AlignerTesting
import Foundation
import Testing

/// The reference incident, played as remote-write traffic into a real Aligner process: a rollout of
/// shop/darwin-store sticks at 4/5 ready, new pods crash-loop, 5xx bursts to 100%, CPU at 62.5% of
/// the limit; an unrelated workload rolls out healthily at the same time.
@Suite(.serialized) struct IncidentTests {
    /// The pack's classes with `for: 0`, so the test runs in seconds.
    static let rules = """
        groups:
          - name: incident
            rules:
              - alert: DeploymentReplicasMismatch
                expr: (kube_deployment_spec_replicas - on(namespace, deployment) kube_deployment_status_replicas_ready) > 0
                event: {class: replica_mismatch, severity: critical, subject: {namespace: namespace, kind: Deployment, name: deployment}}
                annotations: {summary: "{{ $labels.deployment }}: {{ $value }} replicas missing"}
              - alert: PodCrashLooping
                expr: kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff"} == 1
                event: {class: crash_loop, severity: critical, subject: {namespace: namespace, kind: Pod, name: pod}}
              - alert: ServiceErrorRateHigh
                expr: errors_ratio{service!=""} > 0.05
                event: {class: error_rate_spike, severity: critical, subject: {namespace: namespace, kind: Deployment, name: service}}
                annotations: {summary: "5xx ratio {{ $value | humanizePercentage }}"}
              - alert: ContainerCPUNearLimit
                expr: cpu_ratio > 0.6
                event: {class: cpu_burst, severity: warning, subject: {namespace: namespace, kind: Pod, name: pod}}
                annotations: {summary: "CPU {{ $value | humanizePercentage }} of limit"}
        """

    func series(broken: Bool, t: Int64) -> TestRequest {
        let ns = ("namespace", "shop")
        var s: [TestSeries] = [
            TestSeries("kube_deployment_spec_replicas", [ns, ("deployment", "darwin-store")], samples: [(t, 5)]),
            TestSeries("kube_deployment_status_replicas_ready", [ns, ("deployment", "darwin-store")], samples: [(t, broken ? 4 : 5)]),
            TestSeries("kube_deployment_spec_replicas", [ns, ("deployment", "cart")], samples: [(t, 3)]),
            TestSeries("kube_deployment_status_replicas_ready", [ns, ("deployment", "cart")], samples: [(t, 3)]),
            TestSeries("kube_pod_owner", [ns, ("pod", "darwin-store-7d9f-x1"), ("owner_kind", "ReplicaSet"), ("owner_name", "darwin-store-7d9f")], samples: [(t, 1)]),
            TestSeries("kube_replicaset_owner", [ns, ("replicaset", "darwin-store-7d9f"), ("owner_kind", "Deployment"), ("owner_name", "darwin-store")], samples: [(t, 1)]),
            TestSeries("kube_pod_container_status_waiting_reason", [ns, ("pod", "darwin-store-7d9f-x1"), ("container", "app"), ("reason", "CrashLoopBackOff")], samples: [(t, broken ? 1 : 0)]),
            TestSeries("errors_ratio", [ns, ("service", "darwin-store")], samples: [(t, broken ? 1 : 0)]),
            TestSeries("cpu_ratio", [ns, ("pod", "darwin-store-7d9f-x1"), ("container", "app")], samples: [(t, broken ? 0.625 : 0.1)]),
        ]
        s.append(TestSeries("errors_ratio", [ns, ("service", "cart")], samples: [(t, 0)]))
        return TestRequest(series: s)
    }

    /// A real Aligner process with the incident's rules and a fresh data directory.
    func startProcess(rules: String) async throws -> AlignerProcess {
        let dir = try ScratchDirectory.make("aligner-incident")
        let config = dir.appendingPathComponent("aligner.yml").path
        try """
            rules:
              paths: [\(rules)]
            events:
              data_dir: \(dir.path)/data
              resolve_after: 1s
            """.write(toFile: config, atomically: true, encoding: .utf8)
        return try await AlignerProcess.start(config: config, port: try freeLoopbackPort())
    }

    @Test func oneEventForTheWorkloadFromOpenToJournal() async throws {
        let path = try StreamingRulesTests.ruleFile(IncidentTests.rules)
        let s = try await startProcess(rules: path)
        defer { s.stop() }
        // Bursts: broken 40 s ago, healthy 25 s ago, broken now (the sender's timestamps).
        let start = WallClock.nowMilliseconds()
        for (broken, ago) in [(true, Int64(40_000)), (false, 25_000), (true, 0)] {
            let body = Snappy.compress(ProtobufC.encodeV1(series(broken: broken, t: start - ago)))
            #expect(try await s.write(body, headers: v1Headers).status == 204)
            try await Task.sleep(for: .milliseconds(100))
        }
        // Every kind of signal, and the error ratio's evidence naming both bursts (evidence is
        // recomputed at most every 2 s, so a first look may predate the last write).
        let listed = try await poll(s.base, "/api/v1/events?state=open") {
            $0.contains("cpu_burst") && $0.contains("error_rate_spike") && $0.contains("crash_loop")
                && $0.range(of: #"5xx ratio 100% at \d\d:\d\d:\d\d and "#, options: .regularExpression) != nil
        }
        let data = try #require(try JSONSerialization.jsonObject(with: Data(listed.utf8)) as? [String: Any])
        let events = try #require(data["data"] as? [[String: Any]])
        #expect(events.count == 1)
        let event = events[0]
        let id = try #require(event["id"] as? String)
        #expect(id.hasPrefix("evt-") && id.count == 12)
        // Several states or classes at once, repeated or comma-separated.
        for (query, count) in [("state=open,acknowledged", 1), ("state=resolved&state=closed", 0), ("state=acknowledged&state=open", 1),
                               ("class=oom_killed,replica_mismatch,crash_loop", 1), ("class=oom_killed,image_pull_failure", 0)] {
            let text = try await HTTPClient.request("GET", s.base + "/api/v1/events?" + query).text
            let found = ((try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?["data"] as? [Any])?.count
            #expect(found == count, "\(query): \(text.prefix(200))")
        }
        #expect((event["subject"] as? [String: String]) == ["namespace": "shop", "kind": "Deployment", "name": "darwin-store"])
        #expect(event["severity"] as? String == "critical")
        let classes = Set(((event["signals"] as? [[String: Any]]) ?? []).compactMap { $0["class"] as? String })
        #expect(classes == ["replica_mismatch", "crash_loop", "error_rate_spike", "cpu_burst"])
        let summary = event["summary"] as? String ?? ""
        #expect(summary.contains("darwin-store: 1 replicas missing") && summary.contains("5xx ratio 100%") && summary.contains("CPU 62.5% of limit"), "\(summary)")
        // The evidence names both bursts.
        #expect(summary.contains("5xx ratio 100% at ") && summary.contains(" and "), "\(summary)")
        let errorSignal = ((event["signals"] as? [[String: Any]]) ?? []).first { $0["class"] as? String == "error_rate_spike" }
        let peaks = ((errorSignal?["evidence"] as? [String: Any])?["peaks"] as? [[String: Any]]) ?? []
        #expect(peaks.count == 2, "\(String(describing: errorSignal))")
        // The event's own evidence: every signal's, with the signal it is about.
        let evidence = (event["evidence"] as? [[String: Any]]) ?? []
        #expect(Set(evidence.compactMap { $0["class"] as? String }) == classes)
        let errorEvidence = evidence.first { $0["class"] as? String == "error_rate_spike" }
        #expect((errorEvidence?["peaks"] as? [Any])?.count == 2 && (errorEvidence?["points"] as? [Any])?.isEmpty == false)
        let firstStream = try await HTTPClient.request("GET", s.base + "/api/v1/events/stream", timeout: .milliseconds(500), partialOnTimeout: true).text
        let firstIDs = firstStream.split(separator: "\n").filter { $0.hasPrefix("id: ") }.compactMap { Int64($0.dropFirst(4)) }
        #expect(!firstIDs.isEmpty)

        // The Brain's live check shows the workload unhealthy, then recovery.
        let unhealthy = try await HTTPClient.request("GET", s.base + "/api/v1/subjects/shop/darwin-store").text
        #expect(unhealthy.contains("\"healthy\":false"))
        #expect(try await HTTPClient.request("POST", s.base + "/api/v1/events/\(id)/ack", body: Array(#"{"actor":"brain"}"#.utf8)).status == 200)
        #expect(try await HTTPClient.request("POST", s.base + "/api/v1/events/\(id)/notes",
                                             body: Array(#"{"actor":"brain","text":"missing DATABASE_URL in the new release"}"#.utf8)).status == 200)
        let fixed = Snappy.compress(ProtobufC.encodeV1(series(broken: false, t: WallClock.nowMilliseconds())))
        #expect(try await s.write(fixed, headers: v1Headers).status == 204)
        // Healthy as soon as no alert holds, before the event's quiet period ends.
        let recovered = try await poll(s.base, "/api/v1/subjects/shop/darwin-store") { $0.contains("\"healthy\":true") }
        #expect(recovered.contains("\"healthy\":true") && recovered.contains("\"openEvent\""), "\(recovered)")
        func eventState(_ text: String) -> String? {
            ((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any])
                .flatMap { $0["data"] as? [String: Any] }?["state"] as? String
        }
        let resolved = try await poll(s.base, "/api/v1/events/\(id)") { eventState($0) == "resolved" }
        #expect(eventState(resolved) == "resolved")
        let healthy = try await HTTPClient.request("GET", s.base + "/api/v1/subjects/shop/darwin-store").text
        #expect(healthy.contains("\"healthy\":true"), "\(healthy)")
        let closed = try await HTTPClient.request("POST", s.base + "/api/v1/events/\(id)/close",
                                                  body: Array(#"{"actor":"brain","summary":"rolled back; DATABASE_URL added"}"#.utf8))
        #expect(closed.status == 200)
        let journal = try await HTTPClient.request("GET", s.base + "/api/v1/subjects/shop/darwin-store/journal").text
        #expect(journal.contains("rolled back; DATABASE_URL added") && journal.contains(id))
        // No event for the healthy workload.
        #expect(try await HTTPClient.request("GET", s.base + "/api/v1/events?subject=cart").text == #"{"data":[],"status":"success"}"#)
        // The subject named each way the filter takes it; updated within the last 10 minutes.
        for query in ["subject=darwin-store", "subject=shop/darwin-store", "subject=Deployment/darwin-store",
                      "subject=shop/Deployment/darwin-store", "subject=shop/Deployment/darwin-store&since=10m"] {
            let text = try await HTTPClient.request("GET", s.base + "/api/v1/events?" + query).text
            #expect(((try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?["data"] as? [Any])?.count == 1, "\(query)")
        }
        #expect(try await HTTPClient.request("GET", s.base + "/api/v1/events?since=ten").status == 400)

        // The consumer resumes after the last id it saw and gets every later change exactly once.
        let last = firstIDs.max()!
        let resumed = try await HTTPClient.request("GET", s.base + "/api/v1/events/stream", headers: ["Last-Event-ID": "\(last)"],
                                                   timeout: .milliseconds(500), partialOnTimeout: true).text
        let resumedIDs = resumed.split(separator: "\n").filter { $0.hasPrefix("id: ") }.compactMap { Int64($0.dropFirst(4)) }
        let all = try await HTTPClient.request("GET", s.base + "/api/v1/events/stream", timeout: .milliseconds(500), partialOnTimeout: true).text
        let allIDs = all.split(separator: "\n").filter { $0.hasPrefix("id: ") }.compactMap { Int64($0.dropFirst(4)) }
        #expect(firstIDs + resumedIDs == allIDs)
        #expect(Set(allIDs).count == allIDs.count)
        #expect(all.contains("event: closed"))
        // Bad requests.
        #expect(try await HTTPClient.request("GET", s.base + "/api/v1/events/evt-00000000").status == 404)
        #expect(try await HTTPClient.request("POST", s.base + "/api/v1/events/\(id)/ack").status == 409)
        #expect(try await HTTPClient.request("POST", s.base + "/api/v1/events/\(id)/notes", body: Array("not json".utf8)).status == 400)
        // Times that are not finite are refused, not converted (a trap would end the process).
        #expect(try await HTTPClient.request("GET", s.base + "/api/v1/events?since=nan").status == 400)
        #expect(try await HTTPClient.request("GET", s.base + "/api/v1/query?query=1&time=1e300").status == 400)
        let silence = #"{"matchers":[{"name":"namespace","value":"shop","isRegex":false}],"endsAt":1e300,"createdBy":"t","comment":"c"}"#
        #expect(try await HTTPClient.request("POST", s.base + "/api/v1/silences", body: Array(silence.utf8)).status == 400)
        // amtool's times carry milliseconds; a start that is not a time is refused, not taken as now.
        let amtool = #"{"matchers":[{"name":"namespace","value":"other"}],"startsAt":"2026-01-01T00:00:00.000Z","endsAt":"2099-01-01T00:00:00.000Z","createdBy":"t","comment":"c"}"#
        #expect(try await HTTPClient.request("POST", s.base + "/api/v1/silences", body: Array(amtool.utf8)).status == 200)
        let garbled = #"{"matchers":[{"name":"namespace","value":"other"}],"startsAt":"soon","endsAt":"2099-01-01T00:00:00Z"}"#
        #expect(try await HTTPClient.request("POST", s.base + "/api/v1/silences", body: Array(garbled.utf8)).status == 400)
        #expect(try await HTTPClient.request("GET", s.base + "/api/v1/events?since=2026-01-01T00:00:00.5Z").status == 200)
        #expect(try await HTTPClient.request("GET", s.base + "/-/healthy").status == 200)
    }

    /// How the cluster's exporters name things: kube-state-metrics v2 with owner series, and
    /// applications scraped through a ServiceMonitor (`service`) counting by `code`; or a
    /// kube-state-metrics without ready, updated or owner series, and applications scraped
    /// through a PodMonitor (`job`, no `service`) counting by `status`, whose 5xx counter the first
    /// burst creates; or the standard ones with
    /// the Service named otherwise than its Deployment (`darwin-store-web`), its request series
    /// carrying their `pod`.
    enum Exporters: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case standard, sparse, serviceNamedOtherwise
        var testDescription: String { rawValue }
    }

    /// The same incident from raw series (kube-state-metrics, cAdvisor and request counters, as a
    /// Prometheus scraping every second sends them) against the bundled pack, in real time: 40 s of
    /// history, then 20 s of live writes, late by 1.5 s, with two one-scrape bursts.
    @Test(arguments: Exporters.allCases)
    func bundledPackOnRawSeries(_ exporters: Exporters) async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
        let s = try await startProcess(rules: root.appendingPathComponent("rules").path)
        defer { s.stop() }
        let bursts: Set<Int64> = [3, 8]
        let standard = exporters != .sparse
        let (crashing, busy) = standard ? ("darwin-store-7d9f-x1", "darwin-store-5c6b-a1") : ("darwin-store-7d9f8c6b5d-x2k4p", "darwin-store-5c6b9f7d4-a1b2c")
        let start = WallClock.nowMilliseconds() / 1000 * 1000
        /// Every series of one scrape k seconds after the start (negative: history).
        func scrape(_ k: Int64) -> [(name: String, labels: [(String, String)], value: Double)] {
            let ns = ("namespace", "shop")
            let burstsSoFar = Double(bursts.filter { $0 <= k }.count)
            let ready = standard ? "kube_deployment_status_replicas_ready" : "kube_deployment_status_replicas_available"
            func requests(_ service: String, _ code: String) -> [(String, String)] {
                if exporters == .serviceNamedOtherwise && service == "darwin-store" {
                    return [ns, ("service", "darwin-store-web"), ("pod", busy), ("code", code)]
                }
                return [ns, standard ? ("service", service) : ("job", service), (standard ? "code" : "status", code)]
            }
            var out: [(String, [(String, String)], Double)] = [
                ("kube_deployment_spec_replicas", [ns, ("deployment", "darwin-store")], 5),
                (ready, [ns, ("deployment", "darwin-store")], k < -34 ? 5 : 4),
                ("kube_pod_container_status_waiting_reason",
                 [ns, ("pod", crashing), ("container", "app"), ("reason", "CrashLoopBackOff")], k < -20 ? 0 : 1),
                ("http_requests_total", requests("darwin-store", "200"), 10 * Double(k + 40) - 10 * burstsSoFar),
                ("container_cpu_usage_seconds_total", [ns, ("pod", busy), ("container", "app")],
                 0.1 * Double(k + 40) + 0.525 * burstsSoFar),
                ("kube_pod_container_resource_limits", [ns, ("pod", busy), ("container", "app"), ("resource", "cpu")], 1),
                // The new pod, started with the rollout 35 s before the start: running, never
                // ready, restarting (not a slow start: the replica rule must not wait for it).
                ("kube_pod_start_time", [ns, ("pod", crashing)], Double(start / 1000 - 35)),
                ("kube_pod_status_phase", [ns, ("pod", crashing), ("phase", "Running")], 1),
                ("kube_pod_status_ready", [ns, ("pod", crashing), ("condition", "false")], 1),
                ("kube_pod_container_status_restarts_total", [ns, ("pod", crashing), ("container", "app")], Double(max(0, k + 35) / 10)),
                // cart rolls out healthily: one pod at a time, ready dipping while each starts.
                ("kube_deployment_spec_replicas", [ns, ("deployment", "cart")], 3),
                (ready, [ns, ("deployment", "cart")], [1, 2, 5, 6].contains(k) ? 2 : 3),
                ("http_requests_total", requests("cart", "200"), 5 * Double(k + 40)),
            ]
            // The 5xx counter: there from the start (initialized at 0), or, in the sparse shape, created
            // by the first burst, as a client library creates it with its first error.
            if standard || burstsSoFar > 0 {
                out.append(("http_requests_total", requests("darwin-store", "500"), 10 * burstsSoFar))
            }
            if standard {
                out.append(("kube_deployment_status_replicas_updated", [ns, ("deployment", "darwin-store")], k < -35 ? 5 : 1))
                out.append(("kube_deployment_status_replicas_updated", [ns, ("deployment", "cart")], k < 0 ? 3 : Double(min(3, 1 + k / 4))))
                for (pod, rs) in [(crashing, "darwin-store-7d9f"), (busy, "darwin-store-5c6b")] {
                    out.append(("kube_pod_owner", [ns, ("pod", pod), ("owner_kind", "ReplicaSet"), ("owner_name", rs)], 1))
                    out.append(("kube_replicaset_owner", [ns, ("replicaset", rs), ("owner_kind", "Deployment"), ("owner_name", "darwin-store")], 1))
                }
            }
            return out
        }
        // The history in one request, each series with its 40 samples.
        let history = (-40 ..< 0).map { k in scrape(k).map { ($0, k) } }
        var series: [TestSeries] = []
        for (i, first) in history[0].enumerated() {
            series.append(TestSeries(first.0.name, first.0.labels,
                                     samples: history.map { (start + $0[i].1 * 1000, $0[i].0.value) }))
        }
        #expect(try await s.write(Snappy.compress(ProtobufC.encodeV1(TestRequest(series: series))), headers: v1Headers).status == 204)
        // Each scrape arrives 1.5 s after its time, as a remote-write sender's batches do: the
        // evidence still names the samples' own times.
        for k in Int64(0)...20 {
            let wait = start + k * 1000 + 1500 - WallClock.nowMilliseconds()
            if wait > 0 { try await Task.sleep(for: .milliseconds(wait)) }
            let request = TestRequest(series: scrape(k).map { TestSeries($0.name, $0.labels, samples: [(start + k * 1000, $0.value)]) })
            #expect(try await s.write(Snappy.compress(ProtobufC.encodeV1(request)), headers: v1Headers).status == 204)
        }
        let burstTimes = bursts.sorted().map { k -> String in
            let s = (start / 1000 + k) % 86_400
            return String(format: "%02d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
        }
        let listed = try await poll(s.base, "/api/v1/events") {
            $0.contains("replica_mismatch") && $0.contains("cpu_burst") && $0.contains("5xx ratio 100% at \(burstTimes[0]) and \(burstTimes[1])")
        }
        let event = try ListedEvent.only(in: listed)
        #expect(event.subject == ["namespace": "shop", "kind": "Deployment", "name": "darwin-store"])
        #expect(event.classes == ["replica_mismatch", "crash_loop", "error_rate_spike", "cpu_burst"])
        let summary = event.summary
        #expect(summary.hasPrefix("darwin-store: ") && summary.contains("4/5 replicas ready"), "\(summary)")
        #expect(summary.contains("5xx ratio 100% at \(burstTimes[0]) and \(burstTimes[1])"), "\(summary)")
        #expect(summary.contains("CPU 62.5% of limit at \(burstTimes[0]) and \(burstTimes[1])"), "\(summary)")
    }

    /// Two other incidents from raw series against the bundled pack, in real time: a pod whose
    /// memory climbs to 95% of its limit and is OOM killed (one event for its Deployment, with
    /// the kill and the climb before it, which alone opens nothing), and a CronJob's run that fails
    /// (one event for the CronJob); a Deployment whose pods sit at 60% of their memory limit
    /// opens nothing.
    @Test func oomKillAfterMemoryClimbAndFailedCronJobRun() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
        let s = try await startProcess(rules: root.appendingPathComponent("rules").path)
        defer { s.stop() }
        let start = WallClock.nowMilliseconds() / 1000 * 1000
        let limit = 512.0 * 1024 * 1024
        /// Every series of one scrape k seconds after the start (negative: history); the kill at 0.
        func scrape(_ k: Int64) -> [(name: String, labels: [(String, String)], value: Double)] {
            let shop = ("namespace", "shop"), ops = ("namespace", "ops")
            let (api, web) = ("api-6f8d-q1", "web-5c6b-a1")
            let climbing = k < -20 ? 0.6 : k < 0 ? 0.95 : 0.1  // restarted at 0
            var out: [(String, [(String, String)], Double)] = [
                ("container_memory_working_set_bytes", [shop, ("pod", api), ("container", "app")], climbing * limit),
                ("container_memory_working_set_bytes", [shop, ("pod", web), ("container", "app")], 0.6 * limit),
                ("kube_pod_container_status_restarts_total", [shop, ("pod", api), ("container", "app")], k < 0 ? 0 : 1),
                ("kube_pod_container_status_restarts_total", [shop, ("pod", web), ("container", "app")], 0),
                ("kube_pod_container_status_last_terminated_reason", [shop, ("pod", api), ("container", "app"), ("reason", "OOMKilled")], k < 0 ? 0 : 1),
                ("kube_job_status_failed", [ops, ("job_name", "backup-29012345")], k < 2 ? 0 : 1),
                ("kube_job_status_start_time", [ops, ("job_name", "backup-29012345")], Double(start / 1000 - 3600)),
                ("kube_job_owner", [ops, ("job_name", "backup-29012345"), ("owner_kind", "CronJob"), ("owner_name", "backup"),
                                    ("owner_is_controller", "true")], 1),
            ]
            for (pod, rs, deployment) in [(api, "api-6f8d", "api"), (web, "web-5c6b", "web")] {
                out.append(("kube_pod_container_resource_limits", [shop, ("pod", pod), ("container", "app"), ("resource", "memory")], limit))
                out.append(("kube_pod_owner", [shop, ("pod", pod), ("owner_kind", "ReplicaSet"), ("owner_name", rs)], 1))
                out.append(("kube_replicaset_owner", [shop, ("replicaset", rs), ("owner_kind", "Deployment"), ("owner_name", deployment)], 1))
            }
            // The Failed condition appears with the last failed pod.
            if k >= 2 { out.append(("kube_job_failed", [ops, ("job_name", "backup-29012345"), ("condition", "true")], 1)) }
            return out
        }
        let history = (-30 ..< 0).map { k in scrape(k).map { ($0, k) } }
        var series: [TestSeries] = []
        for (i, first) in history[0].enumerated() {
            series.append(TestSeries(first.0.name, first.0.labels, samples: history.map { (start + $0[i].1 * 1000, $0[i].0.value) }))
        }
        #expect(try await s.write(Snappy.compress(ProtobufC.encodeV1(TestRequest(series: series))), headers: v1Headers).status == 204)
        // Nothing opens while only the memory climbs.
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await HTTPClient.request("GET", s.base + "/api/v1/events").text == #"{"data":[],"status":"success"}"#)
        for k in Int64(0)...4 {
            let wait = start + k * 1000 + 500 - WallClock.nowMilliseconds()
            if wait > 0 { try await Task.sleep(for: .milliseconds(wait)) }
            let request = TestRequest(series: scrape(k).map { TestSeries($0.name, $0.labels, samples: [(start + k * 1000, $0.value)]) })
            #expect(try await s.write(Snappy.compress(ProtobufC.encodeV1(request)), headers: v1Headers).status == 204)
        }
        let listed = try await poll(s.base, "/api/v1/events", within: .seconds(15)) { $0.contains("oom_killed") && $0.contains("job_failed") }
        let data = try #require(try JSONSerialization.jsonObject(with: Data(listed.utf8)) as? [String: Any])
        let events = try #require(data["data"] as? [[String: Any]])
        var byClass: [String: (subject: [String: String], signals: Set<String>, summary: String)] = [:]
        for event in events {
            byClass[event["class"] as? String ?? ""] = (
                event["subject"] as? [String: String] ?? [:],
                Set(((event["signals"] as? [[String: Any]]) ?? []).compactMap { $0["class"] as? String }),
                event["summary"] as? String ?? "")
        }
        #expect(events.count == 2, "\(listed)")
        let oom = try #require(byClass["oom_killed"], "\(listed)")
        #expect(oom.subject == ["namespace": "shop", "kind": "Deployment", "name": "api"])
        #expect(oom.signals == ["oom_killed", "memory_pressure"], "\(oom)")
        #expect(oom.summary.contains("OOM killed") && oom.summary.contains("memory 95% of limit"), "\(oom.summary)")
        let job = try #require(byClass["job_failed"], "\(listed)")
        #expect(job.subject == ["namespace": "ops", "kind": "CronJob", "name": "backup"])
        #expect(job.signals == ["job_failed"])
    }
}

/// The one event an `/api/v1/events` answer lists (recorded as an issue when it lists another
/// number of events), as the incident tests check it.
struct ListedEvent {
    var subject: [String: String]
    var classes: Set<String>
    var summary: String

    static func only(in listed: String) throws -> ListedEvent {
        let data = try #require(try JSONSerialization.jsonObject(with: Data(listed.utf8)) as? [String: Any])
        let events = try #require(data["data"] as? [[String: Any]])
        #expect(events.count == 1, "\(listed)")
        let event = try #require(events.first)
        return ListedEvent(
            subject: event["subject"] as? [String: String] ?? [:],
            classes: Set(((event["signals"] as? [[String: Any]]) ?? []).compactMap { $0["class"] as? String }),
            summary: event["summary"] as? String ?? "")
    }
}
