/// Exact decoders of the 5-bit, K-quant and IQ4 block formats: Q5_0, Q5_1, the K-quants
/// Q2_K…Q6_K, IQ4_NL and IQ4_XS (the kernels compute with Q5_0, Q5_1, Q4_K, Q5_K and Q6_K
/// directly; these decoders are the reference they are tested against). Each gives the floats ggml's own
/// dequantisation gives, bit for bit: the same float32 operations in the same order, never
/// fused (the tests compare with gguf-py's `dequantize` on real tensors and random blocks).
/// The layouts are ggml's block structs; each case below states its block's fields in order.
extension Dequantize {
    /// The 16 values an IQ4 nibble indexes (ggml's non-linear 4-bit grid).
    static let iq4Values: [Float] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

    /// One block of `type` at `block` into `out` (`type.blockSize` floats).
    static func decodeBlock(_ type: GGMLType, _ block: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        func byte(_ at: Int) -> UInt8 { block.load(fromByteOffset: at, as: UInt8.self) }
        func f16(_ at: Int) -> Float { half(UInt16(littleEndian: block.loadUnaligned(fromByteOffset: at, as: UInt16.self))) }
        switch type {
        case .q5_0, .q5_1:
            // f16 d, [f16 m,] u32 qh (bit j: fifth bit of value j), u8 qs[16] (value j low nibble, j+16 high)
            let q51 = type == .q5_1
            let d = f16(0), m: Float = q51 ? f16(2) : 0
            let at = q51 ? 4 : 2
            let qh = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: at, as: UInt32.self))
            for j in 0..<16 {
                let q = byte(at + 4 + j)
                let lo = Int(q & 0x0F) | Int((qh >> UInt32(j)) << 4 & 0x10)
                let hi = Int(q >> 4) | Int((qh >> UInt32(j + 12)) & 0x10)
                if q51 {
                    out[j] = Float(lo) * d + m
                    out[j + 16] = Float(hi) * d + m
                } else {
                    out[j] = Float(lo - 16) * d
                    out[j + 16] = Float(hi - 16) * d
                }
            }
        case .q4_K, .q5_K:
            // f16 d, f16 dmin, scales[12] (8 six-bit scales and mins), [qh[32],] qs[128]
            let d = f16(0), dmin = f16(2)
            let q5 = type == .q5_K
            let qs = q5 ? 48 : 16, qh = 16
            for c in 0..<4 { // 64 values: sub-blocks 2c (low nibbles) and 2c + 1 (high nibbles)
                let (sc1, m1) = scaleMinK4(2 * c, block + 4), (sc2, m2) = scaleMinK4(2 * c + 1, block + 4)
                let d1 = d * Float(sc1), dm1 = dmin * Float(m1)
                let d2 = d * Float(sc2), dm2 = dmin * Float(m2)
                for l in 0..<32 {
                    let q = byte(qs + 32 * c + l)
                    var lo = Int(q & 0x0F), hi = Int(q >> 4)
                    if q5 {
                        let h = byte(qh + l)
                        if h & (1 << (2 * c)) != 0 { lo += 16 }
                        if h & (2 << (2 * c)) != 0 { hi += 16 }
                    }
                    out[64 * c + l] = d1 * Float(lo) - dm1
                    out[64 * c + 32 + l] = d2 * Float(hi) - dm2
                }
            }
        case .q6_K:
            // ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], f16 d
            let d = f16(208)
            for n in 0..<2 { // 128 values per half
                let ql = 64 * n, qh = 128 + 32 * n, sc = 192 + 8 * n
                for l in 0..<32 {
                    let isc = l / 16
                    let h = Int(byte(qh + l))
                    let q1 = (Int(byte(ql + l) & 0x0F) | (h & 3) << 4) - 32
                    let q2 = (Int(byte(ql + l + 32) & 0x0F) | (h >> 2 & 3) << 4) - 32
                    let q3 = (Int(byte(ql + l) >> 4) | (h >> 4 & 3) << 4) - 32
                    let q4 = (Int(byte(ql + l + 32) >> 4) | (h >> 6 & 3) << 4) - 32
                    func scale(_ i: Int) -> Float { Float(Int8(bitPattern: byte(sc + i))) }
                    out[128 * n + l] = d * scale(isc) * Float(q1)
                    out[128 * n + l + 32] = d * scale(isc + 2) * Float(q2)
                    out[128 * n + l + 64] = d * scale(isc + 4) * Float(q3)
                    out[128 * n + l + 96] = d * scale(isc + 6) * Float(q4)
                }
            }
        case .q2_K:
            // scales[16] (low nibble scale, high nibble min), qs[64] (2 bits a value), f16 d, f16 dmin
            let d = f16(80), dmin = f16(82)
            var y = 0, sub = 0
            for n in 0..<2 { // 128 values: 32 bytes of qs, four 2-bit planes
                for shift in stride(from: 0, to: 8, by: 2) {
                    for half in 0..<2 { // 16 values each, a scale each
                        let sc = byte(sub); sub += 1
                        let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                        for l in 0..<16 {
                            let q = Int(byte(16 + 32 * n + 16 * half + l) >> UInt8(shift) & 3)
                            out[y] = dl * Float(q) - ml
                            y += 1
                        }
                    }
                }
            }
        case .q3_K:
            // hmask[32] (third bit, inverted), qs[64] (2 bits a value), scales[12] (16 six-bit), f16 d
            let d = f16(108)
            let scales = q3KScales(block + 96)
            var y = 0, sub = 0
            var mask: UInt8 = 1
            for n in 0..<2 {
                for shift in stride(from: 0, to: 8, by: 2) {
                    for half in 0..<2 {
                        let dl = d * Float(scales[sub] - 32); sub += 1
                        for l in 0..<16 {
                            let i = 16 * half + l
                            let low = Int(byte(32 + 32 * n + i) >> UInt8(shift) & 3)
                            let q = low - (byte(i) & mask != 0 ? 0 : 4)
                            out[y] = dl * Float(q)
                            y += 1
                        }
                    }
                    mask <<= 1
                }
            }
        case .iq4_nl:
            // f16 d, qs[16]: value j is table[low nibble of qs[j]], j + 16 table[high nibble]
            let d = f16(0)
            for j in 0..<16 {
                let q = byte(2 + j)
                out[j] = d * iq4Values[Int(q & 0x0F)]
                out[j + 16] = d * iq4Values[Int(q >> 4)]
            }
        case .iq4_xs:
            // f16 d, u16 scales_h, u8 scales_l[4], qs[128]: 8 sub-blocks of 32 as IQ4_NL, six-bit scales
            let d = f16(0)
            let scalesH = Int(UInt16(littleEndian: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            for ib in 0..<8 {
                let low = Int(byte(4 + ib / 2) >> UInt8(4 * (ib % 2)) & 0x0F)
                let ls = low | (scalesH >> (2 * ib) & 3) << 4
                let dl = d * Float(ls - 32)
                for j in 0..<16 {
                    let q = byte(8 + 16 * ib + j)
                    out[32 * ib + j] = dl * iq4Values[Int(q & 0x0F)]
                    out[32 * ib + j + 16] = dl * iq4Values[Int(q >> 4)]
                }
            }
        default:
            preconditionFailure("decodeBlock: \(type) is decoded elsewhere")
        }
    }

