import Foundation

/// The workload an event is about.
public struct Subject: Codable, Hashable, Sendable, CustomStringConvertible {
    public var namespace: String
    public var kind: String
    public var name: String
    /// The cluster, when the signal's series name one (a `cluster` label): the same workload in
    /// two clusters is two subjects. Absent from the JSON when there is none.
    public var cluster: String?

    public init(namespace: String, kind: String, name: String, cluster: String? = nil) {
        self.namespace = namespace
        self.kind = kind
        self.name = name
        self.cluster = cluster
    }

    /// Another subject of the same cluster and namespace (a pod's owner).
    public func with(kind: String, name: String) -> Subject {
        Subject(namespace: namespace, kind: kind, name: name, cluster: cluster)
    }

    /// The namespace this subject is in, as a subject (a flood's).
    public var namespaceSubject: Subject { with(kind: "Namespace", name: namespace) }

    /// Whether this subject is in the given cluster (nil: any).
    public func isIn(cluster wanted: String?) -> Bool { wanted == nil || cluster == wanted }

    /// Whether `text` names this subject: its name, `namespace/name`, `kind/name` or
    /// `namespace/kind/name` (after `cluster/` when there is one), as the events' `subject` filter takes it.
    public func isNamed(_ text: String) -> Bool {
        text == name || text == "\(namespace)/\(name)" || text == "\(kind)/\(name)" || text == "\(namespace)/\(kind)/\(name)" || text == description
    }

    /// `namespace/kind/name`, after `cluster/` when there is one.
    public var description: String { (cluster.map { "\($0)/" } ?? "") + "\(namespace)/\(kind)/\(name)" }
}

/// Where an event is in its life.
public enum EventState: String, Codable, Sendable {
    case open, acknowledged, resolved, closed
}

/// The recent history of a signal's value: downsampled points and the notable moments.
public struct Evidence: Codable, Sendable, Equatable {
    public struct Point: Codable, Sendable, Equatable {
        public var t: Int64
        public var v: Double
        public init(t: Int64, v: Double) {
            self.t = t
            self.v = v
        }
    }

    /// The value over the last minutes, oldest first.
    public var points: [Point]
    /// The highest points (the bursts), by time; for a level, its start at its top value.
    public var peaks: [Point]
    /// One line with the numbers and times, for the event's summary.
    public var text: String
    /// A level (a value held, not bursts): since when (ms), and until when once it ended.
    public var since: Int64?
    public var until: Int64?

    public init(points: [Point], peaks: [Point], text: String, since: Int64? = nil, until: Int64? = nil) {
        self.points = points
        self.peaks = peaks
        self.text = text
        self.since = since
        self.until = until
    }

    /// A time of day as the evidence writes it, `22:10:50` (UTC).
    public static func clock(_ ms: Int64) -> String {
        let s = (ms / 1000) % 86_400
        return String(format: "%02d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
    }

    /// The evidence of a signal that resolved at `at`: a value held "since 22:10:05" was held
    /// "from 22:10:05 to 22:14:30" (the event's summary no longer says it lasts).
    func ended(at: Int64) -> Evidence {
        let start = since ?? (peaks.count == 1 ? peaks[0].t : nil)
        guard until == nil, let start, text.hasSuffix(" since \(Evidence.clock(start))") else { return self }
        var e = self
        e.text = text.dropLast(" since \(Evidence.clock(start))".count) + " from \(Evidence.clock(start)) to \(Evidence.clock(at))"
        if since != nil { e.until = at }
        return e
    }
}

/// One alert instance feeding an event.
public struct Signal: Codable, Sendable, Equatable {
    /// The alerting rule's name.
    public var rule: String
    public var anomalyClass: String
    public var severity: String
    public var labels: [String: String]
    public var value: Double
    /// Milliseconds since the epoch: when the alert started firing.
    public var since: Int64
    /// `firing` or `resolved`.
    public var state: String
    public var resolvedAt: Int64?
    /// The alert's annotations (summary, description).
    public var annotations: [String: String]
    /// The recent values behind the signal, with peaks.
    public var evidence: Evidence?
    /// Whether an active silence matches the signal (recorded, not announced).
    public var silenced: Bool?

    enum CodingKeys: String, CodingKey {
        case rule, anomalyClass = "class", severity, labels, value, since, state, resolvedAt, annotations, evidence, silenced
    }

    /// The class's key in stores written before it was named `class`, as the event's is.
    enum LegacyKeys: String, CodingKey { case anomalyClass }
}

extension Signal {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        rule = try c.decode(String.self, forKey: .rule)
        anomalyClass = try c.decodeIfPresent(String.self, forKey: .anomalyClass)
            ?? decoder.container(keyedBy: LegacyKeys.self).decode(String.self, forKey: .anomalyClass)
        severity = try c.decode(String.self, forKey: .severity)
        labels = try c.decode([String: String].self, forKey: .labels)
        value = try c.decode(Double.self, forKey: .value)
        since = try c.decode(Int64.self, forKey: .since)
        state = try c.decode(String.self, forKey: .state)
        resolvedAt = try c.decodeIfPresent(Int64.self, forKey: .resolvedAt)
        annotations = try c.decode([String: String].self, forKey: .annotations)
        evidence = try c.decodeIfPresent(Evidence.self, forKey: .evidence)
        silenced = try c.decodeIfPresent(Bool.self, forKey: .silenced)
    }
}

