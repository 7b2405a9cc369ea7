extension ArchitectureTraits {
    /// Qwen3: no biases; RMSNorm over each head of Q and K before RoPE; NEOX RoPE.
    public static let qwen3 = ArchitectureTraits(ropeStyle: .neox, qkNorm: true)
}
