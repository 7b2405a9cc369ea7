// No subnormal operand and no underflow inside the kernels, whatever the weights:
// on Intel cores either one costs a microcode assist per instruction (numerics
// profile 3 read Q4 nibbles as subnormal floats and ran 17x slower there). The
// kernels collect the x86 MXCSR flags DE and UE from every thread that runs
// their items (KernelConfig.takeSubnormalEvents); these tests require them empty.
import Testing
@testable import VerbatimKernels
import CVerbatimKernels

/// Weights that hold every awkward value a GGUF file may: subnormal F32 and BF16
/// weights, subnormal f16 values and scales, every nibble and every int8.
func hostileWeights(_ type: WeightType, k: Int, n: Int, _ rng: inout SeededRandom) -> [UInt8] {
    var raw = randomWeights(type, k: k, n: n, &rng)
    func putHalf(_ at: Int, _ bits: UInt16) { raw[at] = UInt8(bits & 0xff); raw[at + 1] = UInt8(bits >> 8) }
    func subnormalHalf() -> UInt16 { UInt16.random(in: 1...0x3ff, using: &rng) | (Bool.random(using: &rng) ? 0x8000 : 0) }
    switch type {
    case .f32:
        for i in stride(from: 0, to: raw.count, by: 12) { // every third weight
            let bits = UInt32.random(in: 1...0x7f_ffff, using: &rng) | (Bool.random(using: &rng) ? 0x8000_0000 : 0)
            for b in 0..<4 { raw[i + b] = UInt8(truncatingIfNeeded: bits >> (8 * b)) }
        }
    case .bf16:
        for i in stride(from: 0, to: raw.count, by: 6) { putHalf(i, UInt16.random(in: 1...0x7f, using: &rng) | (Bool.random(using: &rng) ? 0x8000 : 0)) }
    case .f16:
        for i in stride(from: 0, to: raw.count, by: 6) { putHalf(i, subnormalHalf()) }
    case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K:
        let bb = type.rowBytes(k: type.blockSize)
        for blk in stride(from: 0, to: raw.count, by: bb) where (blk / bb) % 2 == 0 {
            putHalf(blk, subnormalHalf())                                   // d
            if [.q4_1, .q5_1, .q4_K, .q5_K].contains(type) { putHalf(blk + 2, subnormalHalf()) } // m, dmin
        }
    case .q6_K:
        let bb = type.rowBytes(k: 256)
        for blk in stride(from: 0, to: raw.count, by: bb) where (blk / bb) % 2 == 0 {
            putHalf(blk + 208, subnormalHalf())                             // d
        }
    }
    return raw
}

/// Runs `body` after clearing the events, and returns the events it raised.
func subnormalEvents(_ body: () throws -> Void) rethrows -> SubnormalEvents {
    _ = KernelConfig.takeSubnormalEvents()
    try body()
    return KernelConfig.takeSubnormalEvents()
}

extension KernelTests {
    @Suite("No subnormals in the kernels")
    struct SubnormalTests {
        /// False on a CPU without x86's MXCSR, where nothing can be observed.
        static let observable = vk_test_fp_control() != 0

        @Test("The detection works: subnormal inputs raise the events, on the caller and on pool workers")
        func detectionWorks() throws {
            guard Self.observable else { return }
            let dim = 64
            let tiny = [Float](repeating: .leastNonzeroMagnitude * 3, count: 4 * dim)
            var y = [Float](repeating: 0, count: 4 * dim)
            for isa in KernelConfig.supportedISAs {
                let events = withConfig(isa: isa, threads: 1) {
                    subnormalEvents { Kernels.rmsNorm(x: tiny, weight: [Float](repeating: 1, count: dim), y: &y, rows: 4, dim: dim, eps: 1e-5) }
                }
                #expect(events.contains(.subnormalOperand), "rmsNorm of subnormal x on \(isa): \(events)")
            }
            // Many items over 4 threads: most run on workers, and their flags must arrive too.
            var rng = SeededRandom(40)
            let (m, k, n) = (96, 64, 512)
            let w = try pack(.f32, k: k, n: n, randomWeights(.f32, k: k, n: n, &rng))
            let x = (0..<(m * k)).map { _ in Float.leastNonzeroMagnitude * Float(Int.random(in: 1...100, using: &rng)) }
            for isa in KernelConfig.supportedISAs {
                let events = withConfig(isa: isa, threads: 4) { subnormalEvents { _ = runLinear(x, rows: m, w) } }
                #expect(events.contains(.subnormalOperand), "linear of subnormal x on \(isa), 4 threads: \(events)")
            }
        }

        @Test("Linear, every weight type, path and tile (M = 1, 5, 64), 1 and 3 threads: no subnormal event whatever the weights",
              arguments: WeightType.allCases)
        func linearNeverSubnormal(type: WeightType) throws {
            guard Self.observable else { return }
            var rng = SeededRandom(41)
            let (k, n) = (type.blockSize == 256 ? 512 : 160, 200)
            let w = try pack(type, k: k, n: n, hostileWeights(type, k: k, n: n, &rng))
            for m in [1, 5, 64] {
                let x = rng.floats(m * k)
                for isa in KernelConfig.supportedISAs {
                    for threads in [1, 3] {
                        let events = withConfig(isa: isa, threads: threads) { subnormalEvents { _ = runLinear(x, rows: m, w) } }
                        #expect(events.isEmpty, "\(type) M=\(m) \(isa) threads=\(threads): \(events)")
                    }
                }
            }
        }

