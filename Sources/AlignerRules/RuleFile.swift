import Foundation
import Yams

/// A position in a rule file (1-based line and column).
public struct SourcePosition: Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// How an alert names the workload it is about, and what kind of anomaly it is (Aligner's `event`).
public struct EventSpec: Sendable, Equatable {
    /// The anomaly class: `replica_mismatch`, `crash_loop`, `error_rate_spike`, `cpu_burst`, ...
    public var anomalyClass: String
    /// The label holding the workload's namespace.
    public var namespaceLabel: String
    /// The workload kind (`Deployment`, `StatefulSet`, ...), literal.
    public var kind: String?
    /// The label holding the workload's kind, when it varies per series.
    public var kindLabel: String?
    /// The labels that may hold the workload's name, in order: the first one set names it
    /// (`name: [service, job]`).
    public var nameLabels: [String]
    /// `critical`, `warning` or `info`.
    public var severity: String
    /// Whether the signal may open an event (`event.opens`, default true). A signal that does not
    /// only joins its subject's open event: evidence, not an incident by itself (a CPU burst).
    public var opens = true
    /// Whether the condition marks a moment (`event.moment`, default false): an OOM kill, a failed
    /// run, held true for the rule's window after it happened. Its evidence says when it happened
    /// ("at 22:10:05"), not since when the condition holds.
    public var moment = false

    public init(anomalyClass: String, namespaceLabel: String, kind: String?, kindLabel: String?, nameLabels: [String], severity: String) {
        self.anomalyClass = anomalyClass
        self.namespaceLabel = namespaceLabel
        self.kind = kind
        self.kindLabel = kindLabel
        self.nameLabels = nameLabels
        self.severity = severity
    }

    /// The routing of an alerting rule that has no `event` (an upstream rule, or one written for
    /// Prometheus), read from the firing alert's own labels: the workload its usual labels name
    /// (`deployment`, `statefulset`, `daemonset`, `cronjob`, `job_name`, `pod`, `service`, ...,
    /// with `namespace`; a namespace alone); the Node of a node-exporter series (its `node`, or
    /// its `instance`, which kube-prometheus sets to the node's name) or of a `node` label; else
    /// the scrape target its `instance` names (`up == 0`); else, for an alert over a whole job or
    /// cluster, the alert itself. The class comes from the alert's name (`KubePodCrashLooping` is
    /// `kube_pod_crash_looping`) and the severity from its `severity` label. An `info` alert joins
    /// its subject's open event and opens none; an alert with severity `none` (kube-prometheus'
    /// Watchdog, always firing) is no signal (it is still listed by `GET /api/v1/alerts`).
    public static func inferred(alertName: String, labels: [String: String]) -> EventSpec? {
        let labels = withoutExporterTarget(labels)
        let severity: String
        switch (labels["severity"] ?? "warning").lowercased() {
        case "critical", "page", "error", "high": severity = "critical"
        case "info", "low", "informational": severity = "info"
        case "none": return nil
        default: severity = "warning"
        }
        func set(_ label: String) -> Bool { !(labels[label] ?? "").isEmpty }
        func clusterWide(kind: String, _ nameLabels: [String]) -> EventSpec {
            EventSpec(anomalyClass: "", namespaceLabel: "", kind: kind, kindLabel: nil, nameLabels: nameLabels, severity: severity)
        }
        var spec: EventSpec
        if EventSpec.nodeExporterJobs.contains(labels["job"] ?? "") && (set("node") || set("instance")) {
            spec = clusterWide(kind: "Node", ["node", "instance"])
        } else if set("namespace") {
            let (label, kind) = EventSpec.workloadLabels.first { set($0.label) } ?? ("namespace", "Namespace")
            spec = EventSpec(anomalyClass: "", namespaceLabel: "namespace", kind: kind, kindLabel: nil, nameLabels: [label], severity: severity)
        } else if set("node") {
            spec = clusterWide(kind: "Node", ["node"])
        } else if set("instance") {
            spec = clusterWide(kind: "Instance", ["instance"])
        } else {
            spec = clusterWide(kind: "Alert", ["alertname"])
        }
        spec.anomalyClass = snakeCase(alertName)
        spec.opens = severity != "info"
        return spec
    }

    /// The `job` of node-exporter's series in kube-prometheus, the Prometheus docs and Debian.
    static let nodeExporterJobs: Set<String> = ["node-exporter", "node_exporter", "node"]

