/// The series key: the remote-write 1.0 protobuf encoding of a series' labels, sorted by name,
/// without empty values, with minimal varints. A 1.0 sender that sorts its labels already sends
/// exactly these bytes, so the common case hashes the request body in place.
enum SeriesKey {
    /// Appends the canonical key for `labels` to `out`. Sorting happens in `order`, a reused index
    /// buffer, and only when the labels are out of order (every known sender sorts them: then
    /// they are written as they come); validation is separate (`validate`), done once per new
    /// series. The key's size is counted first, so the bytes are written with one capacity check.
    static func build(
        _ labels: UnsafeBufferPointer<LabelRef>, order: Scratch<Int32>, appendingTo out: ByteScratch
    ) {
        var size = 0
        var inOrder = true
        for i in 0..<labels.count {
            let n = labels[i].name.count, v = labels[i].value.count
            if v > 0 { size += 1 + varintSize(fieldLength(n, v)) + fieldLength(n, v) }
            if i > 0 && inOrder && sortsAfter(labels[i - 1].name, labels[i].name) { inOrder = false }
        }
        if out.count + size > out.capacity { out.growKeeping(out.count + size) }
        var p = out.base + out.count
        if inOrder {
            for label in labels where label.value.count > 0 { p = write(label, at: p) }
        } else {
            order.removeAll()
            for i in 0..<labels.count where labels[i].value.count > 0 {
                order.append(Int32(i))
            }
            // Insertion sort (stable): label sets are small and usually nearly sorted.
            if order.count > 1 {
                for i in 1..<order.count {
                    let current = order[i]
                    let name = labels[Int(current)].name
                    var j = i - 1
                    while j >= 0, labels[Int(order[j])].name.compareBytes(name) > 0 {
                        order[j + 1] = order[j]
                        j -= 1
                    }
                    order[j + 1] = current
                }
            }
            for k in 0..<order.count { p = write(labels[Int(order[k])], at: p) }
        }
        out.count = p - out.base
    }

    /// The length of a label field's `Label` message: the name (left out when empty) and the value.
    @inline(__always)
    static func fieldLength(_ n: Int, _ v: Int) -> Int {
        (n > 0 ? 1 + varintSize(n) + n : 0) + 1 + varintSize(v) + v
    }

    /// Writes one label field (`0A len [0A n name] 12 v value`) at `p`; returns where it ends.
    @inline(__always)
    static func write(_ label: LabelRef, at p: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        let n = label.name.count, v = label.value.count
        var p = p
        @inline(__always) func byte(_ b: UInt8) {
            p.storeBytes(of: b, as: UInt8.self)
            p += 1
        }
        @inline(__always) func varint(_ value: Int) {
            var x = UInt64(value)
            while x >= 0x80 {
                byte(UInt8(truncatingIfNeeded: x) | 0x80)
                x >>= 7
            }
            byte(UInt8(x))
        }
        byte(0x0A)
        varint(fieldLength(n, v))
        if n > 0 {
            byte(0x0A)
            varint(n)
            copy(label.name, to: p)
            p += n
        }
        byte(0x12)
        varint(v)
        copy(label.value, to: p)
        return p + v
    }

