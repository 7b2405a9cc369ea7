import VerbatimModel

/// A prefix the operator declares public: every tenant reuses its cached KV blocks (the
/// tenant's salt enters the chain at the first block after it). The server reads them from
/// its tenants file, and `cachectl warm` from the same file, so both key blocks alike.
public enum SharedPrefix: Sendable, Equatable {
    /// A system message: chat requests that begin with it share it, whatever follows.
    case system(String)
    /// Literal prompt text (control tokens such as `<|im_start|>` allowed).
    case text(String)

    /// A shared-prefix entry that is not `{"system": ...}` or `{"text": ...}`; the description names the entry.
    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

}

extension SharedPrefix: Decodable {
    /// Reads `{"system": "..."}` or `{"text": "..."}` (exactly one key, a non-empty string); in a
    /// list, a wrong entry throws a `ParseError` naming it (`shared_prefixes[2]`).
    public init(from decoder: any Decoder) throws {
        let index = decoder.codingPath.last?.intValue.map { "shared_prefixes[\($0)]" } ?? "a shared prefix"
        let failure = ParseError(description: "\(index) needs exactly one non-empty 'system' or 'text' string")
        // The whole object: a key besides the one read (or a value that is not a string) is refused too.
        guard let entry = try? decoder.singleValueContainer().decode([String: String].self), entry.count == 1,
              let (key, value) = entry.first, !value.isEmpty else { throw failure }
        switch key {
        case "system": self = .system(value)
        case "text": self = .text(value)
        default: throw failure
        }
    }
}

/// The token forms of declared shared prefixes, and how much of a prompt they cover.
public struct SharedPrefixes: Sendable {
    /// Each prefix's tokens, as requests that begin with it start (empty ones dropped).
    public let tokens: [[TokenID]]

    /// A system message is rendered twice with different user messages and cut where the two
    /// part, so the prefix is exactly what every chat that begins with it starts with, whatever
    /// the template. Text drops its last token, which may merge with what follows it.
    public init(_ prefixes: [SharedPrefix], engine: Engine) {
        tokens = prefixes.map { prefix -> [TokenID] in
            switch prefix {
            case .system(let content):
                let system = ChatMessage(role: "system", content: content)
                guard let a = try? engine.tokens(of: .chat([system, ChatMessage(role: "user", content: "A")])),
                      let b = try? engine.tokens(of: .chat([system, ChatMessage(role: "user", content: "B")])) else { return [] }
                return Array(zip(a, b).prefix { $0.0 == $0.1 }.map(\.0))
            case .text(let text):
                return (try? engine.tokens(of: .text(text)))?.dropLast().map { $0 } ?? []
            }
        }.filter { !$0.isEmpty }
    }

    /// How many leading tokens of a prompt are a declared shared prefix (the longest that matches).
    public func length(of prompt: [TokenID]) -> Int {
        tokens.filter { prompt.starts(with: $0) }.map(\.count).max() ?? 0
    }
}
