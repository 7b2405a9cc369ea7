import VerbatimModel

/// Generates small GGUF files of any supported architecture with random weights and a real
/// byte-level BPE vocabulary, so that tests of everything above the file format run in
/// milliseconds.
public struct TinyModel: Sendable {
    /// The family of the generated test model: which keys and per-layer tensors the file holds.
    public var architecture: Architecture = .llama
    /// Head width when it is not width / heads (written as `attention.key_length`).
    public var headDim: Int? = nil
    /// Keys a sliding-window layer attends to (architectures with sliding windows).
    public var slidingWindow = 5
    /// Write `rope_freqs.weight` (Llama 3 RoPE scaling), for `.llama`.
    public var ropeDivisors = false
    /// Transformer blocks of the test model (`block_count`).
    public var layers = 2
    /// Model width D of the test model (`embedding_length`); a multiple of 32 for quantised types.
    public var width = 64              // must be a multiple of 32 for quantised types
    /// Query heads of the test model; the head width is width / heads unless `headDim` is set.
    public var heads = 4
    /// Key/value heads of the test model; `heads` must be a multiple of it.
    public var kvHeads = 2
    /// FFN hidden width of the test model (`feed_forward_length`); a multiple of 32 for quantised types.
    public var feedForward = 96        // a multiple of 32 for quantised types
    /// Context length written to the test model (`context_length`): the positions a sequence can use.
    public var contextLength = 256
    /// Type of the test model's per-layer matrices (norms and biases are always f32).
    public var weightType: GGMLType = .q4_1
    /// Type of token_embd.weight (the real model uses Q8_0 and ties it to the output).
    public var embeddingType: GGMLType = .q8_0
    /// Number of BPE merges learned from a fixed text (vocabulary = 256 bytes + merges + 3 controls).
    public var merges = 200
    /// Seed of the random weights: the same settings and seed give the same file bytes.
    public var seed: UInt64 = 1

    /// A test-model generator with the defaults above: two LLaMA layers of width 64, Q4_1 matrices.
    public init() {}

    /// The control tokens of every generated test vocabulary, ids 0, 1 and 2; 1 is BOS and 2 is EOS.
    public static let controlTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    /// SmolLM2's ChatML template with its own default system message.
    public static let chatTemplate = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        + "{{ '<|im_start|>system\nYou are a tiny test model.<|im_end|>\n' }}{% endif %}"
        + "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
        + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

    static let trainingText = """
        The quick brown fox jumps over the lazy dog. Deterministic kernels give the same bits \
        whatever the batch. A cache that never serves a wrong byte is a cache you can trust. \
        the the the and and of of to to in in is is it it that that with with for for on on
        """

    /// Byte-level tokens and merges learned greedily from `trainingText` (most frequent pair first,
    /// ties to the pair seen first), pre-tokenised like the real model.
    public static func vocabulary(merges count: Int) -> (tokens: [String], merges: [String]) {
        var tokens = ByteLevel.characters.map { String(Character($0)) }
        var merges: [String] = []
        let scalars = Array(trainingText.unicodeScalars)
        var pieces: [Range<Int>] = []
        PreTokenizer.smollm.split(scalars, 0..<scalars.count, into: &pieces)
        var words: [[String]] = pieces.map { piece in
            var bytes: [UInt8] = []
            for c in scalars[piece] { UTF8.encode(c) { bytes.append($0) } }
            return bytes.map { String(Character(ByteLevel.characters[Int($0)])) }
        }
        var known = Set(tokens)
        while merges.count < count {
            var counts: [String: Int] = [:]
            var order: [String] = []
            for word in words where word.count > 1 {
                for k in 0..<(word.count - 1) {
                    let pair = word[k] + " " + word[k + 1]
                    if counts[pair] == nil { order.append(pair) }
                    counts[pair, default: 0] += 1
                }
            }
            guard let top = counts.values.max(), top > 1 else { break }
            let pair = order.first { counts[$0] == top }!  // ties: the pair seen first
            let parts = pair.split(separator: " ", maxSplits: 1).map(String.init)
            let joined = parts[0] + parts[1]
            merges.append(pair)
            if !known.contains(joined) { tokens.append(joined); known.insert(joined) }
            words = words.map { word in
                var out: [String] = []
                var k = 0
                while k < word.count {
                    if k + 1 < word.count && word[k] == parts[0] && word[k + 1] == parts[1] {
                        out.append(joined); k += 2
                    } else {
                        out.append(word[k]); k += 1
                    }
                }
                return out
            }
        }
        return (tokens, merges)
    }

    /// The GGUF file's bytes.
    public func generate() -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        let (plainTokens, merges) = Self.vocabulary(merges: merges)
        let tokens = Self.controlTokens + plainTokens
        let kinds = Array(repeating: Int32(3), count: Self.controlTokens.count)
            + Array(repeating: Int32(1), count: plainTokens.count)
        let vocab = tokens.count
        let headDim = self.headDim ?? width / heads
        let kvDim = kvHeads * headDim, qWidth = heads * headDim
        let traits = architecture.traits
        let a = architecture.rawValue