/// One entry of an event's history.
public struct TimelineEntry: Codable, Sendable, Equatable {
    public var at: Int64
    /// `aligner` for automatic changes, otherwise whoever called the API.
    public var actor: String
    public var action: String
    public var detail: String
}

/// The unit of work for the Brain: one troubled workload.
public struct Event: Codable, Sendable, Equatable {
    public var id: String
    public var anomalyClass: String
    public var severity: String
    public var subject: Subject
    public var state: EventState
    public var openedAt: Int64
    public var updatedAt: Int64
    public var resolvedAt: Int64?
    public var closedAt: Int64?
    public var signals: [Signal]
    public var timeline: [TimelineEntry]
    public var summary: String
    /// The closing summary (goes to the workload's journal).
    public var outcome: String?
    /// Reopened often lately: it waits longer before resolving.
    public var flapping: Bool?
    /// Every firing signal is silenced: recorded, not to be announced.
    public var silenced: Bool?

    enum CodingKeys: String, CodingKey {
        case id, anomalyClass = "class", severity, subject, state, openedAt, updatedAt, resolvedAt, closedAt, signals,
             timeline, summary, outcome, flapping, silenced
    }

    /// Severity order: critical > warning > info.
    static func rank(_ severity: String) -> Int {
        switch severity {
        case "critical": 3
        case "warning": 2
        default: 1
        }
    }

    /// The order of classes in a summary, the workload's own symptom first: "4/5 replicas ready;
    /// 5xx ratio 100% at ...; CPU 62.5% of limit at ...". Other classes follow, in joining order.
    static let summaryOrder = ["replica_mismatch", "error_rate_spike", "crash_loop", "oom_killed", "image_pull_failure",
                               "container_cannot_start", "volume_full", "job_failed", "pod_not_ready", "node_not_ready", "node_pressure",
                               "memory_pressure", "cpu_burst"]

    /// At most this many timeline entries, however long the event lasts (a service failing in
    /// bursts for a day re-fires its signal hundreds of times, and every change saves and sends
    /// the whole event): the first (the opening), the Brain's and people's, and Aligner's newest,
    /// with one `omitted` entry where the first left out was (every change is still on the stream
    /// and in the store, within `events.retention`).
    static let timelineCap = 200
    /// At most this many resolved signals, the last to resolve; firing ones are all kept.
    static let resolvedSignalCap = 50

    /// Recomputes class, severity and summary from the signals: the class is the first signal's,
    /// or a more severe signal's when one joins. Keeps the timeline and the resolved signals
    /// within their caps.
    mutating func refresh() {
        if timeline.count > Event.timelineCap {
            // The oldest of Aligner's own entries go first; the Brain's and people's (ack,
            // notes, close) only if they alone pass the cap. One `omitted` entry stands where
            // the first left out was, in time order.
            let earlier = timeline.dropFirst().first { $0.action == "omitted" }
            var rest = timeline.dropFirst().filter { $0.action != "omitted" }
            var excess = rest.count + 2 - Event.timelineCap
            var firstLeftOut = earlier?.at ?? .max
            for anyone in [false, true] where excess > 0 {
                rest = rest.filter { entry in
                    guard excess > 0, anyone || entry.actor == "aligner" else { return true }
                    excess -= 1
                    firstLeftOut = min(firstLeftOut, entry.at)
                    return false
                }
            }
            let marker = TimelineEntry(at: firstLeftOut, actor: "aligner", action: "omitted",
                                       detail: "earlier entries left out; every change is on the events stream")
            rest.insert(marker, at: rest.firstIndex { $0.at > firstLeftOut } ?? rest.endIndex)
            timeline = [timeline[0]] + rest
        }
        let resolved = signals.indices.filter { signals[$0].state != "firing" }
        if resolved.count > Event.resolvedSignalCap {
            let oldest = Set(resolved.sorted { (signals[$0].resolvedAt ?? 0) < (signals[$1].resolvedAt ?? 0) }.prefix(resolved.count - Event.resolvedSignalCap))
            signals = signals.indices.filter { !oldest.contains($0) }.map { signals[$0] }
        }
        if let top = signals.max(by: { Event.rank($0.severity) < Event.rank($1.severity) }) {
            if Event.rank(top.severity) > Event.rank(severity) || anomalyClass.isEmpty { anomalyClass = top.anomalyClass }
            severity = top.severity
        }
        func order(_ i: Int) -> (Int, Int, Int) {
            let s = signals[i]
            return (-Event.rank(s.severity), Event.summaryOrder.firstIndex(of: s.anomalyClass) ?? Event.summaryOrder.count, i)
        }
        var parts: [String] = []
        for s in signals.indices.sorted(by: { order($0) < order($1) }).map({ signals[$0] }) {
            // An upstream rule may have only a description (or the older kubernetes-mixin's message).
            var text = s.evidence?.text ?? s.annotations["summary"] ?? s.annotations["description"] ?? s.annotations["message"]
                ?? "\(s.rule) (\(s.anomalyClass)) value \(formatNumber(s.value))"
            // The summary starts with the subject's name once, not once per signal.
            for prefix in ["\(subject.namespace)/\(subject.name): ", "\(subject.name): "] where text.hasPrefix(prefix) {
                text.removeFirst(prefix.count)
                break
            }
            let line = s.state == "firing" ? text : "\(text) (resolved)"
            if !parts.contains(line) { parts.append(line) }
        }
        summary = "\(subject.name): " + parts.joined(separator: "; ")
    }
}

