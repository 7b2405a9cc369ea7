/// The one little-endian byte codec of the package's own records (cache entries, completion
/// records, sampling identities): fixed-width integers little-endian, byte strings as a u32
/// length then the bytes. Decoding is bounds-checked: a short or damaged record reads as nil.
package struct ByteWriter {
    /// Everything written so far.
    package var bytes: [UInt8] = []

    package init() {}

    /// Appends an integer as its little-endian bytes, at its full width.
    package mutating func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    /// Appends bytes as they are (no length).
    package mutating func put(_ raw: [UInt8]) { bytes.append(contentsOf: raw) }
    /// Appends a u32 length, then the bytes.
    package mutating func putBytes(_ raw: [UInt8]) { put(UInt32(raw.count)); bytes.append(contentsOf: raw) }
}

/// Reads what `ByteWriter` wrote; every read returns nil rather than read past the end.
package struct ByteReader {
    package let bytes: UnsafeRawBufferPointer
    /// Bytes read so far.
    package private(set) var offset = 0

    package init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// Whether every byte has been read.
    package var atEnd: Bool { offset == bytes.count }

    package mutating func get<T: FixedWidthInteger>(_: T.Type) -> T? {
        guard offset + MemoryLayout<T>.size <= bytes.count else { return nil }
        defer { offset += MemoryLayout<T>.size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// The next `n` bytes, in place.
    package mutating func raw(_ n: Int) -> UnsafeRawBufferPointer? {
        guard n >= 0, offset + n <= bytes.count else { return nil }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
    }

    /// A u32 length, then that many bytes, in place.
    package mutating func getBytes() -> UnsafeRawBufferPointer? {
        guard let n = get(UInt32.self) else { return nil }
        return raw(Int(n))
    }
}
