import VerbatimModel

/// Draft tokens for speculation from the request's own text (prompt-lookup decoding): the
/// tokens that followed the most recent earlier occurrence of its last few tokens. Summaries,
/// quotations, code edits and repetitive output copy spans of their context, so such drafts
/// are often right; the engine checks every one with the model before a token is emitted.
enum PromptLookup {
    /// The longest and shortest tail (in tokens) that is looked up, longest first.
    static let longestTail = 3
    static let shortestTail = 2
    /// How far back a tail is looked for, so that a long prompt costs bounded work a step.
    static let searchWindow = 8192

    /// Up to `limit` tokens that followed the most recent earlier occurrence of the last
    /// `longestTail` (then fewer, down to `shortestTail`) tokens of prompt + generated; empty
    /// when the tail occurs nowhere earlier.
    static func draft(prompt: [TokenID], generated: [TokenID], limit: Int) -> [TokenID] {
        let count = prompt.count + generated.count
        guard limit > 0 else { return [] }
        func token(_ i: Int) -> TokenID { i < prompt.count ? prompt[i] : generated[i - prompt.count] }
        let lowest = max(0, count - searchWindow)
        for n in stride(from: longestTail, through: shortestTail, by: -1) where count > n {
            // An earlier occurrence starting at `start` (start + n < count: not the tail itself).
            var start = count - n - 1
            while start >= lowest {
                var match = true
                for j in 0..<n where token(start + j) != token(count - n + j) { match = false; break }
                if match {
                    let from = start + n
                    return (from..<min(count, from + limit)).map(token)
                }
                start -= 1
            }
        }
        return []
    }
}
