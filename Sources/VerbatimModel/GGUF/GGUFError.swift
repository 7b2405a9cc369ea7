/// A problem with a GGUF file: what kind (`code`), a message that names the file, key or
/// tensor, and the byte offset where it was found when that helps.
public struct GGUFError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case cannotOpen            // open / stat / mmap failed
        case notGGUF               // bad magic
        case unsupportedVersion
        case truncated             // the file ends inside a structure
        case countTooLarge         // a count that the remaining bytes cannot hold
        case invalidValueType
        case nestingTooDeep
        case invalidKey            // empty, not UTF-8, or duplicated
        case invalidAlignment
        case invalidTensorInfo     // rank, dimensions, duplicate name
        case unknownTensorType
        case unsupportedTensorType
        case tensorOutOfBounds
        case tensorMisaligned
        case tensorsOverlap
        case missingKey
        case wrongValueType
        case invalidHyperparameters
        case missingTensor
        case tensorShapeMismatch
    }

    public let code: Code
    public let message: String
    /// The file the problem was found in, when the bytes came from a file.
    public var path: String?
    /// Byte offset in the file where the problem was found, when known.
    public var offset: Int?

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
