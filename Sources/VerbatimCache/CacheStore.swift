import Foundation
import LMDB
import VerbatimCore

/// The LMDB-backed, content-addressed store of KV blocks and completions.
///
/// Reads run on the caller's thread in short read transactions and verify every entry.
/// Writes are handed to one writer thread and committed in batches (write-behind): callers
/// never wait for the disk. Above the byte budget the writer evicts least recently used
/// entries; since a prefix is touched leaf first and root last, parents are never older
/// than their children and leaves go first.
///
/// Layout (named databases): `entries` (key -> entry, see `EntryCodec`), `access` (key -> u64
/// tick), `lru` (u64 big-endian tick + key -> empty), `siblings` (sibling group of a KV block
/// + its key -> empty, see `ContentAddress.kvSiblings`), `counters` (name -> u64), `meta`
/// (`format` -> u32 version, `created` -> u64, `model:<digest>` -> profile).
public final class CacheStore: @unchecked Sendable {
    // Sendable: LMDB handles are thread-safe under MDB_NOTLS; mutable state is behind `state` or in the writer.
    /// The on-disk format this build writes (meta `format`); a cache of a higher version fails to open with `.newerFormat`.
    public static let formatVersion: UInt32 = 1

    /// The cache folder, holding LMDB's `data.mdb`.
    public let directory: String
    /// The options the store was opened with.
    public let options: CacheOptions
    let env: LMDBEnvironment
    let entries: LMDBDatabase, access: LMDBDatabase, lru: LMDBDatabase, counters: LMDBDatabase, meta: LMDBDatabase
    /// Times each entry served a request (absent: never).
    let hits: LMDBDatabase?
    /// KV blocks by sibling group (absent in a read-only store opened on a cache that predates it).
    let siblings: LMDBDatabase?
    private var folderLock: FolderLock?
    /// The shared tier behind this store, if any (never for read-only stores). Set in init only.
    private(set) var tierLink: TierLink?

    /// The writer: LMDB write transactions in batches on a thread of its own (see CacheWriter.swift).
    private(set) var writer: BatchWorker<WriteOp>?
    /// The writer thread's LRU clock (read from the file before its first batch). Writer thread only.
    var writerTick: UInt64?

    /// Guards the write-failure state below (the writer sets it, callers read it).
    let state = NSLock()
    /// Set while writes fail (full map that eviction cannot relieve, full disk, damage); the
    /// writer pauses, backing off from 1 s to a minute, and clears it when a write works.
    /// Meanwhile new entries are dropped (counted), reads go on.
    var failure: String?
    var backoff: Duration = .seconds(1)
    /// Since this store opened (the persistent counters `writes.failed`/`writes.dropped` get
    /// them too, with the next write that works).
    var failedWrites = 0, droppedWrites = 0
    /// Why the file is damaged, once a read or write has found it so (logged once).
    private var damage: String?
    /// Persistent counter changes not yet committed (the writer takes them with each batch).
    var counterDeltas: [String: Int64] = [:]
    /// Test support: the next `count` commits fail with `code`.
    var injectedFailures: (count: Int, code: Int32) = (0, 0)

