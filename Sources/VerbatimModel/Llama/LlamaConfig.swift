/// Hyperparameters of a model of one of the supported architectures (`Architecture`), read
/// from the `<architecture>.*` keys and checked against each other and against the tensors in
/// the file. (The type keeps its first architecture's name; it describes all of them.)
public struct LlamaConfig: Sendable, Equatable {
    /// The model family (`general.architecture`), which fixes `traits`.
    public var architecture: Architecture
    /// Transformer blocks (`block_count`; 1...1024 in a file).
    public var layerCount: Int
    /// Most positions a sequence can hold (`context_length`): positions run 0..<contextLength.
    public var contextLength: Int
    /// Model width D, floats per hidden row (`embedding_length`).
    public var embeddingLength: Int         // model width D
    /// Hidden width F of the feed-forward block (`feed_forward_length`).
    public var feedForwardLength: Int       // FFN hidden width F
    /// Query heads H (`attention.head_count`).
    public var headCount: Int               // query heads H
    /// Key/value heads (`attention.head_count_kv`, else H); H is a multiple of it (grouped-query attention).
    public var kvHeadCount: Int             // key/value heads (grouped-query attention)
    /// Width of one attention head (`attention.key_length`, else D / H).
    public var headDimension: Int
    /// RoPE base θ (`rope.freq_base`, else 10 000); sliding-window layers use `traits.localRopeBase` when set.
    public var ropeFrequencyBase: Double
    /// The ε every RMSNorm adds to the mean square (`attention.layer_norm_rms_epsilon`; in (0, 1) in a file).
    public var rmsNormEpsilon: Float
    /// Tokens in the vocabulary: embedding rows and logits per row (`vocab_size`, else the tokenizer's
    /// token count, else the embedding matrix's rows).
    public var vocabularySize: Int
    /// True when there is no `output.weight` and the token embeddings double as the output matrix.
    public var tiedEmbeddings: Bool
    /// Keys a sliding-window layer attends to (the query's own position and the W - 1 before
    /// it); nil when every layer is global.
    public var slidingWindow: Int?
    /// True when the file carries `rope_freqs.weight` (Llama 3 RoPE scaling).
    public var hasRopeDivisors: Bool

    /// How `architecture`'s forward pass differs from LLaMA's.
    public var traits: ArchitectureTraits { architecture.traits }
    /// Width of Q and of the attention output: H * head dimension.
    public var queryWidth: Int { headCount * headDimension }
    /// Width of K and of V per token: KV heads * head dimension.
    public var kvDimension: Int { kvHeadCount * headDimension }
    /// The factor of the attention scores, 1/√(head dimension).
    public var attentionScale: Float { 1 / Float(headDimension).squareRoot() }

    /// Whether layer `layer` attends over the sliding window rather than the whole prefix.
    public func isSlidingWindowLayer(_ layer: Int) -> Bool {
        let n = traits.slidingWindowPattern
        return slidingWindow != nil && n > 0 && (layer + 1) % n != 0
    }

    /// Hyperparameters given directly, without the checks of `init(file:)`; `headDimension` defaults to D / H.
    public init(architecture: Architecture = .llama, layerCount: Int, contextLength: Int, embeddingLength: Int,
                feedForwardLength: Int, headCount: Int, kvHeadCount: Int, headDimension: Int? = nil,
                ropeFrequencyBase: Double, rmsNormEpsilon: Float, vocabularySize: Int, tiedEmbeddings: Bool,
                slidingWindow: Int? = nil, hasRopeDivisors: Bool = false) {
        self.architecture = architecture
        self.layerCount = layerCount
        self.contextLength = contextLength
        self.embeddingLength = embeddingLength
        self.feedForwardLength = feedForwardLength
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDimension = headDimension ?? embeddingLength / headCount
        self.ropeFrequencyBase = ropeFrequencyBase
        self.rmsNormEpsilon = rmsNormEpsilon
        self.vocabularySize = vocabularySize
        self.tiedEmbeddings = tiedEmbeddings
        self.slidingWindow = slidingWindow
        self.hasRopeDivisors = hasRopeDivisors
    }

