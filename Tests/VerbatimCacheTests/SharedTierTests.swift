import Foundation
import Testing
@testable import VerbatimCache
import VerbatimCore

/// A chain of `count` blocks of 32 tokens with their identities and payloads.
func chain(_ count: Int, salt: [UInt8] = [], seed: Int = 0) -> (keys: [Digest128], identities: [EntryIdentity], payloads: [[UInt8]]) {
    let tokens = (0..<(count * 32)).map { TokenID(($0 * 13 + seed * 101) % 5000) }
    let keys = ContentAddress.kvChain(model: model, profile: profile, salt: salt, blockSize: 32, tokens: tokens, count: count)
    let identities = (0..<count).map { i in
        kvIdentity(Array(tokens[(i * 32)..<((i + 1) * 32)]), parent: i == 0 ? nil : keys[i - 1], salt: salt)
    }
    return (keys, identities, (0..<count).map { payload(seed * 1000 + $0) })
}

func chainPayloads(_ store: CacheStore, _ keys: [Digest128], _ identities: [EntryIdentity]) -> [[UInt8]] {
    var out: [[UInt8]] = []
    store.readChain(keys, identities: identities) { payloads in out = payloads.map { Array($0) } }
    return out
}

func storeWith(_ tier: MemoryTier?, _ folder: String, retry: Duration = .seconds(5)) throws -> CacheStore {
    var options = CacheOptions()
    options.sharedTier = tier
    options.sharedTierRetry = retry
    return try CacheStore(directory: folder, options: options)
}

@Suite("Shared tier behind the local store (in-memory tier)", .serialized)
struct SharedTierTests {
    @Test("node B reads what node A wrote, byte for byte, through the tier; then holds it locally (promoted)")
    func readThroughAndPromotion() throws {
        let tier = MemoryTier()
        let a = try storeWith(tier, temporaryFolder()), bFolder = temporaryFolder()
        let b = try storeWith(tier, bFolder)
        defer { try? FileManager.default.removeItem(atPath: a.directory); try? FileManager.default.removeItem(atPath: bFolder) }
        let c = chain(4)
        for i in 0..<4 { c.payloads[i].withUnsafeBytes { a.put(c.keys[i], identity: c.identities[i], payload: $0) } }
        a.flush()
        #expect(tier.count == 4, "write-behind sent every entry")
        #expect(chainPayloads(b, c.keys, c.identities) == c.payloads)
        #expect(readBack(b, c.keys[2], c.identities[2]) == c.payloads[2])
        b.flush()
        tier.setDown(true)
        #expect(chainPayloads(b, c.keys, c.identities) == c.payloads, "promoted into B's LMDB: served with the tier down")
        b.flush()
        let counters = try b.stats().counters
        #expect(counters["tier.memory.entries_hit"] == 5 && (counters["tier.local.entries_hit"] ?? 0) >= 4)
        #expect(try b.stats().kvBlocks == 4)
    }

    @Test("a chain half local, half remote is served whole; a corrupted remote entry ends it and is never stored")
    func mixedChainAndCorruption() throws {
        let tier = MemoryTier()
        let a = try storeWith(tier, temporaryFolder()), b = try storeWith(tier, temporaryFolder())
        defer { try? FileManager.default.removeItem(atPath: a.directory); try? FileManager.default.removeItem(atPath: b.directory) }
        let c = chain(6, seed: 1)
        for i in 0..<6 { c.payloads[i].withUnsafeBytes { a.put(c.keys[i], identity: c.identities[i], payload: $0) } }
        a.flush()
        // B computed the first two blocks itself.
        for i in 0..<2 { c.payloads[i].withUnsafeBytes { b.put(c.keys[i], identity: c.identities[i], payload: $0) } }
        tier.corrupt(c.keys[4])
        b.flush()
        let got = chainPayloads(b, c.keys, c.identities)
        #expect(got == Array(c.payloads.prefix(4)), "local 0–1, remote 2–3, then the corrupt block 4 stops the chain")
        b.flush()
        let counters = try b.stats().counters
        #expect(counters["tier.memory.entries_corrupt"] == 1)
        #expect(try b.stats().kvBlocks == 4, "the corrupt entry was not promoted")
    }

    @Test("tenant salts hold across tiers: another tenant's entry under a forged key is a mismatch, never served")
    func saltsAcrossTiers() throws {
        let tier = MemoryTier()
        let a = try storeWith(tier, temporaryFolder()), b = try storeWith(tier, temporaryFolder())
        defer { try? FileManager.default.removeItem(atPath: a.directory); try? FileManager.default.removeItem(atPath: b.directory) }
        let secret = chain(2, salt: Array("tenant-a".utf8), seed: 2)
        for i in 0..<2 { secret.payloads[i].withUnsafeBytes { a.put(secret.keys[i], identity: secret.identities[i], payload: $0) } }
        a.flush()
        // Tenant B's request for the same tokens has other keys: nothing found.
        let other = chain(2, salt: Array("tenant-b".utf8), seed: 2)
        #expect(chainPayloads(b, other.keys, other.identities).isEmpty)
        // Even asked under A's key, B's identity (its salt digest) does not match: a miss.
        #expect(chainPayloads(b, secret.keys, other.identities).isEmpty)
        #expect(readBack(b, secret.keys[0], other.identities[0]) == nil)
        b.flush()
        #expect((try b.stats().counters["tier.memory.entries_mismatched"] ?? 0) >= 2)
        #expect(try b.stats().kvBlocks == 0)
    }

    @Test("a tier that fails degrades to local only: reads miss, writes are dropped and counted, the tier is left alone for a while")
    func outage() throws {
        let tier = MemoryTier()
        let store = try storeWith(tier, temporaryFolder(), retry: .milliseconds(300))
        defer { try? FileManager.default.removeItem(atPath: store.directory) }
        let c = chain(3, seed: 3)
        tier.setDown(true)
        #expect(chainPayloads(store, c.keys, c.identities).isEmpty)
        let fetchesAfterFailure = tier.fetchCount
        for _ in 0..<5 { #expect(chainPayloads(store, c.keys, c.identities).isEmpty) }
        #expect(tier.fetchCount == fetchesAfterFailure, "paused: the failing tier is not asked again at once")
        for i in 0..<3 { c.payloads[i].withUnsafeBytes { store.put(c.keys[i], identity: c.identities[i], payload: $0) } }
        store.flush()
        #expect(chainPayloads(store, c.keys, c.identities) == c.payloads, "the local cache keeps serving")
        let counters = try store.stats().counters
        #expect(counters["tier.memory.read_errors"] == 1 && (counters["tier.memory.writes_dropped"] ?? 0) == 3)
        // Back up after the pause: new entries reach the tier again.
        tier.setDown(false)
        Thread.sleep(forTimeInterval: 0.35)
        let d = chain(1, seed: 4)
        d.payloads[0].withUnsafeBytes { store.put(d.keys[0], identity: d.identities[0], payload: $0) }
        store.flush()
        #expect(tier.keys.contains(d.keys[0]))
    }
}
