import Foundation
import Testing
@testable import VerbatimBench

/// Seeded variates for the tests, built on the library's generator.
struct Variates {
    var rng: Xoshiro256StarStar
    init(seed: UInt64) { rng = Xoshiro256StarStar(seed: seed) }

    mutating func uniform() -> Double { Double.random(in: 0..<1, using: &rng) }

    /// Inverse CDF; 1 − u is in (0, 1], so the log is finite.
    mutating func exponential(rate: Double = 1) -> Double { -log(1 - uniform()) / rate }

    /// Box–Muller.
    mutating func normal(mean: Double = 0, sd: Double = 1) -> Double {
        let u1 = 1 - uniform(), u2 = uniform()
        return mean + sd * (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    mutating func normals(_ n: Int, mean: Double = 0, sd: Double = 1) -> [Double] {
        (0..<n).map { _ in normal(mean: mean, sd: sd) }
    }
}

@Suite("Percentile.of")
struct PercentileTests {
    @Test("type-7 percentiles equal hand-computed values")
    func handComputed() {
        #expect(Percentile.of([1, 2, 3, 4], 50) == 2.5)
        #expect(Percentile.of([4, 1, 3, 2], 50) == 2.5)  // input need not be sorted
        #expect(Percentile.of([1, 2, 3, 4], 0) == 1)
        #expect(Percentile.of([1, 2, 3, 4], 100) == 4)
        #expect(Percentile.of([1, 2, 3, 4], 25) == 1.75)  // h = 3 · 0.25 = 0.75
        #expect(Percentile.of([10, 20], 30) == 13)
        #expect(Percentile.of([7], 37) == 7)
        let thousand = (1...1001).map(Double.init)
        #expect(Percentile.of(thousand, 90) == 901)
        #expect(Percentile.of(thousand, 50) == 501)
        #expect(Percentile.of(thousand, 99.9) == 1000)
        #expect(Percentile.of([], 50).isNaN)
    }

    @Test("sample quantiles of 100 000 seeded uniform and exponential draws lie within 5 standard errors of the analytic quantiles")
    func knownDistributions() {
        // The sample p-quantile has standard error ≈ √(p(1−p)/n) / f(q), with f the density at the quantile q.
        let n = 100_000
        var v = Variates(seed: 42)
        let uniform = (0..<n).map { _ in v.uniform() }
        let exponential = (0..<n).map { _ in v.exponential() }
        for p in [0.01, 0.10, 0.50, 0.90, 0.99] {
            let se = (p * (1 - p) / Double(n)).squareRoot()
            // Uniform(0, 1): q = p, f = 1.
            #expect(abs(Percentile.of(uniform, p * 100) - p) <= 5 * se, "uniform p=\(p)")
            // Exponential(1): q = −ln(1 − p), f(q) = 1 − p.
            let q = -log(1 - p)
            #expect(abs(Percentile.of(exponential, p * 100) - q) <= 5 * se / (1 - p), "exponential p=\(p)")
        }
    }
}

@Suite("LatencySummary")
struct LatencySummaryTests {
    @Test("HdrHistogram percentiles agree with Percentile.of to within 0.1% on whole-millisecond samples")
    func exactRanks() {
        // 1…1001 ms: the type-7 p50/p90/p99 fall exactly on samples (501, 901, 991 ms), and so do HdrHistogram's ranks.
        let samples = (1...1001).map { Double($0) / 1000 }
        var v = Variates(seed: 3)
        let s = LatencySummary(seconds: samples.shuffled(using: &v.rng))
        #expect(s.count == 1001)
        #expect(abs(s.mean - 0.501) < 1e-12)
        #expect(s.max == 1.001)
        for (value, p) in [(s.p50, 50.0), (s.p90, 90.0), (s.p99, 99.0)] {
            let exact = Percentile.of(samples, p)
            #expect(abs(value - exact) / exact <= 0.001, "p\(p): hdr \(value) exact \(exact)")
        }
    }

    @Test("on 20 000 log-normal latencies each HdrHistogram percentile is within 0.1% (+1 µs rounding) of the order statistics type 7 interpolates between")
    func logNormal() {
        var v = Variates(seed: 7)
        let samples = (0..<20_000).map { _ in exp(v.normal(mean: log(0.05), sd: 0.6)) }
        let sorted = samples.sorted()
        let s = LatencySummary(seconds: samples)
        #expect(s.count == samples.count)
        #expect(abs(s.mean - samples.reduce(0, +) / Double(samples.count)) < 1e-12)
        #expect(abs(s.max - sorted.last!) <= 0.5e-6)
        #expect(s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.max)
        for (value, p) in [(s.p50, 50.0), (s.p90, 90.0), (s.p99, 99.0)] {
            let h = Double(sorted.count - 1) * p / 100
            let lo = sorted[Int(h)], hi = sorted[min(Int(h) + 1, sorted.count - 1)]
            let exact = Percentile.of(samples, p)
            #expect(lo <= exact && exact <= hi)
            #expect(value >= lo * (1 - 0.001) - 1e-6, "p\(p): hdr \(value) below \(lo)")
            #expect(value <= hi * (1 + 0.001) + 1e-6, "p\(p): hdr \(value) above \(hi)")
        }
    }

    @Test("empty input is all zeros, sub-microsecond latencies count as 1 µs, and JSON round-trips")
    func edges() throws {
        #expect(LatencySummary(seconds: []) == LatencySummary(count: 0, mean: 0, p50: 0, p90: 0, p99: 0, max: 0))
        let tiny = LatencySummary(seconds: [0, 2e-7, 1e-9])
        #expect(tiny.p50 == 1e-6 && tiny.p99 == 1e-6 && tiny.max == 1e-6)
        let s = LatencySummary(seconds: [0.010, 0.020, 0.030])
        let decoded = try JSONDecoder().decode(LatencySummary.self, from: JSONEncoder().encode(s))
        #expect(decoded == s)
    }
}

@Suite("Bootstrap")
struct BootstrapTests {
    @Test("estimate is statistic(b) − statistic(a) (ratio: b / a) and the same seed gives the same interval")
    func orientationAndSeed() {
        let a = [1.0, 2, 3, 4, 5], b = [2.0, 4, 6, 8, 10]
        let d = Bootstrap.difference(a, b, paired: true, statistic: Statistic.mean)
        #expect(d.estimate == 3)
        #expect(d.low <= d.estimate && d.estimate <= d.high)
        let r = Bootstrap.ratio(a, b, paired: true, statistic: Statistic.mean)
        #expect(r.estimate == 2)
        // b = 2a exactly, so every paired replicate ratio is 2.
        #expect(r.low == 2 && r.high == 2 && r.significant)
        // Seeds: on continuous samples the interval is a function of the seed.
        var v = Variates(seed: 8)
        let x = v.normals(50), y = v.normals(50)
        let again = Bootstrap.difference(x, y, paired: false, seed: 9, statistic: Statistic.median)
        #expect(again == Bootstrap.difference(x, y, paired: false, seed: 9, statistic: Statistic.median))
        #expect(again != Bootstrap.difference(x, y, paired: false, seed: 10, statistic: Statistic.median))
    }

    @Test("an interval that contains the no-change value is not significant")
    func significance() {
        #expect(!Difference(estimate: 0.1, low: -0.1, high: 0.3, confidence: 0.95).significant)
        #expect(!Difference(estimate: 0, low: 0, high: 0.3, confidence: 0.95).significant)
        #expect(Difference(estimate: 0.2, low: 0.1, high: 0.3, confidence: 0.95).significant)
        #expect(Difference(estimate: -0.2, low: -0.3, high: -0.1, confidence: 0.95).significant)
        #expect(!Difference(estimate: 1.1, low: 0.9, high: 1.3, confidence: 0.95, noEffect: 1).significant)
        #expect(Difference(estimate: 0.5, low: 0.4, high: 0.6, confidence: 0.95, noEffect: 1).significant)
    }

    @Test("95% interval of the mean difference covers the true 0 in 90–99% of 200 experiments (n = 100 each, same normal)")
    func coverageOfDifference() {
        // Binomial sd of the coverage over 200 runs is ≈ 1.5 points; the percentile bootstrap runs
        // slightly below nominal at n = 100, so expect ≈ 93–95%.
        var covered = 0
        for e in 0..<200 {
            var v = Variates(seed: 1000 + UInt64(e))
            let a = v.normals(100), b = v.normals(100)
            let d = Bootstrap.difference(a, b, paired: false, resamples: 1000, seed: UInt64(e), statistic: Statistic.mean)
            if d.low <= 0 && 0 <= d.high { covered += 1 }
        }
        #expect((180...198).contains(covered), "covered \(covered) of 200")
    }

    @Test("95% interval of the ratio of means covers the true 1 in 90–99% of 200 experiments")
    func coverageOfRatio() {
        var covered = 0
        for e in 0..<200 {
            var v = Variates(seed: 5000 + UInt64(e))
            let a = v.normals(100, mean: 10, sd: 2), b = v.normals(100, mean: 10, sd: 2)
            let r = Bootstrap.ratio(a, b, paired: false, resamples: 1000, seed: UInt64(e), statistic: Statistic.mean)
            if !r.significant { covered += 1 }
        }
        #expect((180...198).contains(covered), "covered \(covered) of 200")
    }

    @Test("a 0.5 sd shift with n = 200 is significant, in the right direction, in ≥ 97 of 100 experiments (expected power ≈ 99.9%)")
    func power() {
        // Standard error of the difference = √(2/200) = 0.1 sd, so the shift is 5 se: power ≈ Φ(5 − 1.96) ≈ 0.999.
        var detected = 0
        for e in 0..<100 {
            var v = Variates(seed: 9000 + UInt64(e))
            let a = v.normals(200), b = v.normals(200, mean: 0.5)
            let d = Bootstrap.difference(a, b, paired: false, resamples: 1000, seed: UInt64(e), statistic: Statistic.mean)
            if d.low > 0 { detected += 1 }
        }
        #expect(detected >= 97, "detected \(detected) of 100")
    }

    @Test("paired resampling of strongly correlated samples gives an interval over 20× narrower than unpaired")
    func pairing() {
        // b = a + 0.01 + N(0, 0.001): paired se ≈ 0.001/√300, unpaired ≈ 0.3·√(2/300), a ratio of ≈ 400.
        var v = Variates(seed: 77)
        let a = v.normals(300, mean: 1, sd: 0.3)
        let b = a.map { $0 + 0.01 + v.normal(sd: 0.001) }
        let paired = Bootstrap.difference(a, b, paired: true, statistic: Statistic.mean)
        let unpaired = Bootstrap.difference(a, b, paired: false, statistic: Statistic.mean)
        #expect(paired.significant && paired.low <= 0.01 && 0.01 <= paired.high)
        #expect((paired.high - paired.low) * 20 < unpaired.high - unpaired.low,
                "paired \(paired.high - paired.low) unpaired \(unpaired.high - unpaired.low)")
    }

    @Test("paired comparison of samples of different sizes stops the process")
    func pairedCountsMustMatch() async {
        await #expect(processExitsWith: .failure) {
            _ = Bootstrap.difference([1, 2, 3], [1, 2], paired: true, statistic: Statistic.mean)
        }
    }

