import AlignerCore
import AlignerRules
import Foundation

extension Evaluator {
    func call(_ name: String, _ args: [Expr]) throws(EvaluationError) -> Value {
        if let f = Evaluator.elementwise[name] { return .vector(try map(args[0], f)) }
        switch name {
        case "time": return .scalar(Double(time) / 1000)
        case "pi": return .scalar(.pi)
        case "vector": return .vector([VectorSample(labels: [], value: try scalar(args[0]))])
        case "scalar":
            let v = try vector(args[0])
            return .scalar(v.count == 1 ? v[0].value : .nan)
        case "timestamp":
            return .vector(try timestamps(args[0]))
        case "absent":
            if try !vector(args[0]).isEmpty { return .vector([]) }
            return .vector([VectorSample(labels: absentLabels(args[0]), value: 1)])
        case "absent_over_time":
            guard case .matrix(let m) = try evaluate(args[0]) else { return .vector([]) }
            if !m.isEmpty { return .vector([]) }
            return .vector([VectorSample(labels: absentLabels(args[0]), value: 1)])
        case "sort", "sort_desc":
            let v = try vector(args[0])
            let asc = name == "sort"
            return .vector(v.sorted { a, b in
                if a.value.isNaN { return false }
                if b.value.isNaN { return true }
                return asc ? a.value < b.value : a.value > b.value
            })
        case "label_replace": return .vector(try distinct(try labelReplace(args)))
        case "label_join": return .vector(try distinct(try labelJoin(args)))
        case "histogram_quantile":
            let input = try vector(args[1])
            return .vector(try distinct(histogramQuantile(try scalar(args[0]), input), ifNamesDiffer: input.lazy.map(\.labels)))
        case "clamp":
            let lo = try scalar(args[1]), hi = try scalar(args[2])
            if lo > hi { return .vector([]) }
            return .vector(try map(args[0]) { goMax(lo, goMin(hi, $0)) })
        case "clamp_min":
            let lo = try scalar(args[1])
            return .vector(try map(args[0]) { goMax(lo, $0) })
        case "clamp_max":
            let hi = try scalar(args[1])
            return .vector(try map(args[0]) { goMin(hi, $0) })
        case "round":
            let to = args.count > 1 ? try scalar(args[1]) : 1
            let inverse = 1 / to
            return .vector(try map(args[0]) { floor($0 * inverse + 0.5) / inverse })
        case "day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute", "month", "year":
            // Without an argument: the evaluation time, as a sample without labels.
            let input = try args.isEmpty ? [VectorSample(labels: [], value: Double(time) / 1000)] : vector(args[0])
            return .vector(try distinct(dateFunction(name, input), ifNamesDiffer: input.lazy.map(\.labels)))
        default:
            break
        }
        // Functions over a range vector (the first argument, or the second for quantile_over_time).
        let rangeArg = name == "quantile_over_time" ? args[1] : args[0]
        if name == "count_over_time" || name == "present_over_time", case .matrix(let selector, let r) = unparen(rangeArg) {
            // Only the number of samples counts: they are counted where they are, not copied.
            let (from, through) = window(selector, range: r)
            let counts = from <= through ? source.counts(matching: selector.matchers, from: from, through: through) : []
            let out = counts.map { VectorSample(labels: $0.labels.droppingMetricName(), value: name == "present_over_time" ? 1 : Double($0.count)) }
            return .vector(try distinct(out, ifNamesDiffer: counts.lazy.map(\.labels)))
        }
        let matrix: [RangeSeries]
        if name == "irate" || name == "idelta", case .matrix(let selector, let r) = unparen(rangeArg) {
            // Only the last two samples count: only they are read.
            let (from, through) = window(selector, range: r)
            matrix = from > through ? [] : source.tail(matching: selector.matchers, from: from, through: through, count: 2)
                .map { RangeSeries(labels: $0.labels, timestamps: $0.timestamps, values: $0.values) }
        } else {
            guard case .matrix(let m) = try evaluate(rangeArg) else {
                throw EvaluationError(message: "function \(name) needs a range vector")
            }
            matrix = m
        }
        let rangeEnd: Int64, range: Int64
        switch unparen(rangeArg) {
        case .matrix(let selector, let r): (rangeEnd, range) = (end(selector), r)
        case .subquery(let q): (rangeEnd, range) = (subqueryEnd(q), q.range)
        default: throw EvaluationError(message: "function \(name) needs a range selector or a subquery")
        }
        var smoothing = 0.0, trend = 0.0
        if name == "holt_winters", !matrix.isEmpty {
            smoothing = try scalar(args[1])
            trend = try scalar(args[2])
            guard smoothing > 0, smoothing < 1 else {
                throw EvaluationError(message: "invalid smoothing factor. Expected: 0 < sf < 1, got: \(String(format: "%f", smoothing))")
            }
            guard trend > 0, trend < 1 else {
                throw EvaluationError(message: "invalid trend factor. Expected: 0 < tf < 1, got: \(String(format: "%f", trend))")
            }
        }
        var out: [VectorSample] = []
        for series in matrix {
            let value: Double?
            let t = series.timestamps, v = series.values
            switch name {
            case "rate", "increase", "delta":
                value = extrapolatedRate(
                    t, v, rangeStart: rangeEnd - range, rangeEnd: rangeEnd, range: range,
                    isCounter: name != "delta", isRate: name == "rate")
            case "irate", "idelta":
                value = instantValue(t, v, isRate: name == "irate")
            case "deriv":
                value = t.count < 2 ? nil : linearRegression(t, v, interceptTime: t[0]).slope
            case "predict_linear":
                let seconds = try scalar(args[1])
                if t.count < 2 { value = nil } else {
                    let r = linearRegression(t, v, interceptTime: time)
                    value = r.slope * seconds + r.intercept
                }
            case "changes":
                var c = 0.0
                for i in 1..<max(1, v.count) where v[i] != v[i - 1] && !(v[i].isNaN && v[i - 1].isNaN) { c += 1 }
                value = c
            case "resets":
                var c = 0.0
                for i in 1..<max(1, v.count) where v[i] < v[i - 1] { c += 1 }
                value = c
            case "avg_over_time": value = meanOverTime(v)
            case "sum_over_time": value = sumOverTime(v)
            case "count_over_time": value = Double(v.count)
            case "min_over_time": value = v.reduce(Double.nan) { $0.isNaN || $1 < $0 ? $1 : $0 }
            case "max_over_time": value = v.reduce(Double.nan) { $0.isNaN || $1 > $0 ? $1 : $0 }
            case "last_over_time": value = v.last
            case "present_over_time": value = 1
            case "stddev_over_time": value = varianceOverTime(v).squareRoot()
            case "stdvar_over_time": value = varianceOverTime(v)
            case "quantile_over_time": value = quantile(try scalar(args[0]), v)
            case "absent_over_time": value = nil
            case "holt_winters": value = holtWinters(v, smoothing: smoothing, trend: trend)
            default: throw EvaluationError(message: "function \(name) is not supported")
            }
            guard let value else { continue }
            // last_over_time keeps the metric name; every other range function drops it.
            let labels = name == "last_over_time" ? series.labels : series.labels.droppingMetricName()
            out.append(VectorSample(labels: labels, value: value))
        }
        if name == "last_over_time" { return .vector(out) }
        return .vector(try distinct(out, ifNamesDiffer: matrix.lazy.map(\.labels)))
    }

