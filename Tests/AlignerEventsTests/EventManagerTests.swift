import AlignerTesting
@testable import AlignerEvents
import Foundation
import Logging
import Testing

/// The event lifecycle and noise control over a real SQLite file.
@Suite struct EventManagerTests {
    static func manager(directory: String? = nil, resolveAfter: Int64 = 1000, cooldown: Int64 = 60_000,
                        limits: EventLimits = EventLimits()) throws -> (EventManager, String) {
        let dir = directory ?? ScratchDirectory.path("aligner-events")
        let store = try SQLiteEventStore(directory: dir)
        return (try EventManager(store: store, resolveAfter: resolveAfter, cooldown: cooldown, limits: limits, logger: Logger(label: "t")), dir)
    }

    static func signal(_ rule: String, _ name: String, namespace: String = "shop", cls: String = "crash_loop", severity: String = "warning") -> SignalInput {
        SignalInput(rule: rule, anomalyClass: cls, severity: severity, subject: Subject(namespace: namespace, kind: "Deployment", name: name),
                    labels: ["deployment": name, "namespace": namespace, "alertname": rule], annotations: [:], value: 1, since: 0)
    }

    @Test func oneEventPerSubjectSignalsJoinThenQuietResolves() async throws {
        let (m, _) = try Self.manager()
        await m.sync(firing: [Self.signal("A", "web")], at: 1000)
        await m.sync(firing: [Self.signal("A", "web"), Self.signal("B", "web", cls: "replica_mismatch", severity: "critical")], at: 2000)
        var list = await m.list(states: nil, classes: nil, namespace: nil, subject: nil, since: nil)
        #expect(list.count == 1)
        #expect(list[0].signals.count == 2 && list[0].severity == "critical")
        // The more severe signal gives the event its class and leads the summary.
        #expect(list[0].anomalyClass == "replica_mismatch")
        #expect(list[0].summary.hasPrefix("web: B (replica_mismatch)"), "\(list[0].summary)")
        await m.sync(firing: [], at: 3000)
        #expect(await m.get(list[0].id)?.state == .open)  // signals resolved, quiet period not over
        await m.resolveQuiet(now: 4000)
        #expect(await m.get(list[0].id)?.state == .resolved)
        // Closed, then a new signal within the cooldown reopens the same event.
        _ = try await m.act(list[0].id, action: "close", actor: "brain", text: "fixed", now: 5000)
        await m.sync(firing: [Self.signal("A", "web")], at: 6000)
        list = await m.list(states: nil, classes: nil, namespace: nil, subject: nil, since: nil)
        #expect(list.count == 1 && list[0].state == .open)
        #expect(list[0].timeline.map(\.action).contains("reopened"))
    }

    /// A value held "since 22:10:05" that stops firing was held "from 22:10:05 to" the time it
    /// resolved: the summary no longer says it lasts. Bursts keep their times.
    @Test func aResolvedLevelSaysWhenItEnded() async throws {
        let (m, _) = try Self.manager()
        let start: Int64 = 22 * 3_600_000 + 10 * 60_000 + 5_000
        var level = Self.signal("A", "web")
        level.evidence = Evidence(points: [], peaks: [Evidence.Point(t: start, v: 1)], text: "web: crash looping since 22:10:05", since: start)
        var bursts = Self.signal("B", "web", cls: "error_rate_spike")
        bursts.evidence = Evidence(points: [], peaks: [Evidence.Point(t: start, v: 1)], text: "web: 5xx ratio 100% at 22:10:05")
        await m.sync(firing: [level, bursts], at: start + 60_000)
        let id = try #require(await m.list(states: nil, classes: nil, namespace: nil, subject: nil, since: nil).first?.id)
        #expect(await m.get(id)?.summary == "web: 5xx ratio 100% at 22:10:05; crash looping since 22:10:05")
        await m.sync(firing: [], at: start + 265_000)
        let e = try #require(await m.get(id))
        #expect(e.summary == "web: 5xx ratio 100% at 22:10:05 (resolved); crash looping from 22:10:05 to 22:14:30 (resolved)", "\(e.summary)")
        #expect(e.signals.first { $0.rule == "A" }?.evidence?.until == start + 265_000)
    }

