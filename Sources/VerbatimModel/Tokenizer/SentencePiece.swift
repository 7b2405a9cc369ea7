/// SentencePiece-style encoding of one text fragment (`tokenizer.ggml.model = llama`, Gemma):
/// the text's spaces become U+2581; every character starts as a symbol; repeatedly the adjacent
/// pair whose concatenation is a token with the highest score merges (leftmost on ties); each
/// final symbol is its token, or, when the text is not a token, its UTF-8 bytes as `<0xXX>`
/// tokens. (The same rules as llama.cpp's SPM tokenizer, which the test data comes from.)
struct SentencePieceEncoder: Sendable {
    /// Token by its UTF-8 bytes. (Not by String: Swift compares strings by canonical
    /// equivalence, which would find the token "é" for the text "e\u{301}".)
    let idOf: [[UInt8]: TokenID]
    let scores: [Float]
    /// byte -> its `<0xXX>` token, or -1.
    let byteTokens: [TokenID]
    let unknownID: TokenID?
    /// Characters in the longest token.
    let longestToken: Int

    /// The fewest tokens a fragment of `characters` characters can encode to: every final
    /// symbol is a token of at most `longestToken` characters, or one byte token per byte.
    /// 0 when a character can vanish (a byte with neither a byte token nor an unknown token).
    func fewestTokens(characters: Int) -> Int {
        guard unknownID != nil || !byteTokens.contains(-1) else { return 0 }
        return (characters + longestToken - 1) / max(1, longestToken)
    }

    static let spaceMark: Unicode.Scalar = "\u{2581}"

    /// A merge candidate: symbols `left` and `right` (adjacent now, or stale), whose joined
    /// text is a token of score `score` spanning `length` characters.
    private struct Candidate {
        var score: Float
        var left: Int
        var right: Int
        var length: Int
        /// Higher score first; on equal scores the leftmost.
        func precedes(_ o: Candidate) -> Bool { score > o.score || (score == o.score && left < o.left) }
    }

    /// Appends the tokens of `fragment` (characters of one fragment; spaces not yet marked).
    /// Returns the work done (characters, heap operations and bytes of candidate texts looked
    /// up; a candidate is at most two tokens long, so the work is O(n log n)). A cancelled
    /// `budget` stops it within a few thousand heap operations.
    @discardableResult
    func encode(_ fragment: ArraySlice<Unicode.Scalar>, spacePrefix: Bool, into out: inout [TokenID],
                budget: EncodeBudget? = nil) throws(TokenizerError) -> Int {
        var chars: [Unicode.Scalar] = []
        chars.reserveCapacity(fragment.count + 1)
        if spacePrefix { chars.append(Self.spaceMark) }
        for c in fragment { chars.append(c == " " ? Self.spaceMark : c) }
        guard !chars.isEmpty else { return 0 }
        // Symbols as a linked list over `chars`: start, length (0: merged away), prev, next.
        let n = chars.count
        var start = Array(0..<n), length = [Int](repeating: 1, count: n)
        var prev = (0..<n).map { $0 - 1 }, next = (0..<n).map { $0 + 1 }
        next[n - 1] = -1
        var heap: [Candidate] = []
        var bytes: [UInt8] = []
        var work = n
        func text(_ a: Int, _ len: Int) -> [UInt8] {
            work += len
            bytes.removeAll(keepingCapacity: true)
            for c in chars[a..<(a + len)] { UTF8.encode(c) { bytes.append($0) } }
            return bytes
        }
        func consider(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0, let id = idOf[text(start[l], length[l] + length[r])] else { return }
            push(Candidate(score: scores[Int(id)], left: l, right: r, length: length[l] + length[r]))
        }
        func push(_ c: Candidate) {
            work += 1
            heap.append(c)
            var i = heap.count - 1
            while i > 0 {
                let p = (i - 1) / 2
                guard heap[i].precedes(heap[p]) else { break }
                heap.swapAt(i, p); i = p
            }
        }
        func pop() -> Candidate {
            work += 1
            let top = heap[0]
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                var i = 0
                while true {
                    let a = 2 * i + 1, b = a + 1
                    var best = i
                    if a < heap.count && heap[a].precedes(heap[best]) { best = a }
                    if b < heap.count && heap[b].precedes(heap[best]) { best = b }
                    if best == i { break }
                    heap.swapAt(i, best); i = best
                }
            }
            return top
        }
        for i in 1..<n { consider(i - 1, i) }
        var pops = 0
        while !heap.isEmpty {
            pops += 1
            if pops & 0x3FFF == 0 { try budget?.check(produced: 0) }
            let c = pop()
            // Stale when either side has merged since (its length changed or it is gone).
            guard length[c.left] > 0, length[c.right] > 0, length[c.left] + length[c.right] == c.length,
                  next[c.left] == c.right else { continue }
            length[c.left] += length[c.right]
            length[c.right] = 0
            next[c.left] = next[c.right]
            if next[c.right] >= 0 { prev[next[c.right]] = c.left }
            consider(prev[c.left], c.left)
            consider(c.left, next[c.left])
        }
        var i = 0
        while i >= 0 {
            if let id = idOf[text(start[i], length[i])] {
                out.append(id)
            } else {
                for c in chars[start[i]..<(start[i] + length[i])] {
                    for b in String(c).utf8 {
                        if byteTokens[Int(b)] >= 0 { out.append(byteTokens[Int(b)]) } else if let u = unknownID { out.append(u) }
                    }
                }
            }
            i = next[i]
        }
        return work
    }
}
