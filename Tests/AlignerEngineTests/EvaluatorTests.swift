import AlignerCore
import AlignerEngine
import AlignerRules
import Testing

/// Expected values computed by hand from Prometheus 2.42's definitions.
@Suite struct EvaluatorTests {
    /// http_requests_total{job="api",instance="a"} 0, 10, 20, ... every 15 s; {instance="b"} 0, 5, ...
    static func store() -> MemoryStore {
        let s = MemoryStore()
        for i in 0...40 {
            let t = Int64(i) * 15_000
            s.append([Label("__name__", "http_requests_total"), Label("job", "api"), Label("instance", "a")], timestamp: t, value: Double(i * 10))
            s.append([Label("__name__", "http_requests_total"), Label("job", "api"), Label("instance", "b")], timestamp: t, value: Double(i * 5))
        }
        return s
    }

    func eval(_ q: String, at seconds: Int64, store: MemoryStore = EvaluatorTests.store()) throws -> [String: Double] {
        let e = try PromQLParser.parse(q)
        switch try Evaluator(source: store, time: seconds * 1000).evaluate(e) {
        case .vector(let v): return Dictionary(uniqueKeysWithValues: v.map { ($0.labels.promText, $0.value) })
        case .scalar(let x): return ["scalar": x]
        default: return [:]
        }
    }

    @Test func instantSelectorUsesTheNewestSampleWithinLookback() throws {
        #expect(try eval("http_requests_total{instance=\"a\"}", at: 100) == ["http_requests_total{instance=\"a\",job=\"api\"}": 60])
        // Five minutes after the last sample (600 s) the series is still visible, then gone.
        #expect(try eval("http_requests_total{instance=\"a\"}", at: 900).count == 1)
        #expect(try eval("http_requests_total{instance=\"a\"}", at: 901).isEmpty)
    }

    @Test func staleMarkerEndsTheSeries() throws {
        let s = EvaluatorTests.store()
        s.append([Label("__name__", "http_requests_total"), Label("job", "api"), Label("instance", "a")], timestamp: 615_000, value: SampleValue.staleNaN)
        #expect(try eval("http_requests_total", at: 620, store: s).count == 1)
    }

    @Test func rateExtrapolatesToTheWindowEdges() throws {
        // 5m window at t=300: samples 0..300 s (both ends in 2.x), 21 samples, increase 200 over 300 s.
        let r = try eval("rate(http_requests_total{instance=\"a\"}[5m])", at: 300)
        // Prometheus multiplies by one factor (extrapolated interval / sampled interval / range).
        #expect(r == ["{instance=\"a\",job=\"api\"}": 200.0 * (300.0 / 300.0 / 300.0)])
        // A window that starts between samples extrapolates half an interval at most: t=307.
        let i = try eval("increase(http_requests_total{instance=\"a\"}[1m])", at: 307)
        // Samples at 255..300 (4 samples, 30 over 45 s); 7 s to the end and 8 s to the start, both
        // below 1.1 x 15 s: extrapolated over 60 s.
        #expect(abs(i["{instance=\"a\",job=\"api\"}"]! - 30.0 * 60.0 / 45.0) < 1e-9)
    }

    @Test func counterResetsAreCompensated() throws {
        let s = MemoryStore()
        for (i, v) in [10.0, 20, 30, 5, 15].enumerated() {
            s.append([Label("__name__", "c")], timestamp: Int64(i) * 10_000, value: v)
        }
        // Raw increase 5, plus 30 lost at the reset: 35 over 40 s sampled, window 40 s exactly.
        #expect(try eval("increase(c[40s])", at: 40, store: s) == ["": 35])
        #expect(try eval("resets(c[1m])", at: 40, store: s) == ["": 1])
        #expect(try eval("changes(c[1m])", at: 40, store: s) == ["": 4])
    }

