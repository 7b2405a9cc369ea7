import ArgumentParser
import Foundation
import MachineLimits
import VerbatimKernels
import VerbatimModel

/// `verbatim-bench kernels`: every kernel and weight type as a fraction of the limits of the
/// machine it runs on, measured in the same run (one core's fma peak; plain reads from DRAM by
/// one core and by all). The same command, statically linked, runs on any x86-64 server, so two
/// machines are compared in the same way (scripts/crosscheck carries it).
struct KernelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Kernels per type and path as fractions of this machine's measured fma peak and DRAM rate.")

    @Option(help: "Threads for the all-cores rows (default: one per core).") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Timed repetitions per case (medians).") var runs = 7

    static let dramBytes = Double(256 << 20) / 1e9 // GB read by one pass of the DRAM limit

    func run() throws {
        let paths: [(KernelISA, Int32)] = [(.avx512, Int32(ML_AVX512)), (.avx2, Int32(ML_AVX2))]
            .filter { KernelConfig.isSupported($0.0) && ml_supported($0.1) != 0 }
        print("cpu \(cpuModel()), \(ProcessInfo.processInfo.activeProcessorCount) logical cores; medians of \(runs); all-cores rows use \(threads) threads\n")
        let saved = (KernelConfig.isa, KernelConfig.threads)
        defer { KernelConfig.setISA(saved.0); KernelConfig.setThreads(saved.1) }
        let dram = UnsafeMutablePointer<Float>.allocate(capacity: 64 << 20) // 256 MiB
        defer { dram.deallocate() }
        for i in 0..<(64 << 20) { dram[i] = Float(i & 1023) }
        _ = KernelConfig.takeSubnormalEvents()
        for (isa, path) in paths {
            KernelConfig.setISA(isa)
            let peak = median((0..<runs).map { _ in
                let rounds: Int64 = 5_000_000
                return Double(rounds) * Double(ML_FMA_CHAINS) * 32 / seconds { _ = ml_fma_rounds(path, rounds) } / 1e9
            })
            // All cores at once: an all-core load may run each core at a lower clock than one core
            // alone, which bounds any thread scaling measured against one core.
            let cores = min(threads, Int(ML_MAX_THREADS))
            let peakAll = median((0..<runs).map { _ in
                let rounds: Int64 = 100_000_000 // long enough (0.2 s or more) that the threads' start times do not count
                return Double(cores) * Double(rounds) * Double(ML_FMA_CHAINS) * 32
                    / seconds { DispatchQueue.concurrentPerform(iterations: cores) { _ in _ = ml_fma_rounds(path, rounds) } } / 1e9
            })
            let readOne = median((0..<runs).map { _ in Self.dramBytes / seconds { _ = ml_read(path, dram, 64 << 20) } })
            let readAll = median((0..<runs).map { _ in Self.dramBytes / seconds { _ = ml_read_parallel(path, dram, 64 << 20, Int32(min(threads, Int(ML_MAX_THREADS)))) } })
            print("\(isa): fma peak one core \(f1(peak)) GFLOP/s, \(cores) cores together \(f1(peakAll)) (\(pct(peakAll / (peak * Double(cores)))) of \(cores) × one core); "
                  + "DRAM read one core \(f1(readOne)) GB/s, \(threads) cores \(f1(readAll)) GB/s")
            print("  kernel                                          one core                 \(threads) cores")
            // SmolLM2's shape for the first types; Gemma 3 270M's (K-quants on its 2048-long rows,
            // Q5_0 where rows are 640 long) and Qwen2.5-7B's FFN for the 5-bit and K-quant types.
            let cases: [(WeightType, Int, Int, String)] = [(.f32, 576, 1536, ""), (.q8_0, 576, 1536, ""), (.q4_0, 576, 1536, ""), (.q4_1, 576, 1536, "")]
                + [(.q5_0, 640, 2048, "gemma3"), (.q4_K, 2048, 640, "gemma3"), (.q5_K, 2048, 640, "gemma3"), (.q6_K, 2048, 640, "gemma3")]
                + [WeightType.q4_K, .q5_K, .q6_K, .q5_0].map { ($0, 3584, 18944, "qwen7b") }
            for (type, k, n, shape) in cases {
                let name = "linear \(type) \(shape.isEmpty ? "" : shape + " ")\(k)→\(n)"
                let w = packed(type, k: k, n: n, copies: 1)[0]
                let x = randomFloats(512 * k, seed: 5)
                var y = [Float](repeating: 0, count: 512 * n)
                // Arithmetic-bound rows against the fma peak: M = 64, and M = 512 (a prefill chunk: how
                // the linear alone scales over the cores).
                for m in [64, 512] {
                    let rates = [1, threads].map { t in
                        KernelConfig.setThreads(t)
                        let g = median((0..<runs).map { _ in
                            2.0 * Double(m * k * n) / seconds { Kernels.linear(x: x, weights: w, y: &y, rows: m) } / 1e9
                        })
                        return t == 1 ? "\(f1(g)) GFLOP/s (\(pct(g / peak)) of peak)"
                            : "\(f1(g)) GFLOP/s (\(pct(g / (peak * Double(t)))); \(pct(g / peakAll)) of all-core peak)"
                    }
                    print("  \(name) M=\(m)".padding(toLength: 50, withPad: " ", startingAt: 0) + rates.joined(separator: "   "))
                }
                // M = 1 with the weights streamed from DRAM: copies filling 256 MiB, one after another.
                // GB/s of the weights as the GGUF file stores them (the packed form is up to 3% larger).
                let copies = packed(type, k: k, n: n, copies: max(2, (256 << 20) / PackedWeights.byteCount(type: type, k: k, n: n)))
                var rates: [String] = []
                for t in [1, threads] {
                    KernelConfig.setThreads(t)
                    let bytes = Double(copies.count * n * type.rowBytes(k: k))
                    let gbs = median((0..<runs).map { _ in
                        bytes / seconds { for c in copies { Kernels.linear(x: x, weights: c, y: &y, rows: 1) } } / 1e9
                    })
                    rates.append("\(f1(gbs)) GB/s (\(pct(gbs / (t == 1 ? readOne : readAll))) of DRAM)")
                }
                print("  \(name) M=1 from DRAM".padding(toLength: 50, withPad: " ", startingAt: 0) + rates.joined(separator: "   "))
            }
            // Attention (decode at context 1024, 9 heads over 3 KV heads of 64) and RMSNorm (512 × 576).
            for kv in [KVType.f32, .f16] {
                let ctx = 1024
                let mem = PagedKVMemory(type: kv, blockSize: 32, layers: 1, kvHeads: 3, headDim: 64, blockCount: ctx / 32)
                let table = (0..<Int32(ctx / 32)).map { $0 }
                let kvRows = randomFloats(ctx * 192, seed: 7)
                mem.write(layer: 0, k: kvRows, v: kvRows, rows: ctx, blockTables: table, tableOffsets: [Int32](repeating: 0, count: ctx),
                          positions: (0..<Int32(ctx)).map { $0 })
                let q = randomFloats(576, seed: 8)
                var out = [Float](repeating: 0, count: 576)
                let us = median((0..<runs).map { _ in
                    KernelConfig.setThreads(1)
                    return 1e6 * seconds {
                        Kernels.attention(q: q, out: &out, rows: 1, heads: 9, memory: mem, layer: 0, blockTables: table,
                                          tableOffsets: [0], positions: [Int32(ctx - 1)], scale: 0.125)
                    }
                })
                let kvBytes = Double(2 * ctx * 192 * (kv == .f16 ? 2 : 4))
                print("  attention decode, context \(ctx), kv=\(kv)".padding(toLength: 50, withPad: " ", startingAt: 0)
                      + "\(f1(us)) µs (\(f1(kvBytes / us / 1e3)) GB/s of KV)")
            }
            let xs = randomFloats(512 * 576, seed: 9), norm = randomFloats(576, seed: 10)
            var ys = [Float](repeating: 0, count: 512 * 576)
            KernelConfig.setThreads(1)
            let us = median((0..<runs).map { _ in 1e6 * seconds { Kernels.rmsNorm(x: xs, weight: norm, y: &ys, rows: 512, dim: 576, eps: 1e-5) } })
            print("  rmsNorm 512×576".padding(toLength: 50, withPad: " ", startingAt: 0) + "\(f1(us)) µs (\(f1(2 * 512 * 576 * 4 / us / 1e3)) GB/s)")
        }
        print("\nsubnormal events in the kernels: \(KernelConfig.takeSubnormalEvents())")
    }

    /// `count` packed copies of one random k × n matrix in one huge-page arena (as a model holds them).
    func packed(_ type: WeightType, k: Int, n: Int, copies: Int) -> [PackedWeights] {
        var rng = SplitMix64(seed: 3)
        var raw = (0..<(n * type.rowBytes(k: k))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        switch type {
        case .f32: // modest floats: every 4th byte (the top one) keeps the exponent near 1
            for i in stride(from: 3, to: raw.count, by: 4) { raw[i] = 0x3e | (raw[i] & 0x80) }
        case .f16, .bf16: break
        default: // small scales (every f16 field of a block), as quantisers write them
            let bb = type.rowBytes(k: type.blockSize), scale = Kernels.halfBits(0.01)
            let halves: [Int] = switch type {
            case .q4_1, .q5_1, .q4_K, .q5_K: [0, 2]
            case .q6_K: [208]
            default: [0]
            }
            for at in stride(from: 0, to: raw.count, by: bb) {
                for h in halves { raw[at + h] = UInt8(scale & 0xff); raw[at + h + 1] = UInt8(scale >> 8) }
            }
        }
        let one = PackedWeights.byteCount(type: type, k: k, n: n)
        let arena = WeightArena(capacity: copies * WeightArena.footprint(one))
        return raw.withUnsafeBytes { r in (0..<copies).map { _ in try! PackedWeights(type: type, k: k, n: n, raw: r, arena: arena) } }
    }
}

func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<n).map { _ in Float(rng.next() >> 40) / Float(1 << 24) - 0.5 }
}

/// Seconds one call of `body` takes.
func seconds(_ body: () -> Void) -> Double {
    let start = ContinuousClock.now
    body()
    return (ContinuousClock.now - start) / .seconds(1)
}

func f1(_ v: Double) -> String { String(format: "%.1f", v) }
func pct(_ v: Double) -> String { String(format: "%.0f%%", 100 * v) }

func cpuModel() -> String {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
    for line in info.split(separator: "\n") where line.hasPrefix("model name") {
        return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
    }
    return "unknown CPU"
}
