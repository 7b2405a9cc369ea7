import Foundation
import Testing
@testable import VerbatimModel

/// Blocks and the floats gguf-py's `dequantize` gives for them (Data/dequantize-expected.json,
/// made by scripts/reference/make_dequant_expectations.py): real tensors of the Gemma 3 270M
/// Q4_K_M file and random blocks of the types it does not hold.
struct DequantizeCase: Decodable {
    let type: String
    let source: String
    let blocks: String
    let values: [UInt32]

    var bytes: [UInt8] {
        var out: [UInt8] = []
        var it = blocks.makeIterator()
        while let hi = it.next(), let lo = it.next() { out.append(UInt8(String([hi, lo]), radix: 16)!) }
        return out
    }

    static func load() throws -> [DequantizeCase] {
        let url = try #require(Bundle.module.url(forResource: "dequantize-expected", withExtension: "json", subdirectory: "Data"))
        return try JSONDecoder().decode([DequantizeCase].self, from: Data(contentsOf: url))
    }
}

@Suite("Dequantisation of every GGUF block format Verbatim reads")
struct DequantizeTests {
    @Test("Q8_0, Q5_0, Q4_K, Q6_K (real Gemma 3 tensors) and Q5_1, Q2_K, Q3_K, Q5_K, IQ4_NL, IQ4_XS (random blocks) decode bit for bit as gguf-py does")
    func matchesGGUFPy() throws {
        let cases = try DequantizeCase.load()
        #expect(Set(cases.map(\.type)) == ["Q8_0", "Q5_0", "Q4_K", "Q6_K", "Q5_1", "Q2_K", "Q3_K", "Q5_K", "IQ4_NL", "IQ4_XS"])
        for c in cases {
            let type = try #require(GGMLType.allCases.first { $0.description == c.type }, "unknown type \(c.type)")
            let raw = c.bytes
            #expect(raw.count % type.blockBytes == 0, "\(c.type): \(raw.count) bytes")
            let count = raw.count / type.blockBytes * type.blockSize
            #expect(count == c.values.count, "\(c.type): \(count) values decoded, \(c.values.count) expected")
            var out = [Float](repeating: .nan, count: count)
            try raw.withUnsafeBytes { r in
                try out.withUnsafeMutableBufferPointer { o in try Dequantize.run(type, from: r.baseAddress!, count: count, into: o.baseAddress!) }
            }
            let differ = zip(out, c.values).enumerated().filter { $0.element.0.bitPattern != $0.element.1 }
            #expect(differ.isEmpty, "\(c.type) (\(c.source)): \(differ.count) of \(count) values differ, first at \(differ.first?.offset ?? -1): \(differ.first.map { "\($0.element.0) vs \(Float(bitPattern: $0.element.1))" } ?? "")")
        }
    }

