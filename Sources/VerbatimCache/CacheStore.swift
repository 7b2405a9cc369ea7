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
    // Sendable: LMDB handles are thread-safe under MDB_NOTLS; mutable state is behind `lock`.
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

    private let lock = NSCondition()
    private var queue: [WriteOp] = []
    private var pendingBytes = 0
    private var deltas: [String: Int64] = [:]
    private var busy = false
    private var stopping = false
    private var writerDone = true      // until the writer thread starts (a failed init has none)
    /// Signalled once the writer thread holds no reference to the store any more.
    private var writerExited: DispatchSemaphore?
    /// Set while writes fail (full map that eviction cannot relieve, full disk, damage); the
    /// writer tries again at `retryAt`, backing off from 1 s to a minute, and clears it when a
    /// write works. Meanwhile new entries are dropped (counted), reads go on.
    private var failure: String?
    private var retryAt: ContinuousClock.Instant?
    private var backoff: Duration = .seconds(1)
    /// Since this store opened (the persistent counters `writes.failed`/`writes.dropped` get
    /// them too, with the next write that works).
    private var failedWrites = 0, droppedWrites = 0
    /// Why the file is damaged, once a read or write has found it so (logged once).
    private var damage: String?

    enum WriteOp {
        case put(key: Digest128, value: [UInt8], payloadBytes: Int, kind: EntryIdentity.Kind, siblings: Digest128?)
        case touch([Digest128])       // most recent last
        case delete(Digest128, cause: String)
        /// A sibling index row whose entry is gone, or whose entry's header no longer decodes
        /// (checked again in the writer's transaction): the row goes, and such an entry with it.
        case dropSibling(group: Digest128, key: Digest128)
        case seen(model: Digest128, profile: String)
    }

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
        writerDone = false
        // The thread holds no strong reference: a strong one would keep the store alive for
        // ever (the loop ends only when the store closes), and a checked unowned one traps if
        // the store is released before the thread starts. deinit calls close(), which waits
        // until the thread has left writerLoop (`exited`), so the object outlives its use here.
        let exited = DispatchSemaphore(value: 0)
        writerExited = exited
        let store = Unmanaged.passUnretained(self)
        let thread = Thread {
            store._withUnsafeGuaranteedRef { $0.writerLoop() }
            exited.signal()
        }
        thread.name = "verbatim-cache-writer"
        thread.start()
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
        lock.lock()
        stopping = true
        lock.broadcast()
        while !writerDone { lock.wait() }
        let exited = writerExited
        writerExited = nil
        lock.unlock()
        exited?.wait()
    }

    /// `flush()` for async code: waits on a thread of its own, so no cooperative thread blocks
    /// (the shared tier's client needs them to make progress while the flush waits for it).
    public func flushed() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread { self.flush(); done.resume() }
        }
    }

    /// Waits until every write handed over so far is committed, and sent to the shared tier.
    public func flush() {
        tierLink?.flush()
        lock.lock()
        // While writes fail, what waits for the retry is not waited for.
        while (busy || (failure == nil && (!queue.isEmpty || !deltas.isEmpty))) && !writerDone { lock.broadcast(); lock.wait() }
        lock.unlock()
    }

    /// Why writes are failing now, if they are (the cache then serves reads only, and tries
    /// writing again after a back-off).
    public var writeFailure: String? { lock.withLock { failure } }

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
        lock.withLock { Health(failedWrites: failedWrites, droppedWrites: droppedWrites, writeFailure: failure, damage: damage) }
    }

    /// Notes an LMDB failure: damage is logged once and remembered (reads become misses).
    func noteFailure(_ error: any Error) {
        guard let damaged = CacheError.damage(error, directory) else { return }
        lock.withLock {
            guard damage == nil else { return }
            damage = damaged.message
            FileHandle.standardError.write(Data("verbatim cache: \(damaged.message); serving from compute meanwhile\n".utf8))
        }
    }

    /// Test support: makes the next `count` commits fail with `code` (as a full disk would).
    package func injectWriteFailures(_ count: Int, code: Int32 = ENOSPC) {
        lock.withLock { injectedFailures = (count, code) }
    }
    private var injectedFailures: (count: Int, code: Int32) = (0, 0)

    // MARK: - Counters

    /// Adds to a persistent counter (committed with the next write batch).
    public func count(_ name: String, _ delta: Int64 = 1) {
        lock.lock()
        deltas[name, default: 0] += delta
        lock.signal()
        lock.unlock()
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
        if lock.withLock({ pendingBytes + stored.count > options.maxPendingWriteBytes / 2 }) { flush() }
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

    func enqueue(_ op: WriteOp, bytes: Int) {
        lock.lock()
        defer { lock.unlock() }
        let suspended = failure != nil && (retryAt.map { ContinuousClock.now < $0 } ?? false)
        if bytes > 0 && (pendingBytes + bytes > options.maxPendingWriteBytes || suspended) {
            deltas["writes.dropped", default: 0] += 1
            droppedWrites += 1
            return
        }
        queue.append(op)
        pendingBytes += bytes
        lock.signal()
    }

    // MARK: - The writer thread

    private func writerLoop() {
        var tick: UInt64 = (try? env.read { txn in try counter(txn, "tick") }) ?? 0
        while true {
            lock.lock()
            while !stopping {
                let pending = !queue.isEmpty || !deltas.isEmpty
                if pending, let retryAt, ContinuousClock.now < retryAt {
                    // Writes are failing: wait out the back-off (new entries are dropped meanwhile).
                    let (seconds, attoseconds) = (retryAt - ContinuousClock.now).components
                    _ = lock.wait(until: Date(timeIntervalSinceNow: Double(seconds) + Double(attoseconds) * 1e-18))
                    continue
                }
                if pending { break }
                lock.wait()
            }
            if queue.isEmpty && deltas.isEmpty && stopping { writerDone = true; lock.broadcast(); lock.unlock(); return }
            let batch = queue
            let batchDeltas = deltas
            queue.removeAll()
            deltas.removeAll()
            pendingBytes = 0
            busy = true
            lock.unlock()

            let written = commit(batch, batchDeltas, &tick)
            if written { evictIfNeeded(&tick) }

            lock.lock()
            busy = false
            // Stopping while writes fail: one last try was made; what is left is dropped.
            if !written && stopping { queue.removeAll(); deltas.removeAll() }
            lock.broadcast()
            lock.unlock()
        }
    }

    /// Commits a batch; false if the write failed (the batch's entries are dropped and counted,
    /// its counter deltas kept for the next try, and writes back off).
    private func commit(_ batch: [WriteOp], _ deltas: [String: Int64], _ tick: inout UInt64) -> Bool {
        var attempt = 0
        while true {
            var t = tick
            do {
                let injected: Int32? = lock.withLock {
                    guard injectedFailures.count > 0 else { return nil }
                    injectedFailures.count -= 1
                    return injectedFailures.code
                }
                if let injected { throw LMDBError(code: injected, operation: "mdb_txn_commit (injected)", path: directory) }
                try env.write { txn in try apply(batch, deltas, txn, &t) }
                tick = t
                lock.withLock {
                    if let failure {
                        FileHandle.standardError.write(Data("verbatim cache: writes resumed in \(directory) (they failed with \(failure))\n".utf8))
                    }
                    failure = nil
                    retryAt = nil
                    backoff = .seconds(1)
                }
                return true
            } catch let e as LMDBError where e.isMapFull && attempt == 0 {
                // Make room (a quarter of the budget) and try once more.
                attempt += 1
                evict(targetBytes: max(0, payloadBytes() - options.byteBudget / 4), cause: "budget", &tick)
            } catch {
                noteFailure(error)
                let entries = batch.reduce(0) { n, op in if case .put = op { n + 1 } else { n } }
                lock.withLock {
                    if failure == nil {
                        FileHandle.standardError.write(Data("verbatim cache: writes to \(directory) failed (\(error)); serving without caching new entries, retrying in \(backoff)\n".utf8))
                    }
                    failure = "\(error)"
                    retryAt = ContinuousClock.now + backoff
                    backoff = min(backoff * 2, .seconds(60))
                    failedWrites += entries
                    // The counters are not lost: they go with the next write that works.
                    for (name, delta) in deltas { self.deltas[name, default: 0] += delta }
                    self.deltas["writes.failed", default: 0] += Int64(entries)
                }
                return false
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
