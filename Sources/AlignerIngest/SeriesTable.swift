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

/// How a request's series key came to be.
enum KeyForm {
    /// The labels as sent, not looked into (`DecodedSeries.labelsRead` false): the key if it
    /// equals a stored key, else to be canonicalized.
    case raw
    /// The labels as sent, read and found canonical.
    case sent
    /// Built from labels sent in another form (unsorted, empty values, ...).
    case rebuilt
    /// Everything before the series' one sample, taken as its label fields unread
    /// (`DecodedSeries.keyIsGuess`): as `raw`, but if it turns out not to be label fields at all,
    /// the series is decoded again in full.
    case guessed

    /// The labels as sent, not yet read.
    var isUnread: Bool { self == .raw || self == .guessed }
}

/// One series of a request, decoded and keyed, waiting to be applied to the table.
struct PendingSeries {
    /// Where the key is: a pointer into the request body, or nil for the request's key arena.
    var keyBase: UnsafeRawPointer?
    var keyOffset: Int
    var keyCount: Int
    var form: KeyForm
    var hash: UInt64
    var sampleStart: Int
    var sampleCount: Int
    /// Valid histograms and exemplars, counted written unless the series is rejected.
    var histograms: Int
    var exemplars: Int
    var metadata: Int
}

extension PendingSeries {
    @inline(__always)
    func key(in keyArena: UnsafeRawPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: (keyBase ?? keyArena) + keyOffset, count: keyCount)
    }

    @inline(__always)
    func samples(in all: UnsafeBufferPointer<WireSample>) -> UnsafeBufferPointer<WireSample> {
        UnsafeBufferPointer(rebasing: all[sampleStart..<(sampleStart + sampleCount)])
    }
}

