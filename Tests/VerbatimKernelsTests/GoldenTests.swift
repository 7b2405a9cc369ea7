// Pins the bits of the kernels: a digest of fixed outputs. If it changes, a
// canonical order changed: bump the numerics profile (NUMERICS.md) and update
// the digest, or caches written under the old profile would be read as exact.
import Testing
@testable import VerbatimKernels

/// FNV-1a over float bit patterns.
func digest(_ xs: [Float]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for x in xs {
        var b = x.bitPattern
        for _ in 0..<4 {
            h = (h ^ UInt64(b & 0xff)) &* 0x0000_0100_0000_01b3
            b >>= 8
        }
    }
    return h
}

/// Inputs from integer arithmetic only (no library float conversion).
func goldenFloats(_ n: Int, seed: UInt64) -> [Float] {
    var rng = SeededRandom(seed)
    return (0..<n).map { _ in Float(Int32(truncatingIfNeeded: rng.next() >> 40) - (1 << 23)) * 0x1p-23 }
}

extension KernelTests {
    @Suite("Golden bits")
    struct GoldenTests {
        static let pinned: UInt64 = 0xdad6_39db_8782_1390   // verbatim-numerics/4 (exp 0 below -87.33, subnormal F32/BF16 weights 0)
        /// The 5-bit and K-quant types (added to verbatim-numerics/4 with their canonical order).
        static let pinnedNewTypes: UInt64 = 0xc768_fa23_3916_bb70

        /// Linear outputs of `types` over weights from raw bytes of the seeded generator
        /// (the f16 scales made small), k = 256 so that every type takes it.
        func linearOutputs(_ types: [WeightType], k: Int, rng: inout SeededRandom) throws -> [Float] {
            var out: [Float] = []
            let (m, n) = (3, 40)
            let x = goldenFloats(m * k, seed: 1)
            for type in types {
                var raw = (0..<(n * type.rowBytes(k: k))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                if type.blockSize == 1 { // keep the floats finite: clear the top exponent bit
                    let es = type == .f32 ? 4 : 2
                    for i in stride(from: es - 1, to: raw.count, by: es) { raw[i] &= 0xbf }
                } else { // small scales: the high byte of every f16 field
                    let bb = type.rowBytes(k: type.blockSize)
                    let halves: [Int] = switch type {
                    case .q4_1, .q5_1, .q4_K, .q5_K: [0, 2]
                    case .q6_K: [208]
                    default: [0]
                    }
                    for i in stride(from: 0, to: raw.count, by: bb) {
                        for (f, at) in halves.enumerated() { raw[i + at + 1] = f == 0 ? 0x24 : 0xa4 }
                    }
                }
                out += runLinear(x, rows: m, try pack(type, k: k, n: n, raw))
            }
            return out
        }

        func outputs() throws -> [Float] {
            var out: [Float] = []
            // linear, the first six types: weights from raw bytes of the seeded generator
            var rng = SeededRandom(99)
            out += try linearOutputs([.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1], k: 64, rng: &rng)
            // exp, log, rmsnorm, swiglu, log-softmax
            let v = goldenFloats(1000, seed: 2).map { $0 * 90 }
            out += mapArray(v) { Kernels.exp($0, $1, count: $2) }
            out += mapArray(v.map { abs($0) }) { Kernels.log($0, $1, count: $2) }
            let w = goldenFloats(576, seed: 3)
            var y = [Float](repeating: 0, count: 2 * 576)
            let x2 = goldenFloats(2 * 576, seed: 4)
            Kernels.rmsNorm(x: x2, weight: w, y: &y, rows: 2, dim: 576, eps: 1e-5)
            out += y
            Kernels.swiGLU(gate: x2.map { $0 * 8 }, up: x2, out: &y, count: 2 * 576)
            out += y
            Kernels.logSoftmax(x: x2.map { $0 * 8 }, y: &y, rows: 2, n: 576)
            out += y
            // attention, f32 and f16 KV
            for type in [KVType.f32, .f16] {
                let mem = makeMemory(type, blockSize: 16, blocks: 3)
                let kv = goldenFloats(40 * 192, seed: 5)
                let q = goldenFloats(40 * 576, seed: 6)
                let table: [Int32] = [2, 0, 1]
                let offsets = [Int32](repeating: 0, count: 40)
                let pos = (0..<40).map { Int32($0) }
                mem.write(layer: 1, k: kv, v: kv.reversed(), rows: 40, blockTables: table, tableOffsets: offsets, positions: pos)
                var o = [Float](repeating: 0, count: 40 * 576)
                Kernels.attention(
                    q: q, out: &o, rows: 40, heads: 9, memory: mem, layer: 1, blockTables: table,
                    tableOffsets: offsets, positions: pos, scale: 0.125)
                out += o
            }
            return out
        }

        @Test("A digest of fixed kernel outputs is pinned, on every path")
        func pinnedDigest() throws {
            for isa in KernelConfig.supportedISAs {
                let d = try withConfig(isa: isa) { digest(try outputs()) }
                #expect(d == Self.pinned, "\(isa): digest \(String(d, radix: 16)) (pinned \(String(Self.pinned, radix: 16)))")
            }
        }

        @Test("A digest of fixed linear outputs of Q5_0, Q5_1, Q4_K, Q5_K and Q6_K is pinned, on every path")
        func pinnedDigestNewTypes() throws {
            for isa in KernelConfig.supportedISAs {
                var rng = SeededRandom(98)
                let d = try withConfig(isa: isa) { digest(try linearOutputs([.q5_0, .q5_1, .q4_K, .q5_K, .q6_K], k: 512, rng: &rng)) }
                #expect(d == Self.pinnedNewTypes, "\(isa): digest \(String(d, radix: 16)) (pinned \(String(Self.pinnedNewTypes, radix: 16)))")
            }
        }
    }
}
