import Foundation
import Testing
@testable import VerbatimModel
import VerbatimTestSupport

/// The repository root, found from this file's location.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// The real model (SmolLM2-135M-Instruct Q4_1), where scripts/setup puts it.
func realModelPath() throws -> String {
    let path = ModelLocation.path(modelsFolder: repositoryRoot.appendingPathComponent("models").path)
    try #require(FileManager.default.fileExists(atPath: path), "the real model is missing at \(path): run scripts/setup")
    return path
}

/// The real model, opened once for all tests.
let realModel: Result<GGUFFile, any Error> = Result { try GGUFFile(path: try realModelPath()) }

/// The second real model (Gemma 3 270M Q4_K_M), where scripts/setup puts it
/// (VERBATIM_GEMMA_MODEL, else VERBATIM_MODEL_DIR or models/).
func gemmaModelPath() throws -> String {
    let path = ModelLocation.path(of: ModelLocation.gemma3, fileVariable: "VERBATIM_GEMMA_MODEL",
                                  modelsFolder: repositoryRoot.appendingPathComponent("models").path)
    try #require(FileManager.default.fileExists(atPath: path), "the Gemma 3 model is missing at \(path): run scripts/setup")
    return path
}

let gemmaModel: Result<GGUFFile, any Error> = Result { try GGUFFile(path: try gemmaModelPath()) }

func tinyModelFile(_ configure: (inout TinyModel) -> Void = { _ in }) throws -> GGUFFile {
    var tiny = TinyModel()
    configure(&tiny)
    return try GGUFFile(data: tiny.generate())
}

/// Counts elements whose bit patterns differ; reports the first index.
func bitwiseDifferences(_ a: [Float], _ b: [Float]) -> (count: Int, first: Int?) {
    precondition(a.count == b.count)
    var count = 0
    var first: Int?
    for i in a.indices where a[i].bitPattern != b[i].bitPattern {
        count += 1
        if first == nil { first = i }
    }
    return (count, first)
}

/// The committed expectations made by scripts/reference/make_tokenizer_expectations.py.
struct TokenizerExpectations: Decodable {
    struct Case: Decodable { let text: String; let special: Bool; let ids: [Int32] }
    struct SyntheticCase: Decodable { let text: String; let ids: [Int32] }
    struct Synthetic: Decodable { let tokens: [String]; let merges: [String]; let cases: [SyntheticCase] }
    struct Chat: Decodable { let messages: [ChatMessage]; let add_generation_prompt: Bool; let text: String }
    let cases: [Case]
    let synthetic: Synthetic
    let chats: [Chat]

    static func load() throws -> TokenizerExpectations {
        let url = try #require(Bundle.module.url(forResource: "tokenizer-expected", withExtension: "json", subdirectory: "Data"))
        return try JSONDecoder().decode(TokenizerExpectations.self, from: Data(contentsOf: url))
    }
}
