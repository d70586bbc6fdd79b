import AlignerCore
@testable import AlignerEngine
import AlignerRules
import Testing

/// The detectors' arithmetic, against values worked out by hand.
@Suite struct DetectorTests {
    /// Each value's verdict, judged in turn (`judge` mutates: `#expect` cannot call it).
    static func verdicts(_ d: inout DetectorState, _ values: [(key: String, value: Double, at: Int64)]) -> [Bool] {
        values.map { d.verdict($0.key, $0.value, at: $0.at) != nil }
    }

    /// Evaluated as data arrives, a series is judged at no fixed pace: the baseline weighs values
    /// by how long they held, so judging every second or every minute learns the same.
    @Test func ewmaWeighsTimeNotEvaluations() {
        var spec = DetectorSpec(method: .ewma, threshold: 4, halfLife: 600_000)
        spec.minDeviation = 0.05
        var everySecond = DetectorState(spec: spec), everyMinute = DetectorState(spec: spec)
        // 0.01 and 0.02 alternating each minute for an hour.
        var hour: [(key: String, value: Double, at: Int64)] = []
        for second in 0..<3600 {
            let value: Double = (second / 60) % 2 == 0 ? 0.01 : 0.02
            hour.append((key: "s", value: value, at: Int64(second) * 1000))
        }
        let bySecond = DetectorTests.verdicts(&everySecond, hour)
        let byMinute = DetectorTests.verdicts(&everyMinute, stride(from: 0, to: 3600, by: 60).map { hour[$0] })
        #expect(!bySecond.contains(true) && !byMinute.contains(true))
        let a = everySecond.series["s"]!, b = everyMinute.series["s"]!
        #expect(abs(a.mean - 0.015) < 0.002 && abs(b.mean - 0.015) < 0.002)
        #expect(abs(a.variance.squareRoot() - b.variance.squareRoot()) < 0.002)
        // 30% is far above either baseline; a new series' 3% has no baseline yet.
        let jump = [(key: "s", value: 0.3, at: Int64(3_600_000))]
        #expect(DetectorTests.verdicts(&everySecond, jump) == [true] && DetectorTests.verdicts(&everyMinute, jump) == [true])
        #expect(DetectorTests.verdicts(&everySecond, [("t", 0.03, 3_600_000)]) == [false])
    }

