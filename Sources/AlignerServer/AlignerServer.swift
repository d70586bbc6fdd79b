import AlignerCore
import AlignerEngine
import AlignerEvents
import AlignerIngest
import AlignerRules
import CAlignerIntrinsics
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// Aligner's HTTP server and background services, wired from a `Configuration`.
public struct AlignerServer: Sendable {
    /// The configuration in force.
    public let configuration: AlignerConfiguration
    /// The remote-write ingestor and its series table.
    public let ingestor: Ingestor
    let registry: PrometheusCollectorRegistry
    let metrics: IngestMetrics
    let logger: Logger
    /// The samples rules read, and the rules themselves.
    let windows: WindowStore
    let rules: RuleEngine
    /// Events and their store.
    let events: EventManager

    /// Sizes NIO's event loops, which also run the request handlers (remote-write decoding
    /// included), to the CPUs the process may run on. NIO counts the cores that cgroups allow but
    /// not the process' CPU affinity (taskset, the cpusets of Kubernetes' static CPU manager):
    /// pinned to one CPU, two loops took turns on it and one loop did the same work on 8-12% less
    /// CPU (README, "End to end through HTTP"). Call once, before anything serves; an explicit
    /// `NIO_SINGLETON_GROUP_LOOP_COUNT` wins. Returns the count set, or nil where NIO's stands.
    @discardableResult
    public static func fitEventLoopsToAffinity() -> Int? {
        guard ProcessInfo.processInfo.environment["NIO_SINGLETON_GROUP_LOOP_COUNT"] == nil else { return nil }
        let allowed = Int(aligner_affinity_cpu_count())
        guard allowed > 0, allowed < System.coreCount else { return nil }
        NIOSingletons.groupLoopCountSuggestion = allowed
        return allowed
    }

