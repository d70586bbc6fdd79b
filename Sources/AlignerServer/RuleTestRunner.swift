import AlignerCore
import AlignerEngine
import AlignerRules
import Foundation
import Yams

/// Runs promtool rule-test files (`promtool test rules`) unchanged, on promtool's clock: input
/// series from time 0 at the test's interval, rules evaluated every evaluation_interval up to the
/// last eval_time, alerts compared at each eval_time, PromQL expectations checked afterwards.
public enum RuleTestRunner {
    /// Runs one file; returns the failure messages (empty when it passed). What promtool only
    /// warns about (a rule file pattern matching no file, a test without an interval) goes to `warn`.
    public static func run(file: String, warn: (String) -> Void = { _ in }) -> [String] {
        let text: String
        do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
            return ["cannot read \(file): \(error.localizedDescription)"]
        }
        guard let root = (try? Yams.compose(yaml: text)) ?? nil, let top = root.mapping else {
            return ["\(file): not a rule-test file (want a mapping with rule_files and tests)"]
        }
        // Every key is one promtool knows (it reads the file strictly, and fails it otherwise).
        let unknown = unknownFields(root)
        if !unknown.isEmpty { return ["yaml: unmarshal errors:"] + unknown.map { "  " + $0 } }
        let directory = (file as NSString).deletingLastPathComponent
        // Relative to the test file, and glob patterns expanded, as promtool does: a pattern that
        // matches no file is a warning, not a failure.
        let ruleFiles = (top["rule_files"]?.sequence.map { Array($0) } ?? []).compactMap(\.string).flatMap { pattern in
            let files = expandGlob(pattern.hasPrefix("/") ? pattern : (directory.isEmpty ? pattern : directory + "/" + pattern))
            if files.isEmpty { warn("no file match pattern \(pattern)") }
            return files
        }
        let evaluationInterval = top["evaluation_interval"]?.string.flatMap(parseDurationMilliseconds) ?? 60_000
        var groups: [RuleGroup]
        do { groups = try RuleFileLoader.load(files: ruleFiles, templates: AlertTemplate.problem) } catch let error as RuleFileError {
            return error.problems
        } catch {
            return ["\(error)"]
        }
        // group_eval_order, as promtool orders by it: a listed group by its place, an unlisted one
        // as if first (promtool leaves the order of ties to chance; here they keep the files' order).
        if let order = top["group_eval_order"]?.sequence.map({ Array($0).compactMap(\.string) }), !order.isEmpty {
            var place: [String: Int] = [:]
            for (i, name) in order.enumerated() {
                if place[name] != nil { return ["group name repeated in evaluation order: \(name)"] }
                place[name] = i
            }
            groups = groups.enumerated().sorted { (place[$0.element.name] ?? 0, $0.offset) < (place[$1.element.name] ?? 0, $1.offset) }.map(\.element)
        }
        var failures: [String] = []
        for (i, test) in (top["tests"]?.sequence.map { Array($0) } ?? []).enumerated() {
            failures += runTest(test, index: i, groups: groups, evaluationInterval: evaluationInterval, warn: warn)
        }
        return failures
    }

    static func runTest(_ node: Node, index: Int, groups: [RuleGroup], evaluationInterval: Int64, warn: (String) -> Void) -> [String] {
        guard let test = node.mapping else { return ["test \(index): must be a mapping"] }
        let name = test["name"]?.string.map { "\"\($0)\"" } ?? "#\(index)"
        // promtool 2.42 takes a missing interval as 0: every input sample at 0s, the first of a
        // series kept (promtool 3 takes evaluation_interval instead).
        let interval = test["interval"]?.string.flatMap(parseDurationMilliseconds) ?? 0
        if test["interval"] == nil, test["input_series"]?.sequence?.isEmpty == false {
            warn("test \(name) has no interval: as in promtool 2.42 its input samples are all at 0s, the first of each series kept (promtool 3 steps them by evaluation_interval)")
        }
        let external = Dictionary((test["external_labels"]?.mapping.map { Array($0) } ?? []).map { ($0.key.string ?? "", $0.value.string ?? "") },
                                  uniquingKeysWith: { $1 })
        let store = MemoryStore()
        var failures: [String] = []
        // promtool loads input samples as its clock advances: an evaluation at t sees samples up to
        // t, and the PromQL checks see samples up to the last eval_time of the test.
        // A series given twice is the later one's values only (promtool's load replaces it).
        var defined: [(labels: Labels, values: [Double?])] = []
        var place: [Labels: Int] = [:]
        for series in test["input_series"]?.sequence.map({ Array($0) }) ?? [] {
            do {
                let labels = try parseSeriesLabels(series["series"]?.string ?? "")
                let values = try expandValues(series["values"]?.string ?? "")
                if let i = place[labels] { defined[i].values = values } else {
                    place[labels] = defined.count
                    defined.append((labels, values))
                }
            } catch {
                failures.append("test \(name): input series \(series["series"]?.string ?? ""): \(error)")
            }
        }
        var inputs: [(labels: Labels, time: Int64, value: Double)] = []
        for (labels, values) in defined {
            for (i, v) in values.enumerated() {
                if let v { inputs.append((labels, Int64(i) * interval, v)) }
            }
        }
        if !failures.isEmpty { return failures }
        // Alert expectations, by eval time.
        struct AlertCheck { var time: Int64; var name: String; var expected: [(Labels, [String: String])] }
        var checks: [AlertCheck] = []
        for a in test["alert_rule_test"]?.sequence.map({ Array($0) }) ?? [] {
            let time = a["eval_time"]?.string.flatMap(parseDurationMilliseconds) ?? 0
            let alertname = a["alertname"]?.string ?? ""
            var expected: [(Labels, [String: String])] = []
            for e in a["exp_alerts"]?.sequence.map({ Array($0) }) ?? [] {
                // promtool sets alertname, whether exp_labels names it or not.
                var labels = (e["exp_labels"]?.mapping.map { Array($0) } ?? []).map { Label($0.key.string ?? "", $0.value.string ?? "") }
                    .filter { $0.name != "alertname" }
                labels.append(Label("alertname", alertname))
                let annotations = Dictionary((e["exp_annotations"]?.mapping.map { Array($0) } ?? []).map { ($0.key.string ?? "", $0.value.string ?? "") },
                                             uniquingKeysWith: { $1 })
                expected.append((labels.sorted(), annotations))
            }
            checks.append(AlertCheck(time: time, name: alertname, expected: expected))
        }
        var exprChecks: [(expr: String, time: Int64, samples: [(Labels, Double)])] = []
        for p in test["promql_expr_test"]?.sequence.map({ Array($0) }) ?? [] {
            var samples: [(Labels, Double)] = []
            for s in p["exp_samples"]?.sequence.map({ Array($0) }) ?? [] {
                do {
                    samples.append((try parseSeriesLabels(s["labels"]?.string ?? "{}"), try expectedValue(s["value"])))
                } catch {
                    failures.append("test \(name): expected sample \(s["labels"]?.string ?? ""): \(error)")
                }
            }
            exprChecks.append((p["expr"]?.string ?? "", p["eval_time"]?.string.flatMap(parseDurationMilliseconds) ?? 0, samples))
        }
        let maxTime = max(checks.map(\.time).max() ?? 0, exprChecks.map(\.time).max() ?? 0)
        var state: RuleGroupsState
        do { state = try RuleGroupsState(groups: groups) } catch { return ["test \(name): \(error)"] }
        state.defaultSubqueryStep = evaluationInterval
        state.writesAlertSeries = true
        state.externalLabels = external
        state.externalURL = test["external_url"]?.string ?? ""
        // In time order, and in the file's order at one time (the first sample at a time is kept).
        inputs = inputs.enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }.map(\.element)
        var loaded = 0
        func load(through time: Int64) {
            while loaded < inputs.count, inputs[loaded].time <= time {
                store.append(inputs[loaded].labels, timestamp: inputs[loaded].time, value: inputs[loaded].value)
                loaded += 1
            }
        }
        var t: Int64 = 0
        var pending = checks.sorted { $0.time < $1.time }
        while t <= maxTime {
            load(through: t)
            for error in state.evaluate(at: t, source: store, sink: store) { failures.append("test \(name): at \(formatDuration(t)): \(error)") }
            // Alert checks whose eval_time falls in [t, t + evaluation_interval).
            while let check = pending.first, check.time >= t, check.time < t + evaluationInterval {
                pending.removeFirst()
                let got = state.alerts.filter { $0.state == .firing && $0.labels.value("alertname") == check.name }
                    .map { ($0.labels, $0.annotations) }
                let want = check.expected
                let gotText = describe(got), wantText = describe(want)
                if gotText != wantText {
                    failures.append("test \(name): alertname: \(check.name), time: \(formatDuration(check.time)),\n        exp:\(wantText),\n        got:\(gotText)")
                }
            }
            while let check = pending.first, check.time < t { pending.removeFirst() }
            t += evaluationInterval
        }
        load(through: maxTime)
        for check in exprChecks {
            do {
                let expr = try PromQLParser.parse(check.expr)
                var evaluator = Evaluator(source: store, time: check.time)
                evaluator.defaultSubqueryStep = evaluationInterval
                var got: [(Labels, Double)]
                switch try evaluator.evaluate(expr) {
                case .vector(let v): got = v.map { ($0.labels, $0.value) }
                case .scalar(let s): got = [([], s)]
                default: throw EvaluationError(message: "rule result is not a vector or scalar")
                }
                if !samplesEqual(got, check.samples) {
                    failures.append("test \(name): expr: \(check.expr), time: \(formatDuration(check.time)),\n        exp: \(describeSamples(check.samples))\n        got: \(describeSamples(got))")
                }
            } catch {
                failures.append("test \(name): expr: \(check.expr), time: \(formatDuration(check.time)): \(error)")
            }
        }
        return failures
    }

    static func describe(_ alerts: [(Labels, [String: String])]) -> String {
        let items = alerts.map { labels, annotations in
            "{Labels:\(labels.promText) Annotations:{" + annotations.sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }.joined(separator: ", ") + "}}"
        }
        return "[" + items.sorted().joined(separator: " ") + "]"
    }

    static func describeSamples(_ samples: [(Labels, Double)]) -> String {
        "[" + samples.map { ($0.0.isEmpty ? "{}" : $0.0.sorted().promText) + " " + formatSampleValue($0.1) }.sorted().joined(separator: ", ") + "]"
    }

    static func samplesEqual(_ a: [(Labels, Double)], _ b: [(Labels, Double)]) -> Bool {
        guard a.count == b.count else { return false }
        let x = a.map { ($0.0.sorted().promText, $0.1) }.sorted { $0.0 < $1.0 }
        let y = b.map { ($0.0.sorted().promText, $0.1) }.sorted { $0.0 < $1.0 }
        for (p, q) in zip(x, y) {
            guard p.0 == q.0 else { return false }
            // NaN equals NaN only (promtool 2.42 fails even that: its reflect.DeepEqual has
            // NaN unequal to itself; later promtools have NaN equal NaN), an infinity itself only.
            if p.1.isNaN || q.1.isNaN {
                if p.1.isNaN && q.1.isNaN { continue }
                return false
            }
            if p.1 == q.1 { continue }
            guard p.1.isFinite && q.1.isFinite else { return false }
            // promtool compares exactly; a difference in the last bits (Go's assembly Exp, a
            // sum taken in another order) is not a different answer, so 1e-12 relative is equal.
            if abs(p.1 - q.1) > 1e-12 * max(abs(p.1), abs(q.1)) { return false }
        }
        return true
    }

    /// The files a `rule_files` entry names: itself, or the matches of a glob pattern.
    static func expandGlob(_ pattern: String) -> [String] {
        guard pattern.contains(where: { "*?[".contains($0) }) else {
            return FileManager.default.fileExists(atPath: pattern) ? [pattern] : []
        }
        var result = glob_t()
        defer { globfree(&result) }
        guard glob(pattern, 0, nil, &result) == 0 else { return [] }
        return (0..<Int(result.gl_pathc)).compactMap { result.gl_pathv[$0].map { String(cString: $0) } }
    }

    /// `metric{a="b"}` into labels; a label with an empty value is no label, as in Prometheus.
    static func parseSeriesLabels(_ text: String) throws -> Labels {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty || trimmed == "{}" { return [] }
        let expr = try PromQLParser.parse(trimmed)
        guard case .selector(let s) = expr else { throw EvaluationError(message: "\"\(text)\" is not a series description") }
        var labels: Labels = []
        for m in s.matchers {
            guard m.op == .equal else { throw EvaluationError(message: "series description \"\(text)\" may only use =") }
            if !m.value.isEmpty { labels.append(Label(m.name, m.value)) }
        }
        return labels.sorted()
    }

    static func parseValue(_ text: String) throws -> Double {
        if text == "stale" { return SampleValue.staleNaN }
        switch text.lowercased() {
        case "inf", "+inf", ".inf", "+.inf": return .infinity
        case "-inf", "-.inf": return -.infinity
        case "nan", ".nan": return .nan
        default: break
        }
        guard let v = Double(text) else { throw EvaluationError(message: "bad value \"\(text)\"") }
        return v
    }

    /// The keys promtool 2.42's rule-test file types have, by where they appear.
    static let knownFields: [String: Set<String>] = [
        "file": ["rule_files", "evaluation_interval", "group_eval_order", "tests"],
        "testGroup": ["interval", "input_series", "alert_rule_test", "promql_expr_test", "external_labels", "external_url", "name"],
        "series": ["series", "values"],
        "alertTestCase": ["eval_time", "alertname", "exp_alerts"],
        "alert": ["exp_labels", "exp_annotations"],
        "promqlTestCase": ["expr", "eval_time", "exp_samples"],
        "sample": ["labels", "value"],
    ]

    /// Keys promtool would not know, each as `line N: field K not found in type main.T`.
    static func unknownFields(_ root: Node) -> [String] {
        var out: [String] = []
        func check(_ node: Node?, _ type: String) {
            guard let mapping = node?.mapping else { return }
            for (key, _) in mapping {
                guard let k = key.string, !knownFields[type]!.contains(k) else { continue }
                out.append("line \(key.mark?.line ?? 0): field \(k) not found in type main.\(type)")
            }
        }
        func items(_ node: Node?, _ key: String) -> [Node] { node?[key]?.sequence.map { Array($0) } ?? [] }
        check(root, "file")
        for test in items(root, "tests") {
            check(test, "testGroup")
            for s in items(test, "input_series") { check(s, "series") }
            for a in items(test, "alert_rule_test") {
                check(a, "alertTestCase")
                for e in items(a, "exp_alerts") { check(e, "alert") }
            }
            for p in items(test, "promql_expr_test") {
                check(p, "promqlTestCase")
                for e in items(p, "exp_samples") { check(e, "sample") }
            }
        }
        return out
    }

    /// An expected sample's `value` as promtool reads it (YAML 1.1 into a float64, Go's yaml.v2):
    /// a plain number (`1`, `-2.5e3`, `0x10`, `0o17`, `1_000`), `.inf`, `-.inf` or `.nan`; no
    /// value is 0; a quoted one tagged `!!float` or `!!int` is read the same. Anything else is a
    /// string promtool does not take as a number: `Inf`, `NaN` (the input series' notation, not
    /// YAML's), an untagged quoted number, `1e400` (out of range).
    static func expectedValue(_ node: Node?) throws -> Double {
        guard let node, case .scalar(let scalar) = node else {
            if node == nil { return 0 }
            throw EvaluationError(message: "value is not a number")
        }
        let text = scalar.string
        let plain = scalar.style == .plain || scalar.style == .any
        // A quoted number is a string unless tagged (`!!float '1e-20'`, as PyYAML writes them).
        if plain || [Tag.Name.float.rawValue, Tag.Name.int.rawValue].contains(scalar.tag.rawValue) {
            if plain && ["", "~", "null", "Null", "NULL"].contains(text) { return 0 }
            switch text {
            case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .infinity
            case "-.inf", "-.Inf", "-.INF": return -.infinity
            case ".nan", ".NaN", ".NAN": return .nan
            default: break
            }
            if let v = yamlNumber(text.replacingOccurrences(of: "_", with: "")) { return v }
        }
        let hint = ["inf", "+inf", "-inf", "nan"].contains(text.lowercased()) ? " (YAML writes it .inf, -.inf or .nan)" : ""
        throw EvaluationError(message: "cannot unmarshal !!str `\(text)` into float64\(hint)")
    }

    /// A YAML 1.1 integer (decimal, `0x`, `0o`, `0b`, or a leading `0` for octal) or float
    /// (`[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, finite), as yaml.v2 resolves it.
    static func yamlNumber(_ text: String) -> Double? {
        // yaml.v2 reads an integer as Go's ParseInt with base 0 does.
        if let n = goInteger(text) { return Double(n) }
        let pattern = /[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?/
        guard text.wholeMatch(of: pattern) != nil, let v = Double(text), v.isFinite else { return nil }
        return v
    }

    /// promtool's expanding notation: `1+2x3` is 1 3 5 7, `1x3` is 1 1 1 1, `_` skips, `_x3`
    /// skips three, `stale` is a staleness marker.
    static func expandValues(_ text: String) throws -> [Double?] {
        var out: [Double?] = []
        for token in text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init) {
            if token == "_" { out.append(nil); continue }
            if token.hasPrefix("_x"), let n = Int(token.dropFirst(2)), n >= 0 { out += Array(repeating: nil, count: n); continue }
            if let x = token.lastIndex(of: "x"), let n = Int(token[token.index(after: x)...]) {
                let head = String(token[..<x])
                guard !head.isEmpty, n >= 0 else { throw EvaluationError(message: "bad value \"\(token)\"") }
                // a+b, a-b or a (with an optional leading sign on a).
                var split: String.Index?
                var i = head.index(after: head.startIndex)
                while i < head.endIndex {
                    if (head[i] == "+" || head[i] == "-") && head[head.index(before: i)].lowercased() != "e" { split = i }
                    i = head.index(after: i)
                }
                let start: Double, step: Double
                if let split {
                    start = try parseValue(String(head[..<split]))
                    step = try parseValue(String(head[head.index(after: split)...])) * (head[split] == "-" ? -1 : 1)
                } else {
                    start = try parseValue(head)
                    step = 0
                }
                var v = start
                for _ in 0...n {
                    out.append(v)
                    v += step
                }
                continue
            }
            out.append(try parseValue(token))
        }
        return out
    }
}
