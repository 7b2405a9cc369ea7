/// Where one tensor lives in a GGUF file and what it holds.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// The tensor's name, non-empty UTF-8 and unique in its file (e.g. `blk.0.attn_q.weight`).
    public let name: String
    /// Dimensions, fastest-varying first (GGUF's `ne`): a weight matrix W of N outputs by
    /// K inputs is stored as `[K, N]`, N rows of K values.
    public let dimensions: [Int]
    /// How the elements are encoded.
    public let type: GGMLType
    /// Offset of the data from the start of the file's data section.
    public let offset: Int
    /// Size of the data in bytes: `elementCount / type.blockSize` blocks of `type.blockBytes` each.
    public let byteCount: Int

    /// Number of elements (the product of all dimensions).
    public var elementCount: Int { dimensions.reduce(1, *) }
    /// Number of rows (product of all dimensions but the first).
    public var rowCount: Int { dimensions.dropFirst().reduce(1, *) }
    /// Elements per row: the first dimension, always a whole number of `type`'s blocks.
    public var rowLength: Int { dimensions[0] }
}

/// One metadata entry, with where its encoded value sits in the file (the model digest
/// hashes those exact bytes).
public struct GGUFMetadataEntry: Sendable {
    /// The key, non-empty UTF-8 and unique in its file (e.g. `general.architecture`).
    public let key: String
    /// The decoded value.
    public let value: GGUFValue
    let encodedValue: Range<Int>
}

/// A parsed GGUF v2/v3 file. Tensor data is not copied: it is read through the mapping.
///
/// Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the metadata
/// (key string, u32 type, value), the tensor infos (name, u32 rank, u64 dims, u32 type,
/// u64 offset), padding to `general.alignment` (default 32), then the tensor data.
public final class GGUFFile: Sendable {
    /// The alignment in bytes of a file without `general.alignment` (and `GGUFWriter`'s default).
    public static let defaultAlignment = 32
    /// Arrays may nest; real files nest at most once. Deeper nesting is refused.
    static let maximumNesting = 4
    /// Counts come from the file: storage grows as values are actually read, so a false
    /// count can never make the reader allocate ahead of the bytes that back it.
    static let reserveLimit = 1 << 16

    /// The file the bytes came from, named in errors; nil for bytes parsed from memory.
    public let path: String?
    /// The whole file's bytes, which tensor data is read from (so they live as long as this file).
    public let bytes: MappedBytes
    /// The format version in the header: 2 or 3.
    public let version: UInt32
    /// The metadata entries in file order, with where each value is encoded (for the model digest).
    public let metadataEntries: [GGUFMetadataEntry]
    /// The metadata values by key.
    public let metadata: [String: GGUFValue]
    /// The tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    /// Each tensor's position in `tensors`, by name.
    public let tensorIndex: [String: Int]
    /// Alignment in bytes of the data section and of every tensor offset: `general.alignment`, else 32.
    public let alignment: Int
    /// Offset of the data section from the start of the file.
    public let dataOffset: Int

    /// Maps and parses the file at `path`.
    public convenience init(path: String) throws(GGUFError) {
        let bytes = try MappedBytes(path: path)
        try self.init(bytes: bytes, path: path)
    }

    /// Parses bytes already in memory.
    public convenience init(data: some Collection<UInt8>) throws(GGUFError) {
        try self.init(bytes: MappedBytes(copying: data), path: nil)
    }

