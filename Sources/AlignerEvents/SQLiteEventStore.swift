import CAlignerSQLite
import Dispatch
import Foundation

/// The default events store: SQLite in WAL mode under the data directory, every change committed
/// (synchronous=FULL) before the caller goes on. Calls run on one dedicated thread, never on the
/// cooperative pool.
public final class SQLiteEventStore: EventStore, @unchecked Sendable {
    let queue = DispatchQueue(label: "aligner.events.sqlite")
    var db: OpaquePointer?

    /// Opens (creating if needed) `directory/events.db`.
    public init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/events.db"
        guard sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil) == SQLITE_OK else {
            throw EventStoreError(description: "cannot open events store \(path): \(String(cString: sqlite3_errmsg(db)))")
        }
        try exec("""
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=FULL;
            CREATE TABLE IF NOT EXISTS events (
                id TEXT PRIMARY KEY, namespace TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
                state TEXT NOT NULL, class TEXT NOT NULL, opened_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
                closed_at INTEGER, body TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS events_subject ON events(namespace, name, state);
            CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, body TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, body TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS changes (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, type TEXT NOT NULL,
                at INTEGER NOT NULL, body TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS changes_type ON changes(type);
            """)
    }

    deinit { sqlite3_close(db) }

    func exec(_ sql: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(db, sql, nil, nil, &error) != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? "unknown"
            sqlite3_free(error)
            throw EventStoreError(description: "events store: \(message)")
        }
    }

    /// Runs `body` on the store's thread.
    func onQueue<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    public func recordAll(_ items: [(event: Event, type: String)], at: Int64) async throws -> [EventChange] {
        try await onQueue { [self] in
            try exec("BEGIN IMMEDIATE")
            do {
                var changes: [EventChange] = []
                for (event, type) in items {
                    let body = String(decoding: try SQLiteEventStore.encoder.encode(event), as: UTF8.self)
                    try run("""
                        INSERT INTO events (id, namespace, kind, name, state, class, opened_at, updated_at, closed_at, body)
                        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                        ON CONFLICT(id) DO UPDATE SET state=?5, class=?6, updated_at=?8, closed_at=?9, body=?10
                        """, [.text(event.id), .text(event.subject.namespace), .text(event.subject.kind), .text(event.subject.name),
                              .text(event.state.rawValue), .text(event.anomalyClass), .int(event.openedAt), .int(event.updatedAt),
                              event.closedAt.map { .int($0) } ?? .null, .text(body)])
                    try run("INSERT INTO changes (event_id, type, at, body) VALUES (?1, ?2, ?3, ?4)",
                            [.text(event.id), .text(type), .int(at), .text(body)])
                    changes.append(EventChange(sequence: sqlite3_last_insert_rowid(db), eventID: event.id, type: type, at: at, event: event))
                }
                try exec("COMMIT")
                return changes
            } catch {
                try? exec("ROLLBACK")
                throw error
            }
        }
    }

    public func loadSync() throws -> (events: [Event], lastSequence: Int64) {
        try queue.sync {
            let events = try query("SELECT body FROM events ORDER BY opened_at DESC", []).map {
                try JSONDecoder().decode(Event.self, from: Data($0[0].utf8))
            }
            // The last number given, also when retention has deleted every change since.
            let last = try query("SELECT MAX(seq) FROM (SELECT MAX(seq) AS seq FROM changes UNION ALL SELECT seq FROM sqlite_sequence WHERE name = 'changes')", [])
                .first.flatMap { Int64($0[0]) } ?? 0
            return (events, last)
        }
    }

    public func save(_ silence: Silence) async throws {
        try await onQueue { [self] in
            try run("INSERT INTO silences (id, body) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET body=?2",
                    [.text(silence.id), .text(String(decoding: try SQLiteEventStore.encoder.encode(silence), as: UTF8.self))])
        }
    }

    public func closingsSync() throws -> [Event] {
        try queue.sync {
            try query("SELECT body FROM changes WHERE type = 'closed' ORDER BY seq", []).map {
                try JSONDecoder().decode(Event.self, from: Data($0[0].utf8))
            }
        }
    }

    public func silencesSync() throws -> [Silence] {
        try queue.sync {
            try query("SELECT body FROM silences", []).map { try JSONDecoder().decode(Silence.self, from: Data($0[0].utf8)) }
        }
    }

    public func prune(events ids: [String], changesBefore before: Int64, silences: [String]) async throws {
        try await onQueue { [self] in
            try exec("BEGIN IMMEDIATE")
            do {
                for id in ids { try run("DELETE FROM events WHERE id = ?1 AND updated_at < ?2", [.text(id), .int(before)]) }
                try run("DELETE FROM changes WHERE at < ?1", [.int(before)])
                for id in silences { try run("DELETE FROM silences WHERE id = ?1", [.text(id)]) }
                try exec("COMMIT")
            } catch {
                try? exec("ROLLBACK")
                throw error
            }
        }
    }

    public func saveState(_ key: String, _ body: String) async throws {
        try await onQueue { [self] in
            try run("INSERT INTO state (key, body) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET body=?2", [.text(key), .text(body)])
        }
    }

    public func stateSync(_ key: String) throws -> String? {
        try queue.sync { try query("SELECT body FROM state WHERE key = ?1", [.text(key)]).first?[0] }
    }

    public func changes(after sequence: Int64, limit: Int) async throws -> [EventChange] {
        try await onQueue { [self] in
            try query("SELECT seq, event_id, type, at, body FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                      [.int(sequence), .int(Int64(limit))]).map { row in
                EventChange(sequence: Int64(row[0])!, eventID: row[1], type: row[2], at: Int64(row[3])!,
                            event: try JSONDecoder().decode(Event.self, from: Data(row[4].utf8)))
            }
        }
    }

    enum Value { case text(String), int(Int64), null }

    func prepare(_ sql: String, _ values: [Value]) throws -> OpaquePointer {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw EventStoreError(description: "events store: \(String(cString: sqlite3_errmsg(db)))")
        }
        for (i, v) in values.enumerated() {
            switch v {
            case .text(let s): sqlite3_bind_text(statement, Int32(i + 1), s, -1, aligner_sqlite_transient())
            case .int(let n): sqlite3_bind_int64(statement, Int32(i + 1), n)
            case .null: sqlite3_bind_null(statement, Int32(i + 1))
            }
        }
        return statement
    }

    func run(_ sql: String, _ values: [Value]) throws {
        let statement = try prepare(sql, values)
        defer { sqlite3_finalize(statement) }
        guard sqlite3_step(statement) == SQLITE_DONE else {
            throw EventStoreError(description: "events store: \(String(cString: sqlite3_errmsg(db)))")
        }
    }

    func query(_ sql: String, _ values: [Value]) throws -> [[String]] {
        let statement = try prepare(sql, values)
        defer { sqlite3_finalize(statement) }
        var rows: [[String]] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw EventStoreError(description: "events store: \(String(cString: sqlite3_errmsg(db)))") }
            rows.append((0..<sqlite3_column_count(statement)).map { c in
                sqlite3_column_text(statement, c).map { String(cString: $0) } ?? ""
            })
        }
        return rows
    }
}
