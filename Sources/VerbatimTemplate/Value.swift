/// Text that remembers which parts came from the caller's data (message content, tool
/// definitions) rather than from the template. Only template text may become a control token
/// when the prompt is tokenized, so a user cannot forge a turn by typing its marker.
/// Ranges are UTF-8 offsets, sorted and disjoint.
struct Text: Sendable {
    var string: String
    var untrusted: [Range<Int>]

    init(_ string: String, trusted: Bool = true) {
        self.string = string
        self.untrusted = trusted || string.isEmpty ? [] : [0..<string.utf8.count]
    }

    var isTrusted: Bool { untrusted.isEmpty }

    static func + (a: Text, b: Text) -> Text {
        var out = a
        out.append(b)
        return out
    }

    mutating func append(_ b: Text) {
        let shift = string.utf8.count
        string += b.string
        for r in b.untrusted {
            let moved = (r.lowerBound + shift)..<(r.upperBound + shift)
            if let last = untrusted.last, last.upperBound == moved.lowerBound {
                untrusted[untrusted.count - 1] = last.lowerBound..<moved.upperBound
            } else {
                untrusted.append(moved)
            }
        }
    }

    /// A string derived from this text by an operation that does not keep positions: wholly
    /// untrusted when any part of this text was.
    func derived(_ s: String) -> Text { Text(s, trusted: isTrusted) }
}

/// A macro or built-in function value.
final class Callable: @unchecked Sendable {
    let name: String
    let call: (Renderer, [Value], [(String, Value)]) throws(TemplateError) -> Value
    init(_ name: String, _ call: @escaping (Renderer, [Value], [(String, Value)]) throws(TemplateError) -> Value) {
        self.name = name
        self.call = call
    }
}

/// `namespace()`: the one mutable object a template may change (`{% set ns.x = ... %}`).
final class Namespace: @unchecked Sendable {
    var entries: [(key: Value, value: Value)]
    init(_ entries: [(key: Value, value: Value)]) { self.entries = entries }
}

/// A value during rendering, with Python's semantics as Jinja2 gives them.
indirect enum Value: Sendable {
    /// A name or key that does not exist; printing gives "", using it in other ways raises.
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(Text)
    case list([Value])
    /// A Python tuple (printed with parentheses; otherwise a list).
    case tuple([Value])
    /// An ordered dictionary (Python dicts keep insertion order).
    case dict([(key: Value, value: Value)])
    case namespace(Namespace)
    case callable(Callable)
    /// The `loop` variable inside a for loop.
    case loop(LoopState)

    static func str(_ s: String) -> Value { .string(Text(s)) }

    var isUndefined: Bool { if case .undefined = self { true } else { false } }

    var typeName: String {
        switch self {
        case .undefined: "Undefined"
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .double: "float"
        case .string: "str"
        case .list: "list"
        case .tuple: "tuple"
        case .dict: "dict"
        case .namespace: "Namespace"
        case .callable: "function"
        case .loop: "LoopContext"
        }
    }

    /// Python truthiness.
    var truthy: Bool {
        switch self {
        case .undefined, .none: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .double(let d): d != 0
        case .string(let t): !t.string.isEmpty
        case .list(let a), .tuple(let a): !a.isEmpty
        case .dict(let d): !d.isEmpty
        case .namespace, .callable, .loop: true
        }
    }

    /// Looks a key up in a dictionary by Python equality.
    static func lookup(_ entries: [(key: Value, value: Value)], _ key: Value) -> Value? {
        for e in entries where pyEqual(e.key, key) { return e.value }
        return nil
    }
}

/// Loop state for `loop.index`, `loop.first`, ... and `loop.cycle(...)`.
final class LoopState: @unchecked Sendable {
    let items: [Value]
    var index0 = 0
    let depth0: Int
    init(items: [Value], depth0: Int) { self.items = items; self.depth0 = depth0 }
}

// MARK: - Python equality and ordering

func pyEqual(_ a: Value, _ b: Value) -> Bool {
    switch (a, b) {
    case (.undefined, .undefined), (.none, .none): return true
    case (.string(let x), .string(let y)): return x.string.unicodeScalars.elementsEqual(y.string.unicodeScalars)
    case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
        return x.count == y.count && zip(x, y).allSatisfy { pyEqual($0, $1) }
    case (.dict(let x), .dict(let y)):
        return x.count == y.count && x.allSatisfy { e in Value.lookup(y, e.key).map { pyEqual($0, e.value) } ?? false }
    case (.namespace(let x), .namespace(let y)): return x === y
    case (.callable(let x), .callable(let y)): return x === y
    case (.loop(let x), .loop(let y)): return x === y
    default:
        if let x = numeric(a), let y = numeric(b) { return x == y }
        return false
    }
}

/// bool, int and float compare as numbers in Python.
func numeric(_ v: Value) -> Double? {
    switch v {
    case .bool(let b): b ? 1 : 0
    case .int(let i): Double(i)
    case .double(let d): d
    default: nil
    }
}

