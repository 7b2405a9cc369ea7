import Foundation
import Testing
import VerbatimKernels
@testable import VerbatimModel
import VerbatimTestSupport

/// NUMERICS.md items 1-7 on tiny generated models: many random cases, bitwise.
@Suite("Forward pass invariance (tiny model)")
struct ForwardPassTests {
    static let model: Result<LlamaModel, any Error> = Result {
        try LlamaModel(file: tinyModelFile { $0.layers = 2; $0.width = 64; $0.heads = 4; $0.kvHeads = 2; $0.contextLength = 256 })
    }

    @Test("a sequence's logits are bitwise identical alone and among random companions in random rows and chunks")
    func batchComposition() throws {
        let model = try Self.model.get()
        let vocab = model.config.vocabularySize
        var rng = SplitMix64(seed: 11)
        for trial in 0..<40 {
            let target = randomTokens(Int(rng.next() % 60) + 1, vocab: vocab, &rng)
            let alone = try allLogits(makePass(model), target, chunk: target.count)
            let companions = (0..<Int(rng.next() % 16)).map { _ in randomTokens(Int(rng.next() % 50) + 1, vocab: vocab, &rng) }
            let mixed = try mixedRun(makePass(model, blockSize: [8, 16, 32][trial % 3]), target: target,
                                     companions: companions, maxChunk: [1, 4, 16][trial % 3], &rng)
            for p in target.indices {
                expectBitwiseEqual(mixed[p], alone[p], "trial \(trial), position \(p), \(companions.count) companions")
            }
        }
    }

