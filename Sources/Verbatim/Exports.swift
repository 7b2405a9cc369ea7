// `import Verbatim` is enough for the common path: the types a program meets there (chat
// messages, token ids, the tokenizer, the cache store, content addresses) live in these two
// modules and come with this one.
@_exported import VerbatimCache
@_exported import VerbatimModel
// `EngineConfiguration.kvType`'s type.
@_exported import enum VerbatimKernels.KVType
