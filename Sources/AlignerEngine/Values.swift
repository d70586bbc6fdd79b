import AlignerCore
import AlignerRules

/// A label set, sorted by name; `__name__` included when present.
public typealias Labels = [Label]

/// Some labels of a label set (those named, or all but those named) as a dictionary key, without
/// copying them out: matching and grouping hash and compare the labels in place, and build the
/// subset's array only for what they keep (a new group, an error message).
struct LabelSubset: Hashable {
    let labels: Labels
    let names: [String]
    /// Whether `names` are the labels kept (`on`, `by`) or the ones left out (`ignoring`, `without`).
    let keep: Bool

    @inline(__always)
    func includes(_ l: Label) -> Bool { names.contains(l.name) == keep }

    var materialized: Labels { keep ? labels.keeping(names) : labels.dropping(names) }

    func hash(into hasher: inout Hasher) {
        for l in labels where includes(l) {
            hasher.combine(l.name)
            hasher.combine(l.value)
        }
    }

    static func == (a: LabelSubset, b: LabelSubset) -> Bool {
        var i = a.labels.startIndex, j = b.labels.startIndex
        while true {
            while i < a.labels.endIndex && !a.includes(a.labels[i]) { i += 1 }
            while j < b.labels.endIndex && !b.includes(b.labels[j]) { j += 1 }
            if i == a.labels.endIndex || j == b.labels.endIndex { return i == a.labels.endIndex && j == b.labels.endIndex }
            if a.labels[i] != b.labels[j] { return false }
            i += 1
            j += 1
        }
    }
}

extension Array where Element == Label {
    /// The value of a label, or "" when it is absent (Prometheus' view).
    public func value(_ name: String) -> String { first { $0.name == name }?.value ?? "" }

    /// Without some labels. The names are few (a `by`, `on` or `without` list): comparing them
    /// one by one costs less than hashing each label's name.
    func dropping(_ names: [String]) -> Labels {
        var out = Labels()
        out.reserveCapacity(count)
        for l in self where !names.contains(l.name) { out.append(l) }
        return out
    }

    /// Only some labels (a `by` or `on` list).
    func keeping(_ names: [String]) -> Labels {
        var out = Labels()
        out.reserveCapacity(Swift.min(count, names.count))
        for l in self where names.contains(l.name) { out.append(l) }
        return out
    }

    /// The labels without `__name__`.
    public func droppingMetricName() -> Labels {
        // Sorted by name, `__name__` is first unless a name starts with a capital letter.
        guard let i = firstIndex(where: { $0.name == metricNameLabel }) else { return self }
        var out = Labels()
        out.reserveCapacity(count - 1)
        out.append(contentsOf: self[..<i])
        out.append(contentsOf: self[(i + 1)...])
        return out
    }

    func setting(_ name: String, _ value: String) -> Labels {
        var l = filter { $0.name != name }
        if !value.isEmpty { l.append(Label(name, value)) }
        return l.sorted()
    }

    /// The values of some labels, joined: the key of the partition a series belongs to when a
    /// group is split by those labels (see `RuleGroup.partitionLabels`).
    public func partitionKey(_ names: [String]) -> String {
        var out = ""
        for name in names {
            let v = value(name)
            out += String(v.utf8.count)
            out += ":"
            out += v
        }
        return out
    }

    /// A key that identifies the label set (for grouping and matching).
    var key: String {
        // Length-prefixed, so no label can imitate another, and ASCII around ASCII labels: Swift
        // hashes and compares ASCII strings without Unicode normalization. One string, grown once:
        // this runs for every series an aggregation or a match reads.
        var out = ""
        out.reserveCapacity(reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 12 })
        for l in self {
            out += String(l.name.utf8.count)
            out += ":"
            out += l.name
            out += String(l.value.utf8.count)
            out += ":"
            out += l.value
        }
        return out
    }
}

