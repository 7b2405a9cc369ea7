/// The byte-level alphabet of GPT-2-style BPE: every byte maps to one printable character,
/// so any byte string is a string of vocabulary characters. Printable Latin-1 bytes map to
/// themselves; the other 68 bytes map to U+0100 onwards, in byte order.
package enum ByteLevel {
    /// byte -> character
    package static let characters: [Unicode.Scalar] = {
        var printable = [Bool](repeating: false, count: 256)
        for b in 0x21...0x7E { printable[b] = true }
        for b in 0xA1...0xAC { printable[b] = true }
        for b in 0xAE...0xFF { printable[b] = true }
        var next: UInt32 = 256
        return (0..<256).map { b in
            if printable[b] { return Unicode.Scalar(UInt8(b)) }
            defer { next += 1 }
            return Unicode.Scalar(next)!
        }
    }()

    /// character -> byte, for the 256 characters above
    static let bytes: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (b, c) in characters.enumerated() { map[c] = UInt8(b) }
        return map
    }()
}