        var w = GGUFWriter()
        w.set("general.architecture", .string(a))
        w.set("general.name", .string("verbatim tiny test model"))
        w.set("\(a).block_count", .uint32(UInt32(layers)))
        w.set("\(a).context_length", .uint32(UInt32(contextLength)))
        w.set("\(a).embedding_length", .uint32(UInt32(width)))
        w.set("\(a).feed_forward_length", .uint32(UInt32(feedForward)))
        w.set("\(a).attention.head_count", .uint32(UInt32(heads)))
        w.set("\(a).attention.head_count_kv", .uint32(UInt32(kvHeads)))
        w.set("\(a).rope.freq_base", .float32(architecture == .llama ? 10_000 : 1_000_000))
        w.set("\(a).attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.set("\(a).vocab_size", .uint32(UInt32(vocab)))
        w.set("\(a).rope.dimension_count", .uint32(UInt32(headDim)))
        if self.headDim != nil {
            w.set("\(a).attention.key_length", .uint32(UInt32(headDim)))
            w.set("\(a).attention.value_length", .uint32(UInt32(headDim)))
        }
        if traits.slidingWindowPattern > 0 { w.set("\(a).attention.sliding_window", .uint32(UInt32(slidingWindow))) }
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.pre", .string("smollm"))
        w.set("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) }))
        w.set("tokenizer.ggml.token_type", .array(.int32, kinds.map { .int32($0) }))
        w.set("tokenizer.ggml.merges", .array(.string, merges.map { .string($0) }))
        w.set("tokenizer.ggml.bos_token_id", .uint32(1))
        w.set("tokenizer.ggml.eos_token_id", .uint32(2))
        w.set("tokenizer.ggml.add_bos_token", .bool(false))
        w.set("tokenizer.chat_template", .string(Self.chatTemplate))

        func random(_ count: Int, scale: Float) -> [Float] { (0..<count).map { _ in rng.nextSigned() * scale } }
        func norm(_ count: Int) -> [Float] { (0..<count).map { _ in 1 + 0.1 * rng.nextSigned() } }
        w.addTensor("token_embd.weight", dimensions: [width, vocab], type: embeddingType, values: random(width * vocab, scale: 1))
        w.addTensor("output_norm.weight", dimensions: [width], type: .f32, values: norm(width))
        if architecture == .llama && ropeDivisors { // Llama 3 style: low frequencies slowed down
            w.addTensor("rope_freqs.weight", dimensions: [headDim / 2], type: .f32,
                        values: (0..<(headDim / 2)).map { i in i < headDim / 4 ? 1 : 1 + Float(i - headDim / 4) * 2 })
        }
        let s = 1 / Float(width).squareRoot()
        for i in 0..<layers {
            let p = "blk.\(i)."
            w.addTensor(p + "attn_norm.weight", dimensions: [width], type: .f32, values: norm(width))
            w.addTensor(p + "attn_q.weight", dimensions: [width, qWidth], type: weightType, values: random(width * qWidth, scale: s))
            w.addTensor(p + "attn_k.weight", dimensions: [width, kvDim], type: weightType, values: random(width * kvDim, scale: s))
            w.addTensor(p + "attn_v.weight", dimensions: [width, kvDim], type: weightType, values: random(width * kvDim, scale: s))
            w.addTensor(p + "attn_output.weight", dimensions: [qWidth, width], type: weightType,
                        values: random(qWidth * width, scale: 1 / Float(qWidth).squareRoot()))
            if traits.qkvBias {
                w.addTensor(p + "attn_q.bias", dimensions: [qWidth], type: .f32, values: random(qWidth, scale: 0.5))
                w.addTensor(p + "attn_k.bias", dimensions: [kvDim], type: .f32, values: random(kvDim, scale: 0.5))
                w.addTensor(p + "attn_v.bias", dimensions: [kvDim], type: .f32, values: random(kvDim, scale: 0.5))
            }
            if traits.qkNorm {
                w.addTensor(p + "attn_q_norm.weight", dimensions: [headDim], type: .f32, values: norm(headDim))
                w.addTensor(p + "attn_k_norm.weight", dimensions: [headDim], type: .f32, values: norm(headDim))
            }
            if traits.postNorms {
                w.addTensor(p + "post_attention_norm.weight", dimensions: [width], type: .f32, values: norm(width))
                w.addTensor(p + "post_ffw_norm.weight", dimensions: [width], type: .f32, values: norm(width))
            }
            w.addTensor(p + "ffn_norm.weight", dimensions: [width], type: .f32, values: norm(width))
            w.addTensor(p + "ffn_gate.weight", dimensions: [width, feedForward], type: weightType, values: random(width * feedForward, scale: s))
            w.addTensor(p + "ffn_up.weight", dimensions: [width, feedForward], type: weightType, values: random(width * feedForward, scale: s))
            w.addTensor(p + "ffn_down.weight", dimensions: [feedForward, width], type: weightType,
                        values: random(feedForward * width, scale: 1 / Float(feedForward).squareRoot()))
        }
        return w.serialized()
    }
}