    /// Reads and validates the hyperparameters and every tensor the forward pass needs.
    public init(file: GGUFFile) throws(GGUFError) {
        func fail(_ code: GGUFError.Code, _ message: String) -> GGUFError {
            GGUFError(code, message, path: file.path)
        }
        let name = try file.string("general.architecture")
        guard let architecture = Architecture(rawValue: name) else {
            throw fail(.invalidHyperparameters, "architecture '\(name)' is not supported (supported: \(Architecture.supportedNames))")
        }
        self.architecture = architecture
        let a = architecture.rawValue
        layerCount = try file.integer("\(a).block_count")
        contextLength = try file.integer("\(a).context_length")
        embeddingLength = try file.integer("\(a).embedding_length")
        feedForwardLength = try file.integer("\(a).feed_forward_length")
        headCount = try file.integer("\(a).attention.head_count")
        kvHeadCount = file.metadata["\(a).attention.head_count_kv"]?.integer ?? headCount
        ropeFrequencyBase = file.metadata["\(a).rope.freq_base"]?.double ?? 10_000
        let epsilon = try file.value("\(a).attention.layer_norm_rms_epsilon")
        guard let eps = epsilon.double else {
            throw fail(.wrongValueType, "\(a).attention.layer_norm_rms_epsilon should be a number")
        }
        rmsNormEpsilon = Float(eps)

        guard let embeddings = file.tensor(named: "token_embd.weight") else {
            throw fail(.missingTensor, "tensor 'token_embd.weight' is missing")
        }
        vocabularySize = file.metadata["\(a).vocab_size"]?.integer
            ?? file.metadata["tokenizer.ggml.tokens"]?.array?.count
            ?? (embeddings.dimensions.count == 2 ? embeddings.dimensions[1] : 0)
        tiedEmbeddings = file.tensor(named: "output.weight") == nil
        hasRopeDivisors = architecture.traits.ropeFrequencyDivisors && file.tensor(named: "rope_freqs.weight") != nil
        let window = file.metadata["\(a).attention.sliding_window"]?.integer
        slidingWindow = architecture.traits.slidingWindowPattern > 0 ? window : nil
        if architecture.traits.slidingWindowPattern > 0 && window == nil {
            throw fail(.missingKey, "\(a).attention.sliding_window is missing (\(a) has sliding-window layers)")
        }
        let keyLength = file.metadata["\(a).attention.key_length"]?.integer
        headDimension = keyLength ?? (headCount > 0 ? embeddingLength / headCount : 0)

        // Bounds keep every later size computation far from overflow.
        let limits: [(String, Int, ClosedRange<Int>)] = [
            ("\(a).block_count", layerCount, 1...1024),
            ("\(a).context_length", contextLength, 1...(1 << 24)),
            ("\(a).embedding_length", embeddingLength, 1...(1 << 16)),
            ("\(a).feed_forward_length", feedForwardLength, 1...(1 << 18)),
            ("\(a).attention.head_count", headCount, 1...1024),
            ("\(a).attention.head_count_kv", kvHeadCount, 1...1024),
            ("\(a).attention.key_length", headDimension, 2...4096),
            ("\(a).attention.sliding_window", slidingWindow ?? 1, 1...(1 << 24)),
            ("\(a).vocab_size", vocabularySize, 1...(1 << 22)),
        ]
        for (key, value, range) in limits where !range.contains(value) {
            throw fail(.invalidHyperparameters, "\(key) = \(value) is outside \(range)")
        }
        if keyLength == nil && embeddingLength % headCount != 0 {
            throw fail(.invalidHyperparameters,
                       "embedding length \(embeddingLength) is not divisible by head count \(headCount)")
        }
        guard headCount % kvHeadCount == 0 else {
            throw fail(.invalidHyperparameters,
                       "head count \(headCount) is not divisible by KV head count \(kvHeadCount)")
        }
        let headDim = headDimension
        guard headDim % 2 == 0 else {
            throw fail(.invalidHyperparameters, "head dimension \(headDim) must be even for RoPE")
        }
        if let valueLength = file.metadata["\(a).attention.value_length"]?.integer, valueLength != headDim {
            throw fail(.invalidHyperparameters, "\(a).attention.value_length \(valueLength) differs from the key length \(headDim)")
        }
        if let ropeDims = file.metadata["\(a).rope.dimension_count"]?.integer, ropeDims != headDim {
            throw fail(.invalidHyperparameters,
                       "\(a).rope.dimension_count \(ropeDims) differs from the head dimension \(headDim) (partial RoPE is not supported)")
        }
        if let scaling = file.metadata["\(a).rope.scaling.type"]?.string, scaling != "none" {
            throw fail(.invalidHyperparameters, "RoPE scaling '\(scaling)' is not supported")
        }
        guard ropeFrequencyBase > 0, ropeFrequencyBase.isFinite, eps > 0, eps.isFinite, eps < 1 else {
            throw fail(.invalidHyperparameters,
                       "RoPE base \(ropeFrequencyBase) and RMS epsilon \(eps) must be positive and finite")
        }
        try checkTensors(in: file)
    }

