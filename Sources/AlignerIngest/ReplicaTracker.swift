import AlignerCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Deduplication of a highly available pair of Prometheus servers (`ingest.ha_*`): two servers
/// that scrape the same targets and differ only by a replica label (kube-prometheus'
/// `prometheus_replica`). Per group of replicas (the values of `clusterLabels`), the samples of one
/// replica are taken (the first heard; another once it has been silent for `failoverTimeout`),
/// the others' requests are answered 202 and dropped, and the replica label is left out of the
/// series, so a series is the same one before and after a failover.
public struct ReplicaDeduplication: Sendable {
    /// `ingest.ha_replica_label`; empty turns deduplication off.
    public var replicaLabel = "prometheus_replica"
    /// `ingest.ha_cluster_labels`: the labels whose values name a group of replicas.
    public var clusterLabels = ["cluster", "prometheus"]
    /// `ingest.ha_failover_timeout`.
    public var failoverTimeout: Duration = .seconds(30)

    public init() {}
}

/// Which replica of each group is taken (see `ReplicaDeduplication`).
final class ReplicaTracker: Sendable {
    /// The replica label's name, held where the hot path reads it without retaining an array.
    nonisolated(unsafe) let replicaLabel: UnsafeRawBufferPointer
    let clusterLabels: [[UInt8]]
    let failoverMilliseconds: Int64

    struct Elected {
        var replica: String
        var lastSeen: Int64
    }

    let elected = Mutex<[String: Elected]>([:])

    /// Nil when deduplication is off.
    init?(_ settings: ReplicaDeduplication) {
        guard !settings.replicaLabel.isEmpty else { return nil }
        let name = UnsafeMutableRawBufferPointer.allocate(byteCount: settings.replicaLabel.utf8.count, alignment: 1)
        name.copyBytes(from: settings.replicaLabel.utf8)
        replicaLabel = UnsafeRawBufferPointer(name)
        clusterLabels = settings.clusterLabels.map { Array($0.utf8) }
        failoverMilliseconds = settings.failoverTimeout.milliseconds
    }

    deinit { replicaLabel.deallocate() }

    /// What a request's replica may do.
    struct Verdict {
        var admitted: Bool
        /// Why not, or what changed (a replica elected, a failover), for the response and the log.
        var message: String?
    }

    /// Whether the samples of `replica` of `group` are taken at `now` (milliseconds). A group's
    /// first replica is elected; another replica takes over once the elected one has sent
    /// nothing for the failover timeout.
    func admit(group: String, replica: String, now: Int64) -> Verdict {
        elected.withLock { elected in
            guard let current = elected[group] else {
                if elected.count >= 10_000 { elected = elected.filter { now - $0.value.lastSeen < 10 * failoverMilliseconds } }
                elected[group] = Elected(replica: replica, lastSeen: now)
                return Verdict(admitted: true, message: "replica \"\(replica)\" of \(group) elected")
            }
            if current.replica == replica {
                elected[group]!.lastSeen = max(current.lastSeen, now)
                return Verdict(admitted: true)
            }
            if now - current.lastSeen < failoverMilliseconds {
                return Verdict(admitted: false, message: "deduplicated: replica \"\(replica)\" of \(group) is standing by; \"\(current.replica)\" is taken while it keeps sending (ingest.ha_replica_label)")
            }
            elected[group] = Elected(replica: replica, lastSeen: now)
            return Verdict(admitted: true, message: "replica \"\(replica)\" of \(group) elected: \"\(current.replica)\" sent nothing for \((now - current.lastSeen) / 1000) s (ingest.ha_failover_timeout)")
        }
    }

    /// The value of `name` among `labels`, if present and not empty.
    static func value(_ name: [UInt8], in labels: UnsafeBufferPointer<LabelRef>) -> UnsafeRawBufferPointer? {
        name.withUnsafeBytes { index(of: $0, in: labels) }.map { labels[$0].value }
    }

    /// Where the label `name` is among `labels`, if present with a value.
    @inline(__always)
    static func index(of name: UnsafeRawBufferPointer, in labels: UnsafeBufferPointer<LabelRef>) -> Int? {
        for i in labels.indices where labels[i].name.count == name.count && labels[i].value.count > 0 && same(labels[i].name, name) {
            return i
        }
        return nil
    }

    @inline(__always)
    static func same(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
    }

    /// The group a series belongs to, as `{cluster="...",prometheus="..."}`.
    func group(of labels: UnsafeBufferPointer<LabelRef>) -> String {
        let pairs = clusterLabels.map { name in
            "\(String(decoding: name, as: UTF8.self))=\"\(ReplicaTracker.value(name, in: labels).map { String(decoding: $0, as: UTF8.self) } ?? "")\""
        }
        return "{" + pairs.joined(separator: ",") + "}"
    }
}

/// The replicas one request's series came from, decided once per distinct replica and group
/// (a request usually comes from one Prometheus: one decision).
struct ReplicaDecisions {
    struct Decision {
        var replica: [UInt8]
        var group: [[UInt8]]
        var admitted: Bool
    }

    var decisions: [Decision] = []
    /// Replicas elected by this request's series, for the log.
    var elections: [String] = []
    /// Why a series of this request was dropped (the last such reason).
    var dropped: String?

    /// Whether a series with these labels, its replica label at `replicaAt`, is taken.
    mutating func admits(_ labels: UnsafeBufferPointer<LabelRef>, replicaAt: Int, tracker: ReplicaTracker, now: Int64) -> Bool {
        let replica = labels[replicaAt].value
        known: for d in decisions {
            guard d.replica.withUnsafeBytes({ ReplicaTracker.same($0, replica) }) else { continue }
            for (k, name) in tracker.clusterLabels.enumerated() {
                let sent = ReplicaTracker.value(name, in: labels) ?? UnsafeRawBufferPointer(start: nil, count: 0)
                guard d.group[k].withUnsafeBytes({ ReplicaTracker.same($0, sent) }) else { continue known }
            }
            return d.admitted
        }
        let verdict = tracker.admit(group: tracker.group(of: labels), replica: String(decoding: replica, as: UTF8.self), now: now)
        if verdict.admitted {
            if let message = verdict.message { elections.append(message) }
        } else {
            dropped = verdict.message
        }
        decisions.append(Decision(replica: Array(replica), group: tracker.clusterLabels.map { ReplicaTracker.value($0, in: labels).map(Array.init) ?? [] },
                                  admitted: verdict.admitted))
        return verdict.admitted
    }
}
