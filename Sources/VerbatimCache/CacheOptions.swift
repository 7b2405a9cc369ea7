import Foundation

/// How a `CacheStore` opens its folder: byte budget, map size, write-behind limit, read-only mode and a shared tier.
public struct CacheOptions: Sendable {
    /// Bytes of payload the cache keeps; above it, least recently used entries go first.
    public var byteBudget = 2 << 30
    /// Eviction stops at this fraction of the budget (hysteresis: one eviction frees a batch).
    public var lowWatermark = 0.9
    /// LMDB map size: an upper bound on the file, reserved as address space only.
    public var mapSize = 8 << 30
    /// Writes waiting for the writer beyond this many bytes are dropped (counted), never waited for.
    public var maxPendingWriteBytes = 512 << 20
    /// Create the folder and an empty cache when missing (false: a missing folder is `.notFound`).
    public var createIfMissing = true
    /// Open for reading only: no writer thread, no folder lock, nothing created. For
    /// inspection beside a running service, and safe while `cachectl compact` runs.
    public var readOnly = false
    /// A tier shared with other processes and hosts (e.g. PostgreSQL): local misses are looked
    /// up there (verified, then promoted into LMDB) and new entries are sent there in batches.
    public var sharedTier: (any SharedTier)?
    /// After a shared-tier failure, the tier is left alone this long (the local cache serves).
    public var sharedTierRetry: Duration = .seconds(5)
    /// The defaults: a 2 GiB payload budget, an 8 GiB map, 512 MiB of pending writes, created when missing,
    /// read-write, no shared tier.
    public init() {}
}
