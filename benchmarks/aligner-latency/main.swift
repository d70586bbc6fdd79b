import AlignerCore
import AlignerEvents
import AlignerIngest
import AlignerServer
import AlignerTesting
import Foundation
import Logging
import Synchronization

/// Detection latency: from the 2xx of the write that crosses a `for: 0` threshold to the alert
/// being visible in `GET /api/v1/alerts` (firing), and back (resolved), and to the event being
/// listed and announced on the stream, over a real server on loopback with the bundled
/// Kubernetes pack loaded too; then the event manager's throughput with its SQLite store.
///
///     swift run -c release aligner-latency [iterations] [--normal-scheduling]
///
/// Threads run under SCHED_BATCH, as `aligner serve` runs them by default (`cpu_scheduling`);
/// `--normal-scheduling` leaves them as started.
let arguments = CommandLine.arguments.dropFirst().filter { $0 != "--normal-scheduling" }
let iterations = arguments.first.map { Int($0)! } ?? 200
if !CommandLine.arguments.contains("--normal-scheduling") { _ = AlignerServer.useBatchScheduling() }
let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aligner-latency-\(UUID().uuidString)")
try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: dir) }
try """
    groups:
      - name: latency
        rules:
          - alert: ReplicasMissing
            expr: kube_deployment_spec_replicas > on(namespace, deployment) kube_deployment_status_replicas_ready
          - alert: WorkloadBroken
            expr: broken == 1
            event: {class: crash_loop, severity: critical, subject: {namespace: namespace, kind: Deployment, name: deployment}}
    """.write(to: dir.appendingPathComponent("latency.yml"), atomically: true, encoding: .utf8)
var configuration = AlignerConfiguration()
configuration.listen = ListenAddress(host: "127.0.0.1", port: 0)
configuration.rulePaths = [dir.path, "rules"]
configuration.rulePathsAreDefault = false
configuration.dataDirectory = dir.appendingPathComponent("data").path
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
// Write -> event: a new workload breaks; time until GET /api/v1/events lists its event (every
// event change is committed to SQLite, synchronous=FULL, before the stream announces it).
var toEvent: [Double] = []
for i in 0..<iterations {
    let name = "w\(i)"
    let t = WallClock.nowMilliseconds()
    let body = Snappy.compress(ProtobufC.encodeV1(TestRequest(series: [
        // One namespace per workload: flood consolidation would otherwise fold them into one event.
        TestSeries("broken", [("namespace", "bench\(i)"), ("deployment", name)], samples: [(t, 1)]),
    ])))
    let r = try HTTPClient.send("POST", base + "/api/v1/write", headers: headers, body: body)
    precondition(r.status == 204)
    let start = ContinuousClock.now
    while true {
        let text = try HTTPClient.send("GET", base + "/api/v1/events?subject=\(name)").text
        if text.contains("evt-") { break }
        if ContinuousClock.now - start > .seconds(5) { fatalError("no event within 5 s") }
    }
    let d = ContinuousClock.now - start
    toEvent.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
}
print(String(format: "write 2xx -> event listed in /api/v1/events: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d new workloads)",
             percentile(toEvent, 0.5), percentile(toEvent, 0.99), toEvent.max()!, toEvent.count))

