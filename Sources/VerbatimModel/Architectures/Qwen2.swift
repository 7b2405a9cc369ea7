extension ArchitectureTraits {
    /// Qwen2 and Qwen2.5 (and DeepSeek-R1-Distill-Qwen): biases on Q, K and V; NEOX RoPE.
    public static let qwen2 = ArchitectureTraits(ropeStyle: .neox, qkvBias: true)
}
