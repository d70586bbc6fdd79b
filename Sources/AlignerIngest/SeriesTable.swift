import AlignerCore
import Synchronization

/// A compact handle on a series in the `SeriesTable`: shard in the top bits, slot below.
public struct SeriesRef: Hashable, Sendable, CustomStringConvertible {
    /// The packed shard and record index.
    public let rawValue: UInt32

    init(shard: Int, index: Int) { rawValue = UInt32(shard) << SeriesTable.indexBits | UInt32(index) }

    public var description: String { "series#\(rawValue)" }
}

/// What the table knows about one series right now.
public struct SeriesSnapshot: Sendable {
    public var ref: SeriesRef
    public var labels: [Label]
    public var lastTimestamp: Int64
    public var lastValue: Double
    public var samples: UInt64
}

/// Maps series label bytes to a `SeriesRef` and keeps each series' last sample.
///
/// Keys live in per-shard byte arenas; a lookup hashes the key bytes with a per-process seed and
/// compares the full bytes on a hash hit, so colliding inputs never merge two series. `String`s
/// are built only when someone asks for a series' labels. Shards are guarded by mutexes touched
/// synchronously from the request; nothing hops threads per sample.
public final class SeriesTable: Sendable {
    static let shardBits: UInt32 = 6
    static let indexBits: UInt32 = 32 - shardBits
    static let shardCount = 1 << shardBits

    let shards: [ShardBox]
    let hasher: SeriesHasher
    /// The most active series the table holds (`ingest.max_series`).
    public let maxSeries: Int
    let active = Atomic<Int>(0)

    /// Creates a table that holds at most `maxSeries` series.
    public init(maxSeries: Int, seed: UInt64 = UInt64.random(in: .min ... .max)) {
        self.maxSeries = maxSeries
        hasher = SeriesHasher(seed: seed)
        shards = (0..<SeriesTable.shardCount).map { _ in ShardBox() }
    }

    /// The number of series in the table.
    public var activeSeries: Int { active.load(ordering: .relaxed) }

    @inline(__always)
    func hash(_ key: UnsafeRawBufferPointer) -> UInt64 { hasher.hash(key) }

    /// Applies a series' samples: finds or creates the series (validating its labels once, when it
    /// is new) and appends every sample newer than the last one. An identical repeat of the last
    /// sample is accepted silently; an older one, or a different value at the same timestamp, is not.
    @inline(__always)
    func apply(
        key: UnsafeRawBufferPointer, samples: UnsafeBufferPointer<WireSample>, now: Int64,
        outcome: inout WriteOutcome
    ) -> SeriesProblem? {
        let hash = hasher.hash(key)
        let shardIndex = Int(hash >> 58)
        return shards[shardIndex].mutex.withLock { shard -> SeriesProblem? in
            var index = shard.find(hash: hash, key: key)
            if index < 0 {
                if let problem = SeriesKey.validate(key) { return problem }
                if active.add(1, ordering: .relaxed).newValue > maxSeries {
                    active.subtract(1, ordering: .relaxed)
                    return .seriesLimit(maxSeries)
                }
                index = shard.insert(hash: hash, key: key, now: now)
                outcome.seriesCreated += 1
            }
            shard.records[index].lastSeen = now
            for sample in samples {
                let last = shard.records[index].lastTimestamp
                if sample.timestamp > last {
                    shard.records[index].lastTimestamp = sample.timestamp
                    shard.records[index].lastValueBits = sample.valueBits
                    shard.records[index].samples &+= 1
                    outcome.samplesWritten += 1
                } else if sample.timestamp == last && sample.valueBits == shard.records[index].lastValueBits {
                    outcome.samplesWritten += 1  // an identical retry
                    outcome.samplesDuplicate += 1
                } else {
                    outcome.rejectSample(
                        sample.timestamp == last ? .duplicateTimestamp : .outOfOrder,
                        key: key, timestamp: sample.timestamp, last: last)
                }
            }
            return nil
        }
    }

    /// Removes series that received nothing since `cutoff` (milliseconds, wall clock); returns how many.
    public func evictIdle(before cutoff: Int64) -> Int {
        var evicted = 0
        for box in shards {
            let n = box.mutex.withLock { $0.evict(before: cutoff) }
            evicted += n
        }
        active.subtract(evicted, ordering: .relaxed)
        return evicted
    }

