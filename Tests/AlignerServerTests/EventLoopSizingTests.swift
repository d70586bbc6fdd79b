import AlignerIngest
import AlignerTesting
import Foundation
import Testing

/// `aligner serve` runs as many event loops as the CPUs it may run on: pinned with taskset to
/// one CPU it runs one (NIO alone would count the machine's cores), and still serves writes.
@Suite struct EventLoopSizingTests {
    static func start(launcher: [String], config extra: String = "") async throws -> (AlignerProcess, String) {
        let dir = try ScratchDirectory.make("aligner-loops")
        try "rules: {paths: []}\nevents: {data_dir: \(dir.path)/data}\n\(extra)"
            .write(to: dir.appendingPathComponent("aligner.yml"), atomically: true, encoding: .utf8)
        let log = dir.appendingPathComponent("aligner.log").path
        let aligner = try await AlignerProcess.start(
            config: dir.appendingPathComponent("aligner.yml").path, port: try freeLoopbackPort(), log: log, launcher: launcher)
        return (aligner, log)
    }

    /// The CPUs this test process may run on (a launched Aligner inherits them).
    static let allowedCPUs: Int = {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let mask = status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed:") }?.dropFirst("Cpus_allowed:".count) ?? ""
        return mask.compactMap { $0.hexDigitValue }.reduce(0) { $0 + $1.nonzeroBitCount }
    }()

    static func threadNames(_ pid: Int32) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").map {
            try String(contentsOfFile: "/proc/\(pid)/task/\($0)/comm", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    @Test(.enabled(if: allowedCPUs > 1, "needs more than one CPU to run on"), .timeLimit(.minutes(1)))
    func pinnedToOneCPUItRunsOneLoop() async throws {
        let (aligner, _) = try await Self.start(launcher: ["taskset", "-c", "0"])
        defer { aligner.stop(within: 0) }
        let request = TestRequest(series: [TestSeries("up", [("job", "pinned")], samples: [(1_700_000_000_000, 1)])])
        #expect(try await aligner.write(Snappy.compress(ProtobufC.encodeV1(request)), headers: v1Headers).status == 204)
        // One loop thread (chosen by Aligner, or by NIO itself where a cgroup quota allows one core).
        #expect(try Self.threadNames(aligner.process.processIdentifier).filter { $0.hasPrefix("NIO-SGLTN") }.count == 1)
    }

    @Test(.enabled(if: allowedCPUs > 1, "needs more than one CPU to run on"), .timeLimit(.minutes(1)))
    func unpinnedNIOChoosesAsBefore() async throws {
        let (aligner, log) = try await Self.start(launcher: [])
        defer { aligner.stop(within: 0) }
        // NIO's own count stands (the machine's cores, or fewer under a cgroup quota).
        #expect(try !String(contentsOfFile: log, encoding: .utf8).contains("loops="))
    }

    /// The scheduling policy of each of a process' threads (0 SCHED_OTHER, 3 SCHED_BATCH).
    static func policies(_ pid: Int32) throws -> [Int] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").compactMap { tid in
            let sched = try String(contentsOfFile: "/proc/\(pid)/task/\(tid)/sched", encoding: .utf8)
            return sched.split(separator: "\n").first { $0.hasPrefix("policy") }?.split(separator: ":").last
                .flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        }
    }

    /// By default every thread, those serving requests included, runs under SCHED_BATCH;
    /// `cpu_scheduling: normal` leaves them as started.
    @Test(.timeLimit(.minutes(1)))
    func threadsRunUnderTheConfiguredPolicy() async throws {
        let request = TestRequest(series: [TestSeries("up", [("job", "sched")], samples: [(1_700_000_000_000, 1)])])
        for (config, policy) in [("", 3), ("cpu_scheduling: normal\n", 0)] {
            let (aligner, _) = try await Self.start(launcher: [], config: config)
            defer { aligner.stop(within: 0) }
            #expect(try await aligner.write(Snappy.compress(ProtobufC.encodeV1(request)), headers: v1Headers).status == 204)
            let policies = try Self.policies(aligner.process.processIdentifier)
            #expect(policies.count >= 3 && Set(policies) == [policy], "\(config): \(policies)")
        }
    }
}
