import Foundation
import Synchronization
import Verbatim
import VerbatimCache
import VerbatimModel

/// A cache configuration to compare.
public struct BenchConfiguration: Sendable, Codable, Equatable, Hashable {
    public var name: String
    public var prefixCache: Bool
    public var completionCache: Bool
    public var blockSize: Int
    /// Payload bytes the cache may keep (nil: the store's default, far above these workloads).
    public var byteBudget: Int?

    public var usesCache: Bool { prefixCache || completionCache }

    public init(name: String, prefixCache: Bool, completionCache: Bool, blockSize: Int = 32, byteBudget: Int? = nil) {
        self.name = name
        self.prefixCache = prefixCache
        self.completionCache = completionCache
        self.blockSize = blockSize
        self.byteBudget = byteBudget
    }

    /// `none`, `prefixB` (prefix cache, block size B), `fullB` (prefix + completion cache);
    /// a `@SIZE` suffix sets a byte budget (e.g. `prefix32@8M`).
    public init(parsing text: String) throws(BenchError) {
        var spec = Substring(text)
        var budget: Int?
        if let at = spec.firstIndex(of: "@") {
            guard let bytes = Self.bytes(spec[spec.index(after: at)...]) else { throw BenchError("'\(text)': the budget after @ must be a size like 64M") }
            budget = bytes
            spec = spec[..<at]
        }
        if spec == "none" {
            self.init(name: "no cache", prefixCache: false, completionCache: false)
        } else if spec.hasPrefix("prefix"), let b = Int(spec.dropFirst(6)), b > 0 {
            self.init(name: "prefix B=\(b)", prefixCache: true, completionCache: false, blockSize: b)
        } else if spec.hasPrefix("full"), let b = Int(spec.dropFirst(4)), b > 0 {
            self.init(name: "prefix+completion B=\(b)", prefixCache: true, completionCache: true, blockSize: b)
        } else {
            throw BenchError("unknown configuration '\(text)': use none, prefixB or fullB (B a block size), optionally @SIZE")
        }
        if let budget { byteBudget = budget; name += ", budget \(Format.bytes(budget))" }
    }

    static func bytes(_ s: Substring) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        if let last = s.last, let unit = units[last], let n = Double(s.dropLast()) { return Int(n * Double(unit)) }
        return Int(s)
    }
}

public struct BenchError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ message: String) { description = message }
}

/// What one request did, as its client saw it.
public struct RequestRecord: Sendable, Codable, Equatable {
    public var label: String
    public var promptTokens: Int
    public var cachedPromptTokens: Int
    public var completionFromCache: Bool
    public var generatedTokens: Int
    /// Seconds from sending to the first token, to the last, and per token after the first.
    public var ttft: Double
    public var endToEnd: Double
    public var tpot: Double?
    /// FNV-1a of the generated ids, and of the ids with their logprob bit patterns.
    public var tokensDigest: UInt64
    public var outputDigest: UInt64
    public var identicalGroup: String?
}

/// One pass of a workload under one configuration.
public struct PassResult: Sendable, Codable {
    public var workload: String
    public var configuration: BenchConfiguration
    /// "cold", or "warm" for a second pass over the same cache in a new process.
    public var pass: String
    public var records: [RequestRecord]
    public var wallSeconds: Double
    public var cacheEntries: Int
    public var cacheBytes: Int
    public var evictions: UInt64

    public var label: String { pass == "cold" ? configuration.name : "\(configuration.name), \(pass)" }
    public var generatedTokens: Int { records.reduce(0) { $0 + $1.generatedTokens } }
    public var throughput: Double { Double(generatedTokens) / wallSeconds }
    public var tokenHitRate: Double {
        let prompt = records.reduce(0) { $0 + $1.promptTokens }
        return prompt == 0 ? 0 : Double(records.reduce(0) { $0 + $1.cachedPromptTokens }) / Double(prompt)
    }
    public var requestHitRate: Double {
        records.isEmpty ? 0 : Double(records.filter(\.completionFromCache).count) / Double(records.count)
    }
    /// Distinct outputs among the requests of each identical group (1 each is the promise).
    public var uniqueOutputs: [String: (completions: Int, logprobVectors: Int)] {
        Dictionary(grouping: records.filter { $0.identicalGroup != nil }, by: { $0.identicalGroup! }).mapValues {
            (Set($0.map(\.tokensDigest)).count, Set($0.map(\.outputDigest)).count)
        }
    }
}

/// Replays workloads through a real engine and cache.
public struct WorkloadRunner: Sendable {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public var kvMemoryBytes = 512 << 20
    public var maxBatchTokens = 256

    public init(model: LlamaModel, tokenizer: Tokenizer) {
        self.model = model
        self.tokenizer = tokenizer
    }

