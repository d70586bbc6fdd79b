import AlignerIngest
import Prometheus

/// The receiver's metrics, created once. Names follow `aligner_<subsystem>_<what>_<unit|total>`.
struct IngestMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    let requests: [Int: Counter]
    let requestsOther: Counter
    let samples: Counter
    let samplesDuplicate: Counter
    let requestsDeduplicated: Counter
    let seriesDeduplicated: Counter
    let samplesRejected: [WriteOutcome.SampleRejection: Counter]
    let histograms: Counter
    let histogramsRejected: Counter
    let exemplars: Counter
    let exemplarsRejected: Counter
    let metadata: Counter
    let metadataRejected: Counter
    let startTimestamps: Counter
    let seriesCreated: Counter
    let seriesRejected: Counter
    let seriesEvicted: Counter
    let seriesActive: Gauge
    let seriesMemory: Gauge
    let inflightBytes: Gauge
    let compressedBytes: Counter
    let decodedBytes: Counter
    let decodeSeconds: DurationHistogram
    let windowSeries: Gauge
    let windowSamples: Gauge
    let partialEvaluations: Gauge
    let wholeEvaluations: Gauge
    let partialEvaluationSeconds: Gauge
    let wholeEvaluationSeconds: Gauge
    let evidenceSeconds: Gauge

    static let statuses = [202, 204, 400, 413, 415, 429, 503]

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        var requests: [Int: Counter] = [:]
        for code in IngestMetrics.statuses {
            requests[code] = registry.makeCounter(
                name: "aligner_http_requests_total", labels: [("handler", "write"), ("code", String(code))],
                help: "HTTP requests by handler and status code.")
        }
        self.requests = requests
        requestsOther = registry.makeCounter(
            name: "aligner_http_requests_total", labels: [("handler", "write"), ("code", "other")],
            help: "HTTP requests by handler and status code.")
        samples = registry.makeCounter(
            name: "aligner_ingest_samples_total", help: "Float samples accepted from remote write.")
        samplesDuplicate = registry.makeCounter(
            name: "aligner_ingest_samples_duplicate_total",
            help: "Accepted samples that repeated a series' last sample exactly (retries).")
        requestsDeduplicated = registry.makeCounter(
            name: "aligner_ingest_requests_deduplicated_total",
            help: "Requests of a standby Prometheus replica dropped whole, undecoded (ingest.ha_replica_label).")
        seriesDeduplicated = registry.makeCounter(
            name: "aligner_ingest_series_deduplicated_total",
            help: "Series of a standby Prometheus replica dropped from decoded requests (ingest.ha_replica_label).")
        var rejected: [WriteOutcome.SampleRejection: Counter] = [:]
        for reason in WriteOutcome.SampleRejection.allCases {
            rejected[reason] = registry.makeCounter(
                name: "aligner_ingest_samples_rejected_total", labels: [("reason", reason.rawValue)],
                help: "Float samples not applied, by reason.")
        }
        samplesRejected = rejected
        histograms = registry.makeCounter(name: "aligner_ingest_histograms_total", help: "Native histogram samples accepted.")
        histogramsRejected = registry.makeCounter(
            name: "aligner_ingest_histograms_rejected_total", help: "Native histogram samples rejected.")
        exemplars = registry.makeCounter(name: "aligner_ingest_exemplars_total", help: "Exemplars accepted.")
        exemplarsRejected = registry.makeCounter(name: "aligner_ingest_exemplars_rejected_total", help: "Exemplars rejected.")
        metadata = registry.makeCounter(name: "aligner_ingest_metadata_total", help: "Metadata entries accepted.")
        metadataRejected = registry.makeCounter(name: "aligner_ingest_metadata_rejected_total", help: "Metadata entries rejected.")
        startTimestamps = registry.makeCounter(
            name: "aligner_ingest_start_timestamps_total",
            help: "Start (created) timestamps received with accepted 2.0 series, samples and histograms.")
        seriesCreated = registry.makeCounter(name: "aligner_ingest_series_created_total", help: "Series seen for the first time.")
        seriesRejected = registry.makeCounter(
            name: "aligner_ingest_series_rejected_total", help: "Series rejected (invalid labels, malformed, over the series limit).")
        seriesEvicted = registry.makeCounter(
            name: "aligner_ingest_series_evicted_total", help: "Series dropped after ingest.series_idle_timeout without samples.")
        seriesActive = registry.makeGauge(name: "aligner_ingest_series_active", help: "Series in the series table.")
        seriesMemory = registry.makeGauge(
            name: "aligner_ingest_series_memory_bytes", help: "Bytes the series table holds for entries, label pairs and slots.")
        inflightBytes = registry.makeGauge(
            name: "aligner_ingest_inflight_bytes", help: "Compressed plus declared decoded bytes of requests being decoded.")
        compressedBytes = registry.makeCounter(
            name: "aligner_ingest_body_bytes_total", labels: [("encoding", "snappy")], help: "Remote-write body bytes received.")
        decodedBytes = registry.makeCounter(
            name: "aligner_ingest_body_bytes_total", labels: [("encoding", "identity")], help: "Remote-write body bytes received.")
        decodeSeconds = registry.makeDurationHistogram(
            name: "aligner_ingest_decode_seconds",
            buckets: [.microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
                      .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                      .milliseconds(250), .seconds(1)],
            help: "Time to decompress, decode and apply one remote-write body.")
        windowSeries = registry.makeGauge(
            name: "aligner_rules_window_series", help: "Series kept in memory because some rule selects them.")
        windowSamples = registry.makeGauge(
            name: "aligner_rules_window_samples", help: "Samples held in the rules' windows (longest range plus lookback).")
        partialEvaluations = registry.makeGauge(
            name: "aligner_rules_group_evaluations", labels: [("scope", "partitions")],
            help: "Group evaluations since start: over the partitions a write touched, or over the whole group.")
        wholeEvaluations = registry.makeGauge(
            name: "aligner_rules_group_evaluations", labels: [("scope", "whole")],
            help: "Group evaluations since start: over the partitions a write touched, or over the whole group.")
        partialEvaluationSeconds = registry.makeGauge(
            name: "aligner_rules_group_evaluation_seconds", labels: [("scope", "partitions")],
            help: "Seconds spent evaluating groups since start, by scope.")
        wholeEvaluationSeconds = registry.makeGauge(
            name: "aligner_rules_group_evaluation_seconds", labels: [("scope", "whole")],
            help: "Seconds spent evaluating groups since start, by scope.")
        evidenceSeconds = registry.makeGauge(
            name: "aligner_rules_evidence_seconds", help: "Seconds spent computing events' evidence since start.")
    }

    func record(status: Int) {
        (requests[status] ?? requestsOther).increment()
    }

    func record(_ o: WriteOutcome) {
        decodedBytes.increment(by: Int64(o.decodedBytes))
        if o.samplesWritten > 0 { samples.increment(by: Int64(o.samplesWritten)) }
        if o.samplesDuplicate > 0 { samplesDuplicate.increment(by: Int64(o.samplesDuplicate)) }
        if o.samplesOutOfOrder > 0 { samplesRejected[.outOfOrder]!.increment(by: Int64(o.samplesOutOfOrder)) }
        if o.samplesDuplicateTimestamp > 0 {
            samplesRejected[.duplicateTimestamp]!.increment(by: Int64(o.samplesDuplicateTimestamp))
        }
        if o.samplesInvalidSeries > 0 { samplesRejected[.invalidSeries]!.increment(by: Int64(o.samplesInvalidSeries)) }
        if o.histogramsWritten > 0 { histograms.increment(by: Int64(o.histogramsWritten)) }
        if o.histogramsRejected > 0 { histogramsRejected.increment(by: Int64(o.histogramsRejected)) }
        if o.exemplarsWritten > 0 { exemplars.increment(by: Int64(o.exemplarsWritten)) }
        if o.exemplarsRejected > 0 { exemplarsRejected.increment(by: Int64(o.exemplarsRejected)) }
        if o.metadataWritten > 0 { metadata.increment(by: Int64(o.metadataWritten)) }
        if o.metadataRejected > 0 { metadataRejected.increment(by: Int64(o.metadataRejected)) }
        if o.startTimestamps > 0 { startTimestamps.increment(by: Int64(o.startTimestamps)) }
        if o.seriesCreated > 0 { seriesCreated.increment(by: Int64(o.seriesCreated)) }
        if o.seriesRejected > 0 { seriesRejected.increment(by: Int64(o.seriesRejected)) }
        if o.seriesDeduplicated > 0 { seriesDeduplicated.increment(by: Int64(o.seriesDeduplicated)) }
        if o.deduplicated != nil && o.seriesTotal == 0 { requestsDeduplicated.increment() }
    }
}
