import AlignerTesting
import Foundation
import Hummingbird
import ServiceLifecycle
import Synchronization
import Testing

/// A scrape target serving Prometheus' text format that the test rewrites as it goes (in the
/// role of kube-state-metrics and an application at once).
final class FakeExporter: Sendable {
    /// The page served at `/metrics`.
    final class Page: Sendable {
        let text = Mutex("")
    }

    let page: Page
    let port: Int
    let group: ServiceGroup
    let task: Task<Void, any Error>

    private init(page: Page, port: Int, group: ServiceGroup, task: Task<Void, any Error>) {
        self.page = page
        self.port = port
        self.group = group
        self.task = task
    }

    static func start() async throws -> FakeExporter {
        let page = Page()
        let router = Router()
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(string: page.text.withLock { $0 })))
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) })
        let group = ServiceGroup(configuration: .init(services: [app], logger: app.logger))
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw HTTPClient.Failure(description: "exporter did not start") }
        return FakeExporter(page: page, port: port, group: group, task: task)
    }

    func serve(_ text: String) { page.text.withLock { $0 = text } }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}

/// The reference incident through a real Prometheus: it scrapes a target exposing the
/// crash-looping rollout of shop/darwin-store (kube-state-metrics' series with the pods' owners,
/// the pod's CPU, the service's request counters) beside a healthy shop/cart, every second, and
/// remote-writes to Aligner with the bundled pack. Aligner opens one event, for the Deployment,
/// holding the crash loop and the CPU of its pod and the 5xx ratio of its service; none for cart.
@Suite(.serialized) struct PrometheusIncidentTests {
    @Test(.timeLimit(.minutes(2))) func crashLoopingRolloutBecomesOneEvent() async throws {
        let s = try await StreamingRulesTests.startWithBundledPack()
        defer { Task { await s.stop() } }
        let exporter = try await FakeExporter.start()
        defer { Task { await exporter.stop() } }
        let start = Date()
        /// The target's page `t` seconds in: darwin-store's new pod is in CrashLoopBackOff and its
        /// service answers 10 requests/s, all failing from 5 s on, while the pod runs at 80% of
        /// its CPU limit; cart serves without errors.
        func page(_ t: Double) -> String {
            let ok = 10 * min(t, 5), failed = 10 * max(0, t - 5), cart = 5 * t, cpu = 0.8 * t
            return """
                kube_deployment_spec_replicas{namespace="shop",deployment="darwin-store"} 5
                kube_deployment_status_replicas_ready{namespace="shop",deployment="darwin-store"} 4
                kube_deployment_spec_replicas{namespace="shop",deployment="cart"} 3
                kube_deployment_status_replicas_ready{namespace="shop",deployment="cart"} 3
                kube_pod_container_status_waiting_reason{namespace="shop",pod="darwin-store-7d9f-x1",container="app",reason="CrashLoopBackOff"} 1
                kube_pod_owner{namespace="shop",pod="darwin-store-7d9f-x1",owner_kind="ReplicaSet",owner_name="darwin-store-7d9f"} 1
                kube_replicaset_owner{namespace="shop",replicaset="darwin-store-7d9f",owner_kind="Deployment",owner_name="darwin-store"} 1
                http_requests_total{namespace="shop",service="darwin-store",code="200"} \(ok)
                http_requests_total{namespace="shop",service="darwin-store",code="500"} \(failed)
                http_requests_total{namespace="shop",service="cart",code="200"} \(cart)
                container_cpu_usage_seconds_total{namespace="shop",pod="darwin-store-7d9f-x1",container="app"} \(cpu)
                kube_pod_container_resource_limits{namespace="shop",pod="darwin-store-7d9f-x1",container="app",resource="cpu"} 1

                """
        }
        exporter.serve(page(0))
        let feeder = Task {
            while !Task.isCancelled {
                exporter.serve(page(Date().timeIntervalSince(start)))
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        defer { feeder.cancel() }
        let promPort = try freeLoopbackPort()
        let prometheus = try PrometheusEndToEndTests.startPrometheus(port: promPort, scrapeConfigs: """
              - job_name: cluster
                honor_labels: true
                static_configs: [{targets: ['127.0.0.1:\(exporter.port)']}]
            """, writeTo: s.port)
        defer { prometheus.stop() }

        let listed = try await poll(s.base, "/api/v1/events", within: .seconds(40)) {
            $0.contains("crash_loop") && $0.contains("error_rate_spike") && $0.contains("cpu_burst")
        }
        let event = try ListedEvent.only(in: listed)
        #expect(event.subject == ["namespace": "shop", "kind": "Deployment", "name": "darwin-store"])
        #expect(event.classes == ["crash_loop", "error_rate_spike", "cpu_burst"], "\(listed)")
        #expect(event.summary.contains("5xx ratio 100%"), "\(event.summary)")
    }
}
