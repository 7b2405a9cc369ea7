import VerbatimKernels

/// One token of a flat batch: which sequence it belongs to, its absolute position there, and
/// whether the caller wants the logits computed at this position.
public struct BatchToken: Sendable, Equatable {
    /// The sequence this token belongs to (its KV memory entry).
    public var sequence: SequenceID
    /// The token's 0-based position in its sequence; below the model's context length.
    public var position: Int
    /// The token id; below the model's vocabulary size.
    public var token: TokenID
    /// Whether `ForwardPass.step` computes the logits of this row and passes them to its handler.
    public var wantsLogits: Bool

    /// A batch row; by default no logits are computed for it.
    public init(sequence: SequenceID, position: Int, token: TokenID, wantsLogits: Bool = false) {
        self.sequence = sequence
        self.position = position
        self.token = token
        self.wantsLogits = wantsLogits
    }
}

/// Why `ForwardPass.step` rejected a batch: a `code` to match on and a readable `message`.
/// A rejected batch leaves the KV memory's written positions unchanged.
public struct ForwardError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The kind of failure.
    public enum Code: String, Sendable {
        /// The batch holds no tokens.
        case emptyBatch
        /// The batch holds more tokens than the pass's `maxTokens`.
        case batchTooLarge
        /// A token id is negative or not below the vocabulary size.
        case invalidToken
        /// A position is outside the context, does not follow its sequence's previous row in the batch,
        /// or would leave a gap after the positions already written.
        case invalidPosition
        /// The KV memory has too few free blocks for a sequence's positions.
        case outOfKVMemory
    }
    /// The kind of failure.
    public let code: Code
    /// What was wrong, naming the batch row and sequence where there is one.
    public let message: String
    public var description: String { "forward error (\(code.rawValue)): \(message)" }
}

/// Runs the forward pass over flat batches: prefill chunks of some sequences and decode
/// tokens of others go through one step. One data flow for every architecture: the LLaMA
/// blocks, with the differences of `ArchitectureTraits` (biases, Q/K norms, post-norms,
/// GELU, sliding windows) where the model has them. Every row's result is a pure function of its own
/// sequence (NUMERICS.md), so it does not depend on what else is in the batch.
///
/// Owns its scratch memory (sized once for `maxTokens` rows) and uses a `KVPool` it is given.
/// One owner at a time: not thread-safe.
public final class ForwardPass {
    /// The weights every step runs (shared read-only).
    public let model: LlamaModel
    /// The KV memory the steps write keys and values to and attend over.
    public let kv: KVPool
    /// The most tokens one `step` takes: rows of the scratch buffers.
    public let maxTokens: Int
    /// Rows of logits computed per output matrix call (the logits buffer holds this many).
    public let logitRows: Int

    /// Called after each named intermediate when set (debug mode): name such as
    /// "blk.3.attn_out", rows, columns, data (rows, columns). Costs a copy-free callback. While
    /// set, the last layer runs every row to the end (not only those that want logits), so each
    /// intermediate has all rows.
    public var observer: ((_ name: String, _ rows: Int, _ columns: Int, _ data: UnsafePointer<Float>) -> Void)?