    @Test func aggregationsAndMatching() throws {
        #expect(try eval("sum by (job) (http_requests_total)", at: 60) == ["{job=\"api\"}": 60])
        #expect(try eval("max without (instance) (http_requests_total)", at: 60) == ["{job=\"api\"}": 40])
        #expect(try eval("count(http_requests_total)", at: 60) == ["": 2])
        #expect(try eval("topk(1, http_requests_total)", at: 60) == ["http_requests_total{instance=\"a\",job=\"api\"}": 40])
        #expect(try eval("http_requests_total > 30", at: 60) == ["http_requests_total{instance=\"a\",job=\"api\"}": 40])
        #expect(try eval("http_requests_total > bool 30", at: 60) == ["{instance=\"a\",job=\"api\"}": 1, "{instance=\"b\",job=\"api\"}": 0])
        #expect(try eval("http_requests_total{instance=\"a\"} / ignoring(instance) http_requests_total{instance=\"b\"}", at: 60) == ["{job=\"api\"}": 2])
        #expect(try eval("http_requests_total / on(job) group_left sum by (job) (http_requests_total)", at: 60)
                == ["{instance=\"a\",job=\"api\"}": 40.0 / 60.0, "{instance=\"b\",job=\"api\"}": 20.0 / 60.0])
        #expect(try eval("http_requests_total and on(instance) http_requests_total{instance=\"b\"}", at: 60).count == 1)
        #expect(throws: EvaluationError.self) { try eval("http_requests_total / on(job) http_requests_total", at: 60) }
    }

    @Test func functions() throws {
        #expect(try eval("absent(nonexistent{job=\"x\"})", at: 60) == ["{job=\"x\"}": 1])
        #expect(try eval("absent(http_requests_total)", at: 60).isEmpty)
        #expect(try eval("scalar(sum(http_requests_total)) * 2", at: 60) == ["scalar": 120])
        #expect(try eval("clamp_max(http_requests_total, 25)", at: 60) == ["{instance=\"a\",job=\"api\"}": 25, "{instance=\"b\",job=\"api\"}": 20])
        // Go's math.Min and Max: NaN stays NaN (a bound of NaN gives NaN), an infinite bound wins over NaN.
        #expect(try eval("clamp(http_requests_total, 0, NaN)", at: 60).values.allSatisfy(\.isNaN))
        #expect(try eval("clamp_min(http_requests_total / 0 * 0, 0)", at: 60).values.allSatisfy(\.isNaN))
        #expect(try eval("clamp_max(http_requests_total / 0 * 0, -Inf)", at: 60).values.allSatisfy { $0 == -.infinity })
        #expect(try eval("label_replace(http_requests_total{instance=\"a\"}, \"host\", \"$1-x\", \"instance\", \"(.*)\")", at: 60)
                == ["http_requests_total{host=\"a-x\",instance=\"a\",job=\"api\"}": 40])
        #expect(try eval("deriv(http_requests_total{instance=\"a\"}[1m])", at: 60) == ["{instance=\"a\",job=\"api\"}": 10.0 / 15.0])
        #expect(try eval("time()", at: 60) == ["scalar": 60])
        // A k no int64 holds is an error in Prometheus, NaN included (the scalar of nothing).
        #expect(throws: EvaluationError.self) { try eval("topk(scalar(nonexistent), http_requests_total)", at: 60) }
        #expect(try eval("topk(1.9, http_requests_total)", at: 60).count == 1)
    }

    @Test func histogramQuantileOnClassicBuckets() throws {
        let s = MemoryStore()
        for (le, c) in [("0.1", 10.0), ("0.5", 50), ("1", 90), ("+Inf", 100)] {
            s.append([Label("__name__", "latency_bucket"), Label("le", le)], timestamp: 0, value: c)
        }
        // Rank 90 of 100 falls at the top of the (0.5, 1] bucket.
        #expect(try eval("histogram_quantile(0.9, latency_bucket)", at: 0, store: s) == ["": 1])
        // Rank 30: inside (0.1, 0.5], 20 of its 40.
        #expect(try eval("histogram_quantile(0.3, latency_bucket)", at: 0, store: s) == ["": 0.1 + 0.4 * 0.5])
    }
}

