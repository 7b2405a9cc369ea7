/// Builds statements and expressions from the lexer's pieces with Jinja2's grammar and operator
/// precedence (lowest first): `x if c else y`, `or`, `and`, `not`, comparisons and `in`,
/// `+ -`, `~`, `* / // %`, `**`, unary `- +`, then postfix `.a`, `[i]`, `(args)`, `|filter`
/// and `is test`.
struct Parser {
    typealias Token = Lexer.Token

    private var pieces: [Lexer.Piece]
    private var index = 0
    private var tokens: [Token] = []
    private var cursor = 0
    private var line = 1
    private var depth = 0
    static let maxDepth = 128

    init(_ pieces: [Lexer.Piece]) { self.pieces = pieces }

    mutating func parseTemplate() throws(TemplateError) -> [Statement] {
        let (body, end) = try parseBody(until: [])
        if let end { throw TemplateError(.syntax, "unexpected '\(end)'", line: line) }
        return body
    }

    // MARK: Statements

    /// Statements up to one of the block tags named in `ends` (returned, its tag's remaining
    /// tokens left to read), or to the end of the template (nil).
    private mutating func parseBody(until ends: Set<String>) throws(TemplateError) -> ([Statement], String?) {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { throw TemplateError(.limit, "blocks nested deeper than \(Self.maxDepth)", line: line) }
        var body: [Statement] = []
        while index < pieces.count {
            let piece = pieces[index]
            index += 1
            switch piece {
            case .text(let s, _):
                body.append(.text(s))
            case .tag(let isBlock, let toks, let l):
                tokens = toks
                cursor = 0
                line = l
                if !isBlock {
                    let e = try parseTuple()
                    try expectEnd()
                    body.append(.output(.located(e, line: l), line: l))
                    continue
                }
                guard let keyword = peek, keyword.kind == .name else {
                    throw TemplateError(.syntax, "a block tag must start with a statement name", line: l)
                }
                if ends.contains(keyword.text) {
                    cursor += 1
                    return (body, keyword.text)
                }
                cursor += 1
                body.append(try parseStatement(keyword.text, line: l))
            }
        }
        if !ends.isEmpty {
            throw TemplateError(.syntax, "unexpected end of template: expected one of \(ends.sorted().map { "'\($0)'" }.joined(separator: ", "))", line: line)
        }
        return (body, nil)
    }

    private mutating func parseStatement(_ keyword: String, line l: Int) throws(TemplateError) -> Statement {
        switch keyword {
        case "if":
            var branches: [(Expr, [Statement])] = []
            var condition = try parseTuple(allowConditional: false)
            var otherwise: [Statement] = []
            while true {
                try expectEnd()
                let (body, end) = try parseBody(until: ["elif", "else", "endif"])
                branches.append((condition, body))
                if end == "elif" { condition = try parseTuple(allowConditional: false); continue }
                if end == "else" {
                    try expectEnd()
                    let (rest, _) = try parseBody(until: ["endif"])
                    otherwise = rest
                }
                try expectEnd()
                break
            }
            return .ifChain(branches.map { (condition: $0.0, body: $0.1) }, otherwise: otherwise, line: l)
        case "for":
            let target = try parseTarget(allowAttribute: false)
            try expectName("in")
            let iterable = try parseTuple(allowConditional: false, stopAt: ["recursive"])
            var condition: Expr? = nil
            if skipName("if") { condition = try parseExpression() }
            let recursive = skipName("recursive")
            try expectEnd()
            let (body, end) = try parseBody(until: ["endfor", "else"])
            var otherwise: [Statement] = []
            if end == "else" {
                try expectEnd()
                (otherwise, _) = try parseBody(until: ["endfor"])
            }
            try expectEnd()
            return .forLoop(target: target, iterable: iterable, condition: condition, body: body, otherwise: otherwise, recursive: recursive, line: l)
        case "set":
            let target = try parseTarget(allowAttribute: true)
            if skipOp("=") {
                let value = try parseTuple()
                try expectEnd()
                return .set(target, .located(value, line: l), line: l)
            }
            let filters = try parseFilterChain()
            try expectEnd()
            let (body, _) = try parseBody(until: ["endset"])
            try expectEnd()
            return .setBlock(target, filters: filters, body: body, line: l)
        case "macro":
            let name = try expectAnyName()
            let parameters = try parseParameters()
            try expectEnd()
            let (body, _) = try parseBody(until: ["endmacro"])
            try expectEnd()
            return .macro(name: name, parameters: parameters, body: body, line: l)
        case "call":
            let parameters = peekOp("(") ? try parseParameters() : []
            let call = try parseExpression()
            guard case .call = unlocated(call) else { throw TemplateError(.syntax, "expected a macro call after 'call'", line: l) }
            try expectEnd()
            let (body, _) = try parseBody(until: ["endcall"])
            try expectEnd()
            return .callBlock(call: call, parameters: parameters, body: body, line: l)
        case "filter":
            let filters = try parseFilterChain(first: true)
            try expectEnd()
            let (body, _) = try parseBody(until: ["endfilter"])
            try expectEnd()
            return .filterBlock(filters: filters, body: body, line: l)
        case "with":
            var assignments: [(Target, Expr)] = []
            while !atEnd {
                if !assignments.isEmpty { try expectOp(",") }
                let target = try parseTarget(allowAttribute: false)
                try expectOp("=")
                assignments.append((target, try parseExpression()))
            }
            let (body, _) = try parseBody(until: ["endwith"])
            try expectEnd()
            return .with(assignments: assignments, body: body, line: l)
        case "break":
            try expectEnd()
            return .loopBreak(line: l)
        case "continue":
            try expectEnd()
            return .loopContinue(line: l)
        case "generation":
            try expectEnd()
            let (body, _) = try parseBody(until: ["endgeneration"])
            try expectEnd()
            return .generation(body)
        case "raw":
            throw TemplateError(.syntax, "malformed raw block", line: l)
        case "include", "import", "from", "extends", "block", "autoescape", "do", "trans":
            throw TemplateError(.unsupported, "the '\(keyword)' statement is not supported in chat templates", line: l)
        default:
            throw TemplateError(.syntax, "unknown tag '\(keyword)'", line: l)
        }
    }

