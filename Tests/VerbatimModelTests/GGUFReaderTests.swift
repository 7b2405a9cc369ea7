import Foundation
import Testing
@testable import VerbatimModel
import VerbatimTestSupport

@Suite("GGUF reader and writer")
struct GGUFReaderTests {
    @Test("every metadata value type, nested arrays included, round-trips through the writer")
    func metadataRoundTrip() throws {
        var w = GGUFWriter()
        let values: [(String, GGUFValue)] = [
            ("u8", .uint8(200)), ("i8", .int8(-5)), ("u16", .uint16(65000)), ("i16", .int16(-300)),
            ("u32", .uint32(4_000_000_000)), ("i32", .int32(-7)), ("u64", .uint64(.max)), ("i64", .int64(.min)),
            ("f32", .float32(-1.5)), ("f64", .float64(.pi)), ("yes", .bool(true)), ("no", .bool(false)),
            ("s", .string("héllo 👋\n")), ("empty", .string("")),
            ("ints", .array(.int32, [.int32(1), .int32(-2)])), ("none", .array(.uint8, [])),
            ("nested", .array(.array, [.array(.string, [.string("a"), .string("b")]), .array(.string, [])])),
        ]
        for (k, v) in values { w.set(k, v) }
        let file = try GGUFFile(data: w.serialized())
        #expect(file.version == 3)
        #expect(file.metadataEntries.map(\.key) == values.map(\.0))
        for (k, v) in values { #expect(file.metadata[k] == v, "key \(k)") }
        #expect(file.tensors.isEmpty)
    }

    @Test("tensors keep names, shapes, types and exact bytes; offsets honour general.alignment")
    func tensorsRoundTrip() throws {
        var w = GGUFWriter()
        w.alignment = 64
        w.set("general.alignment", .uint32(64))
        var rng = SplitMix64(seed: 7)
        var expected: [String: [Float]] = [:]
        for type in GGMLType.supported {
            let row = type.blockSize == 256 ? 256 : 64
            let values = (0..<(row * 3)).map { _ in rng.nextSigned() * 4 }
            w.addTensor("t.\(type)", dimensions: [row, 3], type: type, values: values)
            expected["t.\(type)"] = values
        }
        let bytes = w.serialized()
        let file = try GGUFFile(data: bytes)
        #expect(file.alignment == 64)
        #expect(file.dataOffset % 64 == 0)
        for (i, t) in file.tensors.enumerated() {
            #expect(t.offset % 64 == 0)
            #expect(t.dimensions[1] == 3 && t.rowCount == 3 && t.rowLength == t.dimensions[0])
            #expect(Array(file.data(of: t)) == w.tensors[i].data)
            let decoded = try file.floats(of: t)
            let original = expected[t.name]!
            // Exact for F32; within each format's quantisation step otherwise.
            let bound: Float = switch t.type { case .f32: 0; case .f16: 4e-3; case .bf16: 3e-2; case .q8_0: 4.0 / 127; default: 8.0 / 7 }
            let worst = zip(decoded, original).map { abs($0 - $1) }.max()!
            #expect(worst <= bound, "\(t.type): worst error \(worst) > \(bound)")
        }
    }

    @Test("dequantisation follows NUMERICS.md: Q8_0 d*q, Q4_0 d*(q-8), Q4_1 fma(d,q,m), nibble order")
    func dequantisationDefinitions() throws {
        // d = 0.5 (f16 0x3800), m = -1.25 (f16 0xBD00)
        var q8: [UInt8] = [0x00, 0x38] + (0..<32).map { UInt8(bitPattern: Int8($0 - 16)) }
        var q4_0: [UInt8] = [0x00, 0x38] + (0..<16).map { UInt8($0) | UInt8(15 - $0) << 4 }
        var q4_1: [UInt8] = [0x00, 0x38, 0x00, 0xBD] + (0..<16).map { UInt8($0) | UInt8(15 - $0) << 4 }
        var out = [Float](repeating: 0, count: 32)
        try Dequantize.run(.q8_0, from: &q8, count: 32, into: &out)
        let q8Expected: [Float] = (0..<32).map { (j: Int) -> Float in 0.5 * Float(j - 16) }
        #expect(out == q8Expected)
        try Dequantize.run(.q4_0, from: &q4_0, count: 32, into: &out)
        // element j is the low nibble of byte j, element j+16 the high nibble
        let low: [Float] = (0..<16).map { (j: Int) -> Float in 0.5 * Float(j - 8) }
        let high: [Float] = (0..<16).map { (j: Int) -> Float in 0.5 * Float(15 - j - 8) }
        #expect(out == low + high)
        try Dequantize.run(.q4_1, from: &q4_1, count: 32, into: &out)
        let m: Float = -1.25, d: Float = 0.5
        let lowQ: [Float] = (0..<16).map { (j: Int) -> Float in m.addingProduct(d, Float(j)) }
        let highQ: [Float] = (0..<16).map { (j: Int) -> Float in m.addingProduct(d, Float(15 - j)) }
        let expected = lowQ + highQ
        #expect(bitwiseDifferences(out, expected).count == 0)
        var bf: [UInt8] = [0x80, 0x3F, 0x49, 0x40]  // 1.0, 3.140625
        try Dequantize.run(.bf16, from: &bf, count: 2, into: &out)
        #expect(out[0] == 1.0 && out[1] == 3.140625)
        var f16: [UInt8] = [0x01, 0x00, 0x00, 0x7C]  // smallest subnormal, +inf
        try Dequantize.run(.f16, from: &f16, count: 2, into: &out)
        let smallest = Float(sign: .plus, exponent: -24, significand: 1)
        #expect(out[0] == smallest)
        #expect(out[1] == .infinity)
        #expect(throws: GGUFError.self) { try Dequantize.run(.q8_K, from: &f16, count: 256, into: &out) } // not decoded: throws before reading
    }

    @Test("the real model: header, hyperparameters, tensors, tokenizer metadata")
    func realModelLayout() throws {
        let file = try realModel.get()
        #expect(file.version == 3)
        #expect(file.tensors.count == 272)
        let config = try LlamaConfig(file: file)
        #expect(config == LlamaConfig(layerCount: 30, contextLength: 8192, embeddingLength: 576, feedForwardLength: 1536,
                                      headCount: 9, kvHeadCount: 3, ropeFrequencyBase: 100_000, rmsNormEpsilon: 1e-5,
                                      vocabularySize: 49152, tiedEmbeddings: true))
        #expect(config.headDimension == 64 && config.kvDimension == 192)
        let embeddings = try #require(file.tensor(named: "token_embd.weight"))
        #expect(embeddings.type == .q8_0 && embeddings.dimensions == [576, 49152])
        #expect(file.tensor(named: "blk.0.ffn_down.weight")?.type == .q4_1)
        #expect(file.tensor(named: "blk.0.ffn_down.weight")?.dimensions == [1536, 576])
        // Every weight dequantises to finite values of a plausible size.
        var row = [Float](repeating: 0, count: 1536)
        for t in file.tensors where t.dimensions.count == 2 {
            try row.withUnsafeMutableBufferPointer { try file.dequantizeRow(t, row: t.rowCount - 1, into: $0) }
            #expect(row[0..<t.rowLength].allSatisfy { $0.isFinite && abs($0) < 100 }, "\(t.name)")
        }
    }

    @Test("the model digest is stable, ignores names, and changes with any weight or hyperparameter")
    func modelDigest() throws {
        let real = try realModel.get()
        #expect(real.modelDigest() == (try GGUFFile(path: realModelPath())).modelDigest())

        let base = TinyModel().generate()
        let digest = try GGUFFile(data: base).modelDigest()
        #expect(try GGUFFile(data: base).modelDigest() == digest)

        var renamed = TinyModel()
        renamed.seed = 1
        let file = try GGUFFile(data: base)
        var w = GGUFWriter()
        for e in file.metadataEntries { w.set(e.key, e.key == "general.name" ? .string("another name") : e.value) }
        w.set("general.license", .string("apache-2.0"))
        for t in file.tensors { w.addTensor(t.name, dimensions: t.dimensions, type: t.type, data: Array(file.data(of: t))) }
        #expect(try GGUFFile(data: w.serialized()).modelDigest() == digest)

        // One weight byte flipped (the last byte of the file is tensor data).
        var flipped = base
        flipped[flipped.count - 1] ^= 0x01
        #expect(try GGUFFile(data: flipped).modelDigest() != digest)

        w.set("llama.rope.freq_base", .float32(20_000))
        #expect(try GGUFFile(data: w.serialized()).modelDigest() != digest)
        var other = TinyModel()
        other.seed = 2
        #expect(try GGUFFile(data: other.generate()).modelDigest() != digest)
    }

    @Test("a file is read through mmap: tensor data points into the mapping, not a copy")
    func zeroCopy() throws {
        let file = try realModel.get()
        let t = try #require(file.tensor(named: "output_norm.weight"))
        let data = file.data(of: t)
        #expect(data.baseAddress! == file.bytes.base + file.dataOffset + t.offset)
        #expect(file.bytes.count == 98_362_432)
    }
}
