import CLMDB

@inline(__always)
func withValue<R>(_ bytes: UnsafeRawBufferPointer, _ body: (inout MDB_val) throws -> R) rethrows -> R {
    var v = MDB_val(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
    return try body(&v)
}

/// Read operations, shared by both transaction kinds.
public protocol LMDBReading: ~Copyable {
    var txn: OpaquePointer { get }
    var path: String { get }
}

extension LMDBReading where Self: ~Copyable {
    /// The value stored under `key`, as a zero-copy view valid until the transaction ends; nil when absent.
    public func get(_ db: LMDBDatabase, _ key: UnsafeRawBufferPointer) throws(LMDBError) -> UnsafeRawBufferPointer? {
        var value = MDB_val()
        let rc = withValue(key) { k in mdb_get(txn, db.dbi, &k, &value) }
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_get(\(db.name))", path)
        return UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)
    }

    public func get(_ db: LMDBDatabase, _ key: [UInt8]) throws(LMDBError) -> UnsafeRawBufferPointer? {
        var result: UnsafeRawBufferPointer?
        var failure: LMDBError?
        key.withUnsafeBytes { k in
            do throws(LMDBError) { result = try get(db, k) } catch { failure = error }
        }
        if let failure { throw failure }
        return result
    }

    /// Visits entries in key order, starting at `from` (or the first); stops when `body` returns false.
    public func forEach(_ db: LMDBDatabase, from start: [UInt8]? = nil,
                        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, db.dbi, &cursor), "mdb_cursor_open(\(db.name))", path)
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val(), value = MDB_val()
        var rc: Int32
        if let start {
            rc = start.withUnsafeBytes { s in
                key = MDB_val(mv_size: s.count, mv_data: UnsafeMutableRawPointer(mutating: s.baseAddress))
                return mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
            }
        } else {
            rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST)
        }
        while rc == 0 {
            let k = UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size)
            let v = UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)
            guard try body(k, v) else { return }
            rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
        }
        if rc != MDB_NOTFOUND { try check(rc, "mdb_cursor_get(\(db.name))", path) }
    }
}

public struct LMDBReadTransaction: ~Copyable, LMDBReading {
    public let txn: OpaquePointer
    public let path: String
}

public struct LMDBWriteTransaction: ~Copyable, LMDBReading {
    public let txn: OpaquePointer
    public let path: String

    public func put(_ db: LMDBDatabase, _ key: [UInt8], _ value: UnsafeRawBufferPointer) throws(LMDBError) {
        var failure: LMDBError?
        key.withUnsafeBytes { k in
            withValue(k) { kv in
                withValue(value) { vv in
                    let rc = mdb_put(txn, db.dbi, &kv, &vv, 0)
                    if rc != 0 { failure = LMDBError(code: rc, operation: "mdb_put(\(db.name))", path: path) }
                }
            }
        }
        if let failure { throw failure }
    }

    public func put(_ db: LMDBDatabase, _ key: [UInt8], _ value: [UInt8]) throws(LMDBError) {
        var failure: LMDBError?
        value.withUnsafeBytes { v in
            do throws(LMDBError) { try put(db, key, v) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Deletes `key`; false when it was absent.
    @discardableResult
    public func delete(_ db: LMDBDatabase, _ key: [UInt8]) throws(LMDBError) -> Bool {
        let rc = key.withUnsafeBytes { k in withValue(k) { kv in mdb_del(txn, db.dbi, &kv, nil) } }
        if rc == MDB_NOTFOUND { return false }
        try check(rc, "mdb_del(\(db.name))", path)
        return true
    }
}
