import VerbatimKernels

/// A model family, by its GGUF `general.architecture` name.
public enum Architecture: String, CaseIterable, Sendable {
    /// LLaMA 1-3 and SmolLM2 (`llama`): the forward pass every other family differs from.
    case llama
    /// Qwen2 and Qwen2.5, also DeepSeek-R1-Distill-Qwen (`qwen2`).
    case qwen2
    /// Qwen3 (`qwen3`).
    case qwen3
    /// Gemma 3 (`gemma3`).
    case gemma3

    /// How this family's forward pass differs from LLaMA's (each stated in its own file).
    public var traits: ArchitectureTraits {
        switch self {
        case .llama: .llama
        case .qwen2: .qwen2
        case .qwen3: .qwen3
        case .gemma3: .gemma3
        }
    }

    /// The supported names, for error messages.
    public static var supportedNames: String { allCases.map { "'\($0.rawValue)'" }.joined(separator: ", ") }
}

/// The differences of an architecture from the LLaMA forward pass, which every field's default
/// describes: RMSNorm before attention and FFN, RoPE on Q and K, SiLU-gated FFN, one RoPE base.
/// The forward pass (ForwardPass.swift) reads these; the loader (LlamaConfig) checks that the
/// tensors they name are present with the right shapes.
public struct ArchitectureTraits: Sendable, Equatable {
    /// The activation applied to the gate before it multiplies the up projection in the FFN.
    public enum Activation: Sendable {
        /// SiLU, x·σ(x): the SwiGLU FFN.
        case silu
        /// GELU in its tanh form: the GeGLU FFN (Gemma 3).
        case geluTanh
    }

    /// Which elements of a head RoPE rotates together.
    public var ropeStyle: RopeStyle = .adjacent
    /// Biases added after the Q, K and V projections (`attn_q.bias`, `attn_k.bias`, `attn_v.bias`).
    public var qkvBias = false
    /// RMSNorm over each head of Q and K before RoPE (`attn_q_norm`, `attn_k_norm`, head-sized weights).
    public var qkNorm = false
    /// RMSNorm on the attention and FFN outputs before each residual add
    /// (`post_attention_norm`, `post_ffw_norm`).
    public var postNorms = false
    /// The gate's activation in the gated FFN.
    public var activation: Activation = .silu
    /// Token embeddings are multiplied by the f32 square root of the width.
    public var scalesEmbeddings = false
    /// With n > 0, layer l is global when (l + 1) % n == 0 and slides over the window
    /// (`<arch>.attention.sliding_window`) otherwise.
    public var slidingWindowPattern = 0
    /// RoPE base of the sliding-window layers (the global layers use `<arch>.rope.freq_base`).
    public var localRopeBase: Double? = nil
    /// Reads the optional `rope_freqs.weight`: one divisor per frequency (Llama 3 RoPE scaling).
    public var ropeFrequencyDivisors = false
}
