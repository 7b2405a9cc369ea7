#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where the tools, the tests and the benchmarks look for a model file when none is named: one
/// rule for all of them. The file variable (`VERBATIM_MODEL` for the default model) names the
/// file itself; else `VERBATIM_MODEL_DIR` names its folder; else it is in `modelsFolder`
/// (`models/`, where `scripts/setup` puts the models). An empty variable counts as unset.
public enum ModelLocation {
    /// The default model's file name (SmolLM2-135M-Instruct, Q4_1).
    public static let defaultModel = "SmolLM2-135M-Instruct.Q4_1.gguf"
    /// The second real model's file name (Gemma 3 270M, Q4_K_M); its file variable is `VERBATIM_GEMMA_MODEL`.
    public static let gemma3 = "gemma-3-270m-q4_k_m.gguf"

    /// The path of model file `file` by the rule above; `variable` reads the environment.
    public static func path(of file: String = defaultModel, fileVariable: String = "VERBATIM_MODEL",
                            modelsFolder: String = "models", variable: (String) -> String? = environment) -> String {
        if let path = variable(fileVariable), !path.isEmpty { return path }
        if let folder = variable("VERBATIM_MODEL_DIR"), !folder.isEmpty { return folder + "/" + file }
        return modelsFolder + "/" + file
    }

    /// The value of an environment variable, nil when it is not set.
    public static func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
}
