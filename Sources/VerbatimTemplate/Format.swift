#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Python's string formatting as templates use it: `'%s: %d' % (a, b)` and `'{} {}'.format(a, b)`.
enum Format {
    /// `%`-formatting: `%s %r %d %i %f %x %X %o %c %%`, with flags `-0 +`, width and precision.
    static func percent(_ format: Text, _ args: Value, _ r: Renderer) throws(TemplateError) -> Text {
        var positional: [Value] = []
        var mapping: [(key: Value, value: Value)]? = nil
        switch args {
        case .tuple(let items): positional = items
        case .dict(let d): mapping = d; positional = [args]
        default: positional = [args]
        }
        var next = 0
        var out = Text("")
        let s = Array(format.string.unicodeScalars)
        var literal = String.UnicodeScalarView()
        func flushLiteral() { out.append(format.derived(String(literal))); literal = String.UnicodeScalarView() }
        var i = 0
        while i < s.count {
            guard s[i] == "%" else { literal.append(s[i]); i += 1; continue }
            i += 1
            guard i < s.count else { throw TemplateError(.type, "incomplete format", line: r.line) }
            if s[i] == "%" { literal.append("%"); i += 1; continue }
            var value: Value
            if s[i] == "(" {
                guard let close = s[i...].firstIndex(of: ")"), let mapping else {
                    throw TemplateError(.type, "format requires a mapping", line: r.line)
                }
                let key = PyString.string(s[(i + 1)..<close])
                guard let v = Value.lookup(mapping, .str(key)) else { throw TemplateError(.type, "format key '\(key)' missing", line: r.line) }
                value = v
                i = close + 1
            } else {
                guard next < positional.count else { throw TemplateError(.type, "not enough arguments for format string", line: r.line) }
                value = positional[next]
                next += 1
            }
            var flags = Set<Unicode.Scalar>()
            while i < s.count, "-+ 0#".unicodeScalars.contains(s[i]) { flags.insert(s[i]); i += 1 }
            var width = 0
            while i < s.count, let d = Int(String(s[i])) { width = min(width * 10 + d, Int(Int32.max)); i += 1 }
            try r.checkSize(width)
            var precision: Int? = nil
            if i < s.count, s[i] == "." {
                i += 1
                var p = 0
                while i < s.count, let d = Int(String(s[i])) { p = p * 10 + d; i += 1 }
                precision = p
            }
            guard i < s.count else { throw TemplateError(.type, "incomplete format", line: r.line) }
            let conversion = s[i]
            i += 1
            var piece: Text
            switch conversion {
            case "s":
                piece = pyStr(value)
                if let precision { piece = piece.derived(String(piece.string.unicodeScalars.prefix(precision))) }
            case "r": piece = Text(pyRepr(value), trusted: pyStr(value).isTrusted)
            case "d", "i", "x", "X", "o":
                guard let n = numeric(value) else { throw TemplateError(.type, "%\(conversion) format: a number is required, not \(value.typeName)", line: r.line) }
                let whole: Int
                if case .int(let x) = value { whole = x } else { whole = Int(n.rounded(.towardZero)) }
                let radix = conversion == "x" || conversion == "X" ? 16 : conversion == "o" ? 8 : 10
                var digits = String(whole.magnitude, radix: radix, uppercase: conversion == "X")
                if whole < 0 { digits = "-" + digits } else if flags.contains("+") { digits = "+" + digits }
                piece = Text(digits)
            case "f", "F", "e", "E", "g", "G":
                guard let x = numeric(value) else { throw TemplateError(.type, "%\(conversion) format: a number is required, not \(value.typeName)", line: r.line) }
                piece = Text(cFormat("%\(flags.contains("+") ? "+" : "").\(precision ?? 6)\(conversion)", x))
            case "c":
                if case .int(let code) = value, let u = Unicode.Scalar(UInt32(clamping: code)) { piece = Text(String(u)) }
                else if case .string(let t) = value, t.string.unicodeScalars.count == 1 { piece = t }
                else { throw TemplateError(.type, "%c requires an int or a single character", line: r.line) }
            default:
                throw TemplateError(.unsupported, "unsupported format character '\(conversion)'", line: r.line)
            }
            let padding = max(0, width - piece.string.unicodeScalars.count)
            flushLiteral()
            if flags.contains("-") { out.append(piece); out.append(Text(String(repeating: " ", count: padding))) }
            else if flags.contains("0"), conversion != "s", conversion != "r" {
                var digits = piece.string
                var sign = ""
                if digits.hasPrefix("-") || digits.hasPrefix("+") { sign = String(digits.removeFirst()) }
                out.append(Text(sign + String(repeating: "0", count: padding) + digits))
            } else { out.append(Text(String(repeating: " ", count: padding))); out.append(piece) }
            try r.checkSize(out.string.utf8.count)
        }
        flushLiteral()
        if mapping == nil, next < positional.count {
            throw TemplateError(.type, "not all arguments converted during string formatting", line: r.line)
        }
        return out
    }

