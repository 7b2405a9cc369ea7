// Statistics for the benchmark report: exact percentiles, HdrHistogram latency
// summaries and seeded bootstrap confidence intervals for comparing two
// configurations. Everything random is driven by an explicit seed so that a
// report can be regenerated bit for bit from the same measurements.

import Histogram

// MARK: - Seeded random numbers

/// xoshiro256** (Blackman & Vigna): small, fast and good enough for resampling.
///
/// Named after the algorithm rather than `SplitMix64` because VerbatimModel already
/// exports a public `SplitMix64`, and a file importing both modules would see an
/// ambiguous name.
public struct Xoshiro256StarStar: RandomNumberGenerator, Sendable {
    private var s0, s1, s2, s3: UInt64

    /// The 256-bit state is filled from `seed` with SplitMix64, as the algorithm's
    /// authors recommend; this never yields the forbidden all-zero state.
    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
    }

    public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}

// MARK: - Exact percentiles

public enum Percentile {
    /// The exact `p`-th percentile (0...100) of `values`, by linear interpolation
    /// between closest ranks: with the values sorted as x[0] ≤ … ≤ x[n−1] and
    /// h = (n − 1)·p/100, the result is x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]).
    /// This is Hyndman & Fan's type 7, the default of R's `quantile` and NumPy's
    /// `percentile`, so numbers can be cross-checked there. p0 is the minimum and
    /// p100 the maximum. Returns NaN for an empty sample; `values` must not hold NaN.
    public static func of(_ values: [Double], _ p: Double) -> Double {
        precondition((0...100).contains(p), "percentile must be in 0...100, got \(p)")
        precondition(!values.contains(where: \.isNaN), "Percentile.of: NaN in sample")
        if values.isEmpty { return .nan }
        return ofSorted(values.sorted(), p)
    }

    /// Same as `of`, for a sample already sorted ascending (not checked).
    static func ofSorted(_ sorted: [Double], _ p: Double) -> Double {
        if sorted.isEmpty { return .nan }
        let h = Double(sorted.count - 1) * p / 100
        let lo = Int(h.rounded(.down))
        let hi = Swift.min(lo + 1, sorted.count - 1)
        let fraction = h - Double(lo)
        // Written as a weighted sum only when needed, so equal neighbours (and ±inf) stay exact.
        if fraction == 0 || sorted[lo] == sorted[hi] { return sorted[lo] }
        return sorted[lo] + fraction * (sorted[hi] - sorted[lo])
    }
}

// MARK: - Latency summaries

/// Count, mean and tail of a set of latencies, all in seconds.
///
/// Percentiles and max come from an HdrHistogram of whole microseconds with three
/// significant digits: each reported percentile is within HdrHistogram's stated
/// relative precision (0.1%, in fact at most 1/1024) of the exact sample value at the
/// same rank, after rounding to 1 µs. HdrHistogram picks the value at rank
/// ⌈p·n/100⌉ (no interpolation), which is one of the two values that
/// `Percentile.of` interpolates between. The mean is computed exactly from the input.
/// An empty input gives count 0 and every other field 0 (not NaN, so the value
/// stays `Equatable` and JSON-encodable).
public struct LatencySummary: Sendable, Codable, Equatable {
    public var count: Int
    public var mean: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var max: Double

    /// One hour, in microseconds: longer latencies are clamped to this.
    public static let highestTrackableMicroseconds: UInt64 = 3_600_000_000

    public init(count: Int, mean: Double, p50: Double, p90: Double, p99: Double, max: Double) {
        self.count = count
        self.mean = mean
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.max = max
    }

