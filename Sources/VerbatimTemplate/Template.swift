/// A Jinja template as chat templates use Jinja: parsed once, rendered many times.
///
/// Rendering matches Python's Jinja2 configured as Hugging Face transformers configures it for
/// chat templates (immutable sandbox, `trim_blocks`, `lstrip_blocks`, loop controls, the
/// `generation` block, `tojson` without ASCII escaping, `raise_exception`, `strftime_now`).
/// What the renderer does not support is a ``TemplateError`` naming the construct and line:
/// never a different text.
public struct Template: Sendable {
    /// The template source.
    public let source: String
    let body: [Statement]

    /// Parses `source` once for any number of renders.
    ///
    /// Throws a ``TemplateError`` with code ``TemplateError/Code/syntax`` for text that is not valid Jinja,
    /// ``TemplateError/Code/unsupported`` for a construct the renderer lacks, or ``TemplateError/Code/limit``
    /// for a source, integer literal or nesting too large.
    public init(_ source: String) throws(TemplateError) {
        self.source = source
        var parser = Parser(try Lexer(source).pieces)
        body = try parser.parseTemplate()
    }

    /// Renders with `variables` (messages, `add_generation_prompt`, `bos_token`, ...).
    /// `now` is what `strftime_now` sees (the current local time when nil).
    public func render(_ variables: [String: TemplateValue], now: CalendarTime? = nil,
                       limits: TemplateLimits = TemplateLimits()) throws(TemplateError) -> RenderedText {
        let renderer = Renderer(limits: limits, now: now ?? .now())
        let scope = Scope(parent: nil)
        for (name, value) in variables { scope.variables[name] = value.value }
        _ = try renderer.execute(body, scope)
        return RenderedText(text: renderer.output.string, untrustedRanges: renderer.output.untrusted)
    }
}

extension Statement: @unchecked Sendable {}

/// A rendered template and which parts of it came from the caller's data.
public struct RenderedText: Sendable, Equatable {
    /// The whole rendered text (template text and caller data together).
    public let text: String
    /// UTF-8 byte ranges of `text` that came from caller data (``TemplateValue/string(_:)``)
    /// rather than from the template or ``TemplateValue/trustedString(_:)``: sorted, disjoint.
    /// Control tokens are recognised only outside these ranges.
    public let untrustedRanges: [Range<Int>]

    /// The text as runs, each marked trusted (template text) or not (caller data).
    public var runs: [(text: Substring, trusted: Bool)] {
        let utf8 = text.utf8
        var out: [(Substring, Bool)] = []
        var position = 0
        func piece(_ r: Range<Int>) -> Substring {
            let lo = utf8.index(utf8.startIndex, offsetBy: r.lowerBound), hi = utf8.index(utf8.startIndex, offsetBy: r.upperBound)
            return text[lo..<hi]
        }
        for r in untrustedRanges {
            if r.lowerBound > position { out.append((piece(position..<r.lowerBound), true)) }
            out.append((piece(r), false))
            position = r.upperBound
        }
        if position < utf8.count { out.append((piece(position..<utf8.count), true)) }
        return out
    }
}

/// A value passed to a template, in JSON's shapes.
public enum TemplateValue: Sendable, Equatable {
    /// JSON null: Jinja's `none` (prints as `None`).
    case null
    /// JSON true or false (prints as `True` or `False`).
    case bool(Bool)
    /// An integer (Python's int; `init(json:)` reads a number without fraction or exponent that fits as one).
    case int(Int)
    /// A floating-point number (Python's float; prints as Python's float repr).
    case double(Double)
    /// Caller data (message content, tool definitions): never parsed as control tokens.
    case string(String)
    /// Text the model owns (its BOS/EOS strings): may be parsed as control tokens.
    case trustedString(String)
    /// A JSON array: a Jinja list.
    case array([TemplateValue])
    /// Keys in order (templates print dictionaries and their JSON in insertion order).
    case object([TemplateObjectEntry])

    var value: Value {
        switch self {
        case .null: .none
        case .bool(let b): .bool(b)
        case .int(let i): .int(i)
        case .double(let d): .double(d)
        case .string(let s): .string(Text(s, trusted: false))
        case .trustedString(let s): .string(Text(s, trusted: true))
        case .array(let a): .list(a.map(\.value))
        case .object(let entries): .dict(entries.map { (key: .string(Text($0.key, trusted: false)), value: $0.value.value) })
        }
    }

