import Foundation
import Logging

/// One firing alert with its event routing, as the rule engine reports it.
public struct SignalInput: Sendable {
    public var rule: String
    public var anomalyClass: String
    public var severity: String
    public var subject: Subject
    public var labels: [String: String]
    public var annotations: [String: String]
    public var value: Double
    public var since: Int64
    public var evidence: Evidence?
    /// False: the signal only joins its subject's open event; it neither opens nor reopens one.
    public var opens: Bool

    public init(rule: String, anomalyClass: String, severity: String, subject: Subject, labels: [String: String],
                annotations: [String: String], value: Double, since: Int64, evidence: Evidence? = nil, opens: Bool = true) {
        self.evidence = evidence
        self.opens = opens
        self.rule = rule
        self.anomalyClass = anomalyClass
        self.severity = severity
        self.subject = subject
        self.labels = labels
        self.annotations = annotations
        self.value = value
        self.since = since
    }

    var key: String { rule + "\u{0}" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") }
}

/// Noise control: flood consolidation, a cap on open events, flap dampening.
public struct EventLimits: Sendable {
    /// More than this many subjects of one namespace opening within `floodWindow` become one flood event.
    public var floodThreshold = 10
    public var floodWindow: Int64 = 60_000
    /// At most this many open events; further signals wait (`events.max_open`).
    public var maxOpen = 500
    /// Reopened this many times within `flapWindow`: the event is flapping and resolves 4x slower.
    public var flapReopenings = 3
    public var flapWindow: Int64 = 600_000
    /// Events resolved or closed and silences ended longer ago than this are deleted, and changes
    /// older than this (`events.retention`; 0 keeps everything).
    public var retention: Int64 = 90 * 86_400_000

    public init() {}
}

/// Why an API call on an event cannot be done.
public struct EventError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case notFound, conflict, invalid }
    public var kind: Kind
    public var description: String
}

