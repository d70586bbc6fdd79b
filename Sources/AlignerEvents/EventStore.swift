/// A change to an event, as the stream announces it (and as `Last-Event-ID` resumes it).
public struct EventChange: Sendable, Codable {
    /// The stream's sequence number (monotonic across restarts).
    public var sequence: Int64
    public var eventID: String
    /// `opened`, `signal`, `acknowledged`, `resolved`, `reopened`, `closed`, `note`, ...
    public var type: String
    public var at: Int64
    /// The event after the change.
    public var event: Event
}

public struct EventStoreError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Where events, the stream of their changes, silences and the rule engine's saved state live.
/// `SQLiteEventStore` is the default; a store shared by several Aligner replicas (PostgreSQL,
/// DESIGN.md) implements the same calls. The contract `EventManager` relies on:
/// - a call that saves returns only once what it saved is durable (a crash right after loses
///   none of it), and a failed call saves nothing of its batch;
/// - sequence numbers are assigned by the store, grow strictly in the order changes were saved,
///   and keep growing across restarts, so that `Last-Event-ID` resumes in the right place;
/// - the synchronous reads are called only at start-up, before anything is saved.
public protocol EventStore: Sendable {
    /// Saves each event (its latest form replaces the one stored under its id) and appends one
    /// change for each, all in one transaction; the changes with their sequence numbers, in order.
    func recordAll(_ items: [(event: Event, type: String)], at: Int64) async throws -> [EventChange]
    /// Up to `limit` changes with a sequence number above `sequence`, in order.
    func changes(after sequence: Int64, limit: Int) async throws -> [EventChange]
    /// Saves a silence (created or expired) under its id.
    func save(_ silence: Silence) async throws
    /// Deletes, in one transaction, the events of `ids` not changed since `before`, every change
    /// saved before `before`, and the silences of `silences`.
    func prune(events ids: [String], changesBefore before: Int64, silences: [String]) async throws
    /// Saves a named piece of state (the rule engine's alert states) in place of the last.
    func saveState(_ key: String, _ body: String) async throws
    /// Every event, newest first, and the newest sequence number (0 for none).
    func loadSync() throws -> (events: [Event], lastSequence: Int64)
    /// Every event as it was when it was closed (the changes of type `closed`), oldest first: the
    /// workloads' journals, kept when an event is reopened and closed again.
    func closingsSync() throws -> [Event]
    /// Every silence saved.
    func silencesSync() throws -> [Silence]
    /// A named piece of state, if saved.
    func stateSync(_ key: String) throws -> String?
}

extension EventStore {
    /// Saves one event and appends its change; the change with its sequence number.
    public func record(_ event: Event, type: String, at: Int64) async throws -> EventChange {
        try await recordAll([(event, type)], at: at)[0]
    }
}