extension Event {
    /// `true` in an encoder's `userInfo` adds `evidence` to the event's JSON: each signal's
    /// evidence, with the signal it is about (rule, class, labels, state), at the event's top
    /// level, the way the API shows an event. The store keeps it once, in the signals.
    public static let evidenceView = CodingUserInfoKey(rawValue: "aligner.event.evidence")!

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(anomalyClass, forKey: .anomalyClass)
        try c.encode(severity, forKey: .severity)
        try c.encode(subject, forKey: .subject)
        try c.encode(state, forKey: .state)
        try c.encode(openedAt, forKey: .openedAt)
        try c.encode(updatedAt, forKey: .updatedAt)
        try c.encodeIfPresent(resolvedAt, forKey: .resolvedAt)
        try c.encodeIfPresent(closedAt, forKey: .closedAt)
        try c.encode(signals, forKey: .signals)
        try c.encode(timeline, forKey: .timeline)
        try c.encode(summary, forKey: .summary)
        try c.encodeIfPresent(outcome, forKey: .outcome)
        try c.encodeIfPresent(flapping, forKey: .flapping)
        try c.encodeIfPresent(silenced, forKey: .silenced)
        if encoder.userInfo[Event.evidenceView] as? Bool == true {
            var view = encoder.container(keyedBy: ViewKeys.self)
            try view.encode(signals.compactMap { s in s.evidence.map { SignalEvidence(signal: s, evidence: $0) } }, forKey: .evidence)
        }
    }

    enum ViewKeys: String, CodingKey { case evidence }

    /// One signal's evidence, with the signal it is about.
    struct SignalEvidence: Encodable {
        let signal: Signal
        let evidence: Evidence

        enum CodingKeys: String, CodingKey { case rule, anomalyClass = "class", labels, state }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(signal.rule, forKey: .rule)
            try c.encode(signal.anomalyClass, forKey: .anomalyClass)
            try c.encode(signal.labels, forKey: .labels)
            try c.encode(signal.state, forKey: .state)
            try evidence.encode(to: encoder)
        }
    }
}

func formatNumber(_ v: Double) -> String {
    if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
    return String(format: "%.4g", v)
}

/// A fresh event id: `evt-` and 8 hex digits.
func newEventID() -> String {
    "evt-" + String(format: "%08x", UInt32.random(in: .min ... .max))
}

/// A silence: label matchers and a time window. Matching signals are recorded, not announced.
public struct Silence: Codable, Sendable, Equatable {
    public struct Matcher: Codable, Sendable, Equatable {
        public var name: String
        public var value: String
        public var isRegex: Bool
        public var isEqual: Bool?

        public init(name: String, value: String, isRegex: Bool, isEqual: Bool?) {
            self.name = name
            self.value = value
            self.isRegex = isRegex
            self.isEqual = isEqual
        }

        func matches(_ labels: [String: String]) -> Bool {
            let v = labels[name] ?? ""
            let hit: Bool
            if isRegex {
                hit = (try? Regex("(?:" + value + ")").wholeMatch(in: v)) != nil
            } else {
                hit = v == value
            }
            return hit == (isEqual ?? true)
        }
    }

    public var id: String
    public var matchers: [Matcher]
    public var startsAt: Int64
    public var endsAt: Int64
    public var createdBy: String
    public var comment: String

    public init(id: String, matchers: [Matcher], startsAt: Int64, endsAt: Int64, createdBy: String, comment: String) {
        self.id = id
        self.matchers = matchers
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.createdBy = createdBy
        self.comment = comment
    }

    public func isActive(at now: Int64) -> Bool { startsAt <= now && now < endsAt }

    public func matches(_ labels: [String: String]) -> Bool { matchers.allSatisfy { $0.matches(labels) } }
}
