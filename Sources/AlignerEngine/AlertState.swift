import AlignerCore
import AlignerRules
import Foundation

/// Where an alert instance is in its life, with Prometheus' words.
public enum AlertState: String, Sendable, Codable {
    case inactive, pending, firing
}

/// One alert instance of an alerting rule.
public struct Alert: Sendable, Codable {
    public var labels: Labels
    public var annotations: [String: String]
    public var state: AlertState
    public var value: Double
    /// Milliseconds.
    public var activeAt: Int64
    public var firedAt: Int64?
    public var resolvedAt: Int64?
    /// Since when a firing alert is kept firing (`keep_firing_for`) though its condition is gone.
    public internal(set) var keepFiringSince: Int64?
    var lastSeenAt: Int64 = 0
    /// The expression result's labels (without the metric name), to match the resolve result.
    var sourceKey = ""
    /// The partition of its group this alert belongs to (see `RuleGroup.partitionLabels`).
    var partitionKey = ""
}

/// The state of one alerting rule: its alert instances, advanced by each evaluation's result.
/// A plain value: time is an argument, and nothing here does I/O.
public struct AlertingRuleState: Sendable {
    public let rule: Rule
    public private(set) var alerts: [String: Alert] = [:]
    /// Alert keys by partition key (only when the group is split), so a partial evaluation visits
    /// only the alerts of the partitions it covers.
    var byPartition: [String: Set<String>] = [:]
    let labelTemplates: [(String, AlertTemplate)]
    let annotationTemplates: [(String, AlertTemplate)]
    /// Resolved alerts are kept this long (Prometheus: 15 minutes), so their resolution can be sent.
    static let resolvedRetention: Int64 = 15 * 60_000

    /// The labels the rule's group is split by, if any.
    let partitionLabels: [String]?
    /// The rule's detector and what it has learnt of each series, if the rule has one.
    var detector: DetectorState?

    public init(rule: Rule, partitionLabels: [String]? = nil) throws {
        self.rule = rule
        self.partitionLabels = partitionLabels
        detector = rule.detector.map(DetectorState.init(spec:))
        labelTemplates = try rule.labels.sorted { $0.key < $1.key }.map { ($0.key, try AlertTemplate($0.value)) }
        annotationTemplates = try rule.annotations.sorted { $0.key < $1.key }.map { ($0.key, try AlertTemplate($0.value)) }
    }