    /// `events.retention`: events resolved or closed and unchanged for longer, their changes, the
    /// journal entries and ended silences are deleted, from memory and from the store (a restart
    /// does not bring them back); an open event stays, however old, and so do recent ones.
    @Test func retentionDeletesWhatEndedLongAgo() async throws {
        var limits = EventLimits()
        limits.retention = 100_000
        let (m, dir) = try Self.manager(cooldown: 1000, limits: limits)
        await m.sync(firing: [Self.signal("A", "old"), Self.signal("A", "open")], at: 1000)
        let old = try #require(await m.list(states: nil, classes: nil, namespace: nil, subject: "old", since: nil).first?.id)
        _ = try await m.act(old, action: "close", actor: "brain", text: "fixed long ago", now: 2000)
        _ = try await m.createSilence(Silence(id: "", matchers: [], startsAt: 0, endsAt: 3000, createdBy: "me", comment: "over"))
        let kept = try await m.createSilence(Silence(id: "", matchers: [], startsAt: 0, endsAt: 500_000, createdBy: "me", comment: "on"))
        await m.sync(firing: [Self.signal("A", "open"), Self.signal("A", "recent")], at: 150_000)
        let recent = try #require(await m.list(states: nil, classes: nil, namespace: nil, subject: "recent", since: nil).first?.id)
        _ = try await m.act(recent, action: "close", actor: "brain", text: "fixed", now: 160_000)
        await m.pruneIfDue(now: 170_000)
        func check(_ m: EventManager) async {
            let subjects = await m.list(states: nil, classes: nil, namespace: nil, subject: nil, since: nil).map(\.subject.name)
            #expect(Set(subjects) == ["open", "recent"], "\(subjects)")
            #expect(await m.get(old) == nil)
            #expect(await m.journal(namespace: "shop", name: "old", limit: 10).isEmpty)
            #expect(await m.journal(namespace: "shop", name: "recent", limit: 10).map(\.outcome) == ["fixed"])
            #expect(await m.silences.keys.sorted() == [kept.id])
        }
        await check(m)
        // The stream begins after what was deleted.
        let changes = try await m.store.changes(after: 0, limit: 100)
        #expect(!changes.isEmpty && changes.allSatisfy { $0.at >= 70_000 })
        let (restarted, _) = try Self.manager(directory: dir, cooldown: 1000, limits: limits)
        await check(restarted)
    }

    /// However long an event lasts, its timeline and its resolved signals stay within their caps:
    /// the opening, the Brain's note and Aligner's newest entries, one `omitted` where the first
    /// left out was; the last resolved signals, and every firing one.
    @Test func aLongEventStaysBounded() async throws {
        let (m, _) = try Self.manager()
        let steady = Self.signal("Steady", "web", cls: "replica_mismatch")
        var t: Int64 = 1000
        for k in 0..<150 {  // a signal of bursts: firing, resolved, firing again
            t += 1000
            await m.sync(firing: [steady, Self.signal("Bursts", "web", cls: "error_rate_spike")], at: t)
            if k == 5, let id = await m.list(states: nil, classes: nil, namespace: nil, subject: "web", since: nil).first?.id {
                _ = try await m.act(id, action: "notes", actor: "brain", text: "looking at the rollout", now: t)
            }
            t += 1000
            await m.sync(firing: [steady] + (k < 70 ? [Self.signal("Pod\(k)", "web")] : []), at: t)
        }
        let e = try #require(await m.list(states: nil, classes: nil, namespace: nil, subject: "web", since: nil).first)
        #expect(e.timeline.count == Event.timelineCap)
        // The opening, the marker where the first left out was, the Brain's note (kept though
        // older than the entries after it), the newest.
        #expect(e.timeline.prefix(3).map(\.action) == ["opened", "omitted", "note"], "\(e.timeline.prefix(4))")
        #expect(e.timeline.last?.at == t && e.timeline.map(\.at) == e.timeline.map(\.at).sorted())
        #expect(e.timeline.filter { $0.action == "omitted" }.count == 1)
        let firing = e.signals.filter { $0.state == "firing" }.map(\.rule)
        #expect(firing == ["Steady"])
        #expect(e.signals.count - firing.count == Event.resolvedSignalCap)
        #expect(e.signals.contains { $0.rule == "Bursts" } && e.signals.contains { $0.rule == "Pod69" } && !e.signals.contains { $0.rule == "Pod0" })
    }

