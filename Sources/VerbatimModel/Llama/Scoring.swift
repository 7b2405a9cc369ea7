import VerbatimKernels

/// Teacher-forced scores of one token sequence.
public struct ScoreResult: Sendable {
    /// log p(tokens[i] | tokens[..<i]); nil for the first token, which has no prefix.
    public var logprobs: [Float?]
    /// The logits at the last position (vocab floats): the distribution of the next token.
    public var lastLogits: [Float]
}

extension ForwardPass {
    /// Scores `tokens` as one sequence, prefilled in chunks of `chunk` tokens (the bits do not
    /// depend on the chunk size). The sequence's KV stays in the cache; release it when done.
    public func score(_ tokens: [TokenID], sequence: SequenceID = 0, chunk: Int? = nil) throws -> ScoreResult {
        guard !tokens.isEmpty else { throw ForwardError(code: .emptyBatch, message: "nothing to score") }
        let vocab = model.config.vocabularySize
        var logprobs: [Float?] = [nil]
        logprobs.reserveCapacity(tokens.count)
        var lastLogits: [Float] = []
        var row = LogprobRow(vocabularySize: vocab)
        let size = min(chunk ?? maxTokens, maxTokens)
        var start = 0
        while start < tokens.count {
            let end = min(start + size, tokens.count)
            let batch = (start..<end).map { BatchToken(sequence: sequence, position: $0, token: tokens[$0], wantsLogits: true) }
            try step(batch) { index, logits in
                let position = batch[index].position
                if position + 1 < tokens.count {
                    row.fill(from: logits)
                    logprobs.append(row[tokens[position + 1]])
                } else {
                    lastLogits = Array(logits)
                }
            }
            start = end
        }
        return ScoreResult(logprobs: logprobs, lastLogits: lastLogits)
    }

    /// Greedy continuation (argmax, ties to the lowest id) of `prompt`: up to `maxTokens` new
    /// tokens, stopping after `stop` when given. Returns the new tokens and their logprobs.
    public func greedy(_ prompt: [TokenID], maxTokens: Int, stop: TokenID? = nil, sequence: SequenceID = 0,
                       chunk: Int? = nil) throws -> (tokens: [TokenID], logprobs: [Float]) {
        guard !prompt.isEmpty else { throw ForwardError(code: .emptyBatch, message: "the prompt is empty") }
        let vocab = model.config.vocabularySize
        var row = LogprobRow(vocabularySize: vocab)
        var next: TokenID = 0
        var nextLogprob: Float = 0
        func pick(_ logits: UnsafeBufferPointer<Float>) {
            next = TokenID(Kernels.argmax(x: logits.baseAddress!, n: vocab))
            row.fill(from: logits)
            nextLogprob = row[next]
        }
        let size = min(chunk ?? self.maxTokens, self.maxTokens)
        var start = 0
        while start < prompt.count {
            let end = min(start + size, prompt.count)
            let batch = (start..<end).map { BatchToken(sequence: sequence, position: $0, token: prompt[$0], wantsLogits: $0 == prompt.count - 1) }
            try step(batch) { _, logits in pick(logits) }
            start = end
        }
        var out: [TokenID] = []
        var logprobs: [Float] = []
        while out.count < maxTokens {
            out.append(next)
            logprobs.append(nextLogprob)
            if next == stop || out.count == maxTokens || prompt.count + out.count >= model.config.contextLength { break }
            try step([BatchToken(sequence: sequence, position: prompt.count + out.count - 1, token: next, wantsLogits: true)]) { _, logits in
                pick(logits)
            }
        }
        return (out, logprobs)
    }
}
