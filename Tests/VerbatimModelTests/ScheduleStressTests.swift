import Foundation
import Testing
import VerbatimKernels
@testable import VerbatimModel

/// The engine's schedule replayed at the forward-pass level: many sequences come and go, their
/// KV blocks are freed and reused by others, decode rows and prefill chunks share batches of
/// up to 256 rows, and some sequences skip steps (a slow reader). Every copy of one target
/// sequence must see the logits it sees alone, bit for bit, at every position.
@Suite("Engine-like schedules on the real model", .serialized)
struct ScheduleStressTests {
    struct Live {
        var id: SequenceID
        var tokens: [TokenID]       // prompt then continuation (teacher-forced)
        var promptCount: Int
        var next = 0                // positions fed so far
        var isTarget: Bool
    }

    @Test("copies of a target among arriving, leaving and pausing companions, with KV blocks reused, match the target alone")
    func targetCopiesMatchAlone() throws {
        let model = try RealModelForwardTests.model.get()
        let tokenizer = try Tokenizer(file: model.file)
        let prompt = try tokenizer.encodeChat([ChatMessage(role: "user", content: "Tell me a story about a lighthouse keeper.")])
        var rng = SplitMix64(seed: 77)
        let target = prompt + randomTokens(64, vocab: model.config.vocabularySize, &rng)
        let alone = try allLogits(makePass(model, blockSize: 32, blocks: 64, maxTokens: 256), target, chunk: target.count)

        let pass = ForwardPass(model: model, kv: KVPool(config: model.config, kvType: .f32, blockSize: 32, blockCount: 160),
                               maxTokens: 256, logitRows: 64)
        let others = ["Write a short poem about the sea.", "What is 17 times 23?", "List three colors.", "Describe a rainy day."]
        var live: [Live] = []
        var nextID: SequenceID = 0
        var targetsStarted = 0, targetsDone = 0, stepCount = 0
        let targetsWanted = 40
        var mismatches = 0
        while targetsDone < targetsWanted {
            // Arrivals: keep up to 24 in flight; blocks must fit (as the engine's admission does).
            while live.count < 24, rng.next() % 3 != 0 {
                let isTarget = targetsStarted < targetsWanted && rng.next() % 2 == 0
                var tokens = target, promptCount = prompt.count
                if !isTarget {
                    let p = try tokenizer.encodeChat([ChatMessage(role: "user", content: others[Int(rng.next() % 4)])])
                    tokens = p + randomTokens(Int(rng.next() % 90) + 1, vocab: model.config.vocabularySize, &rng)
                    promptCount = p.count
                }
                let blocks = (tokens.count + 31) / 32
                guard blocks <= pass.kv.freeBlockCount else { break }
                try pass.kv.reserve(nextID, tokens: tokens.count)
                live.append(Live(id: nextID, tokens: tokens, promptCount: promptCount, isTarget: isTarget))
                nextID += 1
                if isTarget { targetsStarted += 1 }
            }
            // The batch: decode rows first (some readers are behind and skip), then prefill chunks.
            var batch: [BatchToken] = []
            var owners: [Int] = []
            for (i, s) in live.enumerated() where s.next >= s.promptCount && batch.count < 256 && rng.next() % 5 != 0 {
                batch.append(BatchToken(sequence: s.id, position: s.next, token: s.tokens[s.next], wantsLogits: true))
                owners.append(i)
            }
            for (i, s) in live.enumerated() where s.next < s.promptCount && batch.count < 256 {
                let end = min(s.promptCount, s.next + 256 - batch.count)
                for p in s.next..<end {
                    batch.append(BatchToken(sequence: s.id, position: p, token: s.tokens[p], wantsLogits: p == s.promptCount - 1))
                    owners.append(i)
                }
            }
            if batch.isEmpty { continue }
            try pass.step(batch) { row, logits in
                let s = live[owners[row]]
                guard s.isTarget else { return }
                let (count, first) = bitwiseDifferences(Array(logits), alone[batch[row].position])
                if count > 0 {
                    mismatches += 1
                    Issue.record("step \(stepCount): target \(s.id) position \(batch[row].position), batch row \(row) of \(batch.count): \(count) logits differ, first at \(first ?? -1)")
                }
            }
            stepCount += 1
            for row in batch.indices { live[owners[row]].next = max(live[owners[row]].next, batch[row].position + 1) }
            // Leavers: finished sequences, and now and then one abandoned midway.
            live.removeAll { s in
                let done = s.next >= s.tokens.count || (!s.isTarget && rng.next() % 40 == 0)
                if done { pass.kv.release(s.id); if s.isTarget { targetsDone += 1 } }
                return done
            }
        }
        #expect(mismatches == 0)
        print("schedule stress: \(stepCount) steps, \(targetsDone) target copies")
    }
}
