/// A bounds-checked little-endian reader over untrusted bytes. Every read checks the
/// remaining length first, so a damaged file yields `.truncated` instead of a crash.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset: Int = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws(GGUFError) {
        guard n >= 0, n <= remaining else {
            throw GGUFError(.truncated, "the file ends inside \(what()) (needs \(n) bytes, \(remaining) left)",
                            offset: offset)
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(GGUFError) -> T {
        try need(MemoryLayout<T>.size, what())
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: value)
    }

    mutating func readBytes(_ n: Int, _ what: @autoclosure () -> String) throws(GGUFError) -> UnsafeRawBufferPointer {
        try need(n, what())
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
        offset += n
        return slice
    }

    /// A GGUF string: u64 byte length, then UTF-8 bytes (not NUL-terminated).
    mutating func readString(_ what: @autoclosure () -> String) throws(GGUFError) -> UnsafeRawBufferPointer {
        let start = offset
        let length = try read(UInt64.self, what())
        guard length <= UInt64(remaining) else {
            offset = start
            throw GGUFError(.truncated, "\(what()) claims \(length) bytes but only \(remaining - 8) remain",
                            offset: start)
        }
        return try readBytes(Int(length), what())
    }
}
