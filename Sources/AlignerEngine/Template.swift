import AlignerCore
import AlignerRules
import Foundation

/// Go's text/template as Prometheus rule labels and annotations use it: actions with pipelines
/// (`{{ $value | humanize }}`), variables (`$labels`, `$value`, `$externalLabels`,
/// `$externalURL`, and `{{ $x := ... }}`), the dot and its fields (`.Labels.pod`, `.Value`),
/// `if`/`else if`/`else`, `with` and `range` (over a query's samples or a label map) up to `end`,
/// parenthesised pipelines, comments and `{{-`/`-}}` trimming; Go's builtins `and`, `or`, `not`,
/// `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `len`, `index`, `print`, `printf`, and Prometheus'
/// functions (humanize, humanize1024, humanizePercentage, humanizeDuration, humanizeTimestamp,
/// title, toUpper, toLower, match, reReplaceAll, stripPort, safeHtml, query, first, value, label,
/// sortByLabel, strvalue). Anything else is an error that names it, when the rule loads.
public struct AlertTemplate: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        /// The function that failed while the template ran, if a function did.
        var calling: String?

        init(description: String, calling: String? = nil) {
            self.description = description
            self.calling = calling
        }
    }

    /// One operand of a command.
    indirect enum Word: Sendable {
        case literal(TemplateValue)
        case variable(String, fields: [String])   // `$labels.pod`, `$` (the root)
        case dot(fields: [String])                // `.`, `.Labels.pod`
        case function(String)
        case pipeline(Pipeline)                   // `( ... )`
        case fields(Word, [String])               // `( ... ).Labels.pod`
    }

    struct Pipeline: Sendable {
        var declared: [String] = []               // `$x :=`, or `$k, $v :=` in a range
        var commands: [[Word]] = []
        /// Each command's place in the template (a byte offset) and its text, for Go's error
        /// messages (`template: __alert_X:1:118: executing "__alert_X" at <gt $value 1>: ...`).
        var places: [Int] = []
        var texts: [String] = []
    }

    /// A function that failed while the template ran, where it is written.
    struct CallFailure: Error {
        var place: Int
        var command: String
        var message: String
    }

    indirect enum Node: Sendable {
        case text(String)
        case action(Pipeline)
        /// `if`, `with` or `range`: the pipeline, what runs when it holds, what runs otherwise
        /// (`else`; an `else if` is an `if` node alone in it).
        case block(String, Pipeline, [Node], [Node])
    }

    let nodes: [Node]
    let source: String

    /// What is wrong with a template's text, or nil when it parses (for rule file checks).
    @Sendable public static func problem(_ source: String) -> String? {
        do {
            _ = try AlertTemplate(source)
            return nil
        } catch {
            return "\(error)"
        }
    }

    public init(_ source: String) throws {
        // Cut the text into literal text and actions, applying the trim markers.
        var items: [(isAction: Bool, text: String, offset: Int)] = []
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            var text = String(rest[..<open.lowerBound])
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw Failure(description: "unclosed action in template \"\(source)\"")
            }
            var inner = Substring(rest[open.upperBound..<close.lowerBound])
            // `{{- ` and ` -}}` (the dash beside whitespace; `{{-3}}` is the number -3).
            if inner.first == "-", inner.count == 1 || inner.dropFirst().first!.isWhitespace {
                inner = inner.dropFirst()
                while let last = text.last, last.isWhitespace { text.removeLast() }
            }
            var trimAfter = false
            if inner.last == "-", inner.dropLast().last?.isWhitespace == true {
                inner = inner.dropLast()
                trimAfter = true
            }
            items.append((false, text, 0))
            items.append((true, String(inner), source.utf8.distance(from: source.startIndex, to: inner.startIndex)))
            rest = rest[close.upperBound...]
            if trimAfter { rest = rest.drop { $0.isWhitespace } }
        }
        items.append((false, String(rest), 0))

        var index = 0
        func parseList(until ends: Set<String>) throws -> ([Node], String, Int) {
            var nodes: [Node] = []
            while index < items.count {
                let (isAction, text, offset) = items[index]
                index += 1
                guard isAction else {
                    if !text.isEmpty { nodes.append(.text(text)) }
                    continue
                }
                let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
                let at = offset + text.utf8.prefix { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }.count
                if trimmed.hasPrefix("/*") { continue }
                let keyword = trimmed.prefix { !$0.isWhitespace }
                switch keyword {
                case "end", "else":
                    guard ends.contains(String(keyword)) else { throw Failure(description: "unexpected {{\(keyword)}} in template") }
                    return (nodes, trimmed, at)
                case "if", "with", "range":
                    nodes.append(try parseBlock(String(keyword), trimmed.dropFirst(keyword.count), at: at + keyword.utf8.count))
                case "define", "template", "block", "break", "continue":
                    throw Failure(description: "\"\(keyword)\" is not supported in templates Aligner supports")
                default:
                    nodes.append(.action(try AlertTemplate.pipeline(trimmed, at: at)))
                }
            }
            guard ends.isEmpty else { throw Failure(description: "unexpected end of template: missing {{end}}") }
            return (nodes, "", 0)
        }
        func parseBlock(_ keyword: String, _ condition: Substring, at: Int) throws -> Node {
            let pipeline = try AlertTemplate.pipeline(String(condition), at: at)
            let (body, ending, endingAt) = try parseList(until: ["end", "else"])
            var otherwise: [Node] = []
            if ending != "end" {
                let afterElse = ending.dropFirst(4)
                let elseRest = afterElse.trimmingCharacters(in: .whitespaces)
                if elseRest.isEmpty {
                    let (nodes, final, _) = try parseList(until: ["end"])
                    guard final == "end" else { throw Failure(description: "expected {{end}}") }
                    otherwise = nodes
                } else if elseRest.hasPrefix("if ") || elseRest.hasPrefix("with ") {
                    let next = String(elseRest.prefix { !$0.isWhitespace })
                    // `else if c` is `else` holding one `if` whose `end` is this block's.
                    let restAt = endingAt + 4 + afterElse.utf8.prefix { $0 == 0x20 || $0 == 0x09 }.count
                    otherwise = [try parseBlock(next, elseRest.dropFirst(next.count), at: restAt + next.utf8.count)]
                    return .block(keyword, pipeline, body, otherwise)
                } else {
                    throw Failure(description: "unexpected \"\(elseRest)\" after else")
                }
            }
            return .block(keyword, pipeline, body, otherwise)
        }
        let (nodes, _, _) = try parseList(until: [])
        self.nodes = nodes
        self.source = source
    }

    /// Reads one pipeline: `[$a[, $b] :=] command | command ...`.
    /// An action's pipeline; `at` is where the text starts in the template (a byte offset).
    static func pipeline(_ text: String, at: Int = 0) throws -> Pipeline {
        let chars = Array(text)
        // The byte offset of each character, for the commands' places.
        var bytes: [Int] = [0]
        for c in chars { bytes.append(bytes.last! + c.utf8.count) }
        var i = 0
        func parse(closing: Character?) throws -> Pipeline {
            var p = Pipeline()
            var command: [Word] = []
            var raw: [String] = []   // the words as written, to find a declaration
            var start: Int?          // where the command's first word is
            func finishCommand(end: Int) throws {
                guard !command.isEmpty else { throw Failure(description: "empty command in template action \"\(text)\"") }
                p.commands.append(command)
                let first = start ?? end
                p.places.append(at + bytes[first])
                p.texts.append(String(chars[first..<end]).split(whereSeparator: { $0.isWhitespace }).joined(separator: " "))
                command = []
                start = nil
            }
            while i < chars.count {
                let c = chars[i]
                if c == " " || c == "\t" || c == "\n" || c == "\r" {
                    i += 1
                    continue
                }
                if start == nil && c != "|" && c != ")" { start = i }
                if c == "|" {
                    try finishCommand(end: i)
                    i += 1
                } else if c == ")" {
                    guard closing == ")" else { throw Failure(description: "unexpected \")\" in template action \"\(text)\"") }
                    try finishCommand(end: i)
                    i += 1
                    return p
                } else if c == "(" {
                    i += 1
                    let inner = try parse(closing: ")")
                    // `(query "up" | first).Labels.job`: fields of what the parentheses give.
                    var j = i
                    while j < chars.count, !" \t\n\r|()".contains(chars[j]) { j += 1 }
                    if j > i, chars[i] == "." {
                        command.append(.fields(.pipeline(inner), String(chars[i + 1..<j]).split(separator: ".").map(String.init)))
                        i = j
                    } else {
                        command.append(.pipeline(inner))
                    }
                } else if c == "\"" || c == "`" {
                    var j = i + 1
                    var word = ""
                    while j < chars.count, chars[j] != c {
                        if chars[j] == "\\", c == "\"", j + 1 < chars.count {
                            j += 1
                            switch chars[j] {
                            case "n": word.append("\n")
                            case "t": word.append("\t")
                            default: word.append(chars[j])
                            }
                        } else {
                            word.append(chars[j])
                        }
                        j += 1
                    }
                    guard j < chars.count else { throw Failure(description: "unterminated string in template action \"\(text)\"") }
                    command.append(.literal(.string(word)))
                    raw.append("\"")
                    i = j + 1
                } else {
                    var j = i
                    while j < chars.count, !" \t\n\r|()".contains(chars[j]) { j += 1 }
                    var word = String(chars[i..<j])
                    i = j
                    if word == ":=" || word == "=" {
                        // What came before were the declared variables.
                        guard p.commands.isEmpty, !raw.isEmpty, raw.allSatisfy({ $0.hasPrefix("$") }) else {
                            throw Failure(description: "bad declaration in template action \"\(text)\"")
                        }
                        p.declared = raw.map { $0.hasSuffix(",") ? String($0.dropLast()) : $0 }
                        command = []
                        raw = []
                        start = nil
                        continue
                    }
                    raw.append(word)
                    if word.hasSuffix(","), word.hasPrefix("$") { word.removeLast() }
                    command.append(try AlertTemplate.word(word, text))
                }
            }
            guard closing == nil else { throw Failure(description: "unclosed \"(\" in template action \"\(text)\"") }
            try finishCommand(end: i)
            return p
        }
        let p = try parse(closing: nil)
        for command in p.commands where command.count > 1 {
            guard case .function = command[0] else {
                throw Failure(description: "\(command.count - 1) arguments given to a value that is not a function in \"\(text)\"")
            }
        }
        return p
    }

    static func word(_ word: String, _ text: String) throws -> Word {
        if word.hasPrefix("$") {
            let parts = word.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            return .variable(parts[0], fields: Array(parts.dropFirst()))
        }
        if word.hasPrefix(".") {
            return .dot(fields: word == "." ? [] : word.dropFirst().split(separator: ".").map(String.init))
        }
        if word == "true" || word == "false" { return .literal(.bool(word == "true")) }
        // Go's constants: an int unless written with a point or an exponent.
        if !word.contains(where: { ".eEpP".contains($0) }) || word.lowercased().hasPrefix("0x") && !word.contains(where: { "pP.".contains($0) }),
           let n = goInteger(word) { return .literal(.int(n)) }
        if let d = Double(word) { return .literal(.number(d)) }
        if AlertTemplate.functions.contains(word) { return .function(word) }
        throw Failure(description: "function \"\(word)\" not defined in templates Aligner supports")
    }

    static let functions: Set<String> = [
        "humanize", "humanize1024", "humanizePercentage", "humanizeDuration", "humanizeTimestamp", "printf", "print",
        "title", "toUpper", "toLower", "query", "first", "value", "label", "sortByLabel", "strvalue", "or", "and", "not",
        "eq", "ne", "lt", "le", "gt", "ge", "len", "index", "match", "reReplaceAll", "stripPort", "safeHtml",
        "println", "html", "js", "urlquery", "slice", "args", "parseDuration", "pathPrefix",
    ]

    /// Runs a PromQL instant query for a template (`query`), at the evaluation's time.
    public typealias Query = (String) throws -> [VectorSample]

    /// Expands the template for one alert.
    /// Prometheus runs an alert's templates after four variable definitions
    /// (`{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}`),
    /// which count in the places its errors name.
    static let definitionsLength = 112

    /// Renders the template; with `name` (Prometheus' `__alert_<rule>`) a function's failure is
    /// worded as Go words it: `error executing template NAME: template: NAME:1:118: executing
    /// "NAME" at <gt $value 1>: error calling gt: incompatible types for comparison`.
    public func render(
        labels: [String: String], value: Double, externalLabels: [String: String] = [:], externalURL: String = "",
        query: Query? = nil, name: String? = nil
    ) throws -> String {
        do {
            return try expand(labels: labels, value: value, externalLabels: externalLabels, externalURL: externalURL, query: query)
        } catch let failure as CallFailure {
            guard let name else { throw Failure(description: failure.message) }
            let before = source.utf8.prefix(failure.place)
            let newlines = before.filter { $0 == 0x0A }.count
            let column = newlines == 0 ? AlertTemplate.definitionsLength + failure.place
                : failure.place - (before.lastIndex(of: 0x0A).map { before.distance(from: before.startIndex, to: $0) + 1 } ?? 0)
            throw Failure(description: "error executing template \(name): template: \(name):\(1 + newlines):\(column): executing \"\(name)\" at <\(failure.command)>: \(failure.message)")
        }
    }

    func expand(
        labels: [String: String], value: Double, externalLabels: [String: String], externalURL: String, query: Query?
    ) throws -> String {
        let data = TemplateData(labels: labels, value: value, external: externalLabels, externalURL: externalURL, query: query)
        if let plain = simpleExpansion(data) { return plain }
        let root = TemplateValue.record([
            "Labels": .labels(labels), "Value": .number(value), "ExternalLabels": .labels(externalLabels),
            "ExternalURL": .string(externalURL),
        ])
        var variables: [String: TemplateValue] = [
            "$": root, "$labels": .labels(labels), "$value": .number(value),
            "$externalLabels": .labels(externalLabels), "$externalURL": .string(externalURL),
        ]
        var out = ""
        try run(nodes, dot: root, &variables, data, into: &out)
        return out
    }

    /// Text with lone `$labels.x`, `$value` or `$externalLabels.x` actions, what most label and
    /// annotation values are, expanded without building the template's variables (templates are
    /// expanded for every alert at every evaluation); nil for anything else.
    func simpleExpansion(_ data: TemplateData) -> String? {
        var out = ""
        for node in nodes {
            guard case .action(let p) = node else {
                guard case .text(let t) = node else { return nil }
                out += t
                continue
            }
            guard p.declared.isEmpty, p.commands.count == 1, p.commands[0].count == 1,
                  case .variable(let name, let fields) = p.commands[0][0] else { return nil }
            switch (name, fields.count) {
            case ("$labels", 1): out += data.labels[fields[0]] ?? ""
            case ("$value", 0): out += goDefault(data.value)
            case ("$externalLabels", 1): out += data.external[fields[0]] ?? ""
            default: return nil
            }
        }
        return out
    }

    func run(_ nodes: [Node], dot: TemplateValue, _ scope: inout [String: TemplateValue], _ data: TemplateData, into out: inout String) throws {
        let saved = scope
        defer { scope = saved }   // variables live to the end of their block
        for node in nodes {
            switch node {
            case .text(let t):
                out += t
            case .action(let p):
                let v = try evaluate(p, dot: dot, &scope, data)
                if p.declared.isEmpty { out += v.text }
            case .block(let keyword, let p, let body, let otherwise):
                let v = try evaluate(p, dot: dot, &scope, data, declare: keyword != "range")
                switch keyword {
                case "range":
                    let elements = try v.elements()
                    if elements.isEmpty {
                        try run(otherwise, dot: dot, &scope, data, into: &out)
                    }
                    for (key, element) in elements {
                        var inner = scope
                        if p.declared.count == 1 { inner[p.declared[0]] = element }
                        if p.declared.count == 2 {
                            inner[p.declared[0]] = key
                            inner[p.declared[1]] = element
                        }
                        try run(body, dot: element, &inner, data, into: &out)
                    }
                case "with":
                    if v.isTrue { try run(body, dot: v, &scope, data, into: &out) } else { try run(otherwise, dot: dot, &scope, data, into: &out) }
                default:
                    try run(v.isTrue ? body : otherwise, dot: dot, &scope, data, into: &out)
                }
            }
        }
    }

    func evaluate(_ p: Pipeline, dot: TemplateValue, _ scope: inout [String: TemplateValue], _ data: TemplateData, declare: Bool = true) throws -> TemplateValue {
        var current: TemplateValue?
        for (k, command) in p.commands.enumerated() {
            do {
                current = try evaluate(command, piped: current, dot: dot, &scope, data)
            } catch let failure as Failure where failure.calling != nil {
                // A function's failure, where it is written (the innermost command that failed).
                throw CallFailure(place: p.places[k], command: p.texts[k], message: "error calling \(failure.calling!): \(failure.description)")
            }
        }
        let value = current ?? .string("")
        if declare, let name = p.declared.first { scope[name] = value }
        return value
    }

    func operand(_ word: Word, dot: TemplateValue, _ scope: inout [String: TemplateValue], _ data: TemplateData) throws -> TemplateValue {
        switch word {
        case .literal(let v): return v
        case .dot(let fields): return try dot.field(fields)
        case .variable(let name, let fields):
            guard let v = scope[name] else { throw Failure(description: "undefined variable \"\(name)\"") }
            return try v.field(fields)
        case .pipeline(let p): return try evaluate(p, dot: dot, &scope, data, declare: false)
        case .fields(let word, let fields): return try operand(word, dot: dot, &scope, data).field(fields)
        case .function(let name): return try call(name, [], data)
        }
    }

    func evaluate(_ command: [Word], piped: TemplateValue?, dot: TemplateValue, _ scope: inout [String: TemplateValue], _ data: TemplateData) throws -> TemplateValue {
        guard case .function(let name) = command[0] else {
            guard piped == nil else { throw Failure(description: "cannot pipe into a value") }
            return try operand(command[0], dot: dot, &scope, data)
        }
        var args = try command.dropFirst().map { try operand($0, dot: dot, &scope, data) }
        if let piped { args.append(piped) }
        do {
            return try call(name, args, data)
        } catch var failure as Failure {
            failure.calling = failure.calling ?? name
            throw failure
        }
    }

    func call(_ name: String, _ args: [TemplateValue], _ data: TemplateData) throws -> TemplateValue {
        func number(_ v: TemplateValue) throws -> Double {
            switch v {
            case .number(let d): return d
            case .int(let n): return Double(n)
            case .string(let s):
                guard let d = Double(s) else { throw Failure(description: "strconv.ParseFloat: parsing \"\(goQuoted(s, quote: "\""))\": invalid syntax") }
                return d
            default:
                throw Failure(description: "cannot convert \(v.text) to a number (a query result goes through first and value)")
            }
        }
        func count(_ n: Int) throws {
            guard args.count == n else { throw Failure(description: "wrong number of args for \(name): want \(n) got \(args.count)") }
        }
        switch name {
        case "and": guard !args.isEmpty else { break }; return args.first { !$0.isTrue } ?? args[args.count - 1]
        case "or": guard !args.isEmpty else { break }; return args.first { $0.isTrue } ?? args[args.count - 1]
        case "not": try count(1); return .bool(!args[0].isTrue)
        case "eq":
            guard args.count >= 2 else { break }
            return .bool(try args.dropFirst().contains { try TemplateValue.compare(args[0], $0) == 0 })
        case "ne", "lt", "le", "gt", "ge":
            try count(2)
            let c = try TemplateValue.compare(args[0], args[1])
            switch name {
            case "ne": return .bool(c != 0)
            case "lt": return .bool(c < 0)
            case "le": return .bool(c <= 0)
            case "gt": return .bool(c > 0)
            default: return .bool(c >= 0)
            }
        case "len": try count(1); return .int(Int64(try args[0].elements().count))
        case "index":
            try count(2)
            guard case .labels(let m) = args[0] else { throw Failure(description: "index of \(args[0].text): not a map") }
            return .string(m[args[1].text] ?? "")
        case "print":
            // Go's Sprint: a space between two operands when neither is a string.
            var out = ""
            for (i, a) in args.enumerated() {
                if i > 0, !a.isString, !args[i - 1].isString { out += " " }
                out += a.text
            }
            return .string(out)
        case "pathPrefix":
            // The path of the external URL, as Prometheus' web UI is served under it.
            return .string(URL(string: data.externalURL)?.path ?? "")
        case "println":
            // Go's Sprintln: a space between every two operands, and a newline.
            return .string(args.map(\.text).joined(separator: " ") + "\n")
        case "html", "js", "urlquery":
            // Go's builtins, over what Sprint makes of their arguments.
            let text = try call("print", args, data).text
            return .string(name == "html" ? goHTMLEscape(text) : name == "js" ? goJSEscape(text) : goQueryEscape(text))
        case "slice":
            // Of a string, by bytes as Go slices it: slice "abcdef" 1 3 is "bc".
            guard case .string(let text)? = args.first else { throw Failure(description: "can't slice item of type \(args.first?.goType ?? "nil")") }
            let bytes = Array(text.utf8)
            let bounds = try args.dropFirst().map { a -> Int in
                guard case .int(let n) = a, n >= 0, n <= bytes.count else { throw Failure(description: "index out of range: \(a.text)") }
                return Int(n)
            }
            guard bounds.count <= 2 else { throw Failure(description: "too many slice indexes: \(bounds.count)") }
            let from = bounds.first ?? 0, to = bounds.count > 1 ? bounds[1] : bytes.count
            guard from <= to else { throw Failure(description: "invalid slice index: \(from) > \(to)") }
            return .string(String(decoding: bytes[from..<to], as: UTF8.self))
        case "args":
            // Prometheus' args: its arguments as arg0, arg1, ... (for a template fed to itself).
            return .labels(Dictionary(uniqueKeysWithValues: args.enumerated().map { ("arg\($0.offset)", $0.element.text) }))
        case "printf":
            guard case .string(let format)? = args.first else { throw Failure(description: "printf needs a format string") }
            return .string(goSprintf(format, Array(args.dropFirst())))
        case "match":
            try count(2)
            return .bool(try TemplateValue.regex(args[0].text).firstMatch(in: args[1].text, range: NSRange(args[1].text.startIndex..., in: args[1].text)) != nil)
        case "reReplaceAll":
            try count(3)
            let input = args[2].text
            // Go's $1 and ${1} are NSRegularExpression's $1.
            let template = args[1].text.replacingOccurrences(of: #"\$\{(\d+)\}"#, with: "\\$$1", options: .regularExpression)
            return .string(try TemplateValue.regex(args[0].text).stringByReplacingMatches(
                in: input, range: NSRange(input.startIndex..., in: input), withTemplate: template))
        default:
            break
        }
        guard let last = args.last else { throw Failure(description: "\"\(name)\" needs an argument") }
        switch name {
        case "humanize": return .string(humanize(try number(last)))
        case "humanize1024": return .string(humanize1024(try number(last)))
        case "humanizePercentage": return .string(goFormat("%.4g", try number(last) * 100) + "%")
        case "humanizeDuration": return .string(humanizeDuration(try number(last)))
        case "humanizeTimestamp": return .string(try humanizeTimestamp(try number(last)))
        case "title": return .string(goTitle(last.text))
        case "toUpper": return .string(last.text.uppercased())
        case "toLower": return .string(last.text.lowercased())
        case "safeHtml": return .string(last.text)
        // Prometheus' strvalue: a sample's `__value__` label (a string query result's value).
        case "strvalue":
            guard case .sample(let sample) = last else { return .string(last.text) }
            return .string(sample.labels.value("__value__"))
        case "parseDuration":
            guard let ms = parseDurationMilliseconds(last.text) else {
                throw Failure(description: "not a valid duration string: \"\(last.text)\"")
            }
            return .number(Double(ms) / 1000)
        case "stripPort":
            let host = last.text
            if host.hasPrefix("["), let end = host.firstIndex(of: "]") { return .string(String(host[host.index(after: host.startIndex)..<end])) }
            if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") { return .string(String(host[..<colon])) }
            return .string(host)
        case "query":
            guard let query = data.query else { throw Failure(description: "query is not available here") }
            do { return .samples(try query(last.text)) } catch {
                throw Failure(description: "\(error)")
            }
        case "first":
            guard case .samples(let samples) = last else { throw Failure(description: "first needs a query result") }
            guard let first = samples.first else { throw Failure(description: "first() called on vector with no elements") }
            return .sample(first)
        case "value":
            guard case .sample(let sample) = last else { throw Failure(description: "value needs a sample (query | first)") }
            return .number(sample.value)
        case "label":
            guard args.count == 2, case .sample(let sample) = last else { throw Failure(description: "label needs a name and a sample") }
            return .string(sample.labels.value(args[0].text))
        case "sortByLabel":
            guard args.count == 2, case .samples(let samples) = last else { throw Failure(description: "sortByLabel needs a label name and a query result") }
            let name = args[0].text
            return .samples(samples.sorted { $0.labels.value(name) < $1.labels.value(name) })
        default: throw Failure(description: "function \"\(name)\" not defined")
        }
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

enum TemplateValue: Sendable {
    case string(String)
    /// A float64: `$value`, a sample's value, a literal with a point or an exponent.
    case number(Double)
    /// An int: a literal without them, `len`, a `range` index.
    case int(Int64)
    case bool(Bool)
    /// A label map (`$labels`, `.Labels`).
    case labels([String: String])
    /// The root data (`.Labels`, `.Value`, ...).
    case record([String: TemplateValue])
    /// What `query` returns, and one of its samples (`first`, or the dot in a `range`).
    case samples([VectorSample])
    case sample(VectorSample)

    /// Go's truth: not empty, not zero, not false.
    var isTrue: Bool {
        switch self {
        case .string(let s): !s.isEmpty
        case .number(let d): d != 0
        case .int(let n): n != 0
        case .bool(let b): b
        case .labels(let m): !m.isEmpty
        case .record: true
        case .samples(let v): !v.isEmpty
        case .sample: true
        }
    }

    var isString: Bool { if case .string = self { true } else { false } }

    /// The Go type Prometheus' templates hold this as, as fmt names it (`%!d(float64=2.5)`).
    var goType: String {
        switch self {
        case .string: "string"
        case .number: "float64"
        case .int: "int"
        case .bool: "bool"
        case .labels: "map[string]string"
        case .record: "struct"
        case .samples: "template.queryResult"
        case .sample: "*template.sample"
        }
    }

    var text: String {
        switch self {
        case .string(let s): s
        case .number(let d): goDefault(d)
        case .int(let n): String(n)
        case .bool(let b): b ? "true" : "false"
        case .labels(let m): "map[" + m.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ") + "]"
        case .record(let r): "{" + r.keys.sorted().map { r[$0]!.text }.joined(separator: " ") + "}"
        case .samples(let v): "[" + v.map { "\($0.labels.promText) \(goDefault($0.value))" }.joined(separator: " ") + "]"
        case .sample(let x): "\(x.labels.promText) \(goDefault(x.value))"
        }
    }

    /// `.a.b` from this value: a label map's entries ("" when missing, as Prometheus' templates
    /// have `missingkey=zero`), a sample's `Labels` and `Value`, the root's fields.
    func field(_ path: [String]) throws -> TemplateValue {
        var v = self
        for name in path {
            switch v {
            case .labels(let m): v = .string(m[name] ?? "")
            case .record(let r):
                guard let f = r[name] else { throw AlertTemplate.Failure(description: "can't evaluate field \(name)") }
                v = f
            case .sample(let s):
                switch name {
                case "Labels": v = .labels(Dictionary(s.labels.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 }))
                case "Value": v = .number(s.value)
                default: throw AlertTemplate.Failure(description: "can't evaluate field \(name) of a sample")
                }
            default:
                throw AlertTemplate.Failure(description: "can't evaluate field \(name) in \(v.text)")
            }
        }
        return v
    }

    /// What `range` and `len` walk: a query's samples, a label map's values by key.
    func elements() throws -> [(TemplateValue, TemplateValue)] {
        switch self {
        case .samples(let v): return v.enumerated().map { (.int(Int64($0.offset)), .sample($0.element)) }
        case .labels(let m): return m.sorted { $0.key < $1.key }.map { (.string($0.key), .string($0.value)) }
        case .string(let s): return s.utf8.enumerated().map { (.int(Int64($0.offset)), .int(Int64($0.element))) }
        default: throw AlertTemplate.Failure(description: "can't iterate over \(text)")
        }
    }

    /// Go's comparison of two basic values: numbers with numbers, strings with strings.
    static func compare(_ a: TemplateValue, _ b: TemplateValue) throws -> Int {
        switch (a, b) {
        case (.number(let x), .number(let y)): return x < y ? -1 : (x > y ? 1 : 0)
        case (.int(let x), .int(let y)): return x < y ? -1 : (x > y ? 1 : 0)
        case (.string(let x), .string(let y)): return x < y ? -1 : (x > y ? 1 : 0)
        case (.bool(let x), .bool(let y)): return x == y ? 0 : (x ? 1 : -1)
        default: throw AlertTemplate.Failure(description: "incompatible types for comparison")
        }
    }

    /// A Go (RE2) pattern as NSRegularExpression reads it.
    static func regex(_ pattern: String) throws -> NSRegularExpression {
        do { return try NSRegularExpression(pattern: pattern) } catch {
            throw AlertTemplate.Failure(description: "error parsing regexp: \(pattern)")
        }
    }
}

