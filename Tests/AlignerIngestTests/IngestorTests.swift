@testable import AlignerIngest
import AlignerCore
import AlignerTesting
import Testing

/// Semantics of applying remote-write bodies: validation, ordering, limits, eviction.
@Suite struct IngestorTests {
    func ingestor(maxSeries: Int = 1000) -> Ingestor {
        var limits = IngestLimits()
        limits.maxSeries = maxSeries
        return Ingestor(limits: limits)
    }

    func write(_ ingestor: Ingestor, _ request: TestRequest, version: RemoteWriteVersion = .v1, now: Int64 = 1) throws(IngestError) -> WriteOutcome {
        let body = Snappy.compress(version == .v1 ? ProtobufC.encodeV1(request) : ProtobufC.encodeV2(request))
        return try write(ingestor, compressed: body, version: version, now: now)
    }

    func write(_ ingestor: Ingestor, compressed: [UInt8], version: RemoteWriteVersion = .v1, now: Int64 = 1) throws(IngestError) -> WriteOutcome {
        let result: Result<WriteOutcome, IngestError> = compressed.withUnsafeBytes { raw in
            Result { () throws(IngestError) in try ingestor.write(compressed: raw, version: version, now: now) }
        }
        return try result.get()
    }

    @Test(arguments: [RemoteWriteVersion.v1, .v2])
    func unsortedLabelsNameTheSameSeries(_ version: RemoteWriteVersion) throws {
        let i = ingestor()
        var a = TestSeries("up", [("job", "api"), ("instance", "x:1")], samples: [(1000, 1)])
        _ = try write(i, TestRequest(series: [a]), version: version)
        a.labels.reverse()
        a.samples = [WireSample(timestamp: 2000, valueBits: (0.0).bitPattern)]
        let o = try write(i, TestRequest(series: [a]), version: version)
        #expect(o.seriesCreated == 0 && o.samplesWritten == 1)
        let s = i.table.snapshot()
        #expect(s.count == 1)
        #expect(s[0].labels == [Label("__name__", "up"), Label("instance", "x:1"), Label("job", "api")])
        #expect(s[0].lastTimestamp == 2000 && s[0].samples == 2)
    }

    @Test func startTimestampsAreCounted() throws {
        let i = ingestor()
        var rc3 = TestSeries("requests_total", [("job", "a")], samples: [(5000, 3)])
        rc3.createdTimestamp = 1000
        var rc4 = TestSeries("requests_total", [("job", "b")], samples: [(5000, 3), (6000, 4)])
        rc4.sampleStarts = [1000, 1000]
        var histogram = TestSeries("latency_seconds", [("job", "b")], samples: [])
        histogram.fullHistograms = [TestHistogram.integer(timestamp: 5000, counts: [1, 2])]
        histogram.fullHistograms[0].startTimestamp = 1000
        let none = TestSeries("up", [("job", "a")], samples: [(5000, 1)])
        let o = try write(i, TestRequest(series: [rc3, rc4, histogram, none]), version: .v2)
        #expect(o.startTimestamps == 4 && o.samplesWritten == 4 && o.histogramsWritten == 1 && !o.hasRejections)
    }

    @Test func emptyValuedLabelsAreDropped() throws {
        let i = ingestor()
        _ = try write(i, TestRequest(series: [TestSeries("up", [("job", "a"), ("zone", "")], samples: [(1, 1)])]))
        _ = try write(i, TestRequest(series: [TestSeries("up", [("job", "a")], samples: [(2, 1)])]))
        #expect(i.table.snapshot().map(\.labels) == [[Label("__name__", "up"), Label("job", "a")]])
    }

    @Test(arguments: [
        (TestSeries(labels: [TestLabel("job", "a")], samples: [WireSample(timestamp: 1, valueBits: 0)]), "missing_metric_name"),
        (TestSeries(labels: [], samples: [WireSample(timestamp: 1, valueBits: 0)]), "no_labels"),
        (TestSeries("up", [("", "x")], samples: [(1, 1)]), "empty_label_name"),
        (TestSeries("up", [("job", "a"), ("job", "b")], samples: [(1, 1)]), "duplicate_label_name"),
        (TestSeries(labels: [TestLabel("__name__", "up"), TestLabel(name: Array("job".utf8), value: [0xff, 0xfe])],
                    samples: [WireSample(timestamp: 1, valueBits: 0)]), "invalid_utf8"),
    ])
    func invalidSeriesAreRejectedAndTheRestApplied(_ bad: TestSeries, _ reason: String) throws {
        for version in [RemoteWriteVersion.v1, .v2] {
            let i = ingestor()
            let good = TestSeries("up", [("job", "ok")], samples: [(1, 1), (2, 1)])
            let o = try write(i, TestRequest(series: [good, bad]), version: version)
            #expect(o.seriesRejectedByReason == [reason: 1], "\(version)")
            #expect(o.samplesWritten == 2 && o.samplesInvalidSeries == 1)
            #expect(o.hasRejections)
            #expect(o.message.hasPrefix("rejected 1 of 2 series (1 \(reason)); rejected 1 of 3 samples (1 in rejected series); for example: "))
            #expect(i.table.activeSeries == 1)
        }
    }

