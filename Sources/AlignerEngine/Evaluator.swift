import AlignerCore
import AlignerRules
import Foundation

/// Evaluates PromQL at one instant, with Prometheus 2.42's semantics: a 5-minute lookback that
/// includes both ends, staleness markers ending a series, extrapolated rates, metric-name dropping.
public struct Evaluator {
    public let source: any SampleSource
    /// Evaluation time, milliseconds.
    public var time: Int64
    /// How far back an instant selector looks for a sample (milliseconds).
    public var lookback: Int64 = 300_000
    /// The step of a subquery that names none (`[5m:]`): the evaluation interval, as Prometheus uses.
    public var defaultSubqueryStep: Int64 = 60_000
    /// The times `@ start()` and `@ end()` name: an instant query's (or a rule evaluation's) own
    /// time, a range query's first and last steps; the same inside subqueries.
    public var queryStart: Int64
    public var queryEnd: Int64
    /// How the times `@` names are read: see `AtFrame`. Decided by the outermost `evaluate`.
    var atReading = AtReading.undecided

    public init(source: any SampleSource, time: Int64) {
        self.source = source
        self.time = time
        self.queryStart = time
        self.queryEnd = time
    }

    public func evaluate(_ expr: Expr) throws(EvaluationError) -> Value {
        switch atReading {
        case .undecided:
            var outermost = self
            outermost.atReading = expr.holdsAt ? .offsets(AtFrame(start: queryStart, end: queryEnd, base: queryStart)) : .asWritten
            return try outermost.evaluate(expr)
        case .offsets(let frame) where frame.preprocessed && !frame.pinned && expr.type != .rangeVector && expr.isStepInvariant:
            // Prometheus evaluates it once, at the first step of its range, for every step.
            var once = self
            once.time = frame.start
            once.atReading = .offsets(frame.pinnedAtStart)
            return try once.evaluateNode(expr)
        default:
            return try evaluateNode(expr)
        }
    }

    func evaluateNode(_ expr: Expr) throws(EvaluationError) -> Value {
        switch expr {
        case .number(let v): return .scalar(v)
        case .string(let s): return .string(s)
        case .paren(let e): return try evaluate(e)
        case .selector(let s): return .vector(instant(s))
        case .matrix(let s, let range): return .matrix(rangeSeries(s, range: range))
        case .subquery(let q): return .matrix(try subquery(q))
        case .negate(let e):
            switch try evaluate(e) {
            case .scalar(let v): return .scalar(-v)
            case .vector(let v):
                return .vector(try distinct(v.map { VectorSample(labels: $0.labels.droppingMetricName(), value: -$0.value) }, ifNamesDiffer: v.lazy.map(\.labels)))
            default: throw EvaluationError(message: "unary minus on a non-numeric value")
            }
        case .call(let name, let args): return try call(name, args)
        case .aggregate(let op, let e, let p, let grouping, let without):
            var parameter: Value?
            if let p {
                // Prometheus 2.42 leaves an aggregation's parameter out of its preprocessing.
                var unprocessed = self
                if case .offsets(var frame) = atReading { frame.preprocessed = false; unprocessed.atReading = .offsets(frame) }
                parameter = try unprocessed.evaluate(p)
            }
            return .vector(try aggregate(op, try vector(e), parameter: parameter, grouping: grouping, without: without))
        case .binary(let op, let l, let r, let matching, let returnBool):
            return try binary(op, try evaluate(l), try evaluate(r), matching: matching, returnBool: returnBool)
        }
    }

    func vector(_ e: Expr) throws(EvaluationError) -> [VectorSample] {
        guard case .vector(let v) = try evaluate(e) else { throw EvaluationError(message: "expected an instant vector") }
        return v
    }

    func scalar(_ e: Expr) throws(EvaluationError) -> Double {
        guard case .scalar(let v) = try evaluate(e) else { throw EvaluationError(message: "expected a scalar") }
        return v
    }

    // MARK: Selectors

    /// The time an `@` names, if it names one Prometheus reads.
    func atTime(_ at: AtModifier?) -> Int64? {
        guard let at else { return nil }
        if case .offsets(let frame) = atReading, !frame.preprocessed, at == .start || at == .end { return nil }
        return at.milliseconds(start: queryStart, end: queryEnd)
    }

