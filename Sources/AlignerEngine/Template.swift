import Foundation

/// The part of Go's text/template that Prometheus rule labels and annotations use:
/// `{{ $labels.name }}`, `{{ $value }}`, `{{ $externalLabels.x }}`, string literals, and pipes
/// through humanize, humanize1024, humanizePercentage, humanizeDuration, printf, title, toUpper,
/// toLower, Go's `or`, and Prometheus' query functions `query`, `first`, `value` and `label`
/// (`{{ printf "up{job='%s'}" $labels.job | query | first | value }}`). Anything else (`with`,
/// `range`, `if`, ...) is an error that names it.
public struct AlertTemplate: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    enum Piece: Sendable {
        case text(String)
        case action([[String]])  // a pipeline: commands, each a list of words
    }

    let pieces: [Piece]

    public init(_ source: String) throws {
        var pieces: [Piece] = []
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            pieces.append(.text(String(rest[..<open.lowerBound])))
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw Failure(description: "unclosed action in template \"\(source)\"")
            }
            var inner = String(rest[open.upperBound..<close.lowerBound])
            if inner.hasPrefix("-") { inner.removeFirst() }
            if inner.hasSuffix("-") { inner.removeLast() }
            pieces.append(.action(try AlertTemplate.pipeline(inner)))
            rest = rest[close.upperBound...]
        }
        pieces.append(.text(String(rest)))
        self.pieces = pieces
    }

    static func pipeline(_ text: String) throws -> [[String]] {
        var commands: [[String]] = [[]]
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            if c == " " || c == "\t" || c == "\n" {
                i = text.index(after: i)
            } else if c == "|" {
                commands.append([])
                i = text.index(after: i)
            } else if c == "\"" || c == "`" {
                var j = text.index(after: i)
                var word = ""
                while j < text.endIndex, text[j] != c {
                    if text[j] == "\\", c == "\"", text.index(after: j) < text.endIndex {
                        j = text.index(after: j)
                        word.append(text[j] == "n" ? "\n" : text[j])
                    } else {
                        word.append(text[j])
                    }
                    j = text.index(after: j)
                }
                guard j < text.endIndex else { throw Failure(description: "unterminated string in template action \"\(text)\"") }
                commands[commands.count - 1].append("\u{1}" + word)  // marks a literal
                i = text.index(after: j)
            } else {
                var j = i
                while j < text.endIndex, !" \t\n|".contains(text[j]) { j = text.index(after: j) }
                commands[commands.count - 1].append(String(text[i..<j]))
                i = j
            }
        }
        for command in commands where command.isEmpty { throw Failure(description: "empty command in template action \"\(text)\"") }
        for command in commands {
            let head = command[0]
            if !head.hasPrefix("$") && !head.hasPrefix("\u{1}") && !AlertTemplate.functions.contains(head)
                && Double(head) == nil
            {
                throw Failure(description: "function \"\(head)\" not defined in templates Aligner supports")
            }
        }
        return commands
    }

    static let functions: Set<String> = ["humanize", "humanize1024", "humanizePercentage", "humanizeDuration", "printf",
                                         "title", "toUpper", "toLower", "query", "first", "value", "label", "or"]

    /// Runs a PromQL instant query for a template (`query`), at the evaluation's time.
    public typealias Query = (String) throws -> [VectorSample]

    /// Expands the template for one alert.
    public func render(
        labels: [String: String], value: Double, externalLabels: [String: String] = [:], externalURL: String = "",
        query: Query? = nil
    ) throws -> String {
        let data = TemplateData(labels: labels, value: value, external: externalLabels, externalURL: externalURL, query: query)
        var out = ""
        for piece in pieces {
            switch piece {
            case .text(let t): out += t
            case .action(let commands):
                var current: TemplateValue?
                for command in commands {
                    current = try evaluate(command, piped: current, data)
                }
                out += current?.text ?? ""
            }
        }
        return out
    }

    func term(_ word: String, _ data: TemplateData) throws -> TemplateValue {
        if word.hasPrefix("\u{1}") { return .string(String(word.dropFirst())) }
        if word == "$value" { return .number(data.value) }
        if word == "$externalURL" { return .string(data.externalURL) }
        if word.hasPrefix("$labels.") { return .string(data.labels[String(word.dropFirst(8))] ?? "") }
        if word.hasPrefix("$externalLabels.") { return .string(data.external[String(word.dropFirst(16))] ?? "") }
        if word == "$labels" || word == "$externalLabels" {
            // Go prints a map[string]string as map[k1:v1 k2:v2], keys sorted.
            let map = word == "$labels" ? data.labels : data.external
            return .string("map[" + map.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ") + "]")
        }
        if let d = Double(word) { return .number(d) }
        throw Failure(description: "unsupported template term \"\(word)\"")
    }

    func evaluate(_ command: [String], piped: TemplateValue?, _ data: TemplateData) throws -> TemplateValue {
        let head = command[0]
        var args = try command.dropFirst().map { try term($0, data) }
        if !AlertTemplate.functions.contains(head) {
            guard piped == nil else { throw Failure(description: "cannot pipe into \"\(head)\"") }
            return try term(head, data)
        }
        if let piped { args.append(piped) }
        func number(_ v: TemplateValue) throws -> Double {
            switch v {
            case .number(let d): return d
            case .string(let s):
                guard let d = Double(s) else { throw Failure(description: "cannot convert \"\(s)\" to a number") }
                return d
            case .samples, .sample:
                throw Failure(description: "cannot convert a query result to a number (pipe it through first and value)")
            }
        }
        guard let last = args.last else { throw Failure(description: "\"\(head)\" needs an argument") }
        switch head {
        case "humanize": return .string(humanize(try number(last)))
        case "humanize1024": return .string(humanize1024(try number(last)))
        case "humanizePercentage": return .string(goFormat("%.4g", try number(last) * 100) + "%")
        case "humanizeDuration": return .string(humanizeDuration(try number(last)))
        case "title": return .string(last.text.capitalized)
        case "toUpper": return .string(last.text.uppercased())
        case "toLower": return .string(last.text.lowercased())
        case "query":
            guard let query = data.query else { throw Failure(description: "query is not available here") }
            do { return .samples(try query(last.text)) } catch {
                throw Failure(description: "error calling query: \(error)")
            }
        case "first":
            guard case .samples(let samples) = last else { throw Failure(description: "first needs a query result") }
            guard let first = samples.first else { throw Failure(description: "error calling first: first() called on vector with no elements") }
            return .sample(first)
        case "value":
            guard case .sample(let sample) = last else { throw Failure(description: "value needs a sample (query | first)") }
            return .number(sample.value)
        case "label":
            guard args.count == 2, case .sample(let sample) = last else { throw Failure(description: "label needs a name and a sample") }
            return .string(sample.labels.value(args[0].text))
        case "or":
            // Go's builtin: the first non-empty argument, else the last.
            return args.first { $0.isTrue } ?? last
        case "printf":
            guard case .string(let format) = args[0] else { throw Failure(description: "printf needs a format string") }
            return .string(try printf(format, Array(args.dropFirst())))
        default: throw Failure(description: "function \"\(head)\" not defined")
        }
    }

    func printf(_ format: String, _ args: [TemplateValue]) throws -> String {
        var out = ""
        var i = format.startIndex
        var argIndex = 0
        while i < format.endIndex {
            let c = format[i]
            guard c == "%" else { out.append(c); i = format.index(after: i); continue }
            var j = format.index(after: i)
            guard j < format.endIndex else { out.append("%"); break }
            if format[j] == "%" { out.append("%"); i = format.index(after: j); continue }
            var spec = "%"
            while j < format.endIndex, "0123456789.-+ #".contains(format[j]) { spec.append(format[j]); j = format.index(after: j) }
            guard j < format.endIndex else { break }
            let verb = format[j]
            guard argIndex < args.count else { throw Failure(description: "printf: missing argument for %\(verb)") }
            let arg = args[argIndex]
            argIndex += 1
            switch verb {
            case "s", "v":
                if case .number(let d) = arg, verb == "v" { out += goDefault(d) } else { out += arg.text }
            case "d":
                out += String(format: spec + "lld", Int64(goConverting: try { () throws -> Double in
                    if case .number(let d) = arg { return d }
                    guard let d = Double(arg.text) else { throw Failure(description: "printf %d of \"\(arg.text)\"") }
                    return d
                }()))
            case "f", "e", "g", "F", "E", "G":
                let d: Double
                if case .number(let n) = arg { d = n } else if let n = Double(arg.text) { d = n } else {
                    throw Failure(description: "printf %\(verb) of \"\(arg.text)\"")
                }
                if (verb == "g" || verb == "G") && spec == "%" {
                    // Go's plain %g prints the shortest digits (as %v does), not C's six.
                    let text = goDefault(d)
                    out += verb == "G" ? text.uppercased() : text
                } else {
                    out += goFormat(spec + String(verb), d)
                }
            case "q":
                out += "\"" + arg.text.replacingOccurrences(of: "\"", with: "\\\"") + "\""
            default:
                throw Failure(description: "printf verb %\(verb) is not supported")
            }
            i = format.index(after: j)
        }
        return out
    }
}