    /// `seconds` must be finite and ≥ 0. Values below 1 µs are recorded as 1 µs
    /// (the histogram's lowest discernible value); values above one hour as one hour.
    public init(seconds: [Double]) {
        guard !seconds.isEmpty else {
            self.init(count: 0, mean: 0, p50: 0, p90: 0, p99: 0, max: 0)
            return
        }
        var histogram = Histogram<UInt64>(
            lowestDiscernibleValue: 1,
            highestTrackableValue: Self.highestTrackableMicroseconds,
            numberOfSignificantValueDigits: .three)
        var sum = 0.0
        for s in seconds {
            precondition(s.isFinite && s >= 0, "LatencySummary: latency must be finite and >= 0, got \(s)")
            sum += s
            let micros = (s * 1e6).rounded()
            let clamped = Swift.min(Swift.max(micros, 1), Double(Self.highestTrackableMicroseconds))
            histogram.record(UInt64(clamped))
        }
        func inSeconds(_ micros: UInt64) -> Double { Double(micros) / 1e6 }
        self.init(
            count: seconds.count,
            mean: sum / Double(seconds.count),
            p50: inSeconds(histogram.valueAtPercentile(50)),
            p90: inSeconds(histogram.valueAtPercentile(90)),
            p99: inSeconds(histogram.valueAtPercentile(99)),
            // maxRecorded is the exact largest recorded value, so p99 ≤ max always holds.
            max: inSeconds(histogram.maxRecorded))
    }
}

// MARK: - Bootstrap

/// A bootstrap comparison of configuration b (new) against a (baseline).
public struct Difference: Sendable, Codable, Equatable {
    /// statistic(b) − statistic(a), or statistic(b) / statistic(a) for a ratio.
    public var estimate: Double
    /// Percentile-bootstrap interval bounds.
    public var low: Double
    public var high: Double
    /// Two-sided coverage of [low, high], e.g. 0.95.
    public var confidence: Double
    /// The value meaning "no change": 0 for a difference, 1 for a ratio.
    public var noEffect: Double

    public init(estimate: Double, low: Double, high: Double, confidence: Double, noEffect: Double = 0) {
        self.estimate = estimate
        self.low = low
        self.high = high
        self.confidence = confidence
        self.noEffect = noEffect
    }

    /// True when the interval excludes "no change"; an interval that contains it
    /// (or is NaN) is not significant.
    public var significant: Bool { low > noEffect || high < noEffect }
}

/// A bootstrap confidence interval for one statistic of one configuration.
public struct Interval: Sendable, Codable, Equatable {
    public var estimate: Double
    public var low: Double
    public var high: Double
    public var confidence: Double

    public init(estimate: Double, low: Double, high: Double, confidence: Double) {
        self.estimate = estimate
        self.low = low
        self.high = high
        self.confidence = confidence
    }
}

/// Ready-made statistics for `Bootstrap`. Each returns NaN for an empty sample.
public enum Statistic {
    public static let mean: @Sendable ([Double]) -> Double = { values in
        values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count)
    }
    public static let median: @Sendable ([Double]) -> Double = { Percentile.of($0, 50) }
    public static func percentile(_ p: Double) -> @Sendable ([Double]) -> Double {
        precondition((0...100).contains(p), "percentile must be in 0...100, got \(p)")
        return { Percentile.of($0, p) }
    }
}

/// Percentile-bootstrap confidence intervals (Efron): resample requests with
/// replacement `resamples` times, recompute the statistic on each replicate, and
/// report the (1−c)/2 and (1+c)/2 percentiles of the replicate values.
///
/// Throughout, `a` is the baseline and `b` the new configuration, so a negative
/// difference in latency means b is faster. With `paired: true`, `a[i]` and `b[i]`
/// are the same request measured under both configurations: each replicate draws
/// one set of request indices and applies it to both, which removes the
/// request-to-request variation from the comparison. With `paired: false` the two
/// samples are resampled independently (they may differ in size).
///
/// Replicates whose result is not finite (e.g. a ratio over a zero) are dropped;
/// if none is left the bounds are NaN. Inputs must be non-empty.
public enum Bootstrap {
    /// statistic(b) − statistic(a) with its interval.
    public static func difference(
        _ a: [Double], _ b: [Double], paired: Bool,
        resamples: Int = 2000, confidence: Double = 0.95, seed: UInt64 = 1,
        statistic: ([Double]) -> Double
    ) -> Difference {
        compare(a, b, paired: paired, resamples: resamples, confidence: confidence, seed: seed,
                noEffect: 0, statistic: statistic, combine: { new, base in new - base })
    }

