import AlignerCore
import AlignerEngine
import AlignerEvents
import AlignerRules
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Owns the loaded rules and their alert states; evaluates groups as their inputs change.
actor RuleEngine {
    /// The engine runs on a thread of its own, not on Swift's cooperative pool: a group's
    /// evaluation runs for up to hundreds of milliseconds without a suspension point, and on the
    /// pool (one thread where Aligner has one core) it held back every request handler that long
    /// (writes' p99 at 330-990 ms under the shared load with the pack, one core; 15-18 ms since). On its own
    /// thread the kernel shares the core between it and the handlers. One thread for every engine
    /// of the process, never stopped (as NIO's singleton event loops).
    static let thread: any EventLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1).next()

    nonisolated var unownedExecutor: UnownedSerialExecutor { RuleEngine.thread.executor.asUnownedSerialExecutor() }

    let store: WindowStore
    let paths: [String]
    let logger: Logger
    private(set) var state: RuleGroupsState
    private(set) var lastEvaluation: [Int64]
    /// When the time-driven pass last took up each group (milliseconds).
    var lastTimeDriven: [Int64]
    private(set) var evaluationSeconds: [Double]
    let onReload: @Sendable () -> Void
    /// `rules.gap_tolerance`: how long a pending alert survives evaluations that miss its series.
    let gapTolerance: Int64
    /// Group evaluations over some partitions, and over the whole group (`/metrics`).
    nonisolated let evaluationCounts = Mutex(EvaluationCounts())
    /// The step of subqueries that name none (`rules.evaluation_interval`, as Prometheus' global one).
    let subqueryStep: Int64
    /// `rules.query_offset`: how far back the queries of groups without their own look.
    let queryOffset: Int64
    /// `$externalLabels` and `$externalURL` in templates (`rules.external_labels`, `rules.external_url`).
    let external: (labels: [String: String], url: String)
    /// Where firing alerts with an `event` routing go.
    let events: EventManager?

    init(
        store: WindowStore, paths: [String], logger: Logger, gapTolerance: Int64 = 0, events: EventManager? = nil,
        subqueryStep: Int64 = 60_000, queryOffset: Int64 = 0, external: (labels: [String: String], url: String) = ([:], ""),
        onReload: @escaping @Sendable () -> Void
    ) throws {
        self.subqueryStep = subqueryStep
        self.queryOffset = queryOffset
        self.external = external
        self.events = events
        self.onReload = onReload
        self.gapTolerance = gapTolerance
        self.store = store
        self.paths = paths
        self.logger = logger
        let groups = try RuleEngine.load(paths)
        state = try RuleGroupsState(groups: groups)
        state.defaultSubqueryStep = subqueryStep
        state.defaultQueryOffset = queryOffset
        (state.externalLabels, state.externalURL) = external
        // Pending and firing alerts come back after a restart (`for` keeps counting from activeAt).
        if let text = try events?.store.stateSync("alerts"),
           let saved = try? JSONDecoder().decode([String: [Alert]].self, from: Data(text.utf8)) {
            state.restore(saved)
        }
        // What the detectors learnt of each series comes back too (no warm-up again).
        if state.hasDetectors, let text = try events?.store.stateSync("detectors") { state.restoreDetectors(Data(text.utf8)) }
        levelStarts = events?.levelStartsAtLoad ?? [:]
        lastEvaluation = groups.map { _ in 0 }
        lastTimeDriven = groups.map { _ in 0 }
        evaluationSeconds = groups.map { _ in 0 }
        generations = groups.map { _ in 0 }
        partitionsEvaluated = groups.map { _ in [] }
        store.select(groups)
    }

    /// Rule files of the configured paths (files, or folders of `*.yml`/`*.yaml`).
    static func load(_ paths: [String]) throws -> [RuleGroup] {
        for path in paths where !FileManager.default.fileExists(atPath: path) {
            throw RuleFileError(problems: ["\(path): no such rule file or folder (rules.paths)"])
        }
        return try RuleFileLoader.load(files: RuleFileLoader.expandingFolders(paths), templates: AlertTemplate.problem)
    }

    /// Reloads every rule file, all or nothing; unchanged rules keep their alert states.
    func reload() throws -> Int {
        let groups = try RuleEngine.load(paths)
        var next = try RuleGroupsState(groups: groups)
        next.defaultSubqueryStep = subqueryStep
        next.defaultQueryOffset = queryOffset
        (next.externalLabels, next.externalURL) = external
        next.carryOver(from: state)
        state = next
        lastEvaluation = groups.map { _ in 0 }
        lastTimeDriven = groups.map { _ in 0 }
        evaluationSeconds = groups.map { _ in 0 }
        generations = groups.map { _ in 0 }
        partitionsEvaluated = groups.map { _ in [] }
        deferred.removeAll()
        ahead.removeAll()
        aheadDue = nil
        savedAlertsDigest = nil
        store.select(groups)
        onReload()
        return groups.reduce(0) { $0 + $1.rules.count }
    }

    /// Evaluates, without waiting for the rounds' spacing, the parts of groups whose alerts'
    /// `for` (or `keep_firing_for`) ended: the alert's partition when its group is split, else
    /// the group.
    func evaluateDue(now: Int64) async {
        lastDueEvaluation = now
        var work: [Int: Touched] = [:]
        for (gi, labels) in state.due(at: now) {
            if let pid = store.partition(of: labels, group: gi) {
                work[gi] = RuleEngine.merge(work[gi], .partitions([pid]))
            } else {
                work[gi] = .all
            }
        }
        guard !work.isEmpty else { return }
        await evaluate(groups: nil, now: now, only: work)
    }

    /// Evaluates what writes touched (`groups`), or every group whole (nil, the time-driven
    /// evaluation), at `now`, honouring each group's `interval` as a minimum spacing. Returns the
    /// groups skipped because of their `interval`.
    ///
    /// A group whose writes touched only some of its partitions (see `RuleGroup.partitionLabels`)
    /// is evaluated over those partitions only: the cost follows what the write touched, not
    /// every series of the group. Data-driven rounds are also spaced by `spacingFactor` times
    /// what the last round took, so that however often writes come, ingestion keeps most of the
    /// core (a round alone would take a thirteenth; rounds share the core with ingestion, which
    /// stretches them); what is touched meanwhile is kept and evaluated when due (`deferredDue`).
    ///
    /// `only`, when given, is evaluated at once instead, without the spacing (what `evaluateDue` found due).
    ///
    /// The time-driven evaluation (`groups` nil) covers, of a split group, the partitions not
    /// evaluated in the last `freshFor` milliseconds: under a steady flow of writes each partition
    /// is evaluated as its data comes, and evaluating it again whole would repeat that work.
    @discardableResult
    func evaluate(groups: [Int: Touched]?, now: Int64, only: [Int: Touched]? = nil, freshFor: Int64 = 0) async -> Set<Int> {
        var work: [Int: Touched] = [:]
        if let only {
            work = only
        } else if let groups {
            for (gi, touched) in groups { deferred[gi] = RuleEngine.merge(deferred[gi], touched) }
            if let due = aheadDue, now >= due {
                for (gi, touched) in ahead { deferred[gi] = RuleEngine.merge(deferred[gi], touched) }
                ahead.removeAll()
                aheadDue = nil
            }
            if now >= notBefore {
                work = deferred
                deferred.removeAll()
            }
        } else {
            // A group's own `interval` is its period here (`interval: 5s` is evaluated every 5 s,
            // data or not); the others' is `rules.evaluation_interval` (`freshFor`). The pass
            // comes every `timeDrivenTick`: half a tick of slack keeps a period from slipping by one.
            let tick = timeDrivenTick(freshFor)
            for gi in state.groups.indices {
                let period = state.groups[gi].interval ?? freshFor
                if now - lastTimeDriven[gi] < period - tick / 2 { continue }
                lastTimeDriven[gi] = now
                guard let stale = stalePartitions(group: gi, now: now, freshFor: period) else {
                    work[gi] = .all
                    deferred[gi] = nil
                    continue
                }
                if !stale.isEmpty { work[gi] = .partitions(stale) }
            }
        }
        // Evidence held back by its minimum interval is brought up to date when due.
        let evidenceIsDue = evidenceDue.map { $0 <= now } ?? false
        guard !work.isEmpty || evidenceIsDue else { return [] }
        evidenceDue = nil
        let roundStart = (wall: ContinuousClock.now, cpu: RuleEngine.threadCPUMilliseconds())
        var skipped: Set<Int> = []
        for gi in work.keys.sorted() {
            // Let requests waiting for this core run between groups.
            await Task.yield()
            if let interval = state.groups[gi].interval, now - lastEvaluation[gi] < interval {
                skipped.insert(gi)
                continue
            }
            let start = ContinuousClock.now
            let errors: [String]
            let partial: Bool
            if case .partitions(let touched) = work[gi], let labels = state.partitionLabels[gi] {
                errors = state.evaluate(
                    group: gi, at: now, source: PartitionedSource(store: store, group: gi, partitions: touched), sink: store,
                    gapTolerance: gapTolerance, partition: (labels, store.partitionKeys(group: gi, touched)), templateSource: store)
                partial = true
            } else {
                errors = state.evaluate(group: gi, at: now, source: store, sink: store, gapTolerance: gapTolerance)
                partial = false
            }
            let elapsed = ContinuousClock.now - start
            let seconds = elapsed.seconds
            evaluationCounts.withLock { c in
                if partial {
                    c.partial += 1
                    c.partialSeconds += seconds
                } else {
                    c.whole += 1
                    c.wholeSeconds += seconds
                }
            }
            evaluationSeconds[gi] = seconds
            lastEvaluation[gi] = now
            markEvaluated(group: gi, partial ? work[gi]! : .all, at: now)
            generations[gi] += 1
            for e in errors { logger.warning("rule evaluation failed", metadata: ["error": "\(e)"]) }
        }
        // The spacing counts the evaluations, not the evidence (which has its own budget,
        // `evidenceBudget`, and would otherwise hold the next workload's first round back twelve
        // times its cost) nor the wait for the events store's disk, which leaves the core free.
        let roundCPU = RuleEngine.threadCPUMilliseconds() - roundStart.cpu
        let roundWall = (ContinuousClock.now - roundStart.wall).seconds * 1000
        let roundMilliseconds = max(roundCPU, roundWall - RuleEngine.schedulingSlack)
        let firing = signals()
        // From the round's end: the wait is twelve times the round's wall-clock time (a
        // thirteenth of the core if the round had it alone; ingestion sharing the core stretches
        // rounds, and so the waits, which keeps ingestion its share: spaced by their CPU time
        // alone, rounds came three times as often under the shared load on one core and
        // ingestion with the pack fell by a tenth), less the few milliseconds a woken thread may
        // wait for a busy core, but at least its CPU time: the wall-clock time alone had tripled
        // detection's p50 at light load, 3-4 ms to 10.6-10.9 (benchmarks/HISTORY.md, session 8). A cheap round (a pending alert's partition come due) does not cut short
        // the wait an expensive one set.
        notBefore = max(notBefore, WallClock.nowMilliseconds() + Int64(roundMilliseconds * RuleEngine.spacingFactor))
        await saveAlertStates()
        if let events { await events.sync(firing: firing, at: now) }
        return skipped
    }

    /// How often the time-driven pass comes (milliseconds): every `rules.evaluation_interval`, or
    /// the shortest group `interval` if shorter.
    func timeDrivenTick(_ evaluationInterval: Int64) -> Int64 {
        max(1, state.groups.compactMap(\.interval).reduce(evaluationInterval, min))
    }

    /// When each partition of each split group was last evaluated (milliseconds, by partition id).
    var partitionsEvaluated: [[Int64]] = []

    func markEvaluated(group gi: Int, _ touched: Touched, at now: Int64) {
        let count = store.partitionCount(group: gi)
        guard count > 0 else { return }
        if partitionsEvaluated[gi].count < count { partitionsEvaluated[gi] += repeatElement(.min, count: count - partitionsEvaluated[gi].count) }
        switch touched {
        case .all:
            for pid in 1..<count { partitionsEvaluated[gi][pid] = now }
        case .partitions(let pids):
            for pid in pids where Int(pid) < count { partitionsEvaluated[gi][Int(pid)] = now }
        }
    }

    /// The partitions of a split group not evaluated within `freshFor` of `now`; nil when the group
    /// is evaluated whole (not split, or none of its partitions is fresh).
    func stalePartitions(group gi: Int, now: Int64, freshFor: Int64) -> Set<UInt32>? {
        let count = store.partitionCount(group: gi)
        guard count > 1, freshFor > 0 else { return nil }
        let evaluated = partitionsEvaluated[gi]
        var stale = Set<UInt32>()
        for pid in 1..<count where pid >= evaluated.count || evaluated[pid] <= now - freshFor { stale.insert(UInt32(pid)) }
        return stale.count == count - 1 ? nil : stale
    }

    /// Milliseconds of a round's wall-clock time not counted in its spacing: about what a thread
    /// woken on a busy core waits for it (a time slice or two).
    static let schedulingSlack = 5.0

    /// CPU time of the calling thread, in milliseconds (in the actor: the engine's thread's).
    static func threadCPUMilliseconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) * 1000 + Double(t.tv_nsec) / 1e6
    }

    /// A data-driven round waits this many times the last round's duration. Under a load that
    /// touches every partition all the time (the shared harness), 4 left ingestion 59-61% of the
    /// no-rules throughput, 8 left it 67-72% and 12 75-76%; under a light load detection stays
    /// within milliseconds (with 12, the evidence left out of the round's cost: p99 2-3 ms to
    /// firing, 19-23 ms to a new event). Making
    /// rounds cheaper does not change that share, since the wait follows the round: it makes
    /// results fresher.
    static let spacingFactor = 12.0

    /// What writes touched that waits for the spacing, and when the next round may run.
    var deferred: [Int: Touched] = [:]
    var notBefore: Int64 = 0

    /// When the evaluations deferred by the spacing are due (milliseconds), if any.
    var workDue: Int64? { deferred.isEmpty ? nil : notBefore }

    /// When deferred evaluations, evidence held back, or samples written ahead of the clock are
    /// due (milliseconds), if any.
    var deferredDue: Int64? { [workDue, evidenceDue, aheadDue].compactMap { $0 }.min() }

    /// What samples later than the evaluation time touched (a sender whose clock runs ahead of
    /// Aligner's: an evaluation at now does not see them, as Prometheus' does not), evaluated
    /// again once the newest of them is due, instead of at the next write or round.
    var ahead: [Int: Touched] = [:]
    var aheadDue: Int64?

    /// How far ahead a sample may be and still bring its groups' evaluation forward: a clock
    /// that far off is the sender's problem, seen at the rounds as they come.
    static let aheadLimit: Int64 = 60_000

    /// Holds what a write touched for another evaluation at `newest`, its newest sample's time,
    /// when that is later than `now` (the evaluation it just had).
    func holdAhead(_ groups: [Int: Touched], newest: Int64, now: Int64) {
        guard newest > now, newest - now <= RuleEngine.aheadLimit, !groups.isEmpty else { return }
        for (gi, touched) in groups { ahead[gi] = RuleEngine.merge(ahead[gi], touched) }
        aheadDue = max(aheadDue ?? newest, newest)
    }

    static func merge(_ a: Touched?, _ b: Touched) -> Touched {
        switch (a, b) {
        case (nil, _): b
        case (.all, _), (_, .all): .all
        case (.partitions(let x), .partitions(let y)): .partitions(x.union(y))
        }
    }

    /// Saves alert states when their set or states changed (not on every value change).
    func saveAlertStates() async {
        guard let events else { return }
        let digest = state.savedAlertsDigest
        guard digest != savedAlertsDigest else { return }
        savedAlertsDigest = digest
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(state.savedAlerts) else { return }
        do { try await events.store.saveState("alerts", String(decoding: data, as: UTF8.self)) } catch {
            logger.warning("cannot save alert states", metadata: ["error": "\(error)"])
        }
    }

    /// Saves what the detectors have learnt (every 5 minutes, from the time-driven loop, and at
    /// shutdown): a restart does not send each series back to its warm-up.
    func saveDetectors(now: Int64, force: Bool = false) async {
        guard force || now - lastDetectorSave >= 300_000, let events, state.hasDetectors else { return }
        lastDetectorSave = now
        guard let data = state.savedDetectors else { return }
        do { try await events.store.saveState("detectors", String(decoding: data, as: UTF8.self)) } catch {
            logger.warning("cannot save the detectors' baselines", metadata: ["error": "\(error)"])
        }
    }

    var lastDetectorSave: Int64 = 0

    /// The digest of the alert states last saved: at start that of none (what was saved before is
    /// restored, not overwritten, until an alert changes); nil after a reload, which renames rules'
    /// identities, so that the next round saves.
    var savedAlertsDigest: Int? = 0

    /// Firing alerts of rules with an `event` routing, each with its subject: a pod is lifted to
    /// the workload that owns it through kube-state-metrics' owner series.
    func signals() -> [SignalInput] {
        var out: [SignalInput] = []
        for (gi, g) in state.groups.enumerated() {
            for (ri, r) in g.rules.enumerated() {
                guard !r.eventOff, case .alert(let alertName) = r.kind, let alerting = state.alerting[gi][ri] else { continue }
                for a in alerting.firing {
                    let labels = Dictionary(a.labels.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
                    guard let spec = r.event ?? EventSpec.inferred(alertName: alertName, labels: labels) else { continue }
                    let nameLabel = spec.nameLabels.first { !(labels[$0] ?? "").isEmpty }
                    var subject = Subject(namespace: labels[spec.namespaceLabel] ?? "", kind: spec.kind ?? labels[spec.kindLabel ?? ""] ?? "",
                                          name: nameLabel.flatMap { labels[$0] } ?? "", cluster: labels["cluster"].flatMap { $0.isEmpty ? nil : $0 })
                    subject = lift(subject)
                    if r.event == nil && nameLabel == "service" {
                        subject = deploymentOrService(subject)
                    } else if let nameLabel {
                        subject = liftThroughPods(subject, label: nameLabel)
                    }
                    out.append(SignalInput(rule: r.name, anomalyClass: spec.anomalyClass, severity: spec.severity, subject: subject,
                                           labels: labels, annotations: a.annotations, value: a.value, since: a.activeAt,
                                           evidence: evidence(rule: r, alert: a, group: gi), opens: spec.opens))
                }
            }
        }
        return out
    }

    /// Evidence (the rule evaluated at the sample times of the last 5 minutes; over the alert's
    /// own partition when its group is split) is computed when the alert fires, once more `evidenceMinInterval`
    /// later if its group was evaluated meanwhile (the first look may predate data still
    /// arriving; that refresh is scheduled, `evidenceDue`), then every `evidenceRefresh`.
    static let evidenceRefresh: Int64 = 10_000
    static let evidenceMinInterval: Int64 = 1_000
    var evidenceDue: Int64?
    /// Per alert (rule, labels and `activeAt`): when its evidence was computed, and the evidence.
    var evidenceCache: [String: (at: Int64, generation: Int, settled: Bool, evidence: Evidence)] = [:]
    /// The starts of firing signals' levels saved before a restart, by the alert's series key
    /// (`SignalInput.key`'s form); each used by that alert's first evidence.
    var levelStarts: [String: Int64] = [:]
    /// Per alert series (rule and labels, whatever its `activeAt`: a flapping alert is not
    /// evaluated anew each time it fires again): the rule's value at each time computed, when it
    /// was last used. Times more than 30 s old are not evaluated again: remote-write senders
    /// deliver samples seconds after their time, so a newer time may still change.
    var evidenceValues: [String: (used: Int64, values: [Int64: (present: Bool, v: Double)])] = [:]
    /// Evidence is computing the rules again over past times: refreshing it takes at most
    /// `evidenceBudget` a second (5% of a core); an alert past the budget keeps the evidence it
    /// has and is refreshed later, and a new alert past it gets its value now as a first evidence
    /// (a burst may fire for one evaluation only) and the rest when the budget allows.
    static let evidenceBudget = Duration.milliseconds(50)
    var evidenceSpent = Duration.zero
    var evidenceSecond: Int64 = 0
    /// Per group: how many times it has been evaluated (evidence older than that is stale).
    var generations: [Int] = []

    /// The rule's value for this alert's series over the last 5 minutes, its peaks, and a line
    /// such as "5xx ratio 100% at 22:10:50 and 22:11:25". The rule is evaluated at the times of
    /// the samples it reads (a burst one scrape long shows at its height and its time; a fixed
    /// grid would step over it), about `evidenceTimes` of them at most; the points kept are at most
    /// `evidencePoints`, each the highest of its stretch.
    static let evidenceTimes = 60
    static let evidencePoints = 60

    func evidence(rule: Rule, alert: Alert, group gi: Int) -> Evidence? {
        let seriesKey = rule.name + "\u{0}" + alert.labels.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
        let key = seriesKey + "\u{0}\(alert.activeAt)"
        let now = WallClock.nowMilliseconds()
        let generation = generations[gi]
        let cached = evidenceCache[key]
        if let cached, now - cached.at < RuleEngine.evidenceRefresh {
            if cached.settled || cached.generation == generation { return cached.evidence }
            if now - cached.at < RuleEngine.evidenceMinInterval {
                let due = cached.at + RuleEngine.evidenceMinInterval
                evidenceDue = min(evidenceDue ?? due, due)
                return cached.evidence
            }
        }
        if now / 1000 != evidenceSecond {
            evidenceSecond = now / 1000
            evidenceSpent = .zero
        }
        if evidenceSpent >= RuleEngine.evidenceBudget {
            let due = (now / 1000 + 1) * 1000
            evidenceDue = min(evidenceDue ?? due, due)
            if let cached { return cached.evidence }
            // A first evidence past the budget (a flood of new alerts): the value now, computed
            // in full once the budget allows.
            let point = Evidence.Point(t: now, v: alert.value)
            let e = Evidence(points: [point], peaks: [point], text: "\(summary(rule: rule, alert: alert, top: alert.value, now: now)) at \(Evidence.clock(now))")
            evidenceCache[key] = (now - RuleEngine.evidenceMinInterval, generation - 1, false, e)
            return e
        }
        let started = ContinuousClock.now
        defer {
            let spent = ContinuousClock.now - started
            evidenceSpent += spent
            evaluationCounts.withLock { $0.evidenceSeconds += spent.seconds }
        }
        let known = evidenceValues[seriesKey]?.values ?? [:]
        let target = alert.labels.filter { $0.name != "alertname" && rule.labels[$0.name] == nil }.map { "\($0.name)=\($0.value)" }
        var source: any SampleSource = store
        var limit = RuleEngine.evidenceTimes / 5
        if let pid = store.partition(of: alert.labels, group: gi) {
            source = PartitionedSource(store: store, group: gi, partitions: [pid])
            limit = RuleEngine.evidenceTimes
        }
        let expr = rule.expr
        // The value of this alert's series in `e`'s answer at `t`, if it has one.
        func value(of e: Expr, at t: Int64) -> Double? {
            var evaluator = Evaluator(source: source, time: t)
            evaluator.defaultSubqueryStep = subqueryStep
            guard case .vector(let v) = try? evaluator.evaluate(e) else { return nil }
            return v.first { $0.labels.droppingMetricName().map { "\($0.name)=\($0.value)" } == target }?.value
        }
        let times = RuleEngine.evidenceTimes(expr, source: source, now: now, limit: limit)
        var points: [Evidence.Point] = []
        var present: [Bool] = []  // per time: did the alert's series have a value
        var values: [Int64: (present: Bool, v: Double)] = [:]
        for t in times {
            let value = known[t] ?? value(of: expr, at: t).map { (true, $0) } ?? (false, 0)
            if t < now - 30_000 { values[t] = value }
            if value.present { points.append(Evidence.Point(t: t, v: value.v)) }
            present.append(value.present)
        }
        guard let top = points.map(\.v).max() else { return nil }
        // A peak is the first point of each run of times at the top value (a burst two scrapes
        // long is one moment).
        var peaks: [Evidence.Point] = []
        var peakIndex: [Int] = []  // each peak's index in `times`
        var high: [Bool] = []  // per time: present, at half the top or more
        var inRun = false
        var next = 0
        for (i, isPresent) in present.enumerated() {
            guard isPresent else {
                inRun = false
                high.append(false)
                continue
            }
            let p = points[next]
            next += 1
            let atTop = p.v >= top - abs(top) * 1e-9
            if atTop && !inRun {
                peaks.append(p)
                peakIndex.append(i)
            }
            inRun = atTop
            high.append(p.v >= top / 2)
        }
        // The rule's `keep_firing_for` says how short a gap in its condition does not end it (a
        // crash-looping container running between crashes): a gap that short between two such
        // times does not end the stretch below either.
        if rule.keepFiringFor > 0 {
            var lastHigh: Int?
            for i in high.indices where high[i] {
                if let l = lastHigh, i > l + 1, (l + 1..<i).allSatisfy({ !present[$0] }), times[i] - times[l] <= rule.keepFiringFor {
                    for j in l + 1..<i { high[j] = true }
                }
                lastHigh = i
            }
        }
        // The stretch of times through the last peak at which the value stayed at half the top
        // or more (the peak's full width at half its height): 3 or more times over 30 s or more
        // is a level (an error ratio held at 30% for minutes, wavering between 29 and 31%, or
        // climbing to it as a 1-minute rate's window fills), not a burst. Bursts to 100% with a
        // 1-minute ratio of 8% between them stay bursts, each at its time.
        var stretch = (first: peakIndex.last!, last: peakIndex.last!)
        while stretch.first > 0 && high[stretch.first - 1] { stretch.first -= 1 }
        while stretch.last + 1 < high.count && high[stretch.last + 1] { stretch.last += 1 }
        var stretchStart = times[stretch.first]
        let isLevel = top > 0 && stretch.last - stretch.first >= 2 && times[stretch.last] - stretchStart >= 30_000
        let lasts = stretch.last == present.count - 1
        // A recorded series carries the time of the evaluation that wrote it, seconds after the
        // samples' own when the sender lags. Each peak read through recording rules is given the
        // time of the newest sample before it (at most 8, in the 10 s before) at which the rule,
        // with the recording rules written out in place, reaches the peak (within the budget).
        let inlined = inliningRecordings(expr, group: gi)
        if inlined != expr {
            /// The newest sample time in the 10 s up to `t` (at most 8 looked at) at which the
            /// expression with the recordings written out holds (`reaches` its value there).
            func sampleTime(_ t: Int64, _ reaches: (Double) -> Bool) -> Int64? {
                var candidates = Set<Int64>()
                for s in inlined.selectors {
                    for series in source.series(matching: s.matchers, from: t - s.offset - 10_000, through: t - s.offset) {
                        for x in series.timestamps { candidates.insert(x + s.offset) }
                    }
                }
                return candidates.sorted().suffix(8).reversed().first { x in value(of: inlined, at: x).map(reaches) ?? false }
            }
            for i in peaks.indices.suffix(3) where evidenceSpent + (ContinuousClock.now - started) < RuleEngine.evidenceBudget {
                if let x = sampleTime(peaks[i].t, { $0 >= top - abs(top) * 1e-9 }) { peaks[i].t = x }
            }
            if isLevel, evidenceSpent + (ContinuousClock.now - started) < RuleEngine.evidenceBudget,
               let x = sampleTime(stretchStart, { $0 >= top / 2 }) {
                stretchStart = x
            }
        }
        // A level reaching back to the first of these 5 minutes began where this alert's last
        // evidence said (minutes ago, for a replica mismatch held for an hour), or, after a
        // restart, where its event's signal said.
        if isLevel && stretch.first == 0, let earlier = cached?.evidence.since ?? levelStarts[seriesKey], earlier < stretchStart {
            stretchStart = earlier
        }
        levelStarts[seriesKey] = nil
        // At its top (for a level too, not its value of the moment: the line changes when the
        // level does).
        let what = summary(rule: rule, alert: alert, top: top, now: now)
        /// "what at 22:10:50 and 22:11:25": the last three peaks' times.
        func atPeaks() -> String {
            let times = peaks.suffix(3).map { Evidence.clock($0.t) }
            return "\(what) at " + (times.count > 1 ? times.dropLast().joined(separator: ", ") + " and " + times.last! : times[0])
        }
        let text: String
        if rule.event?.moment == true {
            // A moment held for the rule's window (an OOM kill): when it happened, each time
            // (for a level, when it rose to half its top).
            if isLevel { peaks = peaks.filter { $0.t < stretchStart } + [Evidence.Point(t: stretchStart, v: top)] }
            text = atPeaks()
        } else if isLevel {
            // A level: since when it began, and until when once it ended.
            peaks = [Evidence.Point(t: stretchStart, v: top)]
            text = lasts ? "\(what) since \(Evidence.clock(stretchStart))"
                : "\(what) from \(Evidence.clock(stretchStart)) to \(Evidence.clock(times[stretch.last]))"
        } else if peaks.count == 1 && inRun {
            // One stretch at the top that lasts until now: a level, not bursts; since when.
            text = "\(what) since \(Evidence.clock(peaks[0].t))"
        } else {
            text = atPeaks()
        }
        let e = Evidence(points: RuleEngine.downsample(points, to: RuleEngine.evidencePoints), peaks: Array(peaks.suffix(3)), text: text,
                         since: isLevel ? stretchStart : nil, until: isLevel && !lasts && rule.event?.moment != true ? times[stretch.last] : nil)
        evidenceCache[key] = (now, generation, cached != nil, e)
        evidenceValues[seriesKey] = (now, values)
        if evidenceCache.count > 10_000 { evidenceCache = evidenceCache.filter { now - $0.value.at < 600_000 } }
        if evidenceValues.count > 10_000 { evidenceValues = evidenceValues.filter { now - $0.value.used < 600_000 } }
        return e
    }

    /// The rule's summary for an alert at the evidence's top value, or its name and that value.
    func summary(rule: Rule, alert: Alert, top: Double, now: Int64) -> String {
        guard let template = rule.annotations["summary"] ?? rule.annotations["description"] ?? rule.annotations["message"],
              let t = try? AlertTemplate(template) else { return "\(rule.name) at \(top)" }
        let labels = Dictionary(alert.labels.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
        return (try? t.render(labels: labels, value: top, query: templateQuery(at: now))) ?? "\(rule.name) \(top)"
    }

    /// The expression with its group's recording rules written out in place of the series they
    /// record (a selector of the recorded name alone, without offset or `@`, of a rule that adds
    /// no labels and is the only one recording that name): evidence then reads the samples the
    /// recording rules read, at their own times. Recorded series carry the time of the evaluation
    /// that wrote them, seconds after the samples' own when the sender lags.
    func inliningRecordings(_ expr: Expr, group gi: Int, depth: Int = 0) -> Expr {
        guard depth < 4 else { return expr }
        var recorded: [String: Expr] = [:]
        var twice: Set<String> = []
        for r in state.groups[gi].rules {
            guard case .record(let name) = r.kind else { continue }
            if recorded[name] != nil || !r.labels.isEmpty { twice.insert(name) }
            recorded[name] = r.expr
        }
        return expr.replacingSelectors { s in
            guard let name = s.name, s.offset == 0, s.at == nil, s.matchers.count == 1, !twice.contains(name),
                  let definition = recorded[name] else { return nil }
            return .paren(inliningRecordings(definition, group: gi, depth: depth + 1))
        }
    }

    /// The distinct times of the samples an expression reads over the last 5 minutes, and `now`,
    /// oldest first; past `limit` of them, the newest of each fixed slot of 5 minutes / (limit - 1).
    static func evidenceTimes(_ expr: Expr, source: any SampleSource, now: Int64, limit: Int) -> [Int64] {
        var seen = Set<Int64>([now])
        for selector in expr.selectors {
            for s in source.series(matching: selector.matchers, from: now - 300_000 - selector.offset, through: now - selector.offset) {
                for t in s.timestamps { seen.insert(t + selector.offset) }
            }
        }
        let all = seen.filter { $0 >= now - 300_000 && $0 <= now }.sorted()
        guard all.count > limit, limit > 1 else { return all }
        // The newest time of each slot of 5 minutes / limit, slots fixed in absolute time, so the
        // times chosen stay the same from one refresh to the next (their values are reused).
        let slot = 300_000 / Int64(limit - 1)
        var out: [Int64] = []
        for t in all {
            if let last = out.last, last / slot == t / slot { out[out.count - 1] = t } else { out.append(t) }
        }
        if out.last != now { out.append(now) }
        return out
    }

    /// At most `count` points: each the highest of an equal stretch of `points`.
    static func downsample(_ points: [Evidence.Point], to count: Int) -> [Evidence.Point] {
        guard points.count > count else { return points }
        return (0..<count).map { k in
            let stretch = points[(k * points.count / count)..<((k + 1) * points.count / count)]
            return stretch.max { $0.v < $1.v }!
        }
    }

    /// A template's `query`, over every window at `time`.
    func templateQuery(at time: Int64) -> AlertTemplate.Query {
        RuleGroupsState.templateQuery(source: store, at: time, subqueryStep: subqueryStep)
    }

    /// Pod → its owner (ReplicaSet → its Deployment, Job → its CronJob), from kube_pod_owner,
    /// kube_replicaset_owner and kube_job_owner;
    /// without them, from the pod's name (`<deployment>-<template hash>-<suffix>`,
    /// `<statefulset>-<ordinal>`, `<daemonset>-<suffix>`) when kube-state-metrics knows a
    /// workload of that name. A Job's own signal (JobFailed) → its CronJob. A claim
    /// (PersistentVolumeFull) → the owner of the pods mounting it.
    func lift(_ subject: Subject) -> Subject {
        guard subject.kind == "Pod" || subject.kind == "Job" || subject.kind == "PersistentVolumeClaim" else { return subject }
        let now = WallClock.nowMilliseconds()
        // Owners found stay known a while: every round lifts every firing pod signal, and each
        // lookup reads all owner series of the metric.
        if let known = lifted[subject], known.until > now { return known.owner }
        let owner = subject.kind == "PersistentVolumeClaim" ? claimOwner(subject, now: now) : findOwner(subject, now: now)
        if owner != subject { remember(subject, as: owner, until: now + 30_000, now: now) }
        return owner
    }

    /// The workload whose pods mount a claim (kube-state-metrics'
    /// `kube_pod_spec_volumes_persistentvolumeclaims_info`), or the claim when none is known.
    func claimOwner(_ claim: Subject, now: Int64) -> Subject {
        let mounts = seen("kube_pod_spec_volumes_persistentvolumeclaims_info", near: claim, "persistentvolumeclaim", claim.name, now: now)
        for pod in Set(mounts.map { $0.value("pod") }).sorted().prefix(20) where !pod.isEmpty {
            let owner = findOwner(claim.with(kind: "Pod", name: pod), now: now)
            if owner.kind != "Pod" { return owner }
        }
        return claim
    }

    /// Subjects lifted to their owners, until when that answer is reused (for pods only found
    /// owners are kept: a pod seen before its owner series is looked up again).
    var lifted: [Subject: (owner: Subject, until: Int64)] = [:]

    func remember(_ subject: Subject, as owner: Subject, until: Int64, now: Int64) {
        if lifted.count > 10_000 { lifted = lifted.filter { $0.value.until > now } }
        lifted[subject] = (owner, until)
    }

    /// The label sets of `metric{namespace=..., label=name}` (and `cluster=...` when the subject
    /// has one) seen in the last 5 minutes (read from each series' newest sample: copying their 5
    /// minutes of samples only to take their labels cost more than the rest of the lifting under load).
    func seen(_ metric: String, near subject: Subject, _ label: String, _ name: String, now: Int64) -> [Labels] {
        let matchers = [LabelMatcher("__name__", .equal, metric), LabelMatcher(label, .equal, name)] + RuleEngine.scope(of: subject)
        return store.latest(matching: matchers, from: now - 300_000, through: now).map(\.labels)
    }

    /// Matchers for the series of a subject's namespace (and cluster, when it has one).
    static func scope(of subject: Subject) -> [LabelMatcher] {
        [LabelMatcher("namespace", .equal, subject.namespace)] + (subject.cluster.map { [LabelMatcher("cluster", .equal, $0)] } ?? [])
    }

    /// The kube-state-metrics series that say a workload exists, and its name label, by kind.
    static let workloadSeries = ["Deployment": ("kube_deployment_spec_replicas", "deployment"),
                                 "StatefulSet": ("kube_statefulset_replicas", "statefulset")]

    /// The subject of an upstream alert that names a `service` (no `event` routing): the
    /// Deployment of that name when kube-state-metrics knows one, else the Service itself; not the
    /// owner of the pods behind the service's series, as the pack's error ratio is lifted: the
    /// kubelet's TargetDown names service `kubelet`, whose cAdvisor series carry every pod.
    func deploymentOrService(_ subject: Subject) -> Subject {
        let now = WallClock.nowMilliseconds()
        // Remembered apart from `liftThroughPods`' answers for the same name, which differ.
        let key = subject.with(kind: "service name", name: subject.name)
        if let known = lifted[key], known.until > now { return known.owner }
        let known = !seen("kube_deployment_spec_replicas", near: subject, "deployment", subject.name, now: now).isEmpty
        let named = known ? subject : subject.with(kind: "Service", name: subject.name)
        // Asked again in a few seconds while not found (kube-state-metrics' series may be on their way).
        remember(key, as: named, until: now + (known ? 30_000 : 5_000), now: now)
        return named
    }

    /// A Deployment or StatefulSet subject named by a label that is not a workload's name (a
    /// Service `darwin-store-web` in front of the Deployment `darwin-store`, a job named otherwise):
    /// when kube-state-metrics knows no workload of that kind and name, the pods of the series
    /// carrying that label (`http_requests_total{service="darwin-store-web", pod="..."}`) are lifted
    /// to their owner, so the signal joins that workload's event.
    func liftThroughPods(_ subject: Subject, label: String) -> Subject {
        // A subject named by the workload's own label (`deployment`) is that workload, known or not.
        guard let (metric, workloadLabel) = RuleEngine.workloadSeries[subject.kind], label != "pod", label != workloadLabel else { return subject }
        let now = WallClock.nowMilliseconds()
        if let known = lifted[subject], known.until > now { return known.owner }
        if !seen(metric, near: subject, workloadLabel, subject.name, now: now).isEmpty {
            // The workload exists: the subject stands, and is not looked up again at every round.
            remember(subject, as: subject, until: now + 30_000, now: now)
            return subject
        }
        let matchers = [LabelMatcher(label, .equal, subject.name), LabelMatcher("pod", .notEqual, "")] + RuleEngine.scope(of: subject)
        var pods = Set<String>()
        for labels in store.latest(matching: matchers, from: now - 300_000, through: now).map(\.labels) {
            let pod = labels.value("pod")
            guard pods.insert(pod).inserted, pods.count <= 20 else { continue }
            let owner = findOwner(subject.with(kind: "Pod", name: pod), now: now)
            if owner.kind != "Pod" {
                remember(subject, as: owner, until: now + 30_000, now: now)
                return owner
            }
        }
        // Not found: asked again in a few seconds (the owner series may still be on their way),
        // not at every evaluation, each of which reads the namespace's series.
        remember(subject, as: subject, until: now + 5_000, now: now)
        return subject
    }

    func findOwner(_ subject: Subject, now: Int64) -> Subject {
        func seen(_ metric: String, _ label: String, _ name: String) -> [Labels] {
            self.seen(metric, near: subject, label, name, now: now)
        }
        func owner(_ metric: String, _ label: String, _ name: String) -> (kind: String, name: String)? {
            for labels in seen(metric, label, name) {
                let kind = labels.value("owner_kind"), ownerName = labels.value("owner_name")
                if !kind.isEmpty && !ownerName.isEmpty && kind != "<none>" { return (kind, ownerName) }
            }
            return nil
        }
        // A CronJob's runs are Jobs of a new name each time: the CronJob is the workload.
        func cronJob(of job: String) -> Subject? {
            guard let jobOwner = owner("kube_job_owner", "job_name", job), jobOwner.kind == "CronJob" else { return nil }
            return subject.with(kind: jobOwner.kind, name: jobOwner.name)
        }
        if subject.kind == "Job" { return cronJob(of: subject.name) ?? subject }
        if let podOwner = owner("kube_pod_owner", "pod", subject.name) {
            if podOwner.kind == "ReplicaSet", let rsOwner = owner("kube_replicaset_owner", "replicaset", podOwner.name) {
                return subject.with(kind: rsOwner.kind, name: rsOwner.name)
            }
            if podOwner.kind == "Job", let owner = cronJob(of: podOwner.name) { return owner }
            return subject.with(kind: podOwner.kind, name: podOwner.name)
        }
        let parts = subject.name.split(separator: "-", omittingEmptySubsequences: false)
        if parts.count > 2 {
            let name = parts.dropLast(2).joined(separator: "-")
            if !seen("kube_deployment_spec_replicas", "deployment", name).isEmpty {
                return subject.with(kind: "Deployment", name: name)
            }
        }
        if parts.count > 1, parts.last!.allSatisfy(\.isNumber) {
            let name = parts.dropLast().joined(separator: "-")
            if !seen("kube_statefulset_replicas", "statefulset", name).isEmpty {
                return subject.with(kind: "StatefulSet", name: name)
            }
        }
        if parts.count > 1, parts.last!.count == 5 {
            let name = parts.dropLast().joined(separator: "-")
            if !seen("kube_daemonset_status_desired_number_scheduled", "daemonset", name).isEmpty {
                return subject.with(kind: "DaemonSet", name: name)
            }
        }
        return subject
    }

    /// When a `for` or `keep_firing_for` ends next (milliseconds), if any.
    /// A pending alert whose series is missing when its `for` ends stays pending (within
    /// `rules.gap_tolerance`) and stays due: the due parts are evaluated at most every 250 ms.
    var nextDue: Int64? { state.nextDue.map { max($0, lastDueEvaluation + 250) } }
    var lastDueEvaluation: Int64 = .min / 2

    /// Evaluates an expression now (the query API).
    func query(_ expr: Expr, at time: Int64) throws -> Value {
        var evaluator = Evaluator(source: store, time: time)
        evaluator.defaultSubqueryStep = subqueryStep
        return try evaluator.evaluate(expr)
    }

    /// Evaluates an instant-vector or scalar expression at every step from `start` through `end`
    /// (the range query API): each series with its values at the steps where it has one (a
    /// scalar as a series without labels), sorted by labels, as Prometheus answers.
    func queryRange(_ expr: Expr, start: Int64, end: Int64, step: Int64) throws -> [RangeSeries] {
        var evaluator = Evaluator(source: store, time: start)
        evaluator.defaultSubqueryStep = subqueryStep
        evaluator.queryStart = start
        evaluator.queryEnd = end
        var series: [Labels: Int] = [:]
        var out: [RangeSeries] = []
        func add(_ labels: Labels, _ t: Int64, _ v: Double) {
            let i = series[labels] ?? {
                out.append(RangeSeries(labels: labels, timestamps: [], values: []))
                series[labels] = out.count - 1
                return out.count - 1
            }()
            out[i].timestamps.append(t)
            out[i].values.append(v)
        }
        for t in stride(from: start, through: end, by: Int(step)) {
            evaluator.time = t
            switch try evaluator.evaluate(expr) {
            case .scalar(let v): add([], t, v)
            case .vector(let samples): for sample in samples { add(sample.labels, t, sample.value) }
            case .string, .matrix: throw EvaluationError(message: "invalid expression type for range query, must be Scalar or instant Vector")
            }
        }
        return out.sorted { $0.labels.lexicographicallyPrecedes($1.labels) }
    }
}

extension Duration {
    /// In seconds, fractions included.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Evaluations since start, and the seconds they took (reported in `/metrics`).
struct EvaluationCounts: Sendable {
    var partial = 0, whole = 0
    var partialSeconds = 0.0, wholeSeconds = 0.0, evidenceSeconds = 0.0
}

/// Runs the rule engine: evaluates dirty groups right after the write that dirtied them
/// (coalesced), every group every `rules.evaluation_interval`, pending alerts every second so `for`
/// ends on time, and reloads on SIGHUP.
struct RuleEvaluationService: Service {
    let engine: RuleEngine
    let store: WindowStore
    let interval: Duration
    let logger: Logger

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // Data-driven: evaluate what the writes touched.
                // What the writes touched, at now; samples later than now are held for their time.
                func evaluateWrites() async {
                    let (dirty, newest) = store.takeDirtyWithNewest()
                    let now = WallClock.nowMilliseconds()
                    await engine.evaluate(groups: dirty, now: now)
                    await engine.holdAhead(dirty, newest: newest, now: now)
                }
                for await _ in store.changes.cancelOnGracefulShutdown() {
                    await evaluateWrites()
                    // What waits for the rounds' spacing runs when due, writes or not (a few times
                    // a round's cost: short; held-back evidence is the time-driven loop's).
                    while let due = await engine.workDue, !Task.isCancelled, !Task.isShuttingDownGracefully {
                        let wait = due - WallClock.nowMilliseconds()
                        if wait > 0 { try? await Task.sleep(for: .milliseconds(wait)) }
                        await evaluateWrites()
                    }
                }
            }
            group.addTask {
                // Time-driven: every group each evaluation_interval (or its own interval), and exactly when a pending
                // alert's `for` (or a `keep_firing_for`) ends, so `for` is not rounded up.
                var nextFull = ContinuousClock.now + .milliseconds(await engine.timeDrivenTick(interval.milliseconds))
                var nextSweep = ContinuousClock.now + interval
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    var wake = nextFull
                    for due in [await engine.nextDue, await engine.deferredDue].compactMap({ $0 }) {
                        let wait = Duration.milliseconds(max(0, due - WallClock.nowMilliseconds()))
                        wake = min(wake, ContinuousClock.now + wait)
                    }
                    try? await Task.sleep(until: min(wake, ContinuousClock.now + .seconds(1)), clock: .continuous)
                    let now = WallClock.nowMilliseconds()
                    await engine.events?.resolveQuiet(now: now)
                    await engine.events?.pruneIfDue(now: now)
                    await engine.saveDetectors(now: now)
                    if ContinuousClock.now >= nextFull {
                        nextFull = ContinuousClock.now + .milliseconds(await engine.timeDrivenTick(interval.milliseconds))
                        await engine.evaluate(groups: nil, now: now, freshFor: interval.milliseconds)
                        // Going over every window: each evaluation_interval, however short a group's interval.
                        if ContinuousClock.now >= nextSweep {
                            nextSweep = ContinuousClock.now + interval
                            store.sweep(now: now)
                        }
                    } else if let due = await engine.nextDue, due <= now {
                        await engine.evaluateDue(now: now)
                    } else if let due = await engine.deferredDue, due <= now {
                        await engine.evaluate(groups: [:], now: now)  // what waited for its spacing
                    }
                }
            }
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
                    do {
                        let n = try await engine.reload()
                        logger.info("rules reloaded on SIGHUP", metadata: ["rules": "\(n)"])
                    } catch {
                        logger.error("rule reload failed; keeping the previous rules", metadata: ["error": "\(error)"])
                    }
                }
            }
            try? await gracefulShutdown()
            await engine.saveDetectors(now: WallClock.nowMilliseconds(), force: true)
            group.cancelAll()
        }
    }
}
