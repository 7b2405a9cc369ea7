import Foundation
import Testing
@testable import VerbatimModel

@Suite("Streaming detokenizer")
struct StreamingDetokenizerTests {
    @Test("the streaming detokenizer never emits half a character and adds up to decode()")
    func streaming() throws {
        let tokenizer = try TokenizerTests.real.get()
        for text in TokenizerTests.corpus + ["😀🙃🤖", "ä" + String(repeating: "漢", count: 20)] {
            let ids = tokenizer.encode(text)
            var stream = StreamingDetokenizer(tokenizer: tokenizer)
            var pieces: [String] = []
            for id in ids { pieces.append(try stream.append(id)) }
            pieces.append(stream.finish())
            #expect(pieces.joined() == (try tokenizer.decode(ids)))
            #expect(!pieces.joined().contains("\u{FFFD}"), "\(text.debugDescription)")
        }
        // Tokens that each carry part of a 4-byte character: nothing until it is complete.
        let bytes = Array("🤖".utf8)
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        let ids = bytes.map { b in TokenID(tokenizer.tokens.firstIndex(of: String(Character(ByteLevel.characters[Int(b)])))!) }
        #expect(try stream.append(ids[0]) == "")
        #expect(try stream.append(ids[1]) == "")
        #expect(try stream.append(ids[2]) == "")
        #expect(try stream.append(ids[3]) == "🤖")
        // Control tokens add no bytes (unless asked) and must not disturb the stream.
        #expect(try stream.append(2) == "")
        #expect(try stream.append(ids[0]) == "")
        #expect(try stream.append(2) == "")
        #expect(try stream.append(ids[1]) == "")
        #expect(try stream.append(ids[2]) == "")
        #expect(try stream.append(ids[3]) == "🤖")
        // A lone lead byte at the end is flushed as U+FFFD, a broken sequence right away.
        #expect(try stream.append(ids[0]) == "")
        #expect(stream.finish() == "\u{FFFD}")
        #expect(try stream.append(ids[0]) == "")
        #expect(try stream.append(tokenizer.encode("A")[0]) == "\u{FFFD}A")
    }

    @Test("unfinished UTF-8 suffixes are recognised exactly")
    func unfinishedSuffix() {
        #expect(StreamingDetokenizer.unfinishedSuffixLength([]) == 0)
        #expect(StreamingDetokenizer.unfinishedSuffixLength([0x41]) == 0)
        #expect(StreamingDetokenizer.unfinishedSuffixLength([0xF0, 0x9F]) == 2)
        #expect(StreamingDetokenizer.unfinishedSuffixLength([0xF0, 0x9F, 0xA4]) == 3)
        #expect(StreamingDetokenizer.unfinishedSuffixLength([0xF0, 0x9F, 0xA4, 0x96]) == 0)
        #expect(StreamingDetokenizer.unfinishedSuffixLength([0xE0, 0x80]) == 0)   // overlong: never valid
        #expect(StreamingDetokenizer.unfinishedSuffixLength([0xED, 0xA0]) == 0)   // surrogate: never valid
        #expect(StreamingDetokenizer.unfinishedSuffixLength([0xC3]) == 1)
        #expect(StreamingDetokenizer.unfinishedSuffixLength([0xFF]) == 0)
    }
}
