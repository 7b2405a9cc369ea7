// swift-tools-version:6.1
import PackageDescription

// Layers (see docs/design/ARCHITECTURE.md): data flows down, nothing flows up.
// No target passes unsafe compiler flags: a service must be able to depend on this package by version.
let package = Package(
    name: "Verbatim",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "VerbatimKernels", targets: ["VerbatimKernels"]),
        .library(name: "VerbatimTemplate", targets: ["VerbatimTemplate"]),
        .library(name: "VerbatimModel", targets: ["VerbatimModel"]),
        .library(name: "Verbatim", targets: ["Verbatim"]),
        .library(name: "VerbatimCache", targets: ["VerbatimCache"]),
        .library(name: "VerbatimBench", targets: ["VerbatimBench"]),
        .library(name: "VerbatimPostgres", targets: ["VerbatimPostgres"]),
        .executable(name: "verbatim", targets: ["verbatim"]),
        .executable(name: "cachectl", targets: ["cachectl"]),
    ],
    dependencies: [
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
        // System libraries (Debian: liblmdb-dev, libxxhash-dev; scripts/setup installs them).
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        .systemLibrary(
            name: "CXXHash",
            pkgConfig: "libxxhash",
            providers: [.apt(["libxxhash-dev"])]
        ),

        // XXH3-128 through libxxhash's SIMD dispatch, clearing the upper vector state after each call.
        .target(name: "CVerbatimHash", dependencies: ["CXXHash"]),

        // Batch-invariant CPU kernels: C hot loops with runtime ISA dispatch, and their Swift API.
        .target(name: "CVerbatimKernels"),
        .target(name: "VerbatimKernels", dependencies: ["CVerbatimKernels"]),

        // A Jinja renderer for chat templates, matching Python's Jinja2 as transformers configures it.
        .target(name: "VerbatimTemplate"),

        // GGUF files, hyperparameters, model digest, tokenizer, chat template, the forward pass.
        .target(
            name: "VerbatimModel",
            dependencies: ["CVerbatimHash", "VerbatimKernels", "VerbatimTemplate"]
        ),

        // A thin Swift wrapper over LMDB: scoped transactions, zero-copy reads, typed errors.
        .target(name: "LMDB", dependencies: ["CLMDB"]),

        // The content-addressed cache of KV blocks and completions in LMDB.
        .target(name: "VerbatimCache", dependencies: ["LMDB", "VerbatimModel"]),

        // The fleet's shared cache tier in PostgreSQL, behind each process's LMDB store.
        .target(
            name: "VerbatimPostgres",
            dependencies: [
                "VerbatimCache", "VerbatimModel",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The engine: continuous batching, reproducible sampling, streaming, scoring.
        .target(name: "Verbatim", dependencies: ["VerbatimModel", "VerbatimKernels", "VerbatimCache"]),

        // The OpenAI-compatible HTTP service (Hummingbird): completions, chat, models, health, metrics.
        .target(
            name: "VerbatimServer",
            dependencies: [
                "Verbatim", "VerbatimCache", "VerbatimModel",
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
                "Verbatim", "VerbatimCache", "VerbatimModel",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),

        // The command-line tool: `verbatim info`, `verbatim tokenize`, ...
        .executableTarget(
            name: "verbatim",
            dependencies: [
                "Verbatim",
                "VerbatimServer",
                "VerbatimPostgres",
                .product(name: "Logging", package: "swift-log"),
                "VerbatimCache",
                "VerbatimModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // `cachectl`: inspect and manage a cache folder.
        .executableTarget(
            name: "cachectl",
            dependencies: [
                "Verbatim",
                "VerbatimCache",
                "VerbatimModel",
                "VerbatimKernels",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .testTarget(
            name: "VerbatimModelTests",
            dependencies: ["VerbatimModel"],
            resources: [.copy("Data")]
        ),
        .testTarget(name: "VerbatimTemplateTests", dependencies: ["VerbatimTemplate"], resources: [.copy("Data")]),
        .testTarget(name: "VerbatimKernelsTests", dependencies: ["VerbatimKernels"]),
        .testTarget(name: "VerbatimTests", dependencies: ["Verbatim", "VerbatimCache"]),
        .testTarget(name: "VerbatimCacheTests", dependencies: ["VerbatimCache", "LMDB"]),
        .testTarget(
            name: "VerbatimServerTests",
            dependencies: [
                "VerbatimServer", "Verbatim", "VerbatimModel",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .testTarget(
            name: "VerbatimCLITests",
            dependencies: ["verbatim", "cachectl", "Verbatim", "VerbatimCache", "VerbatimModel", "LMDB", "VerbatimKernels"]
        ),
        .testTarget(name: "VerbatimBenchTests", dependencies: ["VerbatimBench", "Verbatim", "VerbatimModel"]),
        .testTarget(
            name: "VerbatimPostgresTests",
            dependencies: ["VerbatimPostgres", "VerbatimCache", "Verbatim", "VerbatimModel", "verbatim", "cachectl"]
        ),
        .testTarget(
            name: "SystemLibraryTests",
            dependencies: ["CLMDB", "CXXHash"]
        ),
    ]
)
