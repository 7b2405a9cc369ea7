/// Splits template source into text and tags the way Jinja2's lexer does with the options
/// chat templates are rendered with: `trim_blocks` (the first newline after a block or
/// comment tag is dropped), `lstrip_blocks` (spaces and tabs before a block or comment tag at
/// the start of a line are dropped), `-` and `+` whitespace control, `{% raw %}`, line endings
/// normalised to `\n`, and one trailing newline of the source removed.
struct Lexer {
    enum Piece {
        case text(String, line: Int)
        /// `{% ... %}` (isBlock) or `{{ ... }}`, as expression tokens.
        case tag(isBlock: Bool, tokens: [Token], line: Int)
    }

    struct Token: Equatable {
        enum Kind: Equatable { case name, string, integer, float, op }
        let kind: Kind
        let text: String   // the name, operator, or the string's decoded value
        let line: Int
        var integer: Int = 0
        var float: Double = 0
    }

    private let src: [Unicode.Scalar]
    private var pos = 0
    private var line = 1
    private var lineStarting = true
    private(set) var pieces: [Piece] = []

    static let maxSourceScalars = 4 << 20

    init(_ source: String) throws(TemplateError) {
        guard source.unicodeScalars.count <= Self.maxSourceScalars else {
            throw TemplateError(.limit, "the template is longer than \(Self.maxSourceScalars) characters", line: 1)
        }
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(source.unicodeScalars.count)
        var it = source.unicodeScalars.makeIterator()
        var pending = it.next()
        while let u = pending {
            pending = it.next()
            if u == "\r" {
                scalars.append("\n")
                if pending == "\n" { pending = it.next() }
            } else {
                scalars.append(u)
            }
        }
        if scalars.last == "\n" { scalars.removeLast() }   // keep_trailing_newline = False
        src = scalars
        try run()
    }

    private func at(_ i: Int, _ s: String) -> Bool {
        var j = i
        for u in s.unicodeScalars {
            guard j < src.count, src[j] == u else { return false }
            j += 1
        }
        return true
    }

    private func string(_ r: Range<Int>) -> String {
        var s = String.UnicodeScalarView()
        s.append(contentsOf: src[r])
        return String(s)
    }

    private static func isSpace(_ u: Unicode.Scalar) -> Bool { u.properties.isWhitespace }

    private mutating func emitText(_ r: Range<Int>, strip: Character?, isBlockOrComment: Bool) {
        var end = r.upperBound
        if strip == "-" {
            while end > r.lowerBound, Self.isSpace(src[end - 1]) { end -= 1 }
        } else if strip != "+", isBlockOrComment {
            var lineStart = end
            while lineStart > r.lowerBound, src[lineStart - 1] != "\n" { lineStart -= 1 }
            let afterNewline = lineStart > r.lowerBound
            if (afterNewline || lineStarting), lineStart < end, src[lineStart..<end].allSatisfy(Self.isSpace) {
                end = lineStart
            }
        }
        if end > r.lowerBound { pieces.append(.text(string(r.lowerBound..<end), line: line)) }
        line += src[r].filter { $0 == "\n" }.count
    }

    private mutating func run() throws(TemplateError) {
        while pos < src.count {
            // The next tag opener.
            var start = pos
            var opener: Character = " "
            while start + 1 < src.count {
                if src[start] == "{", src[start + 1] == "%" || src[start + 1] == "{" || src[start + 1] == "#" {
                    opener = Character(src[start + 1])
                    break
                }
                start += 1
            }
            if opener == " " {
                emitText(pos..<src.count, strip: nil, isBlockOrComment: false)
                pos = src.count
                break
            }
            var bodyStart = start + 2
            var sign: Character? = nil
            if bodyStart < src.count, src[bodyStart] == "-" || src[bodyStart] == "+" {
                sign = Character(src[bodyStart])
                bodyStart += 1
            }
            if opener == "%", let rawBody = rawBegin(bodyStart) {
                emitText(pos..<start, strip: sign, isBlockOrComment: true)
                try raw(from: rawBody)
                continue
            }
            emitText(pos..<start, strip: sign, isBlockOrComment: opener != "{")
            pos = bodyStart
            lineStarting = false
            switch opener {
            case "#": try comment()
            default: try tag(isBlock: opener == "%")
            }
        }
    }

    /// `{% raw %}` (the opener's sign already read): the position after its `%}`, or nil.
    private func rawBegin(_ i: Int) -> Int? {
        var j = i
        while j < src.count, Self.isSpace(src[j]) { j += 1 }
        guard at(j, "raw") else { return nil }
        j += 3
        if j < src.count, src[j].properties.isAlphabetic || src[j] == "_" || ("0"..."9").contains(src[j]) { return nil }
        while j < src.count, Self.isSpace(src[j]) { j += 1 }
        if at(j, "-%}") {
            j += 3
            while j < src.count, Self.isSpace(src[j]) { j += 1 }
            return j
        }
        return at(j, "%}") ? j + 2 : nil
    }

