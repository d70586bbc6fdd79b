import AlignerCore
import AlignerEngine
@testable import AlignerServer
import Foundation
import Logging
import Testing

/// A signal about a pod joins the event of the workload that owns it, through kube-state-metrics'
/// owner series.
@Suite struct SubjectLiftingTests {
    /// A rule engine over a window store, with series written one sample each, a second ago.
    struct Lifting {
        let store = WindowStore()
        let engine: RuleEngine
        let now = WallClock.nowMilliseconds()

        init(rules path: String) throws {
            engine = try RuleEngine(store: store, paths: [path], logger: Logger(label: "test"), onReload: {})
        }

        /// kube-state-metrics' owner series of a Deployment's pod: pod → ReplicaSet → Deployment.
        func deploymentPod(_ pod: String, replicaSet: String, deployment: String, namespace: String) {
            series([("__name__", "kube_pod_owner"), ("namespace", namespace), ("pod", pod), ("owner_kind", "ReplicaSet"),
                    ("owner_name", replicaSet), ("owner_is_controller", "true")])
            series([("__name__", "kube_replicaset_owner"), ("namespace", namespace), ("replicaset", replicaSet), ("owner_kind", "Deployment"),
                    ("owner_name", deployment), ("owner_is_controller", "true")])
        }

        func series(_ labels: [(String, String)]) { sample(labels, value: 1) }

        func sample(_ labels: [(String, String)], value: Double) {
            let id = store.admit(labels: labels.map { Label($0.0, $0.1) }.sorted { $0.name < $1.name })
            store.append(window: id, timestamp: now - 1000, valueBits: value.bitPattern)
        }

        /// The subjects of the signals firing after one evaluation, as namespace/kind/name.
        func subjects() async -> Set<String> {
            await engine.evaluate(groups: nil, now: now)
            return Set(await engine.signals().map { "\($0.subject.namespace)/\($0.subject.kind)/\($0.subject.name)" })
        }
    }

    @Test func podsAreLiftedThroughTheirOwnerSeries() async throws {
        let path = try StreamingRulesTests.ruleFile("""
            groups:
              - name: pods
                rules:
                  - alert: OOMKilled
                    expr: max by (namespace, pod) (oom_killed) > 0
                    event: {class: oom_killed, severity: warning, subject: {namespace: namespace, kind: Pod, name: pod}}
            """)
        let lifting = try Lifting(rules: path)
        let series = lifting.series
        let ns = ("namespace", "ops")
        // backup-29012345-x7k2p: a run (Job) of the CronJob backup. fluent-bit-q8x2z: a DaemonSet's.
        // web-7d9f-a1: a ReplicaSet's of the Deployment web. lone: no owner series, no workload.
        for pod in ["backup-29012345-x7k2p", "fluent-bit-q8x2z", "web-7d9f-a1", "lone"] {
            series([("__name__", "oom_killed"), ns, ("pod", pod)])
        }
        series([("__name__", "kube_pod_owner"), ns, ("pod", "backup-29012345-x7k2p"), ("owner_kind", "Job"), ("owner_name", "backup-29012345"), ("owner_is_controller", "true")])
        series([("__name__", "kube_job_owner"), ns, ("job_name", "backup-29012345"), ("owner_kind", "CronJob"), ("owner_name", "backup"), ("owner_is_controller", "true")])
        series([("__name__", "kube_pod_owner"), ns, ("pod", "fluent-bit-q8x2z"), ("owner_kind", "DaemonSet"), ("owner_name", "fluent-bit"), ("owner_is_controller", "true")])
        lifting.deploymentPod("web-7d9f-a1", replicaSet: "web-7d9f", deployment: "web", namespace: "ops")
        let subjects = await lifting.subjects()
        #expect(subjects == ["ops/CronJob/backup", "ops/DaemonSet/fluent-bit", "ops/Deployment/web", "ops/Pod/lone"])
    }

