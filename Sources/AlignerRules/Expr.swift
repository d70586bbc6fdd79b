import AlignerCore
import Foundation
import Synchronization

/// The type of a PromQL expression's value.
public enum ValueType: String, Sendable, Equatable {
    case scalar, string
    case instantVector = "instant vector"
    case rangeVector = "range vector"
}

/// How a label matcher compares.
public enum MatchOp: String, Sendable, Equatable {
    case equal = "=", notEqual = "!=", regexMatch = "=~", regexNoMatch = "!~"
}

/// One `name op "value"` of a selector. Regular expressions are fully anchored, as in Prometheus,
/// and compiled once, when the matcher is made; common shapes (`a|b|c`, `.*`, `.+`, `prefix.*`)
/// skip the regex engine.
public struct LabelMatcher: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var op: MatchOp
    public var value: String
    let program: MatcherProgram?

    public init(_ name: String, _ op: MatchOp, _ value: String) {
        self.name = name
        self.op = op
        self.value = value
        program = op == .regexMatch || op == .regexNoMatch ? MatcherProgram(value) : nil
    }

    public static func == (a: LabelMatcher, b: LabelMatcher) -> Bool {
        a.name == b.name && a.op == b.op && a.value == b.value
    }

    /// Whether the regular expression compiles (always true for `=` and `!=`).
    public var isValid: Bool { program?.isValid ?? true }

    /// Whether the matcher accepts `value` (a missing label is the empty string).
    public func matches(_ candidate: String) throws -> Bool {
        switch op {
        case .equal: return candidate == value
        case .notEqual: return candidate != value
        case .regexMatch: return program!.matches(candidate)
        case .regexNoMatch: return !program!.matches(candidate)
        }
    }

    public var description: String { "\(name)\(op.rawValue)\(promQuoted(value))" }
}

/// A compiled, anchored regular expression with fast paths for common shapes. As in Prometheus
/// 2.42, `.` does not match a newline (Prometheus 3 compiles with `(?s)`, where it does).
final class MatcherProgram: @unchecked Sendable {
    enum Kind {
        case literals(Set<String>)
        /// `.*`: anything without a newline.
        case anything
        /// `.+`: anything not empty, without a newline.
        case nonEmpty
        /// `literal.*`: the literal, then anything without a newline.
        case prefix(String)
        case regex(NSRegularExpression)
        case invalid
    }

    let kind: Kind
    /// Answers of the regex engine by label value, for the few values a label takes (status
    /// codes, phases, reasons): label values repeat at every evaluation, the engine costs
    /// microseconds each time. Bounded: past `memoLimit` values, the engine answers.
    let memo = Mutex<[String: Bool]>([:])
    static let memoLimit = 4096

    init(_ pattern: String) {
        let special = Set("\\^$.|?*+()[]{}")
        if pattern == ".*" {
            kind = .anything
        } else if pattern == ".+" {
            kind = .nonEmpty
        } else if !pattern.contains(where: { special.contains($0) && $0 != "|" }) {
            kind = .literals(Set(pattern.split(separator: "|", omittingEmptySubsequences: false).map(String.init)))
        } else if pattern.hasSuffix(".*"), !pattern.dropLast(2).contains(where: { special.contains($0) }) {
            kind = .prefix(String(pattern.dropLast(2)))
        } else if let r = try? NSRegularExpression(pattern: "^(?:" + pattern + ")$") {
            kind = .regex(r)
        } else {
            kind = .invalid
        }
    }

    var isValid: Bool {
        if case .invalid = kind { return false }
        return true
    }

    func matches(_ s: String) -> Bool {
        switch kind {
        case .literals(let set): return set.contains(s)
        case .anything: return !s.utf8.contains(0x0a)
        case .nonEmpty: return !s.isEmpty && !s.utf8.contains(0x0a)
        case .prefix(let p): return s.utf8.starts(with: p.utf8) && !s.utf8.dropFirst(p.utf8.count).contains(0x0a)
        case .regex(let r):
            if let known = memo.withLock({ $0[s] }) { return known }
            let answer = r.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
            memo.withLock { if $0.count < MatcherProgram.memoLimit { $0[s] = answer } }
            return answer
        case .invalid: return false
        }
    }
}

/// `@ <timestamp>`, `@ start()` or `@ end()`.
public enum AtModifier: Sendable, Equatable {
    case timestamp(Double)
    case start
    case end
}

/// A subquery: `expr[range:step] offset d @ t`.
public struct Subquery: Sendable, Equatable {
    public var expr: Expr
    public var range: Int64
    public var step: Int64?
    public var offset: Int64 = 0
    public var at: AtModifier?

