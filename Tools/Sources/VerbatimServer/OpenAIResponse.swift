import Foundation
import Hummingbird
import NIOCore
import Verbatim

/// An OpenAI-style error, `{"error": {"message", "type", "param", "code"}}`, with its HTTP
/// status. It renders itself (`response`), and `init(_:)` maps any failure to one, so the
/// routes have a single way to turn an error into a reply.
public struct APIError: Error, Sendable, Encodable {
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

    static func invalid(_ param: String, _ message: String) -> APIError { APIError(400, message, param: param) }

    /// The reply for any failure: an `APIError` as it is, an engine error by its code, a body
    /// over `maxBodyBytes` as 413, anything else as a 500 naming it.
    init(_ error: any Error, maxBodyBytes: Int) {
        switch error {
        case let e as APIError:
            self = e
        case let e as EngineError:
            self = switch e.code {
            case .contextExceeded: APIError(400, e.message, code: "context_length_exceeded")
            case .queueFull: APIError(429, e.message, type: "rate_limit_error", code: "queue_full")
            case .shutDown: APIError(503, e.message, type: "server_error", code: "shutting_down")
            case .cancelled: APIError(499, e.message, code: "client_closed")
            default: APIError(400, e.message, code: e.code.rawValue)
            }
        case is NIOTooManyBytesError:
            self = APIError(413, "the request body is larger than \(maxBodyBytes) bytes", code: "body_too_large")
        case let e as HTTPError:
            let status = Int(e.status.code)
            self = APIError(status, status == 413 ? "the request body is larger than \(maxBodyBytes) bytes" : "\(e)")
        default:
            self = APIError(500, "\(error)", type: "server_error")
        }
    }

    /// `{"error": {...}}`, every field present (null when unset).
    public func encode(to encoder: any Encoder) throws {
        enum Outer: String, CodingKey { case error }
        enum Inner: String, CodingKey { case message, type, param, code }
        var outer = encoder.container(keyedBy: Outer.self)
        var c = outer.nestedContainer(keyedBy: Inner.self, forKey: .error)
        try c.encode(message, forKey: .message)
        try c.encode(type, forKey: .type)
        try c.encode(param, forKey: .param)
        try c.encode(code, forKey: .code)
    }

    /// The error as an HTTP response with its status.
    var response: Response { JSONBody.response(status, self) }
}

/// JSON as the service writes it: keys sorted, slashes unescaped, numbers in their shortest
/// exact form (a Float logprob widened to Double reads back to the same Float).
enum JSONBody {
    static func data(_ value: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)) ?? Data("{}".utf8)
    }

    static func response(_ status: Int, _ value: some Encodable) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(bytes: data(value))))
    }
}

/// `GET /v1/models`.
struct ModelList: Encodable {
    struct Model: Encodable {
        var id: String
        var object = "model"
        var created = 0
        var owned_by = "verbatim"
    }
    var object = "list"
    var data: [Model]
}

/// Token counts of a response: prompts once each, completions once per choice.
struct Usage: Encodable {
    struct PromptDetails: Encodable { var cached_tokens: Int }
    var prompt_tokens: Int
    var completion_tokens: Int
    var total_tokens: Int
    var prompt_tokens_details: PromptDetails
}

/// Log-probabilities of a choice, in the shape of its endpoint. Every value is the model's
/// own (the full softmax), never renormalised by top-k, top-p or min-p.
enum Logprobs: Encodable {
    /// `/v1/completions`: parallel lists; the first echoed prompt token has no logprob (null).
    struct Completion: Encodable {
        var tokens: [String] = []
        var token_logprobs: [Double?] = []
        var top_logprobs: [[String: Double]?] = []
        var text_offset: [Int] = []
    }
    /// `/v1/chat/completions`: one entry per token with its alternatives.
    struct Chat: Encodable {
        struct Alternative: Encodable {
            var token: String
            var logprob: Double
            var bytes: [Int]
        }
        struct Token: Encodable {
            var token: String
            var logprob: Double
            var bytes: [Int]
            var top_logprobs: [Alternative]
        }
        var content: [Token]
    }
    case completion(Completion), chat(Chat)

    func encode(to encoder: any Encoder) throws {
        switch self {
        case .completion(let c): try c.encode(to: encoder)
        case .chat(let c): try c.encode(to: encoder)
        }
    }
}

/// A chat message or a streamed chat delta (`{}` in a chunk that only finishes).
struct ChatDelta: Encodable {
    var role: String?
    var content: String?
}

/// One choice of a response or of a streamed chunk. `logprobs` and `finish_reason` are always
/// written (null when unset); the rest only when set.
struct ChoiceBody: Encodable {
    var index: Int
    var finishReason: String?
    var logprobs: Logprobs?
    var text: String?
    var message: ChatDelta?
    var delta: ChatDelta?
    var tokenIDs: [TokenID]?
    var promptTokenIDs: [TokenID]?
    var seed: UInt64?

    enum CodingKeys: String, CodingKey {
        case index, logprobs, text, message, delta, seed
        case finishReason = "finish_reason", tokenIDs = "token_ids", promptTokenIDs = "prompt_token_ids"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(index, forKey: .index)
        try c.encode(finishReason, forKey: .finishReason)
        try c.encode(logprobs, forKey: .logprobs)
        try c.encodeIfPresent(text, forKey: .text)
        try c.encodeIfPresent(message, forKey: .message)
        try c.encodeIfPresent(delta, forKey: .delta)
        try c.encodeIfPresent(tokenIDs, forKey: .tokenIDs)
        try c.encodeIfPresent(promptTokenIDs, forKey: .promptTokenIDs)
        try c.encodeIfPresent(seed, forKey: .seed)
    }
}

/// A whole response (`chat.completion`, `text_completion`) or one streamed chunk. `usage` is
/// always written (null in chunks but the last); `seed` only in whole responses (null when greedy).
struct CompletionBody: Encodable {
    var id: String
    var object: String
    var created: Int
    var model: String
    var systemFingerprint: String
    var choices: [ChoiceBody]
    var usage: Usage?
    /// nil: a chunk (no `seed` key); .some(nil): a greedy whole response.
    var seed: UInt64??

    enum CodingKeys: String, CodingKey {
        case id, object, created, model, choices, usage, seed
        case systemFingerprint = "system_fingerprint"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(object, forKey: .object)
        try c.encode(created, forKey: .created)
        try c.encode(model, forKey: .model)
        try c.encode(systemFingerprint, forKey: .systemFingerprint)
        try c.encode(choices, forKey: .choices)
        try c.encode(usage, forKey: .usage)
        if let seed { try c.encode(seed, forKey: .seed) }
    }
}
