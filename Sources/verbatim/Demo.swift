import ArgumentParser
import Foundation
import Verbatim
import VerbatimKernels
import VerbatimModel

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Same input, same bits: identical requests under concurrent mixed load give one completion.")

    @OptionGroup var model: ModelOption
    @Option(help: "Identical requests.") var requests = 100
    @Option(help: "Other requests mixed in (other prompts, lengths, sampling).") var others = 50
    @Option(help: "Requests in flight at once.") var concurrency = 16
    @Option(help: "Tokens per identical request.") var maxTokens = 48

    func run() async throws {
        let file = try model.open()
        let engine: Engine
        do {
            var configuration = EngineConfiguration()
            configuration.kvMemoryBytes = 256 << 20
            engine = try Engine(model: LlamaModel(file: file), tokenizer: Tokenizer(file: file), configuration: configuration)
        } catch {
            throw CLIError("\(model.path): \(error)")
        }
        let question = "Explain in two sentences why a cache needs deterministic inference."
        let prompt = Prompt.chat([ChatMessage(role: "user", content: question)])
        let parameters = GenerateParameters(maxTokens: maxTokens, logprobs: true)
        print("model      \(model.path)")
        print("digest     \(engine.model.digest)")
        print("numerics   \(engine.numericsProfile), kernels \(KernelConfig.isa), \(KernelConfig.threads) threads")
        print("request    \"\(question)\" (greedy, \(maxTokens) tokens)\n")

        func run(_ p: Prompt, _ params: GenerateParameters) async throws -> (String, [UInt32], GenerationSummary?) {
            var text = "", bits: [UInt32] = [], summary: GenerationSummary?
            for await event in try engine.generate(p, parameters: params) {
                switch event {
                case .token(let t): text += t.text; if let lp = t.logprob { bits.append(lp.bitPattern) }
                case .summary(let s): summary = s
                }
            }
            return (text, bits, summary)
        }
        let (aloneText, aloneBits, aloneSummary) = try await run(prompt, parameters)
        print("alone      \(aloneSummary.map { String(format: "%.0f ms", $0.totalTime / .milliseconds(1)) } ?? "")")
        print("           \(aloneText.debugDescription)\n")

        let topics = ["the sea", "prime numbers", "a red bicycle", "coffee", "the moon", "rain", "chess", "bread"]
        var kinds = Array(repeating: -1, count: requests) + Array(0..<others)
        kinds.shuffle()
        let start = ContinuousClock.now
        let results = try await withThrowingTaskGroup(of: (String, [UInt32])?.self) { group in
            var inFlight = 0
            var out: [(String, [UInt32])] = []
            for kind in kinds {
                if inFlight >= concurrency, let r = try await group.next() { inFlight -= 1; if let r { out.append(r) } }
                inFlight += 1
                group.addTask {
                    if kind < 0 { let (t, b, _) = try await run(prompt, parameters); return (t, b) }
                    var p = GenerateParameters(maxTokens: 8 + kind % 60, temperature: kind % 2 == 0 ? 0 : 0.9, seed: UInt64(kind))
                    p.stopAtEOS = kind % 3 != 0
                    _ = try await run(.chat([ChatMessage(role: "user", content: "Say something about \(topics[kind % topics.count]).")]), p)
                    return nil
                }
            }
            for try await r in group { if let r { out.append(r) } }
            return out
        }
        let seconds = (ContinuousClock.now - start) / .seconds(1)
        let uniqueTexts = Set(results.map(\.0)).count
        let uniqueLogprobs = Set(results.map(\.1)).count
        let sameAsAlone = results.allSatisfy { $0.0 == aloneText && $0.1 == aloneBits }
        print(String(format: "under load %d identical + %d other requests, %d in flight, %.1f s", requests, others, concurrency, seconds))
        print("           \(uniqueTexts) unique completion\(uniqueTexts == 1 ? "" : "s"), \(uniqueLogprobs) unique logprob vector\(uniqueLogprobs == 1 ? "" : "s"), \(sameAsAlone ? "bitwise equal to the request run alone" : "DIFFERENT from the request run alone")")
        await engine.shutdown()
        if uniqueTexts != 1 || uniqueLogprobs != 1 || !sameAsAlone { throw ExitCode(1) }
    }
}
