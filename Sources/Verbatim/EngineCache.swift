import Foundation
import VerbatimCache
import VerbatimCore
import VerbatimKernels
import VerbatimModel

/// How the engine uses a `CacheStore`: the completion cache first, then the longest cached
/// prefix; new full blocks and finished completions are handed to the store's writer.
final class EngineCache: @unchecked Sendable {
    // Sendable: used only by the engine thread.
    let store: CacheStore
    let prefixes: Bool
    let completions: Bool
    let model: Digest128
    let profile: String
    let blockSize: Int
    let eos: TokenID?

    init(store: CacheStore, prefixes: Bool, completions: Bool, model: Digest128, profile: String, blockSize: Int, eos: TokenID?) {
        self.store = store
        self.prefixes = prefixes
        self.completions = completions
        self.model = model
        self.profile = profile
        self.blockSize = blockSize
        self.eos = eos
        store.noteModel(model, profile: profile)
    }

    /// Forward-pass work done since the last flush (for cachectl's estimate of time saved).
    private var computeTokens: Int64 = 0
    private var computeNanoseconds: Int64 = 0

    func noteStep(tokens: Int, duration: Duration) {
        computeTokens += Int64(tokens)
        computeNanoseconds += duration.wholeNanoseconds
    }

    /// Hands the accumulated work to the store's counters (once per request, not per step,
    /// so counters alone never make the writer commit).
    func flushCompute() {
        guard computeTokens > 0 else { return }
        store.count("compute.tokens", computeTokens)
        store.count("compute.ns", computeNanoseconds)
        computeTokens = 0
        computeNanoseconds = 0
    }

    /// The parameters that change a completion, canonically encoded: temperature; when
    /// sampling, top-k, top-p, min-p and the seed; stop-at-EOS with the EOS id; the stop tokens
    /// and stop strings, sorted (their order does not matter). maxTokens is not in it: a
    /// stored completion answers any length up to its own.
    func samplingIdentity(_ p: GenerateParameters) -> [UInt8] {
        var out = ByteWriter()
        out.put(p.temperature.bitPattern)
        if p.temperature > 0 {
            out.put(UInt32(p.topK)); out.put(p.topP.bitPattern); out.put(p.minP.bitPattern); out.put(p.seed ?? 0)
        }
        out.put(UInt8(p.stopAtEOS ? 1 : 0)); out.put(UInt32(bitPattern: p.stopAtEOS ? (eos ?? -1) : -1))
        let stops = Array(Set(p.stopTokens)).sorted()
        out.put(UInt32(stops.count)); for t in stops { out.put(UInt32(bitPattern: t)) }
        let strings = Array(Set(p.stopStrings)).sorted()
        out.put(UInt32(strings.count))
        for s in strings { out.putBytes(Array(s.utf8)) }
        return out.bytes
    }

    /// The request's key space: this model and profile, its salt and declared public prefix.
    func keys(_ r: EngineRequest) -> CacheKeySpace {
        CacheKeySpace(model: model, profile: profile, blockSize: blockSize, salt: r.salt, sharedBlocks: r.sharedPrefixTokens / blockSize)
    }

    func completionKey(_ r: EngineRequest) -> (key: Digest128, identity: EntryIdentity) {
        keys(r).completion(prompt: r.prompt, sampling: samplingIdentity(r.parameters))
    }