    /// The first value of a series sets its baseline; nothing is anomalous before the warm-up,
    /// NaN and infinities judge nothing, only the watched direction counts, and a flat baseline
    /// makes any change anomalous (as far as `min_deviation` allows).
    @Test func warmUpDirectionAndFlatBaselines() {
        var spec = DetectorSpec(method: .ewma, threshold: 3, warmUp: 60_000, halfLife: 60_000)
        spec.direction = .down
        var down = DetectorState(spec: spec)
        #expect(DetectorTests.verdicts(&down, [
            ("s", 10, 0), ("s", 0, 30_000), ("s", .nan, 40_000), ("s", .infinity, 45_000),
            ("s", 10, 600_000), ("s", 20, 601_000), ("s", 0, 602_000),
        ]) == [false, false, false, false, false, false, true])
        var flat = DetectorState(spec: DetectorSpec(method: .ewma, warmUp: 0))
        #expect(DetectorTests.verdicts(&flat, [("s", 1, 0), ("s", 1, 60_000), ("s", 1.001, 120_000)]) == [false, false, true])
    }

    /// `mad`: the median and the median absolute deviation of the window's values (one kept per
    /// 60th of the window), the current value against them.
    @Test func madAgainstTheWindowsMedian() {
        var d = DetectorState(spec: DetectorSpec(method: .mad, threshold: 5, warmUp: 0, window: 600_000))
        let cycle = [0.10, 0.12, 0.11, 0.13, 0.09]
        let calm = (0..<20).map { i in (key: "s", value: cycle[i % 5], at: Int64(i) * 10_000) }
        #expect(!DetectorTests.verdicts(&d, calm).contains(true))
        // Median 0.11, MAD 0.01 (x 1.4826): 0.18 is 4.7 deviations above, 0.19 is 5.4.
        #expect(DetectorTests.verdicts(&d, [("s", 0.18, 200_000), ("s", 0.19, 210_000)]) == [false, true])
        // Values older than the window are gone.
        #expect(d.series["s"]!.times.first! >= 210_000 - 600_000)
        #expect(DetectorState.median([3, 1, 2, 4]) == 2.5)
    }

    /// An anomalous value's verdict: the baseline it left and by how many deviations, as the
    /// alert's `baseline` and `score` annotations.
    @Test func verdicts() {
        var d = DetectorState(spec: DetectorSpec(method: .mad, threshold: 5, warmUp: 0, window: 600_000))
        let cycle = [0.10, 0.12, 0.11, 0.13, 0.09]
        let calm = (0..<20).map { i in VectorSample(labels: [Label("service", "api")], value: cycle[i % 5]) }
        for (i, sample) in calm.enumerated() { _ = d.judge([sample], at: Int64(i) * 10_000) }
        let judged = d.judge([VectorSample(labels: [Label("service", "api")], value: 0.5)], at: 200_000)
        #expect(judged.map(\.verdict.annotations) == [["baseline": "0.11", "score": "26.3"]])
        var flat = DetectorState(spec: DetectorSpec(method: .ewma, warmUp: 0))
        _ = flat.verdict("s", 1, at: 0)
        #expect(flat.verdict("s", 2, at: 60_000)?.annotations == ["baseline": "1", "score": "+Inf"])
        var level = DetectorState(spec: DetectorSpec(method: .threshold, threshold: 0.9))
        #expect(level.verdict("s", 0.95, at: 0)?.annotations == ["baseline": "0.9"])
    }

    /// `holt` follows a trend: a noisy climb of one a minute for three hours is normal, and a jump
    /// of 30 off it is anomalous (to `ewma`, whose baseline lags the climb and whose spread has
    /// grown with the lag, it is not).
    @Test func holtFollowsATrend() {
        var holt = DetectorState(spec: DetectorSpec(method: .holt, threshold: 4, halfLife: 600_000))
        var ewma = DetectorState(spec: DetectorSpec(method: .ewma, threshold: 4, halfLife: 600_000))
        var climb: [(key: String, value: Double, at: Int64)] = []
        for minute in 0..<180 {
            let noise: Double = minute % 2 == 0 ? 0.5 : -0.5
            climb.append((key: "s", value: Double(minute) + noise, at: Int64(minute) * 60_000))
        }
        #expect(!DetectorTests.verdicts(&holt, climb).contains(true) && !DetectorTests.verdicts(&ewma, climb).contains(true))
        #expect(abs(holt.series["s"]!.trend * 60_000 - 1) < 0.1)
        let jump = [(key: "s", value: 180.0, at: Int64(180 * 60_000)), (key: "s", value: 211.0, at: Int64(181 * 60_000))]
        #expect(DetectorTests.verdicts(&holt, jump) == [false, true] && DetectorTests.verdicts(&ewma, jump) == [false, false])
        let forecast = holt.verdict("s", 300, at: 182 * 60_000)?.baseline ?? 0
        #expect(abs(forecast - 182) < 3, "\(forecast)")
    }

    /// `cusum` adds up small deviations that last: a shift of 3 deviations, below what `ewma`
    /// with a threshold of 4 sees, fires within 2 minutes of 2.5 deviation-minutes each past the
    /// slack; a one-minute spike of any size does not.
    @Test func cusumAddsUpSmallShifts() {
        var spec = DetectorSpec(method: .cusum, halfLife: 600_000)
        spec.minDeviation = 0.001
        var cusum = DetectorState(spec: spec)
        var calm: [(key: String, value: Double, at: Int64)] = []
        for minute in 0..<60 {
            let value: Double = minute % 2 == 0 ? 0.01 : 0.02
            calm.append((key: "s", value: value, at: Int64(minute) * 60_000))
        }
        #expect(!DetectorTests.verdicts(&cusum, calm).contains(true))
        let sd = cusum.series["s"]!.variance.squareRoot(), mean = cusum.series["s"]!.mean
        #expect(DetectorTests.verdicts(&cusum, [
            ("s", mean + 1000 * sd, 60 * 60_000), ("s", 0.015, 61 * 60_000), ("s", 0.015, 70 * 60_000),
            ("s", mean + 3 * sd, 71 * 60_000), ("s", mean + 3 * sd, 72 * 60_000), ("s", mean + 3 * sd, 73 * 60_000),
        ]) == [false, false, false, false, true, true])
    }

    /// A series not seen for long is forgotten, and warms up again if it comes back.
    @Test func forgottenSeries() {
        var d = DetectorState(spec: DetectorSpec(method: .ewma, halfLife: 60_000))
        _ = d.judge([VectorSample(labels: [Label("a", "1")], value: 1)], at: 0)
        _ = d.judge([VectorSample(labels: [Label("a", "2")], value: 1)], at: 10 * 60_000)
        #expect(d.series.count == 1)
    }
}
