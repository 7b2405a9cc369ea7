// Forward-pass benchmarks on the real model: one decode step at context 128, a batch of 16
// decode tokens of 16 sequences, and a 512-token prefill. Time, tokens/s and allocations per
// step (the hot path allocates nothing, so mallocs stay flat however many steps run).
// Run: swift package --package-path Benchmarks benchmark --target ForwardBenchmarks
import Benchmark
import Foundation
import VerbatimKernels
import VerbatimModel

/// The real model, found like the `verbatim` tool finds it (run from the Benchmarks folder).
func modelPath() -> String {
    ModelLocation.path(modelsFolder: "../models")
}

/// Timing on a shared machine is noisy: wide tolerances on time, none on allocations.
var thresholds: [BenchmarkMetric: BenchmarkThresholds] { [
    .wallClock: .init(relative: [.p50: 25.0], absolute: [:]),
    .mallocCountTotal: .init(relative: [.p50: 0.0], absolute: [.p50: 2]),
] }

let benchmarks: @Sendable () -> Void = {
    let file = try! GGUFFile(path: modelPath())
    let model = try! LlamaModel(file: file)
    let tokenizer = try! Tokenizer(file: file)
    let text = (try? String(contentsOfFile: "/usr/share/common-licenses/GPL-3", encoding: .utf8)) ?? String(repeating: "Same input, same bits. ", count: 400)
    let tokens = Array(tokenizer.encode(text).prefix(1024))
    let tokensPerSecond = BenchmarkMetric.custom("tokens/s", polarity: .prefersLarger, useScalingFactor: false)

    /// A pass with `sequences` sequences of `context` tokens already written.
    func pass(sequences: Int, context: Int) -> ForwardPass {
        let kv = KVPool(config: model.config, blockSize: 32, blockCount: sequences * (context / 32 + 2) + 20)
        let p = ForwardPass(model: model, kv: kv, maxTokens: 512)
        for s in 0..<sequences where context > 0 {
            try! p.step((0..<context).map { BatchToken(sequence: SequenceID(s), position: $0, token: tokens[($0 + s * 7) % tokens.count]) })
        }
        return p
    }

    let decode = pass(sequences: 1, context: 128)
    Benchmark("decode step: 1 token at context 128 (logits out)",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal, tokensPerSecond], maxDuration: .seconds(3), maxIterations: 300,
                                   thresholds: thresholds)) { benchmark in
        let start = ContinuousClock.now
        for _ in benchmark.scaledIterations {
            try decode.step([BatchToken(sequence: 0, position: 128, token: tokens[128], wantsLogits: true)])
        }
        benchmark.measurement(tokensPerSecond, Int(Double(benchmark.scaledIterations.count) / ((ContinuousClock.now - start) / .seconds(1))))
    }

    let batch = pass(sequences: 16, context: 64)
    Benchmark("decode step: 16 sequences × 1 token at context 64",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal, tokensPerSecond], maxDuration: .seconds(3), maxIterations: 100,
                                   thresholds: thresholds)) { benchmark in
        let rows = (0..<16).map { BatchToken(sequence: SequenceID($0), position: 64, token: tokens[64 + $0], wantsLogits: true) }
        let start = ContinuousClock.now
        for _ in benchmark.scaledIterations { try batch.step(rows) }
        benchmark.measurement(tokensPerSecond, Int(Double(16 * benchmark.scaledIterations.count) / ((ContinuousClock.now - start) / .seconds(1))))
    }

    let prefill = pass(sequences: 1, context: 0)
    Benchmark("prefill step: 512 tokens",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal, tokensPerSecond], maxDuration: .seconds(5), maxIterations: 20,
                                   thresholds: thresholds)) { benchmark in
        let rows = (0..<512).map { BatchToken(sequence: 0, position: $0, token: tokens[$0], wantsLogits: $0 == 511) }
        let start = ContinuousClock.now
        for _ in benchmark.scaledIterations { try prefill.step(rows) }
        benchmark.measurement(tokensPerSecond, Int(Double(512 * benchmark.scaledIterations.count) / ((ContinuousClock.now - start) / .seconds(1))))
    }
}
