import Foundation
import Testing
@testable import VerbatimTemplate

/// Renderings by Python's Jinja2 (configured as transformers configures it) of the chat
/// templates in llama.cpp's `models/templates/` and SmolLM2's own, on nine conversations
/// (Data/templates-jinja2.json, made by scripts/reference/make_template_expectations.py).
struct JinjaCorpus {
    struct Case { let conversation: String; let variables: [String: TemplateValue]; let expected: TemplateValue }
    struct Entry { let name: String; let source: String; let cases: [Case] }
    let entries: [Entry]
    let now: CalendarTime

    static let shared: JinjaCorpus = {
        let url = Bundle.module.url(forResource: "templates-jinja2", withExtension: "json", subdirectory: "Data")!
        let root = try! TemplateValue(json: String(decoding: try! Data(contentsOf: url), as: UTF8.self))
        guard case .string(let bos)? = root["bos_token"], case .string(let eos)? = root["eos_token"],
              case .string(let now)? = root["now"], case .array(let conversations)? = root["conversations"],
              case .array(let templates)? = root["templates"] else { fatalError("malformed corpus") }
        var entries: [Entry] = []
        for t in templates {
            guard case .string(let name)? = t["name"], case .string(let source)? = t["source"], case .array(let cases)? = t["cases"] else { continue }
            var out: [Case] = []
            for (conversation, expected) in zip(conversations, cases) {
                guard case .string(let title)? = conversation["name"], let messages = conversation["messages"],
                      let addGenerationPrompt = conversation["add_generation_prompt"] else { continue }
                out.append(Case(conversation: title,
                                variables: ["messages": messages, "add_generation_prompt": addGenerationPrompt,
                                            "bos_token": .trustedString(bos), "eos_token": .trustedString(eos)],
                                expected: expected))
            }
            entries.append(Entry(name: name, source: source, cases: out))
        }
        return JinjaCorpus(entries: entries, now: CalendarTime(iso8601: now)!)
    }()

    enum Outcome: Equatable { case same, unsupported(String), different(String) }

    /// One template on one conversation, against Jinja2's result.
    func outcome(_ entry: Entry, _ c: Case) -> Outcome {
        let rendered: Result<RenderedText, TemplateError> = Result { () throws(TemplateError) in
            try Template(entry.source).render(c.variables, now: now)
        }
        switch (rendered, c.expected["text"], c.expected["error"]) {
        case (.success(let r), .string(let text)?, _):
            return r.text.unicodeScalars.elementsEqual(text.unicodeScalars) ? .same : .different(firstDifference(r.text, text))
        case (.success(let r), _, .string(let error)?):
            return .different("Jinja2 raised (\(error)) but the renderer gave \(r.text.utf8.count) bytes")
        case (.failure(let e), _, .string(let error)?):
            if error.hasPrefix("raise_exception: ") {
                return e.code == .raised && e.message == error.dropFirst("raise_exception: ".count) ? .same
                    : .different("Jinja2 raised '\(error)', the renderer: \(e)")
            }
            return .same   // both refuse (Jinja2's own error, e.g. an undefined variable)
        case (.failure(let e), _, _):
            return e.code == .raised ? .different("renderer raised \(e) where Jinja2 rendered") : .unsupported(e.description)
        default:
            return .different("malformed expectation")
        }
    }

    func firstDifference(_ a: String, _ b: String) -> String {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        var i = 0
        while i < min(x.count, y.count), x[i] == y[i] { i += 1 }
        func around(_ s: [Unicode.Scalar]) -> String { PyString.string(s[max(0, i - 30)..<min(s.count, i + 40)]).debugDescription }
        return "first difference at character \(i): renderer \(around(x)), Jinja2 \(around(y))"
    }
}

