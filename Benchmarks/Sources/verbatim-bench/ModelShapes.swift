import ArgumentParser
import Foundation
import VerbatimKernels
import VerbatimModel
import VerbatimTestSupport

/// Writes a model file with a published model's shapes and quantisation mix but random weights,
/// for benchmarks only: what a forward step costs depends on the shapes and the types, not on
/// the values. No complete 7B file is available here (none is on PyPI), so the 7B rows of the
/// benchmarks run on one of these, beside llama.cpp on the same file.
struct MakeModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-model",
        abstract: "Write a GGUF with Qwen2.5-7B's shapes and Q4_K_M's type mix, random weights (a benchmark file, never a test model).")

    @Option(help: "Output file.") var output = "models/qwen2.5-7b-shaped-q4_k_m.gguf"
    @Option(help: "Transformer layers (Qwen2.5-7B has 28).") var layers = 28
    @Option(help: "Random seed of the weights.") var seed: UInt64 = 7

    // Qwen2.5-7B (config.json): hidden 3584, 28 heads of 128, 4 KV heads, FFN 18944, vocabulary 152064.
    static let (width, heads, kvHeads, headDim, feedForward, vocabulary) = (3584, 28, 4, 128, 18944, 152_064)

    func run() throws {
        var rng = SplitMix64(seed: seed)
        let w = Self.width, kv = Self.kvHeads * Self.headDim, ff = Self.feedForward
        var file = GGUFWriter()
        let a = "qwen2"
        file.set("general.architecture", .string(a))
        file.set("general.name", .string("Qwen2.5-7B-shaped random weights (benchmark only)"))
        file.set("general.file_type", .uint32(15))   // Q4_K_M
        file.set("\(a).block_count", .uint32(UInt32(layers)))
        file.set("\(a).context_length", .uint32(32_768))
        file.set("\(a).embedding_length", .uint32(UInt32(w)))
        file.set("\(a).feed_forward_length", .uint32(UInt32(ff)))
        file.set("\(a).attention.head_count", .uint32(UInt32(Self.heads)))
        file.set("\(a).attention.head_count_kv", .uint32(UInt32(Self.kvHeads)))
        file.set("\(a).rope.freq_base", .float32(1_000_000))
        file.set("\(a).attention.layer_norm_rms_epsilon", .float32(1e-6))
        // A byte-level BPE vocabulary with real merges, padded to the model's size.
        let (plain, merges) = TinyModel.vocabulary(merges: 2000)
        let control = TinyModel.controlTokens
        let padding = (0..<(Self.vocabulary - control.count - plain.count)).map { "<|extra_\($0)|>" }
        let tokens = control + plain + padding
        let kinds = control.map { _ in Int32(3) } + plain.map { _ in Int32(1) } + padding.map { _ in Int32(1) }
        file.set("tokenizer.ggml.model", .string("gpt2"))
        file.set("tokenizer.ggml.pre", .string("qwen2"))
        file.set("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) }))
        file.set("tokenizer.ggml.token_type", .array(.int32, kinds.map { .int32($0) }))
        file.set("tokenizer.ggml.merges", .array(.string, merges.map { .string($0) }))
        file.set("tokenizer.ggml.bos_token_id", .uint32(0))
        file.set("tokenizer.ggml.eos_token_id", .uint32(2))
        file.set("tokenizer.ggml.add_bos_token", .bool(false))

        func floats(_ n: Int, around center: Float, spread: Float) -> [Float] { (0..<n).map { _ in center + spread * rng.nextSigned() } }
        /// Random blocks of `type` for `n` rows of `k` values, every f16 scale small (as a quantiser writes them).
        func blocks(_ type: GGMLType, k: Int, n: Int) -> [UInt8] {
            var raw = [UInt8](repeating: 0, count: n * (k / type.blockSize) * type.blockBytes)
            raw.withUnsafeMutableBytes { bytes in
                let words = bytes.bindMemory(to: UInt64.self)
                for i in words.indices { words[i] = rng.next() }
                for i in (words.count * 8)..<bytes.count { bytes[i] = UInt8(truncatingIfNeeded: rng.next()) }
            }
            let scale = Kernels.halfBits(type == .q6_K ? 0.0004 : 0.002)
            let halves: [Int] = switch type {
            case .q4_K, .q5_K: [0, 2]       // d, dmin
            case .q6_K: [208]               // d (after ql, qh and the sixteen int8 scales)
            default: [0]
            }
            for at in stride(from: 0, to: raw.count, by: type.blockBytes) {
                for h in halves { raw[at + h] = UInt8(scale & 0xff); raw[at + h + 1] = UInt8(scale >> 8) }
            }
            return raw
        }
        func matrix(_ name: String, k: Int, n: Int, _ type: GGMLType) {
            file.addTensor(name, dimensions: [k, n], type: type, data: blocks(type, k: k, n: n))
        }
        func vector(_ name: String, _ n: Int, around center: Float) {
            file.addTensor(name, dimensions: [n], type: .f32, values: floats(n, around: center, spread: 0.1))
        }
        matrix("token_embd.weight", k: w, n: Self.vocabulary, .q4_K)
        vector("output_norm.weight", w, around: 1)
        matrix("output.weight", k: w, n: Self.vocabulary, .q6_K)
        for i in 0..<layers {
            // Q4_K_M: Q6_K for attn_v and ffn_down on the first and last eighth of the layers and
            // every third one between; Q4_K elsewhere.
            let moreBits = i < layers / 8 || i >= 7 * layers / 8 || (i - layers / 8) % 3 == 2
            let p = "blk.\(i)."
            vector(p + "attn_norm.weight", w, around: 1)
            matrix(p + "attn_q.weight", k: w, n: w, .q4_K)
            vector(p + "attn_q.bias", w, around: 0)
            matrix(p + "attn_k.weight", k: w, n: kv, .q4_K)
            vector(p + "attn_k.bias", kv, around: 0)
            matrix(p + "attn_v.weight", k: w, n: kv, moreBits ? .q6_K : .q4_K)
            vector(p + "attn_v.bias", kv, around: 0)
            matrix(p + "attn_output.weight", k: w, n: w, .q4_K)
            vector(p + "ffn_norm.weight", w, around: 1)
            matrix(p + "ffn_gate.weight", k: w, n: ff, .q4_K)
            matrix(p + "ffn_up.weight", k: w, n: ff, .q4_K)
            matrix(p + "ffn_down.weight", k: ff, n: w, moreBits ? .q6_K : .q4_K)
        }
        let bytes = file.serialized()
        try Data(bytes).write(to: URL(fileURLWithPath: output))
        print(String(format: "wrote %@: %.2f GiB, %d layers, %d tensors", output, Double(bytes.count) / 1_073_741_824, layers, file.tensors.count))
    }
}
