#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Attribute and item access, slicing, arithmetic and comparison with Python's semantics.
enum Builtins {
    static func undefinedError(_ v: Value, _ r: Renderer) -> TemplateError {
        if case .undefined(let why) = v { return TemplateError(.undefined, why, line: r.line) }
        return TemplateError(.type, "unexpected \(v.typeName)", line: r.line)
    }

    /// `obj.name`: a method or attribute first, then a dictionary key (Jinja2's `getattr`).
    static func attribute(_ object: Value, _ name: String, _ r: Renderer) throws(TemplateError) -> Value {
        switch object {
        case .undefined: throw undefinedError(object, r)
        case .loop(let state): return loopAttribute(state, name)
        case .namespace(let ns): return Value.lookup(ns.entries, .str(name)) ?? .undefined("'Namespace' object has no attribute '\(name)'")
        default:
            if let method = Methods.bind(object, name) { return .callable(method) }
            if case .dict(let d) = object { return Value.lookup(d, .str(name)) ?? .undefined("'dict object' has no attribute '\(name)'") }
            return .undefined("'\(object.typeName) object' has no attribute '\(name)'")
        }
    }

    /// `obj[key]`: an item first, then (for a string key) a method or attribute (Jinja2's `getitem`).
    static func item(_ object: Value, _ key: Value, _ r: Renderer) throws(TemplateError) -> Value {
        switch (object, key) {
        case (.undefined, _): throw undefinedError(object, r)
        case (.dict(let d), _):
            if let v = Value.lookup(d, key) { return v }
        case (.list(let a), .int(let i)), (.tuple(let a), .int(let i)):
            let j = i < 0 ? i + a.count : i
            if j >= 0, j < a.count { return a[j] }
            return .undefined("\(object.typeName) object has no element \(i)")
        case (.string(let t), .int(let i)):
            let scalars = Array(t.string.unicodeScalars)
            let j = i < 0 ? i + scalars.count : i
            if j >= 0, j < scalars.count { return .string(t.derived(String(scalars[j]))) }
            return .undefined("str object has no element \(i)")
        case (.namespace(let ns), _):
            if let v = Value.lookup(ns.entries, key) { return v }
        case (.loop, .string(let t)):
            return try attribute(object, t.string, r)
        default: break
        }
        if case .string(let t) = key, case .dict = object {
            if let method = Methods.bind(object, t.string) { return .callable(method) }
        } else if case .string(let t) = key, let method = Methods.bind(object, t.string) {
            return .callable(method)
        }
        return .undefined("\(object.typeName) object has no element \(pyRepr(key))")
    }

    static func loopAttribute(_ s: LoopState, _ name: String) -> Value {
        let n = s.items.count, i = s.index0
        switch name {
        case "index": return .int(i + 1)
        case "index0": return .int(i)
        case "revindex": return .int(n - i)
        case "revindex0": return .int(n - i - 1)
        case "first": return .bool(i == 0)
        case "last": return .bool(i == n - 1)
        case "length": return .int(n)
        case "depth": return .int(s.depth0 + 1)
        case "depth0": return .int(s.depth0)
        case "previtem": return i > 0 ? s.items[i - 1] : .undefined("there is no previous item")
        case "nextitem": return i + 1 < n ? s.items[i + 1] : .undefined("there is no next item")
        case "cycle":
            return .callable(Callable("loop.cycle") { (r: Renderer, args: [Value], _: [(String, Value)]) throws(TemplateError) -> Value in
                guard !args.isEmpty else { throw TemplateError(.type, "no items for cycling given", line: r.line) }
                return args[s.index0 % args.count]
            })
        default: return .undefined("'LoopContext' object has no attribute '\(name)'")
        }
    }

    static func int(_ v: Value, _ what: String, _ r: Renderer) throws(TemplateError) -> Int? {
        switch v {
        case .none: return nil
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: throw TemplateError(.type, "\(what) must be an integer or None, not \(v.typeName)", line: r.line)
        }
    }

    /// Python slice semantics (negative indices, steps, clamping).
    static func slice(_ object: Value, _ start: Value, _ stop: Value, _ step: Value, _ r: Renderer) throws(TemplateError) -> Value {
        let stepValue = try int(step, "slice step", r) ?? 1
        guard stepValue != 0 else { throw TemplateError(.type, "slice step cannot be zero", line: r.line) }
        func indices(_ n: Int) throws(TemplateError) -> [Int] {
            func clamp(_ v: Int?, _ default: Int) -> Int {
                guard var x = v else { return `default` }
                if x < 0 { x += n }
                return stepValue > 0 ? min(max(x, 0), n) : min(max(x, -1), n - 1)
            }
            let lo = clamp(try int(start, "slice start", r), stepValue > 0 ? 0 : n - 1)
            let hi = clamp(try int(stop, "slice stop", r), stepValue > 0 ? n : -1)
            return Array(stride(from: lo, to: hi, by: stepValue))
        }
        switch object {
        case .list(let a): return .list(try indices(a.count).map { a[$0] })
        case .tuple(let a): return .tuple(try indices(a.count).map { a[$0] })
        case .string(let t):
            let scalars = Array(t.string.unicodeScalars)
            var s = String.UnicodeScalarView()
            for i in try indices(scalars.count) { s.append(scalars[i]) }
            return .string(t.derived(String(s)))
        case .undefined: throw undefinedError(object, r)
        default: throw TemplateError(.type, "'\(object.typeName)' object is not subscriptable", line: r.line)
        }
    }

