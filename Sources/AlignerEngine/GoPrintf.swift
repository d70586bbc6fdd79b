import AlignerCore
import Foundation

/// Go's `fmt.Sprintf` over template values, as a Prometheus template's `printf` prints them.
/// It never fails: a verb that does not suit its value prints `%!d(float64=2.5)`, a missing value
/// `%!d(MISSING)`, values left over `%!(EXTRA int=4, string=x)`. `$value` is a float64 (so
/// `printf "%d" $value` is such a mismatch in Prometheus too), a literal without `.`, `e` or `p`
/// an int, `len` an int.
func goSprintf(_ format: String, _ args: [TemplateValue]) -> String {
    let chars = Array(format.unicodeScalars)
    var out = ""
    var i = 0
    var next = 0
    while i < chars.count {
        guard chars[i] == "%" else {
            out.unicodeScalars.append(chars[i])
            i += 1
            continue
        }
        i += 1
        var spec = GoSpec()
        flags: while i < chars.count {
            switch chars[i] {
            case "+": spec.plus = true
            case "-": spec.minus = true
            case "#": spec.sharp = true
            case " ": spec.space = true
            case "0": spec.zero = true
            default: break flags
            }
            i += 1
        }
        func number(star: (Int) -> Void) -> Int? {
            if i < chars.count, chars[i] == "*" {
                i += 1
                if next < args.count, case .int(let n) = args[next] { next += 1; star(Int(n)); return Int(n) }
                next += 1
                out += "%!(BADWIDTH)"
                return nil
            }
            var n: Int?
            while i < chars.count, let d = Int(String(chars[i])) {
                n = (n ?? 0) * 10 + d
                i += 1
            }
            return n
        }
        spec.width = number { if $0 < 0 { spec.minus = true } }.map { abs($0) }
        if i < chars.count, chars[i] == "." {
            i += 1
            spec.precision = number { _ in } ?? 0
        }
        guard i < chars.count else {
            out += "%!(NOVERB)"
            break
        }
        let verb = Character(chars[i])
        i += 1
        if verb == "%" { out += "%"; continue }
        guard next < args.count else {
            out += "%!\(verb)(MISSING)"
            continue
        }
        out += goFormatValue(args[next], verb, spec)
        next += 1
    }
    if next < args.count {
        out += "%!(EXTRA " + args[next...].map { "\($0.goType)=\(goFormatValue($0, "v", GoSpec()))" }.joined(separator: ", ") + ")"
    }
    return out
}

/// A verb's flags, width and precision.
struct GoSpec {
    var plus = false, minus = false, sharp = false, space = false, zero = false
    var width: Int?
    var precision: Int?

    /// `text` padded to the width: spaces on the left (on the right with `-`), or zeros after
    /// the sign for a number with `0`.
    func pad(_ text: String, numeric: Bool = false) -> String {
        guard let width, text.count < width else { return text }
        let fill = width - text.count
        if minus { return text + String(repeating: " ", count: fill) }
        if zero && numeric {
            if let first = text.first, "+- ".contains(first) {
                return String(first) + String(repeating: "0", count: fill) + text.dropFirst()
            }
            return String(repeating: "0", count: fill) + text
        }
        return String(repeating: " ", count: fill) + text
    }

    /// The C format of these flags, width and precision with `verb`.
    func c(_ verb: String) -> String {
        var s = "%"
        if plus { s += "+" }
        if minus { s += "-" }
        if sharp { s += "#" }
        if space { s += " " }
        if zero && !minus { s += "0" }
        if let width { s += "\(width)" }
        if let precision { s += ".\(precision)" }
        return s + verb
    }
}

func goFormatValue(_ value: TemplateValue, _ verb: Character, _ spec: GoSpec) -> String {
    switch value {
    case .int(let n): return goFormatInt(n, verb, spec) ?? goBadVerb(value, verb, spec)
    case .number(let d): return goFormatFloat(d, verb, spec) ?? goBadVerb(value, verb, spec)
    case .string(let s): return goFormatString(s, verb, spec) ?? goBadVerb(value, verb, spec)
    case .bool(let b):
        guard verb == "v" || verb == "t" else { return goBadVerb(value, verb, spec) }
        return spec.pad(b ? "true" : "false")
    case .labels(let m):
        // A map prints each key and value with the verb: map[a:x b:y].
        return "map[" + m.sorted { $0.key < $1.key }.map {
            goFormatValue(.string($0.key), verb, spec) + ":" + goFormatValue(.string($0.value), verb, spec)
        }.joined(separator: " ") + "]"
    default:
        return spec.pad(value.text)
    }
}

/// `%!d(float64=2.5)`: the verb, the value's Go type, and the value as `%v` with the same flags.
func goBadVerb(_ value: TemplateValue, _ verb: Character, _ spec: GoSpec) -> String {
    "%!\(verb)(\(value.goType)=\(goFormatValue(value, "v", spec)))"
}

