import AlignerCore
import AlignerEngine
import AlignerEvents
import AlignerRules
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle
import Synchronization

/// `{"status": "success", "data": ...}`, Prometheus' envelope.
struct Envelope<D: Encodable>: Encodable {
    var status = "success"
    var data: D
}

/// The events API the Brain works through (JSON), and the server-sent event stream.
struct EventsAPI: Sendable {
    let events: EventManager
    let rules: RuleEngine
    let windows: WindowStore

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.userInfo[Event.evidenceView] = true
        return e
    }()

    func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? EventsAPI.encoder.encode(Envelope(data: value))) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        let body = (try? JSONSerialization.data(withJSONObject: ["status": "error", "error": message], options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    func register(on router: Router<BasicRequestContext>) {
        router.get("/api/v1/events") { request, _ in await list(request) }
        router.get("/api/v1/events/stream") { request, _ in try await stream(request) }
        router.get("/api/v1/events/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            guard let e = await events.get(id) else { return error(.notFound, "no event \(id)") }
            return json(e)
        }
        router.post("/api/v1/events/:id/:action") { request, context in
            await act(request, id: context.parameters.get("id") ?? "", action: context.parameters.get("action") ?? "")
        }
        router.get("/api/v1/silences") { _, _ in
            let now = WallClock.nowMilliseconds()
            let all = await events.silences.values.sorted { $0.startsAt > $1.startsAt }
            struct View: Encodable { var silence: Silence; var state: String }
            return json(all.map { View(silence: $0, state: $0.isActive(at: now) ? "active" : $0.startsAt > now ? "pending" : "expired") })
        }
        router.post("/api/v1/silences") { request, _ in await createSilence(request) }
        router.delete("/api/v1/silences/:id") { _, context in
            do {
                return json(try await events.expireSilence(context.parameters.get("id") ?? "", now: WallClock.nowMilliseconds()))
            } catch let e as EventError {
                return error(.notFound, e.description)
            } catch {
                return self.error(.internalServerError, "\(error)")
            }
        }
        router.get("/api/v1/events/waiting") { _, _ in
            struct View: Encodable { var rule: String; var subject: Subject; var since: Int64 }
            return json(await events.waiting.map { View(rule: $0.rule, subject: $0.subject, since: $0.since) })
        }
        // A subject outside any namespace (a Node) is `_` in place of the namespace.
        @Sendable func namespace(_ context: BasicRequestContext) -> String {
            let given = context.parameters.get("namespace") ?? ""
            return given == "_" ? "" : given
        }
        // `?cluster=` takes the subject in one cluster (where events are told apart by cluster).
        router.get("/api/v1/subjects/:namespace/:name") { request, context in
            await subject(namespace: namespace(context), name: context.parameters.get("name") ?? "",
                          cluster: FormValues(query: request).get("cluster"))
        }
        router.get("/api/v1/subjects/:namespace/:name/journal") { request, context in
            var limit = 50
            if let text = FormValues(query: request).get("limit") {
                guard let n = Int(text), n > 0 else { return error(.badRequest, "limit=\(text): want a whole number of entries, 1 or more (at most 500 are returned)") }
                limit = n
            }
            let entries = await events.journal(namespace: namespace(context), name: context.parameters.get("name") ?? "",
                                               cluster: FormValues(query: request).get("cluster"), limit: min(limit, 500))
            return json(entries)
        }
    }

    /// `POST /api/v1/silences`: `{"matchers": [{"name", "value", "isRegex", "isEqual"}], "startsAt", "endsAt",
    /// "createdBy", "comment"}` (Alertmanager's shape; times RFC 3339 or Unix seconds; startsAt defaults to now).
    func createSilence(_ request: Request) async -> Response {
        guard let body = try? await request.body.collect(upTo: 1 << 20),
              let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] else {
            return error(.badRequest, "request body must be a JSON object with matchers, endsAt, createdBy and comment")
        }
        func time(_ key: String) -> Int64? {
            if let n = object[key] as? Double { return Int64(unixSecondsAsMilliseconds: n) }
            return (object[key] as? String).flatMap(parseAPITime)
        }
        for key in ["startsAt", "endsAt"] where object[key] != nil && !(object[key] is NSNull) && time(key) == nil {
            return error(.badRequest, "invalid \(key) \(object[key]!): want RFC 3339 or Unix seconds")
        }
        guard let raw = object["matchers"] as? [[String: Any]], !raw.isEmpty else {
            return error(.badRequest, "a silence needs at least one matcher {\"name\", \"value\", \"isRegex\"}")
        }
        var matchers: [Silence.Matcher] = []
        for m in raw {
            guard let name = m["name"] as? String, !name.isEmpty, let value = m["value"] as? String else {
                return error(.badRequest, "every matcher needs a non-empty \"name\" and a \"value\"")
            }
            let isRegex = m["isRegex"] as? Bool ?? false
            if isRegex, (try? Regex(value)) == nil { return error(.badRequest, "matcher \(name): invalid regular expression \"\(value)\"") }
            matchers.append(Silence.Matcher(name: name, value: value, isRegex: isRegex, isEqual: m["isEqual"] as? Bool))
        }
        let now = WallClock.nowMilliseconds()
        let startsAt = time("startsAt") ?? now
        guard let endsAt = time("endsAt") else { return error(.badRequest, "endsAt is required (RFC 3339 or Unix seconds)") }
        guard endsAt > startsAt else { return error(.badRequest, "endsAt must be after startsAt") }
        let silence = Silence(id: "", matchers: matchers, startsAt: startsAt, endsAt: endsAt,
                              createdBy: object["createdBy"] as? String ?? "api", comment: object["comment"] as? String ?? "")
        do {
            return json(try await events.createSilence(silence))
        } catch {
            return self.error(.internalServerError, "\(error)")
        }
    }

    func list(_ request: Request) async -> Response {
        let q = FormValues(query: request)
        var since: Int64?
        if let s = q.get("since"), !s.isEmpty {
            // A time, or how long back from now (`since=10m`).
            if let ms = parseAPITime(s) { since = ms } else if let back = parseDurationMilliseconds(s) { since = WallClock.nowMilliseconds() - back } else {
                return error(.badRequest, "invalid since \"\(s)\": want a Unix time in seconds, RFC 3339, or a duration back from now such as 10m")
            }
        }
        // `state` and `class` take several values, repeated or comma-separated (`state=open,acknowledged`).
        func values(_ name: String) -> [String] {
            q.getAll(name).flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
        }
        let states = values("state"), classes = values("class")
        if let state = states.first(where: { EventState(rawValue: $0) == nil }) {
            return error(.badRequest, "invalid state \"\(state)\": want open, acknowledged, resolved or closed")
        }
        let namespace = q.get("namespace"), subject = q.get("subject")
        return json(await events.list(states: states.isEmpty ? nil : Set(states), classes: classes.isEmpty ? nil : Set(classes),
                                      namespace: namespace, subject: subject, since: since, cluster: q.get("cluster")))
    }

    func act(_ request: Request, id: String, action: String) async -> Response {
        guard ["ack", "resolve", "close", "notes"].contains(action) else { return error(.notFound, "unknown action \"\(action)\" (ack, resolve, close, notes)") }
        let req = request
        var actor = "api"
        var text = ""
        if let body = try? await req.body.collect(upTo: 1 << 20), body.readableBytes > 0 {
            guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] else {
                return error(.badRequest, "request body must be a JSON object such as {\"actor\": \"brain\", \"text\": \"...\"}")
            }
            actor = object["actor"] as? String ?? actor
            text = (object["text"] ?? object["summary"] ?? object["note"]) as? String ?? ""
        }
        do {
            let e = try await events.act(id, action: action, actor: actor, text: text, now: WallClock.nowMilliseconds())
            return json(e)
        } catch let e as EventError {
            switch e.kind {
            case .notFound: return error(.notFound, e.description)
            case .conflict: return error(.conflict, e.description)
            case .invalid: return error(.badRequest, e.description)
            }
        } catch {
            return self.error(.internalServerError, "\(error)")
        }
    }

    /// Everything Aligner knows now about a workload: its open event, its alerts by state, and the
    /// current values of the series the rules keep for it.
    func subject(namespace: String, name: String, cluster: String?) async -> Response {
        struct SeriesValue: Encodable { var labels: [String: String]; var value: Double?; var timestamp: Int64 }
        struct AlertView: Encodable { var rule: String; var state: String; var labels: [String: String]; var value: Double; var activeAt: Int64 }
        struct View: Encodable {
            var namespace: String
            var name: String
            var cluster: String?
            var healthy: Bool
            var openEvent: Event?
            var alerts: [AlertView]
            var series: [SeriesValue]
        }
        let open = await events.openEvent(namespace: namespace, name: name, cluster: cluster)
        let now = WallClock.nowMilliseconds()
        let belongs: (Labels) -> Bool = { l in
            l.value("namespace") == namespace && (cluster == nil || l.value("cluster") == cluster)
                && l.contains { $0.name != "namespace" && $0.name != "cluster" && ($0.value == name || ($0.name == "pod" && $0.value.hasPrefix(name + "-"))) }
        }
        let state = await rules.state
        var alerts: [AlertView] = []
        for a in state.alerts where a.state != .inactive && belongs(a.labels) {
            alerts.append(AlertView(rule: a.labels.value("alertname"), state: a.state.rawValue,
                                    labels: Dictionary(a.labels.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 }),
                                    value: a.value, activeAt: a.activeAt))
        }
        let series = windows.series(matching: [LabelMatcher("namespace", .equal, namespace)], from: now - 300_000, through: now)
            .filter { belongs($0.labels) }
            .compactMap { s -> SeriesValue? in
                guard let t = s.timestamps.last, let v = s.values.last else { return nil }
                let stale = SampleValue.isStale(bits: v.bitPattern)
                return SeriesValue(labels: Dictionary(s.labels.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 }),
                                   value: stale || v.isNaN ? nil : v, timestamp: t)
            }
        // Healthy: no alert of the workload holds now (pending, or firing on its condition rather
        // than kept firing by `keep_firing_for`), whatever the open event's state: the Brain asks
        // this after its fix, before the event's quiet period has passed.
        let holding = state.alerts.contains { a in
            belongs(a.labels) && (a.state == .pending || (a.state == .firing && a.keepFiringSince == nil))
        }
        return json(View(namespace: namespace, name: name, cluster: cluster, healthy: !holding,
                         openEvent: open, alerts: alerts.sorted { $0.rule < $1.rule }, series: series))
    }

    /// Changes encoded and waiting for one stream consumer's socket, at most.
    static let linesInFlight = 256

    /// Changes handed to a stream's writer and not yet written to its socket.
    final class Counter: Sendable {
        let value = Mutex(0)
    }

    /// `GET /api/v1/events/stream`: every change as a server-sent event, `id:` being the change's
    /// sequence number; `Last-Event-ID` (or `?after=`) resumes after it, across restarts.
    func stream(_ request: Request) async throws -> Response {
        let after = FormValues(query: request).get("after")
        let header: String? = request.headers[HTTPField.Name("Last-Event-ID")!] ?? after
        var resumeAfter: Int64 = 0
        if let header {
            guard let n = Int64(header) else { return error(.badRequest, "invalid Last-Event-ID \"\(header)\": want a sequence number") }
            resumeAfter = n
        }
        let changes = try await events.subscribe(after: resumeAfter)
        let body = ResponseBody { writer in
            try await writer.write(ByteBuffer(string: "retry: 1000\n\n"))
            // Changes, and a comment every 15 s so a vanished client is noticed; both end on
            // graceful shutdown, so SIGTERM does not wait for stream consumers. At most
            // `EventsAPI.linesInFlight` changes wait for the socket: past that the changes wait in
            // the manager's bounded queue, and a consumer too far behind is cut off there
            // (`EventManager.Subscriber.send`) and resumes with Last-Event-ID.
            let (lines, output) = AsyncStream.makeStream(of: String.self)
            let inFlight = Counter()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await change in changes.cancelOnGracefulShutdown() {
                        let data = String(decoding: try EventsAPI.encoder.encode(change), as: UTF8.self)
                        // The socket is behind: wait for it (polled; only a slow consumer or a
                        // long backlog gets here).
                        while inFlight.value.withLock({ $0 }) >= EventsAPI.linesInFlight { try await Task.sleep(for: .milliseconds(2)) }
                        inFlight.value.withLock { $0 += 1 }
                        output.yield("id: \(change.sequence)\nevent: \(change.type)\ndata: \(data)\n\n")
                    }
                    output.finish()
                }
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: .seconds(15))
                        output.yield(": keep-alive\n\n")
                    }
                }
                for await line in lines {
                    try await writer.write(ByteBuffer(string: line))
                    if line.hasPrefix("id:") { inFlight.value.withLock { $0 -= 1 } }
                }
                group.cancelAll()
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}
