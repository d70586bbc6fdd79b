import AlignerCore
import AlignerIngest
import AlignerTesting
import Testing

/// The ingest path finds a known series from its raw label bytes and reads labels only when the
/// bytes match no series. It must do exactly what reading every label of every series does (the
/// path the decoder oracle tests check against libprotobuf-c).
@Suite struct SkimmingTests {
    /// Label sets that series are drawn from, so that later requests find earlier series: sorted
    /// and unsorted, empty values, long values (two-byte lengths), and invalid sets.
    static let pool: [[TestLabel]] = {
        let long = String(repeating: "x", count: 130), longer = String(repeating: "é", count: 200)
        var sets: [[TestLabel]] = []
        for i in 0..<12 {
            sets.append([TestLabel("__name__", "m\(i % 3)"), TestLabel("job", "j\(i)"), TestLabel("pod", i % 4 == 0 ? long : "p\(i)")])
        }
        sets.append([TestLabel("__name__", "up"), TestLabel("image", longer), TestLabel("zone", "")])
        sets.append([TestLabel("__name__", "up"), TestLabel("a", "1"), TestLabel("a", "2")])  // duplicate name
        sets.append([TestLabel("job", "no-name")])
        sets.append([TestLabel("__name__", "up"), TestLabel("", "empty-name")])
        sets.append([TestLabel("__name__", "up"), TestLabel(name: Array("bad".utf8), value: [0xC3, 0x28])])  // invalid UTF-8
        sets.append([])
        return sets
    }()

    /// A request of series drawn from the pool, some more than once (as Prometheus sends a series
    /// with two samples in a batch). One label set is encoded one way within a request (sorted, or
    /// shuffled); see `SeriesTable.apply` on mixed encodings of one series.
    static func request(_ rng: inout SplitMix64, round: Int) -> TestRequest {
        var series: [TestSeries] = []
        var encodings: [Int: [TestLabel]] = [:]
        for _ in 0..<Int(rng.next() % 8) {
            let index = Int(rng.next() % UInt64(pool.count))
            if encodings[index] == nil {
                var labels = pool[index]
                if rng.next() % 4 == 0 { labels.shuffle(using: &rng) }
                encodings[index] = labels
            }
            var s = TestSeries(labels: encodings[index]!)
            for k in 0..<Int(1 + rng.next() % 3) {
                // Mostly new timestamps; sometimes an old one, a repeat, or a zero value (left out on the wire).
                // Every other round in milliseconds of now (six varint bytes, as Prometheus sends,
                // whose one-sample series are read from their tail: `RemoteWriteDecoder.tailSample`).
                let t = Int64(round * 10 + k) - (rng.next() % 6 == 0 ? 25 : 0) + (round % 2 == 1 ? 1_760_000_000_000 : 0)
                let value: Double = rng.next() % 3 == 0 ? 0 : Double(rng.next() % 100)
                s.samples.append(WireSample(timestamp: t, valueBits: value.bitPattern))
            }
            if rng.next() % 10 == 0 {
                s.exemplars.append(TestExemplar(labels: [TestLabel("trace_id", "t\(round)")], valueBits: 0, timestamp: 1))
            }
            series.append(s)
        }
        return TestRequest(series: series)
    }

