import Foundation
import Synchronization
import VerbatimKernels
import VerbatimCache
import VerbatimModel

/// How an ``Engine`` runs: KV memory, step size, scheduling, the cache. Fixed when the engine is
/// made; none of these settings changes a bit of any output (the kernels are batch-invariant),
/// except `kvType`, which is part of the numerics profile.
public struct EngineConfiguration: Sendable {
    /// Tokens per KV block (the prefix cache uses the same size).
    public var blockSize = 32
    /// Bytes of KV memory; requests wait for room when it is full.
    public var kvMemoryBytes = 512 << 20
    /// The element type of KV memory: `.f32` (default) or `.f16` (half the memory, a different
    /// numerics profile: outputs and cache keys differ from `.f32`'s).
    public var kvType: KVType = .f32
    /// Tokens per step: decode tokens of running requests first, then prefill chunks of others.
    public var maxBatchTokens = 256
    /// Which prompts get what a step's budget leaves after the decode rows.
    public var prefillOrder: PrefillOrder = .shortestFirst
    /// Speculation (0: off): up to this many draft tokens a step for each generating request,
    /// the tokens that followed the last earlier occurrence of its last 3 (or 2) tokens in its
    /// prompt and output (prompt lookup). The model checks each draft in the same step, as a
    /// prompt chunk; a token is emitted only where the model chose it, so outputs, logprobs and
    /// cache entries keep every bit (batch invariance makes a drafted row's logits those of a
    /// decode step). Drafts take only the rows of a step's budget that decode and prompt chunks
    /// leave, so they never delay a prompt, and no more than the request's consumer has room for.
    public var draftTokens = 0
    /// `.shortestFirst`: a prompt passed over this many steps in a row goes first.
    public var maxPrefillDelaySteps = 8
    /// Requests admitted (generating or prefilling) at once; more wait in the queue.
    public var maxRunningRequests = 256
    /// Requests waiting for KV memory beyond this are refused (`queueFull`).
    public var maxQueuedRequests = 4096
    /// Unread events per request before the engine pauses that request (backpressure).
    public var streamBufferCapacity = 64
    /// How long the engine stays idle before it gives its KV memory and step scratch back to the
    /// OS (`.zero`: at once). Requests that arrive sooner find the pages still committed, so a
    /// client sending one request after another does not pay to fault them in again each time.
    public var idleMemoryDelay: Duration = .milliseconds(500)
    /// Kernel threads this engine's steps use, at most the process's pool (`KernelConfig.threads`,
    /// shared by every engine; one step runs at a time on it); nil: the whole pool. Two engines in
    /// one process can so take different shares of the cores. Bits do not depend on it.
    public var threads: Int?
    /// The cache to use (none: compute everything).
    public var cache: CacheStore?
    /// Switches for the two halves of the cache.
    /// Restore cached KV blocks of a prompt's prefix instead of computing them.
    public var prefixCache = true
    /// Answer a repeated request (same prompt, parameters and seed) from its stored completion.
    public var completionCache = true
    /// Public prefixes (a system prompt every tenant sends): with `generate(_:parameters:tenant:)`
    /// their whole KV blocks are cached without the tenant's salt, so every tenant reuses them;
    /// what follows stays the tenant's own.
    public var sharedPrefixes: [SharedPrefix] = []

    /// The defaults: 512 MiB of f32 KV memory, 32-token blocks, 256-token steps, shortest-first
    /// prefill, no cache.
    public init() {}
}

/// The order in which prompts waiting to be prefilled share a step. No order changes a bit of
/// any output: it decides only who waits.
public enum PrefillOrder: String, Sendable, CaseIterable, Codable {
    /// Admission order: the oldest prompt is finished first (a short prompt waits behind it).
    case arrival
    /// Fewest prompt tokens left first, so short prompts are not stuck behind long ones; a
    /// prompt passed over for `maxPrefillDelaySteps` steps goes first.
    case shortestFirst = "shortest-first"
    /// The budget split evenly between every prompt being prefilled.
    case roundRobin = "round-robin"
}

/// What the engine is doing now (a snapshot).
public struct EngineStats: Sendable, Equatable {
    /// Requests admitted: prefilling or generating.
    public var runningRequests: Int
    /// Requests waiting for KV memory or for a running slot.
    public var queuedRequests: Int
    /// KV blocks held by running requests.
    public var kvBlocksInUse: Int
    /// KV blocks the engine's memory holds in all (`kvMemoryBytes` / bytes per block).
    public var kvBlocksTotal: Int
    /// Forward steps run since the engine started.
    public var steps: Int
    /// Draft tokens compared with the model's choice since the engine started
    /// (``EngineConfiguration/draftTokens``); drafts after a rejected one, or after the request
    /// ended, are not counted.
    public var draftTokensChecked = 0
    /// Of those, the draft tokens the model chose (each saves a step for its request).
    public var draftTokensAccepted = 0
}

