import VerbatimCore

/// What an entry was computed from. A lookup returns an entry only if all of it matches the
/// request, so a hash collision (accidental or forged) can only be a miss.
public struct EntryIdentity: Equatable, Sendable {
    /// What an entry holds; the raw value is the kind byte of the stored form.
    public enum Kind: UInt8, Sendable {
        /// The K and V rows of one full block of positions, every layer, keyed by its prefix chain.
        case kvBlock = 1
        /// A finished generation for a prompt and sampling identity; the payload is a `CompletionRecord`.
        case completion = 2
    }
    /// Whether the entry is a KV block or a completion.
    public var kind: Kind
    /// Digest of the model the entry was computed with (its tensor data and the metadata that changes outputs).
    public var model: Digest128
    /// The numerics profile the entry was computed under, e.g. `verbatim-numerics/4 f32 kv=f16`.
    public var profile: String
    /// XXH3-128 of the tenant salt (the salt itself is not stored).
    public var saltDigest: Digest128
    /// KV block: the parent block's key (zero for block 0) and this block's tokens.
    /// Completion: nil parent, the whole prompt, and the sampling identity.
    public var parent: Digest128?
    /// KV block: the block's tokens. Completion: the whole prompt.
    public var tokens: [TokenID]
    /// Completion: the canonical bytes of the sampling parameters that change the output. KV block: empty.
    public var sampling: [UInt8]

    /// Creates an identity from its parts; see the properties for what each kind puts in them.
    public init(kind: Kind, model: Digest128, profile: String, saltDigest: Digest128, parent: Digest128?,
                tokens: [TokenID], sampling: [UInt8]) {
        self.kind = kind
        self.model = model
        self.profile = profile
        self.saltDigest = saltDigest
        self.parent = parent
        self.tokens = tokens
        self.sampling = sampling
    }

    /// The XXH3-128 digest of a tenant salt, as `saltDigest` records it; shared-prefix blocks record an empty salt's.
    public static func saltDigest(_ salt: [UInt8]) -> Digest128 {
        salt.withUnsafeBytes { ContentHasher.digest($0) }
    }
}

/// The stored form of an entry:
/// `"VBC1"`, u8 kind, 3 zero bytes, u64 creation time (Unix seconds), u64 payload length,
/// 16-byte payload checksum (XXH3-128), 16-byte model digest, 16-byte salt digest,
/// profile (u32 length + UTF-8), 16-byte parent key (zero if none), tokens (u32 count + u32 ids),
/// sampling identity (u32 length + bytes), then the payload.
enum EntryCodec {
    static let magic: UInt32 = 0x3143_4256  // "VBC1"

    static func encode(_ identity: EntryIdentity, payload: UnsafeRawBufferPointer, created: UInt64) -> [UInt8] {
        var w = ByteWriter()
        w.bytes.reserveCapacity(payload.count + 128 + identity.tokens.count * 4)
        w.put(magic); w.put(identity.kind.rawValue); w.put([0, 0, 0])
        w.put(created); w.put(UInt64(payload.count))
        w.put(ContentHasher.digest(payload).bytes)
        w.put(identity.model.bytes); w.put(identity.saltDigest.bytes)
        w.putBytes(Array(identity.profile.utf8))
        w.put((identity.parent ?? Digest128(high: 0, low: 0)).bytes)
        w.put(UInt32(identity.tokens.count))
        for t in identity.tokens { w.put(UInt32(bitPattern: t)) }
        w.putBytes(identity.sampling)
        w.bytes.append(contentsOf: payload)
        return w.bytes
    }

    enum Check { case match(payload: UnsafeRawBufferPointer, created: UInt64), mismatch, corrupt(String) }

    /// Decodes and verifies a stored entry against the identity a request expects.
    static func verify(_ stored: UnsafeRawBufferPointer, expected: EntryIdentity) -> Check {
        var r = ByteReader(stored)
        guard r.get(UInt32.self) == magic, let kind = r.get(UInt8.self), r.raw(3) != nil,
              let created = r.get(UInt64.self), let length = r.get(UInt64.self),
              let checksum = r.raw(16), let model = r.raw(16), let salt = r.raw(16),
              let profile = r.getBytes(), let parent = r.raw(16), let count = r.get(UInt32.self) else {
            return .corrupt("truncated header")
        }
        guard kind == expected.kind.rawValue, Digest128(bytes: model) == expected.model,
              Digest128(bytes: salt) == expected.saltDigest,
              String(decoding: profile, as: UTF8.self) == expected.profile,
              Digest128(bytes: parent) == (expected.parent ?? Digest128(high: 0, low: 0)),
              Int(count) == expected.tokens.count else { return .mismatch }
        for t in expected.tokens {
            guard let v = r.get(UInt32.self) else { return .corrupt("truncated tokens") }
            if v != UInt32(bitPattern: t) { return .mismatch }
        }
        guard let sampling = r.getBytes() else { return .corrupt("truncated sampling identity") }
        guard sampling.elementsEqual(expected.sampling) else { return .mismatch }
        guard length <= UInt64(r.bytes.count - r.offset), let payload = r.raw(Int(length)), r.offset == r.bytes.count else {
            return .corrupt("payload length \(length) does not match the stored size")
        }
        guard ContentHasher.digest(payload) == Digest128(bytes: checksum) else { return .corrupt("payload checksum mismatch") }
        return .match(payload: payload, created: created)
    }

    /// The identity a stored entry records (its payload unchecked); nil if the header is malformed.
    static func identity(_ stored: UnsafeRawBufferPointer) -> EntryIdentity? {
        var r = ByteReader(stored)
        guard r.get(UInt32.self) == magic, let k = r.get(UInt8.self), let kind = EntryIdentity.Kind(rawValue: k), r.raw(3) != nil,
              r.get(UInt64.self) != nil, r.get(UInt64.self) != nil, r.raw(16) != nil,
              let model = r.raw(16).flatMap(Digest128.init(bytes:)), let salt = r.raw(16).flatMap(Digest128.init(bytes:)),
              let profile = r.getBytes(), let parent = r.raw(16).flatMap(Digest128.init(bytes:)),
              let count = r.get(UInt32.self), Int(count) <= (stored.count - r.offset) / 4 else { return nil }
        var tokens: [TokenID] = []
        tokens.reserveCapacity(Int(count))
        for _ in 0..<count {
            guard let v = r.get(UInt32.self) else { return nil }
            tokens.append(TokenID(bitPattern: v))
        }
        guard let sampling = r.getBytes() else { return nil }
        let zero = Digest128(high: 0, low: 0)
        return EntryIdentity(kind: kind, model: model, profile: String(decoding: profile, as: UTF8.self), saltDigest: salt,
                             parent: parent == zero ? nil : parent, tokens: tokens, sampling: Array(sampling))
    }

    /// Payload size of a stored entry, for byte accounting (0 if unreadable).
    static func storedPayloadLength(_ stored: UnsafeRawBufferPointer) -> Int {
        var r = ByteReader(stored)
        guard r.get(UInt32.self) == magic, r.raw(12) != nil, let length = r.get(UInt64.self) else { return 0 }
        return Int(length)
    }

    static func kind(_ stored: UnsafeRawBufferPointer) -> EntryIdentity.Kind? {
        var r = ByteReader(stored)
        guard r.get(UInt32.self) == magic, let k = r.get(UInt8.self) else { return nil }
        return EntryIdentity.Kind(rawValue: k)
    }
}
