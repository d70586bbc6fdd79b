import AlignerServer
import Foundation
import Testing

/// Every rule-test file of the corpus passes under both `promtool test rules` (Debian's Prometheus
/// 2.42) and Aligner's runner: the two evaluators agree on what those files check.
@Suite struct RuleTestDifferentialTests {
    static let corpus: [String] = {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../rules-corpus").standardized.path
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return files.filter { $0.hasSuffix("_test.yml") }.sorted().map { dir + "/" + $0 }
    }()

    @Test func corpusIsPresent() {
        #expect(RuleTestDifferentialTests.corpus.count >= 2)
    }

    @Test(arguments: RuleTestDifferentialTests.corpus)
    func passesUnderAligner(_ file: String) {
        let failures = RuleTestRunner.run(file: file)
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    @Test(arguments: RuleTestDifferentialTests.corpus)
    func passesUnderPromtool(_ file: String) throws {
        let promtool = ProcessInfo.processInfo.environment["PROMTOOL_BINARY"] ?? "/usr/bin/promtool"
        try #require(FileManager.default.isExecutableFile(atPath: promtool),
                     "promtool is not installed: run ./scripts/test.sh, which installs Debian's prometheus")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: promtool)
        process.arguments = ["test", "rules", file]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(output)")
    }
}
