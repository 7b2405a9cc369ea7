import Foundation
import Verbatim

/// What both endpoints accept, decoded from JSON (`RequestBody`) and validated, so every wrong
/// type or value is a 400 that names its field.
struct GenerationRequest: Sendable {
    enum Input: Sendable { case text(String), tokens([TokenID]), chat([ChatMessage]) }
    /// Prompts and samples per prompt in one request, at most (the choices of a response).
    static let maxChoices = 128
    var model: String?
    /// One prompt (chat, or completions with a string or token ids) or several (completions).
    var inputs: [Input]
    /// Samples per prompt; sample j of every prompt uses `GenerateParameters.sampleSeed(j, base:)`.
    var n: Int
    /// Completions: the prompt comes back before the completion (text, and with `logprobs` its
    /// tokens' log-probabilities); with `max_tokens: 0` it is scoring alone.
    var echo: Bool
    /// Also return each prompt's token ids (`prompt_token_ids`); generated ids always come back.
    var returnTokenIDs: Bool
    var maxTokens: Int
    var temperature: Float
    var topP: Float
    var seed: UInt64?
    var stop: [String]
    var logprobs: Bool
    var topLogprobs: Int
    var stream: Bool
    var includeUsage: Bool
    /// Generate past the end-of-sequence token, up to `max_tokens` (benchmarks, tests).
    var ignoreEOS = false

    /// Decodes and validates a request body; `chat` selects the chat endpoint's fields.
    static func parse(_ body: Data, chat: Bool) throws(APIError) -> GenerationRequest {
        let fields: RequestBody
        do {
            let decoder = JSONDecoder()
            decoder.userInfo[RequestBody.chatEndpoint] = chat
            fields = try decoder.decode(RequestBody.self, from: body)
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError(400, "the request body is not a JSON object", code: "invalid_json")
        }
        return try fields.validated(chat: chat)
    }

    /// The prompts; chats render with `template` when given (else the model's own).
    func prompts(template: ChatTemplate?) -> [Prompt] {
        inputs.map { input in
            switch input {
            case .text(let t): .text(t)
            case .tokens(let ids): .tokens(ids)
            case .chat(let m): .chat(m, options: ChatOptions(template: template))
            }
        }
    }

    var parameters: GenerateParameters {
        var p = GenerateParameters(maxTokens: maxTokens, temperature: temperature, topP: topP, seed: seed,
                                   stopStrings: stop, logprobs: logprobs, topLogprobs: topLogprobs)
        p.parseSpecialTokens = false   // text from a client never becomes control tokens
        p.stopAtEOS = !ignoreEOS
        return p
    }
}

/// The JSON body of `/v1/completions` and `/v1/chat/completions` as OpenAI defines it, every
/// field optional. JSON keeps booleans and numbers apart (`"temperature": true` is a type
/// error, not 1); a field of the wrong type throws an `APIError` naming it.
struct RequestBody: Decodable {
    var model: String?
    var messages: [ChatMessage]?
    var prompt: [GenerationRequest.Input]?
    var n, maxTokens, maxCompletionTokens, topLogprobs, seed: Double?
    var temperature, topP: Double?
    /// Completions: a number (0...5 alternatives); chat: true or false.
    var logprobs: LogprobsField?
    var echo, returnTokenIDs, stream, ignoreEOS: Bool?
    var stop: [String]?
    var includeUsage: Bool?

    enum Key: String, CodingKey {
        case model, messages, prompt, n, echo, seed, stop, stream, temperature, logprobs
        case maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens", topP = "top_p"
        case topLogprobs = "top_logprobs", returnTokenIDs = "return_token_ids", ignoreEOS = "ignore_eos"
        case streamOptions = "stream_options"
    }

    enum LogprobsField { case flag(Bool), count(Double) }

    struct StreamOptions: Decodable {
        var includeUsage: Bool?
        enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
    }

