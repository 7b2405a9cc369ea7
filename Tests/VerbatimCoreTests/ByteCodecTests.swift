import Testing
import VerbatimCore

@Suite("Byte codec")
struct ByteCodecTests {
    @Test("integers are little-endian at full width, byte strings u32-length-prefixed, and everything reads back")
    func roundTrip() {
        var w = ByteWriter()
        w.put(UInt8(0xAB)); w.put(UInt32(0x0102_0304)); w.put(Int64(-2)); w.putBytes([9, 8, 7]); w.put([1, 2])
        #expect(w.bytes == [0xAB, 4, 3, 2, 1] + [0xFE] + Array(repeating: 0xFF, count: 7) + [3, 0, 0, 0, 9, 8, 7, 1, 2])
        w.bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            #expect(r.get(UInt8.self) == 0xAB)
            #expect(r.get(UInt32.self) == 0x0102_0304)
            #expect(r.get(Int64.self) == -2)
            #expect(r.getBytes().map(Array.init) == [9, 8, 7])
            #expect(r.raw(2).map(Array.init) == [1, 2])
            #expect(r.atEnd)
            #expect(r.get(UInt8.self) == nil, "nothing is read past the end")
        }
    }

    @Test("a short or damaged record reads as nil, never past its end")
    func truncated() {
        let record: [UInt8] = [5, 0, 0, 0, 1, 2]   // claims 5 bytes, holds 2
        record.withUnsafeBytes { raw in
            var r = ByteReader(raw)
            #expect(r.getBytes() == nil)
            var s = ByteReader(UnsafeRawBufferPointer(rebasing: raw[0..<3]))
            #expect(s.get(UInt32.self) == nil)
            #expect(s.raw(-1) == nil)
            #expect(s.raw(3).map(Array.init) == [5, 0, 0])
        }
    }
}
