import VerbatimCore

/// Content addresses of cache entries: XXH3-128 over a canonical byte encoding, so another
/// language can compute the same keys. Integers are little-endian; a "string" is a u64 byte
/// count then UTF-8; "bytes" likewise; a token list is a u32 count then u32 ids.
///
/// - KV block 0: `H("verbatim-kv/1", model digest (16 bytes, printed order), profile string,
///   salt bytes, u32 block size, tokens[0..<B])`
/// - KV block i: `H("verbatim-kv/1", key of block i-1 (16 bytes), u32 block size, tokens[i*B..<(i+1)*B])`
/// - With an operator-declared shared prefix of S whole blocks (a public system prompt), blocks
///   0..<S are keyed as above with an empty salt, so every tenant finds them, and block S takes
///   the tenant's salt: `H("verbatim-kv-salted/1", key of block S-1, salt bytes, u32 block size, tokens)`.
///   Its own domain keeps it apart from the public chain's block S.
/// - Sibling group of a KV block (an index, not an entry key): `H("verbatim-kv-siblings/1",
///   model digest, profile string, salt digest (16 bytes), parent key (16 zero bytes for block 0),
///   u32 block size)`: every block stored after the same parent, under the same salt. A request
///   whose next block is not stored looks there for the block sharing the longest run of its
///   first tokens, and reuses those rows (see `CacheStore.readLongestSibling`).
/// - Completion: `H("verbatim-completion/1", model digest, profile string, salt bytes, prompt
///   tokens, the sampling parameters that change the output (the engine's sampling identity))`
///
/// The model digest, numerics profile and tenant salt sit in every root, so entries of another
/// model, another numerics contract or another tenant are never even looked at.
public enum ContentAddress {
    /// The key of KV block 0 from the model digest, profile, salt, block size (tokens) and the block's tokens.
    /// Most callers use `kvKey`, which also handles a shared prefix.
    public static func kvRoot(model: Digest128, profile: String, salt: [UInt8], blockSize: Int, tokens: ArraySlice<TokenID>) -> Digest128 {
        var h = ContentHasher()
        h.update("verbatim-kv/1")
        h.update(bytes: model.bytes)
        h.update(profile)
        h.update(bytes: salt)
        h.update(UInt32(blockSize))
        feed(&h, tokens)
        return h.finish()
    }

    /// The key of KV block i > 0 from its parent's key, the block size (tokens) and the block's tokens;
    /// the model, profile and salt reach it through the parent key (block S after a shared prefix uses `kvSalted`).
    public static func kvChild(parent: Digest128, blockSize: Int, tokens: ArraySlice<TokenID>) -> Digest128 {
        var h = ContentHasher()
        h.update("verbatim-kv/1")
        parent.bytes.withUnsafeBytes { h.update($0) }
        h.update(UInt32(blockSize))
        feed(&h, tokens)
        return h.finish()
    }

    /// Block `S` of a chain whose first `S` blocks are a shared (unsalted) prefix.
    public static func kvSalted(parent: Digest128, salt: [UInt8], blockSize: Int, tokens: ArraySlice<TokenID>) -> Digest128 {
        var h = ContentHasher()
        h.update("verbatim-kv-salted/1")
        parent.bytes.withUnsafeBytes { h.update($0) }
        h.update(bytes: salt)
        h.update(UInt32(blockSize))
        feed(&h, tokens)
        return h.finish()
    }

    /// The key of block `index` given its parent's key (nil for block 0). The first
    /// `sharedBlocks` blocks are public (no salt); see the type's documentation.
    public static func kvKey(index: Int, parent: Digest128?, model: Digest128, profile: String, salt: [UInt8],
                             sharedBlocks: Int = 0, blockSize: Int, tokens: ArraySlice<TokenID>) -> Digest128 {
        guard let parent else {
            return kvRoot(model: model, profile: profile, salt: sharedBlocks > 0 ? [] : salt, blockSize: blockSize, tokens: tokens)
        }
        if index == sharedBlocks && !salt.isEmpty { return kvSalted(parent: parent, salt: salt, blockSize: blockSize, tokens: tokens) }
        return kvChild(parent: parent, blockSize: blockSize, tokens: tokens)
    }

    /// The sibling group of a KV block entry: everything its key depends on except its own tokens.
    /// The salt digest (not the salt) is enough, and is what the entry stores, so the group of
    /// a stored entry can be computed from the entry alone (eviction does that).
    public static func kvSiblings(of identity: EntryIdentity, blockSize: Int) -> Digest128 {
        var h = ContentHasher()
        h.update("verbatim-kv-siblings/1")
        h.update(bytes: identity.model.bytes)
        h.update(identity.profile)
        identity.saltDigest.bytes.withUnsafeBytes { h.update($0) }
        (identity.parent ?? Digest128(high: 0, low: 0)).bytes.withUnsafeBytes { h.update($0) }
        h.update(UInt32(blockSize))
        return h.finish()
    }

    /// The salt an entry of block `index` is stored under: none inside the shared prefix.
    public static func blockSalt(index: Int, salt: [UInt8], sharedBlocks: Int) -> [UInt8] { index < sharedBlocks ? [] : salt }

    /// Keys of the first `count` full blocks of `tokens`.
    public static func kvChain(model: Digest128, profile: String, salt: [UInt8], sharedBlocks: Int = 0, blockSize: Int,
                               tokens: [TokenID], count: Int) -> [Digest128] {
        var keys: [Digest128] = []
        keys.reserveCapacity(count)
        for i in 0..<count {
            keys.append(kvKey(index: i, parent: keys.last, model: model, profile: profile, salt: salt, sharedBlocks: sharedBlocks,
                              blockSize: blockSize, tokens: tokens[(i * blockSize)..<((i + 1) * blockSize)]))
        }
        return keys
    }

    /// The key of a completion from the model digest, profile, tenant salt, the whole prompt and the
    /// sampling identity bytes.
    public static func completion(model: Digest128, profile: String, salt: [UInt8], prompt: [TokenID],
                                  sampling: [UInt8]) -> Digest128 {
        var h = ContentHasher()
        h.update("verbatim-completion/1")
        h.update(bytes: model.bytes)
        h.update(profile)
        h.update(bytes: salt)
        feed(&h, prompt[...])
        h.update(bytes: sampling)
        return h.finish()
    }

    /// The cache salt of a tenant id: a fixed domain, then the id, so that ids cannot collide
    /// with other uses. The server and `cachectl warm` both derive it here.
    public static func tenantSalt(_ tenant: String) -> [UInt8] { Array("verbatim-tenant/1:".utf8) + Array(tenant.utf8) }

    static func feed(_ h: inout ContentHasher, _ tokens: ArraySlice<TokenID>) {
        h.update(UInt32(tokens.count))
        for t in tokens { h.update(UInt32(bitPattern: t)) }
    }
}
