import Foundation
import AlignerIngest
import AlignerServer
import AlignerTesting
import Testing

/// The receiver over real HTTP on loopback: status codes, headers and messages of the
/// remote-write 1.0 and 2.0 specifications.
@Suite(.serialized) struct RemoteWriteEndpointTests {
    static let request = TestRequest(series: [
        TestSeries("kube_deployment_status_replicas_ready", [("namespace", "shop"), ("deployment", "darwin-store")],
                   samples: [(1_700_000_000_000, 4)]),
        TestSeries("kube_deployment_spec_replicas", [("namespace", "shop"), ("deployment", "darwin-store")],
                   samples: [(1_700_000_000_000, 5)]),
    ])

    @Test func v1SuccessIs204WithoutWrittenHeaders() async throws {
        let s = try await RunningServer.start()
        defer { Task { await s.stop() } }
        let r = try await s.write(Snappy.compress(ProtobufC.encodeV1(Self.request)), headers: v1Headers)
        #expect(r.status == 204)
        #expect(r.headers["x-prometheus-remote-write-samples-written"] == nil)
        #expect(try await s.metric("aligner_ingest_samples_total") == 2)
        #expect(try await s.metric("aligner_ingest_series_active") == 2)
        #expect(try await s.metric("aligner_http_requests_total{handler=\"write\",code=\"204\"}") == 1)
        let series = try await HTTPClient.request("GET", "\(s.base)/api/v1/series?match[]=kube_deployment_spec_replicas").text
        #expect(series == #"{"data":[{"__name__":"kube_deployment_spec_replicas","deployment":"darwin-store","namespace":"shop"}],"status":"success"}"#)
    }

    /// Writes `request` as 1.0 and checks it was accepted.
    static func writeSample(_ s: RunningServer) async throws {
        let r = try await s.write(Snappy.compress(ProtobufC.encodeV1(request)), headers: v1Headers)
        #expect(r.status == 204)
    }

    /// A client that sends `Expect: 100-continue` (libcurl does for bodies over 1 MiB) gets
    /// `100 Continue` before it sends the body, then the final answer. Over a raw socket, since
    /// an HTTP client would send the body anyway after waiting a while.
    @Test func expectContinueIsAnsweredBeforeTheBody() async throws {
        let s = try await RunningServer.start()
        defer { Task { await s.stop() } }
        let body = Snappy.compress(ProtobufC.encodeV1(Self.request))
        let connection = try RawConnection(port: s.port)
        try connection.send(Array((
            "POST /api/v1/write HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
                + "Content-Encoding: snappy\r\nExpect: 100-continue\r\nContent-Length: \(body.count)\r\n\r\n").utf8))
        let interim = try connection.readHead()
        #expect(interim.hasPrefix("HTTP/1.1 100 Continue"), "\(interim)")
        try connection.send(body)
        let final = try connection.readHead()
        #expect(final.hasPrefix("HTTP/1.1 204"), "\(final)")
        #expect(try await s.metric("aligner_ingest_samples_total") == 2)
    }

    @Test func aKnownPathWithAnotherMethodIs405WithAllow() async throws {
        let s = try await RunningServer.start()
        defer { Task { await s.stop() } }
        let write = try await HTTPClient.request("GET", "\(s.base)/api/v1/write")
        #expect(write.status == 405 && write.headers["allow"] == "POST")
        let ack = try await HTTPClient.request("GET", "\(s.base)/api/v1/events/evt-00000000/ack")
        #expect(ack.status == 405 && ack.headers["allow"] == "POST")
        let silences = try await HTTPClient.request("DELETE", "\(s.base)/api/v1/silences")
        #expect(silences.status == 405 && silences.headers["allow"] == "GET, POST")
        #expect(silences.text.contains("not allowed"))
        #expect(try await HTTPClient.request("GET", "\(s.base)/api/v1/nothing-here").status == 404)
        #expect(try await HTTPClient.request("GET", "\(s.base)/api/v1/events/evt-00000000").status == 404)
    }

    @Test func v1WithoutContentTypeOrEncodingIsAccepted() async throws {
        let s = try await RunningServer.start()
        defer { Task { await s.stop() } }
        let r = try await s.write(Snappy.compress(ProtobufC.encodeV1(Self.request)), headers: ["Content-Type": ""])
        #expect(r.status == 204)
    }