    /// Every series whose labels satisfy `filter`, with its labels decoded (a cold path: builds Strings).
    public func snapshot(limit: Int = .max, where filter: ([Label]) -> Bool = { _ in true }) -> [SeriesSnapshot] {
        var result: [SeriesSnapshot] = []
        for (s, box) in shards.enumerated() {
            box.mutex.withLock { shard in
                for i in shard.records.indices where shard.records[i].live && result.count < limit {
                    let r = shard.records[i]
                    let labels = shard.arena.withUnsafeBytes { arena in
                        decodeLabels(UnsafeRawBufferPointer(rebasing: arena[Int(r.keyOffset)..<Int(r.keyOffset + r.keyLength)]))
                    }
                    if filter(labels) {
                        result.append(SeriesSnapshot(
                            ref: SeriesRef(shard: s, index: i), labels: labels, lastTimestamp: r.lastTimestamp,
                            lastValue: Double(bitPattern: r.lastValueBits), samples: r.samples))
                    }
                }
            }
        }
        return result
    }

    /// Bytes the table holds for keys, records and hash slots (reported in `/metrics`).
    public var memoryBytes: Int {
        shards.reduce(0) { total, box in
            total + box.mutex.withLock { s in
                s.arena.capacity + s.records.capacity * MemoryLayout<SeriesRecord>.stride + s.slots.count * 4
            }
        }
    }
}

/// Decodes a series key into labels.
func decodeLabels(_ key: UnsafeRawBufferPointer) -> [Label] {
    var labels: [Label] = []
    SeriesKey.forEachLabel(key) { name, value in
        labels.append(Label(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
    }
    return labels
}

final class ShardBox: Sendable {
    let mutex = Mutex(Shard())
}

struct SeriesRecord {
    var hash: UInt64
    var keyOffset: UInt32
    var keyLength: UInt32
    var lastTimestamp: Int64 = .min
    var lastValueBits: UInt64 = 0
    var lastSeen: Int64
    var samples: UInt64 = 0
    var live = true
}

/// One shard: an open-addressing hash table (linear probing) over records and a key arena.
struct Shard {
    static let empty: UInt32 = 0
    static let tombstone: UInt32 = .max

    var slots = [UInt32](repeating: 0, count: 64)
    var records: [SeriesRecord] = []
    var free: [UInt32] = []
    var arena: [UInt8] = []
    var live = 0
    var tombstones = 0
    var deadBytes = 0

    /// The record index for `key`, or -1.
    @inline(__always)
    func find(hash: UInt64, key: UnsafeRawBufferPointer) -> Int {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let slot = slots[i]
            if slot == Shard.empty { return -1 }
            if slot != Shard.tombstone {
                let index = Int(slot - 1)
                let r = records[index]
                if r.hash == hash && Int(r.keyLength) == key.count {
                    let equal = arena.withUnsafeBytes { a in
                        memcmp(a.baseAddress! + Int(r.keyOffset), key.baseAddress!, key.count) == 0
                    }
                    if equal { return index }
                }
            }
            i = (i + 1) & mask
        }
    }

    mutating func insert(hash: UInt64, key: UnsafeRawBufferPointer, now: Int64) -> Int {
        if (live + tombstones + 1) * 2 > slots.count { rehash(capacity: max(64, (live + 1) * 4)) }
        let offset = arena.count
        arena.append(contentsOf: key)
        let record = SeriesRecord(hash: hash, keyOffset: UInt32(offset), keyLength: UInt32(key.count), lastSeen: now)
        let index: Int
        if let reused = free.popLast() {
            index = Int(reused)
            records[index] = record
        } else {
            index = records.count
            records.append(record)
        }
        place(hash: hash, slot: UInt32(index + 1))
        live += 1
        return index
    }

    @inline(__always)
    mutating func place(hash: UInt64, slot: UInt32) {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while slots[i] != Shard.empty && slots[i] != Shard.tombstone { i = (i + 1) & mask }
        if slots[i] == Shard.tombstone { tombstones -= 1 }
        slots[i] = slot
    }

    mutating func rehash(capacity: Int) {
        var size = 64
        while size < capacity { size *= 2 }
        slots = [UInt32](repeating: 0, count: size)
        tombstones = 0
        for i in records.indices where records[i].live { place(hash: records[i].hash, slot: UInt32(i + 1)) }
    }

    mutating func evict(before cutoff: Int64) -> Int {
        var evicted = 0
        for i in records.indices where records[i].live && records[i].lastSeen < cutoff {
            records[i].live = false
            deadBytes += Int(records[i].keyLength)
            free.append(UInt32(i))
            live -= 1
            evicted += 1
        }
        guard evicted > 0 else { return 0 }
        // Drop the slots of dead records and compact the arena when half of it is dead.
        rehash(capacity: max(64, live * 4))
        if deadBytes * 2 > arena.count { compactArena() }
        return evicted
    }

    mutating func compactArena() {
        var fresh: [UInt8] = []
        fresh.reserveCapacity(arena.count - deadBytes)
        for i in records.indices where records[i].live {
            let start = Int(records[i].keyOffset), end = start + Int(records[i].keyLength)
            records[i].keyOffset = UInt32(fresh.count)
            fresh.append(contentsOf: arena[start..<end])
        }
        arena = fresh
        deadBytes = 0
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
