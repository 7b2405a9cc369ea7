// exp/log, RMSNorm, SwiGLU, log-softmax, argmax, RoPE and the half conversion.
import Testing
@testable import VerbatimKernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// exp/log inputs: random over the whole range plus the edge cases.
func mathInputs() -> [Float] {
    var rng = SeededRandom(11)
    var xs: [Float] = [
        0, -0, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude, 1e-40, 1, -1,
        .infinity, -.infinity, .nan, -.nan, Float(bitPattern: 0x7fa0_0001), .greatestFiniteMagnitude,
        -.greatestFiniteMagnitude, 88.72, 88.73, 89, 100, -87.3, -100, -103.9, -104, -200, 0.5, 2, 0x1p-30,
        Float(bitPattern: 0x3f35_04f3), Float(bitPattern: 0x3f35_04f2), 0.99999994, 1.0000001,
    ]
    xs += rng.floats(3000, -110, 95)
    xs += rng.floats(2000, -1, 1)
    xs += (0..<3000).map { _ in Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng)) }
    return xs
}

func mapArray(_ x: [Float], _ f: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> [Float] {
    var y = [Float](repeating: 0, count: x.count)
    x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { f(xp.baseAddress!, $0.baseAddress!, x.count) } }
    return y
}

extension KernelTests {
    @Suite("Math kernels")
    struct MathTests {
        @Test("exp and log: every path gives the bits of the scalar function, edge cases included")
        func expLogPaths() {
            let xs = mathInputs()
            let scalarExp = xs.map { Kernels.exp($0) }
            let scalarLog = xs.map { Kernels.log($0) }
            for isa in KernelConfig.supportedISAs {
                withConfig(isa: isa) {
                    expectSameBits(mapArray(xs) { Kernels.exp($0, $1, count: $2) }, scalarExp, "exp \(isa)")
                    expectSameBits(mapArray(xs) { Kernels.log($0, $1, count: $2) }, scalarLog, "log \(isa)")
                }
            }
        }

        // Bound: 2 ulp (a range reduction with a two-part ln 2, a polynomial whose
        // truncation is below 0.1 ulp, and a handful of roundings; measured max is lower).
        @Test("exp and log are within 2 ulp of Double and right at the edges; exp is 0 below -87.33")
        func expLogAccuracy() {
            var worstExp = 0.0, worstLog = 0.0
            for x in mathInputs() where x.isFinite {
                if x < -87.33 { // profile 4: 0 where exp would be subnormal (or smaller)
                    #expect(Kernels.exp(x) == 0, "exp(\(x))")
                    continue
                }
                let e = refexp(Double(x))
                worstExp = max(worstExp, ulpError(Kernels.exp(x), e))
                if x > 0 { worstLog = max(worstLog, ulpError(Kernels.log(x), reflog(Double(x)))) }
            }
            #expect(worstExp <= 2, "exp worst \(worstExp) ulp")
            #expect(worstLog <= 2, "log worst \(worstLog) ulp")
            #expect(Kernels.exp(0) == 1 && Kernels.exp(-0.0) == 1)
            #expect(Kernels.exp(.infinity) == .infinity && Kernels.exp(-.infinity) == 0)
            #expect(Kernels.exp(89) == .infinity && Kernels.exp(-200) == 0)
            #expect(Kernels.exp(.nan).isNaN && Kernels.log(.nan).isNaN && Kernels.log(-1).isNaN)
            #expect(Kernels.log(0) == -.infinity && Kernels.log(-0.0) == -.infinity)
            #expect(Kernels.log(.infinity) == .infinity && Kernels.log(1) == 0)
            #expect(ulpError(Kernels.log(.leastNonzeroMagnitude), reflog(Double(Float.leastNonzeroMagnitude))) <= 2)
        }