    @Test func v2SuccessCarriesWrittenHeaders() async throws {
        let s = try await RunningServer.start()
        defer { Task { await s.stop() } }
        var request = Self.request
        request.series[0].exemplars = [TestExemplar(labels: [TestLabel("trace_id", "1")], value: 4, timestamp: 1)]
        request.series[1].fullHistograms = [.integer(timestamp: 1_700_000_000_000, counts: [1, 2])]
        let r = try await s.write(Snappy.compress(ProtobufC.encodeV2(request)), headers: v2Headers)
        #expect(r.status == 204)
        #expect(r.headers["x-prometheus-remote-write-samples-written"] == "2")
        #expect(r.headers["x-prometheus-remote-write-histograms-written"] == "1")
        #expect(r.headers["x-prometheus-remote-write-exemplars-written"] == "1")
    }

    @Test func partialWriteIs400WithCountsAndTheValidSeriesApplied() async throws {
        let s = try await RunningServer.start()
        defer { Task { await s.stop() } }
        var request = Self.request
        request.series.append(TestSeries(labels: [TestLabel("job", "no-name")], samples: [WireSample(timestamp: 1, valueBits: 0)]))
        let r = try await s.write(Snappy.compress(ProtobufC.encodeV2(request)), headers: v2Headers)
        #expect(r.status == 400)
        #expect(r.headers["x-prometheus-remote-write-samples-written"] == "2")
        #expect(r.text == "rejected 1 of 3 series (1 missing_metric_name); rejected 1 of 3 samples (1 in rejected series); for example: series has no __name__ label: {job=\"no-name\"}\n")
        #expect(try await s.metric("aligner_ingest_series_active") == 2)
        #expect(try await s.metric("aligner_ingest_samples_rejected_total{reason=\"invalid_series\"}") == 1)
    }

    @Test(arguments: [
        (["Content-Type": "application/json", "Content-Encoding": "snappy"], "unsupported Content-Type \"application/json\""),
        (["Content-Type": "application/x-protobuf;proto=io.prometheus.write.v3.Request", "Content-Encoding": "snappy"], "unsupported remote-write message proto=io.prometheus.write.v3.Request"),
        (["Content-Type": "application/x-protobuf", "Content-Encoding": "zstd"], "unsupported Content-Encoding \"zstd\""),
        (["Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"], "unsupported Content-Encoding \"gzip\""),
    ])
    func unsupportedMediaIs415(_ headers: [String: String], _ message: String) async throws {
        let s = try await RunningServer.start()
        defer { Task { await s.stop() } }
        let r = try await s.write(Snappy.compress(ProtobufC.encodeV1(Self.request)), headers: headers)
        #expect(r.status == 415)
        #expect(r.text.hasPrefix(message))
    }

    @Test func framedSnappyIs415() async throws {
        let s = try await RunningServer.start()
        defer { Task { await s.stop() } }
        let framed: [UInt8] = [0xff, 0x06, 0x00, 0x00] + Array("sNaPpY".utf8) + [0x01, 0x05, 0x00, 0x00, 0, 0, 0, 0, 0]
        let r = try await s.write(framed, headers: v2Headers)
        #expect(r.status == 415)
        #expect(r.headers["x-prometheus-remote-write-samples-written"] == "0")
        #expect(r.text.contains("snappy framed format is not supported"))
    }

    @Test func oversizedBodiesAre400NamingTheKey() async throws {
        let s = try await RunningServer.start { $0.ingest.maxBodyBytes = 100; $0.ingest.maxDecodedBytes = 50 }
        defer { Task { await s.stop() } }
        let big = try await s.write([UInt8](repeating: 0, count: 101), headers: v1Headers)
        #expect(big.status == 400)
        #expect(big.text == "request body of 101 bytes exceeds limit 100 (ingest.max_body_bytes)\n")
        let raw = ProtobufC.encodeV1(TestRequest(series: (0..<5).map { TestSeries("m", [("i", "\($0)")], samples: [(1, 1)]) }))
        let declared = try await s.write(Snappy.compress(raw), headers: v1Headers)
        #expect(declared.status == 400)
        #expect(declared.text == "cannot decompress remote-write body: declared size \(raw.count) exceeds limit 50 (ingest.max_decoded_bytes)\n")
    }

