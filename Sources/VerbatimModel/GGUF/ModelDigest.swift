import VerbatimCore

extension GGUFFile {
    /// Descriptive `general.*` keys that do not change what the model computes; every other
    /// metadata key goes into the digest.
    static let digestKeptGeneralKeys: Set<String> = ["general.architecture", "general.alignment"]

    /// A stable digest of everything in the file that changes outputs.
    ///
    /// XXH3-128 over this byte string (integers little-endian, strings as u64 length + UTF-8):
    /// 1. the domain string `"verbatim-model/1"`;
    /// 2. u64 number of metadata entries kept, then for each in byte order of its key:
    ///    key, u32 GGUF value type, the value's bytes exactly as encoded in the file.
    ///    Kept: every key except those starting with `general.` (names, licences, authors),
    ///    though `general.architecture` and `general.alignment` are kept;
    /// 3. u64 number of tensors, then for each in byte order of its name: name, u32 ggml
    ///    type, u32 rank, u64 dimensions, u64 byte count, the tensor's bytes.
    /// Renaming or relicensing a model leaves the digest unchanged; any change to weights,
    /// hyperparameters or tokenizer changes it.
    public func modelDigest() -> Digest128 {
        var hasher = ContentHasher()
        hasher.update("verbatim-model/1")
        let kept = metadataEntries
            .filter { !$0.key.hasPrefix("general.") || Self.digestKeptGeneralKeys.contains($0.key) }
            .sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        hasher.update(UInt64(kept.count))
        for entry in kept {
            hasher.update(entry.key)
            hasher.update(entry.value.type.rawValue)
            hasher.update(UnsafeRawBufferPointer(rebasing: bytes.buffer[entry.encodedValue]))
        }
        let sortedTensors = tensors.sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        hasher.update(UInt64(sortedTensors.count))
        for tensor in sortedTensors {
            hasher.update(tensor.name)
            hasher.update(tensor.type.rawValue)
            hasher.update(UInt32(tensor.dimensions.count))
            for d in tensor.dimensions { hasher.update(UInt64(d)) }
            hasher.update(UInt64(tensor.byteCount))
            hasher.update(data(of: tensor))
        }
        return hasher.finish()
    }
}
