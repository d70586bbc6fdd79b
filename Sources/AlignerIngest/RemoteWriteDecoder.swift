/// A zero-copy decoder for remote-write 1.0 (`prometheus.WriteRequest`) and 2.0
/// (`io.prometheus.write.v2.Request`) protobuf bodies.
///
/// It reads the decompressed bytes in place and hands each series to a sink with labels borrowed
/// from the body, keeping its scratch space between requests so a warm decoder allocates nothing.
/// Unknown fields are skipped; repeated scalars are accepted packed and unpacked. The framing of
/// the whole request is checked before any series is handed out, so a truncated body applies
/// nothing; a problem inside one series only rejects that series.
///
/// Not thread-safe: one decoder per request in flight (see `DecoderPool`).
public final class RemoteWriteDecoder {
    let labels = Scratch<LabelRef>(capacity: 64)
    let samples = Scratch<WireSample>(capacity: 16)
    let histograms = Scratch<WireHistogram>(capacity: 4)
    let exemplars = Scratch<WireExemplar>(capacity: 4)
    let exemplarLabels = Scratch<LabelRef>(capacity: 8)
    let labelRefs = Scratch<UInt32>(capacity: 64)
    let exemplarRefs = Scratch<UInt32>(capacity: 16)
    let symbols = Scratch<UnsafeRawBufferPointer>(capacity: 1024)
    let spans = Scratch<Int64>(capacity: 16)

    /// Creates a decoder with empty scratch space.
    public init() {}

    // MARK: 1.0

    /// Decodes a `prometheus.WriteRequest`.
    public func decodeV1<S: RemoteWriteSink>(
        _ body: UnsafeRawBufferPointer, into sink: inout S
    ) throws(RequestDecodeError) {
        try checkFraming(body, version: "1.0", lengthDelimitedFields: (1, 3))
        var r = WireReader(body)
        do {
            while !r.isAtEnd {
                let (field, wireType) = try r.tag()
                switch field {
                case 1:
                    let bytes = try r.lengthDelimited()
                    sink.series(decodeSeriesV1(bytes))
                case 3:
                    let bytes = try r.lengthDelimited()
                    sink.metadata(decodeMetadataV1(bytes))
                default:
                    try r.skip(wireType: wireType)
                }
            }
        } catch {
            // checkFraming has walked the same fields; this cannot happen.
            throw RequestDecodeError("cannot decode remote-write 1.0 body: \(error)")
        }
    }

    func decodeSeriesV1(_ bytes: UnsafeRawBufferPointer) -> DecodedSeries {
        labels.removeAll()
        samples.removeAll()
        histograms.removeAll()
        exemplars.removeAll()
        exemplarLabels.removeAll()
        var r = WireReader(bytes)
        var canonical = true
        var keyStart: UnsafePointer<UInt8>?
        var keyEnd: UnsafePointer<UInt8>?
        var problem: SeriesProblem?
        do throws(WireError) {
            while !r.isAtEnd {
                let tagStart = r.p
                let (field, wireType) = try r.tag()
                switch field {
                case 1:
                    guard wireType == 2 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    let lengthStart = r.p
                    let bytes = try r.lengthDelimited()
                    let label = try decodeLabel(bytes)
                    if canonical {
                        // Canonical: one-byte tag, minimal length, contiguous with the previous label,
                        // name then value both present and minimal, names strictly ascending.
                        if keyStart == nil {
                            keyStart = tagStart
                        } else if keyEnd != tagStart {
                            canonical = false
                        }
                        let n = label.name.count, v = label.value.count
                        if lengthStart - tagStart != 1 || r.p - lengthStart != varintSize(bytes.count) + bytes.count
                            || n == 0 || v == 0
                            || bytes.count != 2 + varintSize(n) + n + varintSize(v) + v
                            || bytes.load(as: UInt8.self) != 0x0A
                            || label.name.baseAddress! != bytes.baseAddress! + 1 + varintSize(n)
                            || label.value.baseAddress! != label.name.baseAddress! + n + 1 + varintSize(v)
                        {
                            canonical = false
                        } else if labels.count > 0, labels[labels.count - 1].name.compareBytes(label.name) >= 0 {
                            canonical = false
                        }
                        keyEnd = r.p
                    }
                    labels.append(label)
                case 2:
                    guard wireType == 2 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    samples.append(try decodeSample(try r.lengthDelimited()))
                case 3:
                    guard wireType == 2 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    exemplars.append(try decodeExemplarV1(try r.lengthDelimited()))
                case 4:
                    guard wireType == 2 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    histograms.append(try decodeHistogram(try r.lengthDelimited()))
                default:
                    try r.skip(wireType: wireType)
                }
            }
        } catch {
            problem = .malformed(error)
        }
        var key: UnsafeRawBufferPointer?
        if canonical, problem == nil, let keyStart, let keyEnd {
            key = UnsafeRawBufferPointer(start: UnsafeRawPointer(keyStart), count: keyEnd - keyStart)
        }
        return DecodedSeries(
            labels: labels.buffer, canonicalKey: key, samples: samples.buffer,
            histograms: histograms.buffer, exemplars: exemplars.buffer,
            exemplarLabels: exemplarLabels.buffer, metadata: nil, createdTimestamp: 0, problem: problem)
    }

