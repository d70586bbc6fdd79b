import AlignerIngest

/// Compares the ingest path (known series found from their raw label bytes) with an ingestor that
/// reads every label of every series, on the same bodies.
public struct SkimmingCheck {
    public let skimming = Ingestor(limits: IngestLimits())
    public let reading = Ingestor(limits: IngestLimits(), readsEveryLabel: true)

    public init() {}

    /// Applies a 1.0 body to both; nil when they did the same, else the difference.
    public func difference(_ body: [UInt8]) -> String? {
        let a = SkimmingCheck.apply(skimming, body), b = SkimmingCheck.apply(reading, body)
        switch (a, b) {
        case (.success(let x), .success(let y)) where x == y: return nil
        case (.failure(let x), .failure(let y)) where x.message == y.message: return nil
        default: return "skimming \(a), reading every label \(b)"
        }
    }

    /// The series each holds, with their last samples; equal when both did the same all along.
    public var tables: (skimming: [String], reading: [String]) { (SkimmingCheck.table(skimming), SkimmingCheck.table(reading)) }

    static func apply(_ ingestor: Ingestor, _ body: [UInt8]) -> Result<[String: Int], IngestError> {
        body.withUnsafeBytes { raw in
            Result { () throws(IngestError) in
                counts(try ingestor.apply(decompressed: raw, version: .v1, now: 1))
            }
        }
    }

    /// Everything an outcome counts (the example texts may come in another order).
    /// `samplesInvalidSeries` is left out for a request with a malformed series: reading every
    /// label stops at the malformed byte and counts the samples before it, the skimming path
    /// counts every sample of the series.
    static func counts(_ o: WriteOutcome) -> [String: Int] {
        var c = o.seriesRejectedByReason
        c["total"] = o.seriesTotal
        c["rejected"] = o.seriesRejected
        c["created"] = o.seriesCreated
        c["written"] = o.samplesWritten
        c["duplicate"] = o.samplesDuplicate
        c["outOfOrder"] = o.samplesOutOfOrder
        c["duplicateTimestamp"] = o.samplesDuplicateTimestamp
        if o.seriesRejectedByReason["malformed"] == nil { c["invalidSeries"] = o.samplesInvalidSeries }
        c["histogramsWritten"] = o.histogramsWritten
        c["histogramsRejected"] = o.histogramsRejected
        c["exemplarsWritten"] = o.exemplarsWritten
        c["exemplarsRejected"] = o.exemplarsRejected
        c["metadataWritten"] = o.metadataWritten
        return c
    }

    static func table(_ ingestor: Ingestor) -> [String] {
        ingestor.table.snapshot().map {
            "\($0.labels.map { "\($0.name)=\($0.value)" }) \($0.lastTimestamp) \($0.lastValue.bitPattern) \($0.samples)"
        }.sorted()
    }
}
