import Foundation
import Verbatim
import VerbatimModel

/// One request of a workload. Multi-round chats set `continuesConversation`: the runner puts
/// the conversation so far (earlier questions and the answers the engine gave) before it.
public struct ScriptedRequest: Sendable, Codable, Equatable {
    /// Names the request across configurations ("group 3 / question 2"): differences between
    /// two configurations are paired by it.
    public var label: String
    public var messages: [ChatMessage]
    public var maxTokens: Int
    /// Waited before sending (a user reading the previous answer).
    public var thinkMilliseconds: Int = 0
    public var continuesConversation = false
    /// Requests of the same group are meant to give one completion (the determinism workload).
    public var identicalGroup: String?
    public var temperature: Float = 0
    public var seed: UInt64 = 0

    public init(label: String, messages: [ChatMessage], maxTokens: Int) {
        self.label = label
        self.messages = messages
        self.maxTokens = maxTokens
    }
}

/// A client's requests, sent one after another.
public struct Script: Sendable, Codable, Equatable {
    public var requests: [ScriptedRequest]
    public init(_ requests: [ScriptedRequest]) { self.requests = requests }
}

/// Requests replayed through the engine: `clients` scripts run at once, each taking the next
/// waiting script when it finishes its own.
public struct Workload: Sendable, Codable, Equatable {
    public var name: String
    public var summary: String
    public var scripts: [Script]
    public var clients: Int

    public var requestCount: Int { scripts.reduce(0) { $0 + $1.requests.count } }

    /// Groups of requests sharing a system prompt: each group's system prompt, then a question
    /// of its own per request; requests of all groups interleaved at random.
    public static func sharedSystemPrompts(groups: Int = 4, promptsPerGroup: Int = 8, systemTokens: Int = 384, questionTokens: Int = 48,
                                           outputTokens: Int = 16, clients: Int = 4, seed: UInt64 = 1,
                                           corpus: Corpus, tokenizer: Tokenizer) -> Workload {
        var rng = Xoshiro256StarStar(seed: seed)
        var requests: [ScriptedRequest] = []
        for g in 0..<groups {
            let system = "You answer questions about licences. Reference text: " + corpus.passage(tokens: systemTokens, tokenizer: tokenizer, rng: &rng)
            for q in 0..<promptsPerGroup {
                let question = corpus.question(tokens: questionTokens, tokenizer: tokenizer, rng: &rng)
                requests.append(ScriptedRequest(label: "group \(g) / question \(q)",
                                                messages: [ChatMessage(role: "system", content: system), ChatMessage(role: "user", content: question)],
                                                maxTokens: outputTokens))
            }
        }
        requests.shuffle(using: &rng)
        return Workload(name: "shared-system-prompts",
                        summary: "\(groups) groups × \(promptsPerGroup) prompts, system ≈\(systemTokens) tokens, question ≈\(questionTokens), output \(outputTokens), \(clients) clients",
                        scripts: requests.map { Script([$0]) }, clients: clients)
    }

    /// Users in conversation: each round repeats the shared system prompt and the whole history,
    /// then asks a new question; users think between rounds.
    public static func multiRoundChat(users: Int = 4, rounds: Int = 4, systemTokens: Int = 256, questionTokens: Int = 32,
                                      answerTokens: Int = 24, thinkMilliseconds: Int = 50, seed: UInt64 = 2,
                                      corpus: Corpus, tokenizer: Tokenizer) -> Workload {
        var rng = Xoshiro256StarStar(seed: seed)
        let system = "You are a patient guide to software licences. Background: " + corpus.passage(tokens: systemTokens, tokenizer: tokenizer, rng: &rng)
        var scripts: [Script] = []
        for u in 0..<users {
            var turns: [ScriptedRequest] = []
            for r in 0..<rounds {
                var request = ScriptedRequest(label: "user \(u) / round \(r)",
                                              messages: [ChatMessage(role: "system", content: system),
                                                         ChatMessage(role: "user", content: corpus.question(tokens: questionTokens, tokenizer: tokenizer, rng: &rng))],
                                              maxTokens: answerTokens)
                request.continuesConversation = r > 0
                request.thinkMilliseconds = r > 0 ? thinkMilliseconds : 0
                turns.append(request)
            }
            scripts.append(Script(turns))
        }
        return Workload(name: "multi-round-chat",
                        summary: "\(users) users × \(rounds) rounds, system ≈\(systemTokens) tokens, question ≈\(questionTokens), answer \(answerTokens), think \(thinkMilliseconds) ms",
                        scripts: scripts, clients: users)
    }