    /// A stored completion answers the request: fully (stored tokens cover it, or the stored
    /// run ended before its length limit), or as a head start that generation continues.
    /// Returns true when the request was answered entirely.
    func replayCompletion(_ r: EngineRequest, worker: EngineWorker) -> Bool {
        guard completions, r.parameters.topLogprobs == 0 else { return false }
        store.count("lookups.completions")
        let (key, identity) = completionKey(r)
        guard let record = store.read(key, expecting: identity, { CompletionRecord(decoding: $0) }) ?? nil,
              !record.tokens.isEmpty else { return false }
        let complete = record.reason != .length || record.tokens.count >= r.parameters.maxTokens
        if !complete && r.prompt.count + record.tokens.count >= r.positionsNeeded { return false }
        store.count("hits.completions")
        store.touch([key])
        store.count("tokens_saved", Int64(r.prompt.count + min(record.tokens.count, r.parameters.maxTokens)))
        r.cachedPromptTokens = r.prompt.count
        if complete {
            r.completionFromCache = true
            for (token, logprob) in zip(record.tokens, record.logprobs) {
                worker.emit(r, token: token, logprob: logprob, top: [])
                if r.channel.isFinished { break }
            }
            if !r.channel.isFinished { worker.finish(r, reason: .length) }   // defensive: replay always ends
            return true
        }
        // Continue: stream the stored head now, then prefill prompt + head (minus its last
        // token, which is fed as the first decode step) and keep sampling from step n.
        for (token, logprob) in zip(record.tokens, record.logprobs) { worker.emit(r, token: token, logprob: logprob, top: []) }
        r.prefillTokens = r.prompt + record.tokens.dropLast()
        r.cachedPromptTokens = 0
        return false
    }

    /// Restores the longest cached prefix of the request's tokens to prefill into fresh KV blocks: the
    /// chain of whole blocks, then the first rows of the stored block after it that shares the
    /// longest run of the next tokens (a document asked a new question reuses the document up
    /// to the question, not only up to the last block boundary).
    func restorePrefix(_ r: EngineRequest, into kv: KVPool) {
        guard prefixes else { return }
        let prefillTokens = r.prefillTokens
        let maxBlocks = (prefillTokens.count - 1) / blockSize    // at least one token is computed
        store.count("lookups.prefix_tokens", Int64(r.prompt.count))
        let space = self.keys(r)
        let keys = space.kvChain(prefillTokens, count: maxBlocks)
        var restored = 0
        if maxBlocks > 0 {
            let identities = (0..<maxBlocks).map { i in
                space.kvIdentity(index: i, parent: i == 0 ? nil : keys[i - 1], tokens: prefillTokens[(i * blockSize)..<((i + 1) * blockSize)])
            }
            store.readChain(keys, identities: identities) { payloads in
                let usable = payloads.prefix { $0.count == kv.memory.blockBytes }
                guard !usable.isEmpty else { return }
                try? kv.restore(r.sequence, blocks: Array(usable))
                restored = kv.length(of: r.sequence) / blockSize
            }
        }
        var touched = Array(keys.prefix(restored))
        let next = restored * blockSize
        var partial = 0
        if next < prefillTokens.count - 1 {
            let parent = restored == 0 ? nil : keys[restored - 1]
            let wanted = space.kvIdentity(index: restored, parent: parent, tokens: prefillTokens[next..<min(next + blockSize, prefillTokens.count - 1)])
            let addressOf = { (tokens: [TokenID]) in space.kvKey(index: restored, parent: parent, tokens: tokens[...]) }
            if let hit = store.readLongestSibling(wanted, blockSize: blockSize, key: addressOf, { payload, run in
                try kv.extend(r.sequence, partialBlock: payload, tokens: run)
            }), kv.length(of: r.sequence) == next + hit.tokens {
                partial = hit.tokens
                touched.append(hit.key)
                store.count("hits.partial_blocks")
            }
        }
        guard next + partial > 0 else { return }
        r.prefilled = next + partial
        r.blocksStored = restored
        r.chain = Array(keys.prefix(restored))
        r.cachedPromptTokens = min(r.prompt.count, r.prefilled)
        store.count("hits.prefix_tokens", Int64(r.cachedPromptTokens))
        store.count("tokens_saved", Int64(r.cachedPromptTokens))
        store.touch(touched.reversed())   // leaf first, root last: parents stay younger
    }