    /// A Job's signal joins its CronJob's event; a DaemonSet's pod without owner series is known
    /// by its name (`<daemonset>-<5 characters>`) when kube-state-metrics knows that DaemonSet.
    @Test func jobsAndDaemonSetPodsByName() async throws {
        let path = try StreamingRulesTests.ruleFile("""
            groups:
              - name: workloads
                rules:
                  - alert: JobFailed
                    expr: max by (namespace, job_name) (job_failed) > 0
                    event: {class: job_failed, severity: warning, subject: {namespace: namespace, kind: Job, name: job_name}}
                  - alert: OOMKilled
                    expr: max by (namespace, pod) (oom_killed) > 0
                    event: {class: oom_killed, severity: warning, subject: {namespace: namespace, kind: Pod, name: pod}}
                  - alert: DaemonSetShort
                    expr: kube_daemonset_status_desired_number_scheduled < 0
            """)
        let lifting = try Lifting(rules: path)
        let series = lifting.series
        let ns = ("namespace", "ops")
        for job in ["backup-29012345", "migrate-7"] { series([("__name__", "job_failed"), ns, ("job_name", job)]) }
        series([("__name__", "kube_job_owner"), ns, ("job_name", "backup-29012345"), ("owner_kind", "CronJob"), ("owner_name", "backup"), ("owner_is_controller", "true")])
        series([("__name__", "kube_job_owner"), ns, ("job_name", "migrate-7"), ("owner_kind", "<none>"), ("owner_name", "<none>"), ("owner_is_controller", "<none>")])
        // fluent-bit-q8x2z: its DaemonSet is known; cache-q8x2z: no workload of that name.
        for pod in ["fluent-bit-q8x2z", "cache-q8x2z"] { series([("__name__", "oom_killed"), ns, ("pod", pod)]) }
        series([("__name__", "kube_daemonset_status_desired_number_scheduled"), ns, ("daemonset", "fluent-bit")])
        let subjects = await lifting.subjects()
        #expect(subjects == ["ops/CronJob/backup", "ops/Job/migrate-7", "ops/DaemonSet/fluent-bit", "ops/Pod/cache-q8x2z"])
    }

    /// A claim is lifted to the workload whose pods mount it: the database's full disk joins the
    /// StatefulSet's event; a claim no known pod mounts stays the claim.
    @Test func claimsAreLiftedToTheWorkloadMountingThem() async throws {
        let path = try StreamingRulesTests.ruleFile("""
            groups:
              - name: volumes
                rules:
                  - alert: PersistentVolumeFull
                    expr: max by (namespace, persistentvolumeclaim) (volume_free) < 0.03
                    event: {class: volume_full, severity: critical, subject: {namespace: namespace, kind: PersistentVolumeClaim, name: persistentvolumeclaim}}
            """)
        let lifting = try Lifting(rules: path)
        lifting.sample([("__name__", "volume_free"), ("namespace", "shop"), ("persistentvolumeclaim", "data-pg-0")], value: 0.02)
        lifting.sample([("__name__", "volume_free"), ("namespace", "shop"), ("persistentvolumeclaim", "scratch")], value: 0.01)
        lifting.series([("__name__", "kube_pod_spec_volumes_persistentvolumeclaims_info"), ("namespace", "shop"), ("pod", "pg-0"),
                        ("volume", "data"), ("persistentvolumeclaim", "data-pg-0")])
        lifting.series([("__name__", "kube_pod_owner"), ("namespace", "shop"), ("pod", "pg-0"), ("owner_kind", "StatefulSet"),
                        ("owner_name", "pg"), ("owner_is_controller", "true")])
        #expect(await lifting.subjects() == ["shop/StatefulSet/pg", "shop/PersistentVolumeClaim/scratch"])
    }

