import Foundation
import Hummingbird

/// The name=value pairs of a URL query or an `application/x-www-form-urlencoded` body, decoded
/// as Go's `url.ParseQuery` does (Prometheus' API reads them so): names and values are
/// percent-decoded and `+` is a space, so `match%5B%5D=up` is `match[]` and `query=up+%3E+0` is
/// `up > 0`, as Python's and curl's encoders write them. A malformed escape leaves that text as
/// sent.
struct FormValues {
    var pairs: [(name: String, value: String)] = []

    init(_ encoded: String?) {
        guard let encoded else { return }
        for pair in encoded.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            pairs.append((FormValues.decode(parts[0]), parts.count > 1 ? FormValues.decode(parts[1]) : ""))
        }
    }

    /// The request's query string.
    init(query request: Request) { self.init(request.uri.query) }

    static func decode(_ text: Substring) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }

    /// The first value of `name`, if given.
    func get(_ name: String) -> String? { pairs.first { $0.name == name }?.value }

    /// Every value of `name`, in order.
    func getAll(_ name: String) -> [String] { pairs.filter { $0.name == name }.map(\.value) }
}

/// A time as Prometheus' API takes it: Unix seconds (fractions allowed) or RFC 3339, with or
/// without fractional seconds (`2026-11-26T22:10:50Z`, `2026-11-26T22:10:50.123+01:00`); in
/// milliseconds, or nil when it is neither or out of range.
func parseAPITime(_ text: String) -> Int64? {
    if let seconds = Double(text) { return Int64(unixSecondsAsMilliseconds: seconds) }
    let plain = ISO8601DateFormatter()
    let fractional = ISO8601DateFormatter()
    fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    guard let date = plain.date(from: text) ?? fractional.date(from: text) else { return nil }
    return Int64(exactly: (date.timeIntervalSince1970 * 1000).rounded())
}
