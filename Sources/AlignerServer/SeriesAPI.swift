import AlignerCore
import AlignerIngest
import AlignerRules
import Foundation
import Hummingbird

/// Prometheus' metadata endpoints over the series Aligner holds (every active series, not only
/// those the rules keep): `GET|POST /api/v1/series`, `/api/v1/labels` and
/// `/api/v1/label/{name}/values`.
struct SeriesAPI: Sendable {
    let table: SeriesTable
    let api: RulesAPI

    /// `match[]` selectors (`up{job="api"}`, `{__name__=~"kube_.*"}`), each a list of matchers;
    /// a bad one is the error Prometheus answers.
    static func selectors(_ form: FormValues) -> Result<[[LabelMatcher]], SeriesAPIError> {
        var out: [[LabelMatcher]] = []
        for text in form.getAll("match[]") {
            let expr: Expr
            do { expr = try PromQLParser.parse(text) } catch {
                return .failure(SeriesAPIError(message: "invalid parameter \"match[]\": 1:\(error.offset + 1): parse error: \(error.message)"))
            }
            guard case .selector(let s) = expr else {
                return .failure(SeriesAPIError(message: "invalid parameter \"match[]\": \(text) is not a series selector"))
            }
            // As Prometheus: a selector must have a matcher that does not match the empty string.
            guard s.matchers.contains(where: { !((try? $0.matches("")) ?? true) }) else {
                return .failure(SeriesAPIError(message: "invalid parameter \"match[]\": 1:1: parse error: vector selector must contain at least one non-empty matcher"))
            }
            out.append(s.matchers)
        }
        return .success(out)
    }

    /// The active series matching any of `selectors` (every series when there is none), at most `limit`.
    func series(_ selectors: [[LabelMatcher]], limit: Int = .max) -> [[Label]] {
        table.snapshot(limit: limit) { labels in
            selectors.isEmpty || selectors.contains { matchers in
                matchers.allSatisfy { m in (try? m.matches(labels.first { $0.name == m.name }?.value ?? "")) ?? false }
            }
        }.map(\.labels)
    }

    /// `limit`: at most this many (absent or 0: no limit beyond `fallback`).
    static func limit(_ form: FormValues, fallback: Int) -> Result<Int, SeriesAPIError> {
        guard let text = form.get("limit"), !text.isEmpty else { return .success(fallback) }
        guard let n = Int(text), n >= 0 else {
            return .failure(SeriesAPIError(message: "invalid parameter \"limit\": cannot parse \"\(text)\" to a valid limit"))
        }
        return .success(n == 0 ? fallback : n)
    }

    /// `GET|POST /api/v1/series?match[]=SELECTOR&limit=N`.
    func seriesResponse(_ request: Request) async -> Response {
        let form = await api.form(request)
        guard !form.getAll("match[]").isEmpty else { return api.error("bad_data", "no match[] parameter provided") }
        switch (SeriesAPI.selectors(form), SeriesAPI.limit(form, fallback: 10_000)) {
        case (.failure(let e), _), (_, .failure(let e)): return api.error("bad_data", e.message)
        case (.success(let selectors), .success(let limit)):
            let found = series(selectors, limit: limit)
            return api.json(["status": "success", "data": found.map { Dictionary($0.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 }) }])
        }
    }

    /// `GET|POST /api/v1/labels?match[]=...`: the label names of the matching series, sorted.
    func labelsResponse(_ request: Request) async -> Response {
        let form = await api.form(request)
        switch (SeriesAPI.selectors(form), SeriesAPI.limit(form, fallback: .max)) {
        case (.failure(let e), _), (_, .failure(let e)): return api.error("bad_data", e.message)
        case (.success(let selectors), .success(let limit)):
            let names = Set(series(selectors).flatMap { $0.map(\.name) })
            return api.json(["status": "success", "data": Array(names.sorted().prefix(limit))])
        }
    }

    /// `GET /api/v1/label/{name}/values?match[]=...`: the values of one label, sorted.
    func labelValuesResponse(_ request: Request, name: String) async -> Response {
        let form = await api.form(request)
        guard !name.isEmpty, name.first.map({ $0.isLetter || $0 == "_" }) == true,
              name.allSatisfy({ ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "_" }) else {
            return api.error("bad_data", "invalid label name: \"\(name)\"")
        }
        switch (SeriesAPI.selectors(form), SeriesAPI.limit(form, fallback: .max)) {
        case (.failure(let e), _), (_, .failure(let e)): return api.error("bad_data", e.message)
        case (.success(let selectors), .success(let limit)):
            let values = Set(series(selectors).compactMap { $0.first { $0.name == name }?.value })
            return api.json(["status": "success", "data": Array(values.sorted().prefix(limit))])
        }
    }
}

struct SeriesAPIError: Error {
    var message: String
}
