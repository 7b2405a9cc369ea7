import Foundation

/// The cache folder the tools use when none is named, one rule for the demo, the service's
/// documentation and `cachectl`: `VERBATIM_CACHE_DIR`, else `$XDG_CACHE_HOME/verbatim`, else
/// `~/.cache/verbatim`. An empty variable counts as unset.
public enum CacheLocation {
    /// The default folder by the rule above; `variable` reads the environment.
    public static func defaultFolder(variable: (String) -> String? = { ProcessInfo.processInfo.environment[$0] }) -> String {
        if let folder = variable("VERBATIM_CACHE_DIR"), !folder.isEmpty { return folder }
        if let base = variable("XDG_CACHE_HOME"), !base.isEmpty { return base + "/verbatim" }
        return NSHomeDirectory() + "/.cache/verbatim"
    }
}
