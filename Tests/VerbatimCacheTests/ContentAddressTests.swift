import Testing
@testable import VerbatimCache
import VerbatimCore

@Suite("Content addresses")
struct ContentAddressTests {
    @Test("content addresses: the chain depends on every earlier token, the salt and the model")
    func addresses() {
        let a: [TokenID] = Array(0..<64)
        var b = a; b[3] = 99
        let ka = ContentAddress.kvChain(model: model, profile: profile, salt: [], blockSize: 32, tokens: a, count: 2)
        let kb = ContentAddress.kvChain(model: model, profile: profile, salt: [], blockSize: 32, tokens: b, count: 2)
        #expect(ka[0] != kb[0] && ka[1] != kb[1])   // block 1's tokens are equal, its parent is not
        #expect(ka != ContentAddress.kvChain(model: model, profile: profile, salt: [7], blockSize: 32, tokens: a, count: 2))
        #expect(ka != ContentAddress.kvChain(model: Digest128(high: 9, low: 9), profile: profile, salt: [], blockSize: 32, tokens: a, count: 2))
        #expect(ka != ContentAddress.kvChain(model: model, profile: "verbatim-numerics/1 f32 kv=f16", salt: [], blockSize: 32, tokens: a, count: 2))
        #expect(ka == ContentAddress.kvChain(model: model, profile: profile, salt: [], blockSize: 32, tokens: a, count: 2))
        // Pinned: the canonical encoding must not drift (another implementation computes the same keys).
        #expect(ka[0].description == "607427223d4cefbfd847fc235d4bc325")
    }

    @Test("content addresses with a shared prefix: public blocks equal the unsalted chain; the salt enters at the next block")
    func sharedPrefixAddresses() {
        let tokens = (0..<160).map { TokenID($0 * 7 % 5000) }
        func chain(_ salt: [UInt8], shared: Int) -> [Digest128] {
            ContentAddress.kvChain(model: model, profile: profile, salt: salt, sharedBlocks: shared, blockSize: 32, tokens: tokens, count: 5)
        }
        let publicChain = chain([], shared: 0)
        let a = chain([1], shared: 2), b = chain([2], shared: 2)
        #expect(Array(a.prefix(2)) == Array(publicChain.prefix(2)) && Array(b.prefix(2)) == Array(publicChain.prefix(2)))
        #expect(a[2] != b[2] && a[2] != publicChain[2], "the salt enters at the first block after the shared part")
        #expect(Set(a[2...]).isDisjoint(with: Set(b[2...])) && Set(a[2...]).isDisjoint(with: Set(publicChain)))
        #expect(a[2...] != chain([1], shared: 0)[2...], "a declared prefix changes the tenant's keys")
        #expect(chain([1], shared: 0)[0] != publicChain[0])
        // Incremental keys (as the engine stores blocks) equal the chain.
        var incremental: [Digest128] = []
        for i in 0..<5 {
            incremental.append(ContentAddress.kvKey(index: i, parent: incremental.last, model: model, profile: profile, salt: [1], sharedBlocks: 2,
                                                    blockSize: 32, tokens: tokens[(i * 32)..<((i + 1) * 32)]))
        }
        #expect(incremental == a)
    }

    @Test("the key space builds the same addresses as ContentAddress, and identities that carry the right salt, parent and tokens")
    func keySpace() {
        let tokens = (0..<96).map { TokenID($0 * 11 % 4000) }
        let space = CacheKeySpace(model: model, profile: profile, blockSize: 32, salt: [4, 2], sharedBlocks: 1)
        let chain = space.kvChain(tokens, count: 3)
        #expect(chain == ContentAddress.kvChain(model: model, profile: profile, salt: [4, 2], sharedBlocks: 1, blockSize: 32, tokens: tokens, count: 3))
        for i in 0..<3 {
            let block = tokens[(i * 32)..<((i + 1) * 32)]
            #expect(space.kvKey(index: i, parent: i == 0 ? nil : chain[i - 1], tokens: block) == chain[i])
            let identity = space.kvIdentity(index: i, parent: i == 0 ? nil : chain[i - 1], tokens: block)
            #expect(identity.kind == .kvBlock && identity.tokens == Array(block) && identity.parent == (i == 0 ? nil : chain[i - 1]))
            // Inside the shared prefix the entry is public (no salt), after it the tenant's.
            #expect(identity.saltDigest == EntryIdentity.saltDigest(i < 1 ? [] : [4, 2]), "block \(i)")
        }
        let sampling: [UInt8] = [1, 2, 3]
        let (key, identity) = space.completion(prompt: tokens, sampling: sampling)
        #expect(key == ContentAddress.completion(model: model, profile: profile, salt: [4, 2], prompt: tokens, sampling: sampling))
        #expect(identity.kind == .completion && identity.tokens == tokens && identity.sampling == sampling && identity.parent == nil)
        #expect(identity.saltDigest == EntryIdentity.saltDigest([4, 2]))
        #expect(CacheKeySpace(model: model, profile: profile, blockSize: 32).completion(prompt: tokens, sampling: sampling).key != key,
                "another requester, another key")
    }
}