/// What a template can read: the alert's labels and value, the external labels and URL.
struct TemplateData {
    var labels: [String: String]
    var value: Double
    var external: [String: String]
    var externalURL: String
    var query: AlertTemplate.Query?
}

enum TemplateValue {
    case string(String)
    case number(Double)
    /// What `query` returns, and one of its samples (`first`).
    case samples([VectorSample])
    case sample(VectorSample)

    /// Go's truth: not empty, not zero.
    var isTrue: Bool {
        switch self {
        case .string(let s): !s.isEmpty
        case .number(let d): d != 0
        case .samples(let v): !v.isEmpty
        case .sample: true
        }
    }

    var text: String {
        switch self {
        case .string(let s): s
        case .number(let d): goDefault(d)
        case .samples(let v): "[" + v.map { "\($0.labels.promText) \(goDefault($0.value))" }.joined(separator: " ") + "]"
        case .sample(let x): "\(x.labels.promText) \(goDefault(x.value))"
        }
    }
}

/// Go's `%v` for a float64: the shortest digits that round-trip, in exponent form when the
/// decimal exponent is below -4 or at least 6 (strconv's 'g' with shortest precision).
func goDefault(_ v: Double) -> String {
    if v.isNaN { return "NaN" }
    if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
    if v == 0 { return v.sign == .minus ? "-0" : "0" }
    // Swift also prints the shortest round-tripping digits; take them and the decimal exponent.
    let text = "\(Swift.abs(v))"
    var digits = ""
    var exponent = 0
    if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
        let mantissa = text[..<e]
        exponent = Int(text[text.index(after: e)...])!
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        digits = String(parts[0]) + (parts.count > 1 ? String(parts[1]) : "")
        exponent += parts[0].count - 1
    } else {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let whole = String(parts[0]), fraction = parts.count > 1 ? String(parts[1]) : ""
        if whole != "0" {
            digits = whole + fraction
            exponent = whole.count - 1
        } else {
            let zeros = fraction.prefix { $0 == "0" }.count
            digits = String(fraction.dropFirst(zeros))
            exponent = -zeros - 1
        }
    }
    while digits.count > 1 && digits.hasSuffix("0") { digits.removeLast() }
    while digits.count > 1 && digits.hasPrefix("0") { digits.removeFirst() }
    let sign = v < 0 ? "-" : ""
    if exponent < -4 || exponent >= 6 {
        let mantissa = digits.count > 1 ? "\(digits.first!).\(digits.dropFirst())" : digits
        return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + (Swift.abs(exponent) < 10 ? "0" : "") + "\(Swift.abs(exponent))"
    }
    if exponent < 0 { return sign + "0." + String(repeating: "0", count: -exponent - 1) + digits }
    if digits.count <= exponent + 1 { return sign + digits + String(repeating: "0", count: exponent + 1 - digits.count) }
    let point = digits.index(digits.startIndex, offsetBy: exponent + 1)
    return sign + digits[..<point] + "." + digits[point...]
}