    /// `userInfo` key: true when decoding for the chat endpoint (which reads `messages`, not `prompt`).
    static let chatEndpoint = CodingUserInfoKey(rawValue: "verbatim.chat")!

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        let chat = decoder.userInfo[Self.chatEndpoint] as? Bool ?? false
        /// A field of type `T`, nil when absent or null; the wrong type names the field.
        func field<T: Decodable>(_ key: Key, _ what: String) throws -> T? {
            do { return try c.decodeIfPresent(T.self, forKey: key) } catch let error as APIError { throw error } catch {
                throw APIError.invalid(key.stringValue, "'\(key.stringValue)' must be \(what)")
            }
        }
        model = try field(.model, "a string")
        if chat && c.contains(.messages) {
            guard let list: [JSONValue] = try field(.messages, "a non-empty array"), !list.isEmpty else {
                throw APIError.invalid("messages", "'messages' must be a non-empty array")
            }
            messages = try list.enumerated().map { i, item in try Self.message(item, index: i) }
        }
        if !chat && c.contains(.prompt), let raw: JSONValue = try field(.prompt, "a string or an array") {
            prompt = try Self.prompts(raw)
        }
        for (key, path) in [(Key.n, \Self.n), (.maxTokens, \.maxTokens), (.maxCompletionTokens, \.maxCompletionTokens),
                            (.topLogprobs, \.topLogprobs), (.seed, \.seed), (.temperature, \.temperature), (.topP, \.topP)] {
            self[keyPath: path] = try field(key, "a number")
        }
        echo = try field(.echo, "true or false")
        returnTokenIDs = try field(.returnTokenIDs, "true or false")
        stream = try field(.stream, "true or false")
        ignoreEOS = try field(.ignoreEOS, "true or false")
        if let raw: JSONValue = try field(.logprobs, "a number or true or false") {
            switch raw {
            case .bool(let b): logprobs = .flag(b)
            case .number(let d): logprobs = .count(d)
            default: throw APIError.invalid("logprobs", "'logprobs' must be a number or true or false")
            }
        }
        if let raw: JSONValue = try field(.stop, "a string or an array of at most 4 strings") {
            switch raw {
            case .string(let s): stop = [s]
            case .array(let list) where list.count <= 4:
                stop = try list.map { item in
                    guard case .string(let s) = item else { throw APIError.invalid("stop", "'stop' must be a string or an array of at most 4 strings") }
                    return s
                }
            default: throw APIError.invalid("stop", "'stop' must be a string or an array of at most 4 strings")
            }
        }
        let options: StreamOptions? = try field(.streamOptions, "an object")
        includeUsage = options?.includeUsage
    }

    /// messages[i]: an object with string `role` (system, user or assistant) and `content`.
    private static func message(_ item: JSONValue, index i: Int) throws -> ChatMessage {
        guard case .object(let m) = item, case .string(let role)? = m["role"], case .string(let content)? = m["content"] else {
            throw APIError.invalid("messages[\(i)]", "messages[\(i)] must be an object with string 'role' and 'content'")
        }
        guard ["system", "user", "assistant"].contains(role) else {
            throw APIError.invalid("messages[\(i)].role", "messages[\(i)].role must be system, user or assistant (got '\(role)')")
        }
        return ChatMessage(role: ChatRole(role), content: content)
    }

    /// `prompt` of the completions endpoint: a string, token ids, or an array of either.
    private static func prompts(_ raw: JSONValue) throws -> [GenerationRequest.Input] {
        func tokenIDs(_ list: [JSONValue]) -> [TokenID]? {
            var ids: [TokenID] = []
            ids.reserveCapacity(list.count)
            for item in list {
                guard case .number(let d) = item, d == d.rounded(), d >= 0, d <= Double(Int32.max) else { return nil }
                ids.append(TokenID(d))
            }
            return ids
        }
        let what = "'prompt' must be a string, an array of token ids, or an array of strings or of token-id arrays"
        if case .string(let text) = raw { return [.text(text)] }
        guard case .array(let list) = raw, !list.isEmpty else { throw APIError.invalid("prompt", what + " (and not empty)") }
        if list.allSatisfy({ if case .number = $0 { true } else { false } }) {
            guard let ids = tokenIDs(list) else { throw APIError.invalid("prompt", "token ids in 'prompt' must be integers from 0 to \(Int32.max)") }
            return [.tokens(ids)]
        }
        let maxChoices = GenerationRequest.maxChoices
        guard list.count <= maxChoices else { throw APIError.invalid("prompt", "at most \(maxChoices) prompts in one request (got \(list.count))") }
        return try list.enumerated().map { i, item in
            switch item {
            case .string(let text): return .text(text)
            case .array(let inner) where !inner.isEmpty:
                if let ids = tokenIDs(inner) { return .tokens(ids) }
            default: break
            }
            throw APIError.invalid("prompt[\(i)]", what + "; prompt[\(i)] is neither a string nor a non-empty array of token ids")
        }
    }

    /// The request the engine runs, with every value checked against its range.
    func validated(chat: Bool) throws(APIError) -> GenerationRequest {
        func integer(_ key: Key, _ value: Double?) throws(APIError) -> Int? {
            guard let d = value else { return nil }
            // Integers up to 2^53 are exact in JSON (and in every client's doubles).
            guard d == d.rounded(), abs(d) <= 9_007_199_254_740_991 else {
                throw .invalid(key.stringValue, "'\(key.stringValue)' must be an integer of at most 2^53 - 1 in size")
            }
            return Int(d)
        }
        let inputs: [GenerationRequest.Input]
        if chat {
            guard let messages else { throw .invalid("messages", "'messages' is required") }
            inputs = [.chat(messages)]
        } else {
            guard let prompt else { throw .invalid("prompt", "'prompt' is required") }
            inputs = prompt
        }
        let n = try integer(.n, n) ?? 1
        guard n >= 1, n * inputs.count <= GenerationRequest.maxChoices else {
            throw .invalid("n", "'n' must be at least 1, and n times the number of prompts at most \(GenerationRequest.maxChoices) (got n = \(n), \(inputs.count) prompts)")
        }
        let echo = echo ?? false
        if chat && echo { throw .invalid("echo", "'echo' is for /v1/completions only") }
        var maxTokens = chat ? 256 : 16
        if chat, let n = try integer(.maxCompletionTokens, maxCompletionTokens) { maxTokens = n } else if let n = try integer(.maxTokens, self.maxTokens) { maxTokens = n }
        guard maxTokens >= (echo ? 0 : 1) else {
            throw .invalid("max_tokens", "'max_tokens' must be at least 1, or 0 with 'echo': true (got \(maxTokens))")
        }
        let temperature = temperature ?? 1
        guard temperature >= 0, temperature <= 2 else { throw .invalid("temperature", "'temperature' must be between 0 and 2 (got \(temperature))") }
        let topP = topP ?? 1
        guard topP > 0, topP <= 1 else { throw .invalid("top_p", "'top_p' must be in (0, 1] (got \(topP))") }
        var seed: UInt64?
        if let s = try integer(.seed, self.seed) {
            guard s >= 0 else { throw .invalid("seed", "'seed' must be a non-negative integer") }
            seed = UInt64(s)
        }
        let stop = stop ?? []
        guard !stop.contains("") else { throw .invalid("stop", "'stop' strings must not be empty") }
        var wantsLogprobs = false
        var topLogprobs = 0
        if chat {
            switch logprobs {
            case nil: break
            case .flag(let b)?: wantsLogprobs = b
            case .count?: throw .invalid("logprobs", "'logprobs' must be true or false")
            }
            topLogprobs = try integer(.topLogprobs, self.topLogprobs) ?? 0
            guard (0...20).contains(topLogprobs) else { throw .invalid("top_logprobs", "'top_logprobs' must be between 0 and 20") }
            if topLogprobs > 0 && !wantsLogprobs { throw .invalid("top_logprobs", "'top_logprobs' needs 'logprobs': true") }
        } else {
            switch logprobs {
            case nil: break
            case .flag?: throw .invalid("logprobs", "'logprobs' must be a number")
            case .count(let d)?:
                guard let n = try integer(.logprobs, d), (0...5).contains(n) else { throw .invalid("logprobs", "'logprobs' must be between 0 and 5") }
                wantsLogprobs = true
                topLogprobs = n
            }
        }
        return GenerationRequest(model: model, inputs: inputs, n: n, echo: echo, returnTokenIDs: returnTokenIDs ?? false,
                                 maxTokens: maxTokens, temperature: Float(temperature), topP: Float(topP), seed: seed, stop: stop,
                                 logprobs: wantsLogprobs, topLogprobs: topLogprobs, stream: stream ?? false,
                                 includeUsage: includeUsage ?? false, ignoreEOS: ignoreEOS ?? false)
    }
}

/// Any JSON value, booleans and numbers kept apart, for the fields whose shape varies
/// (`prompt`, `stop`, `logprobs`, `messages`).
enum JSONValue: Decodable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }
}
