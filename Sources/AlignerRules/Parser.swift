import AlignerCore

/// Parses PromQL (Prometheus 2.42's grammar) into an `Expr`, checking types as Prometheus does.
/// Constructs Aligner does not evaluate (native-histogram functions) are errors that name them.
public struct PromQLParser {
    var tokens: [Token]
    var position = 0
    let source: String

    /// Parses `source`; errors carry the byte offset of the problem.
    public static func parse(_ source: String) throws(PromQLError) -> Expr {
        var lexer = Lexer(source)
        var parser = PromQLParser(tokens: try lexer.tokens(), source: source)
        if parser.peek.kind == .end { throw PromQLError(offset: 0, message: "no expression found in input") }
        let expr = try parser.expression(minimumPrecedence: 1)
        guard parser.peek.kind == .end else {
            throw PromQLError(offset: parser.peek.offset, message: "unexpected \(parser.describe(parser.peek))")
        }
        return expr
    }

    var peek: Token { tokens[position] }

    mutating func advance() -> Token {
        let t = tokens[position]
        if position < tokens.count - 1 { position += 1 }
        return t
    }

    func describe(_ t: Token) -> String {
        switch t.kind {
        case .end: "end of input"
        case .identifier, .metricIdentifier: "identifier \"\(t.text)\""
        case .number: "number \"\(t.text)\""
        case .string: "string \(t.text)"
        case .duration: "duration \"\(t.text)\""
        default: "\"\(t.text)\""
        }
    }

    mutating func expect(_ kind: Token.Kind, _ what: String) throws(PromQLError) -> Token {
        guard peek.kind == kind else { throw PromQLError(offset: peek.offset, message: "unexpected \(describe(peek)), want \(what)") }
        return advance()
    }

    // MARK: Binary operators

    func binaryOperator(_ t: Token) -> BinaryOp? {
        switch t.kind {
        case .plus: .add
        case .minus: .subtract
        case .star: .multiply
        case .slash: .divide
        case .percent: .modulo
        case .caret: .power
        case .equal: .equal
        case .notEqual: .notEqual
        case .less: .less
        case .lessEqual: .lessEqual
        case .greater: .greater
        case .greaterEqual: .greaterEqual
        case .identifier:
            switch t.text.lowercased() {
            case "and": .and
            case "or": .or
            case "unless": .unless
            case "atan2": .atan2
            default: nil
            }
        default: nil
        }
    }

    mutating func expression(minimumPrecedence: Int) throws(PromQLError) -> Expr {
        var left = try unary()
        while let op = binaryOperator(peek), op.precedence >= minimumPrecedence {
            let opToken = advance()
            var returnBool = false
            if peek.kind == .identifier, peek.text.lowercased() == "bool" {
                guard op.isComparison else {
                    throw PromQLError(offset: peek.offset, message: "bool modifier can only be used on comparison operators")
                }
                _ = advance()
                returnBool = true
            }
            let matching = try vectorMatching(op)
            // ^ is right-associative; every other operator is left-associative.
            let right = try expression(minimumPrecedence: op == .power ? op.precedence : op.precedence + 1)
            left = try checkBinary(op, left, right, matching: matching, returnBool: returnBool, at: opToken.offset)
        }
        return left
    }

    mutating func vectorMatching(_ op: BinaryOp) throws(PromQLError) -> VectorMatching? {
        var matching: VectorMatching?
        if peek.kind == .identifier, ["on", "ignoring"].contains(peek.text.lowercased()) {
            let on = advance().text.lowercased() == "on"
            matching = VectorMatching(on: on, labels: try labelList())
        }
        if peek.kind == .identifier, ["group_left", "group_right"].contains(peek.text.lowercased()) {
            let t = advance()
            if op.isSetOperator {
                throw PromQLError(offset: t.offset, message: "no grouping allowed for \"\(op.rawValue)\" operation")
            }
            var m = matching ?? VectorMatching()
            m.cardinality = t.text.lowercased() == "group_left" ? .manyToOne : .oneToMany
            if peek.kind == .leftParen { m.include = try labelList() }
            matching = m
        }
        return matching
    }

    mutating func labelList() throws(PromQLError) -> [String] {
        _ = try expect(.leftParen, "\"(\"")
        var labels: [String] = []
        while peek.kind != .rightParen {
            let t = advance()
            guard t.kind == .identifier else { throw PromQLError(offset: t.offset, message: "unexpected \(describe(t)) in grouping opts, want label") }
            labels.append(String(t.text))
            if peek.kind == .comma { _ = advance() } else { break }
        }
        _ = try expect(.rightParen, "\")\" or \",\" in label list")
        return labels
    }

