/// Variables visible at one level: the template's top level, a loop iteration, a macro call.
/// A for loop gets a fresh scope per iteration (what it sets there is gone in the next
/// iteration and after the loop), as in Jinja2; `if` blocks share their enclosing scope.
final class Scope {
    var variables: [String: Value] = [:]
    let parent: Scope?
    init(parent: Scope?) { self.parent = parent }

    func lookup(_ name: String) -> Value? {
        var s: Scope? = self
        while let scope = s {
            if let v = scope.variables[name] { return v }
            s = scope.parent
        }
        return nil
    }
}

/// Bounds that keep a hostile or broken template from running away.
public struct TemplateLimits: Sendable, Equatable {
    /// Statements executed plus expressions evaluated.
    public var steps: Int
    /// Bytes of rendered output (and of any one string a template builds).
    public var outputBytes: Int
    /// Nested macro calls.
    public var callDepth: Int

    /// Bounds as given; the defaults are 5,000,000 steps, 16 MiB of output and 64 nested macro calls.
    public init(steps: Int = 5_000_000, outputBytes: Int = 16 << 20, callDepth: Int = 64) {
        self.steps = steps
        self.outputBytes = outputBytes
        self.callDepth = callDepth
    }
}

/// Executes a parsed template. One renderer renders one template once.
final class Renderer {
    enum Flow { case normal, breakLoop, continueLoop }

    private(set) var output = Text("")
    let limits: TemplateLimits
    let now: CalendarTime
    private var steps = 0
    private var callDepth = 0
    var line = 1
    private var loopDepth = 0

    init(limits: TemplateLimits, now: CalendarTime) {
        self.limits = limits
        self.now = now
    }

    func step() throws(TemplateError) {
        steps += 1
        if steps > limits.steps {
            throw TemplateError(.limit, "the template did more than \(limits.steps) steps of work", line: line)
        }
    }

    func checkSize(_ bytes: Int) throws(TemplateError) {
        if bytes > limits.outputBytes {
            throw TemplateError(.limit, "the template built text longer than \(limits.outputBytes) bytes", line: line)
        }
    }

    private func emit(_ t: Text) throws(TemplateError) {
        output.append(t)
        try checkSize(output.string.utf8.count)
    }

    /// Renders `body` into a separate buffer (set blocks, macros, filter blocks).
    func capture(_ body: [Statement], _ scope: Scope) throws(TemplateError) -> Text {
        let saved = output
        output = Text("")
        defer { output = saved }
        _ = try execute(body, scope)
        return output
    }

    // MARK: Statements

    func execute(_ body: [Statement], _ scope: Scope) throws(TemplateError) -> Flow {
        for statement in body {
            try step()
            let flow = try execute(statement, scope)
            if flow != .normal { return flow }
        }
        return .normal
    }

    private func execute(_ statement: Statement, _ scope: Scope) throws(TemplateError) -> Flow {
        switch statement {
        case .text(let s):
            try emit(Text(s))
        case .output(let e, let l):
            line = l
            try emit(pyStr(try eval(e, scope)))
        case .ifChain(let branches, let otherwise, let l):
            line = l
            for branch in branches where try test(branch.condition, scope) {
                return try execute(branch.body, scope)
            }
            return try execute(otherwise, scope)
        case .forLoop(let target, let iterable, let condition, let body, let otherwise, let recursive, let l):
            line = l
            if recursive { throw TemplateError(.unsupported, "recursive for loops are not supported", line: l) }
            var items = try iterate(try eval(iterable, scope))
            if let condition {
                var kept: [Value] = []
                for item in items {
                    try step()
                    let s = Scope(parent: scope)
                    try assign(target, item, s)
                    if try test(condition, s) { kept.append(item) }
                }
                items = kept
            }
            if items.isEmpty { return try execute(otherwise, scope) }
            let state = LoopState(items: items, depth0: loopDepth)
            loopDepth += 1
            defer { loopDepth -= 1 }
            for (i, item) in items.enumerated() {
                try step()   // an iteration is work even when its body is empty
                state.index0 = i
                let s = Scope(parent: scope)
                s.variables["loop"] = .loop(state)
                try assign(target, item, s)
                if try execute(body, s) == .breakLoop { break }
            }
        case .set(let target, let e, let l):
            line = l
            try assign(target, try eval(e, scope), scope)
        case .setBlock(let target, let filters, let body, let l):
            line = l
            var value = Value.string(try capture(body, scope))
            for (name, args) in filters { value = try applyFilter(name, value, args, scope) }
            try assign(target, value, scope)
        case .macro(let name, let parameters, let body, let l):
            line = l
            scope.variables[name] = .callable(makeMacro(name, parameters, body, definedIn: scope, line: l))
        case .callBlock(let call, let parameters, let body, let l):
            line = l
            guard case .call(let callee, let args) = unlocated(call) else { return .normal }
            let caller = makeMacro("caller", parameters, body, definedIn: scope, line: l)
            let target = try eval(callee, scope)
            guard case .callable(let macro) = target else {
                throw TemplateError(.type, "'\(target.typeName)' object is not callable", line: l)
            }
            let (positional, keyword) = try evalArguments(args, scope)
            try emit(pyStr(try macro.call(self, positional, keyword + [("caller", .callable(caller))])))
        case .filterBlock(let filters, let body, let l):
            line = l
            var value = Value.string(try capture(body, scope))
            for (name, args) in filters { value = try applyFilter(name, value, args, scope) }
            try emit(pyStr(value))
        case .with(let assignments, let body, let l):
            line = l
            let s = Scope(parent: scope)
            for (target, e) in assignments { try assign(target, try eval(e, scope), s) }
            return try execute(body, s)
        case .loopBreak(let l):
            guard loopDepth > 0 else { throw TemplateError(.syntax, "'break' outside a loop", line: l) }
            return .breakLoop
        case .loopContinue(let l):
            guard loopDepth > 0 else { throw TemplateError(.syntax, "'continue' outside a loop", line: l) }
            return .continueLoop
        case .generation(let body):
            return try execute(body, scope)
        }
        return .normal
    }