    /// Looks a key up in an object.
    public subscript(key: String) -> TemplateValue? {
        guard case .object(let entries) = self else { return nil }
        return entries.first { $0.key == key }?.value
    }
}

/// One key and its value in a ``TemplateValue/object(_:)``.
public struct TemplateObjectEntry: Sendable, Equatable {
    /// The key (caller data, like ``TemplateValue/string(_:)``).
    public var key: String
    /// The value under `key`.
    public var value: TemplateValue
    /// An entry of `key` and `value`.
    public init(_ key: String, _ value: TemplateValue) { self.key = key; self.value = value }
}

extension TemplateValue {
    /// Parses JSON, keeping the order of object keys. Numbers without a fraction or exponent
    /// that fit in an Int are ints (as Python's json module reads them).
    public init(json: String) throws(TemplateError) {
        var parser = JSONInput(Array(json.utf8))
        self = try parser.document()
    }
}

private struct JSONInput {
    let bytes: [UInt8]
    var i = 0
    var depth = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func fail(_ what: String) -> TemplateError { TemplateError(.syntax, "invalid JSON at byte \(i): \(what)", line: 1) }

    mutating func skipSpace() { while i < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[i]) { i += 1 } }

    mutating func document() throws(TemplateError) -> TemplateValue {
        let v = try value()
        skipSpace()
        guard i == bytes.count else { throw fail("trailing data") }
        return v
    }

    mutating func literal(_ word: String, _ v: TemplateValue) throws(TemplateError) -> TemplateValue {
        guard bytes[i...].starts(with: word.utf8) else { throw fail("unexpected character") }
        i += word.utf8.count
        return v
    }

    mutating func value() throws(TemplateError) -> TemplateValue {
        skipSpace()
        guard i < bytes.count else { throw fail("unexpected end") }
        switch bytes[i] {
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "["), UInt8(ascii: "{"):
            depth += 1
            defer { depth -= 1 }
            guard depth <= 512 else { throw fail("nested deeper than 512") }
            let isArray = bytes[i] == UInt8(ascii: "[")
            i += 1
            var items: [TemplateValue] = []
            var entries: [TemplateObjectEntry] = []
            skipSpace()
            if i < bytes.count, bytes[i] == (isArray ? UInt8(ascii: "]") : UInt8(ascii: "}")) { i += 1; return isArray ? .array([]) : .object([]) }
            while true {
                if isArray {
                    items.append(try value())
                } else {
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                    let key = try string()
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    i += 1
                    let v = try value()
                    if let k = entries.firstIndex(where: { $0.key == key }) { entries[k].value = v } else { entries.append(TemplateObjectEntry(key, v)) }
                }
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == (isArray ? UInt8(ascii: "]") : UInt8(ascii: "}")) { i += 1; break }
                throw fail("expected ',' or a closing bracket")
            }
            return isArray ? .array(items) : .object(entries)
        default:
            let start = i
            while i < bytes.count, "+-0123456789.eE".utf8.contains(bytes[i]) { i += 1 }
            let text = String(decoding: bytes[start..<i], as: UTF8.self)
            if !text.contains(where: { ".eE".contains($0) }), let n = Int(text) { return .int(n) }
            guard let d = Double(text) else { throw fail("invalid number '\(text)'") }
            return .double(d)
        }
    }

    mutating func hex4() throws(TemplateError) -> UInt32 {
        guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else { throw fail("bad \\u escape") }
        i += 4
        return v
    }

    mutating func string() throws(TemplateError) -> String {
        i += 1
        var out: [UInt8] = []
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let b = bytes[i]
            i += 1
            if b == UInt8(ascii: "\"") { break }
            guard b == UInt8(ascii: "\\") else { out.append(b); continue }
            guard i < bytes.count else { throw fail("unterminated string") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "n"): out.append(0x0a)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0d)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0c)
            case UInt8(ascii: "/"), UInt8(ascii: "\\"), UInt8(ascii: "\""): out.append(e)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xd800..<0xdc00).contains(code), bytes[i...].starts(with: "\\u".utf8) {
                    i += 2
                    let low = try hex4()
                    guard (0xdc00..<0xe000).contains(low) else { throw fail("bad surrogate pair") }
                    code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00)
                }
                guard let u = Unicode.Scalar(code) else { throw fail("lone surrogate") }
                out += Array(String(u).utf8)
            default: throw fail("bad escape")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8") }
        return s
    }
}
