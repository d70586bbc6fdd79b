import AlignerCore
import AlignerEngine
import AlignerIngest
import AlignerRules
import AlignerTesting
import CAlignerMallocCounter
import Foundation

/// Decode + series-lookup benchmark on one core (one thread).
///
///     swift run -c release aligner-bench [--payloads DIR] [--rounds N] [--rules DIR] [--profile-lookup]
///
/// `--profile-lookup` runs only the decode + series lookup rounds (no snappy, no rules), for
/// `perf record`.
///
/// Bodies are the shared harness's payloads (../shared/bench/gen_payloads.py; default
/// $BENCH_WORK/payloads/default) or, without them, generated ones of the same shape. Every round
/// rewrites each body's sample timestamps in place (same varint width), so every sample is a new,
/// in-order append, as in steady remote-write traffic. Round 0 creates the series and is not timed.
struct Options {
    var payloads = (ProcessInfo.processInfo.environment["BENCH_WORK"] ?? "/tmp/aligner-bench") + "/payloads/default"
    var rounds = 20
    var v2 = false
    var rules: String?
    var profileLookup = false

    init() {
        var args = CommandLine.arguments.dropFirst()
        while let a = args.popFirst() {
            switch a {
            case "--payloads": payloads = args.popFirst()!
            case "--rounds": rounds = Int(args.popFirst()!)!
            case "--v2": v2 = true
            case "--rules": rules = args.popFirst()!
            case "--profile-lookup": profileLookup = true
            case "--help", "-h":
                print("usage: aligner-bench [--payloads DIR] [--rounds N] [--v2] [--rules DIR] [--profile-lookup]")
                exit(0)
            default:
                FileHandle.standardError.write(Data("aligner-bench: unknown argument \(a) (see --help)\n".utf8))
                exit(2)
            }
        }
    }
}

let options = Options()

// MARK: bodies

func loadBodies() -> (bodies: [[UInt8]], source: String) {
    let fm = FileManager.default
    if let names = try? fm.contentsOfDirectory(atPath: options.payloads).filter({ $0.hasSuffix(".bin") }).sorted(),
       !names.isEmpty
    {
        // One value version per set is enough: timestamps are rewritten each round.
        let chosen = names.filter { $0.hasSuffix("_00.bin") }
        let bodies = (chosen.isEmpty ? names : chosen).map { name -> [UInt8] in
            let compressed = [UInt8](fm.contents(atPath: options.payloads + "/" + name)!)
            return decompress(compressed)
        }
        return (bodies, "\(bodies.count) bodies from \(options.payloads)")
    }
    return (generatedBodies(), "64 generated bodies (no payloads at \(options.payloads))")
}

func decompress(_ compressed: [UInt8]) -> [UInt8] {
    let scratch = ByteScratch()
    let bytes = compressed.withUnsafeBytes { try! Snappy.decompress($0, into: scratch, limit: 1 << 30) }
    return Array(bytes)
}

/// 64 bodies x 2000 series of Kubernetes-like series with about 10 labels each.
func generatedBodies() -> [[UInt8]] {
    let metrics = ["http_requests_total", "container_cpu_usage_seconds_total", "kube_pod_status_phase",
                   "node_cpu_seconds_total", "process_resident_memory_bytes"]
    var bodies: [[UInt8]] = []
    for b in 0..<64 {
        var series: [TestSeries] = []
        for i in 0..<2000 {
            let n = b * 2000 + i
            series.append(TestSeries(metrics[n % metrics.count], [
                ("cluster", "prod-eu-1"), ("container", "app"), ("instance", "10.0.\(n / 250 % 250).\(n % 250):8080"),
                ("job", "kubernetes-pods"), ("namespace", "ns-\(n % 40)"), ("pod", "workload-\(n / 40)-7d9f8c-x\(n % 7)"),
                ("service", "svc-\(n / 40)"), ("code", "\(200 + n % 5)"), ("method", "GET"),
            ].sorted { $0.0 < $1.0 }, samples: [(1_760_000_000_000, Double(n))]))
        }
        bodies.append(ProtobufC.encodeV1(TestRequest(series: series)))
    }
    return bodies
}

