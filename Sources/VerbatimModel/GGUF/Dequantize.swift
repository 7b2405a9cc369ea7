/// Exact dequantisation. The types the kernels compute with, as NUMERICS.md defines the values:
/// Q8_0 `d*q`; Q4_0 `d*(q-8)`; Q4_1 `fma(d, q, m)`; F16 and BF16 widen exactly (the kernels
/// compute the same values when they dequantise on the fly). The other dequantisable types
/// decode as ggml does (DequantizeBlocks.swift).
public enum Dequantize {
    /// The f32 value of an IEEE half-precision bit pattern, exact (every f16 value is an f32 value).
    @inline(__always)
    public static func half(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

    /// The f32 value of a bfloat16 bit pattern, exact: the 16 bits become the upper half of the f32's bits.
    @inline(__always)
    public static func bfloat(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// Dequantises `count` consecutive elements of type `type` starting at `source`
    /// (which must be at a block boundary) into `destination`.
    public static func run(_ type: GGMLType, from source: UnsafeRawPointer, count: Int,
                           into destination: UnsafeMutablePointer<Float>) throws(GGUFError) {
        guard type.isDequantizable else {
            throw GGUFError(.unsupportedTensorType,
                            "tensor type \(type) cannot be dequantised (types that can: \(GGMLType.dequantizable.map(\.description).joined(separator: ", ")))")
        }
        precondition(count % type.blockSize == 0, "count must be whole blocks")
        switch type {
        case .f32:
            for i in 0..<count {
                destination[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        case .f16:
            for i in 0..<count {
                destination[i] = half(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .bf16:
            for i in 0..<count {
                destination[i] = bfloat(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .q8_0:
            // block: f16 d, int8 q[32]
            for b in 0..<(count / 32) {
                let block = source + b * 34
                let d = half(UInt16(littleEndian: block.loadUnaligned(as: UInt16.self)))
                for j in 0..<32 {
                    let q = Int8(bitPattern: block.load(fromByteOffset: 2 + j, as: UInt8.self))
                    destination[b * 32 + j] = d * Float(q)
                }
            }
        case .q4_0:
            // block: f16 d, u8 qs[16]; element j is the low nibble of qs[j], j+16 the high one
            for b in 0..<(count / 32) {
                let block = source + b * 18
                let d = half(UInt16(littleEndian: block.loadUnaligned(as: UInt16.self)))
                for j in 0..<16 {
                    let byte = block.load(fromByteOffset: 2 + j, as: UInt8.self)
                    destination[b * 32 + j] = d * Float(Int(byte & 0x0F) - 8)
                    destination[b * 32 + j + 16] = d * Float(Int(byte >> 4) - 8)
                }
            }
        case .q4_1:
            // block: f16 d, f16 m, u8 qs[16]; same nibble order as Q4_0
            for b in 0..<(count / 32) {
                let block = source + b * 20
                let d = half(UInt16(littleEndian: block.loadUnaligned(as: UInt16.self)))
                let m = half(UInt16(littleEndian: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
                for j in 0..<16 {
                    let byte = block.load(fromByteOffset: 4 + j, as: UInt8.self)
                    destination[b * 32 + j] = m.addingProduct(d, Float(byte & 0x0F))       // fma(d, q, m)
                    destination[b * 32 + j + 16] = m.addingProduct(d, Float(byte >> 4))
                }
            }
        default: // K-quants, Q5_0/Q5_1, IQ4_NL/IQ4_XS (DequantizeBlocks.swift), block by block
            for b in 0..<(count / type.blockSize) {
                decodeBlock(type, source + b * type.blockBytes, into: destination + b * type.blockSize)
            }
        }
    }
}

extension GGUFFile {
    /// Row `row` of a tensor, dequantised (row = all dimensions but the first flattened).
    public func dequantizeRow(_ tensor: GGUFTensorInfo, row: Int,
                              into destination: UnsafeMutableBufferPointer<Float>) throws(GGUFError) {
        precondition(row >= 0 && row < tensor.rowCount && destination.count >= tensor.rowLength)
        let rowBytes = tensor.rowLength / tensor.type.blockSize * tensor.type.blockBytes
        do throws(GGUFError) {
            try Dequantize.run(tensor.type, from: data(of: tensor).baseAddress! + row * rowBytes,
                               count: tensor.rowLength, into: destination.baseAddress!)
        } catch var error {
            error = GGUFError(error.code, "tensor '\(tensor.name)': " + error.message, path: path)
            throw error
        }
    }

    /// The whole tensor, dequantised to f32 (for tests and small tensors).
    public func floats(of tensor: GGUFTensorInfo) throws(GGUFError) -> [Float] {
        var result = [Float](repeating: 0, count: tensor.elementCount)
        try result.withUnsafeMutableBufferPointer { (buffer) throws(GGUFError) in
            for row in 0..<tensor.rowCount {
                try dequantizeRow(tensor, row: row,
                                  into: UnsafeMutableBufferPointer(rebasing: buffer[(row * tensor.rowLength)...]))
            }
        }
        return result
    }
}
