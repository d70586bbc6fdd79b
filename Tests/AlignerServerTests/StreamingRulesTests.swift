import AlignerCore
import AlignerEvents
import AlignerIngest
import AlignerServer
import AlignerTesting
import Foundation
import Testing

/// Rules evaluated as samples arrive, through a real server on loopback.
@Suite(.serialized) struct StreamingRulesTests {
    static func ruleFile(_ text: String) throws -> String {
        let dir = try ScratchDirectory.make("aligner-rules")
        let path = dir.appendingPathComponent("rules.yml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let rules = """
        groups:
          - name: replicas
            rules:
              - record: deployment:replicas_missing
                expr: kube_deployment_spec_replicas - on(namespace, deployment) kube_deployment_status_replicas_ready
              - alert: ReplicasMissing
                expr: deployment:replicas_missing > 0
                labels: {severity: critical}
                annotations: {summary: "{{ $labels.deployment }}: {{ $value }} missing"}
        """

    func write(_ s: RunningServer, ready: Double, at t: Int64) async throws {
        let request = TestRequest(series: [
            TestSeries("kube_deployment_spec_replicas", [("namespace", "shop"), ("deployment", "darwin-store")], samples: [(t, 5)]),
            TestSeries("kube_deployment_status_replicas_ready", [("namespace", "shop"), ("deployment", "darwin-store")], samples: [(t, ready)]),
            TestSeries("unrelated_metric", [("job", "x")], samples: [(t, 1)]),
        ])
        let r = try await s.write(Snappy.compress(ProtobufC.encodeV1(request)), headers: v1Headers)
        #expect(r.status == 204)
    }

    /// A rule written for Prometheus (no `event`) about a node opens an event for the Node, and the
    /// live check reaches that cluster-scoped subject with `_` in place of a namespace.
    @Test func anUpstreamNodeAlertOpensAnEventReachableThroughItsSubject() async throws {
        let path = try StreamingRulesTests.ruleFile("""
            groups:
              - name: nodes
                rules:
                  - alert: KubeNodeNotReady
                    expr: node_ready{condition="true"} == 0
                    labels: {severity: critical}
                    annotations: {description: "{{ $labels.node }} has been unready for more than 15 minutes."}
            """)
        let s = try await RunningServer.start { $0.rulePaths = [path]; $0.rulePathsAreDefault = false }
        defer { Task { await s.stop() } }
        let request = TestRequest(series: [
            TestSeries("node_ready", [("node", "n1"), ("condition", "true")], samples: [(WallClock.nowMilliseconds(), 0)]),
        ])
        #expect(try await s.write(Snappy.compress(ProtobufC.encodeV1(request)), headers: v1Headers).status == 204)
        let listed = try await poll(s.base, "/api/v1/events") { $0.contains("kube_node_not_ready") }
        #expect(listed.contains(#""subject":{"kind":"Node","name":"n1","namespace":""}"#), "\(listed)")
        // Without a summary annotation, the description tells what happened.
        #expect(listed.contains(#""summary":"n1: n1 has been unready for more than 15 minutes."#), "\(listed)")
        let subject = try await HTTPClient.request("GET", s.base + "/api/v1/subjects/_/n1").text
        #expect(subject.contains(#""healthy":false"#) && subject.contains(#""rule":"KubeNodeNotReady""#), "\(subject)")
    }

    /// A rule with a detector, streamed: the error ratio's baseline is learnt from the writes as
    /// they come (where its volume, a series of its own kept for it, is enough), and the write
    /// that takes it far above opens the event; the rule-test files of
    /// `Tests/detectors/` (Aligner's own: promtool knows no detectors) pass.
    @Test func aDetectorRuleFiresOnTheWriteThatLeavesItsBaseline() async throws {
        #expect(RuleTestRunner.run(file: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../detectors/detectors_test.yml").standardized.path) == [])
        let path = try StreamingRulesTests.ruleFile("""
            groups:
              - name: anomalies
                rules:
                  - alert: ErrorRatioAnomalous
                    expr: errors / requests
                    detector: {method: ewma, threshold: 4, min_deviation: 0.05, warm_up: 0s, half_life: 1m, volume: traffic, min_volume: 50}
                    annotations: {summary: "{{ $labels.service }}: 5xx ratio {{ $value | humanizePercentage }}"}
                    event: {class: error_rate_spike, severity: critical, subject: {namespace: namespace, kind: Deployment, name: service}}
            """)
        let s = try await RunningServer.start { $0.rulePaths = [path]; $0.rulePathsAreDefault = false }
        defer { Task { await s.stop() } }
        func write(errors: Double, at t: Int64) async throws {
            let labels = [("namespace", "shop"), ("service", "checkout")]
            let request = TestRequest(series: [
                TestSeries("errors", labels, samples: [(t, errors)]), TestSeries("requests", labels, samples: [(t, 100)]),
                TestSeries("traffic", labels, samples: [(t, 100)]),
            ])
            #expect(try await s.write(Snappy.compress(ProtobufC.encodeV1(request)), headers: v1Headers).status == 204)
        }
        let t = WallClock.nowMilliseconds()
        for i in 0..<4 {
            try await write(errors: 1, at: t - 4000 + Int64(i) * 1000)
            try await Task.sleep(for: .milliseconds(100))
        }
        let calm = try await HTTPClient.request("GET", s.base + "/api/v1/alerts").text
        #expect(!calm.contains("ErrorRatioAnomalous"), "\(calm)")
        let rules = try await HTTPClient.request("GET", s.base + "/api/v1/rules").text
        #expect(rules.contains(#""detector":{"#) && rules.contains(#""method":"ewma""#) && rules.contains(#""half_life":60"#), "\(rules)")
        try await write(errors: 40, at: t)
        let listed = try await poll(s.base, "/api/v1/events") { $0.contains("error_rate_spike") }
        #expect(listed.contains(#""summary":"checkout: 5xx ratio 40%"#), "\(listed)")
    }

    /// What a detector learnt survives a restart: saved at shutdown with the events store, put
    /// back at start (and saved again as it was, not as a new warm-up).
    @Test func detectorBaselinesSurviveARestart() async throws {
        let path = try StreamingRulesTests.ruleFile("""
            groups:
              - name: anomalies
                rules:
                  - alert: ErrorRatioAnomalous
                    expr: errors
                    detector: {method: ewma, warm_up: 1h, half_life: 1m}
            """)
        let data = ScratchDirectory.path("aligner-data")
        func saved() throws -> String { try SQLiteEventStore(directory: data).stateSync("detectors") ?? "" }
        let first = try await RunningServer.start { $0.rulePaths = [path]; $0.rulePathsAreDefault = false; $0.dataDirectory = data }
        let request = TestRequest(series: [TestSeries("errors", [("service", "checkout")], samples: [(WallClock.nowMilliseconds(), 3)])])
        #expect(try await first.write(Snappy.compress(ProtobufC.encodeV1(request)), headers: v1Headers).status == 204)
        _ = try await poll(first.base, "/api/v1/rules") { $0.contains(#""health":"ok""#) }
        await first.stop()
        let before = try saved()
        #expect(before.contains("checkout") && before.contains(#""mean":3"#), "\(before)")
        let second = try await RunningServer.start { $0.rulePaths = [path]; $0.rulePathsAreDefault = false; $0.dataDirectory = data }
        await second.stop()
        #expect(try saved() == before)
    }

    /// The same workload in two clusters is two subjects: one event each, told apart by the
    /// subject's `cluster`; the list, the live check and the journal take `?cluster=`.
    @Test func theSameWorkloadInTwoClustersHasAnEventInEach() async throws {
        let path = try StreamingRulesTests.ruleFile("""
            groups:
              - name: replicas
                rules:
                  - alert: ReplicasMissing
                    expr: kube_deployment_spec_replicas - on(cluster, namespace, deployment) kube_deployment_status_replicas_ready > 0
                    event: {class: replica_mismatch, severity: critical, subject: {namespace: namespace, kind: Deployment, name: deployment}}
            """)
        let s = try await RunningServer.start { $0.rulePaths = [path]; $0.rulePathsAreDefault = false }
        defer { Task { await s.stop() } }
        let t = WallClock.nowMilliseconds()
        func workload(_ cluster: String, ready: Double) -> [TestSeries] {
            let labels = [("cluster", cluster), ("namespace", "shop"), ("deployment", "darwin-store")]
            return [TestSeries("kube_deployment_spec_replicas", labels, samples: [(t, 5)]),
                    TestSeries("kube_deployment_status_replicas_ready", labels, samples: [(t, ready)])]
        }
        let request = TestRequest(series: workload("prod", ready: 4) + workload("staging", ready: 3))
        #expect(try await s.write(Snappy.compress(ProtobufC.encodeV1(request)), headers: v1Headers).status == 204)
        let listed = try await poll(s.base, "/api/v1/events") { $0.components(separatedBy: "\"replica_mismatch\"").count > 2 }
        #expect(listed.contains(#""subject":{"cluster":"prod","kind":"Deployment","name":"darwin-store","namespace":"shop"}"#), "\(listed)")
        #expect(listed.contains(#""subject":{"cluster":"staging","kind":"Deployment","name":"darwin-store","namespace":"shop"}"#), "\(listed)")
        let prod = try await HTTPClient.request("GET", s.base + "/api/v1/events?cluster=prod").text
        #expect(prod.contains(#""cluster":"prod""#) && !prod.contains("staging"), "\(prod)")
        let live = try await HTTPClient.request("GET", s.base + "/api/v1/subjects/shop/darwin-store?cluster=staging").text
        #expect(live.contains(#""cluster":"staging""#) && live.contains(#""healthy":false"#) && !live.contains(#""cluster":"prod""#), "\(live)")
        let none = try await HTTPClient.request("GET", s.base + "/api/v1/subjects/shop/darwin-store?cluster=dev").text
        #expect(none.contains(#""healthy":true"#) && !none.contains("openEvent"), "\(none)")
    }

    /// `for` ends on time with no write after the one that started it: the engine wakes for it
    /// and evaluates the alert's part of the group (not every group).
    @Test func forEndsOnTimeWithoutAnotherWrite() async throws {
        let path = try StreamingRulesTests.ruleFile("""
            groups:
              - name: replicas
                rules:
                  - alert: ReplicasMissing
                    expr: kube_deployment_spec_replicas - on(namespace, deployment) kube_deployment_status_replicas_ready > 0
                    for: 2s
            """)
        let s = try await RunningServer.start { $0.rulePaths = [path]; $0.rulePathsAreDefault = false }
        defer { Task { await s.stop() } }
        try await write(s, ready: 4, at: WallClock.nowMilliseconds())
        let start = ContinuousClock.now
        let pending = try await poll(s.base, "/api/v1/alerts") { $0.contains("pending") }
        #expect(pending.contains(#""state":"pending""#))
        var firing = false
        while ContinuousClock.now - start < .seconds(5) {
            if try await HTTPClient.request("GET", s.base + "/api/v1/alerts").text.contains(#""state":"firing""#) {
                firing = true
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let elapsed = ContinuousClock.now - start
        #expect(firing && elapsed >= .milliseconds(1900) && elapsed < .milliseconds(3500), "firing \(firing) after \(elapsed)")
    }

    /// `rules.query_offset` (Prometheus' global `rule_query_offset`): the queries of groups without
    /// their own `query_offset` look that far back, for senders whose samples arrive late. Ready
    /// replicas 4 ten seconds ago and 5 now: with a 5 s offset the alert fires on the older sample,
    /// and without one the newer keeps it quiet; a group's own `query_offset: 0s` wins.
    @Test(arguments: [(nil, 5, true), (nil, 0, false), ("0s", 5, false)] as [(String?, Int, Bool)])
    func queryOffsetLooksBack(groupOffset: String?, seconds: Int, fires: Bool) async throws {
        let own = groupOffset.map { "\n    query_offset: \($0)" } ?? ""
        let path = try StreamingRulesTests.ruleFile(StreamingRulesTests.rules.replacingOccurrences(of: "  - name: replicas", with: "  - name: replicas" + own))
        let s = try await RunningServer.start {
            $0.rulePaths = [path]
            $0.rulePathsAreDefault = false
            $0.ruleQueryOffset = .seconds(seconds)
        }
        defer { Task { await s.stop() } }
        let now = WallClock.nowMilliseconds()
        let labels = [("namespace", "shop"), ("deployment", "darwin-store")]
        let request = TestRequest(series: [
            TestSeries("kube_deployment_spec_replicas", labels, samples: [(now - 10_000, 5), (now, 5)]),
            TestSeries("kube_deployment_status_replicas_ready", labels, samples: [(now - 10_000, 4), (now, 5)]),
        ])
        #expect(try await s.write(Snappy.compress(ProtobufC.encodeV1(request)), headers: v1Headers).status == 204)
        // Evaluated after the write; the recording rule's result shows it ran.
        _ = try await poll(s.base, "/api/v1/query?query=deployment:replicas_missing") { $0.contains("darwin-store") }
        let alerts = try await HTTPClient.request("GET", s.base + "/api/v1/alerts").text
        #expect(alerts.contains("firing") == fires, "\(alerts)")
    }

    /// A sample later than Aligner's clock (a sender whose clock runs ahead) is not seen by the
    /// evaluation right after its write, as Prometheus would not see it before its time; the
    /// groups it touched are evaluated again when its time comes, not at the next round (here
    /// 5 minutes away) or the next write.
    @Test func aSampleAheadOfTheClockIsEvaluatedWhenItsTimeComes() async throws {
        let path = try StreamingRulesTests.ruleFile(StreamingRulesTests.rules)
        let s = try await RunningServer.start {
            $0.rulePaths = [path]
            $0.rulePathsAreDefault = false
            $0.ruleEvaluationInterval = .seconds(300)
        }
        defer { Task { await s.stop() } }
        let start = ContinuousClock.now
        try await write(s, ready: 4, at: WallClock.nowMilliseconds() + 1500)
        let alerts = try await poll(s.base, "/api/v1/alerts", within: .seconds(10)) { $0.contains("firing") }
        let elapsed = ContinuousClock.now - start
        #expect(alerts.contains(#""alertname":"ReplicasMissing""#) && elapsed >= .milliseconds(1400), "after \(elapsed): \(alerts)")
    }

    /// The time-driven evaluation of a split group covers the partitions no write evaluated in
    /// the last interval, not the whole group: a deployment whose data stopped is seen going
    /// stale (its age rule fires), while one written all along is not evaluated again by time.
    @Test func timeDrivenEvaluationCoversStalePartitionsOnly() async throws {
        let path = try StreamingRulesTests.ruleFile("""
            groups:
              - name: freshness
                rules:
                  - alert: ReadyCountStale
                    expr: max by (namespace, deployment) (timestamp(kube_deployment_status_replicas_ready)) < time() - 1.5
                    event: false
            """)
        let s = try await RunningServer.start {
            $0.rulePaths = [path]
            $0.rulePathsAreDefault = false
            $0.ruleEvaluationInterval = .seconds(2)
        }
        defer { Task { await s.stop() } }
        func write(_ names: [String]) async throws {
            let t = WallClock.nowMilliseconds()
            let request = TestRequest(series: names.map {
                TestSeries("kube_deployment_status_replicas_ready", [("namespace", "shop"), ("deployment", $0)], samples: [(t, 5)])
            })
            #expect(try await s.write(Snappy.compress(ProtobufC.encodeV1(request)), headers: v1Headers).status == 204)
        }
        try await write(["quiet", "busy"])
        // busy is written every 100 ms for 10 s; quiet never again.
        var stale = ""
        for _ in 0..<100 {
            try await Task.sleep(for: .milliseconds(100))
            try await write(["busy"])
            stale = try await HTTPClient.request("GET", s.base + "/api/v1/alerts").text
        }
        #expect(stale.contains(#""deployment":"quiet""#), "\(stale)")
        #expect(!stale.contains(#""deployment":"busy""#), "\(stale)")
        // The time-driven passes (five in these 10 s) covered quiet's partition, not the whole
        // group: a whole evaluation happens only when every partition is stale at a pass (the
        // first; or when a machine loaded by the other tests delays busy's writes and rounds by
        // seconds: seen once in a suite's run), where going over the whole group each time made
        // five. With a 500 ms interval the suite's load made that happen more.
        let whole = try await s.metric(#"aligner_rules_group_evaluations{scope="whole"}"#), parts = try await s.metric(#"aligner_rules_group_evaluations{scope="partitions"}"#)
        #expect((whole ?? 99) <= 2, "whole \(String(describing: whole)) partitions \(String(describing: parts))")
        #expect(parts ?? 0 >= 2)
    }

    /// `query_range` answers a matrix, series sorted by labels, values at the steps (a scalar as a
    /// series without labels); bad parameters are 400 with Prometheus' messages.
    @Test func rangeQueryAnswersAMatrix() async throws {
        let path = try StreamingRulesTests.ruleFile(StreamingRulesTests.rules)
        let s = try await RunningServer.start { $0.rulePaths = [path]; $0.rulePathsAreDefault = false }
        defer { Task { await s.stop() } }
        let t0 = WallClock.nowMilliseconds() / 1000 * 1000
        for (k, ready) in [(-20, 5.0), (-10, 4), (0, 4)] { try await write(s, ready: ready, at: t0 + Int64(k) * 1000) }
        func get(_ query: String) async throws -> HTTPClient.Response {
            try await HTTPClient.request("GET", s.base + "/api/v1/query_range?" + query)
        }
        let start = Double(t0 - 20_000) / 1000, end = Double(t0) / 1000
        let ready = try await get("query=kube_deployment_status_replicas_ready&start=\(start)&end=\(end)&step=10s").text
        let expected = #"{"data":{"result":[{"metric":{"__name__":"kube_deployment_status_replicas_ready","deployment":"darwin-store","namespace":"shop"},"values":[["#
            + "\(Int(start)),\"5\"],[\(Int(start) + 10),\"4\"],[\(Int(end)),\"4\"]]}],\"resultType\":\"matrix\"},\"status\":\"success\"}"
        #expect(ready == expected)
        // Two series, evaluated ready first, answered sorted by labels; a scalar.
        let both = try await get("query=kube_deployment_status_replicas_ready+or+on(__name__)+kube_deployment_spec_replicas&start=\(end)&end=\(end)&step=1").text
        let spec = try #require(both.range(of: "kube_deployment_spec_replicas"), "\(both)")
        let status = try #require(both.range(of: "kube_deployment_status_replicas_ready"), "\(both)")
        #expect(spec.lowerBound < status.lowerBound, "\(both)")
        #expect(try await get("query=1%2B1&start=\(start)&end=\(end)&step=20").text.contains(#"[{"metric":{},"values":[["#))
        for (query, message) in [
            ("query=up&start=\(start)&end=\(end)&step=0", "zero or negative query resolution step widths are not accepted"),
            ("query=up&start=\(end)&end=\(start)&step=1", "end timestamp must not be before start time"),
            ("query=up&start=x&end=\(end)&step=1", #"invalid parameter \"start\": cannot parse \"x\" to a valid timestamp"#),
            ("query=up%5B5m%5D&start=\(start)&end=\(end)&step=1", #"invalid expression type \"range vector\" for range query"#),
            ("query=up&start=0&end=\(end)&step=1", "exceeded maximum resolution of 11,000 points"),
        ] {
            let r = try await get(query)
            #expect(r.status == 400 && r.text.contains(#""errorType":"bad_data""#) && r.text.contains(message), "\(query): \(r.text)")
        }
    }

    @Test func alertFiresAfterTheWriteAndResolves() async throws {
        let path = try StreamingRulesTests.ruleFile(StreamingRulesTests.rules)
        let s = try await RunningServer.start { $0.rulePaths = [path]; $0.rulePathsAreDefault = false }
        defer { Task { await s.stop() } }
        let now = WallClock.nowMilliseconds()
        try await write(s, ready: 4, at: now)
        let alerts = try await poll(s.base, "/api/v1/alerts") { $0.contains("firing") }
        #expect(alerts.contains(#""alertname":"ReplicasMissing""#))
        #expect(alerts.contains(#""summary":"darwin-store: 1 missing""#))
        // Only the series the rules select are kept.
        #expect(try await s.metric("aligner_rules_window_series") == 3)  // 2 inputs + 1 recorded
        let q = try await HTTPClient.request("GET", s.base + "/api/v1/query?query=deployment:replicas_missing")
        #expect(q.text.contains(#""resultType":"vector""#) && q.text.contains(#""value":["#))
        #expect(!q.text.contains("warnings"))
        // A metric no rule reads is not kept: the answer says so.
        let unkept = try await HTTPClient.request("GET", s.base + "/api/v1/query?query=node_load1").text
        #expect(unkept.contains(#""warnings":["no rule reads node_load1"#), "\(unkept)")
        let rules = try await HTTPClient.request("GET", s.base + "/api/v1/rules").text
        #expect(rules.contains(#""type":"alerting""#) && rules.contains(#""type":"recording""#) && rules.contains(#""health":"ok""#))
        // Each rule's own last evaluation and its time, as Prometheus reports them.
        let listed = try JSONSerialization.jsonObject(with: Data(rules.utf8)) as? [String: Any]
        let ruleObjects = ((listed?["data"] as? [String: Any])?["groups"] as? [[String: Any]])?.first?["rules"] as? [[String: Any]] ?? []
        #expect(ruleObjects.count == 2)
        for rule in ruleObjects {
            #expect((rule["evaluationTime"] as? Double ?? 0) > 0, "\(rule)")
            #expect((rule["lastEvaluation"] as? String ?? "").hasPrefix("20"), "\(rule)")
        }
        // Recovery: the alert resolves on the next write.
        try await Task.sleep(for: .milliseconds(5))
        try await write(s, ready: 5, at: WallClock.nowMilliseconds())
        let after = try await poll(s.base, "/api/v1/alerts") { !$0.contains("firing") }
        #expect(after == #"{"data":{"alerts":[]},"status":"success"}"#)
        // The group splits by namespace and deployment: the writes were evaluated as partitions.
        #expect(try await s.metric(#"aligner_rules_group_evaluations{scope="partitions"}"#) ?? 0 >= 1)
        #expect(try await s.metric(#"aligner_rules_group_evaluation_seconds{scope="partitions"}"#) ?? 0 > 0)
    }

    @Test func reloadIsAllOrNothingAndKeepsState() async throws {
        let path = try StreamingRulesTests.ruleFile(StreamingRulesTests.rules)
        let s = try await RunningServer.start { $0.rulePaths = [path]; $0.rulePathsAreDefault = false }
        defer { Task { await s.stop() } }
        try await write(s, ready: 4, at: WallClock.nowMilliseconds())
        _ = try await poll(s.base, "/api/v1/alerts") { $0.contains("firing") }
        try "groups: [{name: x, rules: [{alert: A, expr: 'rate(x)'}]}]".write(toFile: path, atomically: true, encoding: .utf8)
        let bad = try await HTTPClient.request("POST", s.base + "/-/reload")
        #expect(bad.status == 500)
        #expect(bad.text.contains("could not parse expression"))
        #expect(try await HTTPClient.request("GET", s.base + "/api/v1/alerts").text.contains("firing"))
        // An unchanged rule keeps its firing alert across a good reload.
        try (StreamingRulesTests.rules + "\n      - alert: Extra\n        expr: vector(1) > 2\n").write(toFile: path, atomically: true, encoding: .utf8)
        let good = try await HTTPClient.request("POST", s.base + "/-/reload")
        #expect(good.text == "reloaded 3 rules\n")
        #expect(try await HTTPClient.request("GET", s.base + "/api/v1/alerts").text.contains("firing"))
    }

    /// Values as Prometheus' API prints them (compared with Prometheus 2.42's answers): a
    /// vector's without an exponent from 1e-6 to 1e21, a scalar's never, an alert's always.
    @Test func valuesArePrintedAsPrometheusPrintsThem() async throws {
        let s = try await RunningServer.start { $0.rulePaths = []; $0.rulePathsAreDefault = false }
        defer { Task { await s.stop() } }
        for (query, value) in [("vector(1e-5)", "0.00001"), ("vector(1e15)", "1000000000000000"), ("vector(1e21)", "1e+21"),
                               ("vector(-1.25e-7)", "-1.25e-07"), ("vector(-0)", "-0"), ("2^70", "1180591620717411300000"),
                               ("vector(1/0)", "+Inf"), ("-1e-7", "-0.0000001")] {
            let r = try await HTTPClient.request("GET", s.base + "/api/v1/query?time=100&query=" + query.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
            #expect(r.text.contains(#"[100,"\#(value)"]"#), "\(query): \(r.text)")
        }
    }

    /// Two groups that read ALERTS and alert themselves do not evaluate each other without end
    /// (each writes ALERTS at every evaluation), nor do groups that read each other's recorded
    /// series: a result sets only later groups evaluating; an earlier one reads it at its next
    /// evaluation.
    @Test func groupsReadingAlertsSettle() async throws {
        let path = try StreamingRulesTests.ruleFile("""
            groups:
              - name: first
                rules:
                  - alert: Missing
                    expr: kube_deployment_spec_replicas > kube_deployment_status_replicas_ready
                    event: false
                  - alert: ManyAlertsA
                    expr: count(ALERTS) > 0
                    event: false
              - name: second
                rules:
                  - alert: ManyAlertsB
                    expr: count(ALERTS) > 0
                    event: false
                  # Groups that read each other's recorded series (x from the third, y for it).
                  - record: y
                    expr: sum(x) + 1 or vector(1)
              - name: third
                rules:
                  - record: x
                    expr: sum(y) + 1 or vector(1)
                  - alert: Ready
                    expr: kube_deployment_status_replicas_ready > 0
                    event: false
            """)
        let s = try await RunningServer.start { $0.rulePaths = [path]; $0.rulePathsAreDefault = false }
        defer { Task { await s.stop() } }
        try await write(s, ready: 4, at: WallClock.nowMilliseconds())
        _ = try await poll(s.base, "/api/v1/alerts") { $0.contains("Missing") }
        try await Task.sleep(for: .milliseconds(500))
        func evaluations() async throws -> Double {
            (try await s.metric(#"aligner_rules_group_evaluations{scope="whole"}"#) ?? 0)
                + (try await s.metric(#"aligner_rules_group_evaluations{scope="partitions"}"#) ?? 0)
        }
        let before = try await evaluations()
        try await Task.sleep(for: .seconds(2))
        let after = try await evaluations()
        #expect(after - before <= 2, "\(before) → \(after) evaluations in 2 s without a write")
    }

    /// A group's `interval` is its period, data or not: `interval: 1s` with a rule that reads no
    /// series fires within seconds, though `rules.evaluation_interval` is 15 s; its alert's value
    /// printed as Prometheus prints an alert's (`1e+00`).
    @Test func aGroupIsEvaluatedEveryIntervalOfItsOwn() async throws {
        let path = try StreamingRulesTests.ruleFile("""
            groups:
              - name: heartbeat
                interval: 1s
                rules:
                  - alert: Watchdog
                    expr: vector(1)
                    event: false
            """)
        let s = try await RunningServer.start { $0.rulePaths = [path]; $0.rulePathsAreDefault = false }
        defer { Task { await s.stop() } }
        // Within poll's 5 s (the first pass of 15 s would come after).
        let alerts = try await poll(s.base, "/api/v1/alerts") { $0.contains("firing") }
        #expect(alerts.contains(#""state":"firing""#) && alerts.contains(#""value":"1e+00""#), "\(alerts)")
    }

    @Test func queryErrorsAre400() async throws {
        let s = try await RunningServer.start { $0.rulePaths = []; $0.rulePathsAreDefault = false }
        defer { Task { await s.stop() } }
        let r = try await HTTPClient.request("GET", s.base + "/api/v1/query?query=rate(x)")
        #expect(r.status == 400)
        #expect(r.text.contains("expected type range vector"))
        // Worded as Prometheus 2.42 words them.
        for (path, message) in [
            ("/api/v1/query", #"invalid parameter \"query\": 1:1: parse error: no expression found in input"#),
            ("/api/v1/query?query=up&time=abc", #"invalid parameter \"time\": Invalid time value for 'time': cannot parse \"abc\" to a valid timestamp"#),
            ("/api/v1/query_range?query=up&start=abc&end=1&step=1", #"invalid parameter \"start\": cannot parse \"abc\" to a valid timestamp"#),
            ("/api/v1/rules?type=bogus", #"invalid parameter \"type\": not supported value \"bogus\""#),
        ] {
            let bad = try await HTTPClient.request("GET", s.base + path)
            #expect(bad.status == 400 && bad.text.contains(message), "\(path): \(bad.text)")
        }
    }

    /// `GET /api/v1/rules?type=alert|record` lists every group with the rules of that type.
    @Test func rulesFilteredByType() async throws {
        let path = try StreamingRulesTests.ruleFile(StreamingRulesTests.rules)
        let s = try await RunningServer.start { $0.rulePaths = [path]; $0.rulePathsAreDefault = false }
        defer { Task { await s.stop() } }
        let alerting = try await HTTPClient.request("GET", s.base + "/api/v1/rules?type=alert").text
        #expect(alerting.contains(#""type":"alerting""#) && !alerting.contains(#""type":"recording""#), "\(alerting)")
        let recording = try await HTTPClient.request("GET", s.base + "/api/v1/rules?type=record").text
        #expect(recording.contains(#""type":"recording""#) && !recording.contains(#""type":"alerting""#), "\(recording)")
    }

    /// Parameters are read as Go's url.ParseQuery reads them: `+` is a space and names are
    /// percent-decoded too (Python's urlencode writes `match%5B%5D=up` and `query=up+%3E+0`).
    @Test func formEncodedParameters() async throws {
        let s = try await RunningServer.start { $0.rulePaths = []; $0.rulePathsAreDefault = false }
        defer { Task { await s.stop() } }
        let get = try await HTTPClient.request("GET", s.base + "/api/v1/query?query=vector%281%29+%3E+bool+0&time=1")
        #expect(get.status == 200 && get.text.contains(#""value":[1,"1"]"#), "\(get.text)")
        #expect(try await HTTPClient.request("GET", s.base + "/api/v1/query?query=time()&time=").status == 200)
        // Slashes are written as they are, as Prometheus writes them.
        let slash = try await HTTPClient.request("GET", s.base + "/api/v1/query?query=label_replace(vector(1),%22path%22,%22/api/x%22,%22%22,%22%22)").text
        #expect(slash.contains(#""path":"/api/x""#), "\(slash)")
        let post = try await HTTPClient.request(
            "POST", s.base + "/api/v1/query?query=vector(3)", headers: ["Content-Type": "application/x-www-form-urlencoded"],
            body: Array("query=vector%282%29+*+2&time=1".utf8))
        #expect(post.text.contains(#""value":[1,"4"]"#), "\(post.text)")
        try await RemoteWriteEndpointTests.writeSample(s)
        let series = try await HTTPClient.request("GET", s.base + "/api/v1/series?match%5B%5D=kube_deployment_spec_replicas").text
        #expect(series == #"{"data":[{"__name__":"kube_deployment_spec_replicas","deployment":"darwin-store","namespace":"shop"}],"status":"success"}"#)
        let events = try await HTTPClient.request("GET", s.base + "/api/v1/events?since=1%2E5&state=open")
        #expect(events.status == 200)
        #expect(try await HTTPClient.request("GET", s.base + "/api/v1/events?state=open,acknowledged&state=resolved").status == 200)
        let bad = try await HTTPClient.request("GET", s.base + "/api/v1/events?state=open,gone")
        #expect(bad.status == 400 && bad.text.contains(#"invalid state \"gone\""#), "\(bad.text)")
    }

    /// Prometheus' metadata endpoints over every series held (rules or not): series by any
    /// selector, label names, a label's values; bad selectors are 400 as Prometheus words them.
    @Test func seriesLabelsAndLabelValues() async throws {
        let s = try await RunningServer.start { $0.rulePaths = []; $0.rulePathsAreDefault = false }
        defer { Task { await s.stop() } }
        let t = WallClock.nowMilliseconds()
        let request = TestRequest(series: [
            TestSeries("up", [("job", "api"), ("instance", "a:1")], samples: [(t, 1)]),
            TestSeries("up", [("job", "db"), ("instance", "b:2")], samples: [(t, 0)]),
            TestSeries("http_requests_total", [("job", "api"), ("code", "500")], samples: [(t, 3)]),
        ])
        #expect(try await s.write(Snappy.compress(ProtobufC.encodeV1(request)), headers: v1Headers).status == 204)
        func get(_ path: String) async throws -> HTTPClient.Response { try await HTTPClient.request("GET", s.base + path) }
        let regex = try await get("/api/v1/series?match%5B%5D=%7B__name__%3D~%22up%7Chttp_.%2A%22%2Cjob%3D%22api%22%7D").text
        #expect(regex.contains(#""instance":"a:1""#) && regex.contains(#""code":"500""#) && !regex.contains("b:2"), "\(regex)")
        #expect(try await get("/api/v1/labels").text == #"{"data":["__name__","code","instance","job"],"status":"success"}"#)
        #expect(try await get("/api/v1/labels?match[]=up").text == #"{"data":["__name__","instance","job"],"status":"success"}"#)
        #expect(try await get("/api/v1/label/job/values").text == #"{"data":["api","db"],"status":"success"}"#)
        #expect(try await get("/api/v1/label/__name__/values").text == #"{"data":["http_requests_total","up"],"status":"success"}"#)
        #expect(try await get("/api/v1/label/instance/values?match[]=up%7Bjob%3D%22db%22%7D").text == #"{"data":["b:2"],"status":"success"}"#)
        for (path, message) in [
            ("/api/v1/series", "no match[] parameter provided"),
            ("/api/v1/series?match[]=%7Bjob%3D~%22.%2A%22%7D", "vector selector must contain at least one non-empty matcher"),
            ("/api/v1/series?match[]=rate(up%5B1m%5D)", "is not a series selector"),
            ("/api/v1/series?match[]=up%7B", "parse error"),
            ("/api/v1/label/a-b/values", "invalid label name"),
        ] {
            let r = try await get(path)
            #expect(r.status == 400 && r.text.contains(#""errorType":"bad_data""#) && r.text.contains(message), "\(path): \(r.text)")
        }
    }

    /// A server with the bundled pack (`rules/kubernetes.yml`) loaded.
    static func startWithBundledPack() async throws -> RunningServer {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
        return try await RunningServer.start {
            $0.rulePaths = [root.appendingPathComponent("rules/kubernetes.yml").path]
            $0.rulePathsAreDefault = false
        }
    }

    /// The bundled replica rule with kube-state-metrics scraped every 30 s, as kube-prometheus
    /// does, evaluated as each scrape arrives (not on the scrape's own time, as promtool does): a
    /// rollout whose counts change at every scrape stays quiet, one that stopped a minute ago is
    /// pending. A 30 s window ending now holds only the newest of 30 s samples, so `changes` alone
    /// never sees the change that scrape brought.
    @Test func replicaRuleWithThirtySecondScrapes() async throws {
        let s = try await Self.startWithBundledPack()
        defer { Task { await s.stop() } }
        // Scrapes every 30 s for 3 minutes, the last 1 s ago: cart's ready and updated counts move
        // at every scrape (a slow, healthy rollout); stuck's stopped at 4/5 two scrapes ago.
        let last = WallClock.nowMilliseconds() - 1000
        let times = (0...6).map { last - Int64(6 - $0) * 30_000 }
        func deployment(_ name: String, ready: [Double], updated: [Double]) -> [TestSeries] {
            let labels = [("namespace", "shop"), ("deployment", name)]
            return [
                TestSeries("kube_deployment_spec_replicas", labels, samples: times.map { ($0, 5) }),
                TestSeries("kube_deployment_status_replicas_ready", labels, samples: Array(zip(times, ready))),
                TestSeries("kube_deployment_status_replicas_updated", labels, samples: Array(zip(times, updated))),
            ]
        }
        let request = TestRequest(series:
            deployment("cart", ready: [5, 4, 4, 3, 3, 4, 4], updated: [0, 1, 1, 2, 2, 3, 4])
            + deployment("stuck", ready: [5, 4, 4, 4, 4, 4, 4], updated: [0, 1, 2, 3, 4, 4, 4]))
        #expect(try await s.write(Snappy.compress(ProtobufC.encodeV1(request)), headers: v1Headers).status == 204)
        let alerts = try await poll(s.base, "/api/v1/alerts") { $0.contains(#""deployment":"stuck""#) }
        #expect(alerts.contains(#""deployment":"stuck""#), "\(alerts)")
        #expect(!alerts.contains(#""deployment":"cart""#), "\(alerts)")
    }

    /// The bundled error-ratio and CPU rules with Prometheus' default 1-minute scrape interval,
    /// evaluated as the scrape arrives: a 1-minute window ending now holds that scrape alone, so
    /// the pack rates such a series over 2 minutes, and irate's window is 2 minutes (it reads the
    /// last two samples either way). Failed with the 1-minute windows: no alert at all.
    @Test func serviceAndCPURulesWithOneMinuteScrapes() async throws {
        let s = try await Self.startWithBundledPack()
        defer { Task { await s.stop() } }
        // Three scrapes a minute apart, the last 1 s ago: 2 requests/s, all failing in the last
        // minute; the container at 0.8 of its one-CPU limit in the last minute.
        let last = WallClock.nowMilliseconds() - 1000
        let times = [last - 120_000, last - 60_000, last]
        let service = [("namespace", "shop"), ("service", "checkout")]
        let pod = [("namespace", "shop"), ("pod", "checkout-1"), ("container", "app")]
        let request = TestRequest(series: [
            TestSeries("http_requests_total", service + [("code", "200")], samples: Array(zip(times, [0, 120, 120]))),
            TestSeries("http_requests_total", service + [("code", "500")], samples: Array(zip(times, [0, 0, 120]))),
            TestSeries("container_cpu_usage_seconds_total", pod, samples: Array(zip(times, [0, 12, 60]))),
            TestSeries("kube_pod_container_resource_limits", pod + [("resource", "cpu")], samples: times.map { ($0, 1) }),
        ])
        #expect(try await s.write(Snappy.compress(ProtobufC.encodeV1(request)), headers: v1Headers).status == 204)
        let alerts = try await poll(s.base, "/api/v1/alerts") {
            $0.contains(#""alertname":"ServiceErrorRateHigh""#) && $0.contains(#""alertname":"ContainerCPUNearLimit""#)
        }
        #expect(alerts.contains(#""summary":"shop/checkout: 5xx ratio 100%""#), "\(alerts)")
        #expect(alerts.contains(#""summary":"shop/checkout-1 app: CPU 80% of limit""#), "\(alerts)")
    }
}
