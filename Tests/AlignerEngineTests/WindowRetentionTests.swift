import AlignerCore
import AlignerEngine
import AlignerRules
import Testing

/// A window keeps what the selectors reading its series reach back to (range, offset, the
/// subqueries around them), plus 5 minutes: not the longest reach of every rule.
@Suite struct WindowRetentionTests {
    @Test func eachSeriesKeepsWhatItsOwnSelectorsRead() throws {
        let (groups, problems) = RuleFileLoader.parse(yaml: """
            groups:
              - name: g
                rules:
                  - record: cpu:rate2m
                    expr: rate(cpu[2m])
                  - alert: Memory
                    expr: mem > 0
                  - record: req:max
                    expr: max_over_time(rate(req[1m])[10m:1m])
                  - alert: Restarts
                    expr: restarts offset 2m > 0 or increase(restarts[5m]) > 0
            """, file: "g.yml")
        #expect(problems.isEmpty)
        let store = WindowStore()
        store.select(groups)
        // Half an hour of samples a second apart.
        for name in ["cpu", "mem", "req", "restarts"] {
            let id = store.admit(labels: [Label("__name__", name)])
            for t in stride(from: Int64(0), through: 1_800_000, by: 1_000) {
                store.append(window: id, timestamp: t, valueBits: Double(t).bitPattern)
            }
        }
        // Samples past the retention go in batches (an eighth of the window): a window holds its
        // retention and at most a quarter more.
        for (name, minutes) in [("cpu", 7), ("mem", 5), ("req", 16), ("restarts", 10)] {
            let kept = try #require(store.series(matching: [LabelMatcher("__name__", .equal, name)], from: 0, through: 1_800_000).first)
            let span = kept.timestamps.last! - kept.timestamps.first!
            let retention = Int64(minutes) * 60_000
            #expect(span >= retention && span <= retention * 5 / 4, "\(name): \(span) ms kept, retention \(retention) ms")
        }
    }
}
