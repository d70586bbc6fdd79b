import AlignerRules

/// How an evaluation reads the times `@` names.
enum AtReading {
    /// Not decided yet: the outermost `evaluate` looks at the whole expression.
    case undecided
    /// The expression has no `@`: every time is the evaluation time, less the offset.
    case asWritten
    /// The expression has an `@`, read as Prometheus 2.42 reads it.
    case offsets(AtFrame)
}

/// Prometheus 2.42 evaluates a whole range of steps at once (a range query's; a subquery's) and
/// turns each `@` into an offset from the first step of the range it is evaluated in
/// (`setOffsetForAtModifier`), restarting from a subquery's own first step where that differs
/// from its parent's. Parts that are step-invariant (no `@`-free selector, no `time()`,
/// `timestamp()`, `predict_linear()` or date function) are evaluated once, at the first step, for
/// all (`StepInvariantExpr`), so the `@` time is met exactly; elsewhere (a range selector with `@`
/// under `predict_linear` in a subquery, `timestamp(x @ t)` in one, any of these in a range query)
/// the `@` time moves with the steps. The samples a selector can see are those selected for the
/// fixed time before evaluation starts (`populateSeries`), so a window that moved away from them
/// holds fewer or none. Aligner evaluates step by step; this frame carries what it takes to give
/// the same answers.
struct AtFrame {
    /// The first and last step of the range being evaluated: the query's own, or a subquery's.
    var start: Int64
    var end: Int64
    /// The step the `@` times were turned into offsets from, and the offsets of the subqueries
    /// between the expression that was done for and here (`subqueryTimes` from there).
    var base: Int64
    var adjust: Int64 = 0
    /// The offsets and ranges of the subqueries from the root to here, restarted at a subquery
    /// with `@` (whose time they then count from): what bounds the samples selected.
    var pathOffset: Int64 = 0
    var pathRange: Int64 = 0
    var pathAt: Int64?
    /// Inside an expression evaluated once, at `start`, for every step.
    var pinned = false
    /// False inside an aggregation's parameter, which Prometheus 2.42 does not preprocess: nothing
    /// there is evaluated once for all steps, and `@ start()` and `@ end()` are not read.
    var preprocessed = true

    /// The offset Prometheus gives a selector or subquery with `@ at` and `offset`.
    func offset(at: Int64, offset: Int64) -> Int64 {
        offset + (base - at) - adjust
    }

    /// The frame of an expression evaluated once, at this range's first step.
    var pinnedAtStart: AtFrame {
        var once = self
        once.end = start
        once.pinned = true
        return once
    }

    /// The samples Prometheus selects for a selector (`getTimeRangesForSelector`), `range` being
    /// its range, or the lookback for an instant selector.
    func selected(at: Int64?, offset: Int64, range: Int64, queryStart: Int64, queryEnd: Int64) -> (from: Int64, through: Int64) {
        var (from, through) = (queryStart, queryEnd)
        if let pathAt { (from, through) = (pathAt, pathAt) }
        if let at {
            (from, through) = (at, at)
        } else {
            from -= pathOffset + pathRange
            through -= pathOffset
        }
        return (from - range - offset, through - offset)
    }

    /// The range a subquery's inner expression is evaluated over, from this range: its first step
    /// the first multiple of `step` at or after this range's first step less the subquery's
    /// offset and range; with the `@` offsets restarted from there when it differs from this
    /// range's first step.
    func subquery(_ q: Subquery, at: Int64?, step: Int64) -> AtFrame {
        let subqueryOffset = at.map { offset(at: $0, offset: q.offset) } ?? q.offset
        var inner = self
        inner.start = alignedUp(start - subqueryOffset - q.range, step)
        inner.end = end - subqueryOffset
        if inner.start != start {
            inner.base = inner.start
            inner.adjust = 0
        } else {
            inner.adjust = at.map { q.offset + base - $0 } ?? adjust + q.offset
        }
        if let at {
            (inner.pathOffset, inner.pathRange, inner.pathAt) = (q.offset, q.range, at)
        } else {
            inner.pathOffset += q.offset
            inner.pathRange += q.range
        }
        inner.pinned = false
        return inner
    }
}

/// The first multiple of `step` at or after `t`.
func alignedUp(_ t: Int64, _ step: Int64) -> Int64 {
    let down = step * (t / step)
    return down < t ? down + step : down
}

/// The functions whose answer changes with the evaluation time even when their arguments do not,
/// or that read their argument's timestamps (Prometheus' `AtModifierUnsafeFunctions`).
let atModifierUnsafeFunctions: Set<String> = [
    "days_in_month", "day_of_month", "day_of_week", "day_of_year", "hour", "minute", "month", "year",
    "predict_linear", "time", "timestamp",
]

extension Expr {
    /// Whether some selector or subquery in it has `@`.
    var holdsAt: Bool {
        switch self {
        case .number, .string: false
        case .selector(let s), .matrix(let s, _): s.at != nil
        case .call(_, let args): args.contains { $0.holdsAt }
        case .aggregate(_, let e, let p, _, _): e.holdsAt || p?.holdsAt == true
        case .binary(_, let l, let r, _, _): l.holdsAt || r.holdsAt
        case .negate(let e), .paren(let e): e.holdsAt
        case .subquery(let q): q.at != nil || q.expr.holdsAt
        }
    }

    /// Whether Prometheus 2.42 takes it for step-invariant (`preprocessExprHelper`): its value the
    /// same at every step, evaluated once. An aggregation's parameter does not count.
    var isStepInvariant: Bool {
        switch self {
        case .number, .string: true
        case .selector(let s), .matrix(let s, _): s.at != nil
        case .subquery(let q): q.at != nil
        case .call(let name, let args): !atModifierUnsafeFunctions.contains(name) && args.allSatisfy(\.isStepInvariant)
        case .aggregate(_, let e, _, _, _): e.isStepInvariant
        case .binary(_, let l, let r, _, _): l.isStepInvariant && r.isStepInvariant
        case .negate(let e), .paren(let e): e.isStepInvariant
        }
    }
}