/// The alert state machine: `for`, `keep_firing_for`, gap tolerance and resolve hysteresis.
@Suite struct AlertStateTests {
    func rule(_ yaml: String) throws -> Rule {
        let (groups, problems) = RuleFileLoader.parse(yaml: yaml, file: "t.yml")
        try #require(problems.isEmpty, "\(problems)")
        return groups[0].rules[0]
    }

    let sample = [VectorSample(labels: [Label("__name__", "x"), Label("job", "a")], value: 1)]

    @Test func forIsExactAndPendingResets() throws {
        var s = try AlertingRuleState(rule: rule("groups: [{name: g, rules: [{alert: A, expr: x > 0, for: 10s}]}]"))
        try s.evaluate(sample, at: 0)
        try s.evaluate(sample, at: 9_999)
        #expect(s.firing.isEmpty)
        try s.evaluate(sample, at: 10_000)
        #expect(s.firing.map(\.firedAt) == [10_000])
        // Without gap tolerance a single miss resets a pending alert.
        var t = try AlertingRuleState(rule: rule("groups: [{name: g, rules: [{alert: A, expr: x > 0, for: 10s}]}]"))
        try t.evaluate(sample, at: 0)
        try t.evaluate([], at: 5_000)
        try t.evaluate(sample, at: 10_000)
        #expect(t.firing.isEmpty && t.alerts.values.first?.activeAt == 10_000)
    }

    @Test func gapToleranceKeepsPendingThroughOneMiss() throws {
        var s = try AlertingRuleState(rule: rule("groups: [{name: g, rules: [{alert: A, expr: x > 0, for: 10s}]}]"))
        try s.evaluate(sample, at: 0, gapTolerance: 6_000)
        try s.evaluate([], at: 5_000, gapTolerance: 6_000)
        try s.evaluate(sample, at: 10_000, gapTolerance: 6_000)
        #expect(s.firing.count == 1)
    }

    @Test func keepFiringFor() throws {
        var s = try AlertingRuleState(rule: rule("groups: [{name: g, rules: [{alert: A, expr: x > 0, keep_firing_for: 30s}]}]"))
        try s.evaluate(sample, at: 0)
        try s.evaluate([], at: 10_000)
        #expect(s.firing.count == 1)
        try s.evaluate([], at: 40_000)
        #expect(s.firing.isEmpty && s.alerts.values.first?.resolvedAt == 40_000)
    }

    @Test func resolveConditionGivesHysteresis() throws {
        var s = try AlertingRuleState(rule: rule("groups: [{name: g, rules: [{alert: A, expr: x > 90, resolve: x < 70}]}]"))
        try s.evaluate(sample, at: 0, resolveResult: [])
        try s.evaluate([], at: 1_000, resolveResult: [])  // 80: neither above 90 nor below 70
        #expect(s.firing.count == 1)
        try s.evaluate([], at: 2_000, resolveResult: [VectorSample(labels: [Label("job", "a")], value: 60)])
        #expect(s.firing.isEmpty)
    }
}

