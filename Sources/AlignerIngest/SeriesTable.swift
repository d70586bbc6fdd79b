import AlignerCore
import CAlignerIntrinsics
import Synchronization

/// A compact handle on a series in the `SeriesTable`: its shard and its place in the shard.
public struct SeriesRef: Hashable, Sendable, CustomStringConvertible {
    /// The shard (top 6 bits) and the entry's word offset in the shard's arena.
    public let rawValue: UInt64

    init(shard: Int, offset: Int) { rawValue = UInt64(shard) << 58 | UInt64(offset >> 3) }

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

/// One series of a request, decoded and keyed, waiting to be applied to the table.
struct PendingSeries {
    /// Where the key is: a pointer into the request body, or nil for the request's key arena.
    var keyBase: UnsafeRawPointer?
    var keyOffset: Int
    var keyCount: Int
    var hash: UInt64
    var sampleStart: Int
    var sampleCount: Int
    /// Valid histograms and exemplars, counted written unless the series is rejected.
    var histograms: Int
    var exemplars: Int
    var metadata: Int
}

/// Maps series label bytes to the series' state (its last sample).
///
/// Each of 64 shards keeps its series in one arena: a 56-byte header followed by the key bytes
/// (the canonical label encoding, see `SeriesKey`), found through an open-addressing table whose
/// slots hold a hash tag and the entry's offset. A lookup compares the full key bytes after a tag
/// match, so colliding inputs never merge two series. `String`s are built only when someone asks
/// for a series' labels. A request's series are applied in one pass that prefetches each entry a
/// few series ahead, because with many series the lookup is bound by cache misses.
public final class SeriesTable: Sendable {
    static let shardCount = 64
    /// Unretained: the table owns the shards for its whole life (`owner`), and the hot path
    /// then touches them without reference counting.
    let shards: [Unmanaged<Shard>]
    let owner: [Shard]
    let hasher: SeriesHasher
    /// The most active series the table holds (`ingest.max_series`).
    public let maxSeries: Int
    /// Keeps the samples of the series some rule selects (the rule engine's windows).
    let observer: (any SeriesObserver)?
    let active = Atomic<Int>(0)

    /// Creates a table that holds at most `maxSeries` series.
    public init(maxSeries: Int, seed: UInt64 = UInt64.random(in: .min ... .max), observer: (any SeriesObserver)? = nil) {
        self.maxSeries = maxSeries
        self.observer = observer
        hasher = SeriesHasher(seed: seed)
        owner = (0..<SeriesTable.shardCount).map { _ in Shard() }
        shards = owner.map { Unmanaged.passUnretained($0) }
    }

    /// The number of series in the table.
    public var activeSeries: Int { active.load(ordering: .relaxed) }

    @inline(__always)
    func hash(_ key: UnsafeRawBufferPointer) -> UInt64 { hasher.hash(key) }

    @inline(__always)
    static func shardIndex(_ hash: UInt64) -> Int { Int(hash >> 58) }

    /// Applies a request's series: finds or creates each (validating its labels once, when it is
    /// new) and appends every sample newer than the series' last one. An identical repeat of the
    /// last sample is accepted silently; an older one, or another value at the same timestamp, is not.
    func apply(
        _ pending: UnsafeBufferPointer<PendingSeries>, keyArena: UnsafeRawPointer,
        samples: UnsafeBufferPointer<WireSample>, now: Int64, outcome: inout WriteOutcome
    ) {
        // Two stages: a series' slot is prefetched 2d series ahead, its entry d ahead (through
        // the slot, by then in cache), so neither load stalls when the series comes up.
        let d = 8
        let n = pending.count
        for i in 0..<min(2 * d, n) { prefetchSlot(pending[i]) }
        for i in 0..<min(d, n) { prefetchEntry(pending[i]) }
        for i in 0..<n {
            if i + 2 * d < n { prefetchSlot(pending[i + 2 * d]) }
            if i + d < n { prefetchEntry(pending[i + d]) }
            let p = pending[i]
            let key = UnsafeRawBufferPointer(start: (p.keyBase ?? keyArena) + p.keyOffset, count: p.keyCount)
            let sampleSlice = UnsafeBufferPointer(rebasing: samples[p.sampleStart..<(p.sampleStart + p.sampleCount)])
            if let problem = applyOne(key: key, hash: p.hash, samples: sampleSlice, now: now, outcome: &outcome) {
                outcome.seriesRejected += 1
                outcome.seriesRejectedByReason[problem.reason, default: 0] += 1
                outcome.samplesInvalidSeries += p.sampleCount
                outcome.histogramsRejected += p.histograms
                outcome.exemplarsRejected += p.exemplars
                outcome.addExample("\(problem): \(decodeLabels(key).promText)")
            } else {
                outcome.histogramsWritten += p.histograms
                outcome.exemplarsWritten += p.exemplars
                outcome.metadataWritten += p.metadata
            }
        }
    }

