/// A token id. Vocabularies here are far below 2^31 entries.
public typealias TokenID = Int32
