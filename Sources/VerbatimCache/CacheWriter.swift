import Foundation
import LMDB
import VerbatimCore

/// The store's writer: what callers hand over (`enqueue`) is committed here in batches, one
/// LMDB write transaction each, on the `BatchWorker`'s thread; then entries past the byte
/// budget are evicted, least recently used first.
extension CacheStore {
    enum WriteOp {
        case put(key: Digest128, value: [UInt8], payloadBytes: Int, kind: EntryIdentity.Kind, siblings: Digest128?)
        case touch([Digest128])       // most recent last
        case delete(Digest128, cause: String)
        /// A sibling index row whose entry is gone, or whose entry's header no longer decodes
        /// (checked again in the writer's transaction): the row goes, and such an entry with it.
        case dropSibling(group: Digest128, key: Digest128)
        case seen(model: Digest128, profile: String)
        /// Counter changes are waiting (`counterDeltas`); every batch takes them anyway.
        case counters
    }

    /// One batch, on the writer's thread: counter deltas summed, everything committed in one
    /// write transaction, then eviction down to the budget. Returns the pause before the next
    /// batch when the write failed.
    func writeBatch(_ batch: [WriteOp]) -> Duration? {
        let ops = batch.filter { if case .counters = $0 { false } else { true } }
        let deltas: [String: Int64] = state.withLock {
            defer { counterDeltas.removeAll() }
            return counterDeltas
        }
        if ops.isEmpty && deltas.isEmpty { return nil }   // a marker whose counters an earlier batch took: no commit
        var tick = writerTick ?? ((try? env.read { txn in try counter(txn, "tick") }) ?? 0)
        defer { writerTick = tick }
        if let pause = commit(ops, deltas, &tick) { return pause }
        evictIfNeeded(&tick)
        return nil
    }

    /// Commits a batch; nil when written, else the back-off before the next try (the batch's
    /// entries are dropped and counted, its counter deltas handed back for the next try).
    private func commit(_ batch: [WriteOp], _ deltas: [String: Int64], _ tick: inout UInt64) -> Duration? {
        var attempt = 0
        while true {
            var t = tick
            do {
                let injected: Int32? = state.withLock {
                    guard injectedFailures.count > 0 else { return nil }
                    injectedFailures.count -= 1
                    return injectedFailures.code
                }
                if let injected { throw LMDBError(code: injected, operation: "mdb_txn_commit (injected)", path: directory) }
                try env.write { txn in try apply(batch, deltas, txn, &t) }
                tick = t
                state.withLock {
                    if let failure {
                        FileHandle.standardError.write(Data("verbatim cache: writes resumed in \(directory) (they failed with \(failure))\n".utf8))
                    }
                    failure = nil
                    backoff = .seconds(1)
                }
                return nil
            } catch let e as LMDBError where e.isMapFull && attempt == 0 {
                // Make room (a quarter of the budget) and try once more.
                attempt += 1
                evict(targetBytes: max(0, payloadBytes() - options.byteBudget / 4), cause: "budget", &tick)
            } catch {
                noteFailure(error)
                let entries = batch.reduce(0) { n, op in if case .put = op { n + 1 } else { n } }
                let pause: Duration = state.withLock {
                    if failure == nil {
                        FileHandle.standardError.write(Data("verbatim cache: writes to \(directory) failed (\(error)); serving without caching new entries, retrying in \(backoff)\n".utf8))
                    }
                    failure = "\(error)"
                    let pause = backoff
                    backoff = min(backoff * 2, .seconds(60))
                    failedWrites += entries
                    // The counters are not lost: they go with the next write that works.
                    for (name, delta) in deltas { counterDeltas[name, default: 0] += delta }
                    counterDeltas["writes.failed", default: 0] += Int64(entries)
                    return pause
                }
                writer?.submit(.counters)   // so the next try comes after the pause even if nothing else does
                return pause
            }
        }
    }

    private func apply(_ batch: [WriteOp], _ deltas: [String: Int64], _ txn: borrowing LMDBWriteTransaction, _ tick: inout UInt64) throws {
        for op in batch {
            switch op {
            case .put(let key, let value, let payloadBytes, let kind, let group):
                // Indexed even when the entry is already there (it may predate the index).
                if let group, let siblings { try txn.put(siblings, Self.siblingKey(group, key), []) }
                if let existing = try txn.get(entries, key.bytes) {
                    // Same content is already there. A completion is replaced only by a longer
                    // one for the same key (a continuation), never by a shorter one.
                    guard kind == .completion, Self.completionLength(value) > Self.completionLength(existing) else { continue }
                    try removeEntry(txn, key)
                }
                try txn.put(entries, key.bytes, value)
                tick += 1
                try setAccess(txn, key, tick)
                try add(txn, "bytes.payload", Int64(payloadBytes))
                try add(txn, kind == .kvBlock ? "entries.kv_blocks" : "entries.completions", 1)
                try add(txn, "writes.committed", 1)
            case .touch(let keys):
                for key in keys where try txn.get(entries, key.bytes) != nil {
                    tick += 1
                    try setAccess(txn, key, tick)
                    if let hits {
                        let n = try hitCount(txn, key) + 1
                        try txn.put(hits, key.bytes, withUnsafeBytes(of: n.littleEndian) { Array($0) })
                    }
                }
            case .delete(let key, let cause):
                if try removeEntry(txn, key) { try add(txn, "evictions.\(cause)", 1) }
            case .dropSibling(let group, let key):
                if let stored = try txn.get(entries, key.bytes) {
                    guard EntryCodec.identity(stored) == nil else { break } // readable now: keep it
                    if try removeEntry(txn, key) { try add(txn, "evictions.corruption", 1) }
                }
                if let siblings { _ = try txn.delete(siblings, Self.siblingKey(group, key)) }
            case .seen(let model, let profile):
                try txn.put(meta, Array("model:\(model)".utf8), Array(profile.utf8))
            case .counters:
                break   // taken from `counterDeltas` by writeBatch
            }
        }
        for (name, delta) in deltas { try add(txn, name, delta) }
        try txn.put(counters, Array("tick".utf8), withUnsafeBytes(of: tick.littleEndian) { Array($0) })
    }

