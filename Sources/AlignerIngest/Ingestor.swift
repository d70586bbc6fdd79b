import AlignerCore
import Synchronization

/// Limits on what one Aligner accepts, with the configuration key of each.
public struct IngestLimits: Sendable {
    /// Largest request body, compressed (`ingest.max_body_bytes`).
    public var maxBodyBytes = 32 << 20
    /// Largest decompressed body, from snappy's declared length (`ingest.max_decoded_bytes`).
    public var maxDecodedBytes = 32 << 20
    /// Bound on bytes of requests being decoded at once; past it, 503 (`ingest.max_inflight_bytes`).
    public var maxInflightBytes = 256 << 20
    /// Most active series (`ingest.max_series`).
    public var maxSeries = 2_000_000
    /// Series with no sample for this long are dropped (`ingest.series_idle_timeout`).
    public var seriesIdleTimeout: Duration = .seconds(30 * 60)
    /// Which replica of a highly available Prometheus pair is taken (`ingest.ha_*`).
    public var replicas = ReplicaDeduplication()

    public init() {}
}

/// The remote-write message a request carries.
public enum RemoteWriteVersion: Sendable, Equatable {
    /// `prometheus.WriteRequest`.
    case v1
    /// `io.prometheus.write.v2.Request`.
    case v2
}

/// Why a whole request is refused. The HTTP layer maps each kind to a status.
public struct IngestError: Error, Sendable, CustomStringConvertible {
    /// The retry meaning of the refusal.
    public enum Kind: Sendable, Equatable {
        /// The data can never be accepted (HTTP 400).
        case invalid
        /// The encoding is not supported (HTTP 415).
        case unsupportedEncoding
        /// Too much in flight now; retry later (HTTP 503 with Retry-After).
        case overloaded
    }

    public let kind: Kind
    public let message: String

    public var description: String { message }
}

/// Decompresses, decodes and applies remote-write bodies to the series table.
///
/// Each request borrows a worker (decoder, decompression buffer and key scratch) from a pool and
/// gives it back, so warm requests reuse all their memory.
public final class Ingestor: Sendable {
    /// The series table the ingestor writes to.
    public let table: SeriesTable
    /// The limits in force.
    public let limits: IngestLimits
    private let workers = Mutex<[Worker]>([])
    let inflight = Atomic<Int>(0)

    /// Whether every label of every series is read (the reference the skimming path is tested
    /// against); normally a known series is found from its raw label bytes alone.
    let readsEveryLabel: Bool
    /// Nil when replicas are not deduplicated (`ingest.ha_replica_label` empty).
    let replicas: ReplicaTracker?

    /// Creates an ingestor with a new series table. `readsEveryLabel` is for tests.
    public init(limits: IngestLimits, observer: (any SeriesObserver)? = nil, readsEveryLabel: Bool = false) {
        self.limits = limits
        self.readsEveryLabel = readsEveryLabel
        replicas = ReplicaTracker(limits.replicas)
        table = SeriesTable(maxSeries: limits.maxSeries, observer: observer)
    }

    /// Bytes of requests being received or decoded now.
    public var inflightBytes: Int { inflight.load(ordering: .relaxed) }

