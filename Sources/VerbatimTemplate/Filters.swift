#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Jinja2's built-in filters, tests and global functions that chat templates use, plus the
/// globals transformers adds (`raise_exception`, `strftime_now`) and its `tojson`.
extension Builtins {
    typealias Args = [Value]
    typealias Kwargs = [(String, Value)]

    static let maxRange = 100_000   // Jinja2's sandbox refuses longer ranges too

    static func global(_ name: String) -> Value? {
        switch name {
        case "range":
            return .callable(Callable("range") { (r: Renderer, a: Args, _: Kwargs) throws(TemplateError) -> Value in
                var bounds: [Int] = []
                for v in a { bounds.append(try int(v, "range() argument", r) ?? 0) }
                let (start, stop, step): (Int, Int, Int) = switch bounds.count {
                case 1: (0, bounds[0], 1)
                case 2: (bounds[0], bounds[1], 1)
                case 3: (bounds[0], bounds[1], bounds[2])
                default: throw TemplateError(.type, "range expected 1 to 3 arguments, got \(bounds.count)", line: r.line)
                }
                guard step != 0 else { throw TemplateError(.type, "range() arg 3 must not be zero", line: r.line) }
                // In Double: the bounds may be any Int, and their difference must not trap.
                let span = step > 0 ? Double(stop) - Double(start) : Double(start) - Double(stop)
                let count = span <= 0 ? 0 : (span / Double(step.magnitude)).rounded(.up)
                guard count <= Double(maxRange) else { throw TemplateError(.limit, "range() of \(count) items is longer than \(maxRange)", line: r.line) }
                return .list(stride(from: start, to: stop, by: step).map(Value.int))
            })
        case "dict":
            return .callable(Callable("dict") { (_: Renderer, a: Args, k: Kwargs) throws(TemplateError) -> Value in
                var entries: [(key: Value, value: Value)] = []
                if case .dict(let d)? = a.first { entries = d }
                for (key, v) in k { entries.append((.str(key), v)) }
                return .dict(entries)
            })
        case "namespace":
            return .callable(Callable("namespace") { (_: Renderer, a: Args, k: Kwargs) throws(TemplateError) -> Value in
                var entries: [(key: Value, value: Value)] = []
                if case .dict(let d)? = a.first { entries = d }
                for (key, v) in k {
                    if let i = entries.firstIndex(where: { pyEqual($0.key, .str(key)) }) { entries[i].value = v } else { entries.append((.str(key), v)) }
                }
                return .namespace(Namespace(entries))
            })
        case "raise_exception":
            return .callable(Callable("raise_exception") { (r: Renderer, a: Args, _: Kwargs) throws(TemplateError) -> Value in
                throw TemplateError(.raised, a.first.map { pyStr($0).string } ?? "", line: r.line)
            })
        case "strftime_now":
            return .callable(Callable("strftime_now") { (r: Renderer, a: Args, _: Kwargs) throws(TemplateError) -> Value in
                guard case .string(let f)? = a.first else { throw TemplateError(.type, "strftime_now takes a format string", line: r.line) }
                return .str(try r.now.format(f.string, line: r.line))
            })
        default:
            return nil
        }
    }

    // MARK: Tests (`x is defined`)

