import Foundation
import Testing
@testable import Verbatim
import VerbatimCache
import VerbatimModel
import VerbatimTestSupport

func cacheFolder() -> String { NSTemporaryDirectory() + "verbatim-engine-cache-\(UInt32.random(in: 0...UInt32.max))" }

func cachedEngine(_ store: CacheStore, prefix: Bool = true, completion: Bool = true) throws -> Engine {
    try realEngine { $0.cache = store; $0.prefixCache = prefix; $0.completionCache = completion; $0.blockSize = 32 }
}

/// Runs one request and returns its completion and summary.
func run(_ engine: Engine, _ prompt: Prompt, _ p: GenerateParameters, salt: [UInt8] = [],
         shared: Int = 0) async throws -> (Completion, GenerationSummary) {
    var c = Completion()
    var summary: GenerationSummary?
    for await event in try engine.generate(prompt, parameters: p, salt: salt, sharedPrefixTokens: shared) {
        switch event {
        case .token(let t): c.tokens.append(t.id); c.text += t.text; if let l = t.logprob { c.logprobBits.append(l.bitPattern) }
        case .summary(let s): summary = s; c.reason = s.stopReason
        }
    }
    return (c, try #require(summary))
}

func storeStats(_ store: CacheStore) throws -> CacheStore.Stats { store.flush(); return try store.stats() }

@Suite("Engine with the cache (real model)", .serialized)
struct CacheEngineTests {
    static let system = """
        You are a meticulous assistant working for a library of geography and science books. \
        Answer carefully, cite the relevant facts, and keep the answer short and precise. \
        When a question is ambiguous, say which reading you chose. Prefer metric units, give \
        numbers with their sources when you know them, and never invent a citation. If the \
        reader asks for a comparison, present both sides in the same order and the same units, \
        and end with one sentence that states the answer plainly.
        """

    @Test("a prefix hit gives bitwise the logits' consequences of a cold run: same tokens and logprobs, greedy and seeded, mid-block and on a boundary")
    func prefixHits() async throws {
        let dir = cacheFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CacheStore(directory: dir)
        let engine = try cachedEngine(store, completion: false)
        let plain = try realEngine()
        let tokenizer = engine.tokenizer
        // Prompt lengths: a few below, at and above block boundaries.
        let base = try engine.tokens(of: .chat([ChatMessage(role: "system", content: Self.system), ChatMessage(role: "user", content: "Where is the Nile?")]))
        try #require(base.count > 96, "the prompt must span several blocks (\(base.count) tokens)")
        var checked = 0
        for cut in [33, 64, 65, 95, 96, base.count] where cut <= base.count {
            let prompt = Array(base.prefix(cut))
            for params in [GenerateParameters(maxTokens: 12, stopAtEOS: false, logprobs: true),
                           GenerateParameters(maxTokens: 12, temperature: 0.8, seed: 3, stopAtEOS: false, logprobs: true)] {
                let (cold, coldSummary) = try await run(plain, .tokens(prompt), params)
                #expect(coldSummary.cachedPromptTokens == 0)
                _ = try await run(engine, .tokens(prompt), params)        // fills the cache
                store.flush()
                let (warm, warmSummary) = try await run(engine, .tokens(prompt), params)
                // The first run stored every full block of prompt + 12 generated tokens; all but
                // the prompt's last token come from them (whole blocks, then the next block's rows).
                #expect(warmSummary.cachedPromptTokens == min(prompt.count - 1, (prompt.count + 12) / 32 * 32), "prompt \(prompt.count)")
                #expect(warmSummary.cachedPromptTokens > 0)
                let firstDiff = zip(warm.logprobBits, cold.logprobBits).enumerated().first { $0.element.0 != $0.element.1 }
                #expect(warm.tokens == cold.tokens && warm.logprobBits == cold.logprobBits,
                        "prompt of \(cut) tokens, T=\(params.temperature): logprob \(firstDiff.map { "\($0.offset): \(Float(bitPattern: $0.element.0)) vs \(Float(bitPattern: $0.element.1))" } ?? "-")")
                checked += 1
            }
        }
        #expect(checked >= 10)
        // A different question after the same system prompt reuses the shared blocks.
        let other = try engine.tokens(of: .chat([ChatMessage(role: "system", content: Self.system), ChatMessage(role: "user", content: "How tall is Everest?")]))
        let (_, s) = try await run(engine, .tokens(other), GenerateParameters(maxTokens: 4))
        #expect(s.cachedPromptTokens >= 32)
        _ = tokenizer
        await engine.shutdown(); await plain.shutdown()
        let stats = try storeStats(store)
        #expect(stats.kvBlocks > 0 && (stats.counters["hits.prefix_tokens"] ?? 0) > 0)
    }

    @Test("a new question after the same document reuses the document up to where the prompts part, mid-block, with the bits of a cold run")
    func newQuestion() async throws {
        let dir = cacheFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CacheStore(directory: dir)
        let engine = try cachedEngine(store, completion: false)
        let plain = try realEngine()
        let document = engine.tokenizer.encode(Self.system + " " + Self.system)
        let first = engine.tokenizer.encode(" Question one: which units should the answer use, and why?")
        let second = engine.tokenizer.encode(" Question two: what ends every comparison?")
        var checked = 0
        for cut in [40, 77, 100, 125] {
            let q1 = Array(document.prefix(cut)) + first, q2 = Array(document.prefix(cut)) + second
            let shared = zip(q1, q2).prefix { $0.0 == $0.1 }.count
            try #require(shared >= cut && shared % 32 != 0 && shared < q2.count - 1)
            // The first request stores every full block of its prompt and 40 generated tokens,
            // so the block where the prompts part is stored.
            _ = try await run(engine, .tokens(q1), GenerateParameters(maxTokens: 40, stopAtEOS: false))
            store.flush()
            for params in [GenerateParameters(maxTokens: 10, stopAtEOS: false, logprobs: true),
                           GenerateParameters(maxTokens: 10, temperature: 0.8, seed: 5, stopAtEOS: false, logprobs: true)] {
                let (cold, _) = try await run(plain, .tokens(q2), params)
                let (warm, summary) = try await run(engine, .tokens(q2), params)
                // The greedy run finds the first request's blocks; the seeded one also its own blocks.
                #expect(params.temperature == 0 ? summary.cachedPromptTokens == shared : summary.cachedPromptTokens >= shared,
                        "document of \(cut) tokens: \(shared) shared, \(summary.cachedPromptTokens) cached")
                #expect(warm.tokens == cold.tokens && warm.logprobBits == cold.logprobBits,
                        "document of \(cut) tokens, T=\(params.temperature): \(zip(warm.logprobBits, cold.logprobBits).filter { $0 != $1 }.count) logprobs differ")
                checked += 1
            }
        }
        #expect(checked == 8)
        await engine.shutdown(); await plain.shutdown()
        #expect((try storeStats(store).counters["hits.partial_blocks"] ?? 0) >= 8)
    }

    @Test("a completion hit returns the same tokens and logprobs; shorter maxTokens is a prefix, longer continues exactly")
    func completionHits() async throws {
        let dir = cacheFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CacheStore(directory: dir)
        let engine = try cachedEngine(store)
        let plain = try realEngine()
        let prompt = Prompt.chat([ChatMessage(role: "user", content: "Write two sentences about lighthouses.")])
        for temperature: Float in [0, 0.8] {
            func p(_ n: Int) -> GenerateParameters { GenerateParameters(maxTokens: n, temperature: temperature, seed: 9, stopAtEOS: false, logprobs: true) }
            let (cold20, s0) = try await run(engine, prompt, p(20))
            #expect(!s0.completionFromCache)
            store.flush()
            let (hit, s1) = try await run(engine, prompt, p(20))
            #expect(s1.completionFromCache && s1.cachedPromptTokens == s1.promptTokens)
            #expect(hit.tokens == cold20.tokens && hit.logprobBits == cold20.logprobBits && hit.text == cold20.text)
            let (short, s2) = try await run(engine, prompt, p(7))
            #expect(s2.completionFromCache && short.tokens == Array(cold20.tokens.prefix(7)) && s2.stopReason == .length)
            let (long, s3) = try await run(engine, prompt, p(35))
            let (reference, _) = try await run(plain, prompt, p(35))
            #expect(!s3.completionFromCache)
            #expect(long.tokens == reference.tokens && long.logprobBits == reference.logprobBits, "continuation at T=\(temperature)")
            store.flush()
            let (longHit, s4) = try await run(engine, prompt, p(35))
            #expect(s4.completionFromCache && longHit.tokens == reference.tokens)
        }
        await engine.shutdown(); await plain.shutdown()
        let stats = try storeStats(store)
        #expect(stats.completions == 2 && (stats.counters["hits.completions"] ?? 0) >= 6)
    }

    @Test("two models never share an entry: a tiny LLaMA and a tiny Gemma 3 with the same vocabulary, one cache folder, the same prompt")
    func modelsNeverShare() async throws {
        let dir = cacheFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CacheStore(directory: dir)
        var gemma = TinyModel(); gemma.architecture = .gemma3; gemma.headDim = 32; gemma.layers = 6; gemma.kvHeads = 1
        let files = [try tinyFile.get(), try GGUFFile(data: gemma.generate())]
        func engine(_ file: GGUFFile, cache: CacheStore?) throws -> Engine {
            var c = EngineConfiguration()
            c.kvMemoryBytes = 16 << 20; c.blockSize = 16; c.cache = cache
            return try Engine(model: LlamaModel(file: file), tokenizer: Tokenizer(file: file), configuration: c)
        }
        #expect(files[0].modelDigest() != files[1].modelDigest())
        let prompt = Prompt.text(String(repeating: "The same prompt for both models. ", count: 4))
        let p = GenerateParameters(maxTokens: 6, stopAtEOS: false, logprobs: true)
        let llama = try engine(files[0], cache: store)
        let (llamaFirst, _) = try await run(llama, prompt, p)
        store.flush()
        let (_, llamaAgain) = try await run(llama, prompt, p)
        #expect(llamaAgain.completionFromCache, "caching is on: the first model hits its own entry")
        await llama.shutdown()
        let gemmaEngine = try engine(files[1], cache: store)
        let (fromStore, summary) = try await run(gemmaEngine, prompt, p)
        #expect(summary.cachedPromptTokens == 0 && !summary.completionFromCache, "the second model found the first one's entry")
        await gemmaEngine.shutdown()
        let cold = try engine(files[1], cache: nil)
        let (coldRun, _) = try await run(cold, prompt, p)
        await cold.shutdown()
        #expect(fromStore == coldRun, "Gemma 3 with the shared folder computes exactly its own cold result")
        #expect(fromStore != llamaFirst)
    }

    @Test("tenants with different salts never share an entry; the same tenant does")
    func salts() async throws {
        let dir = cacheFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CacheStore(directory: dir)
        let engine = try cachedEngine(store)
        let prompt = Prompt.chat([ChatMessage(role: "system", content: Self.system), ChatMessage(role: "user", content: "A secret question about tea.")])
        let p = GenerateParameters(maxTokens: 8)
        _ = try await run(engine, prompt, p, salt: Array("tenant-a".utf8))
        store.flush()
        let (_, b) = try await run(engine, prompt, p, salt: Array("tenant-b".utf8))
        #expect(b.cachedPromptTokens == 0 && !b.completionFromCache)
        let (_, none) = try await run(engine, prompt, p)
        #expect(none.cachedPromptTokens == 0 && !none.completionFromCache)
        let (_, a) = try await run(engine, prompt, p, salt: Array("tenant-a".utf8))
        #expect(a.completionFromCache)   // caching was on: tenant A hits its own entry
        await engine.shutdown()
    }

    @Test("a shared prefix is reused across tenants, only its whole blocks, with the same bits; what follows stays private")
    func sharedPrefix() async throws {
        let dir = cacheFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CacheStore(directory: dir)
        let engine = try cachedEngine(store)
        let system = ChatMessage(role: "system", content: Self.system)
        let question = ChatMessage(role: "user", content: "Which is longer, the Danube or the Rhine, and by how much? Answer in kilometres, "
                                   + "and say where each river begins and where it reaches the sea. Then list the capitals each one flows through, "
                                   + "in order from the source, and name the longest tributary of each with its length.")
        let prompt = Prompt.chat([system, question])
        let tokens = try engine.tokens(of: prompt)
        let other = try engine.tokens(of: .chat([system, ChatMessage(role: "user", content: "B")]))
        let shared = zip(tokens, other).prefix { $0.0 == $0.1 }.count
        let sharedBlocks = shared / 32
        try #require(sharedBlocks >= 2 && tokens.count / 32 > sharedBlocks + 1, "the test needs private blocks after the shared ones")
        let p = GenerateParameters(maxTokens: 8, logprobs: true)
        let (a, aCold) = try await run(engine, prompt, p, salt: Array("tenant-a".utf8), shared: shared)
        store.flush()
        let (b, bFirst) = try await run(engine, prompt, p, salt: Array("tenant-b".utf8), shared: shared)
        #expect(bFirst.cachedPromptTokens == sharedBlocks * 32 && !bFirst.completionFromCache,
                "B reuses exactly the shared blocks, not A's private ones or A's completion")
        #expect(aCold.cachedPromptTokens == 0)
        #expect(b.tokens == a.tokens && b.logprobBits == a.logprobBits, "a shared-prefix hit gives the same bits")
        store.flush()
        let (_, aAgain) = try await run(engine, prompt, p, salt: Array("tenant-a".utf8), shared: shared)
        #expect(aAgain.completionFromCache)
        // Without the declaration a tenant's chain is private from its root: no hit on the public blocks.
        let (_, c) = try await run(engine, prompt, GenerateParameters(maxTokens: 4), salt: Array("tenant-c".utf8))
        #expect(c.cachedPromptTokens == 0)
        await engine.shutdown()
    }

    @Test("two engines with their own folders and one shared tier: B gets A's prefix and completion, bitwise; a dead tier only costs hits")
    func sharedTier() async throws {
        let tier = MemoryTier()
        func engine(_ folder: String) throws -> (Engine, CacheStore) {
            var options = CacheOptions()
            options.sharedTier = tier
            let store = try CacheStore(directory: folder, options: options)
            return (try cachedEngine(store), store)
        }
        let folderA = cacheFolder(), folderB = cacheFolder(), folderC = cacheFolder()
        defer { for f in [folderA, folderB, folderC] { try? FileManager.default.removeItem(atPath: f) } }
        let (a, storeA) = try engine(folderA)
        let (b, storeB) = try engine(folderB)
        let system = ChatMessage(role: "system", content: Self.system)
        let first = Prompt.chat([system, ChatMessage(role: "user", content: "How long is the Rhine?")])
        let second = Prompt.chat([system, ChatMessage(role: "user", content: "How long is the Danube?")])
        let p = GenerateParameters(maxTokens: 10, logprobs: true)
        let (cold, coldSummary) = try await run(a, first, p)
        let (reference, _) = try await run(a, second, p)
        storeA.flush()
        #expect(coldSummary.cachedPromptTokens == 0)
        let (fromTier, s1) = try await run(b, first, p)
        #expect(s1.completionFromCache && fromTier.tokens == cold.tokens && fromTier.logprobBits == cold.logprobBits)
        let (prefixed, s2) = try await run(b, second, GenerateParameters(maxTokens: 10, stopStrings: ["\n\n\n"], logprobs: true))
        #expect(s2.cachedPromptTokens > 0 && !s2.completionFromCache, "another sampling identity: a prefix hit from the tier")
        #expect(prefixed.tokens == reference.tokens && prefixed.logprobBits == reference.logprobBits)
        #expect((try storeStats(storeB).counters["tier.memory.entries_hit"] ?? 0) > 0)
        // The tier goes away: a third node computes everything itself, with the same bits.
        tier.setDown(true)
        let (c, storeC) = try engine(folderC)
        let (alone, s3) = try await run(c, first, p)
        #expect(s3.cachedPromptTokens == 0 && alone.tokens == cold.tokens && alone.logprobBits == cold.logprobBits)
        await a.shutdown(); await b.shutdown(); await c.shutdown()
        #expect(try storeStats(storeC).counters["tier.memory.read_errors"] == 1)
    }

    @Test("with a full cache map the engine keeps serving, computes everything, and the failure shows in the stats")
    func fullMapKeepsServing() async throws {
        let dir = cacheFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = CacheOptions()
        options.mapSize = 256 << 10     // too small for a single 1.4 MiB KV block
        let store = try CacheStore(directory: dir, options: options)
        let engine = try cachedEngine(store)
        let plain = try realEngine()
        let prompt = Prompt.chat([ChatMessage(role: "system", content: Self.system), ChatMessage(role: "user", content: "Name a planet.")])
        let p = GenerateParameters(maxTokens: 10, logprobs: true)
        let (first, _) = try await run(engine, prompt, p)
        store.flush()
        let (second, _) = try await run(engine, prompt, p)
        let (reference, _) = try await run(plain, prompt, p)
        #expect(first.tokens == reference.tokens && second.tokens == reference.tokens && second.logprobBits == reference.logprobBits)
        store.flush()
        #expect(store.writeFailure != nil)
        await engine.shutdown(); await plain.shutdown()
    }
}
