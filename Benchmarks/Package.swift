// swift-tools-version:6.1
import PackageDescription

// Benchmarks live in their own package so that the library's users never build
// package-benchmark. Run: swift package --package-path Benchmarks benchmark
let package = Package(
    name: "VerbatimBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Verbatim", path: ".."),
        .package(name: "VerbatimTools", path: "../Tools"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // Side-by-side runs against baselines: swift run -c release --package-path Benchmarks verbatim-bench forward
        .executableTarget(
            name: "verbatim-bench",
            dependencies: [
                .product(name: "VerbatimModel", package: "Verbatim"),
                .product(name: "VerbatimKernels", package: "Verbatim"),
                .product(name: "Verbatim", package: "Verbatim"),
                .product(name: "VerbatimCache", package: "Verbatim"),
                .product(name: "VerbatimTestSupport", package: "Verbatim"),   // the vocabulary of generated benchmark models
                .product(name: "VerbatimBench", package: "VerbatimTools"),
                .product(name: "VerbatimPostgres", package: "VerbatimTools"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                "MachineLimits",
            ],
            path: "Sources/verbatim-bench"
        ),
        // The limits the kernel figures are fractions of: one core's peak fma rate, and the
        // plain read rate of one core and of all of them together.
        .target(name: "MachineLimits", path: "Sources/MachineLimits"),
        .executableTarget(
            name: "KernelBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "VerbatimKernels", package: "Verbatim"),
                "MachineLimits",
            ],
            path: "Benchmarks/KernelBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "ForwardBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "VerbatimKernels", package: "Verbatim"),
                .product(name: "VerbatimModel", package: "Verbatim"),
            ],
            path: "Benchmarks/ForwardBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "CacheBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "VerbatimCache", package: "Verbatim"),
                .product(name: "VerbatimModel", package: "Verbatim"),
                .product(name: "VerbatimKernels", package: "Verbatim"),
            ],
            path: "Benchmarks/CacheBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "TokenizerBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "VerbatimModel", package: "Verbatim"),
            ],
            path: "Benchmarks/TokenizerBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