    /// Copies a short run inline, 8 bytes at a time with the last word overlapping, never reading
    /// or writing past either end: 2.0 decode + series lookup 1.50-1.53 M against 1.46-1.47 M
    /// with a `memcpy` call per name and per value, in four alternated pairs of runs (two in
    /// `benchmarks/results/2026-11-26-aligner-bench-v2-inline-copy.txt`).
    @inline(__always)
    static func copy(_ source: UnsafeRawBufferPointer, to p: UnsafeMutableRawPointer) {
        let n = source.count
        guard let s = source.baseAddress else { return }
        if n >= 8 {
            var i = 0
            while i + 8 < n {
                p.storeBytes(of: s.loadUnaligned(fromByteOffset: i, as: UInt64.self), toByteOffset: i, as: UInt64.self)
                i += 8
            }
            p.storeBytes(of: s.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self), toByteOffset: n - 8, as: UInt64.self)
        } else if n >= 4 {
            let head = s.loadUnaligned(as: UInt32.self), tail = s.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)
            p.storeBytes(of: head, as: UInt32.self)
            p.storeBytes(of: tail, toByteOffset: n - 4, as: UInt32.self)
        } else {
            for i in 0..<n { p.storeBytes(of: s.load(fromByteOffset: i, as: UInt8.self), toByteOffset: i, as: UInt8.self) }
        }
    }

    /// Whether name `a` sorts after name `b` (byte order, then length). Adjacent label names
    /// mostly differ in their first byte.
    @inline(__always)
    static func sortsAfter(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        if a.count > 0 && b.count > 0 {
            let x = a.load(as: UInt8.self), y = b.load(as: UInt8.self)
            if x != y { return x > y }
        }
        return a.compareBytes(b) > 0
    }

    /// Reads raw 1.0 label fields (a series' `Label` messages as sent, see `DecodedSeries.labelsRead`)
    /// and appends their canonical key to `out`; the problem instead when they are not well-formed.
    static func canonicalize(
        _ raw: UnsafeRawBufferPointer, labels: Scratch<LabelRef>, order: Scratch<Int32>, appendingTo out: ByteScratch
    ) -> SeriesProblem? {
        labels.removeAll()
        var r = WireReader(raw)
        do throws(WireError) {
            while !r.isAtEnd {
                let (field, wireType) = try r.tag()
                guard field == 1, wireType == 2 else { throw .wrongWireType(field: field, got: wireType) }
                labels.append(try RemoteWriteDecoder.decodeLabel(try r.lengthDelimited()))
            }
        } catch {
            return .malformed(error)
        }
        build(labels.buffer, order: order, appendingTo: out)
        return nil
    }

    /// Checks a key's label set: non-empty, a `__name__`, no empty or duplicate names, valid UTF-8.
    /// Run once, when a series is first seen.
    static func validate(_ key: UnsafeRawBufferPointer) -> SeriesProblem? {
        var count = 0
        var hasName = false
        var previous: UnsafeRawBufferPointer?
        var problem: SeriesProblem?
        forEachLabel(key) { name, value in
            guard problem == nil else { return }
            count += 1
            if name.count == 0 { problem = .emptyLabelName; return }
            if let previous, previous.equalBytes(name) {
                problem = .duplicateLabelName(String(decoding: name, as: UTF8.self))
                return
            }
            if !isValidUTF8(name) || !isValidUTF8(value) { problem = .invalidUTF8; return }
            if name.equalBytes(metricNameBytes) { hasName = true }
            previous = name
        }
        if let problem { return problem }
        if count == 0 { return .noLabels }
        if !hasName { return .missingMetricName }
        return nil
    }

    /// The byte count of the label field at `p` (tag `0A`, a varint length, the `Label` message),
    /// or nil when the bytes there are not a whole label field. The tag and a one-byte length,
    /// the common case, are read as one word.
    @inline(__always)
    static func labelFieldLength(at p: UnsafeRawPointer, end: UnsafeRawPointer) -> Int? {
        guard end - p >= 2 else { return nil }
        let word = p.loadUnaligned(as: UInt16.self)
        guard word & 0xFF == 0x0A else { return nil }
        let length = word < 0x8000 ? 2 + Int(word >> 8) : longLabelFieldLength(at: p, end: end)
        return length <= end - p ? length : nil
    }

    /// Appends `key`, label fields as sent, without its field for the label `name` to `out`: true
    /// when it had one (the rest appended), false when not, nil when the bytes are not all label
    /// fields (nothing appended either way but true). For leaving a replica label out of raw keys
    /// (`ReplicaDeduplication`) without reading the other labels.
    static func appendRemoving(label name: UnsafeRawBufferPointer, from key: UnsafeRawBufferPointer, to out: ByteScratch) -> Bool? {
        guard let base = key.baseAddress, name.count > 0 else { return false }
        let end = base + key.count
        var p = base
        var found: (at: UnsafeRawPointer, length: Int)?
        while p < end {
            guard let length = labelFieldLength(at: p, end: end) else { return nil }
            if found == nil, length >= 4 + name.count, let fieldName = labelName(ofField: p, length: length),
               ReplicaTracker.same(fieldName, name)
            {
                found = (p, length)
            }
            p += length
        }
        guard let found else { return false }
        let size = key.count - found.length
        if out.count + size > out.capacity { out.growKeeping(out.count + size) }
        let head = found.at - base
        (out.base + out.count).copyMemory(from: base, byteCount: head)
        (out.base + out.count + head).copyMemory(from: found.at + found.length, byteCount: end - found.at - found.length)
        out.count += size
        return true
    }

    /// The name in the label field at `p` (`length` bytes, tag included), or nil when it has
    /// none or is not a label message. `0A len 0A n name ...` with one-byte lengths is read in place.
    @inline(__always)
    static func labelName(ofField p: UnsafeRawPointer, length: Int) -> UnsafeRawBufferPointer? {
        if p.load(fromByteOffset: 1, as: UInt8.self) < 0x80, p.load(fromByteOffset: 2, as: UInt8.self) == 0x0A {
            let n = Int(p.load(fromByteOffset: 3, as: UInt8.self))
            if n < 0x80 { return n + 4 <= length ? UnsafeRawBufferPointer(start: p + 4, count: n) : nil }
        }
        var field = WireReader(UnsafeRawBufferPointer(start: p, count: length))
        guard (try? field.tag()) != nil, let message = try? field.lengthDelimited() else { return nil }
        var r = WireReader(message)
        guard let (f, wireType) = try? r.tag(), f == 1, wireType == 2 else { return nil }
        return try? r.lengthDelimited()
    }

    /// A label field's byte count when its length takes two bytes or more (out of line: rare).
    @inline(never)
    static func longLabelFieldLength(at p: UnsafeRawPointer, end: UnsafeRawPointer) -> Int {
        var r = WireReader(UnsafeRawBufferPointer(start: p + 1, count: end - p - 1))
        guard let value = try? r.varint(), value <= UInt64(Int32.max) else { return .max }
        return (UnsafeRawPointer(r.p) - p) + Int(value)
    }

    /// Calls `body` with the bytes of each label field of a key: tag, length and `Label` message.
    static func forEachFieldWithHeader(_ key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        var r = WireReader(key)
        while !r.isAtEnd {
            let start = r.p
            guard (try? r.tag()) != nil, (try? r.lengthDelimited()) != nil else { return }
            body(UnsafeRawBufferPointer(start: start, count: r.p - start))
        }
    }

    /// Calls `body` with each label's name and value in a key. Keys are built by Aligner, so the
    /// layout is known; a label with an empty name omits its name field.
    static func forEachLabel(
        _ key: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void
    ) {
        var r = WireReader(key)
        while !r.isAtEnd {
            guard (try? r.tag()) != nil, let message = try? r.lengthDelimited() else { return }
            var m = WireReader(message)
            var name = UnsafeRawBufferPointer(start: message.baseAddress, count: 0)
            var value = name
            while !m.isAtEnd {
                guard let (field, _) = try? m.tag(), let bytes = try? m.lengthDelimited() else { return }
                if field == 1 { name = bytes } else { value = bytes }
            }
            body(name, value)
        }
    }

    nonisolated(unsafe) static let metricNameBytes: UnsafeRawBufferPointer = {
        let bytes = Array("__name__".utf8)
        let p = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        p.copyBytes(from: bytes)
        return UnsafeRawBufferPointer(p)
    }()

    static func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        // Fast path: ASCII, 8 bytes at a time.
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            if bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { break }
            i += 8
        }
        while i < n, bytes[i] < 0x80 { i += 1 }
        if i == n { return true }
        return String(validating: bytes, as: UTF8.self) != nil
    }
}

