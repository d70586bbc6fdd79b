import AlignerTesting
@testable import AlignerEvents
import Foundation
import Testing

/// What `EventManager` relies on from any `EventStore` (its documented contract), checked on each
/// store through a real file: reopening it stands for a restart.
@Suite struct EventStoreContractTests {
    /// A store over `directory`, opened anew on each call.
    typealias Opener = @Sendable (String) throws -> any EventStore

    static let stores: [(String, Opener)] = [("sqlite", { try SQLiteEventStore(directory: $0) })]

    static func opener(_ name: String) -> Opener { stores.first { $0.0 == name }!.1 }

    static func event(_ id: String, _ name: String, state: EventState = .open, at: Int64) -> Event {
        Event(id: id, anomalyClass: "crash_loop", severity: "warning",
              subject: Subject(namespace: "shop", kind: "Deployment", name: name), state: state,
              openedAt: at, updatedAt: at, resolvedAt: nil, closedAt: nil, signals: [], timeline: [],
              summary: "\(name): \(state.rawValue)", outcome: nil, flapping: nil, silenced: nil)
    }

    @Test(arguments: stores.map(\.0))
    func sequencesGrowInSaveOrderAcrossRestarts(_ name: String) async throws {
        let open = Self.opener(name)
        let dir = ScratchDirectory.path("aligner-store")
        var store = try open(dir)
        #expect(try store.loadSync().lastSequence == 0)
        let first = try await store.recordAll(
            [(Self.event("evt-00000001", "a", at: 1000), "opened"), (Self.event("evt-00000002", "b", at: 1001), "opened")], at: 1001)
        #expect(first.map(\.type) == ["opened", "opened"])
        #expect(first[1].sequence > first[0].sequence && first[0].sequence > 0)
        let acked = try await store.record(Self.event("evt-00000001", "a", state: .acknowledged, at: 1000), type: "acknowledged", at: 1500)
        #expect(acked.sequence > first[1].sequence)

        store = try open(dir)
        let loaded = try store.loadSync()
        #expect(loaded.lastSequence == acked.sequence)
        // One row per event, its latest form, newest opened first.
        #expect(loaded.events.map(\.id) == ["evt-00000002", "evt-00000001"])
        #expect(loaded.events[1].state == .acknowledged)
        let after = try await store.record(Self.event("evt-00000003", "c", at: 2000), type: "opened", at: 2000)
        #expect(after.sequence > acked.sequence)
    }

    /// Pruning deletes the events named that were not changed since the cutoff (one changed
    /// meanwhile stays), every change before it, and the silences named; sequences keep growing.
    @Test(arguments: stores.map(\.0))
    func pruningDeletesWhatIsOlderThanTheCutoff(_ name: String) async throws {
        let open = Self.opener(name)
        let dir = ScratchDirectory.path("aligner-store")
        var store = try open(dir)
        _ = try await store.recordAll([(Self.event("evt-00000001", "a", state: .closed, at: 1000), "closed"),
                                       (Self.event("evt-00000002", "b", state: .resolved, at: 1000), "resolved")], at: 1000)
        let reopened = try await store.record(Self.event("evt-00000002", "b", at: 5000), type: "reopened", at: 5000)
        try await store.save(Silence(id: "sil-1", matchers: [], startsAt: 0, endsAt: 1000, createdBy: "", comment: ""))
        try await store.save(Silence(id: "sil-2", matchers: [], startsAt: 0, endsAt: 9000, createdBy: "", comment: ""))
        try await store.prune(events: ["evt-00000001", "evt-00000002"], changesBefore: 3000, silences: ["sil-1"])
        store = try open(dir)
        #expect(try store.loadSync().events.map(\.id) == ["evt-00000002"])
        #expect(try await store.changes(after: 0, limit: 10).map(\.sequence) == [reopened.sequence])
        #expect(try store.closingsSync().isEmpty)
        #expect(try store.silencesSync().map(\.id) == ["sil-2"])
        #expect(try await store.record(Self.event("evt-00000003", "c", at: 6000), type: "opened", at: 6000).sequence > reopened.sequence)
        // Every change deleted: the sequence still goes on from the last number given (the
        // manager announces changes in order from the loaded one).
        try await store.prune(events: [], changesBefore: 10_000, silences: [])
        store = try open(dir)
        let last = try store.loadSync().lastSequence
        #expect(last == reopened.sequence + 1)
        #expect(try await store.record(Self.event("evt-00000004", "d", at: 11_000), type: "opened", at: 11_000).sequence == last + 1)
    }

    /// Each closing is kept as the event was then (the journals), oldest first, across a reopen
    /// of the event and a restart of the store.
    @Test(arguments: stores.map(\.0))
    func closingsAreKeptAsTheyWere(_ name: String) async throws {
        let open = Self.opener(name)
        let dir = ScratchDirectory.path("aligner-store")
        var store = try open(dir)
        #expect(try store.closingsSync().isEmpty)
        var e = Self.event("evt-00000001", "a", state: .closed, at: 1000)
        e.outcome = "restarted"
        _ = try await store.record(e, type: "closed", at: 1000)
        e.state = .open
        _ = try await store.record(e, type: "reopened", at: 2000)
        e.state = .closed
        e.outcome = "rolled back"
        _ = try await store.record(e, type: "closed", at: 3000)
        store = try open(dir)
        let closings = try store.closingsSync()
        #expect(closings.map(\.outcome) == ["restarted", "rolled back"] && closings.allSatisfy { $0.state == .closed })
    }

