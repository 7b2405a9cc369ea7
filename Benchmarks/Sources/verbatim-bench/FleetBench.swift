import ArgumentParser
import Foundation
import Verbatim
import VerbatimBench
import VerbatimCache
import VerbatimKernels
import VerbatimModel
import VerbatimPostgres

/// The shared PostgreSQL tier: what a remote hit costs against a local hit and recomputing,
/// and what sharing buys a fleet whose load balancer does not keep users on one engine.
struct FleetBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Remote-hit vs local-hit vs recompute TTFT, and the multi-round chat hit rate of 2 engines sharing PostgreSQL vs 2 isolated.")

    @Option(help: "GGUF model file.") var model: String = defaultModelPath()
    @Option(help: "PostgreSQL server URL (a database of its own is created and dropped); default: scripts/postgres's server.")
    var postgres: String?
    @Option(help: "Prefix lengths, comma-separated.") var lengths = "1024,4096"
    @Option(help: "Measured runs per row; medians are reported.") var runs = 3
    @Option(help: "chat: users.") var users = 4
    @Option(help: "chat: rounds per user.") var rounds = 4

    func run() async throws {
        let file = try GGUFFile(path: model)
        let lm = try LlamaModel(file: file)
        let tokenizer = try Tokenizer(file: file)
        let admin = try postgres ?? startPostgres()
        let database = "verbatim_bench_\(getpid())"
        try psql(admin, "CREATE DATABASE \(database)")
        defer { _ = try? psql(admin, "DROP DATABASE IF EXISTS \(database) WITH (FORCE)") }
        let url = String(admin[..<admin.lastIndex(of: "/")!]) + "/" + database
        print("model \(model), \(KernelConfig.threads) threads, block 32, PostgreSQL on loopback, medians of \(runs)\n")
        try await ttft(lm, tokenizer, url: url)
        try await fleet(lm, tokenizer, url: url)
    }

    func folder() -> String { NSTemporaryDirectory() + "verbatim-fleet-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    func engine(_ lm: LlamaModel, _ tokenizer: Tokenizer, folder: String?, tier: (any SharedTier)?, completions: Bool = false) throws -> (Engine, CacheStore?) {
        var c = EngineConfiguration()
        c.kvMemoryBytes = 1 << 30
        c.maxBatchTokens = 512
        var store: CacheStore?
        if let folder {
            var options = CacheOptions()
            options.sharedTier = tier
            store = try CacheStore(directory: folder, options: options)
            c.cache = store
            c.completionCache = completions
        }
        return (try Engine(model: lm, tokenizer: tokenizer, configuration: c), store)
    }

    func firstToken(_ e: Engine, _ tokens: [TokenID]) async throws -> (Double, Int) {
        var summary: GenerationSummary?
        for await event in try e.generate(.tokens(tokens), parameters: GenerateParameters(maxTokens: 1)) {
            if case .summary(let s) = event { summary = s }
        }
        return (summary!.timeToFirstToken / .seconds(1), summary!.cachedPromptTokens)
    }

    /// TTFT of a document with a new question: computed, from the local LMDB, from PostgreSQL
    /// (a node with an empty folder), for each prefix length.
    func ttft(_ lm: LlamaModel, _ tokenizer: Tokenizer, url: String) async throws {
        let text = tokenizer.encode(realText() + realText())
        print("| prefix tokens | recompute | local hit | remote hit (PostgreSQL) | remote / local | restored tokens (local, remote) |")
        print("|---|---|---|---|---|---|")
        let tier = try PostgresTier(PostgresTier.Configuration(url: url))
        for n in lengths.split(separator: ",").compactMap({ Int($0) }) {
            var cold: [Double] = [], local: [Double] = [], remote: [Double] = []
            var restored = (0, 0)
            for run in 0..<runs {
                let document = Array(text[(run * 131)..<(run * 131 + n)])
                let seeding = document + tokenizer.encode(" Question: what is this about?")
                let asked = document + tokenizer.encode(" Question: who may copy it, and on what terms?")
                let (plain, _) = try engine(lm, tokenizer, folder: nil, tier: nil)
                cold.append(try await firstToken(plain, asked).0)
                await plain.shutdown()
                // Node A computes the document and keeps it locally and in PostgreSQL.
                let folderA = folder(), folderB = folder()
                defer { try? FileManager.default.removeItem(atPath: folderA); try? FileManager.default.removeItem(atPath: folderB) }
                let (a, storeA) = try engine(lm, tokenizer, folder: folderA, tier: tier)
                _ = try await firstToken(a, seeding)
                await storeA!.flushed()
                let (l, lr) = try await firstToken(a, asked)
                local.append(l)
                await a.shutdown()
                storeA!.close()
                // Node B has never seen it: its blocks come from PostgreSQL.
                let (b, storeB) = try engine(lm, tokenizer, folder: folderB, tier: tier)
                let (r, rr) = try await firstToken(b, asked)
                remote.append(r)
                restored = (lr, rr)
                await b.shutdown()
                storeB!.close()
            }
            print(String(format: "| %d | %.1f ms | %.1f ms | %.1f ms | %.2f× | %d, %d |", n, median(cold) * 1000, median(local) * 1000,
                         median(remote) * 1000, median(remote) / median(local), restored.0, restored.1))
        }
    }

    /// Multi-round chat through 2 engines, round r of every user on engine r % 2 (no stickiness):
    /// isolated engines see half of each history; sharing PostgreSQL they see all of it.
    func fleet(_ lm: LlamaModel, _ tokenizer: Tokenizer, url: String) async throws {
        let workload = Workload.multiRoundChat(users: users, rounds: rounds, systemTokens: 384, questionTokens: 40, answerTokens: 24,
                                               thinkMilliseconds: 0, seed: 2, corpus: Corpus(), tokenizer: tokenizer)
        print("\nmulti-round chat, \(users) users × \(rounds) rounds, round r of each user on engine r mod 2:\n")
        print("| fleet | token hit rate | TTFT p50 | TTFT p90 | hits from PostgreSQL (entries) |")
        print("|---|---|---|---|---|")
        for shared in [false, true] {
            let tier: (any SharedTier)? = shared ? try PostgresTier(PostgresTier.Configuration(url: url)) : nil
            if shared { try psql(url, "TRUNCATE verbatim_entries") }
            let folders = [folder(), folder()]
            defer { for f in folders { try? FileManager.default.removeItem(atPath: f) } }
            let nodes = try folders.map { try engine(lm, tokenizer, folder: $0, tier: tier) }
            var records: [RequestRecord] = []
            try await withThrowingTaskGroup(of: [RequestRecord].self) { group in
                for script in workload.scripts {
                    group.addTask {
                        var history: [ChatMessage] = []
                        var out: [RequestRecord] = []
                        for (r, request) in script.requests.enumerated() {
                            let messages = request.continuesConversation ? history + request.messages.filter { $0.role != "system" } : request.messages
                            let (record, answer) = try await WorkloadRunner.send(request, messages: messages, to: nodes[r % 2].0)
                            // Write-behind reaches PostgreSQL before the user's next round (think time).
                            await nodes[r % 2].1?.flushed()
                            history = messages + [ChatMessage(role: "assistant", content: answer)]
                            out.append(record)
                        }
                        return out
                    }
                }
                for try await part in group { records += part }
            }
            var remoteHits: UInt64 = 0
            for (e, store) in nodes {
                await e.shutdown()
                remoteHits += try statsOf(store!).counters["tier.postgres.entries_hit"] ?? 0
                store!.close()
            }
            let prompt = records.reduce(0) { $0 + $1.promptTokens }, cached = records.reduce(0) { $0 + $1.cachedPromptTokens }
            let ttft = LatencySummary(seconds: records.map(\.ttft))
            print(String(format: "| %@ | %.1f%% | %.0f ms | %.0f ms | %llu |", shared ? "2 engines sharing PostgreSQL" : "2 isolated engines",
                         Double(cached) / Double(prompt) * 100, ttft.p50 * 1000, ttft.p90 * 1000, remoteHits))
        }
    }

    func statsOf(_ store: CacheStore) throws -> CacheStore.Stats { try store.stats() }

    func startPostgres() throws -> String {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let process = Process()
        process.executableURL = here.deletingLastPathComponent().appendingPathComponent("scripts/postgres")
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let url = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationError("scripts/postgres failed; pass --postgres URL") }
        return url
    }

    @discardableResult
    func psql(_ url: String, _ sql: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["psql", url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationError("psql failed on: \(sql)") }
        return text
    }
}