        @Test("The nibble types (Q4, Q5, K-quants) with tiny activations (about 2^-110): the scaled x is never smaller than x, so no subnormal event")
        func q4TinyActivations() throws {
            guard Self.observable else { return }
            var rng = SeededRandom(44)
            let (m, k, n) = (5, 256, 200)
            let x = (0..<(m * k)).map { _ in rng.float(0.5, 1) * 0x1p-110 } // positive: block sums do not cancel
            for type in [WeightType.q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K] {
                let w = try pack(type, k: k, n: n, randomWeights(type, k: k, n: n, &rng))
                for isa in KernelConfig.supportedISAs {
                    for rows in [1, m] {
                        let events = withConfig(isa: isa, threads: 2) { subnormalEvents { _ = runLinear(Array(x[0..<(rows * k)]), rows: rows, w) } }
                        #expect(events.isEmpty, "\(type) \(isa) rows=\(rows): \(events)")
                    }
                }
            }
        }

        @Test("Subnormal F32 and BF16 weights count as zero with their sign (numerics profile 4)")
        func subnormalWeightsAreZero() throws {
            var rng = SeededRandom(42)
            let (m, k, n) = (3, 64, 40)
            let x = rng.floats(m * k)
            for type in [WeightType.f32, .bf16] {
                var raw = [UInt8](repeating: 0, count: n * type.rowBytes(k: k))
                let es = type == .f32 ? 4 : 2
                for i in stride(from: 0, to: raw.count, by: es) { // every weight subnormal, either sign
                    raw[i] = UInt8.random(in: 1...127, using: &rng) // below bit 7: bit 7 of BF16's low byte is an exponent bit
                    raw[i + es - 1] = Bool.random(using: &rng) ? 0x80 : 0x00
                }
                let w = try pack(type, k: k, n: n, raw)
                for isa in KernelConfig.supportedISAs {
                    let y = withConfig(isa: isa) { runLinear(x, rows: m, w) }
                    #expect(y.allSatisfy { $0 == 0 }, "\(type) \(isa): \(y.filter { $0 != 0 }.count) outputs are not zero")
                }
            }
        }

        @Test("RMSNorm, SwiGLU, log-softmax over a 200-wide range, exp down to -200, attention with peaked scores: no subnormal event")
        func rowKernelsNeverSubnormal() {
            guard Self.observable else { return }
            var rng = SeededRandom(43)
            let dim = 576, rows = 3
            let x = rng.floats(rows * dim, -4, 4), weight = rng.floats(dim)
            let logits = rng.floats(rows * dim, -170, 30)
            let wide = rng.floats(4096, -200, 88)
            var y = [Float](repeating: 0, count: rows * dim)
            for isa in KernelConfig.supportedISAs {
                for threads in [1, 3] {
                    let events = withConfig(isa: isa, threads: threads) {
                        subnormalEvents {
                            Kernels.rmsNorm(x: x, weight: weight, y: &y, rows: rows, dim: dim, eps: 1e-5)
                            Kernels.swiGLU(gate: x.map { $0 * 5 }, up: x, out: &y, count: rows * dim)
                            Kernels.logSoftmax(x: logits, y: &y, rows: rows, n: dim)
                            _ = mapArray(wide) { Kernels.exp($0, $1, count: $2) }
                        }
                    }
                    #expect(events.isEmpty, "row kernels \(isa) threads=\(threads): \(events)")
                }
            }
            // Attention whose scores spread far beyond exp's range: most weights are exactly 0.
            for type in [KVType.f32, .f16] {
                let n = 200
                let data = [SeqData(length: n, kvWidth: 3 * 64, qWidth: 9 * 64, &rng)]
                var peaked = data
                peaked[0].q = data[0].q.map { row in row.map { $0 * 100 } }
                for isa in KernelConfig.supportedISAs {
                    for threads in [1, 3] {
                        let events = withConfig(isa: isa, threads: threads) {
                            subnormalEvents {
                                var b = Batch(tables: [(0..<((n + 15) / 16)).map { Int32($0) }])
                                b.rows = (0..<n).map { (0, $0) }
                                _ = b.run(makeMemory(type, blockSize: 16, blocks: (n + 15) / 16), layer: 0, peaked)
                            }
                        }
                        #expect(events.isEmpty, "attention \(type) \(isa) threads=\(threads): \(events)")
                    }
                }
            }
        }

        @Test("exp is 0 below -87.33 and a normal number from there up: never subnormal, on every path")
        func expNeverSubnormal() {
            // Every float from -87.5 to -86.5, then a coarse sweep of the whole negative range.
            var xs: [Float] = []
            var v: Float = -87.5
            while v < -86.5 { xs.append(v); v = v.nextUp }
            xs += stride(from: Float(-300), to: 0, by: 0.37).map { $0 }
            for isa in KernelConfig.supportedISAs {
                let e = withConfig(isa: isa) { mapArray(xs) { Kernels.exp($0, $1, count: $2) } }
                let bad = zip(xs, e).filter { x, y in y.isSubnormal || (x < -87.33 ? y != 0 : y < .leastNormalMagnitude) }
                #expect(bad.isEmpty, "\(isa): \(bad.count) inputs, first \(bad.first.map { "exp(\($0.0)) = \($0.1)" } ?? "")")
            }
        }
    }
}
