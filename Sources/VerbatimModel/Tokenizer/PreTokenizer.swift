/// Splits text into the pieces that BPE merges within (merges never cross a piece).
///
/// `smollm` (SmolLM2): every numeric character (`\p{N}`) becomes a piece of its own, then each
/// remaining run is split by the GPT-2 pattern, whose alternatives are tried in order:
///   `'s|'t|'re|'ve|'m|'ll|'d | ?\p{L}+ | ?\p{N}+ | ?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+`
/// `gpt2`: the GPT-2 pattern alone. `llama-bpe` (Llama 3) and `qwen2` (also
/// `deepseek-r1-qwen`): the Llama 3 pattern, whose alternatives are tried in order:
///   `'(?i:[stmd]|re|ve|ll) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3} | ?[^\s\p{L}\p{N}]+[\r\n]* |
///    \s*[\r\n]+ | \s+(?!\S) | \s+`
/// with Qwen2 taking numbers one digit at a time (`\p{N}`). `\s` is Unicode White_Space;
/// letters and numbers are the general categories L* and N*.
public enum PreTokenizer: String, Sendable {
    /// `smollm` (SmolLM2): each numeric character alone, then the GPT-2 pattern on the runs between.
    case smollm
    /// `gpt2` (also a `tokenizer.ggml.pre` of `default` or none): the GPT-2 pattern.
    case gpt2
    /// `llama-bpe` (Llama 3): the Llama 3 pattern, numbers in pieces of up to three characters (`\p{N}{1,3}`).
    case llamaBPE = "llama-bpe"
    /// `qwen2`: the Llama 3 pattern with one numeric character per piece (`\p{N}`).
    case qwen2
    /// `deepseek-r1-qwen`: splits exactly as `qwen2`.
    case deepseekR1Qwen = "deepseek-r1-qwen"

    /// Appends the pieces of `text[range]` to `pieces`, as ranges of scalar indices.
    package func split(_ text: [Unicode.Scalar], _ range: Range<Int>, into pieces: inout [Range<Int>]) {
        switch self {
        case .gpt2:
            Self.gpt2Split(text, range, into: &pieces)
        case .llamaBPE, .qwen2, .deepseekR1Qwen:
            let digits = self == .llamaBPE ? 3 : 1
            var i = range.lowerBound
            while i < range.upperBound {
                let length = Self.llama3Match(text, at: i, end: range.upperBound, digits: digits)
                pieces.append(i..<(i + length))
                i += length
            }
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

    @inline(__always) static func isNewline(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }

    /// Length of the Llama 3 pattern's match at `i` (always at least 1); numbers in runs of at
    /// most `digits`.
    static func llama3Match(_ s: [Unicode.Scalar], at i: Int, end: Int, digits: Int) -> Int {
        let c = s[i]
        // '(?i:s|t|re|ve|m|ll|d)
        if c == "'", i + 1 < end {
            let c1 = s[i + 1].properties.lowercaseMapping
            if c1 == "s" || c1 == "t" || c1 == "m" || c1 == "d" { return 2 }
            if i + 2 < end {
                let pair = c1 + s[i + 2].properties.lowercaseMapping
                if pair == "re" || pair == "ve" || pair == "ll" { return 3 }
            }
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        var j = i
        if !isLetter(c) && !isNewline(c) && !isNumber(c) && i + 1 < end && isLetter(s[i + 1]) { j = i + 1 }
        if isLetter(s[j]) {
            while j < end && isLetter(s[j]) { j += 1 }
            return j - i
        }
        // \p{N}{1,digits}
        if isNumber(c) {
            j = i
            while j < end && j - i < digits && isNumber(s[j]) { j += 1 }
            return j - i
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        j = c == " " && i + 1 < end && isOther(s[i + 1]) ? i + 1 : i
        if isOther(s[j]) {
            while j < end && isOther(s[j]) { j += 1 }
            while j < end && isNewline(s[j]) { j += 1 }
            return j - i
        }
        // \s*[\r\n]+: up to the last line break of the whitespace run
        j = i
        var lastBreak = -1
        while j < end && isSpace(s[j]) { if isNewline(s[j]) { lastBreak = j }; j += 1 }
        if lastBreak >= 0 { return lastBreak + 1 - i }
        // \s+(?!\S) | \s+
        if j == end || j - i == 1 { return j - i }
        return j - i - 1
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
