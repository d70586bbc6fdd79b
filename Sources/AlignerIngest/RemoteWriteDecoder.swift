/// A zero-copy decoder for remote-write 1.0 (`prometheus.WriteRequest`) and 2.0
/// (`io.prometheus.write.v2.Request`) protobuf bodies.
///
/// It reads the decompressed bytes in place and hands each series to a sink with labels borrowed
/// from the body, keeping its scratch space between requests so a warm decoder allocates nothing.
/// Unknown fields are skipped; repeated scalars are accepted packed and unpacked. The framing of
/// the whole request is checked as it is read: a sink must apply nothing before the decoder
/// returns, so that a truncated body applies nothing. A problem inside one series only rejects
/// that series.
///
/// Not thread-safe: one decoder per request in flight (see `DecoderPool`).
public final class RemoteWriteDecoder {
    let labels = Scratch<LabelRef>(capacity: 64)
    let samples = Scratch<WireSample>(capacity: 16)
    /// 2.0: each sample's start timestamp, in step with `samples`.
    let sampleStarts = Scratch<Int64>(capacity: 16)
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
        var r = WireReader(body)
        var field: UInt64 = 0
        var offset = 0
        do throws(WireError) {
            while !r.isAtEnd {
                offset = body.count - r.remaining
                let (f, wireType) = try r.tag()
                field = f
                switch f {
                case 1:
                    guard wireType == 2 else { throw .wrongWireType(field: f, got: wireType) }
                    let bytes = try r.lengthDelimited()
                    if sink.readsLabels || !skimSeriesV1(bytes, into: &sink) { sink.series(decodeSeriesV1(bytes)) }
                case 3:
                    guard wireType == 2 else { throw .wrongWireType(field: f, got: wireType) }
                    sink.metadata(decodeMetadataV1(try r.lengthDelimited()))
                default:
                    try r.skip(wireType: wireType)
                }
            }
        } catch {
            throw RequestDecodeError(
                "cannot decode remote-write 1.0 body: \(error) (field \(field) at byte \(offset) of \(body.count))")
        }
    }

    /// The labels of a 1.0 body's first series, or nil when it has none or cannot be read (the
    /// request's decoding then says why). For a decision about the whole request.
    func firstSeriesLabelsV1(_ body: UnsafeRawBufferPointer) -> UnsafeBufferPointer<LabelRef>? {
        var r = WireReader(body)
        while !r.isAtEnd {
            guard let (f, wireType) = try? r.tag() else { return nil }
            if f == 1 && wireType == 2 {
                guard let bytes = try? r.lengthDelimited() else { return nil }
                let series = decodeSeriesV1(bytes)
                return series.problem == nil ? series.labels : nil
            }
            guard (try? r.skip(wireType: wireType)) != nil else { return nil }
        }
        return nil
    }

    /// The shape Prometheus sends, read without looking inside the labels: every label field first
    /// and contiguous (`0A len ...`), then samples only. The label fields are
    /// handed over raw and unchecked (`DecodedSeries.labelsRead` false). False, and nothing handed
    /// over, for any other shape, which `decodeSeriesV1` then reads in full.
    ///
    /// A series that ends with one sample as Prometheus encodes it (`tailSample`) is not walked at
    /// all: the bytes before that sample are taken as its label fields (`DecodedSeries.keyIsGuess`).
    /// Walking them is a chain of dependent loads, one per label; skipping it measured 12-18% more
    /// decode + series lookup on the shared payloads.
    @inline(__always)
    func skimSeriesV1<S: RemoteWriteSink>(_ bytes: UnsafeRawBufferPointer, into sink: inout S) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        let end = base + bytes.count
        samples.removeAll()
        if let (start, sample) = tailSample(base, end) {
            samples.append(sample)
            sink.series(DecodedSeries(
                labels: UnsafeBufferPointer(start: nil, count: 0),
                canonicalKey: UnsafeRawBufferPointer(start: base, count: start - base), labelsRead: false,
                keyIsGuess: true, samples: samples.buffer, histograms: UnsafeBufferPointer(start: nil, count: 0),
                exemplars: UnsafeBufferPointer(start: nil, count: 0), exemplarLabels: UnsafeBufferPointer(start: nil, count: 0),
                metadata: nil, createdTimestamp: 0, problem: nil))
            return true
        }
        var p = base
        while let length = SeriesKey.labelFieldLength(at: p, end: end) { p += length }
        guard p > base else { return false }
        let key = UnsafeRawBufferPointer(start: base, count: p - base)
        var r = WireReader(UnsafeRawBufferPointer(start: p, count: end - p))
        while !r.isAtEnd {
            if let sample = fastSample(&r) {
                samples.append(sample)
                continue
            }
            // Another sample encoding (a zero value is left out on the wire), or anything else.
            guard r.p[0] == 0x12 else { return false }
            r.p += 1
            guard let message = try? r.lengthDelimited(), let sample = try? decodeSample(message) else { return false }
            samples.append(sample)
        }
        sink.series(DecodedSeries(
            labels: UnsafeBufferPointer(start: nil, count: 0), canonicalKey: key, labelsRead: false,
            samples: samples.buffer, histograms: UnsafeBufferPointer(start: nil, count: 0),
            exemplars: UnsafeBufferPointer(start: nil, count: 0), exemplarLabels: UnsafeBufferPointer(start: nil, count: 0),
            metadata: nil, createdTimestamp: 0, problem: nil))
        return true
    }

    /// The series' last field when it is its only sample as Prometheus sends it, with a timestamp
    /// of six varint bytes (milliseconds from 1971 to 2109): `12 10 09 value 10 timestamp`, or
    /// `12 07 10 timestamp` for a zero value, which proto3 leaves out. Nil when the bytes before it
    /// end the same way (vmagent sends several samples per series) or start with anything but a
    /// label field: those series are walked. The bytes before the sample may still hold other
    /// fields than labels; a sink finds out (see `DecodedSeries.keyIsGuess`).
    @inline(__always)
    func tailSample(_ base: UnsafeRawPointer, _ end: UnsafeRawPointer) -> (UnsafeRawPointer, WireSample)? {
        @inline(__always) func looksLikeSampleEnd(_ q: UnsafeRawPointer) -> Bool {
            (q - base >= 18 && q.loadUnaligned(fromByteOffset: -18, as: UInt16.self) == 0x1012 && q.load(fromByteOffset: -16, as: UInt8.self) == 0x09)
                || (q - base >= 9 && q.loadUnaligned(fromByteOffset: -9, as: UInt16.self) == 0x0712 && q.load(fromByteOffset: -7, as: UInt8.self) == 0x10)
        }
        guard end - base > 20, base.load(as: UInt8.self) == 0x0A else { return nil }
        let p = end - 18
        if p.loadUnaligned(as: UInt16.self) == 0x1012 {
            var r = WireReader(UnsafeRawBufferPointer(start: p, count: 18))
            guard let sample = fastSample(&r), !looksLikeSampleEnd(p) else { return nil }
            return (p, sample)
        }
        let q = end - 9
        guard q.loadUnaligned(as: UInt16.self) == 0x0712, q.load(fromByteOffset: 2, as: UInt8.self) == 0x10,
              !looksLikeSampleEnd(q) else { return nil }
        var ts: UInt64 = 0
        for i in 0..<6 {
            let b = q.load(fromByteOffset: 3 + i, as: UInt8.self)
            guard (b < 0x80) == (i == 5) else { return nil }
            ts |= UInt64(b & 0x7f) << (7 * UInt64(i))
        }
        return (q, WireSample(timestamp: Int64(bitPattern: ts), valueBits: 0))
    }

    /// The bytes of a whole series from its guessed key (`DecodedSeries.keyIsGuess`): the key and
    /// the sample field after it (`12 len ...`).
    static func skimmedSeriesBytes(key: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        let sample = key.baseAddress! + key.count
        return UnsafeRawBufferPointer(start: key.baseAddress, count: key.count + 2 + Int(sample.load(fromByteOffset: 1, as: UInt8.self)))
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
                // Fast paths for what Prometheus sends: a label `0A len 0A n name 12 v value` and a
                // sample `12 len 09 value 10 timestamp`, every length a single byte.
                if let label = fastLabel(&r) {
                    if canonical {
                        let tagStart = r.p - label.encodedCount
                        if keyStart == nil {
                            keyStart = tagStart
                        } else if keyEnd != tagStart {
                            canonical = false
                        }
                        if labels.count > 0, !precedes(labels[labels.count - 1].name, label.ref.name) { canonical = false }
                        keyEnd = r.p
                    }
                    labels.append(label.ref)
                    continue
                }
                if let sample = fastSample(&r) {
                    samples.append(sample)
                    continue
                }
                let tagStart = r.p
                let (field, wireType) = try r.tag()
                switch field {
                case 1:
                    guard wireType == 2 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    let lengthStart = r.p
                    let bytes = try r.lengthDelimited()
                    let label = try Self.decodeLabel(bytes)
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
                        } else if labels.count > 0, !precedes(labels[labels.count - 1].name, label.name) {
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
            labels: labels.buffer, canonicalKey: key, labelsRead: true, samples: samples.buffer,
            histograms: histograms.buffer, exemplars: exemplars.buffer,
            exemplarLabels: exemplarLabels.buffer, metadata: nil, createdTimestamp: 0, problem: problem)
    }

    /// A canonically encoded label with one-byte lengths, non-empty name and value; nil (and the
    /// reader untouched) for anything else, which the general path then reads.
    @inline(__always)
    func fastLabel(_ r: inout WireReader) -> (ref: LabelRef, encodedCount: Int)? {
        let p = r.p
        let available = r.end - p
        guard available >= 6, p[0] == 0x0A else { return nil }
        let length = Int(p[1])
        guard length < 0x80, length + 2 <= available, p[2] == 0x0A else { return nil }
        let n = Int(p[3])
        guard n > 0, n < 0x80, n + 4 < length + 2, p[4 + n] == 0x12 else { return nil }
        let v = Int(p[5 + n])
        guard v > 0, v < 0x80, 4 + n + v == length else { return nil }
        r.p = p + 2 + length
        let name = UnsafeRawBufferPointer(start: p + 4, count: n)
        let value = UnsafeRawBufferPointer(start: p + 6 + n, count: v)
        return (LabelRef(name: name, value: value), 2 + length)
    }

    /// A sample encoded as `12 len 09 <8 bytes> 10 <varint>`; nil (reader untouched) otherwise.
    @inline(__always)
    func fastSample(_ r: inout WireReader) -> WireSample? {
        let p = r.p
        let available = r.end - p
        guard available >= 13, p[0] == 0x12 else { return nil }
        let length = Int(p[1])
        guard length < 0x80, length >= 11, length + 2 <= available, p[2] == 0x09, p[11] == 0x10 else { return nil }
        let end = p + 2 + length
        var q = p + 12
        var ts: UInt64 = 0
        var shift: UInt64 = 0
        while q < end {
            let b = q.pointee
            q += 1
            ts |= UInt64(b & 0x7f) << shift
            if b < 0x80 { break }
            shift += 7
            if shift >= 63 { return nil }
        }
        guard q == end, end[-1] < 0x80 else { return nil }
        let bits = UInt64(littleEndian: UnsafeRawPointer(p + 3).loadUnaligned(as: UInt64.self))
        r.p = end
        return WireSample(timestamp: Int64(bitPattern: ts), valueBits: bits)
    }

    @inline(__always)
    static func decodeLabel(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> LabelRef {
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
        var unused: Int64 = 0
        return try decodeSample(bytes, start: &unused, isV2: false)
    }

    /// A sample; for 2.0 (`isV2`), also its `start_timestamp` (field 3), which 1.0 skips as unknown.
    @inline(__always)
    func decodeSample(_ bytes: UnsafeRawBufferPointer, start: inout Int64, isV2: Bool = true) throws(WireError) -> WireSample {
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
            case 3 where isV2:
                guard wireType == 0 else { throw .wrongWireType(field: field, got: wireType) }
                start = Int64(bitPattern: try r.varint())
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
                exemplarLabels.append(try Self.decodeLabel(try r.lengthDelimited()))
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
                    metadata.type = try r.varint() & 0xFFFF_FFFF  // an enum: int32 on the wire
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
        // Symbols may follow the series on the wire: collect them first, checking the framing of
        // the whole request on the way.
        symbols.removeAll()
        var r = WireReader(body)
        var field: UInt64 = 0
        var offset = 0
        do throws(WireError) {
            while !r.isAtEnd {
                offset = body.count - r.remaining
                let (f, wireType) = try r.tag()
                field = f
                if (f == 4 || f == 5) && wireType != 2 { throw .wrongWireType(field: f, got: wireType) }
                if f == 4 { symbols.append(try r.lengthDelimited()) } else { try r.skip(wireType: wireType) }
            }
        } catch {
            throw RequestDecodeError(
                "cannot decode remote-write 2.0 body: \(error) (field \(field) at byte \(offset) of \(body.count))")
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
        sampleStarts.removeAll()
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
                // A sample as Prometheus sends it (`12 len 09 value 10 timestamp`, no start timestamp).
                if let sample = fastSample(&r) {
                    samples.append(sample)
                    sampleStarts.append(0)
                    continue
                }
                let (field, wireType) = try r.tag()
                switch field {
                case 1:
                    try readUInt32s(&r, wireType: wireType, field: field, into: labelRefs)
                case 2:
                    guard wireType == 2 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    var start: Int64 = 0
                    samples.append(try decodeSample(try r.lengthDelimited(), start: &start))
                    sampleStarts.append(start)
                case 3:
                    guard wireType == 2 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    histograms.append(try decodeHistogram(try r.lengthDelimited()))
                case 4:
                    guard wireType == 2 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    exemplars.append(try decodeExemplarV2(try r.lengthDelimited()))
                case 5:
                    guard wireType == 2 else { throw WireError.wrongWireType(field: field, got: wireType) }
                    // A repeated singular message: the last one wins whole, as in libprotobuf-c (the
                    // protobuf specification would merge them; no sender repeats it).
                    metadataRefs = try decodeMetadataV2(try r.lengthDelimited(), merging: (0, 0, 0))
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
            labels: labels.buffer, canonicalKey: nil, labelsRead: true, samples: samples.buffer, histograms: histograms.buffer,
            exemplars: exemplars.buffer, exemplarLabels: exemplarLabels.buffer, metadata: metadata,
            createdTimestamp: created, sampleStartTimestamps: sampleStarts.buffer, problem: problem)
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
                if field == 1 { m.type = v & 0xFFFF_FFFF } else if field == 3 { m.help = UInt64(UInt32(truncatingIfNeeded: v)) } else {
                    m.unit = UInt64(UInt32(truncatingIfNeeded: v))
                }
            default:
                try r.skip(wireType: wireType)
            }
        }
        return m
    }
}

/// Whether `a` sorts strictly before `b` (byte order, then length).
@inline(__always)
func precedes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    let n = min(a.count, b.count)
    var i = 0
    while i < n {
        let x = a[i], y = b[i]
        if x != y { return x < y }
        i += 1
    }
    return a.count < b.count
}
