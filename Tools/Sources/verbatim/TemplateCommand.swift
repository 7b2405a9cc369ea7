import ArgumentParser
import Foundation
import VerbatimModel

/// `verbatim template`: renders a chat template on a conversation and prints the prompt exactly.
struct TemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template",
        abstract: "Render a chat template (the model's own, or a Jinja file) on a conversation and print the prompt exactly.",
        discussion: """
            MESSAGES.json is {"messages": [...], "add_generation_prompt": true} ('-' reads standard input); every \
            field of a message is passed to the template as given. The prompt goes to standard output with nothing \
            added; a template error goes to standard error and the exit status is 1.
            """)

    @Option(help: "A GGUF model whose tokenizer.chat_template, BOS and EOS strings are used.") var model: String?
    @Option(help: "A Jinja template file to render instead of a model's.") var template: String?
    @Option(name: .customLong("bos-token"), help: "bos_token (default: the model's BOS text, if --model).") var bosToken: String?
    @Option(name: .customLong("eos-token"), help: "eos_token (default: the model's EOS text, if --model).") var eosToken: String?
    @Option(name: .customLong("var"), help: ArgumentHelp("A template variable, NAME=VALUE (repeatable).",
            discussion: "VALUE is read as JSON when it is valid JSON (true, 3, {\"a\": 1}), else as a string."))
    var variables: [String] = []
    @Option(help: "What strftime_now sees, as YYYY-MM-DD[THH:MM[:SS]] (default: the current local time).") var now: String?
    @Argument(help: "The conversation as JSON, or '-' for standard input.") var messages: String

    func run() throws {
        guard (model == nil) != (template == nil) else { throw ValidationError("give exactly one of --model and --template") }
        var source: String
        var bos = bosToken, eos = eosToken
        if let template {
            guard let data = FileManager.default.contents(atPath: template) else { throw CLIError("cannot read the template file '\(template)'") }
            source = String(decoding: data, as: UTF8.self)
        } else {
            let file: GGUFFile
            do { file = try GGUFFile(path: model!) } catch { throw CLIError("\(error)") }
            let tokenizer: Tokenizer
            do { tokenizer = try Tokenizer(file: file) } catch { throw CLIError("\(model!): \(error)") }
            guard let text = tokenizer.chatTemplateSource else { throw CLIError("\(model!): the model has no chat template; use --template") }
            source = text
            bos = bos ?? tokenizer.bosID.map { tokenizer.tokens[Int($0)] }
            eos = eos ?? tokenizer.eosID.map { tokenizer.tokens[Int($0)] }
        }
        let input: Data?
        if messages == "-" { input = FileHandle.standardInput.readDataToEndOfFile() } else { input = FileManager.default.contents(atPath: messages) }
        guard let input else { throw CLIError("cannot read the conversation file '\(messages)'") }

        var context: [String: TemplateValue] = [:]
        do {
            let conversation = try TemplateValue(json: String(decoding: input, as: UTF8.self))
            guard case .object(let fields) = conversation, case .array? = conversation["messages"] else {
                throw CLIError("\(messages): expected {\"messages\": [...], \"add_generation_prompt\": ...}")
            }
            for field in fields { context[field.key] = field.value }
        } catch let error as TemplateError {
            throw CLIError("\(messages): \(error.message)")
        }
        if context["add_generation_prompt"] == nil { context["add_generation_prompt"] = .bool(false) }
        for assignment in variables {
            guard let eq = assignment.firstIndex(of: "="), eq != assignment.startIndex else {
                throw ValidationError("--var expects NAME=VALUE (got '\(assignment)')")
            }
            let value = String(assignment[assignment.index(after: eq)...])
            context[String(assignment[..<eq])] = (try? TemplateValue(json: value)) ?? .string(value)
        }
        if let bos { context["bos_token"] = .trustedString(bos) }
        if let eos { context["eos_token"] = .trustedString(eos) }
        var instant: CalendarTime? = nil
        if let now {
            guard let t = CalendarTime(iso8601: now) else { throw ValidationError("--now expects YYYY-MM-DD[THH:MM[:SS]] (got '\(now)')") }
            instant = t
        }
        do {
            let rendered = try Template(source).render(context, now: instant)
            FileHandle.standardOutput.write(Data(rendered.text.utf8))
        } catch {
            FileHandle.standardError.write(Data("verbatim template: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