    private mutating func parseParameters() throws(TemplateError) -> [Parameter] {
        try expectOp("(")
        var parameters: [Parameter] = []
        while !skipOp(")") {
            if !parameters.isEmpty { try expectOp(",") }
            if skipOp(")") { break }
            let name = try expectAnyName()
            parameters.append(Parameter(name: name, defaultValue: skipOp("=") ? try parseExpression() : nil))
        }
        return parameters
    }

    private mutating func parseTarget(allowAttribute: Bool) throws(TemplateError) -> Target {
        var names: [Target] = []
        repeat {
            if peekOp(")") || atEnd || peekName("in") { break }
            let name = try expectAnyName()
            if allowAttribute, skipOp(".") {
                names.append(.attribute(name, try expectAnyName()))
            } else {
                names.append(.name(name))
            }
        } while skipOp(",")
        guard !names.isEmpty else { throw TemplateError(.syntax, "expected a name to assign to", line: line) }
        if names.count == 1, tokens.count > 0 { return names[0] }
        return .tuple(names)
    }

    private mutating func parseFilterChain(first: Bool = false) throws(TemplateError) -> [(String, Arguments)] {
        var filters: [(String, Arguments)] = []
        var isFirst = first
        while isFirst || skipOp("|") {
            isFirst = false
            let name = try dottedName()
            filters.append((name, peekOp("(") ? try parseCallArguments() : Arguments()))
        }
        return filters
    }

    // MARK: Expressions

    /// A comma-separated list becomes a tuple; one expression stays itself.
    private mutating func parseTuple(allowConditional: Bool = true, stopAt: Set<String> = [], explicit: Bool = false) throws(TemplateError) -> Expr {
        var items: [Expr] = []
        var sawComma = false
        while true {
            if !items.isEmpty {
                guard skipOp(",") else { break }
                sawComma = true
            }
            if atEnd || peekOp(")") || peekOp("]") || peekOp("}") || stopAt.contains(peek?.kind == .name ? peek!.text : "")
                || (peek?.kind == .name && peek!.text == "if" && !allowConditional) || peekOp("=") {
                break
            }
            items.append(allowConditional ? try parseExpression() : try parseOr())
        }
        if items.count == 1, !sawComma { return items[0] }
        if items.isEmpty, !explicit { throw TemplateError(.syntax, "expected an expression", line: line) }
        return .tuple(items)
    }

    private mutating func enter() throws(TemplateError) {
        depth += 1
        guard depth <= Self.maxDepth else { throw TemplateError(.limit, "expression nested deeper than \(Self.maxDepth)", line: line) }
    }

    mutating func parseExpression() throws(TemplateError) -> Expr {
        try enter()
        defer { depth -= 1 }
        var e = try parseOr()
        while skipName("if") {
            let condition = try parseOr()
            let otherwise = skipName("else") ? try parseExpression() : nil
            e = .conditional(condition: condition, then: e, otherwise: otherwise)
        }
        return e
    }

    private mutating func parseOr() throws(TemplateError) -> Expr {
        var e = try parseAnd()
        while skipName("or") { e = .or(e, try parseAnd()) }
        return e
    }

