import Foundation
import VerbatimKernels
import VerbatimCache
import VerbatimCore
import VerbatimModel

/// One request inside the engine thread.
final class EngineRequest: @unchecked Sendable {
    // Sendable: created by a caller, then touched only by the engine thread.
    let prompt: [TokenID]
    let parameters: GenerateParameters
    let channel: RequestChannel
    var sampler: Sampler
    var detokenizer: StreamingDetokenizer
    var scoring: CheckedContinuation<Result<[ScoredToken], EngineError>, Never>?
    var scores: [ScoredToken] = []

    var sequence: SequenceID = -1
    var prefilled = 0                  // prefillTokens whose KV is written
    var prefillDelay = 0               // steps in a row this prefilling request got no rows
    var prefilledAtStep = -1           // the last step that took some of its prompt
    /// Tokens to prefill: the prompt, plus (when continuing a cached completion) all replayed
    /// tokens but the last, which is fed as the first decode token.
    var prefillTokens: [TokenID]
    let salt: [UInt8]
    /// Leading prompt tokens that are an operator-declared shared prefix: their whole blocks are
    /// cached without the salt, so every tenant reuses them.
    let sharedPrefixTokens: Int
    var cachedPromptTokens = 0
    var completionFromCache = false
    /// The model's logprob of every generated token (kept for the completion cache).
    var allLogprobs: [Float] = []
    var blocksStored = 0               // full KV blocks already in the cache (restored or written)
    var chain: [Digest128] = []        // content addresses of this sequence's full blocks so far
    var generated: [TokenID] = []
    /// Speculation in the current step: the draft tokens fed after its decode row, its rows
    /// handled so far, and whether the model rejected a draft (the rows after it are void).
    var draft: [TokenID] = []
    var rowsHandled = 0
    var draftRejected = false
    var pendingText = ""               // held back: might begin a stop string
    let submitted = ContinuousClock.now
    var firstToken: ContinuousClock.Instant?

    init(prompt: [TokenID], parameters: GenerateParameters, seed: UInt64, channel: RequestChannel, tokenizer: Tokenizer,
         salt: [UInt8] = [], sharedPrefixTokens: Int = 0) {
        self.prompt = prompt
        self.prefillTokens = prompt
        self.salt = salt
        self.sharedPrefixTokens = min(max(sharedPrefixTokens, 0), prompt.count)
        self.parameters = parameters
        self.channel = channel
        sampler = Sampler(parameters: parameters, seed: seed)
        detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
    }

    var isScoring: Bool { scoring != nil }
    var isPrefilling: Bool { prefilled < prefillTokens.count }
    /// Prompt tokens whose KV is still to be written.
    var promptRowsLeft: Int { prefillTokens.count - prefilled }
    /// Positions this request may write in all.
    var positionsNeeded: Int { isScoring ? prompt.count : prompt.count + parameters.maxTokens }
}

/// The engine thread: admits requests, builds each step's flat batch under a token budget
/// (decode tokens first, then prefill chunks), runs it, samples, and streams the results.
final class EngineWorker: @unchecked Sendable {
    // Sendable: used only by the engine thread once started.
    let pass: ForwardPass
    let tokenizer: Tokenizer
    let mailbox: EngineMailbox
    let configuration: EngineConfiguration
    private var waiting: [EngineRequest] = []     // FIFO: waiting for KV memory
    private var running: [EngineRequest] = []     // admitted, in admission order
    private var nextSequence: SequenceID = 0
    private var steps = 0
    private var draftTokensChecked = 0
    private var draftTokensAccepted = 0
    private var decoding: [EngineRequest] = []    // this step's decode rows' requests
    private var batch: [BatchToken] = []
    private var rowOwners: [EngineRequest] = []
    /// Requests whose prefill finishes in this step: their new full blocks go to the cache after it.
    private var pendingBlockWrites: [EngineRequest] = []
    /// The requests still prefilling, in the order they get this step's rows (reused: no allocation per step).
    private var prefilling: [EngineRequest] = []
    /// The prompt rows each of `prefilling` gets this step (reused).
    private var prefillRows: [Int] = []
    let scheduler: Scheduler
    /// Log-probabilities of the row being handled.
    private var rowLogprobs: LogprobRow
    let cache: EngineCache?

