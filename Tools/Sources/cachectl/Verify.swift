import ArgumentParser
import Foundation
import Verbatim
import VerbatimCache
import VerbatimKernels
import VerbatimModel

/// `cachectl verify`: checksums, and with a model, recomputation bit for bit.
struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check entries' checksums; with --model, recompute them and compare bit for bit.",
        discussion: "Exit status 1 when any entry is corrupt or differs; the offending keys are printed.")

    @OptionGroup var path: PathOption
    @Option(help: "Check this many entries, chosen at random.") var sample: Int?
    @Flag(help: "Check every entry (the default without --sample).") var all = false
    @Option(help: "A GGUF model file: also recompute the selected entries of this model and compare bit for bit.") var model: String?
    @Option(help: "Seed of the random sample (default: random).") var seed: UInt64?

    func validate() throws {
        if let sample, sample < 1 { throw ValidationError("--sample must be at least 1") }
        if sample != nil && all { throw ValidationError("--sample and --all exclude each other") }
    }

    func run() async throws {
        try await guardedAsync { try await verify() }
    }

    private func verify() async throws {
        let store = try path.open()
        let entries = try readEntries(store)
        var rng = SplitMix64(seed: seed ?? UInt64.random(in: 0...UInt64.max))
        var selected = entries
        if let sample, sample < entries.count {
            selected.shuffle(using: &rng)
            selected = Array(selected.prefix(sample))
        }

        // 1. Checksums.
        var bar = ProgressBar(total: selected.count, label: "checksums")
        var corrupt: [Digest128] = []
        for start in stride(from: 0, to: selected.count, by: 256) {
            let keys = selected[start..<min(start + 256, selected.count)].map(\.key)
            corrupt += try checkChecksums(store, keys)
            bar.update(min(start + 256, selected.count))
        }
        print("checked \(selected.count) of \(entries.count) entries: \(corrupt.count) with a bad checksum")
        for key in corrupt { print("corrupt \(key)") }

        // 2. Recomputation.
        var differing: [(Digest128, String)] = []
        if let model {
            let recompute = try Recompute(modelPath: model)
            let byKey = Dictionary(entries.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
            let mine = selected.filter { $0.model == recompute.digest && !corrupt.contains($0.key) }
            var bar = ProgressBar(total: mine.count, label: "recompute")
            var skipped: [String] = []
            for (i, e) in mine.enumerated() {
                switch try await recompute.check(e, store: store, byKey: byKey) {
                case .same: break
                case .different(let what): differing.append((e.key, what))
                case .skipped(let why): skipped.append("\(e.key): \(why)")
                }
                bar.update(i + 1)
            }
            print("recomputed \(mine.count - skipped.count) entries of model \(recompute.digest): \(differing.count) differ")
            if selected.count > mine.count { print("\(selected.count - mine.count) selected entries belong to other models (or are corrupt) and were not recomputed") }
            for s in skipped { print("skipped \(s)") }
            for (key, what) in differing { print("differs \(key): \(what)") }
            await recompute.engine.shutdown()
        }
        if !corrupt.isEmpty || !differing.isEmpty { throw ExitCode(Failure.mismatch) }
    }

    private func readEntries(_ store: CacheStore) throws -> [CacheEntryInfo] { try store.entries(withTokens: true) }
    private func checkChecksums(_ store: CacheStore, _ keys: [Digest128]) throws -> [Digest128] { try store.corruptEntries(keys) }
}

/// Recomputes entries of one model: KV blocks through the forward pass, completions through
/// an engine without a cache.
struct Recompute {
    enum Outcome { case same, different(String), skipped(String) }

    let model: LlamaModel
    let digest: Digest128
    let engine: Engine

    init(modelPath: String) throws {
        do {
            let file = try GGUFFile(path: modelPath)
            model = try LlamaModel(file: file)
            digest = model.digest
            var configuration = EngineConfiguration()
            configuration.kvMemoryBytes = 256 << 20
            engine = try Engine(model: model, tokenizer: Tokenizer(file: file), configuration: configuration)
        } catch {
            throw Failure("cachectl: \(modelPath): \(error)", status: Failure.model)
        }
    }

    func check(_ e: CacheEntryInfo, store: CacheStore, byKey: [Digest128: CacheEntryInfo]) async throws -> Outcome {
        guard let (_, payload, _) = try readEntry(store, e.key) else { return .skipped("evicted meanwhile") }
        return e.kind == .kvBlock ? try checkBlock(e, payload, byKey) : try await checkCompletion(e, payload)
    }