    /// Runs every script of `workload` once. With a cache, it lives in `cacheFolder` and is
    /// flushed and closed at the end (so a later pass, in this process or another, finds it).
    /// `progress` is called with the number of requests done.
    public func run(_ workload: Workload, _ configuration: BenchConfiguration, cacheFolder: String?, pass: String = "cold",
                    progress: (@Sendable (Int) -> Void)? = nil) async throws -> PassResult {
        var store: CacheStore?
        if configuration.usesCache {
            guard let cacheFolder else { throw BenchError("configuration '\(configuration.name)' needs a cache folder") }
            var options = CacheOptions()
            if let budget = configuration.byteBudget { options.byteBudget = budget }
            store = try CacheStore(directory: cacheFolder, options: options)
        }
        var c = EngineConfiguration()
        c.kvMemoryBytes = kvMemoryBytes
        c.maxBatchTokens = maxBatchTokens
        c.blockSize = configuration.blockSize
        c.cache = store
        c.prefixCache = configuration.prefixCache
        c.completionCache = configuration.completionCache
        let engine = try Engine(model: model, tokenizer: tokenizer, configuration: c)

        let next = Counter(), done = Counter()
        let scripts = workload.scripts
        let started = ContinuousClock.now
        let records = try await withThrowingTaskGroup(of: [(Int, [RequestRecord])].self) { group in
            for _ in 0..<max(1, min(workload.clients, scripts.count)) {
                group.addTask {
                    var mine: [(Int, [RequestRecord])] = []
                    while true {
                        let index = next.increment() - 1
                        guard index < scripts.count else { return mine }
                        var history: [ChatMessage] = []
                        var out: [RequestRecord] = []
                        for request in scripts[index].requests {
                            if request.thinkMilliseconds > 0 { try await Task.sleep(for: .milliseconds(request.thinkMilliseconds)) }
                            let messages = request.continuesConversation ? history + request.messages.filter { $0.role != "system" } : request.messages
                            let (record, answer) = try await Self.send(request, messages: messages, to: engine)
                            history = messages + [ChatMessage(role: "assistant", content: answer)]
                            out.append(record)
                            let count = done.increment()
                            progress?(count)
                        }
                        mine.append((index, out))
                    }
                }
            }
            var all: [(Int, [RequestRecord])] = []
            for try await part in group { all += part }
            return all.sorted { $0.0 < $1.0 }.flatMap(\.1)
        }
        let wall = (ContinuousClock.now - started) / .seconds(1)
        await engine.shutdown()
        let (entries, bytes, evictions) = try store.map(Self.finish) ?? (0, 0, 0)
        return PassResult(workload: workload.name, configuration: configuration, pass: pass, records: records, wallSeconds: wall,
                          cacheEntries: entries, cacheBytes: bytes, evictions: evictions)
    }

    /// Flushes and closes the store; its entries, payload bytes and evictions so far.
    static func finish(_ store: CacheStore) throws -> (Int, Int, UInt64) {
        store.flush()
        let stats = try store.stats()
        store.close()
        return (stats.kvBlocks + stats.completions, stats.payloadBytes,
                stats.counters.filter { $0.key.hasPrefix("evictions.") }.values.reduce(0, +))
    }

    /// Sends one request and times it from the client's side.
    public static func send(_ request: ScriptedRequest, messages: [ChatMessage], to engine: Engine) async throws -> (RequestRecord, String) {
        let parameters = GenerateParameters(maxTokens: request.maxTokens, temperature: request.temperature, seed: request.seed, logprobs: true)
        let start = ContinuousClock.now
        var first: ContinuousClock.Instant?
        var ids: [TokenID] = [], bits: [UInt32] = [], text = ""
        var summary: GenerationSummary?
        for await event in try engine.generate(.chat(messages), parameters: parameters) {
            switch event {
            case .token(let t):
                if first == nil { first = ContinuousClock.now }
                ids.append(t.id); bits.append(t.logprob?.bitPattern ?? 0); text += t.text
            case .summary(let s): summary = s
            }
        }
        let end = ContinuousClock.now
        guard let summary else { throw BenchError("\(request.label): the generation ended without a summary") }
        let ttft = ((first ?? end) - start) / .seconds(1)
        let total = (end - start) / .seconds(1)
        var tokensHash = FNV1a(), outputHash = FNV1a()
        for (id, bit) in zip(ids, bits) {
            tokensHash.add(UInt32(bitPattern: id))
            outputHash.add(UInt32(bitPattern: id)); outputHash.add(bit)
        }
        let record = RequestRecord(label: request.label, promptTokens: summary.promptTokens, cachedPromptTokens: summary.cachedPromptTokens,
                                   completionFromCache: summary.completionFromCache, generatedTokens: ids.count, ttft: ttft, endToEnd: total,
                                   tpot: ids.count > 1 ? (total - ttft) / Double(ids.count - 1) : nil,
                                   tokensDigest: tokensHash.value, outputDigest: outputHash.value, identicalGroup: request.identicalGroup)
        return (record, text)
    }
}

/// A counter shared by the clients of a pass.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    /// Adds one and returns the new value.
    func increment() -> Int { value.wrappingAdd(1, ordering: .relaxed).newValue }
}

/// 64-bit FNV-1a: a digest that is the same in every process (Swift's `Hasher` is not).
struct FNV1a {
    var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(_ word: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) {
            value ^= UInt64((word >> UInt32(shift)) & 0xFF)
            value = value &* 0x100_0000_01b3
        }
    }
}
