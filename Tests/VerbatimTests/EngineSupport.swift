import Foundation
import Testing
@testable import Verbatim
import VerbatimModel
import VerbatimTestSupport

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

func realModelPath() throws -> String {
    let path = ModelLocation.path(modelsFolder: repositoryRoot.appendingPathComponent("models").path)
    try #require(FileManager.default.fileExists(atPath: path), "the real model is missing at \(path): run scripts/setup")
    return path
}

let realFile: Result<GGUFFile, any Error> = Result { try GGUFFile(path: realModelPath()) }
let realLlama: Result<LlamaModel, any Error> = Result { try LlamaModel(file: realFile.get()) }
let tinyFile: Result<GGUFFile, any Error> = Result { try GGUFFile(data: TinyModel().generate()) }
let tinyLlama: Result<LlamaModel, any Error> = Result { try LlamaModel(file: tinyFile.get()) }

func realEngine(_ configure: (inout EngineConfiguration) -> Void = { _ in }) throws -> Engine {
    var c = EngineConfiguration()
    c.kvMemoryBytes = 256 << 20
    configure(&c)
    return try Engine(model: realLlama.get(), tokenizer: Tokenizer(file: realFile.get()), configuration: c)
}

func tinyEngine(_ configure: (inout EngineConfiguration) -> Void = { _ in }) throws -> Engine {
    var c = EngineConfiguration()
    c.kvMemoryBytes = 16 << 20
    c.blockSize = 16
    configure(&c)
    return try Engine(model: tinyLlama.get(), tokenizer: Tokenizer(file: tinyFile.get()), configuration: c)
}

/// Everything one generation streamed.
struct Completion: Hashable {
    var tokens: [TokenID] = []
    var logprobBits: [UInt32] = []
    var text = ""
    var reason: StopReason?
    var seed: UInt64 = 0
}

func collect(_ stream: GenerationStream, stopAfter limit: Int = .max) async -> Completion {
    var c = Completion()
    for await event in stream {
        switch event {
        case .token(let t):
            c.tokens.append(t.id)
            if let lp = t.logprob { c.logprobBits.append(lp.bitPattern) }
            c.text += t.text
            if c.tokens.count >= limit { return c }
        case .summary(let s):
            c.reason = s.stopReason
            c.seed = s.seed ?? 0
        }
    }
    return c
}

/// Waits (up to `seconds`) for a condition that the engine thread makes true.
func eventually(_ seconds: Double = 20, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return condition()
}
