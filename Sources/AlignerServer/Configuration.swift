import AlignerEvents
import AlignerIngest
import AlignerRules
import Foundation
import Logging
import Yams

/// Everything Aligner can be configured with. Defaults need no file; a YAML file, environment
/// variables and command-line flags override them, in that order.
public struct AlignerConfiguration: Sendable {
    /// Address the HTTP server binds (`listen`, `ALIGNER_LISTEN`, `--listen`).
    public var listen = ListenAddress(host: "127.0.0.1", port: 9095)
    /// Log level (`log_level`, `ALIGNER_LOG_LEVEL`, `--log-level`).
    public var logLevel: Logger.Level = .info
    /// The process' threads under Linux' SCHED_BATCH policy (`cpu_scheduling: batch`, the
    /// default) or left as started (`normal`); see `AlignerServer.useBatchScheduling`.
    public var batchScheduling = true
    /// Ingest limits (`ingest.*`).
    public var ingest = IngestLimits()
    /// Rule files or folders (`rules.paths`); the bundled `rules/` folder by default, skipped if absent.
    public var rulePaths: [String] = ["rules"]
    /// Whether `rulePaths` is the default (a missing default folder is not an error).
    public var rulePathsAreDefault = true
    /// Every group is evaluated at least this often, data or not (`rules.evaluation_interval`).
    public var ruleEvaluationInterval: Duration = .seconds(15)
    /// The step of a subquery that names none (`[1h:]`): Prometheus takes its global
    /// evaluation_interval, 1m unless configured (`rules.subquery_step`).
    public var ruleSubqueryStep: Duration = .seconds(60)
    /// Queries of groups without their own `query_offset` look this far back from the evaluation
    /// time (`rules.query_offset`, as Prometheus' global `rule_query_offset`): for senders whose
    /// samples arrive late.
    public var ruleQueryOffset: Duration = .zero
    /// A pending alert survives evaluations that miss its series for this long (`rules.gap_tolerance`).
    public var ruleGapTolerance: Duration = .seconds(15)
    /// `$externalLabels` and `$externalURL` in rule templates (`rules.external_labels`, `rules.external_url`).
    public var ruleExternalLabels: [String: String] = [:]
    public var ruleExternalURL = ""
    /// Where the events store lives (`events.data_dir`, `ALIGNER_DATA_DIR`).
    public var dataDirectory = "data"
    /// An event resolves once all its signals have been resolved this long (`events.resolve_after`).
    public var eventResolveAfter: Duration = .seconds(60)
    /// A new signal within this long after close reopens the event (`events.cooldown`).
    public var eventCooldown: Duration = .seconds(600)
    /// Flood consolidation, the open-event cap and flap dampening (`events.flood_threshold`,
    /// `events.flood_window`, `events.max_open`, `events.flap_reopenings`, `events.flap_window`).
    public var eventLimits = EventLimits()

    /// The defaults.
    public init() {}

    /// Every key a configuration file may hold, for error messages and the README.
    public static let keys = [
        "listen", "log_level", "cpu_scheduling", "ingest.max_body_bytes", "ingest.max_decoded_bytes",
        "ingest.max_inflight_bytes", "ingest.max_series", "ingest.series_idle_timeout",
        "ingest.ha_replica_label", "ingest.ha_cluster_labels", "ingest.ha_failover_timeout",
        "rules.paths", "rules.evaluation_interval", "rules.subquery_step", "rules.query_offset", "rules.gap_tolerance", "rules.external_labels",
        "rules.external_url", "events.data_dir", "events.resolve_after", "events.cooldown", "events.max_open", "events.flood_threshold",
        "events.flood_window", "events.flap_reopenings", "events.flap_window", "events.retention",
    ]
}