    @Test func outOfOrderAndDuplicatesAreCountedAndIdenticalRetriesAccepted() throws {
        let i = ingestor()
        let s = TestSeries("temperature", samples: [(1000, 20), (2000, 21)])
        #expect(try write(i, TestRequest(series: [s])).samplesWritten == 2)
        // The same body again (a retry): accepted silently.
        let retry = try write(i, TestRequest(series: [TestSeries("temperature", samples: [(2000, 21)])]))
        #expect(!retry.hasRejections && retry.samplesWritten == 1 && retry.samplesDuplicate == 1)
        let late = try write(i, TestRequest(series: [TestSeries("temperature", samples: [(1500, 5), (2000, 99), (3000, 22)])]))
        #expect(late.samplesOutOfOrder == 1 && late.samplesDuplicateTimestamp == 1 && late.samplesWritten == 1)
        #expect(late.message.contains("out-of-order sample for temperature: timestamp 1500 is older than the last accepted 2000"))
        #expect(i.table.snapshot()[0].lastTimestamp == 3000)
    }

    @Test func staleMarkersKeepTheirBits() throws {
        let i = ingestor()
        _ = try write(i, TestRequest(series: [TestSeries(labels: [TestLabel("__name__", "up")],
                                                        samples: [WireSample(timestamp: 5, valueBits: SampleValue.staleNaNBits)])]))
        let last = i.table.snapshot()[0].lastValue
        #expect(last.bitPattern == SampleValue.staleNaNBits)
        #expect(SampleValue.isStale(bits: last.bitPattern) && !SampleValue.isStale(bits: Double.nan.bitPattern))
    }

    @Test func seriesLimitRejectsNewSeriesOnly() throws {
        let i = ingestor(maxSeries: 2)
        let series = (0..<3).map { TestSeries("m", [("i", "\($0)")], samples: [(1, 1)]) }
        let o = try write(i, TestRequest(series: series))
        #expect(o.seriesRejectedByReason == ["series_limit": 1])
        #expect(o.message.contains("active series limit 2 reached (ingest.max_series)"))
        // Existing series still take samples.
        let again = try write(i, TestRequest(series: Array(series.prefix(2)).map { var s = $0; s.samples = [WireSample(timestamp: 2, valueBits: 0)]; return s }))
        #expect(!again.hasRejections && i.table.activeSeries == 2)
    }

    @Test func idleSeriesAreEvictedAndComeBack() throws {
        let i = ingestor()
        _ = try write(i, TestRequest(series: (0..<100).map { TestSeries("m", [("i", "\($0)")], samples: [(1, 1)]) }), now: 1000)
        _ = try write(i, TestRequest(series: [TestSeries("m", [("i", "7")], samples: [(2, 1)])]), now: 5000)
        #expect(i.table.evictIdle(before: 2000) == 99)
        #expect(i.table.activeSeries == 1)
        #expect(i.table.snapshot().map(\.labels) == [[Label("__name__", "m"), Label("i", "7")]])
        let o = try write(i, TestRequest(series: (0..<100).map { TestSeries("m", [("i", "\($0)")], samples: [(3, 1)]) }), now: 6000)
        #expect(o.seriesCreated == 99 && !o.hasRejections && i.table.activeSeries == 100)
    }

    /// The table first tries the entry after the last one found (series mostly come in creation
    /// order): that guess must skip evicted entries and survive any other order.
    @Test func seriesFoundInAnyOrderAfterEvictions() throws {
        let i = ingestor(maxSeries: 10_000)
        let n = 2000  // about 31 series per shard, so every shard has runs to guess along
        func series(_ k: Int, _ t: Int64) -> TestSeries { TestSeries("m", [("i", "\(k)")], samples: [(t, Double(k))]) }
        var expected = [Int: (last: Int64, samples: UInt64)]()
        func send(_ order: [Int], _ t: Int64, now: Int64) throws {
            let o = try write(i, TestRequest(series: order.map { series($0, t) }), now: now)
            #expect(!o.hasRejections && o.samplesWritten == order.count)
            for k in order { expected[k] = (t, (expected[k]?.samples ?? 0) + 1) }
        }
        try send(Array(0..<n), 1000, now: 1000)
        try send(Array(stride(from: 0, to: n, by: 2)), 2000, now: 3000)
        #expect(i.table.evictIdle(before: 2000) == n / 2)
        for k in stride(from: 1, to: n, by: 2) { expected[k] = nil }
        // Each odd series' old entry, dead now, follows its even neighbour's.
        try send(Array(0..<n), 3000, now: 3000)
        try send(Array((0..<n).reversed()), 4000, now: 4000)
        var rng = SplitMix64(seed: 7)
        try send((0..<n).shuffled(using: &rng), 5000, now: 5000)
        try send(Array(0..<n), 6000, now: 6000)
        let snapshot = i.table.snapshot()
        #expect(snapshot.count == n && i.table.activeSeries == n)
        for s in snapshot {
            let k = Int(s.labels.first { $0.name == "i" }!.value)!
            #expect(s.lastTimestamp == expected[k]!.last && s.samples == expected[k]!.samples && s.lastValue == Double(k))
        }
    }

