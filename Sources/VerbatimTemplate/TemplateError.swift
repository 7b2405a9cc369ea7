/// Why a template could not be parsed or rendered. `line` is the template line (1-based) of
/// the tag or expression at fault; the message names the construct.
public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is.
    public enum Code: String, Sendable, Equatable {
        /// The template text is not valid Jinja (an unterminated tag, an unexpected token).
        case syntax
        /// A construct Jinja2 has that this renderer does not (`include`, an unknown filter).
        case unsupported
        /// A value of the wrong type for an operation (Jinja2 raises here as well).
        case type
        /// An attribute or item of an undefined value, or calling one (Jinja2's `UndefinedError`).
        case undefined
        /// The template called `raise_exception(message)`; `message` is its argument.
        case raised
        /// The template exceeded a bound on work, output, nesting or recursion.
        case limit
    }

    /// What kind of failure this is.
    public let code: Code
    /// What went wrong, in words; for ``Code/raised``, the argument the template passed to `raise_exception`.
    public let message: String
    /// The template line (1-based) of the tag or expression at fault.
    public let line: Int

    /// An error of `code` with `message` at template line `line` (1-based).
    public init(_ code: Code, _ message: String, line: Int) {
        self.code = code
        self.message = message
        self.line = line
    }

    public var description: String {
        code == .raised ? "template raised an exception (line \(line)): \(message)"
            : "template \(code.rawValue) error (line \(line)): \(message)"
    }
}
