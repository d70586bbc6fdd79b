import AlignerCore
import AlignerEngine
import AlignerEvents
import AlignerRules
import AlignerTesting
@testable import AlignerServer
import Foundation
import Logging
import Testing

/// Where an alert's evidence is evaluated, and how its points are kept.
@Suite struct EvidenceTests {
    @Test func timesAreTheSamplesTheExpressionReads() throws {
        let store = MemoryStore()
        let now: Int64 = 1_000_000
        for k in Int64(0)..<40 {
            store.append([Label("__name__", "a")], timestamp: now - 390_000 + k * 10_000, value: 1)  // some before the 5 minutes
            store.append([Label("__name__", "b")], timestamp: now - 99_000 + k * 1_000, value: 1)   // read 1 minute back
        }
        let expr = try PromQLParser.parse("rate(a[1m]) > b offset 1m")
        let times = RuleEngine.evidenceTimes(expr, source: store, now: now, limit: 1000)
        #expect(times.first! >= now - 300_000 && times.last == now)
        #expect(times == times.sorted() && Set(times).count == times.count)
        // a's samples of the last 5 minutes, b's shifted by its offset, and now.
        let expected = Set((0..<40).map { now - 390_000 + $0 * 10_000 }.filter { $0 >= now - 300_000 })
            .union((0..<40).map { now - 39_000 + $0 * 1_000 }).union([now])
        #expect(Set(times) == expected)
        // Thinned to one time per slot of 5 minutes / (limit - 1), slots fixed in absolute time:
        // a later call picks the same times for the same slots (their values are reused).
        let thinned = RuleEngine.evidenceTimes(expr, source: store, now: now, limit: 10)
        #expect(thinned.count <= 12 && thinned.count >= 9 && thinned.last == now && Set(thinned).isSubset(of: times))
        let later = RuleEngine.evidenceTimes(expr, source: store, now: now + 7_000, limit: 10)
        #expect(Set(thinned.dropLast()).subtracting(later).count <= 1)
    }

    @Test func downsamplingKeepsEachStretchsHighest() {
        let points = (0..<100).map { Evidence.Point(t: Int64($0), v: $0 == 37 || $0 == 81 ? 9 : 1) }
        let kept = RuleEngine.downsample(points, to: 10)
        #expect(kept.count == 10 && kept.map(\.t) == kept.map(\.t).sorted())
        #expect(kept.filter { $0.v == 9 }.map(\.t) == [37, 81])
        #expect(RuleEngine.downsample(Array(points.prefix(5)), to: 10).count == 5)
    }

    /// The shapes' rules: `High` over `x`; `Kept` over `y`, kept firing 10 minutes; `Killed` over
    /// `z`, a moment (`event.moment`), kept firing 10 minutes.
    static let shapes = """
        groups:
          - name: shapes
            rules:
              - alert: High
                expr: max by (namespace, pod) (x) > 0.05
                annotations: {summary: "{{ $labels.pod }} at {{ $value }}"}
                event: {class: high, severity: warning, subject: {namespace: namespace, kind: Pod, name: pod}}
              - alert: Kept
                expr: max by (namespace, pod) (y) > 0.05
                keep_firing_for: 10m
                annotations: {summary: "{{ $labels.pod }} at {{ $value }}"}
                event: {class: kept, severity: warning, subject: {namespace: namespace, kind: Pod, name: pod}}
              - alert: Killed
                expr: max by (namespace, pod) (z) > 0.05
                keep_firing_for: 10m
                annotations: {summary: "{{ $labels.pod }} killed"}
                event: {class: killed, severity: warning, subject: {namespace: namespace, kind: Pod, name: pod}, moment: true}
        """

    /// `name{namespace="ns",pod=pod}` every 5 s from `start` for 90 s, its k-th value `value(k)`.
    static func series(_ store: WindowStore, _ name: String, _ pod: String, from start: Int64, _ value: (Int64) -> Double) {
        let id = store.admit(labels: [Label("__name__", name), Label("namespace", "ns"), Label("pod", pod)])
        for k in Int64(0)...18 { store.append(window: id, timestamp: start + k * 5_000, valueBits: value(k).bitPattern) }
    }