/// A seeded 64-bit hash over bytes (wyhash-style multiply-mix), fast on short keys.
struct SeriesHasher {
    let seed: UInt64

    init(seed: UInt64) { self.seed = seed }

    @inline(__always)
    static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (hi, lo) = a.multipliedFullWidth(by: b)
        return hi ^ lo
    }

    @inline(__always)
    func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        let p0: UInt64 = 0xa076_1d64_78bd_642f, p1: UInt64 = 0xe703_7ed1_a0b4_28db
        let p2: UInt64 = 0x8ebc_6af0_9c88_c6e3, p3: UInt64 = 0x5899_65cc_7537_4cc3
        var h = seed ^ p0
        var i = 0
        let n = bytes.count
        if n >= 64 {
            // Four independent lanes, 64 bytes a step, so the multiplies overlap.
            var h2 = h ^ p3, h3 = h ^ p1, h4 = h ^ p2
            while i + 64 <= n {
                let a = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                let b = bytes.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)
                let c = bytes.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)
                let d = bytes.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)
                let e = bytes.loadUnaligned(fromByteOffset: i + 32, as: UInt64.self)
                let f = bytes.loadUnaligned(fromByteOffset: i + 40, as: UInt64.self)
                let g = bytes.loadUnaligned(fromByteOffset: i + 48, as: UInt64.self)
                let k = bytes.loadUnaligned(fromByteOffset: i + 56, as: UInt64.self)
                h = SeriesHasher.mix(a ^ p1, b ^ h)
                h2 = SeriesHasher.mix(c ^ p2, d ^ h2)
                h3 = SeriesHasher.mix(e ^ p3, f ^ h3)
                h4 = SeriesHasher.mix(g ^ p0, k ^ h4)
                i += 64
            }
            h ^= SeriesHasher.mix(h2 ^ p1, h3 ^ h4)
        }
        while i + 16 <= n {
            let a = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            let b = bytes.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)
            h = SeriesHasher.mix(a ^ p1, b ^ h)
            i += 16
        }
        var a: UInt64 = 0, b: UInt64 = 0
        let rest = n - i
        if rest >= 8 {
            a = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            b = bytes.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)
        } else if rest >= 4 {
            a = UInt64(bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            b = UInt64(bytes.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self))
        } else if rest > 0 {
            a = UInt64(bytes[i]) << 16 | UInt64(bytes[i + rest / 2]) << 8 | UInt64(bytes[n - 1])
        }
        return SeriesHasher.mix(p2 ^ UInt64(n), SeriesHasher.mix(a ^ p1, b ^ h) ^ p3)
    }
}
