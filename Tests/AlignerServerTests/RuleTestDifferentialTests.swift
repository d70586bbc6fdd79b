import AlignerTesting
import AlignerServer
import Foundation
import Testing
import Yams

/// Every rule-test file of the corpus passes under both `promtool test rules` (Debian's Prometheus
/// 2.42) and Aligner's runner: the two evaluators agree on what those files check.
@Suite struct RuleTestDifferentialTests {
    /// The corpus and the bundled pack's own tests.
    static let corpus: [String] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
        return ["Tests/rules-corpus", "rules"].flatMap { folder -> [String] in
            let dir = root.appendingPathComponent(folder).path
            let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            return files.filter { $0.hasSuffix("_test.yml") }.sorted().map { dir + "/" + $0 }
        }
    }()

    /// Files each checking something false (`Tests/rules-corpus/failing`): both fail them.
    static let failing: [String] = {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Tests/rules-corpus/failing").standardized.path
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return files.filter { $0.hasSuffix("_test.yml") }.sorted().map { dir + "/" + $0 }
    }()

    /// promtool does not know Aligner's rule extensions: copy the test and its rule files to a
    /// temporary folder with `event`, `resolve`, `hooks` and `detector` removed.
    static func forPromtool(_ file: String) throws -> String {
        let dir = try ScratchDirectory.make("aligner-promtool")
        let source = URL(fileURLWithPath: file)
        let testText = try String(contentsOf: source, encoding: .utf8)
        try testText.write(to: dir.appendingPathComponent(source.lastPathComponent), atomically: true, encoding: .utf8)
        let test = try Yams.load(yaml: testText) as? [String: Any] ?? [:]
        // Entries may be glob patterns: copy every file of the folder they match.
        let folder = source.deletingLastPathComponent()
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        let ruleFiles = (test["rule_files"] as? [String] ?? []).flatMap { pattern in names.filter { fnmatch(pattern, $0, 0) == 0 } }
        for ruleFile in ruleFiles {
            var rules = try Yams.load(yaml: String(contentsOf: folder.appendingPathComponent(ruleFile), encoding: .utf8)) as? [String: Any] ?? [:]
            var groups = rules["groups"] as? [[String: Any]] ?? []
            for g in groups.indices {
                groups[g]["rules"] = (groups[g]["rules"] as? [[String: Any]] ?? []).map { rule in
                    rule.filter { !["event", "resolve", "hooks", "detector"].contains($0.key) }
                }
            }
            rules["groups"] = groups
            try Yams.dump(object: rules).write(to: dir.appendingPathComponent(ruleFile), atomically: true, encoding: .utf8)
        }
        return dir.appendingPathComponent(source.lastPathComponent).path
    }

    @Test func corpusIsPresent() {
        #expect(RuleTestDifferentialTests.corpus.count >= 3)
    }

    // Each runner and promtool run blocks: on a Dispatch thread (`blocking`), not a cooperative
    // one, or the largest files hold up the servers of the suites running beside them.
    @Test(arguments: RuleTestDifferentialTests.corpus)
    func passesUnderAligner(_ file: String) async throws {
        let failures = try await blocking { RuleTestRunner.run(file: file) }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    @Test(arguments: RuleTestDifferentialTests.corpus)
    func passesUnderPromtool(_ file: String) async throws {
        let (status, output) = try await blocking { try RuleTestDifferentialTests.promtool(file) }
        #expect(status == 0, "\(output)")
    }

    @Test func failingCorpusIsPresent() {
        #expect(RuleTestDifferentialTests.failing.count >= 12)
    }

    @Test(arguments: RuleTestDifferentialTests.failing)
    func failsUnderAligner(_ file: String) async throws {
        let failures = try await blocking { RuleTestRunner.run(file: file) }
        #expect(!failures.isEmpty)
    }

    @Test(arguments: RuleTestDifferentialTests.failing)
    func failsUnderPromtool(_ file: String) async throws {
        let (status, output) = try await blocking { try RuleTestDifferentialTests.promtool(file) }
        #expect(status == 1, "\(output)")
        #expect(output.contains("FAILED"), "\(output)")
    }

    /// `promtool test rules` on a copy of the file made for it: its exit status and output.
    static func promtool(_ file: String) throws -> (Int32, String) {
        let promtool = ProcessInfo.processInfo.environment["PROMTOOL_BINARY"] ?? "/usr/bin/promtool"
        try #require(FileManager.default.isExecutableFile(atPath: promtool),
                     "promtool is not installed: run ./scripts/test.sh, which installs Debian's prometheus")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: promtool)
        process.arguments = ["test", "rules", try forPromtool(file)]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }
}
