import VerbatimKernels

/// A model's weights in the kernels' layout, loaded once and shared read-only by every
/// forward pass (any `Architecture`: its extra norms and biases are optional per layer).
/// Matrices are repacked into column panels (quantised data stays quantised); norms and
/// biases are f32; token embeddings are read from the mapped file row by row.
public final class LlamaModel: @unchecked Sendable {
    // Sendable: immutable after init.
    /// One transformer block's weights (`blk.N.*`). D is the model width, F the FFN width,
    /// Q = H * head dimension and kvD = `LlamaConfig.kvDimension`; matrices map input width -> output width.
    public struct Layer {
        /// RMSNorm weight before attention (`attn_norm`), D floats.
        public let attentionNorm: [Float]   // (D)
        /// Query projection (`attn_q`), D -> Q.
        public let wq: PackedWeights        // D -> Q (Q = H * head dimension)
        /// Key projection (`attn_k`), D -> kvD.
        public let wk: PackedWeights        // D -> kvD
        /// Value projection (`attn_v`), D -> kvD.
        public let wv: PackedWeights        // D -> kvD
        /// Attention output projection (`attn_output`), Q -> D: from all heads' outputs, concatenated.
        public let wo: PackedWeights        // Q -> D
        /// RMSNorm weight before the feed-forward block (`ffn_norm`), D floats.
        public let ffnNorm: [Float]         // (D)
        /// Gate projection of the gated FFN (`ffn_gate`), D -> F; the activation applies to its output.
        public let wGate: PackedWeights     // D -> F
        /// Up projection of the gated FFN (`ffn_up`), D -> F; multiplied by the activated gate.
        public let wUp: PackedWeights       // D -> F
        /// Down projection of the FFN (`ffn_down`), F -> D.
        public let wDown: PackedWeights     // F -> D
        // Per architecture (ArchitectureTraits), nil where it has none:
        /// Biases added after the Q, K and V projections (`attn_q.bias`, `attn_k.bias`, `attn_v.bias`;
        /// Q, kvD and kvD floats); nil unless `ArchitectureTraits.qkvBias`.
        public var qBias, kBias, vBias: [Float]?          // (Q), (kvD), (kvD)
        /// RMSNorm weights applied to each head of Q and of K before RoPE (`attn_q_norm`, `attn_k_norm`;
        /// head dimension floats each); nil unless `ArchitectureTraits.qkNorm`.
        public var qNorm, kNorm: [Float]?                 // (head dimension)
        /// RMSNorm weights on the attention and FFN outputs before each residual add
        /// (`post_attention_norm`, `post_ffw_norm`; D floats each); nil unless `ArchitectureTraits.postNorms`.
        public var postAttentionNorm, postFFNNorm: [Float]? // (D)

        /// The GGUF names of a layer's matrices (`blk.N.<name>.weight`), in the order the
        /// loader packs them: wq, wk, wv, wo, wGate, wUp, wDown.
        static let matrixNames = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
    }

    /// The mapped GGUF file the model was loaded from; token embedding rows are read from it.
    public let file: GGUFFile
    /// The checked hyperparameters.
    public let config: LlamaConfig
    /// The file's `modelDigest()`: changes with any weight, hyperparameter or tokenizer change (cache keys use it).
    public let digest: Digest128
    /// The transformer blocks, in order (`config.layerCount` of them).
    public let layers: [Layer]
    /// RMSNorm weight applied before the output projection (`output_norm`), D floats.
    public let outputNorm: [Float]          // (D)
    /// The output projection, D -> vocabulary size: hidden rows to logits (`output.weight`, or `token_embd.weight`
    /// when tied).
    public let output: PackedWeights        // D -> vocab (token_embd when tied)
    /// The token embedding tensor (`token_embd.weight`, a row of D values per token), left in the file in its
    /// own type and dequantised one row per token.
    public let embeddings: GGUFTensorInfo   // (vocab, D) rows in the file
    /// RoPE cosines and sines for every position below the context length (head dimension / 2 per position),
    /// from `rope.freq_base` and any `rope_freqs` divisors; used by every layer but the sliding-window
    /// layers when `localRope` is set.
    public let rope: RopeTable              // (contextLength, headDim / 2)
    /// The sliding-window layers' table when their RoPE base differs (Gemma 3), else nil.
    public let localRope: RopeTable?

    /// Bytes of the packed weights and f32 tables this model holds (the mapped file aside).
    public let residentBytes: Int

    /// Opens and parses the GGUF file at `path` (throwing `GGUFError` when it cannot), then loads it as
    /// `init(file:)` does.
    public convenience init(path: String) throws {
        try self.init(file: GGUFFile(path: path))
    }

