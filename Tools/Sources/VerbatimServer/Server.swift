import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import Verbatim
import VerbatimCache
import VerbatimModel

/// How the service runs.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (reported through `onListening`).
    public var port = 8080
    /// The name clients pass as `model` (also listed by `/v1/models`).
    public var modelName: String
    /// API keys; nil serves without authentication (one shared tenant). The file's shared
    /// prefixes take effect through the engine's `EngineConfiguration.sharedPrefixes` (`verbatim
    /// serve` puts them there).
    public var tenants: TenantDirectory?
    public var maxBodyBytes = 1 << 20
    /// The chat template for `/v1/chat/completions` in place of the model's own (required for a
    /// model whose file has none, such as a base model).
    public var chatTemplate: ChatTemplate?
    /// A request still running after this is cancelled, whatever it is doing (reading its
    /// body, tokenizing, generating): 504, or an error event on a stream. SIGTERM waits at most
    /// this long (plus the cache flush) for in-flight requests.
    public var requestTimeout: Duration = .seconds(600)

    public init(modelName: String) { self.modelName = modelName }
}

/// Prometheus metrics of the service (`GET /metrics`).
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let promptTokens: Counter, completionTokens: Counter, prefixHitTokens: Counter, completionHits: Counter
    let ttft: DurationHistogram, tpot: DurationHistogram
    let queueDepth: Gauge, runningRequests: Gauge, cacheBytes: Gauge
    let draftTokensChecked: Gauge, draftTokensAccepted: Gauge
    let failedWrites: Gauge, droppedWrites: Gauge, writesFailing: Gauge, cacheDamaged: Gauge

    init() {
        promptTokens = registry.makeCounter(name: "verbatim_prompt_tokens_total", help: "Prompt tokens received")
        completionTokens = registry.makeCounter(name: "verbatim_completion_tokens_total", help: "Tokens generated or replayed")
        prefixHitTokens = registry.makeCounter(name: "verbatim_prefix_hit_tokens_total", help: "Prompt tokens restored from the prefix cache")
        completionHits = registry.makeCounter(name: "verbatim_completion_hits_total", help: "Requests answered from the completion cache")
        let buckets: [Duration] = [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                   .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5)]
        ttft = registry.makeDurationHistogram(name: "verbatim_time_to_first_token_seconds", buckets: buckets, help: "Time to first token")
        tpot = registry.makeDurationHistogram(name: "verbatim_time_per_output_token_seconds", buckets: buckets, help: "Time per output token after the first")
        queueDepth = registry.makeGauge(name: "verbatim_queue_depth", help: "Requests waiting for KV memory")
        runningRequests = registry.makeGauge(name: "verbatim_running_requests", help: "Requests being generated")
        draftTokensChecked = registry.makeGauge(name: "verbatim_draft_tokens_checked", help: "Draft tokens compared with the model's choice since the service started (--draft-tokens)")
        draftTokensAccepted = registry.makeGauge(name: "verbatim_draft_tokens_accepted", help: "Draft tokens the model chose since the service started")
        cacheBytes = registry.makeGauge(name: "verbatim_cache_payload_bytes", help: "Bytes of KV blocks and completions in the cache")
        failedWrites = registry.makeGauge(name: "verbatim_cache_failed_writes", help: "Cache entries whose write failed (full disk, damage) since the service started")
        droppedWrites = registry.makeGauge(name: "verbatim_cache_dropped_writes", help: "Cache entries not written (writer behind, or writes failing) since the service started")
        writesFailing = registry.makeGauge(name: "verbatim_cache_writes_failing", help: "1 while cache writes fail (retried with a back-off), else 0")
        cacheDamaged = registry.makeGauge(name: "verbatim_cache_damaged", help: "1 once the cache file was found damaged (run cachectl salvage), else 0")
    }

    func request(_ endpoint: String, _ status: Int) {
        registry.makeCounter(name: "verbatim_requests_total", labels: [("endpoint", endpoint), ("status", String(status))],
                             help: "HTTP requests by endpoint and status").increment()
    }

    func record(_ summary: GenerationSummary) {
        promptTokens.increment(by: Int64(summary.promptTokens))
        completionTokens.increment(by: Int64(summary.generatedTokens))
        prefixHitTokens.increment(by: Int64(summary.cachedPromptTokens))
        if summary.completionFromCache { completionHits.increment() }
        ttft.record(summary.timeToFirstToken)
        if summary.generatedTokens > 1 {
            tpot.record((summary.totalTime - summary.timeToFirstToken) / (summary.generatedTokens - 1))
        }
    }
}