    /// Hands every full KV block written since the last call to the writer (never NaN or Inf).
    func storeBlocks(_ r: EngineRequest, from kv: KVPool) {
        guard prefixes, r.sequence >= 0 else { return }
        let tokens = r.prompt + r.generated
        let full = min(kv.length(of: r.sequence), tokens.count) / blockSize
        guard full > r.blocksStored else { return }
        let space = keys(r)
        for i in r.chain.count..<full {
            r.chain.append(space.kvKey(index: i, parent: r.chain.last, tokens: tokens[(i * blockSize)..<((i + 1) * blockSize)]))
        }
        for i in r.blocksStored..<full {
            let bytes = kv.blockBytes(of: r.sequence, index: i)
            guard Self.allFinite(bytes, f16: kv.memory.type == .f16) else { store.count("writes.skipped_nonfinite"); continue }
            let identity = space.kvIdentity(index: i, parent: i == 0 ? nil : r.chain[i - 1], tokens: tokens[(i * blockSize)..<((i + 1) * blockSize)])
            store.put(r.chain[i], identity: identity, payload: bytes)
        }
        r.blocksStored = full
    }

    func storeCompletion(_ r: EngineRequest, reason: StopReason) {
        guard completions, !r.completionFromCache, r.allLogprobs.count == r.generated.count, !r.generated.isEmpty,
              r.allLogprobs.allSatisfy(\.isFinite) else { return }
        let recordReason: CompletionRecord.Reason = switch reason {
        case .eos: .eos
        case .stop: .stop
        default: .length
        }
        let (key, identity) = completionKey(r)
        let payload = CompletionRecord(reason: recordReason, tokens: r.generated, logprobs: r.allLogprobs).encoded()
        payload.withUnsafeBytes { store.put(key, identity: identity, payload: $0) }
    }

    static func allFinite(_ bytes: UnsafeRawBufferPointer, f16: Bool) -> Bool {
        if f16 {
            for i in stride(from: 0, to: bytes.count, by: 2) where bytes.loadUnaligned(fromByteOffset: i, as: UInt16.self) & 0x7C00 == 0x7C00 { return false }
        } else {
            for i in stride(from: 0, to: bytes.count, by: 4) where bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self) & 0x7F80_0000 == 0x7F80_0000 { return false }
        }
        return true
    }
}

extension GenerateParameters {
    /// The parameters a stored completion was generated with, read back from its sampling
    /// identity (see `EngineCache.samplingIdentity`); nil if the bytes are not one.
    /// `maxTokens` is not part of the identity and is left at its default.
    public init?(samplingIdentity bytes: [UInt8]) {
        guard let decoded = bytes.withUnsafeBytes({ GenerateParameters(decoding: $0) }) else { return nil }
        self = decoded
    }

    private init?(decoding bytes: UnsafeRawBufferPointer) {
        var reader = ByteReader(bytes)
        self.init()
        guard let t = reader.get(UInt32.self) else { return nil }
        temperature = Float(bitPattern: t)
        if temperature > 0 {
            guard let k = reader.get(UInt32.self), let p = reader.get(UInt32.self), let m = reader.get(UInt32.self),
                  let s = reader.get(UInt64.self) else { return nil }
            topK = Int(k); topP = Float(bitPattern: p); minP = Float(bitPattern: m); seed = s
        } else {
            seed = 0
        }
        guard let eosFlag = reader.get(UInt8.self), reader.get(UInt32.self) != nil, let stopCount = reader.get(UInt32.self) else { return nil }
        stopAtEOS = eosFlag == 1
        for _ in 0..<stopCount {
            guard let id = reader.get(UInt32.self) else { return nil }
            stopTokens.append(TokenID(bitPattern: id))
        }
        guard let stringCount = reader.get(UInt32.self) else { return nil }
        for _ in 0..<stringCount {
            guard let text = reader.getBytes() else { return nil }
            stopStrings.append(String(decoding: text, as: UTF8.self))
        }
        guard reader.atEnd else { return nil }
    }
}
