import VerbatimKernels
import VerbatimModel

/// Chooses the next token from logits. A pure function of (logits, parameters, seed, step): the
/// draw for step t is a counter-based hash of (seed, t), never a shared random stream, so a
/// seeded request gives the same tokens whatever runs beside it.
public struct Sampler {
    /// Temperature, top-k, top-p and min-p (the other fields are not the sampler's).
    public let parameters: GenerateParameters
    /// The request's seed: the draw for step t depends on (seed, t) only.
    public let seed: UInt64
    private var candidates: [Int32] = []     // token ids kept, most likely first when sorted
    private var weights: [Double] = []
    private var scaled: [Float] = []         // (logit - max) / T per candidate, then its exp

    /// A sampler for one request.
    public init(parameters: GenerateParameters, seed: UInt64) {
        self.parameters = parameters
        self.seed = seed
    }

    /// Uniform in [0, 1) for (seed, step): SplitMix64's finaliser over the pair.
    public static func uniform(seed: UInt64, step: Int) -> Double {
        func mix(_ x: UInt64) -> UInt64 {
            var z = x &+ 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let bits = mix(seed ^ mix(UInt64(step) &* 0xD1B5_4A32_D192_ED03))
        return Double(bits >> 11) * 0x1p-53
    }

    /// The token for generation step `step` (0 for the first generated token).
    public mutating func sample(_ logits: UnsafeBufferPointer<Float>, step: Int) -> TokenID {
        let n = logits.count
        if parameters.temperature == 0 { return TokenID(Kernels.argmax(x: logits.baseAddress!, n: n)) }

        candidates.removeAll(keepingCapacity: true)
        let needsOrder = parameters.topK > 0 || parameters.topP < 1
        // Non-finite logits never win a draw.
        for i in 0..<n where logits[i].isFinite { candidates.append(Int32(i)) }
        guard !candidates.isEmpty else { return TokenID(Kernels.argmax(x: logits.baseAddress!, n: n)) }
        if needsOrder {
            // Most likely first; ties by id, so the order is total.
            let byLikelihood: (Int32, Int32) -> Bool = { a, b in
                logits[Int(a)] > logits[Int(b)] || (logits[Int(a)] == logits[Int(b)] && a < b)
            }
            if parameters.topK > 0 && parameters.topK < candidates.count {
                candidates = firstInOrder(parameters.topK, of: candidates, by: byLikelihood)
            } else {
                candidates.sort(by: byLikelihood)
            }
        }
        var maxLogit = -Float.infinity
        for c in candidates { maxLogit = max(maxLogit, logits[Int(c)]) }
        // Weights exp((l - max) / T) with the project's exp, summed in candidate order in Double.
        // The exps run as one array call (the vector paths give the scalar exp's bits), and the
        // loops over a whole vocabulary run on raw buffers sized once.
        let count = candidates.count
        if scaled.count < count { scaled = [Float](repeating: 0, count: count) }
        if weights.count < count { weights = [Double](repeating: 0, count: count) }
        let temperature = parameters.temperature, minP = parameters.minP, topP = parameters.topP
        let target = Self.uniform(seed: seed, step: step)
        return candidates.withUnsafeBufferPointer { cand -> TokenID in
            scaled.withUnsafeMutableBufferPointer { sc -> TokenID in
                weights.withUnsafeMutableBufferPointer { w -> TokenID in
                    for i in 0..<count { sc[i] = (logits[Int(cand[i])] - maxLogit) / temperature }
                    Kernels.exp(sc.baseAddress!, sc.baseAddress!, count: count)
                    var maxWeight = 0.0
                    for i in 0..<count {
                        w[i] = Double(sc[i])
                        maxWeight = max(maxWeight, w[i])
                    }
                    if minP > 0 {
                        let floor = Double(minP) * maxWeight
                        for i in 0..<count where w[i] < floor { w[i] = 0 }
                    }
                    var total = 0.0
                    for i in 0..<count { total += w[i] }
                    if topP < 1 {
                        // Candidates are sorted: keep the shortest prefix reaching topP of the mass.
                        var cumulative = 0.0
                        var cut = count
                        for i in 0..<count {
                            cumulative += w[i]
                            if cumulative >= Double(topP) * total { cut = i + 1; break }
                        }
                        for i in cut..<count { w[i] = 0 }
                        total = 0
                        for i in 0..<count { total += w[i] }
                    }
                    let goal = target * total
                    var cumulative = 0.0
                    var last = cand[0]
                    for i in 0..<count where w[i] > 0 {
                        cumulative += w[i]
                        last = cand[i]
                        if cumulative > goal { return TokenID(cand[i]) }
                    }
                    return TokenID(last)
                }
            }
        }
    }
}
