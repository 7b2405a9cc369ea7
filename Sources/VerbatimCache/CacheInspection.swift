import Foundation
import LMDB
import VerbatimCore

/// One stored entry as an operator sees it: what it was computed from, its size, age and use.
public struct CacheEntryInfo: Sendable {
    /// The entry's content address (its key in the `entries` database).
    public var key: Digest128
    /// Whether the entry is a KV block or a completion.
    public var kind: EntryIdentity.Kind
    /// Digest of the model the entry was computed with.
    public var model: Digest128
    /// The numerics profile the entry was computed under.
    public var profile: String
    /// XXH3-128 of the tenant salt the entry was stored under (the salt itself is not stored).
    public var saltDigest: Digest128
    /// KV block: the parent block's key (nil for a first block). Completion: nil.
    public var parent: Digest128?
    /// KV block: its tokens. Completion: the whole prompt. Empty unless asked for.
    public var tokens: [TokenID]
    /// Number of tokens the entry records (block tokens or prompt length), also when `tokens` is empty.
    public var tokenCount: Int
    /// Completion: the sampling identity bytes it was generated with. KV block: empty.
    public var sampling: [UInt8]
    /// Unix seconds.
    public var created: UInt64
    /// Payload size in bytes, as the entry's header records it.
    public var payloadBytes: Int
    /// Size of the stored value in bytes: header and payload.
    public var storedBytes: Int
    /// Times a request was served from this entry.
    public var hits: UInt64
}

extension EntryCodec {
    /// The header of a stored entry (no checksum check), nil if it is not one.
    static func header(_ key: Digest128, _ stored: UnsafeRawBufferPointer, withTokens: Bool) -> CacheEntryInfo? {
        var r = ByteReader(stored)
        guard r.get(UInt32.self) == magic, let kindByte = r.get(UInt8.self), let kind = EntryIdentity.Kind(rawValue: kindByte),
              r.raw(3) != nil, let created = r.get(UInt64.self), let length = r.get(UInt64.self), r.raw(16) != nil,
              let model = r.raw(16).flatMap(Digest128.init(bytes:)), let salt = r.raw(16).flatMap(Digest128.init(bytes:)),
              let profile = r.getBytes(), let parent = r.raw(16).flatMap(Digest128.init(bytes:)),
              let count = r.get(UInt32.self) else { return nil }
        var tokens: [TokenID] = []
        if withTokens {
            tokens.reserveCapacity(Int(count))
            for _ in 0..<count {
                guard let t = r.get(UInt32.self) else { return nil }
                tokens.append(TokenID(bitPattern: t))
            }
        } else {
            guard r.raw(Int(count) * 4) != nil else { return nil }
        }
        guard let sampling = r.getBytes() else { return nil }
        let zero = Digest128(high: 0, low: 0)
        return CacheEntryInfo(key: key, kind: kind, model: model, profile: String(decoding: profile, as: UTF8.self),
                              saltDigest: salt, parent: parent == zero ? nil : parent, tokens: tokens,
                              tokenCount: Int(count), sampling: Array(sampling), created: created,
                              payloadBytes: Int(length), storedBytes: stored.count, hits: 0)
    }
}

extension CacheStore {
    /// Every entry's header, in key order (one read transaction; payloads are not copied).
    @available(*, noasync)
    public func entries(withTokens: Bool = false) throws -> [CacheEntryInfo] {
        try env.read { txn in
            var out: [CacheEntryInfo] = []
            try txn.forEach(entries) { k, v in
                guard let key = Digest128(bytes: k) else { return true }
                if var info = EntryCodec.header(key, v, withTokens: withTokens) {
                    info.hits = try hitCount(txn, key)
                    out.append(info)
                }
                return true
            }
            return out
        }
    }

    /// One entry: its header (with tokens) and a copy of its payload; nil if absent.
    /// `checksumHolds` is false when the stored payload no longer matches its checksum.
    @available(*, noasync)
    public func entry(_ key: Digest128) throws -> (info: CacheEntryInfo, payload: [UInt8], checksumHolds: Bool)? {
        try env.read { txn in
            guard let stored = try txn.get(entries, key.bytes) else { return nil }
            guard var info = EntryCodec.header(key, stored, withTokens: true) else {
                throw CacheError(.storage, "entry \(key) in \(directory) has an unreadable header")
            }
            info.hits = try hitCount(txn, key)
            let payloadStart = max(0, stored.count - min(info.payloadBytes, stored.count))
            return (info, Array(stored[payloadStart...]), EntryCodec.checksumHolds(stored))
        }
    }

    /// Keys whose stored bytes fail their checksum, among `keys` (missing keys are skipped).
    @available(*, noasync)
    public func corruptEntries(_ keys: [Digest128]) throws -> [Digest128] {
        try env.read { txn in
            var bad: [Digest128] = []
            for key in keys {
                if let stored = try txn.get(entries, key.bytes), !EntryCodec.checksumHolds(stored) { bad.append(key) }
            }
            return bad
        }
    }

    func hitCount(_ txn: borrowing some LMDBReading & ~Copyable, _ key: Digest128) throws -> UInt64 {
        guard let hits else { return 0 }
        return try txn.get(hits, key.bytes).map { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) } ?? 0
    }

    /// Deletes `keys` through the writer and waits for the commit; counted as evictions by `cause`.
    public func delete(_ keys: [Digest128], cause: String = "explicit") {
        for key in keys { enqueue(.delete(key, cause: cause), bytes: 0) }
        flush()
    }

    /// KV blocks whose parent block is gone: no lookup can reach them, so they only take room.
    @available(*, noasync)
    public func orphanedBlocks() throws -> [Digest128] {
        let all = try entries()
        let present = Set(all.map(\.key))
        var gone = Set<Digest128>()
        // A child of an orphan is an orphan: repeat until nothing changes.
        var changed = true
        while changed {
            changed = false
            for e in all where e.kind == .kvBlock && !gone.contains(e.key) {
                if let p = e.parent, !present.contains(p) || gone.contains(p) {
                    gone.insert(e.key)
                    changed = true
                }
            }
        }
        return all.filter { gone.contains($0.key) }.map(\.key)
    }
}

