import AlignerCore
import AlignerEngine
import AlignerEvents
import AlignerRules
@testable import AlignerServer
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
}
