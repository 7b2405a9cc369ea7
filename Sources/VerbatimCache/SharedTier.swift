import Foundation
import Synchronization
import VerbatimCore

/// A cache tier a fleet shares, behind each process's LMDB store (PostgreSQL in production,
/// `MemoryTier` in tests). Entries travel in the store's own encoding (identity, checksum,
/// payload), so an entry from another node is verified exactly like a local one before it is
/// used or promoted. Sharing is safe only because the numerics are invariant: an entry node A
/// wrote is what node B would compute.
///
/// Both calls come from plain threads (the engine's, the tier writer's), never from async
/// code, and must return within the tier's own timeout: a slow tier must not stall a step.
public protocol SharedTier: Sendable {
    /// A short name for logs and statistics ("postgres", "memory").
    var name: String { get }
    /// The stored bytes of those of `keys` the tier holds.
    func fetch(_ keys: [Digest128]) throws -> [Digest128: [UInt8]]
    /// Stores entries; a key already present is left as it is (same key, same bytes).
    func store(_ entries: [SharedTierEntry]) throws
}

/// An entry on its way to a shared tier: its key, kind, payload size and stored bytes.
public struct SharedTierEntry: Sendable, Equatable {
    /// The entry's content address.
    public var key: Digest128
    /// Whether the entry is a KV block or a completion.
    public var kind: EntryIdentity.Kind
    /// Payload bytes (for the tier's byte budget).
    public var payloadBytes: Int
    /// The entry as the local store keeps it.
    public var bytes: [UInt8]

    /// Creates an entry from its key, kind, payload size (bytes) and stored form.
    public init(key: Digest128, kind: EntryIdentity.Kind, payloadBytes: Int, bytes: [UInt8]) {
        self.key = key
        self.kind = kind
        self.payloadBytes = payloadBytes
        self.bytes = bytes
    }
}

/// A shared tier's failure: a bad configuration, no answer in time, or the tier refusing a call.
/// When `fetch` or `store` throws, the store logs and counts it and leaves the tier alone for
/// `CacheOptions.sharedTierRetry`.
public struct SharedTierError: Error, CustomStringConvertible, Sendable {
    /// What failed, for logs (`description` prefixes "shared tier: ").
    public let message: String
    /// Creates an error with a message for logs.
    public init(_ message: String) { self.message = message }
    public var description: String { "shared tier: \(message)" }
}

/// A shared tier in this process's memory: for tests, and to stand in for a fleet on one
/// machine. It can be switched off (every call fails) and can corrupt an entry on purpose.
public final class MemoryTier: SharedTier {
    private let state = Mutex<(entries: [Digest128: [UInt8]], down: Bool, fetches: Int)>(([:], false, 0))

    /// An empty tier, up.
    public init() {}

    public var name: String { "memory" }

    public func fetch(_ keys: [Digest128]) throws -> [Digest128: [UInt8]] {
        try state.withLock { s in
            guard !s.down else { throw SharedTierError("the memory tier is down") }
            s.fetches += 1
            var found: [Digest128: [UInt8]] = [:]
            for k in keys { if let v = s.entries[k] { found[k] = v } }
            return found
        }
    }

    public func store(_ entries: [SharedTierEntry]) throws {
        try state.withLock { s in
            guard !s.down else { throw SharedTierError("the memory tier is down") }
            for e in entries where s.entries[e.key] == nil { s.entries[e.key] = e.bytes }
        }
    }

    /// Every call fails while down, as an unreachable server would.
    public func setDown(_ down: Bool) { state.withLock { $0.down = down } }
    /// Entries held.
    public var count: Int { state.withLock { $0.entries.count } }
    /// Calls to `fetch` that the tier answered (not those made while down); the store asks for up to 8 keys a call.
    public var fetchCount: Int { state.withLock { $0.fetches } }
    /// Keys of the entries held, in no particular order.
    public var keys: [Digest128] { state.withLock { Array($0.entries.keys) } }
    /// Flips one payload byte of an entry (its checksum then fails).
    public func corrupt(_ key: Digest128) {
        state.withLock { s in
            guard var bytes = s.entries[key], !bytes.isEmpty else { return }
            bytes[bytes.count - 1] ^= 0x5A
            s.entries[key] = bytes
        }
    }
}