    static func cFormat(_ spec: String, _ x: Double) -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        _ = withVaList([x]) { vsnprintf(&buffer, buffer.count, spec, $0) }
        return String(cString: buffer)
    }

    /// `str.format`: `{}`, `{0}`, `{name}`, `{0.attr}`, `{0[key]}`, `!s`/`!r`, `{{`/`}}`.
    /// A format spec after `:` is refused (no template we know uses one).
    static func braces(_ format: Text, _ args: [Value], _ kwargs: [(String, Value)], _ r: Renderer) throws(TemplateError) -> Text {
        let s = Array(format.string.unicodeScalars)
        var out = Text("")
        var literal = String.UnicodeScalarView()
        func flush() { out.append(format.derived(String(literal))); literal = String.UnicodeScalarView() }
        var auto = 0
        var i = 0
        while i < s.count {
            let u = s[i]
            if u == "{", i + 1 < s.count, s[i + 1] == "{" { literal.append("{"); i += 2; continue }
            if u == "}", i + 1 < s.count, s[i + 1] == "}" { literal.append("}"); i += 2; continue }
            if u == "}" { throw TemplateError(.type, "single '}' encountered in format string", line: r.line) }
            guard u == "{" else { literal.append(u); i += 1; continue }
            guard let close = s[i...].firstIndex(of: "}") else { throw TemplateError(.type, "single '{' encountered in format string", line: r.line) }
            var field = PyString.string(s[(i + 1)..<close])
            i = close + 1
            if field.contains(":") { throw TemplateError(.unsupported, "format specs in str.format are not supported", line: r.line) }
            var conversion = "s"
            if let bang = field.firstIndex(of: "!") {
                conversion = String(field[field.index(after: bang)...])
                field = String(field[..<bang])
            }
            let head = field.prefix { $0 != "." && $0 != "[" }
            var value: Value
            if head.isEmpty {
                guard auto < args.count else { throw TemplateError(.type, "Replacement index \(auto) out of range", line: r.line) }
                value = args[auto]
                auto += 1
            } else if let n = Int(head) {
                guard n < args.count else { throw TemplateError(.type, "Replacement index \(n) out of range", line: r.line) }
                value = args[n]
            } else {
                guard let v = kwargs.first(where: { $0.0 == String(head) })?.1 else { throw TemplateError(.type, "KeyError: '\(head)'", line: r.line) }
                value = v
            }
            var rest = Substring(field.dropFirst(head.count))
            while !rest.isEmpty {
                if rest.first == "." {
                    let name = rest.dropFirst().prefix { $0 != "." && $0 != "[" }
                    value = try Builtins.attribute(value, String(name), r)
                    rest = rest.dropFirst(1 + name.count)
                } else {
                    guard let end = rest.firstIndex(of: "]") else { throw TemplateError(.type, "missing ']' in format string", line: r.line) }
                    let key = rest[rest.index(after: rest.startIndex)..<end]
                    value = try Builtins.item(value, Int(key).map(Value.int) ?? .str(String(key)), r)
                    rest = rest[rest.index(after: end)...]
                }
            }
            flush()
            switch conversion {
            case "s": out.append(pyStr(value))
            case "r": out.append(Text(pyRepr(value), trusted: pyStr(value).isTrusted))
            default: throw TemplateError(.unsupported, "unknown conversion '!\(conversion)'", line: r.line)
            }
            try r.checkSize(out.string.utf8.count)
        }
        flush()
        return out
    }
}