    public init(expr: Expr, range: Int64, step: Int64?) {
        self.expr = expr
        self.range = range
        self.step = step
    }
}

extension AtModifier {
    /// The time `@` names, in milliseconds; `start()` and `end()` are the query's first and last
    /// steps (an instant query's time, or a rule evaluation's).
    public func milliseconds(start: Int64, end: Int64) -> Int64 {
        switch self {
        case .timestamp(let seconds): Int64((seconds * 1000).rounded())
        case .start: start
        case .end: end
        }
    }
}

/// A selector: metric name and matchers, with `offset` and `@`.
public struct VectorSelector: Sendable, Equatable {
    public var name: String?
    /// Every matcher, including the one on `__name__` implied by `name`.
    public var matchers: [LabelMatcher]
    /// Milliseconds; positive looks back.
    public var offset: Int64 = 0
    public var at: AtModifier?
}

/// Aggregation operators.
public enum AggregateOp: String, Sendable, CaseIterable {
    case sum, avg, min, max, count, stddev, stdvar, topk, bottomk, quantile, group
    case countValues = "count_values"

    var hasParameter: Bool { self == .topk || self == .bottomk || self == .quantile || self == .countValues }
}

/// Binary operators, by precedence from low to high.
public enum BinaryOp: String, Sendable {
    case or, and, unless
    case equal = "==", notEqual = "!=", less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">="
    case add = "+", subtract = "-"
    case multiply = "*", divide = "/", modulo = "%", atan2
    case power = "^"

    var precedence: Int {
        switch self {
        case .or: 1
        case .and, .unless: 2
        case .equal, .notEqual, .less, .lessEqual, .greater, .greaterEqual: 3
        case .add, .subtract: 4
        case .multiply, .divide, .modulo, .atan2: 5
        case .power: 6
        }
    }

    public var isComparison: Bool { precedence == 3 }

    /// Arithmetic drops the metric name; comparisons (without `bool`), `atan2` and set operators keep it.
    public var dropsMetricName: Bool {
        switch self {
        case .add, .subtract, .multiply, .divide, .modulo, .power: true
        default: false
        }
    }
    public var isSetOperator: Bool { self == .and || self == .or || self == .unless }
}

/// `on(...)`/`ignoring(...)` and `group_left(...)`/`group_right(...)` of a binary operation.
public struct VectorMatching: Sendable, Equatable {
    public enum Cardinality: Sendable, Equatable { case oneToOne, manyToOne, oneToMany }
    public var on = false
    public var labels: [String] = []
    public var cardinality = Cardinality.oneToOne
    /// Labels copied from the "one" side (`group_left(these)`).
    public var include: [String] = []

    public init(on: Bool = false, labels: [String] = [], cardinality: Cardinality = .oneToOne, include: [String] = []) {
        self.on = on
        self.labels = labels
        self.cardinality = cardinality
        self.include = include
    }
}

/// A parsed PromQL expression.
public indirect enum Expr: Sendable, Equatable {
    case number(Double)
    case string(String)
    case selector(VectorSelector)
    /// A range vector: a selector over the last `range` milliseconds.
    case matrix(VectorSelector, range: Int64)
    case call(String, [Expr])
    case aggregate(AggregateOp, Expr, parameter: Expr?, grouping: [String], without: Bool)
    case binary(BinaryOp, Expr, Expr, matching: VectorMatching?, returnBool: Bool)
    case negate(Expr)
    case paren(Expr)
    /// `expr[range:step]`: the inner expression evaluated every `step` milliseconds (nil: the default
    /// evaluation interval) over the last `range`, with the subquery's own `offset` and `@`.
    case subquery(Subquery)

    /// The type of the expression's value.
    public var type: ValueType {
        switch self {
        case .number: .scalar
        case .string: .string
        case .selector: .instantVector
        case .matrix: .rangeVector
        case .call(let name, _): Functions.table[name]?.returns ?? .instantVector
        case .aggregate: .instantVector
        case .binary(_, let l, let r, _, _): l.type == .scalar && r.type == .scalar ? .scalar : .instantVector
        case .negate(let e), .paren(let e): e.type
        case .subquery: .rangeVector
        }
    }

    /// The expression with each instant selector replaced by `replace`'s answer where it gives
    /// one (range selectors are left as they are).
    public func replacingSelectors(_ replace: (VectorSelector) -> Expr?) -> Expr {
        switch self {
        case .number, .string, .matrix: self
        case .selector(let s): replace(s) ?? self
        case .call(let name, let args): .call(name, args.map { $0.replacingSelectors(replace) })
        case .aggregate(let op, let e, let p, let grouping, let without):
            .aggregate(op, e.replacingSelectors(replace), parameter: p?.replacingSelectors(replace), grouping: grouping, without: without)
        case .binary(let op, let l, let r, let matching, let returnBool):
            .binary(op, l.replacingSelectors(replace), r.replacingSelectors(replace), matching: matching, returnBool: returnBool)
        case .negate(let e): .negate(e.replacingSelectors(replace))
        case .paren(let e): .paren(e.replacingSelectors(replace))
        case .subquery(var q):
            {
                q.expr = q.expr.replacingSelectors(replace)
                return .subquery(q)
            }()
        }
    }

    /// Every selector in the expression, range selectors included, in order.
    public var selectors: [VectorSelector] {
        switch self {
        case .number, .string: []
        case .selector(let s): [s]
        case .matrix(let s, _): [s]
        case .call(_, let args): args.flatMap(\.selectors)
        case .aggregate(_, let e, let p, _, _): (p?.selectors ?? []) + e.selectors
        case .binary(_, let l, let r, _, _): l.selectors + r.selectors
        case .negate(let e), .paren(let e): e.selectors
        case .subquery(let q): q.expr.selectors
        }
    }
}

