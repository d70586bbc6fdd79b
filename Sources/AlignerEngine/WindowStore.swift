import AlignerCore
import AlignerIngest
import AlignerRules
import Synchronization

/// The samples the rules need: one window per series that some rule selects, holding the samples
/// of the longest range plus the lookback any rule reads, and the series recording rules write.
/// Everything else is never kept. Writes mark the rule groups the series feeds as dirty.
public final class WindowStore: SeriesObserver, SampleSource, SampleSink, @unchecked Sendable {
    struct Window {
        var labels: Labels
        var timestamps: [Int64] = []
        var values: [Double] = []
        var groups: [Int]
    }

    struct Selection {
        /// Per group: the selectors its rules read.
        var groupSelectors: [[[LabelMatcher]]] = []
        /// Kept whatever the rules read: the owner series that lift a pod to its workload.
        var always: Set<String> = ["kube_pod_owner", "kube_replicaset_owner"]
        var retention: Int64 = 300_000
    }

    struct State {
        var windows: [Window?] = [nil]  // id 0 is "none"
        var ids: [String: UInt32] = [:]
        var byName: [String: [UInt32]] = [:]
        var selection = Selection()
        var samples = 0
    }

    let state = Mutex(State())
    let dirty = Mutex<Set<Int>>([])
    let signal: AsyncStream<Void>.Continuation
    /// Yields whenever some group became dirty (coalesced: at most one pending).
    public let changes: AsyncStream<Void>

    public init() {
        (changes, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// What the rules of `groups` select; windows of series no rule selects any more are dropped.
    public func select(_ groups: [RuleGroup]) {
        var selection = Selection()
        var longest: Int64 = 0
        for g in groups {
            var selectors: [[LabelMatcher]] = []
            for r in g.rules {
                for e in [r.expr] + (r.resolve.map { [$0] } ?? []) {
                    selectors += e.selectors.map(\.matchers)
                    longest = max(longest, WindowStore.longestRange(e))
                }
            }
            selection.groupSelectors.append(selectors)
        }
        selection.retention = longest + 300_000
        state.withLock { s in
            s.selection = selection
            for id in s.windows.indices.dropFirst() {
                guard let w = s.windows[id] else { continue }
                let groups = WindowStore.groups(for: w.labels, selection)
                s.windows[id]!.groups = groups
            }
        }
    }

    static func longestRange(_ e: Expr) -> Int64 {
        switch e {
        case .matrix(let s, let range): range + max(0, s.offset)
        case .selector(let s): max(0, s.offset)
        case .call(_, let args): args.map(longestRange).max() ?? 0
        case .aggregate(_, let e, let p, _, _): max(longestRange(e), p.map(longestRange) ?? 0)
        case .binary(_, let l, let r, _, _): max(longestRange(l), longestRange(r))
        case .negate(let e), .paren(let e): longestRange(e)
        case .subquery(let q): q.range + max(0, q.offset) + longestRange(q.expr)
        case .number, .string: 0
        }
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
                s.windows[Int(id)]!.groups = groups
                return groups.isEmpty && !s.selection.always.contains(labels.value(metricNameLabel)) ? 0 : id
            }
            guard !groups.isEmpty || s.selection.always.contains(labels.value(metricNameLabel)) else { return 0 }
            return WindowStore.add(&s, labels: labels, groups: groups)
        }
    }

    static func add(_ s: inout State, labels: Labels, groups: [Int]) -> UInt32 {
        let id = UInt32(s.windows.count)
        s.windows.append(Window(labels: labels, groups: groups))
        s.ids[labels.key] = id
        s.byName[labels.value(metricNameLabel), default: []].append(id)
        return id
    }

    public func append(window: UInt32, timestamp: Int64, valueBits: UInt64) {
        let groups = state.withLock { s -> [Int] in
            guard var w = s.windows[Int(window)] else { return [] }
            s.windows[Int(window)] = nil  // keep the arrays uniquely referenced while appending
            w.timestamps.append(timestamp)
            w.values.append(Double(bitPattern: valueBits))
            s.samples += 1
            let cutoff = timestamp - s.selection.retention
            if let first = w.timestamps.first, first < cutoff {
                let drop = w.timestamps.firstIndex { $0 >= cutoff } ?? w.timestamps.count
                w.timestamps.removeFirst(drop)
                w.values.removeFirst(drop)
                s.samples -= drop
            }
            let groups = w.groups
            s.windows[Int(window)] = w
            return groups
        }
        guard !groups.isEmpty else { return }
        let wasEmpty = dirty.withLock { d in
            let empty = d.isEmpty
            d.formUnion(groups)
            return empty
        }
        if wasEmpty { signal.yield() }
    }

    /// The groups marked dirty since the last call, cleared.
    public func takeDirty() -> Set<Int> { dirty.withLock { d in defer { d.removeAll() }; return d } }

    // MARK: SampleSink (recording rules)

    public func append(_ labels: Labels, timestamp: Int64, value: Double) {
        let sorted = labels.sorted()
        let (id, isNewer) = state.withLock { s -> (UInt32, Bool) in
            let id = s.ids[sorted.key] ?? WindowStore.add(&s, labels: sorted, groups: WindowStore.groups(for: sorted, s.selection))
            return (id, (s.windows[Int(id)]?.timestamps.last ?? .min) < timestamp)
        }
        if isNewer { append(window: id, timestamp: timestamp, valueBits: value.bitPattern) }
    }

    /// Empties windows whose newest sample is older than the retention (series that stopped).
    public func sweep(now: Int64) {
        state.withLock { s in
            for id in s.windows.indices.dropFirst() {
                guard let last = s.windows[id]?.timestamps.last, last < now - s.selection.retention else { continue }
                s.samples -= s.windows[id]!.timestamps.count
                s.windows[id]!.timestamps.removeAll()
                s.windows[id]!.values.removeAll()
            }
        }
    }

    // MARK: SampleSource

    public func series(matching matchers: [LabelMatcher], from: Int64, through: Int64) -> [StoredSeries] {
        state.withLock { s in
            let name = matchers.first { $0.name == metricNameLabel && $0.op == .equal }?.value
            let candidates: [UInt32] = name.map { s.byName[$0] ?? [] } ?? Array(1..<UInt32(s.windows.count))
            var out: [StoredSeries] = []
            for id in candidates {
                guard let w = s.windows[Int(id)] else { continue }
                guard matchers.allSatisfy({ (try? $0.matches(w.labels.value($0.name))) == true }) else { continue }
                let lo = w.timestamps.firstIndex { $0 >= from } ?? w.timestamps.count
                let hi = w.timestamps.lastIndex { $0 <= through }.map { $0 + 1 } ?? 0
                guard lo < hi else { continue }
                out.append(StoredSeries(labels: w.labels, timestamps: Array(w.timestamps[lo..<hi]), values: Array(w.values[lo..<hi])))
            }
            return out
        }
    }

    /// Series and samples held (reported in `/metrics`).
    public var size: (series: Int, samples: Int) {
        state.withLock { s in (s.windows.count - 1, s.samples) }
    }
}
