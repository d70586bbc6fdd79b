import AlignerTesting
import Foundation
import Testing

/// A real Aligner process, started from the built binary (`swift build --build-tests` builds it).
struct AlignerProcess: Sendable {
    static let binary = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../.build/debug/aligner").standardized.path

    let base: String
    let process: Process

    /// Starts `aligner serve --config config` on `port` and waits until it is ready; with `log`,
    /// its log (from level info) goes to that file; `launcher` runs it (`taskset -c 0`, ...).
    static func start(config: String, port: Int, log: String? = nil, launcher: [String] = []) async throws -> AlignerProcess {
        try #require(FileManager.default.isExecutableFile(atPath: binary),
                     "build the aligner binary first (scripts/test.sh runs swift build --build-tests)")
        let p = Process()
        let arguments = ["serve", "--config", config, "--listen", "127.0.0.1:\(port)", "--log-level", log == nil ? "error" : "info"]
        if launcher.isEmpty {
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = arguments
        } else {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = launcher + [binary] + arguments
        }
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        if let log {
            FileManager.default.createFile(atPath: log, contents: nil)
            p.standardError = FileHandle(forWritingAtPath: log)
        } else {
            p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        }
        try p.run()
        let base = "http://127.0.0.1:\(port)"
        for _ in 0..<200 {
            if (try? await HTTPClient.request("GET", base + "/-/ready", timeout: .seconds(1)))?.status == 200 {
                return AlignerProcess(base: base, process: p)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(p.processIdentifier, SIGKILL)
        throw HTTPClient.Failure(description: "aligner did not become ready")
    }

    func write(_ body: [UInt8], headers: [String: String]) async throws -> HTTPClient.Response {
        try await HTTPClient.request("POST", "\(base)/api/v1/write", headers: headers, body: body)
    }

    /// SIGKILL, and wait for the process to be gone.
    func kill9() async throws {
        kill(process.processIdentifier, SIGKILL)
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
    }

    /// SIGTERM; true when the process exited within `seconds` (it is killed otherwise).
    @discardableResult
    func stop(within seconds: Double = 10) -> Bool {
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            return false
        }
        return true
    }
}

/// GETs `base + path` until `until` holds (about `within` at most); returns the last body.
func poll(_ base: String, _ path: String, within: Duration = .seconds(5), until: (String) -> Bool) async throws -> String {
    var body = ""
    for _ in 0..<Int(within / .milliseconds(25)) {
        body = try await HTTPClient.request("GET", base + path).text
        if until(body) { return body }
        try await Task.sleep(for: .milliseconds(25))
    }
    return body
}