    /// A value held for a minute and a half, wavering, is a level "since" it began, at its top
    /// (one climbing to its level, since it reached half of it); bursts to the top with low values
    /// between them stay bursts "at" their times, however long the condition holds between them;
    /// a level that ended (kept firing) is "from" "to"; a gap in a level shorter than the rule's
    /// `keep_firing_for` does not end it.
    @Test func levelsAreSinceAndBurstsAreAt() async throws {
        let store = WindowStore()
        let engine = try RuleEngine(store: store, paths: [StreamingRulesTests.ruleFile(Self.shapes)], logger: Logger(label: "test"), onReload: {})
        let now = WallClock.nowMilliseconds() / 1000 * 1000
        let start = now - 90_000
        func series(_ name: String, _ pod: String, _ value: (Int64) -> Double) { Self.series(store, name, pod, from: start, value) }
        series("x", "level", { 0.3 + ($0 % 3 == 0 ? 0.01 : -0.01) + ($0 == 7 ? 0.02 : 0) })
        series("x", "bursts", { $0 == 4 || $0 == 12 ? 1 : 0.08 })
        series("x", "ramp", { min(0.3, 0.06 + 0.05 * Double($0)) })  // a 1-minute rate's window filling
        series("y", "ended", { $0 == 2 ? 0.35 : $0 < 12 ? 0.3 : 0 })
        series("y", "gappy", { $0 == 5 || $0 == 6 ? 0 : 0.3 })  // a 15 s gap, shorter than keep_firing_for
        series("z", "oom", { $0 >= 4 ? 1 : 0 })  // killed, held for the rule's window
        series("z", "past", { $0 >= 4 && $0 <= 10 ? 1 : 0 })  // the window over, kept firing
        await engine.evaluate(groups: nil, now: now - 40_000)  // "ended" fires, then is kept firing
        await engine.evaluate(groups: nil, now: now)
        let evidence = Dictionary(uniqueKeysWithValues: await engine.signals().map { ($0.labels["pod"] ?? "", $0.evidence) })
        let texts = evidence.mapValues { $0?.text ?? "" }
        // What the event keeps (its changes are saved when these change, not the value's wobble).
        #expect(evidence["level"]??.since == start && evidence["level"]??.until == nil)
        #expect(evidence["level"]??.peaks == [Evidence.Point(t: start, v: 0.31)])
        #expect(evidence["ended"]??.since == start && evidence["ended"]??.until == start + 55_000)
        #expect(evidence["bursts"]??.since == nil && evidence["bursts"]??.peaks.map(\.t) == [start + 20_000, start + 60_000])
        #expect(texts["level"] == "level at 0.31 since \(Evidence.clock(start))")
        #expect(texts["ramp"] == "ramp at 0.3 since \(Evidence.clock(start + 10_000))")  // from half its height
        #expect(texts["bursts"] == "bursts at 1 at \(Evidence.clock(start + 20_000)) and \(Evidence.clock(start + 60_000))")
        #expect(texts["ended"] == "ended at 0.35 from \(Evidence.clock(start)) to \(Evidence.clock(start + 55_000))")
        // A gap in the condition no longer than the rule's keep_firing_for does not end a level.
        #expect(texts["gappy"] == "gappy at 0.3 since \(Evidence.clock(start))" && evidence["gappy"]??.since == start)
        // A moment: when it happened, not since when it holds, nor from when to when.
        #expect(texts["oom"] == "oom killed at \(Evidence.clock(start + 20_000))")
        #expect(texts["past"] == "past killed at \(Evidence.clock(start + 20_000))")
        #expect(evidence["past"]??.until == nil && evidence["past"]??.peaks.map(\.t) == [start + 20_000])
    }

    /// After a restart, a level still firing keeps the start its event's signal had, older than
    /// the 5 minutes the first evidence sees.
    @Test func aLevelKeepsItsStartAcrossARestart() async throws {
        let now = WallClock.nowMilliseconds() / 1000 * 1000
        let start = now - 90_000, began = now - 3_600_000
        // The event as the process left it: the level since an hour ago.
        let dir = ScratchDirectory.path("aligner-evidence")
        func manager() throws -> EventManager {
            try EventManager(store: SQLiteEventStore(directory: dir), resolveAfter: 60_000, cooldown: 600_000, logger: Logger(label: "test"))
        }
        let labels = ["alertname": "High", "namespace": "ns", "pod": "level"]
        try await manager().sync(firing: [SignalInput(rule: "High", anomalyClass: "high", severity: "warning",
                                                  subject: Subject(namespace: "ns", kind: "Pod", name: "level"), labels: labels,
                                                  annotations: [:], value: 0.3, since: began,
                                                  evidence: Evidence(points: [], peaks: [], text: "", since: began))], at: now - 1000)
        // The restart: a new manager over the same store, a new engine.
        let store = WindowStore()
        let engine = try RuleEngine(store: store, paths: [StreamingRulesTests.ruleFile(Self.shapes)], logger: Logger(label: "test"),
                                    events: manager(), onReload: {})
        Self.series(store, "x", "level", from: start) { _ in 0.3 }
        await engine.evaluate(groups: nil, now: now)
        let evidence = try #require(await engine.signals().first?.evidence)
        #expect(evidence.since == began && evidence.text == "level at 0.3 since \(Evidence.clock(began))", "\(evidence.text)")
    }

    /// Thousands of alerts firing at once: each gets evidence at once, its value now where the
    /// budget is spent, and the rest once the budget allows (the next second).
    @Test func aFloodOfNewAlertsStaysWithinTheBudget() async throws {
        let path = try StreamingRulesTests.ruleFile("""
            groups:
              - name: flood
                rules:
                  - alert: High
                    expr: x > 1
                    annotations: {summary: "{{ $labels.pod }} at {{ $value }}"}
                    event: {class: high, severity: warning, subject: {namespace: namespace, kind: Pod, name: pod}}
            """)
        let store = WindowStore()
        let engine = try RuleEngine(store: store, paths: [path], logger: Logger(label: "test"), onReload: {})
        let now = WallClock.nowMilliseconds()
        for p in 0..<3000 {
            let id = store.admit(labels: [Label("__name__", "x"), Label("namespace", "ns"), Label("pod", "pod-\(p)")])
            for k in Int64(0)..<10 { store.append(window: id, timestamp: now - 45_000 + k * 5_000, valueBits: (2.0 + Double(k)).bitPattern) }
        }
        await engine.evaluate(groups: nil, now: now)
        let first = await engine.signals()
        #expect(first.count == 3000 && first.allSatisfy { $0.evidence != nil })
        let provisional = first.filter { $0.evidence?.points.count == 1 }
        #expect(!provisional.isEmpty, "the budget should have run out")
        #expect(provisional.allSatisfy { $0.evidence?.text.hasSuffix(Evidence.clock($0.evidence!.points[0].t)) == true })
        // The next second's budget completes some of them.
        try await Task.sleep(for: .milliseconds(1100))
        let later = await engine.signals()
        #expect(later.filter { ($0.evidence?.points.count ?? 0) > 1 }.count > first.filter { ($0.evidence?.points.count ?? 0) > 1 }.count)
    }
}