    private func setAccess(_ txn: borrowing LMDBWriteTransaction, _ key: Digest128, _ tick: UInt64) throws {
        if let old = try txn.get(access, key.bytes) {
            try txn.delete(lru, Self.lruKey(UInt64(littleEndian: old.loadUnaligned(as: UInt64.self)), key))
        }
        try txn.put(access, key.bytes, withUnsafeBytes(of: tick.littleEndian) { Array($0) })
        try txn.put(lru, Self.lruKey(tick, key), [])
    }

    /// Tokens in a stored completion (from the payload's count field), 0 if unreadable.
    static func completionLength(_ stored: [UInt8]) -> Int {
        stored.withUnsafeBytes { completionLength($0) }
    }

    static func completionLength(_ stored: UnsafeRawBufferPointer) -> Int {
        let payload = EntryCodec.storedPayloadLength(stored)
        guard payload >= 5, payload <= stored.count else { return 0 }
        return Int(UInt32(littleEndian: stored.loadUnaligned(fromByteOffset: stored.count - payload + 1, as: UInt32.self)))
    }

    static func lruKey(_ tick: UInt64, _ key: Digest128) -> [UInt8] {
        withUnsafeBytes(of: tick.bigEndian) { Array($0) } + key.bytes
    }

    /// Deletes an entry and its access records; false if it was absent.
    @discardableResult
    func removeEntry(_ txn: borrowing LMDBWriteTransaction, _ key: Digest128) throws -> Bool {
        guard let stored = try txn.get(entries, key.bytes) else { return false }
        let payload = EntryCodec.storedPayloadLength(stored)
        let kind = EntryCodec.kind(stored)
        if kind == .kvBlock, let siblings, let identity = EntryCodec.identity(stored), let group = Self.siblingGroup(identity) {
            try txn.delete(siblings, Self.siblingKey(group, key))
        }
        if let old = try txn.get(access, key.bytes) {
            try txn.delete(lru, Self.lruKey(UInt64(littleEndian: old.loadUnaligned(as: UInt64.self)), key))
            try txn.delete(access, key.bytes)
        }
        try txn.delete(entries, key.bytes)
        if let hits { try txn.delete(hits, key.bytes) }
        try add(txn, "bytes.payload", -Int64(payload))
        try add(txn, kind == .completion ? "entries.completions" : "entries.kv_blocks", -1)
        return true
    }

    func counter(_ txn: borrowing some LMDBReading & ~Copyable, _ name: String) throws -> UInt64 {
        try txn.get(counters, Array(name.utf8)).map { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) } ?? 0
    }

    func add(_ txn: borrowing LMDBWriteTransaction, _ name: String, _ delta: Int64) throws {
        let current = Int64(bitPattern: try counter(txn, name))
        let next = UInt64(bitPattern: max(0, current + delta))
        try txn.put(counters, Array(name.utf8), withUnsafeBytes(of: next.littleEndian) { Array($0) })
    }

    func payloadBytes() -> Int { Int((try? env.read { txn in try counter(txn, "bytes.payload") }) ?? 0) }

    private func evictIfNeeded(_ tick: inout UInt64) {
        let bytes = payloadBytes()
        guard bytes > options.byteBudget else { return }
        evict(targetBytes: Int(Double(options.byteBudget) * options.lowWatermark), cause: "budget", &tick)
    }

    /// Removes least recently used entries until the payload is at most `targetBytes`.
    func evict(targetBytes: Int, cause: String, _ tick: inout UInt64) {
        try? env.write { txn in
            var bytes = Int(try counter(txn, "bytes.payload"))
            var victims: [Digest128] = []
            var planned = bytes
            try txn.forEach(lru) { k, _ in
                guard planned > targetBytes else { return false }
                let key = Digest128(bytes: UnsafeRawBufferPointer(rebasing: k[8..<24]))!
                if let stored = try txn.get(entries, key.bytes) { planned -= EntryCodec.storedPayloadLength(stored) }
                victims.append(key)
                return true
            }
            for key in victims where try removeEntry(txn, key) {
                try add(txn, "evictions.\(cause)", 1)
            }
            bytes = planned
            _ = bytes
        }
    }

    /// Evicts least recently used entries until the payload is at most `target` bytes
    /// (counted as explicit evictions).
    public func evictLeastRecentlyUsed(toPayloadBytes target: Int, cause: String = "explicit") {
        var tick: UInt64 = 0
        flush()
        evict(targetBytes: target, cause: cause, &tick)
    }

    /// Deletes every entry (counted as evictions by `cause`).
    public func evictAll(cause: String = "explicit") { evictLeastRecentlyUsed(toPayloadBytes: 0, cause: cause) }
}