    @Test("prefill chunk sizes 1, 3, 16, 64 and whole give the same logits and the same KV bytes")
    func chunking() throws {
        let model = try Self.model.get()
        var rng = SplitMix64(seed: 12)
        let tokens = randomTokens(150, vocab: model.config.vocabularySize, &rng)
        let reference = makePass(model, maxTokens: 150)
        let whole = try allLogits(reference, tokens, chunk: tokens.count)
        for chunk in [1, 3, 16, 64] {
            let pass = makePass(model, maxTokens: 150)
            let logits = try allLogits(pass, tokens, chunk: chunk)
            for p in tokens.indices { expectBitwiseEqual(logits[p], whole[p], "chunk \(chunk), position \(p)") }
            for b in 0..<(tokens.count / 16) {
                #expect(Array(pass.kv.blockBytes(of: 0, index: b)) == Array(reference.kv.blockBytes(of: 0, index: b)),
                        "chunk \(chunk): KV block \(b) differs")
            }
        }
    }

    @Test("KV restored from saved block bytes continues exactly like KV computed in place")
    func restoredPrefix() throws {
        let model = try Self.model.get()
        var rng = SplitMix64(seed: 13)
        let tokens = randomTokens(90, vocab: model.config.vocabularySize, &rng)
        let first = makePass(model)
        let expected = try allLogits(first, tokens, chunk: 7)
        let saved = (0..<4).map { Array(first.kv.blockBytes(of: 0, index: $0)) }   // 64 positions
        let second = makePass(model)
        try withByteViews(saved) { try second.kv.restore(5, blocks: $0) }
        // (the arrays above outlive the copy)
        var rest: [[Float]] = []
        try second.step((64..<90).map { BatchToken(sequence: 5, position: $0, token: tokens[$0], wantsLogits: true) }) { _, l in rest.append(Array(l)) }
        for (i, p) in (64..<90).enumerated() { expectBitwiseEqual(rest[i], expected[p], "position \(p) after restore") }
    }

    @Test("threads 1, 2, 3 and every instruction-set path give identical logits")
    func threadsAndISAs() throws {
        let model = try Self.model.get()
        var rng = SplitMix64(seed: 14)
        let tokens = randomTokens(40, vocab: model.config.vocabularySize, &rng)
        let savedISA = KernelConfig.isa, savedThreads = KernelConfig.threads
        defer { KernelConfig.setISA(savedISA); KernelConfig.setThreads(savedThreads) }
        KernelConfig.setISA(.portable); KernelConfig.setThreads(1)
        let reference = try allLogits(makePass(model), tokens, chunk: 9)
        for isa in KernelConfig.supportedISAs {
            for threads in [1, 2, 3] {
                #expect(KernelConfig.setISA(isa))
                KernelConfig.setThreads(threads)
                let logits = try allLogits(makePass(model), tokens, chunk: 9)
                for p in tokens.indices { expectBitwiseEqual(logits[p], reference[p], "\(isa), \(threads) threads, position \(p)") }
            }
        }
        #expect(KernelConfig.supportedISAs.count == 3, "this machine runs AVX-512: all three paths are tested")
    }

    @Test("every supported weight type and f16 KV keep the invariance")
    func weightTypesAndF16KV() throws {
        var rng = SplitMix64(seed: 15)
        for type in GGMLType.supported {
            let model = try LlamaModel(file: tinyModelFile {
                $0.weightType = type; $0.embeddingType = type; $0.seed = 3
                if type.blockSize == 256 { $0.width = 256; $0.feedForward = 512 } // K-quant rows are whole super-blocks
            })
            let tokens = randomTokens(33, vocab: model.config.vocabularySize, &rng)
            for kv in [KVType.f32, .f16] {
                let whole = try allLogits(makePass(model, kv: kv), tokens, chunk: 33)
                let mixed = try mixedRun(makePass(model, kv: kv), target: tokens,
                                         companions: [randomTokens(20, vocab: model.config.vocabularySize, &rng)], maxChunk: 5, &rng)
                for p in tokens.indices { expectBitwiseEqual(mixed[p], whole[p], "\(type) kv=\(kv) position \(p)") }
                #expect(whole.allSatisfy { $0.allSatisfy(\.isFinite) })
            }
        }
    }

    @Test("scoring equals step-by-step decoding: the logprobs of generated tokens match bit for bit")
    func scoringEqualsDecoding() throws {
        let model = try Self.model.get()
        var rng = SplitMix64(seed: 16)
        for trial in 0..<5 {
            let prompt = randomTokens(Int(rng.next() % 30) + 1, vocab: model.config.vocabularySize, &rng)
            let (generated, logprobs) = try makePass(model).greedy(prompt, maxTokens: 20, chunk: 4)
            let scored = try makePass(model).score(prompt + generated, chunk: 64)
            let teacher = scored.logprobs[prompt.count...].map { $0! }
            expectBitwiseEqual(Array(teacher), logprobs, "trial \(trial)")
        }
    }

    @Test("a pinned digest of a fixed tiny model's outputs: a change of bits fails until the profile version is bumped")
    func goldenDigest() throws {
        let model = try LlamaModel(file: tinyModelFile { $0.seed = 42 })
        var rng = SplitMix64(seed: 42)
        let tokens = randomTokens(48, vocab: model.config.vocabularySize, &rng)
        var hasher = ContentHasher()
        for kv in [KVType.f32, .f16] {
            for row in try allLogits(makePass(model, kv: kv), tokens, chunk: 48) {
                for v in row { hasher.update(v.bitPattern) }
            }
        }
        #expect(KernelConfig.numericsProfile(kv: .f32) == "verbatim-numerics/4 f32 kv=f32")
        // If this fails, the numerics changed: bump the profile version (it keys every cache
        // entry) and then update this digest.
        #expect(hasher.finish().description == "363528c1c5411074a13860e1f6fb7db3")
    }

    @Test("named per-layer intermediates are observable, and a diff points at the layer that changed")
    func intermediates() throws {
        let base = TinyModel()
        let file = try GGUFFile(data: base.generate())
        // Same model with one weight of layer 1's FFN changed.
        var w = GGUFWriter()
        for e in file.metadataEntries { w.set(e.key, e.value) }
        for t in file.tensors {
            var data = Array(file.data(of: t))
            if t.name == "blk.1.ffn_up.weight" { data[40] ^= 0x11 }
            w.addTensor(t.name, dimensions: t.dimensions, type: t.type, data: data)
        }
        func trace(_ model: LlamaModel) throws -> [(String, [Float])] {
            let pass = makePass(model)
            var names: [(String, [Float])] = []
            pass.observer = { name, rows, columns, data in names.append((name, Array(UnsafeBufferPointer(start: data, count: rows * columns)))) }
            try pass.step((0..<5).map { BatchToken(sequence: 0, position: $0, token: TokenID($0 + 10), wantsLogits: $0 == 4) })
            return names
        }
        let a = try trace(LlamaModel(file: file))
        let b = try trace(LlamaModel(file: try GGUFFile(data: w.serialized())))
        #expect(a.map(\.0) == b.map(\.0))
        #expect(a.map(\.0).contains("blk.0.attn_norm") && a.map(\.0).contains("blk.1.ffn_out") && a.last?.0 == "result_output")
        let firstDiff = zip(a, b).first { bitwiseDifferences($0.1, $1.1).count > 0 }?.0.0
        #expect(firstDiff == "blk.1.ffn_act")
    }

    @Test("the last layer runs only the rows that want logits: their logits and every row's KV bytes keep their bits")
    func lastLayerOutputRows() throws {
        let model = try Self.model.get()
        let vocab = model.config.vocabularySize
        let lastLayer = model.config.layerCount - 1
        var rng = SplitMix64(seed: 17)
        for trial in 0..<12 {
            // Three sequences; each step takes a chunk of every one, and random rows want logits
            // (some steps none). The reference runs each sequence alone with every row's logits.
            let prompts = (0..<3).map { _ in randomTokens(Int(rng.next() % 40) + 20, vocab: vocab, &rng) }
            let referencePasses = prompts.map { _ in makePass(model) }
            let references = try prompts.indices.map {
                try allLogits(referencePasses[$0], prompts[$0], chunk: prompts[$0].count, sequence: SequenceID($0))
            }
            let pass = makePass(model)
            var next = [0, 0, 0]
            var compared = 0, skipped = 0
            while next.indices.contains(where: { next[$0] < prompts[$0].count }) {
                var batch: [BatchToken] = []
                let noneWanted = rng.next() % 4 == 0
                for s in prompts.indices where next[s] < prompts[s].count {
                    let n = min(Int(rng.next() % 9) + 1, prompts[s].count - next[s])
                    for p in next[s]..<(next[s] + n) {
                        batch.append(BatchToken(sequence: SequenceID(s), position: p, token: prompts[s][p],
                                                wantsLogits: !noneWanted && rng.next() % 3 == 0))
                    }
                    next[s] += n
                }
                var handled = 0
                try pass.step(batch) { index, logits in
                    let t = batch[index]
                    #expect(t.wantsLogits)
                    expectBitwiseEqual(Array(logits), references[Int(t.sequence)][t.position],
                                       "trial \(trial), sequence \(t.sequence), position \(t.position)")
                    handled += 1
                }
                #expect(handled == batch.filter(\.wantsLogits).count)
                compared += handled
                skipped += batch.count - handled
            }
            #expect(compared > 0 && skipped > 0)
            for s in prompts.indices { // keys and values of every row, wanted or not
                let reference = referencePasses[s]
                for b in 0..<(prompts[s].count / 16) {
                    #expect(Array(pass.kv.blockBytes(of: SequenceID(s), index: b)) == Array(reference.kv.blockBytes(of: SequenceID(s), index: b)),
                            "trial \(trial), sequence \(s): KV block \(b) differs")
                }
            }
        }
        // With an observer (debug mode) every row runs to the end, so each intermediate has all rows.
        let pass = makePass(model)
        var lastRows = 0
        pass.observer = { name, rows, _, _ in if name == "blk.\(lastLayer).out" { lastRows = rows } }
        try pass.step((0..<6).map { BatchToken(sequence: 0, position: $0, token: TokenID($0 + 3), wantsLogits: $0 == 5) })
        #expect(lastRows == 6)
    }

    @Test("bad batches are typed errors: token id, position, gaps, context, KV memory, size")
    func errors() throws {
        let model = try Self.model.get()
        let pass = makePass(model, blockSize: 16, blocks: 2, maxTokens: 40)
        func code(_ batch: [BatchToken]) -> ForwardError.Code? {
            do { try pass.step(batch); return nil } catch let e as ForwardError { return e.code } catch { return nil }
        }
        #expect(code([]) == .emptyBatch)
        #expect(code([BatchToken(sequence: 0, position: 0, token: TokenID(model.config.vocabularySize))]) == .invalidToken)
        #expect(code([BatchToken(sequence: 0, position: 0, token: -1)]) == .invalidToken)
        #expect(code([BatchToken(sequence: 0, position: 256, token: 1)]) == .invalidPosition)
        #expect(code([BatchToken(sequence: 0, position: 3, token: 1)]) == .invalidPosition)   // a gap
        #expect(code([BatchToken(sequence: 0, position: 0, token: 1), BatchToken(sequence: 0, position: 2, token: 1)]) == .invalidPosition)
        #expect(code((0..<41).map { BatchToken(sequence: 0, position: $0, token: 1) }) == .batchTooLarge)
        #expect(code((0..<33).map { BatchToken(sequence: 0, position: $0, token: 1) }) == .outOfKVMemory)
        pass.kv.release(0)
        #expect(pass.kv.freeBlockCount == 2)
        #expect(code((0..<32).map { BatchToken(sequence: 0, position: $0, token: 1) }) == nil)
        #expect(code([BatchToken(sequence: 1, position: 0, token: 1)]) == .outOfKVMemory)
    }
}
