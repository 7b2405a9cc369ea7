/// Splits text into the pieces that BPE merges within (merges never cross a piece).
///
/// `smollm` (SmolLM2): every numeric character (`\p{N}`) becomes a piece of its own, then each
/// remaining run is split by the GPT-2 pattern, whose alternatives are tried in order:
///   `'s|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+`
/// `gpt2`: the GPT-2 pattern alone. `\s` is Unicode White_Space; letters and numbers are the
/// general categories L* and N*.
public enum PreTokenizer: String, Sendable {
    case smollm
    case gpt2

    /// Appends the pieces of `text[range]` to `pieces`, as ranges of scalar indices.
    func split(_ text: [Unicode.Scalar], _ range: Range<Int>, into pieces: inout [Range<Int>]) {
        switch self {
        case .gpt2:
            Self.gpt2Split(text, range, into: &pieces)
        case .smollm:
            var runStart = range.lowerBound
            for i in range where Self.isNumber(text[i]) {
                if runStart < i { Self.gpt2Split(text, runStart..<i, into: &pieces) }
                pieces.append(i..<(i + 1))
                runStart = i + 1
            }
            if runStart < range.upperBound { Self.gpt2Split(text, runStart..<range.upperBound, into: &pieces) }
        }
    }

    @inline(__always) static func isLetter(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    @inline(__always) static func isNumber(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return c >= "0" && c <= "9" }
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    @inline(__always) static func isSpace(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return c == " " || (c.value >= 0x09 && c.value <= 0x0D) }
        return c.properties.isWhitespace
    }

    @inline(__always) static func isOther(_ c: Unicode.Scalar) -> Bool {
        !isSpace(c) && !isLetter(c) && !isNumber(c)
    }

    static func gpt2Split(_ s: [Unicode.Scalar], _ range: Range<Int>, into pieces: inout [Range<Int>]) {
        let end = range.upperBound
        var i = range.lowerBound
        while i < end {
            let length = gpt2Match(s, at: i, end: end)
            pieces.append(i..<(i + length))
            i += length
        }
    }

    /// Length of the GPT-2 pattern's match at `i` (always at least 1).
    static func gpt2Match(_ s: [Unicode.Scalar], at i: Int, end: Int) -> Int {
        let c = s[i]
        // 's 't 're 've 'm 'll 'd (case-sensitive, as in the original pattern)
        if c == "'", i + 1 < end {
            let c1 = s[i + 1]
            if c1 == "s" || c1 == "t" || c1 == "m" || c1 == "d" { return 2 }
            if i + 2 < end {
                let c2 = s[i + 2]
                if (c1 == "r" && c2 == "e") || (c1 == "v" && c2 == "e") || (c1 == "l" && c2 == "l") { return 3 }
            }
        }
        // " ?X+" for X in letters, numbers, others: the optional space is an ASCII space
        let hasSpace = c == " " && i + 1 < end
        for isClass in [isLetter, isNumber, isOther] as [(Unicode.Scalar) -> Bool] {
            var j = i
            if hasSpace && isClass(s[i + 1]) { j = i + 1 } else if !isClass(c) { continue }
            while j < end && isClass(s[j]) { j += 1 }
            return j - i
        }
        // \s+(?!\S): a whitespace run, less its last character when a non-space follows
        var j = i
        while j < end && isSpace(s[j]) { j += 1 }
        if j == end || j - i == 1 { return j - i }  // at the end, or a single space (\s+)
        return j - i - 1
    }
}
