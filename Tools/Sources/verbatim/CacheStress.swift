import ArgumentParser
import Foundation
import VerbatimCache
import VerbatimModel

/// Writes numbered entries with known contents, printing "committed N" once entry N is durable.
/// Tests kill this process at random moments and check that the cache survives.
struct CacheStress: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cache-stress", shouldDisplay: false)

    @Option var cache: String
    @Option var start = 0
    @Option var count = 1_000_000

    static func entry(_ i: Int) -> (Digest128, EntryIdentity, [UInt8]) {
        let tokens = (0..<32).map { TokenID(i * 32 + $0) }
        let model = Digest128(high: 0x5EED, low: 0x5EED)
        let space = CacheKeySpace(model: model, profile: "stress", blockSize: 32)
        let key = space.kvKey(index: 0, parent: nil, tokens: tokens[...])
        let identity = space.kvIdentity(index: 0, parent: nil, tokens: tokens[...])
        var rng = SplitMix64(seed: UInt64(i))
        return (key, identity, (0..<(64 << 10)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
    }

    func run() throws {
        let store = try CacheStore(directory: cache)
        for i in start..<(start + count) {
            let (key, identity, payload) = Self.entry(i)
            payload.withUnsafeBytes { store.put(key, identity: identity, payload: $0) }
            if i % 4 == 3 {
                store.flush()
                FileHandle.standardOutput.write(Data("committed \(i)\n".utf8))   // unbuffered
            }
        }
    }
}
