import Benchmark
import Foundation
import VerbatimModel

/// The real model, found like the `verbatim` tool finds it (run from the Benchmarks folder).
func modelPath() -> String {
    ModelLocation.path(modelsFolder: "../models")
}

/// Real language: the GPL text every Debian system installs (English prose), the project's
/// design notes, and the multilingual strings of the tokenizer tests.
func corpus() -> String {
    var parts: [String] = []
    for path in ["/usr/share/common-licenses/GPL-3", "../README.md", "../docs/design/CACHE.md",
                 "../Tests/VerbatimModelTests/Data/tokenizer-expected.json"] {
        if let text = try? String(contentsOfFile: path, encoding: .utf8) { parts.append(text) }
    }
    precondition(!parts.isEmpty, "no corpus text found")
    return parts.joined(separator: "\n")
}

let benchmarks: @Sendable () -> Void = {
    let file = try! GGUFFile(path: modelPath())
    let tokenizer = try! Tokenizer(file: file)
    let text = corpus()
    let bytes = text.utf8.count
    let megabytesPerSecond = BenchmarkMetric.custom("encode MB/s", polarity: .prefersLarger, useScalingFactor: false)

    Benchmark("Tokenizer.encode (\(bytes / 1024) KiB of real text)",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal, megabytesPerSecond],
                                   maxDuration: .seconds(10), maxIterations: 50)) { benchmark in
        let start = ContinuousClock.now
        for _ in benchmark.scaledIterations { blackHole(tokenizer.encode(text)) }
        let seconds = (ContinuousClock.now - start) / .seconds(1)
        benchmark.measurement(megabytesPerSecond, Int(Double(bytes * benchmark.scaledIterations.count) / seconds / 1e6))
    }

    // Gemma 3's SentencePiece tokenizer: 262 144 tokens, merges by score.
    let gemmaPath = ModelLocation.path(of: ModelLocation.gemma3, fileVariable: "VERBATIM_GEMMA_MODEL", modelsFolder: "../models")
    if let gemma = try? Tokenizer(file: GGUFFile(path: gemmaPath)) {
        Benchmark("Tokenizer.encode, Gemma 3 SentencePiece (\(bytes / 1024) KiB of real text)",
                  configuration: .init(metrics: [.wallClock, .mallocCountTotal, megabytesPerSecond],
                                       maxDuration: .seconds(10), maxIterations: 50)) { benchmark in
            let start = ContinuousClock.now
            for _ in benchmark.scaledIterations { blackHole(gemma.encode(text)) }
            let seconds = (ContinuousClock.now - start) / .seconds(1)
            benchmark.measurement(megabytesPerSecond, Int(Double(bytes * benchmark.scaledIterations.count) / seconds / 1e6))
        }
    }

    let ids = tokenizer.encode(text)
    Benchmark("Tokenizer.decode (\(ids.count) tokens)",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(5), maxIterations: 50)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try tokenizer.decode(ids)) }
    }

    Benchmark("GGUFFile open + parse (real model)",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(5), maxIterations: 30)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try GGUFFile(path: modelPath())) }
    }

    Benchmark("Model digest (real model, 94 MiB)",
              configuration: .init(metrics: [.wallClock], maxDuration: .seconds(5), maxIterations: 20)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(file.modelDigest()) }
    }
}