    /// The end of a selector's window: the evaluation time, or the time `@` names, less the offset.
    func end(_ s: VectorSelector) -> Int64 {
        guard case .offsets(let frame) = atReading, let at = atTime(s.at) else { return (atTime(s.at) ?? time) - s.offset }
        return time - frame.offset(at: at, offset: s.offset)
    }

    /// A selector's window of `range` milliseconds (the lookback for an instant selector), both
    /// ends included; where `@` is read as an offset, only as much of it as Prometheus selects
    /// samples for (empty when `through < from`).
    func window(_ s: VectorSelector, range: Int64) -> (from: Int64, through: Int64) {
        let end = end(s)
        guard case .offsets(let frame) = atReading else { return (end - range, end) }
        let selected = frame.selected(at: atTime(s.at), offset: s.offset, range: range, queryStart: queryStart, queryEnd: queryEnd)
        return (max(end - range, selected.from), min(end, selected.through))
    }

    func instant(_ s: VectorSelector) -> [VectorSample] {
        let (from, through) = window(s, range: lookback)
        guard from <= through else { return [] }
        var out: [VectorSample] = []
        // The newest sample at or before the end, within the lookback (both ends included).
        for sample in source.latest(matching: s.matchers, from: from, through: through)
        where !SampleValue.isStale(bits: sample.value.bitPattern) {
            out.append(VectorSample(labels: sample.labels, value: sample.value))
        }
        return out
    }

    func rangeSeries(_ s: VectorSelector, range: Int64) -> [RangeSeries] {
        let (start, end) = window(s, range: range)
        guard start <= end else { return [] }
        var out: [RangeSeries] = []
        for series in source.series(matching: s.matchers, from: start, through: end) {
            // The source returns exactly [start, end]: without stale markers the arrays are used as they are.
            if !series.values.contains(where: { SampleValue.isStale(bits: $0.bitPattern) }) {
                if !series.timestamps.isEmpty { out.append(RangeSeries(labels: series.labels, timestamps: series.timestamps, values: series.values)) }
                continue
            }
            var ts: [Int64] = []
            var vs: [Double] = []
            for (t, v) in zip(series.timestamps, series.values) where t >= start && t <= end && !SampleValue.isStale(bits: v.bitPattern) {
                ts.append(t)
                vs.append(v)
            }
            if !ts.isEmpty { out.append(RangeSeries(labels: series.labels, timestamps: ts, values: vs)) }
        }
        return out
    }

    /// A subquery: the inner expression at every multiple of the step in `[end - range, end]`, one
    /// series per label set (Prometheus 2.42 includes both ends).
    func subquery(_ q: Subquery) throws(EvaluationError) -> [RangeSeries] {
        let step = q.step ?? defaultSubqueryStep
        // Prometheus stops a query at 50 million samples; a subquery of more than a million steps
        // is refused here before it is started.
        guard q.range / step <= 1_000_000 else {
            throw EvaluationError(message: "subquery \(formatDuration(q.range)):\(formatDuration(step)) has more than 1000000 steps")
        }
        let end = subqueryEnd(q)
        var from = end - q.range, through = end
        var inner = self
        if case .offsets(let frame) = atReading {
            let steps = frame.subquery(q, at: atTime(q.at), step: step)
            from = max(from, steps.start)
            through = min(through, steps.end)
            inner.atReading = .offsets(steps)
        }
        var t = alignedUp(from, step)
        var order: [Labels] = []
        var series: [Labels: RangeSeries] = [:]
        while t <= through {
            inner.time = t
            let value = try inner.evaluate(q.expr)
            let samples: [VectorSample]
            switch value {
            case .vector(let v): samples = v
            case .scalar(let v): samples = [VectorSample(labels: [], value: v)]
            default: throw EvaluationError(message: "subquery is only allowed on instant vector")
            }
            for sample in samples {
                let k = sample.labels
                if series[k] == nil {
                    order.append(k)
                    series[k] = RangeSeries(labels: sample.labels, timestamps: [], values: [])
                }
                series[k]!.timestamps.append(t)
                series[k]!.values.append(sample.value)
            }
            t += step
        }
        return order.map { series[$0]! }
    }

