import Foundation
import Testing
@testable import Verbatim
import VerbatimModel

/// The scheduler decides who waits, never what anyone gets.
@Suite("Scheduling", .serialized)
struct SchedulingTests {
    /// Prompts from a few tokens to several hundred: they need from one to a dozen chunks.
    static let prompts: [String] = (0..<8).map { i in
        "Request \(i): " + String(repeating: "The keeper climbed the stairs to light the lamp again. ", count: [1, 40, 3, 25, 0, 12, 60, 6][i])
    }

    static func parameters(_ i: Int) -> GenerateParameters {
        GenerateParameters(maxTokens: 10, temperature: 0.8, seed: UInt64(100 + i), stopAtEOS: false, logprobs: true)
    }

    @Test("every prefill order gives every request the bits it gets alone (mixed prompt lengths, 48-token steps, sampled)")
    func ordersKeepBits() async throws {
        let reference = try realEngine { $0.maxBatchTokens = 48 }
        var alone: [Completion] = []
        for (i, p) in Self.prompts.enumerated() { alone.append(await collect(try reference.generate(.text(p), parameters: Self.parameters(i)))) }
        await reference.shutdown()
        for order in PrefillOrder.allCases {
            let engine = try realEngine { $0.maxBatchTokens = 48; $0.prefillOrder = order; $0.maxPrefillDelaySteps = 2 }
            let together = await withTaskGroup(of: (Int, Completion).self) { group in
                for (i, p) in Self.prompts.enumerated() {
                    try? await Task.sleep(for: .milliseconds(3))   // staggered arrivals: chunks interleave
                    group.addTask { (i, await collect(try! engine.generate(.text(p), parameters: Self.parameters(i)))) }
                }
                return await group.reduce(into: [Int: Completion]()) { $0[$1.0] = $1.1 }
            }
            let differing = (0..<Self.prompts.count).filter { together[$0] != alone[$0] }
            #expect(differing.isEmpty, "\(order): requests \(differing) differ from the same request alone")
            #expect(alone.allSatisfy { $0.tokens.count == 10 && $0.logprobBits.count == 10 })
            await engine.shutdown()
        }
    }

    /// Steps from submitting a short prompt, behind three long ones already prefilling, to its first token.
    func shortPromptWait(_ order: PrefillOrder) async throws -> (short: Int, longFinished: Bool) {
        let engine = try realEngine { $0.maxBatchTokens = 64; $0.prefillOrder = order }
        let long = String(repeating: "The keeper climbed the stairs to light the lamp again. ", count: 50)   // ~600 tokens each
        let longs = (0..<3).map { i in
            Task { await collect(try! engine.generate(.text("\(i) " + long), parameters: GenerateParameters(maxTokens: 2))) }
        }
        #expect(await eventually { engine.stats.steps >= 2 })
        let submitted = engine.stats.steps
        var firstTokenStep = Int.max
        for await event in try engine.generate(.text("Hi"), parameters: GenerateParameters(maxTokens: 1)) {
            if case .token = event { firstTokenStep = engine.stats.steps }
        }
        var finished = true
        for task in longs { finished = await task.value.tokens.count == 2 && finished }
        await engine.shutdown()
        return (firstTokenStep - submitted, finished)
    }

    @Test("shortest-first lets a short prompt through three long prefills at once; in arrival order it waits for all of them")
    func shortPromptsGoFirst() async throws {
        let arrival = try await shortPromptWait(.arrival)
        let shortest = try await shortPromptWait(.shortestFirst)
        #expect(shortest.short <= 3, "shortest-first: the short prompt waited \(shortest.short) steps")
        #expect(arrival.short >= 10, "arrival: the short prompt waited \(arrival.short) steps")
        #expect(arrival.longFinished && shortest.longFinished)
    }

    @Test("shortest-first never starves a long prompt: under a stream of short ones it gets rows at least every maxPrefillDelaySteps + 1 steps")
    func noStarvation() async throws {
        let engine = try realEngine { $0.maxBatchTokens = 32; $0.prefillOrder = .shortestFirst; $0.maxPrefillDelaySteps = 3 }
        let long = String(repeating: "The keeper climbed the stairs to light the lamp again. ", count: 20)   // ~240 tokens: 8 chunks alone
        // A stream of short prompts that alone would fill every step.
        let shorts = Task {
            await withTaskGroup(of: Void.self) { group in
                for i in 0..<60 {
                    group.addTask { _ = await collect(try! engine.generate(.text("Short prompt number \(i) asks for the lamp."),
                                                                           parameters: GenerateParameters(maxTokens: 1))) }
                    try? await Task.sleep(for: .milliseconds(2))
                }
            }
        }
        try await Task.sleep(for: .milliseconds(20))
        let submitted = engine.stats.steps
        var firstTokenStep = Int.max
        for await event in try engine.generate(.text(long), parameters: GenerateParameters(maxTokens: 1)) {
            if case .token = event { firstTokenStep = engine.stats.steps }
        }
        await shorts.value
        // 8 chunks, each after at most 3 steps passed over: within 8 * 4 steps (plus the one it arrived in).
        #expect(firstTokenStep - submitted <= 8 * 4 + 1, "the long prompt took \(firstTokenStep - submitted) steps")
        await engine.shutdown()
    }
}