/// Python's `<`: numbers with numbers, strings by code point, lists lexicographically.
func pyLess(_ a: Value, _ b: Value, line: Int) throws(TemplateError) -> Bool {
    switch (a, b) {
    case (.int(let x), .int(let y)): return x < y
    case (.string(let x), .string(let y)): return x.string.unicodeScalars.lexicographicallyPrecedes(y.string.unicodeScalars)
    case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
        for (p, q) in zip(x, y) where !pyEqual(p, q) { return try pyLess(p, q, line: line) }
        return x.count < y.count
    default:
        if let x = numeric(a), let y = numeric(b) { return x < y }
        throw TemplateError(.type, "'<' not supported between instances of '\(a.typeName)' and '\(b.typeName)'", line: line)
    }
}

// MARK: - Python's str() and repr()

/// `str(v)` as Python prints it; Undefined prints as "".
func pyStr(_ v: Value) -> Text {
    switch v {
    case .string(let t): return t
    case .undefined: return Text("")
    case .list, .tuple, .dict, .namespace: return Text(pyRepr(v), trusted: false)
    default: return Text(pyRepr(v))
    }
}

func pyRepr(_ v: Value) -> String {
    switch v {
    case .undefined: return ""
    case .none: return "None"
    case .bool(let b): return b ? "True" : "False"
    case .int(let i): return String(i)
    case .double(let d): return pyFloat(d)
    case .string(let t): return pyStringRepr(t.string)
    case .list(let a): return "[" + a.map(pyRepr).joined(separator: ", ") + "]"
    case .tuple(let a): return "(" + a.map(pyRepr).joined(separator: ", ") + (a.count == 1 ? ",)" : ")")
    case .dict(let d): return "{" + d.map { pyRepr($0.key) + ": " + pyRepr($0.value) }.joined(separator: ", ") + "}"
    case .namespace(let n): return "<Namespace " + pyRepr(.dict(n.entries)) + ">"
    case .callable(let c): return "<function \(c.name)>"
    case .loop: return "<LoopContext>"
    }
}

/// Python's float repr: the shortest digits that round-trip, in positional form for decimal
/// exponents from -4 to 15 and scientific form (`1e+16`, `1e-05`) outside.
func pyFloat(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d < 0 ? "-inf" : "inf" }
    if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
    // Swift's description gives the same shortest round-trip digits; only the layout differs.
    var s = "\(d.magnitude)"
    var exponent = 0
    if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
        exponent = Int(s[s.index(after: e)...])!
        s = String(s[..<e])
    }
    let parts = s.split(separator: ".", omittingEmptySubsequences: false)
    var digits = String(parts[0]) + (parts.count > 1 ? String(parts[1]) : "")
    var pointPosition = parts[0].count + exponent  // digits before the decimal point
    let leadingZeros = digits.prefix(while: { $0 == "0" }).count
    digits.removeFirst(min(leadingZeros, digits.count - 1))
    pointPosition -= leadingZeros
    while digits.count > 1, digits.last == "0" { digits.removeLast() }
    let decimalExponent = pointPosition - 1
    let sign = d < 0 ? "-" : ""
    if decimalExponent < -4 || decimalExponent >= 16 {
        let mantissa = digits.count == 1 ? digits : String(digits.first!) + "." + digits.dropFirst()
        let e = decimalExponent < 0 ? "-" + pad2(-decimalExponent) : "+" + pad2(decimalExponent)
        return sign + mantissa + "e" + e
    }
    if pointPosition <= 0 { return sign + "0." + String(repeating: "0", count: -pointPosition) + digits }
    if pointPosition >= digits.count { return sign + digits + String(repeating: "0", count: pointPosition - digits.count) + ".0" }
    return sign + digits.prefix(pointPosition) + "." + digits.dropFirst(pointPosition)
}

private func pad2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

/// Python's repr of a str: single quotes unless the text holds a single quote and no double
/// quote; backslash escapes for quotes, backslash, \t \n \r and non-printable code points.
func pyStringRepr(_ s: String) -> String {
    let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
    var out = String(quote)
    for u in s.unicodeScalars {
        switch u {
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if Character(u) == quote { out += "\\" + String(quote) }
            else if isPrintable(u) { out.unicodeScalars.append(u) }
            else if u.value < 0x100 { out += "\\x" + hex(u.value, 2) }
            else if u.value < 0x10000 { out += "\\u" + hex(u.value, 4) }
            else { out += "\\U" + hex(u.value, 8) }
        }
    }
    out.append(quote)
    return out
}

func hex(_ v: UInt32, _ width: Int) -> String {
    let h = String(v, radix: 16)
    return String(repeating: "0", count: max(0, width - h.count)) + h
}

/// Python's str.isprintable for one code point: not a control, format, surrogate, private-use,
/// unassigned, line/paragraph separator, or a space other than U+0020.
func isPrintable(_ u: Unicode.Scalar) -> Bool {
    if u == " " { return true }
    switch u.properties.generalCategory {
    case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
        return false
    default:
        return true
    }
}