/// Byte offsets and widths of every sample timestamp varint in a body: series are field 1 of a
/// 1.0 request and field 5 of a 2.0 one; in both, samples are field 2 of a series and the
/// timestamp field 2 of a sample.
func timestampSlots(_ body: [UInt8]) -> [(offset: Int, width: Int)] {
    let seriesField: UInt64 = options.v2 ? 5 : 1
    var slots: [(Int, Int)] = []
    func varint(_ b: [UInt8], _ i: inout Int) -> UInt64 {
        var v: UInt64 = 0, shift: UInt64 = 0
        while true {
            let x = b[i]; i += 1
            v |= UInt64(x & 0x7f) << shift
            if x < 0x80 { return v }
            shift += 7
        }
    }
    func walk(_ start: Int, _ end: Int, depth: Int) {
        var i = start
        while i < end {
            let tag = varint(body, &i)
            let field = tag >> 3, wt = tag & 7
            switch wt {
            case 0:
                let s = i
                _ = varint(body, &i)
                if depth == 2 && field == 2 { slots.append((s, i - s)) }
            case 1: i += 8
            case 5: i += 4
            case 2:
                let n = Int(varint(body, &i))
                if (depth == 0 && field == seriesField) || (depth == 1 && field == 2) { walk(i, i + n, depth: depth + 1) }
                i += n
            default: fatalError("unexpected wire type")
            }
        }
    }
    walk(0, body.count, depth: 0)
    return slots
}

func patch(_ body: inout [UInt8], _ slots: [(offset: Int, width: Int)], timestamp: Int64) {
    for (offset, width) in slots {
        var v = UInt64(timestamp)
        for k in 0..<width {
            let last = k == width - 1
            body[offset + k] = UInt8(v & 0x7f) | (last ? 0 : 0x80)
            v >>= 7
        }
    }
}

// MARK: run

func rssMiB() -> Double {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return Double(line.split(separator: " ").dropFirst().first ?? "0")! / 1024
}

let (v1Bodies, source) = loadBodies()
/// With `--v2`, the same series and samples re-encoded as 2.0 requests (symbols table and label
/// references) through libprotobuf-c.
var bodies = options.v2
    ? v1Bodies.map { body in ProtobufC.encodeV2(body.withUnsafeBytes { ProtobufC.decodeV1($0)! }) }
    : v1Bodies
let version: RemoteWriteVersion = options.v2 ? .v2 : .v1
let slots = bodies.map(timestampSlots)
let samplesPerRound = slots.reduce(0) { $0 + $1.count }
let rssBefore = rssMiB()
let base: Int64 = 1_760_000_000_000
print("source: \(source)\(options.v2 ? ", re-encoded as 2.0" : ""); \(samplesPerRound) samples per round; \(bodies.reduce(0) { $0 + $1.count } / bodies.count) bytes per decoded body")

/// Decoding alone: a sink that only counts, to separate decode cost from series lookup. With
/// `readsLabels` false it decodes as the ingest path does (labels of the common shape skipped).
struct CountingSink: RemoteWriteSink {
    let readsLabels: Bool
    var samples = 0
    var keyBytes = 0
    mutating func series(_ series: DecodedSeries) {
        samples += series.samples.count
        keyBytes &+= series.canonicalKey?.count ?? 0
    }
    mutating func metadata(_ metadata: WireMetadata) {}
}

