/// One label of a series: a name and a value, both UTF-8.
public struct Label: Hashable, Sendable, Comparable, Codable, CustomStringConvertible {
    /// The label name, for example `__name__` or `namespace`.
    public var name: String
    /// The label value.
    public var value: String

    /// Creates a label.
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    /// Labels order by name, then value, comparing UTF-8 bytes as Prometheus does.
    public static func < (lhs: Label, rhs: Label) -> Bool {
        if lhs.name != rhs.name { return lhs.name.utf8.lexicographicallyPrecedes(rhs.name.utf8) }
        return lhs.value.utf8.lexicographicallyPrecedes(rhs.value.utf8)
    }

    /// `name="value"`, the value quoted as Prometheus prints it.
    public var description: String { name + "=" + promQuoted(value) }
}

/// A string in double quotes as PromQL and Prometheus print it: `\\`, `\"`, `\n`, `\t` and `\r`
/// escaped.
public func promQuoted(_ s: String) -> String {
    "\"" + escaping(s, ["\\": "\\\\", "\"": "\\\"", "\n": "\\n", "\t": "\\t", "\r": "\\r"]) + "\""
}

/// `s` with each character `replacements` names replaced, and the others that `other` gives a
/// text for (nil: the character as it is).
public func escaping(
    _ s: String, _ replacements: [Unicode.Scalar: String], other: (Unicode.Scalar) -> String? = { _ in nil }
) -> String {
    var out = ""
    for c in s.unicodeScalars {
        if let r = replacements[c] ?? other(c) { out += r } else { out.unicodeScalars.append(c) }
    }
    return out
}

/// The reserved label that holds a series' metric name.
public let metricNameLabel = "__name__"

extension Array where Element == Label {
    /// The labels in Prometheus text form: `name{a="b",c="d"}`.
    public var promText: String {
        let name = first(where: { $0.name == metricNameLabel })?.value ?? ""
        let rest = filter { $0.name != metricNameLabel }.map(\.description).joined(separator: ",")
        return rest.isEmpty ? name : "\(name){\(rest)}"
    }
}
