// swift-tools-version:6.1
import PackageDescription

// What runs Verbatim rather than embeds it: the `verbatim` and `cachectl` commands, the
// OpenAI-compatible HTTP service, the PostgreSQL tier of the cache and the workload runner of
// the benchmarks. Kept apart from the library (the package one folder up) so that a service
// depending on the library resolves none of the packages these need.
// No target passes unsafe compiler flags.
let package = Package(
    name: "VerbatimTools",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "verbatim", targets: ["verbatim"]),
        .executable(name: "cachectl", targets: ["cachectl"]),
        .library(name: "VerbatimServer", targets: ["VerbatimServer"]),
        .library(name: "VerbatimPostgres", targets: ["VerbatimPostgres"]),
        .library(name: "VerbatimBench", targets: ["VerbatimBench"]),
    ],
    dependencies: [
        .package(name: "Verbatim", path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // The fleet's shared cache tier in PostgreSQL, behind each process's LMDB store.
        .target(
            name: "VerbatimPostgres",
            dependencies: [
                .product(name: "VerbatimCache", package: "Verbatim"),
                .product(name: "VerbatimModel", package: "Verbatim"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The OpenAI-compatible HTTP service (Hummingbird): completions, chat, models, health, metrics.
        .target(
            name: "VerbatimServer",
            dependencies: [
                .product(name: "Verbatim", package: "Verbatim"),
                .product(name: "VerbatimCache", package: "Verbatim"),
                .product(name: "VerbatimModel", package: "Verbatim"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),

        // The workload runner of the benchmark suite: real-language workloads replayed through the
        // engine and cache, percentiles, bootstrap intervals, Markdown, JSON and SVG reports.
        .target(
            name: "VerbatimBench",
            dependencies: [
                .product(name: "Verbatim", package: "Verbatim"),
                .product(name: "VerbatimCache", package: "Verbatim"),
                .product(name: "VerbatimModel", package: "Verbatim"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),

        // The command-line tool: `verbatim info`, `verbatim tokenize`, `verbatim serve`, ...
        .executableTarget(
            name: "verbatim",
            dependencies: [
                "VerbatimServer",
                "VerbatimPostgres",
                .product(name: "Verbatim", package: "Verbatim"),
                .product(name: "VerbatimCache", package: "Verbatim"),
                .product(name: "VerbatimModel", package: "Verbatim"),
                .product(name: "VerbatimKernels", package: "Verbatim"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // `cachectl`: inspect and manage a cache folder.
        .executableTarget(
            name: "cachectl",
            dependencies: [
                .product(name: "Verbatim", package: "Verbatim"),
                .product(name: "VerbatimCache", package: "Verbatim"),
                .product(name: "VerbatimModel", package: "Verbatim"),
                .product(name: "VerbatimKernels", package: "Verbatim"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .testTarget(
            name: "VerbatimServerTests",
            dependencies: [
                "VerbatimServer",
                .product(name: "Verbatim", package: "Verbatim"),
                .product(name: "VerbatimCache", package: "Verbatim"),
                .product(name: "VerbatimModel", package: "Verbatim"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .testTarget(
            name: "VerbatimCLITests",
            dependencies: [
                "verbatim", "cachectl",
                .product(name: "Verbatim", package: "Verbatim"),
                .product(name: "VerbatimCache", package: "Verbatim"),
                .product(name: "VerbatimModel", package: "Verbatim"),
                .product(name: "VerbatimKernels", package: "Verbatim"),
                .product(name: "VerbatimLMDB", package: "Verbatim"),
            ]
        ),
        .testTarget(
            name: "VerbatimBenchTests",
            dependencies: [
                "VerbatimBench",
                .product(name: "Verbatim", package: "Verbatim"),
                .product(name: "VerbatimTestSupport", package: "Verbatim"),
            ]
        ),
        .testTarget(
            name: "VerbatimPostgresTests",
            dependencies: ["VerbatimPostgres", "verbatim", "cachectl", .product(name: "Verbatim", package: "Verbatim")]
        ),
    ]
)
