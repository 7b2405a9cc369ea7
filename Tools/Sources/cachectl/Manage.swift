import ArgumentParser
import Foundation
import Verbatim
import VerbatimCache
import VerbatimModel

/// `cachectl evict`: remove entries by size, age or model (least recently used first for size).
struct Evict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove entries: down to a size (least recently used first), older than an age, or of a model.",
        discussion: "KV blocks left without their parent can never be reached and are removed too. Safe beside a running service.")

    @OptionGroup var path: PathOption
    @Option(help: "Evict least recently used entries until the payload is at most this size (500M, 2G).") var to: String?
    @Option(help: "Evict entries created at least this long ago (30s, 15m, 2h, 7d).") var olderThan: String?
    @Option(help: "Evict every entry of this model digest (a prefix of it is enough).") var model: String?
    @Flag(help: "Only say what would be evicted.") var dryRun = false

    func validate() throws {
        guard [to, olderThan, model].compactMap({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --to SIZE, --older-than AGE, --model DIGEST")
        }
        if let to, Format.parseSize(to) == nil { throw ValidationError("--to: \(to) is not a size such as 500M or 2G") }
        if let olderThan, Format.parseAge(olderThan) == nil { throw ValidationError("--older-than: \(olderThan) is not an age such as 30s, 15m, 2h, 7d") }
        if let model, model.isEmpty || !model.allSatisfy(\.isHexDigit) { throw ValidationError("--model takes a model digest in hex (as `cachectl stats` prints it)") }
    }

    func run() throws {
        try guarded {
            let store = try path.open(writable: !dryRun)
            let before = try store.stats()
            if let to, let target = Format.parseSize(to) {
                if dryRun {
                    print("would evict least recently used entries from \(Format.bytes(before.payloadBytes)) down to at most \(Format.bytes(target))")
                    return
                }
                store.evictLeastRecentlyUsed(toPayloadBytes: target)
            } else {
                let now = Int(Date().timeIntervalSince1970)
                let entries = try store.entries()
                let victims = entries.filter { e in
                    if let olderThan, let age = Format.parseAge(olderThan) { return now - Int(e.created) >= age }
                    if let model { return e.model.description.hasPrefix(model.lowercased()) }
                    return false
                }
                if dryRun {
                    let bytes = victims.reduce(0) { $0 + $1.payloadBytes }
                    print("would evict \(victims.count) entries (\(Format.bytes(bytes)))")
                    return
                }
                store.delete(victims.map(\.key))
            }
            let orphans = try store.orphanedBlocks()
            store.delete(orphans)
            let after = try store.stats()
            let removed = (before.kvBlocks + before.completions) - (after.kvBlocks + after.completions)
            print("evicted \(removed) entries (\(orphans.count) of them orphaned KV blocks): payload \(Format.bytes(before.payloadBytes)) -> \(Format.bytes(after.payloadBytes))")
            if let failure = store.writeFailure { throw Failure("cachectl: the cache could not be written: \(failure)", status: Failure.storage) }
        }
    }
}

/// `cachectl compact`: rewrite the file without free pages.
struct Compact: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rewrite the cache file without free pages (atomic swap).",
        discussion: """
            Refuses (exit 7) while a process has the cache open for writing; readers may keep \
            reading throughout (they finish on the old file). Needs free disk for one copy.
            """)

    @OptionGroup var path: PathOption

    func run() throws {
        try guarded {
            let (before, after) = try CacheStore.compact(directory: path.resolved)
            print("compacted \(path.resolved): \(Format.bytes(before)) -> \(Format.bytes(after))")
        }
    }
}