    /// The end of a subquery's window: the evaluation time, or the time `@` names, less the offset.
    func subqueryEnd(_ q: Subquery) -> Int64 {
        guard case .offsets(let frame) = atReading, let at = atTime(q.at) else { return (atTime(q.at) ?? time) - q.offset }
        // Prometheus turns a subquery's `@` into an offset from the first step of the range the
        // function over it is evaluated at (evalSubquery).
        return time - (q.offset + frame.start - at)
    }

    /// Prometheus' "vector cannot contain metrics with the same labelset": rewriting labels must
    /// not merge two series.
    func distinct(_ out: [VectorSample]) throws(EvaluationError) -> [VectorSample] {
        guard out.count > 1 else { return out }
        var seen = Set<Labels>(minimumCapacity: out.count)
        for s in out where !seen.insert(s.labels).inserted {
            throw EvaluationError(message: "vector cannot contain metrics with the same labelset")
        }
        return out
    }

    /// The same check after dropping the metric name: only needed when the inputs held more than
    /// one name, since otherwise the result's label sets are as distinct as the inputs'.
    func distinct(_ out: [VectorSample], ifNamesDiffer inputs: some Sequence<Labels>) throws(EvaluationError) -> [VectorSample] {
        var first: String?
        for labels in inputs {
            let name = labels.value(metricNameLabel)
            if first == nil { first = name } else if name != first { return try distinct(out) }
        }
        return out
    }

    // MARK: Aggregation

    func aggregate(_ op: AggregateOp, _ input: [VectorSample], parameter: Value?, grouping: [String], without: Bool) throws(EvaluationError) -> [VectorSample] {
        let dropped = grouping + [metricNameLabel]
        func groupLabels(_ l: Labels) -> Labels {
            without ? l.dropping(dropped) : l.keeping(grouping)
        }
        // Grouped by the labels in place (sorted, so equal subsets compare equal label by label):
        // no key is built per series, a group's labels once per group.
        var groups: [(labels: Labels, members: [VectorSample])] = []
        var index: [LabelSubset: Int] = [:]
        for s in input {
            let key = LabelSubset(labels: s.labels, names: without ? dropped : grouping, keep: !without)
            if let i = index[key] {
                groups[i].members.append(s)
            } else {
                index[key] = groups.count
                groups.append((key.materialized, [s]))
            }
        }
        var out: [VectorSample] = []
        switch op {
        case .topk, .bottomk:
            guard case .scalar(let kValue) = parameter else { throw EvaluationError(message: "topk/bottomk need a scalar") }
            // As Prometheus: a k that no int64 holds (NaN included) is an error; k is truncated.
            guard kValue >= -9.223372036854775808e18 && kValue <= 9.223372036854775807e18 else {
                throw EvaluationError(message: "Scalar value \(goDefault(kValue)) overflows int64")
            }
            let k = Int(min(Double(Int.max / 2), max(0, kValue)))
            for (_, members) in groups {
                let sorted = members.sorted { a, b in
                    if op == .topk { return a.value > b.value || (b.value.isNaN && !a.value.isNaN) }
                    return a.value < b.value || (b.value.isNaN && !a.value.isNaN)
                }
                out += sorted.prefix(k)
            }
            return out
        case .countValues:
            guard case .string(let label) = parameter else { throw EvaluationError(message: "count_values needs a string") }
            guard isValidLabelName(label) else { throw EvaluationError(message: "invalid label name \"\(label)\"") }
            var counts: [Labels: (Labels, Double)] = [:]
            var countOrder: [Labels] = []
            for s in input {
                let l = groupLabels(s.labels).setting(label, formatValue(s.value))
                if counts[l] == nil { countOrder.append(l); counts[l] = (l, 0) }
                counts[l]!.1 += 1
            }
            return countOrder.map { VectorSample(labels: counts[$0]!.0, value: counts[$0]!.1) }
        default:
            break
        }
        for (labels, members) in groups {
            let values = members.map(\.value)
            let value: Double
            switch op {
            case .sum: value = values.dropFirst().reduce(values[0], +)
            case .avg: value = mean(values)
            case .min: value = values.reduce(Double.nan) { $0.isNaN || $1 < $0 ? $1 : $0 }
            case .max: value = values.reduce(Double.nan) { $0.isNaN || $1 > $0 ? $1 : $0 }
            case .count: value = Double(values.count)
            case .group: value = 1
            case .stddev: value = variance(values).squareRoot()
            case .stdvar: value = variance(values)
            case .quantile:
                guard case .scalar(let q) = parameter else { throw EvaluationError(message: "quantile needs a scalar") }
                value = quantile(q, values)
            default: value = .nan
            }
            out.append(VectorSample(labels: labels, value: value))
        }
        return out
    }

