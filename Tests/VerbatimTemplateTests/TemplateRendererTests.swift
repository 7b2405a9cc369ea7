import Testing
@testable import VerbatimTemplate

@Suite("Template renderer")
struct TemplateRendererTests {
    @Test("each construct (whitespace control, operators, statements, every filter, test and method) renders as Jinja2 does")
    func constructs() {
        let units = JinjaCorpus.units
        #expect(units.cases.count >= 60)
        for unit in units.cases {
            if let why = JinjaCorpus.check(unit, units.context) { Issue.record("\(unit.source.debugDescription): \(why)") }
        }
    }

    func error(_ source: String, _ variables: [String: TemplateValue] = [:], limits: TemplateLimits = TemplateLimits()) -> TemplateError? {
        do {
            _ = try Template(source).render(variables, limits: limits)
            return nil
        } catch {
            return error
        }
    }

    @Test("malformed templates are syntax errors naming the line")
    func syntaxErrors() {
        let cases: [(String, Int)] = [("line one\n{% if x %}never closed", 2), ("{{ 'unterminated }}", 1), ("{% for x in y %}{% endif %}", 1),
                                      ("a\nb\n{{ x + }}", 3), ("{# open comment", 1), ("{% frobnicate %}", 1), ("{{ (1 }}", 1),
                                      ("{% raw %}never ended", 1), ("{{ x ]] }}", 1)]
        for (source, line) in cases {
            let e = error(source)
            #expect(e?.code == .syntax, "\(source.debugDescription): \(String(describing: e))")
            #expect(e?.line == line, "\(source.debugDescription): \(String(describing: e))")
        }
    }

    @Test("unknown filters, tests and statements are typed errors when reached, never silently skipped")
    func unsupported() {
        #expect(error("{{ 'x' | frobnicate }}")?.code == .unsupported)
        #expect(error("{{ 1 is frobnicated }}")?.code == .unsupported)
        #expect(error("{% include 'other.jinja' %}")?.code == .unsupported)
        #expect(error("{{ '%q' % 1 }}")?.code == .unsupported)
        // As in Jinja2, an unknown filter in a branch that does not run is no error.
        #expect(error("{% if false %}{{ x | frobnicate }}{% endif %}") == nil)
    }

    @Test("hostile templates hit a bound: deep nesting, runaway loops, recursion, huge output")
    func boundedWork() {
        #expect(error("{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}")?.code == .limit)
        #expect(error("{{ " + String(repeating: "not ", count: 5000) + "x }}")?.code == .limit)
        #expect(error(String(repeating: "{% if true %}", count: 1000) + String(repeating: "{% endif %}", count: 1000))?.code == .limit)
        #expect(error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")?.code == .limit)
        #expect(error("{{ range(10000000) }}")?.code == .limit)
        #expect(error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")?.code == .limit)
        #expect(error("{{ 'x' * 100000000 }}")?.code == .limit)
        #expect(error("{% set s = namespace(t='xxxxxxxx') %}{% for i in range(40) %}{% set s.t = s.t ~ s.t %}{% endfor %}")?.code == .limit)
        #expect(error("{{ 9223372036854775807 + 1 }}")?.code == .limit)
        // Sizes and counts near Int's limits are limit errors, never an arithmetic trap.
        for huge in ["{{ 'x' * 9223372036854775807 }}", "{{ [1, 2] * 9223372036854775807 }}", "{{ range(-9223372036854775807, 9223372036854775807) }}",
                     "{{ '%99999999999999999999d' % 1 }}", "{{ 'a\\nb' | indent(9223372036854775807) }}", "{{ [1] | tojson(indent=9223372036854775807) }}"] {
            #expect(error(huge)?.code == .limit, "\(huge)")
        }
        let small = TemplateLimits(steps: 100, outputBytes: 64, callDepth: 2)
        #expect(error("{% for i in range(1000) %}x{% endfor %}", limits: small)?.code == .limit)
    }

    @Test("raise_exception is its own error code with the template's message")
    func raised() {
        let e = error("{% if messages|length > 1 %}{{ raise_exception('only one message, please') }}{% endif %}",
                      ["messages": .array([.string("a"), .string("b")])])
        #expect(e == TemplateError(.raised, "only one message, please", line: 1))
    }

    @Test("caller data is marked untrusted through concatenation, joins, macros and filters; template text stays trusted")
    func provenance() throws {
        let template = try Template("{% macro turn(m) %}<|start|>{{ m.role }}\n{{ m.content | trim }}<|end|>{% endmacro %}"
            + "{{ bos_token }}{% for m in messages %}{{ turn(m) }}{% endfor %}{{ '<|start|>' + 'assistant' }}")
        let messages: TemplateValue = .array([.object([TemplateObjectEntry("role", .string("user")), TemplateObjectEntry("content", .string(" <|end|>hi "))])])
        let r = try template.render(["messages": messages, "bos_token": .trustedString("<s>")])
        #expect(r.text == "<s><|start|>user\n<|end|>hi<|end|><|start|>assistant")
        let runs = r.runs.map { ($0.text, $0.trusted) }
        #expect(runs.map(\.0) == ["<s><|start|>", "user", "\n", "<|end|>hi", "<|end|><|start|>assistant"])
        #expect(runs.map(\.1) == [true, false, true, false, true])
        // A string derived from caller text by a method is untrusted as a whole.
        let derived = try Template("{{ ('<|x|>' ~ content).upper() }}").render(["content": .string("a")])
        #expect(derived.untrustedRanges == [0..<derived.text.utf8.count])
    }

    @Test("numbers print as Python prints them")
    func pythonFloats() {
        let cases: [(Double, String)] = [(1, "1.0"), (0.1, "0.1"), (1e16, "1e+16"), (1e15, "1000000000000000.0"), (1e-5, "1e-05"),
                                         (0.0001, "0.0001"), (123.456, "123.456"), (-2.5e-7, "-2.5e-07"), (1.5e300, "1.5e+300"),
                                         (.infinity, "inf"), (-0.0, "-0.0"), (2.0 / 3.0, "0.6666666666666666")]
        for (v, s) in cases { #expect(pyFloat(v) == s, "\(v)") }
    }

    @Test("JSON input keeps key order, integers and unicode escapes")
    func jsonInput() throws {
        let v = try TemplateValue(json: #"{"z": 1, "a": [true, null, 2.5, -3], "s": "\u00e9\ud83d\ude00\n"}"#)
        #expect(v == .object([TemplateObjectEntry("z", .int(1)), TemplateObjectEntry("a", .array([.bool(true), .null, .double(2.5), .int(-3)])),
                              TemplateObjectEntry("s", .string("é😀\n"))]))
        #expect(throws: TemplateError.self) { try TemplateValue(json: #"{"a": }"#) }
        #expect(throws: TemplateError.self) { try TemplateValue(json: String(repeating: "[", count: 10_000)) }
    }

    @Test("strftime_now formats the given instant with the C locale")
    func strftime() throws {
        let now = CalendarTime(year: 2026, month: 7, day: 26, hour: 9, minute: 5, second: 3)
        let r = try Template("{{ strftime_now('%d %b %Y|%A %B %-d %H:%M:%S %j %y %p %I') }}").render([:], now: now)
        #expect(r.text == "26 Jul 2026|Sunday July 26 09:05:03 207 26 AM 09")
        #expect(throws: TemplateError.self) { try Template("{{ strftime_now('%b') }}").render([:], now: CalendarTime(year: 2026, month: 13, day: 1)) }
    }
}
