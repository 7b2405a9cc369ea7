import VerbatimCore

/// A finished generation as stored in the completion cache: why it stopped, its tokens and
/// the model's logprob of each. Payload: u8 stop reason (1 eos, 2 stop, 3 length), u32 count,
/// u32 token ids, f32 logprob bit patterns.
public struct CompletionRecord: Equatable, Sendable {
    /// Why the generation stopped; the raw value is the payload's first byte.
    public enum Reason: UInt8, Sendable {
        /// The model produced its end-of-sequence token, with stop-at-EOS on.
        case eos = 1
        /// A stop token or a stop string ended it.
        case stop = 2
        /// Any other end, chiefly `maxTokens` or the context length: a request for more tokens may continue from it.
        case length = 3
    }
    /// Why the generation stopped. With `.length` the record fully answers only requests for at most `tokens.count` tokens.
    public var reason: Reason
    /// The generated tokens in order, without the prompt.
    public var tokens: [TokenID]
    /// The model's logprob of each of `tokens`, one per token (a record with unequal counts does not decode).
    public var logprobs: [Float]

    /// Creates a record; `logprobs` must have one value per token.
    public init(reason: Reason, tokens: [TokenID], logprobs: [Float]) {
        self.reason = reason
        self.tokens = tokens
        self.logprobs = logprobs
    }

    /// The payload bytes: u8 reason, u32 count, u32 token ids, then f32 logprob bit patterns (little-endian).
    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.put(reason.rawValue)
        w.put(UInt32(tokens.count))
        for t in tokens { w.put(UInt32(bitPattern: t)) }
        for l in logprobs { w.put(l.bitPattern) }
        return w.bytes
    }

    /// Decodes a payload written by `encoded()`; nil if the reason byte is unknown or the size does not fit the count.
    public init?(decoding payload: UnsafeRawBufferPointer) {
        var r = ByteReader(payload)
        guard let raw = r.get(UInt8.self), let reason = Reason(rawValue: raw), let count = r.get(UInt32.self),
              Int(count) * 8 == payload.count - 5 else { return nil }
        self.reason = reason
        tokens = (0..<Int(count)).map { _ in TokenID(bitPattern: r.get(UInt32.self)!) }
        logprobs = (0..<Int(count)).map { _ in Float(bitPattern: r.get(UInt32.self)!) }
    }
}