    /// Opens the cache in `directory`, creating it when missing unless `options` forbid it, and, unless
    /// read-only, takes the folder lock shared and starts the writer thread (and the shared tier's).
    ///
    /// Throws `.notFound`, `.cannotCreate`, `.notAVerbatimCache`, `.permissionDenied`, `.newerFormat`,
    /// `.inUse` (the folder is being compacted, salvaged or reset), `.readersFull`, `.damaged` or `.storage`.
    public init(directory: String, options: CacheOptions = CacheOptions()) throws(CacheError) {
        self.directory = directory
        self.options = options
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw CacheError(.notAVerbatimCache, "\(directory) is a file, not a cache folder") }
            let contents = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
            if !contents.isEmpty && !contents.contains("data.mdb") {
                throw CacheError(.notAVerbatimCache, "\(directory) holds other files and no cache (no data.mdb)")
            }
        } else {
            guard options.createIfMissing && !options.readOnly else { throw CacheError(.notFound, "\(directory) does not exist") }
            do { try fm.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
                throw CacheError(.cannotCreate, "cannot create \(directory): \(error.localizedDescription)")
            }
        }
        if options.readOnly {
            guard fm.fileExists(atPath: directory + "/data.mdb") else { throw CacheError(.notAVerbatimCache, "\(directory) holds no cache (no data.mdb)") }
            guard fm.isReadableFile(atPath: directory + "/data.mdb") else { throw CacheError(.permissionDenied, "\(directory)/data.mdb is not readable") }
        } else {
            guard fm.isWritableFile(atPath: directory) else { throw CacheError(.permissionDenied, "\(directory) is not writable") }
            folderLock = try FolderLock(directory: directory, exclusive: false)
        }
        var envOptions = LMDBEnvironment.Options()
        envOptions.mapSize = options.mapSize
        envOptions.maxDatabases = 8
        envOptions.readOnly = options.readOnly
        let create = !options.readOnly
        do {
            env = try LMDBEnvironment(path: directory, options: envOptions)
            let meta = try env.database("meta", create: create)
            self.meta = meta
            if options.readOnly {
                // Read-only: a folder without the format record is not a cache.
                guard try env.read({ txn in try txn.get(meta, Array("format".utf8)) != nil }) else {
                    throw CacheError(.notAVerbatimCache, "\(directory) has no Verbatim format record")
                }
            }
            try Self.checkFormat(env, meta, directory)
            entries = try env.database("entries", create: create); access = try env.database("access", create: create)
            lru = try env.database("lru", create: create); counters = try env.database("counters", create: create)
            hits = create ? try env.database("hits") : try? env.database("hits", create: false)
            siblings = create ? try env.database("siblings") : try? env.database("siblings", create: false)
        } catch let e as CacheError {
            throw e
        } catch let e as LMDBError {
            let code: CacheError.Code = switch e.code {
            case EACCES, EROFS: .permissionDenied
            case -30793: .notAVerbatimCache          // MDB_INVALID
            case -30790: .readersFull                // MDB_READERS_FULL
            case -30798: .notAVerbatimCache          // MDB_NOTFOUND: a database the cache always has
            case _ where LMDBError.damageCodes.contains(e.code): .damaged
            default: .storage
            }
            if code == .damaged, let damage = CacheError.damage(e, directory) { throw damage }
            throw CacheError(code, code == .readersFull
                ? "\(directory): every LMDB reader slot is taken (too many processes or threads reading at once): \(e.description)"
                : e.description)
        } catch {
            throw CacheError(.storage, "\(error)")
        }
        if options.readOnly { return }
        // Like the writer thread below, the tier's counter callback holds no reference.
        let unretained = Unmanaged.passUnretained(self)
        tierLink = options.sharedTier.map { tier in
            TierLink(tier: tier, retryAfter: options.sharedTierRetry, maxPendingBytes: options.maxPendingWriteBytes, batchBytes: 8 << 20) {
                name, delta in unretained._withUnsafeGuaranteedRef { $0.count(name, delta) }
            }
        }
        // The writer holds no strong reference: a strong one would keep the store alive for
        // ever (it stops only when the store closes). deinit calls close(), which waits until
        // the writer's thread has left `writeBatch` for good, so the store outlives its use there.
        let store = Unmanaged.passUnretained(self)
        writer = BatchWorker(name: "vb-cache-writer", maxPendingBytes: options.maxPendingWriteBytes) { batch in
            store._withUnsafeGuaranteedRef { $0.writeBatch(batch) }
        }
    }


    private static func checkFormat(_ env: LMDBEnvironment, _ meta: LMDBDatabase, _ directory: String) throws {
        let existing: UInt32? = try env.read { txn in
            try txn.get(meta, Array("format".utf8)).map { $0.loadUnaligned(as: UInt32.self) }
        }
        if let existing {
            guard UInt32(littleEndian: existing) <= formatVersion else {
                throw CacheError(.newerFormat, "\(directory) uses cache format \(UInt32(littleEndian: existing)); this build reads up to \(formatVersion)")
            }
            return
        }
        let created = UInt64(Date().timeIntervalSince1970)
        try env.write { txn in
            try txn.put(meta, Array("format".utf8), withUnsafeBytes(of: formatVersion.littleEndian) { Array($0) })
            try txn.put(meta, Array("created".utf8), withUnsafeBytes(of: created.littleEndian) { Array($0) })
        }
    }

    deinit { close() }

    /// Commits everything handed over so far (sending it to the shared tier too), then stops
    /// the writers. Idempotent.
    public func close() {
        tierLink?.close()
        writer?.close()
    }

    /// `flush()` for async code: waits on a thread of its own, so no cooperative thread blocks
    /// (the shared tier's client needs them to make progress while the flush waits for it).
    public func flushed() async {
        await BlockingWork.run(name: "vb-cache-flush") { self.flush() }
    }

    /// Waits until every write handed over so far is committed, and sent to the shared tier.
    /// While writes fail, what waits for the retry is not waited for.
    public func flush() {
        tierLink?.flush()
        writer?.flush()
    }

    /// Why writes are failing now, if they are (the cache then serves reads only, and tries
    /// writing again after a back-off).
    public var writeFailure: String? { state.withLock { failure } }

    /// How the store is doing, for monitoring (`/metrics`).
    public struct Health: Sendable, Equatable {
        /// Entries whose write failed, since the store opened.
        public var failedWrites: Int
        /// Entries not written because the writer was behind or writes were failing.
        public var droppedWrites: Int
        /// Why writes are failing now (nil: they work).
        public var writeFailure: String?
        /// Why the file is damaged, once found (nil: no damage seen).
        public var damage: String?
    }

    /// Failed and dropped writes since this store opened, and any write failure or damage now, for `/metrics`.
    public var health: Health {
        state.withLock { Health(failedWrites: failedWrites, droppedWrites: droppedWrites, writeFailure: failure, damage: damage) }
    }

    /// Notes an LMDB failure: damage is logged once and remembered (reads become misses).
    func noteFailure(_ error: any Error) {
        guard let damaged = CacheError.damage(error, directory) else { return }
        state.withLock {
            guard damage == nil else { return }
            damage = damaged.message
            FileHandle.standardError.write(Data("verbatim cache: \(damaged.message); serving from compute meanwhile\n".utf8))
        }
    }

    /// Test support: makes the next `count` commits fail with `code` (as a full disk would).
    package func injectWriteFailures(_ count: Int, code: Int32 = ENOSPC) {
        state.withLock { injectedFailures = (count, code) }
    }

    // MARK: - Counters

    /// Adds to a persistent counter (committed with the next write batch).
    public func count(_ name: String, _ delta: Int64 = 1) {
        // Summed here, not queued one by one: while writes are paused they cannot pile up.
        let first = state.withLock {
            defer { counterDeltas[name, default: 0] += delta }
            return counterDeltas.isEmpty
        }
        if first { writer?.submit(.counters) }
    }

    // MARK: - Reads (caller's thread)

    /// Looks up an entry; on a checksum failure the entry is deleted (by the writer) and counted.
    /// `body` sees the payload only inside the read transaction (zero-copy).
    @available(*, noasync)
    public func read<R>(_ key: Digest128, expecting identity: EntryIdentity,
                        _ body: (UnsafeRawBufferPointer) throws -> R) -> R? {
        do {
            let local = try env.read { txn -> R?? in
                guard let stored = try txn.get(entries, key.bytes) else { return .none }
                switch EntryCodec.verify(stored, expected: identity) {
                case .match(let payload, _):
                    count("tier.local.entries_hit")
                    return .some(try body(payload))
                case .mismatch: return .some(nil)
                case .corrupt:
                    enqueue(.delete(key, cause: "corruption"), bytes: 0)
                    return .none
                }
            }
            if let local { return local }
        } catch {
            noteFailure(error)
            return nil   // an unreadable cache is a miss, never a failure of the request
        }
        guard let tierLink, let bytes = tierLink.fetch([key])[key] else { return nil }
        return try? bytes.withUnsafeBytes { stored -> R? in
            guard case .match(let payload, _) = checkRemote(key, stored, identity) else { return nil }
            return try body(payload)
        }
    }

    /// Verifies an entry from the shared tier like a local one; a good one is promoted into
    /// LMDB, a corrupt one is counted and ignored (never stored, never served).
    func checkRemote(_ key: Digest128, _ stored: UnsafeRawBufferPointer, _ identity: EntryIdentity) -> EntryCodec.Check {
        let name = tierLink?.tier.name ?? "shared"
        let check = EntryCodec.verify(stored, expected: identity)
        switch check {
        case .match(let payload, _):
            count("tier.\(name).entries_hit")
            enqueue(.put(key: key, value: Array(stored), payloadBytes: payload.count, kind: identity.kind,
                         siblings: Self.siblingGroup(identity)), bytes: stored.count)
        case .mismatch:
            count("tier.\(name).entries_mismatched")
        case .corrupt:
            count("tier.\(name).entries_corrupt")
        }
        return check
    }

    // MARK: - Writes (handed to the writer)

    /// Stores an entry unless the writer is behind by more than `maxPendingWriteBytes`.
    public func put(_ key: Digest128, identity: EntryIdentity, payload: UnsafeRawBufferPointer) {
        let value = EntryCodec.encode(identity, payload: payload, created: UInt64(Date().timeIntervalSince1970))
        enqueue(.put(key: key, value: value, payloadBytes: payload.count, kind: identity.kind, siblings: Self.siblingGroup(identity)),
                bytes: value.count)
        tierLink?.enqueue(SharedTierEntry(key: key, kind: identity.kind, payloadBytes: payload.count, bytes: value))
    }

    /// Stores an entry found by salvage as it was (creation time included), waiting for the
    /// writer instead of dropping the entry when it is behind.
    func putSalvaged(_ key: Digest128, _ stored: [UInt8], identity: EntryIdentity) {
        if (writer?.bytesWaiting ?? 0) + stored.count > options.maxPendingWriteBytes / 2 { flush() }
        let payload = stored.withUnsafeBytes { EntryCodec.storedPayloadLength($0) }
        enqueue(.put(key: key, value: stored, payloadBytes: payload, kind: identity.kind, siblings: Self.siblingGroup(identity)),
                bytes: stored.count)
    }

    /// The sibling group a KV block is indexed under (nil for completions).
    static func siblingGroup(_ identity: EntryIdentity) -> Digest128? {
        identity.kind == .kvBlock ? ContentAddress.kvSiblings(of: identity, blockSize: identity.tokens.count) : nil
    }

    static func siblingKey(_ group: Digest128, _ key: Digest128) -> [UInt8] { group.bytes + key.bytes }

    /// Marks entries as used now; pass a prefix leaf first, root last.
    public func touch(_ keys: [Digest128]) {
        guard !keys.isEmpty else { return }
        enqueue(.touch(keys), bytes: 0)
    }

    /// Records that `model` is used under numerics `profile` (meta `model:<digest>`, listed in `stats().models`);
    /// written with the writer's next batch.
    public func noteModel(_ model: Digest128, profile: String) { enqueue(.seen(model: model, profile: profile), bytes: 0) }

    /// Hands an operation to the writer; one with bytes is dropped (and counted) while writes
    /// fail or when the writer is behind by more than `maxPendingWriteBytes`.
    func enqueue(_ op: WriteOp, bytes: Int) {
        guard let writer, !writer.submit(op, bytes: bytes), bytes > 0 else { return }
        state.withLock { droppedWrites += 1 }
        count("writes.dropped")
    }
}