    /// Requests of 100…1000 prompt tokens; with probability `hitProbability` a request hits
    /// a uniform 50–100% of its tokens. True token hit rate = hitProbability · 0.75.
    static func hitTokens(_ v: inout Variates, requests: Int, hitProbability: Double) -> (num: [Double], den: [Double]) {
        var num: [Double] = [], den: [Double] = []
        for _ in 0..<requests {
            let tokens = Double(Int.random(in: 100...1000, using: &v.rng))
            let fraction = v.uniform() < hitProbability ? 0.5 + 0.5 * v.uniform() : 0
            num.append(tokens * fraction)
            den.append(tokens)
        }
        return (num, den)
    }

    @Test("ratio-of-sums interval covers the true token hit rate (0.45) in 90–99% of 200 experiments")
    func coverageOfRatioOfSums() {
        var covered = 0
        for e in 0..<200 {
            var v = Variates(seed: 20_000 + UInt64(e))
            let (num, den) = Self.hitTokens(&v, requests: 100, hitProbability: 0.6)
            let i = Bootstrap.ratioOfSums(numerators: num, denominators: den, resamples: 1000, seed: UInt64(e))
            if i.low <= 0.45 && 0.45 <= i.high { covered += 1 }
        }
        #expect((180...198).contains(covered), "covered \(covered) of 200")
    }

