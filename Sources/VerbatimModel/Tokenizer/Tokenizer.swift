import VerbatimTemplate

/// Why loading a tokenizer, encoding, decoding or rendering a chat failed: a `code` to match on and a
/// readable `message`.
public struct TokenizerError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The kind of failure.
    public enum Code: String, Sendable {
        /// The file's tokenizer model (`tokenizer.ggml.model`) or pre-tokenizer (`tokenizer.ggml.pre`) is not one
        /// this package implements.
        case unsupportedTokenizer
        /// The vocabulary is unusable: no tokens, token types or scores whose count differs from the tokens', a merge
        /// that does not join two tokens into a token, a special token id out of range, or too many tokens.
        case invalidVocabulary
        /// A token id to decode is outside the vocabulary (negative, or not below `Tokenizer.count`).
        case invalidTokenID
        /// No chat template was given and the model has none, or its own does not parse.
        case unsupportedChatTemplate
        /// A chat with no messages, or a message with an empty role.
        case invalidMessage
        /// The chat template called `raise_exception` (the message is its text, e.g. roles that do not alternate).
        case templateRaised
        /// The chat template failed while rendering (a construct the renderer refuses, a type error).
        case templateFailed
        /// The text is longer than the encode's `EncodeBudget.maxTokens`.
        case tooManyTokens
        /// The encode's `EncodeBudget` was cancelled.
        case cancelled
    }
    /// The kind of failure.
    public let code: Code
    /// What was wrong, in words.
    public let message: String
    /// An error of kind `code`, described by `message`.
    public init(_ code: Code, _ message: String) { self.code = code; self.message = message }
    public var description: String { "tokenizer error (\(code.rawValue)): \(message)" }
}

/// A GGUF file's tokenizer: byte-level BPE (`tokenizer.ggml.model = gpt2`) or
/// SentencePiece-style (`llama`, SentencePiece.swift).
///
/// Encoding: special tokens written in the text are split out first, longest first, as
/// llama.cpp does (user-defined tokens always; control tokens when asked). BPE then splits the
/// rest with the pre-tokenizer, each piece becomes bytes, each byte the token of its byte-level
/// character, and adjacent pairs merge lowest rank first (leftmost among equal ranks) until
/// no merge applies. A byte whose character has no token is dropped before merging, as the
/// reference implementation does (SmolLM2 lacks tokens for 0x04, 0x06, 0x13, 0x14, 0x16,
/// 0x1D and bytes that never occur in UTF-8).
public struct Tokenizer: Sendable {
    /// A token's type; the raw values are those of `tokenizer.ggml.token_type` (other values read as `normal`).
    public enum TokenKind: Int32, Sendable {
        /// An ordinary text token; decodes to the bytes it stands for.
        case normal = 1
        /// The unknown-text token: split out of text only with `parseSpecial`; decodes to its own text.
        case unknown = 2
        /// A control token (BOS, EOS, turn markers): split out of text only with `parseSpecial` or from a chat
        /// template's own text; decodes to nothing unless `includeControl`.
        case control = 3
        /// A token split out of text wherever the text spells it, with or without `parseSpecial`; decodes to its text.
        case userDefined = 4
        /// A reserved slot: never split out of text; decodes to its own text.
        case unused = 5
        /// One raw byte: SentencePiece's `<0xXX>`, which decodes to that byte (BPE decodes it like `normal`).
        case byte = 6
    }

    /// The tokenizer family.
    public enum Model: String, Sendable {
        /// Byte-level BPE (`gpt2`): pre-tokenized pieces of byte symbols merged by rank.
        case bytePairEncoding = "gpt2"
        /// SentencePiece-style (`llama`): whole fragments merged by token score, with `<0xXX>` byte fallback.
        case sentencePiece = "llama"
    }

