import Foundation
import Testing
import VerbatimKernels
@testable import VerbatimModel
import VerbatimTestSupport

/// Every architecture on tiny generated models: the invariance matrix (bitwise) and accuracy
/// against the independent Double forward pass (ReferenceLlama).
@Suite("Architectures (tiny models)")
struct ArchitectureTests {
    /// One tiny model per architecture, each with its own differences switched on: Llama 3's
    /// RoPE divisors, Qwen2's biases, Qwen3's Q/K norms with a head width that is not D/H,
    /// Gemma 3 with six layers (five sliding over a 5-token window, one global).
    static let cases: [(String, TinyModel)] = {
        var llama3 = TinyModel(); llama3.ropeDivisors = true
        var qwen2 = TinyModel(); qwen2.architecture = .qwen2
        var qwen3 = TinyModel(); qwen3.architecture = .qwen3; qwen3.headDim = 32
        var gemma3 = TinyModel(); gemma3.architecture = .gemma3; gemma3.headDim = 32; gemma3.layers = 6
        gemma3.kvHeads = 1; gemma3.slidingWindow = 5
        return [("llama3", llama3), ("qwen2", qwen2), ("qwen3", qwen3), ("gemma3", gemma3)]
    }()

    static func model(_ name: String) throws -> LlamaModel {
        let tiny = try #require(cases.first { $0.0 == name }).1
        return try LlamaModel(file: GGUFFile(data: tiny.generate()))
    }

    @Test("each architecture's file states its differences and validates", arguments: ["llama3", "qwen2", "qwen3", "gemma3"])
    func configs(name: String) throws {
        let c = try Self.model(name).config
        switch name {
        case "llama3": #expect(c.architecture == .llama && c.hasRopeDivisors)
        case "qwen2": #expect(c.architecture == .qwen2 && c.traits.qkvBias && c.traits.ropeStyle == .neox)
        case "qwen3": #expect(c.architecture == .qwen3 && c.headDimension == 32 && c.queryWidth == 128 && c.traits.qkNorm)
        default:
            #expect(c.architecture == .gemma3 && c.slidingWindow == 5 && c.traits.activation == .geluTanh)
            #expect((0..<6).map(c.isSlidingWindowLayer) == [true, true, true, true, true, false])
        }
    }

    @Test("a RoPE frequency divisor that is zero, negative, infinite or NaN is a typed error naming the tensor")
    func badRopeDivisors() throws {
        let tiny = try #require(Self.cases.first { $0.0 == "llama3" }).1
        let base = try GGUFFile(data: tiny.generate())
        for bad: Float in [0, -1, .infinity, .nan] {
            var w = GGUFWriter()
            for e in base.metadataEntries { w.set(e.key, e.value) }
            for t in base.tensors {
                if t.name == "rope_freqs.weight" {
                    w.addTensor(t.name, dimensions: t.dimensions, type: .f32, values: [bad] + Array(repeating: 1, count: t.elementCount - 1))
                } else {
                    w.addTensor(t.name, dimensions: t.dimensions, type: t.type, data: Array(base.data(of: t)))
                }
            }
            do {
                _ = try LlamaModel(file: GGUFFile(data: w.serialized()))
                Issue.record("divisor \(bad) was accepted")
            } catch let error as GGUFError {
                #expect(error.code == .invalidHyperparameters && error.message.contains("rope_freqs.weight"), "\(error)")
            }
        }
    }

    @Test("alone = among random companions in random chunks and block sizes; chunks 1, 3, 16, 64 and whole agree", arguments: ["llama3", "qwen2", "qwen3", "gemma3"])
    func invariance(name: String) throws {
        let model = try Self.model(name)
        let vocab = model.config.vocabularySize
        var rng = SplitMix64(seed: 61)
        for trial in 0..<8 {
            let target = randomTokens(Int(rng.next() % 40) + 20, vocab: vocab, &rng)
            let alone = try allLogits(makePass(model), target, chunk: target.count)
            let companions = (0..<Int(rng.next() % 16)).map { _ in randomTokens(Int(rng.next() % 30) + 1, vocab: vocab, &rng) }
            let mixed = try mixedRun(makePass(model, blockSize: [8, 16, 32][trial % 3]), target: target,
                                     companions: companions, maxChunk: [1, 4, 16][trial % 3], &rng)
            for p in target.indices { expectBitwiseEqual(mixed[p], alone[p], "\(name) trial \(trial), position \(p)") }
        }
        let tokens = randomTokens(100, vocab: vocab, &rng)
        let whole = try allLogits(makePass(model), tokens, chunk: tokens.count)
        for chunk in [1, 3, 16, 64] {
            let logits = try allLogits(makePass(model), tokens, chunk: chunk)
            for p in tokens.indices { expectBitwiseEqual(logits[p], whole[p], "\(name) chunk \(chunk), position \(p)") }
        }
    }

