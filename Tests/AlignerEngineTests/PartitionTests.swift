import AlignerCore
@testable import AlignerEngine
import AlignerIngest
import AlignerRules
import AlignerTesting
import Foundation
import Testing

@Suite struct PartitionTests {
    @Test(arguments: [
        ("sum by (namespace, pod) (rate(x[5m])) > 1", ["namespace", "pod"]),
        ("sum(x)", nil),
        ("x > 1", nil),
        ("x > on(a) y", ["a"]),
        ("sum by (a, b) (x) / ignoring(b) group_left sum by (a) (y)", ["a"]),
        ("label_replace(sum by (a, b) (x), \"a\", \"$1\", \"b\", \"(.*)\")", ["b"]),
        ("histogram_quantile(0.9, sum by (le, job) (rate(x_bucket[5m])))", ["job"]),
        ("max by (a) (x) * on(a) group_left(b) max by (a, b) (y)", ["a"]),
        ("sum by (a) (x) > scalar(sum(y))", nil),
        ("topk by (a) (3, x)", ["a"]),
        ("sum without (pod) (x) > on(namespace) sum by (namespace) (y)", ["namespace"]),
        ("absent(x)", nil),
        ("time() - max by (namespace, job_name) (kube_job_status_start_time) > 3600", ["job_name", "namespace"]),
        ("sum by (a) (x) or vector(0)", nil),
    ] as [(String, [String]?)])
    func constraint(_ expr: String, _ labels: [String]?) throws {
        #expect(try PromQLParser.parse(expr).partitionConstraint.labels == labels, "\(expr)")
    }

    /// By cluster too: the pack names `cluster` wherever it names the namespace.
    @Test func theBundledPackSplitsByNamespaceOrPod() throws {
        let groups = try RuleFileLoader.load(files: [packPath])
        let byName = Dictionary(uniqueKeysWithValues: groups.map { ($0.name, $0.partitionLabels) })
        #expect(byName["kubernetes-pods"] == ["cluster", "namespace", "pod"])
        #expect(byName["kubernetes-workloads"] == ["cluster", "namespace"])
        #expect(byName["kubernetes-services"] == ["cluster", "namespace"])
    }

