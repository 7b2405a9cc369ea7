extension ArchitectureTraits {
    /// LLaMA 1-3 (and SmolLM2): the defaults. Llama 3.1+ files carry `rope_freqs.weight`,
    /// which divides each RoPE frequency.
    public static let llama = ArchitectureTraits(ropeFrequencyDivisors: true)
}
