import Foundation
import AlignerRules
import Testing

@Suite struct RuleFileTests {
    @Test func loadsAlertsAndRecordingRulesWithExtensions() {
        let (groups, problems) = RuleFileLoader.parse(yaml: """
            groups:
              - name: kubernetes-apps
                interval: 30s
                labels: {team: platform}
                rules:
                  - record: namespace:replicas_missing:sum
                    expr: sum by (namespace) (kube_deployment_spec_replicas - kube_deployment_status_replicas_ready)
                  - alert: KubeDeploymentReplicasMismatch
                    expr: |
                      kube_deployment_spec_replicas > kube_deployment_status_replicas_available
                    for: 1m
                    keep_firing_for: 30s
                    labels: {severity: warning}
                    annotations:
                      summary: "{{ $labels.deployment }}: {{ $value }} replicas missing"
                    event:
                      class: replica_mismatch
                      severity: critical
                      subject: {namespace: namespace, kind: Deployment, name: deployment}
                    resolve: kube_deployment_spec_replicas == kube_deployment_status_replicas_available
                    hooks: [chat, restart-rollout]
            """, file: "apps.yml")
        #expect(problems == [])
        #expect(groups.count == 1)
        let g = groups[0]
        #expect(g.interval == 30_000 && g.labels == ["team": "platform"] && g.rules.count == 2)
        let alert = g.rules[1]
        #expect(alert.kind == .alert("KubeDeploymentReplicasMismatch"))
        #expect(alert.holdDuration == 60_000 && alert.keepFiringFor == 30_000)
        #expect(alert.event == EventSpec(anomalyClass: "replica_mismatch", namespaceLabel: "namespace", kind: "Deployment",
                                         kindLabel: nil, nameLabels: ["deployment"], severity: "critical"))
        #expect(alert.resolve != nil && alert.hooks == ["chat", "restart-rollout"])
        #expect(alert.position == SourcePosition(file: "apps.yml", line: 8, column: 9))
    }

    @Test func everyProblemAtOnceWithPositions() {
        let (_, problems) = RuleFileLoader.parse(yaml: """
            groups:
              - name: g
                rules:
                  - alert: A
                    expr: rate(x)
                  - record: bad name
                    expr: up
                    for: 5m
                  - alert: C
                  - alert: D
                    expr: |
                      sum(up)
                        / on(job) group_left sum(histogram_count(y))
                    detector: {kind: ewma}
                    colour: blue
                  - alert: E
                    expr: up == 0
                    event: {class: down, subject: {name: job}, opens: sometimes}
              - name: g
                rules: []
            """, file: "bad.yml")
        #expect(problems == [
            "bad.yml:5:20: group \"g\", rule 1 \"A\": could not parse expression: expected type range vector in call to function \"rate\", got instant vector",
            "bad.yml:6:17: group \"g\", rule 2 \"bad name\": invalid recording rule name: \"bad name\"",
            "bad.yml:8:9: group \"g\", rule 2 \"bad name\": invalid field 'for' in recording rule",
            "bad.yml:9:9: group \"g\", rule 3 \"C\": field 'expr' must be set in rule",
            "bad.yml:13:38: group \"g\", rule 4 \"D\": could not parse expression: function \"histogram_count\" is not supported by Aligner",
            "bad.yml:14:19: group \"g\", rule 4 \"D\": detector.method must be set (threshold, ewma, mad, holt, cusum)",
            "bad.yml:15:9: group \"g\", rule 4 \"D\": unknown key \"colour\" in rule",
            "bad.yml:18:59: group \"g\", rule 5 \"E\": event.opens must be true or false",
            "bad.yml:19:5: group \"g\": groupname: \"g\" is repeated in the same file",
        ])
    }

    /// `detector`: its settings, with defaults, and every wrong one where it is.
    @Test func detectors() {
        let (groups, problems) = RuleFileLoader.parse(yaml: """
            groups:
              - name: g
                rules:
                  - alert: Ratio
                    expr: errors / requests
                    detector: {method: ewma, threshold: 4, direction: both, min_deviation: 0.05, half_life: 10m}
                  - alert: Latency
                    expr: latency
                    detector: {method: mad, window: 2h}
                  - alert: Level
                    expr: level
                    detector: {method: threshold, threshold: 0.9, warm_up: 5m}
                  - alert: Bad
                    expr: x
                    detector: {method: ewma, threshold: -1, direction: sideways, window: 1h, half_life: 0s, min_deviation: -2, speed: 3}
                  - alert: NoThreshold
                    expr: x
                    detector: {method: threshold}
                  - alert: Unknown
                    expr: x
                    detector: {method: prophet}
                  - record: r
                    expr: x
                    detector: {method: ewma}
                  - alert: Shift
                    expr: s
                    detector: {method: cusum, slack: 1, half_life: 1h}
                  - alert: Trend
                    expr: t
                    detector: {method: holt, trend_half_life: 2h}
                  - alert: Misplaced
                    expr: x
                    detector: {method: ewma, slack: 1, trend_half_life: 1h}
                  - alert: Guarded
                    expr: errors / requests
                    detector: {method: ewma, volume: requests, min_volume: 0.5}
                  - alert: Unguarded
                    expr: x
                    detector: {method: ewma, min_volume: 1}
                  - alert: BadVolume
                    expr: x
                    detector: {method: ewma, volume: "rate(x)", min_volume: -1}
            """, file: "d.yml")
        #expect(problems == [
            "d.yml:15:45: group \"g\", rule 4 \"Bad\": detector.threshold must be above 0: it counts deviations",
            "d.yml:15:60: group \"g\", rule 4 \"Bad\": detector.direction must be up, down or both",
            "d.yml:15:70: group \"g\", rule 4 \"Bad\": detector.window is for method mad",
            "d.yml:15:93: group \"g\", rule 4 \"Bad\": detector.half_life must be a duration above 0 such as 15m",
            "d.yml:15:112: group \"g\", rule 4 \"Bad\": detector.min_deviation must not be negative",
            "d.yml:15:116: group \"g\", rule 4 \"Bad\": unknown key \"speed\" in detector (known: method, threshold, direction, min_deviation, warm_up, half_life, trend_half_life, slack, window, volume, min_volume)",
            "d.yml:18:19: group \"g\", rule 5 \"NoThreshold\": detector.threshold must be set for method threshold",
            "d.yml:21:28: group \"g\", rule 6 \"Unknown\": unknown detector.method \"prophet\" (known: threshold, ewma, mad, holt, cusum)",
            "d.yml:24:9: group \"g\", rule 7 \"r\": invalid field 'detector' in recording rule",
            "d.yml:33:34: group \"g\", rule 10 \"Misplaced\": detector.slack is for method cusum",
            "d.yml:33:44: group \"g\", rule 10 \"Misplaced\": detector.trend_half_life is for method holt",
            "d.yml:39:34: group \"g\", rule 12 \"Unguarded\": detector.min_volume needs detector.volume, the expression it bounds",
            "d.yml:42:42: group \"g\", rule 13 \"BadVolume\": could not parse detector.volume: expected type range vector in call to function \"rate\", got instant vector",
            "d.yml:42:65: group \"g\", rule 13 \"BadVolume\": detector.min_volume must not be negative",
        ])
        // The good ones load, with their defaults filled in.
        #expect(groups.first?.rules.map(\.name) == ["Ratio", "Latency", "Level", "Shift", "Trend", "Guarded"])
        let detectors = groups.first?.rules.map { $0.detector?.description ?? "" }
        #expect(detectors == [
            "{method: ewma, threshold: 4.0, direction: both, min_deviation: 0.05, warm_up: 20m, half_life: 10m}",
            "{method: mad, threshold: 3.0, direction: up, warm_up: 1h, window: 2h}",
            "{method: threshold, threshold: 0.9, direction: up, warm_up: 5m}",
            "{method: cusum, threshold: 5.0, direction: up, warm_up: 2h, half_life: 1h, slack: 1.0}",
            "{method: holt, threshold: 3.0, direction: up, warm_up: 30m, half_life: 15m, trend_half_life: 2h}",
            "{method: ewma, threshold: 3.0, direction: up, warm_up: 30m, half_life: 15m, volume: requests, min_volume: 0.5}",
        ])
    }

    /// What Prometheus' loader takes, Aligner takes: YAML merge keys, `labels:` with nothing
    /// after it, `interval: 0s` (the default) and a negative `limit` (none).
    @Test func acceptsWhatPrometheusAccepts() {
        let (groups, problems) = RuleFileLoader.parse(yaml: """
            groups:
              - name: g
                interval: 0s
                limit: -1
                rules:
                  - &base
                    alert: A
                    expr: up == 0
                    for: 5m
                    labels: {severity: page}
                  - <<: *base
                    alert: B
                    labels:
            """, file: "merge.yml")
        #expect(problems == [])
        #expect(groups.first?.interval == nil && groups.first?.limit == 0)
        let b = groups.first?.rules.last
        #expect(b?.name == "B" && b?.exprText == "up == 0" && b?.holdDuration == 300_000 && b?.labels == [:])
    }

    /// `event.subject.name` is a label, or labels of which the first one set names the workload.
    /// A path that is missing, or a folder, is named as such (with every other problem).
    @Test func missingFilesAndFoldersAreNamed() {
        let folder = FileManager.default.temporaryDirectory.path
        do {
            _ = try RuleFileLoader.load(files: ["/nonexistent/rules.yml", folder])
            Issue.record("loaded a missing file and a folder")
        } catch let error as RuleFileError {
            #expect(error.problems == ["/nonexistent/rules.yml: no such rule file", "\(folder): a folder, not a rule file (name its files)"])
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func subjectNameMayListLabels() {
        let (groups, problems) = RuleFileLoader.parse(yaml: """
            groups:
              - name: g
                rules:
                  - alert: A
                    expr: up == 0
                    event: {class: down, subject: {kind: Deployment, name: [service, job]}}
                  - alert: B
                    expr: up == 0
                    event: {class: down, subject: {kind: Deployment, name: [service, "not a label"]}}
            """, file: "n.yml")
        #expect(groups.first?.rules.first?.event?.nameLabels == ["service", "job"])
        #expect(problems == ["n.yml:9:74: group \"g\", rule 2 \"B\": event.subject.name must be a label name or a list of label names"])
    }

    @Test func durations() {
        #expect(parseDurationMilliseconds("1h30m") == 5_400_000)
        #expect(parseDurationMilliseconds("0") == 0)
        #expect(parseDurationMilliseconds("5") == nil)
        #expect(parseDurationMilliseconds("5m x") == nil)
    }
}

/// Upstream rule files load unchanged.
@Suite struct UpstreamRulesTests {
    @Test func kubernetesMixinLoads() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/kubernetes-mixin.yaml").path
        let groups = try RuleFileLoader.load(files: [path])
        #expect(groups.count == 25)
        #expect(groups.reduce(0) { $0 + $1.rules.count } == 134)
    }

    /// node-exporter, Prometheus, Alertmanager, kube-state-metrics, prometheus-operator, general
    /// and Grafana rules, as kube-prometheus renders them.
    @Test func kubePrometheusOtherRuleSetsLoad() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/kube-prometheus-others.yaml").path
        let groups = try RuleFileLoader.load(files: [path])
        #expect(groups.count == 13)
        #expect(groups.reduce(0) { $0 + $1.rules.count } == 100)
    }

    @Test func alertNamesBecomeClassesInSnakeCase() {
        let names = ["KubePodCrashLooping", "CPUThrottlingHigh", "KubeAPIErrorBudgetBurn", "etcdHighNumberOfFailedGRPCRequests",
                     "HTTPErrors5xx", "TargetDown", "high-latency p99", "Up"]
        #expect(names.map(EventSpec.snakeCase) == ["kube_pod_crash_looping", "cpu_throttling_high", "kube_api_error_budget_burn",
                                                   "etcd_high_number_of_failed_grpc_requests", "http_errors5xx", "target_down",
                                                   "high_latency_p99", "up"])
    }

    @Test func eventFalseTurnsRoutingOffAndOtherScalarsAreErrors() {
        let muted = RuleFileLoader.parse(yaml: """
            groups:
              - name: g
                rules:
                  - alert: Muted
                    expr: up == 0
                    event: false
            """, file: "r.yml")
        #expect(muted.1.isEmpty && muted.0.first?.rules.first?.eventOff == true, "\(muted.1)")
        let bad = RuleFileLoader.parse(yaml: """
            groups:
              - name: g
                rules:
                  - alert: Bad
                    expr: up == 0
                    event: true
            """, file: "r.yml")
        #expect(bad.1.count == 1 && bad.1[0].hasPrefix("r.yml:6:16: ") && bad.1[0].contains("or false"), "\(bad.1)")
    }
}
