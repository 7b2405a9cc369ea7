import ArgumentParser
import Foundation
import VerbatimModel

@main
struct VerbatimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verbatim",
        abstract: "Deterministic CPU inference for small LLaMA models, with an exact cache.",
        subcommands: [Info.self, Tokenize.self, TemplateCommand.self, Score.self, Generate.self, Demo.self, Serve.self, CacheStress.self, CrossCheck.self, Cut.self]
    )
}

/// `--model`, defaulting to where scripts/setup puts the real model.
struct ModelOption: ParsableArguments {
    static let fileName = ModelLocation.defaultModel

    @Option(name: .long, help: ArgumentHelp(
        "Path to a GGUF model file.",
        discussion: "Default: $VERBATIM_MODEL, else $VERBATIM_MODEL_DIR/\(fileName), else models/\(fileName) (where scripts/setup puts it)."))
    var model: String?

    var path: String {
        model ?? ModelLocation.path()
    }

    func open() throws -> GGUFFile {
        do {
            return try GGUFFile(path: path)
        } catch {
            var message = error.description
            if error.code == .cannotOpen && model == nil {
                message += "\n(run scripts/setup to fetch the default model, or pass --model)"
            }
            throw CLIError(message)
        }
    }
}

/// An error printed as one clear line on standard error, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func printJSON(_ object: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}
