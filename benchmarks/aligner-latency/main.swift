import AlignerCore
import AlignerIngest
import AlignerServer
import AlignerTesting
import Foundation
import Logging

/// Detection latency: from the 2xx of the write that crosses a `for: 0` threshold to the alert
/// being visible in `GET /api/v1/alerts` (firing), and back (resolved), over a real server on
/// loopback with the bundled Kubernetes pack loaded too.
///
///     swift run -c release aligner-latency [iterations]
let iterations = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1])! : 200
let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aligner-latency-\(UUID().uuidString)")
try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
try """
    groups:
      - name: latency
        rules:
          - alert: ReplicasMissing
            expr: kube_deployment_spec_replicas > on(namespace, deployment) kube_deployment_status_replicas_ready
    """.write(to: dir.appendingPathComponent("latency.yml"), atomically: true, encoding: .utf8)
var configuration = AlignerConfiguration()
configuration.listen = ListenAddress(host: "127.0.0.1", port: 0)
configuration.rulePaths = [dir.path, "rules"]
configuration.rulePathsAreDefault = false
var logger = Logger(label: "latency")
logger.logLevel = .warning
let server = try AlignerServer(configuration: configuration, logger: logger)
let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
let group = server.makeServiceGroup { continuation.yield($0) }
let runner = Task { try await group.run() }
var port = 0
for await p in ports {
    port = p
    break
}
let base = "http://127.0.0.1:\(port)"
let headers = ["Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"]

func write(ready: Double) throws {
    let t = WallClock.nowMilliseconds()
    let body = Snappy.compress(ProtobufC.encodeV1(TestRequest(series: [
        TestSeries("kube_deployment_spec_replicas", [("namespace", "shop"), ("deployment", "darwin-store")], samples: [(t, 5)]),
        TestSeries("kube_deployment_status_replicas_ready", [("namespace", "shop"), ("deployment", "darwin-store")], samples: [(t, ready)]),
    ])))
    let r = try HTTPClient.send("POST", base + "/api/v1/write", headers: headers, body: body)
    precondition(r.status == 204, "write failed: \(r.status) \(r.text)")
}

func waitFor(firing: Bool) throws -> Double {
    let start = ContinuousClock.now
    while true {
        let text = try HTTPClient.send("GET", base + "/api/v1/alerts").text
        let isFiring = text.contains("\"ReplicasMissing\"") && text.contains("\"firing\"")
        if isFiring == firing {
            let d = ContinuousClock.now - start
            return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        }
        if ContinuousClock.now - start > .seconds(5) { fatalError("alert did not change state within 5 s") }
    }
}

var fire: [Double] = [], resolve: [Double] = []
for i in 0..<iterations {
    try write(ready: 4)
    fire.append(try waitFor(firing: true))
    try await Task.sleep(for: .milliseconds(2))
    try write(ready: 5)
    resolve.append(try waitFor(firing: false))
    try await Task.sleep(for: .milliseconds(2))
    if i == 0 { fire.removeAll(); resolve.removeAll() }  // warm-up
}
func percentile(_ v: [Double], _ p: Double) -> Double { v.sorted()[min(v.count - 1, Int(Double(v.count) * p))] }
print(String(format: "write 2xx -> alert firing in /api/v1/alerts: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d writes)",
             percentile(fire, 0.5), percentile(fire, 0.99), fire.max()!, fire.count))
print(String(format: "write 2xx -> alert resolved: p50 %.2f ms, p99 %.2f ms, max %.2f ms", percentile(resolve, 0.5), percentile(resolve, 0.99), resolve.max()!))
await group.triggerGracefulShutdown()
_ = try? await runner.value
