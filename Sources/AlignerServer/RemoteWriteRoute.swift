import AlignerCore
import AlignerIngest
import HTTPTypes
import Hummingbird
import NIOCore

/// `POST /api/v1/write`: content negotiation, body limits and the status codes of the remote-write
/// 1.0 and 2.0 specifications. 400 stops a sender's retries; 503 (with Retry-After) asks for them.
struct RemoteWriteRoute: Sendable {
    let ingestor: Ingestor
    let metrics: IngestMetrics

    static let samplesWritten = HTTPField.Name("X-Prometheus-Remote-Write-Samples-Written")!
    static let histogramsWritten = HTTPField.Name("X-Prometheus-Remote-Write-Histograms-Written")!
    static let exemplarsWritten = HTTPField.Name("X-Prometheus-Remote-Write-Exemplars-Written")!

    /// What the request's headers ask for, or why it cannot be served.
    enum Negotiation: Equatable {
        case accepted(RemoteWriteVersion)
        case unsupported(String, RemoteWriteVersion?)
    }

    /// Reads `Content-Type` and `Content-Encoding` as Prometheus' own receiver does: no content
    /// type means 1.0; `proto=` picks the message; only snappy (block) encoding is served.
    static func negotiate(contentType: String?, contentEncoding: String?) -> Negotiation {
        var version = RemoteWriteVersion.v1
        if let contentType, !contentType.trimmingSpaces.isEmpty {
            let parts = contentType.split(separator: ";").map { String($0).trimmingSpaces }
            guard parts[0].lowercased() == "application/x-protobuf" else {
                return .unsupported("unsupported Content-Type \"\(contentType)\": want application/x-protobuf (proto=prometheus.WriteRequest or io.prometheus.write.v2.Request)", nil)
            }
            for parameter in parts.dropFirst() {
                let kv = parameter.split(separator: "=", maxSplits: 1).map { String($0).trimmingSpaces }
                guard kv.count == 2, kv[0].lowercased() == "proto" else { continue }
                let proto = kv[1].trimmingCharacters(in: "\"")
                switch proto {
                case "prometheus.WriteRequest": version = .v1
                case "io.prometheus.write.v2.Request": version = .v2
                default:
                    return .unsupported("unsupported remote-write message proto=\(proto): want prometheus.WriteRequest or io.prometheus.write.v2.Request", nil)
                }
            }
        }
        if let encoding = contentEncoding?.trimmingSpaces, !encoding.isEmpty, encoding.lowercased() != "snappy" {
            return .unsupported("unsupported Content-Encoding \"\(encoding)\": only snappy (block format) is supported", version)
        }
        return .accepted(version)
    }

    func handle(_ request: Request, context: some RequestContext) async throws -> Response {
        let negotiation = RemoteWriteRoute.negotiate(
            contentType: request.headers[.contentType], contentEncoding: request.headers[.contentEncoding])
        let version: RemoteWriteVersion
        switch negotiation {
        case .unsupported(let message, let v):
            return respond(.unsupportedMediaType, message, version: v, outcome: nil)
        case .accepted(let v):
            version = v
        }
        let limit = ingestor.limits.maxBodyBytes
        let declaredLength = request.headers[.contentLength].flatMap(Int.init)
        if let declaredLength, declaredLength > limit {
            return respond(.badRequest, "request body of \(declaredLength) bytes exceeds limit \(limit) (ingest.max_body_bytes)",
                           version: version, outcome: nil)
        }
        // The body counts against ingest.max_inflight_bytes while it is received and decoded.
        var reserved = 0
        defer { ingestor.release(reserved) }
        func overloaded() -> Response {
            var response = respond(
                .serviceUnavailable,
                "too many bytes in flight (limit \(ingestor.limits.maxInflightBytes), ingest.max_inflight_bytes); retry later",
                version: version, outcome: nil)
            response.headers[.retryAfter] = "1"
            return response
        }
        if let declaredLength {
            guard ingestor.reserve(declaredLength) else { return overloaded() }
            reserved = declaredLength
        }
        var body: ByteBuffer?
        for try await chunk in request.body {
            if body == nil {
                body = chunk
            } else {
                body!.writeImmutableBuffer(chunk)
            }
            if body!.readableBytes > limit {
                return respond(.badRequest, "request body exceeds limit \(limit) bytes (ingest.max_body_bytes)",
                               version: version, outcome: nil)
            }
            if body!.readableBytes > reserved {
                let more = body!.readableBytes - reserved
                guard ingestor.reserve(more, held: reserved) else { return overloaded() }
                reserved += more
            }
        }
        guard let body, body.readableBytes > 0 else {
            return respond(.badRequest, "empty request body: want a snappy-compressed remote-write message",
                           version: version, outcome: nil)
        }
        let start = ContinuousClock.now
        let now = WallClock.nowMilliseconds()
        let result: Result<WriteOutcome, IngestError> = body.withUnsafeReadableBytes { bytes in
            Result { () throws(IngestError) in try ingestor.write(compressed: bytes, version: version, now: now, held: reserved) }
        }
        metrics.decodeSeconds.record(ContinuousClock.now - start)
        metrics.compressedBytes.increment(by: Int64(body.readableBytes))
        switch result {
        case .success(let outcome):
            metrics.record(outcome)
            for election in outcome.replicaElections { context.logger.info("\(election)") }
            if outcome.hasRejections {
                context.logger.debug("remote write partly rejected", metadata: ["reason": "\(outcome.message)"])
                return respond(.badRequest, outcome.message, version: version, outcome: outcome)
            }
            // A standby replica's request: taken (a sender must not retry it), not written.
            if let why = outcome.deduplicated { return respond(.accepted, why, version: version, outcome: outcome) }
            return respond(.noContent, nil, version: version, outcome: outcome)
        case .failure(let error):
            switch error.kind {
            case .invalid: return respond(.badRequest, error.message, version: version, outcome: nil)
            case .unsupportedEncoding: return respond(.unsupportedMediaType, error.message, version: version, outcome: nil)
            case .overloaded:
                var response = respond(.serviceUnavailable, error.message, version: version, outcome: nil)
                response.headers[.retryAfter] = "1"
                return response
            }
        }
    }

    func respond(_ status: HTTPResponse.Status, _ message: String?, version: RemoteWriteVersion?, outcome: WriteOutcome?) -> Response {
        metrics.record(status: status.code)
        var headers = HTTPFields()
        if version == .v2 {
            headers[RemoteWriteRoute.samplesWritten] = String(outcome?.samplesWritten ?? 0)
            headers[RemoteWriteRoute.histogramsWritten] = String(outcome?.histogramsWritten ?? 0)
            headers[RemoteWriteRoute.exemplarsWritten] = String(outcome?.exemplarsWritten ?? 0)
        }
        guard let message else { return Response(status: status, headers: headers) }
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: message + "\n")))
    }
}

extension String {
    var trimmingSpaces: String { trimmingCharacters(in: " \t") }

    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return String(s)
    }
}