    /// An event open when the process stopped is still worked on after a restart: its signal
    /// resolves, and then the event; one reopened counts as open again.
    @Test func anOpenEventGoesOnAfterARestart() async throws {
        let (m, dir) = try Self.manager()
        await m.sync(firing: [Self.signal("A", "web")], at: 1000)
        let (restarted, _) = try Self.manager(directory: dir)
        #expect(await restarted.openCount == 1)
        await restarted.sync(firing: [], at: 2000)
        await restarted.resolveQuiet(now: 3000)
        let id = try #require(await restarted.list(states: nil, classes: nil, namespace: nil, subject: "web", since: nil).first?.id)
        #expect(await restarted.get(id)?.state == .resolved)
        #expect(await restarted.openCount == 0)
        await restarted.sync(firing: [Self.signal("A", "web")], at: 4000)
        #expect(await restarted.get(id)?.state == .open)
        #expect(await restarted.openCount == 1)
    }

    /// Closed by hand while a signal still fires: the next evaluation reopens it, saying so (the
    /// workload is still broken). The journal keeps what was done: each closing, with its outcome,
    /// also after the event reopened and closed again, and after a restart.
    @Test func closedWhileStillFiringReopens() async throws {
        let (m, dir) = try Self.manager()
        await m.sync(firing: [Self.signal("A", "web")], at: 1000)
        let id = try #require(await m.list(states: nil, classes: nil, namespace: nil, subject: nil, since: nil).first?.id)
        _ = try await m.act(id, action: "close", actor: "brain", text: "restarted it", now: 2000)
        #expect(await m.journal(namespace: "shop", name: "web", limit: 10).map(\.outcome) == ["restarted it"])
        await m.sync(firing: [Self.signal("A", "web")], at: 3000)
        let e = try #require(await m.get(id))
        #expect(e.state == .open)
        #expect(e.timeline.last?.action == "reopened" && e.timeline.last?.detail == "A still firing", "\(e.timeline)")
        #expect(await m.journal(namespace: "shop", name: "web", limit: 10).map(\.outcome) == ["restarted it"])
        _ = try await m.act(id, action: "close", actor: "brain", text: "rolled back", now: 4000)
        let journal = await m.journal(namespace: "shop", name: "web", limit: 10)
        #expect(journal.map(\.outcome) == ["rolled back", "restarted it"] && journal.allSatisfy { $0.id == id && $0.state == .closed })
        #expect(await m.journal(namespace: "shop", name: "web", limit: 1).map(\.outcome) == ["rolled back"])
        #expect(await m.journal(namespace: "shop", name: "api", limit: 10).isEmpty)
        let (restarted, _) = try Self.manager(directory: dir)
        #expect(await restarted.journal(namespace: "shop", name: "web", limit: 10).map(\.outcome) == ["rolled back", "restarted it"])
    }