    /// statistic(b) / statistic(a) with its interval (e.g. 0.5 = b takes half as
    /// long; the speed-up is its reciprocal). Not significant when the interval contains 1.
    public static func ratio(
        _ a: [Double], _ b: [Double], paired: Bool,
        resamples: Int = 2000, confidence: Double = 0.95, seed: UInt64 = 1,
        statistic: ([Double]) -> Double
    ) -> Difference {
        compare(a, b, paired: paired, resamples: resamples, confidence: confidence, seed: seed,
                noEffect: 1, statistic: statistic, combine: { new, base in new / base })
    }

    /// Interval for one statistic of one sample.
    public static func interval(
        _ values: [Double], resamples: Int = 2000, confidence: Double = 0.95, seed: UInt64 = 1,
        statistic: ([Double]) -> Double
    ) -> Interval {
        validate(resamples: resamples, confidence: confidence)
        precondition(!values.isEmpty, "Bootstrap: empty sample")
        var rng = Xoshiro256StarStar(seed: seed)
        var buffer = values
        var replicates: [Double] = []
        replicates.reserveCapacity(resamples)
        for _ in 0..<resamples {
            draw(from: values, into: &buffer, using: &rng)
            let r = statistic(buffer)
            if r.isFinite { replicates.append(r) }
        }
        let (low, high) = bounds(replicates, confidence: confidence)
        return Interval(estimate: statistic(values), low: low, high: high, confidence: confidence)
    }

    /// Difference of two ratios of sums, Σ bNum / Σ bDen − Σ aNum / Σ aDen, e.g. token
    /// hit rate = Σ hit tokens / Σ prompt tokens. The unit resampled is the request:
    /// its numerator and denominator always move together. `paired` as for `difference`.
    public static func differenceOfRatios(
        aNum: [Double], aDen: [Double], bNum: [Double], bDen: [Double], paired: Bool,
        resamples: Int = 2000, confidence: Double = 0.95, seed: UInt64 = 1
    ) -> Difference {
        validate(resamples: resamples, confidence: confidence)
        precondition(aNum.count == aDen.count && bNum.count == bDen.count,
                     "Bootstrap: numerators and denominators must have equal counts")
        precondition(!aNum.isEmpty && !bNum.isEmpty, "Bootstrap: empty sample")
        if paired {
            precondition(aNum.count == bNum.count, "Bootstrap: paired samples must have equal counts")
        }
        var rng = Xoshiro256StarStar(seed: seed)
        var replicates: [Double] = []
        replicates.reserveCapacity(resamples)
        for _ in 0..<resamples {
            var an = 0.0, ad = 0.0, bn = 0.0, bd = 0.0
            if paired {
                for _ in 0..<aNum.count {
                    let i = index(below: aNum.count, using: &rng)
                    an += aNum[i]; ad += aDen[i]; bn += bNum[i]; bd += bDen[i]
                }
            } else {
                for _ in 0..<aNum.count {
                    let i = index(below: aNum.count, using: &rng)
                    an += aNum[i]; ad += aDen[i]
                }
                for _ in 0..<bNum.count {
                    let i = index(below: bNum.count, using: &rng)
                    bn += bNum[i]; bd += bDen[i]
                }
            }
            let r = bn / bd - an / ad
            if r.isFinite { replicates.append(r) }
        }
        let estimate = bNum.reduce(0, +) / bDen.reduce(0, +) - aNum.reduce(0, +) / aDen.reduce(0, +)
        let (low, high) = bounds(replicates, confidence: confidence)
        return Difference(estimate: estimate, low: low, high: high, confidence: confidence)
    }

