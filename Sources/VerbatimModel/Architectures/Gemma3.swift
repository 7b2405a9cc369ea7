extension ArchitectureTraits {
    /// Gemma 3: embeddings times √width; Q/K RMSNorm per head before RoPE; four RMSNorms per
    /// layer (the GGUF weights already hold Gemma's +1, so they are plain RMSNorms); GELU (tanh)
    /// gated FFN; NEOX RoPE; five sliding-window layers, then one global; RoPE base 10 000 on the
    /// sliding layers. The output matrix is the token embeddings (no final soft-cap in Gemma 3).
    public static let gemma3 = ArchitectureTraits(
        ropeStyle: .neox, qkNorm: true, postNorms: true, activation: .geluTanh,
        scalesEmbeddings: true, slidingWindowPattern: 6, localRopeBase: 10_000)
}
