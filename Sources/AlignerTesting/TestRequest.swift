import AlignerIngest

/// A label as bytes, so tests can send what a string cannot hold (invalid UTF-8).
public struct TestLabel: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var name: [UInt8]
    public var value: [UInt8]

    public init(_ name: String, _ value: String) {
        self.name = Array(name.utf8)
        self.value = Array(value.utf8)
    }

    public init(name: [UInt8], value: [UInt8]) {
        self.name = name
        self.value = value
    }

    public var description: String {
        "\(String(decoding: name, as: UTF8.self))=\"\(String(decoding: value, as: UTF8.self))\""
    }
}

/// A bucket span of a native histogram.
public struct TestSpan: Equatable, Sendable {
    public var offset: Int32
    public var length: UInt32

    public init(_ offset: Int32, _ length: UInt32) {
        self.offset = offset
        self.length = length
    }
}

/// A native histogram with every field the wire format has.
public struct TestHistogram: Equatable, Sendable {
    public var timestamp: Int64 = 0
    public var countIsFloat = false
    public var countBits: UInt64 = 0
    public var sumBits: UInt64 = 0
    public var schema: Int32 = 0
    public var zeroThresholdBits: UInt64 = 0
    public var zeroCountIsFloat = false
    public var zeroCountBits: UInt64 = 0
    public var negativeSpans: [TestSpan] = []
    public var negativeDeltas: [Int64] = []
    public var negativeCounts: [UInt64] = []
    public var positiveSpans: [TestSpan] = []
    public var positiveDeltas: [Int64] = []
    public var positiveCounts: [UInt64] = []
    public var resetHint: Int32 = 0
    public var customValues: [UInt64] = []
    /// 2.0 only (field 17).
    public var startTimestamp: Int64 = 0

    public init() {}

    /// An integer histogram whose buckets match its count (a valid one).
    public static func integer(timestamp: Int64, counts: [UInt64], schema: Int32 = 0, sum: Double = 1.5) -> TestHistogram {
        var h = TestHistogram()
        h.timestamp = timestamp
        h.schema = schema
        h.sumBits = sum.bitPattern
        h.positiveSpans = counts.isEmpty ? [] : [TestSpan(0, UInt32(counts.count))]
        var previous: Int64 = 0
        for c in counts {
            h.positiveDeltas.append(Int64(c) - previous)
            previous = Int64(c)
        }
        h.countBits = counts.reduce(0, +)
        return h
    }

    /// What the fast decoder reports for this histogram (bucket arrays are counted, not kept).
    public var wire: WireHistogram {
        var w = WireHistogram()
        w.timestamp = timestamp
        w.countIsFloat = countIsFloat
        w.countBits = countBits
        w.sumBits = sumBits
        w.schema = schema
        w.zeroThresholdBits = zeroThresholdBits
        w.zeroCountIsFloat = zeroCountIsFloat
        w.zeroCountBits = zeroCountBits
        w.negativeSpans = negativeSpans.count
        w.negativeDeltas = negativeDeltas.count
        w.negativeCounts = negativeCounts.count
        w.positiveSpans = positiveSpans.count
        w.positiveDeltas = positiveDeltas.count
        w.positiveCounts = positiveCounts.count
        w.customValues = customValues.count
        w.resetHint = resetHint
        w.startTimestamp = startTimestamp
        return w
    }
}

public struct TestExemplar: Equatable, Sendable {
    public var labels: [TestLabel]
    public var valueBits: UInt64
    public var timestamp: Int64

    public init(labels: [TestLabel], value: Double, timestamp: Int64) {
        self.labels = labels
        valueBits = value.bitPattern
        self.timestamp = timestamp
    }

    public init(labels: [TestLabel], valueBits: UInt64, timestamp: Int64) {
        self.labels = labels
        self.valueBits = valueBits
        self.timestamp = timestamp
    }
}

public struct TestMetadata: Equatable, Sendable {
    public var type: UInt64
    public var familyName: [UInt8]
    public var help: [UInt8]
    public var unit: [UInt8]

    public init(type: UInt64, familyName: String = "", help: String = "", unit: String = "") {
        self.type = type
        self.familyName = Array(familyName.utf8)
        self.help = Array(help.utf8)
        self.unit = Array(unit.utf8)
    }
}

/// One series of a test request. `problem` marks a series the decoder must reject.
public struct TestSeries: Equatable, Sendable {
    public var labels: [TestLabel]
    public var samples: [WireSample]
    public var histograms: [WireHistogram] = []
    public var fullHistograms: [TestHistogram] = []
    public var exemplars: [TestExemplar] = []
    public var metadata: TestMetadata?
    public var createdTimestamp: Int64 = 0
    /// 2.0 only: each sample's start timestamp, in step with `samples` (empty: none set).
    public var sampleStarts: [Int64] = []
    public var problem = false

    public init(labels: [TestLabel], samples: [WireSample] = []) {
        self.labels = labels
        self.samples = samples
    }

    /// A series from `name{label=value,...}` with float samples `(timestamp, value)`.
    public init(_ name: String, _ labels: [(String, String)] = [], samples: [(Int64, Double)]) {
        self.labels = [TestLabel("__name__", name)] + labels.map { TestLabel($0.0, $0.1) }
        self.samples = samples.map { WireSample(timestamp: $0.0, valueBits: $0.1.bitPattern) }
    }

    public static func == (a: TestSeries, b: TestSeries) -> Bool {
        if a.problem || b.problem { return a.problem == b.problem }
        return a.labels == b.labels && a.samples == b.samples && a.histogramSummaries == b.histogramSummaries
            && a.exemplars == b.exemplars && a.metadata == b.metadata && a.createdTimestamp == b.createdTimestamp
            && a.startsOrZeros == b.startsOrZeros
    }

    /// `sampleStarts` with "none set" and "all zero" the same.
    var startsOrZeros: [Int64] { sampleStarts.allSatisfy { $0 == 0 } ? [] : sampleStarts }

    var histogramSummaries: [WireHistogram] {
        (fullHistograms.isEmpty ? histograms : fullHistograms.map(\.wire)).map {
            var w = $0
            w.problem = nil
            return w
        }
    }
}

/// A whole request: series, plus 1.0's separate metadata list.
public struct TestRequest: Equatable, Sendable {
    public var series: [TestSeries]
    public var metadata: [TestMetadata]
    /// 2.0 only: extra symbols to put first in the table after "" (for odd requests).
    public var extraSymbols: [[UInt8]] = []

    public init(series: [TestSeries], metadata: [TestMetadata] = []) {
        self.series = series
        self.metadata = metadata
    }

    /// Without the 2.0-only start timestamps (1.0 has nowhere to put them).
    public mutating func dropStartTimestamps() {
        for i in series.indices {
            series[i].createdTimestamp = 0
            series[i].sampleStarts = []
            for k in series[i].fullHistograms.indices { series[i].fullHistograms[k].startTimestamp = 0 }
        }
    }

    public static func == (a: TestRequest, b: TestRequest) -> Bool {
        a.series == b.series && a.metadata == b.metadata
    }
}
