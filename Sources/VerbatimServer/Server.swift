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
    /// API keys; nil serves without authentication (one shared tenant).
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
    /// The operator's shared prefixes, as requests that begin with them start.
    let sharedPrefixes: SharedPrefixes

    public init(engine: Engine, tokenizer: Tokenizer, cache: CacheStore?, modelDigest: Digest128, configuration: ServerConfiguration) {
        self.engine = engine
        self.tokenizer = tokenizer
        self.cache = cache
        self.configuration = configuration
        systemFingerprint = "fp_" + String(modelDigest.description.prefix(16)) + "_" + engine.numericsProfile
            .replacingOccurrences(of: "verbatim-numerics/", with: "vn").replacingOccurrences(of: " ", with: "_")
        sharedPrefixes = SharedPrefixes(configuration.tenants?.sharedPrefixes ?? [], engine: engine)
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
                return Self.json(200, ["object": "list", "data": [["id": self.configuration.modelName, "object": "model", "created": 0, "owned_by": "verbatim"]]])
            }
        }
        router.get("/metrics") { [self] _, _ in
            let stats = engine.stats
            metrics.queueDepth.set(Double(stats.queuedRequests))
            metrics.runningRequests.set(Double(stats.runningRequests))
            if let cache {
                let health = cache.health
                metrics.failedWrites.set(Double(health.failedWrites))
                metrics.droppedWrites.set(Double(health.droppedWrites))
                metrics.writesFailing.set(Double(health.writeFailure == nil ? 0 : 1))
                metrics.cacheDamaged.set(Double(health.damage == nil ? 0 : 1))
            }
            if let cache, let s = try? cacheStats(cache) {
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

    private func cacheStats(_ cache: CacheStore) throws -> CacheStore.Stats { try cache.stats() }

    /// Turns any failure into an OpenAI error response, and counts the request.
    private func respond(_ endpoint: String, _ body: () async throws -> Response) async -> Response {
        let response: Response
        do {
            response = try await body()
        } catch let e as APIError {
            response = Self.json(e.status, e.json)
        } catch let e as EngineError {
            let api = Self.apiError(e)
            response = Self.json(api.status, api.json)
        } catch is NIOTooManyBytesError {
            response = Self.json(413, APIError(413, "the request body is larger than \(configuration.maxBodyBytes) bytes", code: "body_too_large").json)
        } catch let e as HTTPError {
            let status = Int(e.status.code)
            response = Self.json(status, APIError(status, status == 413 ? "the request body is larger than \(configuration.maxBodyBytes) bytes" : "\(e)").json)
        } catch {
            response = Self.json(500, APIError(500, "\(error)", type: "server_error").json)
        }
        // A stream's status is known only when it ends: its body counts it (200, 499 or 504).
        if response.headers[.contentType] != "text/event-stream" { metrics.request(endpoint, Int(response.status.code)) }
        return response
    }

    static func apiError(_ e: EngineError) -> APIError {
        switch e.code {
        case .contextExceeded: APIError(400, e.message, code: "context_length_exceeded")
        case .queueFull: APIError(429, e.message, type: "rate_limit_error", code: "queue_full")
        case .shutDown: APIError(503, e.message, type: "server_error", code: "shutting_down")
        case .cancelled: APIError(499, e.message, code: "client_closed")
        default: APIError(400, e.message, code: e.code.rawValue)
        }
    }

    private func tenant(_ request: Request) throws(APIError) -> String? {
        guard let tenants = configuration.tenants else { return nil }
        return try tenants.tenant(authorization: request.headers[.authorization])
    }

    static func json(_ status: Int, _ object: Any) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
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
        let salt = tenant.map(TenantDirectory.salt(tenant:)) ?? []
        // Tokenizing (and rendering a chat template) runs on a thread of its own, cancelled when
        // the client leaves or the time is up, so hostile prompts never stall other endpoints.
        let engine = self.engine
        let prompt = parsed.prompt(template: configuration.chatTemplate)
        let tokens = try await untilDone(deadline, connection) { try await engine.tokenize(prompt, parameters: parsed.parameters) }
        let stream = try engine.generate(.tokens(tokens), parameters: parsed.parameters, salt: salt,
                                         sharedPrefixTokens: salt.isEmpty ? 0 : sharedPrefixes.length(of: tokens))
        let id = (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
        let created = Int(Date().timeIntervalSince1970)
        if parsed.stream {
            return streamingResponse(stream, parsed, id: id, created: created, chat: chat, connection: connection, deadline: deadline)
        }
        let collected = try await untilDone(deadline, connection, onStop: { stream.cancel() }) { await Collected.gather(stream) }
        if let failure = collected.summary?.failure {
            throw APIError(500, "generation failed: \(failure.message)", type: "server_error", code: failure.code.rawValue)
        }
        if let summary = collected.summary { metrics.record(summary) }
        return Self.json(200, completionObject(collected, parsed, id: id, created: created, chat: chat))
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

    /// Everything a non-streaming response needs.
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

    private func finishReason(_ summary: GenerationSummary?) -> String {
        switch summary?.stopReason {
        case .length?: "length"
        case .cancelled?: "cancelled"
        default: "stop"
        }
    }

    private func usage(_ summary: GenerationSummary?) -> [String: Any] {
        let prompt = summary?.promptTokens ?? 0, generated = summary?.generatedTokens ?? 0
        return ["prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated,
                "prompt_tokens_details": ["cached_tokens": summary?.cachedPromptTokens ?? 0]]
    }

    private func tokenText(_ id: TokenID) -> String { (try? tokenizer.decode([id], includeControl: true)) ?? "" }

    private func logprobsObject(_ tokens: [GeneratedToken], chat: Bool) -> Any {
        if chat {
            return ["content": tokens.map { t -> [String: Any] in
                let text = tokenText(t.id)
                return ["token": text, "logprob": Double(t.logprob ?? 0), "bytes": Array(text.utf8).map(Int.init),
                        "top_logprobs": t.topLogprobs.map { alt -> [String: Any] in
                            let s = tokenText(alt.id)
                            return ["token": s, "logprob": Double(alt.logprob), "bytes": Array(s.utf8).map(Int.init)]
                        }]
            }]
        }
        var offset = 0
        var offsets: [Int] = []
        for t in tokens { offsets.append(offset); offset += t.text.utf8.count }
        return ["tokens": tokens.map { tokenText($0.id) }, "token_logprobs": tokens.map { Double($0.logprob ?? 0) },
                "top_logprobs": tokens.map { t in Dictionary(t.topLogprobs.map { (tokenText($0.id), Double($0.logprob)) }, uniquingKeysWith: max) },
                "text_offset": offsets]
    }

    private func completionObject(_ c: Collected, _ r: GenerationRequest, id: String, created: Int, chat: Bool) -> [String: Any] {
        var choice: [String: Any] = ["index": 0, "finish_reason": finishReason(c.summary),
                                     "logprobs": r.logprobs ? logprobsObject(c.tokens, chat: chat) : NSNull()]
        if chat { choice["message"] = ["role": "assistant", "content": c.text] } else { choice["text"] = c.text }
        return ["id": id, "object": chat ? "chat.completion" : "text_completion", "created": created, "model": configuration.modelName,
                "system_fingerprint": systemFingerprint, "choices": [choice], "usage": usage(c.summary),
                "seed": c.summary?.seed.map { NSNumber(value: $0) } ?? NSNull()]
    }

    /// Server-sent events in OpenAI's chunk format, ending with `data: [DONE]`. A client that
    /// goes away is seen by the connection watch (or makes a write fail); either drops the
    /// stream, which cancels the generation.
    private func streamingResponse(_ stream: GenerationStream, _ r: GenerationRequest, id: String, created: Int, chat: Bool,
                                   connection: ConnectionState, deadline: ContinuousClock.Instant) -> Response {
        let model = configuration.modelName, fingerprint = systemFingerprint, timeout = configuration.requestTimeout
        let endpoint = chat ? "chat" : "completions"
        let body = ResponseBody { [self] writer in
            do {
                func send(_ object: [String: Any]) async throws {
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                    try await writer.write(ByteBuffer(string: "data: " + String(decoding: data, as: UTF8.self) + "\n\n"))
                }
                func chunk(_ choice: [String: Any], usage: Any = NSNull()) -> [String: Any] {
                    ["id": id, "object": chat ? "chat.completion.chunk" : "text_completion", "created": created, "model": model,
                     "system_fingerprint": fingerprint, "choices": [choice], "usage": usage]
                }
                if chat { try await send(chunk(["index": 0, "delta": ["role": "assistant", "content": ""], "logprobs": NSNull(), "finish_reason": NSNull()])) }
                var summary: GenerationSummary?
                for await event in stream {
                    if connection.isClosed {
                        // Nobody is reading: stop generating (the write below would fail later anyway).
                        stream.cancel()
                        throw APIError(499, "the client closed the connection", type: "invalid_request_error", code: "client_closed")
                    }
                    if ContinuousClock.now > deadline {
                        // Over time: stop generating and say so in the stream (the status line is sent).
                        stream.cancel()
                        try await send(APIError(504, "the request took longer than \(timeout)", type: "server_error", code: "timeout").json)
                        try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                        try await writer.finish(nil)
                        metrics.request(endpoint, 504)
                        return
                    }
                    switch event {
                    case .token(let t):
                        let logprobs = r.logprobs ? logprobsObject([t], chat: chat) : NSNull()
                        if chat {
                            try await send(chunk(["index": 0, "delta": ["content": t.text], "logprobs": logprobs, "finish_reason": NSNull()]))
                        } else {
                            try await send(chunk(["index": 0, "text": t.text, "logprobs": logprobs, "finish_reason": NSNull()]))
                        }
                    case .summary(let s):
                        summary = s
                        if let failure = s.failure {
                            // The status line went out as 200: the failure is an error event.
                            try await send(APIError(500, "generation failed: \(failure.message)", type: "server_error", code: failure.code.rawValue).json)
                            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                            try await writer.finish(nil)
                            metrics.request(endpoint, 500)
                            return
                        }
                    }
                }
                let reason = finishReason(summary)
                let last: [String: Any] = chat ? ["index": 0, "delta": [String: Any](), "logprobs": NSNull(), "finish_reason": reason]
                                               : ["index": 0, "text": "", "logprobs": NSNull(), "finish_reason": reason]
                try await send(chunk(last, usage: r.includeUsage ? usage(summary) : NSNull()))
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
                if let summary { metrics.record(summary) }
                metrics.request(endpoint, 200)
            } catch {
                // The status line went out as 200; what the stream came to is counted here.
                metrics.request(endpoint, connection.isClosed ? 499 : 500)
                throw error
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}