    // Scratch, shape comments in rows x columns (T = maxTokens, L = logitRows).
    private let x: UnsafeMutablePointer<Float>        // (T, D) residual stream
    private let xb: UnsafeMutablePointer<Float>       // (T, D) normalised input of a block
    private let q: UnsafeMutablePointer<Float>        // (T, Q) Q = H * head dimension
    private let k: UnsafeMutablePointer<Float>        // (T, kvD)
    private let v: UnsafeMutablePointer<Float>        // (T, kvD)
    private let attn: UnsafeMutablePointer<Float>     // (T, Q) attention output, heads concatenated
    private let proj: UnsafeMutablePointer<Float>     // (T, D) output of wo / wDown
    private let gate: UnsafeMutablePointer<Float>     // (T, F)
    private let up: UnsafeMutablePointer<Float>       // (T, F)
    private let act: UnsafeMutablePointer<Float>      // (T, F) silu(gate) * up (or gelu)
    private let outRows: UnsafeMutablePointer<Float>  // (L, D) gathered final hidden rows
    private let outNorm: UnsafeMutablePointer<Float>  // (L, D)
    private let logits: UnsafeMutablePointer<Float>   // (L, vocab)
    private let positions: UnsafeMutablePointer<Int32>     // (T)
    private let tableOffsets: UnsafeMutablePointer<Int32>  // (T) where each row's block table starts
    private let blockTables: UnsafeMutablePointer<Int32>   // (T * maxBlocksPerSequence)
    private let maxBlocksPerSequence: Int
    private var batchSequences: [(sequence: SequenceID, first: Int, last: Int, offset: Int32)] = []

    /// Where every scratch buffer lives: committed as written, given back by `discardScratch()`.
    private let scratch: ScratchMemory
    /// Bytes of the scratch buffers allocated at init (activations, logits, positions, block tables).
    public private(set) var scratchBytes = 0

    /// Allocates the scratch for `maxTokens` batch rows and `logitRows` rows of logits (both must be positive).
    public init(model: LlamaModel, kv: KVPool, maxTokens: Int = 512, logitRows: Int = 16) {
        precondition(maxTokens > 0 && logitRows > 0)
        self.model = model
        self.kv = kv
        self.maxTokens = maxTokens
        self.logitRows = logitRows
        let c = model.config
        let (d, kvD, f, vocab) = (c.embeddingLength, c.kvDimension, c.feedForwardLength, c.vocabularySize)
        maxBlocksPerSequence = (c.contextLength + kv.blockSize - 1) / kv.blockSize
        // The buffers, in order, each starting on a 64-byte boundary of one scratch region.
        let t = maxTokens, l = logitRows, qw = c.queryWidth
        let sizes = [t * d, t * d, t * qw, t * kvD, t * kvD, t * qw, t * d, t * f, t * f, t * f, l * d, l * d, l * vocab].map { $0 * 4 }
            + [t * 4, t * 4, t * maxBlocksPerSequence * 4]
        let rounded = sizes.map { (max($0, 1) + 63) / 64 * 64 }
        let region = ScratchMemory(byteCount: rounded.reduce(0, +))
        var offset = 0
        var bytes = 0
        func buffer<T>(_ count: Int, _: T.Type = T.self) -> UnsafeMutablePointer<T> {
            let size = count * MemoryLayout<T>.stride
            let p = (region.base + offset).bindMemory(to: T.self, capacity: max(count, 1))
            offset += (max(size, 1) + 63) / 64 * 64
            bytes += size
            return p
        }
        x = buffer(maxTokens * d); xb = buffer(maxTokens * d); q = buffer(maxTokens * c.queryWidth)
        k = buffer(maxTokens * kvD); v = buffer(maxTokens * kvD)
        attn = buffer(maxTokens * c.queryWidth); proj = buffer(maxTokens * d)
        gate = buffer(maxTokens * f); up = buffer(maxTokens * f); act = buffer(maxTokens * f)
        outRows = buffer(logitRows * d); outNorm = buffer(logitRows * d); logits = buffer(logitRows * vocab)
        positions = buffer(maxTokens); tableOffsets = buffer(maxTokens)
        blockTables = buffer(maxTokens * maxBlocksPerSequence)
        precondition(offset <= region.byteCount)
        scratch = region
        scratchBytes = bytes
        batchSequences.reserveCapacity(maxTokens)
    }

    /// Gives the scratch memory's pages back to the OS (activations and logits; they read as
    /// zeros until the next step writes them). Every step writes what it reads, so no output
    /// changes; the engine calls it when it goes idle.
    public func discardScratch() { scratch.discard() }

    /// Weights + KV + scratch, in bytes.
    public var residentBytes: Int { model.residentBytes + kv.byteCount + scratchBytes }