    public enum RepeatOrder: String, Sendable, Codable, CaseIterable {
        /// All questions in a random order.
        case random
        /// All questions about one document, then the next document.
        case tile
        /// Document 0, 1, 2, ... then again: the farthest reuse distance.
        case interleave
    }

    /// Long documents, each asked several questions.
    public static func documentQA(documents: Int = 3, questions: Int = 4, documentTokens: Int = 1024, questionTokens: Int = 24,
                                  outputTokens: Int = 16, order: RepeatOrder = .random, clients: Int = 2, seed: UInt64 = 3,
                                  corpus: Corpus, tokenizer: Tokenizer) -> Workload {
        var rng = Xoshiro256StarStar(seed: seed)
        let texts = (0..<documents).map { _ in corpus.passage(tokens: documentTokens, tokenizer: tokenizer, rng: &rng) }
        var grid: [[ScriptedRequest]] = []
        for d in 0..<documents {
            grid.append((0..<questions).map { q in
                ScriptedRequest(label: "document \(d) / question \(q)",
                                messages: [ChatMessage(role: "user", content: "Document:\n" + texts[d] + "\n\nQuestion: "
                                                       + corpus.question(tokens: questionTokens, tokenizer: tokenizer, rng: &rng))],
                                maxTokens: outputTokens)
            })
        }
        var requests: [ScriptedRequest]
        switch order {
        case .tile: requests = grid.flatMap { $0 }
        case .interleave: requests = (0..<questions).flatMap { q in (0..<documents).map { grid[$0][q] } }
        case .random: requests = grid.flatMap { $0 }; requests.shuffle(using: &rng)
        }
        return Workload(name: "document-qa-\(order.rawValue)",
                        summary: "\(documents) documents ≈\(documentTokens) tokens × \(questions) questions, order \(order.rawValue), output \(outputTokens), \(clients) clients",
                        scripts: requests.map { Script([$0]) }, clients: clients)
    }

    /// `identical` copies of one sampled request mixed at random with `background` other
    /// requests of varied lengths, many clients at once: the batches each copy meets differ.
    /// The others' prompts are 1/6, 2/3, 2 and 4 times the probe's `promptTokens`.
    public static func determinism(identical: Int = 24, background: Int = 24, promptTokens: Int = 96, outputTokens: Int = 24, clients: Int = 8,
                                   temperature: Float = 0.8, seed: UInt64 = 4, corpus: Corpus, tokenizer: Tokenizer) -> Workload {
        var rng = Xoshiro256StarStar(seed: seed)
        let probe = [ChatMessage(role: "user", content: corpus.question(tokens: promptTokens, tokenizer: tokenizer, rng: &rng))]
        var requests: [ScriptedRequest] = (0..<identical).map { i in
            var r = ScriptedRequest(label: "identical \(i)", messages: probe, maxTokens: outputTokens)
            r.identicalGroup = "probe"
            r.temperature = temperature
            r.seed = 7
            return r
        }
        for b in 0..<background {
            let length = max(4, [promptTokens / 6, promptTokens * 2 / 3, promptTokens * 2, promptTokens * 4][b % 4])
            var r = ScriptedRequest(label: "background \(b)",
                                    messages: [ChatMessage(role: "user", content: corpus.question(tokens: length, tokenizer: tokenizer, rng: &rng))],
                                    maxTokens: 4 + b % 3 * 12)
            r.temperature = temperature
            r.seed = UInt64(b)
            requests.append(r)
        }
        requests.shuffle(using: &rng)
        return Workload(name: "determinism",
                        summary: "\(identical) identical requests of ≈\(promptTokens) tokens (T=\(temperature), fixed seed) among \(background) others, \(clients) clients",
                        scripts: requests.map { Script([$0]) }, clients: clients)
    }
}
