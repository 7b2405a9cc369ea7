// Linear: every path gives the portable bits, rows do not see their batch,
// threads do not matter, and the result is close to a Double computation.
import Testing
@testable import VerbatimKernels
import CVerbatimKernels

extension KernelTests {
    @Suite("Linear")
    struct LinearTests {
        // (m, k, n): ragged k and n, m from 1 to 300. Quantised types need k % 32 == 0.
        static let shapes: [(Int, Int, Int)] = [
            (1, 32, 1), (1, 64, 16), (2, 96, 17), (3, 32, 63), (4, 64, 64), (5, 160, 65),
            (6, 32, 100), (7, 64, 129), (12, 96, 48), (13, 32, 200), (25, 64, 31), (64, 32, 70),
            (97, 64, 33), (300, 32, 20), (11, 576, 77), (8, 1536, 50), (130, 96, 129), (2, 64, 1000),
            (1, 96, 70), (1, 576, 200), (1, 1536, 65), (1, 64, 1000), // one row: odd and even block counts, runs of groups
            (40, 64, 1000), (200, 64, 1000), // several rows in runs of groups, each reading the next ahead
            (560, 64, 200), (600, 576, 40), // three row chunks of 192 and 204 rows (the second: 18 blocks, the sums of x 16 at a time, then 2)
            (9, 64, 40), (16, 96, 100), (17, 32, 50), (32, 64, 70), (33, 32, 20), // passes of the few-rows walk, and past its limits
            (35, 64, 40), // Q8_0's 6-row tiles: 5 rows left after the last full one
            (1, 64, 144), (16, 64, 144), (40, 64, 576), // units of half a group on two threads (9 panels; 9 groups), the last half with one panel
        ]
        static let plainShapes: [(Int, Int, Int)] = [
            (1, 1, 1), (2, 3, 5), (5, 17, 33), (13, 33, 70), (1, 100, 129), (40, 7, 65), (299, 45, 19), (3, 577, 200),
        ]
        // K-quants: k a multiple of 256 (one to six super-blocks).
        static let superBlockShapes: [(Int, Int, Int)] = [
            (1, 256, 1), (2, 512, 17), (3, 256, 63), (5, 768, 65), (12, 256, 48), (13, 512, 200), (25, 256, 31),
            (97, 256, 33), (300, 256, 20), (8, 1536, 50), (130, 256, 129), (2, 256, 1000),
            (1, 512, 70), (1, 1280, 200), (1, 1536, 65), (1, 256, 1000), (1, 768, 33),
            (40, 256, 1000), (200, 256, 1000), (560, 512, 70),
            (9, 256, 40), (16, 512, 100), (17, 256, 50), (32, 256, 70), (33, 256, 20), (35, 256, 40),
            (1, 256, 144), (16, 256, 144), (40, 256, 576),
        ]

        static func shapes(for type: WeightType) -> [(Int, Int, Int)] {
            switch type.blockSize {
            case 1: shapes + plainShapes
            case 256: superBlockShapes
            default: shapes
            }
        }

        /// A reduction length every type accepts, near `k`.
        static func k(_ k: Int, for type: WeightType) -> Int { type.blockSize == 256 ? (k + 255) / 256 * 256 : k }

        // One thread and several: a single-row linear on one thread walks memory
        // differently (vk_simd_kernels.h), so both walks are compared.
        @Test("AVX2 and AVX-512 give the portable bits for every weight type and many shapes, on 1 and several threads", arguments: WeightType.allCases)
        func pathsMatchPortable(type: WeightType) throws {
            var rng = SeededRandom(0x1000 + UInt64(type.rawValue))
            for (m, k, n) in Self.shapes(for: type) {
                let w = try pack(type, k: k, n: n, randomWeights(type, k: k, n: n, &rng))
                let x = rng.floats(m * k)
                let ref = withConfig(isa: .portable) { runLinear(x, rows: m, w) }
                for isa in optimisedISAs {
                    for threads in [1, max(2, KernelConfig.threads)] {
                        let y = withConfig(isa: isa, threads: threads) { runLinear(x, rows: m, w) }
                        expectSameBits(y, ref, "\(type) \(isa) threads=\(threads) m=\(m) k=\(k) n=\(n)")
                    }
                }
            }
        }

