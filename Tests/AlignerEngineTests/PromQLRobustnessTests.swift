import AlignerCore
import AlignerEngine
import AlignerRules
import AlignerTesting
import Foundation
import Testing

/// Whatever text reaches the parser (a rule file, `/api/v1/query`), parsing and evaluating it
/// either answers or throws: never a trap, which would end the server. Deterministic: a fixed seed.
@Suite struct PromQLRobustnessTests {
    static let vocabulary = [
        "x", "y", "up", "{a=\"1\"}", "x{a=~\".*\"}", "{__name__=~\"x|y\"}", "0", "1", "-1", "1e308", "-1e308", "NaN", "Inf", "0x7fffffff",
        "9223372036854775807", "0.5", "\"s\"", "\"$1\"", "(", ")", "[", "]", "[5m]", "[1ms]", "[5m:1m]", "[5m:]", "[1h:1ms]",
        ",", "+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless", "atan2", "bool",
        "on(a)", "ignoring(a)", "on()", "group_left", "group_left(b)", "group_right", "by (a)", "without (a)",
        "offset 5m", "offset -5m", "offset 292y", "@ 100", "@ -1e15", "@ start()", "@ end()", "sum", "avg", "min", "max", "count",
        "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group", "rate", "irate", "increase", "delta",
        "deriv", "predict_linear", "holt_winters", "changes", "resets", "absent", "absent_over_time", "histogram_quantile",
        "label_replace", "label_join", "clamp", "round", "time()", "vector", "scalar", "timestamp", "sort", "day_of_month",
        "hour", "quantile_over_time", "max_over_time", "last_over_time", "abs", "sqrt", "ln", "exp",
    ]

    static func store() -> MemoryStore {
        let s = MemoryStore()
        for i in 0..<40 {
            let t = Int64(i) * 15_000
            let v = [Double(i), .nan, .infinity, -.infinity, 1e308, -0.0, SampleValue.staleNaN][i % 7]
            s.append([Label("__name__", "x"), Label("a", "1"), Label("le", "0.5")], timestamp: t, value: v)
            s.append([Label("__name__", "x"), Label("a", "2"), Label("le", "+Inf")], timestamp: t, value: Double(i * i))
            s.append([Label("__name__", "y"), Label("a", "1"), Label("b", "2")], timestamp: t, value: -Double(i))
            s.append([Label("__name__", "up"), Label("a", "1")], timestamp: t, value: 1)
        }
        return s
    }

    /// (Seconds of work: on a Dispatch thread, `blocking`, not a cooperative one other suites need.)
    @Test func randomExpressionsAnswerOrThrow() async throws {
        let parsed = try await blocking {
            var rng = SplitMix64(seed: 42)
            let store = PromQLRobustnessTests.store()
            var parsed = 0
            for _ in 0..<30_000 {
                let n = 1 + Int(rng.next() % 12)
                let text = (0..<n).map { _ in PromQLRobustnessTests.vocabulary[Int(rng.next() % UInt64(PromQLRobustnessTests.vocabulary.count))] }
                    .joined(separator: " ")
                guard let expr = try? PromQLParser.parse(text) else { continue }
                parsed += 1
                for t: Int64 in [0, 300_000, 600_000] {
                    _ = try? Evaluator(source: store, time: t).evaluate(expr)
                }
            }
            return parsed
        }
        // The vocabulary makes enough valid expressions for the evaluation to be exercised too.
        #expect(parsed > 1_000)
    }

    /// The differential specs' expressions, each mutated: a token replaced, dropped or doubled.
    @Test func mutatedExpressionsAnswerOrThrow() async throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../promql-diff")
        var expressions: [String] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) where name.hasSuffix(".yml") {
            let text = try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
            for line in text.split(separator: "\n") where line.hasPrefix("  - ") && !line.contains("series:") {
                var e = String(line.dropFirst(4))
                if e.hasPrefix("'"), e.hasSuffix("'") { e = String(e.dropFirst().dropLast()) }
                expressions.append(e)
            }
        }
        #expect(expressions.count > 200)
        let parsed = try await blocking { [expressions] in
            var rng = SplitMix64(seed: 7)
            let store = PromQLRobustnessTests.store()
            var parsed = 0
            for _ in 0..<20_000 {
                let base = expressions[Int(rng.next() % UInt64(expressions.count))]
                var tokens = base.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                let i = Int(rng.next() % UInt64(tokens.count))
                let word = PromQLRobustnessTests.vocabulary[Int(rng.next() % UInt64(PromQLRobustnessTests.vocabulary.count))]
                switch rng.next() % 4 {
                case 0: tokens[i] = word
                case 1: tokens.insert(word, at: i)
                case 2: tokens.remove(at: i)
                default:
                    // Cut a character out of the middle of a token (unbalanced brackets, broken strings).
                    var t = Array(tokens[i])
                    if !t.isEmpty { t.remove(at: Int(rng.next() % UInt64(t.count))) }
                    tokens[i] = String(t)
                }
                guard let expr = try? PromQLParser.parse(tokens.joined(separator: " ")) else { continue }
                parsed += 1
                for t: Int64 in [0, 450_000] {
                    _ = try? Evaluator(source: store, time: t).evaluate(expr)
                }
            }
            return parsed
        }
        #expect(parsed > 2_000)
    }
}