    /// A pod is lifted through the owner series of its own cluster: `db-0` in two clusters
    /// belongs to a different StatefulSet in each.
    @Test func podsAreLiftedWithinTheirCluster() async throws {
        let path = try StreamingRulesTests.ruleFile("""
            groups:
              - name: pods
                rules:
                  - alert: OOMKilled
                    expr: max by (cluster, namespace, pod) (oom_killed) > 0
                    event: {class: oom_killed, severity: warning, subject: {namespace: namespace, kind: Pod, name: pod}}
            """)
        let lifting = try Lifting(rules: path)
        for (cluster, owner) in [("a", "db"), ("b", "db-replica")] {
            lifting.series([("__name__", "oom_killed"), ("cluster", cluster), ("namespace", "ops"), ("pod", "db-0")])
            lifting.series([("__name__", "kube_pod_owner"), ("cluster", cluster), ("namespace", "ops"), ("pod", "db-0"),
                            ("owner_kind", "StatefulSet"), ("owner_name", owner), ("owner_is_controller", "true")])
        }
        await lifting.engine.evaluate(groups: nil, now: lifting.now)
        let subjects = Set(await lifting.engine.signals().map(\.subject.description))
        #expect(subjects == ["a/ops/StatefulSet/db", "b/ops/StatefulSet/db-replica"])
    }

