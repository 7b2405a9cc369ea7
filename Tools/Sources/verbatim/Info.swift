import ArgumentParser
import Foundation
import VerbatimModel

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model's hyperparameters, tensor types, digest and memory.")

    @OptionGroup var model: ModelOption
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() throws {
        let file = try model.open()
        let config: LlamaConfig
        do { config = try LlamaConfig(file: file) } catch { throw CLIError(error.description) }
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer(file: file) } catch { throw CLIError("\(model.path): \(error)") }
        let digest = file.modelDigest()

        var bytesByType: [String: Int] = [:]
        var countByType: [String: Int] = [:]
        for t in file.tensors {
            bytesByType[t.type.description, default: 0] += t.byteCount
            countByType[t.type.description, default: 0] += 1
        }
        let weightBytes = file.tensors.reduce(0) { $0 + $1.byteCount }
        let parameters = file.tensors.reduce(0) { $0 + $1.elementCount }
        // f32 KV: K and V, every layer, per token
        let kvBytesPerToken = 2 * config.layerCount * config.kvDimension * 4

        if json {
            try printJSON([
                "path": model.path,
                "gguf_version": Int(file.version),
                "architecture": config.architecture.rawValue, "sliding_window": config.slidingWindow as Any,
                "name": file.metadata["general.name"]?.string ?? "",
                "digest": digest.description,
                "layers": config.layerCount, "context_length": config.contextLength,
                "embedding_length": config.embeddingLength, "feed_forward_length": config.feedForwardLength,
                "heads": config.headCount, "kv_heads": config.kvHeadCount, "head_dim": config.headDimension,
                "rope_freq_base": config.ropeFrequencyBase, "rms_norm_eps": Double(config.rmsNormEpsilon),
                "vocab_size": config.vocabularySize, "tied_embeddings": config.tiedEmbeddings,
                "parameters": parameters,
                "tensors": countByType.map { ["type": $0.key, "count": $0.value, "bytes": bytesByType[$0.key]!] }
                    .sorted { ($0["type"] as! String) < ($1["type"] as! String) },
                "memory": ["file_bytes": file.bytes.count, "weight_bytes": weightBytes,
                           "kv_bytes_per_token_f32": kvBytesPerToken,
                           "kv_bytes_full_context_f32": kvBytesPerToken * config.contextLength],
                "tokenizer": ["model": tokenizer.model.rawValue, "pre": tokenizer.model == .sentencePiece ? "none" : tokenizer.preTokenizer.rawValue,
                              "tokens": tokenizer.count,
                              "bos": tokenizer.bosID.map { Int($0) } as Any, "eos": tokenizer.eosID.map { Int($0) } as Any,
                              "add_bos": tokenizer.addBOS,
                              "chat_template": tokenizer.chatTemplate != nil ? "jinja"
                                  : (tokenizer.chatTemplateSource == nil ? "none" : "unsupported")],
            ])
            return
        }
        func mib(_ b: Int) -> String { String(format: "%.1f MiB", Double(b) / 1_048_576) }
        var rows: [(String, String)] = [
            ("file", model.path),
            ("name", file.metadata["general.name"]?.string ?? "-"),
            ("format", "GGUF v\(file.version), \(file.tensors.count) tensors, \(file.metadataEntries.count) metadata keys"),
            ("digest", digest.description),
            ("architecture", "\(config.architecture.rawValue): \(config.layerCount) layers, width \(config.embeddingLength), FFN \(config.feedForwardLength)"
                + (config.slidingWindow.map { ", sliding window \($0) on 5 of 6 layers" } ?? "")),
            ("attention", "\(config.headCount) query heads, \(config.kvHeadCount) KV heads, head dim \(config.headDimension)"),
            ("context", "\(config.contextLength) tokens, RoPE base \(config.ropeFrequencyBase), RMS eps \(config.rmsNormEpsilon)"),
            ("vocabulary", "\(config.vocabularySize) tokens, \(config.tiedEmbeddings ? "output tied to embeddings" : "separate output matrix")"),
            ("parameters", String(format: "%.1f M", Double(parameters) / 1e6)),
        ]
        for type in bytesByType.keys.sorted() {
            rows.append(("  \(type)", "\(countByType[type]!) tensors, \(mib(bytesByType[type]!))"))
        }
        rows += [
            ("memory", "\(mib(weightBytes)) weights (mapped file \(mib(file.bytes.count)))"),
            ("KV (f32)", "\(kvBytesPerToken / 1024) KiB per token, \(mib(kvBytesPerToken * config.contextLength)) for the full context"),
            ("tokenizer", (tokenizer.model == .sentencePiece ? "SentencePiece (\(tokenizer.count) tokens)" : "byte-level BPE, pre-tokenizer \(tokenizer.preTokenizer.rawValue)")
                + ", BOS \(tokenizer.addBOS ? "added" : "not added"), EOS \(tokenizer.eosID.map { "\($0) \(tokenizer.tokens[Int($0)])" } ?? "-")"),
            ("chat template", tokenizer.chatTemplate.map { "Jinja, \($0.source.utf8.count) bytes (verbatim template renders it)" }
                ?? tokenizer.chatTemplateError.map { "unusable: \($0)" } ?? "none"),
        ]
        let width = rows.map(\.0.count).max() ?? 0
        for (k, v) in rows { print(k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + v) }
    }
}
