import Foundation
@testable import VerbatimModel

/// An obviously-correct LLaMA forward pass in Double, written straight from the equations with
/// plain loops. It shares no code with the kernels: weights come dequantised from the file,
/// RoPE angles are computed on the spot, softmax and SiLU use Foundation's exp.
final class ReferenceLlama {
    let c: LlamaConfig
    let embeddings: [Double]          // (vocab, D)
    let outputNorm: [Double]          // (D)
    let output: [Double]              // (vocab, D)
    struct Layer {
        let attnNorm, ffnNorm: [Double]                       // (D)
        let wq, wk, wv, wo, gate, up, down: [Double]          // (n, k) row-major
    }
    let layers: [Layer]
    var keys: [[[Double]]]            // (layer, position, kvD)
    var values: [[[Double]]]

    /// Shares the weights of `other`, with an empty KV.
    init(sharing other: ReferenceLlama) {
        c = other.c; embeddings = other.embeddings; outputNorm = other.outputNorm; output = other.output
        layers = other.layers
        keys = Array(repeating: [], count: c.layerCount)
        values = Array(repeating: [], count: c.layerCount)
    }

    init(file: GGUFFile) throws {
        c = try LlamaConfig(file: file)
        func load(_ name: String) throws -> [Double] { try file.floats(of: file.tensor(named: name)!).map(Double.init) }
        embeddings = try load("token_embd.weight")
        outputNorm = try load("output_norm.weight")
        output = c.tiedEmbeddings ? embeddings : try load("output.weight")
        layers = try (0..<c.layerCount).map { i in
            let p = "blk.\(i)."
            return Layer(attnNorm: try load(p + "attn_norm.weight"), ffnNorm: try load(p + "ffn_norm.weight"),
                         wq: try load(p + "attn_q.weight"), wk: try load(p + "attn_k.weight"), wv: try load(p + "attn_v.weight"),
                         wo: try load(p + "attn_output.weight"), gate: try load(p + "ffn_gate.weight"),
                         up: try load(p + "ffn_up.weight"), down: try load(p + "ffn_down.weight"))
        }
        keys = Array(repeating: [], count: c.layerCount)
        values = Array(repeating: [], count: c.layerCount)
    }

    func matvec(_ w: [Double], _ x: [Double], n: Int) -> [Double] {
        let k = x.count
        return (0..<n).map { row in
            var sum = 0.0
            for j in 0..<k { sum += w[row * k + j] * x[j] }
            return sum
        }
    }

    func rmsNorm(_ x: [Double], _ w: [Double]) -> [Double] {
        let mean = x.reduce(0) { $0 + $1 * $1 } / Double(x.count)
        let scale = 1 / (mean + Double(c.rmsNormEpsilon)).squareRoot()
        return x.indices.map { x[$0] * scale * w[$0] }
    }

    /// Rotates adjacent pairs (2i, 2i+1) of every head by position * base^(-2i/headDim).
    func rope(_ x: inout [Double], heads: Int, position: Int) {
        let hd = c.headDimension
        for h in 0..<heads {
            for i in 0..<(hd / 2) {
                let angle = Double(position) * pow(c.ropeFrequencyBase, -2 * Double(i) / Double(hd))
                let a = x[h * hd + 2 * i], b = x[h * hd + 2 * i + 1]
                x[h * hd + 2 * i] = a * cos(angle) - b * sin(angle)
                x[h * hd + 2 * i + 1] = a * sin(angle) + b * cos(angle)
            }
        }
    }

    /// Logits after feeding `token` at the next position.
    func forward(_ token: TokenID) -> [Double] {
        let (d, hd, kvD) = (c.embeddingLength, c.headDimension, c.kvDimension)
        let position = keys[0].count
        var x = Array(embeddings[(Int(token) * d)..<(Int(token) * d + d)])
        for (l, layer) in layers.enumerated() {
            let xb = rmsNorm(x, layer.attnNorm)
            var q = matvec(layer.wq, xb, n: d)
            var k = matvec(layer.wk, xb, n: kvD)
            let v = matvec(layer.wv, xb, n: kvD)
            rope(&q, heads: c.headCount, position: position)
            rope(&k, heads: c.kvHeadCount, position: position)
            keys[l].append(k)
            values[l].append(v)
            var attn = [Double](repeating: 0, count: d)
            let group = c.headCount / c.kvHeadCount
            for h in 0..<c.headCount {
                let kvh = h / group
                var scores = (0...position).map { p -> Double in
                    var s = 0.0
                    for i in 0..<hd { s += q[h * hd + i] * keys[l][p][kvh * hd + i] }
                    return s / Double(hd).squareRoot()
                }
                let m = scores.max()!
                scores = scores.map { exp($0 - m) }
                let z = scores.reduce(0, +)
                for p in 0...position {
                    for i in 0..<hd { attn[h * hd + i] += scores[p] / z * values[l][p][kvh * hd + i] }
                }
            }
            let o = matvec(layer.wo, attn, n: d)
            for i in 0..<d { x[i] += o[i] }
            let xb2 = rmsNorm(x, layer.ffnNorm)
            let g = matvec(layer.gate, xb2, n: c.feedForwardLength)
            let u = matvec(layer.up, xb2, n: c.feedForwardLength)
            let hidden = g.indices.map { g[$0] / (1 + exp(-g[$0])) * u[$0] }
            let down = matvec(layer.down, hidden, n: d)
            for i in 0..<d { x[i] += down[i] }
        }
        return matvec(output, rmsNorm(x, outputNorm), n: c.vocabularySize)
    }
}