    private func makeMacro(_ name: String, _ parameters: [Parameter], _ body: [Statement], definedIn scope: Scope, line l: Int) -> Callable {
        Callable(name) { (r: Renderer, positional: [Value], keyword: [(String, Value)]) throws(TemplateError) -> Value in
            guard r.callDepth < r.limits.callDepth else {
                throw TemplateError(.limit, "macro calls nested deeper than \(r.limits.callDepth)", line: l)
            }
            r.callDepth += 1
            defer { r.callDepth -= 1 }
            let s = Scope(parent: scope)
            guard positional.count <= parameters.count else {
                throw TemplateError(.type, "macro '\(name)' takes not more than \(parameters.count) argument(s)", line: r.line)
            }
            for (i, p) in parameters.enumerated() {
                if i < positional.count { s.variables[p.name] = positional[i] }
                else if let v = keyword.first(where: { $0.0 == p.name })?.1 { s.variables[p.name] = v }
                else if let d = p.defaultValue { s.variables[p.name] = try r.eval(d, s) }
                else { s.variables[p.name] = .undefined("parameter '\(p.name)' of macro '\(name)' was not provided") }
            }
            for (k, v) in keyword where !parameters.contains(where: { $0.name == k }) {
                guard k == "caller" else { throw TemplateError(.type, "macro '\(name)' takes no keyword argument '\(k)'", line: r.line) }
                s.variables[k] = v
            }
            let saved = r.loopDepth
            r.loopDepth = 0
            defer { r.loopDepth = saved }
            return .string(try r.capture(body, s))
        }
    }

    func assign(_ target: Target, _ value: Value, _ scope: Scope) throws(TemplateError) {
        switch target {
        case .name(let n):
            scope.variables[n] = value
        case .tuple(let targets):
            let items = try iterate(value)
            guard items.count == targets.count else {
                throw TemplateError(.type, "cannot unpack \(items.count) value(s) into \(targets.count) name(s)", line: line)
            }
            for (t, v) in zip(targets, items) { try assign(t, v, scope) }
        case .attribute(let object, let attribute):
            guard case .namespace(let ns) = scope.lookup(object) ?? .undefined(object) else {
                throw TemplateError(.type, "cannot assign attribute on non-namespace object '\(object)'", line: line)
            }
            if let i = ns.entries.firstIndex(where: { pyEqual($0.key, .str(attribute)) }) {
                ns.entries[i].value = value
            } else {
                ns.entries.append((key: .str(attribute), value: value))
            }
        }
    }

    // MARK: Expressions

    func test(_ e: Expr, _ scope: Scope) throws(TemplateError) -> Bool { try eval(e, scope).truthy }

