// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "Aligner",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "aligner", targets: ["aligner"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        // Already built for Hummingbird; named for its HTTP part types (`ExpectContinueHandler`).
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
    ],
    targets: [
        // System libraries from Debian, found through pkg-config.
        .systemLibrary(name: "CAlignerSnappy", pkgConfig: "snappy",
                       providers: [.apt(["libsnappy-dev"])]),
        .systemLibrary(name: "CAlignerProtobufC", pkgConfig: "libprotobuf-c",
                       providers: [.apt(["libprotobuf-c-dev"])]),
        // Compiler intrinsics Swift does not expose (cache prefetch), header only.
        .systemLibrary(name: "CAlignerIntrinsics"),
        // libcurl with typed setters for its variadic curl_easy_setopt.
        .systemLibrary(name: "CAlignerCurlSystem", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(name: "CAlignerCurl", dependencies: ["CAlignerCurlSystem"]),
        // protoc-c output for remote-write 1.0 and 2.0 (regenerate with its generate.sh).
        .target(name: "CAlignerRemoteWrite", dependencies: ["CAlignerProtobufC"],
                exclude: ["generate.sh", "proto"]),

        .target(name: "AlignerCore", swiftSettings: strict),
        .target(name: "AlignerIngest",
                dependencies: ["AlignerCore", "CAlignerSnappy", "CAlignerIntrinsics"],
                swiftSettings: strict + [.unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked"],
                                                      .when(configuration: .release))]),
        .target(name: "AlignerRules",
                dependencies: ["AlignerCore", .product(name: "Yams", package: "Yams")],
                swiftSettings: strict),
        .target(name: "AlignerEngine", dependencies: ["AlignerCore", "AlignerRules", "AlignerIngest", "CAlignerIntrinsics"], swiftSettings: strict),
        .systemLibrary(name: "CAlignerSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "AlignerEvents",
                dependencies: ["AlignerCore", "CAlignerSQLite", .product(name: "Logging", package: "swift-log")],
                swiftSettings: strict),
        .target(name: "AlignerServer",
                dependencies: [
                    "AlignerCore", "AlignerIngest", "AlignerRules", "AlignerEngine", "AlignerEvents", "CAlignerIntrinsics",
                    .product(name: "Hummingbird", package: "hummingbird"),
                    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                    .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                    .product(name: "Prometheus", package: "swift-prometheus"),
                    .product(name: "Metrics", package: "swift-metrics"),
                    .product(name: "Logging", package: "swift-log"),
                    .product(name: "Yams", package: "Yams"),
                    .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                ],
                swiftSettings: strict),
        .target(name: "AlignerTesting",
                dependencies: ["AlignerCore", "AlignerIngest", "CAlignerRemoteWrite", "CAlignerSnappy", "CAlignerCurl"],
                swiftSettings: strict),
        .executableTarget(name: "aligner",
                          dependencies: [
                              "AlignerEngine", "AlignerServer",
                              .product(name: "ArgumentParser", package: "swift-argument-parser"),
                          ],
                          swiftSettings: strict),
        // libFuzzer target: fast decoder vs libprotobuf-c (fuzz/run.sh); replays files otherwise.
        .executableTarget(name: "aligner-fuzz", dependencies: ["AlignerIngest", "AlignerTesting"],
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
        // Benchmarks (benchmarks/README.md): decode + series lookup per core, allocations per request.
        .target(name: "CAlignerMallocCounter", path: "benchmarks/CAlignerMallocCounter"),
        .executableTarget(name: "aligner-bench",
                          dependencies: ["AlignerIngest", "AlignerTesting", "AlignerEngine", "AlignerRules",
                                         "CAlignerMallocCounter", "CAlignerSnappy"],
                          path: "benchmarks/aligner-bench",
                          swiftSettings: strict + [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]),
        .executableTarget(name: "aligner-latency", dependencies: ["AlignerServer", "AlignerTesting"],
                          path: "benchmarks/aligner-latency", swiftSettings: strict),
        .testTarget(name: "AlignerIngestTests",
                    dependencies: ["AlignerIngest", "AlignerTesting", "CAlignerRemoteWrite"],
                    swiftSettings: strict),
        .testTarget(name: "AlignerRulesTests", dependencies: ["AlignerRules"], exclude: ["Fixtures"], swiftSettings: strict),
        .testTarget(name: "AlignerEngineTests", dependencies: ["AlignerEngine", "AlignerRules", "AlignerTesting"], swiftSettings: strict),
        .testTarget(name: "AlignerEventsTests",
                    dependencies: ["AlignerEvents", "AlignerTesting", .product(name: "Logging", package: "swift-log")],
                    swiftSettings: strict),
        .testTarget(name: "AlignerServerTests",
                    dependencies: [
                        "AlignerServer", "AlignerTesting",
                        .product(name: "Hummingbird", package: "hummingbird"),
                        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                        .product(name: "Yams", package: "Yams"),
                    ],
                    swiftSettings: strict),
    ]
)