    /// The tokenizer family (`tokenizer.ggml.model`).
    public let model: Model
    /// SentencePiece: a space is put before the text and after each special token.
    public let addSpacePrefix: Bool
    /// Each token's text as the file stores it (`tokenizer.ggml.tokens`), indexed by `TokenID`.
    public let tokens: [String]
    /// Each token's kind (`tokenizer.ggml.token_type`), indexed by `TokenID`.
    public let kinds: [TokenKind]
    /// How byte-level BPE splits text before merging (`tokenizer.ggml.pre`); unused by SentencePiece.
    public let preTokenizer: PreTokenizer
    /// The beginning-of-sequence token (`tokenizer.ggml.bos_token_id`), if the model has one.
    public let bosID: TokenID?
    /// The end-of-sequence token (`tokenizer.ggml.eos_token_id`), if the model has one.
    public let eosID: TokenID?
    /// Whether encodes start with `bosID` unless told otherwise (`tokenizer.ggml.add_bos_token`); false without a BOS.
    public let addBOS: Bool
    /// The model's chat template, parsed; nil when the file has none or it does not parse.
    public let chatTemplate: ChatTemplate?
    /// Why the file's chat template could not be parsed.
    public let chatTemplateError: TemplateError?
    /// The raw `tokenizer.chat_template` text, when the file has one.
    public let chatTemplateSource: String?

    /// Bytes each token stands for when decoded (control tokens: their text).
    private let tokenBytes: [[UInt8]]
    /// Bytes in the longest token: a BPE piece of n byte symbols merges into at least n / this.
    private let longestTokenBytes: Int
    /// byte -> token of its byte-level character, or -1 when the vocabulary has none
    private let byteTokens: [TokenID]
    /// (left << 32 | right) -> (rank, merged token)
    private let merges: [UInt64: (rank: Int32, result: TokenID)]
    /// Tokens split out of text before encoding, longest first (ties: lower id).
    private let specialTokens: [(scalars: [Unicode.Scalar], id: TokenID, always: Bool)]
    /// The first two scalars of every special token (one, with `singleMark` as the second, for
    /// one-scalar tokens): where a text can hold a special token at all.
    private let specialStarts: Set<UInt64>
    private let sentencePiece: SentencePieceEncoder?

    /// Tokens in the vocabulary: valid ids are 0..<count.
    public var count: Int { tokens.count }

    /// Reads the tokenizer from a GGUF file's `tokenizer.*` keys.
    ///
    /// Throws `.unsupportedTokenizer` for a tokenizer model or pre-tokenizer this package does not implement, and
    /// `.invalidVocabulary` when the tokens, types, scores, merges or special ids are missing or inconsistent.
    /// A chat template that does not parse is not an error here: see `chatTemplateError`.
    public init(file: GGUFFile) throws(TokenizerError) {
        func value(_ key: String) -> GGUFValue? { file.metadata[key] }
        let modelName = value("tokenizer.ggml.model")?.string ?? "(missing)"
        guard let model = Model(rawValue: modelName) else {
            throw TokenizerError(.unsupportedTokenizer,
                                 "tokenizer.ggml.model '\(modelName)' is not supported (byte-level BPE 'gpt2', SentencePiece 'llama')")
        }
        let pre = value("tokenizer.ggml.pre")?.string ?? "gpt2"
        let preTokenizer: PreTokenizer
        if model == .sentencePiece {
            preTokenizer = .gpt2 // unused: SentencePiece does not pre-tokenize
        } else if let p = PreTokenizer(rawValue: pre == "default" ? "gpt2" : pre) {
            preTokenizer = p
        } else {
            throw TokenizerError(.unsupportedTokenizer, "pre-tokenizer '\(pre)' is not supported (smollm, gpt2, llama-bpe, qwen2, deepseek-r1-qwen)")
        }
        guard let tokenValues = value("tokenizer.ggml.tokens")?.array, !tokenValues.isEmpty else {
            throw TokenizerError(.invalidVocabulary, "tokenizer.ggml.tokens is missing or empty")
        }
        let tokens = tokenValues.map { $0.string ?? "" }
        var kinds = [TokenKind](repeating: .normal, count: tokens.count)
        if let types = value("tokenizer.ggml.token_type")?.array {
            guard types.count == tokens.count else {
                throw TokenizerError(.invalidVocabulary, "tokenizer.ggml.token_type has \(types.count) entries for \(tokens.count) tokens")
            }
            for (i, t) in types.enumerated() { kinds[i] = t.integer.flatMap { Int32(exactly: $0) }.flatMap(TokenKind.init(rawValue:)) ?? .normal }
        }
        let mergeStrings = (value("tokenizer.ggml.merges")?.array ?? []).map { $0.string ?? "" }
        func optionalID(_ key: String) throws(TokenizerError) -> TokenID? {
            guard let v = value(key)?.integer else { return nil }
            guard v >= 0 && v < tokens.count else {
                throw TokenizerError(.invalidVocabulary, "\(key) = \(v) is not a token id (vocabulary has \(tokens.count))")
            }
            return TokenID(v)
        }
        var scores: [Float] = []
        if model == .sentencePiece {
            guard let values = value("tokenizer.ggml.scores")?.array, values.count == tokens.count else {
                throw TokenizerError(.invalidVocabulary, "tokenizer.ggml.scores is missing or does not have one score per token")
            }
            scores = values.map { Float($0.double ?? 0) }
        }
        try self.init(model: model, tokens: tokens, kinds: kinds, scores: scores, merges: mergeStrings, preTokenizer: preTokenizer,
                      bosID: optionalID("tokenizer.ggml.bos_token_id"), eosID: optionalID("tokenizer.ggml.eos_token_id"),
                      unknownID: optionalID("tokenizer.ggml.unknown_token_id"),
                      addBOS: value("tokenizer.ggml.add_bos_token")?.bool ?? (model == .sentencePiece),
                      addSpacePrefix: value("tokenizer.ggml.add_space_prefix")?.bool ?? (model == .sentencePiece),
                      chatTemplateSource: value("tokenizer.chat_template")?.string)
    }

