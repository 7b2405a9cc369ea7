import Foundation
import Testing
@testable import Verbatim   // the common path needs this import alone (@testable only to read the prefixes' token count)

/// The embedding API as a service uses it: load, respond, tenants, scoring a continuation, Codable values.
@Suite("Embedding API", .serialized)
struct EmbeddingAPITests {
    @Test("load off the caller's thread; respond gathers exactly what the stream gives; a tenant's answer is cached for that tenant only")
    func respondAndTenants() async throws {
        let folder = NSTemporaryDirectory() + "verbatim-embedding-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var configuration = EngineConfiguration()
        configuration.kvMemoryBytes = 128 << 20
        configuration.cache = try CacheStore(directory: folder)
        let engine = try await Engine.load(modelPath: try realModelPath(), configuration: configuration)
        let prompt = Prompt.text("The capital of France is")
        let parameters = GenerateParameters(maxTokens: 8, temperature: 0, logprobs: true)
        let answer = try await engine.respond(to: prompt, parameters: parameters, tenant: "acme")
        var streamed: [GeneratedToken] = []
        for await event in try engine.generate(prompt, parameters: parameters, tenant: "acme") {
            if case .token(let t) = event { streamed.append(t) }
        }
        #expect(answer.tokens == streamed && answer.tokens.count == 8)
        #expect(answer.text == streamed.map(\.text).joined())
        #expect(answer.summary?.stopReason == .length && answer.summary?.failure == nil)
        await configuration.cache?.flushed()
        let again = try await engine.respond(to: prompt, parameters: parameters, tenant: "acme")
        let other = try await engine.respond(to: prompt, parameters: parameters, tenant: "globex")
        #expect(again.summary?.completionFromCache == true, "the same tenant hits its own completion")
        #expect(other.summary?.completionFromCache == false && other.summary?.cachedPromptTokens == 0, "another tenant never sees it")
        #expect(again.tokens == answer.tokens && other.tokens == answer.tokens)
        await engine.shutdown()
    }

    @Test("shared prefixes declared in the configuration: another tenant reuses the public system prompt's whole blocks, never the private rest")
    func sharedPrefixesInConfiguration() async throws {
        let folder = NSTemporaryDirectory() + "verbatim-embedding-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let system = "You are the keeper of an old lighthouse on a rocky island. You answer questions about the sea, ships, "
            + "storms and the lamp, in short and friendly sentences, and you never make up facts you are not sure of."
        var configuration = EngineConfiguration()
        configuration.kvMemoryBytes = 128 << 20
        configuration.blockSize = 32
        configuration.cache = try CacheStore(directory: folder)
        configuration.sharedPrefixes = [.system(system)]
        let engine = try await Engine.load(modelPath: try realModelPath(), configuration: configuration)
        func ask(_ tenant: String, _ question: String) async throws -> GenerationSummary? {
            let prompt = Prompt.chat([ChatMessage(role: .system, content: system), ChatMessage(role: .user, content: question)])
            return try await engine.respond(to: prompt, parameters: GenerateParameters(maxTokens: 2), tenant: tenant).summary
        }
        let shared = engine.sharedPrefixes.tokens.first?.count ?? 0
        #expect(shared >= 32, "the system prompt covers \(shared) tokens")
        _ = try await ask("acme", "How tall is the tower?")
        await configuration.cache?.flushed()
        let other = try await ask("globex", "What do you do in a storm?")
        #expect(other?.cachedPromptTokens == shared / 32 * 32, "globex reused \(other?.cachedPromptTokens ?? -1) of \(shared) shared tokens")
        await engine.shutdown()
    }

    @Test("score(prompt:continuation:) gives the logprobs streamed while generating that continuation, bit for bit")
    func scoreContinuation() async throws {
        let engine = try realEngine()
        let prompt = Prompt.text("Once upon a time")
        let answer = try await engine.respond(to: prompt, parameters: GenerateParameters(maxTokens: 12, temperature: 0.7, seed: 5, logprobs: true))
        // The continuation, tokenized on its own, is the generated tokens (so the two must agree).
        try #require(engine.tokenizer.encode(answer.text, addBOS: false) == answer.tokens.map(\.id))
        let scored = try await engine.score(prompt: prompt, continuation: answer.text)
        #expect(scored.map(\.bitPattern) == answer.tokens.compactMap { $0.logprob?.bitPattern })
        await engine.shutdown()
    }

    @Test("parameters, summaries and errors round-trip through JSON")
    func codable() throws {
        var parameters = GenerateParameters(maxTokens: 33, temperature: 0.5, topK: 7, topP: 0.9, minP: 0.05, seed: 99)
        parameters.stopStrings = ["\n\n"]
        parameters.stopTokens = [2]
        parameters.logprobs = true
        parameters.topLogprobs = 3
        let decoded = try JSONDecoder().decode(GenerateParameters.self, from: JSONEncoder().encode(parameters))
        #expect(decoded == parameters)
        let summary = GenerationSummary(promptTokens: 5, cachedPromptTokens: 4, generatedTokens: 3, completionFromCache: false,
                                        timeToFirstToken: .milliseconds(12), totalTime: .milliseconds(40), stopReason: .failed, seed: 7,
                                        failure: EngineError(.invalidPrompt, "forward step failed"))
        #expect(try JSONDecoder().decode(GenerationSummary.self, from: JSONEncoder().encode(summary)) == summary)
    }
}
