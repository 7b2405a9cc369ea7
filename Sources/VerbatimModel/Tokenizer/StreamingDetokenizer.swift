/// Turns a stream of tokens into text pieces that never split a UTF-8 character: bytes of an
/// unfinished character are held back until the tokens that complete it arrive. Bytes that
/// can never become valid UTF-8 are emitted as U+FFFD, like `Tokenizer.decode`, so the pieces
/// always concatenate to the decoding of the whole sequence.
public struct StreamingDetokenizer: Sendable {
    /// The tokenizer whose tokens are decoded.
    public let tokenizer: Tokenizer
    /// Whether control tokens add their text; when false they add nothing.
    public let includeControl: Bool
    private var pending: [UInt8] = []

    /// A detokenizer with nothing held back; control tokens are dropped unless `includeControl`.
    public init(tokenizer: Tokenizer, includeControl: Bool = false) {
        self.tokenizer = tokenizer
        self.includeControl = includeControl
    }

    /// Adds a token; returns the text that is now complete (possibly empty).
    public mutating func append(_ id: TokenID) throws(TokenizerError) -> String {
        pending += try tokenizer.bytes(of: id, includeControl: includeControl)
        let keep = Self.unfinishedSuffixLength(pending)
        let ready = pending[..<(pending.count - keep)]
        let text = String(decoding: ready, as: UTF8.self)
        pending.removeFirst(pending.count - keep)
        return text
    }

    /// Ends the stream: held bytes that never completed a character become U+FFFD.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// How many trailing bytes are a proper prefix of a valid UTF-8 sequence (0 to 3).
    static func unfinishedSuffixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        guard n > 0 else { return 0 }
        for back in 1...min(3, n) {
            let lead = bytes[n - back]
            if lead & 0xC0 == 0x80 { continue }  // a continuation byte: look further back
            let needed: Int
            switch lead {
            case 0xC2...0xDF: needed = 2
            case 0xE0...0xEF: needed = 3
            case 0xF0...0xF4: needed = 4
            default: return 0  // ASCII or a byte that cannot start a sequence
            }
            guard back < needed else { return 0 }  // complete (or over-long: decoded as is)
            // The second byte of some sequences has a narrower range (no overlongs, no surrogates).
            if back >= 2 {
                let second = bytes[n - back + 1]
                let range: ClosedRange<UInt8> = switch lead {
                case 0xE0: 0xA0...0xBF
                case 0xED: 0x80...0x9F
                case 0xF0: 0x90...0xBF
                case 0xF4: 0x80...0x8F
                default: 0x80...0xBF
                }
                guard range.contains(second) else { return 0 }
            }
            return back
        }
        return 0
    }
}
