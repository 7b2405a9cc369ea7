// Token ids and digests live in VerbatimCore (shared with the cache, which does not depend
// on the model); they come with this module.
@_exported import VerbatimCore