@MainActor func decodeOnly(hot: Bool, readsLabels: Bool) -> Double {
    let decoder = RemoteWriteDecoder()
    var sink = CountingSink(readsLabels: readsLabels)
    let clock = ContinuousClock()
    var total = Duration.zero
    for body in bodies {
        func decode() {
            body.withUnsafeBytes { raw in
                if version == .v2 { try! decoder.decodeV2(raw, into: &sink) } else { try! decoder.decodeV1(raw, into: &sink) }
            }
        }
        if hot { decode() }  // bring into cache
        total += clock.measure { decode() }
    }
    let samples = Double(sink.samples) / (hot ? 2 : 1)
    precondition(version == .v2 || sink.keyBytes > 0, "no canonical keys found in place")
    return samples / seconds(total)
}

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }

if !options.profileLookup {
print(String(format: "decode alone, body in cache: %.2f M samples/s; body from memory: %.2f M samples/s",
             decodeOnly(hot: true, readsLabels: true) / 1e6, decodeOnly(hot: false, readsLabels: true) / 1e6))
print(String(format: "decode alone, labels skimmed as the ingest path does: body in cache %.2f M samples/s; from memory %.2f M samples/s",
             decodeOnly(hot: true, readsLabels: false) / 1e6, decodeOnly(hot: false, readsLabels: false) / 1e6))
}

/// Ingests every body each round (timestamps rewritten, `step` milliseconds apart), timing
/// decode + lookup and snappy + decode + lookup, after `warmup` untimed rounds.
@MainActor func measure(_ ingestor: Ingestor, label: String, roundOffset: Int, step: Int64 = 1000, warmup: Int = 0) {
    func runRound(_ r: Int, compressedToo: Bool) -> (decode: Duration, full: Duration, allocations: UInt64, written: Int) {
        for i in bodies.indices { patch(&bodies[i], slots[i], timestamp: base + Int64(r) * step) }
        var written = 0
        let allocations0 = aligner_malloc_count()
        let clock = ContinuousClock()
        var decode = Duration.zero
        decode = clock.measure {
            for body in bodies {
                let o = body.withUnsafeBytes { try! ingestor.apply(decompressed: $0, version: version, now: 1) }
                written += o.samplesWritten
            }
        }
        let allocations = aligner_malloc_count() - allocations0
        var full = Duration.zero
        if compressedToo {
            for i in bodies.indices { patch(&bodies[i], slots[i], timestamp: base + Int64(r) * step + step / 2) }
            let compressed = bodies.map { Snappy.compress($0) }
            full = clock.measure {
                for body in compressed {
                    let o = body.withUnsafeBytes { try! ingestor.write(compressed: $0, version: version, now: 1) }
                    written += o.samplesWritten
                }
            }
        }
        return (decode, full, allocations, written)
    }
    _ = runRound(roundOffset, compressedToo: false)  // creates every series
    let rssAfterCreate = rssMiB()
    for r in stride(from: 1, through: warmup, by: 1) { _ = runRound(roundOffset + r, compressedToo: false) }
    let roundOffset = roundOffset + warmup
    var decodeTime = Duration.zero, fullTime = Duration.zero
    var allocations: UInt64 = 0
    var written = 0
    for r in 1...options.rounds {
        let result = runRound(roundOffset + r, compressedToo: !options.profileLookup)
        decodeTime += result.decode
        fullTime += result.full
        allocations += result.allocations
        written += result.written
    }
    let samples = Double(samplesPerRound * options.rounds)
    precondition(written == samplesPerRound * options.rounds * (options.profileLookup ? 1 : 2), "not every sample was applied: \(written)")
    let requests = Double(bodies.count * options.rounds)
    print("[\(label)]")
    print(String(format: "  decode + series lookup (decompressed bodies): %.2f M samples/s on one core (%.1f ns/sample)",
                 samples / seconds(decodeTime) / 1e6, seconds(decodeTime) / samples * 1e9))
    if !options.profileLookup {
        print(String(format: "  snappy + decode + series lookup (compressed bodies): %.2f M samples/s on one core",
                     samples / seconds(fullTime) / 1e6))
    }
    print(String(format: "  allocations per warm request (decode path): %.2f", Double(allocations) / requests))
    print(String(format: "  active series: %d; series table %.1f MiB; process RSS %.1f MiB before ingest, %.1f MiB after creating the series",
                 ingestor.table.activeSeries, Double(ingestor.table.memoryBytes) / 1048576, rssBefore, rssAfterCreate))
}