// Write -> event on the stream: a consumer of GET /api/v1/events/stream notes when each new
// workload's `opened` change arrives; timed from just before the write is sent (the change can
// reach the stream before the write's 2xx reaches its sender).
let arrivals = Mutex<[String: ContinuousClock.Instant]>([:])
let streamEnded = DispatchSemaphore(value: 0)
DispatchQueue.global().async {
    var pending = ""
    _ = try? HTTPClient.send("GET", base + "/api/v1/events/stream", timeout: .seconds(300), partialOnTimeout: true) { bytes in
        let now = ContinuousClock.now
        pending += String(decoding: bytes, as: UTF8.self)
        while let end = pending.range(of: "\n\n") {
            let block = pending[..<end.lowerBound]
            pending.removeSubrange(..<end.upperBound)
            guard block.contains("event: opened"), let subject = block.range(of: "\"subject\":{"),
                  let key = block.range(of: "\"name\":\"", range: subject.upperBound..<block.endIndex),
                  let close = block[key.upperBound...].firstIndex(of: "\"") else { continue }
            let name = String(block[key.upperBound..<close])
            arrivals.withLock { if $0[name] == nil { $0[name] = now } }
        }
        return arrivals.withLock { $0["s\(iterations - 1)"] == nil }
    }
    streamEnded.signal()
}
// The consumer has read the changes made before it connected (the workloads above).
while arrivals.withLock({ $0["w\(iterations - 1)"] }) == nil { try await Task.sleep(for: .milliseconds(1)) }
var toStream: [Double] = [], writeTimes: [Double] = []
for i in 0..<iterations {
    let name = "s\(i)"
    let body = Snappy.compress(ProtobufC.encodeV1(TestRequest(series: [
        TestSeries("broken", [("namespace", "stream\(i)"), ("deployment", name)], samples: [(WallClock.nowMilliseconds(), 1)]),
    ])))
    let sent = ContinuousClock.now
    let r = try HTTPClient.send("POST", base + "/api/v1/write", headers: headers, body: body)
    precondition(r.status == 204)
    let w = ContinuousClock.now - sent
    writeTimes.append(Double(w.components.seconds) * 1000 + Double(w.components.attoseconds) / 1e15)
    while arrivals.withLock({ $0[name] }) == nil {
        if ContinuousClock.now - sent > .seconds(5) { fatalError("no event on the stream within 5 s") }
        try await Task.sleep(for: .microseconds(100))
    }
    let d = arrivals.withLock { $0[name]! } - sent
    toStream.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
}
streamEnded.wait()
print(String(format: "write sent -> event opened on /api/v1/events/stream: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d new workloads; the write's own round trip p50 %.2f ms)",
             percentile(toStream, 0.5), percentile(toStream, 0.99), toStream.max()!, toStream.count, percentile(writeTimes, 0.5)))
await group.triggerGracefulShutdown()
_ = try? await runner.value

// Event throughput: signals into the manager with the SQLite store (WAL, synchronous=FULL).
func eventThroughput(directory: String, subjects: Int) async throws -> (opened: Duration, joined: Duration) {
    let store = try SQLiteEventStore(directory: directory)
    let manager = try EventManager(store: store, resolveAfter: 60_000, cooldown: 600_000, logger: Logger(label: "bench"))
    var firing: [SignalInput] = []
    let start = ContinuousClock.now
    for i in 0..<subjects {
        firing.append(SignalInput(rule: "A", anomalyClass: "crash_loop", severity: "warning",
                                  subject: Subject(namespace: "ns\(i)", kind: "Deployment", name: "w\(i)"),
                                  labels: ["deployment": "w\(i)", "namespace": "ns\(i)"], annotations: [:], value: 1, since: 0))
        if firing.count % 100 == 0 { await manager.sync(firing: firing, at: Int64(i)) }
    }
    let opened = ContinuousClock.now - start
    var more = firing
    let joinStart = ContinuousClock.now
    for i in 0..<subjects {
        more.append(SignalInput(rule: "B", anomalyClass: "cpu_burst", severity: "warning", subject: firing[i].subject,
                                labels: ["pod": "w\(i)-x", "namespace": "ns\(i)"], annotations: [:], value: 1, since: 0))
        if (i + 1) % 100 == 0 { await manager.sync(firing: more, at: Int64(subjects + i)) }
    }
    return (opened, ContinuousClock.now - joinStart)
}

let subjectCount = 2000
let (openedTime, joinedTime) = try await eventThroughput(directory: dir.appendingPathComponent("throughput").path, subjects: subjectCount)
func rate(_ n: Int, _ d: Duration) -> Double { Double(n) / (Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18) }
print(String(format: "events: %.0f new events/s, %.0f joining signals/s (100 new signals per evaluation; each evaluation's changes committed in one SQLite transaction)",
             rate(subjectCount, openedTime), rate(subjectCount, joinedTime)))