        @Test("RMSNorm, SwiGLU, log-softmax and argmax: every path gives the portable bits, ragged sizes")
        func rowKernelsMatchPortable() {
            var rng = SeededRandom(12)
            for dim in [1, 7, 16, 17, 31, 576, 1000] {
                let rows = 3
                let x = rng.floats(rows * dim, -3, 3)
                let w = rng.floats(dim)
                let up = rng.floats(rows * dim)
                func run() -> ([Float], [Float], [Float], [Int]) {
                    var y = [Float](repeating: 0, count: rows * dim)
                    var s = y, l = y
                    x.withUnsafeBufferPointer { xp in
                        w.withUnsafeBufferPointer { wp in
                            Kernels.rmsNorm(x: xp.baseAddress!, weight: wp.baseAddress!, y: &y, rows: rows, dim: dim, eps: 1e-5)
                        }
                        up.withUnsafeBufferPointer { Kernels.swiGLU(gate: xp.baseAddress!, up: $0.baseAddress!, out: &s, count: rows * dim) }
                        Kernels.logSoftmax(x: xp.baseAddress!, y: &l, rows: rows, n: dim)
                    }
                    let a = (0..<rows).map { r in x.withUnsafeBufferPointer { Kernels.argmax(x: $0.baseAddress! + r * dim, n: dim) } }
                    return (y, s, l, a)
                }
                let ref = withConfig(isa: .portable, run)
                for isa in optimisedISAs {
                    let got = withConfig(isa: isa, run)
                    expectSameBits(got.0, ref.0, "rmsnorm \(isa) dim \(dim)")
                    expectSameBits(got.1, ref.1, "swiglu \(isa) dim \(dim)")
                    expectSameBits(got.2, ref.2, "log-softmax \(isa) dim \(dim)")
                    #expect(got.3 == ref.3, "argmax \(isa) dim \(dim)")
                }
            }
        }

        @Test("RMSNorm, SwiGLU and log-softmax: 1, 2, 3 and 8 threads give the same bits")
        func rowKernelsThreads() {
            var rng = SeededRandom(16)
            let rows = 40, dim = 576, vocab = 3000
            let x = rng.floats(rows * dim, -3, 3)
            let w = rng.floats(dim)
            let logits = rng.floats(rows * vocab, -10, 10)
            func run() -> [Float] {
                var y = [Float](repeating: 0, count: rows * dim)
                var s = y
                var l = [Float](repeating: 0, count: rows * vocab)
                Kernels.rmsNorm(x: x, weight: w, y: &y, rows: rows, dim: dim, eps: 1e-6)
                Kernels.swiGLU(gate: x, up: x, out: &s, count: rows * dim)
                Kernels.logSoftmax(x: logits, y: &l, rows: rows, n: vocab)
                return y + s + l
            }
            let ref = withConfig(isa: KernelConfig.isa, threads: 1, run)
            for t in [2, 3, 8] {
                expectSameBits(withConfig(isa: KernelConfig.isa, threads: t, run), ref, "threads \(t)")
            }
        }

        @Test("Argmax: ties go to the lowest index, NaN is ignored, on every path")
        func argmaxTies() {
            let cases: [([Float], Int)] = [
                ([1, 3, 3, 2], 1), ([.nan, 1, 1], 1), ([-.infinity, -.infinity], 0), ([.nan, .nan], 0),
                ([-0.0, 0.0, -1], 0), (Array(repeating: 5, count: 40) + [6] + Array(repeating: 6, count: 30), 40),
                ([.nan, -.infinity, 2], 2),
            ]
            for isa in KernelConfig.supportedISAs {
                withConfig(isa: isa) {
                    for (x, want) in cases {
                        #expect(Kernels.argmax(x: x, n: x.count) == want, "\(isa) \(x.prefix(5))")
                    }
                }
            }
        }

        // Bounds, relative to the output magnitude: RMSNorm 8 u * (D-independent after
        // the 16-lane sum: the sum of squares has relative error <= (D/16 + 4) u);
        // log-softmax: |err| <= 16 u * (1 + |y|) from exp/log (2 ulp each) and the sums.
        @Test("RMSNorm (rel <= (D/16 + 10) u), SwiGLU (rel <= 8 u) and log-softmax (<= 16 u (1 + |y|)) against Double")
        func rowKernelsAccuracy() {
            var rng = SeededRandom(13)
            let dim = 576, rows = 4
            let u = 0x1p-24
            let x = rng.floats(rows * dim, -4, 4)
            let w = rng.floats(dim, 0.5, 2)
            var y = [Float](repeating: 0, count: rows * dim)
            var s = y, l = y
            Kernels.rmsNorm(x: x, weight: w, y: &y, rows: rows, dim: dim, eps: 1e-5)
            Kernels.swiGLU(gate: x, up: w + w + w + w, out: &s, count: rows * dim)
            Kernels.logSoftmax(x: x, y: &l, rows: rows, n: dim)
            var badR = 0, badS = 0, badL = 0
            for r in 0..<rows {
                let row = (0..<dim).map { Double(x[r * dim + $0]) }
                let ss = row.reduce(0) { $0 + $1 * $1 }
                let scale = 1 / (ss / Double(dim) + 1e-5).squareRoot()
                let m = row.max()!
                let lz = reflog(row.reduce(0) { $0 + refexp($1 - m) })
                for i in 0..<dim {
                    let e = row[i] * scale * Double(w[i])
                    if abs(Double(y[r * dim + i]) - e) > (Double(dim) / 16 + 10) * u * abs(e) { badR += 1 }
                    let g = row[i]
                    let se = g / (1 + refexp(-g)) * Double(w[i])
                    if abs(Double(s[r * dim + i]) - se) > 8 * u * abs(se) + 1e-30 { badS += 1 }
                    let le = (row[i] - m) - lz
                    if abs(Double(l[r * dim + i]) - le) > 16 * u * (1 + abs(le)) { badL += 1 }
                }
            }
            #expect(badR == 0 && badS == 0 && badL == 0, "rmsnorm \(badR), swiglu \(badS), log-softmax \(badL) outside")
        }

