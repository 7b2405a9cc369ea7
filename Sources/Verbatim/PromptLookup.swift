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
    /// `longestTail` tokens of prompt + generated, else of the last `shortestTail`; empty when
    /// neither occurs earlier. One backward pass over the window, one compare per position
    /// where the last token does not recur.
    static func draft(prompt: [TokenID], generated: [TokenID], limit: Int) -> [TokenID] {
        let count = prompt.count + generated.count
        guard limit > 0, count > shortestTail else { return [] }
        return prompt.withUnsafeBufferPointer { p in
            generated.withUnsafeBufferPointer { g in
                func token(_ i: Int) -> TokenID { i < p.count ? p[i] : g[i - p.count] }
                func following(_ from: Int) -> [TokenID] { (from..<min(count, from + limit)).map(token) }
                let (last, second) = (token(count - 1), token(count - 2))
                let third = count > longestTail ? token(count - 3) : nil
                var shortMatch = -1   // the most recent end of an earlier `shortestTail` match
                // `end`: where an earlier occurrence of the tail ends, before the tail itself.
                var end = count - 2
                while end >= max(1, count - searchWindow) {
                    if token(end) == last && token(end - 1) == second {
                        if let third, end >= 2, token(end - 2) == third { return following(end + 1) }
                        if shortMatch < 0 { shortMatch = end }
                    }
                    end -= 1
                }
                return shortMatch >= 0 ? following(shortMatch + 1) : []
            }
        }
    }
}