    /// A rule written for Prometheus, without `event`, is routed by its alert's labels: the
    /// workload they name (a pod lifted to its owner; a service the Deployment of that name, else
    /// the Service), a namespace alone, a node (a node-exporter series' node, whatever pod
    /// exported it), a scrape target, else the alert itself; the class from the alert's name, the
    /// severity from its label. Watchdog (severity `none`) and `event: false` are no signal; an
    /// `info` alert opens no event.
    @Test func rulesWithoutEventAreRoutedByTheirLabels() async throws {
        let path = try StreamingRulesTests.ruleFile("""
            groups:
              - name: upstream
                rules:
                  - alert: KubePodCrashLooping
                    expr: max by (namespace, pod, container) (restarts) > 0
                    labels: {severity: warning}
                  - alert: KubeNodeNotReady
                    expr: node_ready > 0
                    labels: {severity: critical}
                  - alert: KubeQuotaAlmostFull
                    expr: max by (namespace) (quota_used) > 0
                    labels: {severity: info}
                  - alert: Watchdog
                    expr: vector(1)
                    labels: {severity: none}
                  - alert: ManyRestartsClusterWide
                    expr: sum(restarts) > 0
                  - alert: InstanceDown
                    expr: up == 0
                    labels: {severity: page}
                  - alert: NodeFilesystemAlmostOutOfSpace
                    expr: node_filesystem_avail_bytes < 1
                  - alert: HTTPErrors5xx
                    expr: max by (namespace, service) (errors) > 0
                  - alert: TargetDown
                    expr: max by (namespace, service, job) (target_down) > 0
                  - record: pod:cpu
                    expr: container_cpu
                  # The same service name, upstream (the Service) and routed by the pack's way
                  # (the owner of the pods behind it): neither answer is taken for the other.
                  - alert: UpstreamErrors
                    expr: max by (namespace, service) (requests_failed) > 0
                  - alert: ErrorRatio
                    expr: max by (namespace, service) (requests_failed) > 0
                    event: {class: error_rate_spike, severity: critical, subject: {namespace: namespace, kind: Deployment, name: service}}
                  - alert: Muted
                    expr: restarts > 0
                    event: false
                  # kube-state-metrics scraped as kube-prometheus-stack scrapes it: its own pod,
                  # service and container (and, for a node, namespace) on series that have none.
                  - alert: KubeNodeNotReadyStack
                    expr: ksm_node_ready == 0
                  - alert: KubeHpaMaxedOut
                    expr: ksm_hpa_maxed > 0
                  - alert: KubeContainerWaiting
                    expr: ksm_waiting > 0
            """)
        let lifting = try Lifting(rules: path)
        let series = lifting.series
        let ns = ("namespace", "ops")
        series([("__name__", "restarts"), ns, ("pod", "web-7d9f-a1"), ("container", "app")])
        lifting.deploymentPod("web-7d9f-a1", replicaSet: "web-7d9f", deployment: "web", namespace: "ops")
        series([("__name__", "node_ready"), ("node", "n1")])
        series([("__name__", "quota_used"), ns, ("resourcequota", "compute")])
        // cart's errors: no Deployment cart, so the Service. web's: the Deployment web.
        series([("__name__", "errors"), ns, ("service", "cart")])
        series([("__name__", "errors"), ns, ("service", "web")])
        series([("__name__", "kube_deployment_spec_replicas"), ns, ("deployment", "web")])
        // The kubelet's target down: its service's cAdvisor series carry web's pod, which does
        // not make it web's problem.
        series([("__name__", "target_down"), ns, ("service", "kubelet"), ("job", "kubelet")])
        series([("__name__", "container_cpu"), ns, ("service", "kubelet"), ("pod", "web-7d9f-a1")])
        series([("__name__", "requests_failed"), ns, ("service", "cart-web"), ("pod", "web-7d9f-a1")])
        lifting.sample([("__name__", "up"), ("instance", "db-1:9187"), ("job", "postgres")], value: 0)
        // kube-prometheus' node-exporter series: the exporter's pod, the node as `instance`.
        lifting.sample([("__name__", "node_filesystem_avail_bytes"), ("namespace", "monitoring"), ("pod", "node-exporter-x7"),
                ("instance", "n2"), ("job", "node-exporter"), ("mountpoint", "/")], value: 0)
        let ksm = [("job", "kube-state-metrics"), ("service", "kps-kube-state-metrics"), ("instance", "10.42.2.101:8080"), ("endpoint", "http")]
        lifting.sample([("__name__", "ksm_node_ready"), ("namespace", "monitoring"), ("pod", "kps-kube-state-metrics-58474dc949-6ngch"),
                ("container", "kube-state-metrics"), ("node", "n3"), ("condition", "Ready")] + ksm, value: 0)
        series([("__name__", "ksm_hpa_maxed"), ns, ("pod", "kps-kube-state-metrics-58474dc949-6ngch"),
                ("container", "kube-state-metrics"), ("horizontalpodautoscaler", "web")] + ksm)
        series([("__name__", "ksm_waiting"), ns, ("pod", "web-7d9f-a1"), ("container", "app"), ("reason", "ErrImagePull")] + ksm)
        await lifting.engine.evaluate(groups: nil, now: lifting.now)
        let signals = await lifting.engine.signals()
        let routed = Set(signals.map { "\($0.rule) \($0.anomalyClass) \($0.severity) opens=\($0.opens) \($0.subject.namespace)/\($0.subject.kind)/\($0.subject.name)" })
        #expect(routed == [
            "KubePodCrashLooping kube_pod_crash_looping warning opens=true ops/Deployment/web",
            "KubeNodeNotReady kube_node_not_ready critical opens=true /Node/n1",
            "KubeQuotaAlmostFull kube_quota_almost_full info opens=false ops/Namespace/ops",
            "HTTPErrors5xx http_errors5xx warning opens=true ops/Service/cart",
            "HTTPErrors5xx http_errors5xx warning opens=true ops/Deployment/web",
            "TargetDown target_down warning opens=true ops/Service/kubelet",
            "UpstreamErrors upstream_errors warning opens=true ops/Service/cart-web",
            "ErrorRatio error_rate_spike critical opens=true ops/Deployment/web",
            "ManyRestartsClusterWide many_restarts_cluster_wide warning opens=true /Alert/ManyRestartsClusterWide",
            "InstanceDown instance_down critical opens=true /Instance/db-1:9187",
            "NodeFilesystemAlmostOutOfSpace node_filesystem_almost_out_of_space warning opens=true /Node/n2",
            "KubeNodeNotReadyStack kube_node_not_ready_stack warning opens=true /Node/n3",
            "KubeHpaMaxedOut kube_hpa_maxed_out warning opens=true ops/HorizontalPodAutoscaler/web",
            "KubeContainerWaiting kube_container_waiting warning opens=true ops/Deployment/web",
        ])
    }
}