    /// Parses the header, metadata and tensor infos of `bytes` and checks that every tensor's data lies inside the
    /// file, aligned and without overlap; `path` is recorded in `self.path` and in every error thrown.
    ///
    /// The tensor data itself is neither read nor copied. Throws a `GGUFError` whose code says which check failed
    /// and whose offset, when known, says where.
    public init(bytes: MappedBytes, path: String?) throws(GGUFError) {
        self.path = path
        self.bytes = bytes
        do throws(GGUFError) {
            var cursor = ByteCursor(bytes.buffer)
            let magic = try cursor.read(UInt32.self, "the magic number")
            guard magic == 0x4655_4747 else {  // "GGUF" little-endian
                throw GGUFError(.notGGUF, "not a GGUF file (the first 4 bytes are not \"GGUF\")", offset: 0)
            }
            version = try cursor.read(UInt32.self, "the version")
            guard version == 2 || version == 3 else {
                throw GGUFError(.unsupportedVersion, "GGUF version \(version) is not supported (2 and 3 are)",
                                offset: 4)
            }
            let tensorCount = try cursor.read(UInt64.self, "the tensor count")
            let metadataCount = try cursor.read(UInt64.self, "the metadata count")
            // Each metadata entry takes at least 13 bytes, each tensor info at least 32:
            // counts larger than that are refused before anything is allocated for them.
            guard metadataCount <= UInt64(cursor.remaining / 13) else {
                throw GGUFError(.countTooLarge, "metadata count \(metadataCount) cannot fit in the file", offset: 16)
            }
            guard tensorCount <= UInt64(cursor.remaining / 32) else {
                throw GGUFError(.countTooLarge, "tensor count \(tensorCount) cannot fit in the file", offset: 8)
            }

            var entries: [GGUFMetadataEntry] = []
            entries.reserveCapacity(min(Int(metadataCount), Self.reserveLimit))
            var byKey: [String: GGUFValue] = [:]
            for index in 0..<Int(metadataCount) {
                let keyStart = cursor.offset
                let keyBytes = try cursor.readString("the key of metadata entry \(index)")
                guard !keyBytes.isEmpty, let key = String(validating: keyBytes, as: UTF8.self) else {
                    throw GGUFError(.invalidKey, "metadata entry \(index) has an empty or non-UTF-8 key",
                                    offset: keyStart)
                }
                guard byKey[key] == nil else {
                    throw GGUFError(.invalidKey, "metadata key '\(key)' appears twice", offset: keyStart)
                }
                let valueStart = cursor.offset
                let value = try Self.readTypedValue(&cursor, key: key, depth: 0)
                entries.append(GGUFMetadataEntry(key: key, value: value, encodedValue: valueStart..<cursor.offset))
                byKey[key] = value
            }
            metadataEntries = entries
            metadata = byKey

            var alignment = Self.defaultAlignment
            if let declared = byKey["general.alignment"] {
                guard case .uint32(let a) = declared, a > 0, a & (a - 1) == 0, a <= 1 << 16 else {
                    throw GGUFError(.invalidAlignment,
                                    "general.alignment must be a u32 power of two up to 65536, found \(declared)")
                }
                alignment = Int(a)
            }
            self.alignment = alignment

            var infos: [GGUFTensorInfo] = []
            infos.reserveCapacity(min(Int(tensorCount), Self.reserveLimit))
            var index: [String: Int] = [:]
            for i in 0..<Int(tensorCount) {
                let info = try Self.readTensorInfo(&cursor, number: i, alignment: alignment)
                guard index[info.name] == nil else {
                    throw GGUFError(.invalidTensorInfo, "tensor '\(info.name)' is listed twice", offset: cursor.offset)
                }
                index[info.name] = infos.count
                infos.append(info)
            }
            tensors = infos
            tensorIndex = index

            let dataStart = (cursor.offset + alignment - 1) / alignment * alignment
            dataOffset = dataStart
            try Self.checkTensorPlacement(infos, dataStart: dataStart, fileSize: bytes.count)
        } catch var error {
            error.path = path
            throw error
        }
    }

    private static func readTypedValue(_ cursor: inout ByteCursor, key: String, depth: Int) throws(GGUFError) -> GGUFValue {
        let typeOffset = cursor.offset
        let raw = try cursor.read(UInt32.self, "the value type of '\(key)'")
        guard let type = GGUFValueType(rawValue: raw) else {
            throw GGUFError(.invalidValueType, "metadata '\(key)' has unknown value type \(raw)", offset: typeOffset)
        }
        return try readValue(&cursor, type: type, key: key, depth: depth)
    }

