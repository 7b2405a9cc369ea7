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
            fields = try JSONDecoder().decode(RequestBody.self, from: body)
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

/// The JSON body of `/v1/completions` and `/v1/chat/completions`: an object whose fields are
/// read with their types checked as the endpoint uses them, in the order `validated` reads
/// them, so a field the endpoint ignores is never refused and every error names its field.
/// JSON keeps booleans and numbers apart (`"temperature": true` is a type error, not 1).
struct RequestBody: Decodable {
    let fields: [String: JSONValue]

    init(from decoder: any Decoder) throws {
        fields = try decoder.singleValueContainer().decode([String: JSONValue].self)
    }

    /// A field's value; nil when absent or null.
    private func value(_ name: String) -> JSONValue? {
        if case .null? = fields[name] { return nil }
        return fields[name]
    }
    private func string(_ name: String) throws(APIError) -> String? {
        guard let v = value(name) else { return nil }
        guard case .string(let s) = v else { throw .invalid(name, "'\(name)' must be a string") }
        return s
    }
    private func number(_ name: String) throws(APIError) -> Double? {
        guard let v = value(name) else { return nil }
        guard case .number(let d) = v else { throw .invalid(name, "'\(name)' must be a number") }
        return d
    }
    private func integer(_ name: String) throws(APIError) -> Int? {
        guard let d = try number(name) else { return nil }
        // Integers up to 2^53 are exact in JSON (and in every client's doubles).
        guard d == d.rounded(), abs(d) <= 9_007_199_254_740_991 else {
            throw .invalid(name, "'\(name)' must be an integer of at most 2^53 - 1 in size")
        }
        return Int(d)
    }
    private func boolean(_ name: String) throws(APIError) -> Bool? {
        guard let v = value(name) else { return nil }
        guard case .bool(let b) = v else { throw .invalid(name, "'\(name)' must be true or false") }
        return b
    }

    /// messages[i]: an object with string `role` (system, user or assistant) and `content`.
    private static func message(_ item: JSONValue, index i: Int) throws(APIError) -> ChatMessage {
        guard case .object(let m) = item, case .string(let role)? = m["role"], case .string(let content)? = m["content"] else {
            throw .invalid("messages[\(i)]", "messages[\(i)] must be an object with string 'role' and 'content'")
        }
        guard ["system", "user", "assistant"].contains(role) else {
            throw .invalid("messages[\(i)].role", "messages[\(i)].role must be system, user or assistant (got '\(role)')")
        }
        return ChatMessage(role: ChatRole(role), content: content)
    }

    /// `prompt` of the completions endpoint: a string, token ids, or an array of either.
    private static func prompts(_ raw: JSONValue) throws(APIError) -> [GenerationRequest.Input] {
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
        guard case .array(let list) = raw, !list.isEmpty else { throw .invalid("prompt", what + " (and not empty)") }
        if list.allSatisfy({ if case .number = $0 { true } else { false } }) {
            guard let ids = tokenIDs(list) else { throw .invalid("prompt", "token ids in 'prompt' must be integers from 0 to \(Int32.max)") }
            return [.tokens(ids)]
        }
        let maxChoices = GenerationRequest.maxChoices
        guard list.count <= maxChoices else { throw .invalid("prompt", "at most \(maxChoices) prompts in one request (got \(list.count))") }
        var inputs: [GenerationRequest.Input] = []
        for (i, item) in list.enumerated() {
            switch item {
            case .string(let text):
                inputs.append(.text(text))
            case .array(let inner) where !inner.isEmpty:
                guard let ids = tokenIDs(inner) else { fallthrough }
                inputs.append(.tokens(ids))
            default:
                throw .invalid("prompt[\(i)]", what + "; prompt[\(i)] is neither a string nor a non-empty array of token ids")
            }
        }
        return inputs
    }

