/// A cursor over protobuf wire-format bytes. Every read checks the end; nothing traps on bad input.
@usableFromInline
struct WireReader {
    @usableFromInline var p: UnsafePointer<UInt8>
    @usableFromInline let end: UnsafePointer<UInt8>

    @inlinable
    init(_ bytes: UnsafeRawBufferPointer) {
        // An empty buffer may have no base address; point at a static byte so reads see "at end".
        if let base = bytes.baseAddress {
            p = base.assumingMemoryBound(to: UInt8.self)
        } else {
            p = UnsafePointer(WireReader.emptyByte)
        }
        end = p + bytes.count
    }

    @usableFromInline
    nonisolated(unsafe) static let emptyByte: UnsafeMutablePointer<UInt8> = {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()

    @inlinable @inline(__always)
    var isAtEnd: Bool { p >= end }

    @inlinable @inline(__always)
    var remaining: Int { end - p }

    /// A base-128 varint of at most 10 bytes; bits past 64 are dropped, as protobuf does.
    @inlinable @inline(__always)
    mutating func varint() throws(WireError) -> UInt64 {
        guard p < end else { throw .truncated }
        let b0 = p.pointee
        if b0 < 0x80 {
            p += 1
            return UInt64(b0)
        }
        return try varintSlow()
    }

    @usableFromInline
    mutating func varintSlow() throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var q = p
        while true {
            guard q < end else { throw .truncated }
            let b = q.pointee
            q += 1
            result |= UInt64(b & 0x7f) << shift
            if b < 0x80 { break }
            shift += 7
            if shift >= 70 { throw .malformedVarint }
        }
        p = q
        return result
    }

    /// A field tag: the field number and wire type. As in libprotobuf-c: at most 5 bytes, a first
    /// byte with field bits 0 is invalid, and the field number keeps its low 32 bits.
    @inlinable @inline(__always)
    mutating func tag() throws(WireError) -> (field: UInt64, wireType: UInt8) {
        guard p < end else { throw .truncated }
        if p.pointee & 0xf8 == 0 { throw .malformedTag }
        let start = p
        let raw = try varint()
        if p - start > 5 { throw .malformedTag }
        return ((raw >> 3) & 0xFFFF_FFFF, UInt8(truncatingIfNeeded: raw & 7))
    }

    /// A length-delimited field's bytes; the length prefix is at most 5 bytes, as in protobuf-c.
    @inlinable @inline(__always)
    mutating func lengthDelimited() throws(WireError) -> UnsafeRawBufferPointer {
        let start = p
        let length = try varint()
        if p - start > 5 { throw .malformedLength }
        guard length <= UInt64(end - p) else { throw .truncated }
        let result = UnsafeRawBufferPointer(start: UnsafeRawPointer(p), count: Int(length))
        p += Int(length)
        return result
    }

    @inlinable @inline(__always)
    mutating func fixed64() throws(WireError) -> UInt64 {
        guard end - p >= 8 else { throw .truncated }
        let v = UnsafeRawPointer(p).loadUnaligned(as: UInt64.self)
        p += 8
        return UInt64(littleEndian: v)
    }

    @inlinable @inline(__always)
    mutating func fixed32() throws(WireError) -> UInt32 {
        guard end - p >= 4 else { throw .truncated }
        let v = UnsafeRawPointer(p).loadUnaligned(as: UInt32.self)
        p += 4
        return UInt32(littleEndian: v)
    }

    /// Skips one field of the given wire type. Groups (3, 4) and wire types 6, 7 are rejected.
    @inlinable
    mutating func skip(wireType: UInt8) throws(WireError) {
        switch wireType {
        case 0: _ = try varint()
        case 1: _ = try fixed64()
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed32()
        default: throw .unsupportedWireType(wireType)
        }
    }
}

/// What is wrong with protobuf bytes, in words a sender's operator can act on.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated
    case malformedVarint
    case malformedTag
    case malformedLength
    case unsupportedWireType(UInt8)
    case wrongWireType(field: UInt64, got: UInt8)

    public var description: String {
        switch self {
        case .truncated: "truncated field"
        case .malformedVarint: "varint longer than 10 bytes"
        case .malformedTag: "invalid field tag"
        case .malformedLength: "length prefix longer than 5 bytes"
        case .unsupportedWireType(let t): "unsupported wire type \(t)"
        case .wrongWireType(let field, let got): "field \(field) has wrong wire type \(got)"
        }
    }
}

/// Number of bytes `value` takes as a minimal varint.
@inlinable @inline(__always)
func varintSize(_ value: Int) -> Int {
    var v = UInt64(value)
    var n = 1
    while v >= 0x80 { v >>= 7; n += 1 }
    return n
}

extension UnsafeRawBufferPointer {
    /// Lexicographic byte comparison (memcmp order, then length), Prometheus' label order.
    @inlinable @inline(__always)
    func compareBytes(_ other: UnsafeRawBufferPointer) -> Int {
        let n = Swift.min(count, other.count)
        if n > 0 {
            let c = memcmp(baseAddress!, other.baseAddress!, n)
            if c != 0 { return Int(c) }
        }
        return count - other.count
    }

    @inlinable @inline(__always)
    func equalBytes(_ other: UnsafeRawBufferPointer) -> Bool {
        count == other.count && (count == 0 || memcmp(baseAddress!, other.baseAddress!, count) == 0)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