    @Test(arguments: stores.map(\.0))
    func changesResumeAfterASequenceInPages(_ name: String) async throws {
        let open = Self.opener(name)
        let dir = ScratchDirectory.path("aligner-store")
        let store = try open(dir)
        var saved: [EventChange] = []
        for i in 0..<25 {
            saved += try await store.recordAll([(Self.event("evt-000000\(10 + i)", "w\(i)", at: Int64(i)), "opened")], at: Int64(i))
        }
        var seen: [EventChange] = []
        var cursor = saved[4].sequence
        while true {
            let page = try await open(dir).changes(after: cursor, limit: 7)
            #expect(page.count <= 7)
            guard let last = page.last else { break }
            seen += page
            cursor = last.sequence
        }
        #expect(seen.map(\.sequence) == saved.dropFirst(5).map(\.sequence))
        #expect(seen.map(\.event) == saved.dropFirst(5).map(\.event))
        #expect(seen.map(\.eventID) == saved.dropFirst(5).map(\.event.id))
    }

    @Test(arguments: stores.map(\.0))
    func silencesAndStateAreReplacedInPlace(_ name: String) async throws {
        let open = Self.opener(name)
        let dir = ScratchDirectory.path("aligner-store")
        let store = try open(dir)
        #expect(try store.stateSync("alerts") == nil)
        try await store.saveState("alerts", "[1]")
        try await store.saveState("alerts", "[1,2]")
        var silence = Silence(id: "sil-1", matchers: [.init(name: "namespace", value: "shop", isRegex: false, isEqual: true)],
                              startsAt: 0, endsAt: 10_000, createdBy: "test", comment: "maintenance")
        try await store.save(silence)
        silence.endsAt = 5_000  // expired early
        try await store.save(silence)

        let reopened = try open(dir)
        #expect(try reopened.stateSync("alerts") == "[1,2]")
        #expect(try reopened.silencesSync() == [silence])
    }
}

/// How an event reads as JSON: what the store keeps, and what the API shows.
@Suite struct EventJSONTests {
    static let signal = Signal(rule: "PodCrashLooping", anomalyClass: "crash_loop", severity: "critical", labels: ["pod": "p-1"],
                               value: 1, since: 1000, state: "firing", resolvedAt: nil, annotations: [:],
                               evidence: Evidence(points: [.init(t: 1000, v: 1)], peaks: [.init(t: 1000, v: 1)], text: "p-1 crash looping since 00:00:01", since: 1000),
                               silenced: nil)

    static func object(_ event: Event, view: Bool) throws -> [String: Any] {
        let encoder = JSONEncoder()
        if view { encoder.userInfo[Event.evidenceView] = true }
        return try #require(try JSONSerialization.jsonObject(with: encoder.encode(event)) as? [String: Any])
    }

    @Test func aSignalsClassIsNamedClassAsTheEventsIs() throws {
        var event = EventStoreContractTests.event("evt-00000001", "a", at: 1000)
        event.signals = [Self.signal]
        let signal = try #require((try Self.object(event, view: false)["signals"] as? [[String: Any]])?.first)
        #expect(signal["class"] as? String == "crash_loop" && signal["anomalyClass"] == nil)
        #expect(try JSONDecoder().decode(Event.self, from: JSONEncoder().encode(event)) == event)
    }

    @Test func aSignalStoredWithItsClassUnderTheEarlierKeyStillReads() throws {
        let stored = #"{"rule":"R","anomalyClass":"oom_killed","severity":"warning","labels":{},"value":1,"since":5,"state":"firing","annotations":{}}"#
        #expect(try JSONDecoder().decode(Signal.self, from: Data(stored.utf8)).anomalyClass == "oom_killed")
    }

    @Test func theAPIsViewListsEverySignalsEvidenceOnTheEventTheStoreKeepsItOnce() throws {
        var event = EventStoreContractTests.event("evt-00000001", "a", at: 1000)
        event.signals = [Self.signal, { var s = Self.signal; s.rule = "Other"; s.evidence = nil; return s }()]
        #expect(try Self.object(event, view: false)["evidence"] == nil)
        let evidence = try #require(try Self.object(event, view: true)["evidence"] as? [[String: Any]])
        #expect(evidence.count == 1)
        #expect(evidence[0]["rule"] as? String == "PodCrashLooping" && evidence[0]["class"] as? String == "crash_loop")
        #expect(evidence[0]["labels"] as? [String: String] == ["pod": "p-1"] && evidence[0]["state"] as? String == "firing")
        #expect((evidence[0]["peaks"] as? [Any])?.count == 1 && evidence[0]["text"] as? String == "p-1 crash looping since 00:00:01")
        #expect(evidence[0]["since"] as? Int == 1000)
    }
}
