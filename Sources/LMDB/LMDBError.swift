import CLMDB
#if canImport(Glibc)
import Glibc
#endif

/// An LMDB failure: the `MDB_*` code by name, what was being done, and the environment path.
/// (`MDB_NOTFOUND` is never an error here: lookups return nil.)
public struct LMDBError: Error, Equatable, CustomStringConvertible, Sendable {
    public let code: Int32
    public let operation: String
    public let path: String

    public init(code: Int32, operation: String, path: String) {
        self.code = code
        self.operation = operation
        self.path = path
    }

    public var name: String {
        switch code {
        case MDB_KEYEXIST: "MDB_KEYEXIST"
        case MDB_NOTFOUND: "MDB_NOTFOUND"
        case MDB_PAGE_NOTFOUND: "MDB_PAGE_NOTFOUND"
        case MDB_CORRUPTED: "MDB_CORRUPTED"
        case MDB_PANIC: "MDB_PANIC"
        case MDB_VERSION_MISMATCH: "MDB_VERSION_MISMATCH"
        case MDB_INVALID: "MDB_INVALID"
        case MDB_MAP_FULL: "MDB_MAP_FULL"
        case MDB_DBS_FULL: "MDB_DBS_FULL"
        case MDB_READERS_FULL: "MDB_READERS_FULL"
        case MDB_TLS_FULL: "MDB_TLS_FULL"
        case MDB_TXN_FULL: "MDB_TXN_FULL"
        case MDB_CURSOR_FULL: "MDB_CURSOR_FULL"
        case MDB_PAGE_FULL: "MDB_PAGE_FULL"
        case MDB_MAP_RESIZED: "MDB_MAP_RESIZED"
        case MDB_INCOMPATIBLE: "MDB_INCOMPATIBLE"
        case MDB_BAD_RSLOT: "MDB_BAD_RSLOT"
        case MDB_BAD_TXN: "MDB_BAD_TXN"
        case MDB_BAD_VALSIZE: "MDB_BAD_VALSIZE"
        case MDB_BAD_DBI: "MDB_BAD_DBI"
        case EACCES: "EACCES"
        case ENOENT: "ENOENT"
        case ENOSPC: "ENOSPC"
        case ENOMEM: "ENOMEM"
        case EINVAL: "EINVAL"
        case EIO: "EIO"
        default: "error \(code)"
        }
    }

    public var isMapFull: Bool { code == MDB_MAP_FULL }

    /// Codes that mean the file's pages are damaged, not that an operation was refused.
    public static let damageCodes: Set<Int32> = [MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_PANIC, EIO]
    public var isDiskFull: Bool { code == ENOSPC }

    public var description: String {
        "LMDB \(name) during \(operation) on \(path): \(String(cString: mdb_strerror(code)))"
    }
}

@inline(__always)
func check(_ rc: Int32, _ operation: @autoclosure () -> String, _ path: String) throws(LMDBError) {
    if rc != 0 { throw LMDBError(code: rc, operation: operation(), path: path) }
}