    private mutating func raw(from bodyStart: Int) throws(TemplateError) {
        let startLine = line
        var i = bodyStart
        while i + 1 < src.count {
            if src[i] == "{", src[i + 1] == "%" {
                var j = i + 2
                var sign: Character? = nil
                if j < src.count, src[j] == "-" || src[j] == "+" { sign = Character(src[j]); j += 1 }
                while j < src.count, Self.isSpace(src[j]) { j += 1 }
                if at(j, "endraw") {
                    j += 6
                    while j < src.count, Self.isSpace(src[j]) { j += 1 }
                    var end: Int? = nil
                    if at(j, "+%}") { end = j + 3 }
                    else if at(j, "-%}") {
                        end = j + 3
                        while end! < src.count, Self.isSpace(src[end!]) { end! += 1 }
                    } else if at(j, "%}") {
                        end = j + 2
                        if end! < src.count, src[end!] == "\n" { end! += 1 }
                    }
                    if let end {
                        lineStarting = true   // the raw text is never lstripped against the opener
                        let before = line
                        emitText(bodyStart..<i, strip: sign, isBlockOrComment: true)
                        line = before + src[bodyStart..<end].filter { $0 == "\n" }.count
                        lineStarting = src[end - 1] == "\n"
                        pos = end
                        return
                    }
                }
            }
            i += 1
        }
        throw TemplateError(.syntax, "missing end of raw directive", line: startLine)
    }

    private mutating func comment() throws(TemplateError) {
        let startLine = line
        var i = pos
        while i + 1 < src.count {
            if src[i] == "+" || src[i] == "-", at(i + 1, "#}") {
                var end = i + 3
                if src[i] == "-" { while end < src.count, Self.isSpace(src[end]) { end += 1 } }
                finish(at: end)
                return
            }
            if at(i, "#}") {
                var end = i + 2
                if end < src.count, src[end] == "\n" { end += 1 }
                finish(at: end)
                return
            }
            i += 1
        }
        throw TemplateError(.syntax, "missing end of comment tag", line: startLine)
    }

    private mutating func finish(at end: Int) {
        line += src[pos..<end].filter { $0 == "\n" }.count
        lineStarting = end > pos && src[end - 1] == "\n"
        pos = end
    }

    private mutating func tag(isBlock: Bool) throws(TemplateError) {
        let startLine = line
        var tokens: [Token] = []
        var brackets: [Unicode.Scalar] = []
        let close = isBlock ? "%}" : "}}"
        while true {
            while pos < src.count, Self.isSpace(src[pos]) {
                if src[pos] == "\n" { line += 1 }
                pos += 1
            }
            guard pos < src.count else {
                throw TemplateError(.syntax, "unexpected end of template: the tag opened on line \(startLine) is not closed", line: startLine)
            }
            if brackets.isEmpty {
                if isBlock, at(pos, "+%}") { finish(at: pos + 3); break }
                if at(pos, "-" + close) {
                    var end = pos + 3
                    while end < src.count, Self.isSpace(src[end]) { end += 1 }
                    finish(at: end)
                    break
                }
                if at(pos, close) {
                    var end = pos + 2
                    if isBlock, end < src.count, src[end] == "\n" { end += 1 }
                    finish(at: end)
                    break
                }
            }
            let token = try next()
            if token.kind == .op {
                switch token.text {
                case "(": brackets.append(")")
                case "[": brackets.append("]")
                case "{": brackets.append("}")
                case ")", "]", "}":
                    guard let expected = brackets.popLast() else {
                        throw TemplateError(.syntax, "unexpected '\(token.text)'", line: line)
                    }
                    guard String(expected) == token.text else {
                        throw TemplateError(.syntax, "unexpected '\(token.text)', expected '\(expected)'", line: line)
                    }
                default: break
                }
            }
            tokens.append(token)
        }
        pieces.append(.tag(isBlock: isBlock, tokens: tokens, line: startLine))
    }

