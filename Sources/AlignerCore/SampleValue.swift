/// Helpers for sample values as remote-write carries them: IEEE 754 doubles whose exact bits matter.
public enum SampleValue {
    /// The bit pattern Prometheus uses to mark a series stale (a NaN that is not the usual quiet NaN).
    public static let staleNaNBits: UInt64 = 0x7ff0_0000_0000_0002

    /// Whether `bits` is the staleness marker; an ordinary NaN is not.
    @inline(__always)
    public static func isStale(bits: UInt64) -> Bool { bits == staleNaNBits }

    /// The staleness marker as a `Double` (its bits survive a round trip through `bitPattern`).
    public static var staleNaN: Double { Double(bitPattern: staleNaNBits) }
}
