import Testing
@testable import VerbatimModel
import VerbatimTestSupport

@Suite("LLaMA hyperparameters")
struct LlamaConfigTests {
    /// A tiny model with one metadata value replaced.
    func tiny(replacing key: String, with value: GGUFValue?, dropTensor: String? = nil) throws -> GGUFFile {
        let base = try tinyModelFile()
        var w = GGUFWriter()
        for e in base.metadataEntries where !(value == nil && e.key == key) { w.set(e.key, e.key == key ? value! : e.value) }
        for t in base.tensors where t.name != dropTensor {
            w.addTensor(t.name, dimensions: t.dimensions, type: t.type, data: Array(base.data(of: t)))
        }
        return try GGUFFile(data: w.serialized())
    }

    func expectError(_ code: GGUFError.Code, mentioning text: String, _ file: GGUFFile) {
        do {
            _ = try LlamaConfig(file: file)
            Issue.record("expected \(code)")
        } catch {
            #expect(error.code == code)
            #expect(error.message.contains(text), "\(error.message)")
        }
    }

    @Test("generated tiny models of every supported weight type validate")
    func tinyModelsValidate() throws {
        for type in GGMLType.supported {
            let superBlocks = type.blockSize == 256 // K-quant rows are whole super-blocks
            let file = try tinyModelFile {
                $0.weightType = type; $0.embeddingType = type
                if superBlocks { $0.width = 256; $0.feedForward = 512 }
            }
            let config = try LlamaConfig(file: file)
            #expect(config.layerCount == 2 && config.headDimension == (superBlocks ? 64 : 16) && config.kvHeadCount == 2)
            #expect(file.tensors.filter { $0.name.hasSuffix("attn_q.weight") }.allSatisfy { $0.type == type })
        }
    }

    @Test("inconsistent hyperparameters and tensors get typed errors that name the problem")
    func validation() throws {
        expectError(.invalidHyperparameters, mentioning: "not divisible by head count", try tiny(replacing: "llama.attention.head_count", with: .uint32(5)))
        expectError(.invalidHyperparameters, mentioning: "KV head count", try tiny(replacing: "llama.attention.head_count_kv", with: .uint32(3)))
        expectError(.invalidHyperparameters, mentioning: "architecture 'gpt2'", try tiny(replacing: "general.architecture", with: .string("gpt2")))
        expectError(.missingKey, mentioning: "llama.block_count", try tiny(replacing: "llama.block_count", with: nil))
        expectError(.wrongValueType, mentioning: "llama.block_count", try tiny(replacing: "llama.block_count", with: .string("2")))
        expectError(.invalidHyperparameters, mentioning: "llama.block_count", try tiny(replacing: "llama.block_count", with: .uint32(0)))
        expectError(.missingTensor, mentioning: "blk.2.attn_norm.weight", try tiny(replacing: "llama.block_count", with: .uint32(3)))
        expectError(.tensorShapeMismatch, mentioning: "ffn_gate", try tiny(replacing: "llama.feed_forward_length", with: .uint32(64)))
        expectError(.missingTensor, mentioning: "blk.1.ffn_up.weight", try tiny(replacing: "general.name", with: .string("x"), dropTensor: "blk.1.ffn_up.weight"))
        expectError(.invalidHyperparameters, mentioning: "RoPE scaling", try tiny(replacing: "general.name", with: .string("x")).withKey("llama.rope.scaling.type", .string("yarn")))
        expectError(.invalidHyperparameters, mentioning: "partial RoPE", try tiny(replacing: "llama.rope.dimension_count", with: .uint32(8)))
    }

    @Test("a weight of an unsupported type is named in the error")
    func unsupportedType() throws {
        let base = try tinyModelFile()
        var w = GGUFWriter()
        for e in base.metadataEntries { w.set(e.key, e.value) }
        for t in base.tensors {
            if t.name == "blk.0.attn_q.weight" {
                let blocks = t.elementCount / 256
                w.addTensor(t.name, dimensions: t.dimensions, type: .q6_K, data: [UInt8](repeating: 0, count: blocks * 210))
            } else {
                w.addTensor(t.name, dimensions: t.dimensions, type: t.type, data: Array(base.data(of: t)))
            }
        }
        // 64 x 64 = 4096 elements: 16 Q6_K blocks, but the row length 64 is not a multiple of 256.
        #expect(throws: GGUFError.self) { try GGUFFile(data: w.serialized()) }

        var wide = TinyModel()
        wide.width = 256; wide.heads = 4; wide.kvHeads = 2; wide.feedForward = 256
        let big = try GGUFFile(data: wide.generate())
        var w2 = GGUFWriter()
        for e in big.metadataEntries { w2.set(e.key, e.value) }
        for t in big.tensors {
            if t.name == "blk.1.attn_output.weight" {
                w2.addTensor(t.name, dimensions: t.dimensions, type: .q3_K, data: [UInt8](repeating: 0, count: t.elementCount / 256 * 110))
            } else {
                w2.addTensor(t.name, dimensions: t.dimensions, type: t.type, data: Array(big.data(of: t)))
            }
        }
        let file = try GGUFFile(data: w2.serialized())
        expectError(.unsupportedTensorType, mentioning: "'blk.1.attn_output.weight' has type Q3_K", file)
    }
}

extension GGUFFile {
    /// A copy with one more metadata key.
    func withKey(_ key: String, _ value: GGUFValue) throws -> GGUFFile {
        var w = GGUFWriter()
        for e in metadataEntries { w.set(e.key, e.value) }
        w.set(key, value)
        for t in tensors { w.addTensor(t.name, dimensions: t.dimensions, type: t.type, data: Array(data(of: t))) }
        return try GGUFFile(data: w.serialized())
    }

    /// A copy without one metadata key.
    func withoutKey(_ key: String) throws -> GGUFFile {
        var w = GGUFWriter()
        for e in metadataEntries where e.key != key { w.set(e.key, e.value) }
        for t in tensors { w.addTensor(t.name, dimensions: t.dimensions, type: t.type, data: Array(data(of: t))) }
        return try GGUFFile(data: w.serialized())
    }
}
