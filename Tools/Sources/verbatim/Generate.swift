import ArgumentParser
import Foundation
import VerbatimKernels
import Verbatim
import VerbatimCache
import VerbatimModel
import VerbatimPostgres

/// The prompt, given one of three ways.
struct PromptOptions: ParsableArguments {
    @Option(help: "Prompt text; control tokens such as <|im_start|> written in it become control tokens.")
    var text: String?
    @Option(help: "Prompt as comma-separated token ids.") var tokens: String?
    @Option(help: "A user message, formatted with the model's chat template.") var chat: String?

    func resolve(_ tokenizer: Tokenizer) throws -> [TokenID] {
        let given = [text != nil, tokens != nil, chat != nil].filter { $0 }.count
        guard given == 1 else { throw ValidationError("give exactly one of --text, --tokens, --chat") }
        if let text { return tokenizer.encode(text, parseSpecial: true) }
        if let chat { return try tokenizer.encodeChat([ChatMessage(role: "user", content: chat)]) }
        var ids: [TokenID] = []
        for part in tokens!.split(separator: ",") {
            guard let id = TokenID(part.trimmingCharacters(in: .whitespaces)) else {
                throw CLIError("--tokens: '\(part)' is not a token id")
            }
            try tokenizer.validate(id)
            ids.append(id)
        }
        return ids
    }
}

/// Loads model, tokenizer and a forward pass sized for `tokens` positions.
func loadRunner(_ option: ModelOption, positions: Int) throws -> (ForwardPass, Tokenizer) {
    let file = try option.open()
    do {
        let model = try LlamaModel(file: file)
        let tokenizer = try Tokenizer(file: file)
        let blockSize = 32
        let blocks = max(1, (min(positions, model.config.contextLength) + blockSize - 1) / blockSize)
        let cache = KVPool(config: model.config, blockSize: blockSize, blockCount: blocks)
        return (ForwardPass(model: model, kv: cache, maxTokens: 256), tokenizer)
    } catch let error as CLIError {
        throw error
    } catch {
        throw CLIError("\(option.path): \(error)")
    }
}

func checkContext(_ prompt: [TokenID], extra: Int, _ runner: ForwardPass) throws {
    let context = runner.model.config.contextLength
    guard !prompt.isEmpty else { throw CLIError("the prompt is empty") }
    guard prompt.count + extra <= context else {
        throw CLIError("the prompt has \(prompt.count) tokens\(extra > 0 ? " and \(extra) more were asked for" : ""); the context holds \(context)")
    }
}

