import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import Verbatim
import VerbatimCache
import VerbatimModel
@testable import VerbatimServer

/// The real model, found as the `verbatim` command finds it.
let modelPath: String = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()   // Tools/Tests/VerbatimServerTests/ServerTests.swift
    return ModelLocation.path(modelsFolder: root.path + "/models")
}()

/// A real server on a loopback port, with the real model and an LMDB cache in a fresh folder.
final class TestServer: Sendable {
    let service: VerbatimService
    let task: Task<Void, any Error>
    let port: Int
    let cacheFolder: String

    static func start(cacheFolder: String? = nil, tenants: TenantDirectory? = nil, maxBodyBytes: Int = 1 << 20,
                      timeout: Duration = .seconds(600), chatTemplate: ChatTemplate? = nil, draftTokens: Int = 0) async throws -> TestServer {
        let folder = cacheFolder ?? NSTemporaryDirectory() + "verbatim-server-\(UInt32.random(in: 0...UInt32.max))"
        let file = try GGUFFile(path: modelPath)
        let model = try LlamaModel(file: file)
        let tokenizer = try Tokenizer(file: file)
        let store = try CacheStore(directory: folder)
        var configuration = EngineConfiguration()
        configuration.kvMemoryBytes = 256 << 20
        configuration.cache = store
        configuration.sharedPrefixes = tenants?.sharedPrefixes ?? []
        configuration.draftTokens = draftTokens
        let engine = try Engine(model: model, tokenizer: tokenizer, configuration: configuration)
        var server = ServerConfiguration(modelName: "smollm2")
        server.port = 0
        server.tenants = tenants
        server.maxBodyBytes = maxBodyBytes
        server.requestTimeout = timeout
        server.chatTemplate = chatTemplate
        let service = VerbatimService(engine: engine, configuration: server)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let task = Task { try await service.run(handleSignals: false) { continuation.yield($0) } }
        var port = 0
        for await p in ports { port = p; break }
        return TestServer(service: service, task: task, port: port, cacheFolder: folder)
    }

    init(service: VerbatimService, task: Task<Void, any Error>, port: Int, cacheFolder: String) {
        self.service = service
        self.task = task
        self.port = port
        self.cacheFolder = cacheFolder
    }

    /// Stops the server (as SIGTERM would: in-flight requests finish, the cache is flushed).
    func stop() async {
        task.cancel()
        _ = try? await task.value
    }

    struct Reply {
        let status: Int
        let body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body) as? [String: Any]) ?? [:] }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    func send(_ path: String, method: String = "POST", json: Any? = nil, raw: String? = nil, key: String? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method == "GET" ? .GET : .POST
        if let key { request.headers.add(name: "Authorization", value: "Bearer \(key)") }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
        } else if let raw {
            request.body = .bytes(ByteBuffer(string: raw))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        let body = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), body: Data(buffer: body))
    }
}

@Suite("OpenAI-compatible server (real model, loopback HTTP)", .serialized)
struct ServerTests {
    static var chat: [String: Any] { ["model": "smollm2", "messages": [["role": "user", "content": "Name three rivers in Europe."]],
                                      "max_tokens": 16, "temperature": 0] }

