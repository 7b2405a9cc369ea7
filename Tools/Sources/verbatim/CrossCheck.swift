import ArgumentParser
import Foundation
import Verbatim
import VerbatimKernels
import VerbatimModel

/// `verbatim cut`: a model's first N layers as a GGUF file of their own (the real embeddings,
/// tokenizer, output norm and head), small enough to carry to another machine for `crosscheck`.
struct Cut: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model cut to its first N layers (a small real model to carry to another machine).")

    @OptionGroup var model: ModelOption
    @Option(help: "Layers to keep (from the first).") var layers = 4
    @Option(name: .shortAndLong, help: "The GGUF file to write.") var output: String

    func run() throws {
        let file = try model.open()
        let key = "llama.block_count"
        guard let count = file.metadata[key], let total = count.integer else {
            throw CLIError("\(model.path): no integer '\(key)': not a LLaMA model this tool can cut")
        }
        guard layers >= 1 && layers <= total else { throw CLIError("--layers must be 1...\(total), not \(layers)") }
        var writer = GGUFWriter()
        writer.alignment = file.alignment
        for entry in file.metadataEntries { writer.set(entry.key, entry.value) }
        writer.set(key, count.withInteger(layers))
        for tensor in file.tensors {
            let parts = tensor.name.split(separator: ".")
            if parts.count > 2, parts[0] == "blk", let layer = Int(parts[1]), layer >= layers { continue }
            writer.addTensor(tensor.name, dimensions: tensor.dimensions, type: tensor.type, data: Array(file.data(of: tensor)))
        }
        let bytes = writer.serialized()
        guard FileManager.default.createFile(atPath: output, contents: Data(bytes)) else {
            throw CLIError("cannot write \(output)")
        }
        print("\(output): \(layers) of \(total) layers, \(bytes.count) bytes")
    }
}

private extension GGUFValue {
    /// `n` in this value's integer type.
    func withInteger(_ n: Int) -> GGUFValue {
        switch self {
        case .uint8: .uint8(UInt8(n))
        case .int8: .int8(Int8(n))
        case .uint16: .uint16(UInt16(n))
        case .int16: .int16(Int16(n))
        case .int32: .int32(Int32(n))
        case .uint64: .uint64(UInt64(n))
        case .int64: .int64(Int64(n))
        default: .uint32(UInt32(n))
        }
    }
}