/// A host and port to bind.
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (`[::1]:9095` for IPv6, `:9095` for all interfaces).
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.init(host: host.isEmpty ? "0.0.0.0" : host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Every problem found in a configuration file, each with its position.
public struct ConfigurationError: Error, CustomStringConvertible {
    public var problems: [String]

    public var description: String { problems.joined(separator: "\n") }
}

extension AlignerConfiguration {
    /// Reads a YAML configuration file over the defaults, reporting every problem at once as
    /// `file:line:col: message`.
    public static func load(file path: String) throws -> AlignerConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError(problems: ["\(path): cannot read configuration file: \(error.localizedDescription)"])
        }
        return try parse(yaml: text, file: path)
    }

    /// Parses YAML text over the defaults.
    public static func parse(yaml text: String, file: String = "<config>") throws -> AlignerConfiguration {
        var config = AlignerConfiguration()
        var problems: [String] = []
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigurationError(problems: ["\(file): \(error)"])
        }
        guard let root else { return config }
        func at(_ node: Node) -> String {
            guard let mark = node.mark else { return file }
            return "\(file):\(mark.line):\(mark.column)"
        }
        guard let mapping = root.mapping else {
            throw ConfigurationError(problems: ["\(at(root)): configuration must be a mapping of keys"])
        }
        func integer(_ node: Node, _ key: String, _ apply: (Int) -> Void) {
            if let v = node.int, v > 0 { apply(v) } else { problems.append("\(at(node)): \(key) must be a positive integer, got \"\(node.string ?? "?")\"") }
        }
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            switch key {
            case "listen":
                if let s = value.string, let address = ListenAddress(parsing: s) { config.listen = address } else {
                    problems.append("\(at(value)): listen must be host:port, got \"\(value.string ?? "?")\"")
                }
            case "log_level":
                if let s = value.string, let level = Logger.Level(rawValue: s.lowercased()) { config.logLevel = level } else {
                    problems.append("\(at(value)): log_level must be one of trace, debug, info, notice, warning, error, critical")
                }
            case "cpu_scheduling":
                if let batch = value.string.flatMap(AlignerConfiguration.isBatchScheduling) { config.batchScheduling = batch } else {
                    problems.append("\(at(value)): cpu_scheduling must be batch or normal, got \"\(value.string ?? "?")\"")
                }
            case "ingest":
                guard let ingest = value.mapping else {
                    problems.append("\(at(value)): ingest must be a mapping")
                    continue
                }
                for (k, v) in ingest {
                    let name = k.string ?? ""
                    switch name {
                    case "max_body_bytes": integer(v, "ingest.\(name)") { config.ingest.maxBodyBytes = $0 }
                    case "max_decoded_bytes": integer(v, "ingest.\(name)") { config.ingest.maxDecodedBytes = $0 }
                    case "max_inflight_bytes": integer(v, "ingest.\(name)") { config.ingest.maxInflightBytes = $0 }
                    case "max_series": integer(v, "ingest.\(name)") { config.ingest.maxSeries = $0 }
                    case "series_idle_timeout":
                        if let s = v.string, let d = parsePrometheusDuration(s), d > .zero { config.ingest.seriesIdleTimeout = d } else {
                            problems.append("\(at(v)): ingest.series_idle_timeout must be a duration such as 30m, got \"\(v.string ?? "?")\"")
                        }
                    case "ha_replica_label":
                        if let s = v.string, s.isEmpty || isValidLabelName(s) { config.ingest.replicas.replicaLabel = s } else {
                            problems.append("\(at(v)): ingest.ha_replica_label must be a label name, or \"\" to take every replica, got \"\(v.string ?? "?")\"")
                        }
                    case "ha_cluster_labels":
                        if let names = v.sequence?.map({ $0.string ?? "" }), names.allSatisfy({ isValidLabelName($0) }) {
                            config.ingest.replicas.clusterLabels = names
                        } else {
                            problems.append("\(at(v)): ingest.ha_cluster_labels must be a list of label names such as [cluster, prometheus]")
                        }
                    case "ha_failover_timeout":
                        if let s = v.string, let d = parsePrometheusDuration(s), d > .zero { config.ingest.replicas.failoverTimeout = d } else {
                            problems.append("\(at(v)): ingest.ha_failover_timeout must be a duration such as 30s, got \"\(v.string ?? "?")\"")
                        }
                    default:
                        problems.append("\(at(k)): unknown key \"ingest.\(name)\" (known: \(keys.filter { $0.hasPrefix("ingest.") }.joined(separator: ", ")))")
                    }
                }
            case "events":
                guard let events = value.mapping else {
                    problems.append("\(at(value)): events must be a mapping")
                    continue
                }
                for (k, v) in events {
                    switch k.string ?? "" {
                    case "data_dir":
                        if let s = v.string, !s.isEmpty { config.dataDirectory = s } else { problems.append("\(at(v)): events.data_dir must be a path") }
                    case "retention":
                        if let s = v.string, let d = s == "0" ? .zero : parsePrometheusDuration(s) {
                            config.eventLimits.retention = d.milliseconds
                        } else {
                            problems.append("\(at(v)): events.retention must be a duration such as 90d (0 keeps everything)")
                        }
                    case "resolve_after", "cooldown":
                        if let s = v.string, let d = parsePrometheusDuration(s) {
                            if k.string == "cooldown" { config.eventCooldown = d } else { config.eventResolveAfter = d }
                        } else {
                            problems.append("\(at(v)): events.\(k.string ?? "") must be a duration such as 1m")
                        }
                    case "max_open":
                        integer(v, "events.max_open") { config.eventLimits.maxOpen = $0 }
                    case "flood_threshold":
                        integer(v, "events.flood_threshold") { config.eventLimits.floodThreshold = $0 }
                    case "flood_window", "flap_window":
                        if let s = v.string, let d = parsePrometheusDuration(s) {
                            if k.string == "flood_window" { config.eventLimits.floodWindow = d.milliseconds } else { config.eventLimits.flapWindow = d.milliseconds }
                        } else {
                            problems.append("\(at(v)): events.\(k.string ?? "") must be a duration such as 1m")
                        }
                    case "flap_reopenings":
                        integer(v, "events.flap_reopenings") { config.eventLimits.flapReopenings = $0 }
                    default:
                        problems.append("\(at(k)): unknown key \"events.\(k.string ?? "")\" (known: \(AlignerConfiguration.keys.filter { $0.hasPrefix("events.") }.joined(separator: ", ")))")
                    }
                }
            case "rules":
                guard let rules = value.mapping else {
                    problems.append("\(at(value)): rules must be a mapping")
                    continue
                }
                for (k, v) in rules {
                    switch k.string ?? "" {
                    case "paths":
                        if let list = v.sequence, list.allSatisfy({ $0.string != nil }) {
                            config.rulePaths = list.compactMap(\.string)
                            config.rulePathsAreDefault = false
                        } else {
                            problems.append("\(at(v)): rules.paths must be a list of rule files or folders")
                        }
                    case "evaluation_interval":
                        if let s = v.string, let d = parsePrometheusDuration(s), d > .zero { config.ruleEvaluationInterval = d } else {
                            problems.append("\(at(v)): rules.evaluation_interval must be a duration such as 15s")
                        }
                    case "subquery_step":
                        if let s = v.string, let d = parsePrometheusDuration(s), d > .zero { config.ruleSubqueryStep = d } else {
                            problems.append("\(at(v)): rules.subquery_step must be a duration such as 1m")
                        }
                    case "query_offset":
                        if let s = v.string, let d = s == "0" ? .zero : parsePrometheusDuration(s) { config.ruleQueryOffset = d } else {
                            problems.append("\(at(v)): rules.query_offset must be a duration such as 30s, or 0")
                        }
                    case "gap_tolerance":
                        if let s = v.string, let d = s == "0" ? .zero : parsePrometheusDuration(s) { config.ruleGapTolerance = d } else {
                            problems.append("\(at(v)): rules.gap_tolerance must be a duration such as 15s, or 0")
                        }
                    case "external_labels":
                        if let m = v.mapping, m.allSatisfy({ $0.key.string != nil && $0.value.string != nil }) {
                            config.ruleExternalLabels = Dictionary(m.map { ($0.key.string!, $0.value.string!) }, uniquingKeysWith: { $1 })
                        } else {
                            problems.append("\(at(v)): rules.external_labels must be a mapping of label names to values")
                        }
                    case "external_url":
                        if let s = v.string { config.ruleExternalURL = s } else {
                            problems.append("\(at(v)): rules.external_url must be a URL")
                        }
                    default:
                        problems.append("\(at(k)): unknown key \"rules.\(k.string ?? "")\" (known: rules.paths, rules.evaluation_interval, rules.subquery_step, rules.query_offset, rules.gap_tolerance, rules.external_labels, rules.external_url)")
                    }
                }
            default:
                problems.append("\(at(keyNode)): unknown key \"\(key)\" (known: \(keys.joined(separator: ", ")))")
            }
        }
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
        return config
    }

    /// `cpu_scheduling`'s value: true for `batch`, false for `normal`, nil for anything else.
    static func isBatchScheduling(_ value: String) -> Bool? {
        switch value.lowercased() {
        case "batch": true
        case "normal": false
        default: nil
        }
    }

    /// Applies `ALIGNER_*` environment variables.
    public mutating func applyEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws {
        var problems: [String] = []
        if let v = env["ALIGNER_LISTEN"] {
            if let a = ListenAddress(parsing: v) { listen = a } else { problems.append("ALIGNER_LISTEN must be host:port, got \"\(v)\"") }
        }
        if let v = env["ALIGNER_DATA_DIR"], !v.isEmpty { dataDirectory = v }
        if let v = env["ALIGNER_LOG_LEVEL"] {
            if let l = Logger.Level(rawValue: v.lowercased()) { logLevel = l } else { problems.append("ALIGNER_LOG_LEVEL: unknown level \"\(v)\"") }
        }
        if let v = env["ALIGNER_CPU_SCHEDULING"] {
            if let batch = AlignerConfiguration.isBatchScheduling(v) { batchScheduling = batch } else {
                problems.append("ALIGNER_CPU_SCHEDULING must be batch or normal, got \"\(v)\"")
            }
        }
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }
}

/// Parses a Prometheus duration such as `30s`, `5m`, `1h30m`, `250ms`, `1d`.
public func parsePrometheusDuration(_ text: String) -> Duration? {
    let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000),
                                    ("w", 604_800_000), ("y", 31_536_000_000)]
    var rest = Substring(text)
    var total: Int64 = 0
    guard !rest.isEmpty else { return nil }
    while !rest.isEmpty {
        let digits = rest.prefix(while: \.isNumber)
        guard let n = Int64(digits) else { return nil }
        rest = rest.dropFirst(digits.count)
        guard let unit = units.first(where: { rest.hasPrefix($0.0) && !(($0.0 == "m") && rest.hasPrefix("ms")) }) else {
            return nil
        }
        rest = rest.dropFirst(unit.0.count)
        let (part, o1) = n.multipliedReportingOverflow(by: unit.1)
        let (sum, o2) = total.addingReportingOverflow(part)
        guard !o1, !o2 else { return nil }
        total = sum
    }
    return .milliseconds(total)
}