func goFormatInt(_ n: Int64, _ verb: Character, _ spec: GoSpec) -> String? {
    switch verb {
    case "c": return spec.pad(Unicode.Scalar(UInt32(truncatingIfNeeded: n)).map { String(Character($0)) } ?? "\u{FFFD}")
    case "q":
        let scalar = Unicode.Scalar(UInt32(truncatingIfNeeded: n)) ?? "\u{FFFD}"
        return spec.pad(scalar == "'" ? "'\\''" : "'" + goQuoted(String(Character(scalar)), quote: "'") + "'")
    case "U":
        var text = "U+" + String(format: "%04X", n)
        if spec.sharp, let scalar = Unicode.Scalar(UInt32(truncatingIfNeeded: n)) { text += " '\(Character(scalar))'" }
        return spec.pad(text)
    default: break
    }
    let base: Int, prefix: String
    switch verb {
    case "v", "d": (base, prefix) = (10, "")
    case "b": (base, prefix) = (2, spec.sharp ? "0b" : "")
    case "o": (base, prefix) = (8, spec.sharp ? "0" : "")
    case "O": (base, prefix) = (8, "0o")
    case "x": (base, prefix) = (16, spec.sharp ? "0x" : "")
    case "X": (base, prefix) = (16, spec.sharp ? "0X" : "")
    default: return nil
    }
    var digits = String(n.magnitude, radix: base, uppercase: verb == "X")
    if let precision = spec.precision {
        if precision == 0 && n == 0 { digits = "" }
        if digits.count < precision { digits = String(repeating: "0", count: precision - digits.count) + digits }
    }
    if !(prefix == "0" && digits.hasPrefix("0")) { digits = prefix + digits }
    let sign = n < 0 ? "-" : spec.plus ? "+" : spec.space ? " " : ""
    var padding = spec
    if spec.precision != nil { padding.zero = false }
    return padding.pad(sign + digits, numeric: true)
}

func goFormatFloat(_ d: Double, _ verb: Character, _ spec: GoSpec) -> String? {
    guard "vbeEfFgGxX".contains(verb) else { return nil }
    if !d.isFinite {
        // NaN has no sign unless + or space asks for one; neither is padded with zeros.
        var text = d.isNaN ? "NaN" : (d > 0 ? "+Inf" : "-Inf")
        if d.isNaN && (spec.plus || spec.space) { text = (spec.plus ? "+" : " ") + text }
        if d == .infinity && !spec.plus { text = spec.space ? " Inf" : "+Inf" }
        return spec.pad(text)
    }
    let signed = { (text: String) -> String in
        text.hasPrefix("-") ? text : (spec.plus ? "+" : spec.space ? " " : "") + text
    }
    switch verb {
    case "v", "g", "G":
        guard spec.precision != nil || spec.sharp else {
            // The shortest digits that read back as the value.
            let text = goDefault(d)
            return spec.pad(signed(verb == "G" ? text.uppercased() : text), numeric: true)
        }
        return String(format: spec.c(verb == "G" ? "G" : "g"), d)
    case "b":
        let bits = d.bitPattern
        var exponent = Int((bits >> 52) & 0x7FF)
        var mantissa = bits & ((1 << 52) - 1)
        if exponent == 0 { exponent = 1 } else { mantissa |= 1 << 52 }
        exponent -= 1023 + 52
        return spec.pad(signed((d.sign == .minus ? "-" : "") + "\(mantissa)p" + (exponent >= 0 ? "+" : "") + "\(exponent)"), numeric: true)
    case "x", "X":
        // C's %a with Go's exponent of at least two digits.
        var text = String(format: spec.c("a"), d)
        if let p = text.lastIndex(of: "p") {
            let sign = text[text.index(after: p)]
            let digits = text[text.index(p, offsetBy: 2)...]
            if digits.count < 2 { text = text[...p] + String(sign) + "0" + digits }
        }
        return verb == "X" ? text.uppercased() : text
    default:
        return String(format: spec.c(verb == "F" ? "f" : String(verb)), d)
    }
}

func goFormatString(_ s: String, _ verb: Character, _ spec: GoSpec) -> String? {
    switch verb {
    case "v", "s":
        return spec.pad(spec.precision.map { String(s.prefix($0)) } ?? s)
    case "q":
        let text = spec.precision.map { String(s.prefix($0)) } ?? s
        if spec.sharp, !text.contains("`"), text.unicodeScalars.allSatisfy({ $0 == "\t" || ($0.value >= 0x20 && $0.value != 0x7F && $0 != "\u{FEFF}") }) {
            return spec.pad("`" + text + "`")
        }
        return spec.pad("\"" + goQuoted(text, quote: "\"") + "\"")
    case "x", "X":
        var bytes = Array(s.utf8)
        if let precision = spec.precision { bytes = Array(bytes.prefix(precision)) }
        let hex = bytes.map { String(format: verb == "x" ? "%02x" : "%02X", $0) }
        let prefix = spec.sharp ? (verb == "x" ? "0x" : "0X") : ""
        if spec.space { return spec.pad(hex.map { prefix + $0 }.joined(separator: " ")) }
        return spec.pad(prefix + hex.joined())
    default:
        return nil
    }
}

/// Go's strconv.Quote without the quotes: escapes for the quote, the backslash and control
/// characters; other printable characters as they are.
func goQuoted(_ s: String, quote: Character) -> String {
    var replacements: [Unicode.Scalar: String] = [
        "\u{07}": "\\a", "\u{08}": "\\b", "\u{0C}": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\u{0B}": "\\v", "\\": "\\\\",
    ]
    replacements[quote.unicodeScalars.first!] = "\\" + String(quote)
    return escaping(s, replacements) { c in
        if c.value >= 0x20 && c.value < 0x7F { return nil }
        switch c.properties.generalCategory {
        case .control, .format, .unassigned, .surrogate, .privateUse, .lineSeparator, .paragraphSeparator, .spaceSeparator:
            return c.value < 0x80 ? String(format: "\\x%02x", c.value)
                : c.value < 0x10000 ? String(format: "\\u%04x", c.value) : String(format: "\\U%08x", c.value)
        default:
            return nil
        }
    }
}
