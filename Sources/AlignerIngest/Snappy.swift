import CAlignerSnappy

/// Snappy block-format decompression with libsnappy, checking the declared length first.
public enum Snappy {
    /// Why a body cannot be decompressed.
    public enum Failure: Error, Equatable, Sendable {
        /// The body starts with the framing format's stream identifier; only the block format is allowed.
        case framedFormat
        /// The length header is unreadable.
        case invalidHeader
        /// The declared length exceeds the limit.
        case tooLarge(declared: Int, limit: Int)
        /// libsnappy rejected the data.
        case corrupt
    }

    /// The decompressed length the block header declares, without decompressing.
    public static func declaredLength(_ compressed: UnsafeRawBufferPointer) throws(Failure) -> Int {
        if isFramed(compressed) { throw .framedFormat }
        var length = 0
        let status = compressed.withMemoryRebound(to: CChar.self) { chars in
            snappy_uncompressed_length(chars.baseAddress, chars.count, &length)
        }
        guard status == SNAPPY_OK else { throw .invalidHeader }
        return length
    }

    /// Decompresses `compressed` into `output` (reused), refusing before allocating when the
    /// declared length exceeds `limit`. Returns the decompressed bytes, valid until `output` is reused.
    public static func decompress(
        _ compressed: UnsafeRawBufferPointer, into output: ByteScratch, limit: Int
    ) throws(Failure) -> UnsafeRawBufferPointer {
        let declared = try declaredLength(compressed)
        if declared > limit { throw .tooLarge(declared: declared, limit: limit) }
        output.reserveDiscarding(declared)
        var produced = output.capacity
        let status = compressed.withMemoryRebound(to: CChar.self) { chars in
            snappy_uncompress(chars.baseAddress, chars.count,
                              output.base.assumingMemoryBound(to: CChar.self), &produced)
        }
        guard status == SNAPPY_OK, produced == declared else { throw .corrupt }
        output.count = produced
        return output.bytes
    }

    /// Compresses with libsnappy (tests, benchmarks and the load generator).
    public static func compress(_ input: UnsafeRawBufferPointer) -> [UInt8] {
        var length = snappy_max_compressed_length(input.count)
        var out = [UInt8](repeating: 0, count: length)
        let status = out.withUnsafeMutableBytes { o in
            input.withMemoryRebound(to: CChar.self) { i in
                snappy_compress(i.baseAddress, i.count, o.baseAddress!.assumingMemoryBound(to: CChar.self), &length)
            }
        }
        precondition(status == SNAPPY_OK, "snappy_compress failed")
        out.removeSubrange(length...)
        return out
    }

    /// Compresses a byte array.
    public static func compress(_ input: [UInt8]) -> [UInt8] {
        input.withUnsafeBytes { compress($0) }
    }

    /// The framing format begins with chunk type 0xff, length 6, "sNaPpY".
    static func isFramed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let magic: [UInt8] = [0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]
        guard bytes.count >= magic.count else { return false }
        for i in 0..<magic.count where bytes[i] != magic[i] { return false }
        return true
    }
}
