import Testing
@testable import VerbatimModel
import VerbatimTestSupport

/// Damaged files must give typed errors: never a crash, a trap or a huge allocation.
@Suite("GGUF reader against damaged files")
struct GGUFFuzzTests {
    /// A small but complete model: every section present, a few KB.
    static let original: [UInt8] = {
        var tiny = TinyModel()
        tiny.layers = 1; tiny.width = 32; tiny.heads = 2; tiny.kvHeads = 1; tiny.feedForward = 32; tiny.merges = 12
        return tiny.generate()
    }()

    /// Parses, and when that succeeds uses everything a loader would touch.
    @discardableResult
    static func exercise(_ bytes: [UInt8]) -> GGUFError? {
        do {
            let file = try GGUFFile(data: bytes)
            _ = file.modelDigest()
            _ = try? LlamaConfig(file: file)
            if let tokenizer = try? Tokenizer(file: file) {
                _ = tokenizer.encode("Hello <|im_start|> world 42", parseSpecial: true)
            }
            var row = [Float](repeating: 0, count: 4096)
            for t in file.tensors where t.type.isSupported && t.rowLength <= row.count {
                try row.withUnsafeMutableBufferPointer { try file.dequantizeRow(t, row: t.rowCount - 1, into: $0) }
            }
            return nil
        } catch let error as GGUFError {
            return error
        } catch {
            Issue.record("untyped error \(error)")
            return nil
        }
    }

    @Test("the unmodified file parses and loads")
    func originalLoads() throws {
        #expect(Self.exercise(Self.original) == nil)
        let file = try GGUFFile(data: Self.original)
        _ = try LlamaConfig(file: file)
        _ = try Tokenizer(file: file)
    }

    @Test("truncation at every byte of the header, metadata and tensor infos, and at every tensor boundary, is a typed error")
    func truncations() throws {
        let file = try GGUFFile(data: Self.original)
        var cuts = Array(0..<file.dataOffset)
        for t in file.tensors { cuts += [file.dataOffset + t.offset, file.dataOffset + t.offset + t.byteCount / 2] }
        cuts.append(Self.original.count - 1)
        var codes: [GGUFError.Code: Int] = [:]
        for cut in cuts {
            let error = Self.exercise(Array(Self.original[..<cut]))
            #expect(error != nil, "a file cut at byte \(cut) of \(Self.original.count) parsed")
            if let error { codes[error.code, default: 0] += 1 }
        }
        #expect(codes[.truncated, default: 0] > 1000)
        #expect(codes[.tensorOutOfBounds, default: 0] > 0)
    }

    @Test("every single-bit flip in the first 512 bytes gives a typed error or a valid file")
    func headerBitFlips() {
        for offset in 0..<512 {
            for bit in 0..<8 {
                var bytes = Self.original
                bytes[offset] ^= 1 << bit
                Self.exercise(bytes)
            }
        }
    }