    var packPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../rules/kubernetes.yml").path
    }

    /// A group's `limit`, as Prometheus applies it: a rule past it fails, an alerting rule drops
    /// its alerts; such a group is evaluated whole (the limit counts every alert of a rule).
    @Test func limitFailsTheRuleAndDropsItsAlerts() throws {
        let (groups, problems) = RuleFileLoader.parse(yaml: """
            groups:
              - name: g
                limit: 2
                rules:
                  - alert: Many
                    expr: x > 1
            """, file: "g.yml")
        #expect(problems.isEmpty)
        #expect(groups[0].partitionLabels == nil)
        let store = WindowStore()
        store.select(groups)
        var state = try RuleGroupsState(groups: groups)
        func write(_ i: String, _ t: Int64, _ v: Double) {
            let id = store.admit(labels: [Label("__name__", "x"), Label("i", i)])
            store.append(window: id, timestamp: t, valueBits: v.bitPattern)
        }
        write("1", 1_000, 2)
        write("2", 1_000, 2)
        write("3", 1_000, 0)
        #expect(state.evaluate(group: 0, at: 1_000, source: store, sink: store).isEmpty)
        #expect(state.alerts.count == 2)
        write("3", 2_000, 2)
        #expect(state.evaluate(group: 0, at: 2_000, source: store, sink: store) == ["group \"g\", rule \"Many\": exceeded limit of 2 with 3 alerts"])
        #expect(state.alerts.isEmpty)
    }

    /// A write that touches one partition is evaluated over that partition only, with the same
    /// outcome a whole evaluation gives, and the alerts of other partitions are left alone.
    @Test func partialEvaluationMatchesWholeEvaluation() throws {
        let (groups, problems) = RuleFileLoader.parse(yaml: """
            groups:
              - name: g
                rules:
                  - record: ns:errors:sum
                    expr: sum by (namespace) (errors)
                  - alert: Errors
                    expr: ns:errors:sum > 5
            """, file: "g.yml")
        #expect(problems.isEmpty)
        #expect(groups[0].partitionLabels == ["namespace"])
        let store = WindowStore()
        store.select(groups)
        var state = try RuleGroupsState(groups: groups)
        func write(_ ns: String, _ pod: String, _ t: Int64, _ v: Double) {
            let id = store.admit(labels: [Label("__name__", "errors"), Label("namespace", ns), Label("pod", pod)])
            store.append(window: id, timestamp: t, valueBits: v.bitPattern)
        }
        // Both namespaces above the threshold: a whole evaluation fires both.
        for ns in ["a", "b"] { for p in ["p1", "p2"] { write(ns, p, 1_000, 4) } }
        _ = store.takeDirty()
        #expect(state.evaluate(group: 0, at: 1_000, source: store, sink: store).isEmpty)
        #expect(Set(state.alerts.filter { $0.state == .firing }.map { $0.labels.value("namespace") }) == ["a", "b"])

        // Namespace a recovers; only its partition was touched.
        write("a", "p1", 2_000, 0)
        write("a", "p2", 2_000, 0)
        let dirty = store.takeDirty()
        guard case .partitions(let touched)? = dirty[0] else {
            Issue.record("expected a partial touch, got \(dirty)")
            return
        }
        #expect(touched.count == 1)
        let keys = store.partitionKeys(group: 0, touched)
        #expect(keys == [[Label("namespace", "a")].partitionKey(["namespace"])])
        var partial = state
        #expect(partial.evaluate(group: 0, at: 2_000, source: PartitionedSource(store: store, group: 0, partitions: touched),
                                 sink: store, partition: (["namespace"], keys)).isEmpty)
        // a resolved, b still firing (untouched, not re-evaluated, not resolved for missing).
        let firing = partial.alerts.filter { $0.state == .firing }.map { $0.labels.value("namespace") }
        #expect(firing == ["b"])
        // The same outcome as evaluating the whole group at that time.
        var whole = state
        #expect(whole.evaluate(group: 0, at: 2_000, source: store, sink: MemoryStore()).isEmpty)
        #expect(whole.alerts.filter { $0.state == .firing }.map { $0.labels.value("namespace") } == firing)
        state = partial
    }

    /// ALERTS follow partial evaluations: the touched partition's resolved alert ends with a
    /// staleness marker, the untouched one's series is left as it was.
    @Test func alertSeriesFollowPartialEvaluations() throws {
        let (groups, problems) = RuleFileLoader.parse(yaml: """
            groups:
              - name: g
                rules:
                  - alert: Errors
                    expr: sum by (namespace) (errors) > 5
                  - record: firing:count
                    expr: count by (namespace) (ALERTS{alertstate="firing"})
            """, file: "g.yml")
        #expect(problems.isEmpty)
        #expect(groups[0].partitionLabels == ["namespace"])
        let store = WindowStore()
        store.select(groups)
        var state = try RuleGroupsState(groups: groups)
        #expect(state.writesAlertSeries)
        func write(_ ns: String, _ t: Int64, _ v: Double) {
            let id = store.admit(labels: [Label("__name__", "errors"), Label("namespace", ns)])
            store.append(window: id, timestamp: t, valueBits: v.bitPattern)
        }
        write("a", 1_000, 9)
        write("b", 1_000, 9)
        _ = store.takeDirty()
        #expect(state.evaluate(group: 0, at: 1_000, source: store, sink: store).isEmpty)
        write("a", 2_000, 0)
        guard case .partitions(let touched)? = store.takeDirty()[0] else {
            Issue.record("expected a partial touch")
            return
        }
        #expect(state.evaluate(group: 0, at: 2_000, source: PartitionedSource(store: store, group: 0, partitions: touched),
                               sink: store, partition: (["namespace"], store.partitionKeys(group: 0, touched))).isEmpty)
        let alerts = store.series(matching: [LabelMatcher("__name__", .equal, "ALERTS")], from: 0, through: 3_000)
        let byNamespace = Dictionary(uniqueKeysWithValues: alerts.map { ($0.labels.value("namespace"), $0) })
        #expect(byNamespace["a"]?.timestamps == [1_000, 2_000] && byNamespace["a"].map { SampleValue.isStale(bits: $0.values.last!.bitPattern) } == true)
        #expect(byNamespace["b"]?.timestamps == [1_000] && byNamespace["b"]?.values == [1])
    }
}