@Suite("Jinja2 conformance")
struct JinjaConformanceTests {
    /// The templates of the models users run most: each must render exactly as Jinja2 does on every conversation.
    static let required = ["SmolLM2-135M-Instruct (GGUF)", "google-gemma-2-2b-it", "google-gemma-4-31B-it", "Qwen-Qwen2.5-7B-Instruct",
                           "Qwen-Qwen3-0.6B", "meta-llama-Llama-3.1-8B-Instruct", "meta-llama-Llama-3.2-3B-Instruct",
                           "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "microsoft-Phi-3.5-mini-instruct",
                           "mistralai-Mistral-Nemo-Instruct-2407"]

    @Test("the templates of SmolLM2, Gemma 2/4, Qwen2.5/3, Llama 3.1/3.2, DeepSeek-R1-Distill, Phi-3.5 and Mistral render byte for byte as Jinja2", arguments: required)
    func requiredTemplates(name: String) throws {
        let corpus = JinjaCorpus.shared
        let entry = try #require(corpus.entries.first { $0.name == name })
        #expect(entry.cases.count >= 6)
        for c in entry.cases {
            let outcome = corpus.outcome(entry, c)
            #expect(outcome == .same, "\(name), \(c.conversation): \(outcome)")
        }
    }

    @Test("every template in llama.cpp's collection renders exactly as Jinja2 does; none renders a different text")
    func wholeCollection() {
        let corpus = JinjaCorpus.shared
        var exact = 0
        var unsupported: [String] = []
        for entry in corpus.entries {
            let outcomes = entry.cases.map { corpus.outcome(entry, $0) }
            for (c, o) in zip(entry.cases, outcomes) {
                if case .different(let why) = o { Issue.record("\(entry.name), \(c.conversation): \(why)") }
            }
            if outcomes.allSatisfy({ $0 == .same }) { exact += 1 } else if let u = outcomes.first(where: { $0 != .same }) { unsupported.append("\(entry.name): \(u)") }
        }
        print("Jinja2 conformance: \(exact) of \(corpus.entries.count) templates render exactly on all \(corpus.entries.first?.cases.count ?? 0) conversations")
        for u in unsupported { print("  refused: \(u)") }
        #expect(exact == corpus.entries.count, "every template renders exactly on every conversation")
    }
}

extension JinjaCorpus {
    struct Unit { let source: String; let expected: TemplateValue }

    /// One construct per case (lexer, operators, statements, each filter, test and method),
    /// rendered by Jinja2 on one context.
    static let units: (context: [String: TemplateValue], cases: [Unit]) = {
        let url = Bundle.module.url(forResource: "templates-jinja2", withExtension: "json", subdirectory: "Data")!
        let root = try! TemplateValue(json: String(decoding: try! Data(contentsOf: url), as: UTF8.self))
        guard case .object(let context)? = root["unit_context"], case .array(let units)? = root["units"] else { fatalError("malformed corpus") }
        var variables: [String: TemplateValue] = [:]
        for e in context { variables[e.key] = e.value }
        return (variables, units.compactMap { u in
            guard case .string(let source)? = u["source"] else { return nil }
            return Unit(source: source, expected: u)
        })
    }()

    static func check(_ unit: Unit, _ context: [String: TemplateValue]) -> String? {
        let rendered = Result { () throws(TemplateError) in try Template(unit.source).render(context) }
        switch (rendered, unit.expected["text"], unit.expected["error"]) {
        case (.success(let r), .string(let text)?, _):
            return r.text.unicodeScalars.elementsEqual(text.unicodeScalars) ? nil : "rendered \(r.text.debugDescription), Jinja2 \(text.debugDescription)"
        case (.success(let r), _, .string(let error)?):
            return "rendered \(r.text.debugDescription) where Jinja2 raised \(error)"
        case (.failure(let e), .string(let text)?, _):
            return "failed (\(e)) where Jinja2 rendered \(text.debugDescription)"
        case (.failure(let e), _, .string(let error)?):
            if error.hasPrefix("raise_exception: ") {
                return e.code == .raised && "raise_exception: " + e.message == error ? nil : "raised \(e), Jinja2 \(error)"
            }
            return nil
        default:
            return "malformed expectation"
        }
    }
}
