import Foundation
import Testing
import Verbatim
@testable import VerbatimCache
import VerbatimModel
@testable import VerbatimPostgres

/// The server `scripts/postgres` starts (the README's test command runs it first).
let adminURL = ProcessInfo.processInfo.environment["VERBATIM_TEST_POSTGRES_URL"] ?? "postgres://verbatim:verbatim@127.0.0.1:5432/postgres"
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()   // Tools/Tests/VerbatimPostgresTests/PostgresTierTests.swift
let binaries = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()

struct ProcessResult { let status: Int32; let stdout: Data; let stderr: String }

@discardableResult
func runProcess(_ executable: String, _ arguments: [String]) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.currentDirectoryURL = repositoryRoot
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: stdout, stderr: stderr)
}

/// SQL through psql, as an operator would run it.
@discardableResult
func psql(_ url: String, _ sql: String) throws -> String {
    let r = try runProcess("/usr/bin/env", ["psql", url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql])
    guard r.status == 0 else { throw SharedTierError("psql \(url) failed: \(r.stderr)") }
    return String(decoding: r.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A database of its own for one test, dropped afterwards.
final class TestDatabase {
    let name = "verbatim_test_\(UInt32.random(in: 0...UInt32.max))"
    let url: String
    init() throws {
        try psql(adminURL, "CREATE DATABASE \(name)")
        url = String(adminURL[..<adminURL.lastIndex(of: "/")!]) + "/" + name
    }
    func drop() { _ = try? psql(adminURL, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
}

func folder() -> String { NSTemporaryDirectory() + "verbatim-pg-\(UInt32.random(in: 0...UInt32.max))" }

func encoded(_ i: Int, bytes: Int = 2048) -> SharedTierEntry {
    let key = Digest128(high: 7, low: UInt64(i))
    let identity = EntryIdentity(kind: .kvBlock, model: Digest128(high: 1, low: 2), profile: "p", saltDigest: EntryIdentity.saltDigest([]),
                                 parent: nil, tokens: [TokenID(i)], sampling: [])
    let payload = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: bytes)
    let value = payload.withUnsafeBytes { EntryCodec.encode(identity, payload: $0, created: 0) }
    return SharedTierEntry(key: key, kind: .kvBlock, payloadBytes: bytes, bytes: value)
}

@Suite("PostgreSQL shared tier (a real server on loopback)", .serialized)
struct PostgresTierTests {
    @Test("entries round-trip byte for byte; an existing key is kept; the byte budget evicts the least recently read")
    func roundTripAndBudget() throws {
        let db = try TestDatabase()
        defer { db.drop() }
        var configuration = PostgresTier.Configuration(url: db.url)
        configuration.byteBudget = 3 * 2048
        let tier = try PostgresTier(configuration)
        try tier.store([encoded(0), encoded(1)])
        #expect(try tier.fetch([encoded(0).key, encoded(1).key, encoded(9).key]) == [encoded(0).key: encoded(0).bytes, encoded(1).key: encoded(1).bytes])
        var changed = encoded(0)
        changed.bytes[changed.bytes.count - 1] ^= 1
        try tier.store([changed])
        #expect(try tier.fetch([encoded(0).key])[encoded(0).key] == encoded(0).bytes, "same key, first bytes kept")
        // Entry 0 is read again, so 1 is the least recent when 2 and 3 arrive.
        Thread.sleep(forTimeInterval: 0.01)
        _ = try tier.fetch([encoded(0).key])
        Thread.sleep(forTimeInterval: 0.01)
        try tier.store([encoded(2)])
        Thread.sleep(forTimeInterval: 0.01)
        try tier.store([encoded(3)])
        let (entries, bytes) = try tier.tableStats()
        #expect(entries == 3 && bytes <= configuration.byteBudget)
        let left = try tier.fetch((0..<4).map { encoded($0).key })
        #expect(Set(left.keys) == Set([0, 2, 3].map { encoded($0).key }), "entry 1 went first")
        #expect(throws: SharedTierError.self) { try PostgresTier(PostgresTier.Configuration(url: "mysql://nope")) }
    }

    @Test("two engine processes with their own folders and one PostgreSQL: B gets A's completion and prefix, bitwise")
    func twoProcesses() throws {
        let db = try TestDatabase()
        defer { db.drop() }
        let folderA = folder(), folderB = folder()
        defer { try? FileManager.default.removeItem(atPath: folderA); try? FileManager.default.removeItem(atPath: folderB) }
        let system = "<|im_start|>system\nYou are a careful geography tutor. Answer in two short sentences, name countries in the order "
            + "a river passes them, give lengths in kilometres, and say so when sources disagree.<|im_end|>\n<|im_start|>user\n"
        let question = system + "Name the longest river in Europe and the countries it flows through.<|im_end|>\n<|im_start|>assistant\n"
        func generate(_ cache: String, _ text: String, maxTokens: Int = 12) throws -> [String: Any] {
            let r = try runProcess(binaries.appendingPathComponent("verbatim").path,
                            ["generate", "--cache", cache, "--shared-cache", db.url, "--json", "--max-tokens", String(maxTokens),
                             "--temperature", "0", "--logprobs", "--text", text])
            #expect(r.status == 0, "\(r.stderr)")
            guard let object = try? JSONSerialization.jsonObject(with: r.stdout) as? [String: Any] else {
                Issue.record("not JSON: \(String(decoding: r.stdout, as: UTF8.self)) \(r.stderr)")
                return [:]
            }
            return object
        }
        let a = try generate(folderA, question)
        #expect(a["completion_from_cache"] as? Bool == false && a["cached_prompt_tokens"] as? Int == 0)
        #expect(Int(try psql(db.url, "SELECT count(*) FROM verbatim_entries"))! > 1, "A's blocks and completion reached PostgreSQL")
        let b = try generate(folderB, question)
        #expect(b["completion_from_cache"] as? Bool == true, "B's own folder is empty: the completion came from PostgreSQL")
        #expect(b["tokens"] as? [Int] == a["tokens"] as? [Int])
        #expect((b["logprobs"] as? [Double])?.map { Float($0).bitPattern } == (a["logprobs"] as? [Double])?.map { Float($0).bitPattern })
        // A new question after the same system prompt reuses A's KV blocks.
        let other = try generate(folderB, question.replacingOccurrences(of: "Europe", with: "Asia"))
        #expect((other["cached_prompt_tokens"] as? Int ?? 0) > 0)
        let stats = try runProcess(binaries.appendingPathComponent("cachectl").path, ["stats", "--json", "--path", folderB])
        let tiers = (try JSONSerialization.jsonObject(with: stats.stdout) as? [String: Any])?["tiers"] as? [String: [String: Int]]
        #expect((tiers?["postgres"]?["entries_hit"] ?? 0) > 0, "\(String(decoding: stats.stdout, as: UTF8.self))")
    }

    @Test("a corrupted row is detected, ignored and never promoted; the request is computed instead")
    func corruptedRow() throws {
        let db = try TestDatabase()
        defer { db.drop() }
        func store(_ f: String) throws -> CacheStore {
            var options = CacheOptions()
            options.sharedTier = try PostgresTier(PostgresTier.Configuration(url: db.url))
            return try CacheStore(directory: f, options: options)
        }
        let fa = folder(), fb = folder()
        defer { try? FileManager.default.removeItem(atPath: fa); try? FileManager.default.removeItem(atPath: fb) }
        let a = try store(fa)
        let e = encoded(5)
        let identity = EntryIdentity(kind: .kvBlock, model: Digest128(high: 1, low: 2), profile: "p", saltDigest: EntryIdentity.saltDigest([]),
                                     parent: nil, tokens: [5], sampling: [])
        let payload = [UInt8](repeating: 5, count: 2048)
        payload.withUnsafeBytes { a.put(e.key, identity: identity, payload: $0) }
        a.close()
        try psql(db.url, "UPDATE verbatim_entries SET entry = set_byte(entry, length(entry) - 1, (get_byte(entry, length(entry) - 1) + 1) % 256)")
        let b = try store(fb)
        #expect(b.read(e.key, expecting: identity) { Array($0) } == nil)
        b.flush()
        let s = try b.stats()
        #expect(s.counters["tier.postgres.entries_corrupt"] == 1 && s.kvBlocks == 0)
        b.close()
    }

    @Test("PostgreSQL going away mid-run: the engine keeps serving from its local cache and by computing, with the same bits")
    func outage() async throws {
        let db = try TestDatabase()
        defer { db.drop() }
        let proxy = try TCPProxy(to: 5432)
        let url = db.url.replacingOccurrences(of: ":5432/", with: ":\(proxy.port)/")
        var options = CacheOptions()
        var tierConfiguration = PostgresTier.Configuration(url: url)
        tierConfiguration.timeout = .milliseconds(300)
        options.sharedTier = try PostgresTier(tierConfiguration)
        let f = folder()
        defer { try? FileManager.default.removeItem(atPath: f) }
        let store = try CacheStore(directory: f, options: options)
        let file = try GGUFFile(path: ModelLocation.path(modelsFolder: repositoryRoot.path + "/models"))
        var c = EngineConfiguration()
        c.cache = store
        c.kvMemoryBytes = 128 << 20
        let engine = try Engine(model: try LlamaModel(file: file), tokenizer: try Tokenizer(file: file), configuration: c)
        func ask(_ text: String) async throws -> (tokens: [TokenID], bits: [UInt32], summary: GenerationSummary) {
            var tokens: [TokenID] = [], bits: [UInt32] = [], summary: GenerationSummary?
            for await event in try engine.generate(.text(text), parameters: GenerateParameters(maxTokens: 8, logprobs: true)) {
                switch event {
                case .token(let t): tokens.append(t.id); bits.append(t.logprob!.bitPattern)
                case .summary(let s): summary = s
                }
            }
            return (tokens, bits, try #require(summary))
        }
        let first = try await ask("The rivers of Europe, from the longest to the shortest, are")
        store.flush()
        #expect(Int(try psql(db.url, "SELECT count(*) FROM verbatim_entries"))! > 0)
        proxy.stop()   // the server is gone for this node
        let again = try await ask("The rivers of Europe, from the longest to the shortest, are")
        #expect(again.summary.completionFromCache && again.tokens == first.tokens && again.bits == first.bits, "served from the local cache")
        let fresh = try await ask("The mountains of Asia, from the highest to the lowest, are")
        #expect(fresh.tokens.count == 8 && fresh.summary.stopReason == .length, "computed while the tier is down")
        await engine.shutdown()
        store.flush()
        let counters = try storeStats(store).counters
        #expect((counters["tier.postgres.read_errors"] ?? 0) + (counters["tier.postgres.write_errors"] ?? 0) >= 1)
        store.close()
    }
}

@available(*, noasync)
func storeStatsSync(_ store: CacheStore) throws -> CacheStore.Stats { try store.stats() }
func storeStats(_ store: CacheStore) throws -> CacheStore.Stats { store.flush(); return try storeStatsSync(store) }