/// Maps series label bytes to the series' state (its last sample).
///
/// Each of 64 shards keeps its series in one arena: a 52-byte header followed by references to
/// the series' label pairs (`LabelPairs`: each distinct name/value pair stored once), found
/// through an open-addressing table whose slots hold a hash tag and the entry's offset. A lookup
/// compares the full key bytes (the canonical label encoding, see `SeriesKey`) with the pairs
/// after a tag match, so colliding inputs never merge two series. `String`s are built only when someone asks
/// for a series' labels. A request's series are applied shard by shard, one lock each, prefetching
/// each entry a few series ahead, because with many series the lookup is bound by cache misses.
public final class SeriesTable: Sendable {
    static let shardCount = 64
    /// Unretained: the table owns the shards for its whole life (`owner`), and the hot path
    /// then touches them without reference counting.
    let shards: [Unmanaged<Shard>]
    let owner: [Shard]
    let hasher: SeriesHasher
    /// The label pairs the entries of every shard refer to.
    let pairs: LabelPairs
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
        pairs = LabelPairs(seed: seed)
        owner = (0..<SeriesTable.shardCount).map { [pairs] _ in Shard(pairs: pairs) }
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
    ///
    /// The series are taken shard by shard, in request order within a shard: each shard is locked
    /// once per request, and since a sender sends its series in much the same order every time and
    /// a shard stores them in arrival order, its entries are then read front to back.
    ///
    /// A series sent as raw label bytes (`KeyForm.raw`) that equal a stored key is that series:
    /// stored keys are canonical. Series not found that way, and in a request with raw keys the
    /// series whose labels came in another form (`KeyForm.rebuilt`), are applied after the
    /// others, in request order: raw
    /// bytes are first read by `canonicalize`, which gives the canonical key (labels sent
    /// unsorted, or a new series) or the problem with them; new series are created then. So the
    /// samples of one series sent twice in a request are applied in request order, unless the
    /// sender encoded it two ways in that one request (labels sorted once, unsorted once; or once
    /// with other fields between its labels and its last sample, which are found to be there only
    /// when the key guessed from its tail matches nothing, `KeyForm.guessed`, and are decoded in
    /// full after the rest), which no known sender does.
    func apply(
        _ pending: UnsafeBufferPointer<PendingSeries>, keyArena: UnsafeRawPointer,
        samples: UnsafeBufferPointer<WireSample>, now: Int64, outcome: inout WriteOutcome,
        order: Scratch<Int32>, later: Scratch<Int32>, observed: Scratch<ObservedSample>, hasRawKeys: Bool,
        redecode: Scratch<Int32>,
        canonicalize: (UnsafeRawBufferPointer) -> Result<UnsafeRawBufferPointer, SeriesProblem>
    ) {
        let n = pending.count
        order.removeAll()
        later.removeAll()
        redecode.removeAll()
        observed.removeAll()
        for _ in 0..<n { order.append(0) }
        withUnsafeTemporaryAllocation(of: Int.self, capacity: SeriesTable.shardCount + 1) { start in
            // A stable counting sort of the series by shard.
            start.initialize(repeating: 0)
            for p in pending { start[SeriesTable.shardIndex(p.hash) + 1] += 1 }
            for s in 0..<SeriesTable.shardCount { start[s + 1] += start[s] }
            for i in 0..<n {
                let s = SeriesTable.shardIndex(pending[i].hash)
                order[start[s]] = Int32(i)
                start[s] += 1
            }
            // `start[s]` is now where shard s + 1 starts.
            var first = 0
            for s in 0..<SeriesTable.shardCount {
                let end = start[s]
                defer { first = end }
                guard first < end else { continue }
                let group = UnsafeBufferPointer(rebasing: order.buffer[first..<end])
                shards[s]._withUnsafeGuaranteedRef { shard in
                    shard.lock.withLock { _ in
                        applyGroup(group, in: shard, pending: pending, keyArena: keyArena, samples: samples,
                                   now: now, outcome: &outcome, later: later, observed: observed, defersRebuilt: hasRawKeys)
                    }
                }
            }
        }
        var laterInOrder = UnsafeMutableBufferPointer(start: later.base, count: later.count)
        laterInOrder.sort()
        for i in later.buffer {
            let p = pending[Int(i)]
            let sent = p.key(in: keyArena)
            let sampleSlice = p.samples(in: samples)
            let result: Applied
            switch p.form.isUnread ? canonicalize(sent) : .success(sent) {
            case .success(let key):
                let hash = p.form.isUnread ? hash(key) : p.hash
                result = shards[SeriesTable.shardIndex(hash)]._withUnsafeGuaranteedRef { shard in
                    shard.lock.withLock { _ in
                        applyLocked(shard, key: key, hash: hash, samples: sampleSlice, now: now,
                                    outcome: &outcome, observed: observed)
                    }
                }
            case .failure(_) where p.form == .guessed:
                // Not label fields: the series has more fields than its labels and one sample.
                redecode.append(i)
                continue
            case .failure(let problem):
                result = .rejected(problem)
            }
            record(result, p, key: sent, outcome: &outcome)
        }
        if observed.count > 0 { observer?.append(observed.buffer) }
    }

    /// Applies one shard's series of a request that are found, with the shard locked; the others
    /// go to `later`. Series mostly arrive in the order they were created, which is the order of
    /// the shard's entries, so the entry after the last one found is tried first: while that
    /// guess holds, the slots are neither read nor prefetched (measured 10-12% faster decode +
    /// lookup on the shared payloads). Otherwise two prefetch stages: a series' slot is prefetched
    /// 2d series ahead, its entry d ahead (through the slot, by then in cache), so neither load
    /// stalls when the series comes up.
    @inline(__always)
    func applyGroup(
        _ group: UnsafeBufferPointer<Int32>, in shard: Shard, pending: UnsafeBufferPointer<PendingSeries>,
        keyArena: UnsafeRawPointer, samples: UnsafeBufferPointer<WireSample>, now: Int64,
        outcome: inout WriteOutcome, later: Scratch<Int32>, observed: Scratch<ObservedSample>, defersRebuilt: Bool
    ) {
        let d = 8
        let n = group.count
        var cursor = -1
        var guessing = false
        for k in 0..<min(2 * d, n) { shard.prefetchSlot(hash: pending[Int(group[k])].hash) }
        for k in 0..<min(d, n) { shard.prefetchEntry(pending[Int(group[k])]) }
        let keyAhead = 4
        for k in 0..<min(keyAhead, n) { aligner_prefetch(pending[Int(group[k])].key(in: keyArena).baseAddress) }
        for k in 0..<n {
            // The request's keys are spread over a body larger than L2: fetch the key's first
            // line a few series ahead, so that comparing it does not wait for it.
            if k + keyAhead < n { aligner_prefetch(pending[Int(group[k + keyAhead])].key(in: keyArena).baseAddress) }
            if !guessing {
                if k + 2 * d < n { shard.prefetchSlot(hash: pending[Int(group[k + 2 * d])].hash) }
                if k + d < n { shard.prefetchEntry(pending[Int(group[k + d])]) }
            }
            let p = pending[Int(group[k])]
            if defersRebuilt && p.form == .rebuilt {
                later.append(group[k])
                continue
            }
            let key = p.key(in: keyArena)
            var offset = shard.findNext(after: cursor, hash: p.hash, key: key)
            guessing = offset >= 0
            if !guessing { offset = shard.find(hash: p.hash, key: key) }
            if offset < 0 {
                later.append(group[k])
                continue
            }
            cursor = offset
            append(p.samples(in: samples), to: shard.arena + offset, key: key, now: now, outcome: &outcome, observed: observed)
            record(.applied, p, key: key, outcome: &outcome)
        }
    }

