import Foundation
import VerbatimModel

/// Real language for prompts: sentences from the licence texts every Debian system installs
/// (`/usr/share/common-licenses`), so prompts tokenize like prose, not like random ids.
public struct Corpus: Sendable {
    public let sentences: [String]

    public static let defaultFolder = "/usr/share/common-licenses"

    /// Sentences of every text file in `folder` (sorted by name, so the corpus is the same on
    /// every run); falls back to a built-in paragraph when the folder is missing.
    public init(folder: String = Corpus.defaultFolder) {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
        var found: [String] = []
        var seen = Set<String>()
        for name in names {
            guard let text = try? String(contentsOfFile: folder + "/" + name, encoding: .utf8) else { continue }
            for sentence in Self.split(text) where seen.insert(sentence).inserted { found.append(sentence) }
        }
        sentences = found.count >= 50 ? found : Self.split(Self.fallback)
    }

    public init(sentences: [String]) { self.sentences = sentences }

    /// Sentences of 6 to 60 words, whitespace collapsed.
    static func split(_ text: String) -> [String] {
        let flat = text.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        var out: [String] = []
        var current = ""
        for ch in flat {
            current.append(ch)
            if ch == "." || ch == "?" || ch == "!" {
                let words = current.split(separator: " ").count
                if (6...60).contains(words) { out.append(current.trimmingCharacters(in: .whitespaces)) }
                current = ""
            }
        }
        return out
    }

    /// Consecutive words from the start of a random sentence until `tokens` tokens. Words are
    /// counted with their leading space, as the tokenizer splits text before merging, so the
    /// count is the passage's own (give or take the first word).
    public func passage(tokens: Int, tokenizer: Tokenizer, rng: inout Xoshiro256StarStar) -> String {
        var sentence = Int.random(in: 0..<sentences.count, using: &rng)
        var words: [Substring] = []
        var count = 0
        while count < tokens {
            for word in sentences[sentence % sentences.count].split(separator: " ") where count < tokens {
                words.append(word)
                count += tokenizer.encode(" " + word).count
            }
            sentence += 1
        }
        return words.joined(separator: " ")
    }

    /// A question of about `tokens` tokens about a random sentence.
    public func question(tokens: Int, tokenizer: Tokenizer, rng: inout Xoshiro256StarStar) -> String {
        let openers = ["What does this mean in plain words:", "Summarise this for a new reader:", "Is this fair to a user, and why:",
                       "Explain who is affected by this:", "Give one example of this:"]
        let opener = openers[Int.random(in: 0..<openers.count, using: &rng)]
        return opener + " " + passage(tokens: max(1, tokens - tokenizer.encode(opener).count), tokenizer: tokenizer, rng: &rng)
    }

    static let fallback = """
        The same input gives the same bits, whatever else the server is doing. A cache that stores what the model computed \
        can then answer without computing again. Every request is tagged with the model and the numerics it ran under. \
        A prefix that many requests share is computed once and read back many times. Long documents are read once and \
        questioned many times. A chat grows by one turn at a time, and each turn repeats everything before it. \
        Caches must never return a wrong byte, so every entry is checked before it is used. When memory runs short, the \
        least recently used entries go first. A process that restarts finds its cache where it left it.
        """
}