/// `tojson` as transformers defines it: Python's `json.dumps(x, ensure_ascii=False, indent=...,
/// separators=..., sort_keys=...)`. Output that holds any caller text is untrusted as a whole.
enum JSONOutput {
    static func dump(_ v: Value, indent: Value?, ensureASCII: Bool, separators: Value?, sortKeys: Bool, _ r: Renderer) throws(TemplateError) -> Text {
        var indentUnit: String? = nil
        switch indent {
        case .int(let n)?:
            try r.checkSize(n)
            indentUnit = String(repeating: " ", count: max(0, n))
        case .string(let t)?: indentUnit = t.string
        case nil, .none?: break
        case let other?: throw TemplateError(.type, "tojson indent must be an integer or a string, not \(other.typeName)", line: r.line)
        }
        var itemSeparator = indentUnit == nil ? ", " : ","
        var keySeparator = ": "
        if case .tuple(let pair)? = separators ?? .none, pair.count == 2, case .string(let a) = pair[0], case .string(let b) = pair[1] {
            itemSeparator = a.string
            keySeparator = b.string
        } else if case .list(let pair)? = separators, pair.count == 2, case .string(let a) = pair[0], case .string(let b) = pair[1] {
            itemSeparator = a.string
            keySeparator = b.string
        }
        var out = ""
        var trusted = true
        func emit(_ v: Value, _ level: Int) throws(TemplateError) {
            try r.step()
            switch v {
            case .none: out += "null"
            case .bool(let b): out += b ? "true" : "false"
            case .int(let i): out += String(i)
            case .double(let d): out += d.isNaN ? "NaN" : d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : pyFloat(d)
            case .string(let t):
                if !t.isTrusted { trusted = false }
                string(t.string)
            case .list(let items), .tuple(let items):
                if items.isEmpty { out += "[]"; return }
                out += "["
                for (i, item) in items.enumerated() {
                    if i > 0 { out += itemSeparator }
                    newline(level + 1)
                    try emit(item, level + 1)
                }
                newline(level)
                out += "]"
            case .dict(var entries):
                if entries.isEmpty { out += "{}"; return }
                var keyed: [(String, Value)] = []
                for e in entries {
                    let key: String
                    switch e.key {
                    case .string(let t): key = t.string; if !t.isTrusted { trusted = false }
                    case .int(let i): key = String(i)
                    case .double(let d): key = pyFloat(d)
                    case .bool(let b): key = b ? "true" : "false"
                    case .none: key = "null"
                    default: throw TemplateError(.type, "keys must be str, int, float, bool or None, not \(e.key.typeName)", line: r.line)
                    }
                    keyed.append((key, e.value))
                }
                if sortKeys { keyed.sort { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) } }
                entries = []
                out += "{"
                for (i, (key, value)) in keyed.enumerated() {
                    if i > 0 { out += itemSeparator }
                    newline(level + 1)
                    string(key)
                    out += keySeparator
                    try emit(value, level + 1)
                }
                newline(level)
                out += "}"
            case .namespace, .callable, .loop, .undefined:
                throw TemplateError(.type, "Object of type \(v.typeName) is not JSON serializable", line: r.line)
            }
            try r.checkSize(out.utf8.count)
        }
        func newline(_ level: Int) {
            guard let unit = indentUnit else { return }
            out += "\n" + String(repeating: unit, count: level)
        }
        func string(_ s: String) {
            out += "\""
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case "\u{08}": out += "\\b"
                case "\u{0C}": out += "\\f"
                default:
                    if u.value < 0x20 || (ensureASCII && u.value > 0x7e) {
                        if u.value > 0xffff {
                            let v = u.value - 0x10000
                            out += "\\u" + hex(0xd800 + (v >> 10), 4) + "\\u" + hex(0xdc00 + (v & 0x3ff), 4)
                        } else {
                            out += "\\u" + hex(u.value, 4)
                        }
                    } else {
                        out.unicodeScalars.append(u)
                    }
                }
            }
            out += "\""
        }
        try emit(v, 0)
        return Text(out, trusted: trusted)
    }
}

/// The instant `strftime_now` formats (local time, as Python's `datetime.now()`).
public struct CalendarTime: Sendable, Equatable {
    /// The year, e.g. 2025.
    public var year: Int
    /// The month, 1...12.
    public var month: Int
    /// The day of the month, 1...31.
    public var day: Int
    /// The hour, 0...23.
    public var hour: Int
    /// The minute, 0...59.
    public var minute: Int
    /// The second, 0...60 (60: a leap second).
    public var second: Int

