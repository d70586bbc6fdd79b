import AlignerCore

/// Which labels an expression's result can be split by: when every output series depends only on
/// input series that share its values of some labels P, a write that touched a few values of P
/// needs only those parts evaluated again. `sum by (namespace, pod) (...)` can be split by any
/// subset of {namespace, pod}; `sum(...)`, `scalar(...)` or `absent(...)` cannot be split at all.
public struct PartitionConstraint: Sendable, Equatable {
    /// P must be a subset of this (nil: no such bound).
    public var within: Set<String>?
    /// P must not contain these.
    public var excluding: Set<String> = [metricNameLabel]
    /// False when some output depends on every input (or on none).
    public var possible = true

    public static let unbounded = PartitionConstraint()
    public static let impossible = PartitionConstraint(possible: false)

    /// Both constraints at once.
    public func and(_ other: PartitionConstraint) -> PartitionConstraint {
        var c = PartitionConstraint()
        c.possible = possible && other.possible
        switch (within, other.within) {
        case (nil, nil): c.within = nil
        case (let a?, nil): c.within = a
        case (nil, let b?): c.within = b
        case (let a?, let b?): c.within = a.intersection(b)
        }
        c.excluding = excluding.union(other.excluding)
        return c
    }

    /// The labels to split by: the bound less the exclusions, or nil when there is none to use.
    public var labels: [String]? {
        guard possible, let within else { return nil }
        let p = within.subtracting(excluding)
        return p.isEmpty ? nil : p.sorted()
    }
}

extension Expr {
    /// How this expression's result may be split (see `PartitionConstraint`).
    public var partitionConstraint: PartitionConstraint {
        switch self {
        case .number, .string: return .unbounded
        case .selector, .matrix: return .unbounded
        case .paren(let e), .negate(let e): return e.partitionConstraint
        case .subquery(let q): return q.expr.partitionConstraint
        case .call(let name, let args):
            switch name {
            case "time", "pi":
                return .unbounded  // the same for every series
            case "absent", "absent_over_time", "vector", "scalar":
                return .impossible  // a result without the inputs' labels, or one that reads them all
            case "label_replace", "label_join":
                var c = args[0].partitionConstraint
                if case .string(let dst) = args.count > 1 ? args[1] : .string("") { c.excluding.insert(dst) }
                return c
            case "histogram_quantile":
                var c = args.reduce(PartitionConstraint.unbounded) { $0.and($1.partitionConstraint) }
                c.excluding.insert("le")
                return c
            default:
                return args.reduce(PartitionConstraint.unbounded) { $0.and($1.partitionConstraint) }
            }
        case .aggregate(_, let e, let parameter, let grouping, let without):
            var c = e.partitionConstraint
            // A parameter read from series (topk(scalar(x), ...)) ties every output to every input.
            if let parameter, !parameter.selectors.isEmpty { return .impossible }
            if without {
                c.excluding.formUnion(grouping)
            } else {
                c = c.and(PartitionConstraint(within: Set(grouping)))
            }
            return c
        case .binary(_, let l, let r, let matching, _):
            var c = l.partitionConstraint.and(r.partitionConstraint)
            guard l.type == .instantVector && r.type == .instantVector else { return c }
            if let m = matching {
                if m.on {
                    c = c.and(PartitionConstraint(within: Set(m.labels)))
                } else {
                    c.excluding.formUnion(m.labels)
                }
                c.excluding.formUnion(m.include)
            }
            return c
        }
    }
}

extension RuleGroup {
    /// The labels every rule of the group (and each `resolve`) can be split by, without the
    /// labels rules set themselves; nil when the group must be evaluated whole (also when it
    /// has a `limit`, which counts every series or alert of a rule).
    public var partitionLabels: [String]? {
        if limit > 0 { return nil }
        var c = PartitionConstraint.unbounded
        c.excluding.formUnion(labels.keys)
        for rule in rules {
            c = c.and(rule.expr.partitionConstraint)
            if rule.expr.selectors.isEmpty { c.possible = false }
            for other in rule.expressions.dropFirst() { c = c.and(other.partitionConstraint) }
            c.excluding.formUnion(rule.labels.keys)
        }
        return c.labels
    }
}