    /// A signal that only joins, seen firing shortly before its subject's event opened (a CPU
    /// burst a scrape before the errors of the same burst), is in that event, resolved when it was
    /// last seen; one seen longer ago than the memory (2 minutes) is not, nor is one of another subject.
    @Test func aJoinerSeenJustBeforeTheEventOpensIsInIt() async throws {
        let (m, _) = try Self.manager()
        var burst = Self.signal("CPU", "web", cls: "cpu_burst")
        burst.opens = false
        burst.since = 1000
        burst.evidence = Evidence(points: [], peaks: [Evidence.Point(t: 1000, v: 0.7)], text: "web: CPU 70% of limit since 00:00:01", since: 1000)
        var old = Self.signal("CPUOld", "web", cls: "cpu_burst")
        old.opens = false
        var other = Self.signal("CPU", "cart", cls: "cpu_burst")
        other.opens = false
        await m.sync(firing: [old], at: 1000)
        await m.sync(firing: [burst, other], at: 130_000)
        await m.sync(firing: [burst], at: 131_000)
        await m.sync(firing: [Self.signal("Errors", "web", cls: "error_rate_spike")], at: 140_000)
        let list = await m.list(states: nil, classes: nil, namespace: nil, subject: nil, since: nil)
        #expect(list.count == 1)
        let signals = Dictionary(uniqueKeysWithValues: (list.first?.signals ?? []).map { ($0.rule, $0) })
        #expect(Set(signals.keys) == ["Errors", "CPU"])
        #expect(signals["CPU"]?.state == "resolved" && signals["CPU"]?.resolvedAt == 131_000 && signals["CPU"]?.since == 1000)
        #expect(signals["CPU"]?.evidence?.text == "web: CPU 70% of limit from 00:00:01 to 00:02:11")
        #expect(list.first?.timeline.contains { $0.action == "signal_joined" && $0.detail.contains("before the event opened") } == true)
        // Taken once: the same subject's next event does not take it again.
        #expect(await m.recentJoiners[Self.signal("CPU", "web").subject] == nil)
    }

    /// `event.opens: false`: the signal joins its subject's open event (also one opened in the same
    /// evaluation, whatever the order), and never opens or reopens one.
    @Test func signalsThatOnlyJoin() async throws {
        let (m, _) = try Self.manager()
        var burst = Self.signal("CPU", "web", cls: "cpu_burst")
        burst.opens = false
        await m.sync(firing: [burst], at: 1000)
        #expect(await m.list(states: nil, classes: nil, namespace: nil, subject: nil, since: nil).isEmpty)
        await m.sync(firing: [burst, Self.signal("A", "web")], at: 2000)
        let list = await m.list(states: nil, classes: nil, namespace: nil, subject: nil, since: nil)
        #expect(list.count == 1 && list[0].anomalyClass == "crash_loop")
        #expect(Set(list[0].signals.map(\.rule)) == ["A", "CPU"])
        await m.sync(firing: [], at: 3000)
        await m.resolveQuiet(now: 5000)
        #expect(await m.get(list[0].id)?.state == .resolved)
        await m.sync(firing: [burst], at: 6000)
        #expect(await m.get(list[0].id)?.state == .resolved)
        #expect(await m.list(states: nil, classes: nil, namespace: nil, subject: nil, since: nil).count == 1)
    }

    @Test func floodBecomesOneEvent() async throws {
        var limits = EventLimits()
        limits.floodThreshold = 2
        let (m, _) = try Self.manager(limits: limits)
        await m.sync(firing: (1...5).map { Self.signal("A", "svc\($0)") }, at: 1000)
        let list = await m.list(states: ["open"], classes: nil, namespace: "shop", subject: nil, since: nil)
        #expect(list.count == 3)
        let flood = try #require(list.first { $0.anomalyClass == "flood" })
        #expect(flood.subject == Subject(namespace: "shop", kind: "Namespace", name: "shop"))
        #expect(Set(flood.signals.compactMap { $0.labels["subject"] }) == ["shop/Deployment/svc3", "shop/Deployment/svc4", "shop/Deployment/svc5"])
        // Still firing at the next evaluation: nothing resolves, nothing new opens.
        await m.sync(firing: (1...5).map { Self.signal("A", "svc\($0)") }, at: 2000)
        #expect(await m.list(states: ["open"], classes: nil, namespace: "shop", subject: nil, since: nil).count == 3)
        #expect(await m.get(flood.id)?.signals.allSatisfy { $0.state == "firing" } == true)
    }