    @inline(__always)
    func prefetchSlot(_ p: PendingSeries) {
        let table = shards[SeriesTable.shardIndex(p.hash)]._withUnsafeGuaranteedRef { $0.slotTable }
        aligner_prefetch(table + 1 + (Int(truncatingIfNeeded: p.hash) & Int(table[0])))
    }

    /// Prefetches the series' entry through a racy read of its slot. Slot tables are never freed
    /// while the table lives, so the read is memory-safe; a stale value only prefetches the wrong line.
    @inline(__always)
    func prefetchEntry(_ p: PendingSeries) {
        let (table, arena) = shards[SeriesTable.shardIndex(p.hash)]._withUnsafeGuaranteedRef { ($0.slotTable, $0.arena) }
        let value = table[1 + (Int(truncatingIfNeeded: p.hash) & Int(table[0]))]
        if value != 0 && value != Shard.tombstone {
            let entry = arena + Int((value & 0xFFFF_FFFF) - 1) << 3
            aligner_prefetch(entry)
            aligner_prefetch(entry + 64)
            aligner_prefetch(entry + 128)
            aligner_prefetch(entry + 192)
        }
    }

    @inline(__always)
    func applyOne(
        key: UnsafeRawBufferPointer, hash: UInt64, samples: UnsafeBufferPointer<WireSample>, now: Int64,
        outcome: inout WriteOutcome
    ) -> SeriesProblem? {
        return shards[SeriesTable.shardIndex(hash)]._withUnsafeGuaranteedRef { shard in
            shard.lock.withLock { _ -> SeriesProblem? in
            var offset = shard.find(hash: hash, key: key)
            if offset < 0 {
                if let problem = SeriesKey.validate(key) { return problem }
                if active.add(1, ordering: .relaxed).newValue > maxSeries {
                    active.subtract(1, ordering: .relaxed)
                    return .seriesLimit(maxSeries)
                }
                let window = observer?.admit(labels: decodeLabels(key)) ?? 0
                offset = shard.insert(hash: hash, key: key, now: now, window: window)
                outcome.seriesCreated += 1
            }
            let entry = shard.arena + offset
            entry.storeBytes(of: now, toByteOffset: EntryLayout.lastSeen, as: Int64.self)
            var last = entry.load(fromByteOffset: EntryLayout.lastTimestamp, as: Int64.self)
            var lastBits = entry.load(fromByteOffset: EntryLayout.lastValueBits, as: UInt64.self)
            var appended: UInt64 = 0
            for sample in samples {
                if sample.timestamp > last {
                    last = sample.timestamp
                    lastBits = sample.valueBits
                    appended += 1
                    outcome.samplesWritten += 1
                    let window = entry.load(fromByteOffset: EntryLayout.window, as: UInt32.self)
                    if window != 0 { observer?.append(window: window, timestamp: sample.timestamp, valueBits: sample.valueBits) }
                } else if sample.timestamp == last && sample.valueBits == lastBits {
                    outcome.samplesWritten += 1  // an identical retry
                    outcome.samplesDuplicate += 1
                } else {
                    outcome.rejectSample(
                        sample.timestamp == last ? .duplicateTimestamp : .outOfOrder,
                        key: key, timestamp: sample.timestamp, last: last)
                }
            }
            if appended > 0 {
                entry.storeBytes(of: last, toByteOffset: EntryLayout.lastTimestamp, as: Int64.self)
                entry.storeBytes(of: lastBits, toByteOffset: EntryLayout.lastValueBits, as: UInt64.self)
                let count = entry.load(fromByteOffset: EntryLayout.samples, as: UInt64.self)
                entry.storeBytes(of: count &+ appended, toByteOffset: EntryLayout.samples, as: UInt64.self)
            }
            return nil
        }
        }
    }

