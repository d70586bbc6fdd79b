import AlignerCore
import AlignerIngest
import AlignerTesting
import Foundation
import Testing

/// A real Aligner process killed with SIGKILL under load loses no acknowledged event change.
@Suite(.serialized) struct KillRestartTests {
    @Test(.timeLimit(.minutes(2))) func sigkillLosesNoAcknowledgedChange() async throws {
        let dir = try ScratchDirectory.make("aligner-kill")
        try """
            groups:
              - name: kill
                rules:
                  - alert: Broken
                    expr: broken == 1
                    event: {class: crash_loop, severity: critical, subject: {namespace: namespace, kind: Deployment, name: deployment}}
                  - alert: SlowBurn
                    expr: broken == 1
                    for: 1h
            """.write(to: dir.appendingPathComponent("rules.yml"), atomically: true, encoding: .utf8)
        try """
            rules:
              paths: [\(dir.path)/rules.yml]
            events:
              data_dir: \(dir.path)/data
              resolve_after: 0s
            """.write(to: dir.appendingPathComponent("aligner.yml"), atomically: true, encoding: .utf8)
        let config = dir.appendingPathComponent("aligner.yml").path
        let port = try freeLoopbackPort()
        let base = "http://127.0.0.1:\(port)"
        var aligner = try await AlignerProcess.start(config: config, port: port)
        defer { aligner.stop(within: 0) }

        // Load: 20 workloads flipping between broken and healthy, and notes on their events.
        var acknowledgedNotes: [String: [String]] = [:]  // event id -> notes answered 200
        let deadline = ContinuousClock.now + .seconds(3)
        var round = 0
        while ContinuousClock.now < deadline {
            round += 1
            let t = WallClock.nowMilliseconds()
            let series = (0..<20).map { i in
                TestSeries("broken", [("namespace", "shop"), ("deployment", "w\(i)")], samples: [(t, (round + i) % 3 == 0 ? 0 : 1)])
            }
            _ = try await HTTPClient.request("POST", base + "/api/v1/write", headers: v1Headers,
                                             body: Snappy.compress(ProtobufC.encodeV1(TestRequest(series: series))))
            let list = try await HTTPClient.request("GET", base + "/api/v1/events?state=open").text
            let ids = (try? JSONSerialization.jsonObject(with: Data(list.utf8)) as? [String: Any])?["data"] as? [[String: Any]] ?? []
            for e in ids.prefix(3) {
                guard let id = e["id"] as? String else { continue }
                let note = "note-\(round)-\(id)"
                let r = try await HTTPClient.request("POST", base + "/api/v1/events/\(id)/notes",
                                                     body: Array("{\"actor\":\"test\",\"text\":\"\(note)\"}".utf8))
                if r.status == 200 { acknowledgedNotes[id, default: []].append(note) }
            }
        }
        let pendingBefore = try await HTTPClient.request("GET", base + "/api/v1/alerts").text
        try await aligner.kill9()
        #expect(!acknowledgedNotes.isEmpty)
        func activeAt(_ text: String) -> Set<String> {
            let alerts = ((try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?["data"] as? [String: Any])?["alerts"] as? [[String: Any]] ?? []
            return Set(alerts.filter { ($0["labels"] as? [String: String])?["alertname"] == "SlowBurn" }.compactMap {
                "\(($0["labels"] as? [String: String])?["deployment"] ?? "") \($0["activeAt"] ?? "")"
            })
        }

        aligner = try await AlignerProcess.start(config: config, port: port)
        // Pending alerts come back with the activeAt they had: `for: 1h` keeps counting.
        let pendingAfter = activeAt(try await HTTPClient.request("GET", base + "/api/v1/alerts").text)
        #expect(!activeAt(pendingBefore).isEmpty)
        #expect(!pendingAfter.isEmpty && pendingAfter.isSubset(of: activeAt(pendingBefore)), "\(pendingAfter) vs \(activeAt(pendingBefore))")
        for (id, notes) in acknowledgedNotes {
            let text = try await HTTPClient.request("GET", base + "/api/v1/events/\(id)").text
            for note in notes { #expect(text.contains(note), "\(id) lost \(note)") }
        }
        // The stream resumes from the store: consecutive sequence numbers, each once.
        let stream = try await HTTPClient.request("GET", base + "/api/v1/events/stream", timeout: .seconds(1), partialOnTimeout: true).text
        let ids = stream.split(separator: "\n").filter { $0.hasPrefix("id: ") }.compactMap { Int64($0.dropFirst(4)) }
        #expect(!ids.isEmpty && ids == Array(1...Int64(ids.count)))
        // SIGTERM ends the process promptly even with a stream consumer connected.
        let consumer = Task { try? await HTTPClient.request("GET", base + "/api/v1/events/stream", timeout: .seconds(20), partialOnTimeout: true) }
        try await Task.sleep(for: .milliseconds(300))
        #expect(aligner.stop(within: 10), "aligner did not exit within 10 s of SIGTERM")
        consumer.cancel()
    }
}