    @Test func skimmingAgreesWithReadingEveryLabel() {
        var rng = SplitMix64(seed: 11)
        let check = SkimmingCheck()
        var disagreements: [String] = []
        for round in 0..<1500 {
            var body = ProtobufC.encodeV1(SkimmingTests.request(&rng, round: round))
            if round % 4 == 3, !body.isEmpty {
                for _ in 0..<Int(1 + rng.next() % 3) {
                    body[Int(rng.next() % UInt64(body.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            if let d = check.difference(body) { disagreements.append("round \(round): \(d)") }
        }
        #expect(disagreements.isEmpty, "\(disagreements.count) disagreements, first: \(disagreements.first ?? "")")
        #expect(check.tables().skimming == check.tables().reading)
        #expect(check.skimming.table.activeSeries > 10)
    }

    /// One series sent twice in a request, encoded two ways (the fuzzer's find, 2026-11-27):
    /// `up` with an unknown field after its labels at t1, then `up{job\x12\x03a=""}` (an empty
    /// value: no label) at a later t2. Reading every label takes both samples in order; the
    /// skimming path applies the first encoding after the rest, so it finds t1 out of order. The
    /// same samples are taken in all, the same series held; which one was late differs.
    @Test func aSeriesEncodedTwoWaysIsTakenInAnyOrder() {
        let body: [UInt8] = [
            10, 46, 10, 14, 10, 8, 95, 95, 110, 97, 109, 101, 95, 95, 18, 2, 117, 112, 10, 10, 10, 2, 0, 0, 0, 0, 0, 0, 0,
            105, 18, 16, 9, 2, 0, 0, 0, 0, 0, 240, 63, 16, 128, 128, 179, 193, 156, 51, 10, 36, 10, 14, 10, 8, 95, 95,
            110, 97, 109, 101, 95, 95, 18, 2, 117, 112, 74, 9, 10, 3, 106, 111, 98, 18, 2, 100, 98, 18, 7, 16, 128, 128,
            179, 193, 156, 51, 10, 46, 10, 14, 10, 8, 95, 95, 110, 97, 109, 101, 95, 95, 18, 2, 117, 112, 10, 10, 10, 6,
            106, 111, 98, 18, 3, 97, 112, 105, 18, 16, 9, 0, 0, 0, 0, 0, 0, 240, 63, 16, 152, 245, 179, 193, 156, 52,
        ]
        #expect(SkimmingCheck.repeatsASeries(body))
        #expect(!SkimmingCheck.repeatsASeries(ProtobufC.encodeV1(TestRequest(series: [
            TestSeries("up", [("job", "a")], samples: [(1, 1)]), TestSeries("up", [("job", "b")], samples: [(1, 1)]),
        ]))))
        let check = SkimmingCheck()
        #expect(check.difference(body) == nil)
        #expect(check.tables(inAnyOrder: true).skimming == check.tables(inAnyOrder: true).reading)
        #expect(check.skimming.table.activeSeries == 1)
    }

    /// The same, with a malformed series between the two encodings (the fuzzer's find, CI,
    /// 2026-11-27): the ingest rejects that series and goes on, so the check must still see the
    /// repeat behind it.
    @Test func aRepeatBehindAMalformedSeriesIsStillARepeat() {
        let body: [UInt8] = [
            10, 46, 10, 14, 10, 8, 95, 95, 110, 97, 109, 101, 95, 95, 18, 2, 117, 112, 217, 10, 10, 3, 106, 111, 98, 18, 3,
            97, 112, 105, 18, 16, 9, 0, 0, 0, 0, 0, 0, 240, 63, 16, 128, 128, 179, 193, 156, 51, 10, 36, 10, 14, 10, 8, 135,
            0, 110, 97, 95, 18, 2, 117, 112, 10, 9, 10, 3, 106, 111, 98, 18, 2, 100, 98, 18, 7, 16, 128, 128, 77, 62, 127,
            85, 193, 156, 51, 10, 46, 10, 14, 10, 8, 95, 95, 110, 97, 109, 101, 95, 95, 18, 2, 117, 112, 10, 10, 10, 3, 106,
            111, 98, 50, 3, 97, 112, 105, 18, 16, 9, 0, 0, 0, 0, 0, 0, 240, 63, 16, 152, 245, 179, 193, 156, 51,
        ]
        #expect(SkimmingCheck.repeatsASeries(body))
        #expect(SkimmingCheck().difference(body) == nil)
    }

    func apply(_ ingestor: Ingestor, _ body: [UInt8]) throws(IngestError) -> WriteOutcome {
        let result: Result<WriteOutcome, IngestError> = body.withUnsafeBytes { raw in
            Result { () throws(IngestError) in try ingestor.apply(decompressed: raw, version: .v1, now: 1) }
        }
        return try result.get()
    }