struct Generate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Continue a prompt through the engine.")

    @OptionGroup var model: ModelOption
    @OptionGroup var prompt: PromptOptions
    @Option(help: "Maximum new tokens.") var maxTokens = 64
    @Option(help: "Sampling temperature; 0 is greedy (argmax, ties to the lowest id).") var temperature: Float = 0
    @Option(help: "Keep the k most likely tokens (0: all).") var topK = 0
    @Option(help: "Keep the most likely tokens up to this probability mass (1: all).") var topP: Float = 1
    @Option(help: "Drop tokens less likely than this fraction of the most likely one.") var minP: Float = 0
    @Option(help: "Seed of the random draws (default: random, printed with --json).") var seed: UInt64?
    @Option(help: "Stop when the text contains this string (repeatable).") var stop: [String] = []
    @Flag(help: "Do not stop at the end-of-sequence token.") var ignoreEos = false
    @Flag(help: "With --json: add the log-probability of each generated token.") var logprobs = false
    @Option(help: "Cache folder (LMDB) for KV prefixes and completions; none by default.") var cache: String?
    @Option(help: "With --cache: a PostgreSQL tier shared by a fleet (postgres://user:password@host:port/database).")
    var sharedCache: String?
    @Flag(help: "With --cache: do not reuse or store KV prefixes.") var noPrefixCache = false
    @Flag(help: "With --cache: do not reuse or store completions.") var noCompletionCache = false
    @Flag(help: "Print {\"prompt_tokens\":[...],\"tokens\":[...],\"text\":\"...\",\"seed\":...}.") var json = false

    func run() async throws {
        let engine: Engine
        let file = try model.open()
        var store: CacheStore?
        do {
            let lm = try LlamaModel(file: file)
            var configuration = EngineConfiguration()
            configuration.kvMemoryBytes = 128 << 20
            if let cache {
                store = try CacheStore(directory: cache, options: try cacheOptions(sharedCache: sharedCache))
                configuration.cache = store
                configuration.prefixCache = !noPrefixCache
                configuration.completionCache = !noCompletionCache
            }
            engine = try Engine(model: lm, tokenizer: try Tokenizer(file: file), configuration: configuration)
        } catch let error as CacheError {
            throw CLIError("cache folder \(cache ?? "-"): \(error.message)")   // the folder, not the model, is at fault
        } catch {
            throw CLIError("\(model.path): \(error)")
        }
        var parameters = GenerateParameters(maxTokens: maxTokens, temperature: temperature, topK: topK, topP: topP,
                                            minP: minP, seed: seed, stopAtEOS: !ignoreEos, stopStrings: stop,
                                            logprobs: logprobs)
        parameters.parseSpecialTokens = true
        let ids = try prompt.resolve(engine.tokenizer)
        let stream: GenerationStream
        do { stream = try engine.generate(.tokens(ids), parameters: parameters) } catch { throw CLIError("\(error)") }
        var tokens: [Int] = [], probabilities: [Double] = [], text = ""
        var summary: GenerationSummary?
        for await event in stream {
            switch event {
            case .token(let t):
                tokens.append(Int(t.id))
                if let lp = t.logprob { probabilities.append(Double(lp)) }
                text += t.text
                if !json { FileHandle.standardOutput.write(Data(t.text.utf8)) }
            case .summary(let s):
                summary = s
            }
        }
        await engine.shutdown()
        store?.close()   // commits local writes and sends new entries to the shared tier
        if json {
            var object: [String: Any] = ["prompt_tokens": ids.map(Int.init), "tokens": tokens, "text": text,
                                         "seed": summary?.seed.map { $0 as Any } ?? NSNull(), "stop_reason": summary?.stopReason.rawValue ?? "",
                                         "cached_prompt_tokens": summary?.cachedPromptTokens ?? 0,
                                         "completion_from_cache": summary?.completionFromCache ?? false]
            if logprobs { object["logprobs"] = probabilities }
            try printJSON(object)
        } else {
            print()
        }
    }
}

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Log-probabilities of each token given its prefix, and the top logits at the last position.")

    @OptionGroup var model: ModelOption
    @OptionGroup var prompt: PromptOptions
    @Option(help: "How many of the highest logits at the last position to print.") var top = 10
    @Option(help: "Write the last position's logits as raw little-endian f32 to this file.") var logitsOut: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let (probe, tokenizer) = try loadRunner(model, positions: 0)
        let ids = try prompt.resolve(tokenizer)
        try checkContext(ids, extra: 0, probe)
        let (runner, _) = try loadRunner(model, positions: ids.count)
        let result = try runner.score(ids)
        let order = result.lastLogits.indices.sorted { result.lastLogits[$0] > result.lastLogits[$1] || (result.lastLogits[$0] == result.lastLogits[$1] && $0 < $1) }
        let topK = order.prefix(max(0, top)).map { ["id": $0, "logit": Double(result.lastLogits[$0])] as [String: Any] }
        if let logitsOut {
            var data = Data(capacity: result.lastLogits.count * 4)
            for v in result.lastLogits { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
            guard FileManager.default.createFile(atPath: logitsOut, contents: data) else {
                throw CLIError("cannot write \(logitsOut)")
            }
        }
        if json {
            try printJSON(["tokens": ids.map(Int.init),
                           "logprobs": result.logprobs.map { $0.map { Double($0) as Any } ?? NSNull() },
                           "top": topK])
            return
        }
        for (i, id) in ids.enumerated() {
            let piece = (try? tokenizer.decode([id], includeControl: true)) ?? ""
            print("\(id)\t\(result.logprobs[i].map { String(format: "%.4f", $0) } ?? "-")\t\(piece.debugDescription)")
        }
        print("top \(topK.count) next tokens:")
        for entry in topK {
            let id = entry["id"] as! Int
            print("  \(id)\t\(entry["logit"]!)\t\(((try? tokenizer.decode([TokenID(id)], includeControl: true)) ?? "").debugDescription)")
        }
    }
}

/// Cache options with the shared PostgreSQL tier when a URL is given.
func cacheOptions(sharedCache: String?) throws -> CacheOptions {
    var options = CacheOptions()
    if let sharedCache {
        do { options.sharedTier = try PostgresTier(PostgresTier.Configuration(url: sharedCache)) } catch { throw CLIError("\(error)") }
    }
    return options
}