    // MARK: Binary operators

    func binary(_ op: BinaryOp, _ l: Value, _ r: Value, matching: VectorMatching?, returnBool: Bool) throws(EvaluationError) -> Value {
        switch (l, r) {
        case (.scalar(let a), .scalar(let b)):
            let v = apply(op, a, b)
            return .scalar(op.isComparison ? (v.keep ? 1 : 0) : v.value)
        case (.vector(let v), .scalar(let b)):
            return .vector(try distinct(scalarOp(op, v, b, vectorOnLeft: true, returnBool: returnBool), ifNamesDiffer: v.lazy.map(\.labels)))
        case (.scalar(let a), .vector(let v)):
            return .vector(try distinct(scalarOp(op, v, a, vectorOnLeft: false, returnBool: returnBool), ifNamesDiffer: v.lazy.map(\.labels)))
        case (.vector(let a), .vector(let b)):
            return .vector(try vectorOp(op, a, b, matching: matching ?? VectorMatching(), returnBool: returnBool))
        default:
            throw EvaluationError(message: "invalid operands for \(op.rawValue)")
        }
    }

    /// The arithmetic result, or whether a comparison holds.
    func apply(_ op: BinaryOp, _ a: Double, _ b: Double) -> (value: Double, keep: Bool) {
        switch op {
        case .add: return (a + b, true)
        case .subtract: return (a - b, true)
        case .multiply: return (a * b, true)
        case .divide: return (a / b, true)
        case .modulo: return (fmod(a, b), true)
        case .power: return (goPow(a, b), true)
        case .atan2: return (goAtan2(a, b), true)
        case .equal: return (a, a == b)
        case .notEqual: return (a, a != b)
        case .less: return (a, a < b)
        case .lessEqual: return (a, a <= b)
        case .greater: return (a, a > b)
        case .greaterEqual: return (a, a >= b)
        case .and, .or, .unless: return (a, true)
        }
    }

    func scalarOp(_ op: BinaryOp, _ v: [VectorSample], _ s: Double, vectorOnLeft: Bool, returnBool: Bool) -> [VectorSample] {
        var out: [VectorSample] = []
        for sample in v {
            let (a, b) = vectorOnLeft ? (sample.value, s) : (s, sample.value)
            var (value, keep) = apply(op, a, b)
            if op.isComparison {
                if returnBool {
                    value = keep ? 1 : 0
                    keep = true
                } else if !keep {
                    continue
                } else {
                    // A filter keeps the vector's value, whichever side it is on.
                    value = sample.value
                }
            }
            guard keep else { continue }
            let dropName = op.dropsMetricName || returnBool
            out.append(VectorSample(labels: dropName ? sample.labels.droppingMetricName() : sample.labels, value: value))
        }
        return out
    }

    /// The labels two sides are matched on: the `on` labels, or all but the `ignoring` ones and
    /// the metric name.
    struct Signature {
        let on: Bool
        let labels: [String]
        init(_ m: VectorMatching) {
            on = m.on
            labels = m.on ? m.labels : m.labels + [metricNameLabel]
        }
        func matched(_ l: Labels) -> Labels { on ? l.keeping(labels) : l.dropping(labels) }
        /// The key two samples match on, without copying their labels.
        func callAsFunction(_ l: Labels) -> LabelSubset { LabelSubset(labels: l, names: labels, keep: on) }
    }

