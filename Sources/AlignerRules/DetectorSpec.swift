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
        /// A z-score against a forecast that follows the series' trend (Holt's linear smoothing:
        /// a level forgetting with `half_life`, a slope with `trend_half_life`): a steady climb is
        /// normal, a departure from it is not.
        case holt
        /// A cumulative sum of the deviations from an `ewma` baseline beyond `slack` deviations,
        /// per minute the value held (`threshold`, default 5, is in deviation-minutes; one value
        /// counts at most `threshold / 2 + slack` deviations): small shifts that last add up, a
        /// spike must hold two minutes.
        case cusum
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
    /// `holt`: the time after which a slope weighs half as much (milliseconds; default 4 half lives).
    public var trendHalfLife: Int64
    /// `cusum`: the deviations a value may stray without adding to the sum (default 0.5).
    public var slack = 0.5
    /// A series is judged (and learnt from) only where this expression has a series with the
    /// same labels (the metric name aside) whose value is at least `minVolume`: a ratio is not
    /// judged at a trickle of traffic.
    public var volume: Expr?
    public var minVolume = 0.0

    public init(method: Method, threshold: Double? = nil, warmUp: Int64? = nil, halfLife: Int64? = nil, window: Int64? = nil,
                trendHalfLife: Int64? = nil) {
        self.method = method
        self.threshold = threshold ?? (method == .cusum ? 5 : 3)
        if let halfLife { self.halfLife = halfLife }
        if let window { self.window = window }
        self.trendHalfLife = trendHalfLife ?? 4 * self.halfLife
        switch method {
        case .threshold: self.warmUp = warmUp ?? 0
        case .ewma, .holt, .cusum: self.warmUp = warmUp ?? 2 * self.halfLife
        case .mad: self.warmUp = warmUp ?? self.window / 2
        }
    }

    public var description: String {
        var parts = ["method: \(method.rawValue)", "threshold: \(threshold)", "direction: \(direction.rawValue)"]
        if minDeviation != 0 { parts.append("min_deviation: \(minDeviation)") }
        parts.append("warm_up: \(formatDuration(warmUp))")
        if [.ewma, .holt, .cusum].contains(method) { parts.append("half_life: \(formatDuration(halfLife))") }
        if method == .holt { parts.append("trend_half_life: \(formatDuration(trendHalfLife))") }
        if method == .cusum { parts.append("slack: \(slack)") }
        if method == .mad { parts.append("window: \(formatDuration(window))") }
        if let volume { parts.append(contentsOf: ["volume: \(volume)", "min_volume: \(minVolume)"]) }
        return "{" + parts.joined(separator: ", ") + "}"
    }
}