    private static func readValue(_ cursor: inout ByteCursor, type: GGUFValueType, key: String,
                                  depth: Int) throws(GGUFError) -> GGUFValue {
        let what = "the value of '\(key)'"
        switch type {
        case .uint8: return .uint8(try cursor.read(UInt8.self, what))
        case .int8: return .int8(try cursor.read(Int8.self, what))
        case .uint16: return .uint16(try cursor.read(UInt16.self, what))
        case .int16: return .int16(try cursor.read(Int16.self, what))
        case .uint32: return .uint32(try cursor.read(UInt32.self, what))
        case .int32: return .int32(try cursor.read(Int32.self, what))
        case .uint64: return .uint64(try cursor.read(UInt64.self, what))
        case .int64: return .int64(try cursor.read(Int64.self, what))
        case .float32: return .float32(Float(bitPattern: try cursor.read(UInt32.self, what)))
        case .float64: return .float64(Double(bitPattern: try cursor.read(UInt64.self, what)))
        case .bool:
            let offset = cursor.offset
            let byte = try cursor.read(UInt8.self, what)
            guard byte <= 1 else {
                throw GGUFError(.invalidValueType, "metadata '\(key)' has bool byte \(byte) (must be 0 or 1)",
                                offset: offset)
            }
            return .bool(byte == 1)
        case .string:
            // Values are UTF-8 by the format; invalid sequences are repaired rather than
            // refused, since only keys and the tokenizer's own strings are interpreted.
            return .string(String(decoding: try cursor.readString(what), as: UTF8.self))
        case .array:
            guard depth < maximumNesting else {
                throw GGUFError(.nestingTooDeep, "metadata '\(key)' nests arrays more than \(maximumNesting) deep",
                                offset: cursor.offset)
            }
            let typeOffset = cursor.offset
            let rawElement = try cursor.read(UInt32.self, "the element type of '\(key)'")
            guard let element = GGUFValueType(rawValue: rawElement) else {
                throw GGUFError(.invalidValueType, "array '\(key)' has unknown element type \(rawElement)",
                                offset: typeOffset)
            }
            let countOffset = cursor.offset
            let count = try cursor.read(UInt64.self, "the length of array '\(key)'")
            guard count <= UInt64(cursor.remaining / element.minimumEncodedSize) else {
                throw GGUFError(.countTooLarge, "array '\(key)' claims \(count) elements, more than the file holds",
                                offset: countOffset)
            }
            var values: [GGUFValue] = []
            values.reserveCapacity(min(Int(count), Self.reserveLimit))
            for _ in 0..<Int(count) {
                values.append(try readValue(&cursor, type: element, key: key, depth: depth + 1))
            }
            return .array(element, values)
        }
    }