    /// A time from its fields, unchecked; `strftime_now` throws a ``TemplateError/Code/type`` error
    /// for a month or day out of range.
    public init(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0) {
        (self.year, self.month, self.day, self.hour, self.minute, self.second) = (year, month, day, hour, minute, second)
    }

    /// The current local time.
    public static func now() -> CalendarTime {
        var t = time(nil)
        var parts = tm()
        localtime_r(&t, &parts)
        return CalendarTime(year: Int(parts.tm_year) + 1900, month: Int(parts.tm_mon) + 1, day: Int(parts.tm_mday),
                            hour: Int(parts.tm_hour), minute: Int(parts.tm_min), second: Int(parts.tm_sec))
    }

    /// Parses `YYYY-MM-DD[THH:MM[:SS]]`.
    public init?(iso8601 s: String) {
        let parts = s.split(whereSeparator: { $0 == "T" || $0 == " " })
        guard let date = parts.first else { return nil }
        let d = date.split(separator: "-").compactMap { Int($0) }
        let t = parts.count > 1 ? parts[1].split(separator: ":").compactMap { Int($0.prefix(2)) } : []
        guard d.count == 3, (1...12).contains(d[1]), (1...31).contains(d[2]), t.count <= 3 else { return nil }
        self.init(year: d[0], month: d[1], day: d[2], hour: t.count > 0 ? t[0] : 0, minute: t.count > 1 ? t[1] : 0, second: t.count > 2 ? t[2] : 0)
    }

    var isLeap: Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }
    var dayOfYear: Int {
        let before = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334][month - 1]
        return before + day + (month > 2 && isLeap ? 1 : 0)
    }
    /// 0 = Monday.
    var weekday: Int {
        let t = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4]
        let y = month < 3 ? year - 1 : year
        let sunday0 = (y + y / 4 - y / 100 + y / 400 + t[month - 1] + day) % 7
        return (sunday0 + 6) % 7
    }

    static let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
    static let days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

    /// C's strftime in the C locale for the directives templates use; `%-d` style (no padding) as glibc.
    func format(_ f: String, line: Int) throws(TemplateError) -> String {
        guard (1...12).contains(month), (1...31).contains(day) else {
            throw TemplateError(.type, "strftime_now: \(year)-\(month)-\(day) is not a date", line: line)
        }
        var out = ""
        var it = f.unicodeScalars.makeIterator()
        while let u = it.next() {
            guard u == "%" else { out.unicodeScalars.append(u); continue }
            guard var d = it.next() else { out += "%"; break }
            var pad = true
            if d == "-" { pad = false; guard let n = it.next() else { break }; d = n }
            func num(_ v: Int, _ width: Int) -> String {
                let s = String(v)
                return pad ? String(repeating: "0", count: max(0, width - s.count)) + s : s
            }
            switch d {
            case "Y": out += String(year)
            case "y": out += num(year % 100, 2)
            case "m": out += num(month, 2)
            case "d": out += num(day, 2)
            case "e": out += pad ? (day < 10 ? " \(day)" : "\(day)") : "\(day)"
            case "H": out += num(hour, 2)
            case "I": out += num(hour % 12 == 0 ? 12 : hour % 12, 2)
            case "M": out += num(minute, 2)
            case "S": out += num(second, 2)
            case "p": out += hour < 12 ? "AM" : "PM"
            case "j": out += num(dayOfYear, 3)
            case "b", "h": out += String(Self.months[month - 1].prefix(3))
            case "B": out += Self.months[month - 1]
            case "a": out += String(Self.days[weekday].prefix(3))
            case "A": out += Self.days[weekday]
            case "u": out += String(weekday + 1)
            case "w": out += String((weekday + 1) % 7)
            case "F": out += "\(year)-\(num(month, 2))-\(num(day, 2))"
            case "T": out += "\(num(hour, 2)):\(num(minute, 2)):\(num(second, 2))"
            case "%": out += "%"
            default: throw TemplateError(.unsupported, "strftime directive '%\(d)' is not supported", line: line)
            }
        }
        return out
    }
}
