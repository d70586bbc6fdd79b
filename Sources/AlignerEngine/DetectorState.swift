import AlignerCore
import AlignerRules
import Foundation

/// What a rule's detector knows of each series of its expression's result: its baseline, kept
/// from evaluation to evaluation, across reloads that leave the rule unchanged, and across
/// restarts (saved with the events store every 5 minutes and at shutdown).
struct DetectorState: Sendable {
    let spec: DetectorSpec

    /// One series' history.
    struct Series: Sendable, Codable {
        var firstSeen: Int64
        var lastSeen: Int64
        /// `ewma`, `cusum`: the weighted mean and variance, and when they last took a value;
        /// `holt`: the level, and the variance of the forecasts' errors.
        var mean = 0.0
        var variance = 0.0
        var updatedAt: Int64
        /// `holt`: the slope, per millisecond.
        var trend = 0.0
        /// `cusum`: the sums of deviations above and below the baseline.
        var upper = 0.0
        var lower = 0.0
        /// `mad`: values kept, at most one per `window / 60`, in time order.
        var times: [Int64] = []
        var values: [Double] = []
    }

    var series: [String: Series] = [:]
    /// A series not seen for this long is forgotten (and warms up again if it comes back).
    var forgetAfter: Int64 {
        switch spec.method {
        case .mad: max(spec.warmUp, spec.window)
        case .holt: max(spec.warmUp, 4 * spec.halfLife, spec.trendHalfLife)
        default: max(spec.warmUp, 4 * spec.halfLife)
        }
    }
    var lastSweep: Int64?

    init(spec: DetectorSpec) { self.spec = spec }

    /// What the detector saw in an anomalous value: the baseline it left, and by how many
    /// deviations (infinite from a flat baseline; none for `threshold`).
    struct Verdict: Sendable {
        var baseline: Double
        var score: Double?

        /// The annotations a detector's alert carries besides its own: `baseline` and `score`.
        var annotations: [String: String] {
            var out = ["baseline": String(format: "%.4g", baseline)]
            if let score { out["score"] = score.isInfinite ? "+Inf" : String(format: "%.3g", score) }
            return out
        }
    }

    /// The samples whose value is anomalous at `time`, each with its verdict; each series'
    /// history is updated with its value.
    mutating func judge(_ samples: [VectorSample], at time: Int64) -> [(sample: VectorSample, verdict: Verdict)] {
        var out: [(sample: VectorSample, verdict: Verdict)] = []
        for sample in samples {
            let key = sample.labels.droppingMetricName().key
            if let verdict = verdict(key, sample.value, at: time) { out.append((sample, verdict)) }
        }
        if lastSweep.map({ time - $0 >= forgetAfter / 4 }) ?? true {
            let horizon = time - forgetAfter
            series = series.filter { $0.value.lastSeen >= horizon }
            lastSweep = time
        }
        return out
    }

    /// The verdict on an anomalous `value` of series `key` at `time` (nil: not anomalous); updates
    /// the series' history.
    mutating func verdict(_ key: String, _ value: Double, at time: Int64) -> Verdict? {
        guard value.isFinite else { return nil }  // NaN and ±Inf judge nothing and teach nothing
        let known = series[key]
        var s = known ?? Series(firstSeen: time, lastSeen: time, updatedAt: time)
        let previous = s.lastSeen
        s.lastSeen = time
        let warm = time - s.firstSeen >= spec.warmUp
        var verdict: Verdict?
        switch spec.method {
        case .threshold:
            if warm && exceeds(deviation: value - spec.threshold, score: .infinity) { verdict = Verdict(baseline: spec.threshold) }
        case .ewma:
            let deviation = value - s.mean, score = score(deviation, spread: s.variance.squareRoot())
            if known != nil && warm && exceeds(deviation: deviation, score: score) { verdict = Verdict(baseline: s.mean, score: score) }
        case .mad:
            // A median and a spread of fewer than 10 values say little: no verdict before.
            if s.values.count >= 10, let (median, spread) = robustBaseline(s.values) {
                let deviation = value - median, score = score(deviation, spread: spread)
                if warm && exceeds(deviation: deviation, score: score) { verdict = Verdict(baseline: median, score: score) }
            }
        case .holt:
            let forecast = s.mean + s.trend * Double(time - s.updatedAt)
            let deviation = value - forecast, score = score(deviation, spread: s.variance.squareRoot())
            if known != nil && warm && exceeds(deviation: deviation, score: score) { verdict = Verdict(baseline: forecast, score: score) }
        case .cusum:
            if known != nil && warm {
                // Per minute the value held (a gap counts 5 minutes at most), the deviations beyond
                // the slack; one deviation counts at most `threshold / 2 + slack` (a flat baseline
                // makes any change infinitely many), so a value however far off must hold two
                // minutes: a lone spike is the other detectors' to see.
                let minutes = Double(min(time - previous, 300_000)) / 60_000
                let deviation = value - s.mean
                let cap = spec.threshold / 2 + spec.slack
                let near = deviation == 0 || abs(deviation) < spec.minDeviation
                let z = near ? 0 : max(-cap, min(cap, (deviation < 0 ? -1 : 1) * score(deviation, spread: s.variance.squareRoot())))
                s.upper = max(0, s.upper + (z - spec.slack) * minutes)
                s.lower = max(0, s.lower + (-z - spec.slack) * minutes)
                let up = spec.direction != .down && s.upper >= spec.threshold
                let down = spec.direction != .up && s.lower >= spec.threshold
                if up || down { verdict = Verdict(baseline: s.mean, score: up ? s.upper : s.lower) }
            }
        }
        // `cusum` learns as from an anomaly while its sums hold evidence of a shift, so the shift
        // is not taken into the baseline before it is told; and from a value clipped to the
        // deviations one value may count, so a spike does not move the baseline it is judged by.
        var learnt = value
        if spec.method == .cusum, known != nil, s.variance > 0 {
            let bound = (spec.threshold / 2 + spec.slack) * s.variance.squareRoot()
            learnt = max(s.mean - bound, min(s.mean + bound, value))
        }
        let shifting = spec.method == .cusum && (s.upper > 0 || s.lower > 0)
        learn(&s, learnt, at: time, anomalous: verdict != nil || shifting, first: known == nil)
        series[key] = s
        return verdict
    }