    /// Runs one step. For each token that wants logits, in batch order, calls `handle` with its
    /// index in `tokens` and its logits (vocab floats, valid during the call only).
    ///
    /// Rules: each sequence's tokens appear in batch order at consecutive positions, the first
    /// no later than the positions already written (earlier positions are overwritten and the
    /// rest forgotten); blocks are reserved as needed.
    public func step(_ tokens: [BatchToken],
                     logits handle: (_ index: Int, _ logits: UnsafeBufferPointer<Float>) throws -> Void = { _, _ in }) throws {
        var rows = tokens.count  // rows the kernels run on: all, then those wanting logits in the last layer
        let c = model.config
        guard rows > 0 else { throw ForwardError(code: .emptyBatch, message: "the batch is empty") }
        guard rows <= maxTokens else {
            throw ForwardError(code: .batchTooLarge, message: "\(rows) tokens in one step; this pass holds at most \(maxTokens)")
        }
        try prepare(tokens)

        let (d, kvD, f, qw, hd) = (c.embeddingLength, c.kvDimension, c.feedForwardLength, c.queryWidth, c.headDimension)
        let traits = c.traits
        let eps = c.rmsNormEpsilon
        for (i, t) in tokens.enumerated() { model.embed(t.token, into: x + i * d) }
        if traits.scalesEmbeddings { // Gemma: embeddings times √D, rounded to f32 once
            let s = Float(d).squareRoot()
            for i in 0..<(rows * d) { x[i] = x[i] * s }
        }
        observe("token_embd", rows, d, x)

        /// y (n rows of `dim`) = rmsnorm(y) with `weight`, in place.
        func normInPlace(_ y: UnsafeMutablePointer<Float>, _ weight: [Float], rows n: Int, dim: Int) {
            weight.withUnsafeBufferPointer { Kernels.rmsNorm(x: y, weight: $0.baseAddress!, y: y, rows: n, dim: dim, eps: eps) }
        }
        /// Each of the first n rows of y (width `bias.count`) += bias.
        func addBias(_ y: UnsafeMutablePointer<Float>, _ bias: [Float], rows n: Int) {
            bias.withUnsafeBufferPointer { b in for r in 0..<n { Kernels.add(y + r * b.count, b.baseAddress!, count: b.count) } }
        }

        for (l, layer) in model.layers.enumerated() {
            // Attention block: x += wo(attention(rope(wq xb), rope(wk xb), wv xb)), xb = rmsnorm(x)
            layer.attentionNorm.withUnsafeBufferPointer {
                Kernels.rmsNorm(x: x, weight: $0.baseAddress!, y: xb, rows: rows, dim: d, eps: eps)
            }
            observe(l, "attn_norm", rows, d, xb)
            // The last layer's output feeds only the logits: the rows that want none need their
            // keys and values and nothing more, so that layer computes queries, attention, its
            // output and the FFN for the rows that want logits alone (gatherOutputRows).
            let lastOnly = l == model.layers.count - 1 && observer == nil
            if lastOnly {
                Kernels.linear(x: xb, rows: rows, (layer.wk, k), (layer.wv, v))
            } else {
                Kernels.linear(x: xb, rows: rows, (layer.wq, q), (layer.wk, k), (layer.wv, v))
            }
            if let b = layer.kBias { addBias(k, b, rows: rows) }   // Qwen2
            if let b = layer.vBias { addBias(v, b, rows: rows) }
            if let w = layer.kNorm { normInPlace(k, w, rows: rows * c.kvHeadCount, dim: hd) }   // Qwen3, Gemma 3
            let local = c.isSlidingWindowLayer(l)
            let table = local ? (model.localRope ?? model.rope) : model.rope
            Kernels.rope(x: k, rows: rows, heads: c.kvHeadCount, positions: positions, table: table, style: traits.ropeStyle)
            // K/V are written first, so fresh and cached keys are read the same way. Every
            // position is kept, also on sliding-window layers (the window is applied when reading).
            kv.memory.write(layer: l, k: k, v: v, rows: rows, blockTables: blockTables,
                               tableOffsets: tableOffsets, positions: positions)
            if lastOnly {
                rows = gatherOutputRows(tokens)
                if rows == 0 { break }
                Kernels.linear(x: xb, weights: layer.wq, y: q, rows: rows)
            }
            if let b = layer.qBias { addBias(q, b, rows: rows) }
            if let w = layer.qNorm { normInPlace(q, w, rows: rows * c.headCount, dim: hd) }
            Kernels.rope(x: q, rows: rows, heads: c.headCount, positions: positions, table: table, style: traits.ropeStyle)
            observe(l, "q", rows, qw, q); observe(l, "k", rows, kvD, k); observe(l, "v", rows, kvD, v)
            Kernels.attention(q: q, out: attn, rows: rows, heads: c.headCount, memory: kv.memory, layer: l,
                              blockTables: blockTables, tableOffsets: tableOffsets, positions: positions,
                              scale: c.attentionScale, window: local ? c.slidingWindow : nil)
            observe(l, "attn", rows, qw, attn)
            Kernels.linear(x: attn, weights: layer.wo, y: proj, rows: rows)
            if let w = layer.postAttentionNorm { normInPlace(proj, w, rows: rows, dim: d) }   // Gemma 3
            observe(l, "attn_out", rows, d, proj)
            Kernels.add(x, proj, count: rows * d)
            observe(l, "ffn_inp", rows, d, x)

            // Feed-forward block: x += wDown(act(wGate xb) * wUp xb), xb = rmsnorm(x)
            layer.ffnNorm.withUnsafeBufferPointer {
                Kernels.rmsNorm(x: x, weight: $0.baseAddress!, y: xb, rows: rows, dim: d, eps: eps)
            }
            observe(l, "ffn_norm", rows, d, xb)
            Kernels.linear(x: xb, rows: rows, (layer.wGate, gate), (layer.wUp, up))
            switch traits.activation {
            case .silu: Kernels.swiGLU(gate: gate, up: up, out: act, count: rows * f)
            case .geluTanh: Kernels.geGLU(gate: gate, up: up, out: act, count: rows * f)
            }
            observe(l, "ffn_act", rows, f, act)
            Kernels.linear(x: act, weights: layer.wDown, y: proj, rows: rows)
            if let w = layer.postFFNNorm { normInPlace(proj, w, rows: rows, dim: d) }   // Gemma 3
            observe(l, "ffn_out", rows, d, proj)
            Kernels.add(x, proj, count: rows * d)
            observe(l, "out", rows, d, x)
        }

        for s in batchSequences {
            try! kv.didWrite(s.sequence, start: tokens[s.first].position, end: tokens[s.last].position + 1)
        }
        try computeLogits(tokens, gathered: observer == nil, handle)
    }