    private static func readTensorInfo(_ cursor: inout ByteCursor, number: Int,
                                       alignment: Int) throws(GGUFError) -> GGUFTensorInfo {
        let start = cursor.offset
        let nameBytes = try cursor.readString("the name of tensor \(number)")
        guard !nameBytes.isEmpty, let name = String(validating: nameBytes, as: UTF8.self) else {
            throw GGUFError(.invalidTensorInfo, "tensor \(number) has an empty or non-UTF-8 name", offset: start)
        }
        let rank = try cursor.read(UInt32.self, "the rank of tensor '\(name)'")
        guard (1...4).contains(rank) else {
            throw GGUFError(.invalidTensorInfo, "tensor '\(name)' has rank \(rank) (1 to 4 allowed)", offset: start)
        }
        var dimensions: [Int] = []
        var elements = 1
        for _ in 0..<Int(rank) {
            let d = try cursor.read(UInt64.self, "the dimensions of tensor '\(name)'")
            // A dimension above 2^40 cannot belong to a file that fits in memory.
            guard d >= 1, d <= 1 << 40 else {
                throw GGUFError(.invalidTensorInfo, "tensor '\(name)' has dimension \(d)", offset: start)
            }
            let (product, overflow) = elements.multipliedReportingOverflow(by: Int(d))
            guard !overflow, product <= 1 << 48 else {
                throw GGUFError(.invalidTensorInfo, "tensor '\(name)' has too many elements", offset: start)
            }
            elements = product
            dimensions.append(Int(d))
        }
        let rawType = try cursor.read(UInt32.self, "the type of tensor '\(name)'")
        guard let type = GGMLType(rawValue: rawType) else {
            throw GGUFError(.unknownTensorType, "tensor '\(name)' has unknown type id \(rawType)", offset: start)
        }
        guard dimensions[0] % type.blockSize == 0 else {
            throw GGUFError(.invalidTensorInfo,
                            "tensor '\(name)' of type \(type) has a first dimension \(dimensions[0]) that is not a multiple of its block size \(type.blockSize)",
                            offset: start)
        }
        let offset = try cursor.read(UInt64.self, "the offset of tensor '\(name)'")
        guard offset <= 1 << 48 else {
            throw GGUFError(.tensorOutOfBounds, "tensor '\(name)' has offset \(offset)", offset: start)
        }
        guard Int(offset) % alignment == 0 else {
            throw GGUFError(.tensorMisaligned, "tensor '\(name)' at data offset \(offset) is not aligned to \(alignment)",
                            offset: start)
        }
        let byteCount = elements / type.blockSize * type.blockBytes
        return GGUFTensorInfo(name: name, dimensions: dimensions, type: type, offset: Int(offset), byteCount: byteCount)
    }

    private static func checkTensorPlacement(_ infos: [GGUFTensorInfo], dataStart: Int,
                                             fileSize: Int) throws(GGUFError) {
        let available = fileSize - dataStart
        for info in infos where info.offset > available || info.byteCount > available - info.offset {
            throw GGUFError(.tensorOutOfBounds,
                            "tensor '\(info.name)' (\(info.byteCount) bytes at data offset \(info.offset)) ends past the end of the file",
                            offset: dataStart + info.offset)
        }
        let sorted = infos.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.offset + a.byteCount > b.offset {
            throw GGUFError(.tensorsOverlap, "tensors '\(a.name)' and '\(b.name)' overlap",
                            offset: dataStart + b.offset)
        }
    }

    // MARK: - Access

    /// The tensor with this name, or nil if the file has none.
    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The raw bytes of a tensor (a view into the mapping; valid while this file lives).
    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: bytes.base + dataOffset + tensor.offset, count: tensor.byteCount)
    }

    /// A required metadata value, checked for presence.
    public func value(_ key: String) throws(GGUFError) -> GGUFValue {
        guard let value = metadata[key] else {
            throw GGUFError(.missingKey, "metadata key '\(key)' is missing", path: path)
        }
        return value
    }

    /// A required integer metadata value: throws `.missingKey` if absent, `.wrongValueType` if it is not an integer
    /// or does not fit in `Int`.
    public func integer(_ key: String) throws(GGUFError) -> Int {
        let v = try value(key)
        guard let i = v.integer else {
            throw GGUFError(.wrongValueType, "metadata '\(key)' should be an integer, found \(v.type)", path: path)
        }
        return i
    }

    /// A required string metadata value: throws `.missingKey` if absent, `.wrongValueType` if it is not a string.
    public func string(_ key: String) throws(GGUFError) -> String {
        let v = try value(key)
        guard let s = v.string else {
            throw GGUFError(.wrongValueType, "metadata '\(key)' should be a string, found \(v.type)", path: path)
        }
        return s
    }
}