    /// A deviation in units of the spread: infinite from a spread of 0 (a flat baseline).
    func score(_ deviation: Double, spread: Double) -> Double {
        if deviation == 0 { return 0 }
        return spread > 0 ? abs(deviation) / spread : .infinity
    }

    /// Whether a deviation of this sign, size and score is an anomaly.
    func exceeds(deviation: Double, score: Double) -> Bool {
        switch spec.direction {
        case .up: guard deviation > 0 else { return false }
        case .down: guard deviation < 0 else { return false }
        case .both: guard deviation != 0 else { return false }
        }
        if spec.method == .threshold { return abs(deviation) >= spec.minDeviation }
        return score >= spec.threshold && abs(deviation) >= spec.minDeviation
    }

    /// Takes a value into the history. `ewma` (and `cusum`'s baseline) weighs it by the time since
    /// the last one (a value held twice as long counts twice as much, however often it was
    /// evaluated); from an anomalous value its mean learns a quarter as fast and its variance not
    /// at all (the spread would grow with the anomaly and hide it within minutes): a change that
    /// lasts becomes the baseline slowly. `holt` likewise, its slope learning nothing from an
    /// anomalous value. `mad` keeps one value per 60th of its window, anomalous or not: its median
    /// resists them until they fill half the window.
    func learn(_ s: inout Series, _ value: Double, at time: Int64, anomalous: Bool, first: Bool) {
        switch spec.method {
        case .threshold:
            break
        case .holt:
            if first {
                s.mean = value
                s.updatedAt = time
                return
            }
            let elapsed = Double(time - s.updatedAt)
            guard elapsed > 0 else { return }
            let forecast = s.mean + s.trend * elapsed
            let error = value - forecast
            let alpha = 1 - exp2(-elapsed / (Double(spec.halfLife) * (anomalous ? 4 : 1)))
            let level = forecast + alpha * error
            if !anomalous {
                let beta = 1 - exp2(-elapsed / Double(spec.trendHalfLife))
                s.trend += beta * ((level - s.mean) / elapsed - s.trend)
                s.variance = (1 - alpha) * (s.variance + alpha * error * error)
            }
            s.mean = level
            s.updatedAt = time
        case .ewma, .cusum:
            if first {
                s.mean = value
                s.variance = 0
                s.updatedAt = time
                return
            }
            let elapsed = Double(time - s.updatedAt)
            guard elapsed > 0 else { return }
            let halfLife = Double(spec.halfLife) * (anomalous ? 4 : 1)
            let alpha = 1 - exp2(-elapsed / halfLife)
            let difference = value - s.mean
            let increment = alpha * difference
            s.mean += increment
            if !anomalous { s.variance = (1 - alpha) * (s.variance + difference * increment) }
            s.updatedAt = time
        case .mad:
            let spacing = max(1, spec.window / 60)
            if let last = s.times.last, time - last < spacing { return }
            s.times.append(time)
            s.values.append(value)
            let horizon = time - spec.window
            if let keep = s.times.firstIndex(where: { $0 >= horizon }), keep > 0 {
                s.times.removeFirst(keep)
                s.values.removeFirst(keep)
            }
        }
    }

    /// The median of `values` and their median absolute deviation scaled to a standard deviation.
    func robustBaseline(_ values: [Double]) -> (median: Double, spread: Double)? {
        guard !values.isEmpty else { return nil }
        let median = DetectorState.median(values)
        return (median, 1.4826 * DetectorState.median(values.map { abs($0 - median) }))
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }
}
