import AlignerCore
import AlignerIngest
import AlignerRules
import CAlignerIntrinsics
import Synchronization

/// The samples the rules need: one window per series that some rule selects, holding the samples
/// of the longest range (with its offset) that the rules reading that series use, plus 5 minutes
/// (the lookback, and the 5 minutes back that events' evidence evaluates the rules over), and the
/// series recording rules write.
/// Everything else is never kept. Writes mark the rule groups the series feeds as dirty.
public final class WindowStore: SeriesObserver, SampleSource, SampleSink, @unchecked Sendable {
    struct Window {
        var labels: Labels
        /// The samples, oldest first, each timestamp beside its value: an append writes one
        /// array's last line and reads one header (two arrays were twice the cache misses).
        var points: [Point] = []
        /// The groups the series feeds, each with the part of that group it belongs to (0: the
        /// group is evaluated whole). One array, so an append reads one header for both.
        var feeds: [Feed] = []
        /// How far back from its newest sample the window keeps samples: the longest range and
        /// offset of the selectors that read the series, plus 5 minutes.
        var retention: Int64 = WindowStore.lookback {
            didSet { trimAt = .min }
        }
        /// No sample falls out of the retention before a sample newer than this arrives, so an
        /// append need not read the oldest samples (a cache miss per sample, a third of the
        /// append's time in a profile) before then.
        var trimAt: Int64 = .min

        /// The first sample at or after `t` (strictly after, when `after`), by binary search.
        func firstIndex(from t: Int64, after: Bool = false) -> Int {
            var lo = 0, hi = points.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if points[mid].t < t || (after && points[mid].t == t) { lo = mid + 1 } else { hi = mid }
            }
            return lo
        }

        /// The samples in `[from, through]`: `points[lo..<hi]`.
        func indices(from: Int64, through: Int64) -> (lo: Int, hi: Int) {
            (firstIndex(from: from), firstIndex(from: through, after: true))
        }

        mutating func removeAll() {
            points.removeAll()
            trimAt = .min
        }

        /// Adds a sample in time order (two requests' samples of one series may come crossed),
        /// drops what fell out of the retention, and marks the groups (or the partitions of them)
        /// that the series feeds dirty: when group `writer`'s rule wrote it, the groups after that
        /// one only. Returns the change in samples held, or nil when the window already has a
        /// sample at that time.
        @inline(__always)
        mutating func add(
            _ timestamp: Int64, _ valueBits: UInt64, from writer: Int?,
            dirtyWhole: inout [Bool], dirtyParts: inout [PartitionSet], anyDirty: inout Bool
        ) -> Int? {
            if timestamp > points.last?.t ?? .min {
                points.append(Point(t: timestamp, v: Double(bitPattern: valueBits)))
            } else {
                let lo = firstIndex(from: timestamp)
                if lo < points.count && points[lo].t == timestamp { return nil }
                points.insert(Point(t: timestamp, v: Double(bitPattern: valueBits)), at: lo)
                trimAt = .min  // the samples moved
            }
            var added = 1
            if timestamp > trimAt { added -= trim() }
            for feed in feeds {
                let g = Int(feed.group), pid = feed.partition
                // A rule's result (ALERTS included) sets only later groups evaluating: groups
                // that read each other's results would otherwise evaluate each other without
                // end. An earlier group reads it at its next evaluation.
                if let writer, g <= writer { continue }
                if dirtyWhole[g] { continue }
                anyDirty = true
                if pid == 0 || dirtyParts[g].count >= WindowStore.wholeGroupAbove {
                    dirtyWhole[g] = true
                    dirtyParts[g].removeAll()
                } else {
                    dirtyParts[g].insert(pid)
                }
            }
            return added
        }