    /// Counts what happened to a series in the request's outcome.
    @inline(__always)
    func record(_ result: Applied, _ p: PendingSeries, key: UnsafeRawBufferPointer, outcome: inout WriteOutcome) {
        if case .rejected(let problem) = result {
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

    /// What `applyLocked` did with a series.
    enum Applied {
        case applied
        case rejected(SeriesProblem)
    }

    /// Finds one series, or creates it (the key must then be canonical), and appends its samples (those of a series the observer keeps also to `observed`); the
    /// shard's lock is held.
    @inline(__always)
    func applyLocked(
        _ shard: Shard, key: UnsafeRawBufferPointer, hash: UInt64,
        samples: UnsafeBufferPointer<WireSample>, now: Int64, outcome: inout WriteOutcome,
        observed: Scratch<ObservedSample>
    ) -> Applied {
        var offset = shard.find(hash: hash, key: key)
        if offset < 0 {
            if let problem = SeriesKey.validate(key) { return .rejected(problem) }
            if active.add(1, ordering: .relaxed).newValue > maxSeries {
                active.subtract(1, ordering: .relaxed)
                return .rejected(.seriesLimit(maxSeries))
            }
            let window = observer?.admit(labels: decodeLabels(key)) ?? 0
            offset = shard.insert(hash: hash, key: key, now: now, window: window)
            outcome.seriesCreated += 1
        }
        append(samples, to: shard.arena + offset, key: key, now: now, outcome: &outcome, observed: observed)
        return .applied
    }

    /// Appends a series' samples to its entry: those newer than its last one (and to `observed`
    /// if the observer keeps the series); an identical repeat of the last is accepted silently.
    @inline(__always)
    func append(
        _ samples: UnsafeBufferPointer<WireSample>, to entry: UnsafeMutableRawPointer, key: UnsafeRawBufferPointer,
        now: Int64, outcome: inout WriteOutcome, observed: Scratch<ObservedSample>
    ) {
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
                if window != 0 { observed.append(ObservedSample(window: window, timestamp: sample.timestamp, valueBits: sample.valueBits)) }
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
    }

    /// Asks the observer again which series it keeps (after a rule reload changed what rules select).
    public func reselect() {
        guard let observer else { return }
        for shard in owner {
            let latest = shard.lock.withLock { _ -> [ObservedSample] in
                var latest: [ObservedSample] = []
                shard.forEachLive { offset, key in
                    let e = shard.arena + offset
                    let window = observer.admit(labels: decodeLabels(key))
                    e.storeBytes(of: window, toByteOffset: EntryLayout.window, as: UInt32.self)
                    let last = e.load(fromByteOffset: EntryLayout.lastTimestamp, as: Int64.self)
                    if window != 0 && last != .min {
                        latest.append(ObservedSample(
                            window: window, timestamp: last,
                            valueBits: e.load(fromByteOffset: EntryLayout.lastValueBits, as: UInt64.self)))
                    }
                }
                return latest
            }
            latest.withUnsafeBufferPointer { observer.append($0) }
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
        owner.reduce(pairs.memoryBytes) { total, shard in total + shard.lock.withLock { _ in shard.memoryBytes } }
    }
}

/// Decides which series are kept beyond their last sample, and receives their samples.
public protocol SeriesObserver: AnyObject, Sendable {
    /// A series seen for the first time (or again after `reselect`): its window id, or 0 to keep
    /// nothing. Called under a shard lock: it must be quick and must not call back into the table.
    func admit(labels: [Label]) -> UInt32
    /// The new samples of admitted series that one request (or a `reselect`) brought, in the
    /// order the table accepted them. Called with no table lock held, so two requests' samples
    /// for one series may arrive out of order.
    func append(_ samples: UnsafeBufferPointer<ObservedSample>)
}

/// A sample of a series a `SeriesObserver` keeps.
public struct ObservedSample: BitwiseCopyable, Sendable {
    public var window: UInt32
    public var timestamp: Int64
    public var valueBits: UInt64

    @inlinable
    public init(window: UInt32, timestamp: Int64, valueBits: UInt64) {
        self.window = window
        self.timestamp = timestamp
        self.valueBits = valueBits
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

/// Byte offsets of an arena entry's header fields; references to the series' label pairs
/// (`LabelPairs`, 4 bytes each, in key order) follow the header.
enum EntryLayout {
    static let hash = 0
    static let lastTimestamp = 8
    static let lastValueBits = 16
    static let lastSeen = 24
    static let samples = 32
    /// Bytes of the canonical key the pairs make up.
    static let keyLength = 40
    static let labelCount = 44
    static let dead = 46
    /// The observer's window for this series (0: none).
    static let window = 48
    static let header = 52

    @inline(__always)
    static func size(labels: Int) -> Int { (header + 4 * labels + 7) & ~7 }

    @inline(__always)
    static func size(of e: UnsafeRawPointer) -> Int {
        size(labels: Int(e.load(fromByteOffset: labelCount, as: UInt16.self)))
    }
}

/// One shard: an arena of entries and an open-addressing slot table (linear probing). Every field
/// is touched under `lock`.
final class Shard: @unchecked Sendable {
    static let empty: UInt64 = 0
    static let tombstone: UInt64 = .max

    let lock = Mutex<Void>(())
    let pairs: LabelPairs
    /// `[mask, slot 0, slot 1, ...]`. A slot is 0 (empty), `tombstone`, or the hash's high 32 bits
    /// over the entry's word offset + 1.
    var slotTable: UnsafeMutablePointer<UInt64>
    /// Mapped at the first insert (a table has 64 shards; an idle or small one maps none).
    var arena = UnsafeMutableRawPointer(bitPattern: 8)!
    var arenaCount = 0
    var arenaCapacity = 0
    var live = 0
    var tombstones = 0
    var deadBytes = 0
    /// Where `forEachLive` rebuilds a key.
    var keyScratch: [UInt8] = []

    init(pairs: LabelPairs) {
        self.pairs = pairs
        slotTable = Shard.makeSlotTable(64)
    }

    deinit {
        slotTable.deallocate()
        if arenaCapacity > 0 { munmap(arena, arenaCapacity) }
    }

    /// Arenas are mapped pages of their own, grown with `mremap`: growing one moves no bytes,
    /// only the pages written are resident, and a freed one goes back to the system at once
    /// (from malloc, arenas grown by doubling left their old copies resident in the heap: 10 MB
    /// more peak memory for 128k series).
    static func allocateArena(_ bytes: Int) -> UnsafeMutableRawPointer {
        guard let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            fatalError("out of memory allocating \(bytes) bytes for the series table")
        }
        return p
    }

    static func growArena(_ arena: UnsafeMutableRawPointer, from old: Int, to bytes: Int) -> UnsafeMutableRawPointer {
        guard let p = aligner_mremap(arena, old, bytes), p != MAP_FAILED else {
            fatalError("out of memory growing the series table to \(bytes) bytes")
        }
        return p
    }

    static func makeSlotTable(_ count: Int) -> UnsafeMutablePointer<UInt64> {
        let t = UnsafeMutablePointer<UInt64>.allocate(capacity: count + 1)
        t.initialize(repeating: 0, count: count + 1)
        t[0] = UInt64(count - 1)
        return t
    }

    var slotCount: Int { Int(slotTable[0]) + 1 }

    @inline(__always)
    func prefetchSlot(hash: UInt64) {
        aligner_prefetch(slotTable + 1 + (Int(truncatingIfNeeded: hash) & Int(slotTable[0])))
    }

    /// Prefetches a series' entry (its first 128 bytes: header and 19 label references) through
    /// its slot, if the slot holds one.
    @inline(__always)
    func prefetchEntry(_ p: PendingSeries) {
        let value = slotTable[1 + (Int(truncatingIfNeeded: p.hash) & Int(slotTable[0]))]
        if value != Shard.empty && value != Shard.tombstone {
            let entry = arena + Int((value & 0xFFFF_FFFF) - 1) << 3
            aligner_prefetch(entry)
            aligner_prefetch(entry + 64)
        }
    }

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
                    && matches(e, key)
                {
                    return offset
                }
            }
            i = (i + 1) & mask
        }
    }

    /// The entry that follows the one at `offset` in the arena, if it is live and `key` is its
    /// key; else -1 (also for `offset` -1).
    @inline(__always)
    func findNext(after offset: Int, hash: UInt64, key: UnsafeRawBufferPointer) -> Int {
        guard offset >= 0 else { return -1 }
        let next = offset + EntryLayout.size(of: arena + offset)
        guard next < arenaCount else { return -1 }
        let e = arena + next
        guard e.load(fromByteOffset: EntryLayout.hash, as: UInt64.self) == hash,
              e.load(fromByteOffset: EntryLayout.dead, as: UInt16.self) == 0,
              Int(e.load(fromByteOffset: EntryLayout.keyLength, as: UInt32.self)) == key.count,
              matches(e, key) else { return -1 }
        return next
    }

    /// Whether `key` is byte for byte the key an entry's pairs make up: the concatenation of
    /// their fields (`0A len pair`), in order.
    @inline(__always)
    func matches(_ e: UnsafeRawPointer, _ key: UnsafeRawBufferPointer) -> Bool {
        let n = Int(e.load(fromByteOffset: EntryLayout.labelCount, as: UInt16.self))
        guard var p = key.baseAddress else { return n == 0 }
        let end = p + key.count
        for k in 0..<n {
            // The field's length is read from the key, not from the pair, so that finding the next
            // field does not wait for the pair's cache line: the pairs of all fields load at once.
            // (The tag byte is not checked here: it is compared with the pair's field below.)
            guard end - p >= 2 else { return false }
            let head = UnsafeRawPointer(p).loadUnaligned(as: UInt16.self)
            let length = head < 0x8000 ? 2 + Int(head >> 8) : SeriesKey.longLabelFieldLength(at: p, end: end)
            let block = UnsafeRawPointer(pairs.block(e.load(fromByteOffset: EntryLayout.header + 4 * k, as: UInt32.self)))
            guard end - p >= length, Int(block.load(fromByteOffset: LabelPairs.Block.fieldLength, as: Int32.self)) == length,
                  Shard.equal(p, block + LabelPairs.Block.field, length) else { return false }
            p += length
        }
        return p == end
    }

    /// The bits in which 16 bytes at `a` and `b` differ, folded (0 when equal).
    @inline(__always)
    static func difference16(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer) -> UInt64 {
        (a.loadUnaligned(as: UInt64.self) ^ b.loadUnaligned(as: UInt64.self))
            | (a.loadUnaligned(fromByteOffset: 8, as: UInt64.self) ^ b.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }

    /// Byte equality of two short runs, 16 bytes at a time (the last 16 overlapping), so that a
    /// label field of up to 32 bytes takes two compares and one loop branch; measured faster
    /// than 8 bytes at a time (fewer mispredicted loop exits) and than three fixed compares.
    @inline(__always)
    static func equal(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Bool {
        if n >= 16 {
            var i = 0
            while i + 16 < n {
                if difference16(a + i, b + i) != 0 { return false }
                i += 16
            }
            return difference16(a + (n - 16), b + (n - 16)) == 0
        }
        if n >= 8 {
            return (a.loadUnaligned(as: UInt64.self) ^ b.loadUnaligned(as: UInt64.self))
                | (a.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self) ^ b.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self)) == 0
        }
        if n >= 4 {
            return a.loadUnaligned(as: UInt32.self) == b.loadUnaligned(as: UInt32.self)
                && a.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self) == b.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self)
        }
        for i in 0..<n where a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) {
            return false
        }
        return true
    }

    /// Adds an entry for a canonical key (validated by the caller), referring to its label pairs.
    func insert(hash: UInt64, key: UnsafeRawBufferPointer, now: Int64, window: UInt32 = 0) -> Int {
        if (live + tombstones + 1) * 2 > slotCount { rehash(capacity: max(64, (live + 1) * 2)) }
        var labels = 0
        SeriesKey.forEachFieldWithHeader(key) { _ in labels += 1 }
        let size = EntryLayout.size(labels: labels)
        if arenaCount + size > arenaCapacity {
            var capacity = max(4096, arenaCapacity * 2)
            while arenaCount + size > capacity { capacity *= 2 }
            arena = arenaCapacity == 0 ? Shard.allocateArena(capacity) : Shard.growArena(arena, from: arenaCapacity, to: capacity)
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
        e.storeBytes(of: UInt16(labels), toByteOffset: EntryLayout.labelCount, as: UInt16.self)
        e.storeBytes(of: 0, toByteOffset: EntryLayout.dead, as: UInt16.self)
        e.storeBytes(of: window, toByteOffset: EntryLayout.window, as: UInt32.self)
        let retained = pairs.retain(key: key, into: e + EntryLayout.header)
        assert(retained == labels)
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

    /// Moves to a larger slot table.
    func rehash(capacity: Int) {
        var size = 64
        while size < capacity { size *= 2 }
        guard size > slotCount else { return rebuildSlots() }
        slotTable.deallocate()
        slotTable = Shard.makeSlotTable(size)
        tombstones = 0
        forEachLiveEntry { offset in
            place(hash: (arena + offset).load(fromByteOffset: EntryLayout.hash, as: UInt64.self), offset: offset)
        }
    }

    func forEachLiveEntry(_ body: (Int) -> Void) {
        var offset = 0
        while offset < arenaCount {
            let e = arena + offset
            if e.load(fromByteOffset: EntryLayout.dead, as: UInt16.self) == 0 { body(offset) }
            offset += EntryLayout.size(of: e)
        }
    }

    /// Each live entry with its key, rebuilt from its pairs (a cold path).
    func forEachLive(_ body: (Int, UnsafeRawBufferPointer) -> Void) {
        var scratch = keyScratch
        keyScratch = []
        defer { keyScratch = scratch }
        forEachLiveEntry { offset in
            let e = arena + offset
            scratch.removeAll(keepingCapacity: true)
            for k in 0..<Int(e.load(fromByteOffset: EntryLayout.labelCount, as: UInt16.self)) {
                scratch.append(contentsOf: LabelPairs.field(pairs.block(e.load(fromByteOffset: EntryLayout.header + 4 * k, as: UInt32.self))))
            }
            scratch.withUnsafeBytes { body(offset, $0) }
        }
    }

    func evict(before cutoff: Int64) -> Int {
        var evicted = 0
        forEachLiveEntry { offset in
            let e = arena + offset
            if e.load(fromByteOffset: EntryLayout.lastSeen, as: Int64.self) < cutoff {
                e.storeBytes(of: 1, toByteOffset: EntryLayout.dead, as: UInt16.self)
                pairs.release(e + EntryLayout.header, count: Int(e.load(fromByteOffset: EntryLayout.labelCount, as: UInt16.self)))
                deadBytes += EntryLayout.size(of: e)
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
    func rebuildSlots() {
        (slotTable + 1).update(repeating: 0, count: slotCount)
        tombstones = 0
        forEachLiveEntry { offset in
            place(hash: (arena + offset).load(fromByteOffset: EntryLayout.hash, as: UInt64.self), offset: offset)
        }
    }

    /// Copies the live entries into a fresh arena (offsets change; the rehash that follows re-slots them).
    func compact() {
        var capacity = 4096
        while capacity < (arenaCount - deadBytes) * 2 { capacity *= 2 }
        let fresh = Shard.allocateArena(capacity)
        var count = 0
        forEachLiveEntry { offset in
            let size = EntryLayout.size(of: arena + offset)
            (fresh + count).copyMemory(from: arena + offset, byteCount: size)
            count += size
        }
        if arenaCapacity > 0 { munmap(arena, arenaCapacity) }
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