var limits = IngestLimits()
limits.maxSeries = 10_000_000
measure(Ingestor(limits: limits), label: "no rules", roundOffset: 0)
if let rules = options.rules, !options.profileLookup {
    let groups = try RuleFileLoader.load(files: try RuleFileLoader.files(in: rules))
    let windows = WindowStore()
    windows.select(groups)
    // A sample a second per series after 11 minutes of them (untimed): the windows full to
    // their retention (about 500 samples each, as in the end-to-end run, whose payloads' clock
    // runs 15 times faster than the wall's), so appends also drop what fell out of it.
    measure(Ingestor(limits: limits, observer: windows), label: "with \(groups.reduce(0) { $0 + $1.rules.count }) rules from \(rules), windows full",
            roundOffset: 1000, step: 1_000, warmup: 660)
    let size = windows.size
    print("  rule windows: \(size.series) series selected, \(size.samples) samples held")
}

// Evaluation cost as series grow: the pack's kubernetes-pods group over N pods' series in the
// windows, evaluated whole (what the periodic evaluation does) and after a write that touched 100
// pods (what a write triggers: only the partitions it touched).
if let rules = options.rules, !options.profileLookup {
    let groups = try RuleFileLoader.load(files: try RuleFileLoader.files(in: rules))
    print("[evaluation cost as series grow, \(rules), kubernetes-pods group]")
    for pods in [1_000, 10_000, 50_000] {
        let windows = WindowStore()
        windows.select(groups)
        let t0: Int64 = 1_760_000_000_000
        var ids: [UInt32] = []
        for p in 0..<pods {
            let labels = [Label("__name__", "kube_pod_container_status_waiting_reason"), Label("container", "app"),
                          Label("namespace", "ns\(p % 100)"), Label("pod", "pod-\(p)"), Label("reason", "CrashLoopBackOff")]
            let id = windows.admit(labels: labels)
            ids.append(id)
            for k in 0..<4 { windows.append(window: id, timestamp: t0 + Int64(k) * 15_000, valueBits: (p % 50 == 0 ? 1.0 : 0.0).bitPattern) }
        }
        var state = try RuleGroupsState(groups: groups)
        let podsGroup = groups.firstIndex { $0.name == "kubernetes-pods" }!
        let labels = groups[podsGroup].partitionLabels!
        _ = state.evaluate(group: podsGroup, at: t0 + 60_000, source: windows, sink: windows)
        _ = windows.takeDirty()
        let clock = ContinuousClock()
        let runs = 5
        let whole = clock.measure {
            for r in 0..<runs { _ = state.evaluate(group: podsGroup, at: t0 + 60_000 + Int64(r), source: windows, sink: windows) }
        }
        // A write touching 100 pods, then the evaluation it triggers.
        var partial = Duration.zero
        for r in 0..<runs {
            let t = t0 + 75_000 + Int64(r) * 15_000
            for p in stride(from: 0, to: pods, by: pods / 100) { windows.append(window: ids[p], timestamp: t, valueBits: 0.0.bitPattern) }
            partial += clock.measure {
                guard case .partitions(let touched)? = windows.takeDirty()[podsGroup] else { fatalError("expected a partial touch") }
                _ = state.evaluate(
                    group: podsGroup, at: t, source: PartitionedSource(store: windows, group: podsGroup, partitions: touched), sink: windows,
                    partition: (labels, windows.partitionKeys(group: podsGroup, touched)))
            }
        }
        print(String(format: "  %6d pod series: whole group %.2f ms; after a write touching 100 pods %.3f ms", pods,
                     seconds(whole) / Double(runs) * 1000, seconds(partial) / Double(runs) * 1000))
    }
}