/// Turns firing alerts into events: one open event per subject, later signals joining it, resolution
/// after a quiet period, a cooldown after close that reopens instead of opening anew. Every change
/// is committed to the store before it is announced or answered.
public actor EventManager {
    /// The store (also keeps the rule engine's alert states).
    public nonisolated let store: any EventStore
    /// How long every signal of an event must stay resolved before the event resolves.
    let resolveAfter: Int64
    /// A new signal for a subject within this long after its event closed reopens that event.
    let cooldown: Int64
    let limits: EventLimits
    let logger: Logger
    public private(set) var silences: [String: Silence] = [:]
    /// Signals waiting because `events.max_open` events are open; admitted as events close.
    public private(set) var waiting: [SignalInput] = []
    /// Signals that only join (`opens` false) seen firing while their subject had no open event,
    /// by subject and signal key, with when they were last seen: an event that opens for the
    /// subject within `joinerMemory` takes them (a CPU burst a scrape before the errors of the
    /// same burst opened the event). Kept in memory only.
    var recentJoiners: [Subject: [String: (input: SignalInput, seenAt: Int64)]] = [:]
    static let joinerMemory: Int64 = 120_000
    /// When `recentJoiners` was last pruned (every 10 s at most: a pass over it per round would
    /// cost with thousands of subjects; an entry may outlive the memory by those 10 s).
    var joinersPrunedAt: Int64?
    /// The latest state of every event, including changes still being committed (what the manager
    /// works on).
    var events: [String: Event] = [:]
    /// The ids of the open and acknowledged events, which each evaluation goes over (not every
    /// event kept: those closed within `events.retention` are thousands). `put` keeps it.
    var active: Set<String> = []
    /// Every event as last committed: what the API shows, so nothing is visible before it is durable.
    var committed: [String: Event] = [:]
    /// The journals: each event as it was closed, per subject, oldest first, the newest
    /// `journalCap` kept (an event reopened within the cooldown keeps the outcome it was closed with).
    var closings: [Subject: [Event]] = [:]
    public static let journalCap = 500
    /// Where the levels of firing signals began when the store was loaded (by
    /// `SignalInput.key`): the rule engine's first evidence after a restart, which sees only the
    /// last 5 minutes, keeps a start older than that (a replica mismatch held for an hour).
    public nonisolated let levelStartsAtLoad: [String: Int64]
    /// Event ids by subject (an event's subject never changes).
    var bySubject: [Subject: [String]] = [:]
    var subscribers: [UUID: Subscriber] = [:]
    /// Changes queued for one stream consumer at most (see `Subscriber.send`).
    public private(set) var subscriberBuffer = 10_000
    public func setSubscriberBuffer(_ n: Int) { subscriberBuffer = n }
    public private(set) var lastSequence: Int64 = 0
    /// Changes committed but not yet announced because an earlier one is still completing.
    var unannounced: [Int64: EventChange] = [:]
    var announced: Int64 = 0

    /// A stream consumer: catches up from the store, then follows live changes, each once, in order.
    final class Subscriber {
        let continuation: AsyncStream<EventChange>.Continuation
        var lastSent: Int64
        var catchingUp = true
        var buffer: [EventChange] = []
        /// Cut off or gone: nothing more is queued.
        var finished = false

        init(continuation: AsyncStream<EventChange>.Continuation, after: Int64) {
            self.continuation = continuation
            lastSent = after
        }

        /// Queues a change after the last one sent. A consumer that falls `subscriberBuffer`
        /// changes behind is cut off rather than skipped over: the stream ends after the last
        /// change it holds, and the consumer resumes from there (`Last-Event-ID`) out of the store.
        func send(_ change: EventChange) {
            guard change.sequence > lastSent else { return }
            guard !finished else { return }
            switch continuation.yield(change) {
            case .enqueued: lastSent = change.sequence
            case .terminated: finished = true
            default:
                finished = true
                continuation.finish()
            }
        }
    }

    /// Loads every event from the store (a restart picks up where the process stopped).
    public init(store: any EventStore, resolveAfter: Int64, cooldown: Int64, limits: EventLimits = EventLimits(), logger: Logger) throws {
        self.store = store
        self.resolveAfter = resolveAfter
        self.cooldown = cooldown
        self.limits = limits
        self.logger = logger
        for s in try store.silencesSync() { silences[s.id] = s }
        let loaded = try store.loadSync()
        var levelStarts: [String: Int64] = [:]
        for e in loaded.events {
            events[e.id] = e
            committed[e.id] = e
            bySubject[e.subject, default: []].append(e.id)
            guard e.state == .open || e.state == .acknowledged else { continue }
            active.insert(e.id)
            for s in e.signals where s.state == "firing" && s.evidence?.until == nil {
                if let since = s.evidence?.since { levelStarts[SignalInput.key(rule: s.rule, labels: s.labels)] = since }
            }
        }
        levelStartsAtLoad = levelStarts
        lastSequence = loaded.lastSequence
        announced = loaded.lastSequence
        for e in try store.closingsSync() { EventManager.journal(e, into: &closings) }
    }

    /// When `pruneIfDue` last ran.
    var prunedAt: Int64?

    /// Deletes what is older than `limits.retention`: events resolved or closed and not changed
    /// since, every change (the stream and the journals then begin there), silences that ended
    /// before. At most once an hour; the rule engine's periodic loop calls it.
    public func pruneIfDue(now: Int64) async {
        guard limits.retention > 0, prunedAt.map({ now - $0 >= 3_600_000 }) ?? true else { return }
        prunedAt = now
        let cutoff = now - limits.retention
        let old = events.values.filter { ($0.state == .resolved || $0.state == .closed) && $0.updatedAt < cutoff }.map(\.id)
        let ended = silences.values.filter { $0.endsAt < cutoff }.map(\.id)
        do {
            try await store.prune(events: old, changesBefore: cutoff, silences: ended)
        } catch {
            logger.error("cannot delete events older than the retention; tried again in an hour", metadata: ["error": "\(error)"])
            return
        }
        // What changed while the store worked (an event reopened) is kept, as the store kept it.
        for id in old {
            guard let e = events[id], e.updatedAt < cutoff else { continue }
            events[id] = nil
            active.remove(id)
            committed[id] = nil
            bySubject[e.subject]?.removeAll { $0 == id }
            if bySubject[e.subject]?.isEmpty == true { bySubject[e.subject] = nil }
        }
        for subject in Array(closings.keys) {
            closings[subject]!.removeAll { ($0.closedAt ?? 0) < cutoff }
            if closings[subject]!.isEmpty { closings[subject] = nil }
        }
        for id in ended where (silences[id]?.endsAt ?? .max) < cutoff { silences[id] = nil }
        if !old.isEmpty || !ended.isEmpty {
            logger.info("deleted what is older than the retention", metadata: ["events": "\(old.count)", "silences": "\(ended.count)"])
        }
    }

    /// Puts an event's latest state in `events`, and its id in `active` while it is open.
    func put(_ e: Event) {
        events[e.id] = e
        if e.state == .open || e.state == .acknowledged { active.insert(e.id) } else { active.remove(e.id) }
    }

    /// Adds a closed event to its subject's journal.
    static func journal(_ closed: Event, into closings: inout [Subject: [Event]]) {
        closings[closed.subject, default: []].append(closed)
        if closings[closed.subject]!.count > journalCap { closings[closed.subject]!.removeFirst() }
    }

    /// The event a new signal for `subject` joins: its open one, or one resolved or closed within the cooldown.
    func eventFor(_ subject: Subject, now: Int64) -> String? {
        let candidates = (bySubject[subject] ?? []).compactMap { events[$0] }
        if let open = candidates.first(where: { $0.state == .open || $0.state == .acknowledged }) { return open.id }
        return candidates.filter {
            ($0.state == .resolved) || ($0.state == .closed && ($0.closedAt ?? 0) + cooldown >= now)
        }.max { $0.updatedAt < $1.updatedAt }?.id
    }

    /// Brings events in line with the alerts firing now (signals with an `event` routing).
    public func sync(firing: [SignalInput], at now: Int64) async {
        var current: Set<String> = []
        var stillWaiting: [SignalInput] = []
        var joining: [String: [SignalInput]] = [:]
        var joiningOrder: [String] = []
        // Every change of this evaluation is committed in one transaction at the end.
        var batch: [(event: Event, type: String)] = []
        // Counted once per evaluation, then kept up to date as events open.
        var open = openCount
        var recentByNamespace: [Subject: Int]?  // by namespace (and cluster)
        let firingKeys = Set(firing.map(\.key))
        forgetJoiners(before: now - EventManager.joinerMemory)
        // Signals that may open events first, so one that only joins finds the event another
        // signal of the same evaluation opened.
        for var input in firing.filter(\.opens) + firing.filter({ !$0.opens }) {
            defer { current.insert(input.key) }  // after any flood re-routing, which changes the key
            var target = eventFor(input.subject, now: now)
            if !input.opens {
                guard let id = target, let e = events[id], e.state == .open || e.state == .acknowledged else {
                    if recentJoiners.count < 10_000 || recentJoiners[input.subject] != nil {
                        recentJoiners[input.subject, default: [:]][input.key] = (input, now)
                    }
                    continue
                }
            }
            if target == nil {
                // Flood: many subjects of one namespace opening at once become one event listing them.
                if recentByNamespace == nil {
                    var counts: [Subject: Int] = [:]
                    for e in events.values where e.anomalyClass != "flood" && now - e.openedAt <= limits.floodWindow {
                        counts[e.subject.namespaceSubject, default: 0] += 1
                    }
                    recentByNamespace = counts
                }
                if recentByNamespace![input.subject.namespaceSubject, default: 0] >= limits.floodThreshold {
                    let floodSubject = input.subject.namespaceSubject
                    input.labels["subject"] = input.subject.description
                    input.subject = floodSubject
                    input.anomalyClass = "flood"
                    target = eventFor(floodSubject, now: now)
                }
            }
            if target == nil && open >= limits.maxOpen {
                stillWaiting.append(input)  // kept until an event closes; firing alerts are offered again each evaluation
                continue
            }
            if let id = target, events[id] != nil {
                if joining[id] == nil { joiningOrder.append(id) }
                joining[id, default: []].append(input)
            } else {
                var e = Event(id: newEventID(), anomalyClass: input.anomalyClass, severity: input.severity, subject: input.subject,
                              state: .open, openedAt: now, updatedAt: now, signals: [], timeline: [], summary: "")
                e.signals.append(Signal(rule: input.rule, anomalyClass: input.anomalyClass, severity: input.severity, labels: input.labels,
                                        value: input.value, since: input.since, state: "firing", annotations: input.annotations,
                                        evidence: input.evidence))
                e.timeline.append(TimelineEntry(at: now, actor: "aligner", action: "opened", detail: "\(input.rule) (\(input.anomalyClass))"))
                // Signals that only join and fired for this subject shortly before (those firing
                // now join below, as firing): resolved at the time they were last seen.
                for (key, joiner) in (recentJoiners.removeValue(forKey: input.subject) ?? [:]).sorted(by: { $0.value.seenAt < $1.value.seenAt })
                where !firingKeys.contains(key) && joiner.seenAt >= now - EventManager.joinerMemory {
                    let j = joiner.input
                    e.signals.append(Signal(rule: j.rule, anomalyClass: j.anomalyClass, severity: j.severity, labels: j.labels,
                                            value: j.value, since: j.since, state: "resolved", resolvedAt: joiner.seenAt,
                                            annotations: j.annotations, evidence: j.evidence?.ended(at: joiner.seenAt)))
                    e.timeline.append(TimelineEntry(at: now, actor: "aligner", action: "signal_joined",
                                                    detail: "\(j.rule) (\(j.anomalyClass)) joined, seen firing before the event opened"))
                }
                e.refresh()
                stage(e, type: "opened", at: now, into: &batch)
                open += 1
                if input.anomalyClass != "flood" { recentByNamespace?[input.subject.namespaceSubject, default: 0] += 1 }
            }
        }
        // Signals of existing events: each event takes all of its signals at once, so it is
        // refreshed and saved (one committed change) once per evaluation, not once per signal.
        for id in joiningOrder {
            guard var e = events[id], let inputs = joining[id] else { continue }
            var index: [String: Int] = [:]
            for (i, signal) in e.signals.enumerated() { index[SignalInput.key(rule: signal.rule, labels: signal.labels)] = i }
            var changed: String?
            func note(_ kind: String) {
                // The strongest kind of change names the saved change: reopened > signal > evidence.
                let rank = ["evidence": 0, "signal": 1, "reopened": 2]
                if rank[kind, default: 0] >= rank[changed ?? "", default: -1] { changed = kind }
            }
            for input in inputs {
                // A signal firing when a person resolved or closed the event reopens it too: the
                // workload is still not healthy.
                var why = "new signal \(input.rule)"
                if let i = index[input.key] {
                    if e.signals[i].state == "firing" { why = "\(input.rule) still firing" }
                    e.signals[i].value = input.value
                    if let evidence = input.evidence, evidence != e.signals[i].evidence {
                        // New peaks, or a level's start or end, are worth recording; a moving
                        // value alone is not.
                        let old = e.signals[i].evidence
                        if evidence.peaks != old?.peaks || evidence.since != old?.since || evidence.until != old?.until { note("evidence") }
                        e.signals[i].evidence = evidence
                    }
                    if e.signals[i].state != "firing" {
                        e.signals[i].state = "firing"
                        e.signals[i].resolvedAt = nil
                        e.signals[i].annotations = input.annotations
                        note("signal")
                        e.timeline.append(TimelineEntry(at: now, actor: "aligner", action: "signal_firing", detail: "\(input.rule) firing again"))
                    }
                } else {
                    e.signals.append(Signal(rule: input.rule, anomalyClass: input.anomalyClass, severity: input.severity, labels: input.labels,
                                            value: input.value, since: input.since, state: "firing", annotations: input.annotations,
                                            evidence: input.evidence))
                    index[input.key] = e.signals.count - 1
                    e.timeline.append(TimelineEntry(at: now, actor: "aligner", action: "signal_joined",
                                                    detail: "\(input.rule) (\(input.anomalyClass)) joined"))
                    note("signal")
                }
                if e.state == .resolved || e.state == .closed {
                    e.timeline.append(TimelineEntry(at: now, actor: "aligner", action: "reopened", detail: why))
                    let reopenings = e.timeline.filter { $0.action == "reopened" && now - $0.at <= limits.flapWindow }.count
                    if reopenings >= limits.flapReopenings { e.flapping = true }
                    e.state = .open
                    e.resolvedAt = nil
                    e.closedAt = nil
                    note("reopened")
                }
            }
            if let changed {
                e.updatedAt = now
                e.refresh()
                stage(e, type: changed, at: now, into: &batch)
            } else {
                e.refresh()
                put(e)  // live values, not a change worth announcing
            }
        }
        // Signals no longer firing (nothing above suspends, so the events are as staged).
        for id in Array(active) {
            guard var e = events[id], e.state == .open || e.state == .acknowledged else { continue }
            var changed = false
            for i in e.signals.indices where e.signals[i].state == "firing" && !current.contains(SignalInput.key(rule: e.signals[i].rule, labels: e.signals[i].labels)) {
                e.signals[i].state = "resolved"
                e.signals[i].resolvedAt = now
                e.signals[i].evidence = e.signals[i].evidence?.ended(at: now)
                e.timeline.append(TimelineEntry(at: now, actor: "aligner", action: "signal_resolved", detail: "\(e.signals[i].rule) resolved"))
                changed = true
            }
            if changed {
                e.updatedAt = now
                e.refresh()
                stage(e, type: "signal_resolved", at: now, into: &batch)
            }
        }
        waiting = stillWaiting
        await commit(batch, at: now)
        await resolveQuiet(now: now)
    }

    var openCount: Int { active.count }

    /// Drops remembered joiners last seen before `cutoff`.
    func forgetJoiners(before cutoff: Int64) {
        guard !recentJoiners.isEmpty, joinersPrunedAt.map({ cutoff - $0 >= 10_000 }) ?? true else { return }
        joinersPrunedAt = cutoff
        for subject in Array(recentJoiners.keys) {
            recentJoiners[subject] = recentJoiners[subject]!.filter { $0.value.seenAt >= cutoff }
            if recentJoiners[subject]!.isEmpty { recentJoiners[subject] = nil }
        }
    }

    /// Marks signals matched by an active silence; an event whose firing signals are all silenced is silenced.
    func applySilences(_ e: inout Event, now: Int64) {
        let active = silences.values.filter { $0.isActive(at: now) }
        for i in e.signals.indices {
            let hit = active.contains { $0.matches(e.signals[i].labels) }
            e.signals[i].silenced = hit ? true : nil
        }
        let firing = e.signals.filter { $0.state == "firing" }
        e.silenced = !firing.isEmpty && firing.allSatisfy { $0.silenced == true } ? true : nil
    }

    /// Resolves events whose signals have all been resolved for `resolveAfter`.
    public func resolveQuiet(now: Int64) async {
        for id in Array(active) {
            guard var e = events[id], e.state == .open || e.state == .acknowledged else { continue }
            // A flapping event waits four times longer before resolving.
            let quiet = e.flapping == true ? resolveAfter * 4 : resolveAfter
            guard !e.signals.isEmpty, e.signals.allSatisfy({ $0.state == "resolved" }),
                  let last = e.signals.compactMap(\.resolvedAt).max(), now - last >= quiet else { continue }
            e.state = .resolved
            e.resolvedAt = now
            e.updatedAt = now
            e.timeline.append(TimelineEntry(at: now, actor: "aligner", action: "resolved",
                                            detail: "every signal quiet for \(resolveAfter / 1000)s"))
            await save(e, type: "resolved", at: now)
        }
    }

    /// Records a change. The in-memory event is updated before the first suspension, so concurrent
    /// changes (the actor is re-entrant) never overwrite each other; the store's serial queue
    /// commits them in that same order.
    func save(_ e: Event, type: String, at: Int64) async {
        var batch: [(event: Event, type: String)] = []
        stage(e, type: type, at: at, into: &batch)
        await commit(batch, at: at)
    }

    /// Applies silences and puts the event in memory; `commit` writes what was staged. Nothing
    /// staged is shown by the API or announced before it is committed.
    func stage(_ e: Event, type: String, at: Int64, into batch: inout [(event: Event, type: String)]) {
        var e = e
        applySilences(&e, now: at)
        if events[e.id] == nil { bySubject[e.subject, default: []].append(e.id) }
        put(e)
        batch.append((e, type))
    }

    /// Commits staged changes in one transaction, then announces them.
    func commit(_ batch: [(event: Event, type: String)], at: Int64) async {
        guard !batch.isEmpty else { return }
        do {
            for change in try await store.recordAll(batch, at: at) { announce(change) }
        } catch {
            logger.error("cannot record event changes; the next change of each event records it",
                         metadata: ["events": "\(batch.map(\.event.id))", "error": "\(error)"])
        }
    }

    /// Announces committed changes in sequence order, whatever order their tasks resume in.
    func announce(_ change: EventChange) {
        lastSequence = max(lastSequence, change.sequence)
        unannounced[change.sequence] = change
        while let next = unannounced.removeValue(forKey: announced + 1) {
            announced = next.sequence
            committed[next.eventID] = next.event  // sequence order is commit order
            if next.type == "closed" { EventManager.journal(next.event, into: &closings) }
            for (_, s) in subscribers {
                if s.catchingUp { s.buffer.append(next) } else { s.send(next) }
            }
        }
    }

    // MARK: API

    /// Events, newest first; a nil filter takes all, a set any of its values.
    public func list(states: Set<String>?, classes: Set<String>?, namespace: String?, subject: String?, since: Int64?, cluster: String? = nil) -> [Event] {
        committed.values.filter { e in
            (states == nil || states!.contains(e.state.rawValue)) && (classes == nil || classes!.contains(e.anomalyClass))
                && (namespace == nil || e.subject.namespace == namespace) && (subject == nil || e.subject.isNamed(subject!))
                && e.subject.isIn(cluster: cluster)
                && (since == nil || e.updatedAt >= since!)
        }.sorted { $0.openedAt > $1.openedAt }
    }

    public func get(_ id: String) -> Event? { committed[id] }

    /// `ack`, `resolve`, `close` (with a summary for the journal) and `notes`, by the Brain or a person.
    public func act(_ id: String, action: String, actor: String, text: String, now: Int64) async throws -> Event {
        guard var e = events[id] else { throw EventError(kind: .notFound, description: "no event \(id)") }
        switch action {
        case "ack":
            guard e.state == .open else { throw EventError(kind: .conflict, description: "event \(id) is \(e.state.rawValue); only an open event can be acknowledged") }
            e.state = .acknowledged
        case "resolve":
            guard e.state == .open || e.state == .acknowledged else {
                throw EventError(kind: .conflict, description: "event \(id) is \(e.state.rawValue); only an open or acknowledged event can be resolved")
            }
            e.state = .resolved
            e.resolvedAt = now
        case "close":
            guard e.state != .closed else { throw EventError(kind: .conflict, description: "event \(id) is already closed") }
            e.state = .closed
            e.closedAt = now
            e.outcome = text.isEmpty ? nil : text
        case "notes":
            guard !text.isEmpty else { throw EventError(kind: .invalid, description: "a note needs a non-empty \"text\"") }
        default:
            throw EventError(kind: .notFound, description: "unknown action \(action)")
        }
        let type = ["ack": "acknowledged", "resolve": "resolved", "close": "closed", "notes": "note"][action]!
        e.timeline.append(TimelineEntry(at: now, actor: actor, action: type, detail: text))
        e.updatedAt = now
        put(e)  // before suspending: see save(_:type:at:)
        announce(try await store.record(e, type: type, at: now))
        return e
    }

    /// A workload's journal (in one cluster, or in any when nil): each closing of its events, the
    /// event as it was closed with its outcome, newest first. An event closed, reopened and closed
    /// again is there twice, each time with what was said then.
    public func journal(namespace: String, name: String, cluster: String? = nil, limit: Int) -> [Event] {
        Array(closings.filter { $0.key.namespace == namespace && $0.key.name == name && $0.key.isIn(cluster: cluster) }
            .flatMap(\.value).sorted { ($0.closedAt ?? 0) > ($1.closedAt ?? 0) }.prefix(limit))
    }

    /// The open event of a workload (in one cluster, or in any when nil), if any.
    public func openEvent(namespace: String, name: String, cluster: String? = nil) -> Event? {
        committed.values.first {
            ($0.state == .open || $0.state == .acknowledged) && $0.subject.namespace == namespace && $0.subject.name == name && $0.subject.isIn(cluster: cluster)
        }
    }

    /// Every change after `sequence` (from the store), then live changes as they happen: each once,
    /// in order, with nothing missed between the two.
    public func subscribe(after sequence: Int64) async throws -> AsyncStream<EventChange> {
        // Oldest: when full, the new change is the one refused, so what was queued stays in order.
        let (stream, continuation) = AsyncStream.makeStream(of: EventChange.self, bufferingPolicy: .bufferingOldest(subscriberBuffer))
        let subscriber = Subscriber(continuation: continuation, after: sequence)
        let id = UUID()
        subscribers[id] = subscriber  // live changes are buffered while the backlog is read
        continuation.onTermination = { [weak self] _ in Task { await self?.unsubscribe(id) } }
        do {
            var cursor = sequence
            while !subscriber.finished {
                let page = try await store.changes(after: cursor, limit: 10_000)
                for c in page { subscriber.send(c) }
                guard let last = page.last, page.count == 10_000 else { break }
                cursor = last.sequence
            }
        } catch {
            subscribers[id] = nil
            throw error
        }
        for c in subscriber.buffer { subscriber.send(c) }
        subscriber.buffer.removeAll()
        subscriber.catchingUp = false
        return stream
    }

    func unsubscribe(_ id: UUID) { subscribers[id] = nil }

    // MARK: Silences

    /// Creates a silence; returns it with its id.
    public func createSilence(_ silence: Silence) async throws -> Silence {
        var s = silence
        s.id = "sil-" + String(format: "%08x", UInt32.random(in: .min ... .max))
        try await store.save(s)
        silences[s.id] = s
        return s
    }

    /// Expires a silence now.
    public func expireSilence(_ id: String, now: Int64) async throws -> Silence {
        guard var s = silences[id] else { throw EventError(kind: .notFound, description: "no silence \(id)") }
        s.endsAt = min(s.endsAt, now)
        try await store.save(s)
        silences[id] = s
        return s
    }
}

extension SignalInput {
    /// One alert instance: its rule and labels (`rule`, NUL, `name=value` sorted by name, joined by commas).
    public static func key(rule: String, labels: [String: String]) -> String {
        rule + "\u{0}" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}
