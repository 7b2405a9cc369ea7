/// Builds a GGUF v3 file in memory: metadata in insertion order, tensors laid out in
/// insertion order at `alignment`. Used by tests to generate tiny models, and by tools.
public struct GGUFWriter {
    /// A tensor added to the writer: its name, shape, type and encoded bytes.
    public struct Tensor {
        /// The tensor's name in the file.
        public var name: String
        /// Dimensions, fastest-varying first, as in `GGUFTensorInfo.dimensions`.
        public var dimensions: [Int]
        /// How `data` encodes the elements.
        public var type: GGMLType
        /// The encoded bytes: elements / `type.blockSize` blocks of `type.blockBytes` each.
        public var data: [UInt8]
    }

    /// The version written in the header: 3 unless changed (the reader accepts 2 and 3).
    public var version: UInt32 = 3
    /// Alignment in bytes of the data section and of each tensor's data (32 unless changed).
    ///
    /// It is not written to the metadata: when it differs from 32, also set `general.alignment` to it as a
    /// `.uint32` (the reader requires a power of two up to 65536).
    public var alignment: Int = GGUFFile.defaultAlignment
    /// The metadata entries, in the order their keys were first set (the order they are written in).
    public private(set) var metadata: [(key: String, value: GGUFValue)] = []
    /// The tensors, in the order they were added (the order of their infos and of their data).
    public private(set) var tensors: [Tensor] = []

    /// An empty writer: version 3, 32-byte alignment, no metadata and no tensors.
    public init() {}

    /// Sets metadata `key` to `value`; a key set before keeps its place and takes the new value.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.key == key }) {
            metadata[i].value = value
        } else {
            metadata.append((key, value))
        }
    }

    /// Adds a tensor from raw bytes already in `type`'s encoding.
    public mutating func addTensor(_ name: String, dimensions: [Int], type: GGMLType, data: [UInt8]) {
        let elements = dimensions.reduce(1, *)
        precondition(elements % type.blockSize == 0)
        precondition(data.count == elements / type.blockSize * type.blockBytes, "tensor '\(name)': wrong byte count")
        tensors.append(Tensor(name: name, dimensions: dimensions, type: type, data: data))
    }

    /// Adds a tensor from f32 values, encoding them as `type`.
    public mutating func addTensor(_ name: String, dimensions: [Int], type: GGMLType, values: [Float]) {
        addTensor(name, dimensions: dimensions, type: type, data: Quantize.encode(values, as: type))
    }

    /// The whole file: header, metadata, tensor infos, zero padding to `alignment`, then each tensor's data at its
    /// aligned offset.
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func putString(_ s: String) { put(UInt64(s.utf8.count)); out.append(contentsOf: s.utf8) }
        func putValue(_ v: GGUFValue) {
            switch v {
            case .uint8(let x): put(x)
            case .int8(let x): put(x)
            case .uint16(let x): put(x)
            case .int16(let x): put(x)
            case .uint32(let x): put(x)
            case .int32(let x): put(x)
            case .uint64(let x): put(x)
            case .int64(let x): put(x)
            case .float32(let x): put(x.bitPattern)
            case .float64(let x): put(x.bitPattern)
            case .bool(let x): put(UInt8(x ? 1 : 0))
            case .string(let s): putString(s)
            case .array(let type, let values):
                put(type.rawValue); put(UInt64(values.count))
                for element in values { putValue(element) }
            }
        }

        put(UInt32(0x4655_4747)); put(version)
        put(UInt64(tensors.count)); put(UInt64(metadata.count))
        for (key, value) in metadata {
            putString(key); put(value.type.rawValue); putValue(value)
        }
        var offsets: [Int] = []
        var next = 0
        for t in tensors {
            offsets.append(next)
            next = (next + t.data.count + alignment - 1) / alignment * alignment
        }
        for (t, offset) in zip(tensors, offsets) {
            putString(t.name); put(UInt32(t.dimensions.count))
            for d in t.dimensions { put(UInt64(d)) }
            put(t.type.rawValue); put(UInt64(offset))
        }
        let dataStart = (out.count + alignment - 1) / alignment * alignment
        out.append(contentsOf: repeatElement(0, count: dataStart - out.count))
        for (t, offset) in zip(tensors, offsets) {
            out.append(contentsOf: repeatElement(0, count: dataStart + offset - out.count))
            out.append(contentsOf: t.data)
        }
        return out
    }
}