/// How windows take samples from ingestion.
@Suite struct WindowAppendTests {
    /// A store whose one rule selects `x`.
    static func storeSelectingX() -> WindowStore {
        let (groups, problems) = RuleFileLoader.parse(yaml: """
            groups:
              - name: g
                rules:
                  - alert: High
                    expr: x > 1
            """, file: "g.yml")
        #expect(problems.isEmpty)
        let store = WindowStore()
        store.select(groups)
        return store
    }

    /// Two requests' samples of one series can reach the store crossed (the table accepted them in
    /// order, then each request handed its batch over): the window keeps them in time order, once.
    @Test func crossedBatchesAreKeptInTimeOrder() throws {
        let store = Self.storeSelectingX()
        let id = store.admit(labels: [Label("__name__", "x"), Label("job", "a")])
        let batches: [[ObservedSample]] = [
            [ObservedSample(window: id, timestamp: 1_000, valueBits: (1.0).bitPattern),
             ObservedSample(window: id, timestamp: 4_000, valueBits: (4.0).bitPattern)],
            [ObservedSample(window: id, timestamp: 2_000, valueBits: (2.0).bitPattern),
             ObservedSample(window: id, timestamp: 3_000, valueBits: (3.0).bitPattern),
             ObservedSample(window: id, timestamp: 4_000, valueBits: (4.0).bitPattern)],
        ]
        for batch in batches { batch.withUnsafeBufferPointer { store.append($0) } }
        let series = store.series(matching: [LabelMatcher("__name__", .equal, "x")], from: 0, through: 10_000)
        #expect(series.count == 1)
        #expect(series.first?.timestamps == [1_000, 2_000, 3_000, 4_000])
        #expect(series.first?.values == [1, 2, 3, 4])
        #expect(store.size.samples == 4)
        if case .all? = store.takeDirty()[0] {} else { Issue.record("group not marked dirty") }
    }

    /// A dense series that filled its retention (here 5 minutes of lookback, a sample a second for
    /// an hour) holds at most an eighth of its window past the retention, dropping those in
    /// batches, and a read over any stretch of the retention gives exactly its samples.
    @Test func samplesPastTheRetentionGoInBatches() {
        let store = Self.storeSelectingX()
        let id = store.admit(labels: [Label("__name__", "x")])
        var held: [Int] = []
        for t in 1...3_600 {
            [ObservedSample(window: id, timestamp: Int64(t) * 1_000, valueBits: Double(t).bitPattern)].withUnsafeBufferPointer {
                store.append($0)
            }
            held.append(store.size.samples)
        }
        let retained = 301  // the 5 minutes' samples, both ends
        #expect(held.max()! <= retained * 8 / 7 + 1)
        #expect(held.last! >= retained)
        #expect(Set(held.suffix(1_000)).count > 1, "never trimmed")
        let from: Int64 = 3_600_000 - 300_000
        let series = store.series(matching: [LabelMatcher("__name__", .equal, "x")], from: from, through: 3_600_000)
        #expect(series.first?.timestamps == Array(stride(from: from, through: 3_600_000, by: 1_000)))
        #expect(store.latest(matching: [LabelMatcher("__name__", .equal, "x")], from: from, through: 3_600_000).first?.value == 3_600)
    }

