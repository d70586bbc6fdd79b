/// A statistical detector on an alerting rule (Aligner's `detector`): instead of a fixed
/// threshold written in `expr`, each series of the expression's result is judged against its own
/// recent history, and only the series whose value is anomalous make the rule's condition true.
///
/// ```yaml
/// - alert: ErrorRatioAnomalous
///   expr: namespace_service:http_requests_5xx:rate1m / namespace_service:http_requests:rate1m
///   detector: {method: ewma, threshold: 4, direction: up, min_deviation: 0.05, half_life: 15m}
/// ```
public struct DetectorSpec: Sendable, Equatable, CustomStringConvertible {
    public enum Method: String, Sendable, CaseIterable {
        /// The value itself against `threshold`.
        case threshold
        /// A z-score against an exponentially weighted mean and variance that forget with
        /// `half_life`, weighted by time (evaluations come as data arrives, not at a fixed pace).
        case ewma
        /// A robust z-score: against the median of the values of the last `window` (one kept per
        /// 60th of it; at least 10), in units of their median absolute deviation (× 1.4826, a
        /// standard deviation for normal data).
        case mad
    }

    public enum Direction: String, Sendable, CaseIterable {
        case up, down, both
    }

    public var method: Method
    /// The z-score (`ewma`, `mad`; default 3) or the value (`threshold`, required) past which a
    /// value is anomalous.
    public var threshold: Double
    public var direction: Direction = .up
    /// An anomalous value is also at least this far from the baseline, in the expression's units
    /// (default 0): a flat baseline makes any change infinitely many deviations away.
    public var minDeviation: Double = 0
    /// No verdict before a series has been seen this long (milliseconds; default twice the half
    /// life for `ewma`, half the window for `mad`, none for `threshold`).
    public var warmUp: Int64
    /// `ewma`: the time after which a value weighs half as much (milliseconds).
    public var halfLife: Int64 = 15 * 60_000
    /// `mad`: how far back the values compared against go (milliseconds).
    public var window: Int64 = 60 * 60_000

    public init(method: Method, threshold: Double? = nil, warmUp: Int64? = nil, halfLife: Int64? = nil, window: Int64? = nil) {
        self.method = method
        self.threshold = threshold ?? 3
        if let halfLife { self.halfLife = halfLife }
        if let window { self.window = window }
        switch method {
        case .threshold: self.warmUp = warmUp ?? 0
        case .ewma: self.warmUp = warmUp ?? 2 * self.halfLife
        case .mad: self.warmUp = warmUp ?? self.window / 2
        }
    }

    public var description: String {
        var parts = ["method: \(method.rawValue)", "threshold: \(threshold)", "direction: \(direction.rawValue)"]
        if minDeviation != 0 { parts.append("min_deviation: \(minDeviation)") }
        parts.append("warm_up: \(formatDuration(warmUp))")
        if method == .ewma { parts.append("half_life: \(formatDuration(halfLife))") }
        if method == .mad { parts.append("window: \(formatDuration(window))") }
        return "{" + parts.joined(separator: ", ") + "}"
    }
}