    /// A string argument (possibly in parentheses).
    func string(_ e: Expr) throws(EvaluationError) -> String {
        guard case .string(let s) = try evaluate(e) else { throw EvaluationError(message: "expected a string") }
        return s
    }

    func unparen(_ e: Expr) -> Expr {
        if case .paren(let inner) = e { return unparen(inner) }
        return e
    }

    /// The functions applied to each sample's value alone (the metric name dropped), as Go's
    /// math package computes them (`GoMath.swift`).
    static let elementwise: [String: @Sendable (Double) -> Double] = [
        "abs": { Swift.abs($0) }, "ceil": { Foundation.ceil($0) }, "floor": { Foundation.floor($0) },
        "exp": { goExp($0) }, "sqrt": { $0.squareRoot() }, "ln": goLog, "log2": goLog2, "log10": goLog10,
        "sgn": { $0 > 0 ? 1 : $0 < 0 ? -1 : $0 }, "deg": { $0 * 180 / .pi }, "rad": { $0 * .pi / 180 },
        "acos": goAcos, "acosh": goAcosh, "asin": goAsin, "asinh": goAsinh, "atan": goAtan, "atanh": goAtanh,
        "cos": goCos, "cosh": goCosh, "sin": goSin, "sinh": goSinh, "tan": goTan, "tanh": goTanh,
    ]

    func map(_ arg: Expr, _ f: (Double) -> Double) throws(EvaluationError) -> [VectorSample] {
        let input = try vector(arg)
        return try distinct(input.map { VectorSample(labels: $0.labels.droppingMetricName(), value: f($0.value)) }, ifNamesDiffer: input.lazy.map(\.labels))
    }

