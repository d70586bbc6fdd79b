@testable import AlignerIngest
import AlignerCore
import AlignerTesting
import Testing

/// A highly available Prometheus pair: one replica's samples are taken, the other's dropped, the
/// replica label left out, and the standby takes over once the elected one falls silent.
@Suite struct ReplicaDeduplicationTests {
    func ingestor(failover: Duration = .seconds(30)) -> Ingestor {
        var limits = IngestLimits()
        limits.replicas.failoverTimeout = failover
        return Ingestor(limits: limits)
    }

    /// What replica `replica` of the `monitoring/k8s` pair sends at `t` (milliseconds after a
    /// 2026 time, so that each series ends in one sample as Prometheus encodes it, the shape whose
    /// labels are not walked): two series, labels sorted.
    func request(_ replica: String, t: Int64, value: Double = 1) -> TestRequest {
        TestRequest(series: ["a", "b"].map { pod in
            TestSeries("kube_pod_info", [("namespace", "shop"), ("pod", pod), ("prometheus", "monitoring/k8s"), ("prometheus_replica", replica)],
                       samples: [(1_795_664_769_000 + t, value)])
        })
    }

    func write(_ ingestor: Ingestor, _ request: TestRequest, version: RemoteWriteVersion, now: Int64) throws -> WriteOutcome {
        try IngestorTests().write(ingestor, request, version: version, now: now)
    }

    @Test(arguments: [RemoteWriteVersion.v1, .v2])
    func oneReplicaIsTakenUntilItFallsSilent(_ version: RemoteWriteVersion) throws {
        let i = ingestor()
        let first = try write(i, request("prometheus-k8s-0", t: 1000), version: version, now: 1000)
        #expect(first.samplesWritten == 2 && first.deduplicated == nil)
        #expect(first.replicaElections.first?.contains(#"replica "prometheus-k8s-0" of {cluster="",prometheus="monitoring/k8s"} elected"#) == true)
        // The standby's copy is dropped: a 202 with the reason, nothing written.
        let standby = try write(i, request("prometheus-k8s-1", t: 1100), version: version, now: 1100)
        #expect(standby.samplesWritten == 0 && standby.deduplicated?.contains("standing by") == true, "\(standby)")
        #expect(!standby.hasRejections)
        // The series carry no replica label.
        #expect(i.table.snapshot().map(\.labels).sorted { $0[2].value < $1[2].value } == ["a", "b"].map {
            [Label("__name__", "kube_pod_info"), Label("namespace", "shop"), Label("pod", $0), Label("prometheus", "monitoring/k8s")]
        })
        #expect(try write(i, request("prometheus-k8s-0", t: 16_000), version: version, now: 16_000).samplesWritten == 2)
        #expect(try write(i, request("prometheus-k8s-1", t: 45_000), version: version, now: 45_000).deduplicated != nil)
        // Silent for 30 s: the standby takes over, and its samples continue the same series.
        let takeover = try write(i, request("prometheus-k8s-1", t: 46_100, value: 2), version: version, now: 46_100)
        #expect(takeover.samplesWritten == 2 && takeover.seriesCreated == 0, "\(takeover)")
        #expect(takeover.replicaElections.first?.contains("\"prometheus-k8s-0\" sent nothing for 30 s") == true)
        #expect(try write(i, request("prometheus-k8s-0", t: 47_000), version: version, now: 47_000).deduplicated != nil)
        #expect(i.table.snapshot().map(\.lastValue) == [2, 2])
    }

    /// The replica label's field cut out of label bytes as sent, wherever it is and however long
    /// the fields around it (lengths of one byte or more); bytes that are not label fields are left.
    @Test func theReplicaFieldIsCutFromRawLabelBytes() {
        func varint(_ n: Int) -> [UInt8] { n < 0x80 ? [UInt8(n)] : [UInt8(n & 0x7F) | 0x80] + varint(n >> 7) }
        func key(_ labels: [(String, String)]) -> [UInt8] {
            labels.flatMap { name, value in
                let pair = [0x0A] + varint(name.utf8.count) + Array(name.utf8) + [0x12] + varint(value.utf8.count) + Array(value.utf8)
                return [0x0A] + varint(pair.count) + pair
            }
        }
        let long = String(repeating: "x", count: 300)
        let cases: [([(String, String)], [(String, String)])] = [
            ([("__name__", "up"), ("prometheus_replica", "r-0")], [("__name__", "up")]),
            ([("__name__", "up"), ("pod", long), ("prometheus_replica", "r-0"), ("zone", "a")], [("__name__", "up"), ("pod", long), ("zone", "a")]),
            ([("__name__", "up"), ("prometheus_replica", long)], [("__name__", "up")]),
            ([("__name__", "up"), ("prometheus_replica_set", "r"), ("prometheus_replicb", "r")], [("__name__", "up"), ("prometheus_replica_set", "r"), ("prometheus_replicb", "r")]),
        ]
        let name = Array("prometheus_replica".utf8)
        for (labels, expected) in cases {
            let out = ByteScratch(capacity: 16)
            let raw = key(labels)
            let cut = raw.withUnsafeBytes { r in name.withUnsafeBytes { SeriesKey.appendRemoving(label: $0, from: r, to: out) } }
            if labels.count == expected.count {
                #expect(cut == false && out.count == 0)
            } else {
                #expect(cut == true && Array(UnsafeRawBufferPointer(start: out.base, count: out.count)) == key(expected), "\(labels.map(\.0))")
            }
        }
        let junk: [UInt8] = [0x0A, 0x05, 0x0A, 0x01, 0x61, 0x12, 0x00, 0x12, 0x07]
        #expect(junk.withUnsafeBytes { r in name.withUnsafeBytes { SeriesKey.appendRemoving(label: $0, from: r, to: ByteScratch(capacity: 16)) } } == nil)
    }

    /// Senders without the replica label, and other groups, are not affected; off, the label stays.
    @Test func otherSendersAndGroupsAndOff() throws {
        let i = ingestor()
        _ = try write(i, request("prometheus-k8s-0", t: 1000), version: .v1, now: 1000)
        var other = request("prometheus-k8s-1", t: 1000)
        for s in other.series.indices { other.series[s].labels.append(TestLabel("cluster", "eu-1")) }
        #expect(try write(i, other, version: .v1, now: 1000).samplesWritten == 2)
        let plain = TestRequest(series: [TestSeries("up", [("job", "api")], samples: [(1000, 1)])])
        #expect(try write(i, plain, version: .v1, now: 1000).samplesWritten == 1)
        #expect(i.table.activeSeries == 5)

        var limits = IngestLimits()
        limits.replicas.replicaLabel = ""
        let off = Ingestor(limits: limits)
        _ = try write(off, request("prometheus-k8s-0", t: 1000), version: .v1, now: 1000)
        #expect(try write(off, request("prometheus-k8s-1", t: 1000), version: .v1, now: 1000).samplesWritten == 2)
        #expect(off.table.activeSeries == 4)
    }
}
