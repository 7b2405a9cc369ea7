import ArgumentParser
import Foundation
import Verbatim
import VerbatimCache
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
    @Option(help: "Cache folder (default: $VERBATIM_CACHE_DIR, else $XDG_CACHE_HOME/verbatim, else ~/.cache/verbatim).")
    var cache: String?

    /// LMDB transactions may not run in async code: read the stats from a synchronous function.
    static func statsOf(_ store: CacheStore) throws -> CacheStore.Stats {
        store.flush()
        return try store.stats()
    }

    func run() async throws {
        let file = try model.open()
        let folder = cache ?? CacheLocation.defaultFolder()
        let engine: Engine, cached: Engine, store: CacheStore
        do {
            let lm = try LlamaModel(file: file)
            let tokenizer = try Tokenizer(file: file)
            store = try CacheStore(directory: folder)
            var configuration = EngineConfiguration()
            configuration.kvMemoryBytes = 256 << 20
            engine = try Engine(model: lm, tokenizer: tokenizer, configuration: configuration)
            configuration.cache = store
            cached = try Engine(model: lm, tokenizer: tokenizer, configuration: configuration)
        } catch {
            throw CLIError("\(error)")
        }
        let question = "Explain in two sentences why a cache needs deterministic inference."
        // A base model without a chat template (such as Gemma 3 270M) gets plain text.
        let hasTemplate = engine.tokenizer.chatTemplate != nil
        func ask(system: String? = nil, _ user: String) -> Prompt {
            if hasTemplate {
                return .chat((system.map { [ChatMessage(role: "system", content: $0)] } ?? []) + [ChatMessage(role: "user", content: user)])
            }
            return .text((system.map { $0 + "\n\n" } ?? "") + "Question: \(user)\nAnswer:")
        }
        let prompt = ask(question)
        let parameters = GenerateParameters(maxTokens: maxTokens, logprobs: true)
        print("model      \(model.path)")
        print("digest     \(engine.model.digest)")
        print("numerics   \(engine.numericsProfile), kernels \(KernelConfig.isa), \(KernelConfig.threads) threads")
        print("cache      \(folder)")
        print("request    \"\(question)\" (greedy, \(maxTokens) tokens)\n")

        func run(_ p: Prompt, _ params: GenerateParameters, on e: Engine? = nil) async throws -> (String, [UInt32], GenerationSummary?) {
            var text = "", bits: [UInt32] = [], summary: GenerationSummary?
            for await event in try (e ?? engine).generate(p, parameters: params) {
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
                    _ = try await run(ask("Say something about \(topics[kind % topics.count])."), p)
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
        if uniqueTexts != 1 || uniqueLogprobs != 1 || !sameAsAlone { throw ExitCode(1) }

        // The cache: a long document with questions, cold versus cached.
        let document = (try? String(contentsOfFile: "/usr/share/common-licenses/GPL-3", encoding: .utf8)).map { String($0.prefix(2500)) }
            ?? String(repeating: "Deterministic kernels make every cache hit exact. ", count: 60)
        func askDocument(_ q: String) -> Prompt { ask(system: "Answer questions about this document.\n\n" + document, q) }
        let short = GenerateParameters(maxTokens: 24, logprobs: true)
        func timed(_ e: Engine, _ p: Prompt) async throws -> (String, [UInt32], GenerationSummary) {
            let (t, b, s) = try await run(p, short, on: e)
            return (t, b, s!)
        }
        func ms(_ d: Duration) -> String { String(format: "%7.1f ms", d / .milliseconds(1)) }
        let first = "What is this document about?", second = "Who may copy it?"
        let (coldText, coldBits, cold) = try await timed(engine, askDocument(first))
        let (warm1Text, warm1Bits, warm1) = try await timed(cached, askDocument(first))
        store.flush()
        let (_, _, prefix) = try await timed(cached, askDocument(second + " (\(UInt32.random(in: 0...UInt32.max)))"))
        let (hitText, hitBits, hit) = try await timed(cached, askDocument(first))
        print("\ncache      a \(cold.promptTokens)-token document prompt, 24 new tokens")
        print("  TTFT cold (no cache)          \(ms(cold.timeToFirstToken))")
        print("  TTFT first cached run         \(ms(warm1.timeToFirstToken))  \(warm1.completionFromCache ? "completion stored by an earlier run" : warm1.cachedPromptTokens > 0 ? "\(warm1.cachedPromptTokens) prompt tokens stored by an earlier run" : "(filling the cache)")")
        print("  TTFT prefix hit, new question \(ms(prefix.timeToFirstToken))  \(prefix.cachedPromptTokens) of \(prefix.promptTokens) prompt tokens restored")
        print("  TTFT completion hit           \(ms(hit.timeToFirstToken))  \(hit.completionFromCache ? "whole completion from the cache" : "miss")")
        let exact = warm1Text == coldText && warm1Bits == coldBits && hitText == coldText && hitBits == coldBits
        print("  cached answers \(exact ? "bitwise equal to the cold answer" : "DIFFER from the cold answer")")
        await cached.shutdown()
        await engine.shutdown()
        let stats = try Self.statsOf(store)
        func count(_ k: String) -> UInt64 { stats.counters[k] ?? 0 }
        print(String(format: "\ncache stats  %d KV blocks, %d completions, %.1f MiB payload, file %.1f MiB",
                     stats.kvBlocks, stats.completions, Double(stats.payloadBytes) / 1_048_576, Double(stats.fileBytes) / 1_048_576))
        print("             prefix tokens hit \(count("hits.prefix_tokens")) of \(count("lookups.prefix_tokens")) looked up; completions hit \(count("hits.completions")) of \(count("lookups.completions")); tokens saved \(count("tokens_saved"))")
        if let failure = stats.writeFailure { print("             writes disabled: \(failure)") }
        if !exact || !hit.completionFromCache || prefix.cachedPromptTokens == 0 { throw ExitCode(1) }
    }
}
