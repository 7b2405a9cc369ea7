import Foundation
import LMDB
import Testing
@testable import VerbatimCache
import VerbatimCore

func temporaryFolder(_ name: String = #function) -> String {
    let path = NSTemporaryDirectory() + "verbatim-\(name.prefix(20).filter { $0.isLetter })-\(UInt32.random(in: 0...UInt32.max))"
    return path
}

let model = Digest128(high: 1, low: 2)
let profile = "verbatim-numerics/1 f32 kv=f32"   // any profile string: the pinned key below uses this one

func kvIdentity(_ tokens: [TokenID], parent: Digest128? = nil, salt: [UInt8] = []) -> EntryIdentity {
    EntryIdentity(kind: .kvBlock, model: model, profile: profile, saltDigest: EntryIdentity.saltDigest(salt), parent: parent,
                  tokens: tokens, sampling: [])
}

func payload(_ seed: Int, bytes: Int = 4096) -> [UInt8] {
    var rng = SplitMix64(seed: UInt64(seed))
    return (0..<bytes).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
}

func readBack(_ store: CacheStore, _ key: Digest128, _ identity: EntryIdentity) -> [UInt8]? {
    store.read(key, expecting: identity) { Array($0) }
}

@Suite("Cache store")
struct CacheStoreTests {
    @Test("a store released at once, before its writer thread has started, closes cleanly (200 times)")
    func releasedAtOnce() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for _ in 0..<200 { _ = try CacheStore(directory: dir) }
        let store = try CacheStore(directory: dir)
        #expect(try store.stats().kvBlocks == 0)
    }

    @Test("a store released after its writer started is closed: its folder lock is free again")
    func releasedLater() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for _ in 0..<5 {
            do {
                let store = try CacheStore(directory: dir)
                usleep(20_000)   // the writer thread is running
                _ = store
            }
            // compact needs the lock exclusively: it succeeds only if the store really closed.
            _ = try CacheStore.compact(directory: dir)
        }
    }

    @Test("read-only opens see committed entries, create nothing, and refuse a missing or foreign folder")
    func readOnly() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = CacheOptions()
        options.readOnly = true
        #expect(throws: CacheError.self) { try CacheStore(directory: dir, options: options) }
        #expect(!FileManager.default.fileExists(atPath: dir))
        let writer = try CacheStore(directory: dir)
        let tokens: [TokenID] = Array(0..<32)
        let key = ContentAddress.kvChain(model: model, profile: profile, salt: [], blockSize: 32, tokens: tokens, count: 1)[0]
        payload(7).withUnsafeBytes { writer.put(key, identity: kvIdentity(tokens), payload: $0) }
        writer.flush()
        let reader = try CacheStore(directory: dir, options: options)
        #expect(readBack(reader, key, kvIdentity(tokens)) == payload(7))
        #expect(try reader.entries().map(\.key) == [key])
        var missing = CacheOptions()
        missing.createIfMissing = false
        do {
            _ = try CacheStore(directory: dir + "-absent", options: missing)
            Issue.record("a missing folder opened")
        } catch {
            #expect(error.code == .notFound && error.message.contains("-absent"))
        }
    }

    @Test("entries round-trip and are verified: another identity under the same key is a miss")
    func roundTrip() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CacheStore(directory: dir)
        let tokens: [TokenID] = Array(0..<32)
        let key = ContentAddress.kvChain(model: model, profile: profile, salt: [], blockSize: 32, tokens: tokens, count: 1)[0]
        let data = payload(1)
        data.withUnsafeBytes { store.put(key, identity: kvIdentity(tokens), payload: $0) }
        store.flush()
        #expect(readBack(store, key, kvIdentity(tokens)) == data)
        // A lookup that expects other tokens, another salt or another parent does not get it.
        #expect(readBack(store, key, kvIdentity(Array(1..<33))) == nil)
        #expect(readBack(store, key, kvIdentity(tokens, salt: [1])) == nil)
        #expect(readBack(store, key, kvIdentity(tokens, parent: key)) == nil)
        let stats = try store.stats()
        #expect(stats.kvBlocks == 1 && stats.payloadBytes == data.count)
    }

    @Test("siblings: the stored block sharing the longest run of a block's first tokens is found and verified; salt, parent, address and eviction are respected; stale rows and unreadable headers are dropped")
    func longestSibling() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try CacheStore(directory: dir)
        let parent = ContentAddress.kvChain(model: model, profile: profile, salt: [], blockSize: 32, tokens: Array(0..<32), count: 1)[0]
        // Three children of `parent`: they share 5, 20 and 0 first tokens with the query below.
        let query: [TokenID] = Array(1000..<1025)                               // 25 tokens: a partial block
        let children: [[TokenID]] = [Array(query.prefix(5)) + Array(5000..<5027),
                                     Array(query.prefix(20)) + Array(6000..<6012),
                                     Array(7000..<7032)]
        var keys: [Digest128] = []
        for (i, tokens) in children.enumerated() {
            let key = ContentAddress.kvKey(index: 1, parent: parent, model: model, profile: profile, salt: [], blockSize: 32, tokens: tokens[...])
            keys.append(key)
            payload(10 + i).withUnsafeBytes { store.put(key, identity: kvIdentity(tokens, parent: parent), payload: $0) }
        }
        // The address a block after `parent` has for its tokens (the salt is in the root, so the
        // same formula holds under salt [7]).
        let address = { (tokens: [TokenID]) in
            ContentAddress.kvKey(index: 1, parent: parent, model: model, profile: profile, salt: [], blockSize: 32, tokens: tokens[...])
        }
        // A block with the same first 24 tokens under another salt: never a candidate.
        let salted = Array(query.prefix(24)) + Array(8000..<8008)
        payload(20).withUnsafeBytes { store.put(address(salted), identity: kvIdentity(salted, parent: parent, salt: [7]), payload: $0) }
        // A header that does not match its address (as a damaged one would): its 22-token run is ignored.
        let damaged = Array(query.prefix(22)) + Array(8100..<8110)
        payload(21).withUnsafeBytes { store.put(address(Array(8200..<8232)), identity: kvIdentity(damaged, parent: parent), payload: $0) }
        store.flush()
        var got: (bytes: [UInt8], run: Int)?
        let hit = store.readLongestSibling(kvIdentity(query, parent: parent), blockSize: 32, key: address) { got = (Array($0), $1) }
        #expect(hit?.key == keys[1] && hit?.tokens == 20 && got?.run == 20 && got?.bytes == payload(11))
        // Under the salt, the salted block is the one (24 tokens); under another parent, nothing.
        #expect(store.readLongestSibling(kvIdentity(query, parent: parent, salt: [7]), blockSize: 32, key: address) { _, _ in }?.tokens == 24)
        #expect(store.readLongestSibling(kvIdentity(query, parent: keys[0]), blockSize: 32, key: address) { _, _ in } == nil)
        // No shared first token: no hit.
        #expect(store.readLongestSibling(kvIdentity(Array(9000..<9010), parent: parent), blockSize: 32, key: address) { _, _ in } == nil)
        // A row whose entry is gone, and an entry whose header does not decode: both are passed
        // over, and the writer then drops them (the entry with its row).
        let group = ContentAddress.kvSiblings(of: kvIdentity(query, parent: parent), blockSize: 32)
        let stale = Digest128(high: 1, low: 2), garbled = Digest128(high: 3, low: 4)
        try store.env.write { txn in
            try txn.put(store.siblings!, group.bytes + stale.bytes, [])
            try txn.put(store.siblings!, group.bytes + garbled.bytes, [])
            try txn.put(store.entries, garbled.bytes, [UInt8](repeating: 0xab, count: 64))
        }
        #expect(store.readLongestSibling(kvIdentity(query, parent: parent), blockSize: 32, key: address) { _, _ in }?.key == keys[1])
        store.flush()
        let dropped = try store.env.read { txn in
            try txn.get(store.entries, garbled.bytes) == nil && txn.get(store.siblings!, group.bytes + stale.bytes) == nil
                && txn.get(store.siblings!, group.bytes + garbled.bytes) == nil
        }
        #expect(dropped, "the stale row, the garbled entry and its row are gone")
        // Eviction removes the index rows with the entries.
        func indexRows() throws -> Int {
            try store.env.read { txn in
                var n = 0
                try txn.forEach(store.siblings!) { _, _ in n += 1; return true }
                return n
            }
        }
        #expect(try indexRows() == 5)
        store.evictAll()
        #expect(try indexRows() == 0)
        #expect(store.readLongestSibling(kvIdentity(query, parent: parent), blockSize: 32, key: address) { _, _ in } == nil)
    }

    @Test("flipped bytes on disk are detected, treated as a miss, deleted and counted")
    func corruption() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tokens: [TokenID] = Array(100..<132)
        let key = ContentAddress.kvChain(model: model, profile: profile, salt: [], blockSize: 32, tokens: tokens, count: 1)[0]
        let data = payload(2, bytes: 20000)
        do {
            let store = try CacheStore(directory: dir)
            data.withUnsafeBytes { store.put(key, identity: kvIdentity(tokens), payload: $0) }
            store.close()
        }
        // Find the payload in the file and flip one byte of it.
        var file = try Data(contentsOf: URL(fileURLWithPath: dir + "/data.mdb"))
        let needle = Data(data[5000..<5064])
        let at = try #require(file.range(of: needle)).lowerBound
        file[at + 10] ^= 0xFF
        try file.write(to: URL(fileURLWithPath: dir + "/data.mdb"))
        let store = try CacheStore(directory: dir)
        #expect(readBack(store, key, kvIdentity(tokens)) == nil)
        store.flush()
        let stats = try store.stats()
        #expect(stats.counters["evictions.corruption"] == 1)
        #expect(stats.kvBlocks == 0 && stats.payloadBytes == 0)
    }

    @Test("churn: inserting 12x the byte budget keeps the payload under budget and the file bounded; survivors verify")
    func churn() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = CacheOptions()
        options.byteBudget = 4 << 20
        options.mapSize = 64 << 20
        let store = try CacheStore(directory: dir, options: options)
        var keys: [(Digest128, [TokenID], Int)] = []
        let blockBytes = 128 << 10
        for i in 0..<(12 * 32) {   // 384 blocks of 128 KiB = 48 MiB = 12x the budget
            let tokens = (0..<32).map { TokenID(i * 32 + $0) }
            let key = ContentAddress.kvChain(model: model, profile: profile, salt: [], blockSize: 32, tokens: tokens, count: 1)[0]
            payload(i, bytes: blockBytes).withUnsafeBytes { store.put(key, identity: kvIdentity(tokens), payload: $0) }
            keys.append((key, tokens, i))
            if i % 16 == 0 { store.flush() }
        }
        store.flush()
        let stats = try store.stats()
        #expect(stats.payloadBytes <= options.byteBudget, "\(stats.payloadBytes) bytes kept")
        #expect(stats.counters["evictions.budget", default: 0] > 300)
        // Bound: budget + one write batch of overshoot + LMDB's free pages; 3x the budget here.
        #expect(stats.fileBytes <= 3 * options.byteBudget, "file \(stats.fileBytes) bytes")
        var hits = 0
        for (key, tokens, i) in keys {
            if let data = readBack(store, key, kvIdentity(tokens)) { hits += 1; #expect(data == payload(i, bytes: blockBytes)) }
        }
        #expect(hits > 0 && hits == stats.kvBlocks)
        // The most recent entries survive (LRU).
        #expect(readBack(store, keys.last!.0, kvIdentity(keys.last!.1)) != nil)
        #expect(readBack(store, keys.first!.0, kvIdentity(keys.first!.1)) == nil)
    }

    @Test("a full map: writes fail, reads keep working, and the failure is reported")
    func fullMap() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var options = CacheOptions()
        options.mapSize = 1 << 20          // 1 MiB map
        options.byteBudget = 1 << 30       // the budget never triggers: the map fills first
        let store = try CacheStore(directory: dir, options: options)
        let small: [TokenID] = Array(0..<32)
        let smallKey = ContentAddress.kvChain(model: model, profile: profile, salt: [], blockSize: 32, tokens: small, count: 1)[0]
        payload(0, bytes: 1000).withUnsafeBytes { store.put(smallKey, identity: kvIdentity(small), payload: $0) }
        store.flush()
        for i in 1..<20 {
            let tokens = (0..<32).map { TokenID(i * 32 + $0) }
            let key = ContentAddress.kvChain(model: model, profile: profile, salt: [], blockSize: 32, tokens: tokens, count: 1)[0]
            payload(i, bytes: 200_000).withUnsafeBytes { store.put(key, identity: kvIdentity(tokens), payload: $0) }
        }
        store.flush()
        #expect(readBack(store, smallKey, kvIdentity(small)) == payload(0, bytes: 1000) || store.writeFailure != nil)
        let evicted = try store.stats().counters["evictions.budget", default: 0]
        #expect(store.writeFailure != nil || evicted > 0)
    }

    /// Entry `i` of a test cache: block `i` of its own chain, payloads of two sizes (inline in
    /// a leaf page, and in overflow pages).
    static func entry(_ i: Int) -> (key: Digest128, identity: EntryIdentity, payload: [UInt8]) {
        let tokens = (0..<32).map { TokenID(i * 32 + $0) }
        let key = ContentAddress.kvChain(model: model, profile: profile, salt: [], blockSize: 32, tokens: tokens, count: 1)[0]
        return (key, kvIdentity(tokens), payload(i, bytes: i % 2 == 0 ? 64 : 6000))
    }

    static func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let end = Date(timeIntervalSinceNow: seconds)
        while !condition() && Date() < end { usleep(20_000) }
        return condition()
    }

    @Test("writes that fail on a full disk back off and resume once space returns; failed and dropped writes are counted")
    func fullDiskRecovers() throws {
        let dir = temporaryFolder()
        // A real full disk where the test may mount a small tmpfs (root in a container); an
        // injected ENOSPC at the same place in the writer otherwise.
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=4m", "tmpfs", dir]
        mount.standardError = FileHandle.nullDevice
        let mounted = (try? mount.run()).map { mount.waitUntilExit(); return mount.terminationStatus == 0 } ?? false
        defer {
            if mounted {
                let umount = Process()
                umount.executableURL = URL(fileURLWithPath: "/bin/umount")
                umount.arguments = [dir]
                try? umount.run()
                umount.waitUntilExit()
            }
            try? FileManager.default.removeItem(atPath: dir)
        }
        let folder = dir + "/cache", filler = dir + "/filler"
        var store: CacheStore? = try CacheStore(directory: folder)
        let first = Self.entry(1)
        first.payload.withUnsafeBytes { store!.put(first.key, identity: first.identity, payload: $0) }
        store!.flush()
        #expect(readBack(store!, first.key, first.identity) == first.payload)
        if mounted {
            // Fill the disk to the last byte.
            FileManager.default.createFile(atPath: filler, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: filler))
            let chunk = Data(repeating: 7, count: 4096)
            while (try? handle.write(contentsOf: chunk)) != nil {}
            try? handle.close()
        } else {
            store!.injectWriteFailures(1_000_000)
        }
        for i in 2..<12 { let e = Self.entry(i); e.payload.withUnsafeBytes { store!.put(e.key, identity: e.identity, payload: $0) } }
        #expect(Self.waitUntil(10) { store!.writeFailure != nil }, "the full disk was never noticed (mounted: \(mounted))")
        #expect(store!.health.failedWrites > 0)
        // While writes fail, new entries are dropped and counted; reads go on.
        let late = Self.entry(12)
        late.payload.withUnsafeBytes { store!.put(late.key, identity: late.identity, payload: $0) }
        #expect(store!.health.droppedWrites > 0)
        #expect(readBack(store!, first.key, first.identity) == first.payload)
        // Space comes back: within the back-off, writes work again without a restart.
        if mounted { try FileManager.default.removeItem(atPath: filler) } else { store!.injectWriteFailures(0) }
        #expect(Self.waitUntil(20) { store!.writeFailure == nil }, "writes did not resume: \(store!.writeFailure ?? "")")
        let after = Self.entry(13)
        after.payload.withUnsafeBytes { store!.put(after.key, identity: after.identity, payload: $0) }
        store!.flush()
        #expect(readBack(store!, after.key, after.identity) == after.payload)
        let counters = try store!.stats().counters
        #expect(counters["writes.failed", default: 0] > 0 && counters["writes.dropped", default: 0] > 0, "\(counters)")
        store = nil
    }

    @Test("a damaged index page: reads are misses and the damage is reported; salvage keeps every entry that verifies and says what was lost; reset empties")
    func damagedIndexSalvage() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let count = 400
        do {
            let store = try CacheStore(directory: dir)
            for i in 0..<count {
                let e = Self.entry(i)
                e.payload.withUnsafeBytes { store.put(e.key, identity: e.identity, payload: $0) }
                if i % 50 == 49 { store.flush() }
            }
            store.flush()
        }
        // Damage: every branch page's child pointers point past the file (what a flipped index
        // page gives LMDB: MDB_PAGE_NOTFOUND), and one payload in an overflow page is flipped.
        var file = try Data(contentsOf: URL(fileURLWithPath: dir + "/data.mdb"))
        let pageSize = 4096
        var branches = 0
        file.withUnsafeMutableBytes { bytes in
            for page in 2..<(bytes.count / pageSize) {
                let base = page * pageSize
                let flags = bytes.loadUnaligned(fromByteOffset: base + 10, as: UInt16.self)
                guard flags == 0x01 else { continue }   // P_BRANCH alone
                let lower = Int(bytes.loadUnaligned(fromByteOffset: base + 12, as: UInt16.self))
                for slot in 0..<((lower - 16) / 2) {
                    let node = base + Int(bytes.loadUnaligned(fromByteOffset: base + 16 + 2 * slot, as: UInt16.self))
                    for k in 0..<6 { bytes[node + k] = 0xFF }
                }
                branches += 1
            }
        }
        #expect(branches > 0, "the test cache has branch pages")
        let victim = Self.entry(1)
        let at = try #require(file.range(of: Data(victim.payload[100..<164])))
        file[at.lowerBound] ^= 0x55
        try file.write(to: URL(fileURLWithPath: dir + "/data.mdb"))

        do {
            let store = try CacheStore(directory: dir)
            let e = Self.entry(2)
            #expect(readBack(store, e.key, e.identity) == nil, "a damaged index is a miss")
            #expect(store.health.damage?.contains("MDB_PAGE_NOTFOUND") == true, "\(store.health)")
        }
        let report = try CacheStore.salvage(directory: dir)
        #expect(report.salvaged == count - 1 && report.rejected >= 1, "\(report)")
        #expect(report.recorded == count && report.lost == 1, "\(report)")
        #expect(FileManager.default.fileExists(atPath: dir + "/data.mdb.damaged"))
        do {
            let store = try CacheStore(directory: dir)
            var differing = 0
            for i in 0..<count where i != 1 {
                let e = Self.entry(i)
                if readBack(store, e.key, e.identity) != e.payload { differing += 1 }
            }
            #expect(differing == 0, "\(differing) salvaged entries differ")
            #expect(readBack(store, victim.key, victim.identity) == nil)
            #expect(try store.verifyAll().corrupt.isEmpty)
            #expect(try store.stats().kvBlocks == count - 1)
            #expect(throws: CacheError.self) { try CacheStore.reset(directory: dir) }   // in use by `store`
        }
        #expect(try CacheStore.reset(directory: dir) > 0)
        #expect(try CacheStore(directory: dir).stats().kvBlocks == 0)
    }

    @Test("bad folders get typed errors: a file, another program's folder, a newer format, an impossible path")
    func badFolders() throws {
        let file = temporaryFolder() + ".txt"
        #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(throws: CacheError.self) { try CacheStore(directory: file) }
        do { _ = try CacheStore(directory: file) } catch { #expect(error.code == .notAVerbatimCache) }

        let other = temporaryFolder()
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: other + "/notes.txt", contents: Data("mine".utf8)))
        defer { try? FileManager.default.removeItem(atPath: other) }
        do { _ = try CacheStore(directory: other); Issue.record("expected an error") } catch { #expect(error.code == .notAVerbatimCache) }

        let newer = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: newer) }
        do {
            let store = try CacheStore(directory: newer)
            try store.env.write { txn in try txn.put(store.meta, Array("format".utf8), withUnsafeBytes(of: UInt32(99).littleEndian) { Array($0) }) }
            store.close()
        }
        do { _ = try CacheStore(directory: newer); Issue.record("expected an error") } catch {
            #expect(error.code == .newerFormat && error.message.contains("99"))
        }
        do { _ = try CacheStore(directory: file + "/sub"); Issue.record("expected an error") } catch {
            #expect(error.code == .cannotCreate)
        }
    }
}
