import Foundation
import LMDB
import Testing

@Suite("LMDB wrapper")
struct LMDBTests {
    func temporaryFolder(_ name: String = #function) -> String {
        NSTemporaryDirectory() + "verbatim-lmdb-\(name.prefix(20).filter { $0.isLetter })-\(UInt32.random(in: 0...UInt32.max))"
    }

    @Test("the LMDB wrapper: absent keys are nil, ordered iteration, abort on throw, typed errors")
    func lmdbWrapper() throws {
        let dir = temporaryFolder()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let env = try LMDBEnvironment(path: dir)
        let db = try env.database("t")
        try env.write { txn in
            for i: UInt8 in [3, 1, 2] { try txn.put(db, [i], [i, i]) }
        }
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try env.write { txn in try txn.put(db, [9], [9]); throw Stop() }
        }
        var seen: [UInt8] = []
        try env.read { txn in
            #expect(try txn.get(db, [9]) == nil)           // the aborted write left nothing
            #expect(try txn.get(db, [2]).map(Array.init) == [2, 2])
            try txn.forEach(db) { k, _ in seen.append(k[0]); return true }
        }
        #expect(seen == [1, 2, 3])
        #expect(try env.count(db) == 3)
        #expect(throws: LMDBError.self) { try LMDBEnvironment(path: dir + "/missing/deeper") }
        do { _ = try LMDBEnvironment(path: dir + "/missing/deeper") } catch { #expect(error.name == "ENOENT") }
    }
}
