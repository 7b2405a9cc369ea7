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
        default:
            preconditionFailure("unreachable")
        }
        return out
    }
}