    /// Protobuf fields by hand, for series shapes the C encoder does not write.
    static func varint(_ v: UInt64) -> [UInt8] {
        var v = v, out: [UInt8] = []
        while v >= 0x80 { out.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
        return out + [UInt8(v)]
    }

    static func field(_ number: Int, _ payload: [UInt8]) -> [UInt8] {
        [UInt8(number << 3 | 2)] + varint(UInt64(payload.count)) + payload
    }

    static func label(_ name: String, _ value: String) -> [UInt8] {
        field(1, field(1, Array(name.utf8)) + field(2, Array(value.utf8)))
    }

    static func sample(_ value: Double, _ timestamp: Int64) -> [UInt8] {
        var bits = value.bitPattern
        let fixed = (0..<8).map { _ in defer { bits >>= 8 }; return UInt8(bits & 0xff) }
        return field(2, (value == 0 ? [] : [0x09] + fixed) + [0x10] + varint(UInt64(timestamp)))
    }

    /// A series whose last field is a sample in Prometheus' shape is read from its tail, the bytes
    /// before that sample taken as its labels. When those bytes hold other fields too (an unknown
    /// field, or an earlier sample with a short timestamp), the series is decoded again in full:
    /// nothing is rejected that reading every label accepts, new series or known.
    @Test func seriesWithOtherFieldsBeforeItsLastSampleAreDecodedInFull() throws {
        let now: Int64 = 1_760_000_000_000
        let labels = Self.label("__name__", "up") + Self.label("job", "api")
        // The shape, and the samples written the first time and then (a short timestamp is then
        // out of order).
        let shapes: [(String, (Int64) -> [UInt8], first: Int, then: Int)] = [
            ("labels, one sample", { t in labels + Self.sample(1, t) }, 1, 1),
            ("labels, one zero sample", { t in labels + Self.sample(0, t) }, 1, 1),
            ("labels, an unknown varint field, one sample", { t in labels + [0x48, 0x01] + Self.sample(2, t) }, 1, 1),
            ("labels, an unknown bytes field, one sample", { t in labels + Self.field(9, [1, 2, 3]) + Self.sample(2, t) }, 1, 1),
            ("labels, a short-timestamp sample, one sample", { t in labels + Self.sample(3, 5) + Self.sample(4, t) }, 2, 1),
            ("labels, two samples", { t in labels + Self.sample(3, t - 1) + Self.sample(4, t) }, 2, 2),
            ("labels, a sample, a label, a sample", { t in labels + Self.sample(3, t - 1) + Self.label("zone", "a") + Self.sample(4, t) }, 2, 2),
            ("a last label of 16 bytes, one sample", { t in Self.label("__name__", "up") + Self.label("pod", "0123456789abcdef") + Self.sample(1, t) }, 1, 1),
            ("a last label of 7 bytes, one sample", { t in Self.label("__name__", "up") + Self.label("pod", "0123456") + Self.sample(1, t) }, 1, 1),
        ]
        for (name, series, first, then) in shapes {
            let check = SkimmingCheck()
            let ingestor = Ingestor(limits: IngestLimits())
            for round in 0..<3 {
                let body = Self.field(1, series(now + Int64(round) * 15_000))
                #expect(check.difference(body) == nil, "\(name), round \(round)")
                let o = try apply(ingestor, body)
                #expect(o.samplesWritten == (round == 0 ? first : then), "\(name), round \(round)")
                #expect(o.seriesTotal == 1 && o.seriesRejected == 0 && o.seriesCreated == (round == 0 ? 1 : 0), "\(name), round \(round)")
            }
            #expect(check.tables().skimming == check.tables().reading, "\(name)")
        }
    }

    @Test func knownSeriesSentUnsortedOrWithEmptyValuesIsFound() throws {
        let i = Ingestor(limits: IngestLimits())
        let labels = [TestLabel("__name__", "up"), TestLabel("job", String(repeating: "j", count: 300))]
        _ = try apply(i, ProtobufC.encodeV1(TestRequest(series: [TestSeries(labels: labels, samples: [WireSample(timestamp: 1, valueBits: 0)])])))
        let unsorted = TestSeries(labels: labels.reversed() + [TestLabel("zone", "")], samples: [WireSample(timestamp: 2, valueBits: 0)])
        let o = try apply(i, ProtobufC.encodeV1(TestRequest(series: [unsorted])))
        #expect(o.seriesCreated == 0 && o.samplesWritten == 1)
        #expect(i.table.activeSeries == 1)
    }

    @Test func malformedLabelInsideASkimmedSeriesRejectsOnlyThatSeries() throws {
        let i = Ingestor(limits: IngestLimits())
        let good = TestSeries("up", [("job", "ok")], samples: [(1, 1)])
        var body = ProtobufC.encodeV1(TestRequest(series: [good, TestSeries("up", [("job", "bad")], samples: [(1, 1)])]))
        // The second series is `0A len | 0A len | 0A 08 __name__ ...`: make its first label's name
        // field a varint (wire type 0), inside the label bytes the skim does not look into.
        let at = ProtobufC.encodeV1(TestRequest(series: [good])).count + 4
        #expect(body[at] == 0x0A && body[at + 1] == 8)
        body[at] = 0x08
        let o = try apply(i, body)
        #expect(o.samplesWritten == 1)
        #expect(o.seriesRejectedByReason == ["malformed": 1])
    }
}

/// The series table against a model of what it must hold: every distinct valid label set sent,
/// once, whatever the order or encoding of its labels (the label pairs are shared between series,
/// so a wrong match between a key and an entry's pairs would merge two series or split one).
@Suite struct SeriesTableModelTests {
    @Test func holdsEachDistinctLabelSetOnce() throws {
        var rng = SplitMix64(seed: 5)
        let names = ["__name__", "job", "pod", "namespace", "container", "le", "code"]
        let values = ["a", "b", "ab", "ba", "x" + String(repeating: "y", count: 140), "é", "0", "00"]
        let ingestor = Ingestor(limits: IngestLimits())
        var model: Set<[Label]> = []
        var sets: [[TestLabel]] = []
        for _ in 0..<3000 {
            var labels = [TestLabel("__name__", values[Int(rng.next() % 3)])]
            for name in names.dropFirst() where rng.next() % 2 == 0 {
                labels.append(TestLabel(name, values[Int(rng.next() % UInt64(values.count))]))
            }
            sets.append(labels)
            model.insert(labels.map { Label(String(decoding: $0.name, as: UTF8.self), String(decoding: $0.value, as: UTF8.self)) }
                .sorted { $0.name < $1.name })
        }
        for round in 0..<3 {
            for chunk in stride(from: 0, to: sets.count, by: 500) {
                let series = sets[chunk..<min(chunk + 500, sets.count)].map { labels -> TestSeries in
                    var l = labels
                    if round > 0 && rng.next() % 3 == 0 { l.shuffle(using: &rng) }
                    return TestSeries(labels: l, samples: [WireSample(timestamp: Int64(round * 10 + 1), valueBits: 0)])
                }
                let body = ProtobufC.encodeV1(TestRequest(series: series))
                let outcome: Result<WriteOutcome, IngestError> = body.withUnsafeBytes { raw in
                    Result { () throws(IngestError) in try ingestor.apply(decompressed: raw, version: .v1, now: 1) }
                }
                let o = try outcome.get()
                #expect(!o.hasRejections)
            }
        }
        let held = ingestor.table.snapshot()
        #expect(held.count == model.count)
        #expect(Set(held.map(\.labels)) == model)
        // Each set was sent three times (duplicates within a round are identical retries).
        #expect(held.allSatisfy { $0.lastTimestamp == 21 })
    }
}
