import AlignerEngine
import AlignerRules
import AlignerServer
import ArgumentParser
import Foundation
import Logging

@main
struct Aligner: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aligner",
        abstract: "Watches Prometheus remote-write streams and opens one event per troubled workload.",
        subcommands: [Serve.self, Rules.self],
        defaultSubcommand: Serve.self)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the remote-write receiver and the HTTP API.")

    @Option(name: .long, help: "YAML configuration file (env ALIGNER_CONFIG).")
    var config: String?

    @Option(name: .long, help: "Address to listen on, host:port (default 127.0.0.1:9095; env ALIGNER_LISTEN).")
    var listen: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical (env ALIGNER_LOG_LEVEL).")
    var logLevel: String?

    func run() async throws {
        let eventLoops = AlignerServer.fitEventLoopsToAffinity()
        var configuration: AlignerConfiguration
        do {
            let file = config ?? ProcessInfo.processInfo.environment["ALIGNER_CONFIG"]
            configuration = try file.map { try .load(file: $0) } ?? .init()
            try configuration.applyEnvironment()
            if let listen {
                guard let address = ListenAddress(parsing: listen) else {
                    throw ValidationError("--listen must be host:port, got \"\(listen)\"")
                }
                configuration.listen = address
            }
            if let logLevel {
                guard let level = Logger.Level(rawValue: logLevel.lowercased()) else {
                    throw ValidationError("--log-level: unknown level \"\(logLevel)\"")
                }
                configuration.logLevel = level
            }
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
        let level = configuration.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "aligner")
        if let eventLoops {
            logger.info("event loops sized to the CPUs this process may run on", metadata: ["loops": "\(eventLoops)"])
        }
        if configuration.batchScheduling {
            switch AlignerServer.useBatchScheduling() {
            case .success(let threads): logger.debug("threads under SCHED_BATCH", metadata: ["threads": "\(threads)"])
            case .failure(let error): logger.warning("cannot use SCHED_BATCH (cpu_scheduling); running as started", metadata: ["error": "\(error)"])
            }
        }
        let server: AlignerServer
        do {
            server = try AlignerServer(configuration: configuration, logger: logger)
        } catch let error as RuleFileError {
            throw ValidationError("cannot load rules:\n" + error.description)
        }
        try await server.run()
    }
}

struct Rules: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work with Prometheus rule files.",
        subcommands: [Check.self, Test.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate rule files without running them; every problem is reported as file:line:col.")

        @Argument(help: "Rule files (Prometheus format with Aligner's extensions), or folders of them (their *.yml and *.yaml, as rules.paths reads them).")
        var files: [String]

        func run() throws {
            var failed = false
            for file in RuleFileLoader.expandingFolders(files) {
                print("Checking \(file)")
                do {
                    let groups = try RuleFileLoader.load(files: [file], templates: AlertTemplate.problem)
                    print("  SUCCESS: \(groups.reduce(0) { $0 + $1.rules.count }) rules found")
                } catch let error as RuleFileError {
                    failed = true
                    print("  FAILED:")
                    for problem in error.problems { FileHandle.standardError.write(Data((problem + "\n").utf8)) }
                }
            }
            if failed { throw ExitCode(1) }
        }
    }

    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run promtool rule-test files unchanged (rule_files, input_series, alert_rule_test, promql_expr_test).")

        @Argument(help: "Rule-test files.")
        var files: [String]

        func run() throws {
            var failed = false
            for file in files {
                print("Unit Testing:  \(file)")
                let failures = RuleTestRunner.run(file: file) { print("  WARNING: \($0)") }
                if failures.isEmpty {
                    print("  SUCCESS\n")
                } else {
                    failed = true
                    print("  FAILED:")
                    for f in failures { print("    " + f) }
                    print("")
                }
            }
            if failed { throw ExitCode(1) }
        }
    }
}
