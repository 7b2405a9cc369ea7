import Testing
import VerbatimModel

@Suite("Model location: one rule for the tools, tests and benchmarks")
struct ModelLocationTests {
    @Test("the file variable wins, then the folder variable, then the models folder; empty variables count as unset")
    func order() {
        func path(_ variables: [String: String]) -> String {
            ModelLocation.path(modelsFolder: "/repo/models", variable: { variables[$0] })
        }
        #expect(path([:]) == "/repo/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        #expect(path(["VERBATIM_MODEL_DIR": "/data"]) == "/data/SmolLM2-135M-Instruct.Q4_1.gguf")
        #expect(path(["VERBATIM_MODEL": "/x/m.gguf", "VERBATIM_MODEL_DIR": "/data"]) == "/x/m.gguf")
        #expect(path(["VERBATIM_MODEL": "", "VERBATIM_MODEL_DIR": ""]) == "/repo/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        let gemma = ModelLocation.path(of: ModelLocation.gemma3, fileVariable: "VERBATIM_GEMMA_MODEL", modelsFolder: "m",
                                       variable: { ["VERBATIM_MODEL": "/x/m.gguf", "VERBATIM_MODEL_DIR": "/data"][$0] })
        #expect(gemma == "/data/gemma-3-270m-q4_k_m.gguf", "the default model's file variable does not move the Gemma file")
    }
}
