/// One label as it appears on the wire: name and value bytes borrowed from the request body.
public struct LabelRef: BitwiseCopyable {
    /// The name bytes (UTF-8 not yet checked).
    public var name: UnsafeRawBufferPointer
    /// The value bytes (UTF-8 not yet checked).
    public var value: UnsafeRawBufferPointer

    @inlinable
    public init(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        self.name = name
        self.value = value
    }
}

/// A float sample with its value kept as raw bits, so stale markers survive bit-exact.
public struct WireSample: Equatable, Sendable, BitwiseCopyable {
    /// Milliseconds since the epoch.
    public var timestamp: Int64
    /// The IEEE 754 bits of the value.
    public var valueBits: UInt64

    @inlinable
    public init(timestamp: Int64, valueBits: UInt64) {
        self.timestamp = timestamp
        self.valueBits = valueBits
    }
}

/// A native histogram sample, decoded and checked; bucket arrays are counted, not kept.
public struct WireHistogram: Equatable, Sendable, BitwiseCopyable {
    public var timestamp: Int64 = 0
    public var countIsFloat = false
    /// `count_int`, or the bits of `count_float`.
    public var countBits: UInt64 = 0
    public var sumBits: UInt64 = 0
    public var schema: Int32 = 0
    public var zeroThresholdBits: UInt64 = 0
    public var zeroCountIsFloat = false
    public var zeroCountBits: UInt64 = 0
    public var negativeSpans = 0
    public var negativeDeltas = 0
    public var negativeCounts = 0
    public var positiveSpans = 0
    public var positiveDeltas = 0
    public var positiveCounts = 0
    public var customValues = 0
    public var resetHint: Int32 = 0
    /// 2.0-rc.4 `start_timestamp` (when the counter started counting); 0 means not set.
    public var startTimestamp: Int64 = 0
    /// Why the histogram is inconsistent, or nil when it is valid.
    public var problem: HistogramProblem?

    public init() {}
}

/// An exemplar; its labels are `labelCount` entries of the decoder's exemplar label list.
public struct WireExemplar: Equatable, Sendable, BitwiseCopyable {
    public var timestamp: Int64 = 0
    public var valueBits: UInt64 = 0
    public var labelStart = 0
    public var labelCount = 0

    public init() {}
}

/// Metric metadata: remote-write 1.0 sends it per metric family, 2.0 per series.
public struct WireMetadata {
    public var type: UInt64 = 0
    /// 1.0 only: the metric family name.
    public var familyName = UnsafeRawBufferPointer(start: nil, count: 0)
    public var help = UnsafeRawBufferPointer(start: nil, count: 0)
    public var unit = UnsafeRawBufferPointer(start: nil, count: 0)
    /// Why the metadata could not be decoded, or nil.
    public var problem: SeriesProblem?

    public init() {}
}

/// Why one series of a request is rejected. The rest of the request is still applied.
public enum SeriesProblem: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(WireError)
    case noLabels
    case missingMetricName
    case emptyLabelName
    case duplicateLabelName(String)
    case invalidUTF8
    case oddLabelReferences(Int)
    case symbolOutOfRange(reference: UInt64, symbols: Int)
    case seriesLimit(Int)

    /// A short, fixed reason for metric labels.
    public var reason: String {
        switch self {
        case .malformed: "malformed"
        case .noLabels: "no_labels"
        case .missingMetricName: "missing_metric_name"
        case .emptyLabelName: "empty_label_name"
        case .duplicateLabelName: "duplicate_label_name"
        case .invalidUTF8: "invalid_utf8"
        case .oddLabelReferences: "odd_label_refs"
        case .symbolOutOfRange: "symbol_out_of_range"
        case .seriesLimit: "series_limit"
        }
    }

    public var description: String {
        switch self {
        case .malformed(let e): "malformed protobuf in series: \(e)"
        case .noLabels: "series has no labels"
        case .missingMetricName: "series has no __name__ label"
        case .emptyLabelName: "series has a label with an empty name"
        case .duplicateLabelName(let n): "series has duplicate label name \"\(n)\""
        case .invalidUTF8: "label name or value is not valid UTF-8"
        case .oddLabelReferences(let n): "labels_refs has odd length \(n)"
        case .symbolOutOfRange(let r, let n): "symbol reference \(r) out of range (request has \(n) symbols)"
        case .seriesLimit(let n): "active series limit \(n) reached (ingest.max_series)"
        }
    }
}