    /// Advances every alert with the rule expression's result at `time` (Prometheus' AlertingRule.Eval).
    ///
    /// Two Aligner extensions, both off in promtool mode: `gapTolerance` keeps a pending alert
    /// through evaluations that miss its series for up to that long (one late write does not
    /// restart `for`), and `resolveHolds` (the rule's `resolve` condition, evaluated by the caller)
    /// keeps a firing alert firing until its series appears in the resolve result.
    ///
    /// `scope`, when given, holds the partition keys the result covers (a partial evaluation of
    /// some partitions): alerts of other partitions are left as they are.
    public mutating func evaluate(
        _ result: [VectorSample], at time: Int64, externalLabels: [String: String] = [:], externalURL: String = "",
        gapTolerance: Int64 = 0,
        resolveResult: [VectorSample]? = nil, scope: Set<String>? = nil, query: AlertTemplate.Query? = nil,
        detectorAnnotations: [String: [String: String]]? = nil
    ) throws {
        // As Prometheus: a template that fails at run time expands to the error.
        func expand(_ template: AlertTemplate, _ labels: [String: String], _ value: Double) -> String {
            do {
                return try template.render(labels: labels, value: value, externalLabels: externalLabels, externalURL: externalURL, query: query, name: "__alert_" + rule.name)
            } catch {
                return "<error expanding template: \(error)>"
            }
        }
        let resolvedKeys = resolveResult.map { Set($0.map { $0.labels.droppingMetricName().key }) }
        var seen: Set<String> = []
        for sample in result {
            let base = sample.labels.droppingMetricName()
            // Templates see the sample's labels as they are, the metric name included (Prometheus).
            let templateLabels = Dictionary(sample.labels.map { ($0.name, $0.value) }, uniquingKeysWith: { $1 })
            var labels = base
            for (name, template) in labelTemplates {
                labels = labels.setting(name, expand(template, templateLabels, sample.value))
            }
            labels = labels.setting("alertname", rule.name)
            var annotations: [String: String] = [:]
            for (name, template) in annotationTemplates {
                annotations[name] = expand(template, templateLabels, sample.value)
            }
            if let verdict = detectorAnnotations?[base.key] { annotations.merge(verdict) { own, _ in own } }
            let key = labels.key
            if !seen.insert(key).inserted {
                throw EvaluationError(message: "vector contains metrics with the same labelset after applying alert labels")
            }
            if var a = alerts[key], a.state != .inactive {
                a.value = sample.value
                a.annotations = annotations
                a.keepFiringSince = nil
                a.lastSeenAt = time
                alerts[key] = a
            } else {
                var a = Alert(labels: labels, annotations: annotations, state: .pending, value: sample.value, activeAt: time)
                a.lastSeenAt = time
                a.sourceKey = base.key
                a.partitionKey = partitionLabels.map { labels.partitionKey($0) } ?? ""
                if partitionLabels != nil { byPartition[a.partitionKey, default: []].insert(key) }
                alerts[key] = a
            }
        }
        // Changes are collected first and applied after: mutating the dictionary while iterating
        // it would copy it whole, which a partial evaluation of a few partitions cannot afford.
        var changes: [(String, Alert?)] = []
        var visit: [String]
        if let scope, partitionLabels != nil {
            var keys = seen
            for p in scope { keys.formUnion(byPartition[p] ?? []) }
            visit = Array(keys)
        } else {
            visit = Array(alerts.keys)
        }
        for key in visit {
            guard var a = alerts[key] else { continue }
            if let scope, !scope.contains(a.partitionKey), !seen.contains(key) { continue }
            if !seen.contains(key) {
                if a.state == .pending {
                    if time - a.lastSeenAt <= gapTolerance { continue }
                    changes.append((key, nil))
                    continue
                }
                if a.state == .firing, let resolvedKeys, !resolvedKeys.contains(a.sourceKey) {
                    continue  // hysteresis: firing until the resolve condition holds for this series
                }
                if a.state == .inactive {
                    if let r = a.resolvedAt, time - r > AlertingRuleState.resolvedRetention { changes.append((key, nil)) }
                    continue
                }
                if rule.keepFiringFor > 0 {
                    let since = a.keepFiringSince ?? time
                    a.keepFiringSince = since
                    if time - since < rule.keepFiringFor {
                        changes.append((key, a))
                        continue
                    }
                }
                a.state = .inactive
                a.resolvedAt = time
                changes.append((key, a))
                continue
            }
            if a.state == .pending && time - a.activeAt >= rule.holdDuration {
                a.state = .firing
                a.firedAt = time
                changes.append((key, a))
            }
        }
        for (key, a) in changes {
            if a == nil, let old = alerts[key], partitionLabels != nil {
                byPartition[old.partitionKey]?.remove(key)
                if byPartition[old.partitionKey]?.isEmpty == true { byPartition[old.partitionKey] = nil }
            }
            alerts[key] = a
        }
    }

    /// The alerts of some partitions (keys of `partitionLabels`), or all of them (nil, or a
    /// group that is not split).
    func alerts(in partitions: Set<String>?) -> [Alert] {
        guard let partitions, partitionLabels != nil else { return Array(alerts.values) }
        return partitions.flatMap { byPartition[$0] ?? [] }.compactMap { alerts[$0] }
    }

    /// The alerts now firing.
    public var firing: [Alert] { alerts.values.filter { $0.state == .firing } }

    /// Forgets every alert (a rule past its group's `limit`).
    mutating func dropAll() {
        alerts = [:]
        byPartition = [:]
    }

    /// Puts back alert states saved before a restart (pending keep their activeAt, firing their firedAt).
    public mutating func restore(_ saved: [Alert]) {
        for var a in saved where a.state != .inactive {
            a.partitionKey = partitionLabels.map { a.labels.partitionKey($0) } ?? ""
            if partitionLabels != nil { byPartition[a.partitionKey, default: []].insert(a.labels.key) }
            alerts[a.labels.key] = a
        }
    }

}

