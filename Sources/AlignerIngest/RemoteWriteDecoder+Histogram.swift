/// Native histograms: the same message in 1.0 and 2.0. Decoded, checked the way Prometheus'
/// `histogram.Validate` checks them, and counted; their buckets are not kept yet.
extension RemoteWriteDecoder {
    func decodeHistogram(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> WireHistogram {
        var h = WireHistogram()
        var r = WireReader(bytes)
        // Running state for the consistency check.
        var negative = BucketTally(), positive = BucketTally()
        var customValues = CustomValueTally()
        var countSet = false, zeroCountSet = false
        while !r.isAtEnd {
            let (field, wireType) = try r.tag()
            switch field {
            case 1, 6:  // count_int, zero_count_int
                guard wireType == 0 else { throw .wrongWireType(field: field, got: wireType) }
                let v = try r.varint()
                if field == 1 { h.countBits = v; h.countIsFloat = false; countSet = true } else {
                    h.zeroCountBits = v; h.zeroCountIsFloat = false; zeroCountSet = true
                }
            case 2, 7, 3, 5:  // count_float, zero_count_float, sum, zero_threshold
                guard wireType == 1 else { throw .wrongWireType(field: field, got: wireType) }
                let v = try r.fixed64()
                switch field {
                case 2: h.countBits = v; h.countIsFloat = true; countSet = true
                case 7: h.zeroCountBits = v; h.zeroCountIsFloat = true; zeroCountSet = true
                case 3: h.sumBits = v
                default: h.zeroThresholdBits = v
                }
            case 4:
                guard wireType == 0 else { throw .wrongWireType(field: field, got: wireType) }
                h.schema = zigZag32(try r.varint())
            case 8, 11:
                guard wireType == 2 else { throw .wrongWireType(field: field, got: wireType) }
                let span = try decodeSpan(try r.lengthDelimited())
                if field == 8 { h.negativeSpans += 1; negative.add(span: span) } else {
                    h.positiveSpans += 1; positive.add(span: span)
                }
            case 9, 12:  // sint64 deltas, packed or not
                if wireType == 2 {
                    var packed = WireReader(try r.lengthDelimited())
                    while !packed.isAtEnd {
                        let d = zigZag64(try packed.varint())
                        if field == 9 { h.negativeDeltas += 1; negative.add(delta: d) } else {
                            h.positiveDeltas += 1; positive.add(delta: d)
                        }
                    }
                } else if wireType == 0 {
                    let d = zigZag64(try r.varint())
                    if field == 9 { h.negativeDeltas += 1; negative.add(delta: d) } else {
                        h.positiveDeltas += 1; positive.add(delta: d)
                    }
                } else {
                    throw .wrongWireType(field: field, got: wireType)
                }
            case 10, 13, 16:  // doubles, packed or not
                var values: WireReader
                if wireType == 2 {
                    let packed = try r.lengthDelimited()
                    guard packed.count % 8 == 0 else { throw .truncated }
                    values = WireReader(packed)
                } else if wireType == 1 {
                    values = WireReader(UnsafeRawBufferPointer(start: r.p, count: min(8, r.remaining)))
                    _ = try r.fixed64()
                } else {
                    throw .wrongWireType(field: field, got: wireType)
                }
                while !values.isAtEnd {
                    let v = Double(bitPattern: try values.fixed64())
                    switch field {
                    case 10: h.negativeCounts += 1; negative.add(count: v)
                    case 13: h.positiveCounts += 1; positive.add(count: v)
                    default: h.customValues += 1; customValues.add(v)
                    }
                }
            case 14:
                guard wireType == 0 else { throw .wrongWireType(field: field, got: wireType) }
                h.resetHint = Int32(truncatingIfNeeded: try r.varint())
            case 15:
                guard wireType == 0 else { throw .wrongWireType(field: field, got: wireType) }
                h.timestamp = Int64(bitPattern: try r.varint())
            case 17:
                guard wireType == 0 else { throw .wrongWireType(field: field, got: wireType) }
                h.startTimestamp = Int64(bitPattern: try r.varint())
            default:
                try r.skip(wireType: wireType)
            }
        }
        h.problem = check(h, negative: negative, positive: positive, customValues: customValues,
                          countSet: countSet, zeroCountSet: zeroCountSet)
        return h
    }

    private func decodeSpan(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> (offset: Int32, length: UInt32) {
        var r = WireReader(bytes)
        var span: (offset: Int32, length: UInt32) = (0, 0)
        while !r.isAtEnd {
            let (field, wireType) = try r.tag()
            switch field {
            case 1:
                guard wireType == 0 else { throw .wrongWireType(field: field, got: wireType) }
                span.offset = zigZag32(try r.varint())
            case 2:
                guard wireType == 0 else { throw .wrongWireType(field: field, got: wireType) }
                span.length = UInt32(truncatingIfNeeded: try r.varint())
            default:
                try r.skip(wireType: wireType)
            }
        }
        return span
    }

    private func check(
        _ h: WireHistogram, negative: BucketTally, positive: BucketTally, customValues: CustomValueTally,
        countSet: Bool, zeroCountSet: Bool
    ) -> HistogramProblem? {
        let customBuckets = h.schema == -53
        if !customBuckets && !(-4...8).contains(h.schema) {
            return .unsupportedSchema(h.schema)
        }
        if h.countIsFloat {
            if h.negativeDeltas + h.positiveDeltas > 0 { return .mixedIntegerAndFloat }
            if zeroCountSet && !h.zeroCountIsFloat { return .mixedIntegerAndFloat }
        } else {
            if h.negativeCounts + h.positiveCounts > 0 { return .mixedIntegerAndFloat }
            if zeroCountSet && h.zeroCountIsFloat { return .mixedIntegerAndFloat }
        }
        if let p = negative.problem ?? positive.problem { return p }
        let negativeBuckets = h.countIsFloat ? h.negativeCounts : h.negativeDeltas
        let positiveBuckets = h.countIsFloat ? h.positiveCounts : h.positiveDeltas
        if negative.spanTotal != negativeBuckets {
            return .spanBucketMismatch(negative: true, spanned: negative.spanTotal, given: negativeBuckets)
        }
        if positive.spanTotal != positiveBuckets {
            return .spanBucketMismatch(negative: false, spanned: positive.spanTotal, given: positiveBuckets)
        }
        if customBuckets {
            if h.negativeSpans > 0 || negativeBuckets > 0 { return .customBucketsInvalid }
            if !customValues.increasing { return .customBucketsInvalid }
            if positive.maxIndex >= Int64(h.customValues) + 1 {
                return .customBucketsInvalid
            }
        } else if h.customValues > 0 {
            return .customBoundsOnExponential
        }
        let sum = Double(bitPattern: h.sumBits)
        if h.countIsFloat {
            let count = Double(bitPattern: h.countBits)
            let zero = zeroCountSet ? Double(bitPattern: h.zeroCountBits) : 0
            let total = negative.floatTotal + positive.floatTotal + zero
            if count.isNaN || total.isNaN { return nil }
            let tolerance = Swift.max(abs(count), abs(total)) * 1e-9
            if total > count + tolerance {
                return .countBelowBuckets(count: count, buckets: total)
            }
            if !sum.isNaN && abs(total - count) > tolerance {
                return .countMismatch(count: count, buckets: total)
            }
        } else {
            let zero = zeroCountSet ? h.zeroCountBits : 0
            let (t1, o1) = negative.intTotal.addingReportingOverflow(positive.intTotal)
            let (total, o2) = t1.addingReportingOverflow(zero)
            if o1 || o2 { return .negativeBucketCount }
            if total > h.countBits { return .countBelowBuckets(count: Double(h.countBits), buckets: Double(total)) }
            if !sum.isNaN && total != h.countBits {
                return .countMismatch(count: Double(h.countBits), buckets: Double(total))
            }
        }
        _ = countSet
        return nil
    }
}

/// Running totals over one side's spans and buckets.
struct BucketTally {
    var spanTotal = 0
    var spans = 0
    var maxIndex: Int64 = -1
    var nextIndex: Int64 = 0
    var running: Int64 = 0
    var intTotal: UInt64 = 0
    var floatTotal: Double = 0
    var problem: HistogramProblem?

    mutating func add(span: (offset: Int32, length: UInt32)) {
        if spans > 0 && span.offset < 0 && problem == nil {
            problem = .negativeSpanOffset(span: spans, offset: span.offset)
        }
        spans += 1
        spanTotal += Int(span.length)
        nextIndex += Int64(span.offset)
        if span.length > 0 {
            nextIndex += Int64(span.length)
            maxIndex = nextIndex - 1
        }
    }

    mutating func add(delta: Int64) {
        let (v, overflow) = running.addingReportingOverflow(delta)
        running = v
        if (overflow || v < 0) && problem == nil { problem = .negativeBucketCount }
        if v > 0 { intTotal &+= UInt64(v) }
    }

    mutating func add(count: Double) {
        if count < 0 && problem == nil { problem = .negativeBucketCount }
        floatTotal += count
    }
}

struct CustomValueTally {
    var last = -Double.infinity
    var increasing = true
    var any = false

    mutating func add(_ v: Double) {
        if any && !(v > last) { increasing = false }
        last = v
        any = true
    }
}

@inline(__always)
func zigZag32(_ raw: UInt64) -> Int32 {
    let v = UInt32(truncatingIfNeeded: raw)
    return Int32(bitPattern: (v >> 1) ^ (0 &- (v & 1)))
}

@inline(__always)
func zigZag64(_ raw: UInt64) -> Int64 {
    Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
}
