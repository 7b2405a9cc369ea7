import Foundation
import Logging
import NIOCore
import PostgresNIO
import Synchronization
import VerbatimCache
import VerbatimModel

/// The fleet's shared cache tier in PostgreSQL (postgres-nio's pooled client).
///
/// Table (created if missing):
/// ```sql
/// verbatim_entries(key bytea PRIMARY KEY, kind smallint, payload_bytes integer,
///                  entry bytea,              -- the local store's encoding: identity, checksum, payload
///                  created timestamptz, accessed timestamptz)
/// ```
/// Reads update `accessed`; writes are inserts that leave an existing key alone (same key,
/// same bytes); after each write batch the least recently accessed rows beyond the byte
/// budget are deleted. Every call has a time limit; the store above turns failures into
/// local-only service.
public final class PostgresTier: SharedTier {
    public struct Configuration: Sendable {
        /// `postgres://user:password@host:port/database`
        public var url: String
        /// Payload bytes the table keeps; older rows beyond it are deleted.
        public var byteBudget = 16 << 30
        /// The limit of one read or write, connection included.
        public var timeout: Duration = .milliseconds(500)
        /// Connections in the pool.
        public var maxConnections = 4

        public init(url: String) { self.url = url }
    }

    public let configuration: Configuration
    public var name: String { "postgres" }
    let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger = Logger(label: "verbatim.postgres")

    /// Connects and creates the table; throws when the URL is malformed or the server cannot
    /// be reached within a few seconds.
    public init(_ configuration: Configuration) throws(SharedTierError) {
        self.configuration = configuration
        guard let url = URLComponents(string: configuration.url), url.scheme == "postgres" || url.scheme == "postgresql",
              let host = url.host, !host.isEmpty, let user = url.user, url.path.count > 1 else {
            throw SharedTierError("'\(configuration.url)' is not a URL like postgres://user:password@host:5432/database")
        }
        var c = PostgresClient.Configuration(host: host, port: url.port ?? 5432, username: user, password: url.password,
                                             database: String(url.path.dropFirst()), tls: .disable)
        c.options.maximumConnections = configuration.maxConnections
        c.options.connectionIdleTimeout = .seconds(60)
        let client = PostgresClient(configuration: c)
        self.client = client
        runner = Task { await client.run() }
        do {
            try Self.blocking(.seconds(10)) { try await Self.createTable(client) }
        } catch {
            runner.cancel()
            throw SharedTierError("cannot prepare \(host)/\(url.path.dropFirst()): \(error)")
        }
    }

    deinit { runner.cancel() }

    static func createTable(_ client: PostgresClient) async throws {
        let statements: [PostgresQuery] = [
            """
            CREATE TABLE IF NOT EXISTS verbatim_entries (
                key bytea PRIMARY KEY, kind smallint NOT NULL, payload_bytes integer NOT NULL, entry bytea NOT NULL,
                created timestamptz NOT NULL DEFAULT now(), accessed timestamptz NOT NULL DEFAULT now())
            """,
            "CREATE INDEX IF NOT EXISTS verbatim_entries_accessed ON verbatim_entries (accessed)",
        ]
        for statement in statements {
            do {
                try await client.query(statement)
            } catch {
                // Two nodes creating the table at once: one loses the catalogue race; the table exists.
                try await client.query("SELECT 1 FROM verbatim_entries LIMIT 1")
            }
        }
    }

    public func fetch(_ keys: [Digest128]) throws -> [Digest128: [UInt8]] {
        let client = self.client
        let wanted = keys.map { ByteBuffer(bytes: $0.bytes) }
        return try Self.blocking(configuration.timeout) {
            var found: [Digest128: [UInt8]] = [:]
            let rows = try await client.query(
                "UPDATE verbatim_entries SET accessed = now() WHERE key = ANY(\(wanted)) RETURNING key, entry")
            for try await (key, entry) in rows.decode((ByteBuffer, ByteBuffer).self) {
                guard let digest = key.withUnsafeReadableBytes({ Digest128(bytes: $0) }) else { continue }
                found[digest] = Array(entry.readableBytesView)
            }
            return found
        }
    }

    public func store(_ entries: [SharedTierEntry]) throws {
        guard !entries.isEmpty else { return }
        let client = self.client, budget = configuration.byteBudget
        let keys = entries.map { ByteBuffer(bytes: $0.key.bytes) }
        let kinds = entries.map { Int16($0.kind.rawValue) }
        let sizes = entries.map { Int32(clamping: $0.payloadBytes) }
        let values = entries.map { ByteBuffer(bytes: $0.bytes) }
        // Writes get a longer limit than reads: they run on the write-behind thread, not in a request.
        try Self.blocking(configuration.timeout * 10) {
            try await client.query("""
                INSERT INTO verbatim_entries (key, kind, payload_bytes, entry)
                SELECT * FROM unnest(\(keys)::bytea[], \(kinds)::int2[], \(sizes)::int4[], \(values)::bytea[])
                ON CONFLICT (key) DO NOTHING
                """)
            try await Self.evict(client, budget: budget)
        }
    }

    /// Deletes the least recently accessed rows beyond the byte budget.
    static func evict(_ client: PostgresClient, budget: Int) async throws {
        let total = try await client.query("SELECT coalesce(sum(payload_bytes), 0)::int8 FROM verbatim_entries")
        var bytes = 0
        for try await (sum) in total.decode(Int64.self) { bytes = Int(sum) }
        guard bytes > budget else { return }
        let limit = Int64(budget)
        try await client.query("""
            DELETE FROM verbatim_entries WHERE key IN (
                SELECT key FROM (SELECT key, sum(payload_bytes) OVER (ORDER BY accessed DESC, key) AS kept FROM verbatim_entries) ranked
                WHERE kept > \(limit))
            """)
    }

    /// Table totals, for `cachectl stats` and metrics.
    public func tableStats() throws -> (entries: Int, payloadBytes: Int) {
        let client = self.client
        return try Self.blocking(configuration.timeout * 10) {
            let rows = try await client.query("SELECT count(*)::int8, coalesce(sum(payload_bytes), 0)::int8 FROM verbatim_entries")
            var result = (0, 0)
            for try await (n, b) in rows.decode((Int64, Int64).self) { result = (Int(n), Int(b)) }
            return result
        }
    }

    /// Runs async work from a plain thread (the engine's or the tier writer's), within a time limit.
    static func blocking<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> T) throws -> T {
        let result = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let task = Task {
            do { let value = try await operation(); result.withLock { $0 = .success(value) } } catch { result.withLock { $0 = .failure(error) } }
            done.signal()
        }
        let (seconds, attoseconds) = limit.components
        let deadline = DispatchTime.now() + .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
        if done.wait(timeout: deadline) == .timedOut {
            task.cancel()
            throw SharedTierError("no answer within \(limit)")
        }
        return try result.withLock { $0! }.get()
    }
}