// MARK: - Compaction

extension CacheStore {
    /// Rewrites the cache folder without free pages. A process that writes to the cache (an
    /// engine, `cachectl evict`) holds the folder's lock shared, so compaction refuses to run
    /// beside one. Readers may run throughout: the new file replaces the old by a rename, and
    /// a reader keeps the file it opened until it closes.
    /// Returns the file size before and after.
    @available(*, noasync)
    public static func compact(directory: String) throws(CacheError) -> (before: Int, after: Int) {
        let lock = try FolderLock(directory: directory, exclusive: true)
        defer { lock.release() }
        let dataPath = directory + "/data.mdb"
        let fm = FileManager.default
        guard fm.fileExists(atPath: dataPath) else { throw CacheError(.notAVerbatimCache, "\(directory) holds no cache (no data.mdb)") }
        let before = (try? fm.attributesOfItem(atPath: dataPath)[.size] as? Int) ?? 0
        let scratch = directory + "/compact.tmp"
        try? fm.removeItem(atPath: scratch)
        // A folder the caller may not write is a permission problem (as for evict), not a storage failure.
        if Glibc.access(directory, W_OK) != 0, errno == EACCES || errno == EROFS || errno == EPERM {
            throw CacheError(.permissionDenied, "\(directory) is not writable: \(String(cString: strerror(errno)))")
        }
        do { try fm.createDirectory(atPath: scratch, withIntermediateDirectories: false) } catch {
            throw CacheError(.cannotCreate, "cannot create \(scratch): \(error.localizedDescription)")
        }
        defer { try? fm.removeItem(atPath: scratch) }
        var envOptions = LMDBEnvironment.Options()
        envOptions.mapSize = max(before, 1 << 20)
        envOptions.maxDatabases = 8
        let entriesBefore: Int
        do {
            let env = try LMDBEnvironment(path: directory, options: envOptions)
            let meta = try env.database("meta", create: false)
            guard try env.read({ txn in try txn.get(meta, Array("format".utf8)) != nil }) else {
                throw CacheError(.notAVerbatimCache, "\(directory) has no Verbatim format record")
            }
            entriesBefore = try env.count(env.database("entries", create: false))
            try env.copyCompacted(to: scratch)
            // The copy must open and hold the same entries before it replaces anything.
            let copy = try LMDBEnvironment(path: scratch, options: envOptions)
            guard try copy.count(copy.database("entries", create: false)) == entriesBefore else {
                throw CacheError(.storage, "the compacted copy of \(directory) does not hold the same entries; nothing was replaced")
            }
        } catch let e as CacheError {
            throw e
        } catch {
            throw CacheError(.storage, "compacting \(directory): \(error)")
        }
        // The old lock file goes first: a reader that opens in between then pairs a fresh lock
        // file with the old data file, never the old lock file with the new data.
        unlink(directory + "/lock.mdb")
        guard rename(scratch + "/data.mdb", dataPath) == 0 else {
            throw CacheError(.storage, "cannot move the compacted file into \(directory): \(String(cString: strerror(errno)))")
        }
        let after = (try? fm.attributesOfItem(atPath: dataPath)[.size] as? Int) ?? 0
        return (before, after)
    }
}

/// An advisory lock on `<folder>/verbatim.lock`: writers hold it shared, compaction exclusive.
final class FolderLock: @unchecked Sendable {
    private var fd: Int32

    init(directory: String, exclusive: Bool) throws(CacheError) {
        let path = directory + "/verbatim.lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let code = errno
            throw CacheError([EACCES, EPERM, EROFS].contains(code) ? .permissionDenied : .storage, "cannot open \(path): \(String(cString: strerror(code)))")
        }
        if flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 {
            close(fd)
            fd = -1
            throw CacheError(.inUse, exclusive
                ? "\(directory) is open for writing in another process (a service, or cachectl evict/warm); stop it and retry"
                : "\(directory) is being compacted; retry when cachectl compact finishes")
        }
    }

    func release() {
        if fd >= 0 { close(fd); fd = -1 }
    }

    deinit { release() }
}

extension CacheStore {
    /// Checks every entry's structure and payload checksum. Returns how many were checked and
    /// the keys of those that failed.
    @available(*, noasync)
    public func verifyAll() throws -> (checked: Int, corrupt: [Digest128]) {
        try env.read { txn in
            var checked = 0
            var corrupt: [Digest128] = []
            try txn.forEach(entries) { k, v in
                checked += 1
                if !EntryCodec.checksumHolds(v), let key = Digest128(bytes: k) { corrupt.append(key) }
                return true
            }
            return (checked, corrupt)
        }
    }
}

extension EntryCodec {
    /// Structure and payload checksum, whatever the identity.
    static func checksumHolds(_ stored: UnsafeRawBufferPointer) -> Bool {
        var r = ByteReader(stored)
        guard r.get(UInt32.self) == magic, r.raw(4) != nil, r.get(UInt64.self) != nil,
              let length = r.get(UInt64.self), let checksum = r.raw(16), length <= UInt64(stored.count) else { return false }
        let payload = UnsafeRawBufferPointer(rebasing: stored[(stored.count - Int(length))...])
        return ContentHasher.digest(payload) == Digest128(bytes: checksum)
    }
}
