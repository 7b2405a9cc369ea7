import Foundation
import Testing
import Verbatim
import VerbatimModel
@testable import VerbatimServer

/// What RL and evaluation clients ask of `/v1/completions`: token-id prompts, generated token
/// ids, echoed prompt log-probabilities (scoring with `max_tokens: 0`) and several samples per
/// prompt with reproducible seeds.
@Suite("Completions API for RL and evaluation (real model, loopback HTTP)", .serialized)
struct CompletionsAPITests {
    static let prompt = "The three largest cities of Italy are"

    static func choices(_ reply: TestServer.Reply) -> [[String: Any]] { reply.json["choices"] as? [[String: Any]] ?? [] }
    static func ids(_ value: Any?) -> [Int] { value as? [Int] ?? [] }
    static func logprobs(_ choice: [String: Any]) -> [String: Any] { choice["logprobs"] as? [String: Any] ?? [:] }

    /// The numbers of a response as written (Foundation's JSONSerialization rounds long
    /// decimals when reading; JSONDecoder reads them exactly, as Python's json does).
    struct Exact: Decodable {
        struct Logprobs: Decodable {
            var token_logprobs: [Double?]
            var top_logprobs: [[String: Double]?]
        }
        struct Choice: Decodable {
            var logprobs: Logprobs?
            var seed: UInt64?
        }
        var choices: [Choice]
        init(_ reply: TestServer.Reply) throws { self = try JSONDecoder().decode(Exact.self, from: reply.body) }
        /// Choice i's token_logprobs as bit patterns (nil for JSON null), so comparisons are bitwise.
        func bits(_ i: Int) -> [UInt64?] { i < choices.count ? (choices[i].logprobs?.token_logprobs ?? []).map { $0?.bitPattern } : [] }
        /// Choice i's top_logprobs as token text → bit pattern, nil for JSON null.
        func topBits(_ i: Int) -> [[String: UInt64]?] {
            i < choices.count ? (choices[i].logprobs?.top_logprobs ?? []).map { $0?.mapValues(\.bitPattern) } : []
        }
    }

    @Test("with speculation (draft tokens) every choice's token ids, logprobs, alternatives, text and finish reason equal, bit for bit, those of a server without it; /metrics counts the drafts")
    func speculationKeepsBits() async throws {
        let copying = "Repeat this list exactly: red apple, green pear, yellow lemon, red apple, green pear, yellow lemon, red apple,"
        /// Each choice's token ids, logprob and alternative bits, text and finish reason.
        struct Answer: Equatable {
            var ids: [[Int]], bits: [[UInt64?]], top: [[[String: UInt64]?]], texts: [String], reasons: [String]
        }
        func ask(_ server: TestServer, _ temperature: Double) async throws -> Answer {
            let reply = try await server.send("/v1/completions", json: [
                "model": "smollm2", "prompt": copying, "max_tokens": 20, "temperature": temperature, "seed": 11, "n": 3,
                "logprobs": 2, "return_token_ids": true])
            #expect(reply.status == 200, "\(reply.text)")
            let exact = try Exact(reply), choices = Self.choices(reply)
            return Answer(ids: choices.map { Self.ids($0["token_ids"]) }, bits: (0..<3).map { exact.bits($0) },
                          top: (0..<3).map { exact.topBits($0) }, texts: choices.map { $0["text"] as? String ?? "" },
                          reasons: choices.map { $0["finish_reason"] as? String ?? "" })
        }
        let plain = try await TestServer.start()
        let drafting = try await TestServer.start(draftTokens: 8)
        defer {
            try? FileManager.default.removeItem(atPath: plain.cacheFolder)
            try? FileManager.default.removeItem(atPath: drafting.cacheFolder)
        }
        for temperature in [0.0, 0.9] {
            let (a, b) = (try await ask(plain, temperature), try await ask(drafting, temperature))
            #expect(a.ids.count == 3 && a.ids.allSatisfy { !$0.isEmpty } && a.ids.joined().count > 20, "\(a.ids)")
            #expect(a.top.joined().allSatisfy { !($0 ?? [:]).isEmpty }, "\(a.top)")
            #expect(a == b, "T = \(temperature): the choices differ with drafts")
        }
        let metrics = try await drafting.send("/metrics", method: "GET").text
        func value(_ name: String) -> Double {
            metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? -1
        }
        #expect(value("verbatim_draft_tokens_accepted") > 0, "\(metrics)")
        #expect(value("verbatim_draft_tokens_checked") >= value("verbatim_draft_tokens_accepted"))
        await plain.stop()
        await drafting.stop()
    }