/// Loads a model once and serves many concurrent requests with continuous batching. One
/// dedicated thread owns the model's KV memory and runs every step on the kernels' worker pool
/// (never on Swift's cooperative pool); callers talk to it through thread-safe queues.
public final class Engine: Sendable {
    /// The model, its weights packed for the kernels.
    public let model: LlamaModel
    /// The model's tokenizer (and chat template).
    public let tokenizer: Tokenizer
    /// The configuration the engine was made with.
    public let configuration: EngineConfiguration
    /// Names the numerics contract (NUMERICS.md); with the model digest it fixes every output bit.
    public let numericsProfile: String
    let mailbox: EngineMailbox
    /// `configuration.sharedPrefixes` as tokens, made on first use (it needs the tokenizer).
    private let sharedPrefixMemo = Mutex<SharedPrefixes?>(nil)

    /// `init(modelPath:configuration:)` off the caller's thread: reading and packing the weights
    /// takes seconds for a large model, which must not hold a cooperative thread.
    public static func load(modelPath: String, configuration: EngineConfiguration = EngineConfiguration()) async throws(EngineError) -> Engine {
        try await BlockingWork.run(name: "vb-load") { () throws(EngineError) in
            try Engine(modelPath: modelPath, configuration: configuration)
        }
    }

    /// Loads a GGUF model file (weights packed for the kernels, tokenizer and chat template
    /// read) and starts the engine thread. Synchronous and slow (seconds for a large model):
    /// from async code use `Engine.load(modelPath:configuration:)`.
    public convenience init(modelPath: String, configuration: EngineConfiguration = EngineConfiguration()) throws(EngineError) {
        do {
            let file = try GGUFFile(path: modelPath)
            try self.init(model: LlamaModel(file: file), tokenizer: Tokenizer(file: file), configuration: configuration)
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(.modelLoad, "\(error)")
        }
    }

    /// An engine over a loaded model: reserves KV memory (address space; pages are committed as
    /// blocks are written) and starts the engine thread. Fast: the slow part, loading and packing
    /// the weights (seconds for a large file), is `LlamaModel(file:)`; ``load(modelPath:configuration:)``
    /// does both off the caller's thread. Throws `.invalidParameters` for a non-positive size in
    /// `configuration` and `.outOfKVMemory` when `kvMemoryBytes` holds no block.
    public init(model: LlamaModel, tokenizer: Tokenizer, configuration: EngineConfiguration = EngineConfiguration()) throws(EngineError) {
        guard configuration.blockSize > 0, configuration.maxBatchTokens > 0, configuration.streamBufferCapacity > 0,
              configuration.maxRunningRequests > 0, configuration.maxPrefillDelaySteps >= 0, (configuration.threads ?? 1) > 0,
              configuration.idleMemoryDelay >= .zero, configuration.draftTokens >= 0 else {
            throw EngineError(.invalidParameters, "blockSize, maxBatchTokens, streamBufferCapacity, maxRunningRequests and threads must be positive, idleMemoryDelay and draftTokens not negative")
        }
        self.model = model
        self.tokenizer = tokenizer
        self.configuration = configuration
        numericsProfile = KernelConfig.numericsProfile(kv: configuration.kvType)
        let c = model.config
        let blockBytes = 2 * c.layerCount * configuration.blockSize * c.kvDimension * (configuration.kvType == .f16 ? 2 : 4)
        let blocks = configuration.kvMemoryBytes / blockBytes
        guard blocks >= 1 else {
            throw EngineError(.outOfKVMemory, "kvMemoryBytes \(configuration.kvMemoryBytes) holds no KV block of \(blockBytes) bytes")
        }
        let cache = KVPool(config: c, kvType: configuration.kvType, blockSize: configuration.blockSize, blockCount: blocks)
        let pass = ForwardPass(model: model, kv: cache, maxTokens: configuration.maxBatchTokens,
                               logitRows: min(64, configuration.maxBatchTokens))
        mailbox = EngineMailbox(totalBlocks: blocks)
        let engineCache = configuration.cache.map {
            EngineCache(store: $0, prefixes: configuration.prefixCache, completions: configuration.completionCache,
                        model: model.digest, profile: numericsProfile, blockSize: configuration.blockSize, eos: tokenizer.eosID)
        }
        let worker = EngineWorker(pass: pass, tokenizer: tokenizer, mailbox: mailbox, configuration: configuration, cache: engineCache)
        let thread = Thread { worker.run() }
        thread.name = "vb-engine"
        thread.stackSize = 8 << 20
        thread.start()
    }