    func timestamps(_ arg: Expr) throws(EvaluationError) -> [VectorSample] {
        guard case .selector(let s) = unparen(arg) else {
            let input = try vector(arg)
            return try distinct(input.map { VectorSample(labels: $0.labels.droppingMetricName(), value: Double(time) / 1000) }, ifNamesDiffer: input.lazy.map(\.labels))
        }
        let from: Int64, through: Int64
        if case .offsets(let frame) = atReading, let at = atTime(s.at) {
            // Prometheus 2.42 reads `timestamp(x @ t)` at t at every step, the selector's offset
            // aside: only the samples selected for it (which the offset moves) bound what is found.
            let selected = frame.selected(at: at, offset: s.offset, range: lookback, queryStart: queryStart, queryEnd: queryEnd)
            (from, through) = (max(at - lookback, selected.from), min(at, selected.through))
        } else {
            (from, through) = window(s, range: lookback)
        }
        let samples = from > through ? [] : source.latest(matching: s.matchers, from: from, through: through)
            .filter { !SampleValue.isStale(bits: $0.value.bitPattern) }
        let out = samples.map { VectorSample(labels: $0.labels.droppingMetricName(), value: Double($0.timestamp) / 1000) }
        return try distinct(out, ifNamesDiffer: samples.lazy.map(\.labels))
    }

    /// absent(): the labels of the selector's equality matchers (not `__name__`).
    func absentLabels(_ arg: Expr) -> Labels {
        let selector: VectorSelector?
        switch unparen(arg) {
        case .selector(let s), .matrix(let s, _): selector = s
        default: selector = nil
        }
        guard let s = selector else { return [] }
        // In matcher order: the first equality on a name sets it; any other matcher on it, or a
        // later equality, removes it (Prometheus' historic rule).
        var labels: [String: String] = [:]
        var seen: Set<String> = []
        for m in s.matchers where m.name != metricNameLabel {
            if m.op == .equal && seen.insert(m.name).inserted { labels[m.name] = m.value.isEmpty ? nil : m.value } else { labels[m.name] = nil }
        }
        return labels.map { Label($0.key, $0.value) }.sorted()
    }

    func labelReplace(_ args: [Expr]) throws(EvaluationError) -> [VectorSample] {
        let dst = try string(args[1]), replacement = try string(args[2]), src = try string(args[3]), pattern = try string(args[4])
        let regex: NSRegularExpression
        do { regex = try NSRegularExpression(pattern: "^(?:" + pattern + ")$") } catch {
            throw EvaluationError(message: "invalid regular expression in label_replace(): \(pattern)")
        }
        guard isValidLabelName(dst) else { throw EvaluationError(message: "invalid destination label name in label_replace(): \(dst)") }
        var out: [VectorSample] = []
        for s in try vector(args[0]) {
            let value = s.labels.value(src)
            let range = NSRange(value.startIndex..., in: value)
            if let match = regex.firstMatch(in: value, range: range) {
                let template = replacement.replacingOccurrences(of: "\\$\\{?(\\w+)\\}?", with: "\\$$1", options: .regularExpression)
                let result = regex.replacementString(for: match, in: value, offset: 0, template: template)
                out.append(VectorSample(labels: s.labels.setting(dst, result), value: s.value))
            } else {
                out.append(s)
            }
        }
        return out
    }

    func labelJoin(_ args: [Expr]) throws(EvaluationError) -> [VectorSample] {
        let dst = try string(args[1]), separator = try string(args[2])
        var sources: [String] = []
        for a in args.dropFirst(3) { sources.append(try string(a)) }
        return try vector(args[0]).map { s in
            VectorSample(labels: s.labels.setting(dst, sources.map { s.labels.value($0) }.joined(separator: separator)), value: s.value)
        }
    }

    func dateFunction(_ name: String, _ input: [VectorSample]) -> [VectorSample] {
        input.map { s in
            let d = CivilTime(unixSeconds: s.value)
            let v: Int64
            switch name {
            case "day_of_month": v = d.day
            case "day_of_week": v = d.weekday
            case "day_of_year": v = d.yearDay
            case "days_in_month": v = d.daysInMonth
            case "hour": v = d.hour
            case "minute": v = d.minute
            case "month": v = d.month
            default: v = d.year
            }
            return VectorSample(labels: s.labels.droppingMetricName(), value: Double(v))
        }
    }
}

