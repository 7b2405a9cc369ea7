import VerbatimModel

/// What to generate from.
public enum Prompt: Sendable, Equatable {
    /// Text, encoded as plain text: control-token text in it (such as `<|im_start|>`) becomes
    /// control tokens only when `GenerateParameters.parseSpecialTokens` is set (trusted text).
    case text(String)
    /// Token ids, fed as they are (no BOS added); each must be in the vocabulary.
    case tokens([TokenID])
    /// Chat messages, rendered by the model's chat template (or `options.template`), by
    /// default with its generation prompt. A template's `raise_exception` (for example roles
    /// that do not alternate) is an ``EngineError`` with code `invalidPrompt`.
    case chat([ChatMessage], options: ChatOptions = ChatOptions())
}

/// How to generate. Every field that changes the output is part of the completion cache key.
public struct GenerateParameters: Sendable, Equatable, Hashable, Codable {
    /// Tokens to generate at most (at least 1); generation also stops at the context window.
    public var maxTokens: Int = 256
    /// 0 means greedy (argmax, ties to the lowest id).
    public var temperature: Float = 0
    /// Keep the k most likely tokens (0: all).
    public var topK: Int = 0
    /// Keep the smallest set of most likely tokens whose probability reaches topP (1: all).
    public var topP: Float = 1
    /// Drop tokens less likely than minP times the most likely one (0: none).
    public var minP: Float = 0
    /// The seed of the random draws; nil picks a random one (reported in the summary).
    public var seed: UInt64?
    /// Generation stops after any of these tokens (which is kept in the output).
    public var stopTokens: [TokenID] = []
    /// Also stop at the model's end-of-sequence token, unless false.
    public var stopAtEOS: Bool = true
    /// Generation stops when the text contains one of these; the text is cut before it.
    public var stopStrings: [String] = []
    /// Report the log-probability of each generated token.
    public var logprobs: Bool = false
    /// With `logprobs`, also report this many most likely alternatives per step (0...20).
    public var topLogprobs: Int = 0
    /// For `.text` prompts: match control tokens written in the text (such as `<|im_start|>`).
    /// Off by default, so text from an untrusted user cannot forge turns; turn it on only for
    /// text the application itself wrote.
    public var parseSpecialTokens: Bool = false
    /// For `.text` prompts: prepend BOS when the model asks for it.
    public var addSpecialTokens: Bool = true

    /// Parameters with the given fields; the others keep their defaults (stop at EOS, no special
    /// tokens parsed from text, BOS added when the model asks for it).
    public init(maxTokens: Int = 256, temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0,
                seed: UInt64? = nil, stopTokens: [TokenID] = [], stopAtEOS: Bool = true, stopStrings: [String] = [],
                logprobs: Bool = false, topLogprobs: Int = 0) {
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.seed = seed
        self.stopTokens = stopTokens
        self.stopAtEOS = stopAtEOS
        self.stopStrings = stopStrings
        self.logprobs = logprobs
        self.topLogprobs = topLogprobs
    }

    /// The seed of sample `index` of a request that asks for several samples from one `base`
    /// seed (the server's `n`): sample 0 uses `base` itself, so one sample equals the request
    /// alone; the others get well-mixed seeds that are the same on every run. Replaying sample
    /// `index` alone with this seed gives its bits. Derived seeds are below 2^53, so they stay
    /// exact as JSON numbers.
    public static func sampleSeed(_ index: Int, base: UInt64) -> UInt64 {
        guard index != 0 else { return base }
        // SplitMix64's finaliser over base + index·golden ratio: neighbouring indexes land far apart.
        var z = base &+ UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return (z ^ (z >> 31)) >> 11
    }

    /// Checks every field; the error names the field and the allowed range.
    public func validate() throws(EngineError) {
        func invalid(_ message: String) -> EngineError { EngineError(.invalidParameters, message) }
        guard maxTokens >= 1 else { throw invalid("maxTokens must be at least 1 (got \(maxTokens))") }
        guard temperature.isFinite, temperature >= 0 else { throw invalid("temperature must be finite and >= 0 (got \(temperature))") }
        guard topK >= 0 else { throw invalid("topK must be >= 0 (got \(topK))") }
        guard topP.isFinite, topP > 0, topP <= 1 else { throw invalid("topP must be in (0, 1] (got \(topP))") }
        guard minP.isFinite, minP >= 0, minP <= 1 else { throw invalid("minP must be in [0, 1] (got \(minP))") }
        guard (0...20).contains(topLogprobs) else { throw invalid("topLogprobs must be in 0...20 (got \(topLogprobs))") }
        guard !stopStrings.contains("") else { throw invalid("stop strings must not be empty") }
    }
}

/// A problem with a request or the engine, by code, with a message that names it.
public struct EngineError: Error, Equatable, CustomStringConvertible, Sendable, Codable {
    /// What went wrong; stable across versions (the server's error `code` is its raw value).
    public enum Code: String, Sendable, Codable {
        /// The prompt has no tokens.
        case emptyPrompt
        /// The prompt (with `maxTokens`) is longer than the model's context window.
        case contextExceeded
        /// A token id is outside the vocabulary.
        case invalidToken
        /// A parameter or configuration value is out of its range; the message names it.
        case invalidParameters
        /// The prompt could not be made into tokens (the chat template refused the messages, say).
        case invalidPrompt
        /// The request needs more KV memory than the engine has in all.
        case outOfKVMemory
        /// Too many requests are waiting (`maxQueuedRequests`).
        case queueFull
        /// The engine no longer accepts requests.
        case shutDown
        /// The model file could not be read or is not a supported model.
        case modelLoad
        /// The caller stopped the work (`Engine.tokenize` in a cancelled task).
        case cancelled
    }
    /// What went wrong.
    public let code: Code
    /// Names the value or limit at fault.
    public let message: String
    /// An error with its code and message.
    public init(_ code: Code, _ message: String) { self.code = code; self.message = message }
    public var description: String { "engine error (\(code.rawValue)): \(message)" }
}