    /// The canonical key of a label set (labels sorted, non-empty).
    static func key(_ labels: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (name, value) in labels {
            let n = Array(name.utf8), v = Array(value.utf8)
            let pair = [0x0A, UInt8(n.count)] + n + [0x12, UInt8(v.count)] + v
            out += [0x0A, UInt8(pair.count)] + pair
        }
        return out
    }

    @Test func collidingHashesNeverMergeSeries() {
        let shard = Shard(pairs: LabelPairs(seed: 1))
        let a = IngestorTests.key([("__name__", "first")]), b = IngestorTests.key([("__name__", "second")])
        let ia = a.withUnsafeBytes { shard.insert(hash: 42, key: $0, now: 0) }
        let ib = b.withUnsafeBytes { shard.insert(hash: 42, key: $0, now: 0) }
        #expect(ia != ib)
        #expect(a.withUnsafeBytes { shard.find(hash: 42, key: $0) } == ia)
        #expect(b.withUnsafeBytes { shard.find(hash: 42, key: $0) } == ib)
        #expect(IngestorTests.key([("__name__", "third")]).withUnsafeBytes { shard.find(hash: 42, key: $0) } == -1)
        // A key that shares a's pair but has one more label, or a prefix of a's bytes: not a.
        #expect(IngestorTests.key([("__name__", "first"), ("job", "x")]).withUnsafeBytes { shard.find(hash: 42, key: $0) } == -1)
        #expect(Array(a.dropLast()).withUnsafeBytes { shard.find(hash: 42, key: $0) } == -1)
    }

    /// Series share their label pairs; a pair is freed when the last series using it is evicted.
    @Test func labelPairsAreSharedAndFreed() throws {
        let i = ingestor()
        let series = (0..<50).map { TestSeries("m", [("job", "api"), ("pod", "p\($0)")], samples: [(1, 1)]) }
        _ = try write(i, TestRequest(series: series), now: 1000)
        let pairs = i.table.pairs.count
        #expect(pairs == 52)  // __name__=m, job=api, 50 pods
        _ = try write(i, TestRequest(series: [TestSeries("m", [("job", "api"), ("pod", "p0")], samples: [(2, 1)])]), now: 5000)
        #expect(i.table.evictIdle(before: 2000) == 49)
        #expect(i.table.pairs.count == 3)
        #expect(i.table.snapshot().map(\.labels) == [[Label("__name__", "m"), Label("job", "api"), Label("pod", "p0")]])
        // Freed references are reused, and the series come back whole.
        _ = try write(i, TestRequest(series: series), now: 6000)
        #expect(i.table.pairs.count == 52)
        #expect(Set(i.table.snapshot().compactMap { $0.labels.first { $0.name == "pod" }?.value }).count == 50)
    }

    /// A chunk freed with a large label is reused for small pairs without touching the chunk of
    /// another large label.
    @Test func freedLargeChunksAreReusedSafely() throws {
        let i = ingestor(maxSeries: 10_000)
        let a = String(repeating: "a", count: 70_000), b = String(repeating: "b", count: 70_000)
        _ = try write(i, TestRequest(series: [TestSeries("m", [("blob", a)], samples: [(1, 1)])]), now: 1000)
        _ = try write(i, TestRequest(series: [TestSeries("m", [("blob", b)], samples: [(1, 1)])]), now: 5000)
        #expect(i.table.evictIdle(before: 2000) == 1)  // a's chunk is free
        // Enough small pairs to need a second chunk for them (64 KiB of blocks).
        let many = (0..<3000).map { TestSeries("m", [("pod", "pod-\($0)-\(String(repeating: "x", count: 20))")], samples: [(1, 1)]) }
        _ = try write(i, TestRequest(series: many), now: 6000)
        let blobs = i.table.snapshot().compactMap { $0.labels.first { $0.name == "blob" }?.value }
        let intact = blobs == [b]  // (not printed: 70 KB)
        #expect(intact)
        #expect(i.table.activeSeries == 3001)
    }