    func checkBinary(
        _ op: BinaryOp, _ l: Expr, _ r: Expr, matching: VectorMatching?, returnBool: Bool, at offset: Int
    ) throws(PromQLError) -> Expr {
        for side in [l, r] where side.type != .scalar && side.type != .instantVector {
            throw PromQLError(offset: offset, message: "binary expression must contain only scalar and instant vector types")
        }
        if op.isComparison && l.type == .scalar && r.type == .scalar && !returnBool {
            throw PromQLError(offset: offset, message: "comparisons between scalars must use BOOL modifier")
        }
        if op.isSetOperator && (l.type != .instantVector || r.type != .instantVector) {
            throw PromQLError(offset: offset, message: "set operator \"\(op.rawValue)\" not allowed in binary scalar expression")
        }
        if let m = matching, m.cardinality != .oneToOne, m.on {
            for label in m.include where m.labels.contains(label) {
                throw PromQLError(offset: offset, message: "label \"\(label)\" must not occur in ON and GROUP clause at once")
            }
        }
        var matching = matching
        if let m = matching, l.type != .instantVector || r.type != .instantVector {
            // Prometheus drops an empty `on()` or `ignoring()` (and any group modifier) beside a
            // scalar; only a list naming labels is an error.
            if !m.labels.isEmpty {
                throw PromQLError(offset: offset, message: "vector matching only allowed between instant vectors")
            }
            matching = nil
        }
        return .binary(op, l, r, matching: matching, returnBool: returnBool)
    }

    // MARK: Unary and primary expressions

    mutating func unary() throws(PromQLError) -> Expr {
        if peek.kind == .minus || peek.kind == .plus {
            let t = advance()
            // Unary minus binds looser than ^: -a^b is -(a^b).
            let operand = try expression(minimumPrecedence: BinaryOp.power.precedence)
            guard operand.type == .scalar || operand.type == .instantVector else {
                throw PromQLError(offset: t.offset, message: "unary expression only allowed on expressions of type scalar or instant vector, got \"\(operand.type.rawValue)\"")
            }
            if t.kind == .plus { return operand }
            if case .number(let v) = operand { return .number(-v) }
            return .negate(operand)
        }
        return try postfix(try primary())
    }

    /// Range `[5m]`, subquery `[5m:1m]`, `offset` and `@` after a primary expression.
    mutating func postfix(_ base: Expr) throws(PromQLError) -> Expr {
        var e = base
        while true {
            if peek.kind == .leftBracket {
                let open = advance()
                let rangeToken = advance()
                guard case .duration(let range) = rangeToken.kind else {
                    throw PromQLError(offset: rangeToken.offset, message: "unexpected \(describe(rangeToken)) in range, want duration")
                }
                if peek.kind == .colon {
                    _ = advance()
                    var step: Int64?
                    if case .duration(let d) = peek.kind {
                        _ = advance()
                        guard d > 0 else { throw PromQLError(offset: open.offset, message: "step of a subquery must be positive") }
                        step = d
                    }
                    _ = try expect(.rightBracket, "\"]\"")
                    guard e.type == .instantVector else {
                        throw PromQLError(offset: open.offset, message: "subquery is only allowed on instant vector, got \(e.type.rawValue) instead")
                    }
                    guard range > 0 else { throw PromQLError(offset: rangeToken.offset, message: "range must be positive") }
                    e = .subquery(Subquery(expr: e, range: range, step: step))
                    continue
                }
                _ = try expect(.rightBracket, "\"]\"")
                guard case .selector(let s) = e else {
                    throw PromQLError(offset: open.offset, message: "ranges only allowed for vector selectors")
                }
                guard range > 0 else { throw PromQLError(offset: rangeToken.offset, message: "range must be positive") }
                if s.offset != 0 || s.at != nil {
                    throw PromQLError(offset: open.offset, message: "the range must come before offset and @ modifiers")
                }
                e = .matrix(s, range: range)
                continue
            }
            if peek.kind == .identifier, peek.text.lowercased() == "offset" {
                let t = advance()
                var sign: Int64 = 1
                if peek.kind == .minus { _ = advance(); sign = -1 }
                let d = advance()
                guard case .duration(let ms) = d.kind else {
                    throw PromQLError(offset: d.offset, message: "unexpected \(describe(d)) in offset, want duration")
                }
                e = try withModifiers(e, at: t.offset, "offset") { offset, _ throws(PromQLError) in
                    if offset != 0 { throw PromQLError(offset: t.offset, message: "offset may not be set multiple times") }
                    offset = sign * ms
                }
                continue
            }
            if peek.kind == .at {
                let t = advance()
                let modifier = try atModifier()
                e = try withModifiers(e, at: t.offset, "@") { _, at throws(PromQLError) in
                    if at != nil { throw PromQLError(offset: t.offset, message: "@ <timestamp> may not be set multiple times") }
                    at = modifier
                }
                continue
            }
            return e
        }
    }

