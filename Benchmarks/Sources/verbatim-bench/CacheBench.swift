import ArgumentParser
import Foundation
import Verbatim
import VerbatimCache
import VerbatimKernels
import VerbatimModel

struct CacheBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "TTFT cold vs prefix-warm vs completion-warm, lookup latency, restore bandwidth, write-behind cost.")

    @Option(help: "GGUF model file.") var model: String = defaultModelPath()
    @Option(help: "Prompt lengths, comma-separated.") var lengths = "256,1024,4096"
    @Option(help: "Measured runs per row; medians are reported.") var runs = 3

    func run() async throws {
        let file = try GGUFFile(path: model)
        let lm = try LlamaModel(file: file)
        let tokenizer = try Tokenizer(file: file)
        let text = tokenizer.encode(realText() + realText())
        let folder = NSTemporaryDirectory() + "verbatim-bench-cache-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try CacheStore(directory: folder)
        func engine(cache: Bool, completions: Bool = true) throws -> Engine {
            var c = EngineConfiguration()
            c.kvMemoryBytes = 1 << 30
            c.maxBatchTokens = 512
            if cache { c.cache = store; c.completionCache = completions }
            return try Engine(model: lm, tokenizer: tokenizer, configuration: c)
        }
        let plain = try engine(cache: false)
        let prefixOnly = try engine(cache: true, completions: false)
        let full = try engine(cache: true)
        let p = GenerateParameters(maxTokens: 8, logprobs: true)
        func once(_ e: Engine, _ tokens: [TokenID]) async throws -> (Double, [TokenID], [UInt32], GenerationSummary) {
            var ids: [TokenID] = [], bits: [UInt32] = [], summary: GenerationSummary?
            for await event in try e.generate(.tokens(tokens), parameters: p) {
                switch event {
                case .token(let t): ids.append(t.id); bits.append(t.logprob!.bitPattern)
                case .summary(let s): summary = s
                }
            }
            return (summary!.timeToFirstToken / .seconds(1), ids, bits, summary!)
        }
        print("model \(model), \(KernelConfig.threads) threads, block 32, medians of \(runs)\n")
        print("| prompt tokens | TTFT cold | TTFT prefix-warm (new last question) | TTFT completion-warm | warm == cold bitwise |")
        print("|---|---|---|---|---|")
        for n in lengths.split(separator: ",").compactMap({ Int($0) }) {
            var cold: [Double] = [], prefix: [Double] = [], completion: [Double] = []
            var exact = true
            for run in 0..<runs {
                let document = Array(text[(run * 97)..<(run * 97 + n - 8)])
                let q1 = document + tokenizer.encode(" Question one: what is this?")
                let q2 = Array((document + tokenizer.encode(" Question two: who wrote it, and when?")).prefix(n))
                let c = try await once(plain, q2)
                _ = try await once(prefixOnly, q1)
                store.flush()
                let w = try await once(prefixOnly, q2)
                _ = try await once(full, q2)
                store.flush()
                let h = try await once(full, q2)
                exact = exact && c.1 == w.1 && c.2 == w.2 && c.1 == h.1 && c.2 == h.2 && h.3.completionFromCache && w.3.cachedPromptTokens > 0
                cold.append(c.0); prefix.append(w.0); completion.append(h.0)
            }
            print(String(format: "| %d | %.1f ms | %.1f ms | %.3f ms | %@ |", n, median(cold) * 1000, median(prefix) * 1000,
                         median(completion) * 1000, exact ? "yes" : "NO"))
        }
        try lookups(store, lm, text)
        await plain.shutdown(); await prefixOnly.shutdown(); await full.shutdown()
        try await writeBehind(lm, tokenizer, text)
    }

    /// Prefix lookup (keys + index + verification) and KV restore bandwidth for 1k and 4k prompts.
    func lookups(_ store: CacheStore, _ lm: LlamaModel, _ text: [TokenID]) throws {
        print("\n| prompt tokens | blocks | address chain | lookup + verify | restore into KV | restore bandwidth |")
        print("|---|---|---|---|---|---|")
        let kv = KVPool(config: lm.config, blockSize: 32, blockCount: 160)
        let profile = KernelConfig.numericsProfile(kv: .f32)
        for n in [1024, 4096] {
            let tokens = Array(text[0..<n])
            let count = (n - 1) / 32
            // Store the blocks first (the benchmark measures reads).
            let pass = ForwardPass(model: lm, kv: kv, maxTokens: 512)
            var start = 0
            while start < n {
                try pass.step((start..<min(start + 512, n)).map { BatchToken(sequence: 1, position: $0, token: tokens[$0]) })
                start += 512
            }
            let space = CacheKeySpace(model: lm.digest, profile: profile, blockSize: 32)
            let keys = space.kvChain(tokens, count: count)
            func identity(_ i: Int) -> EntryIdentity {
                space.kvIdentity(index: i, parent: i == 0 ? nil : keys[i - 1], tokens: tokens[(i * 32)..<((i + 1) * 32)])
            }
            for i in 0..<count { store.put(keys[i], identity: identity(i), payload: kv.blockBytes(of: 1, index: i)) }
            store.flush()
            kv.release(1)
            var chain: [Double] = [], lookup: [Double] = [], restore: [Double] = []
            for _ in 0..<5 {
                var t = ContinuousClock.now
                let k = space.kvChain(tokens, count: count)
                chain.append((ContinuousClock.now - t) / .seconds(1))
                let ids = (0..<count).map(identity)
                t = ContinuousClock.now
                let found = store.readChain(k, identities: ids) { _ in }
                lookup.append((ContinuousClock.now - t) / .seconds(1))
                precondition(found == count)
                t = ContinuousClock.now
                store.readChain(k, identities: ids) { payloads in try kv.restore(2, blocks: payloads) }
                restore.append((ContinuousClock.now - t) / .seconds(1))
                kv.release(2)
            }
            let bytes = Double(count * kv.memory.blockBytes)
            print(String(format: "| %d | %d | %.0f µs | %.1f ms | %.1f ms | %.1f GB/s |", n, count, median(chain) * 1e6,
                         median(lookup) * 1000, median(restore) * 1000, bytes / median(restore) / 1e9))
        }
    }

    /// Decode throughput of 4 concurrent 128-token generations, with and without the cache writing.
    func writeBehind(_ lm: LlamaModel, _ tokenizer: Tokenizer, _ text: [TokenID]) async throws {
        var results: [String: [Double]] = [:]
        for run in 0..<runs {
            for withCache in [false, true] {
                let folder = NSTemporaryDirectory() + "verbatim-bench-wb-\(getpid())-\(run)"
                defer { try? FileManager.default.removeItem(atPath: folder) }
                var c = EngineConfiguration()
                c.kvMemoryBytes = 512 << 20
                if withCache { c.cache = try CacheStore(directory: folder) }
                let e = try Engine(model: lm, tokenizer: tokenizer, configuration: c)
                let start = ContinuousClock.now
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for i in 0..<4 {
                        let prompt = Array(text[(i * 300 + run * 11)..<(i * 300 + run * 11 + 200)])
                        let s = try e.generate(.tokens(prompt), parameters: GenerateParameters(maxTokens: 128, stopAtEOS: false))
                        group.addTask { for await _ in s {} }
                    }
                    try await group.waitForAll()
                }
                let seconds = (ContinuousClock.now - start) / .seconds(1)
                await e.shutdown()
                results[withCache ? "cache" : "none", default: []].append(4 * 128 / seconds)
            }
        }
        let off = median(results["none"]!), on = median(results["cache"]!)
        print(String(format: "\nwrite-behind: 4 x 128 new tokens (200-token prompts): %.0f tok/s without cache, %.0f tok/s writing to the cache (%.1f%%)",
                     off, on, (on / off - 1) * 100))
    }
}
