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

extension Int64 {
    /// A Double as Go's `int64(f)` gives it on amd64 (truncated toward zero; NaN, ±Inf and values
    /// out of range become Int64.min), where Swift's conversion would trap.
    public init(goConverting value: Double) {
        self = value >= -9.223372036854775808e18 && value < 9.223372036854775808e18 ? Int64(value) : .min
    }

    /// Unix seconds (as a query parameter or JSON number gives them) in milliseconds; nil when
    /// they are not a finite time.
    public init?(unixSecondsAsMilliseconds seconds: Double) {
        guard seconds.isFinite, abs(seconds) < 9.2e15 else { return nil }
        self = Int64((seconds * 1000).rounded())
    }
}
