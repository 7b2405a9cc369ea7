import Foundation
import LMDB
import VerbatimCore

extension CacheStore {
    /// Verifies the chain of entries `keys` (with their expected identities), stopping at the
    /// first miss, and hands the verified payloads to `body` (zero-copy for local entries,
    /// valid only during the call). Returns how many were found. With a shared tier, the part
    /// missing locally is asked for between two read transactions, never inside one: a network
    /// call must not pin an LMDB snapshot (and its pages) for its duration.
    @available(*, noasync)
    @discardableResult
    public func readChain(_ keys: [Digest128], identities: [EntryIdentity],
                          _ body: ([UnsafeRawBufferPointer]) throws -> Void) -> Int {
        do {
            let (found, done) = try env.read { txn -> (Int, Bool) in
                let payloads = try localChain(txn, keys[...], identities[...])
                guard payloads.count == keys.count || tierLink == nil else { return (payloads.count, false) }
                if !payloads.isEmpty { count("tier.local.entries_hit", Int64(payloads.count)) }
                try body(payloads)
                return (payloads.count, true)
            }
            if done { return found }
            let rest = readRemoteChain(Array(keys[found...]), Array(identities[found...]))
            defer { rest?.deallocate() }
            return try env.read { txn -> Int in
                var payloads = try localChain(txn, keys[..<found], identities[..<found])
                if !payloads.isEmpty { count("tier.local.entries_hit", Int64(payloads.count)) }
                // A local entry evicted in between leaves a gap: the remote part no longer follows on.
                if payloads.count == found, let rest { payloads += rest.payloads }
                try body(payloads)
                return payloads.count
            }
        } catch {
            noteFailure(error)
            return 0
        }
    }

    /// Among the stored KV blocks of `expected`'s sibling group (same parent, salt, model and
    /// profile), the one whose tokens begin with the longest run of `expected.tokens` (at most
    /// one block's worth). Its payload is verified and handed to `body` with the run's length,
    /// zero-copy, inside the read transaction. Rows 0..<run of that block are exactly the rows
    /// the request would compute: a position's K and V depend only on the tokens up to it.
    /// `key` gives the content address a block of this group has for given tokens: a candidate
    /// counts only if its key is the address of the tokens its header records. The checksum
    /// covers the payload, not the header; a chain lookup is safe from a damaged header because
    /// it asks by the address of the request's own tokens, and this check gives a sibling the
    /// same binding. Local entries only; at most `maxCandidates` siblings are compared.
    @available(*, noasync)
    @discardableResult
    public func readLongestSibling(_ expected: EntryIdentity, blockSize: Int, maxCandidates: Int = 256,
                                   key: ([TokenID]) -> Digest128,
                                   _ body: (UnsafeRawBufferPointer, Int) throws -> Void) -> (key: Digest128, tokens: Int)? {
        guard let siblings, expected.kind == .kvBlock, !expected.tokens.isEmpty, expected.tokens.count <= blockSize else { return nil }
        let group = ContentAddress.kvSiblings(of: expected, blockSize: blockSize)
        do {
            return try env.read { txn -> (key: Digest128, tokens: Int)? in
                var best: (key: Digest128, identity: EntryIdentity, run: Int)?
                var seen = 0
                try txn.forEach(siblings, from: group.bytes) { k, _ in
                    guard k.count == 32, Digest128(bytes: UnsafeRawBufferPointer(rebasing: k[0..<16])) == group,
                          seen < maxCandidates else { return false }
                    seen += 1
                    guard let candidateKey = Digest128(bytes: UnsafeRawBufferPointer(rebasing: k[16..<32])) else { return true }
                    // A row without its entry, or an entry whose header does not decode: a miss, and
                    // the writer drops them (so they stop taking a candidate's place).
                    guard let stored = try txn.get(entries, candidateKey.bytes), let candidate = EntryCodec.identity(stored) else {
                        enqueue(.dropSibling(group: group, key: candidateKey), bytes: 0)
                        return true
                    }
                    guard candidate.kind == .kvBlock, candidate.model == expected.model, candidate.profile == expected.profile,
                          candidate.saltDigest == expected.saltDigest, candidate.parent == expected.parent,
                          candidate.tokens.count == blockSize, candidate.sampling.isEmpty else { return true }
                    let run = zip(candidate.tokens, expected.tokens).prefix { $0 == $1 }.count
                    // The address check last: it hashes, and only a longer run needs it.
                    if run > (best?.run ?? 0) && key(candidate.tokens) == candidateKey { best = (candidateKey, candidate, run) }
                    return (best?.run ?? 0) < expected.tokens.count   // a whole match cannot be beaten
                }
                guard let best, let stored = try txn.get(entries, best.key.bytes) else { return nil }
                switch EntryCodec.verify(stored, expected: best.identity) {
                case .match(let payload, _):
                    count("tier.local.entries_hit")
                    try body(payload, best.run)
                    return (best.key, best.run)
                case .mismatch: return nil
                case .corrupt:
                    enqueue(.delete(best.key, cause: "corruption"), bytes: 0)
                    return nil
                }
            }
        } catch {
            noteFailure(error)
            return nil
        }
    }

    /// The verified local entries of a chain, up to the first miss; a corrupt one is queued for deletion.
    private func localChain(_ txn: borrowing LMDBReadTransaction, _ keys: ArraySlice<Digest128>,
                            _ identities: ArraySlice<EntryIdentity>) throws -> [UnsafeRawBufferPointer] {
        var payloads: [UnsafeRawBufferPointer] = []
        for (key, identity) in zip(keys, identities) {
            guard let stored = try txn.get(entries, key.bytes) else { break }
            switch EntryCodec.verify(stored, expected: identity) {
            case .match(let payload, _): payloads.append(payload)
            case .mismatch: return payloads
            case .corrupt:
                enqueue(.delete(key, cause: "corruption"), bytes: 0)
                return payloads
            }
        }
        return payloads
    }

    /// The consecutive verified entries of a chain the shared tier holds, copied into one
    /// buffer the caller deallocates; nil when there is no tier or no first entry.
    func readRemoteChain(_ keys: [Digest128], _ identities: [EntryIdentity]) -> RemotePayloads? {
        guard let tierLink, !keys.isEmpty else { return nil }
        let found = tierLink.fetch(keys)
        var usable: [[UInt8]] = []
        var ranges: [(Int, Int)] = []
        var total = 0
        for (key, identity) in zip(keys, identities) {
            guard let bytes = found[key] else { break }
            let range: (Int, Int)? = bytes.withUnsafeBytes { stored in
                guard case .match(let payload, _) = checkRemote(key, stored, identity) else { return nil }
                return (payload.baseAddress! - stored.baseAddress!, payload.count)
            }
            guard let range else { break }
            usable.append(bytes)
            ranges.append(range)
            total += range.1
        }
        guard !usable.isEmpty else { return nil }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: total, alignment: 16)
        var payloads: [UnsafeRawBufferPointer] = []
        var offset = 0
        for (bytes, (start, length)) in zip(usable, ranges) {
            bytes.withUnsafeBytes { src in
                UnsafeMutableRawBufferPointer(rebasing: buffer[offset..<(offset + length)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: src[start..<(start + length)]))
            }
            payloads.append(UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + length)]))
            offset += length
        }
        return RemotePayloads(buffer: buffer, payloads: payloads)
    }

    struct RemotePayloads {
        let buffer: UnsafeMutableRawBufferPointer
        let payloads: [UnsafeRawBufferPointer]
        func deallocate() { buffer.deallocate() }
    }
}
