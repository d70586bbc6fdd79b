import AlignerEngine
import AlignerRules
import AlignerTesting
@testable import AlignerServer
import Foundation
import Testing

/// `aligner rules test` on malformed files: every one gets an answer (a failure saying what is
/// wrong), none traps.
@Suite struct RuleTestRobustnessTests {
    /// Tokens of the expanding notation that once trapped (`x3`: a repetition of nothing) and
    /// their neighbours: each is a bad value, as in promtool.
    @Test(arguments: ["x3", "x", "-x3", "+x3", "1x-1", "_x-1", "1+", "1-", "2x", "1+-1x2", "e", "1e", "+", "-", "_x", "1+1x"])
    func badExpandingNotationIsAFailure(_ values: String) {
        #expect(throws: (any Error).self) { try RuleTestRunner.expandValues(values) }
    }

    /// An alerting rule's templates are parsed when its file loads (as Prometheus does): one that
    /// does not parse is a problem where it is, in `rules check` as in `serve`.
    @Test func templatesThatDoNotParseAreLoadProblems() {
        let (_, problems) = RuleFileLoader.parse(yaml: """
            groups:
              - name: g
                rules:
                  - alert: A
                    expr: up == 0
                    labels: {summary_label: '{{ $value'}
                    annotations:
                      ok: '{{ $labels.job }}'
                      bad: '{{ nosuch 1 }}'
                  - record: r
                    expr: up
                    labels: {note: '{{ not a template for a recording rule'}
            """, file: "t.yml", templates: AlertTemplate.problem)
        #expect(problems.count == 2, "\(problems)")
        #expect(problems.first?.hasPrefix(#"t.yml:6:33: group "g", rule 1 "A": label "summary_label": unclosed action"#) == true, "\(problems)")
        #expect(problems.last?.hasPrefix(#"t.yml:9:16: group "g", rule 1 "A": annotation "bad": function "nosuch" not defined"#) == true, "\(problems)")
    }

    /// Corpus files with characters deleted, doubled or replaced at random (seeded): the runner
    /// answers each (most fail; some still pass), without trapping.
    @Test func mutatedCorpusFilesNeverTrap() async throws {
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Tests/rules-corpus").standardized
        let dir = try ScratchDirectory.make("aligner-mutated-tests")
        for name in try FileManager.default.contentsOfDirectory(atPath: corpus.path) where name.hasSuffix(".yml") {
            try FileManager.default.copyItem(at: corpus.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        let sources = ["basic_test.yml", "alerts_series_test.yml", "functions_test.yml", "eval_order_test.yml", "no_interval_test.yml"]
        let alphabet = Array(" :-_x0123456789{}[]'\"\n.+abcm")
        // (Seconds of work: on a Dispatch thread, `blocking`, not a cooperative one other suites need.)
        let answered = try await blocking { [dir] in
            var rng = SplitMix64(seed: 7)
            var answered = 0
            for round in 0..<400 {
                var text = Array(try String(contentsOf: corpus.appendingPathComponent(sources[round % sources.count]), encoding: .utf8))
                for _ in 0..<(1 + Int(rng.next() % 4)) {
                    let i = Int(rng.next() % UInt64(text.count))
                    switch rng.next() % 3 {
                    case 0: text.remove(at: i)
                    case 1: text.insert(text[i], at: i)
                    default: text[i] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                    }
                }
                let mutated = String(text)
                // A long run of digits can make an eval_time of years: evaluating up to it is slow, not wrong.
                if mutated.contains(/[0-9]{4,}[smhdwy]/) { continue }
                let file = dir.appendingPathComponent("mutated_test.yml")
                try mutated.write(to: file, atomically: true, encoding: .utf8)
                _ = RuleTestRunner.run(file: file.path)
                answered += 1
            }
            return answered
        }
        #expect(answered > 300)
    }
}