    deinit { mailbox.stop(cancelRunning: true) }

    /// Token ids of a prompt, as `generate` would feed them. A prompt longer than the context
    /// window is refused (`.contextExceeded`) as soon as tokenizing reaches that length, without
    /// encoding the rest. `budget` lets another thread stop the work (`.cancelled`); its
    /// `maxTokens` replaces the context window as the limit.
    public func tokens(of prompt: Prompt, parameters: GenerateParameters = GenerateParameters(),
                       budget: EncodeBudget? = nil) throws(EngineError) -> [TokenID] {
        let context = model.config.contextLength
        let budget = budget ?? EncodeBudget(maxTokens: context)
        if case .tokens(let ids) = prompt {
            for id in ids where id < 0 || Int(id) >= tokenizer.count {
                throw EngineError(.invalidToken, "token id \(id) is out of range (vocabulary has \(tokenizer.count) tokens)")
            }
            return ids
        }
        do throws(TokenizerError) {
            switch prompt {
            case .tokens(let ids):
                return ids
            case .text(let text):
                return try tokenizer.encode(text, parseSpecial: parameters.parseSpecialTokens,
                                            addBOS: parameters.addSpecialTokens ? nil : false, budget: budget)
            case .chat(let messages, let options):
                return try tokenizer.encodeChat(messages, options: options, budget: budget)
            }
        } catch {
            switch error.code {
            case .tooManyTokens:
                throw EngineError(.contextExceeded, budget.maxTokens == context
                    ? "the prompt is longer than the context window of \(context) tokens"
                    : "the prompt is longer than \(budget.maxTokens) tokens (the context window is \(context) tokens)")
            case .cancelled: throw EngineError(.cancelled, "tokenizing the prompt was cancelled")
            case .templateRaised: throw EngineError(.invalidPrompt, "the chat template refused the messages: \(error.message)")
            default: throw EngineError(.invalidPrompt, error.message)
            }
        }
    }

    /// `tokens(of:parameters:)` on a thread of its own, so a long prompt or a heavy chat
    /// template never holds one of the caller's cooperative threads (a server's `/health`
    /// stays prompt). Cancelling the calling task stops the work between pieces
    /// (`.cancelled`).
    public func tokenize(_ prompt: Prompt, parameters: GenerateParameters = GenerateParameters()) async throws(EngineError) -> [TokenID] {
        let budget = EncodeBudget(maxTokens: model.config.contextLength)
        let result: Result<[TokenID], EngineError> = await withTaskCancellationHandler {
            do throws(EngineError) {
                // Template rendering recurses (bounded by TemplateLimits): a larger stack.
                return .success(try await BlockingWork.run(name: "vb-tokenize", stackSize: 8 << 20) { () throws(EngineError) in
                    try self.tokens(of: prompt, parameters: parameters, budget: budget)
                })
            } catch {
                return .failure(error)
            }
        } onCancel: {
            budget.cancel()
        }
        return try result.get()
    }

    /// Starts a generation. Problems with the request are thrown here, before any event.
    /// `salt` isolates tenants in the cache: entries are shared only between requests with the
    /// same salt. A server derives it from the caller's identity, never from the request body.
    /// `sharedPrefixTokens` leading prompt tokens are an operator-declared public prefix (a
    /// system prompt all tenants may reuse): its whole blocks are cached without the salt.
    public func generate(_ prompt: Prompt, parameters: GenerateParameters = GenerateParameters(),
                         salt: [UInt8] = [], sharedPrefixTokens: Int = 0) throws(EngineError) -> GenerationStream {
        try parameters.validate()
        for id in parameters.stopTokens where id < 0 || Int(id) >= tokenizer.count {
            throw EngineError(.invalidParameters, "stop token \(id) is out of range (vocabulary has \(tokenizer.count) tokens)")
        }
        let ids = try tokens(of: prompt, parameters: parameters)
        try checkFits(ids.count, extra: parameters.maxTokens)
        let mailbox = self.mailbox
        let channel = RequestChannel(capacity: configuration.streamBufferCapacity) { mailbox.wake() }
        let request = EngineRequest(prompt: ids, parameters: parameters, seed: parameters.seed ?? UInt64.random(in: 0...UInt64.max),
                                    channel: channel, tokenizer: tokenizer, salt: salt,
                                    sharedPrefixTokens: sharedPrefixTokens)
        try mailbox.submit(request, maxQueued: configuration.maxQueuedRequests)
        return GenerationStream(lifetime: RequestLifetime(channel))
    }