    /// Reserves `bytes` against `ingest.max_inflight_bytes`; false (nothing reserved) when that
    /// would exceed the bound while other requests are in flight. A request alone is always
    /// admitted, so one large body cannot starve.
    /// `held` is what the same request has reserved already.
    public func reserve(_ bytes: Int, held: Int = 0) -> Bool {
        let after = inflight.add(bytes, ordering: .relaxed).newValue
        if after > limits.maxInflightBytes && after != bytes + held {
            inflight.subtract(bytes, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Gives back bytes taken with `reserve`.
    public func release(_ bytes: Int) { inflight.subtract(bytes, ordering: .relaxed) }

    /// Decompresses and applies one body. `now` is the wall clock in milliseconds (idle tracking).
    /// Throws only when nothing of the request was applied.
    /// `held` is what the caller has reserved for this request (its body), see `reserve`.
    public func write(
        compressed: UnsafeRawBufferPointer, version: RemoteWriteVersion, now: Int64, held: Int = 0
    ) throws(IngestError) -> WriteOutcome {
        let declared: Int
        do {
            declared = try Snappy.declaredLength(compressed)
        } catch {
            throw IngestError(snappy: error, limits: limits)
        }
        if declared > limits.maxDecodedBytes {
            throw IngestError(snappy: .tooLarge(declared: declared, limit: limits.maxDecodedBytes), limits: limits)
        }
        // Admission: the decoded size counts against the in-flight bound (the caller has already
        // reserved the compressed body, see `reserve`).
        guard reserve(declared, held: held) else {
            throw IngestError(
                kind: .overloaded,
                message: "too many bytes in flight: decoding \(declared) more would exceed limit \(limits.maxInflightBytes) (ingest.max_inflight_bytes); retry later")
        }
        defer { release(declared) }
        let worker = workers.withLock { $0.popLast() } ?? Worker()
        defer {
            worker.releaseLargeBuffers()
            workers.withLock { $0.append(worker) }
        }
        let body: UnsafeRawBufferPointer
        do {
            body = try Snappy.decompress(compressed, into: worker.decompressed, limit: limits.maxDecodedBytes)
        } catch {
            throw IngestError(snappy: error, limits: limits)
        }
        return try apply(body, version: version, now: now, worker: worker)
    }

    /// Decodes and applies an already decompressed body (benchmarks and tools; `write` is the
    /// receiver's entry point).
    public func apply(
        decompressed body: UnsafeRawBufferPointer, version: RemoteWriteVersion, now: Int64
    ) throws(IngestError) -> WriteOutcome {
        let worker = workers.withLock { $0.popLast() } ?? Worker()
        defer { workers.withLock { $0.append(worker) } }
        return try apply(body, version: version, now: now, worker: worker)
    }

    @inline(__always)
    func apply(
        _ body: UnsafeRawBufferPointer, version: RemoteWriteVersion, now: Int64, worker: Worker
    ) throws(IngestError) -> WriteOutcome {
        var decisions = ReplicaDecisions()
        var removesReplica = false
        // A replica's 1.0 request is decided on its first series (a Prometheus puts its external
        // labels on every series): a standby's is dropped undecoded; from the elected one's, the
        // replica label is cut out of the raw label bytes. Without a replica label, nothing changes.
        if let replicas, version == .v1, let first = worker.decoder.firstSeriesLabelsV1(body),
           let at = ReplicaTracker.index(of: replicas.replicaLabel, in: first)
        {
            guard decisions.admits(first, replicaAt: at, tracker: replicas, now: now) else {
                var outcome = WriteOutcome()
                outcome.decodedBytes = body.count
                outcome.deduplicated = decisions.dropped
                return outcome
            }
            removesReplica = true
        }
        var sink = IngestSink(table: table, worker: worker, now: now, readsLabels: readsEveryLabel)
        if let replicas {
            sink.replicas = replicas
            sink.decisions = decisions
            sink.removesReplica = removesReplica
            sink.replicaLabel = replicas.replicaLabel
        }
        do {
            switch version {
            case .v1: try worker.decoder.decodeV1(body, into: &sink)
            case .v2: try worker.decoder.decodeV2(body, into: &sink)
            }
        } catch {
            throw IngestError(kind: .invalid, message: error.message)
        }
        sink.finish()
        sink.outcome.decodedBytes = body.count
        sink.outcome.replicaElections = sink.decisions.elections
        if sink.outcome.seriesDeduplicated > 0 && sink.outcome.seriesDeduplicated == sink.outcome.seriesTotal {
            sink.outcome.deduplicated = sink.decisions.dropped
        }
        return sink.outcome
    }
}

extension IngestError {
    init(snappy failure: Snappy.Failure, limits: IngestLimits) {
        switch failure {
        case .framedFormat:
            self.init(kind: .unsupportedEncoding,
                      message: "cannot decompress remote-write body: snappy framed format is not supported, send the block format")
        case .invalidHeader:
            self.init(kind: .invalid, message: "cannot decompress remote-write body: invalid snappy block header")
        case .tooLarge(let declared, let limit):
            self.init(kind: .invalid,
                      message: "cannot decompress remote-write body: declared size \(declared) exceeds limit \(limit) (ingest.max_decoded_bytes)")
        case .corrupt:
            self.init(kind: .invalid, message: "cannot decompress remote-write body: corrupt snappy block data")
        }
    }
}

/// The scratch space one request uses.
final class Worker: @unchecked Sendable {
    let decoder = RemoteWriteDecoder()
    let decompressed = ByteScratch(capacity: 1 << 20)
    let order = Scratch<Int32>(capacity: 64)
    let keys = ByteScratch(capacity: 1 << 16)
    let pending = Scratch<PendingSeries>(capacity: 1024)
    let samples = Scratch<WireSample>(capacity: 1024)
    /// For raw label bytes that match no series (`SeriesTable.apply`).
    let rawLabels = Scratch<LabelRef>(capacity: 64)
    /// A series' labels without the replica label (`ReplicaDeduplication`).
    let withoutReplica = Scratch<LabelRef>(capacity: 64)
    let canonicalKey = ByteScratch(capacity: 4096)
    /// The request's series grouped by shard, and those to apply after canonicalizing.
    let shardOrder = Scratch<Int32>(capacity: 1024)
    let later = Scratch<Int32>(capacity: 64)
    /// Series whose guessed key was not label fields (`KeyForm.guessed`), to decode in full.
    let redecode = Scratch<Int32>(capacity: 16)
    /// The request's samples of series the rules keep, handed to the observer at the end.
    let observed = Scratch<ObservedSample>(capacity: 256)

    /// Keeps at most 8 MiB of decompression buffer between requests.
    func releaseLargeBuffers() {
        decompressed.shrink(to: 8 << 20)
        keys.shrink(to: 1 << 20)
    }
}

/// Collects a request's decoded series (keyed and hashed), then applies them to the table in one
/// pass, counting what was written and rejected.
struct IngestSink: RemoteWriteSink {
    /// False: the table finds a series from its raw label bytes, and reads the labels only for a
    /// series it does not know (see `SeriesTable.apply`).
    let readsLabels: Bool
    let table: SeriesTable
    let worker: Worker
    /// The worker's buffers the hot path appends to, unretained: the worker outlives the sink,
    /// and reaching them through `worker` costs a retain and a release per series.
    let pending: Unmanaged<Scratch<PendingSeries>>
    let samples: Unmanaged<Scratch<WireSample>>
    let now: Int64
    var outcome = WriteOutcome()
    /// Whether some series' key is its raw label bytes (`KeyForm.raw`).
    var hasRawKeys = false
    /// Set when replicas are deduplicated (`ReplicaDeduplication`).
    var replicas: ReplicaTracker?
    var decisions = ReplicaDecisions()
    /// Whether the replica label is cut out of raw keys (a 1.0 request of the elected replica).
    var removesReplica = false
    /// The replica label's name, and the key arena, unretained (see `pending`).
    var replicaLabel = UnsafeRawBufferPointer(start: nil, count: 0)
    let keys: Unmanaged<ByteScratch>

    init(table: SeriesTable, worker: Worker, now: Int64, readsLabels: Bool) {
        self.table = table
        self.readsLabels = readsLabels
        self.worker = worker
        pending = .passUnretained(worker.pending)
        samples = .passUnretained(worker.samples)
        keys = .passUnretained(worker.keys)
        self.now = now
        worker.keys.count = 0
        worker.pending.removeAll()
        worker.samples.removeAll()
    }

    @inline(__always)
    mutating func series(_ series: DecodedSeries) {
        outcome.seriesTotal += 1
        if let problem = series.problem {
            reject(series, problem)
            return
        }
        var labels = series.labels
        var canonicalKey = series.canonicalKey
        var form: KeyForm = series.labelsRead ? .sent : series.keyIsGuess ? .guessed : .raw
        var keyOffset: Int?
        if removesReplica, !series.labelsRead, let raw = series.canonicalKey {
            let (start, cut) = keys._withUnsafeGuaranteedRef { ($0.count, SeriesKey.appendRemoving(label: replicaLabel, from: raw, to: $0)) }
            if cut == true {
                keyOffset = start
                canonicalKey = nil
            }
            // Walked whole: label fields, not a guess any more (a guess that is not is decoded
            // again in full, and its labels are read below).
            if cut != nil { form = .raw }
        } else if replicaLabel.count > 0, series.labelsRead, let at = ReplicaTracker.index(of: replicaLabel, in: series.labels),
                  let replicas
        {
            guard decisions.admits(series.labels, replicaAt: at, tracker: replicas, now: now) else {
                outcome.seriesDeduplicated += 1
                return
            }
            worker.withoutReplica.removeAll()
            for i in series.labels.indices where i != at { worker.withoutReplica.append(series.labels[i]) }
            labels = worker.withoutReplica.buffer
            canonicalKey = nil
        }
        var entry = PendingSeries(
            keyBase: nil, keyOffset: 0, keyCount: 0, form: form, hash: 0,
            sampleStart: samples._withUnsafeGuaranteedRef { $0.count },
            sampleCount: series.samples.count, histograms: 0, exemplars: 0, metadata: series.metadata == nil ? 0 : 1)
        let key: UnsafeRawBufferPointer
        if let keyOffset {
            entry.keyOffset = keyOffset
            key = keys._withUnsafeGuaranteedRef { UnsafeRawBufferPointer(start: $0.base + keyOffset, count: $0.count - keyOffset) }
        } else if let canonical = canonicalKey {
            key = canonical
            entry.keyBase = canonical.baseAddress
        } else {
            let start = worker.keys.count
            SeriesKey.build(labels, order: worker.order, appendingTo: worker.keys)
            entry.keyOffset = start
            entry.form = .rebuilt
            key = UnsafeRawBufferPointer(start: worker.keys.base + start, count: worker.keys.count - start)
        }
        if entry.form.isUnread { hasRawKeys = true }
        entry.keyCount = key.count
        entry.hash = table.hash(key)
        samples._withUnsafeGuaranteedRef { for sample in series.samples { $0.append(sample) } }
        // Only 2.0 has start timestamps; a skimmed (1.0) series is left alone.
        if series.labelsRead { countStartTimestamps(series) }
        for h in series.histograms {
            if let p = h.problem {
                outcome.histogramsRejected += 1
                outcome.addExample("inconsistent histogram at timestamp \(h.timestamp): \(p)")
            } else {
                entry.histograms += 1
            }
        }
        for e in series.exemplars {
            var valid = true
            for i in e.labelStart..<(e.labelStart + e.labelCount) {
                let l = series.exemplarLabels[i]
                if l.name.count == 0 || !SeriesKey.isValidUTF8(l.name) || !SeriesKey.isValidUTF8(l.value) { valid = false }
            }
            if valid { entry.exemplars += 1 } else {
                outcome.exemplarsRejected += 1
                outcome.addExample("exemplar at timestamp \(e.timestamp) has an empty or non-UTF-8 label")
            }
        }
        pending._withUnsafeGuaranteedRef { $0.append(entry) }
    }

    @inline(never)
    mutating func countStartTimestamps(_ series: DecodedSeries) {
        if series.createdTimestamp != 0 { outcome.startTimestamps += 1 }
        for start in series.sampleStartTimestamps where start != 0 { outcome.startTimestamps += 1 }
        for h in series.histograms where h.startTimestamp != 0 { outcome.startTimestamps += 1 }
    }

    /// Applies everything collected; call once, after the decoder finished.
    mutating func finish() {
        applyCollected()
        guard worker.redecode.count > 0 else { return }
        // Series whose guessed key held other fields than labels (never seen from Prometheus or
        // vmagent): decode them in full and apply them, after the rest of the request.
        let pending = worker.pending.buffer
        let again = worker.redecode.buffer.map { i in
            RemoteWriteDecoder.skimmedSeriesBytes(key: pending[Int(i)].key(in: UnsafeRawPointer(worker.keys.base)))
        }
        worker.keys.count = 0
        worker.pending.removeAll()
        worker.samples.removeAll()
        hasRawKeys = false
        outcome.seriesTotal -= again.count
        for bytes in again { series(worker.decoder.decodeSeriesV1(bytes)) }
        applyCollected()
    }

    mutating func applyCollected() {
        let worker = worker
        table.apply(worker.pending.buffer, keyArena: UnsafeRawPointer(worker.keys.base),
                    samples: worker.samples.buffer, now: now, outcome: &outcome,
                    order: worker.shardOrder, later: worker.later, observed: worker.observed, hasRawKeys: hasRawKeys,
                    redecode: worker.redecode) { raw in
            worker.canonicalKey.count = 0
            if let problem = SeriesKey.canonicalize(
                raw, labels: worker.rawLabels, order: worker.order, appendingTo: worker.canonicalKey)
            {
                return .failure(problem)
            }
            return .success(UnsafeRawBufferPointer(start: worker.canonicalKey.base, count: worker.canonicalKey.count))
        }
    }

    mutating func reject(_ series: DecodedSeries, _ problem: SeriesProblem) {
        outcome.seriesRejected += 1
        outcome.seriesRejectedByReason[problem.reason, default: 0] += 1
        outcome.samplesInvalidSeries += series.samples.count
        outcome.histogramsRejected += series.histograms.count
        outcome.exemplarsRejected += series.exemplars.count
        let example = "\(problem): \(describe(series.labels))"
        outcome.addExample(example)
    }

    mutating func metadata(_ metadata: WireMetadata) {
        if let p = metadata.problem {
            outcome.metadataRejected += 1
            outcome.addExample("metadata: \(p)")
        } else {
            outcome.metadataWritten += 1
        }
    }

    /// The labels as sent, for an error message (invalid UTF-8 is shown with replacement characters).
    func describe(_ labels: UnsafeBufferPointer<LabelRef>) -> String {
        let text = labels.prefix(12).map {
            "\(String(decoding: $0.name, as: UTF8.self))=\"\(String(decoding: $0.value, as: UTF8.self))\""
        }
        return "{" + text.joined(separator: ",") + (labels.count > 12 ? ",..." : "") + "}"
    }
}