        // Q, K and V (or gate and up) in one job: mixed types share one prepared x (Q6_K its sums
        // of 16, the other nibble types of 32, Q8_0 and F32 the plain x), and the items of the
        // matrices interleave over the threads.
        @Test("A linear over two or three matrices gives each the bits it has alone, on every path and thread count")
        func severalMatrices() throws {
            var rng = SeededRandom(0x5eed)
            let mixes: [[WeightType]] = [[.q5_0, .q5_0, .q8_0], [.q4_K, .q6_K, .q4_K], [.q6_K, .f32], [.q4_1, .q8_0, .q5_1], [.q5_K, .q4_0]]
            for (i, types) in mixes.enumerated() {
                for (m, n) in [(1, [200, 64, 64]), (3, [70, 17, 1000]), (16, [576, 192, 192]), (130, [129, 64, 300])] {
                    let k = 512
                    let ws = try types.enumerated().map { j, t in try pack(t, k: k, n: n[j], randomWeights(t, k: k, n: n[j], &rng)) }
                    let x = rng.floats(m * k)
                    for isa in KernelConfig.supportedISAs {
                        for threads in [1, 3] {
                            let alone = withConfig(isa: isa, threads: threads) { ws.map { runLinear(x, rows: m, $0) } }
                            var y0 = [Float](repeating: .nan, count: m * ws[0].n), y1 = [Float](repeating: .nan, count: m * ws[1].n)
                            var y2 = [Float](repeating: .nan, count: m * ws[ws.count - 1].n)
                            withConfig(isa: isa, threads: threads) {
                                x.withUnsafeBufferPointer { xp in
                                    y0.withUnsafeMutableBufferPointer { p0 in
                                        y1.withUnsafeMutableBufferPointer { p1 in
                                            y2.withUnsafeMutableBufferPointer { p2 in
                                                Kernels.linear(x: xp.baseAddress!, rows: m, (ws[0], p0.baseAddress!), (ws[1], p1.baseAddress!),
                                                               ws.count == 3 ? (ws[2], p2.baseAddress!) : nil)
                                            }
                                        }
                                    }
                                }
                            }
                            let ys = ws.count == 3 ? [y0, y1, y2] : [y0, y1]
                            for j in ws.indices {
                                expectSameBits(ys[j], alone[j], "mix \(i) \(types) matrix \(j) \(isa) threads=\(threads) m=\(m)")
                            }
                        }
                    }
                }
            }
        }

        @Test("Row r of a batch equals the row computed alone, batch sizes 1...64, random companions")
        func batchInvariance() throws {
            var rng = SeededRandom(7)
            for type in [WeightType.f32, .q4_1, .q8_0, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K] {
                let (k, n) = (Self.k(96, for: type), 80)
                let w = try pack(type, k: k, n: n, randomWeights(type, k: k, n: n, &rng))
                let pool = 40
                let rowsX = (0..<pool).map { _ in rng.floats(k) }
                let alone = rowsX.map { runLinear($0, rows: 1, w) }
                for b in 1...64 {
                    let pick = (0..<b).map { _ in Int.random(in: 0..<pool, using: &rng) }
                    let y = runLinear(pick.flatMap { rowsX[$0] }, rows: b, w)
                    for (r, i) in pick.enumerated() {
                        expectSameBits(Array(y[(r * n)..<((r + 1) * n)]), alone[i], "\(type) batch \(b) row \(r)")
                    }
                }
            }
        }

        @Test("1, 2, 3 and 8 threads give the same bits")
        func threadsDoNotMatter() throws {
            var rng = SeededRandom(8)
            for type in WeightType.allCases {
                let (m, k, n) = (37, Self.k(128, for: type), 300)
                let w = try pack(type, k: k, n: n, randomWeights(type, k: k, n: n, &rng))
                let x = rng.floats(m * k)
                let ref = withConfig(isa: KernelConfig.isa, threads: 1) { runLinear(x, rows: m, w) }
                for t in [2, 3, 8] {
                    let y = withConfig(isa: KernelConfig.isa, threads: t) { runLinear(x, rows: m, w) }
                    expectSameBits(y, ref, "\(type) threads \(t)")
                }
            }
        }