    /// `generate` for one tenant of a multi-tenant service: cache entries are shared only between
    /// requests of the same tenant (the salt is derived from the name, never taken from a request).
    /// A prompt that begins with one of `configuration.sharedPrefixes` reuses its blocks
    /// whichever tenant computed them.
    public func generate(_ prompt: Prompt, parameters: GenerateParameters = GenerateParameters(),
                         tenant: String) throws(EngineError) -> GenerationStream {
        let ids = try tokens(of: prompt, parameters: parameters)
        return try generate(.tokens(ids), parameters: parameters, salt: ContentAddress.tenantSalt(tenant),
                            sharedPrefixTokens: sharedPrefixes.length(of: ids))
    }

    /// `configuration.sharedPrefixes` as tokens (made on first use).
    public var sharedPrefixes: SharedPrefixes {
        if let made = sharedPrefixMemo.withLock({ $0 }) { return made }
        let made = SharedPrefixes(configuration.sharedPrefixes, engine: self)
        sharedPrefixMemo.withLock { $0 = made }
        return made
    }

    /// The whole answer at once: what a generation streamed, gathered. Throws the engine's error
    /// when the generation ended abnormally.
    public func respond(to prompt: Prompt, parameters: GenerateParameters = GenerateParameters(),
                        tenant: String? = nil) async throws(EngineError) -> GenerationResult {
        let stream: GenerationStream
        if let tenant { stream = try generate(prompt, parameters: parameters, tenant: tenant) } else { stream = try generate(prompt, parameters: parameters) }
        var result = GenerationResult()
        for await event in stream {
            switch event {
            case .token(let token):
                result.tokens.append(token)
                result.text += token.text
            case .summary(let summary):
                result.summary = summary
            }
        }
        if let failure = result.summary?.failure { throw failure }
        return result
    }

    /// Log-probabilities of `continuation` after `prompt`: element i is log p(continuation
    /// token i | the prompt and the continuation's tokens before it). The continuation is
    /// tokenized on its own (no BOS), as a model would have generated it after the prompt.
    public func score(prompt: Prompt, continuation: String) async throws(EngineError) -> [Float] {
        let head = try tokens(of: prompt)
        let tail = tokenizer.encode(continuation, addBOS: false)
        guard !head.isEmpty else { throw EngineError(.emptyPrompt, "the prompt has no tokens") }
        return try await score(head + tail).suffix(tail.count).map { $0 ?? .nan }
    }

    /// Teacher-forced log-probabilities: element i is log p(tokens[i] | tokens[..<i]), nil for
    /// the first. Bitwise equal to the logprobs reported while generating the same tokens.
    public func score(_ tokens: [TokenID]) async throws(EngineError) -> [Float?] {
        try await score(tokens, topLogprobs: 0).map(\.logprob)
    }