/// Templates as Prometheus renders them.
@Suite struct TemplateTests {
    @Test(arguments: [
        ("{{ $value | humanize }}", 1_234_567.0, "1.235M"),
        ("{{ $value | humanize }}", 0.00123, "1.23m"),
        ("{{ $value | humanize1024 }}", 2048.0, "2ki"),
        ("{{ $value | humanizeDuration }}", 90061.0, "1d 1h 1m 1s"),
        ("{{ $value | humanizeDuration }}", 0.5, "500ms"),
        ("{{ $value | humanizePercentage }}", 0.625, "62.5%"),
        ("{{ printf \"%.2f\" $value }} {{ $labels.pod | toUpper }}", 3.14159, "3.14 WEB-1"),
        ("{{ $value }}", 1e6, "1e+06"),
        ("{{ $value }}", 100000.0, "100000"),
        ("{{ $value }}", 1234567.0, "1.234567e+06"),
        ("{{ $value }}", 0.00001, "1e-05"),
        ("{{ $value }}", 0.0001, "0.0001"),
        ("{{ $value }}", -2.5, "-2.5"),
        ("{{ $value }}", 0.1 + 0.2, "0.30000000000000004"),
        ("{{ $value }}", 123.0, "123"),
        // Values Swift cannot convert to an integer render as Go renders them, without trapping.
        ("{{ $value | humanizeDuration }}", 1e21, "-106751991167300d -15h -30m -8s"),
        ("{{ $value | humanizeDuration }}", Double.infinity, "+Inf"),
        // Go's fmt: $value is a float64, so %d does not suit it; a literal without a point is an int.
        ("{{ printf \"%d\" $value }}", Double.nan, "%!d(float64=NaN)"),
        ("{{ printf \"%d|%s|%d %d\" $value 3 4 }}", 2.5, "%!d(float64=2.5)|%!s(int=3)|4 %!d(MISSING)"),
        ("{{ printf \"%d\" 3 4 \"x\" }}|{{ printf \"%.2f\" \"3.5\" }}", 1.0, "3%!(EXTRA int=4, string=x)|%!f(string=3.)"),
        ("{{ printf \"%x %X %o %b %c %q %U\" 255 255 8 5 65 65 65 }}", 1.0, "ff FF 10 101 A 'A' U+0041"),
        ("{{ printf \"%q %x %t %v\" \"a\\\"b\" \"hi\" true 1e3 }}", 1.0, "\"a\\\"b\" 6869 true 1000"),
        ("{{ printf \"%5.1f|%-6d|%05d|%+d|%6.2v|%8.3e\" $value 42 7 7 3.14159 $value }}", 2.5, "  2.5|42    |00007|+7|   3.1|2.500e+00"),
        ("{{ printf \"%x|%b|%f|%5.1f\" $value $value $value $value }}", -Double.infinity, "-Inf|-Inf|-Inf| -Inf"),
        ("{{ printf \"%x %b\" $value $value }}", 2.5, "0x1.4p+01 5629499534213120p-51"),
        ("{{ printf \"%d\" (len $labels) }}{{ printf \"%v\" $labels }}", 1.0, "1map[pod:web-1]"),
        ("{{ printf \"%g\" $value }}", 1234567.0, "1.234567e+06"),
        ("{{ $labels }}", 1.0, "map[pod:web-1]"),
        // Control structures, variables, the dot and Go's builtins, as Prometheus' rules use them.
        ("{{ if gt $value 5.0 }}high{{ else if eq $value 5.0 }}five{{ else }}low{{ end }}", 7.0, "high"),
        ("{{ if gt $value 5.0 }}high{{ else if eq $value 5.0 }}five{{ else }}low{{ end }}", 5.0, "five"),
        ("{{ if gt $value 5.0 }}high{{ else if eq $value 5.0 }}five{{ else }}low{{ end }}", 1.0, "low"),
        ("{{ with $labels.pod }}{{ . | toUpper }}{{ else }}none{{ end }}", 1.0, "WEB-1"),
        ("{{ with $labels.node }}{{ . }}{{ else }}none{{ end }}", 1.0, "none"),
        ("{{- range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end -}} ({{ len $labels }})", 1.0, "pod=web-1;(1)"),
        ("{{ range $labels }}[{{ . }}]{{ end }}", 1.0, "[web-1]"),
        ("{{ $x := printf \"%s/%s\" \"shop\" $labels.pod }}{{ $x | title }}", 1.0, "Shop/Web-1"),
        ("{{ if and (ne $labels.pod \"web-2\") (lt $value 7.0) }}yes{{ end }}|{{ not (match \"^web\" $labels.pod) }}", 3.0, "yes|false"),
        ("{{ .Labels.pod }} {{ .Value }} {{ index $labels \"pod\" }}", 2.5, "web-1 2.5 web-1"),
        ("{{ reReplaceAll \"web-([0-9])\" \"pod ${1}\" $labels.pod }} {{ print 1 2 \"x\" 3 }} {{ stripPort \"host:9090\" }}", 1.0, "pod 1 1 2x3 host"),
        ("{{ humanizeTimestamp 1.5e9 }}|{{ 1609459200.25 | humanizeTimestamp }}", 1.0, "2017-07-14 02:40:00 +0000 UTC|2021-01-01 00:00:00.249 +0000 UTC"),  // 1609459200.25e9 ns in a float64 falls below .25
        ("a  {{- /* a comment */ -}}  b {{ \"hELLO wORLD\" | title }}", 1.0, "ab HELLO WORLD"),
        ("x\n{{-\n$labels.pod\n-}}\n y {{-3}}", 1.0, "xweb-1y -3"),
    ])
    func renders(_ template: String, _ value: Double, _ expected: String) throws {
        #expect(try AlertTemplate(template).render(labels: ["pod": "web-1"], value: value) == expected)
    }