    static func test(_ name: String, _ v: Value, _ args: Args, _ r: Renderer) throws(TemplateError) -> Bool {
        func arg() throws(TemplateError) -> Value {
            guard let a = args.first else { throw TemplateError(.type, "test '\(name)' needs an argument", line: r.line) }
            return a
        }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": if case .none = v { return true }; return false
        case "boolean": if case .bool = v { return true }; return false
        case "true": if case .bool(true) = v { return true }; return false
        case "false": if case .bool(false) = v { return true }; return false
        case "integer": if case .int = v { return true }; return false
        case "float": if case .double = v { return true }; return false
        case "number": return numeric(v) != nil
        case "string": if case .string = v { return true }; return false
        case "mapping": if case .dict = v { return true }; return false
        case "iterable":
            switch v { case .string, .list, .tuple, .dict, .undefined: return true; default: return false }
        case "sequence":
            switch v { case .string, .list, .tuple, .dict: return true; default: return false }
        case "callable": if case .callable = v { return true }; return false
        case "odd", "even":
            guard case .int(let i) = v else { throw TemplateError(.type, "test '\(name)' needs an integer, not \(v.typeName)", line: r.line) }
            return (i & 1 == 1) == (name == "odd")
        case "divisibleby":
            guard case .int(let i) = v, case .int(let n) = try arg(), n != 0 else {
                throw TemplateError(.type, "test 'divisibleby' needs integers", line: r.line)
            }
            return i % n == 0
        case "eq", "equalto", "==": return pyEqual(v, try arg())
        case "ne", "!=": return !pyEqual(v, try arg())
        case "lt", "lessthan", "<": return try pyLess(v, try arg(), line: r.line)
        case "gt", "greaterthan", ">": return try pyLess(try arg(), v, line: r.line)
        case "le", "<=": let a = try arg(); return try pyLess(v, a, line: r.line) || pyEqual(v, a)
        case "ge", ">=": let a = try arg(); return try pyLess(a, v, line: r.line) || pyEqual(v, a)
        case "in": return try contains(try arg(), v, r)
        case "sameas":
            let a = try arg()
            switch (v, a) {
            case (.none, .none): return true
            case (.bool(let x), .bool(let y)): return x == y
            case (.namespace(let x), .namespace(let y)): return x === y
            default: return false
            }
        case "lower", "upper":
            guard case .string(let t) = v else { return false }
            return name == "lower" ? t.string == t.string.lowercased() : t.string == t.string.uppercased()
        case "escaped": return false
        case "filter": if case .string(let t) = v { return filterNames.contains(t.string) }; return false
        case "test": if case .string(let t) = v { return testNames.contains(t.string) }; return false
        default:
            throw TemplateError(.unsupported, "no test named '\(name)'", line: r.line)
        }
    }

    static let testNames: Set<String> = ["defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number",
                                         "string", "mapping", "iterable", "sequence", "callable", "odd", "even", "divisibleby",
                                         "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "gt", "greaterthan", ">",
                                         "le", "<=", "ge", ">=", "in", "sameas", "lower", "upper", "escaped", "filter", "test"]

    // MARK: Filters (`x | trim`)

    static let filterNames: Set<String> = ["trim", "tojson", "length", "count", "upper", "lower", "capitalize", "title", "replace",
                                           "default", "d", "join", "first", "last", "list", "string", "int", "float", "abs",
                                           "round", "items", "dictsort", "selectattr", "rejectattr", "select", "reject", "map",
                                           "unique", "sort", "reverse", "sum", "min", "max", "safe", "indent", "format",
                                           "escape", "e", "attr", "wordcount"]

    static func filter(_ name: String, _ v: Value, _ a: Args, _ k: Kwargs, _ r: Renderer) throws(TemplateError) -> Value {
        func arg(_ i: Int, _ key: String) -> Value? { Methods.argument(a, k, i, key) }
        func text(_ x: Value) -> Text { pyStr(x) }
        switch name {
        case "safe": return v
        case "string": return .string(text(v))
        case "trim":
            let t = text(v)
            let chars = try Methods.stringArgument(arg(0, "chars"), "trim chars", r)
            return .string(t.derived(PyString.string(PyString.strip(Array(t.string.unicodeScalars), chars, left: true, right: true))))
        case "upper", "lower", "capitalize", "title":
            let t = text(v)
            let s = Array(t.string.unicodeScalars)
            let out = switch name {
            case "upper": t.string.uppercased()
            case "lower": t.string.lowercased()
            case "capitalize": PyString.capitalize(s)
            default: PyString.title(s)
            }
            return .string(t.derived(out))
        case "replace":
            let t = text(v)
            guard case .string(let old)? = arg(0, "old"), case .string(let new)? = arg(1, "new") else {
                throw TemplateError(.type, "replace needs two strings", line: r.line)
            }
            let count = try arg(2, "count").map { x throws(TemplateError) in try int(x, "count", r) ?? -1 } ?? -1
            let out = PyString.replace(Array(t.string.unicodeScalars), Array(old.string.unicodeScalars), Array(new.string.unicodeScalars), count: count)
            try r.checkSize(out.count)
            let trusted = t.isTrusted && new.isTrusted
            return .string(Text(PyString.string(out), trusted: trusted))
        case "length", "count":
            switch v {
            case .string(let t): return .int(t.string.unicodeScalars.count)
            case .list(let x), .tuple(let x): return .int(x.count)
            case .dict(let d): return .int(d.count)
            case .namespace(let ns): return .int(ns.entries.count)
            case .undefined: return .int(0)
            default: throw TemplateError(.type, "object of type '\(v.typeName)' has no len()", line: r.line)
            }
        case "default", "d":
            let fallback = arg(0, "default_value") ?? .str("")
            let boolean = arg(1, "boolean")?.truthy ?? false
            if v.isUndefined || (boolean && !v.truthy) { return fallback }
            return v
        case "join":
            let separator = arg(0, "d").map(text) ?? Text("")
            var items = try r.iterate(v)
            if let attribute = arg(1, "attribute") { items = try items.map { x throws(TemplateError) in try attributePath(x, attribute, r) } }
            var out = Text("")
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(separator) }
                out.append(text(item))
                try r.checkSize(out.string.utf8.count)
            }
            return .string(out)
        case "first":
            return try r.iterate(v).first ?? .undefined("no first item, sequence was empty")
        case "last":
            return try r.iterate(v).last ?? .undefined("no last item, sequence was empty")
        case "list":
            return .list(try r.iterate(v))
        case "int":
            let fallback = arg(0, "default") ?? .int(0)
            switch v {
            case .int: return v
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return d.isFinite && d.magnitude < 9.2e18 ? .int(Int(d)) : fallback
            case .string(let t):
                let s = t.string.trimmingCharacters(in: PyString.isSpace).filter { $0 != "_" }
                if let i = Int(s) { return .int(i) }
                if let d = Double(s), d.isFinite, d.magnitude < 9.2e18 { return .int(Int(d)) }
                return fallback
            default: return fallback
            }
        case "float":
            let fallback = arg(0, "default") ?? .double(0)
            switch v {
            case .double: return v
            case .int(let i): return .double(Double(i))
            case .bool(let b): return .double(b ? 1 : 0)
            case .string(let t): return Double(t.string.trimmingCharacters(in: PyString.isSpace)).map(Value.double) ?? fallback
            default: return fallback
            }
        case "abs":
            switch v {
            case .int(let i): return .int(abs(i))
            case .double(let d): return .double(abs(d))
            case .bool(let b): return .int(b ? 1 : 0)
            default: throw TemplateError(.type, "bad operand type for abs(): '\(v.typeName)'", line: r.line)
            }
        case "round":
            guard let x = numeric(v) else { throw TemplateError(.type, "round needs a number, not \(v.typeName)", line: r.line) }
            let precision = try arg(0, "precision").map { p throws(TemplateError) in try int(p, "precision", r) ?? 0 } ?? 0
            let method = arg(1, "method").map { text($0).string } ?? "common"
            let scale = pow(10.0, Double(precision))
            let rule: FloatingPointRoundingRule = method == "ceil" ? .up : method == "floor" ? .down : .toNearestOrEven   // Python's round()
            return .double((x * scale).rounded(rule) / scale)
        case "items":
            switch v {
            case .dict(let d): return .list(d.map { .tuple([$0.key, $0.value]) })
            case .undefined: return .list([])
            default: throw TemplateError(.type, "can only get item pairs from a mapping, not \(v.typeName)", line: r.line)
            }
        case "dictsort":
            guard case .dict(let d) = v else { throw TemplateError(.type, "dictsort needs a mapping", line: r.line) }
            let caseSensitive = arg(0, "case_sensitive")?.truthy ?? false
            let byValue = arg(1, "by").map { text($0).string == "value" } ?? false
            let reverse = arg(2, "reverse")?.truthy ?? false
            return .list(try sortValues(d.map { Value.tuple([$0.key, $0.value]) }, reverse: reverse, r) { x throws(TemplateError) in
                guard case .tuple(let pair) = x else { return x }
                return fold(pair[byValue ? 1 : 0], caseSensitive)
            })
        case "selectattr", "rejectattr", "select", "reject":
            let byAttribute = name.hasSuffix("attr")
            var rest = a
            var attribute: Value? = nil
            if byAttribute {
                guard !rest.isEmpty else { throw TemplateError(.type, "\(name) needs an attribute name", line: r.line) }
                attribute = rest.removeFirst()
            }
            let testName = rest.isEmpty ? nil : text(rest.removeFirst()).string
            let keep = name.hasPrefix("select")
            var out: [Value] = []
            for item in v.truthy ? try r.iterate(v) : [] {   // Jinja2 walks only a truthy value
                let subject = try attribute.map { x throws(TemplateError) in try attributePath(item, x, r) } ?? item
                let passed = try testName.map { t throws(TemplateError) in try test(t, subject, rest, r) } ?? subject.truthy
                if passed == keep { out.append(item) }
            }
            return .list(out)
        case "map":
            var out: [Value] = []
            if let attribute = k.first(where: { $0.0 == "attribute" })?.1 {
                let fallback = k.first(where: { $0.0 == "default" })?.1
                for item in v.truthy ? try r.iterate(v) : [] {
                    let x = try attributePath(item, attribute, r)
                    out.append(x.isUndefined ? (fallback ?? x) : x)
                }
            } else {
                guard let f = a.first else { throw TemplateError(.type, "map needs a filter name or attribute=", line: r.line) }
                let filterName = text(f).string
                for item in v.truthy ? try r.iterate(v) : [] { out.append(try filter(filterName, item, Array(a.dropFirst()), [], r)) }
            }
            return .list(out)
        case "unique":
            let caseSensitive = arg(0, "case_sensitive")?.truthy ?? false
            var seen: [Value] = [], out: [Value] = []
            for item in try r.iterate(v) {
                let key = try arg(1, "attribute").map { x throws(TemplateError) in try attributePath(item, x, r) } ?? item
                let folded = fold(key, caseSensitive)
                if !seen.contains(where: { pyEqual($0, folded) }) { seen.append(folded); out.append(item) }
            }
            return .list(out)
        case "sort":
            let reverse = arg(0, "reverse")?.truthy ?? false
            let caseSensitive = arg(1, "case_sensitive")?.truthy ?? false
            let attribute = arg(2, "attribute")
            return .list(try sortValues(try r.iterate(v), reverse: reverse, r) { x throws(TemplateError) in
                fold(try attribute.map { p throws(TemplateError) in try attributePath(x, p, r) } ?? x, caseSensitive)
            })
        case "reverse":
            if case .string(let t) = v { return .string(t.derived(PyString.string(t.string.unicodeScalars.reversed()))) }
            return .list(try r.iterate(v).reversed())
        case "sum":
            var total = arg(1, "start") ?? .int(0)
            for item in try r.iterate(v) {
                let x = try arg(0, "attribute").map { p throws(TemplateError) in try attributePath(item, p, r) } ?? item
                total = try binary(.add, total, x, r)
            }
            return total
        case "min", "max":
            let items = try r.iterate(v)
            guard !items.isEmpty else { return .undefined("no \(name) item, sequence was empty") }
            let caseSensitive = arg(0, "case_sensitive")?.truthy ?? false
            let sorted = try sortValues(items, r) { x throws(TemplateError) in
                fold(try arg(1, "attribute").map { p throws(TemplateError) in try attributePath(x, p, r) } ?? x, caseSensitive)
            }
            return name == "min" ? sorted.first! : sorted.last!
        case "indent":
            let t = text(v)
            var indentation = Text("    ")
            switch arg(0, "width") {
            case .string(let s)?: indentation = s
            case let w?:
                let width = max(0, try int(w, "width", r) ?? 4)
                try r.checkSize(width)
                indentation = Text(String(repeating: " ", count: width))
            case nil: break
            }
            let first = arg(1, "first")?.truthy ?? false
            let blank = arg(2, "blank")?.truthy ?? false
            let lines = Array((t.string + "\n").split(separator: "\n", omittingEmptySubsequences: false).dropLast())
            var out = Text("")
            for (i, line) in lines.enumerated() {
                if i > 0 { out.append(Text("\n")) }
                if (i > 0 || first) && (blank || !line.isEmpty) { out.append(indentation) }
                out.append(t.derived(String(line)))
            }
            return .string(out)
        case "format":
            let args: Value = k.isEmpty ? .tuple(a) : .dict(k.map { (key: .str($0.0), value: $0.1) })
            return .string(try Format.percent(text(v), args, r))
        case "escape", "e":
            let t = text(v)
            var out = ""
            for c in t.string.unicodeScalars {
                switch c {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&#34;"
                case "'": out += "&#39;"
                default: out.unicodeScalars.append(c)
                }
            }
            return .string(t.derived(out))
        case "attr":
            guard case .string(let n)? = a.first else { throw TemplateError(.type, "attr needs a name", line: r.line) }
            return try attribute(v, n.string, r)
        case "wordcount":
            return .int(PyString.split(Array(text(v).string.unicodeScalars), nil, maxSplit: -1).count)
        case "tojson":
            return .string(try JSONOutput.dump(v, indent: arg(1, "indent") ?? k.first { $0.0 == "indent" }?.1,
                                               ensureASCII: k.first { $0.0 == "ensure_ascii" }?.1.truthy ?? false,
                                               separators: k.first { $0.0 == "separators" }?.1,
                                               sortKeys: k.first { $0.0 == "sort_keys" }?.1.truthy ?? false, r))
        default:
            throw TemplateError(.unsupported, "no filter named '\(name)'", line: r.line)
        }
    }

    /// `a.b.c` (or an integer index) as `selectattr`/`map` read it: items first, then attributes.
    static func attributePath(_ item: Value, _ path: Value, _ r: Renderer) throws(TemplateError) -> Value {
        if case .int = path { return try self.item(item, path, r) }
        var v = item
        for part in pyStr(path).string.split(separator: ".") {
            if v.isUndefined { return v }
            let key: Value = Int(part).map(Value.int) ?? .str(String(part))
            v = try self.item(v, key, r)
        }
        return v
    }

    static func fold(_ v: Value, _ caseSensitive: Bool) -> Value {
        if !caseSensitive, case .string(let t) = v { return .str(t.string.lowercased()) }
        return v
    }

    /// A stable sort by Python's `<` on keys (reversed, equal keys keep their order, as Python's).
    static func sortValues(_ items: [Value], reverse: Bool = false, _ r: Renderer, key: (Value) throws(TemplateError) -> Value) throws(TemplateError) -> [Value] {
        var keyed: [(Value, Value)] = []
        for item in items { keyed.append((try key(item), item)) }
        // Insertion sort: stable, throws through, and the lists are short.
        for i in 1..<max(keyed.count, 1) {
            var j = i
            while j > 0, try reverse ? pyLess(keyed[j - 1].0, keyed[j].0, line: r.line) : pyLess(keyed[j].0, keyed[j - 1].0, line: r.line) {
                keyed.swapAt(j, j - 1)
                j -= 1
                try r.step()
            }
        }
        return keyed.map(\.1)
    }
}

extension String {
    func trimmingCharacters(in isSpace: (Unicode.Scalar) -> Bool) -> String {
        PyString.string(PyString.strip(Array(unicodeScalars), nil, left: true, right: true))
    }
}