/// Where recording rules write their results.
public protocol SampleSink {
    func append(_ labels: Labels, timestamp: Int64, value: Double)
    /// A result of group `group`: the store need not mark that group for evaluation again (its
    /// later rules read the result in the same evaluation).
    func append(_ labels: Labels, timestamp: Int64, value: Double, fromGroup group: Int)
}

extension SampleSink {
    public func append(_ labels: Labels, timestamp: Int64, value: Double, fromGroup group: Int) {
        append(labels, timestamp: timestamp, value: value)
    }
}

extension MemoryStore: SampleSink {}

/// Evaluates rule groups in order: recording rules write back so later rules see them.
public struct RuleGroupsState: Sendable {
    public let groups: [RuleGroup]
    public private(set) var alerting: [[AlertingRuleState?]]
    /// The last evaluation error of each rule, or nil.
    public private(set) var lastErrors: [[String?]]
    /// Each rule's last evaluation: when (milliseconds; 0 before the first) and how long it took
    /// (seconds), as `GET /api/v1/rules` reports them.
    public private(set) var lastRuns: [[(at: Int64, seconds: Double)]]
    /// Per group: the labels it can be split by (`RuleGroup.partitionLabels`), computed once.
    public let partitionLabels: [[String]?]
    /// Per rule: the series its last evaluation wrote (a recording rule's results, an alerting
    /// rule's ALERTS), so a series that stops being returned gets a staleness marker.
    var recorded: [[[String: Labels]]]
    /// `$externalLabels` and `$externalURL` in templates.
    public var externalLabels: [String: String] = [:]
    public var externalURL = ""
    /// The step of subqueries that name none: the global evaluation interval, as in Prometheus.
    public var defaultSubqueryStep: Int64 = 60_000
    /// How far back from the evaluation time the queries of a group without its own
    /// `query_offset` look (milliseconds; `rules.query_offset`, Prometheus' global `rule_query_offset`).
    public var defaultQueryOffset: Int64 = 0
    /// Whether alerting rules write Prometheus' `ALERTS` and `ALERTS_FOR_STATE` series: by default
    /// when some rule reads them (kube-prometheus' InfoInhibitor does); promtool mode always.
    public var writesAlertSeries: Bool

    public init(groups: [RuleGroup]) throws {
        // Group labels apply to every rule of the group; a rule's own label wins.
        var groups = groups
        for g in groups.indices {
            for r in groups[g].rules.indices {
                groups[g].rules[r].labels.merge(groups[g].labels) { own, _ in own }
            }
        }
        self.groups = groups
        lastErrors = groups.map { g in g.rules.map { _ in nil } }
        lastRuns = groups.map { g in g.rules.map { _ in (0, 0) } }
        recorded = groups.map { g in g.rules.map { _ in [:] } }
        partitionLabels = groups.map(\.partitionLabels)
        writesAlertSeries = groups.contains { g in
            g.rules.contains { r in
                r.expressions.flatMap(\.selectors).contains { s in
                    ["ALERTS", "ALERTS_FOR_STATE"].contains { name in
                        s.matchers.allSatisfy { $0.name != metricNameLabel || ((try? $0.matches(name)) ?? false) }
                    }
                }
            }
        }
        alerting = try groups.map { g in
            let labels = g.partitionLabels
            return try g.rules.map { r in
                if case .alert = r.kind { return try AlertingRuleState(rule: r, partitionLabels: labels) } else { return nil }
            }
        }
    }

    /// Evaluates every rule at `time`; returns the evaluation errors (the other rules still run).
    @discardableResult
    public mutating func evaluate(at time: Int64, source: any SampleSource, sink: any SampleSink) -> [String] {
        var errors: [String] = []
        for gi in groups.indices { errors += evaluate(group: gi, at: time, source: source, sink: sink) }
        return errors
    }

