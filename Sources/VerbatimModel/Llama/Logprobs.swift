import VerbatimKernels

/// The log-probabilities of one row of logits and its most likely tokens: the one place the
/// package computes them (generated and scored tokens in the engine, `ForwardPass.score` and
/// `greedy`). One vocabulary-sized buffer, filled again for each row: no allocation per row.
/// Values are the full softmax's (`Kernels.logSoftmax`), never renormalised by any sampler.
public struct LogprobRow {
    private var values: [Float]

    /// A row for a vocabulary of `vocabularySize` tokens (all zero until filled).
    public init(vocabularySize: Int) { values = [Float](repeating: 0, count: vocabularySize) }

    /// Computes the log-probabilities of `logits` (one row, the vocabulary's size).
    public mutating func fill(from logits: UnsafeBufferPointer<Float>) {
        precondition(logits.count == values.count, "a row of \(logits.count) logits for a vocabulary of \(values.count)")
        values.withUnsafeMutableBufferPointer { Kernels.logSoftmax(x: logits.baseAddress!, y: $0.baseAddress!, rows: 1, n: logits.count) }
    }

    /// log p(token) of the row last filled.
    public subscript(token: TokenID) -> Float { values[Int(token)] }

    /// The `k` most likely tokens of the row last filled, most likely first, ties to the lowest id.
    public func mostLikely(_ k: Int) -> [(id: TokenID, logprob: Float)] {
        values.withUnsafeBufferPointer { v in
            // A range, not a vocabulary-sized array of ids.
            firstInOrder(k, of: 0..<Int32(v.count)) { a, b in v[Int(a)] > v[Int(b)] || (v[Int(a)] == v[Int(b)] && a < b) }
                .map { (TokenID($0), v[Int($0)]) }
        }
    }
}
