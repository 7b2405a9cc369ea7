/// Little-endian encoding into a growing byte array, and bounds-checked decoding.
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func put(_ raw: [UInt8]) { bytes.append(contentsOf: raw) }
    mutating func putBytes(_ raw: [UInt8]) { put(UInt32(raw.count)); bytes.append(contentsOf: raw) }
}

struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func get<T: FixedWidthInteger>(_: T.Type) -> T? {
        guard offset + MemoryLayout<T>.size <= bytes.count else { return nil }
        defer { offset += MemoryLayout<T>.size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    mutating func raw(_ n: Int) -> UnsafeRawBufferPointer? {
        guard n >= 0, offset + n <= bytes.count else { return nil }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
    }

    mutating func getBytes() -> UnsafeRawBufferPointer? {
        guard let n = get(UInt32.self) else { return nil }
        return raw(Int(n))
    }
}