    /// Evaluates one group's rules in order at `time`: recording rules write back, so later rules see them.
    ///
    /// `partition`, when given, is a partial evaluation: `source` holds only the series of some
    /// partitions of the group (by the labels `partition.labels`, keys `partition.keys`), and
    /// only the alerts of those partitions are advanced.
    ///
    /// Template queries (`query`) read `templateSource` (the whole store when `source` holds some
    /// partitions only), at `time`, as Prometheus' do.
    public mutating func evaluate(
        group gi: Int, at time: Int64, source: any SampleSource, sink: any SampleSink, gapTolerance: Int64 = 0,
        useResolve: Bool = true, partition: (labels: [String], keys: Set<String>)? = nil, templateSource: (any SampleSource)? = nil
    ) -> [String] {
        var errors: [String] = []
        let group = groups[gi]
        // Queries look back by the group's query offset, and what rules write (recorded series,
        // ALERTS) is stamped with that time too, as in Prometheus, so later rules of the group read it.
        let queryTime = time - (group.queryOffset ?? defaultQueryOffset)
        var evaluator = Evaluator(source: source, time: queryTime)
        evaluator.defaultSubqueryStep = defaultSubqueryStep
        let query = RuleGroupsState.templateQuery(source: templateSource ?? source, at: time, subqueryStep: defaultSubqueryStep)
        let clock = ContinuousClock()
        for (ri, rule) in group.rules.enumerated() {
            let start = clock.now
            defer {
                let d = (clock.now - start).components
                lastRuns[gi][ri] = (time, Double(d.seconds) + Double(d.attoseconds) / 1e18)
            }
            do {
                var vector: [VectorSample]
                switch try evaluator.evaluate(rule.expr) {
                case .vector(let v): vector = v
                case .scalar(let s): vector = [VectorSample(labels: [], value: s)]
                default: vector = []
                }
                if group.limit > 0 && vector.count > group.limit {
                    // As Prometheus: the rule fails, and an alerting rule drops its alerts.
                    guard case .alert = rule.kind else {
                        throw EvaluationError(message: "exceeded limit of \(group.limit) with \(vector.count) series")
                    }
                    alerting[gi][ri]!.dropAll()
                    throw EvaluationError(message: "exceeded limit of \(group.limit) with \(vector.count) alerts")
                }
                switch rule.kind {
                case .record(let name):
                    var written: [String: (Labels, Double)] = [:]
                    let ruleLabels = rule.labels.sorted(by: { $0.key < $1.key })
                    let named = vector.map { s in
                        var labels = s.labels.setting(metricNameLabel, name)
                        for (k, v) in ruleLabels { labels = labels.setting(k, v) }
                        return labels
                    }
                    // As Prometheus: nothing is written when two samples end up as one series.
                    for (labels, s) in zip(named, vector) {
                        if written.updateValue((labels, s.value), forKey: labels.key) != nil {
                            throw EvaluationError(message: "vector contains metrics with the same labelset after applying rule labels")
                        }
                    }
                    write(written, group: gi, rule: ri, at: queryTime, to: sink, partition: partition)
                case .alert:
                    // A detector keeps the series whose value is anomalous: they are the condition,
                    // each alert annotated with the baseline it left and by how far.
                    var verdicts: [String: [String: String]]?
                    if let detector = alerting[gi][ri]!.detector {
                        if let volume = detector.spec.volume {
                            // Judged only where the volume is enough.
                            guard case .vector(let v) = try evaluator.evaluate(volume) else {
                                throw EvaluationError(message: "detector.volume must evaluate to an instant vector")
                            }
                            let enough = Set(v.filter { $0.value >= detector.spec.minVolume }.map { $0.labels.droppingMetricName().key })
                            vector = vector.filter { enough.contains($0.labels.droppingMetricName().key) }
                        }
                        let judged = alerting[gi][ri]!.detector!.judge(vector, at: time)
                        vector = judged.map(\.sample)
                        verdicts = Dictionary(judged.map { ($0.sample.labels.droppingMetricName().key, $0.verdict.annotations) }) { first, _ in first }
                    }
                    var resolveResult: [VectorSample]?
                    if useResolve, let resolve = rule.resolve {
                        switch try evaluator.evaluate(resolve) {
                        case .vector(let v): resolveResult = v
                        case .scalar(let x): resolveResult = x != 0 ? [VectorSample(labels: [], value: x)] : []
                        default: resolveResult = []
                        }
                    }
                    try alerting[gi][ri]!.evaluate(
                        vector, at: time, externalLabels: externalLabels, externalURL: externalURL, gapTolerance: gapTolerance,
                        resolveResult: resolveResult,
                        scope: partition?.keys, query: query, detectorAnnotations: verdicts)
                    if writesAlertSeries {
                        // Prometheus' ALERTS (1, with alertstate) and ALERTS_FOR_STATE (activeAt in
                        // seconds) for every pending or firing alert.
                        var written: [String: (Labels, Double)] = [:]
                        for a in alerting[gi][ri]!.alerts(in: partition?.keys) where a.state != .inactive {
                            let alerts = a.labels.setting(metricNameLabel, "ALERTS").setting("alertstate", a.state.rawValue)
                            let forState = a.labels.setting(metricNameLabel, "ALERTS_FOR_STATE")
                            let activeAt = a.activeAt >= 0 ? a.activeAt / 1000 : (a.activeAt - 999) / 1000
                            written[alerts.key] = (alerts, 1)
                            written[forState.key] = (forState, Double(activeAt))
                        }
                        write(written, group: gi, rule: ri, at: queryTime, to: sink, partition: partition)
                    }
                }
                lastErrors[gi][ri] = nil
            } catch {
                lastErrors[gi][ri] = "\(error)"
                errors.append("group \"\(group.name)\", rule \"\(rule.name)\": \(error)")
            }
        }
        return errors
    }

