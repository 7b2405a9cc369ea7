import Verbatim

// swift run -c release --package-path Examples Chat [MODEL.gguf] [CACHE-FOLDER]
let arguments = CommandLine.arguments
let modelPath = arguments.count > 1 ? arguments[1] : "models/SmolLM2-135M-Instruct.Q4_1.gguf"
var configuration = EngineConfiguration()
if arguments.count > 2 { configuration.cache = try CacheStore(directory: arguments[2]) }   // LMDB, created if missing
let engine = try Engine(modelPath: modelPath, configuration: configuration)

let prompt = Prompt.chat([ChatMessage(role: .user, content: "Name three rivers in Europe.")])   // the model's own template
let parameters = GenerateParameters(maxTokens: 48, temperature: 0.7, seed: 42, logprobs: true)
var generated: [TokenID] = []
var streamed: [Float] = []
// A tenant's cache entries are kept away from every other tenant's.
for await event in try engine.generate(prompt, parameters: parameters, tenant: "acme") {
    switch event {
    case .token(let token):
        print(token.text, terminator: "")   // never half a UTF-8 character
        generated.append(token.id)
        streamed.append(token.logprob ?? .nan)
    case .summary(let summary):
        print("\n\(summary.stopReason), \(summary.generatedTokens) tokens, seed \(summary.seed.map(String.init) ?? "none (greedy)"), "
              + "\(summary.cachedPromptTokens) prompt tokens from the cache")
    }
}
// Scoring the same tokens gives the streamed log-probabilities, bit for bit.
let promptTokens = try engine.tokens(of: prompt, parameters: parameters)
let scored = try await engine.score(promptTokens + generated).suffix(generated.count)
print("scored equals streamed:", zip(scored, streamed).allSatisfy { $0?.bitPattern == $1.bitPattern })
await engine.shutdown()
