/// A problem with a GGUF file: what kind (`code`), a message that names the file, key or
/// tensor, and the byte offset where it was found when that helps.
public struct GGUFError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The kind of problem; the raw value is the case name, which `description` prints.
    public enum Code: String, Sendable {
        /// The file could not be opened, examined or mapped, or it is not a regular file.
        case cannotOpen            // open / stat / mmap failed
        /// The first 4 bytes are not the magic "GGUF".
        case notGGUF               // bad magic
        /// The header's version is neither 2 nor 3.
        case unsupportedVersion
        /// The file is empty, ends inside a structure, or has a string longer than the bytes left.
        case truncated             // the file ends inside a structure
        /// A metadata, tensor or array count exceeds what the remaining bytes could hold; refused before any allocation.
        case countTooLarge         // a count that the remaining bytes cannot hold
        /// A metadata value or array element has an unknown type tag, or a bool is stored as a byte other than 0 or 1.
        case invalidValueType
        /// Metadata arrays nest more than 4 levels deep.
        case nestingTooDeep
        /// A metadata key is empty, not valid UTF-8, or appears twice.
        case invalidKey            // empty, not UTF-8, or duplicated
        /// `general.alignment` is not a u32 power of two from 1 to 65536.
        case invalidAlignment
        /// A tensor info is malformed: empty, non-UTF-8 or repeated name, rank outside 1...4, a dimension of 0 or
        /// above 2^40, more than 2^48 elements, or a first dimension that is not a whole number of blocks.
        case invalidTensorInfo     // rank, dimensions, duplicate name
        /// A tensor's type id is not one of `GGMLType`'s cases.
        case unknownTensorType
        /// A tensor's type is known but cannot be used: `Dequantize` cannot decode it, or the model cannot compute
        /// with it.
        case unsupportedTensorType
        /// A tensor's data offset is above 2^48 or its data ends past the end of the file.
        case tensorOutOfBounds
        /// A tensor's data offset is not a multiple of the file's alignment.
        case tensorMisaligned
        /// The data of two tensors overlaps.
        case tensorsOverlap
        /// A required metadata key is absent (`GGUFFile.value(_:)`, `integer(_:)`, `string(_:)`, the model's configuration).
        case missingKey
        /// A metadata value has another type than the one required, e.g. a string where an integer is read.
        case wrongValueType
        /// The model's hyperparameters are refused: an unsupported architecture or RoPE scaling, a value out of its
        /// range, values that do not fit together (e.g. head count not divisible by KV head count), or RoPE
        /// frequency divisors that are not positive and finite.
        case invalidHyperparameters
        /// A tensor the model needs is not in the file.
        case missingTensor
        /// A tensor's dimensions differ from those the model configuration implies.
        case tensorShapeMismatch
    }

    /// What kind of problem this is.
    public let code: Code
    /// What went wrong, naming the key or tensor concerned (`description` adds the code, path and offset).
    public let message: String
    /// The file the problem was found in, when the bytes came from a file.
    public var path: String?
    /// Byte offset in the file where the problem was found, when known.
    public var offset: Int?

    /// An error of kind `code`; `path` and `offset` locate it when known.
    public init(_ code: Code, _ message: String, path: String? = nil, offset: Int? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.offset = offset
    }

    public var description: String {
        var text = "GGUF error (\(code.rawValue))"
        if let path { text += " in \(path)" }
        if let offset { text += " at byte \(offset)" }
        return text + ": " + message
    }
}
