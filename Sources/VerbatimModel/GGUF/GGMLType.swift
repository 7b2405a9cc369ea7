/// Tensor element types of the GGUF format, by their numeric id in the file.
///
/// The reader knows the block layout of every type below, so that it can validate the
/// sizes and offsets of any file; `isDequantizable` says which ones Verbatim decodes to floats
/// (exactly as ggml does), `isSupported` which ones its kernels compute with.
public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// 32-bit IEEE floats, one per element (4 bytes each).
    case f32 = 0
    /// 16-bit IEEE half-precision floats, one per element (2 bytes each), widened exactly to f32.
    case f16 = 1
    /// 4-bit weights in blocks of 32 with one f16 scale `d`: value = d * (q - 8) (18 bytes a block).
    case q4_0 = 2
    /// 4-bit weights in blocks of 32 with an f16 scale `d` and an f16 minimum `m`: value = fma(d, q, m) (20 bytes a block).
    case q4_1 = 3
    /// 5-bit weights in blocks of 32 with one f16 scale `d`, the fifth bits packed in a u32: value = d * (q - 16)
    /// (22 bytes a block).
    case q5_0 = 6
    /// 5-bit weights in blocks of 32 with an f16 scale `d` and an f16 minimum `m`, the fifth bits packed in a u32:
    /// value = d * q + m, not fused (24 bytes a block).
    case q5_1 = 7
    /// 8-bit weights in blocks of 32 with one f16 scale `d`: value = d * q (34 bytes a block).
    case q8_0 = 8
    /// 8-bit weights in blocks of 32 with an f16 scale and an f16 sum (36 bytes a block); not decoded
    /// (the reader only checks its sizes).
    case q8_1 = 9
    /// 2-bit weights in super-blocks of 256: 16 sub-blocks of 16, each with a 4-bit scale and a 4-bit minimum,
    /// under an f16 scale and an f16 minimum (84 bytes a block).
    case q2_K = 10
    /// 3-bit weights in super-blocks of 256: 16 sub-blocks of 16 with 6-bit scales under one f16 scale
    /// (110 bytes a block).
    case q3_K = 11
    /// 4-bit weights in super-blocks of 256: 8 sub-blocks of 32 with 6-bit scales and minimums, under an f16 scale
    /// and an f16 minimum (144 bytes a block).
    case q4_K = 12
    /// 5-bit weights in super-blocks of 256: Q4_K's layout plus 32 bytes of fifth bits (176 bytes a block).
    case q5_K = 13
    /// 6-bit weights in super-blocks of 256: 16 sub-blocks of 16 with int8 scales under one f16 scale
    /// (210 bytes a block).
    case q6_K = 14
    /// 8-bit weights in super-blocks of 256 with an f32 scale and 16 i16 sums (292 bytes a block); not decoded
    /// (the reader only checks its sizes).
    case q8_K = 15
    /// 4-bit indices into a fixed non-linear table of 16 values, in blocks of 32 with one f16 scale
    /// (18 bytes a block).
    case iq4_nl = 20
    /// 4-bit indices into the IQ4_NL table in super-blocks of 256: 8 sub-blocks of 32 with 6-bit scales under
    /// one f16 scale (136 bytes a block).
    case iq4_xs = 23
    /// Signed 8-bit integers, one per element; not decoded (the reader only checks its sizes).
    case i8 = 24
    /// Signed 16-bit integers, one per element; not decoded (the reader only checks its sizes).
    case i16 = 25
    /// Signed 32-bit integers, one per element; not decoded (the reader only checks its sizes).
    case i32 = 26
    /// Signed 64-bit integers, one per element; not decoded (the reader only checks its sizes).
    case i64 = 27
    /// 64-bit IEEE doubles, one per element; not decoded (the reader only checks its sizes).
    case f64 = 28
    /// bfloat16 values (the upper 16 bits of an f32), one per element (2 bytes each), widened exactly to f32.
    case bf16 = 30

    /// Elements per block (1 for plain scalar types).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .i8, .i16, .i32, .i64, .f64: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_nl: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .iq4_xs: return 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8: return 1
        case .i64, .f64: return 8
        case .q4_0: return 18      // f16 d, 16 bytes of nibbles
        case .q4_1: return 20      // f16 d, f16 m, 16 bytes of nibbles
        case .q5_0: return 22
        case .q5_1: return 24
        case .q8_0: return 34      // f16 d, 32 int8
        case .q8_1: return 36
        case .q2_K: return 84
        case .q3_K: return 110
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        case .q8_K: return 292
        case .iq4_nl: return 18   // f16 d, 16 bytes of nibbles (indices into a fixed table)
        case .iq4_xs: return 136  // f16 d, u16 scales_h, u8 scales_l[4], 128 bytes of nibbles
        }
    }

    /// The types the kernels compute with (NUMERICS.md defines their values).
    public var isSupported: Bool {
        switch self {
        case .f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K: return true
        default: return false
        }
    }

    /// Every type with `isSupported`, in declaration order (error messages list them).
    public static var supported: [GGMLType] { allCases.filter(\.isSupported) }

    /// The types `Dequantize` decodes: the supported ones, Q2_K, Q3_K, IQ4_NL and IQ4_XS.
    public var isDequantizable: Bool {
        switch self {
        case .q2_K, .q3_K, .iq4_nl, .iq4_xs: return true
        default: return isSupported
        }
    }

    /// Every type with `isDequantizable`, in declaration order (error messages list them).
    public static var dequantizable: [GGMLType] { allCases.filter(\.isDequantizable) }

    public var description: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .bf16: "BF16"
        case .q4_0: "Q4_0"
        case .q4_1: "Q4_1"
        case .q5_0: "Q5_0"
        case .q5_1: "Q5_1"
        case .q8_0: "Q8_0"
        case .q8_1: "Q8_1"
        case .q2_K: "Q2_K"
        case .q3_K: "Q3_K"
        case .q4_K: "Q4_K"
        case .q5_K: "Q5_K"
        case .q6_K: "Q6_K"
        case .q8_K: "Q8_K"
        case .i8: "I8"
        case .i16: "I16"
        case .i32: "I32"
        case .i64: "I64"
        case .f64: "F64"
        case .iq4_nl: "IQ4_NL"
        case .iq4_xs: "IQ4_XS"
        }
    }
}
