import Testing
@testable import VerbatimModel

@Suite("KV pool")
struct KVPoolTests {
    @Test("forget lowers a sequence's length and keeps its blocks; it never raises it; the next write starts where it says")
    func forget() throws {
        let config = try LlamaConfig(file: tinyModelFile())
        let pool = KVPool(config: config, blockSize: 16, blockCount: 8)
        try pool.reserve(0, tokens: 40)
        try pool.didWrite(0, start: 0, end: 37)
        let (table, free) = (pool.blockTable(of: 0), pool.freeBlockCount)
        pool.forget(0, from: 21)
        #expect(pool.length(of: 0) == 21)
        #expect(pool.blockTable(of: 0) == table && pool.freeBlockCount == free, "forget gave blocks back")
        pool.forget(0, from: 30)
        #expect(pool.length(of: 0) == 21, "forget raised the length")
        // The next write must start at or before the length: 21 is accepted, 22 would leave a gap.
        #expect(throws: KVPoolError.self) { try pool.didWrite(0, start: 22, end: 23) }
        try pool.didWrite(0, start: 21, end: 22)
        #expect(pool.length(of: 0) == 22)
        pool.forget(7, from: 3)   // no such sequence: nothing happens
        #expect(pool.length(of: 7) == 0 && pool.blockTable(of: 7).isEmpty)
    }
}