    /// What follows `@`: a Unix time in seconds (signed), `start()` or `end()`.
    mutating func atModifier() throws(PromQLError) -> AtModifier {
        let t = peek
        if t.kind == .identifier, t.text == "start" || t.text == "end" {
            _ = advance()
            _ = try expect(.leftParen, "\"(\"")
            _ = try expect(.rightParen, "\")\"")
            return t.text == "start" ? .start : .end
        }
        var sign = 1.0
        if peek.kind == .minus || peek.kind == .plus {
            if advance().kind == .minus { sign = -1 }
        }
        let n = advance()
        guard case .number(let v) = n.kind else {
            throw PromQLError(offset: n.offset, message: "unexpected \(describe(n)) in @, want a timestamp, start() or end()")
        }
        let seconds = sign * v
        guard seconds.isFinite, abs(seconds * 1000) < 9.2e18 else {
            throw PromQLError(offset: n.offset, message: "timestamp out of bounds for @ modifier: \(seconds)")
        }
        return .timestamp(seconds)
    }

    func withModifiers(_ e: Expr, at position: Int, _ what: String,
                       _ change: (inout Int64, inout AtModifier?) throws(PromQLError) -> Void) throws(PromQLError) -> Expr {
        switch e {
        case .selector(var s):
            try change(&s.offset, &s.at)
            return .selector(s)
        case .matrix(var s, let range):
            try change(&s.offset, &s.at)
            return .matrix(s, range: range)
        case .subquery(var q):
            try change(&q.offset, &q.at)
            return .subquery(q)
        default:
            throw PromQLError(offset: position, message: "\(what) modifier must be preceded by an instant vector selector or range vector selector or a subquery")
        }
    }

    mutating func primary() throws(PromQLError) -> Expr {
        let t = peek
        switch t.kind {
        case .number(let v):
            _ = advance()
            return .number(v)
        case .duration:
            throw PromQLError(offset: t.offset, message: "unexpected duration \"\(t.text)\"")
        case .string(let s):
            _ = advance()
            return .string(s)
        case .leftParen:
            _ = advance()
            let inner = try expression(minimumPrecedence: 1)
            _ = try expect(.rightParen, "\")\"")
            return .paren(inner)
        case .leftBrace:
            return .selector(try selector(name: nil, at: t.offset))
        case .metricIdentifier:
            _ = advance()
            return .selector(try selector(name: String(t.text), at: t.offset))
        case .identifier:
            _ = advance()
            let word = String(t.text)
            if let op = AggregateOp(rawValue: word.lowercased()) {
                return try aggregation(op, at: t.offset)
            }
            if peek.kind == .leftParen {
                return try call(word, at: t.offset)
            }
            if ["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless", "atan2"]
                .contains(word.lowercased())
            {
                throw PromQLError(offset: t.offset, message: "unexpected keyword \"\(word)\"")
            }
            return .selector(try selector(name: word, at: t.offset))
        default:
            throw PromQLError(offset: t.offset, message: "unexpected \(describe(t))")
        }
    }

    /// Comma-separated expressions up to the closing parenthesis, each with its offset.
    mutating func arguments(in context: String) throws(PromQLError) -> [(Expr, Int)] {
        var args: [(Expr, Int)] = []
        while peek.kind != .rightParen {
            let at = peek.offset
            args.append((try expression(minimumPrecedence: 1), at))
            if peek.kind == .comma { _ = advance() } else { break }
        }
        _ = try expect(.rightParen, "\")\" or \",\" in \(context)")
        return args
    }

