// Helpers shared by the kernel tests: a seeded generator, random weights in
// every ggml format, a reference decoder of those formats, and bitwise checks.
import Testing
@testable import VerbatimKernels

/// All kernel suites run one test at a time: they switch the process-wide
/// path and thread count.
@Suite("Kernels", .serialized) struct KernelTests {}

/// SplitMix64: a seeded generator so every test run sees the same data.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func float(_ lo: Float = -1, _ hi: Float = 1) -> Float { Float.random(in: lo..<hi, using: &self) }
    mutating func floats(_ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] { (0..<n).map { _ in float(lo, hi) } }
}

/// Bitwise equality; on mismatch, how many elements differ and the first one.
func expectSameBits(
    _ a: [Float], _ b: [Float], _ what: @autoclosure () -> String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(a.count == b.count, "\(what()): counts \(a.count) vs \(b.count)", sourceLocation: sourceLocation)
    var differ = 0
    var first = -1
    for i in 0..<min(a.count, b.count) where a[i].bitPattern != b[i].bitPattern {
        differ += 1
        if first < 0 { first = i }
    }
    if differ > 0 {
        Issue.record(
            "\(what()): \(differ) of \(a.count) elements differ, first at \(first): \(a[first]) vs \(b[first])",
            sourceLocation: sourceLocation)
    }
}

/// Runs `body` with the given path and thread count, then restores the defaults.
func withConfig<T>(isa: KernelISA, threads: Int? = nil, _ body: () throws -> T) rethrows -> T {
    let oldISA = KernelConfig.isa
    let oldThreads = KernelConfig.threads
    KernelConfig.setISA(isa)
    if let threads { KernelConfig.setThreads(threads) }
    defer {
        KernelConfig.setISA(oldISA)
        if threads != nil { KernelConfig.setThreads(oldThreads) }
    }
    return try body()
}

/// The optimised paths this machine can run.
let optimisedISAs = KernelConfig.supportedISAs.filter { $0 != .portable }

