/// Python's str operations on code points (Swift's String compares grapheme clusters under
/// canonical equivalence; Python compares code points, and so must a template).
enum PyString {
    typealias Scalars = [Unicode.Scalar]

    static func isSpace(_ u: Unicode.Scalar) -> Bool {
        u.properties.isWhitespace || (0x1c...0x1f).contains(u.value)
    }

    static func string(_ s: some Sequence<Unicode.Scalar>) -> String {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: s)
        return String(v)
    }

    static func find(_ hay: Scalars, _ needle: Scalars, from start: Int, to end: Int? = nil) -> Int? {
        let end = min(end ?? hay.count, hay.count)
        guard start >= 0, needle.count <= end - start else { return nil }
        if needle.isEmpty { return start }
        var i = start
        while i + needle.count <= end {
            if hay[i] == needle[0], hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    static func rfind(_ hay: Scalars, _ needle: Scalars) -> Int? {
        guard needle.count <= hay.count else { return nil }
        var i = hay.count - needle.count
        while i >= 0 {
            if hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i -= 1
        }
        return nil
    }

    static func strip(_ s: Scalars, _ chars: Scalars?, left: Bool, right: Bool) -> Scalars {
        let drop: (Unicode.Scalar) -> Bool = chars.map { set in { set.contains($0) } } ?? isSpace
        var lo = 0, hi = s.count
        if left { while lo < hi, drop(s[lo]) { lo += 1 } }
        if right { while hi > lo, drop(s[hi - 1]) { hi -= 1 } }
        return Array(s[lo..<hi])
    }

    static func split(_ s: Scalars, _ sep: Scalars?, maxSplit: Int) -> [Scalars] {
        var parts: [Scalars] = []
        if let sep {
            var start = 0
            while maxSplit < 0 || parts.count < maxSplit, let i = find(s, sep, from: start) {
                parts.append(Array(s[start..<i]))
                start = i + sep.count
            }
            parts.append(Array(s[start...]))
            return parts
        }
        var i = 0
        while true {
            while i < s.count, isSpace(s[i]) { i += 1 }
            if i == s.count { break }
            if maxSplit >= 0, parts.count == maxSplit {
                parts.append(Array(strip(Array(s[i...]), nil, left: false, right: true)))
                break
            }
            let start = i
            while i < s.count, !isSpace(s[i]) { i += 1 }
            parts.append(Array(s[start..<i]))
        }
        return parts
    }

    static func rsplit(_ s: Scalars, _ sep: Scalars?, maxSplit: Int) -> [Scalars] {
        if maxSplit < 0 { return split(s, sep, maxSplit: -1) }
        let reversed = split(Array(s.reversed()), sep.map { Array($0.reversed()) }, maxSplit: maxSplit)
        return reversed.reversed().map { Array($0.reversed()) }
    }

    static func replace(_ s: Scalars, _ old: Scalars, _ new: Scalars, count: Int) -> Scalars {
        var out: Scalars = []
        var done = 0
        if old.isEmpty {
            for u in s {
                if count < 0 || done < count { out += new; done += 1 }
                out.append(u)
            }
            if count < 0 || done < count { out += new }
            return out
        }
        var start = 0
        while count < 0 || done < count, let i = find(s, old, from: start) {
            out += s[start..<i]
            out += new
            start = i + old.count
            done += 1
        }
        out += s[start...]
        return out
    }

    static func title(_ s: Scalars) -> String {
        var out = ""
        var previousCased = false
        for u in s {
            out += previousCased ? String(u).lowercased() : (u.properties.titlecaseMapping)
            previousCased = u.properties.isCased
        }
        return out
    }

    static func capitalize(_ s: Scalars) -> String {
        guard let first = s.first else { return "" }
        return first.properties.titlecaseMapping + string(s.dropFirst()).lowercased()
    }
}

/// The methods of str, dict and list that templates call (`content.strip()`, `message.get('x')`).
/// Methods that would change a value are refused, as in Jinja2's immutable sandbox.
enum Methods {
    typealias Args = [Value]
    typealias Kwargs = [(String, Value)]

    static func bind(_ object: Value, _ name: String) -> Callable? {
        switch object {
        case .string(let t): return stringMethod(t, name)
        case .dict(let d): return dictMethod(d, name)
        case .list(let a), .tuple(let a): return listMethod(a, name, object.typeName)
        default: return nil
        }
    }

    private static func method(_ name: String, _ body: @escaping (Renderer, Args, Kwargs) throws(TemplateError) -> Value) -> Callable {
        Callable(name, body)
    }

    static func argument(_ args: Args, _ kwargs: Kwargs, _ i: Int, _ name: String) -> Value? {
        if i < args.count { return args[i] }
        return kwargs.first { $0.0 == name }?.1
    }

    static func stringArgument(_ v: Value?, _ what: String, _ r: Renderer) throws(TemplateError) -> [Unicode.Scalar]? {
        switch v {
        case nil, .none?: return nil
        case .string(let t)?: return Array(t.string.unicodeScalars)
        case let other?: throw TemplateError(.type, "\(what) must be str or None, not \(other.typeName)", line: r.line)
        }
    }

    private static func unsafe(_ name: String, _ type: String) -> Callable {
        method(name) { (r: Renderer, _: Args, _: Kwargs) throws(TemplateError) -> Value in
            throw TemplateError(.unsupported, "access to attribute '\(name)' of '\(type)' object is unsafe (templates cannot modify values)", line: r.line)
        }
    }

    private static func stringMethod(_ t: Text, _ name: String) -> Callable? {
        let s = Array(t.string.unicodeScalars)
        func str(_ x: [Unicode.Scalar]) -> Value { .string(t.derived(PyString.string(x))) }
        switch name {
        case "strip", "lstrip", "rstrip":
            return method(name) { (r: Renderer, a: Args, k: Kwargs) throws(TemplateError) -> Value in
                let chars = try stringArgument(argument(a, k, 0, "chars"), "strip arg", r)
                return str(PyString.strip(s, chars, left: name != "rstrip", right: name != "lstrip"))
            }
        case "split", "rsplit":
            return method(name) { (r: Renderer, a: Args, k: Kwargs) throws(TemplateError) -> Value in
                let sep = try stringArgument(argument(a, k, 0, "sep"), "sep", r)
                if sep?.isEmpty == true { throw TemplateError(.type, "empty separator", line: r.line) }
                let maxSplit = try argument(a, k, 1, "maxsplit").map { v throws(TemplateError) in try Builtins.int(v, "maxsplit", r) ?? -1 } ?? -1
                let parts = name == "split" ? PyString.split(s, sep, maxSplit: maxSplit) : PyString.rsplit(s, sep, maxSplit: maxSplit)
                return .list(parts.map(str))
            }
        case "splitlines":
            return method(name) { (_: Renderer, a: Args, k: Kwargs) throws(TemplateError) -> Value in
                let keep = argument(a, k, 0, "keepends")?.truthy ?? false
                var lines: [Value] = []
                var start = 0, i = 0
                let breaks: Set<UInt32> = [0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029]
                while i < s.count {
                    if breaks.contains(s[i].value) {
                        var end = i + 1
                        if s[i] == "\r", end < s.count, s[end] == "\n" { end += 1 }
                        lines.append(str(Array(s[start..<(keep ? end : i)])))
                        start = end
                        i = end
                    } else { i += 1 }
                }
                if start < s.count { lines.append(str(Array(s[start...]))) }
                return .list(lines)
            }
        case "startswith", "endswith":
            return method(name) { (r: Renderer, a: Args, _: Kwargs) throws(TemplateError) -> Value in
                guard let first = a.first else { throw TemplateError(.type, "\(name) takes at least 1 argument", line: r.line) }
                var candidates: [Value] = [first]
                if case .tuple(let items) = first { candidates = items }
                let lo = try a.count > 1 ? (Builtins.int(a[1], "start", r) ?? 0) : 0
                let hi = try a.count > 2 ? (Builtins.int(a[2], "end", r) ?? s.count) : s.count
                let clampLo = max(0, lo < 0 ? lo + s.count : lo), clampHi = min(s.count, hi < 0 ? hi + s.count : hi)
                let window = clampLo <= clampHi ? Array(s[clampLo..<clampHi]) : []
                for c in candidates {
                    guard case .string(let p) = c else {
                        throw TemplateError(.type, "\(name) first arg must be str or a tuple of str, not \(c.typeName)", line: r.line)
                    }
                    let ps = Array(p.string.unicodeScalars)
                    if clampLo > clampHi { continue }
                    if name == "startswith" ? window.starts(with: ps) : window.reversed().starts(with: ps.reversed()) { return .bool(true) }
                }
                return .bool(false)
            }
        case "upper": return method(name) { (_: Renderer, _: Args, _: Kwargs) throws(TemplateError) -> Value in .string(t.derived(t.string.uppercased())) }
        case "lower": return method(name) { (_: Renderer, _: Args, _: Kwargs) throws(TemplateError) -> Value in .string(t.derived(t.string.lowercased())) }
        case "title": return method(name) { (_: Renderer, _: Args, _: Kwargs) throws(TemplateError) -> Value in .string(t.derived(PyString.title(s))) }
        case "capitalize": return method(name) { (_: Renderer, _: Args, _: Kwargs) throws(TemplateError) -> Value in .string(t.derived(PyString.capitalize(s))) }
        case "replace":
            return method(name) { (r: Renderer, a: Args, k: Kwargs) throws(TemplateError) -> Value in
                guard let old = try stringArgument(argument(a, k, 0, "old"), "replace() argument 1", r),
                      let new = try stringArgument(argument(a, k, 1, "new"), "replace() argument 2", r) else {
                    throw TemplateError(.type, "replace() takes two str arguments", line: r.line)
                }
                let count = try argument(a, k, 2, "count").map { v throws(TemplateError) in try Builtins.int(v, "count", r) ?? -1 } ?? -1
                let out = PyString.replace(s, old, new, count: count)
                try r.checkSize(out.count)
                return str(out)
            }
        case "find", "rfind", "index", "rindex", "count":
            return method(name) { (r: Renderer, a: Args, _: Kwargs) throws(TemplateError) -> Value in
                guard let sub = try stringArgument(a.first, "\(name) argument", r) else {
                    throw TemplateError(.type, "\(name)() takes a str argument", line: r.line)
                }
                if name == "count" {
                    if sub.isEmpty { return .int(s.count + 1) }
                    var n = 0, start = 0
                    while let i = PyString.find(s, sub, from: start) { n += 1; start = i + sub.count }
                    return .int(n)
                }
                let i = name.hasPrefix("r") ? PyString.rfind(s, sub) : PyString.find(s, sub, from: 0)
                if i == nil, name.hasSuffix("index") { throw TemplateError(.type, "substring not found", line: r.line) }
                return .int(i ?? -1)
            }
        case "join":
            return method(name) { (r: Renderer, a: Args, _: Kwargs) throws(TemplateError) -> Value in
                var out = Text("")
                for (i, item) in try r.iterate(a.first ?? .undefined("join() takes one argument")).enumerated() {
                    guard case .string(let part) = item else {
                        throw TemplateError(.type, "sequence item \(i): expected str instance, \(item.typeName) found", line: r.line)
                    }
                    if i > 0 { out.append(t) }
                    out.append(part)
                    try r.checkSize(out.string.utf8.count)
                }
                return .string(out)
            }
        case "format":
            return method(name) { (r: Renderer, a: Args, k: Kwargs) throws(TemplateError) -> Value in
                .string(try Format.braces(t, a, k, r))
            }
        case "removeprefix", "removesuffix":
            return method(name) { (r: Renderer, a: Args, _: Kwargs) throws(TemplateError) -> Value in
                guard let affix = try stringArgument(a.first, "\(name) argument", r) else {
                    throw TemplateError(.type, "\(name)() takes a str argument", line: r.line)
                }
                if name == "removeprefix", s.starts(with: affix) { return str(Array(s.dropFirst(affix.count))) }
                if name == "removesuffix", !affix.isEmpty, s.reversed().starts(with: affix.reversed()) { return str(Array(s.dropLast(affix.count))) }
                return .string(t)
            }
        case "isdigit", "isdecimal", "isnumeric", "isalpha", "isalnum", "isspace", "isupper", "islower":
            return method(name) { (_: Renderer, _: Args, _: Kwargs) throws(TemplateError) -> Value in
                guard !s.isEmpty else { return .bool(false) }
                func digit(_ u: Unicode.Scalar) -> Bool { u.properties.numericType != nil }
                func alpha(_ u: Unicode.Scalar) -> Bool { u.properties.isAlphabetic }
                switch name {
                case "isdigit", "isdecimal", "isnumeric": return .bool(s.allSatisfy(digit))
                case "isalpha": return .bool(s.allSatisfy(alpha))
                case "isalnum": return .bool(s.allSatisfy { alpha($0) || digit($0) })
                case "isspace": return .bool(s.allSatisfy(PyString.isSpace))
                case "isupper": return .bool(s.contains { $0.properties.isCased } && !s.contains { $0.properties.isLowercase })
                default: return .bool(s.contains { $0.properties.isCased } && !s.contains { $0.properties.isUppercase })
                }
            }
        default: return nil
        }
    }

    private static func dictMethod(_ d: [(key: Value, value: Value)], _ name: String) -> Callable? {
        switch name {
        case "items": return method(name) { (_: Renderer, _: Args, _: Kwargs) throws(TemplateError) -> Value in .list(d.map { .tuple([$0.key, $0.value]) }) }
        case "keys": return method(name) { (_: Renderer, _: Args, _: Kwargs) throws(TemplateError) -> Value in .list(d.map(\.key)) }
        case "values": return method(name) { (_: Renderer, _: Args, _: Kwargs) throws(TemplateError) -> Value in .list(d.map(\.value)) }
        case "get":
            return method(name) { (r: Renderer, a: Args, _: Kwargs) throws(TemplateError) -> Value in
                guard let key = a.first else { throw TemplateError(.type, "get expected at least 1 argument", line: r.line) }
                return Value.lookup(d, key) ?? (a.count > 1 ? a[1] : .none)
            }
        case "pop", "popitem", "update", "setdefault", "clear":
            return unsafe(name, "dict")
        default: return nil
        }
    }

    private static func listMethod(_ items: [Value], _ name: String, _ type: String) -> Callable? {
        switch name {
        case "index":
            return method(name) { (r: Renderer, a: Args, _: Kwargs) throws(TemplateError) -> Value in
                guard let x = a.first, let i = items.firstIndex(where: { pyEqual($0, x) }) else {
                    throw TemplateError(.type, "value is not in \(type)", line: r.line)
                }
                return .int(i)
            }
        case "count":
            return method(name) { (_: Renderer, a: Args, _: Kwargs) throws(TemplateError) -> Value in
                .int(items.filter { pyEqual($0, a.first ?? .none) }.count)
            }
        case "append", "extend", "insert", "pop", "remove", "sort", "reverse", "clear":
            return unsafe(name, type)
        default: return nil
        }
    }
}