/// One time series of a request as the decoder hands it to a sink. Every pointer borrows from the
/// request body or the decoder's scratch space: a sink must not keep them after it returns.
public struct DecodedSeries {
    /// Labels in wire order, not validated; empty when `labelsRead` is false.
    public var labels: UnsafeBufferPointer<LabelRef>
    /// When the sender encoded the labels canonically (sorted, minimal, contiguous, 1.0 only), the
    /// raw bytes of the label fields, which then equal the series key; nil otherwise. When
    /// `labelsRead` is false: the raw label fields, framed but not looked into, so not known to be
    /// canonical (or even well-formed) until checked (`SeriesKey.canonicalize`) or found equal to a
    /// key already checked.
    public var canonicalKey: UnsafeRawBufferPointer?
    /// False when the decoder skipped over the labels (only for a sink that does not read them,
    /// see `RemoteWriteSink.readsLabels`).
    public var labelsRead: Bool
    /// When `labelsRead` is false: true when `canonicalKey` is everything before the series' one
    /// sample, taken as its label fields without walking them. It is the series key if it equals
    /// a key already checked; otherwise a sink must check that it is all label fields and, when it
    /// is not, decode the series in full (`RemoteWriteDecoder.skimmedSeriesBytes`): the series
    /// had more fields than labels and one sample.
    public var keyIsGuess = false
    public var samples: UnsafeBufferPointer<WireSample>
    public var histograms: UnsafeBufferPointer<WireHistogram>
    public var exemplars: UnsafeBufferPointer<WireExemplar>
    public var exemplarLabels: UnsafeBufferPointer<LabelRef>
    /// 2.0 only.
    public var metadata: WireMetadata?
    /// 2.0-rc.3's `created_timestamp` of the series; 0 means not set.
    public var createdTimestamp: Int64
    /// 2.0-rc.4's `start_timestamp` of each sample, in step with `samples` (0: not set); empty
    /// for 1.0.
    public var sampleStartTimestamps = UnsafeBufferPointer<Int64>(start: nil, count: 0)
    /// A structural problem inside this series' bytes; the series must be rejected.
    public var problem: SeriesProblem?
}

/// Receives what a `RemoteWriteDecoder` decodes, one series at a time. The decoder may still fail
/// on a later byte of the request: a sink collects, and applies only after the decoder returns.
public protocol RemoteWriteSink {
    /// False for a sink that can work from the raw label bytes of a 1.0 series in the common shape
    /// (`DecodedSeries.labelsRead`); the decoder then skips reading those labels. True by default.
    var readsLabels: Bool { get }
    /// One series. Called in request order.
    mutating func series(_ series: DecodedSeries)
    /// One 1.0 `MetricMetadata` entry.
    mutating func metadata(_ metadata: WireMetadata)
}

extension RemoteWriteSink {
    public var readsLabels: Bool { true }
}

/// Why a whole request cannot be decoded; nothing of it is applied.
public struct RequestDecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong, in the VictoriaMetrics voice.
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// Why a native histogram is inconsistent (the checks of Prometheus' `histogram.Validate`).
public enum HistogramProblem: Equatable, Sendable, BitwiseCopyable, CustomStringConvertible {
    case unsupportedSchema(Int32)
    case mixedIntegerAndFloat
    case negativeSpanOffset(span: Int, offset: Int32)
    case spanBucketMismatch(negative: Bool, spanned: Int, given: Int)
    case negativeBucketCount
    case customBucketsInvalid
    case customBoundsOnExponential
    case countBelowBuckets(count: Double, buckets: Double)
    case countMismatch(count: Double, buckets: Double)

    public var description: String {
        switch self {
        case .unsupportedSchema(let s): "histogram schema \(s) is not supported (want -4..8, or -53 for custom buckets)"
        case .mixedIntegerAndFloat: "histogram mixes integer and float counts"
        case .negativeSpanOffset(let span, let offset): "histogram span \(span) has negative offset \(offset)"
        case .spanBucketMismatch(let negative, let spanned, let given):
            "histogram \(negative ? "negative" : "positive") spans cover \(spanned) buckets but \(given) are given"
        case .negativeBucketCount: "histogram has a negative bucket count"
        case .customBucketsInvalid: "custom-bucket histogram has negative buckets, unordered bounds or a bucket past its bounds"
        case .customBoundsOnExponential: "exponential histogram has custom bucket bounds"
        case .countBelowBuckets(let c, let b): "histogram count \(c) is less than its buckets' total \(b)"
        case .countMismatch(let c, let b): "histogram count \(c) does not match its buckets' total \(b)"
        }
    }
}