    private static let operators = ["//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")",
                                    "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"]

    private static func isDigit(_ u: Unicode.Scalar) -> Bool { ("0"..."9").contains(u) }
    private static func isNameStart(_ u: Unicode.Scalar) -> Bool {
        u == "_" || ("a"..."z").contains(u) || ("A"..."Z").contains(u) || (u.value > 0x7f && u.properties.isXIDStart)
    }
    private static func isNameContinue(_ u: Unicode.Scalar) -> Bool {
        isNameStart(u) || isDigit(u) || (u.value > 0x7f && u.properties.isXIDContinue)
    }

    private mutating func next() throws(TemplateError) -> Token {
        let u = src[pos]
        if Self.isDigit(u) { return try number() }
        if Self.isNameStart(u) {
            let start = pos
            while pos < src.count, Self.isNameContinue(src[pos]) { pos += 1 }
            return Token(kind: .name, text: string(start..<pos), line: line)
        }
        if u == "'" || u == "\"" { return try stringLiteral(quote: u) }
        for op in Self.operators where at(pos, op) {
            pos += op.unicodeScalars.count
            return Token(kind: .op, text: op, line: line)
        }
        throw TemplateError(.syntax, "unexpected character '\(Character(u))'", line: line)
    }

    private mutating func number() throws(TemplateError) -> Token {
        let start = pos
        func digits() { while pos < src.count, Self.isDigit(src[pos]) || (src[pos] == "_" && pos + 1 < src.count && Self.isDigit(src[pos + 1])) { pos += 1 } }
        if src[pos] == "0", pos + 1 < src.count, "xXoObB".unicodeScalars.contains(src[pos + 1]) {
            let radix = ["x": 16, "o": 8, "b": 2][String(src[pos + 1]).lowercased()]!
            pos += 2
            let digitsStart = pos
            while pos < src.count, src[pos] == "_" || Int(String(src[pos]), radix: radix) != nil { pos += 1 }
            guard let v = Int(string(digitsStart..<pos).filter { $0 != "_" }, radix: radix) else {
                throw TemplateError(.syntax, "invalid integer literal '\(string(start..<pos))'", line: line)
            }
            return Token(kind: .integer, text: string(start..<pos), line: line, integer: v)
        }
        digits()
        var isFloat = false
        if pos + 1 < src.count, src[pos] == ".", Self.isDigit(src[pos + 1]) {
            isFloat = true
            pos += 1
            digits()
        }
        if pos < src.count, src[pos] == "e" || src[pos] == "E" {
            var j = pos + 1
            if j < src.count, src[j] == "+" || src[j] == "-" { j += 1 }
            if j < src.count, Self.isDigit(src[j]) {
                isFloat = true
                pos = j
                digits()
            }
        }
        let text = string(start..<pos).filter { $0 != "_" }
        if isFloat {
            guard let v = Double(text) else { throw TemplateError(.syntax, "invalid number '\(text)'", line: line) }
            return Token(kind: .float, text: text, line: line, float: v)
        }
        guard let v = Int(text) else { throw TemplateError(.limit, "integer literal '\(text)' is too large", line: line) }
        return Token(kind: .integer, text: text, line: line, integer: v)
    }

    /// A quoted string, decoded as Python's `unicode-escape` codec decodes it (unknown escapes
    /// keep their backslash).
    private mutating func stringLiteral(quote: Unicode.Scalar) throws(TemplateError) -> Token {
        let startLine = line
        pos += 1
        var out = String.UnicodeScalarView()
        while true {
            guard pos < src.count else { throw TemplateError(.syntax, "unterminated string literal", line: startLine) }
            let u = src[pos]
            if u == quote { pos += 1; break }
            if u == "\n" { line += 1 }
            if u != "\\" { out.append(u); pos += 1; continue }
            guard pos + 1 < src.count else { throw TemplateError(.syntax, "unterminated string literal", line: startLine) }
            let e = src[pos + 1]
            pos += 2
            func hexDigits(_ n: Int) throws(TemplateError) -> Unicode.Scalar {
                guard pos + n <= src.count, let v = UInt32(string(pos..<(pos + n)), radix: 16), let s = Unicode.Scalar(v) else {
                    throw TemplateError(.syntax, "invalid \\\(e) escape in a string literal", line: line)
                }
                pos += n
                return s
            }
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "v": out.append("\u{0B}")
            case "\n": line += 1   // an escaped line break continues the string
            case "x": out.append(try hexDigits(2))
            case "u": out.append(try hexDigits(4))
            case "U": out.append(try hexDigits(8))
            case "0"..."7":
                var v = e.value - 48
                var n = 1
                while n < 3, pos < src.count, ("0"..."7").contains(src[pos]) { v = v * 8 + src[pos].value - 48; pos += 1; n += 1 }
                out.append(Unicode.Scalar(v)!)
            default:
                out.append("\\")
                out.append(e)
                if e == "\n" { line += 1 }
            }
        }
        return Token(kind: .string, text: String(out), line: startLine)
    }
}