    @Test("threads 1, 2, 3 and every instruction-set path; scoring = step-by-step decoding; a restored prefix beyond the window continues bit for bit",
          arguments: ["llama3", "qwen2", "qwen3", "gemma3"])
    func pathsScoringAndPrefix(name: String) throws {
        let model = try Self.model(name)
        var rng = SplitMix64(seed: 62)
        let tokens = randomTokens(45, vocab: model.config.vocabularySize, &rng)
        let savedISA = KernelConfig.isa, savedThreads = KernelConfig.threads
        defer { KernelConfig.setISA(savedISA); KernelConfig.setThreads(savedThreads) }
        KernelConfig.setISA(.portable); KernelConfig.setThreads(1)
        let reference = try allLogits(makePass(model), tokens, chunk: 9)
        for isa in KernelConfig.supportedISAs {
            for threads in [1, 2, 3] {
                KernelConfig.setISA(isa); KernelConfig.setThreads(threads)
                let logits = try allLogits(makePass(model), tokens, chunk: 9)
                for p in tokens.indices { expectBitwiseEqual(logits[p], reference[p], "\(name) \(isa) \(threads) threads, position \(p)") }
            }
        }
        KernelConfig.setISA(savedISA); KernelConfig.setThreads(savedThreads)
        let prompt = Array(tokens[0..<7])
        let (generated, logprobs) = try makePass(model).greedy(prompt, maxTokens: 12, chunk: 4)
        let scored = try makePass(model).score(prompt + generated, chunk: 64)
        expectBitwiseEqual(scored.logprobs[prompt.count...].map { $0! }, logprobs, "\(name): scoring vs decoding")
        // A prefix of 32 positions (beyond the 5-token window) restored from its KV block bytes.
        let first = makePass(model)
        let cold = try allLogits(first, tokens, chunk: 5)
        let saved = (0..<2).map { Array(first.kv.blockBytes(of: 0, index: $0)) }
        let second = makePass(model)
        try withByteViews(saved) { try second.kv.restore(3, blocks: $0) }
        var rest: [[Float]] = []
        try second.step((32..<45).map { BatchToken(sequence: 3, position: $0, token: tokens[$0], wantsLogits: true) }) { _, l in rest.append(Array(l)) }
        for (i, p) in (32..<45).enumerated() { expectBitwiseEqual(rest[i], cold[p], "\(name): position \(p) after a restored prefix") }
    }

    @Test("logits within 1e-4 of the independent Double forward pass at 40 positions (beyond the window for Gemma 3)",
          arguments: ["llama3", "qwen2", "qwen3", "gemma3"])
    func accuracy(name: String) throws {
        let tiny = try #require(Self.cases.first { $0.0 == name }).1
        let file = try GGUFFile(data: tiny.generate())
        let model = try LlamaModel(file: file)
        let ref = try ReferenceLlama(file: file)
        var rng = SplitMix64(seed: 63)
        let tokens = randomTokens(40, vocab: model.config.vocabularySize, &rng)
        let engine = try allLogits(makePass(model), tokens, chunk: 16)
        var worst = 0.0
        for (p, t) in tokens.enumerated() {
            let expected = ref.forward(t)
            for i in expected.indices { worst = max(worst, abs(Double(engine[p][i]) - expected[i])) }
        }
        print("\(name): max |Δlogit| against Double = \(worst)")
        #expect(worst < 1e-4, "\(name): max |Δlogit| \(worst)")
    }
}
