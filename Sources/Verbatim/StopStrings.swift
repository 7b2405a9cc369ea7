/// Stop strings over streamed text: text goes out as it comes, except a suffix that could still
/// become a stop string (held back until the next token decides), and it is cut before the
/// first stop string found.
enum StopStrings {
    /// What of `pending` can go out now, what stays held back, and whether a stop string ended it
    /// (then `emit` is the text before it and nothing is held).
    static func split(_ pending: String, stops: [String]) -> (emit: String, held: String, stopped: Bool) {
        if let cut = stops.compactMap({ pending.range(of: $0)?.lowerBound }).min() {
            return (String(pending[..<cut]), "", true)
        }
        let hold = heldBack(pending, stops)
        return (String(pending.dropLast(hold)), String(pending.suffix(hold)), false)
    }

    /// Length (in characters) of the longest suffix of `text` that is a proper prefix of a stop string.
    static func heldBack(_ text: String, _ stops: [String]) -> Int {
        var best = 0
        for s in stops {
            for n in stride(from: min(s.count - 1, text.count), to: best, by: -1) where text.hasSuffix(s.prefix(n)) {
                best = n
                break
            }
        }
        return best
    }
}