    @Test func malformedBodiesAre400() async throws {
        let s = try await RunningServer.start()
        defer { Task { await s.stop() } }
        let notSnappy = try await s.write(Array("hello".utf8), headers: v1Headers)
        #expect(notSnappy.status == 400)
        let truncated = ProtobufC.encodeV1(Self.request).dropLast(2)
        let badProto = try await s.write(Snappy.compress(Array(truncated)), headers: v1Headers)
        #expect(badProto.status == 400)
        #expect(badProto.text.hasPrefix("cannot decode remote-write 1.0 body: truncated field"))
        let empty = try await s.write([], headers: v1Headers)
        #expect(empty.status == 400)
        #expect(try await s.metric("aligner_ingest_samples_total") == 0)
    }

    @Test func outOfOrderIsReportedAndRetriesAccepted() async throws {
        let s = try await RunningServer.start()
        defer { Task { await s.stop() } }
        let body = Snappy.compress(ProtobufC.encodeV1(Self.request))
        #expect(try await s.write(body, headers: v1Headers).status == 204)
        #expect(try await s.write(body, headers: v1Headers).status == 204)  // identical retry
        var older = Self.request
        older.series[0].samples = [WireSample(timestamp: 1_600_000_000_000, valueBits: (4.0).bitPattern)]
        older.series.removeLast()
        let r = try await s.write(Snappy.compress(ProtobufC.encodeV1(older)), headers: v1Headers)
        #expect(r.status == 400)
        #expect(r.text.contains("1 out of order"))
        #expect(try await s.metric("aligner_ingest_samples_rejected_total{reason=\"out_of_order\"}") == 1)
        #expect(try await s.metric("aligner_ingest_samples_duplicate_total") == 2)
    }

    @Test func overloadIs503WithRetryAfter() async throws {
        let s = try await RunningServer.start { $0.ingest.maxInflightBytes = 64 }
        defer { Task { await s.stop() } }
        // Another request holds bytes in flight.
        #expect(s.server.ingestor.reserve(60))
        let body = Snappy.compress(ProtobufC.encodeV2(Self.request))
        let r = try await s.write(body, headers: v2Headers)
        #expect(r.status == 503)
        #expect(r.headers["retry-after"] == "1")
        #expect(r.headers["x-prometheus-remote-write-samples-written"] == "0")
        s.server.ingestor.release(60)
        // Alone, the same request is admitted.
        #expect(try await s.write(body, headers: v2Headers).status == 204)
        #expect(s.server.ingestor.inflightBytes == 0)
    }

    @Test func healthReadyAndMetrics() async throws {
        let s = try await RunningServer.start()
        defer { Task { await s.stop() } }
        #expect(try await HTTPClient.request("GET", "\(s.base)/-/healthy").status == 200)
        #expect(try await HTTPClient.request("GET", "\(s.base)/-/ready").status == 200)
        let metrics = try await HTTPClient.request("GET", "\(s.base)/metrics")
        #expect(metrics.status == 200)
        for name in ["aligner_ingest_decode_seconds_bucket", "aligner_ingest_body_bytes_total", "aligner_ingest_series_memory_bytes"] {
            #expect(metrics.text.contains(name))
        }
    }
}

/// A TCP connection to 127.0.0.1 read and written byte by byte, with a 10 s receive timeout, for
/// what an HTTP client hides.
final class RawConnection {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else {
            close(fd)
            throw HTTPClient.Failure(description: "cannot connect to 127.0.0.1:\(port)")
        }
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { throw HTTPClient.Failure(description: "write failed") }
            sent += n
        }
    }

    /// A response's status line and headers, up to the blank line (nothing past it is read).
    func readHead() throws -> String {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while !bytes.suffix(4).elementsEqual([13, 10, 13, 10]) {
            guard read(fd, &byte, 1) == 1 else {
                throw HTTPClient.Failure(description: "no complete response head within 10 s; got \(String(decoding: bytes, as: UTF8.self))")
            }
            bytes.append(byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