    init(pass: ForwardPass, tokenizer: Tokenizer, mailbox: EngineMailbox, configuration: EngineConfiguration, cache: EngineCache?) {
        self.cache = cache
        self.pass = pass
        self.tokenizer = tokenizer
        self.mailbox = mailbox
        self.configuration = configuration
        scheduler = Scheduler(configuration)
        rowLogprobs = LogprobRow(vocabularySize: pass.model.config.vocabularySize)
        batch.reserveCapacity(configuration.maxBatchTokens)
        rowOwners.reserveCapacity(configuration.maxBatchTokens)
    }

    func run() {
        KernelConfig.callerThreads = configuration.threads   // this engine's share of the kernel pool
        var paused = false
        var discarded = false
        var idleSince: ContinuousClock.Instant?
        while true {
            let idle = waiting.isEmpty && running.isEmpty
            // Idle for idleMemoryDelay: KV memory and the step's scratch go back to the OS until the
            // next request needs them. Until then the engine waits for requests at most that long.
            var wait: TimeInterval? = paused ? 0.001 : nil
            if !idle {
                idleSince = nil
                discarded = false
            } else {
                wait = nil   // until a request comes (or the delay ends)
                if !discarded {
                    let since = idleSince ?? ContinuousClock.now
                    idleSince = since
                    let left = configuration.idleMemoryDelay - (ContinuousClock.now - since)
                    if left <= .zero {
                        pass.kv.discardFreeBlocks()
                        pass.discardScratch()
                        discarded = true
                    } else {
                        wait = left.inSeconds
                    }
                }
            }
            let (incoming, accepting, cancelAll) = mailbox.take(idle: idle, timeout: wait)
            waiting += incoming
            if cancelAll {
                for r in running + waiting { finish(r, reason: .cancelled) }
                running.removeAll(); waiting.removeAll()
            }
            dropCancelled()
            admit()
            publish()
            if running.isEmpty && waiting.isEmpty && !accepting { break }
            paused = !buildBatch()
            if paused { continue }
            do {
                let started = ContinuousClock.now
                try pass.step(batch) { index, logits in self.handle(row: index, logits: logits) }
                steps += 1
                if let cache {
                    cache.noteStep(tokens: batch.count, duration: ContinuousClock.now - started)
                    for r in pendingBlockWrites where r.sequence >= 0 { cache.storeBlocks(r, from: pass.kv) }
                }
                pendingBlockWrites.removeAll(keepingCapacity: true)
            } catch {
                // Batches are built from validated requests; a failure here is a bug. Fail the
                // requests of this step rather than the engine.
                for r in Set(rowOwners.map(ObjectIdentifier.init)).compactMap({ id in rowOwners.first { ObjectIdentifier($0) == id } }) {
                    fail(r, EngineError(.invalidPrompt, "forward step failed: \(error)"))
                }
            }
            running.removeAll { $0.sequence < 0 }
            publish()   // after the step too: the engine may go idle next, and stats must not go stale
        }
        publish()
        mailbox.markStopped()
    }

    private func publish() {
        mailbox.publish(EngineStats(runningRequests: running.count, queuedRequests: waiting.count,
                                   kvBlocksInUse: pass.kv.blockCount - pass.kv.freeBlockCount,
                                   kvBlocksTotal: pass.kv.blockCount, steps: steps,
                                   draftTokensChecked: draftTokensChecked, draftTokensAccepted: draftTokensAccepted),
                        queued: waiting.count)
    }

    private func dropCancelled() {
        func drop(_ r: EngineRequest) {
            if let scoring = r.scoring {
                scoring.resume(returning: .failure(EngineError(.cancelled, "scoring was cancelled")))
                r.scoring = nil
            }
            release(r)
        }
        for r in running where r.channel.isCancelled { drop(r) }
        for r in waiting where r.channel.isCancelled { drop(r) }
        running.removeAll { $0.sequence < 0 }
        waiting.removeAll { $0.channel.isCancelled }
    }

    /// Admits waiting requests in order while their whole KV need fits (no preemption later).
    private func admit() {
        while let r = waiting.first, running.count < configuration.maxRunningRequests {
            let blocks = (r.positionsNeeded + pass.kv.blockSize - 1) / pass.kv.blockSize
            guard blocks <= pass.kv.freeBlockCount else { break }
            waiting.removeFirst()
            if let cache, !r.isScoring, cache.replayCompletion(r, worker: self) { continue }
            r.sequence = nextSequence
            nextSequence += 1
            if let cache, !r.isScoring { cache.restorePrefix(r, into: pass.kv) }
            try! pass.kv.reserve(r.sequence, tokens: r.positionsNeeded)  // fits: checked above
            running.append(r)
        }
    }