/// Go's fmt for %g-family and %f verbs (%g drops trailing zeros and uses e+XX exponents).
func goFormat(_ spec: String, _ v: Double) -> String {
    if v.isNaN { return "NaN" }
    if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
    // C's printf agrees with Go's fmt for these verbs on finite values (e+06 exponents, %g without
    // trailing zeros); Go's spellings of NaN and infinities are handled above.
    return String(format: spec, v)
}

/// Divides by `base` while the value is at least `base`, naming each step with the next prefix.
func scaledUp(_ v: Double, base: Double, _ prefixes: [String]) -> String {
    var x = v
    var prefix = ""
    for p in prefixes where Swift.abs(x) >= base {
        prefix = p
        x /= base
    }
    return goFormat("%.4g", x) + prefix
}

/// Multiplies by 1000 while the value is below 1: milli, micro, nano, ...
func scaledDown(_ v: Double) -> String {
    var x = v
    var prefix = ""
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] where Swift.abs(x) < 1 {
        prefix = p
        x *= 1000
    }
    return goFormat("%.4g", x) + prefix
}

/// Prometheus' humanize: SI prefixes, 4 significant digits.
func humanize(_ v: Double) -> String {
    if v == 0 || v.isNaN || v.isInfinite { return goFormat("%.4g", v) }
    if Swift.abs(v) >= 1 { return scaledUp(v, base: 1000, ["k", "M", "G", "T", "P", "E", "Z", "Y"]) }
    return scaledDown(v)
}

func humanize1024(_ v: Double) -> String {
    if Swift.abs(v) <= 1 || v.isNaN || v.isInfinite { return goFormat("%.4g", v) }
    return scaledUp(v, base: 1024, ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"])
}

/// Prometheus' humanizeDuration: `1d 2h 3m 4s`, or ms/us/ns below a second.
func humanizeDuration(_ v: Double) -> String {
    if v.isNaN || v.isInfinite { return goFormat("%.4g", v) }
    if v == 0 { return "0s" }
    if Swift.abs(v) >= 1 {
        let sign = v < 0 ? "-" : ""
        let total = Swift.abs(v)
        let duration = Int64(goConverting: total)
        let seconds = duration % 60
        let minutes = duration / 60 % 60
        let hours = duration / 3600 % 24
        let days = duration / 86400
        if days != 0 { return "\(sign)\(days)d \(hours)h \(minutes)m \(seconds)s" }
        if hours != 0 { return "\(sign)\(hours)h \(minutes)m \(seconds)s" }
        if minutes != 0 { return "\(sign)\(minutes)m \(seconds)s" }
        return sign + goFormat("%.4g", total) + "s"
    }
    return scaledDown(v) + "s"
}
