import Foundation
import Testing
@testable import Verbatim
import VerbatimModel

/// The problem Verbatim exists to solve: the same request must give the same bits whatever
/// the server is doing. 200 identical requests arrive at random moments among random other
/// traffic (other prompts and lengths, sampled and greedy, some abandoned midway), with at
/// least 16 requests in flight.
@Suite("Determinism under load", .serialized)
struct DeterminismUnderLoadTests {
    static let others = [
        "Write a short poem about the sea.", "What is 17 times 23?", "List three colors.",
        "Explain photosynthesis in one sentence.", "Translate 'good morning' into French.",
        "Give me a name for a cat.", "What is the capital of Japan?", "Describe a rainy day.",
    ]

    func load(_ engine: Engine, target: GenerateParameters, identical: Int, concurrency: Int, seed: UInt64) async throws -> (completions: [Completion], peak: Int) {
        let prompt = Prompt.chat([ChatMessage(role: "user", content: "Tell me a story about a lighthouse keeper.")])
        var rng = SplitMix64(seed: seed)
        // Identical requests (true) mixed with others (false), in random order.
        var kinds = Array(repeating: true, count: identical) + Array(repeating: false, count: identical / 2)
        kinds.shuffle(using: &rng)
        let plans: [(Bool, Int, Int, UInt64)] = kinds.map { ($0, Int(rng.next() % 90) + 1, Int(rng.next() % 3), rng.next()) }
        var peak = 0
        let completions = await withTaskGroup(of: Completion?.self) { group in
            var inFlight = 0
            var results: [Completion] = []
            for (isTarget, length, style, drawSeed) in plans {
                if inFlight >= concurrency, let r = await group.next() {
                    inFlight -= 1
                    if let r { results.append(r) }
                }
                try? await Task.sleep(for: .microseconds(Int(drawSeed % 3000)))  // arrive at random moments
                inFlight += 1
                peak = max(peak, engine.stats.runningRequests + engine.stats.queuedRequests)
                group.addTask {
                    if isTarget {
                        guard let s = try? engine.generate(prompt, parameters: target) else { return Completion(reason: .cancelled) }
                        return await collect(s)
                    }
                    var p = GenerateParameters(maxTokens: length, temperature: style == 0 ? 0 : 0.9, seed: drawSeed, stopAtEOS: style != 2)
                    p.logprobs = style == 1
                    guard let s = try? engine.generate(.chat([ChatMessage(role: "user", content: Self.others[Int(drawSeed % 8)])]), parameters: p) else {
                        return nil
                    }
                    _ = await collect(s, stopAfter: style == 2 ? length / 2 + 1 : .max)   // some readers leave early
                    return nil
                }
            }
            for await r in group { if let r { results.append(r) } }
            return results
        }
        return (completions, peak)
    }

    func check(_ target: GenerateParameters, seed: UInt64) async throws {
        let engine = try realEngine { $0.kvMemoryBytes = 512 << 20; $0.maxBatchTokens = 256 }
        let prompt = Prompt.chat([ChatMessage(role: "user", content: "Tell me a story about a lighthouse keeper.")])
        let alone = await collect(try engine.generate(prompt, parameters: target))
        #expect(alone.tokens.count == 64 && alone.logprobBits.count == 64)
        let (completions, peak) = try await load(engine, target: target, identical: 200, concurrency: 24, seed: seed)
        #expect(completions.count == 200)
        let unique = Set(completions.map { [$0.tokens.map(UInt32.init(bitPattern:)), $0.logprobBits] })
        #expect(unique.count == 1, "\(unique.count) distinct completions (tokens + logprob bits) out of 200")
        // Where each deviant first leaves the request run alone: a logprob that differs while the
        // tokens so far agree points at the logits; a token that differs with equal logprobs at the sampler.
        for (n, c) in completions.enumerated() where c.tokens != alone.tokens || c.logprobBits != alone.logprobBits {
            var i = 0
            while i < c.tokens.count, i < alone.tokens.count, c.tokens[i] == alone.tokens[i],
                  i < c.logprobBits.count, i < alone.logprobBits.count, c.logprobBits[i] == alone.logprobBits[i] { i += 1 }
            let mine: String = i < c.tokens.count && i < c.logprobBits.count ? "\(c.tokens[i])/\(String(c.logprobBits[i], radix: 16))" : "end"
            let theirs: String = i < alone.tokens.count ? "\(alone.tokens[i])/\(String(alone.logprobBits[i], radix: 16))" : "end"
            print("completion \(n) first differs at step \(i) of \(c.tokens.count): token/logprob \(mine), alone \(theirs)")
        }
        #expect(completions.allSatisfy { $0.tokens == alone.tokens && $0.logprobBits == alone.logprobBits })
        #expect(peak >= 16, "concurrency reached \(peak)")
        #expect(await eventually { engine.stats.kvBlocksInUse == 0 })
        await engine.shutdown()
    }

    @Test("200 identical greedy requests under random concurrent load: 1 unique completion, logprobs bitwise equal to the request alone")
    func greedy() async throws {
        try await check(GenerateParameters(maxTokens: 64, stopAtEOS: false, logprobs: true), seed: 1)
    }

    @Test("the same at temperature 0.8 with a fixed seed")
    func seeded() async throws {
        try await check(GenerateParameters(maxTokens: 64, temperature: 0.8, seed: 1234, stopAtEOS: false, logprobs: true), seed: 2)
    }
}