    /// Fills `batch`; false when nothing can run now (every consumer is behind).
    private func buildBatch() -> Bool {
        batch.removeAll(keepingCapacity: true)
        rowOwners.removeAll(keepingCapacity: true)
        let budget = configuration.maxBatchTokens
        decoding.removeAll(keepingCapacity: true)
        for r in running where !r.isPrefilling && decoding.count < budget && r.channel.hasRoom { decoding.append(r) }
        // Prompt chunks share what decode leaves, as the scheduler arranges them; drafts take
        // what both leave.
        prefilling.removeAll(keepingCapacity: true)
        for r in running where r.isPrefilling { prefilling.append(r) }   // admission order
        scheduler.arrange(&prefilling)
        scheduler.share(budget - decoding.count, among: prefilling, into: &prefillRows)
        var spare = budget - decoding.count - prefillRows.reduce(0, +)
        let contextLength = pass.model.config.contextLength
        for r in decoding {
            let position = r.prompt.count + r.generated.count - 1
            r.draft.removeAll(keepingCapacity: true)
            r.rowsHandled = 0
            r.draftRejected = false
            if configuration.draftTokens > 0 && spare > 0 {
                // Only rows whose token could still be emitted: the request stops at maxTokens and
                // at the context length; and no more tokens than its consumer has room for.
                let limit = min(configuration.draftTokens, spare, r.parameters.maxTokens - r.generated.count - 1,
                                contextLength - 2 - position, r.channel.room - 1)
                r.draft = PromptLookup.draft(prompt: r.prompt, generated: r.generated, limit: limit)
                spare -= r.draft.count
            }
            batch.append(BatchToken(sequence: r.sequence, position: position, token: r.generated[r.generated.count - 1], wantsLogits: true))
            rowOwners.append(r)
            for (i, token) in r.draft.enumerated() {
                batch.append(BatchToken(sequence: r.sequence, position: position + 1 + i, token: token, wantsLogits: true))
                rowOwners.append(r)
            }
        }
        for (r, rows) in zip(prefilling, prefillRows) where rows > 0 { addPrefill(r, rows: rows) }
        for r in prefilling { r.prefillDelay = r.prefilledAtStep == steps ? 0 : r.prefillDelay + 1 }
        return !batch.isEmpty
    }

    /// Adds up to `rows` of `r`'s next prompt tokens to the batch.
    private func addPrefill(_ r: EngineRequest, rows: Int) {
        let end = min(r.prefillTokens.count, r.prefilled + rows)
        if end > r.prefilled { r.prefilledAtStep = steps }
        for p in r.prefilled..<end {
            batch.append(BatchToken(sequence: r.sequence, position: p, token: r.prefillTokens[p],
                                    wantsLogits: r.isScoring || (p == r.prefillTokens.count - 1 && r.generated.isEmpty)))
            rowOwners.append(r)
        }
        r.prefilled = end
        if !r.isPrefilling && !r.isScoring { pendingBlockWrites.append(r) }
    }

    private func handle(row: Int, logits: UnsafeBufferPointer<Float>) {
        let r = rowOwners[row]
        guard r.sequence >= 0 else { return }
        if r.isScoring {
            let position = batch[row].position
            if r.scores.isEmpty { r.scores.append(ScoredToken(id: r.prompt[0], logprob: nil)) }
            if position + 1 < r.prompt.count {
                rowLogprobs.fill(from: logits)
                let next = r.prompt[position + 1]
                r.scores.append(ScoredToken(id: next, logprob: rowLogprobs[next], topLogprobs: rowLogprobs.mostLikely(r.parameters.topLogprobs)))
            } else {
                r.scoring?.resume(returning: .success(r.scores))
                r.scoring = nil
                release(r)
            }
            return
        }

        if r.draftRejected { return }   // fed a draft token the model did not choose
        let step = r.generated.count
        let token = r.sampler.sample(logits, step: step)
        if r.rowsHandled < r.draft.count {
            draftTokensChecked += 1
            if token == r.draft[r.rowsHandled] {
                draftTokensAccepted += 1
            } else {
                // The next rows were fed a token the model did not choose: their KV is void
                // (forgotten before anything, the prefix cache included, can read it).
                r.draftRejected = true
                pass.kv.forget(r.sequence, from: batch[row].position + 1)
            }
        }
        r.rowsHandled += 1
        var logprob: Float?
        var top: [(id: TokenID, logprob: Float)] = []
        if r.parameters.logprobs || cache?.completions == true {
            rowLogprobs.fill(from: logits)
            logprob = rowLogprobs[token]
            if r.parameters.logprobs { top = rowLogprobs.mostLikely(r.parameters.topLogprobs) }
        }
        emit(r, token: token, logprob: logprob, top: top)
    }