    @Test func capMakesSignalsWaitNotDrop() async throws {
        var limits = EventLimits()
        limits.maxOpen = 1
        let (m, _) = try Self.manager(limits: limits)
        await m.sync(firing: [Self.signal("A", "a"), Self.signal("A", "b")], at: 1000)
        #expect(await m.list(states: ["open"], classes: nil, namespace: nil, subject: nil, since: nil).count == 1)
        #expect(await m.waiting.map(\.subject.name) == ["b"])
        let first = await m.list(states: ["open"], classes: nil, namespace: nil, subject: nil, since: nil)[0]
        _ = try await m.act(first.id, action: "close", actor: "brain", text: "", now: 1500)
        await m.sync(firing: [Self.signal("A", "b")], at: 2000)
        #expect(await m.list(states: ["open"], classes: nil, namespace: nil, subject: nil, since: nil).map(\.subject.name) == ["b"])
        #expect(await m.waiting.isEmpty)
    }

    @Test func flappingEventsResolveSlower() async throws {
        let (m, _) = try Self.manager(resolveAfter: 1000)
        var t: Int64 = 0
        for _ in 0..<4 {
            t += 10_000
            await m.sync(firing: [Self.signal("A", "web")], at: t)
            await m.sync(firing: [], at: t + 100)
            await m.resolveQuiet(now: t + 5000)
        }
        let e = await m.list(states: nil, classes: nil, namespace: nil, subject: nil, since: nil)[0]
        #expect(e.flapping == true)
        await m.sync(firing: [Self.signal("A", "web")], at: t + 10_000)
        await m.sync(firing: [], at: t + 10_100)
        await m.resolveQuiet(now: t + 11_500)
        #expect(await m.get(e.id)?.state == .open)  // 1.4 s quiet: not enough when flapping (4 s)
        await m.resolveQuiet(now: t + 14_200)
        #expect(await m.get(e.id)?.state == .resolved)
    }

    @Test func silencesMarkSignalsAndSurviveRestart() async throws {
        let (m, dir) = try Self.manager()
        let silence = try await m.createSilence(Silence(
            id: "", matchers: [Silence.Matcher(name: "deployment", value: "we.*", isRegex: true, isEqual: nil)],
            startsAt: 0, endsAt: 100_000, createdBy: "t", comment: "maintenance"))
        await m.sync(firing: [Self.signal("A", "web"), Self.signal("A", "api")], at: 1000)
        let list = await m.list(states: ["open"], classes: nil, namespace: nil, subject: nil, since: nil)
        #expect(list.first { $0.subject.name == "web" }?.silenced == true)
        #expect(list.first { $0.subject.name == "api" }?.silenced == nil)
        let last = await m.lastSequence
        // A new manager over the same store: events, silences and the stream's sequence come back.
        let (again, _) = try Self.manager(directory: dir)
        #expect(await again.list(states: nil, classes: nil, namespace: nil, subject: nil, since: nil).count == 2)
        #expect(await again.silences[silence.id]?.comment == "maintenance")
        #expect(await again.lastSequence == last)
        _ = try await again.expireSilence(silence.id, now: 2000)
        #expect(await again.silences[silence.id]?.isActive(at: 2001) == false)
    }

    /// A consumer more than the buffer behind is cut off after the last change it holds, never
    /// skipped over: resuming from the last one it got (`Last-Event-ID`) it gets every change once.
    @Test func aConsumerTooFarBehindIsCutOffAndResumesWithoutGaps() async throws {
        let (m, _) = try Self.manager()
        await m.setSubscriberBuffer(3)
        for i in 0..<8 { await m.sync(firing: (0...i).map { Self.signal("A", "web-\($0)") }, at: 1000 + Int64(i)) }
        let last = await m.lastSequence
        #expect(last >= 8)
        var received: [Int64] = []
        var rounds = 0
        while received.last ?? 0 < last && rounds < 20 {
            rounds += 1
            let stream = try await m.subscribe(after: received.last ?? 0)
            var got: [Int64] = []
            for await change in stream {
                got.append(change.sequence)
                if change.sequence == last { break }
            }
            #expect(got.count <= 3)
            received += got
        }
        #expect(received == Array(1...last), "\(received)")
        #expect(rounds > 1)
    }
}
