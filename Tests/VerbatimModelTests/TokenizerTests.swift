import Foundation
import Testing
@testable import VerbatimModel

@Suite("Tokenizer")
struct TokenizerTests {
    static let real: Result<Tokenizer, any Error> = Result { try Tokenizer(file: realModel.get()) }

    @Test("ids equal the independent reference (Hugging Face tokenizers) for every committed tricky string")
    func referenceIDs() throws {
        let tokenizer = try Self.real.get()
        let expectations = try TokenizerExpectations.load()
        #expect(expectations.cases.count >= 100)
        var mismatches = 0
        for c in expectations.cases {
            let ids = tokenizer.encode(c.text, parseSpecial: c.special)
            if ids != c.ids {
                mismatches += 1
                Issue.record("\(c.text.debugDescription) special=\(c.special): got \(ids), expected \(c.ids)")
            }
        }
        #expect(mismatches == 0)
    }

    @Test("bytes without a token are dropped before merging, as in the reference")
    func missingByteTokens() throws {
        let s = try TokenizerExpectations.load().synthetic
        let tokenizer = try Tokenizer(tokens: s.tokens, kinds: Array(repeating: .normal, count: s.tokens.count),
                                      merges: s.merges, preTokenizer: .smollm, bosID: nil, eosID: nil,
                                      addBOS: false, chatTemplateSource: nil)
        for c in s.cases { #expect(tokenizer.encode(c.text) == c.ids, "\(c.text.debugDescription)") }
        // The real vocabulary lacks the byte 0x04: it vanishes.
        let real = try Self.real.get()
        #expect(real.encode("a\u{4}b") == real.encode("a") + real.encode("b"))
    }

    static let corpus: [String] = [
        "plain words", "  two  spaces  ", "\ttabs\t\t", "crlf\r\nline\r\n", "numbers 0 1 22 333 4444 3.5e10",
        "func main() {\n\tprint(\"hi\")\n}\n", "emoji 👨‍👩‍👧‍👦 🏳️‍🌈 👍🏿", "中文和日本語と한국어", "العربية", "e\u{301}\u{302} combining",
        "ctrl \u{1}\u{2}\u{7f}\u{1b}", "nbsp\u{a0}ideo\u{3000}", "<|im_start|> as text", "\u{feff}", "🦀🦀🦀", "a", "",
        "x" + String(repeating: " ", count: 50) + "y", String(repeating: "ab", count: 300),
    ]

    @Test("decode(encode(text)) == text on a varied corpus (bytes with tokens only)")
    func roundTrips() throws {
        let tokenizer = try Self.real.get()
        for text in Self.corpus {
            for special in [false, true] {
                let ids = tokenizer.encode(text, parseSpecial: special)
                #expect(try tokenizer.decode(ids, includeControl: true) == text, "\(text.debugDescription)")
            }
        }
        // Control tokens decode to nothing unless asked.
        let ids = tokenizer.encode("<|im_start|>hi<|im_end|>", parseSpecial: true)
        #expect(ids.first == 1 && ids.last == 2)
        #expect(try tokenizer.decode(ids) == "hi")
    }

    @Test("token ids out of range are a typed error")
    func invalidIDs() throws {
        let tokenizer = try Self.real.get()
        #expect(throws: TokenizerError.self) { try tokenizer.decode([49152]) }
        #expect(throws: TokenizerError.self) { try tokenizer.decode([-1]) }
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        #expect(throws: TokenizerError.self) { try stream.append(1 << 20) }
    }

    /// Hostile texts of `n` characters: one long word, one repeated special-token opener,
    /// runs of whitespace, a special token's prefix repeated, random letters and spaces.
    static func hostileTexts(_ n: Int) -> [(name: String, text: String)] {
        var random = ""
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<n {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let letter = (state >> 33) % 27
            random.unicodeScalars.append(letter == 26 ? " " : Unicode.Scalar(UInt8(97 + letter)))
        }
        return [("one word", String(repeating: "z", count: n)),
                ("special opener", String(repeating: "<", count: n)),
                ("spaces", String(repeating: " ", count: n)),
                ("newlines and tabs", String(repeating: "\n\t", count: n / 2)),
                ("special prefix", String(repeating: "<|im_", count: n / 5) + String(repeating: "<start_of", count: n / 9)),
                ("random", random)]
    }

    /// Work (counted, not timed) for a text, through a budget that never stops it.
    static func work(_ tokenizer: Tokenizer, _ text: String, chat: Bool) throws -> Int {
        let budget = EncodeBudget()
        if chat {
            // The model's own template, or (Gemma's file has none) one in its turn format.
            let template = try tokenizer.chatTemplate
                ?? ChatTemplate(source: "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n{% endfor %}")
            _ = try tokenizer.encodeChat([ChatMessage(role: .user, content: text)], options: ChatOptions(template: template), budget: budget)
        } else {
            _ = try tokenizer.encode(text, parseSpecial: true, budget: budget)
        }
        return budget.workDone
    }

    @Test("hostile prompts cost work linear in their length on both tokenizers, as text and as chat content")
    func linearWork() throws {
        let gemma = try Tokenizer(file: gemmaModel.get())
        for (name, tokenizer) in [("BPE (SmolLM2)", try Self.real.get()), ("SentencePiece (Gemma 3)", gemma)] {
            let small = Self.hostileTexts(20_000), large = Self.hostileTexts(80_000)
            for ((kind, a), (_, b)) in zip(small, large) {
                for chat in [false, true] {
                    let w1 = try Self.work(tokenizer, a, chat: chat), w4 = try Self.work(tokenizer, b, chat: chat)
                    // Linear growth gives 4x for 4x the text; quadratic would give 16x.
                    #expect(w1 > 20_000 && Double(w4) / Double(w1) < 4.5,
                            "\(name), \(kind), chat \(chat): work \(w1) -> \(w4) (\(Double(w4) / Double(w1))x for 4x the text)")
                }
            }
        }
    }

