import Foundation
import LMDB

/// A failure to open, inspect or maintain a cache folder: a `code` for programs (`cachectl` maps it to its exit
/// status) and a message for people.
public struct CacheError: Error, Equatable, CustomStringConvertible, Sendable {
    /// What kind of failure it is; the raw value is the case name.
    public enum Code: String, Sendable {
        /// A folder (the cache's, or a scratch folder beside it) could not be created.
        case cannotCreate
        /// The folder or `data.mdb` may not be read or written (`EACCES`, `EPERM`, `EROFS`).
        case permissionDenied
        /// The path is a file, a folder with other files and no `data.mdb`, or a `data.mdb` that is not
        /// LMDB or lacks the Verbatim format record.
        case notAVerbatimCache
        /// The cache was written in a format newer than `CacheStore.formatVersion`.
        case newerFormat
        /// Any other LMDB or file-system failure.
        case storage
        /// The folder does not exist and may not be created (`createIfMissing` false, or read-only).
        case notFound
        /// Another process holds the folder's lock: a writing store blocks compact, salvage and reset, and
        /// they block opening a writer (and each other).
        case inUse
        /// Every LMDB reader slot is taken (`MDB_READERS_FULL`).
        case readersFull
        /// LMDB found a damaged page (`MDB_CORRUPTED`, `MDB_PAGE_NOTFOUND`, ...): `cachectl salvage` keeps what still verifies.
        case damaged
    }

    /// The error for an LMDB failure that means the file is damaged, else nil.
    public static func damage(_ error: any Error, _ directory: String) -> CacheError? {
        guard let e = error as? LMDBError, LMDBError.damageCodes.contains(e.code) else { return nil }
        return CacheError(.damaged, "\(directory) is damaged (\(e.description)); `cachectl salvage --path \(directory)` keeps every entry that still verifies, `cachectl reset --path \(directory) --yes` empties it")
    }
    /// What kind of failure it is.
    public let code: Code
    /// What failed, for people; it usually names the folder or file.
    public let message: String
    /// Creates an error with a code and a message.
    public init(_ code: Code, _ message: String) { self.code = code; self.message = message }
    public var description: String { "cache error (\(code.rawValue)): \(message)" }
}