    func vectorOp(_ op: BinaryOp, _ lhs: [VectorSample], _ rhs: [VectorSample], matching m: VectorMatching, returnBool: Bool) throws(EvaluationError) -> [VectorSample] {
        let signature = Signature(m)
        // Set operations with an empty side need no signatures (a pack's `a or b` over a metric
        // that no target exports is the common case).
        switch op {
        case .and where lhs.isEmpty || rhs.isEmpty: return []
        case .unless where lhs.isEmpty || rhs.isEmpty, .or where rhs.isEmpty: return lhs
        case .or where lhs.isEmpty: return rhs
        default: break
        }
        switch op {
        case .and:
            let right = Set(rhs.map { signature($0.labels) })
            return lhs.filter { right.contains(signature($0.labels)) }
        case .unless:
            let right = Set(rhs.map { signature($0.labels) })
            return lhs.filter { !right.contains(signature($0.labels)) }
        case .or:
            let left = Set(lhs.map { signature($0.labels) })
            return lhs + rhs.filter { !left.contains(signature($0.labels)) }
        default:
            break
        }
        // As in Prometheus: nothing can match, so duplicates on the other side are no error.
        if lhs.isEmpty || rhs.isEmpty { return [] }
        // The "one" side is indexed by signature; the other side is matched against it.
        let oneSide = m.cardinality == .oneToMany ? lhs : rhs
        let manySide = m.cardinality == .oneToMany ? rhs : lhs
        var index: [LabelSubset: Int] = [:]
        for (i, s) in oneSide.enumerated() {
            guard index.updateValue(i, forKey: signature(s.labels)) != nil else { continue }
            let side = m.cardinality == .oneToMany ? "left" : "right"
            let group = "{" + signature.matched(s.labels).map { "\($0.name)=\"\($0.value)\"" }.joined(separator: ", ") + "}"
            throw EvaluationError(message: "found duplicate series for the match group \(group) on the \(side) hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side")
        }
        var out: [VectorSample] = []
        // One-to-one: each one-side sample may be matched once (its position stands for its signature).
        var matched = [Bool](repeating: false, count: m.cardinality == .oneToOne ? oneSide.count : 0)
        var seen: Set<Labels> = []
        for s in manySide {
            guard let oi = index[signature(s.labels)] else { continue }
            let other = oneSide[oi]
            let (left, right) = m.cardinality == .oneToMany ? (other, s) : (s, other)
            var (value, keep) = apply(op, left.value, right.value)
            if op.isComparison {
                if returnBool { value = keep ? 1 : 0; keep = true } else { value = left.value }
            }
            guard keep else { continue }
            var labels = m.cardinality == .oneToOne ? resultLabelsOneToOne(left.labels, m) : s.labels
            if op.dropsMetricName || returnBool { labels = labels.droppingMetricName() }
            if m.cardinality != .oneToOne {
                for name in m.include {
                    labels = labels.setting(name, other.labels.value(name))
                }
            }
            if m.cardinality == .oneToOne {
                if matched[oi] {
                    throw EvaluationError(message: "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)")
                }
                matched[oi] = true
            } else if !seen.insert(labels).inserted {
                throw EvaluationError(message: "multiple matches for labels: grouping labels must ensure unique matches")
            }
            out.append(VectorSample(labels: labels, value: value))
        }
        return out
    }

    /// One-to-one matching keeps only the `on` labels (the metric name too goes), or drops the
    /// `ignoring` ones.
    func resultLabelsOneToOne(_ l: Labels, _ m: VectorMatching) -> Labels {
        m.on ? l.keeping(m.labels) : l.dropping(m.labels)
    }
}

// The arithmetic below is Prometheus 2.42's, operation for operation, so that answers agree to
// the last bit (a value formatted into a label by count_values shows every bit).

/// `avg`: the running mean, each side divided by the count (no overflow), an infinite mean kept.
func mean(_ values: [Double]) -> Double {
    guard var m = values.first else { return .nan }
    var count = 1.0
    for v in values.dropFirst() {
        count += 1
        if m.isInfinite && (v.isInfinite ? (m > 0) == (v > 0) : !v.isNaN) { continue }
        m += v / count - m / count
    }
    return m
}

