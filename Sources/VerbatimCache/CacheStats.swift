import Foundation
import LMDB
import VerbatimCore

extension CacheStore {
    /// A snapshot of the store for `cachectl stats`: persistent counters, entry counts, LMDB's figures and models seen.
    public struct Stats: Sendable {
        /// Every persistent counter by name (`entries.kv_blocks`, `bytes.payload`, `evictions.<cause>`, `tier.<name>.*`, ...).
        public var counters: [String: UInt64]
        /// KV blocks stored (counter `entries.kv_blocks`).
        public var kvBlocks: Int
        /// Completions stored (counter `entries.completions`).
        public var completions: Int
        /// Payload bytes stored, the figure the byte budget limits (counter `bytes.payload`).
        public var payloadBytes: Int
        /// Size of `data.mdb` in bytes (0 if it cannot be read).
        public var fileBytes: Int
        /// LMDB map size in bytes: the most the file can grow to (address space, not disk).
        public var mapBytes: Int
        /// Bytes up to the last page in use (its page number + 1, times `pageSize`); free pages below it count.
        public var usedBytes: Int
        /// LMDB's `me_numreaders`: reader slots used so far by any process, a high-water mark, not the readers open now.
        public var readersInUse: Int
        /// Reader slots LMDB has (its `maxreaders`); a reader beyond them fails with `MDB_READERS_FULL`.
        public var maxReaders: Int
        /// LMDB page size in bytes.
        public var pageSize: Int
        /// Pages on LMDB's free list: room inside the file that new entries reuse.
        public var freePages: Int
        /// Models noted with `noteModel(_:profile:)`: the printed digest and the numerics profile.
        public var models: [(digest: String, profile: String)]
        /// Why this store's writes are failing now (nil: they work); see `CacheStore.writeFailure`.
        public var writeFailure: String?
    }

    /// `stats()` for async callers: the read transaction runs on a thread of its own, so it never
    /// spans a suspension (an LMDB transaction belongs to the thread that opened it).
    public func stats() async throws -> Stats {
        try await BlockingWork.run(name: "vb-cache-stats") { () throws(any Error) in try self.stats() }
    }

    /// Reads counters and models in one read transaction, plus LMDB's figures and the file size;
    /// throws the LMDB error if the read fails.
    @available(*, noasync)
    public func stats() throws -> Stats {
        let info = env.info
        let (all, models): ([String: UInt64], [(String, String)]) = try env.read { txn in
            var all: [String: UInt64] = [:]
            try txn.forEach(counters) { k, v in
                if v.count == 8 { all[String(decoding: k, as: UTF8.self)] = UInt64(littleEndian: v.loadUnaligned(as: UInt64.self)) }
                return true
            }
            var models: [(String, String)] = []
            try txn.forEach(meta, from: Array("model:".utf8)) { k, v in
                let name = String(decoding: k, as: UTF8.self)
                guard name.hasPrefix("model:") else { return false }
                models.append((String(name.dropFirst(6)), String(decoding: v, as: UTF8.self)))
                return true
            }
            return (all, models)
        }
        let fileBytes = (try? FileManager.default.attributesOfItem(atPath: directory + "/data.mdb")[.size] as? Int) ?? 0
        return Stats(counters: all, kvBlocks: Int(all["entries.kv_blocks"] ?? 0), completions: Int(all["entries.completions"] ?? 0),
                     payloadBytes: Int(all["bytes.payload"] ?? 0), fileBytes: fileBytes, mapBytes: info.mapSize,
                     usedBytes: info.usedBytes, readersInUse: info.readersInUse, maxReaders: info.maxReaders,
                     pageSize: info.pageSize, freePages: (try? env.freePages()) ?? 0, models: models, writeFailure: writeFailure)
    }
}
