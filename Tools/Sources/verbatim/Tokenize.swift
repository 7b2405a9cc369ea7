import ArgumentParser
import Foundation
import VerbatimModel

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Turn text into token ids with the model's tokenizer.",
        discussion: "Without TEXT, standard input is read exactly as given, byte for byte (NUL bytes and a trailing newline included; bytes that are not UTF-8 become U+FFFD).")

    @OptionGroup var model: ModelOption
    @Flag(help: "Print {\"tokens\":[...]}.") var json = false
    @Flag(help: "Match control tokens written in the text, such as <|im_start|>, as whole tokens.") var special = false
    @Flag(help: "Treat the text as one user message and format it with the model's chat template (with the generation prompt).")
    var chat = false
    @Argument(help: "The text (default: standard input).") var text: String?

    func run() throws {
        let file = try model.open()
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer(file: file) } catch { throw CLIError("\(model.path): \(error)") }
        let input = text ?? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        let ids: [TokenID]
        if chat {
            do { ids = try tokenizer.encodeChat([ChatMessage(role: "user", content: input)]) } catch { throw CLIError("\(error)") }
        } else {
            ids = tokenizer.encode(input, parseSpecial: special)
        }
        if json {
            try printJSON(["tokens": ids.map { Int($0) }])
            return
        }
        print("\(ids.count) tokens")
        for id in ids {
            let piece = (try? tokenizer.decode([id], includeControl: true)) ?? ""
            let shown = piece.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? String($0) : $0.escaped(asASCII: true) }.joined()
            print("\(id)\t\"\(shown)\"")
        }
    }
}
