import AlignerCore
import AlignerRules

/// A simple in-memory store: every sample of every series, for `rules test` and tests.
public final class MemoryStore: SampleSource {
    var series: [String: StoredSeries] = [:]
    var order: [String] = []

    public init() {}

    /// Adds a sample (timestamps must not go backwards within a series).
    public func append(_ labels: Labels, timestamp: Int64, value: Double) {
        let sorted = labels.sorted()
        let key = sorted.key
        if series[key] == nil {
            order.append(key)
            series[key] = StoredSeries(labels: sorted, timestamps: [], values: [])
        }
        // A sample at or before the newest is not taken (Prometheus' storage keeps the first at a time).
        if let last = series[key]!.timestamps.last, last >= timestamp { return }
        series[key]!.timestamps.append(timestamp)
        series[key]!.values.append(value)
    }

    public func series(matching matchers: [LabelMatcher], from: Int64, through: Int64) -> [StoredSeries] {
        var out: [StoredSeries] = []
        for key in order {
            let s = series[key]!
            guard matchers.allSatisfy({ (try? $0.matches(s.labels.value($0.name))) == true }) else { continue }
            let lo = s.timestamps.firstIndex { $0 >= from } ?? s.timestamps.count
            let hi = s.timestamps.lastIndex { $0 <= through }.map { $0 + 1 } ?? 0
            guard lo < hi else { continue }
            out.append(StoredSeries(labels: s.labels, timestamps: Array(s.timestamps[lo..<hi]), values: Array(s.values[lo..<hi])))
        }
        return out
    }
}
