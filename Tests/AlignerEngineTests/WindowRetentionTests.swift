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

    /// The windows a selector matches are remembered between rounds: a series that arrives
    /// after a selector was read is in its next answer.
    @Test func aSelectorFindsSeriesAddedAfterItWasRead() throws {
        let (groups, problems) = RuleFileLoader.parse(yaml: """
            groups:
              - name: g
                rules:
                  - record: errors
                    expr: sum(rate(requests{code=~"5.."}[1m]))
            """, file: "g.yml")
        #expect(problems.isEmpty)
        let store = WindowStore()
        store.select(groups)
        let selector = [LabelMatcher("__name__", .equal, "requests"), LabelMatcher("code", .regexMatch, "5..")]
        func codes() -> [String] {
            store.series(matching: selector, from: 0, through: 10_000).map { $0.labels.value("code") }.sorted()
        }
        let expected = [["500"], ["500"], ["500", "503"]]
        for (k, code) in ["500", "200", "503"].enumerated() {
            let id = store.admit(labels: [Label("__name__", "requests"), Label("code", code)])
            store.append(window: id, timestamp: Int64(k + 1) * 1000, valueBits: Double(k).bitPattern)
            #expect(codes() == expected[k])
        }
    }
}