        // Bound: a k-term fma chain has |error| <= gamma_k * sum |x w|, gamma_k = k u / (1 - k u),
        // u = 2^-24 (each step rounds once). The weights are decoded independently from
        // the ggml bytes (this also checks the panel packing and nibble order).
        @Test("Close to a Double computation with independently decoded weights (|err| <= k u / (1 - k u) * sum|x w|)")
        func accuracy() throws {
            var rng = SeededRandom(9)
            for type in WeightType.allCases {
                let (m, k, n) = (5, 256, 70)
                let raw = randomWeights(type, k: k, n: n, &rng)
                let wd = decodeWeights(type, k: k, n: n, raw)
                let w = try pack(type, k: k, n: n, raw)
                let x = rng.floats(m * k)
                let y = runLinear(x, rows: m, w)
                let u = 0x1p-24
                let gamma = Double(k) * u / (1 - Double(k) * u)
                var bad = 0
                for r in 0..<m {
                    for c in 0..<n {
                        var exact = 0.0, mag = 0.0
                        for kk in 0..<k {
                            let p = Double(x[r * k + kk]) * Double(wd[c * k + kk])
                            exact += p
                            mag += abs(p)
                        }
                        if abs(Double(y[r * n + c]) - exact) > gamma * mag { bad += 1 }
                    }
                }
                #expect(bad == 0, "\(type): \(bad) outputs outside the bound")
            }
        }

        @Test("dequantizeRow decodes GGUF rows as the format says (same weights the linear kernels use)")
        func dequantizeRow() {
            var rng = SeededRandom(10)
            for type in WeightType.allCases {
                let (k, n) = (Self.k(96, for: type) * (type.blockSize == 256 ? 2 : 1), 3)
                let raw = randomWeights(type, k: k, n: n, &rng)
                let want = decodeWeights(type, k: k, n: n, raw)
                var got = [Float](repeating: .nan, count: k * n)
                raw.withUnsafeBytes { r in
                    got.withUnsafeMutableBufferPointer { g in
                        for row in 0..<n {
                            Kernels.dequantizeRow(
                                type: type, k: k, row: r.baseAddress! + row * type.rowBytes(k: k), out: g.baseAddress! + row * k)
                        }
                    }
                }
                expectSameBits(got, want, "\(type)")
            }
        }

        @Test("Q4 with x scaled by 2^(20 - bit) gives the bits of the plain block-factored order (|x| from 2^-120 to 2^80), Q4_0 with m = -8d")
        func q4ScaledEqualsPlainOrder() throws {
            var rng = SeededRandom(31)
            for type in [WeightType.q4_0, .q4_1] {
                let (m, k, n) = (3, 160, 40)
                let raw = randomWeights(type, k: k, n: n, &rng)
                // Magnitudes the scaled form carries exactly (2^20 x q and its sums stay finite): 2^-120 ..< 2^80.
                let x = (0..<(m * k)).map { _ in rng.float() * Float(sign: .plus, exponent: Int.random(in: -120...80, using: &rng), significand: 1) }
                let w = try pack(type, k: k, n: n, raw)
                let want = Self.plainQ4(type, x, rows: m, k: k, n: n, raw)
                for isa in KernelConfig.supportedISAs {
                    let y = withConfig(isa: isa) { runLinear(x, rows: m, w) }
                    expectSameBits(y, want, "\(type) \(isa)")
                }
            }
        }

        @Test("Every path agrees at the edges of the Q4 scaling too: huge, tiny, subnormal and infinite x, cancelling sums")
        func q4EdgesAgreeOnEveryPath() throws {
            var rng = SeededRandom(33)
            let edges: [Float] = [0x1p43, -0x1p44, 0x1p100, 0x1p-107, -0x1p-115, .greatestFiniteMagnitude, 0x1p-62, -0x1p-70, 0x1p-126,
                                  .leastNonzeroMagnitude, -.leastNormalMagnitude / 3, .infinity, -.infinity, 0, -0.0]
            for type in [WeightType.q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K] {
                let (m, k, n) = (5, Self.k(96, for: type), 40)
                let w = try pack(type, k: k, n: n, randomWeights(type, k: k, n: n, &rng))
                // Rows: mostly edge values; one row of tiny values only; one row whose block sums cancel.
                var x = (0..<(3 * k)).map { i in i % 3 == 0 ? rng.float() : edges[Int.random(in: 0..<edges.count, using: &rng)] }
                x += (0..<k).map { _ in rng.float() * 0x1p-100 }
                x += (0..<k).map { i in (i % 2 == 0 ? 1 : -1) * 0x1p-60 * Float(1 + i % 5) }
                let ref = withConfig(isa: .portable) { runLinear(x, rows: m, w) }
                for isa in optimisedISAs {
                    for threads in [1, 2] {
                        let y = withConfig(isa: isa, threads: threads) { runLinear(x, rows: m, w) }
                        expectSameBits(y, ref, "\(type) \(isa) threads=\(threads)")
                        // Rows one at a time: the single-row walk sees the same values.
                        for r in 0..<m {
                            let alone = withConfig(isa: isa, threads: threads) { runLinear(Array(x[(r * k)..<((r + 1) * k)]), rows: 1, w) }
                            expectSameBits(alone, Array(ref[(r * n)..<((r + 1) * n)]), "\(type) \(isa) threads=\(threads) row \(r) alone")
                        }
                    }
                }
            }
        }