    mutating func call(_ name: String, at offset: Int) throws(PromQLError) -> Expr {
        guard let signature = Functions.table[name] else {
            throw PromQLError(offset: offset, message: "unknown function with name \"\(name)\"")
        }
        _ = try expect(.leftParen, "\"(\"")
        let args = try arguments(in: "function call")
        let n = signature.arguments.count
        let minimum = signature.optionalTrailing > 0 ? n - signature.optionalTrailing : (signature.optionalTrailing == 0 ? n - 1 : n)
        let maximum = signature.optionalTrailing == 0 ? Int.max : n
        if args.count < minimum || args.count > maximum {
            let want = minimum == maximum ? "\(minimum)" : maximum == .max ? "at least \(minimum)" : "\(minimum) to \(maximum)"
            throw PromQLError(offset: offset, message: "expected \(want) argument(s) in call to \"\(name)\", got \(args.count)")
        }
        for (i, (arg, at)) in args.enumerated() {
            let want = signature.arguments[min(i, n - 1)]
            var got = arg.type
            if case .paren(let inner) = arg, inner.type == .rangeVector { got = .rangeVector }
            if got != want {
                throw PromQLError(offset: at, message: "expected type \(want.rawValue) in call to function \"\(name)\", got \(got.rawValue)")
            }
        }
        if !signature.supported {
            throw PromQLError(offset: offset, message: "function \"\(name)\" is not supported by Aligner")
        }
        return .call(name, args.map(\.0))
    }

    mutating func aggregation(_ op: AggregateOp, at offset: Int) throws(PromQLError) -> Expr {
        var grouping: [String] = []
        var without = false
        var sawModifier = false
        func modifier(_ parser: inout PromQLParser) throws(PromQLError) {
            if parser.peek.kind == .identifier, ["by", "without"].contains(parser.peek.text.lowercased()) {
                if sawModifier { throw PromQLError(offset: parser.peek.offset, message: "aggregation modifier given twice") }
                without = parser.advance().text.lowercased() == "without"
                grouping = try parser.labelList()
                sawModifier = true
            }
        }
        try modifier(&self)
        _ = try expect(.leftParen, "\"(\" after aggregation \"\(op.rawValue)\"")
        let args = try arguments(in: "aggregation")
        try modifier(&self)
        let want = op.hasParameter ? 2 : 1
        guard args.count == want else {
            throw PromQLError(offset: offset, message: "wrong number of arguments for aggregate expression provided, expected \(want), got \(args.count)")
        }
        let (expr, exprAt) = args[want - 1]
        guard expr.type == .instantVector else {
            throw PromQLError(offset: exprAt, message: "expected type instant vector in aggregation expression, got \(expr.type.rawValue)")
        }
        var parameter: Expr?
        if op.hasParameter {
            let (p, at) = args[0]
            let wantType: ValueType = op == .countValues ? .string : .scalar
            guard p.type == wantType else {
                throw PromQLError(offset: at, message: "expected type \(wantType.rawValue) in aggregation parameter, got \(p.type.rawValue)")
            }
            parameter = p
        }
        return .aggregate(op, expr, parameter: parameter, grouping: grouping, without: without)
    }

    mutating func selector(name: String?, at offset: Int) throws(PromQLError) -> VectorSelector {
        var matchers: [LabelMatcher] = []
        if let name { matchers.append(LabelMatcher("__name__", .equal, name)) }
        if peek.kind == .leftBrace {
            _ = advance()
            while peek.kind != .rightBrace {
                let labelToken = advance()
                guard labelToken.kind == .identifier else {
                    throw PromQLError(offset: labelToken.offset, message: "unexpected \(describe(labelToken)) in label matching, want label name")
                }
                let opToken = advance()
                let op: MatchOp
                switch opToken.kind {
                case .assign: op = .equal
                case .notEqual: op = .notEqual
                case .regexMatch: op = .regexMatch
                case .regexNoMatch: op = .regexNoMatch
                default:
                    throw PromQLError(offset: opToken.offset, message: "unexpected \(describe(opToken)) in label matching, want one of =, !=, =~, !~")
                }
                let valueToken = advance()
                guard case .string(let value) = valueToken.kind else {
                    throw PromQLError(offset: valueToken.offset, message: "unexpected \(describe(valueToken)) in label matching, want string")
                }
                let matcher = LabelMatcher(String(labelToken.text), op, value)
                if !matcher.isValid {
                    throw PromQLError(offset: valueToken.offset, message: "invalid regular expression \(promQuoted(value))")
                }
                if name != nil && matcher.name == "__name__" {
                    throw PromQLError(offset: labelToken.offset, message: "metric name must not be set twice: \"\(name!)\" or \"\(value)\"")
                }
                matchers.append(matcher)
                if peek.kind == .comma { _ = advance() } else { break }
            }
            _ = try expect(.rightBrace, "\"}\" or \",\" in label matching")
        }
        // Prometheus: at least one matcher must not match the empty string.
        let nonEmpty = matchers.contains { (try? $0.matches("")) == false }
        if !nonEmpty {
            throw PromQLError(offset: offset, message: "vector selector must contain at least one non-empty matcher")
        }
        return VectorSelector(name: name, matchers: matchers)
    }
}