    func eval(_ e: Expr, _ scope: Scope) throws(TemplateError) -> Value {
        try step()
        switch e {
        case .constant(let v): return v
        case .located(let inner, let l):
            line = l
            return try eval(inner, scope)
        case .name(let n):
            return scope.lookup(n) ?? Builtins.global(n) ?? .undefined("'\(n)' is undefined")
        case .list(let items):
            var out: [Value] = []
            for i in items { out.append(try eval(i, scope)) }
            return .list(out)
        case .tuple(let items):
            var out: [Value] = []
            for i in items { out.append(try eval(i, scope)) }
            return .tuple(out)
        case .dict(let pairs):
            var out: [(key: Value, value: Value)] = []
            for (k, v) in pairs {
                let key = try eval(k, scope), value = try eval(v, scope)
                if let i = out.firstIndex(where: { pyEqual($0.key, key) }) { out[i].value = value } else { out.append((key, value)) }
            }
            return .dict(out)
        case .attribute(let o, let name):
            return try Builtins.attribute(try eval(o, scope), name, self)
        case .item(let o, let i):
            return try Builtins.item(try eval(o, scope), try eval(i, scope), self)
        case .slice(let o, let start, let stop, let step):
            func part(_ e: Expr?) throws(TemplateError) -> Value { if let e { return try eval(e, scope) }; return .none }
            return try Builtins.slice(try eval(o, scope), try part(start), try part(stop), try part(step), self)
        case .call(let callee, let args):
            let f = try eval(callee, scope)
            let (positional, keyword) = try evalArguments(args, scope)
            switch f {
            case .callable(let c): return try c.call(self, positional, keyword)
            case .undefined(let why): throw TemplateError(.undefined, why, line: line)
            default: throw TemplateError(.type, "'\(f.typeName)' object is not callable", line: line)
            }
        case .filter(let o, let name, let args):
            return try applyFilter(name, try eval(o, scope), args, scope)
        case .test(let o, let name, let args, let negated):
            let (positional, _) = try evalArguments(args, scope)
            let result = try Builtins.test(name, try eval(o, scope), positional, self)
            return .bool(result != negated)
        case .not(let o): return .bool(!(try test(o, scope)))
        case .negate(let o):
            switch try eval(o, scope) {
            case .int(let i): return .int(-i)
            case .bool(let b): return .int(b ? -1 : 0)
            case .double(let d): return .double(-d)
            case .undefined(let why): throw TemplateError(.undefined, why, line: line)
            case let v: throw TemplateError(.type, "bad operand type for unary -: '\(v.typeName)'", line: line)
            }
        case .plus(let o):
            let v = try eval(o, scope)
            guard numeric(v) != nil else { throw TemplateError(.type, "bad operand type for unary +: '\(v.typeName)'", line: line) }
            if case .bool(let b) = v { return .int(b ? 1 : 0) }
            return v
        case .binary(let op, let a, let b):
            return try Builtins.binary(op, try eval(a, scope), try eval(b, scope), self)
        case .compare(let first, let rest):
            var left = try eval(first, scope)
            for (op, e) in rest {
                let right = try eval(e, scope)
                guard try Builtins.compare(op, left, right, self) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .and(let a, let b):
            let l = try eval(a, scope)
            return l.truthy ? try eval(b, scope) : l
        case .or(let a, let b):
            let l = try eval(a, scope)
            return l.truthy ? l : try eval(b, scope)
        case .conditional(let condition, let then, let otherwise):
            if try test(condition, scope) { return try eval(then, scope) }
            if let otherwise { return try eval(otherwise, scope) }
            return .undefined("the conditional expression had no else branch")
        }
    }

    func evalArguments(_ args: Arguments, _ scope: Scope) throws(TemplateError) -> ([Value], [(String, Value)]) {
        var positional: [Value] = []
        for a in args.positional { positional.append(try eval(a, scope)) }
        var keyword: [(String, Value)] = []
        for (k, a) in args.keyword { keyword.append((k, try eval(a, scope))) }
        return (positional, keyword)
    }

    func applyFilter(_ name: String, _ value: Value, _ args: Arguments, _ scope: Scope) throws(TemplateError) -> Value {
        let (positional, keyword) = try evalArguments(args, scope)
        return try Builtins.filter(name, value, positional, keyword, self)
    }

    /// The items a for loop or a filter walks over: a list's items, a dict's keys, a string's
    /// characters; an undefined value is empty.
    func iterate(_ v: Value) throws(TemplateError) -> [Value] {
        switch v {
        case .list(let a), .tuple(let a): return a
        case .dict(let d): return d.map(\.key)
        case .string(let t): return t.string.unicodeScalars.map { t.derived(String($0)) }.map(Value.string)
        case .undefined: return []
        default: throw TemplateError(.type, "'\(v.typeName)' object is not iterable", line: line)
        }
    }
}
