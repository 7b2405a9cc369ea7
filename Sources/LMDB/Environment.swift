import CLMDB
#if canImport(Glibc)
import Glibc
#endif

/// A named database inside an environment.
public struct LMDBDatabase: Sendable, Hashable {
    let dbi: MDB_dbi
    public let name: String
}

/// One LMDB environment (a directory with data.mdb and lock.mdb). Opened with `MDB_NOTLS`, so
/// read transactions are not tied to a thread (Swift code hops threads); stale reader slots of
/// dead processes are cleared at open (`mdb_reader_check`).
///
/// Transactions are scoped to a closure, cannot be copied out of it and cannot cross an
/// `await` (`noasync`): values read are zero-copy views valid only inside the closure.
public final class LMDBEnvironment: @unchecked Sendable {
    // Sendable: LMDB environments are thread-safe; `MDB_NOTLS` lets any thread run read
    // transactions. Callers must run at most one write transaction at a time (LMDB blocks others).
    let env: OpaquePointer
    public let path: String
    /// Slots of dead readers cleared when opening.
    public let staleReadersCleared: Int

    public struct Options: Sendable {
        public var mapSize: Int = 1 << 30
        public var maxDatabases: Int = 8
        public var maxReaders: Int = 254
        public var readOnly = false
        public init() {}
    }

    public init(path: String, options: Options = Options()) throws(LMDBError) {
        var env: OpaquePointer?
        try check(mdb_env_create(&env), "mdb_env_create", path)
        guard let env else { throw LMDBError(code: ENOMEM, operation: "mdb_env_create", path: path) }
        do throws(LMDBError) {
            try check(mdb_env_set_mapsize(env, options.mapSize), "mdb_env_set_mapsize(\(options.mapSize))", path)
            try check(mdb_env_set_maxdbs(env, MDB_dbi(options.maxDatabases)), "mdb_env_set_maxdbs", path)
            try check(mdb_env_set_maxreaders(env, UInt32(options.maxReaders)), "mdb_env_set_maxreaders", path)
            let flags = UInt32(MDB_NOTLS) | (options.readOnly ? UInt32(MDB_RDONLY) : 0)
            try check(mdb_env_open(env, path, flags, 0o644), "mdb_env_open", path)
            var dead: Int32 = 0
            try check(mdb_reader_check(env, &dead), "mdb_reader_check", path)
            staleReadersCleared = Int(dead)
        } catch {
            mdb_env_close(env)
            throw error
        }
        self.env = env
        self.path = path
    }

    deinit { mdb_env_close(env) }

    /// Opens (or creates, in a write transaction) a named database.
    public func database(_ name: String, create: Bool = true) throws(LMDBError) -> LMDBDatabase {
        var txn: OpaquePointer?
        let readOnly = !create
        try check(mdb_txn_begin(env, nil, readOnly ? UInt32(MDB_RDONLY) : 0, &txn), "mdb_txn_begin (open \(name))", path)
        var dbi: MDB_dbi = 0
        let rc = mdb_dbi_open(txn, name, create ? UInt32(MDB_CREATE) : 0, &dbi)
        if rc != 0 { mdb_txn_abort(txn); throw LMDBError(code: rc, operation: "mdb_dbi_open(\(name))", path: path) }
        try check(mdb_txn_commit(txn), "mdb_txn_commit (open \(name))", path)
        return LMDBDatabase(dbi: dbi, name: name)
    }

    /// Runs `body` in a read transaction (a consistent snapshot).
    @available(*, noasync, message: "LMDB transactions must not cross an await")
    public func read<R>(_ body: (borrowing LMDBReadTransaction) throws -> R) throws -> R {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin (read)", path)
        defer { mdb_txn_abort(txn) }
        return try body(LMDBReadTransaction(txn: txn!, path: path))
    }

    /// Runs `body` in a write transaction: committed when `body` returns, aborted when it throws.
    /// Nothing is visible to readers before the commit; a crash leaves the state before or after it.
    @available(*, noasync, message: "LMDB transactions must not cross an await")
    public func write<R>(_ body: (borrowing LMDBWriteTransaction) throws -> R) throws -> R {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin (write)", path)
        let result: R
        do {
            result = try body(LMDBWriteTransaction(txn: txn!, path: path))
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        try check(mdb_txn_commit(txn), "mdb_txn_commit", path)
        return result
    }

    /// Grows (or shrinks) the map; only while this process has no transaction open.
    public func setMapSize(_ bytes: Int) throws(LMDBError) {
        try check(mdb_env_set_mapsize(env, bytes), "mdb_env_set_mapsize(\(bytes))", path)
    }

    public struct Info: Sendable {
        public var mapSize: Int
        public var usedBytes: Int       // pages in use up to the last one, times the page size
        public var pageSize: Int
        public var readersInUse: Int
        public var maxReaders: Int
    }

    public var info: Info {
        var i = MDB_envinfo()
        mdb_env_info(env, &i)
        var s = MDB_stat()
        mdb_env_stat(env, &s)
        return Info(mapSize: i.me_mapsize, usedBytes: (i.me_last_pgno + 1) * Int(s.ms_psize), pageSize: Int(s.ms_psize),
                    readersInUse: Int(i.me_numreaders), maxReaders: Int(i.me_maxreaders))
    }

    /// Entries in a database.
    public func count(_ db: LMDBDatabase) throws(LMDBError) -> Int {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin (stat)", path)
        defer { mdb_txn_abort(txn) }
        var s = MDB_stat()
        try check(mdb_stat(txn, db.dbi, &s), "mdb_stat(\(db.name))", path)
        return Int(s.ms_entries)
    }

    /// Pages on LMDB's free list (reusable by later writes), counted in one read transaction.
    public func freePages() throws(LMDBError) -> Int {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin (free pages)", path)
        defer { mdb_txn_abort(txn) }
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, 0, &cursor), "mdb_cursor_open(free list)", path)  // dbi 0: the free list
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val(), value = MDB_val()
        var pages = 0
        var op = MDB_FIRST
        // Each record is a page-number list whose first word is its length.
        while mdb_cursor_get(cursor, &key, &value, op) == 0 {
            if value.mv_size >= MemoryLayout<Int>.size, let data = value.mv_data {
                pages += data.loadUnaligned(as: Int.self)
            }
            op = MDB_NEXT
        }
        return pages
    }

    /// Writes a compacted copy of the environment (free pages omitted) to `directory`,
    /// which must exist and be empty. Runs in a read transaction: writers are not blocked.
    public func copyCompacted(to directory: String) throws(LMDBError) {
        try check(mdb_env_copy2(env, directory, UInt32(MDB_CP_COMPACT)), "mdb_env_copy2(\(directory), compact)", path)
    }

    /// Clears reader slots left by dead processes; returns how many.
    @discardableResult
    public func readerCheck() -> Int {
        var dead: Int32 = 0
        mdb_reader_check(env, &dead)
        return Int(dead)
    }
}
