import Foundation
import Testing
import VerbatimKernels
@testable import VerbatimModel

/// One case of Data/tokenizer-*.json: ids from llama.cpp's own `llama-tokenize`
/// (scripts/reference/make_llama_tokenize_expectations.py).
struct LlamaTokenizeCase: Decodable {
    let text: String
    let special: Bool
    let ids: [TokenID]

    static func load(_ name: String) throws -> [LlamaTokenizeCase] {
        let url = try #require(Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Data"))
        return try JSONDecoder().decode([LlamaTokenizeCase].self, from: Data(contentsOf: url))
    }

    /// How many cases `tokenizer` encodes differently from llama.cpp; records each one.
    static func mismatches(_ tokenizer: Tokenizer, _ cases: [LlamaTokenizeCase], _ label: String,
                           sourceLocation: SourceLocation = #_sourceLocation) -> Int {
        var count = 0
        for c in cases {
            let ids = tokenizer.encode(c.text, parseSpecial: c.special)
            guard ids != c.ids else { continue }
            count += 1
            Issue.record("\(label) \(c.text.debugDescription) special=\(c.special): got \(ids), llama.cpp \(c.ids)", sourceLocation: sourceLocation)
        }
        return count
    }
}

/// The second real model, Gemma 3 270M Q4_K_M (gemma3 architecture, K-quants, SentencePiece):
/// tokenizer against llama.cpp, invariance with fewer cases, and accuracy against Double.
@Suite("Gemma 3 270M (real model)", .serialized)
struct GemmaModelTests {
    static let model: Result<LlamaModel, any Error> = Result { try LlamaModel(file: gemmaModel.get()) }

    /// About 640 tokens: longer than the 512-token sliding window.
    static let longText = String(repeating: "Deterministic inference means that the same input gives the same bits, "
        + "whatever else the server is doing at the time. Caches, tests and audits depend on it. ", count: 20)
    static let prompts: [String] = [
        "The capital of France is", "def fibonacci(n):\n    ", "1, 2, 3, 4, 5,", "Once upon a time, in a small village,",
        "The mitochondria is the", "import numpy as np\n", "Q: What is 12 times 12?\nA:", "Les chats sont",
        longText, "Summary of the text above: " + longText,
    ]

    @Test("SentencePiece ids equal llama.cpp's for 97 tricky strings, with and without special tokens (Gemma 3); BPE too (SmolLM2)")
    func tokenizerMatchesLlamaCpp() throws {
        for (name, file) in [("tokenizer-gemma3", try gemmaModel.get()), ("tokenizer-smollm2", try realModel.get())] {
            let cases = try LlamaTokenizeCase.load(name)
            #expect(cases.count >= 128)
            #expect(LlamaTokenizeCase.mismatches(try Tokenizer(file: file), cases, name) == 0, "\(name)")
        }
    }

    @Test("BPE pre-tokenizers llama-bpe, qwen2 and deepseek-r1-qwen give llama.cpp's ids (SmolLM2's vocabulary, 194 cases each)",
          arguments: ["llama-bpe", "qwen2", "deepseek-r1-qwen"])
    func preTokenizersMatchLlamaCpp(pre: String) throws {
        // SmolLM2's file with tokenizer.ggml.pre replaced, as the script that made the data did.
        let base = try realModel.get()
        var w = GGUFWriter()
        for e in base.metadataEntries { w.set(e.key, e.key == "tokenizer.ggml.pre" ? .string(pre) : e.value) }
        let tokenizer = try Tokenizer(file: GGUFFile(data: w.serialized()))
        #expect(tokenizer.preTokenizer.rawValue == pre)
        #expect(LlamaTokenizeCase.mismatches(tokenizer, try LlamaTokenizeCase.load("tokenizer-pre-\(pre)"), pre) == 0)
    }

    @Test("decoding gives back the text (spaces, byte fallback, newlines)")
    func decodeRoundTrip() throws {
        let tokenizer = try Tokenizer(file: gemmaModel.get())
        #expect(tokenizer.model == .sentencePiece && tokenizer.count == 262_144 && tokenizer.addBOS && !tokenizer.addSpacePrefix)
        for text in ["Hello  world\n\tfoo", "日本語 🧬 \u{10FFFF}", "e\u{301} naïve", "  leading", "x\r\ny"] {
            let ids = tokenizer.encode(text, addBOS: false)
            #expect(try tokenizer.decode(ids) == text, "\(text.debugDescription): \(ids)")
        }
    }

