import AlignerCore
import AlignerRules

/// A label set, sorted by name; `__name__` included when present.
public typealias Labels = [Label]

extension Array where Element == Label {
    /// The value of a label, or "" when it is absent (Prometheus' view).
    public func value(_ name: String) -> String { first { $0.name == name }?.value ?? "" }

    func dropping(_ names: Set<String>) -> Labels { filter { !names.contains($0.name) } }

    func keeping(_ names: Set<String>) -> Labels { filter { names.contains($0.name) } }

    /// The labels without `__name__`.
    public func droppingMetricName() -> Labels { filter { $0.name != metricNameLabel } }

    func setting(_ name: String, _ value: String) -> Labels {
        var l = filter { $0.name != name }
        if !value.isEmpty { l.append(Label(name, value)) }
        return l.sorted()
    }

    /// The values of some labels, joined: the key of the partition a series belongs to when a
    /// group is split by those labels (see `RuleGroup.partitionLabels`).
    public func partitionKey(_ names: [String]) -> String {
        names.map { value($0) }.joined(separator: "\u{ff}")
    }

    /// A key that identifies the label set (for grouping and matching).
    var key: String { map { $0.name + "\u{ff}" + $0.value }.joined(separator: "\u{fe}") }
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
}

/// An evaluation error (Prometheus' runtime errors, such as many-to-many matching).
public struct EvaluationError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