    /// `append` prefetches a window's arrays through their storage, read in place: an array is
    /// one reference to its storage, the count 16 bytes in, the elements 32 bytes in, and a window's
    /// entry is read in place from the windows array. If a Swift
    /// release changed that layout the prefetches would only miss, but reading the count would
    /// read the wrong word: this checks the layout on the compiler in use.
    @Test func windowArraysAreReadWhereAppendPrefetchesThem() {
        let store = Self.storeSelectingX()
        let ids = (0..<5).map { i in store.admit(labels: [Label("__name__", "x"), Label("i", "\(i)")]) }
        var observed: [ObservedSample] = []
        for (k, id) in ids.enumerated() {
            for t in 0...k {
                observed.append(ObservedSample(window: id, timestamp: Int64(1_000 * (t + 1)), valueBits: Double(k * 10 + t).bitPattern))
            }
        }
        observed.withUnsafeBufferPointer { store.append($0) }
        store.state.withLock { s in
            for (k, id) in ids.enumerated() {
                let window = s.windows[Int(id)]!
                #expect(window.points.count == k + 1)
                let (points, feeds) = s.windows.withUnsafeBytes { WindowStore.storage($0.baseAddress!, id) }
                #expect(feeds.load(fromByteOffset: 16, as: Int.self) == window.feeds.count)
                #expect(feeds.load(fromByteOffset: 32, as: WindowStore.Feed.self) == window.feeds[0])
                #expect(points.load(fromByteOffset: 16, as: Int.self) == window.points.count)
                #expect(points.load(fromByteOffset: 32, as: WindowStore.Point.self) == window.points[0])
                #expect(points.load(fromByteOffset: 32 + 16 * k, as: WindowStore.Point.self) == window.points[k])
            }
        }
    }

    /// The window store's reads (binary-searched ranges, the tail irate and idelta read, the
    /// counts count_over_time reads) give what the simple store gives, stale markers and range
    /// edges included.
    @Test func windowReadsMatchTheSimpleStore() throws {
        let (groups, _) = RuleFileLoader.parse(yaml: """
            groups:
              - name: g
                rules:
                  - record: r
                    expr: irate(x[1m]) + idelta(x[1m]) + rate(x[1m]) + changes(x[1m]) + count_over_time(x[1m]) * present_over_time(x[1m])
            """, file: "g.yml")
        let windows = WindowStore()
        windows.select(groups)
        let simple = MemoryStore()
        var rng = SplitMix64(seed: 42)
        var newest: Int64 = .min
        for job in ["a", "b"] {
            let labels = [Label("__name__", "x"), Label("job", job)]
            let id = windows.admit(labels: labels)
            var t: Int64 = 0, v = 0.0
            for _ in 0..<200 {
                t += Int64.random(in: 1...15, using: &rng) * 1000
                v += Double(Int.random(in: 0...3, using: &rng))
                let bits = Int.random(in: 0..<10, using: &rng) == 0 ? SampleValue.staleNaN.bitPattern : v.bitPattern
                windows.append(window: id, timestamp: t, valueBits: bits)
                simple.append(labels, timestamp: t, value: Double(bitPattern: bits))
            }
            newest = max(newest, t)
        }
        let expr = try PromQLParser.parse("irate(x[1m]) or idelta(x[30s]) * 1000 or rate(x[45s]) * 1e6")
        // The windows keep 6 minutes before their newest sample (the 1-minute range plus the lookback).
        for time in stride(from: newest - 290_000, through: newest + 60_000, by: 3_000) {
            for e in [expr, try PromQLParser.parse("idelta(x[20s])"), try PromQLParser.parse("irate(x[1m])"),
                      try PromQLParser.parse("count_over_time(x[1m])"), try PromQLParser.parse("present_over_time(x[40s])")] {
                let a = Evaluator(source: windows, time: time), b = Evaluator(source: simple, time: time)
                guard case .vector(let va) = try a.evaluate(e), case .vector(let vb) = try b.evaluate(e) else {
                    Issue.record("not a vector"); continue
                }
                #expect(va.map(\.labels) == vb.map(\.labels) && zip(va, vb).allSatisfy { $0.value == $1.value || ($0.value.isNaN && $1.value.isNaN) },
                        "at \(time): \(va) vs \(vb)")
            }
            let m = [LabelMatcher("__name__", .equal, "x")]
            let ws = windows.series(matching: m, from: time - 60_000, through: time)
            let ss = simple.series(matching: m, from: time - 60_000, through: time)
            #expect(ws.map(\.timestamps) == ss.map(\.timestamps))
        }
    }
}
