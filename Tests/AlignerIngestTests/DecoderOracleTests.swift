import Foundation
import AlignerIngest
import AlignerTesting
import Testing

/// The fast decoder against libprotobuf-c on the same bytes.
@Suite struct DecoderOracleTests {
    static let handMade: [TestRequest] = {
        var cases: [TestRequest] = []
        cases.append(TestRequest(series: []))
        cases.append(TestRequest(series: [TestSeries("up", [("job", "api")], samples: [(1_700_000_000_000, 1)])]))
        cases.append(TestRequest(series: [
            TestSeries("http_requests_total", [("code", "500"), ("namespace", "shop"), ("pod", "darwin-store-7d9f")],
                       samples: [(1000, 1), (2000, 2.5), (3000, .infinity), (4000, -0.5)]),
            TestSeries("stale", samples: [(5000, Double(bitPattern: 0x7ff0_0000_0000_0002))]),
            TestSeries("nan", samples: [(6000, .nan), (-7000, -1e308)]),
            TestSeries("unicode_ünïcode", [("emoji", "🚀"), ("empty", "")], samples: [(1, 0)]),
        ]))
        var withExtras = TestSeries("rpc_duration_seconds", [("service", "checkout")], samples: [(10, 0.25)])
        withExtras.exemplars = [TestExemplar(labels: [TestLabel("trace_id", "abc123")], value: 0.3, timestamp: 11)]
        withExtras.fullHistograms = [
            .integer(timestamp: 12, counts: [1, 3, 0, 2]),
            {
                var h = TestHistogram()
                h.timestamp = 13
                h.countIsFloat = true
                h.countBits = (6.0).bitPattern
                h.zeroCountIsFloat = true
                h.zeroCountBits = (1.0).bitPattern
                h.schema = -2
                h.positiveSpans = [TestSpan(-1, 2), TestSpan(3, 1)]
                h.positiveCounts = [(2.0).bitPattern, (1.0).bitPattern, (1.0).bitPattern]
                h.negativeSpans = [TestSpan(0, 1)]
                h.negativeCounts = [(1.0).bitPattern]
                h.resetHint = 3
                return h
            }(),
            {
                var h = TestHistogram.integer(timestamp: 14, counts: [4, 1], schema: -53)
                h.customValues = [(0.1).bitPattern, (0.5).bitPattern]
                return h
            }(),
        ]
        withExtras.metadata = TestMetadata(type: 3, help: "RPC latency.", unit: "seconds")
        withExtras.createdTimestamp = 9
        withExtras.sampleStarts = withExtras.samples.map { $0.timestamp - 1 }
        withExtras.fullHistograms[0].startTimestamp = 3
        cases.append(TestRequest(series: [withExtras], metadata: [TestMetadata(type: 1, familyName: "http_requests_total", help: "Requests.", unit: "")]))
        return cases
    }()

    @Test(arguments: DecoderOracleTests.handMade.indices)
    func handMadeV1(_ index: Int) throws {
        var request = DecoderOracleTests.handMade[index]
        for i in request.series.indices { request.series[i].metadata = nil; request.series[i].createdTimestamp = 0 }
        request.dropStartTimestamps()
        let body = ProtobufC.encodeV1(request)
        #expect(FastDecode.differenceFromOracle(body, version: .v1) == nil)
        let decoded = try FastDecode.decode(body, version: .v1).get()
        #expect(decoded.request == request)
        #expect(decoded.problems.isEmpty)
    }

    @Test(arguments: DecoderOracleTests.handMade.indices)
    func handMadeV2(_ index: Int) throws {
        var request = DecoderOracleTests.handMade[index]
        request.metadata = []
        let body = ProtobufC.encodeV2(request)
        #expect(FastDecode.differenceFromOracle(body, version: .v2) == nil)
        let decoded = try FastDecode.decode(body, version: .v2).get()
        #expect(decoded.request == request)
    }

