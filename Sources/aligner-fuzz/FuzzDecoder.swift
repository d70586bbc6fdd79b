import AlignerIngest
import AlignerTesting
import Foundation

/// The fuzz target: the first byte picks the message (1.0 or 2.0), the rest is a decompressed
/// body. The fast decoder must never crash and must agree with libprotobuf-c on the same bytes;
/// for 1.0, the ingest path that skims labels must agree with one that reads them all.
/// Built with `-sanitize=fuzzer,address -DFUZZING` by fuzz/run.sh; without FUZZING it replays the
/// files given on the command line (a regression runner for the corpus).
func check(_ data: UnsafeRawBufferPointer) -> Bool {
    guard let selector = data.first else { return true }
    let body = Array(data.dropFirst())
    let version: RemoteWriteVersion = selector & 1 == 0 ? .v1 : .v2
    if let difference = FastDecode.differenceFromOracle(body, version: version) {
        print("fast decoder disagrees with libprotobuf-c (\(version)): \(difference)")
        return false
    }
    if version == .v1 {
        // The ingest path skims the labels of known series: twice into fresh tables (new series,
        // then known ones), it must do what reading every label does.
        let ingest = SkimmingCheck()
        for pass in 0..<2 {
            if let difference = ingest.difference(body) {
                print("skimming ingest disagrees with reading every label (pass \(pass)): \(difference)")
                return false
            }
        }
        let tables = ingest.tables(inAnyOrder: SkimmingCheck.repeatsASeries(body))
        if tables.skimming != tables.reading {
            print("skimming ingest holds other series than reading every label")
            return false
        }
    }
    return true
}

#if FUZZING
// SwiftPM links an executable's entry point as `<module>_main`; defining it here keeps libFuzzer's
// own `main` out of the link, and LLVMFuzzerRunDriver runs the fuzzer with our callback.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

@_cdecl("aligner_fuzz_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        if !check(UnsafeRawBufferPointer(start: data, count: size)) { abort() }
        return 0
    }
}
#else
@main
struct Replay {
    static func main() {
        if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "--write-seeds" {
            writeSeeds(to: CommandLine.arguments[2])
            return
        }
        var failed = 0
        for path in CommandLine.arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            if !data.withUnsafeBytes({ check($0) }) {
                print("FAIL \(path)")
                failed += 1
            }
        }
        exit(failed == 0 ? 0 : 1)
    }

    /// Writes small valid bodies of both versions, prefixed with their selector byte.
    static func writeSeeds(to directory: String) {
        var series = TestSeries("http_requests_total", [("code", "500"), ("namespace", "shop")], samples: [(1000, 1), (2000, 2)])
        series.exemplars = [TestExemplar(labels: [TestLabel("trace_id", "a1")], value: 1, timestamp: 1000)]
        var histogram = TestHistogram.integer(timestamp: 1000, counts: [1, 2, 0, 3])
        histogram.negativeSpans = [TestSpan(-2, 1)]
        histogram.negativeDeltas = [1]
        histogram.countBits += 1
        series.fullHistograms = [histogram]
        var v2 = series
        v2.metadata = TestMetadata(type: 1, help: "Requests.", unit: "")
        v2.createdTimestamp = 5
        v2.sampleStarts = [500, 500]
        v2.fullHistograms[0].startTimestamp = 500
        let requests: [(String, UInt8, [UInt8])] = [
            ("v1-basic", 0, ProtobufC.encodeV1(TestRequest(series: [series], metadata: [TestMetadata(type: 1, familyName: "http_requests_total", help: "Requests.")]))),
            ("v2-basic", 1, ProtobufC.encodeV2(TestRequest(series: [v2, TestSeries("up", samples: [(1, 1)])]))),
            // Prometheus' shape: one sample per series entry, timestamps in milliseconds of now
            // (the series read from their tail, `RemoteWriteDecoder.tailSample`), zero values.
            ("v1-prometheus", 0, ProtobufC.encodeV1(TestRequest(series: [
                TestSeries("up", [("job", "api")], samples: [(1_760_000_000_000, 1)]),
                TestSeries("up", [("job", "db")], samples: [(1_760_000_000_000, 0)]),
                TestSeries("up", [("job", "api")], samples: [(1_760_000_015_000, 1)]),
            ]))),
            ("v1-stale", 0, ProtobufC.encodeV1(TestRequest(series: [TestSeries("up", [("job", "x")], samples: [(1, Double(bitPattern: 0x7ff0_0000_0000_0002))])]))),
        ]
        for (name, selector, body) in requests {
            FileManager.default.createFile(atPath: "\(directory)/\(name)", contents: Data([selector] + body))
        }
    }
}
#endif