    @Test("Damaged K-quant and IQ4 tensors are typed errors: a row length that is not whole blocks, data cut short")
    func damagedBlocks() throws {
        for type in [GGMLType.q4_K, .q5_K, .q6_K, .q2_K, .q3_K, .iq4_xs, .q5_0, .iq4_nl] {
            var w = GGUFWriter()
            w.set("general.architecture", .string("test"))
            w.addTensor("t", dimensions: [256, 2], type: type, data: [UInt8](repeating: 0, count: 512 / type.blockSize * type.blockBytes))
            let good = w.serialized()
            let file = try GGUFFile(data: good)
            let t = try #require(file.tensor(named: "t"))
            #expect(try file.floats(of: t).count == 512, "\(type)")
            // The first dimension, 256 as a u64 after the name and the rank, becomes 250.
            let pattern: [UInt8] = [2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
            let at = try #require((0...(good.count - pattern.count)).first { Array(good[$0..<($0 + pattern.count)]) == pattern })
            var badShape = good
            badShape[at + 4] = 250; badShape[at + 5] = 0
            #expect(throws: GGUFError.self, "\(type): 250 values a row") { _ = try GGUFFile(data: badShape) }
            do { _ = try GGUFFile(data: badShape) } catch { #expect(error.code == .invalidTensorInfo, "\(type): \(error)") }
            // The data cut short by one byte.
            let short = Array(good.dropLast())
            do {
                _ = try GGUFFile(data: short)
                Issue.record("\(type): a file one byte short was accepted")
            } catch {
                #expect(error.code == .tensorOutOfBounds || error.code == .truncated, "\(type): \(error)")
            }
        }
    }

    @Test("The encoders of the computed types decode back to within one quantisation step of the block's range (model files for tests and benchmarks)")
    func encodersRoundTrip() throws {
        var rng = SystemRandomNumberGenerator()
        for type in GGMLType.supported where type.blockSize > 1 {
            let span = type.blockSize == 256 ? 256 : 32
            for trial in 0..<20 {
                // Some blocks all positive or all negative, most mixed.
                let shift: Float = trial % 5 == 0 ? 3 : trial % 5 == 1 ? -3 : 0
                let values = (0..<(4 * span)).map { _ in Float.random(in: -2...2, using: &rng) + shift }
                let bytes = Quantize.encode(values, as: type)
                #expect(bytes.count == values.count / type.blockSize * type.blockBytes)
                var back = [Float](repeating: .nan, count: values.count)
                try bytes.withUnsafeBytes { raw in
                    try back.withUnsafeMutableBufferPointer { try Dequantize.run(type, from: raw.baseAddress!, count: values.count, into: $0.baseAddress!) }
                }
                let levels: Float = switch type {
                case .q8_0: 254
                case .q4_0, .q4_1, .q4_K: 15
                case .q6_K: 63
                default: 31
                }
                for b in 0..<(values.count / span) {
                    let block = values[(b * span)..<(b * span + span)]
                    // Symmetric types span [-max|x|, max|x|]; the others [min(0 or lo), hi].
                    let range = [.q8_0, .q4_0, .q5_0, .q6_K].contains(type) ? 2 * (block.map(abs).max() ?? 0)
                        : (block.max() ?? 0) - min(type == .q4_1 || type == .q5_1 ? (block.min() ?? 0) : 0, block.min() ?? 0)
                    let worst = (b * span..<(b * span + span)).map { abs(back[$0] - values[$0]) }.max() ?? 0
                    #expect(worst <= range / levels, "\(type) block \(b): error \(worst), step \(range / levels)")
                }
            }
        }
    }

    @Test("Q5_0, Q5_1, Q4_K, Q5_K and Q6_K are computed with; Q2_K, Q3_K, IQ4_NL and IQ4_XS are decoded but not (a model holding them is refused by name); Q8_1 and Q8_K are not decoded")
    func supportBoundaries() throws {
        for type in [GGMLType.q5_0, .q5_1, .q4_K, .q5_K, .q6_K] {
            #expect(type.isDequantizable && type.isSupported, "\(type)")
        }
        for type in [GGMLType.q2_K, .q3_K, .iq4_nl, .iq4_xs] {
            #expect(type.isDequantizable && !type.isSupported, "\(type)")
        }
        #expect(GGMLType.iq4_nl.blockSize == 32 && GGMLType.iq4_nl.blockBytes == 18)
        #expect(GGMLType.iq4_xs.blockSize == 256 && GGMLType.iq4_xs.blockBytes == 136)
        #expect(!GGMLType.q8_1.isDequantizable && !GGMLType.q8_K.isDequantizable)
        let raw = [UInt8](repeating: 0, count: 36)
        var out = [Float](repeating: 0, count: 32)
        #expect(throws: GGUFError.self) {
            try raw.withUnsafeBytes { r in try out.withUnsafeMutableBufferPointer { try Dequantize.run(.q8_1, from: r.baseAddress!, count: 32, into: $0.baseAddress!) } }
        }
    }
}