    @Test(arguments: [RemoteWriteVersion.v1, .v2])
    func everyTruncation(_ version: RemoteWriteVersion) {
        var request = DecoderOracleTests.handMade[3]
        request.series += DecoderOracleTests.handMade[2].series
        if version == .v2 { request.metadata = [] }
        let body = version == .v1 ? ProtobufC.encodeV1(request) : ProtobufC.encodeV2(request)
        var disagreements: [String] = []
        for length in 0..<body.count {
            if let d = FastDecode.differenceFromOracle(Array(body[..<length]), version: version) {
                disagreements.append("length \(length): \(d)")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.prefix(3))")
    }

    @Test(arguments: [RemoteWriteVersion.v1, .v2])
    func randomBodiesAndMutations(_ version: RemoteWriteVersion) {
        var rng = SplitMix64(seed: version == .v1 ? 1 : 2)
        var disagreements: [String] = []
        for round in 0..<400 {
            var request = RandomRequests.make(&rng)
            if version == .v1 {
                for i in request.series.indices { request.series[i].metadata = nil; request.series[i].createdTimestamp = 0 }
                request.dropStartTimestamps()
            } else {
                request.metadata = []
            }
            var body = version == .v1 ? ProtobufC.encodeV1(request) : ProtobufC.encodeV2(request)
            if let d = FastDecode.differenceFromOracle(body, version: version) { disagreements.append("round \(round): \(d)") }
            // Mutate a few bytes and compare again: both must agree on whatever the bytes now say.
            for _ in 0..<8 where !body.isEmpty {
                let at = Int(rng.next() % UInt64(body.count))
                body[at] = UInt8(truncatingIfNeeded: rng.next())
                if let d = FastDecode.differenceFromOracle(body, version: version) {
                    disagreements.append("round \(round) mutated: \(d)")
                }
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements.count) disagreements, first: \(disagreements.first ?? "")")
    }

    @Test func packedAndUnpackedReferencesAgree() throws {
        // labels_refs unpacked (one varint field per ref) and an unknown field in the series.
        var w = WireWriter()
        w.string(4, "")
        w.string(4, "__name__")
        w.string(4, "up")
        w.message(5) { ts in
            ts.tag(1, 0); ts.varint(1)
            ts.int(99, 7)  // unknown field: skipped
            ts.tag(1, 0); ts.varint(2)
            ts.message(2) { $0.double(1, 1); $0.int(2, 5) }
        }
        #expect(FastDecode.differenceFromOracle(w.bytes, version: .v2) == nil)
        let sink = try FastDecode.decode(w.bytes, version: .v2).get()
        #expect(sink.request.series == [TestSeries("up", samples: [(5, 1)])])
    }

    @Test func symbolsAfterSeriesAreFound() throws {
        var w = WireWriter()
        w.message(5) { ts in ts.message(1) { $0.varint(1); $0.varint(2) }; ts.message(2) { $0.double(1, 2); $0.int(2, 9) } }
        w.string(4, "")
        w.string(4, "__name__")
        w.string(4, "late")
        let sink = try FastDecode.decode(w.bytes, version: .v2).get()
        #expect(sink.request.series == [TestSeries("late", samples: [(9, 2)])])
    }

    @Test func referenceOutOfRangeRejectsOnlyThatSeries() throws {
        var w = WireWriter()
        for s in ["", "__name__", "a", "b"] { w.string(4, s) }
        w.message(5) { ts in ts.message(1) { $0.varint(1); $0.varint(2) }; ts.message(2) { $0.double(1, 1); $0.int(2, 1) } }
        w.message(5) { ts in ts.message(1) { $0.varint(1); $0.varint(9) } }
        w.message(5) { ts in ts.message(1) { $0.varint(1) } }
        let sink = try FastDecode.decode(w.bytes, version: .v2).get()
        #expect(sink.problems == [.symbolOutOfRange(reference: 9, symbols: 4), .oddLabelReferences(1)])
        #expect(sink.request.series.first == TestSeries("a", samples: [(1, 1)]))
        #expect(FastDecode.differenceFromOracle(w.bytes, version: .v2) == nil)
    }

    @Test func firstSymbolMustBeEmpty() {
        var w = WireWriter()
        w.string(4, "__name__")
        guard case .failure(let e) = FastDecode.decode(w.bytes, version: .v2) else {
            Issue.record("accepted a symbol table that does not start with \"\"")
            return
        }
        #expect(e.message == "cannot decode remote-write 2.0 body: symbols[0] must be the empty string, got 8 bytes")
    }

    @Test func truncatedBodyAppliesNothing() {
        let body = ProtobufC.encodeV1(DecoderOracleTests.handMade[2])
        guard case .failure(let e) = FastDecode.decode(Array(body.dropLast(3)), version: .v1) else {
            Issue.record("a truncated body was accepted")
            return
        }
        #expect(e.message.hasPrefix("cannot decode remote-write 1.0 body: truncated field (field 1 at byte "))
    }

    @Test func wrongWireTypeInsideSeriesRejectsThatSeries() throws {
        var w = WireWriter()
        w.message(1) { ts in ts.label("__name__", "ok"); ts.sample(1, 1) }
        w.message(1) { ts in ts.label("__name__", "bad"); ts.tag(2, 0); ts.varint(5) }
        let sink = try FastDecode.decode(w.bytes, version: .v1).get()
        #expect(sink.problems == [.malformed(.wrongWireType(field: 2, got: 0))])
        #expect(sink.request.series.count == 2)
        #expect(FastDecode.differenceFromOracle(w.bytes, version: .v1) == nil)
    }

    @Test func canonicalKeyIsFoundInPlaceOnlyWhenSorted() throws {
        let sorted = TestRequest(series: [TestSeries("up", [("instance", "a:1"), ("job", "x")], samples: [(1, 1)])])
        let s = try FastDecode.decode(ProtobufC.encodeV1(sorted), version: .v1).get()
        #expect(s.canonicalKeys.count == 1)
        var unsorted = sorted
        unsorted.series[0].labels.reverse()
        let u = try FastDecode.decode(ProtobufC.encodeV1(unsorted), version: .v1).get()
        #expect(u.canonicalKeys.isEmpty)
    }
}

enum RandomRequests {
    static let names = ["__name__", "job", "instance", "namespace", "pod", "container", "le", "code", "a", "ünï"]

    static func make(_ rng: inout SplitMix64) -> TestRequest {
        var series: [TestSeries] = []
        for _ in 0..<Int(rng.next() % 6) {
            var labels: [TestLabel] = []
            for _ in 0..<Int(rng.next() % 5) {
                labels.append(TestLabel(names.randomElement(using: &rng)!, randomString(&rng)))
            }
            var s = TestSeries(labels: labels)
            for _ in 0..<Int(rng.next() % 4) {
                s.samples.append(WireSample(timestamp: Int64(bitPattern: rng.next()) >> Int(rng.next() % 64), valueBits: rng.next()))
            }
            if rng.next() % 4 == 0 {
                s.exemplars.append(TestExemplar(labels: [TestLabel("trace_id", randomString(&rng))], valueBits: rng.next(), timestamp: Int64(rng.next() % 1000)))
            }
            if rng.next() % 4 == 0 {
                var h = TestHistogram.integer(timestamp: Int64(rng.next() % 1000), counts: (0..<Int(rng.next() % 4)).map { _ in rng.next() % 10 })
                h.resetHint = Int32(rng.next() % 4)
                s.fullHistograms.append(h)
            }
            if rng.next() % 3 == 0 { s.metadata = TestMetadata(type: rng.next() % 8, help: randomString(&rng), unit: randomString(&rng)) }
            if rng.next() % 3 == 0 { s.createdTimestamp = Int64(rng.next() % 100_000) }
            if rng.next() % 3 == 0 { s.sampleStarts = s.samples.map { _ in Int64(rng.next() % 100_000) } }
            if rng.next() % 3 == 0 { for k in s.fullHistograms.indices { s.fullHistograms[k].startTimestamp = Int64(rng.next() % 100_000) } }
            series.append(s)
        }
        var request = TestRequest(series: series)
        if rng.next() % 3 == 0 { request.metadata = [TestMetadata(type: rng.next() % 8, familyName: randomString(&rng), help: "h", unit: "")] }
        return request
    }

    static func randomString(_ rng: inout SplitMix64) -> String {
        let alphabet = Array("abcxyz019_-:.é")
        return String((0..<Int(rng.next() % 9)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
    }
}

/// Inputs the fuzzer once found disagreeing; they must stay in agreement.
@Suite struct FuzzRegressionTests {
    @Test func regressionsAgreeWithOracle() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../fuzz/regressions").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(!files.isEmpty)
        for file in files {
            let data = try [UInt8](Data(contentsOf: directory.appendingPathComponent(file)))
            let version: RemoteWriteVersion = data[0] & 1 == 0 ? .v1 : .v2
            #expect(FastDecode.differenceFromOracle(Array(data.dropFirst()), version: version) == nil, "\(file)")
        }
    }
}