    @Test("chat and completions, non-streaming: OpenAI fields, usage with cached tokens, one fingerprint, the same bits on repeat")
    func nonStreaming() async throws {
        let server = try await TestServer.start()
        defer { try? FileManager.default.removeItem(atPath: server.cacheFolder) }
        var chat = Self.chat
        chat["logprobs"] = true
        chat["top_logprobs"] = 2
        let first = try await server.send("/v1/chat/completions", json: chat)
        #expect(first.status == 200, "\(first.text)")
        let a = first.json
        #expect(a["object"] as? String == "chat.completion" && (a["id"] as? String)?.hasPrefix("chatcmpl-") == true)
        let fingerprint = try #require(a["system_fingerprint"] as? String)
        #expect(fingerprint.contains("vn4"), "the fingerprint names the numerics profile version (verbatim-numerics/4)")
        let choice = try #require((a["choices"] as? [[String: Any]])?.first)
        let content = try #require((choice["message"] as? [String: Any])?["content"] as? String)
        #expect(!content.isEmpty && choice["finish_reason"] as? String == "length")
        let logprobs = try #require((choice["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])
        #expect(logprobs.count == 16 && (logprobs[0]["top_logprobs"] as? [Any])?.count == 2)
        let usage = try #require(a["usage"] as? [String: Any])
        #expect(usage["completion_tokens"] as? Int == 16 && (usage["prompt_tokens"] as? Int ?? 0) > 5)

        chat["logprobs"] = false
        chat["top_logprobs"] = nil
        let again = try await server.send("/v1/chat/completions", json: chat)
        let againChoice = try #require((again.json["choices"] as? [[String: Any]])?.first)
        #expect((againChoice["message"] as? [String: Any])?["content"] as? String == content)
        let third = try await server.send("/v1/chat/completions", json: chat)
        let cached = ((third.json["usage"] as? [String: Any])?["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int
        #expect(cached == usage["prompt_tokens"] as? Int, "the third identical request is a completion hit")
        #expect(third.json["system_fingerprint"] as? String == fingerprint)

        let completion = try await server.send("/v1/completions", json: ["model": "smollm2", "prompt": "The capital of France is", "max_tokens": 5, "temperature": 0, "logprobs": 1])
        #expect(completion.status == 200, "\(completion.text)")
        let c = try #require((completion.json["choices"] as? [[String: Any]])?.first)
        #expect(completion.json["object"] as? String == "text_completion" && (c["text"] as? String)?.contains("Paris") == true)
        #expect(((c["logprobs"] as? [String: Any])?["token_logprobs"] as? [Double])?.count == 5)
        await server.stop()
    }

    @Test("streaming as server-sent events: chunks add up to the non-streaming answer, usage on request, then [DONE]")
    func streaming() async throws {
        let server = try await TestServer.start()
        defer { try? FileManager.default.removeItem(atPath: server.cacheFolder) }
        var chat = Self.chat
        chat["temperature"] = 0.7
        chat["seed"] = 42
        let whole = try await server.send("/v1/chat/completions", json: chat)
        let expected = ((whole.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
        chat["stream"] = true
        chat["stream_options"] = ["include_usage": true]
        let streamed = try await server.send("/v1/chat/completions", json: chat)
        #expect(streamed.status == 200)
        let events = streamed.text.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
        #expect(events.last == "[DONE]")
        let chunks = events.dropLast().compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(chunks.count == events.count - 1 && chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
        let text = chunks.compactMap { (($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String }.joined()
        #expect(text == expected)
        // The usage chunk comes last, with no choices (as OpenAI sends it); the finish reason before it.
        let lastChunk = chunks.last ?? [:]
        let lastUsage = lastChunk["usage"] as? [String: Any] ?? [:]
        #expect(lastUsage["completion_tokens"] as? Int == 16 && (lastChunk["choices"] as? [Any])?.isEmpty == true)
        let finishChoice = (chunks.dropLast().last?["choices"] as? [[String: Any]])?.first ?? [:]
        #expect(finishChoice["finish_reason"] as? String == "length")

        let plain = try await server.send("/v1/completions", json: ["model": "smollm2", "prompt": "Once upon a time", "max_tokens": 6, "temperature": 0, "stream": true])
        #expect(plain.text.hasSuffix("data: [DONE]\n\n") && plain.text.contains("\"object\":\"text_completion\""))
        await server.stop()
    }

    @Test("every bad request is an OpenAI error with the right status; the server keeps serving")
    func errors() async throws {
        let server = try await TestServer.start(maxBodyBytes: 4096)
        defer { try? FileManager.default.removeItem(atPath: server.cacheFolder) }
        func expectError(_ reply: TestServer.Reply, _ status: Int, _ param: String?, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(reply.status == status, "\(reply.text)", sourceLocation: sourceLocation)
            let error = reply.json["error"] as? [String: Any]
            #expect((error?["message"] as? String)?.contains(fragment) == true, "\(reply.text)", sourceLocation: sourceLocation)
            if let param { #expect(error?["param"] as? String == param, sourceLocation: sourceLocation) }
        }
        expectError(try await server.send("/v1/chat/completions", raw: "{not json"), 400, nil, "not a JSON object")
        expectError(try await server.send("/v1/chat/completions", json: ["messages": "hi"]), 400, "messages", "non-empty array")
        expectError(try await server.send("/v1/chat/completions", json: ["messages": [["role": "robot", "content": "x"]]]), 400, "messages[0].role", "system, user or assistant")
        var bad = Self.chat
        bad["temperature"] = "hot"
        expectError(try await server.send("/v1/chat/completions", json: bad), 400, "temperature", "must be a number")
        bad["temperature"] = 3
        expectError(try await server.send("/v1/chat/completions", json: bad), 400, "temperature", "between 0 and 2")
        bad = Self.chat
        bad["max_tokens"] = 0
        expectError(try await server.send("/v1/chat/completions", json: bad), 400, "max_tokens", "at least 1")
        bad = Self.chat
        bad["top_p"] = 0
        expectError(try await server.send("/v1/chat/completions", json: bad), 400, "top_p", "(0, 1]")
        bad = Self.chat
        bad["top_logprobs"] = 30
        bad["logprobs"] = true
        expectError(try await server.send("/v1/chat/completions", json: bad), 400, "top_logprobs", "between 0 and 20")
        bad = Self.chat
        bad["model"] = "gpt-9"
        expectError(try await server.send("/v1/chat/completions", json: bad), 404, "model", "does not exist")
        expectError(try await server.send("/v1/completions", json: ["prompt": 42]), 400, "prompt", "must be a string")
        expectError(try await server.send("/v1/completions", json: ["prompt": "hi", "logprobs": 9]), 400, "logprobs", "between 0 and 5")
        let long = String(repeating: "word ", count: 3000)
        let tooBig = try await server.send("/v1/completions", json: ["prompt": long])
        #expect(tooBig.status == 413, "\(tooBig.text)")
        let context = try await TestServer.start()
        defer { try? FileManager.default.removeItem(atPath: context.cacheFolder) }
        expectError(try await context.send("/v1/completions", json: ["prompt": String(repeating: "word ", count: 9000), "max_tokens": 1]), 400, nil, "context")
        await context.stop()

        let health = try await server.send("/health", method: "GET")
        #expect(health.status == 200 && health.json["status"] as? String == "ok")
        let models = try await server.send("/v1/models", method: "GET")
        #expect(((models.json["data"] as? [[String: Any]])?.first?["id"] as? String) == "smollm2")
        let ok = try await server.send("/v1/chat/completions", json: Self.chat)
        #expect(ok.status == 200)
        let metrics = try await server.send("/metrics", method: "GET")
        #expect(metrics.text.contains("verbatim_requests_total{endpoint=\"chat\",status=\"400\"}"))
        #expect(metrics.text.contains("verbatim_time_to_first_token_seconds_bucket") && metrics.text.contains("verbatim_prompt_tokens_total"))
        await server.stop()
    }

    @Test("tenants: 401 without a known key; tenant B never gets A's cached tokens, A does")
    func tenants() async throws {
        let server = try await TestServer.start(tenants: TenantDirectory(tenantOfKey: ["key-a": "a", "key-b": "b"]))
        defer { try? FileManager.default.removeItem(atPath: server.cacheFolder) }
        let noKey = try await server.send("/v1/chat/completions", json: Self.chat)
        let badKey = try await server.send("/v1/chat/completions", json: Self.chat, key: "nope")
        let models = try await server.send("/v1/models", method: "GET")
        #expect(noKey.status == 401 && badKey.status == 401 && models.status == 401)
        #expect((noKey.json["error"] as? [String: Any])?["code"] as? String == "missing_api_key")
        func cached(_ key: String) async throws -> Int {
            let r = try await server.send("/v1/chat/completions", json: Self.chat, key: key)
            #expect(r.status == 200, "\(r.text)")
            return ((r.json["usage"] as? [String: Any])?["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int ?? -1
        }
        let aCold = try await cached("key-a")
        let bCold = try await cached("key-b")
        let aWarm = try await cached("key-a")
        #expect(aCold == 0)
        #expect(bCold == 0, "tenant B must not hit tenant A's entries")
        #expect(aWarm > 0)
        await server.stop()
    }

    @Test("shared prefixes from the tenants file: every tenant reuses the public system prompt's blocks, never another's private ones")
    func sharedPrefixes() async throws {
        let system = "You are the help desk of a public library. Answer questions about opening hours, loans, renewals, fines, "
            + "reading rooms, printing and the catalogue. Be brief and friendly, give exact figures when you know them, and say "
            + "when a question should go to a librarian instead. Never ask for a password or a card number."
        let file = NSTemporaryDirectory() + "verbatim-tenants-\(UInt32.random(in: 0...UInt32.max)).json"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let json: [String: Any] = ["tenants": [["id": "a", "keys": ["key-a"]], ["id": "b", "keys": ["key-b"]]],
                                   "shared_prefixes": [["system": system]]]
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: file))
        let server = try await TestServer.start(tenants: try TenantDirectory(file: file))
        defer { try? FileManager.default.removeItem(atPath: server.cacheFolder) }
        let shared = try #require(server.service.engine.sharedPrefixes.tokens.first).count
        func ask(_ key: String, _ question: String) async throws -> (cached: Int, prompt: Int, text: String) {
            let body: [String: Any] = ["model": "smollm2", "max_tokens": 6, "temperature": 0,
                                       "messages": [["role": "system", "content": system], ["role": "user", "content": question]]]
            let r = try await server.send("/v1/chat/completions", json: body, key: key)
            #expect(r.status == 200, "\(r.text)")
            let usage = r.json["usage"] as? [String: Any]
            let text = ((r.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String ?? ""
            return ((usage?["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int ?? -1, usage?["prompt_tokens"] as? Int ?? -1, text)
        }
        let question = "How many books may I borrow at once, for how long, and how do I renew a loan from home without visiting the desk? "
            + "Also, what happens when a book I renewed is reserved by someone else, and how are fines counted on weekends and holidays?"
        let aCold = try await ask("key-a", question)
        server.service.cache?.flush()
        let bSame = try await ask("key-b", question)
        let bOther = try await ask("key-b", "Where can I print a document?")
        server.service.cache?.flush()
        let aWarm = try await ask("key-a", question)
        #expect(shared >= 64 && aCold.prompt / 32 > shared / 32 + 1, "the test needs whole shared blocks and private ones after them")
        #expect(aCold.cached == 0)
        #expect(bSame.cached == shared / 32 * 32, "B reuses the shared blocks only, not A's question")
        // B's second question reuses the public blocks, then its own first request's rows up to
        // where the two questions part (never A's).
        func chat(_ question: String) throws -> [TokenID] {
            try server.service.engine.tokens(of: .chat([ChatMessage(role: "system", content: system), ChatMessage(role: "user", content: question)]))
        }
        let parted = try zip(chat(question), chat("Where can I print a document?")).prefix { $0.0 == $0.1 }.count
        #expect(parted >= shared && bOther.cached == parted, "B's own rows up to token \(parted) (the public blocks end at \(shared / 32 * 32))")
        #expect(bSame.text == aCold.text)
        #expect(aWarm.cached == aWarm.prompt, "A's own entries stay A's")
        // A malformed declaration is refused with a message that names it.
        try JSONSerialization.data(withJSONObject: ["tenants": [["id": "a", "keys": ["k"]]], "shared_prefixes": [["system": 3]]])
            .write(to: URL(fileURLWithPath: file))
        #expect(throws: APIError.self) { try TenantDirectory(file: file) }
        do { _ = try TenantDirectory(file: file) } catch { #expect(error.message.contains("shared_prefixes[0]")) }
        // So is an entry with a key besides its one string.
        try JSONSerialization.data(withJSONObject: ["tenants": [["id": "a", "keys": ["k"]]],
                                                    "shared_prefixes": [["text": "fine"], ["system": "x", "note": "y"]]])
            .write(to: URL(fileURLWithPath: file))
        do { _ = try TenantDirectory(file: file); Issue.record("an entry with two keys was accepted") } catch {
            #expect(error.message.contains("shared_prefixes[1]"), "\(error.message)")
        }
        await server.stop()
    }

    @Test("a client that goes away stops its generation, streaming or not; the server goes on")
    func disconnect() async throws {
        let server = try await TestServer.start()
        defer { try? FileManager.default.removeItem(atPath: server.cacheFolder) }
        // Greedy counting runs on for thousands of tokens: far longer than this test waits.
        let long: [String: Any] = ["model": "smollm2", "prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "max_tokens": 3000, "temperature": 0,
                                   "ignore_eos": true]
        for streaming in [false, true] {
            var body = long
            body["stream"] = streaming
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(server.port)/v1/completions")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
            let client = Task {
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
                _ = try await response.body.collect(upTo: 64 << 20)
            }
            var running = false
            for _ in 0..<500 where !running {
                running = server.service.engine.stats.runningRequests == 1 && server.service.engine.stats.steps > 20
                if !running { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(running, "the generation started")
            client.cancel()   // the client closes its connection
            let stepsAtCancel = server.service.engine.stats.steps
            var idle = false
            for _ in 0..<300 where !idle {
                idle = server.service.engine.stats.runningRequests == 0
                if !idle { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(idle, "streaming \(streaming): the generation went on after the client left")
            #expect(server.service.engine.stats.steps - stepsAtCancel < 1000, "streaming \(streaming): it stopped long before 3000 tokens")
        }
        let metrics = try await server.send("/metrics", method: "GET")
        // Both disconnects, streaming or not, count as 499 (a stream's status line said 200 before the client left).
        let closed = metrics.text.split(separator: "\n").filter { $0.hasPrefix("verbatim_requests_total") && $0.contains("endpoint=\"completions\"") }
        #expect(closed.contains { $0.contains("status=\"499\"") && $0.hasSuffix(" 2") }, "\(closed)")
        #expect(!closed.contains { $0.contains("status=\"200\"") }, "\(closed)")
        let ok = try await server.send("/v1/completions", json: ["model": "smollm2", "prompt": "Hi", "max_tokens": 2, "temperature": 0])
        #expect(ok.status == 200)
        await server.stop()
    }

    @Test("hostile prompts: /health answers promptly while they are tokenized, each ends in a 400 naming the limit, the server goes on")
    func hostilePrompts() async throws {
        let server = try await TestServer.start()
        defer { try? FileManager.default.removeItem(atPath: server.cacheFolder) }
        // One 600 000-character word: below the floor that refuses it unmerged, so each is
        // merged in full (about half a second) before it is found longer than the context.
        let body = String(decoding: try JSONSerialization.data(withJSONObject: ["model": "smollm2", "prompt": String(repeating: "z", count: 600_000),
                                                                               "max_tokens": 4]), as: UTF8.self)
        let started = ContinuousClock.now
        let requests = Task {
            try await withThrowingTaskGroup(of: TestServer.Reply.self) { group in
                // Six: the test's HTTP client keeps at most eight connections to one host.
                for _ in 0..<6 {
                    group.addTask { try await server.send("/v1/completions", raw: body) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        var slowest = Duration.zero
        var log: [String] = []
        for path in ["/health", "/metrics", "/health", "/metrics", "/health"] {
            let asked = ContinuousClock.now
            let reply = try await server.send(path, method: "GET")
            slowest = max(slowest, ContinuousClock.now - asked)
            log.append("\(path) at \(asked - started) took \(ContinuousClock.now - asked)")
            #expect(reply.status == 200)
            try await Task.sleep(for: .milliseconds(50))
        }
        let replies = try await requests.value
        let hostileTime = ContinuousClock.now - started
        for reply in replies {
            let error = reply.json["error"] as? [String: Any]
            #expect(reply.status == 400 && error?["code"] as? String == "context_length_exceeded", "\(reply.status) \(reply.text.prefix(200))")
            #expect((error?["message"] as? String ?? "").contains("8192"), "the message names the limit: \(reply.text.prefix(200))")
        }
        // Tokenizing runs on threads of its own: the service's tasks stay free for other endpoints.
        #expect(slowest < .milliseconds(300) && slowest * 3 < hostileTime,
                "slowest /health or /metrics: \(slowest), while the hostile requests took \(hostileTime): \(log)")
        let ok = try await server.send("/v1/completions", json: ["model": "smollm2", "prompt": "Hi", "max_tokens": 2, "temperature": 0])
        #expect(ok.status == 200)
        await server.stop()
    }

    @Test("a configured chat template replaces the model's own for /v1/chat/completions")
    func chatTemplateOverride() async throws {
        let template = try ChatTemplate(source: "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant]")
        let server = try await TestServer.start(chatTemplate: template)
        defer { try? FileManager.default.removeItem(atPath: server.cacheFolder) }
        let reply = try await server.send("/v1/chat/completions", json: ["model": "smollm2", "messages": [["role": "user", "content": "Hi there"]],
                                                                        "max_tokens": 1, "temperature": 0])
        let expected = server.service.engine.tokenizer.encode("[user] Hi there\n[assistant]")
        #expect(reply.status == 200 && (reply.json["usage"] as? [String: Any])?["prompt_tokens"] as? Int == expected.count, "\(reply.text)")
        await server.stop()
    }

    @Test("a request body cut off by the client counts as 499 (the client left) in /metrics, not as a 500")
    func cutOffBody() async throws {
        let server = try await TestServer.start()
        defer { try? FileManager.default.removeItem(atPath: server.cacheFolder) }
        for _ in 0..<3 {
            // Promises 1000 bytes, sends 20, then closes the connection.
            try sendRaw(port: server.port, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"prompt\": \"Hello, wor")
        }
        var counted: [Substring] = []
        for _ in 0..<100 where counted.isEmpty {
            try await Task.sleep(for: .milliseconds(20))
            let metrics = try await server.send("/metrics", method: "GET")
            counted = metrics.text.split(separator: "\n").filter { $0.hasPrefix("verbatim_requests_total") && $0.contains("endpoint=\"completions\"") }
        }
        #expect(!counted.contains { $0.contains("status=\"5") }, "\(counted)")
        #expect(counted.contains { $0.contains("status=\"499\"") && $0.hasSuffix(" 3") }, "\(counted)")
        await server.stop()
    }

    @Test("load: 32 concurrent clients, 512 requests; identical requests give one completion; memory stays flat")
    func load() async throws {
        let server = try await TestServer.start()
        defer { try? FileManager.default.removeItem(atPath: server.cacheFolder) }
        let prompts = ["Write a haiku about rain.", "What is 6 times 7?", "Name a color.", "Say hello in Spanish."]
        func round(_ count: Int) async throws -> Set<String> {
            try await withThrowingTaskGroup(of: String?.self) { group in
                var unique = Set<String>()
                var started = 0
                func add(_ i: Int) {
                    group.addTask {
                        let identical = i % 2 == 0
                        let body: [String: Any] = ["model": "smollm2", "max_tokens": identical ? 12 : 4, "temperature": 0.8, "seed": identical ? 7 : i,
                                                   "messages": [["role": "user", "content": identical ? "Tell me about lighthouses." : prompts[i % 4]]],
                                                   "logprobs": identical]
                        let r = try await server.send("/v1/chat/completions", json: body)
                        guard r.status == 200 else { throw APIError(r.status, r.text) }
                        guard identical, let choice = (r.json["choices"] as? [[String: Any]])?.first else { return nil }
                        let text = (choice["message"] as? [String: Any])?["content"] as? String ?? ""
                        let lps = ((choice["logprobs"] as? [String: Any])?["content"] as? [[String: Any]])?.map { "\($0["logprob"] ?? "")" } ?? []
                        return text + "|" + lps.joined(separator: ",")
                    }
                }
                while started < min(32, count) { add(started); started += 1 }
                for try await r in group {
                    if let r { unique.insert(r) }
                    if started < count { add(started); started += 1 }
                }
                return unique
            }
        }
        let warm = try await round(64)
        let before = residentBytes()
        let rest = try await round(448)
        let after = residentBytes()
        #expect(warm.union(rest).count == 1, "\(warm.union(rest).count) distinct completions for identical requests")
        #expect(after - before < 64 << 20, "resident memory grew by \((after - before) >> 20) MiB over 448 requests")
        await server.stop()
    }

    @Test("a request over the time limit is stopped: 504 when not streaming, an error event when streaming; the server goes on")
    func timeouts() async throws {
        let server = try await TestServer.start(timeout: .milliseconds(300))
        defer { try? FileManager.default.removeItem(atPath: server.cacheFolder) }
        // 3000 tokens whatever the model says (no stop at EOS): seconds on any machine, never within 300 ms.
        let long: [String: Any] = ["model": "smollm2", "prompt": "Once upon a time", "max_tokens": 3000, "temperature": 0.9, "seed": 1,
                                   "ignore_eos": true]
        let started = ContinuousClock.now
        let plain = try await server.send("/v1/completions", json: long)
        #expect(plain.status == 504 && (plain.json["error"] as? [String: Any])?["code"] as? String == "timeout", "\(plain.text)")
        var streaming = long
        streaming["stream"] = true
        let streamed = try await server.send("/v1/completions", json: streaming)
        #expect(streamed.status == 200 && streamed.text.contains("\"code\":\"timeout\"") && streamed.text.hasSuffix("data: [DONE]\n\n"))
        #expect(ContinuousClock.now - started < .seconds(20), "3000 tokens were not generated twice")
        // Both generations were cancelled, not left running.
        var idle = false
        for _ in 0..<100 where !idle {
            idle = server.service.engine.stats.runningRequests == 0
            if !idle { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(idle, "a timed-out generation kept running")
        let ok = try await server.send("/v1/completions", json: ["model": "smollm2", "prompt": "Hi", "max_tokens": 2, "temperature": 0])
        #expect(ok.status == 200)
        await server.stop()
    }

    @Test("stopping flushes the cache: a new server on the same folder hits at once")
    func restart() async throws {
        let first = try await TestServer.start()
        defer { try? FileManager.default.removeItem(atPath: first.cacheFolder) }
        let cold = try await first.send("/v1/chat/completions", json: Self.chat)
        #expect(cold.status == 200)
        await first.stop()
        let second = try await TestServer.start(cacheFolder: first.cacheFolder)
        let warm = try await second.send("/v1/chat/completions", json: Self.chat)
        let cached = ((warm.json["usage"] as? [String: Any])?["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int ?? 0
        #expect(cached > 0)
        #expect((warm.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: String]
                == (cold.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: String])
        await second.stop()
    }
}

/// Opens a TCP connection to the loopback port, writes `text` and closes it.
func sendRaw(port: Int, _ text: String) throws {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EIO) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
    let bytes = Array(text.utf8)
    guard send(fd, bytes, bytes.count, 0) == bytes.count else { throw POSIXError(.EIO) }
    usleep(50_000)   // let the server read what came before the connection closes
}

/// Resident set size of this process, from /proc.
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}