    @Test("a sampled completion's logprobs equal, bit for bit, the echo logprobs of prompt + completion sent back as token ids")
    func echoEqualsGenerated() async throws {
        let server = try await TestServer.start()
        defer { try? FileManager.default.removeItem(atPath: server.cacheFolder) }
        let generated = try await server.send("/v1/completions", json: [
            "model": "smollm2", "prompt": Self.prompt, "max_tokens": 12, "temperature": 0.9, "seed": 7,
            "logprobs": 3, "return_token_ids": true])
        #expect(generated.status == 200, "\(generated.text)")
        let g = try #require(Self.choices(generated).first)
        let promptIDs = Self.ids(g["prompt_token_ids"]), completionIDs = Self.ids(g["token_ids"])
        #expect(!promptIDs.isEmpty && completionIDs.count == 12)
        let engine = server.service.engine
        #expect(promptIDs == (try engine.tokens(of: .text(Self.prompt))).map(Int.init))
        let generatedBits = try Exact(generated).bits(0)
        #expect(generatedBits.count == 12 && generatedBits.allSatisfy { $0 != nil })

        // Scoring alone: the same tokens back as ids, nothing generated.
        let scored = try await server.send("/v1/completions", json: [
            "model": "smollm2", "prompt": promptIDs + completionIDs, "max_tokens": 0, "echo": true, "logprobs": 3])
        #expect(scored.status == 200, "\(scored.text)")
        let s = try #require(Self.choices(scored).first)
        #expect(s["finish_reason"] as? String == "length" && Self.ids(s["token_ids"]).isEmpty)
        let echoBits = try Exact(scored).bits(0)
        #expect(echoBits.count == promptIDs.count + 12)
        #expect(echoBits.first == .some(nil), "the first token has nothing before it: null")
        let tail = Array(echoBits.suffix(12))
        let differing = zip(tail, generatedBits).filter { $0 != $1 }.count
        #expect(differing == 0, "\(differing) of 12 logprobs differ between generating and echo-scoring")
        let topDiffering = zip(try Exact(scored).topBits(0).suffix(12), try Exact(generated).topBits(0)).filter { $0 != $1 }.count
        #expect(topDiffering == 0, "\(topDiffering) of 12 top-3 alternatives differ")
        #expect((scored.json["usage"] as? [String: Any])?["completion_tokens"] as? Int == 0)

        // The values are the engine's own floats, unchanged by JSON.
        let direct = try await engine.score((promptIDs + completionIDs).map { TokenID($0) }, topLogprobs: 3)
        let directBits: [UInt64?] = direct.map { $0.logprob.map { Double($0).bitPattern } }
        #expect(directBits == echoBits)
        #expect(direct.dropFirst().allSatisfy { $0.topLogprobs.count == 3 && $0.topLogprobs[0].logprob >= $0.topLogprobs[2].logprob })

        // Echo with generation: the prompt's text and scores, then the completion (greedy here).
        let both = try await server.send("/v1/completions", json: [
            "model": "smollm2", "prompt": Self.prompt, "max_tokens": 4, "temperature": 0, "echo": true, "logprobs": 1])
        let b = try #require(Self.choices(both).first)
        let text = try #require(b["text"] as? String)
        #expect(text.hasPrefix(Self.prompt) && text.count > Self.prompt.count)
        let tokens = Self.logprobs(b)["tokens"] as? [String] ?? []
        try #require(tokens.count == promptIDs.count + 4 && Self.ids(b["token_ids"]).count == 4)
        let offsets = Self.logprobs(b)["text_offset"] as? [Int] ?? []
        try #require(offsets.count == tokens.count)
        #expect(offsets[promptIDs.count] == Self.prompt.utf8.count, "the first generated token starts right after the echoed prompt")
        #expect(Array(try Exact(both).bits(0).prefix(promptIDs.count)) == Array(echoBits.prefix(promptIDs.count)))
        await server.stop()
    }