    /// kube-state-metrics scraped through its Service, as kube-prometheus-stack scrapes it, keeps
    /// the target's labels wherever a series has none of its own: a series about a node, an
    /// autoscaler or a quota carries kube-state-metrics' own `pod` (named after its `service`),
    /// `service` and `container`, and a node's series its `namespace` too
    /// (`KubeNodeNotReady{namespace="monitoring", pod="kps-kube-state-metrics-58474dc949-6ngch",
    /// service="kps-kube-state-metrics", node="n3"}`). Those name the exporter, not the subject:
    /// they are left out. A pod's own series keeps its pod (not named after the service).
    static func withoutExporterTarget(_ labels: [String: String]) -> [String: String] {
        guard let pod = labels["pod"], let service = labels["service"], !service.isEmpty, pod.hasPrefix(service + "-"),
              service.contains("kube-state-metrics") || (labels["job"] ?? "").contains("kube-state-metrics")
        else { return labels }
        var subjectLabels = labels
        for label in ["pod", "service", "container", "endpoint"] { subjectLabels[label] = nil }
        if !(labels["node"] ?? "").isEmpty { subjectLabels["namespace"] = nil }
        return subjectLabels
    }

    /// The labels that name a workload, most specific first, and the kind each names. A pod is
    /// lifted to its owner; a `service` names the Deployment of that name, or else the Service; an
    /// `app` the Deployment of that name, or the owner of the pods behind the series that carry it
    /// (as the bundled pack's error-ratio rule does).
    static let workloadLabels: [(label: String, kind: String)] = [
        ("deployment", "Deployment"), ("statefulset", "StatefulSet"), ("daemonset", "DaemonSet"),
        ("cronjob", "CronJob"), ("job_name", "Job"), ("pod", "Pod"),
        ("horizontalpodautoscaler", "HorizontalPodAutoscaler"), ("persistentvolumeclaim", "PersistentVolumeClaim"),
        ("service", "Deployment"), ("app", "Deployment"),
    ]

    /// `KubePodCrashLooping` → `kube_pod_crash_looping`, `HTTPErrors5xx` → `http_errors5xx`.
    public static func snakeCase(_ name: String) -> String {
        let chars = Array(name)
        var out = ""
        for (i, c) in chars.enumerated() {
            if c.isUppercase, i > 0, !out.hasSuffix("_"),
               !chars[i - 1].isUppercase || (i + 1 < chars.count && chars[i + 1].isLowercase) {
                out.append("_")
            }
            if c.isLetter || c.isNumber { out.append(contentsOf: c.lowercased()) } else if !out.hasSuffix("_") && !out.isEmpty { out.append("_") }
        }
        while out.hasSuffix("_") { out.removeLast() }
        return out.isEmpty ? "alert" : out
    }
}

/// One rule: an alerting or recording rule with Aligner's extensions.
public struct Rule: Sendable {
    public enum Kind: Sendable, Equatable {
        case alert(String)
        case record(String)
    }

    public var kind: Kind
    public var expr: Expr
    public var exprText: String
    /// `for`, milliseconds.
    public var holdDuration: Int64 = 0
    /// `keep_firing_for`, milliseconds.
    public var keepFiringFor: Int64 = 0
    public var labels: [String: String] = [:]
    public var annotations: [String: String] = [:]
    public var event: EventSpec?
    /// `event: false`: the rule's alerts are never signals (without `event`, they are routed by
    /// their labels, `EventSpec.inferred`).
    public var eventOff = false
    /// A separate condition that must hold for the alert to resolve (hysteresis).
    public var resolve: Expr?
    /// A statistical detector judging each series of `expr`'s result (see `DetectorSpec`).
    public var detector: DetectorSpec?
    public var hooks: [String] = []
    public var position: SourcePosition

    public var name: String {
        switch kind {
        case .alert(let n), .record(let n): n
        }
    }

    /// Every expression the rule evaluates: `expr`, then its `resolve` and its detector's `volume`.
    public var expressions: [Expr] { [expr] + [resolve, detector?.volume].compactMap { $0 } }
}

/// A rule group, as in Prometheus rule files.
public struct RuleGroup: Sendable {
    public var name: String
    public var file: String
    /// Milliseconds; nil means evaluate as data arrives.
    public var interval: Int64?
    public var limit = 0
    /// The group's own `query_offset` (milliseconds); nil takes `rules.query_offset`.
    public var queryOffset: Int64?
    public var labels: [String: String] = [:]
    public var rules: [Rule] = []
}