/// One generated token as streamed to the caller.
public struct GeneratedToken: Sendable, Equatable {
    /// The token.
    public var id: TokenID
    /// New text this token completes (never half a UTF-8 character; may be empty).
    public var text: String
    /// log p(token | everything before it) under the model (not the sampling distribution),
    /// when logprobs were asked for. Bitwise equal to scoring the same tokens.
    public var logprob: Float?
    /// The most likely alternatives at this step: (token, logprob), most likely first.
    public var topLogprobs: [(id: TokenID, logprob: Float)]

    public static func == (a: GeneratedToken, b: GeneratedToken) -> Bool {
        a.id == b.id && a.text == b.text && a.logprob?.bitPattern == b.logprob?.bitPattern
            && a.topLogprobs.map(\.id) == b.topLogprobs.map(\.id)
            && a.topLogprobs.map(\.logprob.bitPattern) == b.topLogprobs.map(\.logprob.bitPattern)
    }
}

/// One token of a scored sequence (`Engine.score(_:topLogprobs:)`).
public struct ScoredToken: Sendable, Equatable {
    /// The token at this position.
    public var id: TokenID
    /// log p(token | the tokens before it) under the model; nil for the first token, which has
    /// nothing before it. Bitwise equal to the logprob reported when the same token is generated
    /// after the same tokens.
    public var logprob: Float?
    /// The most likely tokens at this position, (token, logprob), most likely first (ties to the
    /// lowest id); empty for the first token.
    public var topLogprobs: [(id: TokenID, logprob: Float)]

    /// A scored token with its logprob and alternatives.
    public init(id: TokenID, logprob: Float?, topLogprobs: [(id: TokenID, logprob: Float)] = []) {
        self.id = id
        self.logprob = logprob
        self.topLogprobs = topLogprobs
    }

    public static func == (a: ScoredToken, b: ScoredToken) -> Bool {
        a.id == b.id && a.logprob?.bitPattern == b.logprob?.bitPattern
            && a.topLogprobs.map(\.id) == b.topLogprobs.map(\.id)
            && a.topLogprobs.map(\.logprob.bitPattern) == b.topLogprobs.map(\.logprob.bitPattern)
    }
}

/// Why a generation ended.
public enum StopReason: String, Sendable, Equatable, Codable {
    /// The model's end-of-sequence token (kept in the output).
    case eos
    /// A stop token or stop string.
    case stop
    /// `maxTokens` tokens, or the context window is full.
    case length
    /// The caller stopped reading or cancelled, or the engine shut down with `cancelRunning`.
    case cancelled
    /// The engine could not go on (a forward step failed); `GenerationSummary.failure` says why.
    case failed
}

/// The last event of every generation, also when it ends abnormally (`stopReason == .failed`).
public struct GenerationSummary: Sendable, Equatable, Codable {
    /// Tokens in the prompt.
    public var promptTokens: Int
    /// Prompt tokens whose KV came from the cache instead of being computed.
    public var cachedPromptTokens: Int
    /// Tokens generated (or replayed from the completion cache).
    public var generatedTokens: Int
    /// Whether the whole completion came from the completion cache.
    public var completionFromCache: Bool
    /// From the request's submission to its first token.
    public var timeToFirstToken: Duration
    /// From the request's submission to this summary.
    public var totalTime: Duration
    /// Why the generation ended.
    public var stopReason: StopReason
    /// The seed used (the one given, or the random one picked): replaying with it gives the
    /// same output. Nil for a greedy request (temperature 0), which draws nothing.
    public var seed: UInt64?
    /// Why the generation ended abnormally (`stopReason == .failed`); nil otherwise.
    public var failure: EngineError?

    /// A summary with every field given (the engine makes them; this is for tests and replays).
    public init(promptTokens: Int, cachedPromptTokens: Int, generatedTokens: Int, completionFromCache: Bool,
                timeToFirstToken: Duration, totalTime: Duration, stopReason: StopReason, seed: UInt64?, failure: EngineError? = nil) {
        self.promptTokens = promptTokens
        self.cachedPromptTokens = cachedPromptTokens
        self.generatedTokens = generatedTokens
        self.completionFromCache = completionFromCache
        self.timeToFirstToken = timeToFirstToken
        self.totalTime = totalTime
        self.stopReason = stopReason
        self.seed = seed
        self.failure = failure
    }
}

/// A whole generation at once (`Engine.respond(to:parameters:tenant:)`).
public struct GenerationResult: Sendable, Equatable {
    /// The generated text (the tokens' text deltas joined).
    public var text = ""
    /// The generated tokens, in order.
    public var tokens: [GeneratedToken] = []
    /// The generation's summary (nil only if the stream ended without one, which the engine never does).
    public var summary: GenerationSummary?
    /// An empty result, filled as events come.
    public init() {}
}

/// One event of a ``GenerationStream``: tokens as they are made, then exactly one summary.
public enum GenerationEvent: Sendable, Equatable {
    /// A generated token with its text delta (and logprobs when asked for).
    case token(GeneratedToken)
    /// The last event: counts, timings and why the generation ended.
    case summary(GenerationSummary)
}
