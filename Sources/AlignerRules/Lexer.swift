/// A token of PromQL, with its byte offset in the expression.
struct Token: Equatable {
    enum Kind: Equatable {
        case identifier  // metric names, label names, function names, keywords
        case metricIdentifier  // an identifier with ':' (recording-rule style name)
        case number(Double)
        case string(String)
        case duration(Int64)  // milliseconds
        case leftParen, rightParen, leftBrace, rightBrace, leftBracket, rightBracket
        case comma, colon, at
        case assign  // =  (in matchers)
        case equal, notEqual, regexMatch, regexNoMatch  // ==, !=, =~, !~
        case less, lessEqual, greater, greaterEqual
        case plus, minus, star, slash, percent, caret
        case end
    }

    var kind: Kind
    var text: Substring
    var offset: Int
}

/// A problem at a byte offset of an expression.
public struct PromQLError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Byte offset in the expression (0-based).
    public var offset: Int
    public var message: String

    public var description: String { message }
}

/// Splits a PromQL expression into tokens.
struct Lexer {
    let source: String
    let bytes: [UInt8]
    var i = 0

    init(_ source: String) {
        self.source = source
        bytes = Array(source.utf8)
    }

    static func isIdentifierStart(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c == 0x5f
    }

    static func isIdentifierPart(_ c: UInt8) -> Bool { isIdentifierStart(c) || (c >= 0x30 && c <= 0x39) }

    func text(_ start: Int, _ end: Int) -> Substring {
        let s = source.utf8.index(source.utf8.startIndex, offsetBy: start)
        let e = source.utf8.index(source.utf8.startIndex, offsetBy: end)
        return source[s..<e]
    }

    mutating func tokens() throws(PromQLError) -> [Token] {
        var out: [Token] = []
        while true {
            let t = try next()
            out.append(t)
            if t.kind == .end { return out }
        }
    }