    private func readEntry(_ store: CacheStore, _ key: Digest128) throws -> (CacheEntryInfo, [UInt8], Bool)? {
        try store.entry(key).map { ($0.info, $0.payload, $0.checksumHolds) }
    }

    /// Recomputes the KV of the block's whole chain and compares the block's bytes.
    private func checkBlock(_ e: CacheEntryInfo, _ payload: [UInt8], _ byKey: [Digest128: CacheEntryInfo]) throws -> Outcome {
        var chain = [e]
        while let parent = chain[0].parent {
            guard let p = byKey[parent] else { return .skipped("its parent block \(parent) is gone (an orphan)") }
            // A chain longer than the cache loops: no engine could have written it.
            guard chain.count <= byKey.count else { return .different("its chain of parent blocks loops") }
            chain.insert(p, at: 0)
        }
        let blockSize = e.tokenCount
        guard blockSize > 0, chain.allSatisfy({ $0.tokenCount == blockSize }) else {
            return .different("its chain mixes block sizes or has an empty block")
        }
        let tokens = chain.flatMap(\.tokens)
        let f32Bytes = 2 * model.config.layerCount * blockSize * model.config.kvDimension * 4
        let kvType: KVType = payload.count == f32Bytes ? .f32 : .f16
        guard payload.count == f32Bytes || payload.count == f32Bytes / 2 else {
            return .different("payload of \(payload.count) bytes is not a KV block of \(blockSize) tokens for this model")
        }
        let profile = KernelConfig.numericsProfile(kv: kvType)
        guard e.profile == profile else { return .skipped("made under numerics profile \"\(e.profile)\"; this build computes \"\(profile)\"") }
        let cache = KVPool(config: model.config, kvType: kvType, blockSize: blockSize, blockCount: chain.count)
        let pass = ForwardPass(model: model, kv: cache, maxTokens: 256)
        var start = 0
        do {
            while start < tokens.count {
                let end = min(start + 256, tokens.count)
                try pass.step((start..<end).map { BatchToken(sequence: 0, position: $0, token: tokens[$0]) })
                start = end
            }
        } catch {
            return .different("its tokens cannot be run through the model: \(error)")   // ids out of range, too long
        }
        let computed = cache.blockBytes(of: 0, index: chain.count - 1)
        let (count, first) = payload.withUnsafeBytes { stored in
            var count = 0
            var first: Int?
            for i in 0..<stored.count where stored[i] != computed[i] {
                count += 1
                if first == nil { first = i }
            }
            return (count, first)
        }
        return count == 0 ? .same : .different("\(count) of \(payload.count) KV bytes differ, first at byte \(first!)")
    }

    /// Regenerates the completion with the stored parameters and compares tokens and logprob bits.
    private func checkCompletion(_ e: CacheEntryInfo, _ payload: [UInt8]) async throws -> Outcome {
        guard let record = payload.withUnsafeBytes({ CompletionRecord(decoding: $0) }) else { return .different("the payload is not a completion record") }
        guard var parameters = GenerateParameters(samplingIdentity: e.sampling) else { return .skipped("unknown sampling identity format") }
        guard e.profile == engine.numericsProfile else { return .skipped("made under numerics profile \"\(e.profile)\"; this build computes \"\(engine.numericsProfile)\"") }
        parameters.maxTokens = record.tokens.count
        parameters.logprobs = true
        var tokens: [TokenID] = []
        var logprobs: [Float] = []
        let stream: GenerationStream
        do { stream = try engine.generate(.tokens(e.tokens), parameters: parameters) } catch {
            return .different("it cannot be regenerated: \(error)")
        }
        for await event in stream {
            if case .token(let t) = event { tokens.append(t.id); logprobs.append(t.logprob ?? .nan) }
        }
        if tokens != record.tokens {
            let i = zip(tokens, record.tokens).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(tokens.count, record.tokens.count)
            return .different("tokens differ from position \(i) (recomputed \(tokens.count), stored \(record.tokens.count))")
        }
        let bad = zip(logprobs, record.logprobs).filter { $0.bitPattern != $1.bitPattern }.count
        return bad == 0 ? .same : .different("\(bad) of \(logprobs.count) logprobs differ in their bits")
    }
}