    static func binary(_ op: BinaryOp, _ a: Value, _ b: Value, _ r: Renderer) throws(TemplateError) -> Value {
        if op == .concat {
            let t = pyStr(a) + pyStr(b)
            try r.checkSize(t.string.utf8.count)
            return .string(t)
        }
        if a.isUndefined { throw undefinedError(a, r) }
        if b.isUndefined { throw undefinedError(b, r) }
        func overflow() -> TemplateError { TemplateError(.limit, "integer overflow in '\(op.rawValue)'", line: r.line) }
        func typeError() -> TemplateError {
            TemplateError(.type, "unsupported operand type(s) for \(op.rawValue): '\(a.typeName)' and '\(b.typeName)'", line: r.line)
        }
        // Integers (bool counts as int).
        func asInt(_ v: Value) -> Int? {
            switch v { case .int(let i): i; case .bool(let x): x ? 1 : 0; default: nil }
        }
        if let x = asInt(a), let y = asInt(b) {
            switch op {
            case .add: let (v, o) = x.addingReportingOverflow(y); if o { throw overflow() }; return .int(v)
            case .subtract: let (v, o) = x.subtractingReportingOverflow(y); if o { throw overflow() }; return .int(v)
            case .multiply: let (v, o) = x.multipliedReportingOverflow(by: y); if o { throw overflow() }; return .int(v)
            case .divide:
                guard y != 0 else { throw TemplateError(.type, "division by zero", line: r.line) }
                return .double(Double(x) / Double(y))
            case .floorDivide, .modulo:
                guard y != 0 else { throw TemplateError(.type, "integer division or modulo by zero", line: r.line) }
                var q = x / y, m = x % y
                if m != 0, (m < 0) != (y < 0) { q -= 1; m += y }
                return .int(op == .floorDivide ? q : m)
            case .power:
                if y < 0 { return .double(pow(Double(x), Double(y))) }
                var result = 1, base = x, e = y
                while e > 0 {
                    if e & 1 == 1 { let (v, o) = result.multipliedReportingOverflow(by: base); if o { throw overflow() }; result = v }
                    e >>= 1
                    if e > 0 { let (v, o) = base.multipliedReportingOverflow(by: base); if o { throw overflow() }; base = v }
                }
                return .int(result)
            case .concat: break
            }
        }
        if let x = numeric(a), let y = numeric(b) {
            switch op {
            case .add: return .double(x + y)
            case .subtract: return .double(x - y)
            case .multiply: return .double(x * y)
            case .divide:
                guard y != 0 else { throw TemplateError(.type, "float division by zero", line: r.line) }
                return .double(x / y)
            case .floorDivide, .modulo:
                guard y != 0 else { throw TemplateError(.type, "float modulo by zero", line: r.line) }
                let m = x - y * (x / y).rounded(.down)
                return .double(op == .floorDivide ? (x / y).rounded(.down) : m)
            case .power: return .double(pow(x, y))
            case .concat: break
            }
        }
        switch (op, a, b) {
        case (.add, .string(let x), .string(let y)):
            try r.checkSize(x.string.utf8.count + y.string.utf8.count)
            return .string(x + y)
        case (.add, .list(let x), .list(let y)): return .list(x + y)
        case (.add, .tuple(let x), .tuple(let y)): return .tuple(x + y)
        case (.multiply, .string(let t), .int(let n)), (.multiply, .int(let n), .string(let t)):
            try r.checkSize(repeatedSize(t.string.utf8.count, n))
            return .string(t.derived(String(repeating: t.string, count: max(n, 0))))
        case (.multiply, .list(let x), .int(let n)), (.multiply, .int(let n), .list(let x)):
            try r.checkSize(repeatedSize(x.count, n))
            return .list(Array(repeatElement(x, count: max(n, 0)).joined()))
        case (.modulo, .string(let t), _):
            return .string(try Format.percent(t, b, r))
        default:
            throw typeError()
        }
    }

    /// The size of `n` repetitions, saturating instead of overflowing (`'x' * 2**62` is a limit error, not a trap).
    static func repeatedSize(_ size: Int, _ n: Int) -> Int {
        let (total, overflow) = size.multipliedReportingOverflow(by: max(n, 0))
        return overflow ? .max : total
    }

    static func compare(_ op: CompareOp, _ a: Value, _ b: Value, _ r: Renderer) throws(TemplateError) -> Bool {
        switch op {
        case .eq: return pyEqual(a, b)
        case .ne: return !pyEqual(a, b)
        case .lt: return try pyLess(a, b, line: r.line)
        case .gt: return try pyLess(b, a, line: r.line)
        case .le: return try pyLess(a, b, line: r.line) || pyEqual(a, b)
        case .ge: return try pyLess(b, a, line: r.line) || pyEqual(a, b)
        case .in: return try contains(b, a, r)
        case .notIn: return !(try contains(b, a, r))
        }
    }

    static func contains(_ container: Value, _ item: Value, _ r: Renderer) throws(TemplateError) -> Bool {
        switch container {
        case .string(let t):
            guard case .string(let s) = item else {
                throw TemplateError(.type, "'in <string>' requires string as left operand, not \(item.typeName)", line: r.line)
            }
            return PyString.find(Array(t.string.unicodeScalars), Array(s.string.unicodeScalars), from: 0) != nil
        case .list(let a), .tuple(let a): return a.contains { pyEqual($0, item) }
        case .dict(let d): return d.contains { pyEqual($0.key, item) }
        case .namespace(let ns): return ns.entries.contains { pyEqual($0.key, item) }
        case .undefined: return false
        default: throw TemplateError(.type, "argument of type '\(container.typeName)' is not iterable", line: r.line)
        }
    }
}
