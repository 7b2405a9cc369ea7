/// Hyperparameters of a LLaMA-architecture model, read from the `llama.*` keys and checked
/// against each other and against the tensors in the file.
public struct LlamaConfig: Sendable, Equatable {
    public var layerCount: Int
    public var contextLength: Int
    public var embeddingLength: Int         // model width D
    public var feedForwardLength: Int       // FFN hidden width F
    public var headCount: Int               // query heads H
    public var kvHeadCount: Int             // key/value heads (grouped-query attention)
    public var ropeFrequencyBase: Double
    public var rmsNormEpsilon: Float
    public var vocabularySize: Int
    /// True when there is no `output.weight` and the token embeddings double as the output matrix.
    public var tiedEmbeddings: Bool

    public var headDimension: Int { embeddingLength / headCount }
    public var kvDimension: Int { kvHeadCount * headDimension }

    public init(layerCount: Int, contextLength: Int, embeddingLength: Int, feedForwardLength: Int,
                headCount: Int, kvHeadCount: Int, ropeFrequencyBase: Double, rmsNormEpsilon: Float,
                vocabularySize: Int, tiedEmbeddings: Bool) {
        self.layerCount = layerCount
        self.contextLength = contextLength
        self.embeddingLength = embeddingLength
        self.feedForwardLength = feedForwardLength
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.ropeFrequencyBase = ropeFrequencyBase
        self.rmsNormEpsilon = rmsNormEpsilon
        self.vocabularySize = vocabularySize
        self.tiedEmbeddings = tiedEmbeddings
    }

    /// Reads and validates the hyperparameters and every tensor the forward pass needs.
    public init(file: GGUFFile) throws(GGUFError) {
        func fail(_ code: GGUFError.Code, _ message: String) -> GGUFError {
            GGUFError(code, message, path: file.path)
        }
        let architecture = try file.string("general.architecture")
        guard architecture == "llama" else {
            throw fail(.invalidHyperparameters, "architecture '\(architecture)' is not supported (only 'llama')")
        }
        layerCount = try file.integer("llama.block_count")
        contextLength = try file.integer("llama.context_length")
        embeddingLength = try file.integer("llama.embedding_length")
        feedForwardLength = try file.integer("llama.feed_forward_length")
        headCount = try file.integer("llama.attention.head_count")
        kvHeadCount = file.metadata["llama.attention.head_count_kv"]?.integer ?? headCount
        ropeFrequencyBase = file.metadata["llama.rope.freq_base"]?.double ?? 10_000
        let epsilon = try file.value("llama.attention.layer_norm_rms_epsilon")
        guard let eps = epsilon.double else {
            throw fail(.wrongValueType, "llama.attention.layer_norm_rms_epsilon should be a number")
        }
        rmsNormEpsilon = Float(eps)

        guard let embeddings = file.tensor(named: "token_embd.weight") else {
            throw fail(.missingTensor, "tensor 'token_embd.weight' is missing")
        }
        vocabularySize = file.metadata["llama.vocab_size"]?.integer
            ?? file.metadata["tokenizer.ggml.tokens"]?.array?.count
            ?? (embeddings.dimensions.count == 2 ? embeddings.dimensions[1] : 0)
        tiedEmbeddings = file.tensor(named: "output.weight") == nil

        // Bounds keep every later size computation far from overflow.
        let limits: [(String, Int, ClosedRange<Int>)] = [
            ("llama.block_count", layerCount, 1...1024),
            ("llama.context_length", contextLength, 1...(1 << 24)),
            ("llama.embedding_length", embeddingLength, 1...(1 << 16)),
            ("llama.feed_forward_length", feedForwardLength, 1...(1 << 18)),
            ("llama.attention.head_count", headCount, 1...1024),
            ("llama.attention.head_count_kv", kvHeadCount, 1...1024),
            ("llama.vocab_size", vocabularySize, 1...(1 << 22)),
        ]
        for (key, value, range) in limits where !range.contains(value) {
            throw fail(.invalidHyperparameters, "\(key) = \(value) is outside \(range)")
        }
        guard embeddingLength % headCount == 0 else {
            throw fail(.invalidHyperparameters,
                       "embedding length \(embeddingLength) is not divisible by head count \(headCount)")
        }
        guard headCount % kvHeadCount == 0 else {
            throw fail(.invalidHyperparameters,
                       "head count \(headCount) is not divisible by KV head count \(kvHeadCount)")
        }
        let headDim = embeddingLength / headCount
        guard headDim % 2 == 0 else {
            throw fail(.invalidHyperparameters, "head dimension \(headDim) must be even for RoPE")
        }
        if let keyLength = file.metadata["llama.attention.key_length"]?.integer, keyLength != headDim {
            throw fail(.invalidHyperparameters, "llama.attention.key_length \(keyLength) differs from width/heads = \(headDim)")
        }
        if let ropeDims = file.metadata["llama.rope.dimension_count"]?.integer, ropeDims != headDim {
            throw fail(.invalidHyperparameters,
                       "llama.rope.dimension_count \(ropeDims) differs from the head dimension \(headDim) (partial RoPE is not supported)")
        }
        if let scaling = file.metadata["llama.rope.scaling.type"]?.string, scaling != "none" {
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
        let d = embeddingLength, f = feedForwardLength
        var list: [(String, [Int])] = [("token_embd.weight", [d, vocabularySize]), ("output_norm.weight", [d])]
        if !tiedEmbeddings { list.append(("output.weight", [d, vocabularySize])) }
        for i in 0..<layerCount {
            let p = "blk.\(i)."
            list += [
                (p + "attn_norm.weight", [d]), (p + "attn_q.weight", [d, d]),
                (p + "attn_k.weight", [d, kvDimension]), (p + "attn_v.weight", [d, kvDimension]),
                (p + "attn_output.weight", [d, d]), (p + "ffn_norm.weight", [d]),
                (p + "ffn_gate.weight", [d, f]), (p + "ffn_up.weight", [d, f]), (p + "ffn_down.weight", [f, d]),
            ]
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
