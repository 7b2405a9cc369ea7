import VerbatimModel

/// A finished generation as stored in the completion cache: why it stopped, its tokens and
/// the model's logprob of each. Payload: u8 stop reason (1 eos, 2 stop, 3 length), u32 count,
/// u32 token ids, f32 logprob bit patterns.
public struct CompletionRecord: Equatable, Sendable {
    public enum Reason: UInt8, Sendable { case eos = 1, stop = 2, length = 3 }
    public var reason: Reason
    public var tokens: [TokenID]
    public var logprobs: [Float]

    public init(reason: Reason, tokens: [TokenID], logprobs: [Float]) {
        self.reason = reason
        self.tokens = tokens
        self.logprobs = logprobs
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.put(reason.rawValue)
        w.put(UInt32(tokens.count))
        for t in tokens { w.put(UInt32(bitPattern: t)) }
        for l in logprobs { w.put(l.bitPattern) }
        return w.bytes
    }

    public init?(decoding payload: UnsafeRawBufferPointer) {
        var r = ByteReader(payload)
        guard let raw = r.get(UInt8.self), let reason = Reason(rawValue: raw), let count = r.get(UInt32.self),
              Int(count) * 8 == payload.count - 5 else { return nil }
        self.reason = reason
        tokens = (0..<Int(count)).map { _ in TokenID(bitPattern: r.get(UInt32.self)!) }
        logprobs = (0..<Int(count)).map { _ in Float(bitPattern: r.get(UInt32.self)!) }
    }
}