    /// Asks the observer again which series it keeps (after a rule reload changed what rules select).
    public func reselect() {
        guard let observer else { return }
        for shard in owner {
            shard.lock.withLock { _ in
                shard.forEachLive { offset, key in
                    let e = shard.arena + offset
                    let window = observer.admit(labels: decodeLabels(key))
                    e.storeBytes(of: window, toByteOffset: EntryLayout.window, as: UInt32.self)
                    let last = e.load(fromByteOffset: EntryLayout.lastTimestamp, as: Int64.self)
                    if window != 0 && last != .min {
                        observer.append(window: window, timestamp: last,
                                        valueBits: e.load(fromByteOffset: EntryLayout.lastValueBits, as: UInt64.self))
                    }
                }
            }
        }
    }

    /// Removes series that received nothing since `cutoff` (milliseconds, wall clock); returns how many.
    public func evictIdle(before cutoff: Int64) -> Int {
        var evicted = 0
        for shard in owner { evicted += shard.lock.withLock { _ in shard.evict(before: cutoff) } }
        active.subtract(evicted, ordering: .relaxed)
        return evicted
    }

    /// Every series whose labels satisfy `filter`, with its labels decoded (a cold path: builds Strings).
    public func snapshot(limit: Int = .max, where filter: ([Label]) -> Bool = { _ in true }) -> [SeriesSnapshot] {
        var result: [SeriesSnapshot] = []
        for (s, shard) in owner.enumerated() where result.count < limit {
            shard.lock.withLock { _ in
                shard.forEachLive { offset, key in
                    guard result.count < limit else { return }
                    let labels = decodeLabels(key)
                    guard filter(labels) else { return }
                    let e = shard.arena + offset
                    result.append(SeriesSnapshot(
                        ref: SeriesRef(shard: s, offset: offset), labels: labels,
                        lastTimestamp: e.load(fromByteOffset: EntryLayout.lastTimestamp, as: Int64.self),
                        lastValue: Double(bitPattern: e.load(fromByteOffset: EntryLayout.lastValueBits, as: UInt64.self)),
                        samples: e.load(fromByteOffset: EntryLayout.samples, as: UInt64.self)))
                }
            }
        }
        return result
    }