    @inline(__always)
    func decodeLabel(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> LabelRef {
        var r = WireReader(bytes)
        var name = UnsafeRawBufferPointer(start: bytes.baseAddress, count: 0)
        var value = name
        while !r.isAtEnd {
            let (field, wireType) = try r.tag()
            switch field {
            case 1:
                guard wireType == 2 else { throw .wrongWireType(field: field, got: wireType) }
                name = try r.lengthDelimited()
            case 2:
                guard wireType == 2 else { throw .wrongWireType(field: field, got: wireType) }
                value = try r.lengthDelimited()
            default:
                try r.skip(wireType: wireType)
            }
        }
        return LabelRef(name: name, value: value)
    }

    @inline(__always)
    func decodeSample(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> WireSample {
        var r = WireReader(bytes)
        var sample = WireSample(timestamp: 0, valueBits: 0)
        while !r.isAtEnd {
            let (field, wireType) = try r.tag()
            switch field {
            case 1:
                guard wireType == 1 else { throw .wrongWireType(field: field, got: wireType) }
                sample.valueBits = try r.fixed64()
            case 2:
                guard wireType == 0 else { throw .wrongWireType(field: field, got: wireType) }
                sample.timestamp = Int64(bitPattern: try r.varint())
            default:
                try r.skip(wireType: wireType)
            }
        }
        return sample
    }

    func decodeExemplarV1(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> WireExemplar {
        var r = WireReader(bytes)
        var exemplar = WireExemplar()
        exemplar.labelStart = exemplarLabels.count
        while !r.isAtEnd {
            let (field, wireType) = try r.tag()
            switch field {
            case 1:
                guard wireType == 2 else { throw .wrongWireType(field: field, got: wireType) }
                exemplarLabels.append(try decodeLabel(try r.lengthDelimited()))
            case 2:
                guard wireType == 1 else { throw .wrongWireType(field: field, got: wireType) }
                exemplar.valueBits = try r.fixed64()
            case 3:
                guard wireType == 0 else { throw .wrongWireType(field: field, got: wireType) }
                exemplar.timestamp = Int64(bitPattern: try r.varint())
            default:
                try r.skip(wireType: wireType)
            }
        }
        exemplar.labelCount = exemplarLabels.count - exemplar.labelStart
        return exemplar
    }

    func decodeMetadataV1(_ bytes: UnsafeRawBufferPointer) -> WireMetadata {
        var r = WireReader(bytes)
        var metadata = WireMetadata()
        do throws(WireError) {
            while !r.isAtEnd {
                let (field, wireType) = try r.tag()
                switch field {
                case 1:
                    guard wireType == 0 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    metadata.type = try r.varint()
                case 2, 4, 5:
                    guard wireType == 2 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    let value = try r.lengthDelimited()
                    if field == 2 { metadata.familyName = value } else if field == 4 { metadata.help = value } else {
                        metadata.unit = value
                    }
                default:
                    try r.skip(wireType: wireType)
                }
            }
        } catch {
            metadata.problem = .malformed(error)
        }
        return metadata
    }

    // MARK: 2.0

    /// Decodes an `io.prometheus.write.v2.Request`.
    public func decodeV2<S: RemoteWriteSink>(
        _ body: UnsafeRawBufferPointer, into sink: inout S
    ) throws(RequestDecodeError) {
        try checkFraming(body, version: "2.0", lengthDelimitedFields: (4, 5))
        // Symbols may follow the series on the wire: collect them first.
        symbols.removeAll()
        var r = WireReader(body)
        do {
            while !r.isAtEnd {
                let (field, wireType) = try r.tag()
                if field == 4 { symbols.append(try r.lengthDelimited()) } else { try r.skip(wireType: wireType) }
            }
        } catch {
            throw RequestDecodeError("cannot decode remote-write 2.0 body: \(error)")
        }
        if symbols.count > 0, symbols[0].count != 0 {
            throw RequestDecodeError(
                "cannot decode remote-write 2.0 body: symbols[0] must be the empty string, got \(symbols[0].count) bytes")
        }
        r = WireReader(body)
        do {
            while !r.isAtEnd {
                let (field, wireType) = try r.tag()
                if field == 5 { sink.series(decodeSeriesV2(try r.lengthDelimited())) } else {
                    try r.skip(wireType: wireType)
                }
            }
        } catch {
            throw RequestDecodeError("cannot decode remote-write 2.0 body: \(error)")
        }
    }

    func decodeSeriesV2(_ bytes: UnsafeRawBufferPointer) -> DecodedSeries {
        labels.removeAll()
        labelRefs.removeAll()
        samples.removeAll()
        histograms.removeAll()
        exemplars.removeAll()
        exemplarLabels.removeAll()
        exemplarRefs.removeAll()
        var r = WireReader(bytes)
        var problem: SeriesProblem?
        var metadata: WireMetadata?
        var created: Int64 = 0
        var metadataRefs: (type: UInt64, help: UInt64, unit: UInt64)?
        do throws(WireError) {
            while !r.isAtEnd {
                let (field, wireType) = try r.tag()
                switch field {
                case 1:
                    try readUInt32s(&r, wireType: wireType, field: field, into: labelRefs)
                case 2:
                    guard wireType == 2 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    samples.append(try decodeSample(try r.lengthDelimited()))
                case 3:
                    guard wireType == 2 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    histograms.append(try decodeHistogram(try r.lengthDelimited()))
                case 4:
                    guard wireType == 2 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    exemplars.append(try decodeExemplarV2(try r.lengthDelimited()))
                case 5:
                    guard wireType == 2 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    // A repeated singular message merges: later fields win.
                    metadataRefs = try decodeMetadataV2(try r.lengthDelimited(), merging: metadataRefs ?? (0, 0, 0))
                case 6:
                    guard wireType == 0 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    created = Int64(bitPattern: try r.varint())
                default:
                    try r.skip(wireType: wireType)
                }
            }
        } catch {
            problem = .malformed(error)
        }
        if problem == nil {
            problem = resolve(refs: labelRefs, start: 0, count: labelRefs.count, into: labels)
        }
        if problem == nil {
            for i in 0..<exemplars.count {
                let start = exemplarLabels.count
                if let p = resolve(
                    refs: exemplarRefs, start: exemplars[i].labelStart, count: exemplars[i].labelCount,
                    into: exemplarLabels)
                {
                    problem = p
                    break
                }
                exemplars[i].labelStart = start
                exemplars[i].labelCount = exemplarLabels.count - start
            }
        }
        if problem == nil, let refs = metadataRefs {
            var m = WireMetadata()
            m.type = refs.type
            if let help = symbol(refs.help), let unit = symbol(refs.unit) {
                m.help = help
                m.unit = unit
            } else {
                problem = .symbolOutOfRange(reference: symbol(refs.help) == nil ? refs.help : refs.unit, symbols: symbols.count)
            }
            metadata = m
        }
        return DecodedSeries(
            labels: labels.buffer, canonicalKey: nil, samples: samples.buffer, histograms: histograms.buffer,
            exemplars: exemplars.buffer, exemplarLabels: exemplarLabels.buffer, metadata: metadata,
            createdTimestamp: created, problem: problem)
    }

    @inline(__always)
    func symbol(_ ref: UInt64) -> UnsafeRawBufferPointer? {
        ref < UInt64(symbols.count) ? symbols[Int(ref)] : nil
    }

    @inline(__always)
    func resolve(refs: Scratch<UInt32>, start: Int, count: Int, into out: Scratch<LabelRef>) -> SeriesProblem? {
        if count & 1 != 0 { return .oddLabelReferences(count) }
        var i = start
        let end = start + count
        while i < end {
            let n = refs[i], v = refs[i + 1]
            guard let name = symbol(UInt64(n)) else { return .symbolOutOfRange(reference: UInt64(n), symbols: symbols.count) }
            guard let value = symbol(UInt64(v)) else { return .symbolOutOfRange(reference: UInt64(v), symbols: symbols.count) }
            out.append(LabelRef(name: name, value: value))
            i += 2
        }
        return nil
    }

    @inline(__always)
    func readUInt32s(_ r: inout WireReader, wireType: UInt8, field: UInt64, into out: Scratch<UInt32>) throws(WireError) {
        if wireType == 2 {
            var packed = WireReader(try r.lengthDelimited())
            while !packed.isAtEnd { out.append(UInt32(truncatingIfNeeded: try packed.varint())) }
        } else if wireType == 0 {
            out.append(UInt32(truncatingIfNeeded: try r.varint()))
        } else {
            throw .wrongWireType(field: field, got: wireType)
        }
    }

    func decodeExemplarV2(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> WireExemplar {
        var r = WireReader(bytes)
        var exemplar = WireExemplar()
        // Refs are resolved after the series is read, when all symbols are known to be in range.
        exemplar.labelStart = exemplarRefs.count
        while !r.isAtEnd {
            let (field, wireType) = try r.tag()
            switch field {
            case 1:
                try readUInt32s(&r, wireType: wireType, field: field, into: exemplarRefs)
            case 2:
                guard wireType == 1 else { throw .wrongWireType(field: field, got: wireType) }
                exemplar.valueBits = try r.fixed64()
            case 3:
                guard wireType == 0 else { throw .wrongWireType(field: field, got: wireType) }
                exemplar.timestamp = Int64(bitPattern: try r.varint())
            default:
                try r.skip(wireType: wireType)
            }
        }
        exemplar.labelCount = exemplarRefs.count - exemplar.labelStart
        return exemplar
    }

    func decodeMetadataV2(
        _ bytes: UnsafeRawBufferPointer, merging start: (type: UInt64, help: UInt64, unit: UInt64)
    ) throws(WireError) -> (type: UInt64, help: UInt64, unit: UInt64) {
        var r = WireReader(bytes)
        var m = start
        while !r.isAtEnd {
            let (field, wireType) = try r.tag()
            switch field {
            case 1, 3, 4:
                guard wireType == 0 else { throw .wrongWireType(field: field, got: wireType) }
                let v = try r.varint()
                if field == 1 { m.type = v } else if field == 3 { m.help = UInt64(UInt32(truncatingIfNeeded: v)) } else {
                    m.unit = UInt64(UInt32(truncatingIfNeeded: v))
                }
            default:
                try r.skip(wireType: wireType)
            }
        }
        return m
    }

    // MARK: Framing

    /// Walks the top-level fields once, checking that every field is well framed and that the
    /// message fields have the length-delimited wire type, before anything is applied.
    func checkFraming(
        _ body: UnsafeRawBufferPointer, version: String, lengthDelimitedFields: (UInt64, UInt64)
    ) throws(RequestDecodeError) {
        var r = WireReader(body)
        do {
            while !r.isAtEnd {
                let offset = body.count - r.remaining
                let (field, wireType) = try r.tag()
                if (field == lengthDelimitedFields.0 || field == lengthDelimitedFields.1) && wireType != 2 {
                    throw RequestDecodeError(
                        "cannot decode remote-write \(version) body: field \(field) at byte \(offset) has wire type \(wireType), want 2")
                }
                do { try r.skip(wireType: wireType) } catch {
                    throw RequestDecodeError(
                        "cannot decode remote-write \(version) body: \(error) (field \(field) at byte \(offset) of \(body.count))")
                }
            }
        } catch let error as RequestDecodeError {
            throw error
        } catch {
            throw RequestDecodeError(
                "cannot decode remote-write \(version) body: \(error) at byte \(body.count - r.remaining) of \(body.count)")
        }
    }
}