    /// Moves the rows that want logits to the front of the last layer's inputs (the
    /// normalised and the residual stream, positions and block table offsets), in batch order,
    /// and returns how many there are. Each row's result depends only on its own sequence, so
    /// the rows it keeps get the bits they get with every row computed.
    private func gatherOutputRows(_ tokens: [BatchToken]) -> Int {
        let d = model.config.embeddingLength
        var kept = 0
        for (i, t) in tokens.enumerated() where t.wantsLogits {
            if i != kept { // kept < i: the rows do not overlap
                (xb + kept * d).update(from: xb + i * d, count: d)
                (x + kept * d).update(from: x + i * d, count: d)
                positions[kept] = positions[i]
                tableOffsets[kept] = tableOffsets[i]
            }
            kept += 1
        }
        return kept
    }

    /// Output head for the rows that want logits, `logitRows` at a time.
    /// `gathered`: the final hidden rows that want logits are the first rows of x, in batch
    /// order (gatherOutputRows); otherwise row i of x is token i's.
    private func computeLogits(_ tokens: [BatchToken], gathered: Bool,
                               _ handle: (Int, UnsafeBufferPointer<Float>) throws -> Void) throws {
        let c = model.config
        let (d, vocab) = (c.embeddingLength, c.vocabularySize)
        var pending: [Int] = []  // indices of the gathered rows (at most logitRows)
        pending.reserveCapacity(logitRows)
        func flush() throws {
            guard !pending.isEmpty else { return }
            let n = pending.count
            model.outputNorm.withUnsafeBufferPointer {
                Kernels.rmsNorm(x: outRows, weight: $0.baseAddress!, y: outNorm, rows: n, dim: d, eps: c.rmsNormEpsilon)
            }
            observe("result_norm", n, d, outNorm)
            Kernels.linear(x: outNorm, weights: model.output, y: logits, rows: n)
            observe("result_output", n, vocab, logits)
            for (r, index) in pending.enumerated() {
                try handle(index, UnsafeBufferPointer(start: logits + r * vocab, count: vocab))
            }
            pending.removeAll(keepingCapacity: true)
        }
        var row = 0  // the row of x holding the next wanted token's final hidden state
        for (i, t) in tokens.enumerated() where t.wantsLogits {
            (outRows + pending.count * d).update(from: x + (gathered ? row : i) * d, count: d)
            row += 1
            pending.append(i)
            if pending.count == logitRows { try flush() }
        }
        try flush()
    }