/// A UTC date the way Prometheus 2.42 (Go 1.19's time package) computes it from a sample value:
/// the value is truncated to whole seconds as Go's float-to-int64 conversion does on amd64 (NaN,
/// ±Inf and values out of range become Int64.min), then counted from Go's "absolute" epoch with
/// unsigned arithmetic, so even those values give the very date Prometheus gives.
struct CivilTime {
    var year: Int64, month: Int64, day: Int64, yearDay: Int64, hour: Int64, minute: Int64, weekday: Int64

    static let absoluteZeroYear: Int64 = -292_277_022_399
    /// Go's unixToInternal + internalToAbsolute.
    static let unixToAbsolute: Int64 = 62_135_596_800 + 292_277_022_400 * 31_556_952
    static let daysBefore: [Int64] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365]

    init(unixSeconds value: Double) {
        let seconds = Int64(goConverting: value)
        let abs = UInt64(bitPattern: seconds &+ CivilTime.unixToAbsolute)
        hour = Int64(abs % 86_400 / 3_600)
        minute = Int64(abs % 3_600 / 60)
        weekday = Int64((abs &+ 86_400) % 604_800 / 86_400)
        var d = abs / 86_400
        var n = d / 146_097
        var y = 400 * n
        d -= 146_097 * n
        n = d / 36_524
        n -= n >> 2
        y += 100 * n
        d -= 36_524 * n
        n = d / 1_461
        y += 4 * n
        d -= 1_461 * n
        n = d / 365
        n -= n >> 2
        y += n
        d -= 365 * n
        year = Int64(bitPattern: y) &+ CivilTime.absoluteZeroYear
        yearDay = Int64(d) + 1
        var day = Int64(d)
        let leap = CivilTime.isLeap(year)
        if leap && day == 59 {
            month = 2
            self.day = 29
        } else {
            if leap && day > 59 { day -= 1 }
            var m = day / 31
            let end = CivilTime.daysBefore[Int(m) + 1]
            let begin: Int64
            if day >= end {
                m += 1
                begin = end
            } else {
                begin = CivilTime.daysBefore[Int(m)]
            }
            month = m + 1
            self.day = day - begin + 1
        }
    }

    static func isLeap(_ year: Int64) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    var daysInMonth: Int64 {
        if month == 2 { return CivilTime.isLeap(year) ? 29 : 28 }
        return CivilTime.daysBefore[Int(month)] - CivilTime.daysBefore[Int(month) - 1]
    }
}

/// Prometheus' extrapolatedRate (2.42): rate, increase and delta over `[rangeStart, rangeEnd]`,
/// extrapolated to the window's edges unless the series starts or ends inside it.
func extrapolatedRate(
    _ t: [Int64], _ v: [Double], rangeStart: Int64, rangeEnd: Int64, range: Int64, isCounter: Bool, isRate: Bool
) -> Double? {
    guard t.count >= 2 else { return nil }
    var result = v[v.count - 1] - v[0]
    if isCounter {
        var last = v[0]
        for x in v.dropFirst() {
            if x < last { result += last }
            last = x
        }
    }
    var durationToStart = Double(t[0] - rangeStart) / 1000
    let durationToEnd = Double(rangeEnd - t[t.count - 1]) / 1000
    let sampledInterval = Double(t[t.count - 1] - t[0]) / 1000
    let averageBetweenSamples = sampledInterval / Double(t.count - 1)
    if isCounter && result > 0 && v[0] >= 0 {
        // A counter cannot go below zero: do not extrapolate past where it would.
        let durationToZero = sampledInterval * (v[0] / result)
        if durationToZero < durationToStart { durationToStart = durationToZero }
    }
    let threshold = averageBetweenSamples * 1.1
    var extrapolateTo = sampledInterval
    extrapolateTo += durationToStart < threshold ? durationToStart : averageBetweenSamples / 2
    extrapolateTo += durationToEnd < threshold ? durationToEnd : averageBetweenSamples / 2
    // One factor, then one multiplication, as Prometheus rounds it (and its Duration.Seconds()).
    var factor = extrapolateTo / sampledInterval
    if isRate { factor /= Double(range / 1000) + Double(range % 1000 * 1_000_000) / 1e9 }
    return result * factor
}

/// Double exponential smoothing (Prometheus 2.42's holt_winters): the smoothed value at the last sample.
func holtWinters(_ v: [Double], smoothing sf: Double, trend tf: Double) -> Double? {
    guard v.count >= 2 else { return nil }
    var s0 = 0.0, s1 = v[0]
    var b = v[1] - v[0]
    for i in 1..<v.count {
        if i > 1 { b = tf * (s1 - s0) + (1 - tf) * b }
        let smoothed = sf * v[i] + (1 - sf) * (s1 + b)
        s0 = s1
        s1 = smoothed
    }
    return s1
}