    @Test("logits identical alone, among companions, chunked (also across the 512-token window), on 1-3 threads and every ISA")
    func invariance() throws {
        let model = try Self.model.get()
        #expect(model.config.architecture == .gemma3 && model.config.slidingWindow == 512)
        let tokenizer = try Tokenizer(file: model.file)
        var rng = SplitMix64(seed: 71)
        let long = tokenizer.encode(Self.longText)
        #expect(long.count > 600)
        let alone = try allLogits(makePass(model, maxTokens: 700), long, chunk: long.count)
        for chunk in [64, 100, 512] {
            let logits = try allLogits(makePass(model, maxTokens: 700), long, chunk: chunk)
            for p in long.indices { expectBitwiseEqual(logits[p], alone[p], "long prompt, chunk \(chunk), position \(p)") }
        }
        let target = tokenizer.encode(Self.prompts[3])
        let short = try allLogits(makePass(model), target, chunk: target.count)
        let companions = (0..<6).map { tokenizer.encode(Self.prompts[$0] + " and so on") }
        let mixed = try mixedRun(makePass(model), target: target, companions: companions, maxChunk: 5, &rng)
        for p in target.indices { expectBitwiseEqual(mixed[p], short[p], "among companions, position \(p)") }
        let savedISA = KernelConfig.isa, savedThreads = KernelConfig.threads
        defer { KernelConfig.setISA(savedISA); KernelConfig.setThreads(savedThreads) }
        for isa in KernelConfig.supportedISAs {
            for threads in [1, 3] where isa != .portable || threads == 1 {
                KernelConfig.setISA(isa); KernelConfig.setThreads(threads)
                let logits = try allLogits(makePass(model), target, chunk: 3)
                for p in target.indices { expectBitwiseEqual(logits[p], short[p], "\(isa), \(threads) threads, position \(p)") }
            }
        }
    }

    @Test("a restored prefix of 576 positions (beyond the window) continues bit for bit like a cold run")
    func prefixBeyondWindow() throws {
        let model = try Self.model.get()
        let tokens = try Tokenizer(file: model.file).encode(Self.longText)
        let cold = makePass(model, blockSize: 64, maxTokens: 700)
        let expected = try allLogits(cold, tokens, chunk: 128)
        let saved = (0..<9).map { Array(cold.kv.blockBytes(of: 0, index: $0)) } // 576 positions
        let warm = makePass(model, blockSize: 64, maxTokens: 700)
        try withByteViews(saved) { try warm.kv.restore(1, blocks: $0) }
        var rest: [[Float]] = []
        try warm.step((576..<tokens.count).map { BatchToken(sequence: 1, position: $0, token: tokens[$0], wantsLogits: true) }) { _, l in rest.append(Array(l)) }
        for (i, p) in (576..<tokens.count).enumerated() { expectBitwiseEqual(rest[i], expected[p], "position \(p) after a 576-position prefix") }
    }

    @Test("logits against the float64 reference on 10 prompts (two beyond 600 tokens); greedy continuations agree where the margin is clear")
    func accuracyAgainstFloat64() throws {
        let model = try Self.model.get()
        let tokenizer = try Tokenizer(file: model.file)
        let reference = try ReferenceLlama(file: model.file)
        var worst = 0.0, compared = 0, clear = 0
        for (n, text) in Self.prompts.enumerated() {
            let prompt = tokenizer.encode(text)
            let steps = n < 4 ? 8 : 0 // greedy continuations on the first prompts
            let (generated, _) = try makePass(model, maxTokens: 700).greedy(prompt, maxTokens: max(steps, 1))
            let sequence = prompt + generated.prefix(steps)
            let engine = try allLogits(makePass(model, maxTokens: 700), sequence, chunk: 128)
            let ref = ReferenceLlama(copying: reference)
            for (p, token) in sequence.enumerated() {
                // Full logits where they are compared: every 97th position and the last ones.
                let wanted = p % 97 == 0 || p >= prompt.count - 1
                let expected = ref.forward(token, logits: wanted)
                guard wanted else { continue }
                for i in expected.indices { worst = max(worst, abs(Double(engine[p][i]) - expected[i])) }
                guard p >= prompt.count - 1 && p + 1 < sequence.count else { continue }
                let order = expected.indices.sorted { expected[$0] > expected[$1] }
                compared += 1
                if expected[order[0]] - expected[order[1]] > 1e-3 {
                    clear += 1
                    #expect(sequence[p + 1] == TokenID(order[0]), "\(text.prefix(30).debugDescription): step \(p + 1 - prompt.count)")
                }
            }
        }
        print("Gemma 3 float64 reference: max |Δlogit| = \(worst) over \(Self.prompts.count) prompts; \(clear) of \(compared) greedy steps had a clear margin")
        #expect(worst < 3e-4, "max |Δlogit| \(worst)") // measured 7.6e-5 on an Intel Xeon
        #expect(clear > 0 && clear >= compared * 8 / 10)
    }
}