    /// Validates the batch, reserves KV blocks, fills positions and block tables.
    private func prepare(_ tokens: [BatchToken]) throws {
        let c = model.config
        batchSequences.removeAll(keepingCapacity: true)
        for (i, t) in tokens.enumerated() {
            guard t.token >= 0 && Int(t.token) < c.vocabularySize else {
                throw ForwardError(code: .invalidToken, message: "token id \(t.token) at batch row \(i) is out of range (vocabulary has \(c.vocabularySize) tokens)")
            }
            guard t.position >= 0 && t.position < c.contextLength else {
                throw ForwardError(code: .invalidPosition, message: "position \(t.position) at batch row \(i) is outside the context of \(c.contextLength) tokens")
            }
            if let s = batchSequences.firstIndex(where: { $0.sequence == t.sequence }) {
                guard t.position == tokens[batchSequences[s].last].position + 1 else {
                    throw ForwardError(code: .invalidPosition, message: "sequence \(t.sequence): position \(t.position) at batch row \(i) does not follow position \(tokens[batchSequences[s].last].position)")
                }
                batchSequences[s].last = i
            } else {
                let written = kv.length(of: t.sequence)
                guard t.position <= written else {
                    throw ForwardError(code: .invalidPosition, message: "sequence \(t.sequence) has \(written) positions written; row \(i) at position \(t.position) would leave a gap")
                }
                batchSequences.append((t.sequence, i, i, 0))
            }
        }
        var offset: Int32 = 0
        for s in batchSequences.indices {
            let sequence = batchSequences[s].sequence
            do { try kv.reserve(sequence, tokens: tokens[batchSequences[s].last].position + 1) } catch {
                throw ForwardError(code: .outOfKVMemory, message: error.message)
            }
            let table = kv.blockTable(of: sequence)
            (blockTables + Int(offset)).update(from: table, count: table.count)
            batchSequences[s].offset = offset
            offset += Int32(table.count)
        }
        for (i, t) in tokens.enumerated() {
            positions[i] = Int32(t.position)
            tableOffsets[i] = batchSequences.first { $0.sequence == t.sequence }!.offset
        }
    }

    @inline(__always)
    private func observe(_ layer: Int, _ name: String, _ rows: Int, _ columns: Int, _ data: UnsafePointer<Float>) {
        if let observer { observer("blk.\(layer).\(name)", rows, columns, data) }
    }

    @inline(__always)
    private func observe(_ name: String, _ rows: Int, _ columns: Int, _ data: UnsafePointer<Float>) {
        if let observer { observer(name, rows, columns, data) }
    }
}
