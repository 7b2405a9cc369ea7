import ArgumentParser
import Foundation
import VerbatimKernels
import VerbatimModel
import Verbatim

@main
struct VerbatimBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verbatim-bench",
        abstract: "Side-by-side benchmarks of Verbatim against baselines, in one run.",
        subcommands: [ForwardBench.self, KernelBench.self, EngineBench.self, CacheBench.self, WorkloadBench.self, ServingBench.self, FleetBench.self,
                      MakeModel.self])
}

func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    return s.isEmpty ? .nan : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
}

func defaultModelPath() -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    return ModelLocation.path(modelsFolder: root.appendingPathComponent("models").path)
}

/// Real language for prompts: the GPL text every Debian system installs.
func realText() -> String {
    (try? String(contentsOfFile: "/usr/share/common-licenses/GPL-3", encoding: .utf8))
        ?? String(repeating: "The same input gives the same bits, whatever else the server is doing. ", count: 200)
}

struct ForwardBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Prefill and decode tokens/s of the forward pass, with llama.cpp on the same GGUF as the baseline.")

    @Option(help: "GGUF model file.") var model: String = defaultModelPath()
    @Option(help: "Prompt tokens for the prefill measurement.") var prompt = 512
    @Option(help: "Context tokens before the decode measurement.") var context = 128
    @Option(name: .customLong("new"), help: "New tokens in the decode measurement.") var newTokens = 128
    @Option(help: "Thread counts, comma-separated.") var threads = "1,2"
    @Option(help: "Measured runs per configuration (after one warm-up); medians are reported.") var runs = 5
    @Flag(inversion: .prefixedNo, help: "Run llama.cpp's llama-bench (C++, built once into .build-llamacpp/cpp) as the baseline.")
    var baseline = true
    @Option(help: "Sequences of the batched decode steps in the time breakdown, comma-separated.") var decodeRows = "16,64"
    @Option(help: "Mixed steps in the time breakdown, as a server runs them under load: D+P is D decode rows (one per sequence, context tokens each) and a P-token prompt chunk after 64 tokens of its prompt; comma-separated.")
    var mixed = "16+48"

    /// `--mixed` as (decode rows, prompt tokens) pairs.
    var mixedSteps: [(decode: Int, chunk: Int)] {
        get throws {
            try mixed.split(separator: ",").map { spec in
                let parts = spec.split(separator: "+").map { Int($0) }
                guard parts.count == 2, let d = parts[0], let p = parts[1], d > 0, p > 0, d + p <= 512 else {
                    throw ValidationError("--mixed takes D+P pairs of positive numbers, D + P at most 512 (one step), not '\(spec)'")
                }
                return (d, p)
            }
        }
    }

    func validate() throws { _ = try mixedSteps }

    func run() throws {
        let file = try GGUFFile(path: model)
        let lm = try LlamaModel(file: file)
        let tokenizer = try Tokenizer(file: file)
        let tokens = Array(tokenizer.encode(realText()).prefix(max(prompt, context + 1)))   // the breakdown decodes token `context`
        let threadCounts = threads.split(separator: ",").compactMap { Int($0) }
        print("model \(model)\nnumerics \(KernelConfig.numericsProfile(kv: .f32)), ISA \(KernelConfig.isa), \(runs) runs per row, medians\n")

        var rows: [(threads: Int, prefill: Double, decode: Double, basePrefill: Double?, baseDecode: Double?)] = []
        var memory = 0
        for t in threadCounts {
            KernelConfig.setThreads(t)
            var prefill: [Double] = [], decode: [Double] = []
            // One forward pass for every run, as llama-bench keeps one context: the warm-up run
            // commits its KV and scratch pages, and the measured runs reuse them (a fresh pass
            // would time the kernel zeroing new pages, which a running engine does once).
            let pass = ForwardPass(model: lm, kv: KVPool(config: lm.config, blockSize: 32, blockCount: (tokens.count + context + newTokens) / 32 + 4),
                                   maxTokens: 512)
            for run in 0...runs {
                memory = pass.residentBytes
                let p = Array(tokens.prefix(prompt))
                let start = ContinuousClock.now
                try pass.step(p.enumerated().map { BatchToken(sequence: 0, position: $0.offset, token: $0.element, wantsLogits: $0.offset == p.count - 1) })
                let prefillSeconds = (ContinuousClock.now - start) / .seconds(1)
                pass.kv.release(0)
                let ctx = Array(tokens.prefix(context))
                var next: TokenID = 0
                try pass.step(ctx.enumerated().map { BatchToken(sequence: 1, position: $0.offset, token: $0.element, wantsLogits: $0.offset == ctx.count - 1) }) {
                    _, logits in next = TokenID(Kernels.argmax(x: logits.baseAddress!, n: logits.count))
                }
                let decodeStart = ContinuousClock.now
                for i in 0..<newTokens {
                    try pass.step([BatchToken(sequence: 1, position: context + i, token: next, wantsLogits: true)]) {
                        _, logits in next = TokenID(Kernels.argmax(x: logits.baseAddress!, n: logits.count))
                    }
                }
                let decodeSeconds = (ContinuousClock.now - decodeStart) / .seconds(1)
                pass.kv.release(1)
                if run > 0 {
                    prefill.append(Double(p.count) / prefillSeconds)
                    decode.append(Double(newTokens) / decodeSeconds)
                }
            }
            var base: (Double, Double)?
            if baseline { base = try llamaCpp(tokens: Array(tokens.prefix(prompt)), threads: t) }
            rows.append((t, median(prefill), median(decode), base?.0, base?.1))
        }

        print("| threads | Verbatim prefill tok/s | llama.cpp prefill tok/s | ratio | Verbatim decode tok/s | llama.cpp decode tok/s | ratio |")
        print("|---|---|---|---|---|---|---|")
        for r in rows {
            func f(_ v: Double?) -> String { v.map { String(format: "%.0f", $0) } ?? "-" }
            func ratio(_ a: Double, _ b: Double?) -> String { b.map { String(format: "%.2f×", a / $0) } ?? "-" }
            print("| \(r.threads) | \(f(r.prefill)) | \(f(r.basePrefill)) | \(ratio(r.prefill, r.basePrefill)) | \(f(r.decode)) | \(f(r.baseDecode)) | \(ratio(r.decode, r.baseDecode)) |")
        }
        print(String(format: "\nresident memory: %.1f MiB (packed weights %.1f MiB + KV + scratch for 512-token steps)",
                     Double(memory) / 1_048_576, Double(lm.residentBytes) / 1_048_576))
        try breakdown(lm, tokens: tokens)
    }

    /// Where the time goes in a decode step of 1 and of `--decode-rows` sequences, and in one
    /// prefill step, by the forward pass's named intermediates (each entry is the time since the
    /// previous name).
    func breakdown(_ lm: LlamaModel, tokens: [TokenID]) throws {
        KernelConfig.setThreads(threadCounts.last ?? 1)
        // chunk: prompt tokens of one more sequence after `chunkStart` of them (mixed steps only).
        var cases: [(label: String, rows: Int, decode: Bool, chunk: Int)] = [("decode step (1 token, context \(context))", 1, true, 0)]
        for m in decodeRows.split(separator: ",").compactMap({ Int($0) }) where m > 1 {
            cases.append(("decode step (\(m) sequences × 1 token, context \(context) each)", m, true, 0))
        }
        let chunkStart = 64
        for (d, p) in try mixedSteps {
            guard chunkStart + p <= tokens.count else {
                throw ValidationError("--mixed \(d)+\(p): the text has \(tokens.count) tokens, fewer than \(chunkStart) + \(p)")
            }
            cases.append(("mixed step (\(d) sequences × 1 token, context \(context) each, and \(p) prompt tokens after \(chunkStart))", d, true, p))
        }
        cases.append(("prefill step (\(prompt) tokens)", prompt, false, 0))
        for (label, rows, decode, chunk) in cases {
            var totals: [String: Double] = [:]
            var order: [String] = []
            let sequences = decode ? rows : 1
            let blocks = (sequences + 1) * ((max(context, prompt) + 64) / 32 + 2)
            let pass = ForwardPass(model: lm, kv: KVPool(config: lm.config, blockSize: 32, blockCount: blocks), maxTokens: 512,
                                   logitRows: max(64, sequences))
            if decode {   // every sequence holds `context` tokens before the measured steps
                for sequence in 0..<sequences where context > 0 {
                    try pass.step(tokens.prefix(context).enumerated().map { BatchToken(sequence: sequence, position: $0.offset, token: $0.element) })
                }
                // One untimed step first: position `context` may open a new KV block, whose pages the
                // first write commits (zeroing them), a cost a running server pays once per block.
                try pass.step((0..<sequences).map { BatchToken(sequence: $0, position: context, token: tokens[context], wantsLogits: true) })
            }
            // A mixed step's prompt sequence holds its first `chunkStart` tokens; each timed step
            // writes the same chunk after them again.
            let chunkRows = (0..<chunk).map { BatchToken(sequence: sequences, position: chunkStart + $0, token: tokens[chunkStart + $0],
                                                         wantsLogits: $0 == chunk - 1) }
            if chunk > 0 {
                try pass.step(tokens.prefix(chunkStart).enumerated().map { BatchToken(sequence: sequences, position: $0.offset, token: $0.element) })
                try pass.step(chunkRows)
            }
            let prefillBatch = (0..<rows).map { BatchToken(sequence: 0, position: $0, token: tokens[$0], wantsLogits: $0 == rows - 1) }
            if !decode {   // one untimed step commits the KV and scratch pages the timed ones reuse
                try pass.step(prefillBatch)
                pass.kv.release(0)
            }
            for _ in 0..<5 {
                var last = ContinuousClock.now
                pass.observer = { name, _, _, _ in
                    let now = ContinuousClock.now
                    let kind = name.split(separator: ".").last.map(String.init) ?? name
                    if totals[kind] == nil { order.append(kind) }
                    totals[kind, default: 0] += (now - last) / .seconds(1)
                    last = now
                }
                // A decode step writes position `context` of each sequence (the same slot each time).
                let batch = decode ? (0..<sequences).map { BatchToken(sequence: $0, position: context, token: tokens[context], wantsLogits: true) } + chunkRows
                    : prefillBatch
                try pass.step(batch)
                pass.observer = nil
                if !decode { pass.kv.release(0) }
            }
            let sum = totals.values.reduce(0, +)
            let meaning = ["token_embd": "embedding lookup", "attn_norm": "RMSNorm", "q": "Q/K/V linear + RoPE", "k": "-", "v": "-",
                           "attn": "KV write + attention", "attn_out": "attention output linear", "ffn_inp": "residual add",
                           "ffn_norm": "RMSNorm", "ffn_act": "gate + up linear, SwiGLU", "ffn_out": "down linear",
                           "out": "residual add", "result_norm": "final RMSNorm", "result_output": "output linear (vocab)"]
            print(String(format: "\n%@, %d threads, all layers summed, mean of 5: %.2f ms a step, %.3f ms a row",
                         label, threadCounts.last ?? 1, sum / 5 * 1000, sum / 5 * 1000 / Double(rows + chunk)))
            print("| stage | time | share |\n|---|---|---|")
            for k in order where totals[k]! / sum >= 0.001 {
                print(String(format: "| %@ (%@) | %.3f ms | %.1f%% |", meaning[k] ?? k, k, totals[k]! / 5 * 1000, totals[k]! / sum * 100))
            }
        }
    }

    var threadCounts: [Int] { threads.split(separator: ",").compactMap { Int($0) } }

    /// llama.cpp's own `llama-bench` (C++, built by baseline/build-llama-cpp) on the same file and
    /// threads: prefill of `prompt` tokens from an empty context, and decode of `new` tokens after
    /// `context` tokens, as measured above; medians of its samples.
    func llamaCpp(tokens: [TokenID], threads: Int) throws -> (Double, Double)? {
        guard let bin = llamaCppBinaries() else { print("(llama.cpp baseline unavailable: build failed)"); return nil }
        func run(_ args: [String]) throws -> Double? {
            let bench = Process()
            bench.executableURL = URL(fileURLWithPath: bin + "/llama-bench")
            bench.arguments = ["-m", model, "-t", String(threads), "-r", String(runs), "-o", "json"] + args
            let out = Pipe()
            bench.standardOutput = out
            bench.standardError = FileHandle.nullDevice
            try bench.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            bench.waitUntilExit()
            guard bench.terminationStatus == 0, let rows = try JSONSerialization.jsonObject(with: data) as? [[String: Any]],
                  let samples = rows.first?["samples_ts"] as? [Double], !samples.isEmpty else { return nil }
            return median(samples)
        }
        guard let p = try run(["-p", String(min(tokens.count, prompt)), "-n", "0"]),
              let d = try run(["-p", "0", "-n", String(newTokens), "-d", String(context)]) else { return nil }
        return (p, d)
    }
}