/// Every problem found in one or more rule files, each as `file:line:col: group "g", rule N "Name": what`.
public struct RuleFileError: Error, Sendable, CustomStringConvertible {
    public var problems: [String]

    public init(problems: [String]) { self.problems = problems }

    public var description: String { problems.joined(separator: "\n") }
}

/// Reads Prometheus rule files (with Aligner's extensions), reporting every problem in one pass.
public enum RuleFileLoader {
    /// Loads files; all or nothing.
    /// `templates`, when given, checks a label or annotation template of an alerting rule and
    /// returns what is wrong with it (as Prometheus parses them when it loads a file).
    public static func load(files: [String], templates: (@Sendable (String) -> String?)? = nil) throws -> [RuleGroup] {
        var groups: [RuleGroup] = []
        var problems: [String] = []
        for file in files {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) else {
                problems.append("\(file): no such rule file")
                continue
            }
            if isDirectory.boolValue {
                problems.append("\(file): a folder, not a rule file (name its files)")
                continue
            }
            do {
                let text = try String(contentsOfFile: file, encoding: .utf8)
                let (g, p) = parse(yaml: text, file: file, templates: templates)
                groups += g
                problems += p
            } catch {
                problems.append("\(file): cannot read rule file: \(error.localizedDescription)")
            }
        }
        if !problems.isEmpty { throw RuleFileError(problems: problems) }
        return groups
    }

    /// The paths with each folder replaced by its rule files (`files(in:)`), in order.
    public static func expandingFolders(_ paths: [String]) -> [String] {
        paths.flatMap { path -> [String] in
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return [path] }
            return (try? files(in: path)) ?? [path]
        }
    }

    /// The rule files of a folder (`*.yml`, `*.yaml`, not `*_test.yml`), sorted.
    public static func files(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { ($0.hasSuffix(".yml") || $0.hasSuffix(".yaml")) && !$0.contains("_test.") }
            .sorted()
            .map { directory + "/" + $0 }
    }

    /// Parses one file's text: the groups, and every problem found.
    public static func parse(yaml text: String, file: String, templates: (@Sendable (String) -> String?)? = nil) -> ([RuleGroup], [String]) {
        var context = Context(file: file, lines: text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
        context.templates = templates
        let root: Node?
        do {
            root = try Yams.compose(yaml: text).map(resolvingMerges)
        } catch let error as YamlError {
            return ([], ["\(file): \(error)"])
        } catch {
            return ([], ["\(file): \(error)"])
        }
        guard let root, let mapping = root.mapping else {
            if root == nil { return ([], []) }
            return ([], ["\(context.at(root!)): rule file must be a mapping with a \"groups\" key"])
        }
        var groups: [RuleGroup] = []
        var names: Set<String> = []
        for (key, value) in mapping {
            guard key.string == "groups" else {
                context.problem(key, "unknown key \"\(key.string ?? "")\" (want \"groups\")")
                continue
            }
            guard let list = value.sequence else {
                context.problem(value, "groups must be a list")
                continue
            }
            for groupNode in list {
                if let g = context.group(groupNode) {
                    if !names.insert(g.name).inserted {
                        context.problem(groupNode, "group \"\(g.name)\": groupname: \"\(g.name)\" is repeated in the same file")
                    }
                    groups.append(g)
                }
            }
        }
        return (groups, context.problems)
    }
}

/// The node with YAML merge keys (`<<: *anchor`) resolved, as Prometheus' YAML reader resolves
/// them: a mapping takes the merged mappings' keys it does not have itself.
func resolvingMerges(_ node: Node) -> Node {
    switch node {
    case .mapping(let mapping):
        var own: [(Node, Node)] = []
        var merged: [(Node, Node)] = []
        for (key, value) in mapping {
            guard key.string == "<<", key.scalar?.style == .plain || key.scalar?.style == .any else {
                own.append((key, resolvingMerges(value)))
                continue
            }
            let sources = value.sequence.map { Array($0) } ?? [value]
            for source in sources {
                if case .mapping(let m) = resolvingMerges(source) { merged += m.map { ($0.key, $0.value) } }
            }
        }
        var keys = Set(own.compactMap { $0.0.string })
        for (key, value) in merged where keys.insert(key.string ?? "").inserted { own.append((key, value)) }
        return .mapping(Node.Mapping(own, mapping.tag, mapping.style, mapping.mark))
    case .sequence(let sequence):
        return .sequence(Node.Sequence(sequence.map(resolvingMerges), sequence.tag, sequence.style, sequence.mark))
    default:
        return node
    }
}

