import Testing
@testable import Verbatim
import VerbatimModel

@Suite("Sampler")
struct SamplerTests {
    func sample(_ logits: [Float], _ p: GenerateParameters, seed: UInt64 = 1, step: Int = 0) -> TokenID {
        var s = Sampler(parameters: p, seed: seed)
        return logits.withUnsafeBufferPointer { s.sample($0, step: step) }
    }

    @Test("greedy is argmax with ties to the lowest id")
    func greedy() {
        #expect(sample([0, 3, 1, 3], GenerateParameters()) == 1)
        #expect(sample([-1, -1], GenerateParameters()) == 0)
    }

    @Test("the draw is a pure function of (seed, step), uniform in [0, 1)")
    func uniform() {
        #expect(Sampler.uniform(seed: 9, step: 3) == Sampler.uniform(seed: 9, step: 3))
        #expect(Sampler.uniform(seed: 9, step: 3) != Sampler.uniform(seed: 9, step: 4))
        #expect(Sampler.uniform(seed: 9, step: 3) != Sampler.uniform(seed: 10, step: 3))
        let draws = (0..<20000).map { Sampler.uniform(seed: 7, step: $0) }
        #expect(draws.allSatisfy { $0 >= 0 && $0 < 1 })
        let mean = draws.reduce(0, +) / Double(draws.count)
        #expect(abs(mean - 0.5) < 0.01)
    }

    @Test("top-k, top-p and min-p only ever pick allowed tokens; frequencies follow the distribution")
    func filters() {
        let logits: [Float] = [2, 1, 0, 3, -1, 2.5]   // order: 3, 5, 0, 1, 2, 4
        var seen = Set<TokenID>()
        var counts = [Int](repeating: 0, count: logits.count)
        for step in 0..<3000 {
            seen.insert(sample(logits, GenerateParameters(temperature: 1, topK: 2), step: step))
            counts[Int(sample(logits, GenerateParameters(temperature: 1), step: step))] += 1
        }
        #expect(seen == [3, 5])
        // p(3) = e^3 / sum ≈ 0.43, p(4) = e^-1 / sum ≈ 0.008
        #expect(counts[3] > 1100 && counts[3] < 1500)
        #expect(counts[4] < 80)
        seen = []
        for step in 0..<2000 { seen.insert(sample(logits, GenerateParameters(temperature: 1, topP: 0.5), step: step)) }
        #expect(seen == [3, 5])   // 0.43 + 0.26 reaches 0.5
        seen = []
        for step in 0..<2000 { seen.insert(sample(logits, GenerateParameters(temperature: 1, minP: 0.5), step: step)) }
        #expect(seen == [3, 5])   // e^2.5/e^3 = 0.61 ≥ 0.5 > e^2/e^3 = 0.37
        // Non-finite logits never win.
        #expect(sample([.nan, 1, .infinity * -1], GenerateParameters(temperature: 1)) == 1)
    }
}
