import CVerbatimHash

/// A 128-bit digest, printed as 32 lowercase hex digits (high half first).
public struct Digest128: Hashable, Sendable, CustomStringConvertible {
    /// The 16 bytes, high half first, each half big-endian (the printed order).
    public var bytes: [UInt8] {
        withUnsafeBytes(of: high.bigEndian) { Array($0) } + withUnsafeBytes(of: low.bigEndian) { Array($0) }
    }

    /// Reads a digest from 16 bytes in the printed order (high half first, each half big-endian); nil unless the
    /// buffer holds exactly 16 bytes.
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count == 16 else { return nil }
        high = UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self))
        low = UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }

    /// The first 64 bits (the first 16 hex digits printed).
    public let high: UInt64
    /// The last 64 bits (the last 16 hex digits printed).
    public let low: UInt64

    /// A digest from its two halves.
    public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }

    public var description: String {
        func hex(_ v: UInt64) -> String {
            let s = String(v, radix: 16)
            return String(repeating: "0", count: 16 - s.count) + s
        }
        return hex(high) + hex(low)
    }
}

/// Streaming XXH3-128 over bytes fed in order (libxxhash's SIMD dispatch; see CVerbatimHash
/// for why every call ends with a vzeroupper). Integers are fed little-endian.
public struct ContentHasher: ~Copyable {
    private let state: UnsafeMutableRawPointer

    /// A hasher with nothing fed yet; stops the process if the hash state cannot be allocated.
    public init() {
        guard let state = vh_state_create() else { fatalError("XXH3_createState: out of memory") }
        self.state = state
    }

    deinit { vh_state_free(state) }

    /// Feeds the bytes as they are, with no length prefix; an empty buffer changes nothing.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        vh_state_update(state, base, bytes.count)
    }

    /// Feeds an integer as its little-endian bytes, at its full width (a `UInt32` feeds 4 bytes).
    public mutating func update<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { update($0) }
    }

    /// A length-prefixed string (u64 byte count, then UTF-8 bytes).
    public mutating func update(_ string: String) {
        update(UInt64(string.utf8.count))
        var copy = string
        copy.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    /// A length-prefixed byte string.
    public mutating func update(bytes: [UInt8]) {
        update(UInt64(bytes.count))
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest of everything fed so far; the hasher is left as it was and can be fed more.
    public func finish() -> Digest128 {
        let h = vh_state_digest(state)
        return Digest128(high: h.high, low: h.low)
    }

    /// One-shot digest of a buffer.
    public static func digest(_ bytes: UnsafeRawBufferPointer) -> Digest128 {
        let h = vh_hash128(bytes.baseAddress, bytes.count)
        return Digest128(high: h.high, low: h.low)
    }
}