    private mutating func parseAnd() throws(TemplateError) -> Expr {
        var e = try parseNot()
        while skipName("and") { e = .and(e, try parseNot()) }
        return e
    }

    private mutating func parseNot() throws(TemplateError) -> Expr {
        if skipName("not") {
            try enter()
            defer { depth -= 1 }
            return .not(try parseNot())
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws(TemplateError) -> Expr {
        let first = try parseMath1()
        var ops: [(CompareOp, Expr)] = []
        while true {
            if let t = peek, t.kind == .op, let op = CompareOp(rawValue: t.text), op != .in, op != .notIn {
                cursor += 1
                ops.append((op, try parseMath1()))
            } else if skipName("in") {
                ops.append((.in, try parseMath1()))
            } else if peekName("not"), cursor + 1 < tokens.count, tokens[cursor + 1].kind == .name, tokens[cursor + 1].text == "in" {
                cursor += 2
                ops.append((.notIn, try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? first : .compare(first, ops)
    }

    private mutating func parseMath1() throws(TemplateError) -> Expr {
        var e = try parseConcat()
        while let t = peek, t.kind == .op, t.text == "+" || t.text == "-" {
            cursor += 1
            e = .binary(BinaryOp(rawValue: t.text)!, e, try parseConcat())
        }
        return e
    }

    private mutating func parseConcat() throws(TemplateError) -> Expr {
        var e = try parseMath2()
        while skipOp("~") { e = .binary(.concat, e, try parseMath2()) }
        return e
    }

    private mutating func parseMath2() throws(TemplateError) -> Expr {
        var e = try parsePow()
        while let t = peek, t.kind == .op, ["*", "/", "//", "%"].contains(t.text) {
            cursor += 1
            e = .binary(BinaryOp(rawValue: t.text)!, e, try parsePow())
        }
        return e
    }

    private mutating func parsePow() throws(TemplateError) -> Expr {
        var e = try parseUnary(withFilter: true)
        while skipOp("**") { e = .binary(.power, e, try parseUnary(withFilter: true)) }
        return e
    }

    private mutating func parseUnary(withFilter: Bool) throws(TemplateError) -> Expr {
        try enter()
        defer { depth -= 1 }
        var e: Expr
        if skipOp("-") { e = .negate(try parseUnary(withFilter: false)) }
        else if skipOp("+") { e = .plus(try parseUnary(withFilter: false)) }
        else { e = try parsePrimary() }
        e = try parsePostfix(e)
        if withFilter { e = try parseFilterExpression(e) }
        return e
    }

    private mutating func parsePrimary() throws(TemplateError) -> Expr {
        guard let t = peek else { throw TemplateError(.syntax, "unexpected end of tag: expected an expression", line: line) }
        cursor += 1
        switch t.kind {
        case .name:
            switch t.text {
            case "true", "True": return .constant(.bool(true))
            case "false", "False": return .constant(.bool(false))
            case "none", "None": return .constant(.none)
            default: return .name(t.text)
            }
        case .string:
            var s = t.text
            while let n = peek, n.kind == .string { s += n.text; cursor += 1 }   // adjacent literals join
            return .constant(.str(s))
        case .integer: return .constant(.int(t.integer))
        case .float: return .constant(.double(t.float))
        case .op:
            switch t.text {
            case "(":
                let e = try parseTuple(explicit: true)
                try expectOp(")")
                return e
            case "[":
                var items: [Expr] = []
                while !skipOp("]") {
                    if !items.isEmpty { try expectOp(","); if skipOp("]") { break } }
                    items.append(try parseExpression())
                }
                return .list(items)
            case "{":
                var items: [(Expr, Expr)] = []
                while !skipOp("}") {
                    if !items.isEmpty { try expectOp(","); if skipOp("}") { break } }
                    let key = try parseExpression()
                    try expectOp(":")
                    items.append((key, try parseExpression()))
                }
                return .dict(items)
            default:
                throw TemplateError(.syntax, "unexpected '\(t.text)'", line: t.line)
            }
        }
    }

    private mutating func parsePostfix(_ base: Expr) throws(TemplateError) -> Expr {
        var e = base
        while true {
            if skipOp(".") {
                guard let t = peek else { throw TemplateError(.syntax, "expected a name after '.'", line: line) }
                cursor += 1
                switch t.kind {
                case .name: e = .attribute(e, t.text)
                case .integer: e = .item(e, .constant(.int(t.integer)))
                default: throw TemplateError(.syntax, "expected a name after '.'", line: t.line)
                }
            } else if skipOp("[") {
                e = try parseSubscript(e)
            } else if peekOp("(") {
                e = .call(e, try parseCallArguments())
            } else {
                return e
            }
        }
    }

    private mutating func parseSubscript(_ base: Expr) throws(TemplateError) -> Expr {
        var parts: [Expr?] = [nil]
        var isSlice = false
        while !skipOp("]") {
            if skipOp(":") {
                isSlice = true
                parts.append(nil)
                guard parts.count <= 3 else { throw TemplateError(.syntax, "a slice has at most three parts", line: line) }
                continue
            }
            guard parts[parts.count - 1] == nil else { throw TemplateError(.syntax, "expected ']'", line: line) }
            parts[parts.count - 1] = try parseExpression()
        }
        if !isSlice {
            guard let index = parts[0] else { throw TemplateError(.syntax, "expected a subscript", line: line) }
            return .item(base, index)
        }
        while parts.count < 3 { parts.append(nil) }
        return .slice(base, start: parts[0], stop: parts[1], step: parts[2])
    }

    private mutating func parseCallArguments() throws(TemplateError) -> Arguments {
        try expectOp("(")
        var args = Arguments()
        var first = true
        while !skipOp(")") {
            if !first { try expectOp(","); if skipOp(")") { break } }
            first = false
            if peekOp("*") || peekOp("**") {
                throw TemplateError(.unsupported, "'*' and '**' arguments are not supported", line: line)
            }
            if let t = peek, t.kind == .name, cursor + 1 < tokens.count, tokens[cursor + 1].kind == .op, tokens[cursor + 1].text == "=" {
                cursor += 2
                args.keyword.append((t.text, try parseExpression()))
            } else {
                guard args.keyword.isEmpty else { throw TemplateError(.syntax, "a positional argument follows a keyword argument", line: line) }
                args.positional.append(try parseExpression())
            }
        }
        return args
    }

    private mutating func parseFilterExpression(_ base: Expr) throws(TemplateError) -> Expr {
        var e = base
        while true {
            if skipOp("|") {
                let name = try dottedName()
                e = .filter(e, name: name, peekOp("(") ? try parseCallArguments() : Arguments())
            } else if skipName("is") {
                let negated = skipName("not")
                let name = try dottedName()
                var args = Arguments()
                if peekOp("(") {
                    args = try parseCallArguments()
                } else if let t = peek, [.name, .string, .integer, .float].contains(t.kind) || (t.kind == .op && ["[", "{"].contains(t.text)),
                          !(t.kind == .name && ["else", "or", "and"].contains(t.text)) {
                    if t.kind == .name, t.text == "is" { throw TemplateError(.syntax, "tests cannot be chained with 'is'", line: line) }
                    args.positional = [try parsePostfix(try parsePrimary())]
                }
                e = .test(e, name: name, args, negated: negated)
            } else if peekOp("(") {
                e = .call(e, try parseCallArguments())
            } else {
                return e
            }
        }
    }

    // MARK: Token helpers

    private var peek: Token? { cursor < tokens.count ? tokens[cursor] : nil }
    private var atEnd: Bool { cursor >= tokens.count }
    private func peekOp(_ s: String) -> Bool { peek.map { $0.kind == .op && $0.text == s } ?? false }
    private func peekName(_ s: String) -> Bool { peek.map { $0.kind == .name && $0.text == s } ?? false }
    private mutating func skipOp(_ s: String) -> Bool { if peekOp(s) { cursor += 1; return true }; return false }
    private mutating func skipName(_ s: String) -> Bool { if peekName(s) { cursor += 1; return true }; return false }

    private mutating func expectOp(_ s: String) throws(TemplateError) {
        guard skipOp(s) else { throw TemplateError(.syntax, "expected '\(s)'" + found, line: peek?.line ?? line) }
    }

    private mutating func expectName(_ s: String) throws(TemplateError) {
        guard skipName(s) else { throw TemplateError(.syntax, "expected '\(s)'" + found, line: peek?.line ?? line) }
    }

    private mutating func expectAnyName() throws(TemplateError) -> String {
        guard let t = peek, t.kind == .name else { throw TemplateError(.syntax, "expected a name" + found, line: peek?.line ?? line) }
        cursor += 1
        return t.text
    }

    private mutating func dottedName() throws(TemplateError) -> String {
        var name = try expectAnyName()
        while skipOp(".") { name += "." + (try expectAnyName()) }
        return name
    }

    private func expectEnd() throws(TemplateError) {
        guard atEnd else { throw TemplateError(.syntax, "expected the end of the tag" + found, line: peek?.line ?? line) }
    }

    private var found: String { peek.map { ", found '\($0.text)'" } ?? ", found the end of the tag" }
}

func unlocated(_ e: Expr) -> Expr {
    if case .located(let inner, _) = e { return unlocated(inner) }
    return e
}
