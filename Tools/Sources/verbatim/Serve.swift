import ArgumentParser
import Foundation
import Logging
import Verbatim
import VerbatimCache
import VerbatimModel
import VerbatimServer

/// `verbatim serve`: the OpenAI-compatible HTTP service.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve /v1/completions, /v1/chat/completions, /v1/models, /health and /metrics over HTTP.",
        discussion: "SIGTERM or SIGINT: stop accepting, finish in-flight requests (each within --request-timeout), flush the cache, exit 0.")

    @OptionGroup var model: ModelOption
    @Option(help: "Cache folder (LMDB) for KV prefixes and completions.") var cache: String
    @Option(help: "A PostgreSQL tier shared by a fleet behind the cache folder (postgres://user:password@host:port/database).")
    var sharedCache: String?
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port, printed at start).") var port = 8080
    @Option(help: "JSON file of tenants and their API keys; without it no key is asked for.") var tenants: String?
    @Option(help: "The model name clients use (default: the file name without .gguf).") var modelName: String?
    @Option(help: "KV memory in MiB.") var kvMemory = 512
    @Option(help: "How keys and values are stored: f32 (exact, the default) or f16 (half the KV memory and bandwidth; part of the numerics profile, so its cache entries are its own).")
    var kvType = "f32"
    @Option(help: "A Jinja chat template file for /v1/chat/completions in place of the model's own (needed for a model without one).")
    var chatTemplate: String?
    @Option(help: "Tokens per engine step: decode rows first, then prompt chunks. Smaller steps let a short prompt start sooner while long ones prefill (64: first token in about 0.2 s behind three 1000-token prompts on 2 cores, at the same throughput here).")
    var maxBatchTokens = 64
    @Option(help: "Which prompts share a step's budget first: shortest-first (a prompt passed over for --max-prefill-delay steps goes first), arrival, round-robin. No order changes a bit of any output.")
    var prefillOrder = "shortest-first"
    @Option(help: "shortest-first: steps a prompt may be passed over before it goes first.") var maxPrefillDelay = 8
    @Option(help: "Requests admitted at once; more wait in the queue.") var maxRunning = 256
    @Option(help: "Speculation: draft tokens a step per generating request (0: off, at most 64), copied from what followed an earlier occurrence of its last tokens in its prompt and output, and checked by the model in the same step. Only rows the step's budget leaves are used; no output bit changes.")
    var draftTokens = 0
    @Option(help: "Seconds the engine stays idle before it gives its KV memory back to the OS (0: at once); requests arriving sooner find it still committed.")
    var idleMemoryDelay = 0.5
    @Option(help: "Seconds a request may run (reading, tokenizing, generating) before it is stopped; SIGTERM waits at most this long for in-flight requests.")
    var requestTimeout = 600.0

    func run() async throws {
        let kv: KVType
        switch kvType {
        case "f32": kv = .f32
        case "f16": kv = .f16
        default: throw CLIError("--kv-type must be f32 or f16, not '\(kvType)'")
        }
        guard let order = PrefillOrder(rawValue: prefillOrder) else {
            throw CLIError("--prefill-order must be one of \(PrefillOrder.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard maxBatchTokens > 0, maxRunning > 0, maxPrefillDelay >= 0 else {
            throw CLIError("--max-batch-tokens and --max-running must be positive, --max-prefill-delay not negative")
        }
        guard draftTokens >= 0, draftTokens <= 64 else { throw CLIError("--draft-tokens must be between 0 and 64, not \(draftTokens)") }
        guard idleMemoryDelay >= 0, idleMemoryDelay <= 86_400 else {
            throw CLIError("--idle-memory-delay must be between 0 and 86400 seconds, not \(idleMemoryDelay)")
        }
        let file = try model.open()
        let name = modelName ?? URL(fileURLWithPath: model.path).deletingPathExtension().lastPathComponent
        var server = ServerConfiguration(modelName: name)
        server.host = host
        server.port = port
        if let chatTemplate {
            do {
                server.chatTemplate = try ChatTemplate(source: String(contentsOfFile: chatTemplate, encoding: .utf8))
            } catch {
                throw CLIError("chat template \(chatTemplate): \(error)")
            }
        }
        guard requestTimeout > 0, requestTimeout.isFinite else { throw CLIError("--request-timeout must be a positive number of seconds") }
        server.requestTimeout = .milliseconds(Int64(requestTimeout * 1000))
        do {
            if let tenants { server.tenants = try TenantDirectory(file: tenants) }
        } catch { throw CLIError(error.message) }
        let service: VerbatimService
        do {
            let lm = try LlamaModel(file: file)
            var configuration = EngineConfiguration()
            configuration.kvMemoryBytes = kvMemory << 20
            configuration.kvType = kv
            configuration.maxBatchTokens = maxBatchTokens
            configuration.prefillOrder = order
            configuration.maxPrefillDelaySteps = maxPrefillDelay
            configuration.maxRunningRequests = maxRunning
            configuration.draftTokens = draftTokens
            configuration.idleMemoryDelay = .milliseconds(Int64(idleMemoryDelay * 1000))
            configuration.sharedPrefixes = server.tenants?.sharedPrefixes ?? []
            let store = try CacheStore(directory: cache, options: try cacheOptions(sharedCache: sharedCache))
            configuration.cache = store
            let tokenizer = try Tokenizer(file: file)
            let engine = try Engine(model: lm, tokenizer: tokenizer, configuration: configuration)
            service = VerbatimService(engine: engine, configuration: server)
        } catch let error as CacheError {
            throw CLIError("cache folder \(cache): \(error.message)")   // the folder, not the model, is at fault
        } catch {
            throw CLIError("\(model.path): \(error)")
        }
        var logger = Logger(label: "verbatim")
        logger.logLevel = .info
        try await service.run(logger: logger) { port in
            FileHandle.standardOutput.write(Data("listening on http://\(host):\(port) (model \(name), fingerprint \(service.systemFingerprint))\n".utf8))
        }
        print("stopped")
    }
}