    /// A label too large for a shared chunk of pairs gets a chunk of its own, freed with it; a
    /// large one that fits shares one.
    @Test func largeLabelValuesComeAndGo() throws {
        let i = ingestor()
        let huge = String(repeating: "v", count: 70_000)
        let big = TestSeries("m", [("blob", huge)], samples: [(1, 1)])
        _ = try write(i, TestRequest(series: [big]), now: 1000)
        _ = try write(i, TestRequest(series: [TestSeries("m", [("job", "x")], samples: [(1, 1)])]), now: 5000)
        #expect(i.table.evictIdle(before: 2000) == 1)
        let large = String(repeating: "l", count: 30_000)  // shares a chunk
        _ = try write(i, TestRequest(series: [big, TestSeries("m", [("blob", huge + "w")], samples: [(2, 1)]),
                                              TestSeries("m", [("blob", large)], samples: [(2, 1)])]), now: 6000)
        let blobs = i.table.snapshot().compactMap { $0.labels.first { $0.name == "blob" }?.value }
        #expect(Set(blobs) == [huge, huge + "w", large])
        let again = try write(i, TestRequest(series: [TestSeries("m", [("blob", huge)], samples: [(3, 1)])]), now: 7000)
        #expect(again.seriesCreated == 0 && again.samplesWritten == 1)
    }

    @Test func snappyLimitsAndFormats() {
        let i = ingestor()
        let raw = ProtobufC.encodeV1(TestRequest(series: [TestSeries("up", samples: [(1, 1)])]))
        var limits = IngestLimits()
        limits.maxDecodedBytes = raw.count - 1
        let small = Ingestor(limits: limits)
        #expect(throws: IngestError.self) { try write(small, compressed: Snappy.compress(raw)) }
        do {
            _ = try write(small, compressed: Snappy.compress(raw))
        } catch {
            #expect(error.kind == .invalid)
            #expect(error.message == "cannot decompress remote-write body: declared size \(raw.count) exceeds limit \(raw.count - 1) (ingest.max_decoded_bytes)")
        }
        // A huge declared size is refused before anything is allocated.
        do {
            _ = try write(i, compressed: [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00])
        } catch {
            #expect(error.message.hasPrefix("cannot decompress remote-write body: declared size 4294967295 exceeds limit"))
        }
        do {
            _ = try write(i, compressed: [0xff, 0x06, 0x00, 0x00] + Array("sNaPpY".utf8) + [0x01, 0x00])
        } catch {
            #expect(error.kind == .unsupportedEncoding)
        }
        do {
            var corrupt = Snappy.compress(raw)
            corrupt[corrupt.count / 2] ^= 0xff
            corrupt.removeLast()
            _ = try write(i, compressed: corrupt)
            Issue.record("corrupt snappy accepted")
        } catch {
            #expect(error.kind == .invalid)
        }
    }

    @Test func inflightBoundAnswersOverloaded() {
        var limits = IngestLimits()
        limits.maxInflightBytes = 1000
        let i = Ingestor(limits: limits)
        // Another request holds bytes in flight.
        #expect(i.reserve(999))
        #expect(!i.reserve(2))
        let body = Snappy.compress(ProtobufC.encodeV1(TestRequest(series: [TestSeries("up", samples: [(1, 1)])])))
        do {
            _ = try write(i, compressed: body)
            Issue.record("admitted past the in-flight bound")
        } catch {
            #expect(error.kind == .overloaded)
            #expect(error.message.contains("(ingest.max_inflight_bytes)"))
        }
        i.release(999)
        #expect(i.inflightBytes == 0)
    }

    @Test func histogramsAndExemplarsAreCheckedAndCounted() throws {
        let i = ingestor()
        var s = TestSeries("latency", samples: [(1, 1)])
        s.fullHistograms = [.integer(timestamp: 1, counts: [1, 2])]
        var bad = TestHistogram.integer(timestamp: 2, counts: [1, 2])
        bad.countBits = 1  // fewer observations than the buckets hold
        s.fullHistograms.append(bad)
        var spans = TestHistogram.integer(timestamp: 3, counts: [1, 2])
        spans.positiveSpans = [TestSpan(0, 5)]
        s.fullHistograms.append(spans)
        s.exemplars = [TestExemplar(labels: [TestLabel("trace_id", "t")], value: 1, timestamp: 1)]
        for version in [RemoteWriteVersion.v1, .v2] {
            let o = try write(ingestor(), TestRequest(series: [s]), version: version)
            #expect(o.histogramsWritten == 1 && o.histogramsRejected == 2 && o.exemplarsWritten == 1)
            #expect(o.message.contains("histogram count 1.0 is less than its buckets' total 3.0"))
        }
        _ = i
    }
}
