import Synchronization

/// Bounds one tokenization: the most tokens it may produce, and a flag another thread can
/// raise to stop it. The tokenizer checks both between pre-tokenized pieces (BPE), between
/// fragments (SentencePiece) and between special tokens while splitting them out, so an encode
/// that is stopped or grows too long ends after at most one more piece, never after the
/// whole text. A server gives each request one, and cancels it when the client goes away.
public final class EncodeBudget: Sendable {
    /// More tokens than this ends the encode with `TokenizerError(.tooManyTokens)`.
    public let maxTokens: Int
    private let cancelled = Atomic<Bool>(false)
    private let work = Atomic<Int>(0)

    /// A budget of at most `maxTokens` tokens (by default unlimited), not cancelled.
    public init(maxTokens: Int = .max) { self.maxTokens = maxTokens }

    /// Stops the encode using this budget (it throws `TokenizerError(.cancelled)`).
    public func cancel() { cancelled.store(true, ordering: .relaxed) }

    /// Whether `cancel()` has been called; once true it stays true.
    public var isCancelled: Bool { cancelled.load(ordering: .relaxed) }

    /// Units of work done so far: characters scanned, candidate positions tried while splitting
    /// out special tokens, merge candidates pushed and popped. What the tests count to show
    /// that work grows linearly (times a logarithm) with the input.
    package var workDone: Int { work.load(ordering: .relaxed) }

    func add(work units: Int) { work.add(units, ordering: .relaxed) }

    /// Throws when cancelled or when `produced` tokens are over the limit.
    func check(produced: Int) throws(TokenizerError) {
        if isCancelled { throw TokenizerError(.cancelled, "tokenization was cancelled") }
        if produced > maxTokens { throw tooManyTokens }
    }

    var tooManyTokens: TokenizerError { TokenizerError(.tooManyTokens, "the text is longer than \(maxTokens) tokens") }
}