    /// Σ numerators / Σ denominators for one configuration, resampling requests.
    public static func ratioOfSums(
        numerators: [Double], denominators: [Double],
        resamples: Int = 2000, confidence: Double = 0.95, seed: UInt64 = 1
    ) -> Interval {
        validate(resamples: resamples, confidence: confidence)
        precondition(numerators.count == denominators.count,
                     "Bootstrap: numerators and denominators must have equal counts")
        precondition(!numerators.isEmpty, "Bootstrap: empty sample")
        var rng = Xoshiro256StarStar(seed: seed)
        var replicates: [Double] = []
        replicates.reserveCapacity(resamples)
        for _ in 0..<resamples {
            var num = 0.0, den = 0.0
            for _ in 0..<numerators.count {
                let i = index(below: numerators.count, using: &rng)
                num += numerators[i]; den += denominators[i]
            }
            let r = num / den
            if r.isFinite { replicates.append(r) }
        }
        let estimate = numerators.reduce(0, +) / denominators.reduce(0, +)
        let (low, high) = bounds(replicates, confidence: confidence)
        return Interval(estimate: estimate, low: low, high: high, confidence: confidence)
    }

    // MARK: Machinery

    private static func compare(
        _ a: [Double], _ b: [Double], paired: Bool, resamples: Int, confidence: Double, seed: UInt64,
        noEffect: Double, statistic: ([Double]) -> Double, combine: (Double, Double) -> Double
    ) -> Difference {
        validate(resamples: resamples, confidence: confidence)
        precondition(!a.isEmpty && !b.isEmpty, "Bootstrap: empty sample")
        if paired {
            precondition(a.count == b.count, "Bootstrap: paired samples must have equal counts (\(a.count) vs \(b.count))")
        }
        var rng = Xoshiro256StarStar(seed: seed)
        // Two buffers reused across replicates; the statistic may copy (e.g. to sort).
        var bufferA = a
        var bufferB = b
        var replicates: [Double] = []
        replicates.reserveCapacity(resamples)
        for _ in 0..<resamples {
            if paired {
                bufferA.withUnsafeMutableBufferPointer { outA in
                    bufferB.withUnsafeMutableBufferPointer { outB in
                        for j in 0..<a.count {
                            let i = index(below: a.count, using: &rng)
                            outA[j] = a[i]
                            outB[j] = b[i]
                        }
                    }
                }
            } else {
                draw(from: a, into: &bufferA, using: &rng)
                draw(from: b, into: &bufferB, using: &rng)
            }
            let r = combine(statistic(bufferB), statistic(bufferA))
            if r.isFinite { replicates.append(r) }
        }
        let (low, high) = bounds(replicates, confidence: confidence)
        return Difference(estimate: combine(statistic(b), statistic(a)),
                          low: low, high: high, confidence: confidence, noEffect: noEffect)
    }

    /// Fills `buffer` (same count as `source`) with a resample drawn with replacement.
    private static func draw(from source: [Double], into buffer: inout [Double],
                             using rng: inout Xoshiro256StarStar) {
        buffer.withUnsafeMutableBufferPointer { out in
            for j in 0..<source.count {
                out[j] = source[index(below: source.count, using: &rng)]
            }
        }
    }

    /// Unbiased uniform index in 0..<n (the standard library's bounded draw).
    @inline(__always)
    private static func index(below n: Int, using rng: inout Xoshiro256StarStar) -> Int {
        Int(truncatingIfNeeded: rng.next(upperBound: UInt64(n)))
    }

    private static func bounds(_ replicates: [Double], confidence: Double) -> (Double, Double) {
        if replicates.isEmpty { return (.nan, .nan) }
        let sorted = replicates.sorted()
        return (Percentile.ofSorted(sorted, 100 * (1 - confidence) / 2),
                Percentile.ofSorted(sorted, 100 * (1 + confidence) / 2))
    }

    private static func validate(resamples: Int, confidence: Double) {
        precondition(resamples > 0, "Bootstrap: resamples must be > 0")
        precondition(confidence > 0 && confidence < 1, "Bootstrap: confidence must be in (0, 1)")
    }
}