    @Test("a budget stops an encode early: over maxTokens, or cancelled from another thread, with a typed error")
    func budget() throws {
        for tokenizer in [try Self.real.get(), try Tokenizer(file: gemmaModel.get())] {
            let text = String(repeating: "The quick brown fox jumps over the lazy dog. ", count: 4000)
            let full = EncodeBudget()
            let all = try tokenizer.encode(text, budget: full)
            #expect(all == tokenizer.encode(text), "a budget that does not stop it changes nothing")
            let limited = EncodeBudget(maxTokens: 100)
            #expect(throws: TokenizerError(.tooManyTokens, "the text is longer than 100 tokens")) { try tokenizer.encode(text, budget: limited) }
            // What remains is one linear pass to find special tokens (and BPE's pre-tokenizer
            // split); merging, the costly part, stops at the limit.
            #expect(limited.workDone < full.workDone / 2, "stopped near the limit: \(limited.workDone) of \(full.workDone)")
            let cancelled = EncodeBudget()
            cancelled.cancel()
            #expect(throws: TokenizerError(.cancelled, "tokenization was cancelled")) { try tokenizer.encode(text, budget: cancelled) }
            #expect(cancelled.workDone == 0, "nothing done once cancelled: \(cancelled.workDone)")
            // One long word is one piece (BPE) or one fragment (SentencePiece): still stopped within it.
            let word = String(repeating: "z", count: 400_000)
            let wordBudget = EncodeBudget()
            let stopper = Thread { usleep(20_000); wordBudget.cancel() }
            stopper.start()
            let started = ContinuousClock.now
            #expect(throws: TokenizerError.self) { try tokenizer.encode(word, budget: wordBudget) }
            let whole = EncodeBudget()
            _ = try tokenizer.encode(word, budget: whole)
            #expect(wordBudget.workDone < whole.workDone, "cancelled inside the piece: \(wordBudget.workDone) of \(whole.workDone) (\(ContinuousClock.now - started))")
        }
    }

    @Test("unsupported tokenizers are clear errors")
    func unsupportedTokenizers() throws {
        // SentencePiece needs its scores; unknown models and pre-tokenizers name themselves.
        let spm = try tinyModelFile().withKey("tokenizer.ggml.model", .string("llama"))
        #expect(throws: TokenizerError(.invalidVocabulary, "tokenizer.ggml.scores is missing or does not have one score per token")) { try Tokenizer(file: spm) }
        let bert = try tinyModelFile().withKey("tokenizer.ggml.model", .string("bert"))
        #expect(throws: TokenizerError(.unsupportedTokenizer, "tokenizer.ggml.model 'bert' is not supported (byte-level BPE 'gpt2', SentencePiece 'llama')")) { try Tokenizer(file: bert) }
        let pre = try tinyModelFile().withKey("tokenizer.ggml.pre", .string("falcon"))
        #expect(throws: TokenizerError(.unsupportedTokenizer, "pre-tokenizer 'falcon' is not supported (smollm, gpt2, llama-bpe, qwen2, deepseek-r1-qwen)")) { try Tokenizer(file: pre) }
    }

    @Test("the tiny generated model's tokenizer merges and round-trips")
    func tinyTokenizer() throws {
        let tokenizer = try Tokenizer(file: tinyModelFile())
        let text = "The quick brown fox: the same bits, whatever the batch."
        let ids = tokenizer.encode(text)
        #expect(ids.count <= text.utf8.count * 3 / 4)  // merges learned from similar text apply
        #expect(try tokenizer.decode(ids) == text)
        #expect(tokenizer.encode("<|im_start|>", parseSpecial: true) == [1])
        #expect(tokenizer.eosID == 2)
    }
}