    /// Puts every thread of the process under Linux' SCHED_BATCH policy; threads started later
    /// inherit it from the threads that start them. The scheduler then lets a woken thread wait
    /// for the running one's time slice instead of switching to it at once: an event loop woken
    /// by the next bytes of a request no longer interrupts the decoding of the last one on the
    /// same core. Pinned to one core under the shared load, that took the process from about
    /// 5,800 to 900 context switches a second, and from 3.02-3.26 M to 3.33-3.58 M samples per
    /// CPU-second in alternated runs (README, "Benchmarks"). Its cost is a few
    /// milliseconds' wait for a woken thread while the core is busy with another of the process'
    /// threads. Call before anything serves. Returns how many threads were set, or the error
    /// where the system refused.
    public static func useBatchScheduling() -> Result<Int, POSIXError> {
        guard let tids = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") else {
            return .failure(POSIXError(.ENOENT))
        }
        var set = 0
        for tid in tids.compactMap(Int32.init) {
            if aligner_set_batch_scheduling(tid) == 0 {
                set += 1
            } else if errno != ESRCH {  // a thread that ended meanwhile is not a failure
                return .failure(POSIXError(POSIXErrorCode(rawValue: errno) ?? .EPERM))
            }
        }
        return .success(set)
    }

    /// Creates the server's parts and loads the rules (every problem at once); nothing runs until `run()`.
    public init(configuration: AlignerConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        windows = WindowStore()
        var paths = configuration.rulePaths
        if configuration.rulePathsAreDefault {
            paths = paths.filter { FileManager.default.fileExists(atPath: $0) }
            // Started from elsewhere: the pack bundled beside the executable (the checkout's
            // `rules/` for .build/<triple>/<config>/aligner, or <prefix>/share/aligner/rules).
            if paths.isEmpty, let bundled = AlignerServer.bundledRules() {
                paths = [bundled]
                logger.info("loading the bundled rules", metadata: ["path": "\(bundled)"])
            }
        }
        ingestor = Ingestor(limits: configuration.ingest, observer: windows)
        let table = ingestor.table
        events = try EventManager(
            store: SQLiteEventStore(directory: configuration.dataDirectory), resolveAfter: configuration.eventResolveAfter.milliseconds,
            cooldown: configuration.eventCooldown.milliseconds, limits: configuration.eventLimits, logger: logger)
        rules = try RuleEngine(
            store: windows, paths: paths, logger: logger, gapTolerance: configuration.ruleGapTolerance.milliseconds, events: events,
            subqueryStep: configuration.ruleSubqueryStep.milliseconds, queryOffset: configuration.ruleQueryOffset.milliseconds, external: (configuration.ruleExternalLabels, configuration.ruleExternalURL),
            onReload: { table.reselect() })
        registry = PrometheusCollectorRegistry()
        metrics = IngestMetrics(registry: registry)
    }

    /// The bundled `rules/` folder found from the executable's own path, if any.
    static func bundledRules() -> String? {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        for relative in ["rules", "../../rules", "../../../rules", "../share/aligner/rules"] {
            let path = exe.appendingPathComponent(relative).standardizedFileURL.path
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return path }
        }
        return nil
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully. `onServerRunning` receives the
    /// bound port (useful with port 0).
    public func run(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try await makeServiceGroup(onServerRunning: onServerRunning).run()
    }

    /// Every service Aligner runs, in one group that shuts down on SIGTERM or SIGINT (or on
    /// `triggerGracefulShutdown()`).
    public func makeServiceGroup(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> ServiceGroup {
        let app = makeApplication(onServerRunning: onServerRunning)
        return ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: app), .init(service: SeriesSweeper(server: self)),
                    .init(service: RuleEvaluationService(
                        engine: rules, store: windows, interval: configuration.ruleEvaluationInterval, logger: logger)),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
    }

    /// The Hummingbird application serving every route, as a `Service`.
    public func makeApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router()
        let write = RemoteWriteRoute(ingestor: ingestor, metrics: metrics)
        router.post("/api/v1/write") { request, context in try await write.handle(request, context: context) }
        router.get("/-/healthy") { _, _ in "Healthy\n" }
        router.get("/-/ready") { _, _ in "Ready\n" }
        router.get("/metrics") { _, _ in metricsResponse() }
        let api = RulesAPI(engine: rules, windows: windows)
        let metadata = SeriesAPI(table: ingestor.table, api: api)
        router.get("/api/v1/series") { request, _ in await metadata.seriesResponse(request) }
        router.post("/api/v1/series") { request, _ in await metadata.seriesResponse(request) }
        router.get("/api/v1/labels") { request, _ in await metadata.labelsResponse(request) }
        router.post("/api/v1/labels") { request, _ in await metadata.labelsResponse(request) }
        router.get("/api/v1/label/:name/values") { request, context in
            await metadata.labelValuesResponse(request, name: context.parameters.get("name") ?? "")
        }
        router.get("/api/v1/rules") { request, _ in await api.rules(request) }
        router.get("/api/v1/alerts") { _, _ in await api.alerts() }
        router.get("/api/v1/query") { request, _ in await api.query(request) }
        router.post("/api/v1/query") { request, _ in await api.query(request) }
        router.get("/api/v1/query_range") { request, _ in await api.queryRange(request) }
        router.post("/api/v1/query_range") { request, _ in await api.queryRange(request) }
        router.post("/-/reload") { _, _ in await api.reload() }
        EventsAPI(events: events, rules: rules, windows: windows).register(on: router)
        router.add(middleware: MethodNotAllowedMiddleware(routes: router.routes))
        let logger = self.logger
        let listen = configuration.listen
        return Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [ExpectContinueHandler()])),
            configuration: ApplicationConfiguration(
                address: .hostname(listen.host, port: listen.port), serverName: "aligner", backlog: 256,
                reuseAddress: true, availableConnectionsDelegate: nil),
            onServerRunning: { [replicas = configuration.ingest.replicas] channel in
                let port = channel.localAddress?.port ?? listen.port
                logger.info("aligner listening", metadata: [
                    "address": "\(listen.host):\(port)",
                    "replicas": replicas.replicaLabel.isEmpty ? "every sender taken as it is"
                        : "one per group of \(replicas.clusterLabels) by \(replicas.replicaLabel)",
                ])
                await onServerRunning(port)
            },
            logger: logger)
    }

    func metricsResponse() -> Response {
        metrics.seriesActive.set(Double(ingestor.table.activeSeries))
        metrics.seriesMemory.set(Double(ingestor.table.memoryBytes))
        metrics.inflightBytes.set(Double(ingestor.inflightBytes))
        let size = windows.size
        metrics.windowSeries.set(Double(size.series))
        metrics.windowSamples.set(Double(size.samples))
        let counts = rules.evaluationCounts.withLock { $0 }
        metrics.partialEvaluations.set(Double(counts.partial))
        metrics.wholeEvaluations.set(Double(counts.whole))
        metrics.partialEvaluationSeconds.set(counts.partialSeconds)
        metrics.wholeEvaluationSeconds.set(counts.wholeSeconds)
        metrics.evidenceSeconds.set(counts.evidenceSeconds)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 << 10)
        registry.emit(into: &buffer)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: buffer)))
    }
}

/// Drops idle series periodically (`ingest.series_idle_timeout`).
struct SeriesSweeper: Service {
    let server: AlignerServer

    func run() async throws {
        let idle = server.configuration.ingest.seriesIdleTimeout
        let period = min(idle / 4, .seconds(60))
        try? await cancelWhenGracefulShutdown {
            while true {
                try await Task.sleep(for: period)
                let cutoff = WallClock.nowMilliseconds() - idle.milliseconds
                let evicted = server.ingestor.table.evictIdle(before: cutoff)
                if evicted > 0 {
                    server.metrics.seriesEvicted.increment(by: Int64(evicted))
                    server.logger.info("evicted idle series", metadata: ["count": "\(evicted)"])
                }
            }
        }
    }
}
