import ArgumentParser
import Foundation
import Verbatim
import VerbatimKernels
import VerbatimModel

struct EngineBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Engine throughput and TTFT at several concurrencies, against the raw forward pass doing the same work.")

    @Option(help: "GGUF model file.") var model: String = defaultModelPath()
    @Option(help: "Concurrencies, comma-separated.") var concurrency = "1,4,16"
    @Option(help: "Prompt tokens per request.") var prompt = 64
    @Option(help: "Generated tokens per request.") var tokens = 64
    @Option(help: "Measured runs per row (after a warm-up); medians are reported.") var runs = 3

    func run() async throws {
        let file = try GGUFFile(path: model)
        let lm = try LlamaModel(file: file)
        let tokenizer = try Tokenizer(file: file)
        let text = Array(tokenizer.encode(realText()))
        print("model \(model), \(KernelConfig.threads) threads, prompt \(prompt) tokens, \(tokens) new tokens per request, medians of \(runs)\n")
        print("| concurrency | raw forward tok/s | engine tok/s | engine / raw | TTFT p50 | TTFT max |")
        print("|---|---|---|---|---|---|")
        for c in concurrency.split(separator: ",").compactMap({ Int($0) }) {
            // Distinct prompts, so nothing is shared between requests.
            let prompts = (0..<c).map { Array(text[($0 * 7)..<($0 * 7 + prompt)]) }
            var raw: [Double] = [], engine: [Double] = [], ttfts: [Double] = []
            for run in 0...runs {
                let r = try rawForward(lm, prompts)
                let (e, t) = try await engineRun(lm, tokenizer, prompts)
                if run > 0 { raw.append(r); engine.append(e); ttfts += t }
            }
            print(String(format: "| %d | %.0f | %.0f | %.3f | %.1f ms | %.1f ms |", c, median(raw), median(engine),
                         median(engine) / median(raw), median(ttfts) * 1000, (ttfts.max() ?? 0) * 1000))
        }
    }

    /// The same work without the engine: all prompts prefilled in one step, then every sequence
    /// decoded in lockstep (greedy), one step per token.
    func rawForward(_ lm: LlamaModel, _ prompts: [[TokenID]]) throws -> Double {
        let blocks = prompts.count * ((prompt + tokens) / 32 + 2)
        let pass = ForwardPass(model: lm, kv: KVPool(config: lm.config, blockSize: 32, blockCount: blocks), maxTokens: 256,
                               logitRows: 64)
        let start = ContinuousClock.now
        var next = [TokenID](repeating: 0, count: prompts.count)
        var batch: [BatchToken] = []
        for (s, p) in prompts.enumerated() {
            for (i, t) in p.enumerated() { batch.append(BatchToken(sequence: s, position: i, token: t, wantsLogits: i == p.count - 1)) }
        }
        var chunkStart = 0
        while chunkStart < batch.count {   // prefill under the same 256-token budget as the engine
            let chunk = Array(batch[chunkStart..<min(chunkStart + 256, batch.count)])
            try pass.step(chunk) { i, logits in next[chunk[i].sequence] = TokenID(Kernels.argmax(x: logits.baseAddress!, n: logits.count)) }
            chunkStart += 256
        }
        for step in 1..<tokens {
            let decode = prompts.indices.map { BatchToken(sequence: $0, position: prompt + step - 1, token: next[$0], wantsLogits: true) }
            try pass.step(decode) { i, logits in next[decode[i].sequence] = TokenID(Kernels.argmax(x: logits.baseAddress!, n: logits.count)) }
        }
        return Double(prompts.count * tokens) / ((ContinuousClock.now - start) / .seconds(1))
    }

    func engineRun(_ lm: LlamaModel, _ tokenizer: Tokenizer, _ prompts: [[TokenID]]) async throws -> (Double, [Double]) {
        var configuration = EngineConfiguration()
        configuration.kvMemoryBytes = 256 << 20
        let engine = try Engine(model: lm, tokenizer: tokenizer, configuration: configuration)
        let start = ContinuousClock.now
        let ttfts = try await withThrowingTaskGroup(of: Double.self) { group in
            for p in prompts {
                let stream = try engine.generate(.tokens(p), parameters: GenerateParameters(maxTokens: tokens, stopAtEOS: false))
                group.addTask {
                    var ttft = 0.0
                    for await event in stream {
                        if case .summary(let s) = event { ttft = s.timeToFirstToken / .seconds(1) }
                    }
                    return ttft
                }
            }
            var all: [Double] = []
            for try await t in group { all.append(t) }
            return all
        }
        let seconds = (ContinuousClock.now - start) / .seconds(1)
        await engine.shutdown()
        return (Double(prompts.count * tokens) / seconds, ttfts)
    }
}
