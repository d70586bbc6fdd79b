import AlignerCore
@testable import AlignerEngine
import AlignerIngest
import AlignerRules
import Testing

/// `WindowStore.append` prefetches a window's arrays through their storage, read in place: an
/// array is one reference to its storage, the count 16 bytes in, the elements 32 bytes in. If a
/// Swift release changed that layout the prefetches would only miss, but reading the count would
/// read the wrong word: this checks the layout on the compiler in use.
@Suite struct WindowStoreLayoutTests {
    @Test func windowArraysAreReadWhereAppendPrefetchesThem() throws {
        let (groups, problems) = RuleFileLoader.parse(yaml: """
            groups:
              - name: g
                rules:
                  - alert: High
                    expr: x > 1
            """, file: "g.yml")
        #expect(problems.isEmpty)
        let store = WindowStore()
        store.select(groups)
        var ids: [UInt32] = []
        for i in 0..<5 { ids.append(store.admit(labels: [Label("__name__", "x"), Label("i", "\(i)")])) }
        var observed: [ObservedSample] = []
        for (k, id) in ids.enumerated() {
            for t in 0..<(k + 1) {
                observed.append(ObservedSample(window: id, timestamp: Int64(1_000 * (t + 1)), valueBits: Double(k * 10 + t).bitPattern))
            }
        }
        observed.withUnsafeBufferPointer { store.append($0) }
        store.state.withLock { s in
            for (k, id) in ids.enumerated() {
                let window = s.windows[Int(id)]!
                #expect(window.timestamps.count == k + 1)
                let (timestamps, values) = WindowStore.storage(s, id)
                #expect(timestamps.load(fromByteOffset: 16, as: Int.self) == window.timestamps.count)
                #expect(values.load(fromByteOffset: 16, as: Int.self) == window.values.count)
                #expect(timestamps.load(fromByteOffset: 32, as: Int64.self) == window.timestamps[0])
                #expect(values.load(fromByteOffset: 32 + 8 * k, as: Double.self) == window.values[k])
            }
        }
    }
}