        /// NUMERICS.md's block-factored order with integer q, written without the
        /// kernels' scaling: per block s = fma(x, q, s) over its 32 k; acc = fma(d, s, acc);
        /// acc = fma(m, xsum, acc) with m = -8d for Q4_0 (whose q is then unsigned).
        static func plainQ4(_ type: WeightType, _ x: [Float], rows: Int, k: Int, n: Int, _ raw: [UInt8]) -> [Float] {
            let bb = type.rowBytes(k: 32), qo = type == .q4_1 ? 4 : 2
            func half(_ at: Int) -> Float { Kernels.float(halfBits: UInt16(raw[at]) | UInt16(raw[at + 1]) << 8) }
            var y = [Float](repeating: 0, count: rows * n)
            for r in 0..<rows {
                for c in 0..<n {
                    var acc: Float = 0
                    for b in 0..<(k / 32) {
                        let blk = c * type.rowBytes(k: k) + b * bb
                        let xb = Array(x[(r * k + b * 32)..<(r * k + b * 32 + 32)])
                        var s: Float = 0
                        for j in 0..<32 {
                            let q = j < 16 ? raw[blk + qo + j] & 15 : raw[blk + qo + j - 16] >> 4
                            s = s.addingProduct(xb[j], Float(q))
                        }
                        var l = (0..<16).map { xb[$0] + xb[$0 + 16] } // vk_block_sum's order
                        for w in [8, 4, 2, 1] { for i in 0..<w { l[i] = l[i] + l[i + w] } }
                        let d = half(blk)
                        acc = acc.addingProduct(d, s)
                        acc = acc.addingProduct(type == .q4_1 ? half(blk + 2) : -8 * d, l[0])
                    }
                    y[r * n + c] = acc
                }
            }
            return y
        }

        @Test("Q5_0, Q5_1, Q4_K, Q5_K, Q6_K: the kernels give the bits of the documented order with integer q (sub-block sums, then d sc and the offset), |x| from 2^-120 to 2^80")
        func newTypesFollowTheDocumentedOrder() throws {
            var rng = SeededRandom(34)
            for type in [WeightType.q5_0, .q5_1, .q4_K, .q5_K, .q6_K] {
                let (m, k, n) = (3, 512, 40)
                let raw = randomWeights(type, k: k, n: n, &rng)
                let x = (0..<(m * k)).map { _ in rng.float() * Float(sign: .plus, exponent: Int.random(in: -120...80, using: &rng), significand: 1) }
                let w = try pack(type, k: k, n: n, raw)
                let want = Self.plainOrder(type, x, rows: m, k: k, n: n, raw)
                for isa in KernelConfig.supportedISAs {
                    for rows in [1, m] {
                        let y = withConfig(isa: isa) { runLinear(Array(x[0..<(rows * k)]), rows: rows, w) }
                        expectSameBits(y, Array(want[0..<(rows * n)]), "\(type) \(isa) rows=\(rows)")
                    }
                }
            }
        }