/// Neumaier's compensated summation step: the new sum and the new compensation.
@inline(__always)
func kahanAdd(_ inc: Double, _ sum: Double, _ c: Double) -> (Double, Double) {
    let t = sum + inc
    return (t, abs(sum) >= abs(inc) ? c + ((sum - t) + inc) : c + ((inc - t) + sum))
}

/// `sum_over_time`: compensated.
func sumOverTime(_ values: [Double]) -> Double {
    var sum = 0.0, c = 0.0
    for v in values { (sum, c) = kahanAdd(v, sum, c) }
    return sum.isInfinite ? sum : sum + c
}

/// `avg_over_time`: the running mean, compensated, an infinite mean kept.
func meanOverTime(_ values: [Double]) -> Double {
    var m = 0.0, count = 0.0, c = 0.0
    for v in values {
        count += 1
        if m.isInfinite && (v.isInfinite ? (m > 0) == (v > 0) : !v.isNaN) { continue }
        (m, c) = kahanAdd(v / count - m / count, m, c)
    }
    return m.isInfinite ? m : m + c
}

/// `stdvar_over_time` (and the square of `stddev_over_time`): Welford's, compensated.
func varianceOverTime(_ values: [Double]) -> Double {
    var count = 0.0, m = 0.0, cm = 0.0, aux = 0.0, caux = 0.0
    for v in values {
        count += 1
        let delta = v - (m + cm)
        (m, cm) = kahanAdd(delta / count, m, cm)
        (aux, caux) = kahanAdd(delta * (v - (m + cm)), aux, caux)
    }
    return (aux + caux) / count
}

/// `stdvar` (and the square of `stddev`): Welford's from the first value, so one NaN alone gives 0.
func variance(_ values: [Double]) -> Double {
    guard let first = values.first else { return .nan }
    var count = 1.0, m = first, squares = 0.0
    for v in values.dropFirst() {
        count += 1
        let delta = v - m
        m += delta / count
        squares += delta * (v - m)
    }
    return values.isEmpty ? .nan : squares / count
}

/// Prometheus' quantile: linear interpolation between the closest ranks.
func quantile(_ q: Double, _ values: [Double]) -> Double {
    if values.isEmpty || q.isNaN { return .nan }
    if q < 0 { return -.infinity }
    if q > 1 { return .infinity }
    // NaN sorts below every number, as in Prometheus' heap order.
    let sorted = values.sorted { $0.isNaN ? !$1.isNaN : $0 < $1 }
    let n = Double(sorted.count)
    let rank = q * (n - 1)
    let lower = max(0, floor(rank))
    let upper = min(n - 1, lower + 1)
    let weight = rank - floor(rank)
    return sorted[Int(lower)] * (1 - weight) + sorted[Int(upper)] * weight
}

/// A value as count_values writes it into a label: Go's `FormatFloat(v, 'f', -1, 64)`, the
/// shortest digits that read back as `v`, never with an exponent (`1e-05` is `0.00001`).
public func formatValue(_ v: Double) -> String {
    if v.isNaN { return "NaN" }
    if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
    // Swift's description has the same shortest digits, in "d.ddd" or "d.ddde±x" form.
    let text = v.magnitude.description
    let parts = text.split(separator: "e")
    let exponent = parts.count == 2 ? Int(parts[1])! : 0
    let mantissa = parts[0]
    var digits = Array(mantissa.filter { $0 != "." })
    var point = (mantissa.firstIndex(of: ".").map { mantissa.distance(from: mantissa.startIndex, to: $0) } ?? mantissa.count) + exponent
    while digits.count > 1, digits.first == "0", point > 1 { digits.removeFirst(); point -= 1 }
    if point <= 0 {
        digits.insert(contentsOf: repeatElement("0", count: 1 - point), at: 0)
        point = 1
    } else if point > digits.count {
        digits.append(contentsOf: repeatElement("0", count: point - digits.count))
    }
    var integer = String(digits[..<point])
    while integer.count > 1, integer.first == "0" { integer.removeFirst() }
    var fraction = String(digits[point...])
    while fraction.last == "0" { fraction.removeLast() }
    let sign = v.sign == .minus ? "-" : ""
    return fraction.isEmpty ? sign + integer : sign + integer + "." + fraction
}
