import ArgumentParser
import Foundation
import Verbatim
import VerbatimBench
import VerbatimKernels
import VerbatimModel

/// Replays workloads through the real engine and cache under several configurations, side by
/// side in one run: cold passes, then warm passes in a new process over the same cache.
struct WorkloadBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workload",
        abstract: "Hit rates and latency of cache configurations on realistic workloads, with bootstrap intervals.",
        discussion: """
            Workloads: shared (system prompts shared by groups), chat (multi-round), document (long-document QA), \
            determinism (identical requests among other traffic). Configurations: none, prefixB, fullB (prefix + completion \
            cache, block size B), each optionally @SIZE for a byte budget. Every cache configuration runs cold, then warm \
            in a new process on the same folder (unless --no-restart).
            """)

    @Option(help: "GGUF model file.") var model: String = defaultModelPath()
    @Option(help: "Workloads, comma-separated: shared, chat, document, determinism.") var workloads = "shared,chat,document,determinism"
    @Option(help: "Configurations, comma-separated (first is the baseline).") var configs = "none,prefix16,prefix32,prefix64,prefix128,full32"
    @Option(help: "Also run prefix32 with this byte budget (e.g. 4M): forces eviction.") var budget: String?
    @Flag(inversion: .prefixedNo, help: "Warm passes in a new process after the cold ones (proves persistence).") var restart = true
    @Option(help: "Kernel threads.") var threads = 2
    @Option(help: "Write every pass, record and difference as JSON here.") var json: String?
    @Option(help: "Write SVG charts into this folder.") var svg: String?
    @Option(help: "Also replay the workloads against this server: llama.cpp.") var baseline: String?
    @Option(help: "Seed of the workload generators.") var seed: UInt64 = 1

    // Sizes. Defaults finish in minutes on 2 cores.
    @Option(help: "shared: groups.") var groups = 4
    @Option(help: "shared: prompts per group.") var promptsPerGroup = 6
    @Option(help: "shared: system prompt tokens.") var systemTokens = 384
    @Option(help: "shared/document: question tokens.") var questionTokens = 40
    @Option(help: "Tokens generated per request (shared, document, determinism).") var outputTokens = 16
    @Option(help: "chat: users.") var users = 4
    @Option(help: "chat: rounds per user.") var rounds = 4
    @Option(help: "chat: answer tokens.") var answerTokens = 24
    @Option(help: "chat: think time between rounds, ms.") var thinkMs = 50
    @Option(help: "document: documents.") var documents = 3
    @Option(help: "document: questions per document.") var questions = 4
    @Option(help: "document: tokens per document.") var documentTokens = 1024
    @Option(help: "document: repeat order: random, tile, interleave.") var order = "random"
    @Option(help: "determinism: identical requests.") var identical = 32
    @Option(help: "determinism: other requests mixed in.") var background = 32
    @Option(help: "Concurrent clients (shared, document, determinism).") var clients = 4

    /// Internal: run one warm pass described by this JSON file (used for the restart).
    @Option(help: .hidden) var warmPass: String?

    func run() async throws {
        KernelConfig.setThreads(threads)
        let file = try GGUFFile(path: model)
        let runner = WorkloadRunner(model: try LlamaModel(file: file), tokenizer: try Tokenizer(file: file))
        if let warmPass { return try await runWarmPass(warmPass, runner) }

        let corpus = Corpus()
        var configurations = try configs.split(separator: ",").map { try BenchConfiguration(parsing: String($0)) }
        if let budget { configurations.append(try BenchConfiguration(parsing: "prefix32@" + budget)) }
        guard !configurations.isEmpty else { throw ValidationError("--configs is empty") }
        let chosen = try workloads.split(separator: ",").map { try makeWorkload(String($0), corpus: corpus, tokenizer: runner.tokenizer) }
        print("model \(model)\nnumerics \(KernelConfig.numericsProfile(kv: .f32)), ISA \(KernelConfig.isa), \(threads) threads; "
              + "corpus: \(corpus.sentences.count) sentences of installed licence texts\n")

        var documents: [Comparison.Document] = []
        for workload in chosen {
            var passes: [PassResult] = []
            let total = workload.requestCount * configurations.reduce(0) { $0 + ($1.usesCache && restart ? 2 : 1) }
            let bar = ProgressBar(total: total, label: workload.name)
            for configuration in configurations {
                let folder = NSTemporaryDirectory() + "verbatim-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
                defer { try? FileManager.default.removeItem(atPath: folder) }
                let offset = bar.done
                passes.append(try await runner.run(workload, configuration, cacheFolder: folder) { bar.set(offset + $0) })
                if configuration.usesCache && restart {
                    passes.append(try warmInNewProcess(workload, configuration, folder: folder))
                    bar.set(offset + 2 * workload.requestCount)
                }
            }
            bar.finish()
            var comparison = Comparison(workload: workload, passes: passes)
            if baseline == "llama.cpp" {
                if let external = try llamaCpp(workload) { comparison.externals.append(external) }
            } else if let baseline {
                throw ValidationError("unknown baseline '\(baseline)': only llama.cpp")
            }
            print(comparison.markdown())
            if let svg {
                try FileManager.default.createDirectory(atPath: svg, withIntermediateDirectories: true)
                if let chart = comparison.hitRateChart() {
                    try chart.write(toFile: svg + "/\(workload.name)-hit-rate.svg", atomically: true, encoding: .utf8)
                }
                try comparison.ttftChart().write(toFile: svg + "/\(workload.name)-ttft.svg", atomically: true, encoding: .utf8)
            }
            documents.append(comparison.document())
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(documents).write(to: URL(fileURLWithPath: json))
        }
    }

    func makeWorkload(_ name: String, corpus: Corpus, tokenizer: Tokenizer) throws -> Workload {
        switch name {
        case "shared":
            return .sharedSystemPrompts(groups: groups, promptsPerGroup: promptsPerGroup, systemTokens: systemTokens, questionTokens: questionTokens,
                                        outputTokens: outputTokens, clients: clients, seed: seed, corpus: corpus, tokenizer: tokenizer)
        case "chat":
            return .multiRoundChat(users: users, rounds: rounds, systemTokens: systemTokens, questionTokens: questionTokens,
                                   answerTokens: answerTokens, thinkMilliseconds: thinkMs, seed: seed + 1, corpus: corpus, tokenizer: tokenizer)
        case "document":
            guard let order = Workload.RepeatOrder(rawValue: order) else { throw ValidationError("--order must be random, tile or interleave") }
            return .documentQA(documents: documents, questions: questions, documentTokens: documentTokens, questionTokens: questionTokens,
                               outputTokens: outputTokens, order: order, clients: clients, seed: seed + 2, corpus: corpus, tokenizer: tokenizer)
        case "determinism":
            return .determinism(identical: identical, background: background, outputTokens: outputTokens, clients: max(clients, 8),
                                seed: seed + 3, corpus: corpus, tokenizer: tokenizer)
        default:
            throw ValidationError("unknown workload '\(name)': shared, chat, document or determinism")
        }
    }

    // MARK: Warm pass in a new process

    struct WarmPassJob: Codable {
        var workload: Workload
        var configuration: BenchConfiguration
        var folder: String
        var output: String
    }

    func warmInNewProcess(_ workload: Workload, _ configuration: BenchConfiguration, folder: String) throws -> PassResult {
        let jobFile = folder + ".job.json", output = folder + ".result.json"
        defer { try? FileManager.default.removeItem(atPath: jobFile); try? FileManager.default.removeItem(atPath: output) }
        try JSONEncoder().encode(WarmPassJob(workload: workload, configuration: configuration, folder: folder, output: output))
            .write(to: URL(fileURLWithPath: jobFile))
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
        child.arguments = ["workload", "--model", model, "--threads", String(threads), "--warm-pass", jobFile]
        try child.run()
        child.waitUntilExit()
        guard child.terminationStatus == 0 else { throw ValidationError("the warm pass of \(configuration.name) failed (status \(child.terminationStatus))") }
        return try JSONDecoder().decode(PassResult.self, from: Data(contentsOf: URL(fileURLWithPath: output)))
    }

    func runWarmPass(_ jobFile: String, _ runner: WorkloadRunner) async throws {
        let job = try JSONDecoder().decode(WarmPassJob.self, from: Data(contentsOf: URL(fileURLWithPath: jobFile)))
        let result = try await runner.run(job.workload, job.configuration, cacheFolder: job.folder, pass: "warm")
        try JSONEncoder().encode(result).write(to: URL(fileURLWithPath: job.output))
    }

    // MARK: llama.cpp

    func llamaCpp(_ workload: Workload) throws -> ExternalResult? {
        guard let bin = llamaCppBinaries() else { print("(llama.cpp baseline unavailable: baseline/build-llama-cpp failed)"); return nil }
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let input = NSTemporaryDirectory() + "verbatim-bench-workload-\(getpid()).json", output = input + ".out"
        defer { try? FileManager.default.removeItem(atPath: input); try? FileManager.default.removeItem(atPath: output) }
        try JSONEncoder().encode(workload).write(to: URL(fileURLWithPath: input))
        let run = Process()
        run.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        run.arguments = ["python3", here.appendingPathComponent("baseline/llama_server_workload.py").path, bin + "/llama-server",
                         model, String(threads), input, output]
        try run.run()
        run.waitUntilExit()
        struct Output: Decodable {
            var ttft: [Double]
            var end_to_end: [Double]
            var generated_tokens: Int
            var wall_seconds: Double
            var unique_completions: [String: Int]
        }
        guard run.terminationStatus == 0, let data = FileManager.default.contents(atPath: output),
              let o = try? JSONDecoder().decode(Output.self, from: data) else { print("(llama.cpp baseline failed)"); return nil }
        return ExternalResult(name: "llama-server (C++, a slot per client, prompt cache, --cache-reuse 256)", ttft: o.ttft, endToEnd: o.end_to_end,
                              throughput: Double(o.generated_tokens) / o.wall_seconds, uniqueCompletions: o.unique_completions.values.first)
    }
}

/// The folder of llama.cpp's C++ tools (built once by baseline/build-llama-cpp), or nil.
func llamaCppBinaries() -> String? {
    let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let build = Process()
    build.executableURL = here.appendingPathComponent("baseline/build-llama-cpp")
    let out = Pipe()
    build.standardOutput = out
    guard (try? build.run()) != nil else { return nil }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    build.waitUntilExit()
    guard build.terminationStatus == 0 else { return nil }
    let path = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    return path.isEmpty ? nil : path
}


/// A one-line progress bar on standard error, only when it is a terminal.
final class ProgressBar: @unchecked Sendable {
    // Sendable: guarded by the lock.
    private let lock = NSLock()
    private let total: Int
    private let label: String
    private var count = 0
    private let enabled = isatty(2) == 1

    init(total: Int, label: String) {
        self.total = max(total, 1)
        self.label = label
    }

    var done: Int { lock.withLock { count } }

    func set(_ n: Int) {
        lock.withLock {
            count = n
            guard enabled else { return }
            let width = 30, filled = min(width, width * n / total)
            FileHandle.standardError.write(Data("\r\(label) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(n)/\(total)".utf8))
        }
    }

    func finish() { if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) } }
}
