import AlignerIngest

/// Compares the ingest path (known series found from their raw label bytes) with an ingestor that
/// reads every label of every series, on the same bodies.
public struct SkimmingCheck {
    public let skimming = Ingestor(limits: IngestLimits())
    public let reading = Ingestor(limits: IngestLimits(), readsEveryLabel: true)

    public init() {}

    /// Applies a 1.0 body to both; nil when they did the same, else the difference. A body that
    /// sends one series twice, encoded two ways, may have its samples applied in another order by
    /// the skimming path (`SeriesTable.apply`: such a series' second encoding is applied after the
    /// rest of the request, which no known sender makes happen): then which of its samples were
    /// out of order may differ, but not how many samples were taken in all.
    public func difference(_ body: [UInt8]) -> String? {
        let a = SkimmingCheck.apply(skimming, body), b = SkimmingCheck.apply(reading, body)
        switch (a, b) {
        case (.success(let x), .success(let y)) where x == y: return nil
        case (.success(let x), .success(let y)) where SkimmingCheck.repeatsASeries(body) && SkimmingCheck.inAnyOrder(x) == SkimmingCheck.inAnyOrder(y):
            return nil
        case (.failure(let x), .failure(let y)) where x.message == y.message: return nil
        default: return "skimming \(a), reading every label \(b)"
        }
    }

    /// The series each holds, with their last samples; equal when both did the same all along
    /// (the label sets alone, when `inAnyOrder`: see `difference`).
    public func tables(inAnyOrder: Bool = false) -> (skimming: [String], reading: [String]) {
        (SkimmingCheck.table(skimming, labelsOnly: inAnyOrder), SkimmingCheck.table(reading, labelsOnly: inAnyOrder))
    }

    /// The counts with the samples written and those refused for their time merged.
    static func inAnyOrder(_ c: [String: Int]) -> [String: Int] {
        var c = c
        let timing = ["written", "duplicate", "outOfOrder", "duplicateTimestamp"]
        c["samplesTaken"] = timing.reduce(0) { $0 + (c[$1] ?? 0) }
        for k in timing { c[k] = nil }
        return c
    }

    /// Whether two series of the body have the same labels once empty values are dropped and
    /// the names sorted (as the ingest path takes them); bodies it cannot walk say no.
    public static func repeatsASeries(_ body: [UInt8]) -> Bool {
        var seen: Set<[[UInt8]]> = []
        var r = body[...]
        func varint(_ b: inout ArraySlice<UInt8>) -> Int? {
            var v = 0, shift = 0
            while let x = b.first, shift < 63 {
                b = b.dropFirst()
                v |= Int(x & 0x7f) << shift
                if x < 0x80 { return v }
                shift += 7
            }
            return nil
        }
        func field(_ b: inout ArraySlice<UInt8>) -> (Int, ArraySlice<UInt8>?)? {
            guard let tag = varint(&b) else { return nil }
            switch tag & 7 {
            case 0: guard varint(&b) != nil else { return nil }; return (tag >> 3, nil)
            case 1: guard b.count >= 8 else { return nil }; b = b.dropFirst(8); return (tag >> 3, nil)
            case 5: guard b.count >= 4 else { return nil }; b = b.dropFirst(4); return (tag >> 3, nil)
            case 2:
                guard let n = varint(&b), n <= b.count else { return nil }
                defer { b = b.dropFirst(n) }
                return (tag >> 3, b.prefix(n))
            default: return nil
            }
        }
        func labels(of payload: ArraySlice<UInt8>) -> [[UInt8]]? {
            var series = payload
            var labels: [[UInt8]] = []
            while !series.isEmpty {
                guard let (n, p) = field(&series) else { return nil }
                guard n == 1, var label = p else { continue }
                var name: [UInt8] = [], value: [UInt8] = []
                while !label.isEmpty {
                    guard let (k, v) = field(&label) else { return nil }
                    if k == 1, let v { name = Array(v) } else if k == 2, let v { value = Array(v) }
                }
                if !value.isEmpty { labels.append(name + [0] + value) }
            }
            return labels
        }
        while !r.isEmpty {
            guard let (number, payload) = field(&r) else { return false }
            guard number == 1, let payload else { continue }
            // A series that cannot be walked is malformed: the ingest rejects it and goes on with
            // the next, so it repeats nothing.
            guard let labels = labels(of: payload) else { continue }
            if !seen.insert(labels.sorted { $0.lexicographicallyPrecedes($1) }).inserted { return true }
        }
        return false
    }

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

    static func table(_ ingestor: Ingestor, labelsOnly: Bool = false) -> [String] {
        ingestor.table.snapshot().map {
            let labels = "\($0.labels.map { "\($0.name)=\($0.value)" })"
            return labelsOnly ? labels : "\(labels) \($0.lastTimestamp) \($0.lastValue.bitPattern) \($0.samples)"
        }.sorted()
    }
}
