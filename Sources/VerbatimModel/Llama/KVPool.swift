import VerbatimKernels

/// Identifies one sequence (a request's token stream) in the KV memory and in a batch.
public typealias SequenceID = Int

/// Why a `KVPool` operation failed: a `code` to match on and a readable `message`.
public struct KVPoolError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The kind of failure.
    public enum Code: String, Sendable {
        /// Fewer blocks are free than a reservation needs.
        case outOfMemory
        /// The pool holds no such sequence. (No `KVPool` operation throws this at present.)
        case unknownSequence
        /// Positions or saved blocks that do not fit the sequence: a write that would leave a gap, a restore into
        /// a sequence that holds positions, an extend of one that ends inside a block, or a saved block of the
        /// wrong size or token count.
        case invalidPosition
    }
    /// The kind of failure.
    public let code: Code
    /// What was wrong, naming the sequence and the sizes involved.
    public let message: String
    public var description: String { "KV pool error (\(code.rawValue)): \(message)" }
}

/// The pool of paged KV memory with one owner: fixed blocks of `blockSize` tokens, a free list, and a block
/// table per sequence (its i-th entry holds positions i*B ..< (i+1)*B). Not thread-safe.
public final class KVPool {
    /// The blocks' storage: the forward pass writes K and V into it and attention reads them.
    public let memory: PagedKVMemory
    /// Positions (tokens) per block.
    public var blockSize: Int { memory.blockSize }
    /// Physical blocks, shared by all sequences.
    public var blockCount: Int { memory.blockCount }

    private var freeBlocks: [Int32]
    private var tables: [SequenceID: [Int32]] = [:]
    /// Positions written so far, per sequence (the next position to write).
    private var lengths: [SequenceID: Int] = [:]

    /// Reserves `blockCount` blocks of `blockSize` positions (both positive), shaped for `config`'s layers,
    /// KV heads and head dimension, with elements of `kvType`. Pages are committed as blocks are first written.
    public init(config: LlamaConfig, kvType: KVType = .f32, blockSize: Int = 32, blockCount: Int) {
        precondition(blockSize > 0 && blockCount > 0)
        memory = PagedKVMemory(type: kvType, blockSize: blockSize, layers: config.layerCount,
                               kvHeads: config.kvHeadCount, headDim: config.headDimension, blockCount: blockCount)
        freeBlocks = (0..<Int32(blockCount)).reversed()
    }

    /// Blocks no sequence holds.
    public var freeBlockCount: Int { freeBlocks.count }
    /// Bytes of all blocks (K and V of every layer), free or not.
    public var byteCount: Int { memory.blockBytes * memory.blockCount }
    /// The sequences that have a block table (reserved and not released), in no particular order.
    public var sequences: [SequenceID] { Array(tables.keys) }

    /// Tokens written for a sequence (0 if unknown).
    public func length(of sequence: SequenceID) -> Int { lengths[sequence] ?? 0 }

    /// The physical blocks of a sequence, in position order.
    public func blockTable(of sequence: SequenceID) -> [Int32] { tables[sequence] ?? [] }

    /// Makes room for positions 0..<tokens of `sequence`, taking free blocks as needed.
    public func reserve(_ sequence: SequenceID, tokens: Int) throws(KVPoolError) {
        let needed = (tokens + blockSize - 1) / blockSize
        let have = tables[sequence]?.count ?? 0
        guard needed > have else { return }
        guard needed - have <= freeBlocks.count else {
            throw KVPoolError(code: .outOfMemory,
                               message: "sequence \(sequence) needs \(needed - have) more KV blocks of \(blockSize) tokens; \(freeBlocks.count) are free")
        }
        var table = tables[sequence] ?? []
        for _ in have..<needed { table.append(freeBlocks.removeLast()) }
        tables[sequence] = table
    }

    /// Records that positions `start..<end` of `sequence` were written. Writing before the
    /// current end truncates: later positions belonged to another continuation.
    func didWrite(_ sequence: SequenceID, start: Int, end: Int) throws(KVPoolError) {
        let length = lengths[sequence] ?? 0
        guard start <= length else {
            throw KVPoolError(code: .invalidPosition,
                               message: "sequence \(sequence) has \(length) positions; cannot write at \(start) (gap)")
        }
        lengths[sequence] = end
    }

