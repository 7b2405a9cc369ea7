import Foundation
import Testing
@testable import Verbatim
import VerbatimCache

@Suite("Engine cache keys")
struct EngineCacheTests {
    @Test("a sampling identity keeps its byte layout (completion keys depend on it) and reads back as the parameters it was made from")
    func samplingIdentity() throws {
        let folder = cacheFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let store = try CacheStore(directory: folder)
        defer { store.close() }
        let cache = EngineCache(store: store, prefixes: true, completions: true, model: Digest128(high: 1, low: 2),
                                profile: "p", blockSize: 32, eos: 2)
        var p = GenerateParameters(maxTokens: 9, temperature: 0.7, topK: 40, topP: 0.9, minP: 0.05, seed: 42,
                                   stopTokens: [7, 3, 7], stopStrings: ["b", "é"])
        let bytes = cache.samplingIdentity(p)
        // The layout, written out: little-endian integers, stop tokens and strings sorted and
        // unique, strings as a u32 length and their UTF-8.
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        let expected = le(Float(0.7).bitPattern) + le(UInt32(40)) + le(Float(0.9).bitPattern) + le(Float(0.05).bitPattern) + le(UInt64(42))
            + [1] + le(UInt32(2)) + le(UInt32(2)) + le(UInt32(3)) + le(UInt32(7))
            + le(UInt32(2)) + le(UInt32(1)) + Array("b".utf8) + le(UInt32(2)) + Array("é".utf8)
        #expect(bytes == expected)

        let back = try #require(GenerateParameters(samplingIdentity: bytes))
        #expect(back.temperature.bitPattern == p.temperature.bitPattern && back.topK == 40 && back.topP.bitPattern == p.topP.bitPattern
                && back.minP.bitPattern == p.minP.bitPattern && back.seed == 42 && back.stopAtEOS)
        #expect(back.stopTokens == [3, 7] && back.stopStrings == ["b", "é"])
        #expect(cache.samplingIdentity(back) == bytes, "what reads back writes the same bytes")
        // Short or padded bytes are not an identity.
        #expect(GenerateParameters(samplingIdentity: Array(bytes.dropLast())) == nil)
        #expect(GenerateParameters(samplingIdentity: bytes + [0]) == nil)
        #expect(GenerateParameters(samplingIdentity: []) == nil)

        // Greedy: no sampling fields, no EOS id when EOS does not stop.
        p = GenerateParameters(maxTokens: 9, temperature: 0, stopAtEOS: false)
        let greedy = cache.samplingIdentity(p)
        #expect(greedy == le(UInt32(0)) + [0] + le(UInt32(bitPattern: -1)) + le(UInt32(0)) + le(UInt32(0)))
        let g = try #require(GenerateParameters(samplingIdentity: greedy))
        #expect(g.temperature == 0 && !g.stopAtEOS && g.stopTokens.isEmpty && g.stopStrings.isEmpty)
    }
}
