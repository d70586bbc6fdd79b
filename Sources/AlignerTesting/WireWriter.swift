/// Writes protobuf wire format by hand, for bodies no well-behaved encoder produces: unsorted or
/// unpacked fields, unknown fields, wrong wire types, truncations.
public struct WireWriter {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    public mutating func tag(_ field: Int, _ wireType: Int) { varint(UInt64(field << 3 | wireType)) }

    public mutating func bytes(_ field: Int, _ value: [UInt8]) {
        tag(field, 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func string(_ field: Int, _ value: String) { bytes(field, Array(value.utf8)) }

    public mutating func message(_ field: Int, _ build: (inout WireWriter) -> Void) {
        var inner = WireWriter()
        build(&inner)
        bytes(field, inner.bytes)
    }

    public mutating func double(_ field: Int, _ value: Double) {
        tag(field, 1)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func int(_ field: Int, _ value: Int64) {
        tag(field, 0)
        varint(UInt64(bitPattern: value))
    }

    public mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }

    /// A 1.0 label message.
    public mutating func label(_ name: String, _ value: String) {
        message(1) { $0.string(1, name); $0.string(2, value) }
    }

    /// A 1.0 sample message in field 2.
    public mutating func sample(_ value: Double, _ timestamp: Int64) {
        message(2) { $0.double(1, value); $0.int(2, timestamp) }
    }
}