/// One element of an instant vector.
public struct VectorSample: Sendable, Equatable {
    public var labels: Labels
    public var value: Double

    public init(labels: Labels, value: Double) {
        self.labels = labels
        self.value = value
    }
}

/// One series of a range vector: its samples in the window, oldest first.
public struct RangeSeries: Sendable {
    public var labels: Labels
    public var timestamps: [Int64]
    public var values: [Double]

    public init(labels: Labels, timestamps: [Int64], values: [Double]) {
        self.labels = labels
        self.timestamps = timestamps
        self.values = values
    }
}

/// The value of an expression at one evaluation time.
public enum Value: Sendable {
    case scalar(Double)
    case string(String)
    case vector([VectorSample])
    case matrix([RangeSeries])
}

/// A series as the storage holds it: every sample in the window the evaluator asked for.
public struct StoredSeries: Sendable {
    public var labels: Labels
    public var timestamps: [Int64]
    public var values: [Double]

    public init(labels: Labels, timestamps: [Int64], values: [Double]) {
        self.labels = labels
        self.timestamps = timestamps
        self.values = values
    }
}

/// Where the evaluator reads samples from: the streaming window store, or a test's series.
public protocol SampleSource {
    /// Series matching every matcher, with their samples in `[from, through]` (stale markers included).
    func series(matching: [LabelMatcher], from: Int64, through: Int64) -> [StoredSeries]
    /// The newest sample in `[from, through]` of each matching series (what an instant selector
    /// reads); a stale marker is returned as it is.
    func latest(matching: [LabelMatcher], from: Int64, through: Int64) -> [LatestSample]
    /// The last `count` samples in `[from, through]` of each matching series, stale markers left
    /// out (what irate and idelta read of a range).
    func tail(matching: [LabelMatcher], from: Int64, through: Int64, count: Int) -> [StoredSeries]
    /// How many samples other than stale markers each matching series has in `[from, through]`,
    /// series with none left out (what count_over_time and present_over_time read of a range).
    func counts(matching: [LabelMatcher], from: Int64, through: Int64) -> [SeriesCount]
}

/// A series and a number of its samples.
public struct SeriesCount: Sendable {
    public var labels: Labels
    public var count: Int

    public init(labels: Labels, count: Int) {
        self.labels = labels
        self.count = count
    }
}

extension SampleSource {
    public func counts(matching matchers: [LabelMatcher], from: Int64, through: Int64) -> [SeriesCount] {
        series(matching: matchers, from: from, through: through).compactMap { s in
            let n = s.values.count { !SampleValue.isStale(bits: $0.bitPattern) }
            return n == 0 ? nil : SeriesCount(labels: s.labels, count: n)
        }
    }

    public func tail(matching matchers: [LabelMatcher], from: Int64, through: Int64, count: Int) -> [StoredSeries] {
        series(matching: matchers, from: from, through: through).compactMap { s in
            let kept = zip(s.timestamps, s.values).filter { !SampleValue.isStale(bits: $0.1.bitPattern) }.suffix(count)
            return kept.isEmpty ? nil : StoredSeries(labels: s.labels, timestamps: kept.map(\.0), values: kept.map(\.1))
        }
    }

    public func latest(matching matchers: [LabelMatcher], from: Int64, through: Int64) -> [LatestSample] {
        series(matching: matchers, from: from, through: through).compactMap { s in
            guard let i = s.timestamps.indices.last else { return nil }
            return LatestSample(labels: s.labels, timestamp: s.timestamps[i], value: s.values[i])
        }
    }
}

/// One series' newest sample.
public struct LatestSample: Sendable {
    public var labels: Labels
    public var timestamp: Int64
    public var value: Double

    public init(labels: Labels, timestamp: Int64, value: Double) {
        self.labels = labels
        self.timestamp = timestamp
        self.value = value
    }
}

/// An evaluation error (Prometheus' runtime errors, such as many-to-many matching).
public struct EvaluationError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
