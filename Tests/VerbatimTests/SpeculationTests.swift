import Foundation
import Testing
@testable import Verbatim
import VerbatimCache
import VerbatimModel

/// Speculation (prompt-lookup drafts, `EngineConfiguration.draftTokens`) decides how many tokens
/// a step emits, never which: every output bit equals the run without drafts.
@Suite("Speculation", .serialized)
struct SpeculationTests {
    @Test("a draft is what followed the most recent earlier occurrence of the last 3 tokens, else of the last 2, within the window; none without one")
    func lookup() {
        // Tail [7, 8, 9]: it occurs at 1...3 (followed by 4, 5) and at 6...8 (followed by 1, 2): the later one wins.
        #expect(PromptLookup.draft(prompt: [0, 7, 8, 9, 4, 5, 7, 8, 9, 1, 2], generated: [3, 7, 8, 9], limit: 2) == [1, 2])
        // The limit cuts the draft; what follows may run up to the end of the text.
        #expect(PromptLookup.draft(prompt: [1, 2, 3, 4, 5], generated: [1, 2, 3], limit: 9) == [4, 5, 1, 2, 3])
        #expect(PromptLookup.draft(prompt: [1, 2, 3, 4, 5], generated: [1, 2, 3], limit: 1) == [4])
        // No earlier [6, 2, 3]: the 2-token tail [2, 3] is looked up instead.
        #expect(PromptLookup.draft(prompt: [1, 2, 3, 4], generated: [6, 2, 3], limit: 2) == [4, 6])
        // Neither tail occurs earlier; a limit of zero asks for nothing.
        #expect(PromptLookup.draft(prompt: [1, 2, 3], generated: [4, 5], limit: 4).isEmpty)
        #expect(PromptLookup.draft(prompt: [1, 2, 3, 1, 2], generated: [], limit: 0).isEmpty)
        // Too short a text to have a tail and an earlier occurrence.
        #expect(PromptLookup.draft(prompt: [1], generated: [], limit: 4).isEmpty)
        // An older 3-token match goes before a more recent 2-token one.
        #expect(PromptLookup.draft(prompt: [5, 1, 2, 3, 9, 7, 2, 3, 8], generated: [1, 2, 3], limit: 1) == [9])
        // Only the last `searchWindow` tokens are searched.
        let near = [1, 2, 3, 4] + Array(repeating: TokenID(0), count: PromptLookup.searchWindow - 100)
        let far = [1, 2, 3, 4] + Array(repeating: TokenID(0), count: PromptLookup.searchWindow + 100)
        #expect(PromptLookup.draft(prompt: near, generated: [1, 2, 3], limit: 1) == [4])
        #expect(PromptLookup.draft(prompt: far, generated: [1, 2, 3], limit: 1).isEmpty)
    }

    /// Prompts that invite copying (drafts are often right) and one that does not.
    static let prompts: [String] = [
        "Repeat this list exactly: red apple, green pear, yellow lemon, red apple, green pear, yellow lemon, red apple,",
        "Copy the sentence: The keeper climbed the stairs to light the lamp again. The keeper climbed the stairs to",
        "def add(a, b):\n    return a + b\n\ndef add(a, b):\n    return a + b\n\ndef add(",
        "Name three rivers of Africa.",
    ]

    static func parameters(_ i: Int) -> GenerateParameters {
        i % 2 == 0 ? GenerateParameters(maxTokens: 24, stopAtEOS: false, logprobs: true)
            : GenerateParameters(maxTokens: 24, temperature: 0.8, seed: UInt64(40 + i), stopAtEOS: false, logprobs: true)
    }

    @Test("with drafts every request gets the bits it gets without them, greedy and sampled, alone and together; drafts were accepted and rejected")
    func sameBits() async throws {
        let plain = try realEngine { $0.maxBatchTokens = 48 }
        var reference: [Completion] = []
        for (i, p) in Self.prompts.enumerated() { reference.append(await collect(try plain.generate(.text(p), parameters: Self.parameters(i)))) }
        await plain.shutdown()
        #expect(reference.allSatisfy { $0.tokens.count == 24 && $0.logprobBits.count == 24 })

        for draftTokens in [1, 4, 16] {
            let engine = try realEngine { $0.maxBatchTokens = 48; $0.draftTokens = draftTokens }
            var alone: [Completion] = []
            for (i, p) in Self.prompts.enumerated() { alone.append(await collect(try engine.generate(.text(p), parameters: Self.parameters(i)))) }
            let together = await withTaskGroup(of: (Int, Completion).self) { group in
                for (i, p) in Self.prompts.enumerated() {
                    group.addTask { (i, await collect(try! engine.generate(.text(p), parameters: Self.parameters(i)))) }
                }
                return await group.reduce(into: [Int: Completion]()) { $0[$1.0] = $1.1 }
            }
            let differAlone = Self.prompts.indices.filter { alone[$0] != reference[$0] }
            let differTogether = Self.prompts.indices.filter { together[$0] != reference[$0] }
            #expect(differAlone.isEmpty, "\(draftTokens) draft tokens: requests \(differAlone) alone differ from the run without drafts")
            #expect(differTogether.isEmpty, "\(draftTokens) draft tokens: requests \(differTogether) together differ from the run without drafts")
            let stats = engine.stats
            #expect(stats.draftTokensAccepted > 0, "\(draftTokens) draft tokens: none accepted (\(stats.draftTokensChecked) checked)")
            #expect(stats.draftTokensChecked > stats.draftTokensAccepted, "\(draftTokens) draft tokens: none rejected")
            await engine.shutdown()
        }
    }