    /// Scale and min of sub-block j (0..7) from the 12 packed bytes of a Q4_K/Q5_K block.
    static func scaleMinK4(_ j: Int, _ s: UnsafeRawPointer) -> (Int, Int) {
        func b(_ i: Int) -> Int { Int(s.load(fromByteOffset: i, as: UInt8.self)) }
        if j < 4 { return (b(j) & 63, b(j + 4) & 63) }
        return ((b(j + 4) & 0x0F) | (b(j - 4) >> 6) << 4, (b(j + 4) >> 4) | (b(j) >> 6) << 4)
    }

    /// The 16 six-bit scales of a Q3_K block (unsigned; the value is scale - 32), from its 12
    /// bytes: scale i has its low 4 bits in byte i % 8 (low nibble for i < 8, high for i >= 8)
    /// and its high 2 bits in byte 8 + i % 4, at bit 2 * (i / 4).
    static func q3KScales(_ s: UnsafeRawPointer) -> [Int] {
        func b(_ i: Int) -> Int { Int(s.load(fromByteOffset: i, as: UInt8.self)) }
        return (0..<16).map { i in
            let low = i < 8 ? b(i) & 0x0F : b(i - 8) >> 4
            let high = b(8 + i % 4) >> (2 * (i / 4)) & 3
            return low | high << 4
        }
    }
}