extension Expr: CustomStringConvertible {
    /// The expression in PromQL text, as Prometheus prints it.
    public var description: String {
        switch self {
        case .number(let v): formatNumber(v)
        case .string(let s): promQuoted(s)
        case .selector(let s): s.text
        case .matrix(let s, let range):
            s.textWithoutModifiers + "[\(formatDuration(range))]" + s.modifiers
        case .call(let name, let args): "\(name)(" + args.map(\.description).joined(separator: ", ") + ")"
        case .aggregate(let op, let e, let p, let grouping, let without):
            op.rawValue + (grouping.isEmpty && !without ? "" : " \(without ? "without" : "by") (\(grouping.joined(separator: ", "))) ")
                + "(" + (p.map { "\($0), " } ?? "") + e.description + ")"
        case .binary(let op, let l, let r, let m, let b):
            "\(l) \(op.rawValue)\(b ? " bool" : "")\(m.map(matchingText) ?? "") \(r)"
        case .negate(let e): "-\(e)"
        case .paren(let e): "(\(e))"
        case .subquery(let q):
            q.expr.description + "[\(formatDuration(q.range)):\(q.step.map(formatDuration) ?? "")]" + modifierText(at: q.at, offset: q.offset)
        }
    }

    func matchingText(_ m: VectorMatching) -> String {
        var t = ""
        if m.on || !m.labels.isEmpty { t += " \(m.on ? "on" : "ignoring")(\(m.labels.joined(separator: ", ")))" }
        switch m.cardinality {
        case .oneToOne: break
        case .manyToOne: t += " group_left(\(m.include.joined(separator: ", ")))"
        case .oneToMany: t += " group_right(\(m.include.joined(separator: ", ")))"
        }
        return t
    }
}

extension VectorSelector {
    var textWithoutModifiers: String {
        let others = matchers.filter { !($0.name == "__name__" && $0.op == .equal && $0.value == name) }
        let inner = others.isEmpty ? "" : "{" + others.map(\.description).joined(separator: ", ") + "}"
        return (name ?? "") + (name == nil && inner.isEmpty ? "{}" : inner)
    }

    var modifiers: String { modifierText(at: at, offset: offset) }

    var text: String { textWithoutModifiers + modifiers }
}

func modifierText(at: AtModifier?, offset: Int64) -> String {
    var t = ""
    switch at {
    case .timestamp(let v): t += " @ " + formatNumber(v)
    case .start: t += " @ start()"
    case .end: t += " @ end()"
    case nil: break
    }
    if offset != 0 { t += " offset " + (offset < 0 ? "-" : "") + formatDuration(abs(offset)) }
    return t
}

func formatNumber(_ v: Double) -> String {
    if v.isNaN { return "NaN" }
    if v.isInfinite { return v < 0 ? "-Inf" : "+Inf" }
    if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
    return String(v)
}

/// A duration in Prometheus' shortest form: 1h30m, 5m, 250ms.
public func formatDuration(_ ms: Int64) -> String {
    if ms == 0 { return "0s" }
    var rest = ms
    var out = ""
    for (unit, size) in [("y", Int64(31_536_000_000)), ("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000),
                         ("m", 60_000), ("s", 1000), ("ms", 1)] where rest >= size {
        out += "\(rest / size)\(unit)"
        rest %= size
    }
    return out
}
