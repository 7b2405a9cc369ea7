import Foundation
import Testing
import Verbatim
@testable import VerbatimBench
import VerbatimModel
import VerbatimTestSupport

/// The tiny generated model: fast enough to replay whole workloads in CI.
let tinyRunner: Result<WorkloadRunner, any Error> = Result {
    let file = try GGUFFile(data: TinyModel().generate())
    var runner = WorkloadRunner(model: try LlamaModel(file: file), tokenizer: try Tokenizer(file: file))
    runner.kvMemoryBytes = 16 << 20
    return runner
}

func temporaryFolder() -> String { NSTemporaryDirectory() + "verbatim-bench-test-\(UInt32.random(in: 0...UInt32.max))" }

@Suite("Workload runner (tiny model, real engine and LMDB cache)", .serialized)
struct WorkloadRunnerTests {
    @Test("end to end: warm passes over a reopened cache hit every whole block and the stored rows past it (and every completion), with the bits of no cache")
    func endToEnd() async throws {
        let runner = try tinyRunner.get()
        let workload = Workload.sharedSystemPrompts(groups: 2, promptsPerGroup: 3, systemTokens: 64, questionTokens: 12, outputTokens: 6,
                                                    clients: 2, seed: 5, corpus: Corpus(), tokenizer: runner.tokenizer)
        #expect(workload.requestCount == 6)
        let configurations = try ["none", "prefix16", "prefix32", "full16"].map { try BenchConfiguration(parsing: $0) }
        var passes: [PassResult] = []
        for configuration in configurations {
            let folder = temporaryFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            passes.append(try await runner.run(workload, configuration, cacheFolder: folder))
            if configuration.usesCache {
                // A new store and engine on the same folder, as a restarted process would open it.
                passes.append(try await runner.run(workload, configuration, cacheFolder: folder, pass: "warm"))
            }
        }
        let baseline = passes[0]
        #expect(baseline.tokenHitRate == 0 && baseline.requestHitRate == 0 && baseline.cacheEntries == 0)
        let reference = Dictionary(uniqueKeysWithValues: baseline.records.map { ($0.label, $0.outputDigest) })
        for p in passes {
            #expect(p.records.count == 6 && Set(p.records.map(\.label)) == Set(reference.keys))
            let differing = p.records.filter { reference[$0.label] != $0.outputDigest }.map(\.label)
            #expect(differing.isEmpty, "\(p.label): tokens or logprob bits differ from no cache for \(differing)")
            #expect(p.records.allSatisfy { $0.ttft >= 0 && $0.endToEnd >= $0.ttft })
        }
        for p in passes where p.pass == "warm" {
            let b = p.configuration.blockSize
            if p.configuration.completionCache {
                #expect(p.requestHitRate == 1, "\(p.label): every completion was stored by the cold pass")
            } else {
                // At least every whole block but the last token's; and the cold pass stored the
                // full blocks of prompt + output (all but the last output token were fed), whose
                // rows cover the prompt up to its last token when they reach that far.
                func least(_ r: RequestRecord) -> Int {
                    max((r.promptTokens - 1) / b * b, min(r.promptTokens - 1, (r.promptTokens + r.generatedTokens - 1) / b * b))
                }
                let wrong = p.records.filter { $0.cachedPromptTokens < least($0) || $0.cachedPromptTokens > $0.promptTokens - 1 }
                #expect(wrong.isEmpty, "\(p.label): cached prompt tokens out of range: \(wrong.map { "\($0.label) \($0.cachedPromptTokens) of \($0.promptTokens)" })")
                #expect(p.records.contains { $0.cachedPromptTokens > ($0.promptTokens - 1) / b * b },
                        "\(p.label): some prompt is reused past its last whole block")
                #expect(p.requestHitRate == 0)
            }
            #expect(p.cacheEntries > 0 && p.cacheBytes > 0)
        }
        let prefix16 = try #require(passes.first { $0.configuration.blockSize == 16 && !$0.configuration.completionCache && $0.pass == "warm" })
        let prefix32 = try #require(passes.first { $0.configuration.blockSize == 32 && $0.pass == "warm" })
        #expect(prefix16.tokenHitRate >= prefix32.tokenHitRate, "smaller blocks lose fewer tokens at the end of a prompt")

        // The report: tables, differences with intervals, JSON, charts.
        var comparison = Comparison(workload: workload, passes: passes)
        comparison.resamples = 200
        let markdown = comparison.markdown()
        for p in passes { #expect(markdown.contains("| \(p.label) "), "\(p.label) has a row") }
        #expect(markdown.contains("Δ TTFT median"))
        let differences = comparison.differences()
        #expect(differences.count == passes.count - 1)
        // The hit rate of a warm prefix pass is up from zero, and all requests agree on it: significant.
        let warmDifference = try #require(differences.first { $0.label == prefix16.label })
        #expect(warmDifference.tokenHitRate.significant && warmDifference.tokenHitRate.estimate > 0)
        let data = try JSONEncoder().encode(comparison.document())
        let decoded = try JSONDecoder().decode(Comparison.Document.self, from: data)
        #expect(decoded.passes.count == passes.count && decoded.passes[0].records == baseline.records)
        let chart = try #require(comparison.hitRateChart())
        #expect(chart.contains("<svg") && chart.contains("prefix, warm") && !chart.contains("<script"))
        #expect(comparison.ttftChart().contains("<svg"))
    }