struct Context {
    let file: String
    let lines: [String]
    var problems: [String] = []
    var templates: (@Sendable (String) -> String?)?

    func at(_ node: Node) -> String {
        guard let mark = node.mark else { return file }
        return "\(file):\(mark.line):\(mark.column)"
    }

    mutating func problem(_ node: Node, _ message: String) { problems.append("\(at(node)): \(message)") }

    func duration(_ node: Node) -> Int64? {
        guard let s = node.string, let ms = parseDurationMilliseconds(s) else { return nil }
        return ms
    }

    func stringMap(_ node: Node, _ what: String, prefix: String, _ problems: inout [String]) -> [String: String] {
        // `labels:` with nothing after it is null: no labels.
        if let scalar = node.scalar, scalar.style == .plain || scalar.style == .any, ["", "~", "null", "Null", "NULL"].contains(scalar.string) {
            return [:]
        }
        guard let mapping = node.mapping else {
            problems.append("\(at(node)): \(prefix)\(what) must be a mapping")
            return [:]
        }
        var out: [String: String] = [:]
        for (k, v) in mapping {
            let name = k.string ?? ""
            if !isValidLabelName(name) { problems.append("\(at(k)): \(prefix)invalid \(what == "annotations" ? "annotation" : "label") name: \"\(name)\"") }
            out[name] = v.string ?? ""
        }
        return out
    }

    mutating func group(_ node: Node) -> RuleGroup? {
        guard let mapping = node.mapping else {
            problem(node, "a group must be a mapping")
            return nil
        }
        let name = mapping["name"]?.string ?? ""
        var group = RuleGroup(name: name, file: file)
        let prefix = "group \"\(name)\": "
        if name.isEmpty { problem(node, "group name must not be empty") }
        var ruleNodes: [Node] = []
        for (k, v) in mapping {
            switch k.string ?? "" {
            case "name": break
            case "interval":
                // 0 is the default (rules.evaluation_interval), as in Prometheus.
                if let d = duration(v) { group.interval = d > 0 ? d : nil } else { problem(v, prefix + "interval must be a duration such as 30s") }
            case "query_offset":
                if let d = duration(v) { group.queryOffset = d } else { problem(v, prefix + "query_offset must be a duration") }
            case "limit":
                // 0 or less: no limit, as in Prometheus.
                if let l = v.int { group.limit = max(0, l) } else { problem(v, prefix + "limit must be an integer") }
            case "labels":
                group.labels = stringMap(v, "labels", prefix: prefix, &problems)
            case "rules":
                if let list = v.sequence { ruleNodes = Array(list) } else { problem(v, prefix + "rules must be a list") }
            default:
                problem(k, prefix + "unknown key \"\(k.string ?? "")\" in group")
            }
        }
        for (i, ruleNode) in ruleNodes.enumerated() {
            if let rule = rule(ruleNode, index: i + 1, group: name) { group.rules.append(rule) }
        }
        return group
    }