    @Test func unknownFunctionIsAnError() {
        #expect(throws: AlertTemplate.Failure.self) { try AlertTemplate("{{ $value | frobnicate }}") }
        #expect(throws: AlertTemplate.Failure.self) { try AlertTemplate("{{ if $value }}unclosed") }
        #expect(throws: AlertTemplate.Failure.self) { try AlertTemplate("{{ end }}") }
        #expect(throws: AlertTemplate.Failure.self) { try AlertTemplate("{{ define \"x\" }}{{ end }}") }
        #expect(throws: AlertTemplate.Failure.self) { try AlertTemplate("{{ (len $labels }}") }
    }

    /// `query | first | value` and `label`, over a real store; a query with no answer expands,
    /// as in Prometheus, to the error instead of failing the rule.
    @Test func templateQueries() throws {
        let store = MemoryStore()
        store.append([Label("__name__", "ready"), Label("deployment", "web")], timestamp: 0, value: 4)
        store.append([Label("__name__", "ready"), Label("deployment", "db")], timestamp: 0, value: 2)
        let query = RuleGroupsState.templateQuery(source: store, at: 10_000, subqueryStep: 60_000)
        let t = try AlertTemplate(#"{{ printf "ready{deployment='%s'}" $labels.deployment | query | first | value }}/{{ $value }}"#)
        #expect(try t.render(labels: ["deployment": "web"], value: 5, query: query) == "4/5")
        let r = try AlertTemplate(#"{{ range query "ready" | sortByLabel "deployment" }}{{ .Labels.deployment }}:{{ .Value }} {{ else }}none{{ end }}"#)
        #expect(try r.render(labels: [:], value: 0, query: query) == "db:2 web:4 ")
        let none = try AlertTemplate(#"{{ range query "nothing" }}{{ . }}{{ else }}none{{ end }}"#)
        #expect(try none.render(labels: [:], value: 0, query: query) == "none")
        let l = try AlertTemplate(#"{{ query "max(ready) by (deployment) == 2" | first | label "deployment" }}"#)
        #expect(try l.render(labels: [:], value: 0, query: query) == "db")
        #expect(throws: AlertTemplate.Failure.self) { try t.render(labels: ["deployment": "nope"], value: 5, query: query) }
        #expect(throws: AlertTemplate.Failure.self) { try t.render(labels: ["deployment": "web"], value: 5) }
        // Go's `or`: the first argument that is not empty, else the last.
        let or = try AlertTemplate(#"{{ or $labels.service $labels.job }}|{{ or $labels.none "default" }}|{{ or 0 $value }}"#)
        #expect(try or.render(labels: ["job": "checkout"], value: 2) == "checkout|default|2")
        #expect(try or.render(labels: ["service": "web", "job": "checkout"], value: 0) == "web|default|0")

        let file = """
            groups:
              - name: g
                rules:
                  - alert: R
                    expr: vector(1)
                    annotations:
                      summary: "{{ printf `ready{deployment='%s'}` $labels.deployment | query | first | value }}"
            """
        let (groups, problems) = RuleFileLoader.parse(yaml: file, file: "t.yml")
        #expect(problems.isEmpty, "\(problems)")
        var state = try AlertingRuleState(rule: try #require(groups.first?.rules.first))
        try state.evaluate([VectorSample(labels: [Label("deployment", "nope")], value: 5)], at: 0, query: query)
        let summary = state.alerts.values.first?.annotations["summary"] ?? ""
        #expect(summary.hasPrefix("<error expanding template: ") && summary.contains("no elements"), "\(summary)")
    }
}
