import VerbatimCore

/// The cache's key space for one model under one numerics profile and one requester: the one
/// type that builds content addresses (`ContentAddress`) and the identities stored and verified
/// with them (`EntryIdentity`), so callers pass only what varies (tokens, parent, sampling) and
/// never assemble the fixed parts themselves.
public struct CacheKeySpace: Sendable {
    /// The model file's digest.
    public let model: Digest128
    /// The numerics profile the entries were computed under.
    public let profile: String
    /// Tokens per KV block.
    public let blockSize: Int
    /// The requester's salt (a tenant's, `ContentAddress.tenantSalt`); empty: the shared space.
    public let salt: [UInt8]
    /// Leading whole blocks of a declared public prefix, keyed without the salt.
    public let sharedBlocks: Int

    /// A key space; `sharedBlocks` whole leading blocks are public (no salt).
    public init(model: Digest128, profile: String, blockSize: Int, salt: [UInt8] = [], sharedBlocks: Int = 0) {
        self.model = model
        self.profile = profile
        self.blockSize = blockSize
        self.salt = salt
        self.sharedBlocks = sharedBlocks
    }

    /// Keys of the first `count` whole blocks of `tokens`.
    public func kvChain(_ tokens: [TokenID], count: Int) -> [Digest128] {
        ContentAddress.kvChain(model: model, profile: profile, salt: salt, sharedBlocks: sharedBlocks, blockSize: blockSize,
                               tokens: tokens, count: count)
    }

    /// The key of block `index` with `tokens` (a whole block) after `parent` (nil for block 0).
    public func kvKey(index: Int, parent: Digest128?, tokens: ArraySlice<TokenID>) -> Digest128 {
        ContentAddress.kvKey(index: index, parent: parent, model: model, profile: profile, salt: salt,
                             sharedBlocks: sharedBlocks, blockSize: blockSize, tokens: tokens)
    }

    /// The identity stored with block `index` after `parent`: its tokens (for a partial lookup,
    /// the first of them that are wanted).
    public func kvIdentity(index: Int, parent: Digest128?, tokens: ArraySlice<TokenID>) -> EntryIdentity {
        let salt = ContentAddress.blockSalt(index: index, salt: salt, sharedBlocks: sharedBlocks)
        return EntryIdentity(kind: .kvBlock, model: model, profile: profile, saltDigest: EntryIdentity.saltDigest(salt),
                             parent: index == 0 ? nil : parent, tokens: Array(tokens), sampling: [])
    }

    /// The key and identity of a completion of `prompt` under the canonical `sampling` bytes.
    public func completion(prompt: [TokenID], sampling: [UInt8]) -> (key: Digest128, identity: EntryIdentity) {
        let identity = EntryIdentity(kind: .completion, model: model, profile: profile, saltDigest: EntryIdentity.saltDigest(salt),
                                     parent: nil, tokens: prompt, sampling: sampling)
        return (ContentAddress.completion(model: model, profile: profile, salt: salt, prompt: prompt, sampling: sampling), identity)
    }
}