        /// docs/NUMERICS-IMPLEMENTATION.md's order for the 5-bit and K-quant types, from the
        /// ggml bytes with unscaled integer q: per sub-block (16 values for Q6_K, else 32)
        /// s = fma(x, q, s) in order; acc = fma(D, s, acc); acc = fma(M, xsum, acc), with
        /// D = d (Q5) or d*sc (K), M = -16d (Q5_0), m (Q5_1), -(dmin*m) (Q4_K, Q5_K), -32 d sc (Q6_K).
        static func plainOrder(_ type: WeightType, _ x: [Float], rows: Int, k: Int, n: Int, _ raw: [UInt8]) -> [Float] {
            let bs = type.blockSize, bb = type.rowBytes(k: bs), sub = type == .q6_K ? 16 : 32
            var y = [Float](repeating: 0, count: rows * n)
            for c in 0..<n {
                // The column's unsigned integers and per-sub-block factors.
                var q: [Int] = [], dd: [Float] = [], mm: [Float] = []
                for b in 0..<(k / bs) {
                    let blk = integerBlock(type, raw, at: c * type.rowBytes(k: k) + b * bb)
                    q += blk.q; dd += blk.d; mm += blk.m
                }
                for r in 0..<rows {
                    var acc: Float = 0
                    for sb in 0..<(k / sub) {
                        let xb = Array(x[(r * k + sb * sub)..<(r * k + sb * sub + sub)])
                        var s: Float = 0
                        for j in 0..<sub { s = s.addingProduct(xb[j], Float(q[sb * sub + j])) }
                        var l = sub == 16 ? xb : (0..<16).map { xb[$0] + xb[$0 + 16] }
                        for w in [8, 4, 2, 1] { for i in 0..<w { l[i] = l[i] + l[i + w] } }
                        acc = acc.addingProduct(dd[sb], s)
                        acc = acc.addingProduct(mm[sb], l[0])
                    }
                    y[r * n + c] = acc
                }
            }
            return y
        }

        @Test("A host thread's flush-to-zero, denormals-are-zero and rounding mode change no bits, and are restored")
        func hostFloatingPointEnvironment() throws {
            let control = vk_test_fp_control
            guard control() != 0 else { return } // not x86: no MXCSR to disturb
            var rng = SeededRandom(32)
            let (m, k, n) = (2, 256, 70)
            // Subnormal inputs too, which denormals-are-zero would read as 0.
            let x = (0..<(m * k)).map { i in i % 7 == 0 ? Float.leastNonzeroMagnitude * Float(i) : rng.float() }
            let hostile: UInt32 = 0x1F80 | 0x8000 | 0x0040 | 0x6000 // FTZ, DAZ, round toward zero
            for type in WeightType.allCases {
                let w = try pack(type, k: k, n: n, randomWeights(type, k: k, n: n, &rng))
                for isa in KernelConfig.supportedISAs {
                    let want = withConfig(isa: isa) { runLinear(x, rows: m, w) }
                    let saved = control()
                    vk_test_set_fp_control(hostile)
                    let got = withConfig(isa: isa) { runLinear(x, rows: m, w) }
                    let e = withConfig(isa: isa) { mapArray(x) { Kernels.exp($0, $1, count: $2) } }
                    let after = control()
                    vk_test_set_fp_control(saved)
                    #expect(after & ~0x3F == hostile, "\(type) \(isa): the caller's control bits were not restored")
                    expectSameBits(got, want, "\(type) \(isa) under FTZ/DAZ/round-toward-zero")
                    expectSameBits(e, withConfig(isa: isa) { mapArray(x) { Kernels.exp($0, $1, count: $2) } }, "exp \(isa) under FTZ/DAZ/round-toward-zero")
                }
            }
            // Row kernels too (they round and meet subnormals on the same terms).
            let dim = 96, weight = rng.floats(dim)
            for isa in KernelConfig.supportedISAs {
                func rows() -> [Float] {
                    var norm = [Float](repeating: 0, count: m * dim), soft = norm
                    Kernels.rmsNorm(x: x, weight: weight, y: &norm, rows: m, dim: dim, eps: 1e-5)
                    Kernels.logSoftmax(x: x, y: &soft, rows: m, n: dim)
                    return norm + soft
                }
                let want = withConfig(isa: isa) { rows() }
                let saved = control()
                vk_test_set_fp_control(hostile)
                let got = withConfig(isa: isa) { rows() }
                vk_test_set_fp_control(saved)
                expectSameBits(got, want, "rmsNorm and logSoftmax \(isa) under FTZ/DAZ/round-toward-zero")
            }
        }

        @Test("Packing rejects a k that is not a multiple of the block size")
        func rejectsBadShape() {
            let raw = [UInt8](repeating: 0, count: 1000)
            #expect(throws: KernelError.self) { try pack(.q4_0, k: 48, n: 2, raw) }
            #expect(throws: KernelError.self) { try pack(.q4_K, k: 128, n: 2, raw) }
            #expect(throws: KernelError.self) { try pack(.q6_K, k: 384, n: 2, raw) }
        }
    }
}
