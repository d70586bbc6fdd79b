/// PromQL functions as Prometheus 2.42 defines them: argument types and result type.
public struct FunctionSignature: Sendable {
    public var arguments: [ValueType]
    /// -1: fixed; 0: the last argument may repeat any number of times; n > 0: the last n are optional.
    public var optionalTrailing: Int
    public var returns: ValueType
    /// Whether Aligner evaluates it; others are a load-time error naming the function.
    public var supported: Bool
}

public enum Functions {
    static func f(_ a: [ValueType], _ r: ValueType = .instantVector, optional: Int = -1, supported: Bool = true) -> FunctionSignature {
        FunctionSignature(arguments: a, optionalTrailing: optional, returns: r, supported: supported)
    }

    /// Every function name the parser knows.
    public static let table: [String: FunctionSignature] = {
        var t: [String: FunctionSignature] = [:]
        let v = ValueType.instantVector, m = ValueType.rangeVector, s = ValueType.scalar, str = ValueType.string
        for name in ["abs", "ceil", "floor", "exp", "sqrt", "ln", "log2", "log10", "sgn", "timestamp", "sort", "sort_desc",
                     "absent", "deg", "rad", "acos", "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh", "sin",
                     "sinh", "tan", "tanh"] {
            t[name] = f([v])
        }
        for name in ["rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets", "absent_over_time",
                     "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
                     "stddev_over_time", "stdvar_over_time", "last_over_time", "present_over_time"] {
            t[name] = f([m])
        }
        for name in ["day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute", "month", "year"] {
            t[name] = f([v], optional: 1)
        }
        t["quantile_over_time"] = f([s, m])
        t["predict_linear"] = f([m, s])
        t["clamp"] = f([v, s, s])
        t["clamp_min"] = f([v, s])
        t["clamp_max"] = f([v, s])
        t["round"] = f([v, s], optional: 1)
        t["label_replace"] = f([v, str, str, str, str])
        t["label_join"] = f([v, str, str, str], optional: 0)
        t["histogram_quantile"] = f([s, v])
        t["scalar"] = f([v], s)
        t["vector"] = f([s])
        t["time"] = f([], s)
        t["pi"] = f([], s)
        t["holt_winters"] = f([m, s, s])
        for name in ["histogram_count", "histogram_sum", "histogram_fraction", "histogram_stddev", "histogram_stdvar"] {
            t[name] = f(name == "histogram_fraction" ? [s, s, v] : [v], supported: false)
        }
        return t
    }()
}
