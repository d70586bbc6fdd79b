import AlignerCore

/// What one remote-write request did: counts of everything written and rejected, and a few
/// examples of each rejection, for the response body and the metrics.
public struct WriteOutcome: Sendable {
    /// Why a sample was not applied.
    public enum SampleRejection: String, Sendable, CaseIterable {
        case outOfOrder = "out_of_order"
        case duplicateTimestamp = "duplicate_timestamp"
        case invalidSeries = "invalid_series"
    }

    /// Bytes of the decompressed body.
    public var decodedBytes = 0
    public var seriesTotal = 0
    public var seriesRejected = 0
    public var seriesCreated = 0
    public var samplesWritten = 0
    /// Identical repeats of a series' last sample, accepted silently (included in `samplesWritten`).
    public var samplesDuplicate = 0
    public var samplesOutOfOrder = 0
    public var samplesDuplicateTimestamp = 0
    public var samplesInvalidSeries = 0
    public var histogramsWritten = 0
    public var histogramsRejected = 0
    public var exemplarsWritten = 0
    public var exemplarsRejected = 0
    public var metadataWritten = 0
    public var metadataRejected = 0
    /// Start (created) timestamps received with accepted series: 2.0-rc.3's one per series,
    /// rc.4's one per sample or histogram. Decoded and counted; nothing uses them yet.
    public var startTimestamps = 0
    /// Series of a standby replica dropped (`ReplicaDeduplication`).
    public var seriesDeduplicated = 0
    /// Why the whole request was dropped as a standby replica's (answered 202), if it was.
    public var deduplicated: String?
    /// Replicas this request elected (`ReplicaDeduplication`), for the log.
    public var replicaElections: [String] = []
    /// Series rejected, by `SeriesProblem.reason`.
    public var seriesRejectedByReason: [String: Int] = [:]
    /// Up to a few human-readable examples of what was rejected.
    public var examples: [String] = []

    public init() {}

    /// Samples not applied, all reasons.
    public var samplesRejected: Int { samplesOutOfOrder + samplesDuplicateTimestamp + samplesInvalidSeries }

    /// Whether anything in the request was rejected (the response is then a 400).
    public var hasRejections: Bool {
        seriesRejected > 0 || samplesRejected > 0 || histogramsRejected > 0 || exemplarsRejected > 0
            || metadataRejected > 0
    }

    static let maxExamples = 3

    mutating func addExample(_ text: @autoclosure () -> String) {
        if examples.count < WriteOutcome.maxExamples { examples.append(text()) }
    }

    mutating func rejectSample(_ why: SampleRejection, key: UnsafeRawBufferPointer, timestamp: Int64, last: Int64) {
        switch why {
        case .outOfOrder:
            samplesOutOfOrder += 1
            addExample("out-of-order sample for \(decodeLabels(key).promText): timestamp \(timestamp) is older than the last accepted \(last)")
        case .duplicateTimestamp:
            samplesDuplicateTimestamp += 1
            addExample("duplicate sample for \(decodeLabels(key).promText) at timestamp \(timestamp) with a different value")
        case .invalidSeries:
            samplesInvalidSeries += 1
        }
    }

    /// The response body for a request with rejections: what was rejected, how much, and examples.
    public var message: String {
        var parts: [String] = []
        if seriesRejected > 0 {
            let reasons = seriesRejectedByReason.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }
            parts.append("rejected \(seriesRejected) of \(seriesTotal) series (\(reasons.joined(separator: ", ")))")
        }
        if samplesRejected > 0 {
            var reasons: [String] = []
            if samplesOutOfOrder > 0 { reasons.append("\(samplesOutOfOrder) out of order") }
            if samplesDuplicateTimestamp > 0 { reasons.append("\(samplesDuplicateTimestamp) duplicate timestamp") }
            if samplesInvalidSeries > 0 { reasons.append("\(samplesInvalidSeries) in rejected series") }
            parts.append("rejected \(samplesRejected) of \(samplesRejected + samplesWritten) samples (\(reasons.joined(separator: ", ")))")
        }
        if histogramsRejected > 0 { parts.append("rejected \(histogramsRejected) histograms") }
        if exemplarsRejected > 0 { parts.append("rejected \(exemplarsRejected) exemplars") }
        if metadataRejected > 0 { parts.append("rejected \(metadataRejected) metadata entries") }
        var text = parts.joined(separator: "; ")
        if !examples.isEmpty { text += "; for example: " + examples.joined(separator: "; ") }
        return text
    }
}