    @Test("the prefix cache keeps only KV of tokens the model chose: a prompt extending a drafted completion restores it and gets a cold run's bits")
    func cacheAfterDrafts() async throws {
        let dir = cacheFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CacheStore(directory: dir)
        let engine = try realEngine { $0.cache = store; $0.completionCache = false; $0.blockSize = 32; $0.draftTokens = 8 }
        let plain = try realEngine()
        let first = try engine.tokens(of: .text(Self.prompts[1]))
        // The last generated token ends a block, so the finished request stores that block: if
        // its last token came from a row after a rejected draft, the rows past it hold void KV
        // (written for the draft), and only the forgotten length keeps that out of the cache.
        // Sampled, with several seeds, so that drafts are rejected at the end too.
        let maxTokens = 64 - first.count % 32
        var restored = 0
        for seed in UInt64(1)...10 {
            let (drafted, _) = try await run(engine, .tokens(first), GenerateParameters(maxTokens: maxTokens, temperature: 0.8, seed: seed, stopAtEOS: false))
            try #require(drafted.tokens.count == maxTokens && (first.count + maxTokens) % 32 == 0)
            store.flush()
            let follow = first + drafted.tokens + (try engine.tokens(of: .text(" And again:")))
            let params = GenerateParameters(maxTokens: 8, stopAtEOS: false, logprobs: true)
            let (warm, warmSummary) = try await run(engine, .tokens(follow), params)
            let (cold, _) = try await run(plain, .tokens(follow), params)
            // Every block but the last (whose last token's KV, as in a decode without drafts, is
            // written only if that token was itself a draft the model chose).
            restored += warmSummary.cachedPromptTokens >= first.count + maxTokens - 32 ? 1 : 0
            #expect(warm == cold, "seed \(seed): a prompt restored from a drafted run differs from a cold run")
        }
        #expect(restored == 10, "the drafted completions' blocks were restored for \(restored) of 10 follow-ups")
        #expect(engine.stats.draftTokensChecked > engine.stats.draftTokensAccepted && engine.stats.draftTokensAccepted > 0)
        await engine.shutdown()
        await plain.shutdown()
    }

    @Test("with drafts the prefix cache holds exactly the entries of a run without them, whatever the last token was")
    func sameCacheEntries() async throws {
        var stats: [CacheStore.Stats] = []
        for draftTokens in [0, 8] {
            let dir = cacheFolder()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let store = try CacheStore(directory: dir)
            let engine = try realEngine { $0.cache = store; $0.completionCache = false; $0.blockSize = 16; $0.draftTokens = draftTokens }
            // Greedy copying: most tokens come from accepted drafts, the last one included at
            // some of these lengths (16 of them: every place of the last token in a block).
            for maxTokens in 9...24 {
                _ = try await run(engine, .text(Self.prompts[0]), GenerateParameters(maxTokens: maxTokens, stopAtEOS: false))
            }
            // Stopping at a stop token that came in as a draft: its KV was written (a draft row
            // took it as input), which a run without drafts never does. Lead-ins of 0 to 15
            // words put it at every place in a block.
            let lemon = try #require(try engine.tokens(of: .text(" lemon")).last)
            var stopped = 0
            for lead in 0..<16 {
                let prompt = String(repeating: "please ", count: lead) + Self.prompts[0]
                let (c, _) = try await run(engine, .text(prompt), GenerateParameters(maxTokens: 40, stopTokens: [lemon], stopAtEOS: false))
                stopped += c.reason == .stop && c.tokens.last == lemon ? 1 : 0
            }
            #expect(stopped >= 12, "\(stopped) of 16 requests stopped at the stop token")
            stats.append(try storeStats(store))
            if draftTokens > 0 { #expect(engine.stats.draftTokensAccepted > 16) }
            await engine.shutdown()
        }
        #expect(stats[0].kvBlocks > 0)
        #expect(stats[1].kvBlocks == stats[0].kvBlocks && stats[1].payloadBytes == stats[0].payloadBytes,
                "KV blocks with drafts \(stats[1].kvBlocks), without \(stats[0].kvBlocks)")
    }

    @Test("a consumer that stops reading gets at most the stream capacity, drafts or not")
    func backpressure() async throws {
        let engine = try realEngine { $0.streamBufferCapacity = 4; $0.draftTokens = 16 }
        let stream = try engine.generate(.text(Self.prompts[0]), parameters: GenerateParameters(maxTokens: 100, stopAtEOS: false))
        // The prompt's step, then steps until the consumer's 4 places are taken (drafts fill
        // them fast: the first decode step may already do it).
        #expect(await eventually { engine.stats.steps >= 2 })
        try await Task.sleep(for: .milliseconds(300))
        let paused = engine.stats.steps
        try await Task.sleep(for: .milliseconds(200))
        #expect(engine.stats.steps == paused, "steps ran while nobody read")
        #expect(stream.lifetime.channel.room >= 0, "\(4 - stream.lifetime.channel.room) unread events, capacity 4")
        #expect(engine.stats.draftTokensAccepted > 0)
        let all = await collect(stream)
        #expect(all.tokens.count == 100 && all.reason == .length)
        await engine.shutdown()
    }

    @Test("a negative draftTokens is refused")
    func invalid() throws {
        #expect(throws: EngineError.self) { try tinyEngine { $0.draftTokens = -1 } }
    }
}