/// `verbatim crosscheck`: per instruction-set path and thread count, a digest of the logits, a
/// digest of a seeded generation, and prefill / decode speed. The digests depend on nothing but
/// the model and the numerics profile, so two machines that print the same digests computed the
/// same bits; `--digests-only` prints just those lines, for `diff`.
struct CrossCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crosscheck",
        abstract: "Digests of logits and of a seeded generation, with prefill and decode speed, per ISA and thread count.")

    @OptionGroup var model: ModelOption
    @Option(help: "Thread counts, comma-separated.") var threads = "1,2,4,8,16"
    @Option(help: "Paths, comma-separated (default: every path this CPU runs; those it cannot run are skipped).") var isa: String?
    @Option(help: "Prompt tokens, prefilled in one step.") var prompt = 512
    @Option(name: .customLong("new"), help: "Tokens generated one step at a time (temperature 0.8, --seed).") var newTokens = 128
    @Option(help: "Seed of the generation.") var seed: UInt64 = 7
    @Option(help: "Timed runs per row (medians); every run must give the same digests.") var runs = 3
    @Flag(help: "Print only the digest lines (isa, threads, logits, generation), to diff two machines.") var digestsOnly = false

    struct Row {
        var isa: KernelISA, threads: Int
        var prefill: Double, decode: Double    // tokens/s, medians
        var logits: String, generation: String
    }

    func run() throws {
        let file = try model.open()
        let lm = try LlamaModel(file: file)
        let tokenizer = try Tokenizer(file: file)
        let threadCounts = threads.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !threadCounts.isEmpty, threadCounts.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw CLIError("--threads must be positive integers separated by commas, not '\(threads)'")
        }
        let isas: [KernelISA] = try isa.map { list in
            try list.split(separator: ",").compactMap { name in
                guard let i = KernelISA(rawValue: String(name)) else { throw CLIError("unknown ISA '\(name)' (portable, avx2, avx512)") }
                if !KernelConfig.isSupported(i) { FileHandle.standardError.write(Data("(this CPU cannot run \(i): skipped)\n".utf8)) }
                return KernelConfig.isSupported(i) ? i : nil
            }
        } ?? KernelConfig.supportedISAs
        guard !isas.isEmpty else { throw CLIError("none of the paths in --isa runs on this CPU") }
        guard prompt >= 1, newTokens >= 2, runs >= 1 else { throw CLIError("--prompt and --runs must be at least 1, --new at least 2") }
        guard prompt + newTokens <= lm.config.contextLength else {
            throw CLIError("--prompt + --new = \(prompt + newTokens) exceeds the model's context of \(lm.config.contextLength)")
        }
        let tokens = Self.promptTokens(tokenizer, count: prompt)
        guard tokens.count == prompt else { throw CLIError("\(model.path): its tokenizer encodes the prompt text as no tokens") }

        if !digestsOnly {
            print("model      \(model.path) (\(lm.config.layerCount) layers)")
            print("numerics   \(KernelConfig.numericsProfile(kv: .f32))")
            print("cpu        \(Self.cpuName()), \(ProcessInfo.processInfo.activeProcessorCount) logical cores")
            print("work       prefill \(prompt) tokens, then \(newTokens) tokens sampled at T = 0.8, seed \(seed); the forward pass is timed (not sampling); \(runs) runs per row, medians\n")
            print("isa       threads  prefill tok/s  decode tok/s  logits                            generation")
        }
        let savedISA = KernelConfig.isa, savedThreads = KernelConfig.threads
        defer { KernelConfig.setISA(savedISA); KernelConfig.setThreads(savedThreads) }
        _ = KernelConfig.takeSubnormalEvents()
        var rows: [Row] = []
        for i in isas {
            for t in threadCounts.map({ $0! }) {
                KernelConfig.setISA(i)
                KernelConfig.setThreads(t)
                let row = try measure(lm, tokens, isa: i, threads: t)
                rows.append(row)
                if digestsOnly {
                    print("\(i.rawValue) \(t) \(row.logits) \(row.generation)")
                } else {
                    print(i.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0) + String(format: "%7d  %13.1f  %12.1f  ", t, row.prefill, row.decode)
                          + "\(row.logits)  \(row.generation)")
                }
                fflush(nil) // each row as soon as it is measured
            }
        }
        let agree = Set(rows.map { $0.logits + $0.generation }).count == 1
        let events = KernelConfig.takeSubnormalEvents()
        if !digestsOnly {
            print("\nevery row gives the same bits: \(agree ? "yes" : "NO")")
            print("subnormal events in the kernels: \(events)")
            let base = rows.filter { $0.threads == 1 }
            for b in base {
                let line = rows.filter { $0.isa == b.isa && $0.threads > 1 }.map {
                    String(format: "%d: prefill %.0f%%, decode %.0f%%", $0.threads, 100 * $0.prefill / (b.prefill * Double($0.threads)),
                           100 * $0.decode / (b.decode * Double($0.threads)))
                }
                if !line.isEmpty { print("thread scaling \(b.isa.rawValue) (t1 / (n tn)): " + line.joined(separator: "; ")) }
            }
        }
        if !agree { throw CLIError("the rows do not all give the same bits") }
        if !events.isEmpty { throw CLIError("the kernels raised subnormal events: \(events)") }
    }

    /// One row: `runs` times a prefill and a seeded generation on a fresh KV cache.
    func measure(_ lm: LlamaModel, _ tokens: [TokenID], isa: KernelISA, threads: Int) throws -> Row {
        var prefillTimes: [Double] = [], decodeTimes: [Double] = []
        var digests: Set<String> = []
        var last = ("", "")
        for index in 0...runs { // run 0 warms up (page faults, the worker pool) and is not timed
            let pass = ForwardPass(model: lm, kv: KVPool(config: lm.config, blockSize: 32, blockCount: (prompt + newTokens) / 32 + 2),
                                   maxTokens: prompt)
            let run = GenerationRecord(Sampler(parameters: GenerateParameters(maxTokens: newTokens, temperature: 0.8), seed: seed),
                                       vocabulary: lm.config.vocabularySize)
            // Only the forward pass is timed: the logits are copied out in the step and hashed
            // and sampled after it.
            var start = ContinuousClock.now
            try pass.step(tokens.enumerated().map { BatchToken(sequence: 0, position: $0.offset, token: $0.element, wantsLogits: $0.offset == tokens.count - 1) }) {
                _, logits in run.keep(logits)
            }
            let prefill = (ContinuousClock.now - start) / .seconds(1)
            run.take(step: 0)
            var decode = 0.0
            for i in 0..<(newTokens - 1) {
                start = ContinuousClock.now
                try pass.step([BatchToken(sequence: 0, position: tokens.count + i, token: run.next, wantsLogits: true)]) {
                    _, logits in run.keep(logits)
                }
                decode += (ContinuousClock.now - start) / .seconds(1)
                run.take(step: i + 1)
            }
            last = (run.logits.finish().description, run.tokens.finish().description)
            digests.insert(last.0 + last.1)
            if index > 0 {
                prefillTimes.append(prefill)
                decodeTimes.append(decode)
            }
        }
        guard digests.count == 1 else { throw CLIError("\(isa) with \(threads) threads gave \(digests.count) different digests in \(runs + 1) runs") }
        func median(_ v: [Double]) -> Double { let s = v.sorted(); return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2 }
        return Row(isa: isa, threads: threads, prefill: Double(prompt) / median(prefillTimes),
                   decode: Double(max(newTokens - 1, 1)) / median(decodeTimes), logits: last.0, generation: last.1)
    }

    /// The logits a generation saw and the tokens it drew, hashed as they come.
    final class GenerationRecord {
        var logits = ContentHasher(), tokens = ContentHasher()
        var sampler: Sampler
        var next: TokenID = 0
        var row: [Float]
        init(_ sampler: Sampler, vocabulary: Int) {
            self.sampler = sampler
            row = [Float](repeating: 0, count: vocabulary)
        }

        /// Copies a step's logits out of the forward pass.
        func keep(_ logits: UnsafeBufferPointer<Float>) {
            row.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: logits) }
        }

        /// Hashes the kept logits and draws the next token from them.
        func take(step: Int) {
            row.withUnsafeBufferPointer { r in
                logits.update(UnsafeRawBufferPointer(r))
                next = sampler.sample(r, step: step)
            }
            tokens.update(UInt32(bitPattern: next))
        }
    }

    /// `count` tokens of fixed English text: the same ids on every machine.
    static func promptTokens(_ tokenizer: Tokenizer, count: Int) -> [TokenID] {
        let paragraph = """
            A cache that never serves a wrong byte needs a model that computes the same bits for the same input, \
            whatever else the server is doing: how many requests share a batch, how a prompt is split into chunks, \
            how many threads run, and which processor runs them. Every sum in the kernels has one order, written \
            down, and every path follows it. 
            """
        let one = tokenizer.encode(paragraph)
        guard !one.isEmpty else { return [] } // checked by the caller: a vocabulary that encodes nothing
        var tokens: [TokenID] = []
        while tokens.count < count { tokens += one }
        return Array(tokens.prefix(count))
    }

    static func cpuName() -> String {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
        for line in info.split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        }
        return "unknown CPU"
    }
}