    /// The request the engine runs, every value checked against its type and range.
    func validated(chat: Bool) throws(APIError) -> GenerationRequest {
        let inputs: [GenerationRequest.Input]
        if chat {
            guard let raw = fields["messages"] else { throw .invalid("messages", "'messages' is required") }
            guard case .array(let list) = raw, !list.isEmpty else { throw .invalid("messages", "'messages' must be a non-empty array") }
            var messages: [ChatMessage] = []
            for (i, item) in list.enumerated() { messages.append(try Self.message(item, index: i)) }
            inputs = [.chat(messages)]
        } else {
            guard let raw = fields["prompt"] else { throw .invalid("prompt", "'prompt' is required") }
            inputs = try Self.prompts(raw)
        }
        let maxChoices = GenerationRequest.maxChoices
        let n = try integer("n") ?? 1
        guard n >= 1, n * inputs.count <= maxChoices else {
            throw .invalid("n", "'n' must be at least 1, and n times the number of prompts at most \(maxChoices) (got n = \(n), \(inputs.count) prompts)")
        }
        let echo = try boolean("echo") ?? false
        if chat && echo { throw .invalid("echo", "'echo' is for /v1/completions only") }
        var maxTokens = chat ? 256 : 16
        if chat, let n = try integer("max_completion_tokens") { maxTokens = n } else if let n = try integer("max_tokens") { maxTokens = n }
        guard maxTokens >= (echo ? 0 : 1) else {
            throw .invalid("max_tokens", "'max_tokens' must be at least 1, or 0 with 'echo': true (got \(maxTokens))")
        }
        let temperature = try number("temperature") ?? 1
        guard temperature >= 0, temperature <= 2 else { throw .invalid("temperature", "'temperature' must be between 0 and 2 (got \(temperature))") }
        let topP = try number("top_p") ?? 1
        guard topP > 0, topP <= 1 else { throw .invalid("top_p", "'top_p' must be in (0, 1] (got \(topP))") }
        var seed: UInt64?
        if let s = try integer("seed") {
            guard s >= 0 else { throw .invalid("seed", "'seed' must be a non-negative integer") }
            seed = UInt64(s)
        }
        var stop: [String] = []
        if let raw = value("stop") {
            let what = "'stop' must be a string or an array of at most 4 strings"
            switch raw {
            case .string(let s): stop = [s]
            case .array(let list) where list.count <= 4:
                for item in list {
                    guard case .string(let s) = item else { throw .invalid("stop", what) }
                    stop.append(s)
                }
            default: throw .invalid("stop", what)
            }
            guard !stop.contains("") else { throw .invalid("stop", "'stop' strings must not be empty") }
        }
        var logprobs = false
        var topLogprobs = 0
        if chat {
            logprobs = try boolean("logprobs") ?? false
            topLogprobs = try integer("top_logprobs") ?? 0
            guard (0...20).contains(topLogprobs) else { throw .invalid("top_logprobs", "'top_logprobs' must be between 0 and 20") }
            if topLogprobs > 0 && !logprobs { throw .invalid("top_logprobs", "'top_logprobs' needs 'logprobs': true") }
        } else if let n = try integer("logprobs") {
            guard (0...5).contains(n) else { throw .invalid("logprobs", "'logprobs' must be between 0 and 5") }
            logprobs = true
            topLogprobs = n
        }
        let stream = try boolean("stream") ?? false
        var includeUsage = false
        if let options = value("stream_options") {
            guard case .object(let o) = options else { throw .invalid("stream_options", "'stream_options' must be an object") }
            if case .bool(let b)? = o["include_usage"] { includeUsage = b }
        }
        return GenerationRequest(model: try string("model"), inputs: inputs, n: n, echo: echo,
                                 returnTokenIDs: try boolean("return_token_ids") ?? false, maxTokens: maxTokens,
                                 temperature: Float(temperature), topP: Float(topP), seed: seed, stop: stop, logprobs: logprobs,
                                 topLogprobs: topLogprobs, stream: stream, includeUsage: includeUsage,
                                 ignoreEOS: try boolean("ignore_eos") ?? false)
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
