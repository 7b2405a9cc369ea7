import Foundation
import LMDB
import Testing
import Verbatim
import VerbatimCache
import VerbatimKernels
import VerbatimModel

/// `cachectl`, run as a user runs it, against caches the engine wrote (through `verbatim generate`).
@Suite("cachectl", .serialized)
struct CacheCtlTests {
    static let prompt = "Name three rivers in Europe and one fact about each of them."

    func cachectl(_ arguments: [String]) throws -> CLI.Result { try CLI.run(arguments, binary: CLI.cachectl) }

    func json(_ r: CLI.Result) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any], "stdout: \(String(decoding: r.stdout, as: UTF8.self)) stderr: \(r.stderr)")
    }

    /// A cache holding the KV blocks and the completion of one chat prompt, looked up twice.
    func makeCache() throws -> String {
        let cache = CacheProcessTests.folder()
        _ = try CacheProcessTests.generate(cache)   // cold: stores blocks and the completion
        _ = try CacheProcessTests.generate(cache)   // warm: a completion hit
        return cache
    }

    func lines(_ r: CLI.Result) -> [[String: Any]] {
        String(decoding: r.stdout, as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    @Test("stats reports entries, bytes, hit rates and models, as JSON and as a table, matching what ls lists")
    func stats() throws {
        #expect(FileManager.default.isExecutableFile(atPath: CLI.cachectl), "missing \(CLI.cachectl)")
        let cache = try makeCache()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let s = try json(cachectl(["stats", "--path", cache, "--json"]))
        let blocks = try #require(s["entries.kv_blocks"] as? Int)
        #expect(blocks > 0)
        #expect(s["entries.completions"] as? Int == 1)
        #expect(s["hit_rate.completions"] as? Double == 0.5)    // 1 hit in 2 lookups
        #expect(s["lookups.completions"] as? Int == 2)
        #expect((s["bytes.payload"] as? Int ?? 0) > 0 && (s["bytes.file"] as? Int ?? 0) >= (s["bytes.payload"] as? Int ?? 0))
        #expect((s["bytes.map"] as? Int ?? 0) > 0)
        #expect((s["tokens_saved"] as? Int ?? 0) > 0 && (s["seconds_saved_estimate"] as? Double ?? 0) > 0)
        #expect((s["readers"] as? [String: Int])?["max"] ?? 0 > 0)
        #expect((s["evictions"] as? [String: Int]) == ["budget": 0, "corruption": 0, "explicit": 0])
        let digest = try GGUFFile(path: CLI.modelPath).modelDigest().description
        let models = try #require(s["models"] as? [[String: Any]])
        #expect(models.count == 1 && models[0]["digest"] as? String == digest && models[0]["kv_blocks"] as? Int == blocks)

        let listed = lines(try cachectl(["ls", "--path", cache, "--json"]))
        #expect(listed.count == blocks + 1)
        #expect(listed.filter { $0["kind"] as? String == "completion" }.count == 1)
        #expect(listed.map { $0["bytes"] as? Int ?? 0 }.reduce(0, +) == s["bytes.payload"] as? Int)
        // The completion was served once; the blocks never (the second request hit the completion).
        #expect(listed.first { $0["kind"] as? String == "completion" }?["hits"] as? Int == 1)
        let completions = lines(try cachectl(["ls", "--path", cache, "--json", "--kind", "completion"]))
        #expect(completions.count == 1)
        #expect(lines(try cachectl(["ls", "--path", cache, "--json", "--older-than", "1h"])).isEmpty)

        let table = try cachectl(["stats", "--path", cache])
        let text = String(decoding: table.stdout, as: UTF8.self)
        #expect(table.status == 0 && text.contains("completion hit rate") && text.contains("50.0%") && text.contains("MiB") && text.contains(digest))
    }

    @Test("inspect shows an entry's header, and with --model its tokens as text")
    func inspect() throws {
        let cache = try makeCache()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let completion = try #require(lines(try cachectl(["ls", "--path", cache, "--json", "--kind", "completion"])).first)
        let key = try #require(completion["key"] as? String)
        let entry = try json(cachectl(["inspect", key, "--path", cache, "--model", CLI.modelPath, "--json"]))
        #expect(entry["kind"] as? String == "completion" && entry["checksum_ok"] as? Bool == true)
        #expect((entry["text"] as? String)?.contains(Self.prompt) == true)
        #expect(((entry["completion"] as? [String: Any])?["tokens"] as? [Int])?.count == 12)
        let generated = try CacheProcessTests.generate(cache)
        #expect(entry["completion_text"] as? String == generated["text"] as? String)
        let missing = try cachectl(["inspect", String(repeating: "0", count: 32), "--path", cache])
        #expect(missing.status == 1 && missing.stderr.contains("no entry"))
        let malformed = try cachectl(["inspect", "xyz", "--path", cache])
        #expect(malformed.status == 64 && malformed.stderr.contains("not a cache key"))
    }

    @Test("verify passes on an intact cache, and names the key of a corrupt entry and of a well-formed but wrong one")
    func verify() throws {
        let cache = try makeCache()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let clean = try cachectl(["verify", "--all", "--model", CLI.modelPath, "--path", cache])
        let cleanText = String(decoding: clean.stdout, as: UTF8.self)
        #expect(clean.status == 0, "\(cleanText) \(clean.stderr)")
        #expect(cleanText.contains("0 with a bad checksum") && cleanText.contains(": 0 differ"))
        let sampled = try cachectl(["verify", "--sample", "2", "--seed", "1", "--model", CLI.modelPath, "--path", cache])
        #expect(sampled.status == 0 && String(decoding: sampled.stdout, as: UTF8.self).contains("checked 2 of"))

        // A KV block rewritten with one value changed and a matching checksum: only recomputation sees it.
        let blocks = lines(try cachectl(["ls", "--path", cache, "--json", "--kind", "kv_block", "--sort", "key"]))
        let wrongKey = try #require(blocks.first?["key"] as? String)
        try rewrite(cache, key: wrongKey) { payload in payload[100] ^= 0x01 }
        let wrong = try cachectl(["verify", "--all", "--model", CLI.modelPath, "--path", cache])
        let wrongText = String(decoding: wrong.stdout, as: UTF8.self)
        #expect(wrong.status == 1)
        #expect(wrongText.contains("differs \(wrongKey)") && wrongText.contains("1 of "), "\(wrongText)")

        // A forged block whose parent is itself: verification ends and names it, never loops.
        let loopKey = Digest128(high: 0xF00D, low: 0xF00D)
        do {
            let store = try CacheStore(directory: cache)
            let identity = EntryIdentity(kind: .kvBlock, model: try GGUFFile(path: CLI.modelPath).modelDigest(),
                                         profile: KernelConfig.numericsProfile(kv: .f32), saltDigest: EntryIdentity.saltDigest([]),
                                         parent: loopKey, tokens: Array(repeating: 42, count: 32), sampling: [])
            let bytes = [UInt8](repeating: 0, count: 2 * 30 * 32 * 192 * 4)
            bytes.withUnsafeBytes { store.put(loopKey, identity: identity, payload: $0) }
            store.flush()
        }
        let looped = try cachectl(["verify", "--all", "--model", CLI.modelPath, "--path", cache])
        #expect(looped.status == 1 && String(decoding: looped.stdout, as: UTF8.self).contains("differs \(loopKey): its chain of parent blocks loops"))

        // A payload byte flipped in place: the checksum catches it, without a model.
        let corruptKey = try #require(blocks.last?["key"] as? String)
        try flipStoredByte(cache, key: corruptKey)
        let corrupt = try cachectl(["verify", "--path", cache])
        #expect(corrupt.status == 1 && String(decoding: corrupt.stdout, as: UTF8.self).contains("corrupt \(corruptKey)"))
    }

    @Test("evict by model, by age and down to a size; compact shrinks the file and keeps every entry")
    func evictAndCompact() throws {
        let cache = try makeCache()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let before = try json(cachectl(["stats", "--path", cache, "--json"]))
        let payload = try #require(before["bytes.payload"] as? Int)
        let entries = (before["entries.kv_blocks"] as? Int ?? 0) + 1

        let young = try cachectl(["evict", "--older-than", "1d", "--path", cache])
        #expect(young.status == 0, "\(young.stderr)")
        #expect(try json(cachectl(["stats", "--path", cache, "--json"]))["bytes.payload"] as? Int == payload)
        let dry = try cachectl(["evict", "--to", "0", "--dry-run", "--path", cache])
        #expect(dry.status == 0 && String(decoding: dry.stdout, as: UTF8.self).contains("would evict"))

        let target = payload / 2
        #expect(try cachectl(["evict", "--to", String(target), "--path", cache]).status == 0)
        let half = try json(cachectl(["stats", "--path", cache, "--json"]))
        #expect((half["bytes.payload"] as? Int ?? .max) <= target)
        #expect((half["evictions"] as? [String: Int])?["explicit"] ?? 0 > 0)
        // No orphan is left: every remaining block's parent is present.
        let remaining = lines(try cachectl(["ls", "--path", cache, "--json"]))
        let keys = Set(remaining.compactMap { $0["key"] as? String })
        #expect(remaining.allSatisfy { ($0["parent"] as? String).map(keys.contains) ?? true })
        #expect(remaining.count < entries)

        let fileBefore = try #require(half["bytes.file"] as? Int)
        let compact = try cachectl(["compact", "--path", cache])
        #expect(compact.status == 0, "\(compact.stderr)")
        let after = try json(cachectl(["stats", "--path", cache, "--json"]))
        #expect((after["bytes.file"] as? Int ?? .max) < fileBefore)
        #expect(after["entries.kv_blocks"] as? Int == half["entries.kv_blocks"] as? Int)
        #expect(try cachectl(["verify", "--all", "--model", CLI.modelPath, "--path", cache]).status == 0)
        // The engine still hits what is left.
        let again = try CacheProcessTests.generate(cache)
        #expect(again["tokens"] as? [Int] != nil)

        let digest = try GGUFFile(path: CLI.modelPath).modelDigest().description
        #expect(try cachectl(["evict", "--model", String(digest.prefix(8)), "--path", cache]).status == 0)
        let empty = try json(cachectl(["stats", "--path", cache, "--json"]))
        #expect(empty["entries.kv_blocks"] as? Int == 0 && empty["entries.completions"] as? Int == 0 && empty["bytes.payload"] as? Int == 0)
    }

    @Test("stats and verify run while another process writes; compact refuses beside a writer and runs beside a reader")
    func concurrentProcesses() throws {
        let cache = CacheProcessTests.folder()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: CLI.binary)
        writer.arguments = ["cache-stress", "--cache", cache, "--count", "1000"]
        writer.standardOutput = FileHandle.nullDevice
        try writer.run()
        var last = 0
        var sawGrowth = false
        var refusals = 0
        for _ in 0..<12 {
            usleep(100_000)
            let r = try cachectl(["stats", "--path", cache, "--json"])
            guard r.status == 0 else {
                // Only before the writer created the folder may the cache be missing.
                #expect(last == 0 && (r.status == 2 || r.status == 3), "status \(r.status): \(r.stderr)")
                continue
            }
            let blocks = try json(r)["entries.kv_blocks"] as? Int ?? -1
            #expect(blocks >= last, "entries went from \(last) to \(blocks)")
            if blocks > last && last > 0 { sawGrowth = true }
            last = blocks
            if writer.isRunning {
                let refused = try cachectl(["compact", "--path", cache])
                // A writer alive after the call held the lock throughout, so compact must have refused.
                if writer.isRunning {
                    refusals += 1
                    #expect(refused.status == 7 && refused.stderr.contains("open for writing"), "\(refused.status) \(refused.stderr)")
                }
            }
        }
        #expect(sawGrowth || !writer.isRunning)
        #expect(refusals > 0, "the writer finished before compact could be tried beside it")
        writer.waitUntilExit()
        let total = try json(cachectl(["stats", "--path", cache, "--json"]))["entries.kv_blocks"] as? Int ?? 0
        #expect(total >= 1000)

        // A reader verifying in a loop while the file is compacted and swapped.
        let reader = Process()
        reader.executableURL = URL(fileURLWithPath: "/bin/sh")
        reader.arguments = ["-c", "for i in 1 2 3 4 5 6 7 8; do \"$0\" verify --path \"$1\" >/dev/null || exit 1; done", CLI.cachectl, cache]
        try reader.run()
        usleep(50_000)
        let compact = try cachectl(["compact", "--path", cache])
        #expect(compact.status == 0, "\(compact.stderr)")
        reader.waitUntilExit()
        #expect(reader.terminationStatus == 0, "a reader failed while the cache was compacted")
        #expect(try json(cachectl(["stats", "--path", cache, "--json"]))["entries.kv_blocks"] as? Int == total)
        #expect(try cachectl(["verify", "--all", "--path", cache]).status == 0)
    }

    @Test("warm prefills a JSONL file's prompts; the engine then hits them; --tenants keys shared prefixes as the server does")
    func warm() async throws {
        let cache = CacheProcessTests.folder()
        let file = cache + ".jsonl"
        defer { try? FileManager.default.removeItem(atPath: cache); try? FileManager.default.removeItem(atPath: file) }
        let lines = [
            #"{"messages": [{"role": "user", "content": "\#(Self.prompt)"}]}"#,
            #"{"prompt": "The history of the printing press began in the fifteenth century, when a goldsmith in Mainz combined movable metal type with an oil-based ink and a screw press."}"#,
        ]
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let r = try cachectl(["warm", "--model", CLI.modelPath, file, "--path", cache])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(String(decoding: r.stdout, as: UTF8.self).contains("warmed 2 prompts"))
        let s = try json(cachectl(["stats", "--path", cache, "--json"]))
        #expect((s["entries.kv_blocks"] as? Int ?? 0) >= 2 && s["entries.completions"] as? Int == 0)
        let hit = try CacheProcessTests.generate(cache)
        #expect((hit["cached_prompt_tokens"] as? Int ?? 0) > 0)

        // --tenant stores under the salt the server derives for that tenant.
        let tenantCache = cache + "-tenant"
        defer { try? FileManager.default.removeItem(atPath: tenantCache) }
        #expect(try cachectl(["warm", "--model", CLI.modelPath, file, "--path", tenantCache, "--tenant", "acme"]).status == 0)
        let warmed = self.lines(try cachectl(["ls", "--path", tenantCache, "--json"]))
        let someKey = try #require(warmed.first?["key"] as? String)
        let header = try json(cachectl(["inspect", someKey, "--path", tenantCache, "--json"]))
        #expect(header["salt_digest"] as? String == EntryIdentity.saltDigest(ContentAddress.tenantSalt("acme")).description)

        // --tenants: the server's shared prefixes are keyed as the server keys them, so another
        // tenant finds the public system prompt's whole blocks (and nothing of acme's own).
        let system = "You answer questions about the history of printing and of books. Be brief, name your sources, "
            + "give dates as years, and say plainly when a date is uncertain or disputed among historians."
        let sharedCache = cache + "-shared", tenantsFile = cache + ".tenants.json", chatFile = cache + ".chat.jsonl"
        defer { for f in [sharedCache, tenantsFile, chatFile] { try? FileManager.default.removeItem(atPath: f) } }
        let tenantsJSON: [String: Any] = ["tenants": [["id": "acme", "keys": ["k1"]], ["id": "zenith", "keys": ["k2"]]],
                                          "shared_prefixes": [["system": system]]]
        try JSONSerialization.data(withJSONObject: tenantsJSON).write(to: URL(fileURLWithPath: tenantsFile))
        let chatLine = try JSONSerialization.data(withJSONObject: ["messages": [["role": "system", "content": system],
                                                                                ["role": "user", "content": "Who printed the first Bible in Europe?"]]])
        try chatLine.write(to: URL(fileURLWithPath: chatFile))
        let sharedWarm = try cachectl(["warm", "--model", CLI.modelPath, chatFile, "--path", sharedCache, "--tenant", "acme", "--tenants", tenantsFile])
        #expect(sharedWarm.status == 0, "\(sharedWarm.stderr)")
        do {
            var configuration = EngineConfiguration()
            configuration.cache = try CacheStore(directory: sharedCache)
            configuration.completionCache = false
            let engine = try Engine(modelPath: CLI.modelPath, configuration: configuration)
            let prefixes = SharedPrefixes([.system(system)], engine: engine)
            let other = try engine.tokens(of: .chat([ChatMessage(role: "system", content: system),
                                                      ChatMessage(role: "user", content: "When did paper reach Spain?")]))
            let shared = prefixes.length(of: other)
            try #require(shared >= 32, "the system prompt spans a whole block")
            var summary: GenerationSummary?
            for await event in try engine.generate(.tokens(other), parameters: GenerateParameters(maxTokens: 1),
                                                   salt: ContentAddress.tenantSalt("zenith"), sharedPrefixTokens: shared) {
                if case .summary(let s) = event { summary = s }
            }
            #expect(summary?.cachedPromptTokens == shared / 32 * 32, "zenith reuses the public whole blocks acme's warm stored")
            await engine.shutdown()
        }
        let badTenants = try cachectl(["warm", "--model", CLI.modelPath, chatFile, "--path", sharedCache, "--tenant", "acme", "--tenants", file])
        #expect(badTenants.status == 64 && badTenants.stderr.contains(file))

        let bad = cache + ".bad.jsonl"
        defer { try? FileManager.default.removeItem(atPath: bad) }
        try "{\"nothing\": 1}\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try cachectl(["warm", "--model", CLI.modelPath, bad, "--path", cache])
        #expect(refused.status == 64 && refused.stderr.contains("line 1"))
    }

    @Test("missing folder, not a cache, newer format and bad arguments: one clear line and the documented status")
    func errors() throws {
        let missing = try cachectl(["stats", "--path", "/nonexistent/verbatim-cache"])
        #expect(missing.status == 2 && missing.stderr.contains("/nonexistent/verbatim-cache") && missing.stderr.contains("does not exist"))

        let other = CacheProcessTests.folder()
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: other) }
        #expect(FileManager.default.createFile(atPath: other + "/notes.txt", contents: Data("hello".utf8)))
        let notCache = try cachectl(["stats", "--path", other])
        #expect(notCache.status == 3 && notCache.stderr.contains(other))
        let file = other + "/notes.txt"
        #expect(try cachectl(["ls", "--path", file]).status == 3)

        // A cache written by a newer format version.
        let newer = CacheProcessTests.folder()
        defer { try? FileManager.default.removeItem(atPath: newer) }
        do {
            _ = try CacheStore(directory: newer)
        }
        try setFormat(newer, 99)
        let refused = try cachectl(["stats", "--path", newer])
        #expect(refused.status == 4 && refused.stderr.contains("format 99"))

        #expect(try cachectl(["evict", "--path", newer]).status == 64)                      // no criterion
        #expect(try cachectl(["evict", "--to", "lots", "--path", newer]).status == 64)      // not a size
        #expect(try cachectl(["ls", "--kind", "blocks", "--path", newer]).status == 64)
    }

    @Test("a damaged index page: commands exit 10 naming salvage; salvage keeps every entry and reports; reset needs --yes and empties")
    func damagedCache() throws {
        let cache = CacheProcessTests.folder()
        defer { try? FileManager.default.removeItem(atPath: cache) }
        let model = Digest128(high: 3, low: 4), count = 300
        do {
            let store = try CacheStore(directory: cache)
            for i in 0..<count {
                let tokens = (0..<32).map { TokenID(i * 32 + $0) }
                let key = ContentAddress.kvChain(model: model, profile: "p", salt: [], blockSize: 32, tokens: tokens, count: 1)[0]
                let identity = EntryIdentity(kind: .kvBlock, model: model, profile: "p", saltDigest: EntryIdentity.saltDigest([]),
                                             parent: nil, tokens: tokens, sampling: [])
                [UInt8](repeating: UInt8(i & 0xFF), count: 200).withUnsafeBytes { store.put(key, identity: identity, payload: $0) }
            }
            store.flush()
        }
        // Every branch page's child pointers now point past the file: LMDB's MDB_PAGE_NOTFOUND.
        var file = try Data(contentsOf: URL(fileURLWithPath: cache + "/data.mdb"))
        file.withUnsafeMutableBytes { bytes in
            for page in 2..<(bytes.count / 4096) where bytes.loadUnaligned(fromByteOffset: page * 4096 + 10, as: UInt16.self) == 0x01 {
                let base = page * 4096, lower = Int(bytes.loadUnaligned(fromByteOffset: base + 12, as: UInt16.self))
                for slot in 0..<((lower - 16) / 2) {
                    let node = base + Int(bytes.loadUnaligned(fromByteOffset: base + 16 + 2 * slot, as: UInt16.self))
                    for k in 0..<6 { bytes[node + k] = 0xFF }
                }
            }
        }
        try file.write(to: URL(fileURLWithPath: cache + "/data.mdb"))
        let listed = try cachectl(["ls", "--path", cache])
        #expect(listed.status == 10 && listed.stderr.contains("damaged") && listed.stderr.contains("cachectl salvage --path \(cache)"), "\(listed.status) \(listed.stderr)")
        let salvaged = try cachectl(["salvage", "--path", cache])
        let report = String(decoding: salvaged.stdout, as: UTF8.self)
        #expect(salvaged.status == 0 && report.contains("\(count) entries kept") && report.contains("recorded \(count) entries: 0 lost"), "\(report) \(salvaged.stderr)")
        let verified = try cachectl(["verify", "--path", cache])
        #expect(verified.status == 0, "\(verified.stderr)")
        let stats = try json(try cachectl(["stats", "--json", "--path", cache]))
        #expect(stats["entries.kv_blocks"] as? Int == count, "\(stats)")
        #expect(try cachectl(["reset", "--path", cache]).status == 64, "reset without --yes refuses")
        let reset = try cachectl(["reset", "--yes", "--path", cache])
        #expect(reset.status == 0, "\(reset.stderr)")
        #expect(try json(try cachectl(["stats", "--json", "--path", cache]))["entries.kv_blocks"] as? Int == 0)
    }

    // MARK: - Helpers that damage a cache on purpose

    /// Replaces an entry with one whose payload `change` altered, with a matching checksum.
    func rewrite(_ cache: String, key: String, _ change: (inout [UInt8]) -> Void) throws {
        let store = try CacheStore(directory: cache)
        let digest = try #require(Digest128(hex: key))
        let (info, payload, _) = try #require(try readEntry(store, digest))
        var changed = payload
        change(&changed)
        store.delete([digest])
        let identity = EntryIdentity(kind: info.kind, model: info.model, profile: info.profile, saltDigest: info.saltDigest,
                                     parent: info.parent, tokens: info.tokens, sampling: info.sampling)
        changed.withUnsafeBytes { store.put(digest, identity: identity, payload: $0) }
        store.flush()
        store.close()
    }

    func readEntry(_ store: CacheStore, _ key: Digest128) throws -> (CacheEntryInfo, [UInt8], Bool)? {
        try store.entry(key).map { ($0.info, $0.payload, $0.checksumHolds) }
    }

    /// Flips the last stored byte of an entry in place (its checksum no longer holds).
    func flipStoredByte(_ cache: String, key: String) throws {
        let digest = try #require(Digest128(hex: key))
        var options = LMDBEnvironment.Options()
        options.mapSize = 8 << 30
        let env = try LMDBEnvironment(path: cache, options: options)
        let entries = try env.database("entries")
        try env.write { txn in
            var bytes = Array(try #require(try txn.get(entries, digest.bytes)))
            bytes[bytes.count - 1] ^= 0xFF
            try txn.put(entries, digest.bytes, bytes)
        }
    }

    func setFormat(_ cache: String, _ version: UInt32) throws {
        var options = LMDBEnvironment.Options()
        options.mapSize = 8 << 30
        let env = try LMDBEnvironment(path: cache, options: options)
        let meta = try env.database("meta")
        try env.write { txn in try txn.put(meta, Array("format".utf8), withUnsafeBytes(of: version.littleEndian) { Array($0) }) }
    }
}

extension Digest128 {
    init?(hex: String) {
        guard hex.count == 32, let high = UInt64(hex.prefix(16), radix: 16), let low = UInt64(hex.suffix(16), radix: 16) else { return nil }
        self.init(high: high, low: low)
    }
}