    @Test("thousands of random mutations: overwrites, insertions, deletions, boundary values")
    func randomMutations() {
        var rng = SplitMix64(seed: 0x5EED)
        let file = try? GGUFFile(data: Self.original)
        let structured = file?.dataOffset ?? Self.original.count
        let interesting: [UInt8] = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0x20]
        var failures = 0
        for _ in 0..<4000 {
            var bytes = Self.original
            for _ in 0..<Int(rng.next() % 6 + 1) {
                // Mostly in the structured part, where a wrong byte changes how the rest is read.
                let limit = rng.next() % 4 == 0 ? bytes.count : min(structured, bytes.count)
                guard limit > 0 else { break }
                let at = Int(rng.next() % UInt64(limit))
                switch rng.next() % 5 {
                case 0: bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes[at] = interesting[Int(rng.next() % UInt64(interesting.count))]
                case 2: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
                case 3: bytes.remove(at: at)
                default:  // an 8-byte field set to a huge value
                    for k in 0..<min(8, bytes.count - at) { bytes[at + k] = k == 7 ? 0x7F : 0xFF }
                }
            }
            if Self.exercise(bytes) != nil { failures += 1 }
        }
        #expect(failures > 1000, "mutations should mostly be detected; \(failures) were")
    }

    /// Bytes of a minimal header: magic, version, tensor count, metadata count.
    static func header(version: UInt32 = 3, tensors: UInt64 = 0, metadata: UInt64 = 0) -> [UInt8] {
        var out: [UInt8] = Array("GGUF".utf8)
        withUnsafeBytes(of: version.littleEndian) { out += $0 }
        withUnsafeBytes(of: tensors.littleEndian) { out += $0 }
        withUnsafeBytes(of: metadata.littleEndian) { out += $0 }
        return out
    }

    func code(_ bytes: [UInt8]) -> GGUFError.Code? {
        do { _ = try GGUFFile(data: bytes); return nil } catch { return error.code }
    }

    @Test("each kind of damage gets its own error code")
    func specificErrors() throws {
        #expect(code(Array("GGML\u{3}\0\0\0".utf8) + [UInt8](repeating: 0, count: 16)) == .notGGUF)
        #expect(code(Array("GG".utf8)) == .truncated)
        #expect(code(Self.header(version: 1)) == .unsupportedVersion)
        #expect(code(Self.header(version: 4)) == .unsupportedVersion)
        #expect(code(Self.header(tensors: .max)) == .countTooLarge)
        #expect(code(Self.header(metadata: 1 << 40)) == .countTooLarge)

        // A string length far beyond the file.
        var hugeString = Self.header(metadata: 1)
        withUnsafeBytes(of: UInt64(1 << 50).littleEndian) { hugeString += $0 }
        hugeString += [UInt8](repeating: 0, count: 16)
        #expect(code(hugeString) == .truncated)

        var w = GGUFWriter()
        w.set("arr", .array(.uint64, [.uint64(1)]))
        var hugeArray = w.serialized()
        // The array's count sits after: header 24, key (8+3), type 4, element type 4.
        let countAt = 24 + 11 + 4 + 4
        for k in 0..<8 { hugeArray[countAt + k] = k == 7 ? 0x01 : 0 }
        #expect(code(hugeArray) == .countTooLarge)

        var badType = w.serialized()
        badType[24 + 11] = 77
        #expect(code(badType) == .invalidValueType)

        var duplicate = GGUFWriter()
        duplicate.set("a", .uint8(1)); duplicate.set("b", .uint8(2))
        var dupBytes = duplicate.serialized()
        let second = 24 + (8 + 1 + 4 + 1) + 8  // after the header and entry "a": the key byte "b"
        dupBytes[second] = UInt8(ascii: "a")
        #expect(code(dupBytes) == .invalidKey)

        var nested = GGUFValue.array(.uint8, [])
        for _ in 0..<6 { nested = .array(.array, [nested]) }
        var deep = GGUFWriter()
        deep.set("deep", nested)
        #expect(code(deep.serialized()) == .nestingTooDeep)

        var align = GGUFWriter()
        align.set("general.alignment", .uint32(24))
        #expect(code(align.serialized()) == .invalidAlignment)

        // Tensor placement: out of bounds, misaligned, overlapping, unknown type.
        var t = GGUFWriter()
        t.addTensor("a", dimensions: [32], type: .f32, values: [Float](repeating: 1, count: 32))
        t.addTensor("b", dimensions: [32], type: .f32, values: [Float](repeating: 2, count: 32))
        let good = t.serialized()
        let file = try GGUFFile(data: good)
        #expect(file.tensors.map(\.offset) == [0, 128])
        // Tensor info of "b": name (8+1), rank 4, dim 8, type 4, offset 8; it ends where padding starts.
        let infoB = 24 + (8 + 1 + 4 + 8 + 4 + 8)
        let offsetB = infoB + 8 + 1 + 4 + 8 + 4
        func withOffsetB(_ v: UInt64) -> [UInt8] {
            var bytes = good
            withUnsafeBytes(of: v.littleEndian) { for k in 0..<8 { bytes[offsetB + k] = $0[k] } }
            return bytes
        }
        #expect(code(withOffsetB(64)) == .tensorsOverlap)
        #expect(code(withOffsetB(100)) == .tensorMisaligned)
        #expect(code(withOffsetB(1 << 20)) == .tensorOutOfBounds)
        var unknown = good
        unknown[offsetB - 4] = 99
        #expect(code(unknown) == .unknownTensorType)
        var rank = good
        rank[24 + 8 + 1] = 9
        #expect(code(rank) == .invalidTensorInfo)
    }

    @Test("errors name the file they came from")
    func errorsNameTheFile() throws {
        let path = "/tmp/verbatim-test-not-gguf-\(UInt32.random(in: 0...UInt32.max)).bin"
        try #require(FileManagerShim.write(Array("hello, not a model".utf8), to: path))
        defer { FileManagerShim.remove(path) }
        do {
            _ = try GGUFFile(path: path)
            Issue.record("expected an error")
        } catch {
            #expect(error.code == .notGGUF)
            #expect(error.description.contains(path))
        }
        #expect(throws: GGUFError(.cannotOpen, "cannot open: No such file or directory", path: path + ".missing")) {
            try GGUFFile(path: path + ".missing")
        }
        // A FIFO, a directory and a device are refused at once, never waited on.
        let fifo = path + ".fifo"
        try #require(mkfifo(fifo, 0o600) == 0)
        defer { FileManagerShim.remove(fifo) }
        for special in [fifo, "/tmp", "/dev/zero"] {
            #expect(throws: GGUFError(.cannotOpen, "not a regular file", path: special)) { try GGUFFile(path: special) }
        }
    }
}

import Foundation
enum FileManagerShim {
    static func write(_ bytes: [UInt8], to path: String) -> Bool {
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
    }
    static func remove(_ path: String) { try? FileManager.default.removeItem(atPath: path) }
}
