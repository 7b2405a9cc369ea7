import Foundation
import LMDB
import VerbatimCore

/// What `CacheStore.salvage(directory:)` kept and lost.
public struct SalvageReport: Sendable, Equatable {
    /// Pages of the damaged file read.
    public var pagesScanned = 0
    /// KV blocks kept.
    public var kvBlocks = 0
    /// Completions kept.
    public var completions = 0
    /// Payload bytes of the entries kept.
    public var payloadBytes = 0
    /// Entries found whose header or payload checksum no longer holds: not kept.
    public var rejected = 0
    /// Entries the damaged file's counters recorded, when they could still be read.
    public var recorded: Int?

    /// Entries kept: KV blocks plus completions.
    public var salvaged: Int { kvBlocks + completions }
    /// Entries lost (recorded but not salvaged); nil when the counters were unreadable.
    public var lost: Int? { recorded.map { max(0, $0 - salvaged) } }
}

extension CacheStore {
    /// Rebuilds a damaged cache from every entry that still verifies. The file is read page by
    /// page, without LMDB's index (whose pages may be the damaged ones): each leaf node whose
    /// key is 16 bytes and whose value is an entry with a sound header and payload checksum is
    /// copied into a fresh environment, which then replaces the folder's `data.mdb`. The
    /// damaged file is kept beside it as `data.mdb.damaged`. Pages LMDB had freed may still
    /// hold older copies of entries: content addressing makes any that verify correct, and of
    /// two completions under one key the longer is kept, as the live cache does.
    ///
    /// Needs the folder to itself (no service or writer: `.inUse` otherwise) and free disk for
    /// the entries kept.
    @available(*, noasync)
    public static func salvage(directory: String) throws(CacheError) -> SalvageReport {
        let lock = try FolderLock(directory: directory, exclusive: true)
        defer { lock.release() }
        let dataPath = directory + "/data.mdb"
        let fm = FileManager.default
        guard fm.fileExists(atPath: dataPath) else { throw CacheError(.notAVerbatimCache, "\(directory) holds no cache (no data.mdb)") }
        let file: Data
        do { file = try Data(contentsOf: URL(fileURLWithPath: dataPath), options: .alwaysMapped) } catch {
            throw CacheError(.storage, "cannot read \(dataPath): \(error.localizedDescription)")
        }
        var report = SalvageReport()
        report.recorded = recordedEntries(directory, fileSize: file.count)
        let scratch = directory + "/salvage.tmp"
        try? fm.removeItem(atPath: scratch)
        var options = CacheOptions()
        options.byteBudget = .max          // keep everything found
        options.mapSize = max(options.mapSize, 2 * file.count)
        let store = try CacheStore(directory: scratch, options: options)
        file.withUnsafeBytes { bytes in
            let found = scanEntries(bytes, &report)
            for (key, range) in found {
                let stored = UnsafeRawBufferPointer(rebasing: bytes[range])
                guard let identity = EntryCodec.identity(stored) else { continue }
                store.putSalvaged(key, Array(stored), identity: identity)
                report.payloadBytes += EntryCodec.storedPayloadLength(stored)
                if identity.kind == .kvBlock { report.kvBlocks += 1 } else { report.completions += 1 }
            }
        }
        store.flush()
        let failure = store.writeFailure
        store.close()
        guard failure == nil else {
            try? fm.removeItem(atPath: scratch)
            throw CacheError(.storage, "writing the salvaged entries failed (\(failure ?? "")); \(directory) is unchanged")
        }
        // The old lock file goes first (as in compact), then the damaged file steps aside.
        unlink(directory + "/lock.mdb")
        unlink(directory + "/data.mdb.damaged")
        guard rename(dataPath, directory + "/data.mdb.damaged") == 0, rename(scratch + "/data.mdb", dataPath) == 0 else {
            throw CacheError(.storage, "cannot move the salvaged file into \(directory): \(String(cString: strerror(errno)))")
        }
        try? fm.removeItem(atPath: scratch)
        return report
    }

    /// Empties a cache folder (a damaged one too): a fresh, empty cache replaces `data.mdb`.
    /// Returns the size of the file removed. Needs the folder to itself.
    @available(*, noasync)
    public static func reset(directory: String) throws(CacheError) -> Int {
        let lock = try FolderLock(directory: directory, exclusive: true)
        defer { lock.release() }
        let dataPath = directory + "/data.mdb"
        guard FileManager.default.fileExists(atPath: dataPath) else { throw CacheError(.notAVerbatimCache, "\(directory) holds no cache (no data.mdb)") }
        let size = (try? FileManager.default.attributesOfItem(atPath: dataPath)[.size] as? Int) ?? 0
        // An empty cache is made beside it, then replaces the file (as compact does).
        let scratch = directory + "/reset.tmp"
        try? FileManager.default.removeItem(atPath: scratch)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        do { try CacheStore(directory: scratch).close() }
        unlink(directory + "/lock.mdb")
        guard rename(scratch + "/data.mdb", dataPath) == 0 else {
            let code = errno
            throw CacheError([EACCES, EPERM, EROFS].contains(code) ? .permissionDenied : .storage,
                             "cannot replace \(dataPath): \(String(cString: strerror(code)))")
        }
        return size
    }

