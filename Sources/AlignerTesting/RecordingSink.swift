import AlignerIngest

/// A sink that copies everything the fast decoder hands it into `TestRequest` values.
public struct RecordingSink: RemoteWriteSink {
    public var request = TestRequest(series: [])
    /// The problems reported, in order.
    public var problems: [SeriesProblem] = []

    public init() {}

    public mutating func series(_ s: DecodedSeries) {
        if let p = s.problem {
            problems.append(p)
            var t = TestSeries(labels: [])
            t.problem = true
            request.series.append(t)
            return
        }
        var t = TestSeries(labels: s.labels.map(RecordingSink.label))
        t.samples = Array(s.samples)
        t.histograms = Array(s.histograms)
        t.exemplars = s.exemplars.map { e in
            TestExemplar(
                labels: s.exemplarLabels[e.labelStart..<(e.labelStart + e.labelCount)].map(RecordingSink.label),
                valueBits: e.valueBits, timestamp: e.timestamp)
        }
        if let m = s.metadata {
            var md = TestMetadata(type: m.type)
            md.help = Array(m.help)
            md.unit = Array(m.unit)
            t.metadata = md
        }
        t.createdTimestamp = s.createdTimestamp
        t.sampleStarts = Array(s.sampleStartTimestamps)
        if let key = s.canonicalKey { canonicalKeys.append(Array(key)) }
        request.series.append(t)
    }

    /// The canonical keys the decoder found in place (1.0 only).
    public var canonicalKeys: [[UInt8]] = []

    public mutating func metadata(_ m: WireMetadata) {
        if let p = m.problem {
            problems.append(p)
            return
        }
        var md = TestMetadata(type: m.type)
        md.familyName = Array(m.familyName)
        md.help = Array(m.help)
        md.unit = Array(m.unit)
        request.metadata.append(md)
    }

    static func label(_ l: LabelRef) -> TestLabel { TestLabel(name: Array(l.name), value: Array(l.value)) }
}

/// Decodes with the fast decoder into values.
public enum FastDecode {
    /// The result of decoding: the request, or the whole-request error.
    public static func decode(_ bytes: [UInt8], version: RemoteWriteVersion) -> Result<RecordingSink, RequestDecodeError> {
        let decoder = RemoteWriteDecoder()
        var sink = RecordingSink()
        let failure: RequestDecodeError? = bytes.withUnsafeBytes { raw in
            do throws(RequestDecodeError) {
                switch version {
                case .v1: try decoder.decodeV1(raw, into: &sink)
                case .v2: try decoder.decodeV2(raw, into: &sink)
                }
                return nil
            } catch {
                return error
            }
        }
        if let failure { return .failure(failure) }
        return .success(sink)
    }

    /// Compares the fast decoder with libprotobuf-c on the same bytes. Returns nil when they agree,
    /// or a description of the difference. Strings are compared up to the first NUL byte, which is
    /// all a C string can hold.
    public static func differenceFromOracle(_ bytes: [UInt8], version: RemoteWriteVersion) -> String? {
        let oracle = bytes.withUnsafeBytes { version == .v1 ? ProtobufC.decodeV1($0) : ProtobufC.decodeV2($0) }
        let fast = decode(bytes, version: version)
        switch (oracle, fast) {
        case (nil, .failure):
            return nil
        case (nil, .success(let sink)):
            return sink.problems.isEmpty ? "libprotobuf-c rejects the body but the fast decoder reports no problem" : nil
        case (_?, .failure(let e)) where e.message.hasPrefix("cannot decode remote-write 2.0 body: symbols[0]"):
            // libprotobuf-c saw "" because symbols[0] starts with a NUL byte; a C string cannot tell.
            return nil
        case (let o?, .failure(let e)):
            return "libprotobuf-c decodes \(o.series.count) series but the fast decoder fails: \(e)"
        case (let o?, .success(let sink)):
            let f = truncatedAtNUL(sink.request)
            if f == o { return nil }
            return "decoders disagree:\n oracle: \(o)\n   fast: \(f)"
        }
    }

    static func truncatedAtNUL(_ r: TestRequest) -> TestRequest {
        func cut(_ b: [UInt8]) -> [UInt8] { b.firstIndex(of: 0).map { Array(b[..<$0]) } ?? b }
        func cut(_ l: TestLabel) -> TestLabel { TestLabel(name: cut(l.name), value: cut(l.value)) }
        var r = r
        for i in r.series.indices {
            r.series[i].labels = r.series[i].labels.map(cut)
            for k in r.series[i].exemplars.indices { r.series[i].exemplars[k].labels = r.series[i].exemplars[k].labels.map(cut) }
            if var m = r.series[i].metadata {
                m.help = cut(m.help)
                m.unit = cut(m.unit)
                r.series[i].metadata = m
            }
        }
        for i in r.metadata.indices {
            r.metadata[i].familyName = cut(r.metadata[i].familyName)
            r.metadata[i].help = cut(r.metadata[i].help)
            r.metadata[i].unit = cut(r.metadata[i].unit)
        }
        return r
    }
}