    @Test("determinism workload: identical requests among random traffic give one completion and one logprob vector")
    func determinism() async throws {
        let runner = try tinyRunner.get()
        let workload = Workload.determinism(identical: 12, background: 12, promptTokens: 24, outputTokens: 8, clients: 6, seed: 9,
                                            corpus: Corpus(), tokenizer: runner.tokenizer)
        let result = try await runner.run(workload, try BenchConfiguration(parsing: "none"), cacheFolder: nil)
        let probe = try #require(result.uniqueOutputs["probe"])
        #expect(probe.completions == 1 && probe.logprobVectors == 1)
        #expect(result.records.filter { $0.identicalGroup == "probe" }.count == 12)
        #expect(Set(result.records.filter { $0.identicalGroup == nil }.map(\.outputDigest)).count > 1, "the background traffic varies")
    }

    @Test("multi-round chat carries each user's history: later rounds have longer prompts that begin with the earlier ones")
    func multiRound() async throws {
        let runner = try tinyRunner.get()
        let workload = Workload.multiRoundChat(users: 2, rounds: 3, systemTokens: 16, questionTokens: 6, answerTokens: 4, thinkMilliseconds: 1,
                                               seed: 3, corpus: Corpus(), tokenizer: runner.tokenizer)
        let folder = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        _ = try await runner.run(workload, try BenchConfiguration(parsing: "prefix16"), cacheFolder: folder)
        let warm = try await runner.run(workload, try BenchConfiguration(parsing: "prefix16"), cacheFolder: folder, pass: "warm")
        for user in 0..<2 {
            let rounds = warm.records.filter { $0.label.hasPrefix("user \(user) /") }.map(\.promptTokens)
            #expect(rounds.count == 3 && rounds[0] < rounds[1] && rounds[1] < rounds[2], "user \(user): \(rounds)")
        }
        #expect(warm.tokenHitRate > 0.5)
    }

    @Test("configuration names parse, budgets included; nonsense is refused with the offending text")
    func configurations() throws {
        let c = try BenchConfiguration(parsing: "prefix64@8M")
        #expect(c.prefixCache && !c.completionCache && c.blockSize == 64 && c.byteBudget == 8 << 20)
        #expect(try BenchConfiguration(parsing: "full128").completionCache)
        #expect(try !BenchConfiguration(parsing: "none").usesCache)
        for bad in ["prefix", "prefix0", "cache32", "full32@lots"] {
            #expect(throws: BenchError.self) { try BenchConfiguration(parsing: bad) }
            do { _ = try BenchConfiguration(parsing: bad) } catch { #expect(error.description.contains(bad)) }
        }
    }

    @Test("workload generators: sizes as asked, real sentences, repeat orders as named, same seed same workload")
    func generators() throws {
        let tokenizer = try tinyRunner.get().tokenizer
        let corpus = Corpus()
        #expect(corpus.sentences.count >= 10)
        let a = Workload.documentQA(documents: 3, questions: 2, documentTokens: 60, order: .interleave, corpus: corpus, tokenizer: tokenizer)
        #expect(a.scripts.map { $0.requests[0].label } == ["document 0 / question 0", "document 1 / question 0", "document 2 / question 0",
                                                           "document 0 / question 1", "document 1 / question 1", "document 2 / question 1"])
        let tile = Workload.documentQA(documents: 3, questions: 2, documentTokens: 60, order: .tile, corpus: corpus, tokenizer: tokenizer)
        #expect(tile.scripts.map { $0.requests[0].label }.prefix(2) == ["document 0 / question 0", "document 0 / question 1"])
        let doc = a.scripts[0].requests[0].messages[0].content
        #expect(tokenizer.encode(doc).count >= 60)
        #expect(Workload.documentQA(documents: 3, questions: 2, documentTokens: 60, order: .random, seed: 4, corpus: corpus, tokenizer: tokenizer)
                == Workload.documentQA(documents: 3, questions: 2, documentTokens: 60, order: .random, seed: 4, corpus: corpus, tokenizer: tokenizer))
        let shared = Workload.sharedSystemPrompts(groups: 3, promptsPerGroup: 4, systemTokens: 40, corpus: corpus, tokenizer: tokenizer)
        #expect(Set(shared.scripts.map { $0.requests[0].messages[0].content }).count == 3)
    }
}
