import Foundation
import Verbatim
import VerbatimModel

/// An OpenAI-style error: `{"error": {"message", "type", "param", "code"}}` with its HTTP status.
public struct APIError: Error, Sendable {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public init(_ status: Int, _ message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    var json: [String: Any] {
        ["error": ["message": message, "type": type, "param": param as Any? ?? NSNull(), "code": code as Any? ?? NSNull()]]
    }

    static func invalid(_ param: String, _ message: String) -> APIError { APIError(400, message, param: param) }
}

/// What both endpoints accept, decoded by hand from JSON so every wrong type names its field.
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

    /// Parses and validates a request body; `chat` selects the chat endpoint's fields.
    static func parse(_ body: Data, chat: Bool) throws(APIError) -> GenerationRequest {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: body), let json = value.any as? [String: Any] else {
            throw APIError(400, "the request body is not a JSON object", code: "invalid_json")
        }
        func field<T>(_ name: String, _ type: T.Type, _ what: String) throws(APIError) -> T? {
            guard let value = json[name], !(value is NSNull) else { return nil }
            guard let typed = value as? T else { throw .invalid(name, "'\(name)' must be \(what)") }
            return typed
        }
        func number(_ name: String) throws(APIError) -> Double? {
            guard let value = json[name], !(value is NSNull) else { return nil }
            guard let n = value as? Double else { throw .invalid(name, "'\(name)' must be a number") }
            return n
        }
        func integer(_ name: String) throws(APIError) -> Int? {
            guard let d = try number(name) else { return nil }
            // Integers up to 2^53 are exact in JSON (and in every client's doubles).
            guard d == d.rounded(), abs(d) <= 9_007_199_254_740_991 else {
                throw .invalid(name, "'\(name)' must be an integer of at most 2^53 - 1 in size")
            }
            return Int(d)
        }
        func boolean(_ name: String) throws(APIError) -> Bool? {
            guard let value = json[name], !(value is NSNull) else { return nil }
            guard let b = value as? Bool else { throw .invalid(name, "'\(name)' must be true or false") }
            return b
        }

        let inputs: [Input]
        if chat {
            guard let raw = json["messages"] else { throw .invalid("messages", "'messages' is required") }
            guard let list = raw as? [Any], !list.isEmpty else { throw .invalid("messages", "'messages' must be a non-empty array") }
            var messages: [ChatMessage] = []
            for (i, item) in list.enumerated() {
                guard let m = item as? [String: Any], let role = m["role"] as? String, let content = m["content"] as? String else {
                    throw .invalid("messages[\(i)]", "messages[\(i)] must be an object with string 'role' and 'content'")
                }
                guard ["system", "user", "assistant"].contains(role) else {
                    throw .invalid("messages[\(i)].role", "messages[\(i)].role must be system, user or assistant (got '\(role)')")
                }
                messages.append(ChatMessage(role: ChatRole(role), content: content))
            }
            inputs = [.chat(messages)]
        } else {
            guard let raw = json["prompt"] else { throw .invalid("prompt", "'prompt' is required") }
            inputs = try parsePrompts(raw)
        }

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
        if let value = json["stop"], !(value is NSNull) {
            if let s = value as? String { stop = [s] } else if let list = value as? [Any], list.count <= 4, list.allSatisfy({ $0 is String }) { stop = list.map { $0 as! String } } else {
                throw .invalid("stop", "'stop' must be a string or an array of at most 4 strings")
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
        let options = try field("stream_options", [String: Any].self, "an object")
        let includeUsage = (options?["include_usage"] as? Bool) ?? false
        return GenerationRequest(model: try field("model", String.self, "a string"), inputs: inputs, n: n, echo: echo,
                                 returnTokenIDs: try boolean("return_token_ids") ?? false, maxTokens: maxTokens,
                                 temperature: Float(temperature), topP: Float(topP), seed: seed, stop: stop, logprobs: logprobs,
                                 topLogprobs: topLogprobs, stream: stream, includeUsage: includeUsage,
                                 ignoreEOS: try boolean("ignore_eos") ?? false)
    }

    /// `prompt` of the completions endpoint: a string, token ids, or an array of either.
    private static func parsePrompts(_ raw: Any) throws(APIError) -> [Input] {
        func tokenIDs(_ list: [Any]) -> [TokenID]? {
            var ids: [TokenID] = []
            ids.reserveCapacity(list.count)
            for item in list {
                guard let d = item as? Double, d == d.rounded(), d >= 0, d <= Double(Int32.max) else { return nil }
                ids.append(TokenID(d))
            }
            return ids
        }
        let what = "'prompt' must be a string, an array of token ids, or an array of strings or of token-id arrays"
        if let text = raw as? String { return [.text(text)] }
        guard let list = raw as? [Any], !list.isEmpty else { throw .invalid("prompt", what + " (and not empty)") }
        if list.allSatisfy({ $0 is Double }) {
            guard let ids = tokenIDs(list) else { throw .invalid("prompt", "token ids in 'prompt' must be integers from 0 to \(Int32.max)") }
            return [.tokens(ids)]
        }
        guard list.count <= maxChoices else { throw .invalid("prompt", "at most \(maxChoices) prompts in one request (got \(list.count))") }
        var inputs: [Input] = []
        for (i, item) in list.enumerated() {
            if let text = item as? String {
                inputs.append(.text(text))
            } else if let inner = item as? [Any], !inner.isEmpty, let ids = tokenIDs(inner) {
                inputs.append(.tokens(ids))
            } else {
                throw .invalid("prompt[\(i)]", what + "; prompt[\(i)] is neither a string nor a non-empty array of token ids")
            }
        }
        return inputs
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

/// A JSON value that keeps booleans and numbers apart (`Bool`, `Double`, `String`, arrays,
/// objects, `NSNull` in `any`), so `"temperature": true` is a type error, not 1.
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

    var any: Any {
        switch self {
        case .null: NSNull()
        case .bool(let b): b
        case .number(let d): d
        case .string(let s): s
        case .array(let a): a.map(\.any)
        case .object(let o): o.mapValues(\.any)
        }
    }
}