    mutating func rule(_ node: Node, index: Int, group: String) -> Rule? {
        guard let mapping = node.mapping else {
            problem(node, "group \"\(group)\", rule \(index): a rule must be a mapping")
            return nil
        }
        let alert = mapping["alert"]?.string
        let record = mapping["record"]?.string
        let label = "group \"\(group)\", rule \(index) \"\(alert ?? record ?? "")\": "
        let start = problems.count
        func fail(_ n: Node, _ message: String) { problems.append("\(at(n)): \(label)\(message)") }
        if alert == nil && record == nil { fail(node, "one of 'record' or 'alert' must be set") }
        if alert != nil && record != nil { fail(node, "only one of 'record' and 'alert' must be set") }
        if let alert, alert.isEmpty { fail(mapping["alert"]!, "alert name must not be empty") }
        if let record, !isValidMetricName(record) { fail(mapping["record"]!, "invalid recording rule name: \"\(record)\"") }
        var expr: Expr?
        var exprText = ""
        if let exprNode = mapping["expr"] {
            exprText = exprNode.string ?? ""
            expr = parseExpression(exprNode, label: label)
            if let e = expr, e.type != .instantVector && e.type != .scalar {
                fail(exprNode, "expression must evaluate to an instant vector or scalar, got \(e.type.rawValue)")
                expr = nil
            }
        } else {
            fail(node, "field 'expr' must be set in rule")
        }
        var rule = Rule(
            kind: alert.map { .alert($0) } ?? .record(record ?? ""), expr: expr ?? .number(0), exprText: exprText,
            position: SourcePosition(file: file, line: node.mark?.line ?? 0, column: node.mark?.column ?? 0))
        for (k, v) in mapping {
            let key = k.string ?? ""
            let alertOnly = ["for", "keep_firing_for", "annotations", "event", "resolve", "hooks", "detector"]
            if record != nil && alertOnly.contains(key) {
                fail(k, "invalid field '\(key)' in recording rule")
                continue
            }
            switch key {
            case "alert", "record", "expr": break
            case "for":
                if let d = duration(v) { rule.holdDuration = d } else { fail(v, "for must be a duration such as 5m") }
            case "keep_firing_for":
                if let d = duration(v) { rule.keepFiringFor = d } else { fail(v, "keep_firing_for must be a duration such as 5m") }
            case "labels":
                var p: [String] = []
                rule.labels = stringMap(v, "labels", prefix: label, &p)
                problems += p
                if rule.labels["__name__"] != nil { fail(v, "invalid label name: \"__name__\"") }
                if alert != nil { checkTemplates(v, "label", fail) }
            case "annotations":
                var p: [String] = []
                rule.annotations = stringMap(v, "annotations", prefix: label, &p)
                problems += p
                checkTemplates(v, "annotation", fail)
            case "event":
                if v.bool == false { rule.eventOff = true } else { rule.event = eventSpec(v, fail: fail) }
            case "resolve":
                if let e = parseExpression(v, label: label) {
                    if e.type != .instantVector && e.type != .scalar {
                        fail(v, "resolve must evaluate to an instant vector or scalar, got \(e.type.rawValue)")
                    } else {
                        rule.resolve = e
                    }
                }
            case "detector":
                rule.detector = detectorSpec(v, fail: fail)
            case "hooks":
                if let list = v.sequence, list.allSatisfy({ $0.string?.isEmpty == false }) {
                    rule.hooks = list.compactMap(\.string)
                } else {
                    fail(v, "hooks must be a list of hook names")
                }
            default:
                fail(k, "unknown key \"\(key)\" in rule")
            }
        }
        return problems.count == start ? rule : nil
    }

    /// An alerting rule's label or annotation templates that do not parse, each where it is.
    func checkTemplates(_ node: Node, _ what: String, _ fail: (Node, String) -> Void) {
        guard let templates, let mapping = node.mapping else { return }
        for (k, v) in mapping {
            if let message = templates(v.string ?? "") { fail(v, "\(what) \"\(k.string ?? "")\": \(message)") }
        }
    }