/// The shortest decimal digits that read back as `v` (finite, not zero), without leading or
/// trailing zeros, and the decimal exponent of the first: 1234.5 is ("12345", 3).
func shortestDigits(_ v: Double) -> (digits: String, exponent: Int) {
    // Swift prints the same shortest round-tripping digits as Go's strconv.
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
    return (digits, exponent)
}

/// Go's strconv 'e' format with the shortest digits: `2.5e+00`, `1e-07`, `NaN`, `+Inf`.
public func goExponentFormat(_ v: Double) -> String {
    if v.isNaN { return "NaN" }
    if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
    let sign = v.sign == .minus ? "-" : ""
    if v == 0 { return sign + "0e+00" }
    let (digits, exponent) = shortestDigits(v)
    let mantissa = digits.count > 1 ? "\(digits.first!).\(digits.dropFirst())" : digits
    return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + (Swift.abs(exponent) < 10 ? "0" : "") + "\(Swift.abs(exponent))"
}

/// Go's `%v` for a float64: the shortest digits that round-trip, in exponent form when the
/// decimal exponent is below -4 or at least 6 (strconv's 'g' with shortest precision).
func goDefault(_ v: Double) -> String {
    if v.isNaN || v.isInfinite { return goExponentFormat(v) }
    if v == 0 { return v.sign == .minus ? "-0" : "0" }
    let (digits, exponent) = shortestDigits(v)
    if exponent < -4 || exponent >= 6 { return goExponentFormat(v) }
    let sign = v < 0 ? "-" : ""
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

/// Prometheus' humanizeTimestamp: the Unix time in seconds as Go prints a UTC time, to the
/// millisecond (`2021-01-01 00:00:00.5 +0000 UTC`).
func humanizeTimestamp(_ v: Double) throws -> String {
    if v.isNaN || v.isInfinite { return goFormat("%.4g", v) }
    let nanoseconds = v * 1e9
    guard nanoseconds < 9.2e18, nanoseconds > -9.2e18 else {
        throw AlertTemplate.Failure(description: "\(goDefault(v)) cannot be represented as a nanoseconds timestamp since it overflows int64")
    }
    // Whole milliseconds, as Prometheus' model.Time holds them (truncated toward zero).
    let ms = Int64(nanoseconds) / 1_000_000
    var seconds = ms / 1000, milli = ms % 1000
    if milli < 0 { milli += 1000; seconds -= 1 }
    var t = time_t(seconds)
    var parts = tm()
    gmtime_r(&t, &parts)
    var text = String(format: "%04d-%02d-%02d %02d:%02d:%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    if milli != 0 {
        var fraction = String(format: "%03d", Int(milli))
        while fraction.hasSuffix("0") { fraction.removeLast() }
        text += "." + fraction
    }
    return text + " +0000 UTC"
}

/// A Go integer literal: decimal, `0x`, `0o`, `0b` or a leading `0` for octal, `_` between digits.
public func goInteger(_ text: String) -> Int64? {
    var t = Substring(text.replacingOccurrences(of: "_", with: ""))
    var negative = false
    if let first = t.first, first == "-" || first == "+" { negative = first == "-"; t = t.dropFirst() }
    let lower = t.lowercased()
    let value: Int64?
    if lower.hasPrefix("0x") { value = Int64(lower.dropFirst(2), radix: 16) }
    else if lower.hasPrefix("0o") { value = Int64(lower.dropFirst(2), radix: 8) }
    else if lower.hasPrefix("0b") { value = Int64(lower.dropFirst(2), radix: 2) }
    else if lower.count > 1 && lower.hasPrefix("0") { value = Int64(lower.dropFirst(), radix: 8) }
    else { value = Int64(lower) }
    return value.map { negative ? -$0 : $0 }
}

/// Go's template.HTMLEscapeString.
func goHTMLEscape(_ s: String) -> String {
    escaping(s, ["<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&#39;", "\"": "&#34;", "\u{0}": "\u{FFFD}"])
}

/// Go's template.JSEscapeString: quotes, the backslash and what could close a script escaped,
/// characters that do not print as `\uXXXX`.
func goJSEscape(_ s: String) -> String {
    escaping(s, ["\\": "\\\\", "'": "\\'", "\"": "\\\"", "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"]) { c in
        c.value < 0x20 || c.value == 0x7F || c.properties.generalCategory == .control ? String(format: "\\u%04X", c.value) : nil
    }
}

/// Go's url.QueryEscape: letters, digits and `-_.~` as they are, a space as `+`, every other
/// byte as `%XX`.
func goQueryEscape(_ s: String) -> String {
    var out = ""
    for b in s.utf8 {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(b))
        case UInt8(ascii: " "): out += "+"
        default: out += String(format: "%%%02X", b)
        }
    }
    return out
}

/// Go's strings.Title: every letter that follows a separator (a space or ASCII punctuation)
/// upper-cased, the others left as they are.
func goTitle(_ s: String) -> String {
    var out = ""
    var previous: Character = " "
    for c in s {
        let separator = previous.isASCII ? !(previous.isLetter || previous.isNumber || previous == "_") : previous.isWhitespace
        out += separator ? c.uppercased() : String(c)
        previous = c
    }
    return out
}
