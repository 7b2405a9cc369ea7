// Kernel benchmarks: linear (GFLOP/s, and weight GB/s for one row), attention
// over paged KV at several context lengths, RMSNorm, log-softmax. Every case
// runs on each optimised path the CPU supports; the thread count is the default
// (VERBATIM_THREADS or one per core). The "limit" cases measure, in the same
// run, what one core can do at all: the peak f32 fma rate and the rate of a
// plain read loop from DRAM and from L2; with several threads also the rate
// at which that many cores read DRAM together. The README gives the kernels'
// figures as fractions of those.
// Run: swift package --package-path Benchmarks benchmark --target KernelBenchmarks
import Benchmark
import Glibc
import MachineLimits
import VerbatimKernels

/// SplitMix64 for reproducible inputs.
struct BenchRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func float() -> Float { Float(next() >> 40) / Float(1 << 24) - 0.5 }
    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in float() } }
}

/// Copies of one packed matrix filling `bytes` of one huge-page arena, built on first use (so
/// that a filtered run does not pay for them).
final class DRAMCopies: @unchecked Sendable {
    let type: WeightType, k: Int, n: Int, bytes: Int, seed: UInt64
    private var built: [PackedWeights]?
    private var arena: WeightArena?
    init(type: WeightType, k: Int, n: Int, bytes: Int, seed: UInt64) {
        (self.type, self.k, self.n, self.bytes, self.seed) = (type, k, n, bytes, seed)
    }
    var weights: [PackedWeights] {
        if let built { return built }
        var rng = BenchRandom(state: seed)
        let raw = benchRaw(type, k: k, n: n, &rng)
        let one = PackedWeights.byteCount(type: type, k: k, n: n)
        let count = max(1, bytes / one)
        let arena = WeightArena(capacity: count * WeightArena.footprint(one))
        let copies = raw.withUnsafeBytes { r in (0..<count).map { _ in try! PackedWeights(type: type, k: k, n: n, raw: r, arena: arena) } }
        self.arena = arena
        built = copies
        return copies
    }
}

/// Runs `body` once per scaled iteration inside the measurement; the seconds one run took.
func timedSeconds(_ benchmark: Benchmark, _ body: () -> Void) -> Double {
    benchmark.startMeasurement()
    let start = ContinuousClock.now
    for _ in benchmark.scaledIterations { body() }
    let seconds = (ContinuousClock.now - start) / .seconds(1) / Double(benchmark.scaledIterations.count)
    benchmark.stopMeasurement()
    return seconds
}

func benchWeights(_ type: WeightType, k: Int, n: Int, _ rng: inout BenchRandom) -> PackedWeights {
    let raw = benchRaw(type, k: k, n: n, &rng)
    // In an arena of its own, on huge pages, as a loaded model holds its weights.
    let arena = WeightArena(capacity: WeightArena.footprint(PackedWeights.byteCount(type: type, k: k, n: n)))
    return try! raw.withUnsafeBytes { try PackedWeights(type: type, k: k, n: n, raw: $0, arena: arena) }
}

/// Random ggml bytes for n rows of k values; every quantisation block gets small scales.
func benchRaw(_ type: WeightType, k: Int, n: Int, _ rng: inout BenchRandom) -> [UInt8] {
    var raw = [UInt8](repeating: 0, count: n * type.rowBytes(k: k))
    switch type {
    case .f32, .f16, .bf16:
        for i in stride(from: 0, to: raw.count, by: 4) {
            let bits = Float(rng.float()).bitPattern
            for b in 0..<min(4, raw.count - i) { raw[i + b] = UInt8((bits >> (8 * UInt32(b))) & 0xff) }
        }
        if type == .bf16 { for i in stride(from: 1, to: raw.count, by: 2) { raw[i] &= 0x3f } }
    default:
        // Random quants, small scales in every f16 field of a block (as quantisers write them).
        for i in 0..<raw.count { raw[i] = UInt8(rng.next() & 0xff) }
        let blockBytes = type.rowBytes(k: type.blockSize)
        let scale = Kernels.halfBits(0.01)
        let halves: [Int] = switch type {
        case .q4_1, .q5_1, .q4_K, .q5_K: [0, 2]
        case .q6_K: [208]
        default: [0]
        }
        for at in stride(from: 0, to: raw.count, by: blockBytes) {
            for h in halves { raw[at + h] = UInt8(scale & 0xff); raw[at + h + 1] = UInt8(scale >> 8) }
        }
    }
    return raw
}