/// Random raw ggml bytes for n rows of k values, values of modest size.
func randomWeights(_ type: WeightType, k: Int, n: Int, _ rng: inout SeededRandom) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(n * type.rowBytes(k: k))
    func appendHalf(_ x: Float) {
        let h = Kernels.halfBits(x)
        out.append(UInt8(h & 0xff))
        out.append(UInt8(h >> 8))
    }
    for _ in 0..<n {
        switch type {
        case .f32:
            for _ in 0..<k { withUnsafeBytes(of: rng.float().bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        case .f16:
            for _ in 0..<k { appendHalf(rng.float()) }
        case .bf16:
            for _ in 0..<k {
                let b = rng.float().bitPattern >> 16
                out.append(UInt8(b & 0xff))
                out.append(UInt8(b >> 8))
            }
        case .q8_0:
            for _ in 0..<(k / 32) {
                appendHalf(rng.float(0.001, 0.02))
                for _ in 0..<32 { out.append(UInt8.random(in: 0...255, using: &rng)) }
            }
        case .q4_0, .q4_1, .q5_0, .q5_1:
            for _ in 0..<(k / 32) {
                appendHalf(rng.float(0.01, 0.2))
                if type == .q4_1 || type == .q5_1 { appendHalf(rng.float(-1, 0)) }
                let bytes = type == .q4_0 || type == .q4_1 ? 16 : 20 // [qh (4 bytes),] qs[16]
                for _ in 0..<bytes { out.append(UInt8.random(in: 0...255, using: &rng)) }
            }
        case .q4_K, .q5_K:
            for _ in 0..<(k / 256) {
                appendHalf(rng.float(0.0005, 0.01)) // d
                appendHalf(rng.float(0.0005, 0.02)) // dmin
                for _ in 0..<(type == .q4_K ? 140 : 172) { out.append(UInt8.random(in: 0...255, using: &rng)) }
            }
        case .q6_K:
            for _ in 0..<(k / 256) {
                for _ in 0..<208 { out.append(UInt8.random(in: 0...255, using: &rng)) } // ql, qh, int8 scales
                appendHalf(rng.float(0.0002, 0.002))
            }
        }
    }
    return out
}

/// One ggml block of a 5-bit, K-quant or Q6_K type decoded from the format
/// description alone (ggml's block structs; ggml's operations, unfused): `count`
/// floats (32 or 256) from `raw` at `at`.
func decodeBlock(_ type: WeightType, _ raw: [UInt8], at: Int) -> [Float] {
    func half(_ i: Int) -> Float { Kernels.float(halfBits: UInt16(raw[at + i]) | UInt16(raw[at + i + 1]) << 8) }
    func byte(_ i: Int) -> Int { Int(raw[at + i]) }
    switch type {
    case .q5_0, .q5_1:
        // d, [m,] qh (32 bits, little-endian), qs[16]: value j low nibble of qs[j], j + 16 high; bit 4 from qh bit j
        let m1 = type == .q5_1
        let qh = (0..<4).reduce(0) { $0 | byte((m1 ? 4 : 2) + $1) << (8 * $1) }
        let qs = m1 ? 8 : 6
        return (0..<32).map { j in
            let low = j < 16 ? byte(qs + j) & 15 : byte(qs + j - 16) >> 4
            let q = low | (qh >> j & 1) << 4
            return m1 ? Float(q) * half(0) + half(2) : Float(q - 16) * half(0)
        }
    case .q4_K, .q5_K:
        // d, dmin, 12 bytes of 6-bit scales and mins, [qh[32],] qs[128]
        let qs = type == .q4_K ? 16 : 48
        func scaleMin(_ j: Int) -> (Int, Int) {
            if j < 4 { return (byte(4 + j) & 63, byte(8 + j) & 63) }
            return ((byte(8 + j) & 15) | (byte(j) >> 6) << 4, (byte(8 + j) >> 4) | (byte(4 + j) >> 6) << 4)
        }
        return (0..<256).map { i in
            let sub = i / 32, l = i % 32, c = sub / 2 // 64 values per 32 bytes of qs: low nibbles, then high
            var q = sub % 2 == 0 ? byte(qs + 32 * c + l) & 15 : byte(qs + 32 * c + l) >> 4
            if type == .q5_K { q |= (byte(16 + l) >> sub & 1) << 4 }
            let (sc, m) = scaleMin(sub)
            return (half(0) * Float(sc)) * Float(q) - half(2) * Float(m)
        }
    case .q6_K:
        // ql[128], qh[64], int8 scales[16], d: value 128n + 32t + l
        return (0..<256).map { i in
            let n = i / 128, t = i % 128 / 32, l = i % 32
            let qlByte = byte(64 * n + l + (t % 2 == 1 ? 32 : 0))
            let q4 = t < 2 ? qlByte & 15 : qlByte >> 4
            let q = q4 | (byte(128 + 32 * n + l) >> (2 * t) & 3) << 4
            return half(208) * Float(Int8(truncatingIfNeeded: byte(192 + i / 16))) * Float(q - 32)
        }
    default:
        preconditionFailure("decodeBlock: \(type)")
    }
}

/// Decodes raw ggml bytes straight from the format description (independent
/// of the packing code): n rows of k floats.
func decodeWeights(_ type: WeightType, k: Int, n: Int, _ raw: [UInt8]) -> [Float] {
    func half(_ at: Int) -> Float { Kernels.float(halfBits: UInt16(raw[at]) | UInt16(raw[at + 1]) << 8) }
    var w = [Float](repeating: 0, count: n * k)
    let rb = type.rowBytes(k: k)
    for row in 0..<n {
        let base = row * rb
        for kk in 0..<k {
            let v: Float
            switch type {
            case .f32:
                let b = (0..<4).reduce(UInt32(0)) { $0 | UInt32(raw[base + kk * 4 + $1]) << (8 * $1) }
                v = Float(bitPattern: b)
            case .f16: v = half(base + kk * 2)
            case .bf16: v = Float(bitPattern: (UInt32(raw[base + kk * 2]) | UInt32(raw[base + kk * 2 + 1]) << 8) << 16)
            case .q8_0:
                let blk = base + (kk / 32) * 34
                v = half(blk) * Float(Int8(bitPattern: raw[blk + 2 + kk % 32]))
            case .q4_0:
                let blk = base + (kk / 32) * 18
                let j = kk % 32
                let q = j < 16 ? raw[blk + 2 + j] & 15 : raw[blk + 2 + j - 16] >> 4
                v = half(blk) * Float(Int(q) - 8)
            case .q4_1:
                let blk = base + (kk / 32) * 20
                let j = kk % 32
                let q = j < 16 ? raw[blk + 4 + j] & 15 : raw[blk + 4 + j - 16] >> 4
                v = half(blk + 2).addingProduct(half(blk), Float(q)) // fma(d, q, m): one rounding
            default:
                let bb = type.rowBytes(k: type.blockSize)
                v = decodeBlock(type, raw, at: base + kk / type.blockSize * bb)[kk % type.blockSize]
            }
            w[row * k + kk] = v
        }
    }
    return w
}

/// One ggml block of a 5-bit or K-quant type as its unsigned integers q and the
/// factors of each sub-block (16 values for Q6_K, else 32) in the documented order:
/// D (of the sum of x q) and M (of the sum of x), straight from the format description.
func integerBlock(_ type: WeightType, _ raw: [UInt8], at: Int) -> (q: [Int], d: [Float], m: [Float]) {
    func half(_ i: Int) -> Float { Kernels.float(halfBits: UInt16(raw[at + i]) | UInt16(raw[at + i + 1]) << 8) }
    func byte(_ i: Int) -> Int { Int(raw[at + i]) }
    switch type {
    case .q5_0, .q5_1:
        let m1 = type == .q5_1
        let qh = (0..<4).reduce(0) { $0 | byte((m1 ? 4 : 2) + $1) << (8 * $1) }
        let qs = m1 ? 8 : 6
        let q = (0..<32).map { j in (j < 16 ? byte(qs + j) & 15 : byte(qs + j - 16) >> 4) | (qh >> j & 1) << 4 }
        return (q, [half(0)], [m1 ? half(2) : -16 * half(0)])
    case .q4_K, .q5_K:
        let qs = type == .q4_K ? 16 : 48
        var q: [Int] = [], d: [Float] = [], m: [Float] = []
        for sub in 0..<8 {
            let (sc, mn) = sub < 4 ? (byte(4 + sub) & 63, byte(8 + sub) & 63)
                : ((byte(8 + sub) & 15) | (byte(sub) >> 6) << 4, (byte(8 + sub) >> 4) | (byte(4 + sub) >> 6) << 4)
            d.append(half(0) * Float(sc))
            m.append(-(half(2) * Float(mn)))
            for l in 0..<32 {
                let c = sub / 2
                var v = sub % 2 == 0 ? byte(qs + 32 * c + l) & 15 : byte(qs + 32 * c + l) >> 4
                if type == .q5_K { v |= (byte(16 + l) >> sub & 1) << 4 }
                q.append(v)
            }
        }
        return (q, d, m)
    case .q6_K:
        let q = (0..<256).map { i in
            let n = i / 128, t = i % 128 / 32, l = i % 32
            let qlByte = byte(64 * n + l + (t % 2 == 1 ? 32 : 0))
            return (t < 2 ? qlByte & 15 : qlByte >> 4) | (byte(128 + 32 * n + l) >> (2 * t) & 3) << 4
        }
        let ds = (0..<16).map { half(208) * Float(Int8(truncatingIfNeeded: byte(192 + $0))) }
        return (q, ds, ds.map { -32 * $0 })
    default:
        preconditionFailure("integerBlock: \(type)")
    }
}

func pack(_ type: WeightType, k: Int, n: Int, _ raw: [UInt8]) throws -> PackedWeights {
    try raw.withUnsafeBytes { try PackedWeights(type: type, k: k, n: n, raw: $0) }
}

/// y (rows, n) with the current configuration.
func runLinear(_ x: [Float], rows: Int, _ w: PackedWeights) -> [Float] {
    var y = [Float](repeating: .nan, count: rows * w.n)
    x.withUnsafeBufferPointer { xp in
        y.withUnsafeMutableBufferPointer { yp in
            Kernels.linear(x: xp.baseAddress!, weights: w, y: yp.baseAddress!, rows: rows)
        }
    }
    return y
}

/// Distance in units in the last place of `Float(exact)`.
func ulpError(_ got: Float, _ exact: Double) -> Double {
    let ref = Float(exact)
    if got == ref { return 0 }
    if !ref.isFinite || !got.isFinite { return got == ref ? 0 : .infinity }
    return abs(Double(got) - exact) / Double(ref.ulp)
}