    /// Frees a sequence's blocks.
    public func release(_ sequence: SequenceID) {
        if let table = tables.removeValue(forKey: sequence) { freeBlocks.append(contentsOf: table.reversed()) }
        lengths[sequence] = nil
    }

    /// Returns the memory of every free block to the OS (committed again as blocks are
    /// reused). Cheap to call when nothing runs; the next writes fault the pages back in.
    public func discardFreeBlocks() { memory.discard(blocks: freeBlocks) }

    /// Forgets positions from `length` on (their KV is void: written for tokens that were not
    /// kept), keeping the sequence's blocks, which its reservation still covers. The next write
    /// there replaces them.
    public func forget(_ sequence: SequenceID, from length: Int) {
        guard let current = lengths[sequence] else { return }
        lengths[sequence] = min(current, max(0, length))
    }

    /// Drops positions from `length` on, returning whole blocks past it to the free list.
    public func truncate(_ sequence: SequenceID, to length: Int) {
        guard var table = tables[sequence] else { return }
        let keep = (length + blockSize - 1) / blockSize
        while table.count > keep { freeBlocks.append(table.removeLast()) }
        tables[sequence] = table
        lengths[sequence] = min(lengths[sequence] ?? 0, length)
    }
}

extension KVPool {
    /// Gives `sequence` (which must be empty) the first `blocks.count` blocks of a prefix
    /// whose KV bytes were saved elsewhere (e.g. by the prefix cache): each element holds one
    /// whole block, all layers, `memory.blockBytes` bytes, exactly as `blockBytes(of:)`
    /// returned them. Afterwards the sequence has `blocks.count * blockSize` positions.
    public func restore(_ sequence: SequenceID, blocks: [UnsafeRawBufferPointer]) throws(KVPoolError) {
        guard length(of: sequence) == 0 && blockTable(of: sequence).isEmpty else {
            throw KVPoolError(code: .invalidPosition, message: "sequence \(sequence) already holds positions")
        }
        for b in blocks where b.count != memory.blockBytes {
            throw KVPoolError(code: .invalidPosition, message: "a restored block has \(b.count) bytes; blocks here have \(memory.blockBytes)")
        }
        try reserve(sequence, tokens: blocks.count * blockSize)
        for (i, physical) in blockTable(of: sequence).enumerated() {
            memory.block(Int(physical)).copyMemory(from: blocks[i])
        }
        try didWrite(sequence, start: 0, end: blocks.count * blockSize)
    }

    /// Appends the first `tokens` positions of a saved block (`memory.blockBytes` bytes, as
    /// `blockBytes(of:)` returned it) to a sequence that holds whole blocks only: they become
    /// positions length ..< length + tokens. Only those rows are copied, layer by layer.
    public func extend(_ sequence: SequenceID, partialBlock block: UnsafeRawBufferPointer, tokens: Int) throws(KVPoolError) {
        let start = length(of: sequence)
        guard start % blockSize == 0 && blockTable(of: sequence).count == start / blockSize else {
            throw KVPoolError(code: .invalidPosition, message: "sequence \(sequence) ends inside a block (\(start) positions)")
        }
        guard block.count == memory.blockBytes, tokens > 0, tokens <= blockSize else {
            throw KVPoolError(code: .invalidPosition,
                               message: "a partial block of \(block.count) bytes and \(tokens) tokens; blocks here have \(memory.blockBytes) bytes, \(blockSize) tokens")
        }
        try reserve(sequence, tokens: start + tokens)
        let destination = memory.block(Int(blockTable(of: sequence)[start / blockSize]))
        // Per layer: K then V, each (blockSize, kvHeads, headDim); position i is row i of both.
        let rowBytes = memory.blockBytes / (memory.layers * 2 * blockSize)
        for part in 0..<(memory.layers * 2) {
            let offset = part * blockSize * rowBytes
            UnsafeMutableRawBufferPointer(rebasing: destination[offset..<(offset + tokens * rowBytes)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: block[offset..<(offset + tokens * rowBytes)]))
        }
        try didWrite(sequence, start: start, end: start + tokens)
    }

    /// The bytes of the `index`-th block of a sequence (all layers); valid until the block
    /// is freed or rewritten.
    public func blockBytes(of sequence: SequenceID, index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(memory.block(Int(blockTable(of: sequence)[index])))
    }
}