    /// Writes a rule's series at `time`; those it wrote last time and not now end with a
    /// staleness marker (in a partial evaluation, only those of the partitions it covered), as
    /// Prometheus writes one.
    mutating func write(_ series: [String: (Labels, Double)], group gi: Int, rule ri: Int, at time: Int64,
                        to sink: any SampleSink, partition: (labels: [String], keys: Set<String>)?) {
        for (labels, value) in series.values {
            sink.append(labels, timestamp: time, value: value, fromGroup: gi)
        }
        var previous = recorded[gi][ri]
        for (key, labels) in previous where series[key] == nil {
            if let partition, !partition.keys.contains(labels.partitionKey(partition.labels)) { continue }
            sink.append(labels, timestamp: time, value: SampleValue.staleNaN, fromGroup: gi)
            previous[key] = nil
        }
        if partition == nil { previous = [:] }
        for (key, (labels, _)) in series { previous[key] = labels }
        recorded[gi][ri] = previous
    }

    /// A template's `query`: the PromQL text evaluated over `source` at `time` (a scalar becomes
    /// one sample without labels).
    public static func templateQuery(source: any SampleSource, at time: Int64, subqueryStep: Int64) -> AlertTemplate.Query {
        { text in
            var evaluator = Evaluator(source: source, time: time)
            evaluator.defaultSubqueryStep = subqueryStep
            switch try evaluator.evaluate(try PromQLParser.parse(text)) {
            case .vector(let v): return v
            case .scalar(let x): return [VectorSample(labels: [], value: x)]
            default: throw EvaluationError(message: "query \"\(text)\" must return an instant vector or a scalar")
            }
        }
    }

    /// Takes over the alert states of rules that did not change (same group, name, expression,
    /// `for` and labels), so a reload does not restart their `for`.
    public mutating func carryOver(from old: RuleGroupsState) {
        var previous: [String: AlertingRuleState] = [:]
        for (gi, g) in old.groups.enumerated() {
            for (ri, r) in g.rules.enumerated() {
                if let state = old.alerting[gi][ri] { previous[RuleGroupsState.identity(g, r)] = state }
            }
        }
        for (gi, g) in groups.enumerated() {
            for (ri, r) in g.rules.enumerated() where alerting[gi][ri] != nil {
                if let state = previous[RuleGroupsState.identity(g, r)] { alerting[gi][ri] = state }
            }
        }
    }

    /// Every pending or firing alert, keyed by its rule's identity, for saving across restarts.
    public var savedAlerts: [String: [Alert]] {
        var out: [String: [Alert]] = [:]
        for (gi, g) in groups.enumerated() {
            for (ri, r) in g.rules.enumerated() {
                let active = alerting[gi][ri]?.alerts.values.filter { $0.state != .inactive } ?? []
                if !active.isEmpty { out[RuleGroupsState.identity(g, r)] = Array(active) }
            }
        }
        return out
    }