    @Test("n samples: seeds derived from the request's seed, each choice replays alone, all distinct, the same bits on repeat, streamed alike")
    func severalSamples() async throws {
        let server = try await TestServer.start()
        defer { try? FileManager.default.removeItem(atPath: server.cacheFolder) }
        let body: [String: Any] = ["model": "smollm2", "prompt": Self.prompt, "max_tokens": 12, "temperature": 1.0,
                                   "seed": 11, "n": 4, "logprobs": 0]
        let first = try await server.send("/v1/completions", json: body)
        #expect(first.status == 200, "\(first.text)")
        let choices = Self.choices(first)
        try #require(choices.map { $0["index"] as? Int } == [0, 1, 2, 3])
        let exact = try Exact(first)
        let seeds = exact.choices.map(\.seed)
        #expect(seeds == (0..<4).map { GenerateParameters.sampleSeed($0, base: 11) as UInt64? } && seeds[0] == 11)
        let samples = choices.map { Self.ids($0["token_ids"]) }
        #expect(Set(samples).count == 4, "four seeds, four different samples")
        #expect((first.json["usage"] as? [String: Any])?["completion_tokens"] as? Int == samples.reduce(0) { $0 + $1.count })

        let again = try await server.send("/v1/completions", json: body)
        #expect(Self.choices(again).map { Self.ids($0["token_ids"]) } == samples)
        #expect(try Exact(again).choices.indices.map(Exact(again).bits) == choices.indices.map(exact.bits))

        // Each choice alone, with its own seed and n = 1, is the same sample.
        for (j, choice) in choices.enumerated() {
            var alone = body
            alone["n"] = 1
            alone["seed"] = NSNumber(value: try #require(seeds[j]))
            let reply = try await server.send("/v1/completions", json: alone)
            let only = try #require(Self.choices(reply).first)
            #expect(Self.ids(only["token_ids"]) == samples[j] && only["text"] as? String == choice["text"] as? String)
            #expect(try Exact(reply).bits(0) == exact.bits(j), "choice \(j): logprobs differ from the same sample alone")
        }

        // Several prompts: choice p·n + j continues prompt p with sample j's seed.
        var pair = body
        pair["prompt"] = ["Once upon a time", Self.prompt]
        pair["n"] = 2
        let two = Self.choices(try await server.send("/v1/completions", json: pair))
        try #require(two.count == 4)
        #expect(Self.ids(two[2]["token_ids"]) == samples[0] && Self.ids(two[3]["token_ids"]) == samples[1])

        // Streamed: chunks of the four choices interleave; put together they are the same answer.
        var streamed = body
        streamed["stream"] = true
        streamed["stream_options"] = ["include_usage": true]
        let stream = try await server.send("/v1/completions", json: streamed)
        let events = stream.text.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
        #expect(events.last == "[DONE]")
        var texts = [String](repeating: "", count: 4), ids = [[Int]](repeating: [], count: 4), finished = [String?](repeating: nil, count: 4)
        var usage: [String: Any]?
        for event in events.dropLast() {
            let chunk = try #require(try JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any])
            if let u = chunk["usage"] as? [String: Any] { usage = u }
            for part in chunk["choices"] as? [[String: Any]] ?? [] {
                let index = try #require(part["index"] as? Int)
                try #require((0..<4).contains(index), "choice index \(index)")
                texts[index] += part["text"] as? String ?? ""
                ids[index] += Self.ids(part["token_ids"])
                if let reason = part["finish_reason"] as? String { finished[index] = reason }
            }
        }
        #expect(ids == samples && texts == choices.map { $0["text"] as? String ?? "" })
        #expect(finished.allSatisfy { $0 != nil })
        #expect(usage?["completion_tokens"] as? Int == samples.reduce(0) { $0 + $1.count })
        await server.stop()
    }

    @Test("token-id prompts equal their text, chat choices carry token ids, and every bad RL parameter is a 400 naming it")
    func tokenPromptsAndErrors() async throws {
        let server = try await TestServer.start()
        defer { try? FileManager.default.removeItem(atPath: server.cacheFolder) }
        let ids = try server.service.engine.tokens(of: .text(Self.prompt)).map(Int.init)
        let byText = try await server.send("/v1/completions", json: ["prompt": Self.prompt, "max_tokens": 6, "temperature": 0])
        let byIDs = try await server.send("/v1/completions", json: ["prompt": ids, "max_tokens": 6, "temperature": 0])
        #expect(byIDs.status == 200, "\(byIDs.text)")
        #expect(Self.ids(Self.choices(byIDs).first?["token_ids"]) == Self.ids(Self.choices(byText).first?["token_ids"]))
        #expect(Self.choices(byIDs).first?["text"] as? String == Self.choices(byText).first?["text"] as? String)

        let chat = try await server.send("/v1/chat/completions", json: [
            "messages": [["role": "user", "content": "Say hi."]], "max_tokens": 5, "temperature": 0.8, "seed": 3, "n": 2])
        #expect(chat.status == 200, "\(chat.text)")
        let chatChoices = Self.choices(chat)
        #expect(chatChoices.count == 2 && chatChoices.allSatisfy { Self.ids($0["token_ids"]).count == 5 })

        func expectError(_ body: [String: Any], path: String = "/v1/completions", _ param: String, _ fragment: String,
                         sourceLocation: SourceLocation = #_sourceLocation) async throws {
            let reply = try await server.send(path, json: body)
            #expect(reply.status == 400, "\(reply.text)", sourceLocation: sourceLocation)
            let error = reply.json["error"] as? [String: Any]
            #expect((error?["message"] as? String)?.contains(fragment) == true, "\(reply.text)", sourceLocation: sourceLocation)
            #expect(error?["param"] as? String == param || param.isEmpty, "\(reply.text)", sourceLocation: sourceLocation)
        }
        try await expectError(["prompt": [1, 999_999]], "", "out of range")
        try await expectError(["prompt": [1.5, 2]], "prompt", "integers")
        try await expectError(["prompt": []], "prompt", "not empty")
        try await expectError(["prompt": ["a", [Int]()]], "prompt[1]", "non-empty array of token ids")
        try await expectError(["prompt": "x", "n": 0], "n", "at least 1")
        try await expectError(["prompt": ["a", "b"], "n": 65], "n", "at most 128")
        try await expectError(["prompt": "x", "max_tokens": 0], "max_tokens", "0 with 'echo'")
        try await expectError(["messages": [["role": "user", "content": "x"]], "echo": true], path: "/v1/chat/completions", "echo", "/v1/completions only")
        let ok = try await server.send("/v1/completions", json: ["prompt": "x", "max_tokens": 1])
        #expect(ok.status == 200, "the server keeps serving")
        await server.stop()
    }
}
