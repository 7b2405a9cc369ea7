import Foundation
@testable import VerbatimModel

/// An obviously-correct forward pass in Double for every supported architecture, written
/// straight from the equations with plain loops. It shares no code with the kernels: weights
/// come dequantised from the file, RoPE angles are computed on the spot, softmax, SiLU and GELU
/// use Foundation's exp and tanh. The architecture's differences are spelled out below from
/// the model families' descriptions (MODELS.md), not read from `ArchitectureTraits`.
final class ReferenceLlama {
    let c: LlamaConfig
    let embeddings: [Double]          // (vocab, D)
    let outputNorm: [Double]          // (D)
    let output: [Double]              // (vocab, D)
    let ropeDivisors: [Double]?       // (headDim / 2), Llama 3
    struct Layer {
        let attnNorm, ffnNorm: [Double]                       // (D)
        let wq, wk, wv, wo, gate, up, down: [Double]          // (n, k) row-major
        var qBias, kBias, vBias: [Double]?                     // Qwen2
        var qNorm, kNorm: [Double]?                            // Qwen3, Gemma 3 (headDim)
        var postAttnNorm, postFFNNorm: [Double]?               // Gemma 3 (D)
    }
    let layers: [Layer]
    var keys: [[[Double]]]            // (layer, position, kvD)
    var values: [[[Double]]]

    var isGemma: Bool { c.architecture == .gemma3 }
    var neox: Bool { c.architecture != .llama }

    /// Shares the weights of `other`, with an empty KV.
    init(sharing other: ReferenceLlama) {
        c = other.c; embeddings = other.embeddings; outputNorm = other.outputNorm; output = other.output
        ropeDivisors = other.ropeDivisors
        layers = other.layers
        keys = Array(repeating: [], count: c.layerCount)
        values = Array(repeating: [], count: c.layerCount)
    }

    init(file: GGUFFile) throws {
        c = try LlamaConfig(file: file)
        func load(_ name: String) throws -> [Double] { try file.floats(of: file.tensor(named: name)!).map(Double.init) }
        func optional(_ name: String) throws -> [Double]? { file.tensor(named: name) == nil ? nil : try load(name) }
        embeddings = try load("token_embd.weight")
        outputNorm = try load("output_norm.weight")
        output = c.tiedEmbeddings ? embeddings : try load("output.weight")
        ropeDivisors = c.architecture == .llama ? try optional("rope_freqs.weight") : nil
        layers = try (0..<c.layerCount).map { i in
            let p = "blk.\(i)."
            return Layer(attnNorm: try load(p + "attn_norm.weight"), ffnNorm: try load(p + "ffn_norm.weight"),
                         wq: try load(p + "attn_q.weight"), wk: try load(p + "attn_k.weight"), wv: try load(p + "attn_v.weight"),
                         wo: try load(p + "attn_output.weight"), gate: try load(p + "ffn_gate.weight"),
                         up: try load(p + "ffn_up.weight"), down: try load(p + "ffn_down.weight"),
                         qBias: try optional(p + "attn_q.bias"), kBias: try optional(p + "attn_k.bias"), vBias: try optional(p + "attn_v.bias"),
                         qNorm: try optional(p + "attn_q_norm.weight"), kNorm: try optional(p + "attn_k_norm.weight"),
                         postAttnNorm: try optional(p + "post_attention_norm.weight"), postFFNNorm: try optional(p + "post_ffw_norm.weight"))
        }
        keys = Array(repeating: [], count: c.layerCount)
        values = Array(repeating: [], count: c.layerCount)
    }

    func matvec(_ w: [Double], _ x: [Double], n: Int) -> [Double] {
        let k = x.count
        return w.withUnsafeBufferPointer { wp in
            x.withUnsafeBufferPointer { xp in
                (0..<n).map { row in
                    var sum = 0.0
                    for j in 0..<k { sum += wp[row * k + j] * xp[j] }
                    return sum
                }
            }
        }
    }

    func rmsNorm(_ x: [Double], _ w: [Double]) -> [Double] {
        let mean = x.reduce(0) { $0 + $1 * $1 } / Double(x.count)
        let scale = 1 / (mean + Double(c.rmsNormEpsilon)).squareRoot()
        return x.indices.map { x[$0] * scale * w[$0] }
    }