let benchmarks: @Sendable () -> Void = {
    let gflops = BenchmarkMetric.custom("GFLOP/s", polarity: .prefersLarger, useScalingFactor: false)
    let weightGBs = BenchmarkMetric.custom("weight GB/s", polarity: .prefersLarger, useScalingFactor: false)
    let kvGBs = BenchmarkMetric.custom("KV GB/s", polarity: .prefersLarger, useScalingFactor: false)
    let readGBs = BenchmarkMetric.custom("read GB/s", polarity: .prefersLarger, useScalingFactor: false)
    let paths = KernelConfig.supportedISAs.filter { $0 != .portable }
    let threads = KernelConfig.threads
    var rng = BenchRandom(state: 42)

    // The machine's limits, per path.
    let limitPaths: [(String, Int32)] = [("avx512", Int32(ML_AVX512)), ("avx2", Int32(ML_AVX2))].filter { ml_supported($0.1) != 0 }
    // (level, bytes, cores): one core from DRAM and from L2; memory is shared, so with several
    // threads also the rate at which all of them read DRAM together.
    var reads: [(String, Int, Int)] = [("DRAM, 256 MiB", 256 << 20, 1), ("L2, 512 KiB", 512 << 10, 1)]
    if threads > 1 { reads.append(("DRAM, 256 MiB", 256 << 20, threads)) }
    for (name, path) in limitPaths {
        Benchmark(
            "limit f32 fma peak \(name) one core",
            configuration: .init(metrics: [.wallClock, gflops], maxDuration: .seconds(1), maxIterations: 20)
        ) { benchmark in
            let rounds: Int64 = 20_000_000
            let seconds = timedSeconds(benchmark) { blackHole(ml_fma_rounds(path, rounds)) }
            benchmark.measurement(gflops, Int(Double(rounds) * Double(ML_FMA_CHAINS) * 32 / seconds / 1e9))
        }
        for (level, bytes, cores) in reads {
            Benchmark(
                "limit read \(level) \(name) \(cores == 1 ? "one core" : "\(cores) cores")",
                configuration: .init(metrics: [.wallClock, readGBs], maxDuration: .seconds(1), maxIterations: bytes > 1 << 24 ? 20 : 5000)
            ) { benchmark in
                // On huge pages, as the packed weights are.
                let huge = 2 << 20
                let size = (bytes + huge - 1) / huge * huge
                let p = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: huge)
                defer { p.deallocate() }
                _ = madvise(p, size, MADV_HUGEPAGE)
                memset(p, 0, size)
                let floats = p.assumingMemoryBound(to: Float.self)
                let n = Int64(bytes / 4)
                let seconds = timedSeconds(benchmark) {
                    blackHole(cores == 1 ? ml_read(path, floats, n) : ml_read_parallel(path, floats, n, Int32(cores)))
                }
                benchmark.measurement(readGBs, Int(Double(bytes) / seconds / 1e9))
            }
        }
    }

    // Linear: the shapes of SmolLM2-135M (width 576, KV 192, FFN 1536, vocab 49152).
    let shapes = [(576, 576), (576, 192), (576, 1536), (1536, 576), (576, 49152)]
    let x = rng.floats(512 * 1536) // (rows, k), enough for every case
    for type in [WeightType.f32, .q4_1, .q8_0] {
        for (k, n) in shapes {
            let w = benchWeights(type, k: k, n: n, &rng)
            for m in [1, 8, 64, 512] {
                let flops = 2.0 * Double(m * k * n)
                for isa in paths {
                    let metrics: [BenchmarkMetric] = m == 1 ? [.wallClock, gflops, weightGBs] : [.wallClock, gflops]
                    Benchmark(
                        "linear \(type) \(k)→\(n) M=\(m) \(isa) t=\(threads)",
                        configuration: .init(metrics: metrics, maxDuration: .seconds(1), maxIterations: m * n > 10_000_000 ? 10 : 200)
                    ) { benchmark in
                        KernelConfig.setISA(isa)
                        var y = [Float](repeating: 0, count: m * n) // (m, n)
                        let seconds = y.withUnsafeMutableBufferPointer { yp in
                            x.withUnsafeBufferPointer { xp in
                                timedSeconds(benchmark) { Kernels.linear(x: xp.baseAddress!, weights: w, y: yp.baseAddress!, rows: m) }
                            }
                        }
                        blackHole(y)
                        benchmark.measurement(gflops, Int(flops / seconds / 1e9))
                        if m == 1 { benchmark.measurement(weightGBs, Int(Double(w.byteCount) / seconds / 1e9)) }
                    }
                }
            }
        }
    }

    // One row with the weights coming from DRAM, as in a decode step (which streams 96 MB of
    // weights, more than the last-level cache): each iteration runs one matrix after another
    // over copies filling 256 MiB. The single matrices above stay in L2/L3 between iterations
    // (even 576→49152: 18-30 MB), where a plain read runs at 75-100 GB/s.
    for type in [WeightType.f32, .q4_1, .q8_0] {
        let (k, n) = (576, 1536)
        let copies = DRAMCopies(type: type, k: k, n: n, bytes: 256 << 20, seed: 7)
        for isa in paths {
            Benchmark(
                "linear \(type) \(k)→\(n) M=1 from DRAM (256 MiB of copies) \(isa) t=\(threads)",
                configuration: .init(metrics: [.wallClock, weightGBs], maxDuration: .seconds(2), maxIterations: 20)
            ) { benchmark in
                KernelConfig.setISA(isa)
                let weights = copies.weights
                var y = [Float](repeating: 0, count: n)
                let seconds = y.withUnsafeMutableBufferPointer { yp in
                    x.withUnsafeBufferPointer { xp in
                        timedSeconds(benchmark) {
                            for w in weights { Kernels.linear(x: xp.baseAddress!, weights: w, y: yp.baseAddress!, rows: 1) }
                        }
                    }
                }
                blackHole(y)
                benchmark.measurement(weightGBs, Int(Double(weights.count * weights[0].byteCount) / seconds / 1e9))
            }
        }
    }

    // Attention: one decode row (9 heads) at the end of a context, f32 and f16 KV.
    for type in [KVType.f32, .f16] {
        for context in [128, 1024, 4096] {
            let blockSize = 32
            let memory = PagedKVMemory(
                type: type, blockSize: blockSize, layers: 1, kvHeads: 3, headDim: 64, blockCount: context / blockSize)
            let table = (0..<(context / blockSize)).map { Int32($0) } // (blocks)
            let kv = rng.floats(context * 192)                       // (context, kvHeads * headDim)
            let offsets = [Int32](repeating: 0, count: context)
            let positions = (0..<context).map { Int32($0) }
            memory.write(layer: 0, k: kv, v: kv, rows: context, blockTables: table, tableOffsets: offsets, positions: positions)
            let q = rng.floats(576) // (1, heads * headDim)
            let kvBytes = Double(context * 192 * 2 * (type == .f16 ? 2 : 4))
            for isa in paths {
                Benchmark(
                    "attention decode kv=\(type) context=\(context) \(isa) t=\(threads)",
                    configuration: .init(metrics: [.wallClock, kvGBs], maxDuration: .seconds(1), maxIterations: 500)
                ) { benchmark in
                    KernelConfig.setISA(isa)
                    var out = [Float](repeating: 0, count: 576) // (1, heads * headDim)
                    let last: [Int32] = [Int32(context - 1)]
                    let seconds = timedSeconds(benchmark) {
                        Kernels.attention(
                            q: q, out: &out, rows: 1, heads: 9, memory: memory, layer: 0,
                            blockTables: table, tableOffsets: offsets, positions: last, scale: 0.125)
                    }
                    blackHole(out)
                    benchmark.measurement(kvGBs, Int(kvBytes / seconds / 1e9))
                }
            }
        }
    }

    // Row kernels at decode and prefill sizes.
    let rowsX = rng.floats(512 * 576) // (rows, 576)
    let norm = rng.floats(576)
    let logits = rng.floats(49152)
    for isa in paths {
        for rows in [1, 64, 512] {
            Benchmark(
                "rmsNorm \(rows)×576 \(isa) t=\(threads)",
                configuration: .init(metrics: [.wallClock], maxDuration: .seconds(1), maxIterations: 10_000)
            ) { benchmark in
                KernelConfig.setISA(isa)
                var y = [Float](repeating: 0, count: rows * 576) // (rows, 576)
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    Kernels.rmsNorm(x: rowsX, weight: norm, y: &y, rows: rows, dim: 576, eps: 1e-5)
                }
                benchmark.stopMeasurement()
                blackHole(y)
            }
        }
        Benchmark(
            "logSoftmax 1×49152 \(isa) t=\(threads)",
            configuration: .init(metrics: [.wallClock], maxDuration: .seconds(1), maxIterations: 10_000)
        ) { benchmark in
            KernelConfig.setISA(isa)
            var y = [Float](repeating: 0, count: 49152) // (1, vocab)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { Kernels.logSoftmax(x: logits, y: &y, rows: 1, n: 49152) }
            benchmark.stopMeasurement()
            blackHole(y)
        }
    }
}
