import AlignerIngest
import CAlignerRemoteWrite

/// libprotobuf-c, driven through the protoc-c output: the reference codec that the fast decoder is
/// checked against, and the encoder tests and benchmarks build their bodies with.
public enum ProtobufC {
    // MARK: 1.0

    /// Packs a `prometheus.WriteRequest`.
    public static func encodeV1(_ request: TestRequest) -> [UInt8] {
        let arena = CArena()
        var message = Prometheus__WriteRequest()
        prometheus__write_request__init(&message)
        message.n_timeseries = request.series.count
        message.timeseries = arena.pointers(request.series.map { series -> UnsafeMutablePointer<Prometheus__TimeSeries> in
            let ts = arena.one(Prometheus__TimeSeries.self)
            prometheus__time_series__init(ts)
            ts.pointee.n_labels = series.labels.count
            ts.pointee.labels = arena.pointers(series.labels.map { arena.labelV1($0) })
            ts.pointee.n_samples = series.samples.count
            ts.pointee.samples = arena.pointers(series.samples.map { s in
                let p = arena.one(Prometheus__Sample.self)
                prometheus__sample__init(p)
                p.pointee.value = Double(bitPattern: s.valueBits)
                p.pointee.timestamp = s.timestamp
                return p
            })
            ts.pointee.n_exemplars = series.exemplars.count
            ts.pointee.exemplars = arena.pointers(series.exemplars.map { e in
                let p = arena.one(Prometheus__Exemplar.self)
                prometheus__exemplar__init(p)
                p.pointee.n_labels = e.labels.count
                p.pointee.labels = arena.pointers(e.labels.map { arena.labelV1($0) })
                p.pointee.value = Double(bitPattern: e.valueBits)
                p.pointee.timestamp = e.timestamp
                return p
            })
            ts.pointee.n_histograms = series.fullHistograms.count
            ts.pointee.histograms = arena.pointers(series.fullHistograms.map { arena.histogramV1($0) })
            return ts
        })
        message.n_metadata = request.metadata.count
        message.metadata = arena.pointers(request.metadata.map { m in
            let p = arena.one(Prometheus__MetricMetadata.self)
            prometheus__metric_metadata__init(p)
            p.pointee.type = Prometheus__MetricMetadata__MetricType(rawValue: UInt32(m.type))
            p.pointee.metric_family_name = arena.cString(m.familyName)
            p.pointee.help = arena.cString(m.help)
            p.pointee.unit = arena.cString(m.unit)
            return p
        })
        var out = [UInt8](repeating: 0, count: prometheus__write_request__get_packed_size(&message))
        _ = out.withUnsafeMutableBufferPointer { prometheus__write_request__pack(&message, $0.baseAddress) }
        return out
    }