/// irate and idelta: the last two samples.
func instantValue(_ t: [Int64], _ v: [Double], isRate: Bool) -> Double? {
    guard t.count >= 2 else { return nil }
    let last = v[v.count - 1], previous = v[v.count - 2]
    var result = isRate && last < previous ? last : last - previous
    let interval = t[t.count - 1] - t[t.count - 2]
    if interval == 0 { return nil }
    if isRate { result /= Double(interval) / 1000 }
    return result
}

/// Least-squares slope and intercept, x in seconds relative to `interceptTime`.
func linearRegression(_ t: [Int64], _ v: [Double], interceptTime: Int64) -> (slope: Double, intercept: Double) {
    var n = 0.0, sumX = 0.0, sumY = 0.0, sumXY = 0.0, sumX2 = 0.0
    var cX = 0.0, cY = 0.0, cXY = 0.0, cX2 = 0.0
    let constant = v.allSatisfy { $0 == v[0] }
    if constant {
        if v[0].isInfinite { return (.nan, .nan) }
        return (0, v[0])
    }
    for (ti, vi) in zip(t, v) {
        n += 1
        let x = Double(ti - interceptTime) / 1000
        (sumX, cX) = kahanAdd(x, sumX, cX)
        (sumY, cY) = kahanAdd(vi, sumY, cY)
        (sumXY, cXY) = kahanAdd(x * vi, sumXY, cXY)
        (sumX2, cX2) = kahanAdd(x * x, sumX2, cX2)
    }
    sumX += cX
    sumY += cY
    sumXY += cXY
    sumX2 += cX2
    let covXY = sumXY - sumX * sumY / n
    let varX = sumX2 - sumX * sumX / n
    let slope = covXY / varX
    return (slope, sumY / n - slope * sumX / n)
}

extension Evaluator {
    /// histogram_quantile over classic `_bucket` series (grouped by every label but `le`).
    func histogramQuantile(_ q: Double, _ input: [VectorSample]) -> [VectorSample] {
        var order: [String] = []
        var groups: [String: (Labels, [(upper: Double, count: Double)])] = [:]
        for s in input {
            guard let upper = Double(s.labels.value("le").replacingOccurrences(of: "+Inf", with: "inf")) else { continue }
            // Grouped by every label but `le` (the metric name too); the result drops the name.
            let labels = s.labels.dropping(["le", metricNameLabel])
            let k = s.labels.dropping(["le"]).key
            if groups[k] == nil { order.append(k); groups[k] = (labels, []) }
            groups[k]!.1.append((upper, s.value))
        }
        return order.map { k in
            let (labels, buckets) = groups[k]!
            return VectorSample(labels: labels, value: bucketQuantile(q, buckets))
        }
    }
}

/// Prometheus' bucketQuantile: linear interpolation inside the bucket holding the rank.
func bucketQuantile(_ q: Double, _ input: [(upper: Double, count: Double)]) -> Double {
    if q.isNaN { return .nan }
    if q < 0 { return -.infinity }
    if q > 1 { return .infinity }
    var buckets = input.sorted { $0.upper < $1.upper }
    guard let last = buckets.last, last.upper == .infinity else { return .nan }
    // Coalesce buckets with the same bound, then force the counts to be monotonic.
    var merged: [(upper: Double, count: Double)] = []
    for b in buckets {
        if let l = merged.last, l.upper == b.upper { merged[merged.count - 1].count += b.count } else { merged.append(b) }
    }
    buckets = merged
    var maximum = -Double.infinity
    for i in buckets.indices {
        if buckets[i].count > maximum { maximum = buckets[i].count } else { buckets[i].count = maximum }
    }
    guard buckets.count >= 2 else { return .nan }
    let observations = buckets[buckets.count - 1].count
    if observations == 0 { return .nan }
    var rank = q * observations
    var b = buckets.count - 1
    for i in 0..<(buckets.count - 1) where buckets[i].count >= rank {
        b = i
        break
    }
    if b == buckets.count - 1 { return buckets[buckets.count - 2].upper }
    if b == 0 && buckets[0].upper <= 0 { return buckets[0].upper }
    var start = 0.0
    var count = buckets[b].count
    if b > 0 {
        start = buckets[b - 1].upper
        count -= buckets[b - 1].count
        rank -= buckets[b - 1].count
    }
    return start + (buckets[b].upper - start) * (rank / count)
}
