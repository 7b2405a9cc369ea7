import CLMDB
import CXXHash
import Testing

@Suite("System libraries")
struct SystemLibraryTests {
    @Test("liblmdb links and is at least 0.9.24")
    func lmdbVersion() {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        _ = mdb_version(&major, &minor, &patch)
        #expect((major, minor) >= (0, 9) && (minor > 9 || patch >= 24), "lmdb \(major).\(minor).\(patch)")
    }

    @Test("libxxhash links; its dispatching and portable XXH3-128 entry points agree")
    func xxh3() {
        let input = Array("verbatim".utf8)
        let portable = XXH3_128bits(input, input.count)
        let dispatched = XXH3_128bits_dispatch(input, input.count)
        #expect(portable.low64 == dispatched.low64 && portable.high64 == dispatched.high64)
        let empty = XXH3_128bits(nil, 0)
        // The specification's value for the empty input.
        #expect(empty.high64 == 0x99aa06d3014798d8 && empty.low64 == 0x6001c324468d497f)
    }
}