    /// A digest of what `savedAlerts` would hold (each active alert's rule, labels, state and
    /// `activeAt`), cheap to take every round: a sum of per-alert hashes, in no order, without
    /// building the alerts' list or any string. Comparable within one process and one rule set.
    public var savedAlertsDigest: Int {
        var total = 0
        for (gi, g) in groups.enumerated() {
            for ri in g.rules.indices {
                guard let rule = alerting[gi][ri] else { continue }
                for alert in rule.alerts.values where alert.state != .inactive {
                    var h = Hasher()
                    h.combine(gi)
                    h.combine(ri)
                    h.combine(alert.labels)
                    h.combine(alert.state)
                    h.combine(alert.activeAt)
                    total &+= h.finalize()
                }
            }
        }
        return total
    }

    /// Whether some alerting rule has a detector.
    public var hasDetectors: Bool { alerting.contains { $0.contains { $0?.detector != nil } } }

    /// What the detectors have learnt of each series, by rule identity, for saving across restarts.
    public var savedDetectors: Data? {
        var out: [String: [String: DetectorState.Series]] = [:]
        for (gi, g) in groups.enumerated() {
            for (ri, r) in g.rules.enumerated() {
                if let d = alerting[gi][ri]?.detector, !d.series.isEmpty { out[RuleGroupsState.identity(g, r)] = d.series }
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try? encoder.encode(out)
    }

    /// Restores what `savedDetectors` returned, for the rules that still exist unchanged (with the
    /// same detector).
    public mutating func restoreDetectors(_ data: Data) {
        guard let saved = try? JSONDecoder().decode([String: [String: DetectorState.Series]].self, from: data) else { return }
        for (gi, g) in groups.enumerated() {
            for (ri, r) in g.rules.enumerated() where alerting[gi][ri]?.detector != nil {
                if let series = saved[RuleGroupsState.identity(g, r)] { alerting[gi][ri]!.detector!.series = series }
            }
        }
    }

    /// Restores what `savedAlerts` returned, for the rules that still exist unchanged.
    public mutating func restore(_ saved: [String: [Alert]]) {
        for (gi, g) in groups.enumerated() {
            for (ri, r) in g.rules.enumerated() where alerting[gi][ri] != nil {
                if let alerts = saved[RuleGroupsState.identity(g, r)] { alerting[gi][ri]!.restore(alerts) }
            }
        }
    }

    static func identity(_ g: RuleGroup, _ r: Rule) -> String {
        "\(g.file)\u{0}\(g.name)\u{0}\(r.name)\u{0}\(r.expr)\u{0}\(r.holdDuration)\u{0}\(r.keepFiringFor)\u{0}\(r.detector?.description ?? "")\u{0}" + r.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    /// Each alert waiting for its `for` (pending) or its `keep_firing_for` to end: its group,
    /// labels and when that ends.
    func waiting() -> [(group: Int, labels: Labels, ends: Int64)] {
        var out: [(group: Int, labels: Labels, ends: Int64)] = []
        for (gi, g) in groups.enumerated() {
            for (ri, r) in g.rules.enumerated() {
                for a in alerting[gi][ri]?.alerts.values ?? [:].values {
                    if a.state == .pending { out.append((gi, a.labels, a.activeAt + r.holdDuration)) }
                    if a.state == .firing, let since = a.keepFiringSince { out.append((gi, a.labels, since + r.keepFiringFor)) }
                }
            }
        }
        return out
    }

    /// The alerts whose `for` or `keep_firing_for` has ended by `now`: their group and labels.
    public func due(at now: Int64) -> [(group: Int, labels: Labels)] {
        waiting().filter { $0.ends <= now }.map { ($0.group, $0.labels) }
    }

    /// When the next pending alert's `for` (or a firing alert's `keep_firing_for`) ends, so the
    /// engine can evaluate exactly then.
    public var nextDue: Int64? { waiting().map(\.ends).min() }

    /// Every alert of every alerting rule.
    public var alerts: [Alert] { alerting.flatMap { $0.compactMap { $0 } }.flatMap { Array($0.alerts.values) } }
}