    /// Bytes the table holds for entries and slots (reported in `/metrics`).
    public var memoryBytes: Int {
        owner.reduce(0) { total, shard in total + shard.lock.withLock { _ in shard.memoryBytes } }
    }
}

/// Decides which series are kept beyond their last sample, and receives their samples. Called
/// under a shard lock: it must be quick and must not call back into the table.
public protocol SeriesObserver: AnyObject, Sendable {
    /// A series seen for the first time (or again after `reselect`): its window id, or 0 to keep nothing.
    func admit(labels: [Label]) -> UInt32
    /// A new, in-order sample of an admitted series.
    func append(window: UInt32, timestamp: Int64, valueBits: UInt64)
}

/// Decodes a series key into labels.
func decodeLabels(_ key: UnsafeRawBufferPointer) -> [Label] {
    var labels: [Label] = []
    SeriesKey.forEachLabel(key) { name, value in
        labels.append(Label(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
    }
    return labels
}

/// Byte offsets of an arena entry's header fields; the key follows the header.
enum EntryLayout {
    static let hash = 0
    static let lastTimestamp = 8
    static let lastValueBits = 16
    static let lastSeen = 24
    static let samples = 32
    static let keyLength = 40
    static let dead = 44
    /// The observer's window for this series (0: none).
    static let window = 48
    static let header = 56

    @inline(__always)
    static func size(keyLength: Int) -> Int { (header + keyLength + 7) & ~7 }
}

/// One shard: an arena of entries and an open-addressing slot table (linear probing). Every field
/// is touched under `lock`, except `slotTable` and `arena`, which `SeriesTable.prefetch` reads racily.
final class Shard: @unchecked Sendable {
    static let empty: UInt64 = 0
    static let tombstone: UInt64 = .max

    let lock = Mutex<Void>(())
    /// `[mask, slot 0, slot 1, ...]`. A slot is 0 (empty), `tombstone`, or the hash's high 32 bits
    /// over the entry's word offset + 1.
    var slotTable: UnsafeMutablePointer<UInt64>
    /// Slot tables replaced by a rehash, kept until the table dies so racy prefetch reads stay safe.
    var retired: [UnsafeMutablePointer<UInt64>] = []
    var arena: UnsafeMutableRawPointer
    var arenaCount = 0
    var arenaCapacity = 4096
    var live = 0
    var tombstones = 0
    var deadBytes = 0

    init() {
        slotTable = Shard.makeSlotTable(64)
        arena = .allocate(byteCount: arenaCapacity, alignment: 8)
    }

    deinit {
        slotTable.deallocate()
        for t in retired { t.deallocate() }
        arena.deallocate()
    }

    static func makeSlotTable(_ count: Int) -> UnsafeMutablePointer<UInt64> {
        let t = UnsafeMutablePointer<UInt64>.allocate(capacity: count + 1)
        t.initialize(repeating: 0, count: count + 1)
        t[0] = UInt64(count - 1)
        return t
    }

    var slotCount: Int { Int(slotTable[0]) + 1 }

    var memoryBytes: Int { arenaCapacity + slotCount * 8 }

    /// The entry offset for `key`, or -1.
    @inline(__always)
    func find(hash: UInt64, key: UnsafeRawBufferPointer) -> Int {
        let mask = Int(slotTable[0])
        let slots = slotTable + 1
        let tag = hash >> 32
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let s = slots[i]
            if s == Shard.empty { return -1 }
            if s != Shard.tombstone && s >> 32 == tag {
                let offset = Int((s & 0xFFFF_FFFF) - 1) << 3
                let e = arena + offset
                if e.load(fromByteOffset: EntryLayout.hash, as: UInt64.self) == hash
                    && Int(e.load(fromByteOffset: EntryLayout.keyLength, as: UInt32.self)) == key.count
                    && (key.count == 0 || memcmp(e + EntryLayout.header, key.baseAddress!, key.count) == 0)
                {
                    return offset
                }
            }
            i = (i + 1) & mask
        }
    }

    func insert(hash: UInt64, key: UnsafeRawBufferPointer, now: Int64, window: UInt32 = 0) -> Int {
        if (live + tombstones + 1) * 2 > slotCount { rehash(capacity: max(64, (live + 1) * 4)) }
        let size = EntryLayout.size(keyLength: key.count)
        if arenaCount + size > arenaCapacity {
            var capacity = arenaCapacity * 2
            while arenaCount + size > capacity { capacity *= 2 }
            let grown = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
            grown.copyMemory(from: arena, byteCount: arenaCount)
            arena.deallocate()
            arena = grown
            arenaCapacity = capacity
        }
        let offset = arenaCount
        let e = arena + offset
        e.storeBytes(of: hash, toByteOffset: EntryLayout.hash, as: UInt64.self)
        e.storeBytes(of: Int64.min, toByteOffset: EntryLayout.lastTimestamp, as: Int64.self)
        e.storeBytes(of: 0, toByteOffset: EntryLayout.lastValueBits, as: UInt64.self)
        e.storeBytes(of: now, toByteOffset: EntryLayout.lastSeen, as: Int64.self)
        e.storeBytes(of: 0, toByteOffset: EntryLayout.samples, as: UInt64.self)
        e.storeBytes(of: UInt32(key.count), toByteOffset: EntryLayout.keyLength, as: UInt32.self)
        e.storeBytes(of: 0, toByteOffset: EntryLayout.dead, as: UInt32.self)
        e.storeBytes(of: window, toByteOffset: EntryLayout.window, as: UInt32.self)
        if key.count > 0 { (e + EntryLayout.header).copyMemory(from: key.baseAddress!, byteCount: key.count) }
        arenaCount += size
        place(hash: hash, offset: offset)
        live += 1
        return offset
    }

    @inline(__always)
    func place(hash: UInt64, offset: Int) {
        let mask = Int(slotTable[0])
        let slots = slotTable + 1
        var i = Int(truncatingIfNeeded: hash) & mask
        while slots[i] != Shard.empty && slots[i] != Shard.tombstone { i = (i + 1) & mask }
        if slots[i] == Shard.tombstone { tombstones -= 1 }
        slots[i] = (hash >> 32) << 32 | UInt64(offset >> 3 + 1)
    }

    /// Moves to a larger slot table. Tables only grow, so the retired ones add up to less than
    /// the current one.
    func rehash(capacity: Int) {
        var size = 64
        while size < capacity { size *= 2 }
        guard size > slotCount else { return rebuildSlots() }
        retired.append(slotTable)
        slotTable = Shard.makeSlotTable(size)
        tombstones = 0
        forEachLive { offset, _ in
            place(hash: (arena + offset).load(fromByteOffset: EntryLayout.hash, as: UInt64.self), offset: offset)
        }
    }

    func forEachLive(_ body: (Int, UnsafeRawBufferPointer) -> Void) {
        var offset = 0
        while offset < arenaCount {
            let e = arena + offset
            let length = Int(e.load(fromByteOffset: EntryLayout.keyLength, as: UInt32.self))
            if e.load(fromByteOffset: EntryLayout.dead, as: UInt32.self) == 0 {
                body(offset, UnsafeRawBufferPointer(start: e + EntryLayout.header, count: length))
            }
            offset += EntryLayout.size(keyLength: length)
        }
    }

    func evict(before cutoff: Int64) -> Int {
        var evicted = 0
        forEachLive { offset, key in
            let e = arena + offset
            if e.load(fromByteOffset: EntryLayout.lastSeen, as: Int64.self) < cutoff {
                e.storeBytes(of: 1, toByteOffset: EntryLayout.dead, as: UInt32.self)
                deadBytes += EntryLayout.size(keyLength: key.count)
                evicted += 1
            }
        }
        guard evicted > 0 else { return 0 }
        live -= evicted
        if deadBytes * 2 > arenaCount { compact() }
        rebuildSlots()
        return evicted
    }

    /// Re-slots the live entries in the same slot table (dropping tombstones and dead entries).
    /// Racy prefetch reads may see a half-built table; they only prefetch the wrong line.
    func rebuildSlots() {
        (slotTable + 1).update(repeating: 0, count: slotCount)
        tombstones = 0
        forEachLive { offset, _ in
            place(hash: (arena + offset).load(fromByteOffset: EntryLayout.hash, as: UInt64.self), offset: offset)
        }
    }

    /// Copies the live entries into a fresh arena (offsets change; the rehash that follows re-slots them).
    func compact() {
        var capacity = 4096
        while capacity < (arenaCount - deadBytes) * 2 { capacity *= 2 }
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 8)
        var count = 0
        forEachLive { offset, key in
            let size = EntryLayout.size(keyLength: key.count)
            (fresh + count).copyMemory(from: arena + offset, byteCount: size)
            count += size
        }
        arena.deallocate()
        arena = fresh
        arenaCount = count
        arenaCapacity = capacity
        deadBytes = 0
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