    @Test("difference-of-ratios interval covers the true hit-rate gain (0.525 − 0.45) in 90–99% of 200 experiments")
    func coverageOfDifferenceOfRatios() {
        var covered = 0
        for e in 0..<200 {
            var v = Variates(seed: 30_000 + UInt64(e))
            let a = Self.hitTokens(&v, requests: 150, hitProbability: 0.6)
            let b = Self.hitTokens(&v, requests: 150, hitProbability: 0.7)
            let d = Bootstrap.differenceOfRatios(aNum: a.num, aDen: a.den, bNum: b.num, bDen: b.den,
                                                 paired: false, resamples: 1000, seed: UInt64(e))
            if d.low <= 0.075 && 0.075 <= d.high { covered += 1 }
        }
        #expect((180...198).contains(covered), "covered \(covered) of 200")
    }

    @Test("paired difference of ratios resamples numerators with their denominators")
    func pairedRatios() {
        // Same requests; b hits exactly 10 more tokens on each. Every paired replicate then has
        // Σ(aNum + 10) / ΣaDen − ΣaNum / ΣaDen = 10n / ΣaDen, which varies only with ΣaDen.
        var v = Variates(seed: 5)
        let a = Self.hitTokens(&v, requests: 200, hitProbability: 0.6)
        let bNum = a.num.map { $0 + 10 }
        let d = Bootstrap.differenceOfRatios(aNum: a.num, aDen: a.den, bNum: bNum, bDen: a.den, paired: true)
        let meanTokens = a.den.reduce(0, +) / 200
        #expect(abs(d.estimate - 10 / meanTokens) < 1e-12)
        // ΣaDen over 200 requests of 100…1000 tokens varies by a few percent at most.
        #expect(d.low > 10 / meanTokens * 0.9 && d.high < 10 / meanTokens * 1.1)
        let unpaired = Bootstrap.differenceOfRatios(aNum: a.num, aDen: a.den, bNum: bNum, bDen: a.den, paired: false)
        #expect((d.high - d.low) * 5 < unpaired.high - unpaired.low)
    }
}