    /// The entry counts the damaged file's counters hold, if LMDB can still read them.
    private static func recordedEntries(_ directory: String, fileSize: Int) -> Int? {
        var envOptions = LMDBEnvironment.Options()
        envOptions.mapSize = max(fileSize, 1 << 20)
        envOptions.maxDatabases = 8
        envOptions.readOnly = true
        guard let env = try? LMDBEnvironment(path: directory, options: envOptions),
              let counters = try? env.database("counters", create: false) else { return nil }
        return try? env.read { txn in
            var total = 0   // a counter never written is 0
            for name in ["entries.kv_blocks", "entries.completions"] {
                if let v = try txn.get(counters, Array(name.utf8)) { total += Int(UInt64(littleEndian: v.loadUnaligned(as: UInt64.self))) }
            }
            return total
        }
    }

    // LMDB's on-disk layout (64-bit builds): a page starts with pgno (u64), pad (u16),
    // flags (u16), lower (u16), upper (u16); a leaf page's node offsets (u16) follow. A node
    // is data size (u16 low, u16 high), flags (u16), key size (u16), the key, then the data,
    // or, with F_BIGDATA, the u64 number of the overflow page whose data follows its header.
    private static let pageHeader = 16, nodeHeader = 8
    private static let leafPage: UInt16 = 0x02, leaf2Page: UInt16 = 0x20, subPage: UInt16 = 0x40
    private static let bigData: UInt16 = 0x01, subData: UInt16 = 0x02, dupData: UInt16 = 0x04

    /// Every entry in the file that verifies, by key, as byte ranges of `bytes`.
    private static func scanEntries(_ bytes: UnsafeRawBufferPointer, _ report: inout SalvageReport) -> [Digest128: Range<Int>] {
        func u16(_ at: Int) -> Int { Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self))) }
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        // Page size from the first meta page (the free database's md_pad), else the usual 4096.
        var pageSize = 4096
        if bytes.count >= 64, bytes.loadUnaligned(fromByteOffset: 16, as: UInt32.self) == 0xBEEF_C0DE {
            let stored = Int(bytes.loadUnaligned(fromByteOffset: 40, as: UInt32.self))
            if stored >= 512 && stored <= 65536 && stored & (stored - 1) == 0 { pageSize = stored }
        }
        var found: [Digest128: Range<Int>] = [:]
        let pages = bytes.count / pageSize
        for page in 2..<max(2, pages) {   // pages 0 and 1 are the meta pages
            report.pagesScanned += 1
            let base = page * pageSize
            let flags = UInt16(u16(base + 10))
            guard flags & leafPage != 0, flags & (leaf2Page | subPage) == 0 else { continue }
            let lower = u16(base + 12), upper = u16(base + 14)
            guard lower >= pageHeader, lower <= upper, upper <= pageSize else { continue }
            for slot in 0..<((lower - pageHeader) / 2) {
                let node = base + u16(base + pageHeader + 2 * slot)
                guard node >= base + upper, node + nodeHeader <= base + pageSize else { continue }
                let size = u16(node) | u16(node + 2) << 16, nodeFlags = UInt16(u16(node + 4)), keySize = u16(node + 6)
                guard keySize == 16, nodeFlags & (subData | dupData) == 0, node + nodeHeader + keySize <= base + pageSize else { continue }
                let dataStart: Int
                if nodeFlags & bigData != 0 {
                    guard node + nodeHeader + keySize + 8 <= base + pageSize else { continue }
                    let overflow = u64(node + nodeHeader + keySize)
                    guard overflow > 1, overflow < UInt64(pages) else { continue }
                    dataStart = Int(overflow) * pageSize + pageHeader
                    guard dataStart + size <= bytes.count else { continue }
                } else {
                    dataStart = node + nodeHeader + keySize
                    guard dataStart + size <= base + pageSize else { continue }
                }
                let range = dataStart..<(dataStart + size)
                let stored = UnsafeRawBufferPointer(rebasing: bytes[range])
                guard stored.count >= 4, stored.loadUnaligned(as: UInt32.self) == EntryCodec.magic.littleEndian else { continue }
                guard EntryCodec.checksumHolds(stored), EntryCodec.identity(stored) != nil,
                      let key = Digest128(bytes: UnsafeRawBufferPointer(rebasing: bytes[(node + nodeHeader)..<(node + nodeHeader + 16)])) else {
                    report.rejected += 1
                    continue
                }
                if let other = found[key] {
                    // An older copy in a freed page: a completion keeps its longest version.
                    let old = UnsafeRawBufferPointer(rebasing: bytes[other])
                    if EntryCodec.kind(stored) == .completion, completionLength(stored) > completionLength(old) { found[key] = range }
                } else {
                    found[key] = range
                }
            }
        }
        return found
    }
}
