import ArgumentParser
import Foundation
import VerbatimCache
import VerbatimModel

/// Which entries a command acts on: by kind, model digest (prefix) and age.
struct EntryFilter: ParsableArguments {
    @Option(help: "Only this kind: kv_block or completion.") var kind: String?
    @Option(help: "Only entries of this model digest (a prefix of it is enough).") var modelDigest: String?
    @Option(help: "Only entries created at least this long ago (30s, 15m, 2h, 7d).") var olderThan: String?
    @Option(help: "Only entries created less than this long ago.") var newerThan: String?

    func validate() throws {
        if let kind, kind != "kv_block" && kind != "completion" { throw ValidationError("--kind must be kv_block or completion (got \(kind))") }
        if let olderThan, Format.parseAge(olderThan) == nil { throw ValidationError("--older-than: \(olderThan) is not an age such as 30s, 15m, 2h, 7d") }
        if let newerThan, Format.parseAge(newerThan) == nil { throw ValidationError("--newer-than: \(newerThan) is not an age such as 30s, 15m, 2h, 7d") }
    }

    func matches(_ e: CacheEntryInfo, now: Int) -> Bool {
        if let kind, e.kind.name != kind { return false }
        if let modelDigest, !e.model.description.hasPrefix(modelDigest.lowercased()) { return false }
        let age = now - Int(e.created)
        if let olderThan, let limit = Format.parseAge(olderThan), age < limit { return false }
        if let newerThan, let limit = Format.parseAge(newerThan), age >= limit { return false }
        return true
    }
}

/// `cachectl ls`: one line per entry.
struct List: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List entries: key, kind, size, age, hits, tokens.")

    @OptionGroup var path: PathOption
    @OptionGroup var filter: EntryFilter
    @Option(help: "Sort by: age, size, hits or key.") var sort = "age"
    @Option(help: "Show at most this many entries (0: all).") var limit = 0
    @Flag(help: "Print JSON lines instead of a table.") var json = false

    func validate() throws {
        guard ["age", "size", "hits", "key"].contains(sort) else { throw ValidationError("--sort must be age, size, hits or key (got \(sort))") }
        guard limit >= 0 else { throw ValidationError("--limit must be >= 0") }
    }

    func run() throws {
        try guarded {
            let store = try path.open()
            let now = Int(Date().timeIntervalSince1970)
            var entries = try store.entries().filter { filter.matches($0, now: now) }
            switch sort {
            case "size": entries.sort { ($0.payloadBytes, $0.key.description) > ($1.payloadBytes, $1.key.description) }
            case "hits": entries.sort { ($0.hits, $0.key.description) > ($1.hits, $1.key.description) }
            case "key": entries.sort { $0.key.description < $1.key.description }
            default: entries.sort { ($0.created, $0.key.description) > ($1.created, $1.key.description) }   // newest first
            }
            if limit > 0 { entries = Array(entries.prefix(limit)) }
            if json {
                for e in entries {
                    let object: [String: Any] = [
                        "key": e.key.description, "kind": e.kind.name, "model": e.model.description, "profile": e.profile,
                        "parent": e.parent?.description ?? NSNull(), "tokens": e.tokenCount, "bytes": e.payloadBytes,
                        "created": e.created, "age_seconds": now - Int(e.created), "hits": e.hits,
                    ]
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                    print(String(decoding: data, as: UTF8.self))
                }
                return
            }
            print(Format.table(entries.map {
                [$0.key.description, $0.kind.name, Format.bytes($0.payloadBytes), Format.age(now - Int($0.created)),
                 "\($0.hits)", "\($0.tokenCount)", String($0.model.description.prefix(12))]
            }, header: ["key", "kind", "size", "age", "hits", "tokens", "model"], right: [2, 3, 4, 5]))
            print("\(entries.count) entries")
        }
    }
}

/// `cachectl inspect KEY`: an entry's header, and its tokens as text with `--model`.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one entry: what it was computed from, and its tokens.")

    @OptionGroup var path: PathOption
    @Argument(help: "The entry's key (32 hex digits).") var key: String
    @Option(help: "A GGUF model file: decode the tokens to text.") var model: String?
    @Flag(help: "Print JSON instead of text.") var json = false

    func run() throws {
        try guarded {
            let digest = try parseKey(key)
            let store = try path.open()
            guard let (info, payload, checksumHolds) = try store.entry(digest) else {
                throw Failure("cachectl: no entry \(key) in \(store.directory)", status: 1)
            }
            var text: String?
            var completionText: String?
            var tokenizerNote: String?
            var completion: CompletionRecord?
            if info.kind == .completion { completion = payload.withUnsafeBytes { CompletionRecord(decoding: $0) } }
            if let model {
                let file: GGUFFile
                do { file = try GGUFFile(path: model) } catch { throw Failure("cachectl: \(error)", status: Failure.model) }
                if file.modelDigest() != info.model { tokenizerNote = "note: \(model) is another model (digest \(file.modelDigest())); tokens decoded with its vocabulary" }
                do {
                    let tokenizer = try Tokenizer(file: file)
                    text = try tokenizer.decode(info.tokens, includeControl: true)
                    if let completion { completionText = try tokenizer.decode(completion.tokens, includeControl: true) }
                } catch { throw Failure("cachectl: \(model): \(error)", status: Failure.model) }
            }
            let now = Int(Date().timeIntervalSince1970)
            if json {
                var object: [String: Any] = [
                    "key": info.key.description, "kind": info.kind.name, "model": info.model.description, "profile": info.profile,
                    "salt_digest": info.saltDigest.description, "parent": info.parent?.description ?? NSNull(),
                    "tokens": info.tokens.map { Int($0) }, "sampling_identity": info.sampling.map { String(format: "%02x", $0) }.joined(),
                    "created": info.created, "age_seconds": now - Int(info.created), "hits": info.hits,
                    "bytes": info.payloadBytes, "checksum_ok": checksumHolds,
                ]
                if let text { object["text"] = text }
                if let completionText { object["completion_text"] = completionText }
                if let completion {
                    object["completion"] = ["reason": "\(completion.reason)", "tokens": completion.tokens.map { Int($0) },
                                            "logprobs": completion.logprobs.map { Double($0) }]
                }
                try printJSON(object)
                return
            }
            var rows: [[String]] = [
                ["key", info.key.description], ["kind", info.kind.name], ["model", info.model.description],
                ["profile", info.profile], ["salt digest", info.saltDigest.description],
                ["parent", info.parent?.description ?? "none (first block)"],
                ["created", "\(Date(timeIntervalSince1970: Double(info.created))) (\(Format.age(now - Int(info.created))) ago)"],
                ["hits", "\(info.hits)"], ["payload", "\(Format.bytes(info.payloadBytes)), checksum \(checksumHolds ? "ok" : "MISMATCH")"],
                [info.kind == .kvBlock ? "block tokens" : "prompt tokens", "\(info.tokenCount): " + info.tokens.map(String.init).joined(separator: " ")],
            ]
            if info.kind == .completion, !info.sampling.isEmpty {
                rows.append(["sampling identity", info.sampling.map { String(format: "%02x", $0) }.joined()])
            }
            if let completion {
                rows.append(["completion", "\(completion.tokens.count) tokens, stopped by \(completion.reason): "
                    + completion.tokens.map(String.init).joined(separator: " ")])
            }
            print(Format.table(rows))
            if let tokenizerNote { print(tokenizerNote) }
            if let text { print("text:\n\(text)") }
            if let completionText { print("completion text:\n\(completionText)") }
        }
    }
}
