/// The type tag of a GGUF metadata value, as stored in the file.
public enum GGUFValueType: UInt32, Sendable {
    /// An unsigned 8-bit integer.
    case uint8 = 0
    /// A signed 8-bit integer.
    case int8 = 1
    /// An unsigned 16-bit integer, little-endian.
    case uint16 = 2
    /// A signed 16-bit integer, little-endian.
    case int16 = 3
    /// An unsigned 32-bit integer, little-endian.
    case uint32 = 4
    /// A signed 32-bit integer, little-endian.
    case int32 = 5
    /// A 32-bit IEEE float, little-endian.
    case float32 = 6
    /// A boolean stored as one byte, 0 or 1 (the reader refuses any other byte).
    case bool = 7
    /// A string: u64 byte length, then that many UTF-8 bytes (no terminator).
    case string = 8
    /// An array: u32 element type, u64 element count, then the elements, all of that type.
    case array = 9
    /// An unsigned 64-bit integer, little-endian.
    case uint64 = 10
    /// A signed 64-bit integer, little-endian.
    case int64 = 11
    /// A 64-bit IEEE double, little-endian.
    case float64 = 12

    /// Bytes one value of this type takes at the least (used to bound counts read from a file).
    var minimumEncodedSize: Int {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string: return 8          // the length prefix
        case .array: return 12          // element type + count
        }
    }
}

/// One GGUF metadata value. Arrays keep their declared element type, so an empty array
/// still round-trips through the writer exactly.
public enum GGUFValue: Sendable, Equatable {
    /// An unsigned 8-bit integer.
    case uint8(UInt8)
    /// A signed 8-bit integer.
    case int8(Int8)
    /// An unsigned 16-bit integer.
    case uint16(UInt16)
    /// A signed 16-bit integer.
    case int16(Int16)
    /// An unsigned 32-bit integer.
    case uint32(UInt32)
    /// A signed 32-bit integer.
    case int32(Int32)
    /// An unsigned 64-bit integer.
    case uint64(UInt64)
    /// A signed 64-bit integer.
    case int64(Int64)
    /// A 32-bit float.
    case float32(Float)
    /// A 64-bit float.
    case float64(Double)
    /// A boolean.
    case bool(Bool)
    /// A string; invalid UTF-8 read from a file is repaired (with U+FFFD), not refused.
    case string(String)
    /// An array: the declared element type and the elements, which the reader gives all of that type (the writer
    /// writes them as given, without checking).
    case array(GGUFValueType, [GGUFValue])

    /// The type tag this value is written with (for an array, `.array`; its element type is in the case).
    public var type: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .uint64: .uint64
        case .int64: .int64
        case .float32: .float32
        case .float64: .float64
        case .bool: .bool
        case .string: .string
        case .array: .array
        }
    }

    /// The value as an integer, when it is one of the integer types and fits.
    public var integer: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .int64(let v): Int(v)
        default: nil
        }
    }

    /// The value as a floating-point number, when it is a float (or an integer).
    public var double: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        default: integer.map(Double.init)
        }
    }

    /// The value as a string, when it is one.
    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value as a boolean, when it is one.
    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The elements, when the value is an array (its declared element type is not returned).
    public var array: [GGUFValue]? {
        if case .array(_, let values) = self { return values }
        return nil
    }
}