    func eventSpec(_ node: Node, fail: (Node, String) -> Void) -> EventSpec? {
        guard let m = node.mapping else {
            fail(node, "event must be a mapping with class, subject and severity, or false")
            return nil
        }
        var spec = EventSpec(anomalyClass: "", namespaceLabel: "namespace", kind: nil, kindLabel: nil, nameLabels: [], severity: "warning")
        var ok = true
        for (k, v) in m {
            switch k.string ?? "" {
            case "class":
                if let c = v.string, !c.isEmpty, c.allSatisfy({ $0.isLowercase || $0 == "_" || $0.isNumber }) { spec.anomalyClass = c } else {
                    fail(v, "event.class must be a lower_snake_case name such as replica_mismatch"); ok = false
                }
            case "severity":
                if let s = v.string, ["critical", "warning", "info"].contains(s) { spec.severity = s } else {
                    fail(v, "event.severity must be critical, warning or info"); ok = false
                }
            case "subject":
                guard let sm = v.mapping else {
                    fail(v, "event.subject must be a mapping: {namespace: LABEL, kind: KIND, name: LABEL or [LABEL, ...]}"); ok = false
                    continue
                }
                for (sk, sv) in sm {
                    let value = sv.string ?? ""
                    switch sk.string ?? "" {
                    case "namespace":
                        if isValidLabelName(value) { spec.namespaceLabel = value } else { fail(sv, "event.subject.namespace must be a label name"); ok = false }
                    case "name":
                        // A label, or a list of labels: the first one set names the workload.
                        let nodes = sv.sequence.map(Array.init) ?? [sv]
                        let bad = nodes.first { !isValidLabelName($0.string ?? "") }
                        if nodes.isEmpty || bad != nil {
                            fail(bad ?? sv, "event.subject.name must be a label name or a list of label names"); ok = false
                        } else {
                            spec.nameLabels = nodes.map { $0.string ?? "" }
                        }
                    case "kind": spec.kind = value
                    case "kind_label":
                        if isValidLabelName(value) { spec.kindLabel = value } else { fail(sv, "event.subject.kind_label must be a label name"); ok = false }
                    default:
                        fail(sk, "unknown key \"\(sk.string ?? "")\" in event.subject (known: namespace, kind, kind_label, name)"); ok = false
                    }
                }
            case "opens":
                if let b = v.bool { spec.opens = b } else { fail(v, "event.opens must be true or false"); ok = false }
            case "moment":
                if let b = v.bool { spec.moment = b } else { fail(v, "event.moment must be true or false"); ok = false }
            default:
                fail(k, "unknown key \"\(k.string ?? "")\" in event (known: class, subject, severity, opens, moment)"); ok = false
            }
        }
        if spec.anomalyClass.isEmpty && ok { fail(node, "event.class must be set"); ok = false }
        if spec.nameLabels.isEmpty && ok { fail(node, "event.subject.name must name the label that holds the workload name"); ok = false }
        return ok ? spec : nil
    }

    func detectorSpec(_ node: Node, fail: (Node, String) -> Void) -> DetectorSpec? {
        let methods = DetectorSpec.Method.allCases.map(\.rawValue).joined(separator: ", ")
        guard let m = node.mapping else {
            fail(node, "detector must be a mapping such as {method: ewma, threshold: 4}")
            return nil
        }
        guard let methodNode = m["method"] else {
            fail(node, "detector.method must be set (\(methods))")
            return nil
        }
        guard let method = methodNode.string.flatMap(DetectorSpec.Method.init(rawValue:)) else {
            fail(methodNode, "unknown detector.method \"\(methodNode.string ?? "")\" (known: \(methods))")
            return nil
        }
        var ok = true
        func number(_ v: Node, _ key: String) -> Double? {
            if let d = v.float, d.isFinite { return d }
            fail(v, "detector.\(key) must be a number"); ok = false
            return nil
        }
        func positiveDuration(_ v: Node, _ key: String) -> Int64? {
            if let d = duration(v), d > 0 { return d }
            fail(v, "detector.\(key) must be a duration above 0 such as 15m"); ok = false
            return nil
        }
        var threshold: Double?, warmUp: Int64?, halfLife: Int64?, window: Int64?, trendHalfLife: Int64?, slack: Double?
        var volume: Expr?, minVolume: Double?, minVolumeNode: Node?
        var direction = DetectorSpec.Direction.up, minDeviation = 0.0
        for (k, v) in m {
            let key = k.string ?? ""
            switch key {
            case "method": break
            case "threshold":
                threshold = number(v, key)
                if method != .threshold, let t = threshold, t <= 0 { fail(v, "detector.threshold must be above 0: it counts deviations"); ok = false }
            case "direction":
                if let d = v.string.flatMap(DetectorSpec.Direction.init(rawValue:)) { direction = d } else {
                    fail(v, "detector.direction must be up, down or both"); ok = false
                }
            case "min_deviation":
                if let d = number(v, key) {
                    if d >= 0 { minDeviation = d } else { fail(v, "detector.min_deviation must not be negative"); ok = false }
                }
            case "warm_up":
                if let d = duration(v), d >= 0 { warmUp = d } else { fail(v, "detector.warm_up must be a duration such as 30m"); ok = false }
            case "half_life":
                if ![.ewma, .holt, .cusum].contains(method) { fail(k, "detector.half_life is for methods ewma, holt and cusum"); ok = false } else {
                    halfLife = positiveDuration(v, key)
                }
            case "trend_half_life":
                if method != .holt { fail(k, "detector.trend_half_life is for method holt"); ok = false } else { trendHalfLife = positiveDuration(v, key) }
            case "slack":
                if method != .cusum { fail(k, "detector.slack is for method cusum"); ok = false } else if let d = number(v, key) {
                    if d >= 0 { slack = d } else { fail(v, "detector.slack must not be negative"); ok = false }
                }
            case "window":
                if method != .mad { fail(k, "detector.window is for method mad"); ok = false } else { window = positiveDuration(v, key) }
            case "volume":
                do {
                    let e = try PromQLParser.parse(v.string ?? "")
                    if e.type == .instantVector { volume = e } else {
                        fail(v, "detector.volume must evaluate to an instant vector, got \(e.type.rawValue)"); ok = false
                    }
                } catch {
                    fail(v, "could not parse detector.volume: \(error.message)"); ok = false
                }
            case "min_volume":
                minVolumeNode = k
                if let d = number(v, key) {
                    if d >= 0 { minVolume = d } else { fail(v, "detector.min_volume must not be negative"); ok = false }
                }
            default:
                fail(k, "unknown key \"\(key)\" in detector (known: method, threshold, direction, min_deviation, warm_up, half_life, trend_half_life, slack, window, volume, min_volume)"); ok = false
            }
        }
        if let minVolumeNode, volume == nil, ok { fail(minVolumeNode, "detector.min_volume needs detector.volume, the expression it bounds"); ok = false }
        if method == .threshold && threshold == nil && ok { fail(node, "detector.threshold must be set for method threshold"); ok = false }
        guard ok else { return nil }
        var spec = DetectorSpec(method: method, threshold: threshold, warmUp: warmUp, halfLife: halfLife, window: window, trendHalfLife: trendHalfLife)
        spec.direction = direction
        spec.minDeviation = minDeviation
        if let slack { spec.slack = slack }
        spec.volume = volume
        if let minVolume { spec.minVolume = minVolume }
        return spec
    }