        /// Drops what fell out of the retention, in batches (an eighth of the window, 16 samples
        /// at least): each drop moves the whole window down, so dropping one sample per append
        /// cost the window's length for every sample once a dense series filled its retention.
        /// Readers select by time, so samples kept a little longer change no answer. Returns how
        /// many samples were dropped, and sets `trimAt`: while the newest sample is at most
        /// `points[batch - 1].t + retention` there is no batch to drop, and appends only raise
        /// the batch's index (a window not yet that long: its newest sample stands for it).
        mutating func trim() -> Int {
            var dropped = 0
            let cutoff = points[points.count - 1].t - retention
            var batch = max(16, points.count >> 3)
            if points.count > batch && points[batch - 1].t < cutoff {
                dropped = firstIndex(from: cutoff)
                points.removeFirst(dropped)
                batch = max(16, points.count >> 3)
            }
            let (sum, overflow) = points[min(batch, points.count) - 1].t.addingReportingOverflow(retention)
            trimAt = overflow ? .max : sum
            return dropped
        }
    }

    /// A sample in a window.
    struct Point: Equatable {
        var t: Int64
        var v: Double
    }

    /// A group a series feeds, and its partition there.
    struct Feed: Equatable {
        var group: Int32
        var partition: UInt32
    }

    struct Selection {
        /// Per group: the selectors its rules read.
        var groupSelectors: [[[LabelMatcher]]] = []
        /// Per group, for each of its selectors: how far back it reads (range and offset, and the
        /// ranges of the subqueries around it).
        var groupReaches: [[Int64]] = []
        /// Per group: the labels it can be split by (`RuleGroup.partitionLabels`).
        var groupPartitions: [[String]?] = []
        /// Kept whatever the rules read: the owner series that lift a pod (and the claims its
        /// volumes mount) to its workload, and the series by which kube-state-metrics tells that
        /// a workload of some name exists (one per workload), which lifting by name reads.
        var always: Set<String> = ["kube_pod_owner", "kube_replicaset_owner", "kube_job_owner", "kube_pod_spec_volumes_persistentvolumeclaims_info",
                                   "kube_deployment_spec_replicas", "kube_statefulset_replicas",
                                   "kube_daemonset_status_desired_number_scheduled"]
    }

    /// The lookback of an instant selector, and the margin every window keeps beyond its reach.
    static let lookback: Int64 = 300_000

    struct State {
        var windows: [Window?] = [nil]  // id 0 is "none"
        var ids: [String: UInt32] = [:]
        var byName: [String: [UInt32]] = [:]
        var selection = Selection()
        var samples = 0
        /// Per group: partition key -> id (from 1; 0 is "not split"), each id's key, each id's
        /// windows by metric name.
        var partitionIDs: [[String: UInt32]] = []
        var partitionKeys: [[String]] = []
        var members: [[[String: [UInt32]]]] = []
        /// What writes touched since the last `takeDirty`, per group.
        var dirtyWhole: [Bool] = []
        var dirtyParts: [PartitionSet] = []
        var anyDirty = false
        /// The newest sample time among what made groups dirty since the last `takeDirty`.
        var newestDirty = Int64.min
        /// The windows each selector matches, by the selector's text. A window's labels never
        /// change and windows are only added, so an answer only grows by the windows added
        /// since: a round reads the windows a selector matches instead of testing its matchers
        /// on every window of the metric (`code=~"5.."` on every request counter).
        var matched: [String: Matched] = [:]
    }

    /// The windows a selector matched among the first `windowCount`: their ids, in order, and
    /// the same as bits.
    struct Matched {
        var windowCount: Int
        var ids: [UInt32]
        var bits: PartitionSet
    }

    let state = Mutex(State())
    let signal: AsyncStream<Void>.Continuation
    /// Yields whenever some group became dirty (coalesced: at most one pending).
    public let changes: AsyncStream<Void>

    public init() {
        (changes, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Whether no rule reads the series of this metric (so none are kept beyond their last
    /// sample): a query for them finds nothing. Unknown (false) for selectors without a name.
    public func unkept(metric name: String) -> Bool {
        state.withLock { s in
            if s.selection.always.contains(name) { return false }
            for group in s.selection.groupSelectors {
                for matchers in group {
                    let named = WindowStore.metricName(matchers)
                    if named == nil || named == name { return false }
                }
            }
            return true
        }
    }

    /// What the rules of `groups` select; windows of series no rule selects any more are dropped.
    public func select(_ groups: [RuleGroup]) {
        var selection = Selection()
        for g in groups {
            var selectors: [[LabelMatcher]] = []
            var reaches: [Int64] = []
            for r in g.rules {
                for e in r.expressions {
                    for (matchers, reach) in WindowStore.reaches(e) {
                        selectors.append(matchers)
                        reaches.append(reach)
                    }
                }
            }
            selection.groupSelectors.append(selectors)
            selection.groupReaches.append(reaches)
            selection.groupPartitions.append(g.partitionLabels)
        }
        state.withLock { s in
            s.selection = selection
            s.partitionIDs = groups.map { _ in [:] }
            s.partitionKeys = groups.map { _ in [""] }
            s.members = groups.map { _ in [[:]] }
            s.dirtyWhole = groups.map { _ in false }
            s.dirtyParts = groups.map { _ in PartitionSet() }
            s.anyDirty = false
            for id in s.windows.indices.dropFirst() where s.windows[id] != nil {
                s.windows[id]!.feeds = []
                WindowStore.assign(&s, UInt32(id))
            }
        }
    }

    /// Sets a window's groups and its partition in each, and lists it among the partition's windows.
    static func assign(_ s: inout State, _ id: UInt32) {
        let labels = s.windows[Int(id)]!.labels
        let groups = WindowStore.groups(for: labels, s.selection)
        var partitions: [UInt32] = []
        for g in groups {
            guard let names = s.selection.groupPartitions[g] else { partitions.append(0); continue }
            let key = labels.partitionKey(names)
            let pid: UInt32
            if let known = s.partitionIDs[g][key] {
                pid = known
            } else {
                pid = UInt32(s.members[g].count)
                s.partitionIDs[g][key] = pid
                s.partitionKeys[g].append(key)
                s.members[g].append([:])
            }
            partitions.append(pid)
        }
        let old = s.windows[Int(id)]!.feeds
        let feeds = zip(groups, partitions).map { Feed(group: Int32($0), partition: $1) }
        for feed in feeds where feed.partition != 0 && !old.contains(feed) {
            s.members[Int(feed.group)][Int(feed.partition)][labels.value(metricNameLabel), default: []].append(id)
        }
        s.windows[Int(id)]!.feeds = feeds
        s.windows[Int(id)]!.retention = WindowStore.retention(for: labels, s.selection)
    }

    /// The partition of a group that a label set belongs to, if the group is split and the
    /// partition has series.
    public func partition(of labels: Labels, group: Int) -> UInt32? {
        state.withLock { s in
            guard s.selection.groupPartitions.indices.contains(group), let names = s.selection.groupPartitions[group] else { return nil }
            return s.partitionIDs[group][labels.partitionKey(names)]
        }
    }

    /// How many partitions a group has (ids `1..<count`; 0 when it is evaluated whole).
    public func partitionCount(group: Int) -> Int {
        state.withLock { s in
            guard s.selection.groupPartitions.indices.contains(group), s.selection.groupPartitions[group] != nil else { return 0 }
            return s.members[group].count
        }
    }

    /// The keys of some partitions of a group.
    public func partitionKeys(group: Int, _ partitions: Set<UInt32>) -> Set<String> {
        state.withLock { s in Set(partitions.compactMap { s.partitionKeys[group].indices.contains(Int($0)) ? s.partitionKeys[group][Int($0)] : nil }) }
    }

    /// Each selector of an expression with how far back before the evaluation time it reads:
    /// its range and offset, and the range and offset of every subquery around it.
    static func reaches(_ e: Expr, outer: Int64 = 0) -> [(matchers: [LabelMatcher], reach: Int64)] {
        switch e {
        case .matrix(let s, let range): [(s.matchers, outer + range + max(0, s.offset))]
        case .selector(let s): [(s.matchers, outer + max(0, s.offset))]
        case .call(_, let args): args.flatMap { reaches($0, outer: outer) }
        case .aggregate(_, let e, let p, _, _): reaches(e, outer: outer) + (p.map { reaches($0, outer: outer) } ?? [])
        case .binary(_, let l, let r, _, _): reaches(l, outer: outer) + reaches(r, outer: outer)
        case .negate(let e), .paren(let e): reaches(e, outer: outer)
        case .subquery(let q): reaches(q.expr, outer: outer + q.range + max(0, q.offset))
        case .number, .string: []
        }
    }

    /// How long a window of this series keeps samples: the longest reach of the selectors that
    /// read it, plus 5 minutes.
    static func retention(for labels: Labels, _ selection: Selection) -> Int64 {
        var longest: Int64 = 0
        for (selectors, reaches) in zip(selection.groupSelectors, selection.groupReaches) {
            for (matchers, reach) in zip(selectors, reaches) where reach > longest {
                if matchers.allSatisfy({ (try? $0.matches(labels.value($0.name))) == true }) { longest = reach }
            }
        }
        return longest + lookback
    }

    static func groups(for labels: Labels, _ selection: Selection) -> [Int] {
        var out: [Int] = []
        for (g, selectors) in selection.groupSelectors.enumerated() {
            if selectors.contains(where: { matchers in matchers.allSatisfy { (try? $0.matches(labels.value($0.name))) == true } }) {
                out.append(g)
            }
        }
        return out
    }

    // MARK: SeriesObserver

    public func admit(labels: [Label]) -> UInt32 {
        state.withLock { s in
            let groups = WindowStore.groups(for: labels, s.selection)
            let key = labels.key
            if let id = s.ids[key] {
                WindowStore.assign(&s, id)
                return groups.isEmpty && !s.selection.always.contains(labels.value(metricNameLabel)) ? 0 : id
            }
            guard !groups.isEmpty || s.selection.always.contains(labels.value(metricNameLabel)) else { return 0 }
            return WindowStore.add(&s, labels: labels, groups: groups)
        }
    }

    static func add(_ s: inout State, labels: Labels, groups: [Int]) -> UInt32 {
        let id = UInt32(s.windows.count)
        s.windows.append(Window(labels: labels))
        s.ids[labels.key] = id
        s.byName[labels.value(metricNameLabel), default: []].append(id)
        if !groups.isEmpty { assign(&s, id) }
        return id
    }

    /// Appends a request's samples of selected series. Their windows are spread over the heap,
    /// and each append reads the window's entry, its arrays' headers and their last lines: cache
    /// misses, in a profile under load, unless fetched ahead. So the entries are fetched
    /// `ahead` samples before their turn, the headers (found from the entries then in cache)
    /// half as many before, the last lines (from the counts then in cache) a quarter.
    public func append(_ samples: UnsafeBufferPointer<ObservedSample>) {
        let ahead = 16, n = samples.count
        appending { s in
            // From `ahead` steps before the first sample, so the first ones are fetched too.
            for k in -ahead..<n {
                s.windows.withUnsafeBytes { raw in
                    let base = raw.baseAddress!
                    if k + ahead < n { aligner_prefetch(base + Int(samples[k + ahead].window) * WindowStore.windowStride) }
                    if (0..<n).contains(k + ahead / 2) { WindowStore.prefetchHeaders(base, samples[k + ahead / 2].window) }
                    if (0..<n).contains(k + ahead / 4) { WindowStore.prefetchTails(base, samples[k + ahead / 4].window) }
                }
                if k >= 0 { WindowStore.append(&s, samples[k].window, samples[k].timestamp, samples[k].valueBits, from: nil) }
            }
        }
    }

    /// Where a window's arrays keep their storage, read in place from `State.windows` (no copy,
    /// no reference counting): an `Array` is one reference to its storage, whose header (object
    /// header, count, capacity) takes 32 bytes before the elements. Window 0 (none) is never
    /// passed; every other id has a window.
    static let windowStride = MemoryLayout<Window?>.stride
    static let pointsOffset = MemoryLayout<Window>.offset(of: \Window.points)!
    static let feedsOffset = MemoryLayout<Window>.offset(of: \Window.feeds)!

    @inline(__always)
    static func storage(_ windows: UnsafeRawPointer, _ window: UInt32) -> (points: UnsafeRawPointer, feeds: UnsafeRawPointer) {
        let w = windows + Int(window) * windowStride
        return (w.load(fromByteOffset: pointsOffset, as: UnsafeRawPointer.self),
                w.load(fromByteOffset: feedsOffset, as: UnsafeRawPointer.self))
    }

    @inline(__always)
    static func prefetchHeaders(_ windows: UnsafeRawPointer, _ window: UInt32) {
        let (points, feeds) = storage(windows, window)
        aligner_prefetch(points)
        aligner_prefetch(feeds)
    }

    /// The last point (read) and the next (written): one line, or two when the next starts one.
    @inline(__always)
    static func prefetchTails(_ windows: UnsafeRawPointer, _ window: UInt32) {
        let (points, _) = storage(windows, window)
        let count = points.load(fromByteOffset: 16, as: Int.self)
        aligner_prefetch(points + 16 + 16 * count)
        aligner_prefetch(points + 32 + 16 * count)
    }

    /// Appends one sample to a window (tests and tools; ingestion hands samples over in batches).
    public func append(window: UInt32, timestamp: Int64, valueBits: UInt64) {
        append(window: window, timestamp: timestamp, valueBits: valueBits, from: nil)
    }

    func append(window: UInt32, timestamp: Int64, valueBits: UInt64, from writer: Int?) {
        appending { s in WindowStore.append(&s, window, timestamp, valueBits, from: writer) }
    }

    /// Runs `body` under the lock, and wakes the rule engine when it made the first group dirty.
    func appending(_ body: (inout State) -> Void) {
        let becameDirty = state.withLock { s -> Bool in
            let wasClean = !s.anyDirty
            body(&s)
            return wasClean && s.anyDirty
        }
        if becameDirty { signal.yield() }
    }

    /// Adds a sample to a window and marks what it feeds dirty, in place (see `Window.add`).
    /// Runs for every sample a rule selects.
    @inline(__always)
    static func append(_ s: inout State, _ window: UInt32, _ timestamp: Int64, _ valueBits: UInt64, from writer: Int?) {
        guard let added = s.windows[Int(window)]?.add(
            timestamp, valueBits, from: writer,
            dirtyWhole: &s.dirtyWhole, dirtyParts: &s.dirtyParts, anyDirty: &s.anyDirty)
        else { return }
        s.samples += added
        if timestamp > s.newestDirty { s.newestDirty = timestamp }
    }

    /// Past this many touched partitions a group is evaluated whole.
    static let wholeGroupAbove = 4096

    /// The groups marked dirty since the last call, with what of each was touched; cleared.
    public func takeDirty() -> [Int: Touched] { takeDirtyWithNewest().groups }

    /// The groups marked dirty since the last call, and the newest sample time among what
    /// marked them (a sender whose clock runs ahead sends samples later than now); cleared.
    public func takeDirtyWithNewest() -> (groups: [Int: Touched], newest: Int64) {
        state.withLock { s in
            let newest = s.newestDirty
            s.newestDirty = .min
            guard s.anyDirty else { return ([:], newest) }
            var out: [Int: Touched] = [:]
            for g in s.dirtyWhole.indices {
                if s.dirtyWhole[g] {
                    out[g] = .all
                } else if !s.dirtyParts[g].isEmpty {
                    out[g] = .partitions(s.dirtyParts[g].members)
                }
                s.dirtyWhole[g] = false
                s.dirtyParts[g].removeAll()
            }
            s.anyDirty = false
            return (out, newest)
        }
    }

    // MARK: SampleSink (recording rules)

    public func append(_ labels: Labels, timestamp: Int64, value: Double) {
        append(labels, timestamp: timestamp, value: value, from: nil)
    }

    public func append(_ labels: Labels, timestamp: Int64, value: Double, fromGroup group: Int) {
        append(labels, timestamp: timestamp, value: value, from: group)
    }

    func append(_ labels: Labels, timestamp: Int64, value: Double, from group: Int?) {
        let sorted = labels.sorted()
        let (id, isNewer) = state.withLock { s -> (UInt32, Bool) in
            let id = s.ids[sorted.key] ?? WindowStore.add(&s, labels: sorted, groups: WindowStore.groups(for: sorted, s.selection))
            return (id, (s.windows[Int(id)]?.points.last?.t ?? .min) < timestamp)
        }
        if isNewer { append(window: id, timestamp: timestamp, valueBits: value.bitPattern, from: group) }
    }

    /// Empties windows whose newest sample is older than the retention (series that stopped).
    public func sweep(now: Int64) {
        state.withLock { s in
            for id in s.windows.indices.dropFirst() {
                guard let last = s.windows[id]?.points.last?.t, let retention = s.windows[id]?.retention, last < now - retention else { continue }
                s.samples -= s.windows[id]!.points.count
                s.windows[id]!.removeAll()
            }
        }
    }

    // MARK: SampleSource

    public func series(matching matchers: [LabelMatcher], from: Int64, through: Int64) -> [StoredSeries] {
        series(matching: matchers, from: from, through: through, in: nil)
    }

    /// Series of some partitions of a group only (all series when `part` is nil).
    func series(matching matchers: [LabelMatcher], from: Int64, through: Int64, in part: (group: Int, partitions: Set<UInt32>)?) -> [StoredSeries] {
        eachMatching(matchers, part) { w in
            let (lo, hi) = w.indices(from: from, through: through)
            guard lo < hi else { return nil }
            let points = w.points[lo..<hi]
            return StoredSeries(labels: w.labels, timestamps: points.map(\.t), values: points.map(\.v))
        }
    }

    public func latest(matching matchers: [LabelMatcher], from: Int64, through: Int64) -> [LatestSample] {
        latest(matching: matchers, from: from, through: through, in: nil)
    }

    public func tail(matching matchers: [LabelMatcher], from: Int64, through: Int64, count: Int) -> [StoredSeries] {
        tail(matching: matchers, from: from, through: through, count: count, in: nil)
    }

    /// The last `count` samples in `[from, through]` that are not stale markers, copying only those.
    func tail(matching matchers: [LabelMatcher], from: Int64, through: Int64, count: Int, in part: (group: Int, partitions: Set<UInt32>)?) -> [StoredSeries] {
        eachMatching(matchers, part) { w in
            let (lo, hi) = w.indices(from: from, through: through)
            // Where the last `count` samples that are not stale markers start, then those, in order.
            var found = 0, start = hi, i = hi - 1
            while i >= lo && found < count {
                if !SampleValue.isStale(bits: w.points[i].v.bitPattern) {
                    found += 1
                    start = i
                }
                i -= 1
            }
            guard found > 0 else { return nil }
            var ts: [Int64] = [], vs: [Double] = []
            ts.reserveCapacity(found)
            vs.reserveCapacity(found)
            for p in w.points[start..<hi] where !SampleValue.isStale(bits: p.v.bitPattern) {
                ts.append(p.t)
                vs.append(p.v)
            }
            return StoredSeries(labels: w.labels, timestamps: ts, values: vs)
        }
    }

    public func counts(matching matchers: [LabelMatcher], from: Int64, through: Int64) -> [SeriesCount] {
        counts(matching: matchers, from: from, through: through, in: nil)
    }

    /// The samples in `[from, through]` that are not stale markers, counted in place (copying
    /// five minutes of a dense series to count them was the pack's costliest rule).
    func counts(matching matchers: [LabelMatcher], from: Int64, through: Int64, in part: (group: Int, partitions: Set<UInt32>)?) -> [SeriesCount] {
        eachMatching(matchers, part) { w in
            let (lo, hi) = w.indices(from: from, through: through)
            let n = w.points[lo..<hi].count { !SampleValue.isStale(bits: $0.v.bitPattern) }
            return n == 0 ? nil : SeriesCount(labels: w.labels, count: n)
        }
    }

    /// The newest sample in `[from, through]` of each matching series, without copying windows.
    func latest(matching matchers: [LabelMatcher], from: Int64, through: Int64, in part: (group: Int, partitions: Set<UInt32>)?) -> [LatestSample] {
        eachMatching(matchers, part) { w in
            guard let p = w.points.last(where: { $0.t <= through }), p.t >= from else { return nil }
            return LatestSample(labels: w.labels, timestamp: p.t, value: p.v)
        }
    }

    /// What `read` makes of each window matching every matcher (within some partitions of a
    /// group when given), under the lock. Windows are read in place (`read` gets them `inout`
    /// and must not change them): binding each to a local copied its arrays' references,
    /// a retain and a release each per series and selector, 4% of the core under the pack.
    ///
    /// The lock is taken for `readChunk` windows at a time, so that a write waits for a chunk, not
    /// for a whole selector's read (a rate over every request counter of the shared load reads
    /// thousands of windows). A window is read whole; a write between chunks lands in windows
    /// read before or after it, as if it had come a moment earlier or later.
    func eachMatching<T: Sendable>(
        _ matchers: [LabelMatcher], _ part: (group: Int, partitions: Set<UInt32>)?, _ read: (inout Window) -> T?
    ) -> [T] {
        let ids: [UInt32] = state.withLock { s in
            let matched = WindowStore.matched(&s, matchers)
            guard let part else { return matched.ids }
            return WindowStore.candidates(s, matchers, part).filter { matched.bits.contains($0) }
        }
        var out: [T] = []
        var start = 0
        while start < ids.count {
            let end = min(start + WindowStore.readChunk, ids.count)
            state.withLock { s in
                for id in ids[start..<end] where s.windows[Int(id)] != nil {
                    if let x = read(&s.windows[Int(id)]!) { out.append(x) }
                }
            }
            start = end
        }
        return out
    }

    /// Windows read per hold of the lock (see `eachMatching`).
    static let readChunk = 512

    /// The windows a selector matches, from the cache: windows are only added, with increasing
    /// ids, so only those added since the last answer are tested (and appended in id order, the
    /// order the metric's windows are listed in).
    static func matched(_ s: inout State, _ matchers: [LabelMatcher]) -> Matched {
        let key = matchers.map(\.description).joined(separator: ",")
        var answer = s.matched[key] ?? Matched(windowCount: 1, ids: [], bits: PartitionSet())  // id 0 is "none"
        guard answer.windowCount < s.windows.count else { return answer }
        for id in added(s, matchers, since: answer.windowCount) where s.windows[Int(id)] != nil && matches(matchers, &s.windows[Int(id)]!) {
            answer.ids.append(id)
            answer.bits.insert(id)
        }
        answer.windowCount = s.windows.count
        // Queries through the API may name any selector: the cache is bounded.
        if s.matched.count >= 4096 { s.matched.removeAll() }
        s.matched[key] = answer
        return answer
    }

    @inline(__always)
    static func matches(_ matchers: [LabelMatcher], _ w: inout Window) -> Bool {
        for m in matchers where (try? m.matches(w.labels.value(m.name))) != true { return false }
        return true
    }

    /// The metric a selector names with `__name__="..."`, if it names one.
    static func metricName(_ matchers: [LabelMatcher]) -> String? {
        matchers.first { $0.name == metricNameLabel && $0.op == .equal }?.value
    }

    /// The windows from id `windowCount` on that a selector may match: of the metric it names,
    /// when it names one (each metric's list is in id order: those are its tail).
    static func added(_ s: State, _ matchers: [LabelMatcher], since windowCount: Int) -> [UInt32] {
        guard let name = metricName(matchers) else { return Array(UInt32(windowCount)..<UInt32(s.windows.count)) }
        let ids = s.byName[name] ?? []
        var first = ids.count
        while first > 0 && ids[first - 1] >= UInt32(windowCount) { first -= 1 }
        return Array(ids[first...])
    }

    /// The windows of some partitions of a group that a selector may match: of the metric it
    /// names, when it names one.
    static func candidates(_ s: State, _ matchers: [LabelMatcher], _ part: (group: Int, partitions: Set<UInt32>)) -> [UInt32] {
        let name = metricName(matchers)
        var candidates: [UInt32] = []
        for pid in part.partitions where s.members[part.group].indices.contains(Int(pid)) {
            let byName = s.members[part.group][Int(pid)]
            if let name {
                candidates += byName[name] ?? []
            } else {
                for ids in byName.values { candidates += ids }
            }
        }
        return candidates
    }

    /// Series and samples held (reported in `/metrics`).
    public var size: (series: Int, samples: Int) {
        state.withLock { s in (s.windows.count - 1, s.samples) }
    }
}

/// What writes touched of a group: some of its partitions, or all of it.
public enum Touched: Sendable, Equatable {
    case all
    case partitions(Set<UInt32>)
}

/// The window store seen through some partitions of one group: what a partial evaluation reads.
public struct PartitionedSource: SampleSource {
    let store: WindowStore
    let group: Int
    let partitions: Set<UInt32>

    public init(store: WindowStore, group: Int, partitions: Set<UInt32>) {
        self.store = store
        self.group = group
        self.partitions = partitions
    }

    public func series(matching matchers: [LabelMatcher], from: Int64, through: Int64) -> [StoredSeries] {
        store.series(matching: matchers, from: from, through: through, in: (group, partitions))
    }

    public func latest(matching matchers: [LabelMatcher], from: Int64, through: Int64) -> [LatestSample] {
        store.latest(matching: matchers, from: from, through: through, in: (group, partitions))
    }

    public func tail(matching matchers: [LabelMatcher], from: Int64, through: Int64, count: Int) -> [StoredSeries] {
        store.tail(matching: matchers, from: from, through: through, count: count, in: (group, partitions))
    }

    public func counts(matching matchers: [LabelMatcher], from: Int64, through: Int64) -> [SeriesCount] {
        store.counts(matching: matchers, from: from, through: through, in: (group, partitions))
    }
}

/// Partition ids of one group (dense, from 1) as bits: marking one is a bit test, not a hash.
struct PartitionSet {
    var words: [UInt64] = []
    private(set) var count = 0

    @inline(__always)
    mutating func insert(_ id: UInt32) {
        let w = Int(id >> 6)
        if w >= words.count { words += repeatElement(0, count: w + 1 - words.count) }
        let bit: UInt64 = 1 << UInt64(id & 63)
        if words[w] & bit == 0 {
            words[w] |= bit
            count += 1
        }
    }

    var isEmpty: Bool { count == 0 }

    @inline(__always)
    func contains(_ id: UInt32) -> Bool {
        let w = Int(id >> 6)
        return w < words.count && words[w] & (1 << UInt64(id & 63)) != 0
    }

    mutating func removeAll() {
        guard count > 0 else { return }
        for i in words.indices { words[i] = 0 }
        count = 0
    }

    var members: Set<UInt32> {
        var out = Set<UInt32>(minimumCapacity: count)
        for (w, word) in words.enumerated() where word != 0 {
            var bits = word
            while bits != 0 {
                out.insert(UInt32(w << 6 + bits.trailingZeroBitCount))
                bits &= bits - 1
            }
        }
        return out
    }
}
