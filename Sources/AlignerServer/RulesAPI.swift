import AlignerCore
import AlignerEngine
import AlignerRules
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /api/v1/rules`, `GET /api/v1/alerts` and `GET|POST /api/v1/query` in Prometheus' JSON
/// shapes; `POST /-/reload`.
struct RulesAPI: Sendable {
    let engine: RuleEngine
    let windows: WindowStore

    func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    func error(_ type: String, _ message: String, status: HTTPResponse.Status = .badRequest) -> Response {
        json(["status": "error", "errorType": type, "error": message], status: status)
    }

    static func time(_ ms: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    static func labelsObject(_ l: Labels) -> [String: String] {
        Dictionary(l.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
    }

    static func alertObject(_ a: Alert) -> [String: Any] {
        ["labels": labelsObject(a.labels), "annotations": a.annotations, "state": a.state.rawValue,
         "activeAt": time(a.activeAt), "value": goExponentFormat(a.value)]
    }

    /// `GET /api/v1/rules?type=alert|record`: every group, with its rules of that type (all without).
    func rules(_ request: Request) async -> Response {
        let type = FormValues(query: request).get("type") ?? ""
        guard ["", "alert", "record"].contains(type) else {
            return error("bad_data", "invalid parameter \"type\": not supported value \"\(type)\"")
        }
        let state = await engine.state
        let last = await engine.lastEvaluation
        let seconds = await engine.evaluationSeconds
        var groups: [[String: Any]] = []
        for (gi, g) in state.groups.enumerated() {
            var rules: [[String: Any]] = []
            for (ri, r) in g.rules.enumerated() {
                switch (r.kind, type) {
                case (.alert, "record"), (.record, "alert"): continue
                default: break
                }
                let error = state.lastErrors[gi][ri]
                let run = state.lastRuns[gi][ri]
                var o: [String: Any] = [
                    "name": r.name, "query": r.expr.description, "labels": r.labels,
                    "health": error == nil ? (run.at == 0 ? "unknown" : "ok") : "err",
                    "lastEvaluation": run.at == 0 ? "0001-01-01T00:00:00Z" : RulesAPI.time(run.at),
                    "evaluationTime": run.seconds,
                ]
                if let error { o["lastError"] = error }
                switch r.kind {
                case .alert:
                    let alerts = state.alerting[gi][ri]?.alerts.values.filter { $0.state != .inactive } ?? []
                    o["type"] = "alerting"
                    o["duration"] = Double(r.holdDuration) / 1000
                    o["keepFiringFor"] = Double(r.keepFiringFor) / 1000
                    o["annotations"] = r.annotations
                    o["alerts"] = alerts.map(RulesAPI.alertObject)
                    o["state"] = alerts.contains { $0.state == .firing } ? "firing" : alerts.isEmpty ? "inactive" : "pending"
                    if let e = r.event {
                        o["event"] = ["class": e.anomalyClass, "severity": e.severity, "subject": [
                            "namespace": e.namespaceLabel, "kind": e.kind ?? "", "kind_label": e.kindLabel ?? "", "name": e.nameLabels.count == 1 ? e.nameLabels[0] as Any : e.nameLabels]]
                    } else if r.eventOff {
                        o["event"] = false
                    }
                    if let d = r.detector {
                        var detector: [String: Any] = ["method": d.method.rawValue, "threshold": d.threshold, "direction": d.direction.rawValue,
                                                       "min_deviation": d.minDeviation, "warm_up": Double(d.warmUp) / 1000]
                        switch d.method {
                        case .ewma, .cusum, .holt: detector["half_life"] = Double(d.halfLife) / 1000
                        case .mad: detector["window"] = Double(d.window) / 1000
                        case .threshold: break
                        }
                        if d.method == .holt { detector["trend_half_life"] = Double(d.trendHalfLife) / 1000 }
                        if d.method == .cusum { detector["slack"] = d.slack }
                        o["detector"] = detector
                    }
                case .record:
                    o["type"] = "recording"
                }
                rules.append(o)
            }
            groups.append(["name": g.name, "file": g.file, "interval": Double(g.interval ?? 0) / 1000, "limit": g.limit,
                           "rules": rules, "evaluationTime": seconds[gi],
                           "lastEvaluation": last[gi] == 0 ? "0001-01-01T00:00:00Z" : RulesAPI.time(last[gi])])
        }
        return json(["status": "success", "data": ["groups": groups]])
    }

    func alerts() async -> Response {
        let alerts = await engine.state.alerts.filter { $0.state != .inactive }
        return json(["status": "success", "data": ["alerts": alerts.map(RulesAPI.alertObject)]])
    }

    /// The parameters of a query: the URL's, and for a POST the form body's before them (Go's
    /// Request.ParseForm).
    func form(_ request: Request) async -> FormValues {
        var form = FormValues(query: request)
        if request.method == .post, let body = try? await request.body.collect(upTo: 1 << 20) {
            form.pairs = FormValues(String(buffer: body)).pairs + form.pairs
        }
        return form
    }

    /// A warning for each metric the expression names that no rule reads (not kept, so not seen).
    func unkeptWarnings(_ expr: Expr) -> [String] {
        Set(expr.selectors.compactMap(\.name).filter { windows.unkept(metric: $0) }).sorted().map {
            "no rule reads \($0): Aligner keeps only the series its rules read, so this query cannot see it"
        }
    }

    /// `GET|POST /api/v1/query_range?query=&start=&end=&step=`: the expression at every step, as
    /// Prometheus answers it (a matrix), over the rules' windows.
    func queryRange(_ request: Request) async -> Response {
        let form = await form(request)
        let text = form.get("query") ?? ""  // none is an empty expression, as Prometheus parses it
        var bounds: [Int64] = []
        for name in ["start", "end"] {
            let given = form.get(name) ?? ""
            guard let t = parseAPITime(given) else { return error("bad_data", "invalid parameter \"\(name)\": cannot parse \"\(given)\" to a valid timestamp") }
            bounds.append(t)
        }
        let (start, end) = (bounds[0], bounds[1])
        if end < start { return error("bad_data", "invalid parameter \"end\": end timestamp must not be before start time") }
        let stepText = form.get("step") ?? ""
        guard let step = Double(stepText).flatMap({ Int64(exactly: ($0 * 1000).rounded(.towardZero)) }) ?? parseDurationMilliseconds(stepText) else {
            return error("bad_data", "invalid parameter \"step\": cannot parse \"\(stepText)\" to a valid duration")
        }
        if step <= 0 {
            return error("bad_data", "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer")
        }
        if (end - start) / step > 11_000 {
            return error("bad_data", "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
        }
        let expr: Expr
        do { expr = try PromQLParser.parse(text) } catch {
            return self.error("bad_data", "invalid parameter \"query\": 1:\(error.offset + 1): parse error: \(error.message)")
        }
        guard expr.type == .instantVector || expr.type == .scalar else {
            return error("bad_data", "invalid parameter \"query\": invalid expression type \"\(expr.type.rawValue)\" for range query, must be Scalar or instant Vector")
        }
        do {
            let series = try await engine.queryRange(expr, start: start, end: end, step: step)
            let data: [String: Any] = ["resultType": "matrix", "result": RulesAPI.matrixObject(series)]
            let warnings = unkeptWarnings(expr)
            return json(warnings.isEmpty ? ["status": "success", "data": data] : ["status": "success", "data": data, "warnings": warnings])
        } catch {
            return self.error("execution", "\(error)", status: .unprocessableContent)
        }
    }

    /// A matrix as Prometheus' API prints it: each series' labels and its `[seconds, "value"]` pairs.
    static func matrixObject(_ series: [RangeSeries]) -> [[String: Any]] {
        series.map { s in
            ["metric": labelsObject(s.labels),
             "values": zip(s.timestamps, s.values).map { [Double($0.0) / 1000, formatSampleValue($0.1)] }]
        }
    }

    func query(_ request: Request) async -> Response {
        let form = await form(request)
        let text = form.get("query") ?? ""  // none is an empty expression, as Prometheus parses it
        var time = WallClock.nowMilliseconds()
        // An empty time is the default, as in Prometheus.
        if let t = form.get("time"), !t.isEmpty {
            if let ms = parseAPITime(t) { time = ms } else {
                return error("bad_data", "invalid parameter \"time\": Invalid time value for 'time': cannot parse \"\(t)\" to a valid timestamp")
            }
        }
        let expr: Expr
        do { expr = try PromQLParser.parse(text) } catch {
            return self.error("bad_data", "invalid parameter \"query\": 1:\(error.offset + 1): parse error: \(error.message)")
        }
        do {
            let value = try await engine.query(expr, at: time)
            let t = Double(time) / 1000
            let data: [String: Any]
            switch value {
            case .scalar(let v): data = ["resultType": "scalar", "result": [t, formatValue(v)]]  // always without exponent, as Prometheus' Scalar
            case .string(let s): data = ["resultType": "string", "result": [t, s]]
            case .vector(let v):
                data = ["resultType": "vector", "result": v.map { ["metric": RulesAPI.labelsObject($0.labels), "value": [t, formatSampleValue($0.value)]] }]
            case .matrix(let m): data = ["resultType": "matrix", "result": RulesAPI.matrixObject(m)]
            }
            // Prometheus' `warnings`: a selector of series no rule reads finds nothing here.
            let warnings = unkeptWarnings(expr)
            return json(warnings.isEmpty ? ["status": "success", "data": data] : ["status": "success", "data": data, "warnings": warnings])
        } catch {
            return self.error("execution", "\(error)", status: .unprocessableContent)
        }
    }

    func reload() async -> Response {
        do {
            let n = try await engine.reload()
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: "reloaded \(n) rules\n")))
        } catch {
            return Response(status: .internalServerError, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: "failed to reload rules; keeping the previous ones:\n\(error)\n")))
        }
    }
}

/// A sample value as Prometheus' query API prints it: the shortest digits, without an exponent
/// unless below 1e-6 or from 1e21 (`0.00001`, `1000000000000000`, `1e+21`, `1e-07`).
func formatSampleValue(_ v: Double) -> String {
    let magnitude = abs(v)
    if !v.isFinite || (magnitude != 0 && (magnitude < 1e-6 || magnitude >= 1e21)) { return goExponentFormat(v) }
    return formatValue(v)
}
