/// Encoders for the supported tensor types, used to build model files (tests, tiny models).
/// They need not match any other tool's rounding: `Dequantize` defines what the bytes mean.
public enum Quantize {
    /// Encodes `values` (a whole number of blocks) as `type`, little-endian.
    public static func encode(_ values: [Float], as type: GGMLType) -> [UInt8] {
        precondition(type.isSupported, "cannot encode \(type)")
        precondition(values.count % type.blockSize == 0, "values must fill whole blocks")
        var out: [UInt8] = []
        out.reserveCapacity(values.count / type.blockSize * type.blockBytes)
        func put16(_ v: UInt16) { out.append(UInt8(v & 0xFF)); out.append(UInt8(v >> 8)) }
        func half(_ x: Float) -> UInt16 { Float16(x).bitPattern }
        switch type {
        case .f32:
            for v in values { let b = v.bitPattern; for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8((b >> UInt32(s)) & 0xFF)) } }
        case .f16:
            for v in values { put16(half(v)) }
        case .bf16:
            // round to nearest even on the upper 16 bits (finite inputs)
            for v in values {
                let b = v.bitPattern
                put16(UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16))
            }
        case .q8_0:
            for block in stride(from: 0, to: values.count, by: 32) {
                let xs = values[block..<block + 32]
                let amax = xs.map(abs).max() ?? 0
                let d = Float(Float16(amax / 127))
                put16(half(d))
                for x in xs {
                    let q = d == 0 ? 0 : max(-127, min(127, (x / d).rounded()))
                    out.append(UInt8(bitPattern: Int8(q)))
                }
            }
        case .q4_0:
            for block in stride(from: 0, to: values.count, by: 32) {
                let xs = Array(values[block..<block + 32])
                let amax = xs.map(abs).max() ?? 0
                let d = Float(Float16(amax / 7))
                put16(half(d))
                let q = xs.map { d == 0 ? 8 : UInt8(max(0, min(15, ($0 / d).rounded() + 8))) }
                for j in 0..<16 { out.append(q[j] | (q[j + 16] << 4)) }
            }
        case .q4_1:
            for block in stride(from: 0, to: values.count, by: 32) {
                let xs = Array(values[block..<block + 32])
                let lo = xs.min() ?? 0, hi = xs.max() ?? 0
                let d = Float(Float16((hi - lo) / 15))
                let m = Float(Float16(lo))
                put16(half(d)); put16(half(m))
                let q = xs.map { d == 0 ? 0 : UInt8(max(0, min(15, (($0 - m) / d).rounded()))) }
                for j in 0..<16 { out.append(q[j] | (q[j + 16] << 4)) }
            }
        case .q5_0, .q5_1:
            // f16 d, [f16 m,] u32 qh (bit j: bit 4 of value j), qs[16] (value j low nibble, j + 16 high)
            for block in stride(from: 0, to: values.count, by: 32) {
                let xs = Array(values[block..<block + 32])
                let q: [Int]
                if type == .q5_0 {
                    let d = Float(Float16((xs.map(abs).max() ?? 0) / 15))
                    put16(half(d))
                    q = xs.map { d == 0 ? 16 : Int(max(0, min(31, ($0 / d).rounded() + 16))) }
                } else {
                    let lo = xs.min() ?? 0, hi = xs.max() ?? 0
                    let d = Float(Float16((hi - lo) / 31)), m = Float(Float16(lo))
                    put16(half(d)); put16(half(m))
                    q = xs.map { d == 0 ? 0 : Int(max(0, min(31, (($0 - m) / d).rounded()))) }
                }
                let qh = (0..<32).reduce(UInt32(0)) { $0 | UInt32(q[$1] >> 4) << UInt32($1) }
                for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: qh >> UInt32(s))) }
                for j in 0..<16 { out.append(UInt8(q[j] & 15) | UInt8(q[j + 16] & 15) << 4) }
            }
        case .q4_K, .q5_K:
            // f16 d, f16 dmin, scales[12] (8 six-bit scales and mins), [qh[32],] qs[128];
            // value = d sc q - dmin m per 32-value sub-block, q < 16 (Q5_K: < 32)
            let levels: Float = type == .q4_K ? 15 : 31
            for block in stride(from: 0, to: values.count, by: 256) {
                let xs = Array(values[block..<block + 256])
                let subs = (0..<8).map { Array(xs[(32 * $0)..<(32 * $0 + 32)]) }
                let mins = subs.map { -min(0, $0.min() ?? 0) }                         // m >= 0
                let steps = subs.enumerated().map { ((($1.max() ?? 0) + mins[$0]) / levels) }
                let d = Float(Float16((steps.max() ?? 0) / 63)), dmin = Float(Float16((mins.max() ?? 0) / 63))
                let sc = steps.map { d == 0 ? 0 : Int(max(0, min(63, ($0 / d).rounded(.up)))) }
                let mn = mins.map { dmin == 0 ? 0 : Int(max(0, min(63, ($0 / dmin).rounded()))) }
                put16(half(d)); put16(half(dmin))
                var scales = [UInt8](repeating: 0, count: 12)
                for j in 0..<8 {
                    if j < 4 {
                        scales[j] = UInt8(sc[j]); scales[j + 4] = UInt8(mn[j])
                    } else {
                        scales[j + 4] = UInt8(sc[j] & 15) | UInt8(mn[j] & 15) << 4
                        scales[j - 4] |= UInt8(sc[j] >> 4) << 6
                        scales[j] |= UInt8(mn[j] >> 4) << 6
                    }
                }
                out += scales
                var q = [Int](repeating: 0, count: 256)
                for j in 0..<8 {
                    let step = d * Float(sc[j]), offset = dmin * Float(mn[j])
                    for l in 0..<32 {
                        q[32 * j + l] = step == 0 ? 0 : Int(max(0, min(levels, ((subs[j][l] + offset) / step).rounded())))
                    }
                }
                if type == .q5_K {
                    for l in 0..<32 { out.append((0..<8).reduce(UInt8(0)) { $0 | UInt8(q[32 * $1 + l] >> 4) << UInt8($1) }) }
                }
                for c in 0..<4 {
                    for l in 0..<32 { out.append(UInt8(q[64 * c + l] & 15) | UInt8(q[64 * c + 32 + l] & 15) << 4) }
                }
            }
        case .q6_K:
            // ql[128] (low 4 bits), qh[64] (high 2 bits), int8 scales[16], f16 d;
            // value = d sc (q - 32) per 16-value sub-block
            for block in stride(from: 0, to: values.count, by: 256) {
                let xs = Array(values[block..<block + 256])
                let steps = (0..<16).map { i in (xs[(16 * i)..<(16 * i + 16)].map(abs).max() ?? 0) / 31 }
                let d = Float(Float16((steps.max() ?? 0) / 127))
                let sc = steps.map { d == 0 ? 0 : Int(max(0, min(127, ($0 / d).rounded(.up)))) }
                let q = (0..<256).map { i in
                    let step = d * Float(sc[i / 16])
                    return step == 0 ? 32 : Int(max(0, min(63, (xs[i] / step).rounded() + 32)))
                }
                var ql = [UInt8](repeating: 0, count: 128), qh = [UInt8](repeating: 0, count: 64)
                for n in 0..<2 {
                    for l in 0..<32 {
                        let (q1, q2, q3, q4) = (q[128 * n + l], q[128 * n + 32 + l], q[128 * n + 64 + l], q[128 * n + 96 + l])
                        ql[64 * n + l] = UInt8(q1 & 15) | UInt8(q3 & 15) << 4
                        ql[64 * n + 32 + l] = UInt8(q2 & 15) | UInt8(q4 & 15) << 4
                        qh[32 * n + l] = UInt8(q1 >> 4) | UInt8(q2 >> 4) << 2 | UInt8(q3 >> 4) << 4 | UInt8(q4 >> 4) << 6
                    }
                }
                out += ql; out += qh
                out += sc.map { UInt8(bitPattern: Int8($0)) }
                put16(half(d))
            }
        default:
            preconditionFailure("unreachable")
        }
        return out
    }
}
