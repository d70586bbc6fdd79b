import AlignerCore
import AlignerEngine
@testable import AlignerServer
import Foundation
import Logging
import Testing

/// A signal about a pod joins the event of the workload that owns it, through kube-state-metrics'
/// owner series.
@Suite struct SubjectLiftingTests {
    @Test func podsAreLiftedThroughTheirOwnerSeries() async throws {
        let path = try StreamingRulesTests.ruleFile("""
            groups:
              - name: pods
                rules:
                  - alert: OOMKilled
                    expr: max by (namespace, pod) (oom_killed) > 0
                    event: {class: oom_killed, severity: warning, subject: {namespace: namespace, kind: Pod, name: pod}}
            """)
        let store = WindowStore()
        let engine = try RuleEngine(store: store, paths: [path], logger: Logger(label: "test"), onReload: {})
        let now = WallClock.nowMilliseconds()
        func series(_ labels: [(String, String)]) {
            let id = store.admit(labels: labels.map { Label($0.0, $0.1) }.sorted { $0.name < $1.name })
            store.append(window: id, timestamp: now - 1000, valueBits: (1.0).bitPattern)
        }
        let ns = ("namespace", "ops")
        // backup-29012345-x7k2p: a run (Job) of the CronJob backup. fluent-bit-q8x2z: a DaemonSet's.
        // web-7d9f-a1: a ReplicaSet's of the Deployment web. lone: no owner series, no workload.
        for pod in ["backup-29012345-x7k2p", "fluent-bit-q8x2z", "web-7d9f-a1", "lone"] {
            series([("__name__", "oom_killed"), ns, ("pod", pod)])
        }
        series([("__name__", "kube_pod_owner"), ns, ("pod", "backup-29012345-x7k2p"), ("owner_kind", "Job"), ("owner_name", "backup-29012345"), ("owner_is_controller", "true")])
        series([("__name__", "kube_job_owner"), ns, ("job_name", "backup-29012345"), ("owner_kind", "CronJob"), ("owner_name", "backup"), ("owner_is_controller", "true")])
        series([("__name__", "kube_pod_owner"), ns, ("pod", "fluent-bit-q8x2z"), ("owner_kind", "DaemonSet"), ("owner_name", "fluent-bit"), ("owner_is_controller", "true")])
        series([("__name__", "kube_pod_owner"), ns, ("pod", "web-7d9f-a1"), ("owner_kind", "ReplicaSet"), ("owner_name", "web-7d9f"), ("owner_is_controller", "true")])
        series([("__name__", "kube_replicaset_owner"), ns, ("replicaset", "web-7d9f"), ("owner_kind", "Deployment"), ("owner_name", "web"), ("owner_is_controller", "true")])
        await engine.evaluate(groups: nil, now: now)
        let subjects = Set(await engine.signals().map { "\($0.subject.namespace)/\($0.subject.kind)/\($0.subject.name)" })
        #expect(subjects == ["ops/CronJob/backup", "ops/DaemonSet/fluent-bit", "ops/Deployment/web", "ops/Pod/lone"])
    }
}
