import Testing
import VerbatimCache

@Suite("Cache location: one default folder for the demo and cachectl")
struct CacheLocationTests {
    @Test("VERBATIM_CACHE_DIR wins, then XDG_CACHE_HOME/verbatim, then ~/.cache/verbatim; empty variables count as unset")
    func order() {
        func folder(_ variables: [String: String]) -> String { CacheLocation.defaultFolder(variable: { variables[$0] }) }
        #expect(folder(["VERBATIM_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x"]) == "/c")
        #expect(folder(["XDG_CACHE_HOME": "/x"]) == "/x/verbatim")
        #expect(folder(["VERBATIM_CACHE_DIR": "", "XDG_CACHE_HOME": ""]).hasSuffix("/.cache/verbatim"))
    }
}