    /// Rotates every head by position * base^(-2i/headDim) (divided by Llama 3's divisors):
    /// pairs (2i, 2i+1) for LLaMA, (i, i + headDim/2) for the NEOX-style families.
    func rope(_ x: inout [Double], heads: Int, position: Int, base: Double) {
        let hd = c.headDimension
        for h in 0..<heads {
            for i in 0..<(hd / 2) {
                let angle = Double(position) * pow(base, -2 * Double(i) / Double(hd)) / (ropeDivisors?[i] ?? 1)
                let (i0, i1) = neox ? (h * hd + i, h * hd + i + hd / 2) : (h * hd + 2 * i, h * hd + 2 * i + 1)
                let a = x[i0], b = x[i1]
                x[i0] = a * cos(angle) - b * sin(angle)
                x[i1] = a * sin(angle) + b * cos(angle)
            }
        }
    }

    /// Gemma 3: every 6th layer is global, the others see the last `window` positions.
    func isLocal(_ layer: Int) -> Bool { isGemma && (layer + 1) % 6 != 0 }

    /// Logits after feeding `token` at the next position (empty when `logits` is false:
    /// the KV is still extended).
    func forward(_ token: TokenID, logits: Bool = true) -> [Double] {
        let (d, hd, kvD, qw) = (c.embeddingLength, c.headDimension, c.kvDimension, c.headCount * c.headDimension)
        let position = keys[0].count
        var x = Array(embeddings[(Int(token) * d)..<(Int(token) * d + d)])
        if isGemma { x = x.map { $0 * Double(d).squareRoot() } }
        for (l, layer) in layers.enumerated() {
            let xb = rmsNorm(x, layer.attnNorm)
            var q = matvec(layer.wq, xb, n: qw)
            var k = matvec(layer.wk, xb, n: kvD)
            var v = matvec(layer.wv, xb, n: kvD)
            if let b = layer.qBias { for i in 0..<qw { q[i] += b[i] } }
            if let b = layer.kBias { for i in 0..<kvD { k[i] += b[i] } }
            if let b = layer.vBias { for i in 0..<kvD { v[i] += b[i] } }
            if let w = layer.qNorm { q = (0..<c.headCount).flatMap { rmsNorm(Array(q[($0 * hd)..<($0 * hd + hd)]), w) } }
            if let w = layer.kNorm { k = (0..<c.kvHeadCount).flatMap { rmsNorm(Array(k[($0 * hd)..<($0 * hd + hd)]), w) } }
            let base = isLocal(l) ? 10_000 : c.ropeFrequencyBase
            rope(&q, heads: c.headCount, position: position, base: base)
            rope(&k, heads: c.kvHeadCount, position: position, base: base)
            keys[l].append(k)
            values[l].append(v)
            let first = isLocal(l) ? max(0, position - c.slidingWindow! + 1) : 0
            var attn = [Double](repeating: 0, count: qw)
            let group = c.headCount / c.kvHeadCount
            for h in 0..<c.headCount {
                let kvh = h / group
                var scores = (first...position).map { p -> Double in
                    var s = 0.0
                    for i in 0..<hd { s += q[h * hd + i] * keys[l][p][kvh * hd + i] }
                    return s / Double(hd).squareRoot()
                }
                let m = scores.max()!
                scores = scores.map { exp($0 - m) }
                let z = scores.reduce(0, +)
                for (j, p) in (first...position).enumerated() {
                    for i in 0..<hd { attn[h * hd + i] += scores[j] / z * values[l][p][kvh * hd + i] }
                }
            }
            var o = matvec(layer.wo, attn, n: d)
            if let w = layer.postAttnNorm { o = rmsNorm(o, w) }
            for i in 0..<d { x[i] += o[i] }
            let xb2 = rmsNorm(x, layer.ffnNorm)
            let g = matvec(layer.gate, xb2, n: c.feedForwardLength)
            let u = matvec(layer.up, xb2, n: c.feedForwardLength)
            let hidden = g.indices.map { i -> Double in
                let a = isGemma ? 0.5 * g[i] * (1 + tanh((2 / Double.pi).squareRoot() * (g[i] + 0.044715 * g[i] * g[i] * g[i])))
                                : g[i] / (1 + exp(-g[i]))
                return a * u[i]
            }
            var down = matvec(layer.down, hidden, n: d)
            if let w = layer.postFFNNorm { down = rmsNorm(down, w) }
            for i in 0..<d { x[i] += down[i] }
        }
        return logits ? matvec(output, rmsNorm(x, outputNorm), n: c.vocabularySize) : []
    }
}