    mutating func next() throws(PromQLError) -> Token {
        // Whitespace and comments.
        while i < bytes.count {
            let c = bytes[i]
            if c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d {
                i += 1
            } else if c == 0x23 {  // '#'
                while i < bytes.count && bytes[i] != 0x0a { i += 1 }
            } else {
                break
            }
        }
        let start = i
        guard i < bytes.count else { return Token(kind: .end, text: "", offset: i) }
        let c = bytes[i]
        func single(_ kind: Token.Kind, _ n: Int = 1) -> Token {
            i += n
            return Token(kind: kind, text: text(start, i), offset: start)
        }
        let next: UInt8 = i + 1 < bytes.count ? bytes[i + 1] : 0
        switch c {
        case UInt8(ascii: "("): return single(.leftParen)
        case UInt8(ascii: ")"): return single(.rightParen)
        case UInt8(ascii: "{"): return single(.leftBrace)
        case UInt8(ascii: "}"): return single(.rightBrace)
        case UInt8(ascii: "["): return single(.leftBracket)
        case UInt8(ascii: "]"): return single(.rightBracket)
        case UInt8(ascii: ","): return single(.comma)
        case UInt8(ascii: ":"): return single(.colon)
        case UInt8(ascii: "@"): return single(.at)
        case UInt8(ascii: "+"): return single(.plus)
        case UInt8(ascii: "-"): return single(.minus)
        case UInt8(ascii: "*"): return single(.star)
        case UInt8(ascii: "/"): return single(.slash)
        case UInt8(ascii: "%"): return single(.percent)
        case UInt8(ascii: "^"): return single(.caret)
        case UInt8(ascii: "="):
            if next == UInt8(ascii: "=") { return single(.equal, 2) }
            if next == UInt8(ascii: "~") { return single(.regexMatch, 2) }
            return single(.assign)
        case UInt8(ascii: "!"):
            if next == UInt8(ascii: "=") { return single(.notEqual, 2) }
            if next == UInt8(ascii: "~") { return single(.regexNoMatch, 2) }
            throw PromQLError(offset: start, message: "unexpected character after '!': want != or !~")
        case UInt8(ascii: "<"):
            return next == UInt8(ascii: "=") ? single(.lessEqual, 2) : single(.less)
        case UInt8(ascii: ">"):
            return next == UInt8(ascii: "=") ? single(.greaterEqual, 2) : single(.greater)
        case UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: "`"):
            return try string(quote: c)
        default:
            break
        }
        if (c >= 0x30 && c <= 0x39) || (c == UInt8(ascii: ".") && next >= 0x30 && next <= 0x39) {
            return try numberOrDuration()
        }
        if Lexer.isIdentifierStart(c) || c == UInt8(ascii: ":") {
            var hasColon = false
            while i < bytes.count && (Lexer.isIdentifierPart(bytes[i]) || bytes[i] == UInt8(ascii: ":")) {
                if bytes[i] == UInt8(ascii: ":") { hasColon = true }
                i += 1
            }
            let word = text(start, i)
            // Inf and NaN are numbers.
            switch word.lowercased() {
            case "inf": return Token(kind: .number(.infinity), text: word, offset: start)
            case "nan": return Token(kind: .number(.nan), text: word, offset: start)
            default: break
            }
            return Token(kind: hasColon ? .metricIdentifier : .identifier, text: word, offset: start)
        }
        throw PromQLError(offset: start, message: "unexpected character \(String(decoding: [c], as: UTF8.self).debugDescription)")
    }

    mutating func string(quote: UInt8) throws(PromQLError) -> Token {
        let start = i
        i += 1
        var value: [UInt8] = []
        while true {
            guard i < bytes.count else { throw PromQLError(offset: start, message: "unterminated quoted string") }
            let c = bytes[i]
            if c == quote {
                i += 1
                break
            }
            if quote != UInt8(ascii: "`") && c == 0x0a {
                throw PromQLError(offset: start, message: "unterminated quoted string")
            }
            if c == UInt8(ascii: "\\") && quote != UInt8(ascii: "`") {
                i += 1
                guard i < bytes.count else { throw PromQLError(offset: start, message: "unterminated quoted string") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "a"): value.append(0x07)
                case UInt8(ascii: "b"): value.append(0x08)
                case UInt8(ascii: "f"): value.append(0x0c)
                case UInt8(ascii: "n"): value.append(0x0a)
                case UInt8(ascii: "r"): value.append(0x0d)
                case UInt8(ascii: "t"): value.append(0x09)
                case UInt8(ascii: "v"): value.append(0x0b)
                case UInt8(ascii: "\\"): value.append(0x5c)
                case UInt8(ascii: "\""), UInt8(ascii: "'"):
                    guard e == quote else {
                        throw PromQLError(offset: i - 2, message: "unknown escape sequence \\\(String(UnicodeScalar(e)))")
                    }
                    value.append(e)
                case UInt8(ascii: "x"), UInt8(ascii: "u"), UInt8(ascii: "U"), UInt8(ascii: "0")...UInt8(ascii: "7"):
                    let (digits, radix): (Int, Int) =
                        e == UInt8(ascii: "x") ? (2, 16) : e == UInt8(ascii: "u") ? (4, 16) : e == UInt8(ascii: "U") ? (8, 16) : (3, 8)
                    let first = (e >= UInt8(ascii: "0") && e <= UInt8(ascii: "7")) ? i - 1 : i
                    guard first + digits <= bytes.count,
                          let code = UInt32(String(decoding: bytes[first..<(first + digits)], as: UTF8.self), radix: radix)
                    else { throw PromQLError(offset: i - 2, message: "invalid escape sequence in string") }
                    i = first + digits
                    if e == UInt8(ascii: "x") || radix == 8 {
                        guard code <= 0xff else { throw PromQLError(offset: i - 2, message: "octal escape value > 255") }
                        value.append(UInt8(code))
                    } else {
                        guard let scalar = UnicodeScalar(code) else {
                            throw PromQLError(offset: i - 2, message: "escape sequence is an invalid Unicode code point")
                        }
                        value.append(contentsOf: Array(String(Character(scalar)).utf8))
                    }
                default:
                    throw PromQLError(offset: i - 2, message: "unknown escape sequence \\\(String(UnicodeScalar(e)))")
                }
                continue
            }
            value.append(c)
            i += 1
        }
        guard let s = String(validating: value, as: UTF8.self) else {
            throw PromQLError(offset: start, message: "string is not valid UTF-8")
        }
        return Token(kind: .string(s), text: text(start, i), offset: start)
    }

    /// A number (decimal, hexadecimal, exponent) or a duration such as 5m, 1h30m, 250ms.
    mutating func numberOrDuration() throws(PromQLError) -> Token {
        let start = i
        if bytes[i] == UInt8(ascii: "0"), i + 1 < bytes.count, bytes[i + 1] | 0x20 == UInt8(ascii: "x") {
            i += 2
            while i < bytes.count, isHex(bytes[i]) { i += 1 }
            let t = text(start, i)
            guard let v = UInt64(t.dropFirst(2), radix: 16) else { throw PromQLError(offset: start, message: "bad number \"\(t)\"") }
            return Token(kind: .number(Double(v)), text: t, offset: start)
        }
        // Try a duration first: digits followed by a unit, repeated.
        var j = i
        var total: Int64 = 0
        var units = 0
        var overflow = false
        while j < bytes.count, bytes[j] >= 0x30 && bytes[j] <= 0x39 {
            var k = j
            var n: Int64 = 0
            while k < bytes.count, bytes[k] >= 0x30 && bytes[k] <= 0x39 {
                let (times10, o1) = n.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(Int64(bytes[k] - 0x30))
                overflow = overflow || o1 || o2
                n = sum
                k += 1
            }
            guard k < bytes.count else { break }
            let unit: (String, Int64)?
            if k + 1 < bytes.count, bytes[k] == UInt8(ascii: "m"), bytes[k + 1] == UInt8(ascii: "s") {
                unit = ("ms", 1)
            } else {
                switch bytes[k] {
                case UInt8(ascii: "s"): unit = ("s", 1000)
                case UInt8(ascii: "m"): unit = ("m", 60_000)
                case UInt8(ascii: "h"): unit = ("h", 3_600_000)
                case UInt8(ascii: "d"): unit = ("d", 86_400_000)
                case UInt8(ascii: "w"): unit = ("w", 604_800_000)
                case UInt8(ascii: "y"): unit = ("y", 31_536_000_000)
                default: unit = nil
                }
            }
            guard let unit else { break }
            let (part, o1) = n.multipliedReportingOverflow(by: unit.1)
            let (sum, o2) = total.addingReportingOverflow(part)
            overflow = overflow || o1 || o2
            total = sum
            units += 1
            j = k + unit.0.count
        }
        if units > 0, j >= bytes.count || !Lexer.isIdentifierPart(bytes[j]) {
            // As in Prometheus, a duration must fit in Go's time.Duration (int64 nanoseconds, ~292 years).
            if overflow || total > Int64.max / 1_000_000 {
                throw PromQLError(offset: start, message: "duration out of range: \"\(text(start, j))\"")
            }
            i = j
            return Token(kind: .duration(total), text: text(start, i), offset: start)
        }
        // A decimal number.
        while i < bytes.count, (bytes[i] >= 0x30 && bytes[i] <= 0x39) || bytes[i] == UInt8(ascii: ".") { i += 1 }
        if i < bytes.count, bytes[i] | 0x20 == UInt8(ascii: "e") {
            var k = i + 1
            if k < bytes.count, bytes[k] == UInt8(ascii: "+") || bytes[k] == UInt8(ascii: "-") { k += 1 }
            if k < bytes.count, bytes[k] >= 0x30 && bytes[k] <= 0x39 {
                i = k
                while i < bytes.count, bytes[i] >= 0x30 && bytes[i] <= 0x39 { i += 1 }
            }
        }
        let t = text(start, i)
        if i < bytes.count, Lexer.isIdentifierStart(bytes[i]) {
            throw PromQLError(offset: start, message: "bad number or duration syntax \"\(text(start, min(bytes.count, i + 1)))\"")
        }
        guard let v = Double(t) else { throw PromQLError(offset: start, message: "bad number \"\(t)\"") }
        return Token(kind: .number(v), text: t, offset: start)
    }

    func isHex(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c | 0x20 >= UInt8(ascii: "a") && c | 0x20 <= UInt8(ascii: "f"))
    }
}