    /// Appends a token to a request, streams it (text delta, stop strings, logprobs) and
    /// finishes the request when it stops. Used for sampled and for replayed tokens alike.
    func emit(_ r: EngineRequest, token: TokenID, logprob: Float?, top: [(id: TokenID, logprob: Float)]) {
        r.generated.append(token)
        if let logprob { r.allLogprobs.append(logprob) }
        if r.firstToken == nil { r.firstToken = .now }
        var event = GeneratedToken(id: token, text: "", logprob: r.parameters.logprobs ? logprob : nil, topLogprobs: top)
        var reason: StopReason?
        if r.parameters.stopAtEOS && token == tokenizer.eosID { reason = .eos }
        else if r.parameters.stopTokens.contains(token) { reason = .stop }
        r.pendingText += (try? r.detokenizer.append(token)) ?? ""
        if reason == nil, r.generated.count >= r.parameters.maxTokens { reason = .length }
        if reason == nil, r.prompt.count + r.generated.count >= pass.model.config.contextLength { reason = .length }

        // Stop strings: cut the text before the first one; otherwise hold back a suffix that
        // could still become one.
        let split = StopStrings.split(r.pendingText, stops: r.parameters.stopStrings)
        if split.stopped {
            event.text = split.emit
            r.pendingText = ""
            reason = .stop
        } else if reason != nil {
            event.text = r.pendingText + r.detokenizer.finish()
            r.pendingText = ""
        } else {
            event.text = split.emit
            r.pendingText = split.held
        }
        r.channel.send(.token(event))
        if let reason { finish(r, reason: reason) }
    }

    func finish(_ r: EngineRequest, reason: StopReason) {
        cache?.flushCompute()
        // The last token's KV is written only when a draft row took it as input; a run without
        // drafts never writes it, and the cache must hold what that run holds.
        if r.sequence >= 0 && !r.isScoring { pass.kv.forget(r.sequence, from: r.prompt.count + r.generated.count - 1) }
        if let cache, reason != .cancelled, r.scoring == nil {
            if r.sequence >= 0 { cache.storeBlocks(r, from: pass.kv) }
            cache.storeCompletion(r, reason: reason)
        }
        if let scoring = r.scoring {
            scoring.resume(returning: .failure(EngineError(.shutDown, "the engine shut down before scoring finished")))
            r.scoring = nil
        } else {
            r.channel.send(.summary(summary(r, reason)))
        }
        release(r)
    }

    /// The last event of `r`'s stream.
    private func summary(_ r: EngineRequest, _ reason: StopReason, failure: EngineError? = nil) -> GenerationSummary {
        let now = ContinuousClock.now
        return GenerationSummary(
            promptTokens: r.prompt.count, cachedPromptTokens: r.cachedPromptTokens, generatedTokens: r.generated.count,
            completionFromCache: r.completionFromCache, timeToFirstToken: (r.firstToken ?? now) - r.submitted,
            totalTime: now - r.submitted, stopReason: reason, seed: r.parameters.temperature == 0 ? nil : r.sampler.seed,
            failure: failure)
    }

    /// Ends a request abnormally: a scoring call throws `error`, a stream ends with a summary
    /// whose stop reason is `.failed` and whose `failure` is `error`.
    private func fail(_ r: EngineRequest, _ error: EngineError) {
        if let scoring = r.scoring {
            scoring.resume(returning: .failure(error))
            r.scoring = nil
        } else {
            r.channel.send(.summary(summary(r, .failed, failure: error)))
        }
        release(r)
    }

    /// Frees the request's KV and ends its stream.
    private func release(_ r: EngineRequest) {
        if r.sequence >= 0 { pass.kv.release(r.sequence) }
        r.sequence = -1
        r.channel.finish()
    }
}