    /// A tokenizer from its parts, as `init(file:)` reads them: one kind per token, one score per token
    /// (SentencePiece only), merges as "left right" token texts in rank order (BPE only).
    ///
    /// `unknownID` replaces each byte SentencePiece must spell as a byte token but has no `<0xXX>` token for.
    /// `addBOS` takes effect only with a `bosID`, `addSpacePrefix` only for SentencePiece. Throws
    /// `.invalidVocabulary` when a merge does not join two tokens into a token or the scores do not fit.
    public init(model: Model = .bytePairEncoding, tokens: [String], kinds: [TokenKind], scores: [Float] = [],
                merges mergeStrings: [String], preTokenizer: PreTokenizer,
                bosID: TokenID?, eosID: TokenID?, unknownID: TokenID? = nil, addBOS: Bool, addSpacePrefix: Bool = false,
                chatTemplateSource: String?) throws(TokenizerError) {
        guard tokens.count < Int(Int32.max) else { throw TokenizerError(.invalidVocabulary, "vocabulary too large") }
        self.model = model
        self.addSpacePrefix = model == .sentencePiece && addSpacePrefix
        self.tokens = tokens
        self.kinds = kinds
        self.preTokenizer = preTokenizer
        self.bosID = bosID
        self.eosID = eosID
        self.addBOS = addBOS && bosID != nil
        self.chatTemplateSource = chatTemplateSource
        var parsed: ChatTemplate? = nil, parseError: TemplateError? = nil
        if let chatTemplateSource {
            do { parsed = try ChatTemplate(source: chatTemplateSource) } catch { parseError = error }
        }
        self.chatTemplate = parsed
        self.chatTemplateError = parseError

        // BPE's lookups by text (SentencePiece looks tokens up by their bytes, below).
        var idOf: [String: TokenID] = [:]
        if model == .bytePairEncoding {
            idOf.reserveCapacity(tokens.count)
            for (i, t) in tokens.enumerated() where idOf[t] == nil { idOf[t] = TokenID(i) }
        }
        byteTokens = model == .bytePairEncoding ? ByteLevel.characters.map { idOf[String(Character($0))] ?? -1 } : []

        var merges: [UInt64: (rank: Int32, result: TokenID)] = [:]
        merges.reserveCapacity(mergeStrings.count)
        for (rank, line) in mergeStrings.enumerated() where model == .bytePairEncoding {
            let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let a = idOf[String(parts[0])], let b = idOf[String(parts[1])],
                  let ab = idOf[String(parts[0]) + String(parts[1])] else {
                throw TokenizerError(.invalidVocabulary, "merge \(rank) '\(line)' does not join two tokens into a token")
            }
            let key = UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))
            if merges[key] == nil { merges[key] = (Int32(rank), ab) }
        }
        self.merges = merges

        if model == .sentencePiece {
            guard scores.count == tokens.count else {
                throw TokenizerError(.invalidVocabulary, "\(scores.count) scores for \(tokens.count) tokens")
            }
            var idOfBytes: [[UInt8]: TokenID] = [:]
            idOfBytes.reserveCapacity(tokens.count)
            for (i, t) in tokens.enumerated() where idOfBytes[Array(t.utf8)] == nil { idOfBytes[Array(t.utf8)] = TokenID(i) }
            let byteFallback = (0..<256).map { b in
                idOfBytes[Array(("<0x" + String(UInt8(b), radix: 16, uppercase: true).leftPadded(to: 2) + ">").utf8)] ?? -1
            }
            sentencePiece = SentencePieceEncoder(idOf: idOfBytes, scores: scores, byteTokens: byteFallback, unknownID: unknownID,
                                                 longestToken: tokens.map(\.unicodeScalars.count).max() ?? 1)
            tokenBytes = zip(tokens, kinds).map { text, kind in
                switch kind {
                case .byte: // <0xXX>
                    let hex = text.dropFirst(3).dropLast()
                    return UInt8(hex, radix: 16).map { [$0] } ?? Array(text.utf8)
                case .normal: return Array(String(String.UnicodeScalarView(text.unicodeScalars.map { $0 == "\u{2581}" ? " " : $0 })).utf8)
                default: return Array(text.utf8)
                }
            }
        } else {
            sentencePiece = nil
            tokenBytes = zip(tokens, kinds).map { text, kind in
                switch kind {
                case .control, .userDefined, .unknown, .unused: return Array(text.utf8)
                case .normal, .byte:
                    var out: [UInt8] = []
                    for c in text.unicodeScalars {
                        if let b = ByteLevel.bytes[c] { out.append(b) } else { out.append(contentsOf: String(c).utf8) }
                    }
                    return out
                }
            }
        }
        longestTokenBytes = max(1, tokenBytes.map(\.count).max() ?? 1)
        let specials = zip(tokens, kinds).enumerated()
            .filter { [.control, .userDefined, .unknown].contains($0.element.1) && !$0.element.0.isEmpty }
            .map { (scalars: Array($0.element.0.unicodeScalars), id: TokenID($0.offset), always: $0.element.1 == .userDefined) }
            .sorted { $0.scalars.count > $1.scalars.count || ($0.scalars.count == $1.scalars.count && $0.id < $1.id) }
        specialTokens = specials
        specialStarts = Set(specials.map { Self.startKey($0.scalars, 0, single: $0.scalars.count == 1) })
    }

    // MARK: - Encoding

    /// Token ids for `text`. With `parseSpecial`, control tokens written in the text (such as
    /// `<|im_start|>`) become those tokens; without, they are plain text. `addBOS` defaults to
    /// the model's `tokenizer.ggml.add_bos_token` (false for SmolLM2).
    public func encode(_ text: String, parseSpecial: Bool = false, addBOS: Bool? = nil) -> [TokenID] {
        Self.unbounded { () throws(TokenizerError) in try encode(text, parseSpecial: parseSpecial, addBOS: addBOS, budget: nil) }
    }

    /// `encode(_:parseSpecial:addBOS:)` within `budget`: throws `.tooManyTokens` or `.cancelled`
    /// as soon as the next piece shows it, without encoding the rest of the text.
    public func encode(_ text: String, parseSpecial: Bool = false, addBOS: Bool? = nil,
                       budget: EncodeBudget?) throws(TokenizerError) -> [TokenID] {
        let scalars = Array(text.unicodeScalars)
        var out: [TokenID] = []
        if addBOS ?? self.addBOS, let bos = bosID { out.append(bos) }
        try encode(scalars, specials: specialMatches(scalars, parseSpecial: parseSpecial, budget: budget), into: &out, budget: budget)
        return out
    }

    /// The text between special tokens encoded as text runs, the special tokens as themselves.
    private func encode(_ scalars: [Unicode.Scalar], specials: [(Int, Int, TokenID)], into out: inout [TokenID],
                        budget: EncodeBudget?) throws(TokenizerError) {
        var start = 0
        var afterSpecial = true // SentencePiece's space prefix goes at the start and after specials
        for (at, length, id) in specials {
            try encodeFragment(scalars, start..<at, afterSpecial: afterSpecial, into: &out, budget: budget)
            out.append(id)
            start = at + length
            afterSpecial = true
        }
        if start < scalars.count { try encodeFragment(scalars, start..<scalars.count, afterSpecial: afterSpecial, into: &out, budget: budget) }
        try budget?.check(produced: out.count)
    }

    /// Token ids of a rendered chat template. Control tokens are split out only where the text
    /// came from the template itself; caller text between them is plain text, and text runs
    /// are encoded whole across the boundaries between template and caller text. `addBOS`
    /// (default: the model's rule) adds BOS unless the text already starts with it.
    public func encode(_ rendered: RenderedText, addBOS: Bool? = nil) -> [TokenID] {
        Self.unbounded { () throws(TokenizerError) in try encode(rendered, addBOS: addBOS, budget: nil) }
    }

    /// `encode(_ rendered:addBOS:)` within `budget`.
    public func encode(_ rendered: RenderedText, addBOS: Bool? = nil, budget: EncodeBudget?) throws(TokenizerError) -> [TokenID] {
        let scalars = Array(rendered.text.unicodeScalars)
        var untrusted = [Bool](repeating: false, count: scalars.count)
        if !rendered.untrustedRanges.isEmpty {
            var offset = 0, range = 0
            for (i, u) in scalars.enumerated() {
                while range < rendered.untrustedRanges.count, rendered.untrustedRanges[range].upperBound <= offset { range += 1 }
                if range < rendered.untrustedRanges.count, rendered.untrustedRanges[range].contains(offset) { untrusted[i] = true }
                offset += UTF8.width(u)
            }
        }
        budget?.add(work: scalars.count)
        let matches = try specialMatches(scalars, parseSpecial: true, blocked: untrusted, budget: budget)
        var out: [TokenID] = []
        if addBOS ?? self.addBOS, let bos = bosID, !(matches.first.map { $0.0 == 0 && $0.2 == bos } ?? false) { out.append(bos) }
        try encode(scalars, specials: matches, into: &out, budget: budget)
        return out
    }

    /// Runs an encode that has no budget, so cannot stop early.
    private static func unbounded(_ body: () throws(TokenizerError) -> [TokenID]) -> [TokenID] {
        do { return try body() } catch { preconditionFailure("an encode without a budget stopped early: \(error)") }
    }

    private static let singleMark: UInt64 = 0xFFFF_FFFF

    /// Key of the scalars at `i` and `i + 1` (or of `i` alone) in `specialStarts`.
    @inline(__always) private static func startKey(_ s: [Unicode.Scalar], _ i: Int, single: Bool) -> UInt64 {
        UInt64(s[i].value) << 32 | (single ? singleMark : UInt64(s[i + 1].value))
    }

    /// Where special tokens occur in the text, in text order: each special token in turn,
    /// longest first, takes its leftmost non-overlapping occurrences in what earlier ones left
    /// (llama.cpp's partition). User-defined tokens always; control and unknown ones only with
    /// `parseSpecial`, and never over a `blocked` position (caller text in a chat prompt).
    /// A token is looked for only where the text holds its first two scalars, so a text of
    /// one repeated character costs one pass, not one per special token sharing it.
    private func specialMatches(_ s: [Unicode.Scalar], parseSpecial: Bool, blocked: [Bool] = [],
                                budget: EncodeBudget?) throws(TokenizerError) -> [(Int, Int, TokenID)] {
        try budget?.check(produced: 0)
        guard !specialTokens.isEmpty, !s.isEmpty else { return [] }
        var positions: [UInt64: [Int]] = [:]
        for i in s.indices {
            let single = Self.startKey(s, i, single: true)
            if specialStarts.contains(single) { positions[single, default: []].append(i) }
            if i + 1 < s.count {
                let pair = Self.startKey(s, i, single: false)
                if specialStarts.contains(pair) { positions[pair, default: []].append(i) }
            }
        }
        budget?.add(work: s.count)
        guard !positions.isEmpty else { return [] }
        var taken = [Bool](repeating: false, count: s.count)
        var found: [(Int, Int, TokenID)] = []
        for special in specialTokens where special.always || parseSpecial {
            guard let starts = positions[Self.startKey(special.scalars, 0, single: special.scalars.count == 1)] else { continue }
            try budget?.check(produced: 0)
            budget?.add(work: starts.count)
            let length = special.scalars.count
            for p in starts where p + length <= s.count && !taken[p] {
                var matches = true
                for k in 0..<length where taken[p + k] || s[p + k] != special.scalars[k]
                    || (!special.always && !blocked.isEmpty && blocked[p + k]) { matches = false; break }
                guard matches else { continue }
                for k in 0..<length { taken[p + k] = true }
                found.append((p, length, special.id))
            }
        }
        return found.sorted { $0.0 < $1.0 }
    }

    private func encodeFragment(_ scalars: [Unicode.Scalar], _ range: Range<Int>, afterSpecial: Bool, into out: inout [TokenID],
                                budget: EncodeBudget?) throws(TokenizerError) {
        try budget?.check(produced: out.count)
        if let sentencePiece {
            // A fragment merges as a whole (SentencePiece has no pre-tokenizer): O(n log n). Its
            // token count has a floor known before merging; over the limit, it is not merged.
            if let budget, out.count + sentencePiece.fewestTokens(characters: range.count) > budget.maxTokens {
                throw budget.tooManyTokens
            }
            let work = try sentencePiece.encode(scalars[range], spacePrefix: addSpacePrefix && afterSpecial, into: &out, budget: budget)
            budget?.add(work: work)
        } else {
            try encodeText(scalars, range, into: &out, budget: budget)
        }
    }

    /// Encodes plain text (no special tokens) and appends the ids.
    func encodeText(_ scalars: [Unicode.Scalar], _ range: Range<Int>, into out: inout [TokenID],
                    budget: EncodeBudget? = nil) throws(TokenizerError) {
        guard !range.isEmpty else { return }
        var pieces: [Range<Int>] = []
        preTokenizer.split(scalars, range, into: &pieces)
        budget?.add(work: range.count)
        var symbols: [TokenID] = []
        var utf8: [UInt8] = []
        for piece in pieces {
            try budget?.check(produced: out.count)
            symbols.removeAll(keepingCapacity: true)
            utf8.removeAll(keepingCapacity: true)
            for c in scalars[piece] { UTF8.encode(c) { utf8.append($0) } }
            for b in utf8 where byteTokens[Int(b)] >= 0 { symbols.append(byteTokens[Int(b)]) }
            if let budget, out.count + (symbols.count + longestTokenBytes - 1) / longestTokenBytes > budget.maxTokens {
                throw budget.tooManyTokens   // known before merging
            }
            let work = try mergePairs(&symbols, budget: budget)
            budget?.add(work: work + utf8.count)
            out.append(contentsOf: symbols)
        }
    }

    /// Applies merges in rank order, leftmost first among equal ranks: a heap of candidate pairs
    /// over a linked list of symbols, so a long piece costs O(n log n), not O(n²) (a hostile
    /// prompt of one 300 000-character "word" must not stall the engine).
    /// Returns the heap operations done (the work, for `EncodeBudget`).
    /// A cancelled `budget` stops it within a few thousand heap operations (one piece can be
    /// the whole text).
    @discardableResult
    private func mergePairs(_ symbols: inout [TokenID], budget: EncodeBudget?) throws(TokenizerError) -> Int {
        let n = symbols.count
        guard n > 1 else { return 0 }
        var work = 0
        var next = Array(1...n)          // n: no right neighbour
        var prev = Array(-1..<(n - 1))   // -1: no left neighbour
        var heap = PairHeap()
        func push(_ left: Int) {
            let right = next[left]
            guard left >= 0, right < n else { return }
            let key = UInt64(UInt32(symbols[left])) << 32 | UInt64(UInt32(symbols[right]))
            if let m = merges[key] {
                work += 1
                heap.push(PairHeap.Candidate(rank: m.rank, left: Int32(left), right: Int32(right),
                                             leftToken: symbols[left], rightToken: symbols[right], result: m.result))
            }
        }
        for k in 0..<(n - 1) { push(k) }
        var removed = [Bool](repeating: false, count: n)
        while let c = heap.pop() {
            work += 1
            if work & 0x3FFF == 0 { try budget?.check(produced: 0) }
            let left = Int(c.left), right = Int(c.right)
            // Stale when either side has merged since the candidate was pushed.
            guard !removed[left], !removed[right], next[left] == right,
                  symbols[left] == c.leftToken, symbols[right] == c.rightToken else { continue }
            symbols[left] = c.result
            removed[right] = true
            next[left] = next[right]
            if next[right] < n { prev[next[right]] = left }
            push(left)
            if prev[left] >= 0 { push(prev[left]) }
        }
        var out: [TokenID] = []
        out.reserveCapacity(n)
        var k = 0
        while k < n { out.append(symbols[k]); k = next[k] }
        symbols = out
        return work
    }

    // MARK: - Decoding

    /// Whether `id` (which must be below `count`) is a control token.
    public func isControl(_ id: TokenID) -> Bool { kinds[Int(id)] == .control }

    /// Throws `.invalidTokenID` unless `id` is in 0..<count.
    public func validate(_ id: TokenID) throws(TokenizerError) {
        guard id >= 0 && Int(id) < tokens.count else {
            throw TokenizerError(.invalidTokenID, "token id \(id) is out of range (vocabulary has \(tokens.count) tokens)")
        }
    }

    /// The bytes a token stands for. Control tokens give their text only with `includeControl`.
    public func bytes(of id: TokenID, includeControl: Bool = false) throws(TokenizerError) -> [UInt8] {
        try validate(id)
        if !includeControl && kinds[Int(id)] == .control { return [] }
        return tokenBytes[Int(id)]
    }

    /// Decoded text; bytes that are not valid UTF-8 become U+FFFD.
    public func decode(_ ids: [TokenID], includeControl: Bool = false) throws(TokenizerError) -> String {
        var out: [UInt8] = []
        for id in ids { out += try bytes(of: id, includeControl: includeControl) }
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    /// The string with zeros before it up to `width` characters.
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}

/// A binary min-heap of merge candidates ordered by (rank, left position): the lowest rank
/// first, the leftmost among equal ranks.
struct PairHeap {
    struct Candidate {
        let rank: Int32
        let left: Int32
        let right: Int32
        let leftToken: TokenID
        let rightToken: TokenID
        let result: TokenID
        func precedes(_ o: Candidate) -> Bool { rank < o.rank || (rank == o.rank && left < o.left) }
    }

    private var items: [Candidate] = []

    mutating func push(_ c: Candidate) {
        items.append(c)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].precedes(items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Candidate? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var best = i
                if l < items.count, items[l].precedes(items[best]) { best = l }
                if r < items.count, items[r].precedes(items[best]) { best = r }
                if best == i { break }
                items.swapAt(i, best)
                i = best
            }
        }
        return top
    }
}