/// The store's side of a shared tier: write-behind in batches on its own thread, reads with
/// a pause after a failure, every outcome counted in the store's counters (`tier.*`).
final class TierLink: @unchecked Sendable {
    // Sendable: `pausedUntil` is behind `lock`; the rest is immutable after init.
    let tier: any SharedTier
    let retryAfter: Duration
    private let lock = NSLock()
    private var pausedUntil: ContinuousClock.Instant?
    private let count: @Sendable (String, Int64) -> Void
    private var writer: BatchWorker<SharedTierEntry>?

    init(tier: any SharedTier, retryAfter: Duration, maxPendingBytes: Int, batchBytes: Int, count: @escaping @Sendable (String, Int64) -> Void) {
        self.tier = tier
        self.retryAfter = retryAfter
        self.count = count
        writer = BatchWorker(name: "vb-tier-writer", maxPendingBytes: maxPendingBytes, maxBatchBytes: batchBytes) { [self] batch in
            send(batch)
            return nil   // a failed write pauses the tier (`pausedUntil`); what comes meanwhile is dropped, not held
        }
    }

    /// Whether the tier is to be asked now (not within the pause after a failure).
    private var available: Bool {
        lock.withLock { pausedUntil.map { ContinuousClock.now >= $0 } ?? true }
    }

    private func failed(_ what: String, _ error: any Error) {
        lock.withLock { pausedUntil = ContinuousClock.now + retryAfter }
        count("tier.\(tier.name).\(what)_errors", 1)
        FileHandle.standardError.write(Data("verbatim: shared tier \(tier.name) \(what) failed (\(error)); serving from the local cache for \(retryAfter)\n".utf8))
    }

    /// Keys per request to the tier: a 4k-token prefix is 127 blocks of 1.4 MiB, far too much
    /// for one answer within a read's time limit; 8 blocks arrive well within it.
    static let keysPerFetch = 8

    /// The tier's bytes for `keys`, asked in chunks in order; stops after a chunk with a miss
    /// (callers use the leading run of a chain), when paused, or at a failure (keeping what came).
    func fetch(_ keys: [Digest128]) -> [Digest128: [UInt8]] {
        guard !keys.isEmpty, available else { return [:] }
        var found: [Digest128: [UInt8]] = [:]
        for start in stride(from: 0, to: keys.count, by: Self.keysPerFetch) {
            let chunk = Array(keys[start..<min(start + Self.keysPerFetch, keys.count)])
            do {
                let part = try tier.fetch(chunk)
                found.merge(part) { a, _ in a }
                if part.count < chunk.count { break }
            } catch {
                failed("read", error)
                break
            }
        }
        return found
    }

    /// Queues an entry for the tier; dropped (and counted) when the tier is far behind.
    func enqueue(_ entry: SharedTierEntry) {
        guard let writer, !writer.submit(entry, bytes: entry.bytes.count) else { return }
        count("tier.\(tier.name).writes_dropped", 1)
    }

    /// Sends everything queued so far, then stops the thread.
    func close() { writer?.close() }

    /// Waits until everything queued so far has been sent (or failed).
    func flush() { writer?.flush() }

    /// Sends a batch (at most `batchBytes`, or one entry: the worker's bound) in one request;
    /// while the tier is paused after a failure, its entries are dropped and counted.
    private func send(_ batch: [SharedTierEntry]) {
        guard available else {
            count("tier.\(tier.name).writes_dropped", Int64(batch.count))
            return
        }
        do {
            try tier.store(batch)
            count("tier.\(tier.name).entries_written", Int64(batch.count))
        } catch {
            failed("write", error)
            count("tier.\(tier.name).writes_dropped", Int64(batch.count))
        }
    }
}
