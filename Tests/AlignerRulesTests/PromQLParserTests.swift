import AlignerRules
import Testing

@Suite struct PromQLParserTests {
    @Test(arguments: [
        // (input, printed form)
        ("up", "up"),
        ("up{job=\"api\",instance!~\"10\\\\..*\"}", "up{job=\"api\", instance!~\"10\\\\..*\"}"),
        ("{__name__=~\"kube_.*\"}", "{__name__=~\"kube_.*\"}"),
        ("rate(http_requests_total{code=~\"5..\"}[5m])", "rate(http_requests_total{code=~\"5..\"}[5m])"),
        ("sum by (namespace, service) (rate(x[1m])) / ignoring(code) group_left sum(y)",
         "sum by (namespace, service) (rate(x[1m])) / ignoring(code) group_left() sum(y)"),
        ("sum(rate(x[5m])) without (pod)", "sum without (pod) (rate(x[5m]))"),
        ("topk(3, x)", "topk(3, x)"),
        ("count_values(\"version\", build_info)", "count_values(\"version\", build_info)"),
        ("x offset 5m", "x offset 5m"),
        ("x[1h30m] offset -1d", "x[1h30m] offset -1d"),
        ("1 + 2 * 3 ^ 2 ^ 2", "1 + 2 * 3 ^ 2 ^ 2"),
        ("-x ^ 2", "-x ^ 2"),
        ("a > bool 5", "a > bool 5"),
        ("a and on(x) b or c unless d", "a and on(x) b or c unless d"),
        ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))", "histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))"),
        ("label_replace(up, \"dst\", \"$1\", \"src\", \"(.*)\")", "label_replace(up, \"dst\", \"$1\", \"src\", \"(.*)\")"),
        ("label_join(up, \"d\", \",\", \"a\", \"b\", \"c\")", "label_join(up, \"d\", \",\", \"a\", \"b\", \"c\")"),
        ("round(x)", "round(x)"),
        ("time() - 0x10", "time() - 16"),
        ("1e3 + .5 + Inf", "1000 + 0.5 + +Inf"),
        ("job:request_rate:5m > 10 # comment", "job:request_rate:5m > 10"),
        ("sum(x) by (a) > on(a) group_right(b) y", "sum by (a) (x) > on(a) group_right(b) y"),
        ("vector(1)", "vector(1)"),
        ("absent_over_time(up{job=\"x\"}[10m])", "absent_over_time(up{job=\"x\"}[10m])"),
        ("quantile_over_time(0.9, x[5m])", "quantile_over_time(0.9, x[5m])"),
        ("max_over_time(rate(x[1m])[30m:1m])", "max_over_time(rate(x[1m])[30m:1m])"),
        ("max_over_time(x[5m:] offset 1m)", "max_over_time(x[5m:] offset 1m)"),
        ("x @ 1700000000.5", "x @ 1700000000.5"),
        ("x offset 1m @ end()", "x @ end() offset 1m"),
        ("rate(x[5m] @ start())", "rate(x[5m] @ start())"),
        ("sum_over_time(sum(x)[10m:30s] @ -100)", "sum_over_time(sum(x)[10m:30s] @ -100)"),
        ("holt_winters(x[10m], 0.3, 0.7)", "holt_winters(x[10m], 0.3, 0.7)"),
    ])
    func parsesAndPrints(_ input: String, _ printed: String) throws {
        let expr = try PromQLParser.parse(input)
        #expect(expr.description == printed)
        // Printing is stable: the printed form parses to the same tree.
        #expect(try PromQLParser.parse(printed) == expr)
    }

    @Test func precedenceAndAssociativity() throws {
        guard case .binary(.add, .number(1), .binary(.multiply, .number(2), .binary(.power, .number(3), .binary(.power, .number(2), .number(2), _, _), _, _), _, _), _, _) =
            try PromQLParser.parse("1 + 2 * 3 ^ 2 ^ 2")
        else {
            Issue.record("wrong tree")
            return
        }
        guard case .negate(.binary(.power, _, _, _, _)) = try PromQLParser.parse("-x ^ 2") else {
            Issue.record("-x ^ 2 must be -(x ^ 2)")
            return
        }
        guard case .binary(.subtract, .binary(.subtract, _, _, _, _), _, _, _) = try PromQLParser.parse("a - b - c") else {
            Issue.record("- must be left-associative")
            return
        }
    }

    @Test(arguments: [
        ("", 0, "no expression found in input"),
        ("sum(", 4, "unexpected end of input"),
        ("rate(x)", 5, "expected type range vector in call to function \"rate\", got instant vector"),
        ("x[5m][10m:1m]", 5, "subquery is only allowed on instant vector, got range vector instead"),
        ("max_over_time(x[5m:0s])", 15, "step of a subquery must be positive"),
        ("x @ 100 @ 200", 8, "@ <timestamp> may not be set multiple times"),
        ("sum(x) @ 100", 7, "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery"),
        ("{job=~\".*\"}", 0, "vector selector must contain at least one non-empty matcher"),
        ("up{__name__=\"x\"}", 3, "metric name must not be set twice: \"up\" or \"x\""),
        ("1 > 2", 2, "comparisons between scalars must use BOOL modifier"),
        ("1 and x", 2, "set operator \"and\" not allowed in binary scalar expression"),
        ("a and on(x) group_left b", 12, "no grouping allowed for \"and\" operation"),
        ("x offset 300000000y", 9, "duration out of range: \"300000000y\""),
        ("x[293y]", 2, "duration out of range: \"293y\""),
        ("histogram_count(x)", 0, "function \"histogram_count\" is not supported by Aligner"),
        ("nosuch(x)", 0, "unknown function with name \"nosuch\""),
        ("clamp(x, 1)", 0, "expected 3 argument(s) in call to \"clamp\", got 2"),
        ("x{a=~\"(\"}", 5, "invalid regular expression \"(\""),
        ("x[5m] + 1", 6, "binary expression must contain only scalar and instant vector types"),
        ("sum(x[5m])", 4, "expected type instant vector in aggregation expression, got range vector"),
        ("(x)[5m]", 3, "ranges only allowed for vector selectors"),
        ("x{a=\"b}", 4, "unterminated quoted string"),
        ("topk(x)", 0, "wrong number of arguments for aggregate expression provided, expected 2, got 1"),
        ("x y", 2, "unexpected identifier \"y\""),
    ])
    func rejectsWithPosition(_ input: String, _ offset: Int, _ message: String) {
        do {
            let e = try PromQLParser.parse(input)
            Issue.record("accepted \(input) as \(e)")
        } catch {
            #expect(error.offset == offset, "\(input): \(error.message)")
            #expect(error.message.hasPrefix(message), "\(input)")
        }
    }

    @Test func selectorsAreCollected() throws {
        let e = try PromQLParser.parse("kube_deployment_spec_replicas != kube_deployment_status_replicas_ready{job=\"ksm\"}")
        #expect(e.selectors.map(\.name) == ["kube_deployment_spec_replicas", "kube_deployment_status_replicas_ready"])
        #expect(e.type == .instantVector)
    }

    /// Regular expressions are anchored and, as in Prometheus 2.42, `.` does not match a newline;
    /// the fast paths (literals, `.*`, `.+`, `prefix.*`) and the remembered answers agree with the
    /// regex engine.
    @Test(arguments: [
        ("5..", "500", true), ("5..", "5000", false), ("5..", "200", false), ("5..", "", false), ("5..", "5\n0", false),
        ("a|b", "a", true), ("a|b", "ab", false),
        (".*", "", true), (".*", "test\njob", false), (".+", "", false), (".+", "x", true),
        ("darwin-store-.*", "darwin-store-7d9f-x1", true), ("darwin-store-.*", "darwin-store-", true),
        ("darwin-store-.*", "cart-1", false), ("darwin-store-.*", "darwin-store-a\nb", false),
        ("(?s:.*)", "a\nb", true), ("e.*", "e\u{301}", true), ("[45]..", "404", true),
    ])
    func regexMatchers(_ pattern: String, _ value: String, _ expected: Bool) {
        let m = LabelMatcher("code", .regexMatch, pattern)
        for _ in 0..<2 {  // the second answer is the remembered one
            #expect((try? m.matches(value)) == expected, "\(pattern) on \(value.debugDescription)")
            #expect((try? LabelMatcher("code", .regexNoMatch, pattern).matches(value)) == !expected)
        }
    }
}