    /// Parses an expression, reporting errors at their position in the file.
    mutating func parseExpression(_ node: Node, label: String) -> Expr? {
        let text = node.string ?? ""
        do {
            return try PromQLParser.parse(text)
        } catch {
            problems.append("\(position(of: error.offset, in: node)): \(label)could not parse expression: \(error.message)")
            return nil
        }
    }

    /// Maps a byte offset in a scalar's value to its line and column in the file.
    func position(of offset: Int, in node: Node) -> String {
        guard let mark = node.mark, let scalar = node.scalar else { return at(node) }
        let text = scalar.string
        let prefix = text.utf8.prefix(offset)
        let newlines = prefix.filter { $0 == 0x0a }.count
        let lastLine = prefix.split(separator: 0x0a, omittingEmptySubsequences: false).last.map { String(decoding: $0, as: UTF8.self) } ?? ""
        switch scalar.style {
        case .literal, .folded:
            // The content starts on the line after the indicator, at the block's indentation.
            let firstContent = mark.line  // 0-based index of the next line
            let indent = firstContent < lines.count ? lines[firstContent].prefix(while: { $0 == " " }).count : 0
            return "\(file):\(mark.line + 1 + newlines):\(indent + 1 + lastLine.count)"
        case .singleQuoted, .doubleQuoted:
            return newlines == 0 ? "\(file):\(mark.line):\(mark.column + 1 + lastLine.count)" : "\(file):\(mark.line + newlines):1"
        default:
            return newlines == 0 ? "\(file):\(mark.line):\(mark.column + lastLine.count)" : "\(file):\(mark.line + newlines):1"
        }
    }
}

/// Prometheus label names: `[a-zA-Z_][a-zA-Z0-9_]*`.
public func isValidLabelName(_ s: String) -> Bool {
    guard let first = s.utf8.first, Lexer.isIdentifierStart(first) else { return false }
    return s.utf8.allSatisfy(Lexer.isIdentifierPart)
}

/// Prometheus metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
public func isValidMetricName(_ s: String) -> Bool {
    guard let first = s.utf8.first, Lexer.isIdentifierStart(first) || first == UInt8(ascii: ":") else { return false }
    return s.utf8.allSatisfy { Lexer.isIdentifierPart($0) || $0 == UInt8(ascii: ":") }
}

/// A Prometheus duration (`30s`, `5m`, `1h30m`, `250ms`) in milliseconds.
public func parseDurationMilliseconds(_ text: String) -> Int64? {
    if text == "0" { return 0 }
    var lexer = Lexer(text)
    guard let t = try? lexer.next(), case .duration(let ms) = t.kind, (try? lexer.next())?.kind == .end else { return nil }
    return ms
}