        @Test("Float to half rounds to nearest even (as Swift's Float16) and half to Float is exact")
        func halfConversion() {
            var rng = SeededRandom(14)
            var xs: [Float] = [0, -0, 65504, 65519.99, 65520, 1e6, -1e6, 0x1p-24, 0x1p-25, 0x1.0001p-25, 0x1p-26, 0x1.8p-24,
                               6.1e-5, .infinity, -.infinity, 1 + 0x1p-11, 1 + 0x1p-11 + 0x1p-23, 1 + 3 * 0x1p-11]
            xs += rng.floats(5000, -70000, 70000) + rng.floats(5000, -1e-4, 1e-4)
            xs += (0..<5000).map { _ in Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng)) }
            var bad = 0
            for x in xs where !x.isNaN {
                if Kernels.halfBits(x) != Float16(x).bitPattern { bad += 1 }
            }
            #expect(bad == 0, "\(bad) conversions differ from Float16")
            for h in UInt16.min...UInt16.max where !Float16(bitPattern: h).isNaN {
                if Kernels.float(halfBits: h) != Float(Float16(bitPattern: h)) { bad += 1 }
            }
            #expect(bad == 0)
            #expect(Kernels.float(halfBits: 0x7e01).isNaN)
        }

        @Test("Work split by rows over the pool (RoPE, the residual add, KV writes, Q4's scaled x): 300 rows on 1, 2, 3 and 8 threads give the bits of one thread")
        func elementWiseSplit() throws {
            let hd = 64, heads = 9, rows = 300
            let table = RopeTable(maxPositions: 400, headDim: hd, theta: 10000)
            var rng = SeededRandom(16)
            let x = rng.floats(rows * heads * hd), y = rng.floats(rows * heads * hd)
            let pos = (0..<rows).map { Int32($0 + 50) }
            let w = try pack(.q4_1, k: heads * hd, n: 70, randomWeights(.q4_1, k: heads * hd, n: 70, &rng))
            func run() -> [Float] {
                var rotated = x, sum = x
                Kernels.rope(x: &rotated, rows: rows, heads: heads, positions: pos, table: table)
                Kernels.add(&sum, y, count: sum.count)
                let mem = makeMemory(.f16, blockSize: 16, blocks: (rows + 15) / 16)
                let kv = Array(x[0..<(rows * 3 * 64)]), tableRows = (0..<Int32((rows + 15) / 16)).map { $0 }
                mem.write(layer: 1, k: kv, v: kv.reversed(), rows: rows, blockTables: tableRows,
                          tableOffsets: [Int32](repeating: 0, count: rows), positions: (0..<Int32(rows)).map { $0 })
                let kvFloats = (0..<mem.blockCount).flatMap { b in
                    UnsafeRawBufferPointer(mem.block(b)).bindMemory(to: Float.self).map { $0 } // f16 pairs, compared as bits
                }
                return rotated + sum + kvFloats + runLinear(x, rows: rows, w)
            }
            let one = withConfig(isa: KernelConfig.isa, threads: 1, run)
            // The residual add is one rounding per element: x + y itself.
            let plainSum = zip(x, y).map { $0 + $1 }
            expectSameBits(Array(one[(x.count)..<(2 * x.count)]), plainSum, "add")
            for threads in [2, 3, 8] {
                expectSameBits(withConfig(isa: KernelConfig.isa, threads: threads, run), one, "threads \(threads)")
            }
        }

        @Test("RoPE in NEOX style rotates pairs (i, i + d/2) with the Double-computed table")
        func ropeNeox() {
            let hd = 64, heads = 3, rows = 2
            let table = RopeTable(maxPositions: 100, headDim: hd, theta: 1_000_000)
            var rng = SeededRandom(16)
            let x = rng.floats(rows * heads * hd)
            var y = x
            let pos: [Int32] = [3, 99]
            Kernels.rope(x: &y, rows: rows, heads: heads, positions: pos, table: table, style: .neox)
            for r in 0..<rows {
                for h in 0..<heads {
                    for i in 0..<(hd / 2) {
                        let angle = Double(pos[r]) / refpow(1_000_000, 2 * Double(i) / Double(hd))
                        let c = Float(refcos(angle)), s = Float(refsin(angle))
                        let at = (r * heads + h) * hd + i
                        let x0 = x[at], x1 = x[at + hd / 2]
                        let a = x0 * c - x1 * s
                        let b = x0 * s + x1 * c
                        #expect(y[at].bitPattern == a.bitPattern && y[at + hd / 2].bitPattern == b.bitPattern)
                    }
                }
            }
        }

        @Test("GeGLU (GELU, tanh form): every path gives the portable bits, 1 and 3 threads, and within 8 u (1 + |x|^3 u-terms) of Double")
        func geglu() {
            var rng = SeededRandom(17)
            let n = 20_000 + 13
            let edges: [Float] = [-200, 200, 0, -0.0, 1e-30, .infinity, -.infinity]
            var gate = rng.floats(n, -12, 12)
            for i in stride(from: 0, to: n, by: 97) { gate[i] = edges[i / 97 % edges.count] }
            let up = rng.floats(n, -2, 2)
            func run() -> [Float] {
                var out = [Float](repeating: .nan, count: n)
                Kernels.geGLU(gate: gate, up: up, out: &out, count: n)
                return out
            }
            let ref = withConfig(isa: .portable, threads: 1) { run() }
            for isa in KernelConfig.supportedISAs {
                for t in [1, 3] { expectSameBits(withConfig(isa: isa, threads: t) { run() }, ref, "\(isa) threads \(t)") }
            }
            var bad = 0
            for i in 0..<n where gate[i].isFinite {
                let g = Double(gate[i])
                let want = 0.5 * g * (1 + tanh(0.7978845608028654 * (g + 0.044715 * g * g * g))) * Double(up[i])
                // exp's argument carries a few u relative to the cubic's size: the bound follows it.
                let argument = 1.5957691216057308 * (abs(g) + 0.044715 * abs(g * g * g))
                if abs(Double(ref[i]) - want) > 8 * 0x1p-24 * (1 + argument) * abs(g * Double(up[i])) + 1e-40 { bad += 1 }
            }
            #expect(bad == 0, "\(bad) outputs outside the bound")
            #expect(ref[97 * 5] == Float.infinity * up[97 * 5], "gelu(+inf) is +inf")
        }

        @Test("RoPE rotates adjacent pairs with the Double-computed table")
        func rope() {
            let hd = 64, heads = 3, rows = 2
            let table = RopeTable(maxPositions: 100, headDim: hd, theta: 10000)
            var rng = SeededRandom(15)
            let x = rng.floats(rows * heads * hd)
            var y = x
            let pos: [Int32] = [0, 57]
            Kernels.rope(x: &y, rows: rows, heads: heads, positions: pos, table: table)
            for r in 0..<rows {
                for h in 0..<heads {
                    for i in 0..<(hd / 2) {
                        let angle = Double(pos[r]) / refpow(10000, 2 * Double(i) / Double(hd))
                        let c = Float(refcos(angle)), s = Float(refsin(angle))
                        let at = (r * heads + h) * hd + 2 * i
                        let x0 = x[at], x1 = x[at + 1]
                        let a = x0 * c - x1 * s  // separate multiplies and adds, as the contract says
                        let b = x0 * s + x1 * c
                        #expect(y[at].bitPattern == a.bitPattern && y[at + 1].bitPattern == b.bitPattern)
                    }
                }
            }
        }
    }
}

// Double references from the C library (tests only; the kernels never use libm for exp/log).
func refexp(_ x: Double) -> Double { exp(x) }
func reflog(_ x: Double) -> Double { log(x) }
func refpow(_ x: Double, _ y: Double) -> Double { pow(x, y) }
func refcos(_ x: Double) -> Double { cos(x) }
func refsin(_ x: Double) -> Double { sin(x) }
