import AlignerServer
import Foundation
import AlignerTesting
import Logging
import ServiceLifecycle

/// A real Aligner server on 127.0.0.1 with an ephemeral port, for the length of a test.
final class RunningServer: Sendable {
    let server: AlignerServer
    let port: Int
    let task: Task<Void, any Error>
    let group: ServiceGroup

    var base: String { "http://127.0.0.1:\(port)" }

    private init(server: AlignerServer, port: Int, task: Task<Void, any Error>, group: ServiceGroup) {
        self.group = group
        self.server = server
        self.port = port
        self.task = task
    }

    static func start(_ configure: (inout AlignerConfiguration) -> Void = { _ in }) async throws -> RunningServer {
        var configuration = AlignerConfiguration()
        configuration.listen = ListenAddress(host: "127.0.0.1", port: 0)
        configuration.dataDirectory = ScratchDirectory.path("aligner-data")
        configure(&configuration)
        var logger = Logger(label: "aligner-test")
        logger.logLevel = .warning
        let server = try AlignerServer(configuration: configuration, logger: logger)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let group = server.makeServiceGroup { port in continuation.yield(port) }
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw HTTPClient.Failure(description: "server did not start") }
        return RunningServer(server: server, port: port, task: task, group: group)
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }

    /// Posts a remote-write body.
    func write(_ body: [UInt8], headers: [String: String]) async throws -> HTTPClient.Response {
        try await HTTPClient.request("POST", "\(base)/api/v1/write", headers: headers, body: body)
    }

    /// One value from `/metrics`, by its full series text (`name{labels}`).
    func metric(_ series: String) async throws -> Double? {
        let text = try await HTTPClient.request("GET", "\(base)/metrics").text
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }
}

let v1Headers = [
    "Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0", "User-Agent": "aligner-tests",
]
let v2Headers = [
    "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request", "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "2.0.0", "User-Agent": "aligner-tests",
]