    /// Checks the hyperparameters and tensors (`LlamaConfig(file:)`), repacks every matrix, reads the norms,
    /// biases and RoPE divisors as f32, and digests the file.
    ///
    /// Throws `GGUFError` when the file is not a supported model (an unsupported architecture or tensor type,
    /// a missing or misshapen tensor, out-of-range hyperparameters or RoPE divisors), and `KernelError` when
    /// a matrix cannot be packed. On return the mapped file's pages are dropped from resident memory; only
    /// embedding rows are read from it again.
    public init(file: GGUFFile) throws {
        let config = try LlamaConfig(file: file)
        self.file = file
        self.config = config
        digest = file.modelDigest()

        func tensor(_ name: String) throws(GGUFError) -> GGUFTensorInfo {
            guard let t = file.tensor(named: name) else { throw GGUFError(.missingTensor, "tensor '\(name)' is missing", path: file.path) }
            return t
        }
        func weightType(_ t: GGUFTensorInfo) throws -> WeightType {
            guard let type = WeightType(t.type) else {
                throw GGUFError(.unsupportedTensorType, "tensor '\(t.name)' has type \(t.type)", path: file.path)
            }
            return type
        }
        // Every packed weight in one arena (huge pages): sized first, then packed in this order
        // (each layer's matrices in `Layer.matrixNames` order, then the output projection).
        let outputName = config.tiedEmbeddings ? "token_embd.weight" : "output.weight"
        let packedNames = (0..<config.layerCount).flatMap { i in
            Layer.matrixNames.map { "blk.\(i).\($0).weight" }
        } + [outputName]
        var arenaBytes = 0
        for name in packedNames {
            let t = try tensor(name)
            guard t.dimensions.count == 2 else { continue }   // shapes were checked by LlamaConfig
            arenaBytes += WeightArena.footprint(PackedWeights.byteCount(type: try weightType(t), k: t.dimensions[0], n: t.dimensions[1]))
        }
        let arena = WeightArena(capacity: arenaBytes)
        let packed = try packedNames.map { name in
            let t = try tensor(name)
            return try PackedWeights(type: try weightType(t), k: t.dimensions[0], n: t.dimensions[1], raw: file.data(of: t), arena: arena)
        }
        func floats(_ name: String) throws -> [Float] { try file.floats(of: tensor(name)) }

        let perLayer = Layer.matrixNames.count
        var layers: [Layer] = []
        for i in 0..<config.layerCount {
            let p = "blk.\(i)."
            let m = Array(packed[(i * perLayer)..<((i + 1) * perLayer)]) // in Layer.matrixNames order
            var layer = Layer(
                attentionNorm: try floats(p + "attn_norm.weight"),
                wq: m[0], wk: m[1], wv: m[2], wo: m[3],
                ffnNorm: try floats(p + "ffn_norm.weight"),
                wGate: m[4], wUp: m[5], wDown: m[6])
            let t = config.traits // LlamaConfig checked that these tensors are present
            if t.qkvBias {
                layer.qBias = try floats(p + "attn_q.bias"); layer.kBias = try floats(p + "attn_k.bias"); layer.vBias = try floats(p + "attn_v.bias")
            }
            if t.qkNorm { layer.qNorm = try floats(p + "attn_q_norm.weight"); layer.kNorm = try floats(p + "attn_k_norm.weight") }
            if t.postNorms {
                layer.postAttentionNorm = try floats(p + "post_attention_norm.weight"); layer.postFFNNorm = try floats(p + "post_ffw_norm.weight")
            }
            layers.append(layer)
        }
        self.layers = layers
        outputNorm = try floats("output_norm.weight")
        output = packed[packed.count - 1]
        embeddings = try tensor("token_embd.weight")
        let divisors = config.hasRopeDivisors ? try floats("rope_freqs.weight") : nil
        if let bad = divisors?.first(where: { !($0.isFinite && $0 > 0) }) {
            throw GGUFError(.invalidHyperparameters, "tensor 'rope_freqs.weight' holds \(bad); every RoPE frequency divisor must be positive and finite",
                            path: file.path)
        }
        rope = RopeTable(maxPositions: config.contextLength, headDim: config.headDimension, theta: config.ropeFrequencyBase,
                         divisors: divisors)
        localRope = config.traits.localRopeBase.map {
            RopeTable(maxPositions: config.contextLength, headDim: config.headDimension, theta: $0)
        }

        let packedBytes = packed.reduce(0) { $0 + $1.byteCount } // every layer's matrices and the output
        let norms = layers.reduce(config.embeddingLength) { sum, l in
            sum + [l.attentionNorm, l.ffnNorm, l.qBias, l.kBias, l.vBias, l.qNorm, l.kNorm, l.postAttentionNorm, l.postFFNNorm]
                .reduce(0) { $0 + ($1?.count ?? 0) }
        } * 4
        let ropeTables = (localRope == nil ? 1 : 2) * config.contextLength * config.headDimension * 4
        residentBytes = packedBytes + norms + ropeTables
        // Packed and digested: the file's pages are no longer needed resident (embedding rows
        // are read from it on demand).
        file.bytes.discardResidentPages()
    }

    /// Writes the embedding of `token` into `row` (D floats), dequantised from the file.
    func embed(_ token: TokenID, into row: UnsafeMutablePointer<Float>) {
        let rowBytes = embeddings.rowLength / embeddings.type.blockSize * embeddings.type.blockBytes
        // The type was checked at load (LlamaConfig), so this cannot throw.
        try! Dequantize.run(embeddings.type, from: file.data(of: embeddings).baseAddress! + Int(token) * rowBytes,
                            count: embeddings.rowLength, into: row)
    }
}

extension WeightType {
    init?(_ type: GGMLType) {
        switch type {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .q8_0: self = .q8_0
        case .q4_0: self = .q4_0
        case .q4_1: self = .q4_1
        case .q5_0: self = .q5_0
        case .q5_1: self = .q5_1
        case .q4_K: self = .q4_K
        case .q5_K: self = .q5_K
        case .q6_K: self = .q6_K
        default: return nil
        }
    }
}