    /// Unpacks a `prometheus.WriteRequest`, or nil when libprotobuf-c rejects the bytes.
    public static func decodeV1(_ bytes: UnsafeRawBufferPointer) -> TestRequest? {
        guard let message = prometheus__write_request__unpack(
            nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
        else { return nil }
        defer { prometheus__write_request__free_unpacked(message, nil) }
        let m = message.pointee
        var request = TestRequest(series: [])
        for i in 0..<m.n_timeseries {
            let ts = m.timeseries[i]!.pointee
            var series = TestSeries(labels: (0..<ts.n_labels).map { label(ts.labels[$0]!.pointee) })
            series.samples = (0..<ts.n_samples).map {
                let s = ts.samples[$0]!.pointee
                return WireSample(timestamp: s.timestamp, valueBits: s.value.bitPattern)
            }
            series.exemplars = (0..<ts.n_exemplars).map {
                let e = ts.exemplars[$0]!.pointee
                return TestExemplar(
                    labels: (0..<e.n_labels).map { label(e.labels[$0]!.pointee) }, valueBits: e.value.bitPattern,
                    timestamp: e.timestamp)
            }
            series.fullHistograms = (0..<ts.n_histograms).map { histogramV1(ts.histograms[$0]!.pointee) }
            request.series.append(series)
        }
        for i in 0..<m.n_metadata {
            let md = m.metadata[i]!.pointee
            var t = TestMetadata(type: UInt64(md.type.rawValue))
            t.familyName = bytesOf(md.metric_family_name)
            t.help = bytesOf(md.help)
            t.unit = bytesOf(md.unit)
            request.metadata.append(t)
        }
        return request
    }

    static func label(_ l: Prometheus__Label) -> TestLabel {
        TestLabel(name: bytesOf(l.name), value: bytesOf(l.value))
    }

    static func bytesOf(_ s: UnsafeMutablePointer<CChar>?) -> [UInt8] {
        guard let s else { return [] }
        return Array(UnsafeRawBufferPointer(start: s, count: strlen(s)))
    }

    static func histogramV1(_ h: Prometheus__Histogram) -> TestHistogram {
        var t = TestHistogram()
        t.timestamp = h.timestamp
        switch h.count_case {
        case PROMETHEUS__HISTOGRAM__COUNT_COUNT_INT: t.countBits = h.count_int
        case PROMETHEUS__HISTOGRAM__COUNT_COUNT_FLOAT: t.countBits = h.count_float.bitPattern; t.countIsFloat = true
        default: break
        }
        switch h.zero_count_case {
        case PROMETHEUS__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_INT: t.zeroCountBits = h.zero_count_int
        case PROMETHEUS__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_FLOAT:
            t.zeroCountBits = h.zero_count_float.bitPattern; t.zeroCountIsFloat = true
        default: break
        }
        t.sumBits = h.sum.bitPattern
        t.schema = h.schema
        t.zeroThresholdBits = h.zero_threshold.bitPattern
        t.negativeSpans = (0..<h.n_negative_spans).map { TestSpan(h.negative_spans[$0]!.pointee.offset, h.negative_spans[$0]!.pointee.length) }
        t.positiveSpans = (0..<h.n_positive_spans).map { TestSpan(h.positive_spans[$0]!.pointee.offset, h.positive_spans[$0]!.pointee.length) }
        t.negativeDeltas = Array(UnsafeBufferPointer(start: h.negative_deltas, count: h.n_negative_deltas))
        t.positiveDeltas = Array(UnsafeBufferPointer(start: h.positive_deltas, count: h.n_positive_deltas))
        t.negativeCounts = UnsafeBufferPointer(start: h.negative_counts, count: h.n_negative_counts).map(\.bitPattern)
        t.positiveCounts = UnsafeBufferPointer(start: h.positive_counts, count: h.n_positive_counts).map(\.bitPattern)
        t.customValues = UnsafeBufferPointer(start: h.custom_values, count: h.n_custom_values).map(\.bitPattern)
        t.resetHint = Int32(bitPattern: h.reset_hint.rawValue)
        return t
    }

    // MARK: 2.0

    /// Packs an `io.prometheus.write.v2.Request`, interning every string into the symbol table
    /// (which starts with "", as the specification requires).
    public static func encodeV2(_ request: TestRequest) -> [UInt8] {
        let arena = CArena()
        var symbols: [[UInt8]] = [[]] + request.extraSymbols
        var index: [[UInt8]: UInt32] = [:]
        for (i, s) in symbols.enumerated() where index[s] == nil { index[s] = UInt32(i) }
        func ref(_ s: [UInt8]) -> UInt32 {
            if let r = index[s] { return r }
            symbols.append(s)
            index[s] = UInt32(symbols.count - 1)
            return UInt32(symbols.count - 1)
        }
        func refs(_ labels: [TestLabel]) -> [UInt32] { labels.flatMap { [ref($0.name), ref($0.value)] } }
        var message = Io__Prometheus__Write__V2__Request()
        io__prometheus__write__v2__request__init(&message)
        message.n_timeseries = request.series.count
        message.timeseries = arena.pointers(request.series.map { series -> UnsafeMutablePointer<Io__Prometheus__Write__V2__TimeSeries> in
            let ts = arena.one(Io__Prometheus__Write__V2__TimeSeries.self)
            io__prometheus__write__v2__time_series__init(ts)
            let r = refs(series.labels)
            ts.pointee.n_labels_refs = r.count
            ts.pointee.labels_refs = arena.array(r)
            ts.pointee.n_samples = series.samples.count
            ts.pointee.samples = arena.pointers(series.samples.indices.map { i in
                let s = series.samples[i]
                let p = arena.one(Io__Prometheus__Write__V2__Sample.self)
                io__prometheus__write__v2__sample__init(p)
                p.pointee.value = Double(bitPattern: s.valueBits)
                p.pointee.timestamp = s.timestamp
                if i < series.sampleStarts.count { p.pointee.start_timestamp = series.sampleStarts[i] }
                return p
            })
            ts.pointee.n_exemplars = series.exemplars.count
            ts.pointee.exemplars = arena.pointers(series.exemplars.map { e in
                let p = arena.one(Io__Prometheus__Write__V2__Exemplar.self)
                io__prometheus__write__v2__exemplar__init(p)
                let er = refs(e.labels)
                p.pointee.n_labels_refs = er.count
                p.pointee.labels_refs = arena.array(er)
                p.pointee.value = Double(bitPattern: e.valueBits)
                p.pointee.timestamp = e.timestamp
                return p
            })
            ts.pointee.n_histograms = series.fullHistograms.count
            ts.pointee.histograms = arena.pointers(series.fullHistograms.map { arena.histogramV2($0) })
            if let m = series.metadata {
                let p = arena.one(Io__Prometheus__Write__V2__Metadata.self)
                io__prometheus__write__v2__metadata__init(p)
                p.pointee.type = Io__Prometheus__Write__V2__Metadata__MetricType(rawValue: UInt32(m.type))
                p.pointee.help_ref = ref(m.help)
                p.pointee.unit_ref = ref(m.unit)
                ts.pointee.metadata = p
            }
            ts.pointee.created_timestamp = series.createdTimestamp
            return ts
        })
        message.n_symbols = symbols.count
        message.symbols = arena.pointers(symbols.map { arena.cString($0) })
        var out = [UInt8](repeating: 0, count: io__prometheus__write__v2__request__get_packed_size(&message))
        _ = out.withUnsafeMutableBufferPointer { io__prometheus__write__v2__request__pack(&message, $0.baseAddress) }
        return out
    }

    /// Unpacks an `io.prometheus.write.v2.Request` and resolves its references, or nil when
    /// libprotobuf-c rejects the bytes or symbols[0] is not empty. A series whose references are
    /// odd or out of range is marked `problem`.
    public static func decodeV2(_ bytes: UnsafeRawBufferPointer) -> TestRequest? {
        guard let message = io__prometheus__write__v2__request__unpack(
            nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
        else { return nil }
        defer { io__prometheus__write__v2__request__free_unpacked(message, nil) }
        let m = message.pointee
        let symbols = (0..<m.n_symbols).map { bytesOf(m.symbols[$0]) }
        if let first = symbols.first, !first.isEmpty { return nil }
        func resolve(_ refs: UnsafeMutablePointer<UInt32>?, _ n: Int) -> [TestLabel]? {
            guard n % 2 == 0 else { return nil }
            var labels: [TestLabel] = []
            for i in stride(from: 0, to: n, by: 2) {
                let a = Int(refs![i]), b = Int(refs![i + 1])
                guard a < symbols.count, b < symbols.count else { return nil }
                labels.append(TestLabel(name: symbols[a], value: symbols[b]))
            }
            return labels
        }
        var request = TestRequest(series: [])
        for i in 0..<m.n_timeseries {
            let ts = m.timeseries[i]!.pointee
            var series = TestSeries(labels: [])
            guard let labels = resolve(ts.labels_refs, ts.n_labels_refs) else {
                series.problem = true
                request.series.append(series)
                continue
            }
            series.labels = labels
            series.samples = (0..<ts.n_samples).map {
                let s = ts.samples[$0]!.pointee
                return WireSample(timestamp: s.timestamp, valueBits: s.value.bitPattern)
            }
            series.sampleStarts = (0..<ts.n_samples).map { ts.samples[$0]!.pointee.start_timestamp }
            for k in 0..<ts.n_exemplars {
                let e = ts.exemplars[k]!.pointee
                guard let el = resolve(e.labels_refs, e.n_labels_refs) else { series.problem = true; break }
                series.exemplars.append(TestExemplar(labels: el, valueBits: e.value.bitPattern, timestamp: e.timestamp))
            }
            series.fullHistograms = (0..<ts.n_histograms).map { histogramV2(ts.histograms[$0]!.pointee) }
            if let md = ts.metadata?.pointee {
                let help = Int(md.help_ref), unit = Int(md.unit_ref)
                if help < symbols.count && unit < symbols.count {
                    var t = TestMetadata(type: UInt64(md.type.rawValue))
                    t.help = symbols[help]
                    t.unit = symbols[unit]
                    series.metadata = t
                } else {
                    series.problem = true
                }
            }
            series.createdTimestamp = ts.created_timestamp
            request.series.append(series)
        }
        return request
    }

    static func histogramV2(_ h: Io__Prometheus__Write__V2__Histogram) -> TestHistogram {
        var t = TestHistogram()
        t.timestamp = h.timestamp
        switch h.count_case {
        case IO__PROMETHEUS__WRITE__V2__HISTOGRAM__COUNT_COUNT_INT: t.countBits = h.count_int
        case IO__PROMETHEUS__WRITE__V2__HISTOGRAM__COUNT_COUNT_FLOAT: t.countBits = h.count_float.bitPattern; t.countIsFloat = true
        default: break
        }
        switch h.zero_count_case {
        case IO__PROMETHEUS__WRITE__V2__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_INT: t.zeroCountBits = h.zero_count_int
        case IO__PROMETHEUS__WRITE__V2__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_FLOAT:
            t.zeroCountBits = h.zero_count_float.bitPattern; t.zeroCountIsFloat = true
        default: break
        }
        t.sumBits = h.sum.bitPattern
        t.schema = h.schema
        t.zeroThresholdBits = h.zero_threshold.bitPattern
        t.negativeSpans = (0..<h.n_negative_spans).map { TestSpan(h.negative_spans[$0]!.pointee.offset, h.negative_spans[$0]!.pointee.length) }
        t.positiveSpans = (0..<h.n_positive_spans).map { TestSpan(h.positive_spans[$0]!.pointee.offset, h.positive_spans[$0]!.pointee.length) }
        t.negativeDeltas = Array(UnsafeBufferPointer(start: h.negative_deltas, count: h.n_negative_deltas))
        t.positiveDeltas = Array(UnsafeBufferPointer(start: h.positive_deltas, count: h.n_positive_deltas))
        t.negativeCounts = UnsafeBufferPointer(start: h.negative_counts, count: h.n_negative_counts).map(\.bitPattern)
        t.positiveCounts = UnsafeBufferPointer(start: h.positive_counts, count: h.n_positive_counts).map(\.bitPattern)
        t.customValues = UnsafeBufferPointer(start: h.custom_values, count: h.n_custom_values).map(\.bitPattern)
        t.resetHint = Int32(bitPattern: h.reset_hint.rawValue)
        t.startTimestamp = h.start_timestamp
        return t
    }
}

/// Owns the C memory of one message being packed; frees it all at once.
final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit { for p in allocations { p.deallocate() } }

    func one<T>(_ type: T.Type) -> UnsafeMutablePointer<T> {
        let p = UnsafeMutablePointer<T>.allocate(capacity: 1)
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    func array<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        guard !values.isEmpty else { return nil }
        let p = UnsafeMutablePointer<T>.allocate(capacity: values.count)
        p.initialize(from: values, count: values.count)
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    func pointers<T>(_ values: [UnsafeMutablePointer<T>]) -> UnsafeMutablePointer<UnsafeMutablePointer<T>?>? {
        array(values.map { Optional($0) })
    }

    func cString(_ bytes: [UInt8]) -> UnsafeMutablePointer<CChar> {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
        bytes.withUnsafeBytes { UnsafeMutableRawPointer(p).copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(p), byteCount: bytes.count) }
        p[bytes.count] = 0
        allocations.append(UnsafeMutableRawPointer(p))
        return p
    }

    func labelV1(_ l: TestLabel) -> UnsafeMutablePointer<Prometheus__Label> {
        let p = one(Prometheus__Label.self)
        prometheus__label__init(p)
        p.pointee.name = cString(l.name)
        p.pointee.value = cString(l.value)
        return p
    }

    func histogramV1(_ t: TestHistogram) -> UnsafeMutablePointer<Prometheus__Histogram> {
        let p = one(Prometheus__Histogram.self)
        prometheus__histogram__init(p)
        if t.countIsFloat {
            p.pointee.count_case = PROMETHEUS__HISTOGRAM__COUNT_COUNT_FLOAT
            p.pointee.count_float = Double(bitPattern: t.countBits)
        } else {
            p.pointee.count_case = PROMETHEUS__HISTOGRAM__COUNT_COUNT_INT
            p.pointee.count_int = t.countBits
        }
        if t.zeroCountIsFloat {
            p.pointee.zero_count_case = PROMETHEUS__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_FLOAT
            p.pointee.zero_count_float = Double(bitPattern: t.zeroCountBits)
        } else {
            p.pointee.zero_count_case = PROMETHEUS__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_INT
            p.pointee.zero_count_int = t.zeroCountBits
        }
        p.pointee.sum = Double(bitPattern: t.sumBits)
        p.pointee.schema = t.schema
        p.pointee.zero_threshold = Double(bitPattern: t.zeroThresholdBits)
        p.pointee.n_negative_spans = t.negativeSpans.count
        p.pointee.negative_spans = pointers(t.negativeSpans.map { spanV1($0) })
        p.pointee.n_positive_spans = t.positiveSpans.count
        p.pointee.positive_spans = pointers(t.positiveSpans.map { spanV1($0) })
        p.pointee.n_negative_deltas = t.negativeDeltas.count
        p.pointee.negative_deltas = array(t.negativeDeltas)
        p.pointee.n_positive_deltas = t.positiveDeltas.count
        p.pointee.positive_deltas = array(t.positiveDeltas)
        p.pointee.n_negative_counts = t.negativeCounts.count
        p.pointee.negative_counts = array(t.negativeCounts.map { Double(bitPattern: $0) })
        p.pointee.n_positive_counts = t.positiveCounts.count
        p.pointee.positive_counts = array(t.positiveCounts.map { Double(bitPattern: $0) })
        p.pointee.n_custom_values = t.customValues.count
        p.pointee.custom_values = array(t.customValues.map { Double(bitPattern: $0) })
        p.pointee.reset_hint = Prometheus__Histogram__ResetHint(rawValue: UInt32(bitPattern: t.resetHint))
        p.pointee.timestamp = t.timestamp
        return p
    }

    func spanV1(_ s: TestSpan) -> UnsafeMutablePointer<Prometheus__BucketSpan> {
        let p = one(Prometheus__BucketSpan.self)
        prometheus__bucket_span__init(p)
        p.pointee.offset = s.offset
        p.pointee.length = s.length
        return p
    }

    func histogramV2(_ t: TestHistogram) -> UnsafeMutablePointer<Io__Prometheus__Write__V2__Histogram> {
        // The 2.0 message has the same layout and field numbers: pack as 1.0, unpack as 2.0.
        var v1 = histogramV1(t).pointee
        let size = prometheus__histogram__get_packed_size(&v1)
        var bytes = [UInt8](repeating: 0, count: size)
        _ = bytes.withUnsafeMutableBufferPointer { prometheus__histogram__pack(&v1, $0.baseAddress) }
        let unpacked = bytes.withUnsafeBufferPointer {
            io__prometheus__write__v2__histogram__unpack(nil, size, $0.baseAddress)
        }!
        let p = one(Io__Prometheus__Write__V2__Histogram.self)
        p.pointee = unpacked.pointee
        p.pointee.start_timestamp = t.startTimestamp
        // The unpacked copy keeps its arrays alive; they are freed with the process (tests only).
        return p
    }
}

#if canImport(Glibc)
import Glibc
#endif
