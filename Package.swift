// swift-tools-version:6.1
import PackageDescription

// The library a service embeds: no package dependencies at all, so depending on it resolves
// nothing else. The command-line tools, the HTTP service, the PostgreSQL tier and the workload
// runner live in the package in Tools/ (which depends on this one by path).
// Layers (see docs/design/ARCHITECTURE.md): data flows down, nothing flows up.
// No target passes unsafe compiler flags: a service must be able to depend on this package by version.
let package = Package(
    name: "Verbatim",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Verbatim", targets: ["Verbatim"]),
        .library(name: "VerbatimKernels", targets: ["VerbatimKernels"]),
        .library(name: "VerbatimTemplate", targets: ["VerbatimTemplate"]),
        .library(name: "VerbatimModel", targets: ["VerbatimModel"]),
        .library(name: "VerbatimCore", targets: ["VerbatimCore"]),
        .library(name: "VerbatimCache", targets: ["VerbatimCache"]),
        // The LMDB wrapper under the cache, for the tools (and their tests) that open a cache file directly.
        .library(name: "VerbatimLMDB", targets: ["LMDB"]),
        // Test support: tiny generated models (any architecture, random weights, a real BPE vocabulary).
        .library(name: "VerbatimTestSupport", targets: ["VerbatimTestSupport"]),
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

        // The foundation both the model and the cache stand on: token ids, 128-bit digests and the
        // content hasher, the byte codec of the package's own records.
        .target(name: "VerbatimCore", dependencies: ["CVerbatimHash"]),

        // A Jinja renderer for chat templates, matching Python's Jinja2 as transformers configures it.
        .target(name: "VerbatimTemplate"),

        // GGUF files, hyperparameters, model digest, tokenizer, chat template, the forward pass.
        .target(
            name: "VerbatimModel",
            dependencies: ["VerbatimCore", "VerbatimKernels", "VerbatimTemplate"]
        ),

        // A thin Swift wrapper over LMDB: scoped transactions, zero-copy reads, typed errors.
        .target(name: "LMDB", dependencies: ["CLMDB"]),

        // The content-addressed cache of KV blocks and completions in LMDB.
        .target(name: "VerbatimCache", dependencies: ["LMDB", "VerbatimCore"]),

        // The engine: continuous batching, reproducible sampling, streaming, scoring.
        .target(name: "Verbatim", dependencies: ["VerbatimModel", "VerbatimKernels", "VerbatimCache", "VerbatimCore"]),

        // Test support, kept out of the production modules: `TinyModel` writes small GGUF files.
        .target(name: "VerbatimTestSupport", dependencies: ["VerbatimModel"]),

        .testTarget(
            name: "VerbatimModelTests",
            dependencies: ["VerbatimModel", "VerbatimTestSupport"],
            resources: [.copy("Data")]
        ),
        .testTarget(name: "VerbatimTemplateTests", dependencies: ["VerbatimTemplate"], resources: [.copy("Data")]),
        .testTarget(name: "VerbatimKernelsTests", dependencies: ["VerbatimKernels"]),
        .testTarget(name: "VerbatimTests", dependencies: ["Verbatim", "VerbatimCache", "VerbatimTestSupport"]),
        .testTarget(name: "VerbatimCoreTests", dependencies: ["VerbatimCore"]),
        .testTarget(name: "LMDBTests", dependencies: ["LMDB"]),
        .testTarget(name: "VerbatimCacheTests", dependencies: ["VerbatimCache", "VerbatimCore", "LMDB"]),
        .testTarget(
            name: "SystemLibraryTests",
            dependencies: ["CLMDB", "CXXHash"]
        ),
    ]
)