    /// The tensors of the forward pass with their expected shapes (GGUF order: inputs first).
    public var expectedTensors: [(name: String, dimensions: [Int])] {
        let d = embeddingLength, f = feedForwardLength, qw = queryWidth, hd = headDimension, t = traits
        var list: [(String, [Int])] = [("token_embd.weight", [d, vocabularySize]), ("output_norm.weight", [d])]
        if !tiedEmbeddings { list.append(("output.weight", [d, vocabularySize])) }
        if hasRopeDivisors { list.append(("rope_freqs.weight", [hd / 2])) }
        for i in 0..<layerCount {
            let p = "blk.\(i)."
            list += [
                (p + "attn_norm.weight", [d]), (p + "attn_q.weight", [d, qw]),
                (p + "attn_k.weight", [d, kvDimension]), (p + "attn_v.weight", [d, kvDimension]),
                (p + "attn_output.weight", [qw, d]), (p + "ffn_norm.weight", [d]),
                (p + "ffn_gate.weight", [d, f]), (p + "ffn_up.weight", [d, f]), (p + "ffn_down.weight", [f, d]),
            ]
            if t.qkvBias { list += [(p + "attn_q.bias", [qw]), (p + "attn_k.bias", [kvDimension]), (p + "attn_v.bias", [kvDimension])] }
            if t.qkNorm { list += [(p + "attn_q_norm.weight", [hd]), (p + "attn_k_norm.weight", [hd])] }
            if t.postNorms { list += [(p + "post_attention_norm.weight", [d]), (p + "post_ffw_norm.weight", [d])] }
        }
        return list
    }

    func checkTensors(in file: GGUFFile) throws(GGUFError) {
        for (name, dimensions) in expectedTensors {
            guard let tensor = file.tensor(named: name) else {
                throw GGUFError(.missingTensor, "tensor '\(name)' is missing", path: file.path)
            }
            guard tensor.dimensions == dimensions else {
                throw GGUFError(.tensorShapeMismatch,
                                "tensor '\(name)' has shape \(tensor.dimensions), expected \(dimensions)", path: file.path)
            }
            guard tensor.type.isSupported else {
                throw GGUFError(.unsupportedTensorType,
                                "tensor '\(name)' has type \(tensor.type), which is not supported (supported: \(GGMLType.supported.map(\.description).joined(separator: ", ")))",
                                path: file.path)
            }
        }
    }
}