/// The OpenAI-compatible service around one engine.
public final class VerbatimService: Sendable {
    public let engine: Engine
    public let configuration: ServerConfiguration
    let tokenizer: Tokenizer
    let cache: CacheStore?
    let metrics = ServerMetrics()
    /// Numerics profile and model digest: same fingerprint and same request give the same bits.
    public let systemFingerprint: String

    /// The service over `engine`: its tokenizer, its cache (`EngineConfiguration.cache`) and its
    /// model's digest are the service's.
    public init(engine: Engine, configuration: ServerConfiguration) {
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.cache = engine.configuration.cache
        self.configuration = configuration
        systemFingerprint = "fp_" + String(engine.model.digest.description.prefix(16)) + "_" + engine.numericsProfile
            .replacingOccurrences(of: "verbatim-numerics/", with: "vn").replacingOccurrences(of: " ", with: "_")
    }

    /// Runs until SIGTERM or SIGINT (or the task is cancelled): stops accepting, lets
    /// in-flight requests finish, shuts the engine down and flushes the cache.
    public func run(handleSignals: Bool = true, logger: Logger = Logger(label: "verbatim"),
                    onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = Application(
            router: makeRouter(),
            server: .http1(additionalChannelHandlers: [ConnectionWatch()]),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "verbatim"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        do {
            if handleSignals { try await app.runService() } else { try await app.runService(gracefulShutdownSignals: []) }
        } catch {
            await finish()
            throw error
        }
        await finish()
    }

    private func finish() async {
        await engine.shutdown()
        await cache?.flushed()
    }

    func makeRouter() -> Router<ServiceRequestContext> {
        let router = Router(context: ServiceRequestContext.self)
        router.get("/health") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"status":"ok"}"#)))
        }
        router.get("/v1/models") { [self] request, _ in
            await respond("models") {
                _ = try self.tenant(request)
                return JSONBody.response(200, ModelList(data: [.init(id: self.configuration.modelName)]))
            }
        }
        router.get("/metrics") { [self] _, _ in
            let stats = engine.stats
            metrics.queueDepth.set(Double(stats.queuedRequests))
            metrics.runningRequests.set(Double(stats.runningRequests))
            metrics.draftTokensChecked.set(Double(stats.draftTokensChecked))
            metrics.draftTokensAccepted.set(Double(stats.draftTokensAccepted))
            if let cache {
                let health = cache.health
                metrics.failedWrites.set(Double(health.failedWrites))
                metrics.droppedWrites.set(Double(health.droppedWrites))
                metrics.writesFailing.set(Double(health.writeFailure == nil ? 0 : 1))
                metrics.cacheDamaged.set(Double(health.damage == nil ? 0 : 1))
            }
            if let cache, let s = try? await cache.stats() {
                metrics.cacheBytes.set(Double(s.payloadBytes))
                // Entries served by each tier (local LMDB, a shared tier) and the shared tier's failures.
                for (key, value) in s.counters where key.hasPrefix("tier.") {
                    let parts = key.split(separator: ".", maxSplits: 2).map(String.init)
                    guard parts.count == 3 else { continue }
                    metrics.registry.makeGauge(name: "verbatim_cache_tier_events", labels: [("tier", parts[1]), ("event", parts[2])],
                                               help: "Cache tier events since the cache was created (entries hit, corrupt, errors, written)")
                        .set(Double(value))
                }
            }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                            body: .init(byteBuffer: ByteBuffer(bytes: metrics.registry.emitToBuffer())))
        }
        router.post("/v1/completions") { [self] request, context in
            await respond("completions") { try await self.generate(request, context, chat: false) }
        }
        router.post("/v1/chat/completions") { [self] request, context in
            await respond("chat") { try await self.generate(request, context, chat: true) }
        }
        return router
    }

    /// Turns any failure into an OpenAI error response, and counts the request.
    private func respond(_ endpoint: String, _ body: () async throws -> Response) async -> Response {
        let response: Response
        do {
            response = try await body()
        } catch {
            response = APIError(error, maxBodyBytes: configuration.maxBodyBytes).response
        }
        // A stream's status is known only when it ends: its body counts it (200, 499 or 504).
        if response.headers[.contentType] != "text/event-stream" { metrics.request(endpoint, Int(response.status.code)) }
        return response
    }

    private func tenant(_ request: Request) throws(APIError) -> String? {
        guard let tenants = configuration.tenants else { return nil }
        return try tenants.tenant(authorization: request.headers[.authorization])
    }

    // MARK: - Generation

    private func generate(_ request: Request, _ context: ServiceRequestContext, chat: Bool) async throws -> Response {
        let tenant = try tenant(request)
        // One time limit for the whole request: reading, tokenizing, generating.
        let deadline = ContinuousClock.now + configuration.requestTimeout
        let connection = await ConnectionWatch.state(of: context.channel)
        var request = request
        let limit = configuration.maxBodyBytes
        let body: ByteBuffer
        do {
            // Under the time limit too: a client that stops sending without closing is cut off.
            body = try await untilDone(deadline, connection) { [request] in
                var request = request
                return try await request.collectBody(upTo: limit)
            }
        } catch let error as NIOTooManyBytesError {
            throw error
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw error
        } catch let error as APIError {
            throw error
        } catch {
            // The connection ended before the body did: the client left.
            throw APIError(499, "the client closed the connection before sending the whole body (\(error))", code: "client_closed")
        }
        let parsed = try GenerationRequest.parse(Data(buffer: body), chat: chat)
        if let model = parsed.model, model != configuration.modelName {
            throw APIError(404, "the model '\(model)' does not exist; this server serves '\(configuration.modelName)'", param: "model", code: "model_not_found")
        }
        // Tokenizing (and rendering a chat template) runs on a thread of its own, cancelled when
        // the client leaves or the time is up, so hostile prompts never stall other endpoints.
        let engine = self.engine
        var prompts: [PromptInfo] = []
        for prompt in parsed.prompts(template: configuration.chatTemplate) {
            let tokens = try await untilDone(deadline, connection) { try await engine.tokenize(prompt, parameters: parsed.parameters) }
            let text: String
            switch prompt {
            case .text(let t): text = t
            case .tokens(let ids): text = (try? tokenizer.decode(ids, includeControl: true)) ?? ""
            case .chat: text = ""
            }
            prompts.append(PromptInfo(tokens: tokens, text: text))
        }
        // Echo with logprobs: the prompt's own log-probabilities, once per prompt.
        if parsed.echo && parsed.logprobs {
            for p in prompts.indices {
                let tokens = prompts[p].tokens
                prompts[p].scored = try await untilDone(deadline, connection) {
                    try await engine.score(tokens, topLogprobs: parsed.topLogprobs)
                }
            }
        }
        // Sample j of every prompt draws from sampleSeed(j, base:), so each choice can be replayed alone.
        let baseSeed = parsed.seed ?? UInt64.random(in: 0..<(1 << 53))   // reported, and exact when sent back
        var choices: [Choice] = []
        for (p, prompt) in prompts.enumerated() {
            for j in 0..<parsed.n {
                choices.append(Choice(prompt: p, seed: GenerateParameters.sampleSeed(j, base: baseSeed)))
            }
        }
        var streams: [GenerationStream] = []
        if parsed.maxTokens > 0 {
            for choice in choices {
                var parameters = parsed.parameters
                parameters.seed = choice.seed
                let tokens = prompts[choice.prompt].tokens
                // A tenant's requests share cache entries only with that tenant's, and the shared
                // prefixes (EngineConfiguration.sharedPrefixes) with everyone.
                if let tenant {
                    streams.append(try engine.generate(.tokens(tokens), parameters: parameters, tenant: tenant))
                } else {
                    streams.append(try engine.generate(.tokens(tokens), parameters: parameters))
                }
            }
        }
        let reply = Reply(id: (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24),
                          created: Int(Date().timeIntervalSince1970), chat: chat, request: parsed, prompts: prompts, choices: choices,
                          seed: parsed.temperature == 0 ? nil : baseSeed)
        if parsed.stream {
            return streamingResponse(streams, reply, connection: connection, deadline: deadline)
        }
        let started = streams, count = choices.count
        let collected = try await untilDone(deadline, connection, onStop: { for s in started { s.cancel() } }) {
            await withTaskGroup(of: (Int, Collected).self) { group in
                for (i, stream) in started.enumerated() { group.addTask { (i, await Collected.gather(stream)) } }
                var all = [Collected](repeating: Collected(), count: count)
                for await (i, c) in group { all[i] = c }
                return all
            }
        }
        for c in collected {
            if let failure = c.summary?.failure {
                throw APIError(500, "generation failed: \(failure.message)", type: "server_error", code: failure.code.rawValue)
            }
        }
        for c in collected { if let summary = c.summary { metrics.record(summary) } }
        return JSONBody.response(200, completionBody(collected, reply))
    }

    /// The first of three: `work` finishing, the deadline (504), the client going away (499).
    /// `onStop` runs when `work` lost, before waiting for it to wind down (it must make `work`
    /// end, as cancelling a generation's stream does; task cancellation is signalled too).
    private func untilDone<T: Sendable>(_ deadline: ContinuousClock.Instant, _ connection: ConnectionState,
                                        onStop: @escaping @Sendable () -> Void = {},
                                        _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let outcome = try await withThrowingTaskGroup(of: RaceOutcome<T>.self) { group in
            group.addTask { .done(try await work()) }
            group.addTask { try await Task.sleep(until: deadline, clock: .continuous); return .timedOut }
            group.addTask { try await connection.waitUntilClosed(); return .disconnected }
            defer { group.cancelAll() }
            do {
                let first = try await group.next()!
                if case .done = first {} else { onStop() }
                return first
            } catch {
                onStop()
                throw error
            }
        }
        switch outcome {
        case .done(let value): return value
        case .timedOut: throw APIError(504, "the request took longer than \(configuration.requestTimeout)", type: "server_error", code: "timeout")
        case .disconnected: throw APIError(499, "the client closed the connection", type: "invalid_request_error", code: "client_closed")
        }
    }

    enum RaceOutcome<T: Sendable>: Sendable { case done(T), timedOut, disconnected }

    /// One prompt of a request: its tokens, its text (for echo), and its scores (echo with logprobs).
    struct PromptInfo: Sendable {
        var tokens: [TokenID]
        var text: String
        var scored: [ScoredToken]?
    }

    /// One choice of a response: which prompt it continues and the seed of its sample.
    struct Choice: Sendable {
        var prompt: Int
        var seed: UInt64
    }

    /// What every part of one response shares.
    struct Reply: Sendable {
        var id: String
        var created: Int
        var chat: Bool
        var request: GenerationRequest
        var prompts: [PromptInfo]
        var choices: [Choice]
        /// The request's seed (given or picked); nil when greedy.
        var seed: UInt64?
    }

    /// Everything a non-streaming response needs of one choice.
    struct Collected: Sendable {
        var tokens: [GeneratedToken] = []
        var text = ""
        var summary: GenerationSummary?

        static func gather(_ stream: GenerationStream) async -> Collected {
            var c = Collected()
            for await event in stream {
                switch event {
                case .token(let t): c.tokens.append(t); c.text += t.text
                case .summary(let s): c.summary = s
                }
            }
            return c
        }
    }

    private func finishReason(_ summary: GenerationSummary?, _ r: GenerationRequest) -> String {
        if r.maxTokens == 0 { return "length" }   // echo alone: nothing was to be generated
        switch summary?.stopReason {
        case .length?: return "length"
        case .cancelled?: return "cancelled"
        default: return "stop"
        }
    }

    /// Prompt tokens count once per prompt (cached ones as its first sample found them),
    /// completion tokens once per choice.
    private func usage(_ summaries: [GenerationSummary?], _ reply: Reply) -> Usage {
        let prompt = reply.prompts.reduce(0) { $0 + $1.tokens.count }
        let generated = summaries.reduce(0) { $0 + ($1?.generatedTokens ?? 0) }
        var cached = 0
        for p in reply.prompts.indices {
            if let first = reply.choices.firstIndex(where: { $0.prompt == p }), first < summaries.count {
                cached += summaries[first]?.cachedPromptTokens ?? 0
            }
        }
        return Usage(prompt_tokens: prompt, completion_tokens: generated, total_tokens: prompt + generated,
                     prompt_tokens_details: .init(cached_tokens: cached))
    }

    private func tokenText(_ id: TokenID) -> String { (try? tokenizer.decode([id], includeControl: true)) ?? "" }

    /// The log-probabilities of a choice's part: its generated tokens, after the prompt's scored
    /// tokens when they are echoed. Every value is the model's own log-probability (the full
    /// softmax), never renormalised by top-k, top-p or min-p.
    private func logprobs(_ tokens: [GeneratedToken], echoed: [ScoredToken] = [], textOffset: Int = 0, chat: Bool) -> Logprobs {
        if chat {
            return .chat(Logprobs.Chat(content: tokens.map { t in
                let text = tokenText(t.id)
                return Logprobs.Chat.Token(token: text, logprob: Double(t.logprob ?? 0), bytes: Array(text.utf8).map(Int.init),
                                           top_logprobs: t.topLogprobs.map { alt in
                                               let s = tokenText(alt.id)
                                               return .init(token: s, logprob: Double(alt.logprob), bytes: Array(s.utf8).map(Int.init))
                                           })
            }))
        }
        func alternatives(_ top: [(id: TokenID, logprob: Float)]) -> [String: Double] {
            Dictionary(top.map { (tokenText($0.id), Double($0.logprob)) }, uniquingKeysWith: max)
        }
        var l = Logprobs.Completion()
        var offset = 0
        for s in echoed {
            let name = tokenText(s.id)
            l.tokens.append(name)
            l.token_logprobs.append(s.logprob.map(Double.init))
            l.top_logprobs.append(s.logprob == nil ? nil : alternatives(s.topLogprobs))
            l.text_offset.append(offset)
            offset += name.utf8.count
        }
        offset = max(offset, textOffset)
        for t in tokens {
            l.tokens.append(tokenText(t.id))
            l.token_logprobs.append(Double(t.logprob ?? 0))
            l.top_logprobs.append(alternatives(t.topLogprobs))
            l.text_offset.append(offset)
            offset += t.text.utf8.count
        }
        return .completion(l)
    }

    private func completionBody(_ collected: [Collected], _ reply: Reply) -> CompletionBody {
        let r = reply.request
        var choices: [ChoiceBody] = []
        for (index, choice) in reply.choices.enumerated() {
            let c = index < collected.count ? collected[index] : Collected()
            let prompt = reply.prompts[choice.prompt]
            var body = ChoiceBody(index: index, finishReason: finishReason(c.summary, r), tokenIDs: c.tokens.map(\.id))
            if r.logprobs {
                body.logprobs = r.echo
                    ? logprobs(c.tokens, echoed: prompt.scored ?? [], textOffset: prompt.text.utf8.count, chat: false)
                    : logprobs(c.tokens, chat: reply.chat)
            }
            if r.returnTokenIDs { body.promptTokenIDs = prompt.tokens }
            if r.n > 1, reply.seed != nil { body.seed = choice.seed }
            if reply.chat { body.message = ChatDelta(role: "assistant", content: c.text) } else { body.text = (r.echo ? prompt.text : "") + c.text }
            choices.append(body)
        }
        return CompletionBody(id: reply.id, object: reply.chat ? "chat.completion" : "text_completion", created: reply.created,
                              model: configuration.modelName, systemFingerprint: systemFingerprint, choices: choices,
                              usage: usage(collected.map(\.summary), reply), seed: .some(reply.seed))
    }

    /// Server-sent events in OpenAI's chunk format: each choice's tokens as they come (chunks
    /// of different choices interleave, told apart by `index`), a last chunk per choice with its
    /// finish reason, the usage chunk on request (no choices), then `data: [DONE]`. A client that
    /// goes away is seen by the connection watch (or makes a write fail); either drops the
    /// streams, which cancels the generations.
    private func streamingResponse(_ streams: [GenerationStream], _ reply: Reply,
                                   connection: ConnectionState, deadline: ContinuousClock.Instant) -> Response {
        let model = configuration.modelName, fingerprint = systemFingerprint, timeout = configuration.requestTimeout
        let chat = reply.chat, r = reply.request
        let endpoint = chat ? "chat" : "completions"
        let body = ResponseBody { [self] writer in
            do {
                func send(_ value: some Encodable) async throws {
                    try await writer.write(ByteBuffer(string: "data: " + String(decoding: JSONBody.data(value), as: UTF8.self) + "\n\n"))
                }
                func chunk(_ choices: [ChoiceBody], usage: Usage? = nil) -> CompletionBody {
                    CompletionBody(id: reply.id, object: chat ? "chat.completion.chunk" : "text_completion", created: reply.created,
                                   model: model, systemFingerprint: fingerprint, choices: choices, usage: usage, seed: nil)
                }
                func part(_ index: Int, text: String, logprobs: Logprobs? = nil, tokenIDs: [TokenID] = [], finish: String? = nil) -> ChoiceBody {
                    var body = ChoiceBody(index: index, finishReason: finish, logprobs: logprobs)
                    if chat { body.delta = finish == nil ? ChatDelta(content: text) : ChatDelta() } else { body.text = text }
                    if finish == nil { body.tokenIDs = tokenIDs }
                    return body
                }
                for index in reply.choices.indices {
                    if chat {
                        try await send(chunk([ChoiceBody(index: index, delta: ChatDelta(role: "assistant", content: ""))]))
                    } else if r.echo {
                        let prompt = reply.prompts[reply.choices[index].prompt]
                        let echoed = r.logprobs ? logprobs([], echoed: prompt.scored ?? [], chat: false) : nil
                        try await send(chunk([part(index, text: prompt.text, logprobs: echoed)]))
                    }
                }
                var summaries = [GenerationSummary?](repeating: nil, count: reply.choices.count)
                var offsets = reply.choices.map { r.echo ? reply.prompts[$0.prompt].text.utf8.count : 0 }
                /// One event of choice `index`; false when the stream has ended early (timeout, failure).
                func handle(_ index: Int, _ event: GenerationEvent) async throws -> Bool {
                    if connection.isClosed {
                        // Nobody is reading: stop generating (the write below would fail later anyway).
                        for s in streams { s.cancel() }
                        throw APIError(499, "the client closed the connection", type: "invalid_request_error", code: "client_closed")
                    }
                    if ContinuousClock.now > deadline {
                        // Over time: stop generating and say so in the stream (the status line is sent).
                        for s in streams { s.cancel() }
                        try await send(APIError(504, "the request took longer than \(timeout)", type: "server_error", code: "timeout"))
                        try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                        try await writer.finish(nil)
                        metrics.request(endpoint, 504)
                        return false
                    }
                    switch event {
                    case .token(let t):
                        let values = r.logprobs ? logprobs([t], textOffset: offsets[index], chat: chat) : nil
                        offsets[index] += t.text.utf8.count
                        try await send(chunk([part(index, text: t.text, logprobs: values, tokenIDs: [t.id])]))
                    case .summary(let s):
                        summaries[index] = s
                        if let failure = s.failure {
                            // The status line went out as 200: the failure is an error event.
                            for s in streams { s.cancel() }
                            try await send(APIError(500, "generation failed: \(failure.message)", type: "server_error", code: failure.code.rawValue))
                            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                            try await writer.finish(nil)
                            metrics.request(endpoint, 500)
                            return false
                        }
                        try await send(chunk([part(index, text: "", finish: finishReason(s, r))]))
                    }
                    return true
                }
                if streams.count == 1 {
                    // One choice: read its stream directly, so a slow client holds its generation back.
                    for await event in streams[0] { if try await !handle(0, event) { return } }
                } else {
                    for await (index, event) in ChoiceEvents.merge(streams) { if try await !handle(index, event) { return } }
                }
                if streams.isEmpty {   // echo alone: every choice ends at once
                    for index in reply.choices.indices { try await send(chunk([part(index, text: "", finish: finishReason(nil, r))])) }
                }
                if r.includeUsage { try await send(chunk([], usage: usage(summaries, reply))) }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
                for s in summaries { if let s { metrics.record(s) } }
                metrics.request(endpoint, 200)
            } catch {
                // The status line went out as 200; what the stream came to is counted here.
                for s in streams { s.cancel() }
                metrics.request(endpoint, connection.isClosed ? 499 : 500)
                throw error
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}

/// The events of several generations as one sequence of (choice index, event), in the order
/// they come: each generation is drained as it produces (at most n × max_tokens events wait).
enum ChoiceEvents {
    static func merge(_ streams: [GenerationStream]) -> AsyncStream<(Int, GenerationEvent)> {
        let (merged, feed) = AsyncStream.makeStream(of: (Int, GenerationEvent).self)
        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                for (index, stream) in streams.enumerated() {
                    group.addTask { for await event in stream { feed.yield((index, event)) } }
                }
            }
            feed.finish()
        }
        feed.onTermination = { _ in
            task.cancel()
            for s in streams { s.cancel() }
        }
        return merged
    }
}