    /// Teacher-forced log-probabilities with the `topLogprobs` (0...20) most likely tokens at
    /// each position: element i scores tokens[i] given tokens[..<i]. Each logprob and each
    /// alternative is bitwise equal to what generating the same tokens reports. Cancelling the
    /// calling task stops the work (`.cancelled`).
    public func score(_ tokens: [TokenID], topLogprobs: Int) async throws(EngineError) -> [ScoredToken] {
        guard (0...20).contains(topLogprobs) else {
            throw EngineError(.invalidParameters, "topLogprobs must be in 0...20 (got \(topLogprobs))")
        }
        _ = try self.tokens(of: .tokens(tokens))
        try checkFits(tokens.count, extra: 0)
        let mailbox = self.mailbox
        let channel = RequestChannel(capacity: 1) { mailbox.wake() }
        let result: Result<[ScoredToken], EngineError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let request = EngineRequest(prompt: tokens, parameters: GenerateParameters(maxTokens: 1, logprobs: true, topLogprobs: topLogprobs),
                                            seed: 0, channel: channel, tokenizer: tokenizer)
                request.scoring = continuation
                do throws(EngineError) { try mailbox.submit(request, maxQueued: configuration.maxQueuedRequests) } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        } onCancel: {
            channel.cancel()
        }
        return try result.get()
    }

    private func checkFits(_ promptTokens: Int, extra: Int) throws(EngineError) {
        let context = model.config.contextLength
        guard promptTokens > 0 else { throw EngineError(.emptyPrompt, "the prompt has no tokens") }
        guard promptTokens + extra <= context else {
            throw EngineError(.contextExceeded,
                              "prompt (\(promptTokens) tokens)\(extra > 0 ? " + maxTokens (\(extra))" : "") exceeds the context window of \(context) tokens")
        }
        let blocks = (promptTokens + extra + configuration.blockSize - 1) / configuration.blockSize
        guard blocks <= mailbox.totalBlocks else {
            throw EngineError(.outOfKVMemory,
                              "the request needs \(blocks) KV blocks; the engine has \(mailbox.totalBlocks) in all (raise kvMemoryBytes)")
        }
    }

    /// What the engine is doing now, as of its last step.
    public var stats: EngineStats { mailbox.snapshot() }

    /// Stops accepting requests. `cancelRunning`: end every queued and running request now
    /// (their streams end with a `.cancelled` summary); otherwise let them finish. Returns when
    /// the engine thread has stopped.
    public func shutdown(cancelRunning: Bool = false) async {
        mailbox.stop(cancelRunning: cancelRunning)
        await mailbox.waitUntilStopped()
        await configuration.cache?.flushed()   // pending cache writes are committed before returning
    }
}

/// The engine thread's mailbox: requests handed over by callers, stop orders, and the stats it publishes, behind one lock.
final class EngineMailbox: @unchecked Sendable {
    let totalBlocks: Int
    private let condition = NSCondition()
    private var incoming: [EngineRequest] = []
    private var queued = 0
    private var accepting = true
    private var cancelAll = false
    private var stopped = false
    private var stopWaiters: [CheckedContinuation<Void, Never>] = []
    private var current = EngineStats(runningRequests: 0, queuedRequests: 0, kvBlocksInUse: 0, kvBlocksTotal: 0, steps: 0)

    init(totalBlocks: Int) {
        self.totalBlocks = totalBlocks
        current.kvBlocksTotal = totalBlocks
    }

    func submit(_ request: EngineRequest, maxQueued: Int) throws(EngineError) {
        condition.lock()
        defer { condition.unlock() }
        guard accepting else { throw EngineError(.shutDown, "the engine is shut down") }
        guard queued + incoming.count < maxQueued else {
            throw EngineError(.queueFull, "\(maxQueued) requests are already waiting for KV memory")
        }
        incoming.append(request)
        condition.signal()
    }

    func wake() {
        condition.lock()
        condition.signal()
        condition.unlock()
    }

    /// Engine thread: new requests, and whether to stop. While there is nothing to do (`idle`)
    /// it blocks until a request or a stop comes, or at most `timeout` (the wait for giving idle
    /// memory back); a stopping engine that is idle does not wait at all. While work is paused
    /// by slow consumers it blocks up to `timeout`.
    func take(idle: Bool, timeout: TimeInterval?) -> (requests: [EngineRequest], accepting: Bool, cancelAll: Bool) {
        condition.lock()
        defer { condition.unlock() }
        if incoming.isEmpty && !cancelAll {
            if idle {
                if accepting {
                    if let timeout { _ = condition.wait(until: Date(timeIntervalSinceNow: timeout)) } else { condition.wait() }
                }
            } else if let timeout {
                _ = condition.wait(until: Date(timeIntervalSinceNow: timeout))
            }
        }
        let taken = incoming
        incoming.removeAll()
        return (taken, accepting, cancelAll)
    }

    func publish(_ stats: EngineStats, queued: Int) {
        condition.lock()
        current = stats
        current.kvBlocksTotal = totalBlocks
        self.queued = queued
        condition.unlock()
    }

    func snapshot() -> EngineStats { condition.lock(); defer { condition.unlock() }; return current }

    func stop(cancelRunning: Bool) {
        condition.lock()
        accepting = false
        if cancelRunning { cancelAll = true }
        condition.signal()
        condition.unlock()
    }

    func markStopped() {
        condition.lock()
        stopped = true
        let waiters = stopWaiters
        stopWaiters.removeAll()
        condition.unlock()
        for w in waiters { w.resume() }
    }

    func waitUntilStopped() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            if stopped { condition.unlock(); continuation.resume(); return }
            stopWaiters.append(continuation)
            condition.unlock()
        }
    }
}
