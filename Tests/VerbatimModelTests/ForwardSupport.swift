import Testing
import VerbatimKernels
@testable import VerbatimModel

/// A forward pass over a fresh KV cache.
func makePass(_ model: LlamaModel, blockSize: Int = 16, blocks: Int = 256, maxTokens: Int = 128,
              kv: KVType = .f32) -> ForwardPass {
    ForwardPass(model: model, kv: KVPool(config: model.config, kvType: kv, blockSize: blockSize, blockCount: blocks),
                maxTokens: maxTokens)
}

/// Logits at every position of `tokens` run as one sequence, `chunk` positions per step.
func allLogits(_ pass: ForwardPass, _ tokens: [TokenID], chunk: Int, sequence: SequenceID = 0) throws -> [[Float]] {
    var out: [[Float]] = []
    var start = 0
    while start < tokens.count {
        let end = min(start + chunk, tokens.count)
        try pass.step((start..<end).map { BatchToken(sequence: sequence, position: $0, token: tokens[$0], wantsLogits: true) }) {
            _, logits in out.append(Array(logits))
        }
        start = end
    }
    return out
}

/// Records a bitwise comparison of two logit rows: how many differ and where the first is.
func expectBitwiseEqual(_ a: [Float], _ b: [Float], _ what: @autoclosure () -> String,
                        sourceLocation: SourceLocation = #_sourceLocation) {
    let (count, first) = bitwiseDifferences(a, b)
    #expect(count == 0, "\(what()): \(count) of \(a.count) values differ, first at \(first ?? -1) (\(first.map { "\(a[$0]) vs \(b[$0])" } ?? ""))",
            sourceLocation: sourceLocation)
}

func randomTokens(_ count: Int, vocab: Int, _ rng: inout SplitMix64) -> [TokenID] {
    (0..<count).map { _ in TokenID(rng.next() % UInt64(vocab)) }
}

/// Runs the target sequence and random companions together: every step takes a random chunk
/// (1...maxChunk tokens) of every unfinished sequence, the sequences in random order. Returns
/// the target's logits at every position.
func mixedRun(_ pass: ForwardPass, target: [TokenID], companions: [[TokenID]], maxChunk: Int,
              _ rng: inout SplitMix64) throws -> [[Float]] {
    var sequences = [target] + companions
    var next = [Int](repeating: 0, count: sequences.count)
    // Random sequence ids, so the target is not always sequence 0.
    let ids = (0..<sequences.count).map { _ in SequenceID(rng.next() % 1_000_000) * 8 }.enumerated().map { $0.element + $0.offset }
    var targetLogits = [[Float]](repeating: [], count: target.count)
    while next.indices.contains(where: { next[$0] < sequences[$0].count }) {
        var batch: [BatchToken] = []
        var order = Array(sequences.indices)
        order.shuffle(using: &rng)
        for s in order where next[s] < sequences[s].count {
            let n = min(Int(rng.next() % UInt64(maxChunk)) + 1, sequences[s].count - next[s], pass.maxTokens - batch.count)
            guard n > 0 else { continue }
            for p in next[s]..<(next[s] + n) {
                batch.append(BatchToken(sequence: ids[s], position: p, token: sequences[s][p], wantsLogits: s == 0 || rng.next() % 3 == 0))
            }
            next[s] += n
        }
        try pass.step(batch) { index, logits in
            if batch[index].sequence == ids[0] { targetLogits[batch[index].position] = Array(logits) }
        }
    }
    for id in ids { pass.kv.release(id) }
    sequences.removeAll()
    return targetLogits
}

/// Calls `body` with a view of each array's bytes, all valid for the whole call (copied into
/// one allocation: a pointer taken inside `withUnsafeBytes` must not outlive that call).
func withByteViews<R>(_ arrays: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
    let total = arrays.reduce(0) { $0 + $1.count }
    let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(total, 1), alignment: 64)
    defer { storage.deallocate() }
    var views: [UnsafeRawBufferPointer] = []
    var offset = 0
    for a in arrays {
        a.withUnsafeBytes { storage.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: a.count) }
        views.append(UnsafeRawBufferPointer(start: storage.baseAddress! + offset, count: a.count))
        offset += a.count
    }
    return try body(views)
}