/// `cachectl warm`: prefill prompts so their KV blocks are in the cache before traffic arrives.
struct Warm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prefill the prompts of a JSONL file into the cache.",
        discussion: """
            One JSON object per line: {"prompt": "text"}, {"messages": [{"role": "user", "content": "..."}]} \
            or {"tokens": [1, 2, 3]}. With --tenant the blocks are stored under that tenant's salt, \
            derived as `verbatim serve` derives it; without, under no salt (a server without tenants). \
            With --tenants (the server's tenants file) its shared_prefixes are keyed as the server keys \
            them: public whole blocks, the tenant's salt from the first block after.
            """)

    @OptionGroup var path: PathOption
    @Option(help: "The GGUF model file.") var model: String
    @Argument(help: "The prompts (JSON lines).") var file: String
    @Option(help: "Tenant id (as in the server's tenants file) whose cache to warm; default none.") var tenant: String?
    @Option(help: "The server's tenants file, for its shared_prefixes (used with --tenant).") var tenants: String?
    @Option(help: "Tokens per KV block (must match the service's).") var blockSize = 32
    @Option(help: "Prompts in flight at once.") var concurrency = 4

    func validate() throws {
        guard blockSize > 0, concurrency > 0 else { throw ValidationError("--block-size and --concurrency must be positive") }
    }

    func run() async throws {
        try await guardedAsync { try await warm() }
    }

    private func warm() async throws {
        let prompts = try readPrompts()
        let store = try path.open(writable: true, create: true)
        let engine: Engine
        do {
            let gguf = try GGUFFile(path: model)
            var configuration = EngineConfiguration()
            configuration.cache = store
            configuration.completionCache = false
            configuration.blockSize = blockSize
            engine = try Engine(model: LlamaModel(file: gguf), tokenizer: Tokenizer(file: gguf), configuration: configuration)
        } catch {
            throw Failure("cachectl: \(model): \(error)", status: Failure.model)
        }
        let saltBytes = tenant.map(ContentAddress.tenantSalt) ?? []
        let shared = SharedPrefixes(try readSharedPrefixes(), engine: engine)
        let parameters: GenerateParameters = {
            var p = GenerateParameters(maxTokens: 1)
            p.parseSpecialTokens = false   // as the server reads client text
            return p
        }()
        var bar = ProgressBar(total: prompts.count, label: "warm")
        var done = 0, cached = 0, total = 0, failed: [String] = []
        await withTaskGroup(of: (Int, Int, String?).self) { group in
            var next = 0
            func add() {
                let (index, prompt) = (next, prompts[next])
                next += 1
                group.addTask {
                    do {
                        var summary: GenerationSummary?
                        let tokens = try engine.tokens(of: prompt, parameters: parameters)
                        let stream = try engine.generate(.tokens(tokens), parameters: parameters, salt: saltBytes,
                                                         sharedPrefixTokens: saltBytes.isEmpty ? 0 : shared.length(of: tokens))
                        for await event in stream {
                            if case .summary(let s) = event { summary = s }
                        }
                        return (summary?.promptTokens ?? 0, summary?.cachedPromptTokens ?? 0, nil)
                    } catch {
                        return (0, 0, "line \(index + 1): \(error)")
                    }
                }
            }
            while next < min(concurrency, prompts.count) { add() }
            for await (tokens, hit, error) in group {
                done += 1
                total += tokens
                cached += hit
                if let error { failed.append(error) }
                bar.update(done)
                if next < prompts.count { add() }
            }
        }
        await engine.shutdown()
        store.flush()
        print("warmed \(prompts.count - failed.count) prompts (\(total) tokens, \(cached) already cached) into \(store.directory)")
        for f in failed { print("failed \(f)") }
        if let failure = store.writeFailure { throw Failure("cachectl: the cache could not be written: \(failure)", status: Failure.storage) }
        if !failed.isEmpty { throw ExitCode(Failure.mismatch) }
    }

    private func readSharedPrefixes() throws -> [SharedPrefix] {
        guard let tenants else { return [] }
        struct File: Decodable {
            var sharedPrefixes: [SharedPrefix]?
            enum CodingKeys: String, CodingKey { case sharedPrefixes = "shared_prefixes" }
        }
        guard let data = FileManager.default.contents(atPath: tenants) else {
            throw Failure("cachectl: cannot read \(tenants)", status: 64)
        }
        do {
            return try JSONDecoder().decode(File.self, from: data).sharedPrefixes ?? []
        } catch let error as SharedPrefix.ParseError {
            throw Failure("cachectl: \(tenants): \(error)", status: 64)
        } catch {
            throw Failure("cachectl: cannot read \(tenants) as a JSON object with an optional 'shared_prefixes' list", status: 64)
        }
    }

    private func readPrompts() throws -> [Prompt] {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw Failure("cachectl: cannot read \(file)", status: 64)
        }
        var prompts: [Prompt] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let object = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any] else {
                throw Failure("cachectl: \(file) line \(n + 1) is not a JSON object", status: 64)
            }
            if let prompt = object["prompt"] as? String {
                prompts.append(.text(prompt))
            } else if let messages = object["messages"] as? [[String: Any]] {
                let chat = messages.compactMap { m -> ChatMessage? in
                    guard let role = m["role"] as? String, let content = m["content"] as? String else { return nil }
                    return ChatMessage(role: ChatRole(role), content: content)
                }
                guard chat.count == messages.count, !chat.isEmpty else {
                    throw Failure("cachectl: \(file) line \(n + 1): every message needs a string role and content", status: 64)
                }
                prompts.append(.chat(chat))
            } else if let tokens = object["tokens"] as? [Int] {
                prompts.append(.tokens(tokens.map { TokenID(truncatingIfNeeded: $0) }))
            } else {
                throw Failure("cachectl: \(file) line \(n + 1) has no \"prompt\", \"messages\" or \"tokens\"", status: 64)
            }
        }
        guard !prompts.isEmpty else { throw Failure("cachectl: \(file) holds no prompts", status: 64) }
        return prompts
    }
}

/// `cachectl salvage`: rebuild a damaged cache from the entries that still verify.
struct Salvage: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rebuild a damaged cache from every entry that still verifies; report what was lost.",
        discussion: """
            Reads data.mdb page by page (not through its possibly damaged index), keeps each entry \
            whose header and payload checksum hold, and swaps a fresh file in; the damaged file \
            stays beside it as data.mdb.damaged. Refuses (exit 7) while a process has the cache open \
            for writing. Works on a sound cache too (it then keeps every entry).
            """)

    @OptionGroup var path: PathOption

    func run() throws {
        try guarded {
            let r = try CacheStore.salvage(directory: path.resolved)
            print("salvaged \(path.resolved): \(r.salvaged) entries kept (\(r.kvBlocks) KV blocks, \(r.completions) completions, "
                  + "\(Format.bytes(r.payloadBytes)) of payload) from \(r.pagesScanned) pages; \(r.rejected) found damaged")
            if let recorded = r.recorded, let lost = r.lost {
                print("the damaged file recorded \(recorded) entries: \(lost) lost")
            } else {
                print("the damaged file's counters were unreadable: how many entries it held is unknown")
            }
            print("the damaged file is kept as \(path.resolved)/data.mdb.damaged")
        }
    }
}

/// `cachectl reset`: empty a cache, damaged or not.
struct Reset: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Empty a cache folder (a damaged one too): every entry is removed.",
        discussion: "Refuses (exit 7) while a process has the cache open for writing. Needs --yes.")

    @OptionGroup var path: PathOption
    @Flag(help: "Confirm that every entry goes.") var yes = false

    func run() throws {
        try guarded {
            guard yes else { throw Failure("cachectl: reset removes every entry of \(path.resolved); pass --yes to confirm", status: 64) }
            let removed = try CacheStore.reset(directory: path.resolved)
            print("reset \(path.resolved): removed \(Format.bytes(removed)); the cache is empty")
        }
    }
}

extension Salvage: PathCommand { var folder: String { path.resolved } }
extension Reset: PathCommand { var folder: String { path.resolved } }
