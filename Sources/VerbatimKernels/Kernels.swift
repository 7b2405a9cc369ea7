// The Swift face of the kernels. Hot-path calls take raw pointers and do not
// allocate; all numerics live in the C target (CVerbatimKernels), whose
// portable path defines the bits (docs/design/NUMERICS.md).
import CVerbatimKernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Double-precision helpers for the RoPE table (computed once, rounded to Float).
private func ropePow(_ a: Double, _ b: Double) -> Double { pow(a, b) }
private func ropeCos(_ a: Double) -> Double { cos(a) }
private func ropeSin(_ a: Double) -> Double { sin(a) }

/// An instruction-set path of the kernels. All paths give the same bits.
public enum KernelISA: String, Sendable, CaseIterable {
    /// Plain scalar C loops: the reference path that defines the bits; runs on any CPU.
    case portable
    /// AVX2 with FMA and F16C (x86-64).
    case avx2
    /// AVX-512 (F, DQ, BW and VL) on top of the AVX2 requirements (x86-64).
    case avx512

    var code: Int32 {
        switch self {
        case .portable: Int32(VK_ISA_PORTABLE)
        case .avx2: Int32(VK_ISA_AVX2)
        case .avx512: Int32(VK_ISA_AVX512)
        }
    }
}

/// Process-wide kernel settings. Defaults: the best path the CPU supports and
/// one thread per online core, overridden by `VERBATIM_ISA` and `VERBATIM_THREADS`.
public enum KernelConfig {
    /// The path in use.
    public static var isa: KernelISA {
        switch vk_get_isa() {
        case Int32(VK_ISA_AVX512): .avx512
        case Int32(VK_ISA_AVX2): .avx2
        default: .portable
        }
    }

    /// Whether this CPU can run `isa`.
    public static func isSupported(_ isa: KernelISA) -> Bool { vk_isa_supported(isa.code) != 0 }

    /// The paths this CPU can run, portable first.
    public static var supportedISAs: [KernelISA] { KernelISA.allCases.filter(isSupported) }

    /// Selects a path; returns false (and changes nothing) if unsupported.
    @discardableResult
    public static func setISA(_ isa: KernelISA) -> Bool { vk_set_isa(isa.code) == 0 }

    /// Threads used by parallel kernels (the calling thread counts as one).
    public static var threads: Int { Int(vk_get_threads()) }

    /// Sets the thread count (at least 1). Restarts the worker pool.
    public static func setThreads(_ n: Int) { vk_set_threads(Int32(max(1, min(n, 256)))) }

    /// The most threads the kernels called from this thread use (nil: the whole pool,
    /// `threads`). Per thread: each engine sets its own on its engine thread. Bits do not
    /// depend on it.
    public static var callerThreads: Int? {
        get { let n = Int(vk_get_caller_threads()); return n > 0 ? n : nil }
        set { vk_set_caller_threads(Int32(max(0, min(newValue ?? 0, 256)))) }
    }

    /// Test support: the highest pool thread index that ran an item of a job of `items` slow items.
    package static func highestThreadUsed(items: Int) -> Int { Int(vk_test_max_tid(Int64(items))) }

    /// Test support: pool threads asleep now.
    package static var sleepingPoolThreads: Int { Int(vk_test_sleepers()) }

    /// Names the numerics contract as implemented, for content addresses.
    public static func numericsProfile(kv: KVType) -> String {
        "verbatim-numerics/4 f32 kv=\(kv == .f16 ? "f16" : "f32")"
    }

    /// The subnormal events kernel calls have raised since the last call, on any thread,
    /// and clears them. Each means an Intel core took a microcode assist (about 100 times
    /// slower per instruction); the kernels keep this empty whatever the weights. Always
    /// empty on a CPU without x86's MXCSR.
    public static func takeSubnormalEvents() -> SubnormalEvents {
        SubnormalEvents(rawValue: vk_take_subnormal_flags())
    }
}

/// Floating-point events that make Intel cores slow (x86 MXCSR flags).
public struct SubnormalEvents: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// An operand was subnormal (MXCSR DE).
    public static let subnormalOperand = SubnormalEvents(rawValue: 0x02)
    /// A result underflowed to a subnormal or zero (MXCSR UE).
    public static let underflow = SubnormalEvents(rawValue: 0x10)

    public var description: String {
        if isEmpty { return "none" }
        return [contains(.subnormalOperand) ? "subnormal operand" : nil, contains(.underflow) ? "underflow" : nil]
            .compactMap { $0 }.joined(separator: ", ")
    }
}

/// Storage type of a weight tensor (the GGUF/ggml formats the kernels read).
public enum WeightType: Int32, Sendable, CaseIterable {
    /// IEEE single precision, 4 bytes a value; the linear kernels count subnormal values as signed zero.
    case f32 = 0
    /// IEEE half precision, 2 bytes a value.
    case f16 = 1
    /// bfloat16, 2 bytes a value; the linear kernels count subnormal values as signed zero.
    case bf16 = 2
    /// Blocks of 32 signed 8-bit values with one f16 scale d (34 bytes): w = d * q.
    case q8_0 = 3
    /// Blocks of 32 unsigned 4-bit values with one f16 scale d (18 bytes): w = d * (q - 8).
    case q4_0 = 4
    /// Blocks of 32 unsigned 4-bit values with an f16 scale d and offset m (20 bytes): w = fma(d, q, m).
    case q4_1 = 5
    /// Blocks of 32 unsigned 5-bit values with one f16 scale d (22 bytes): w = d * (q - 16).
    case q5_0 = 6
    /// Blocks of 32 unsigned 5-bit values with an f16 scale d and offset m (24 bytes): w = d * q + m.
    case q5_1 = 7
    /// Super-blocks of 256 4-bit values (144 bytes): f16 d and dmin, 8 sub-blocks of 32 with 6-bit scales and mins.
    case q4_K = 8
    /// Super-blocks of 256 5-bit values (176 bytes): f16 d and dmin, 8 sub-blocks of 32 with 6-bit scales and mins.
    case q5_K = 9
    /// Super-blocks of 256 6-bit values (210 bytes): f16 d, 16 sub-blocks of 16 with signed 8-bit scales.
    case q6_K = 10

    /// Elements per quantisation block (1 for unquantised types, 256 for the K-quants).
    public var blockSize: Int { Int(vk_block_values(rawValue)) }

    /// Bytes of one source row of `k` values in ggml layout.
    public func rowBytes(k: Int) -> Int { vk_row_bytes(rawValue, Int64(k)) }
}

/// An error from the kernels' Swift API.
public enum KernelError: Error, Equatable {
    /// A weight shape or buffer size the kernels cannot take: k or n not positive, k not a multiple of the
    /// block size, or a buffer that does not hold n rows of k values. The message gives the values.
    case badShape(String)
}

/// A weight W (n rows of k values, as stored in GGUF: ne0 = k) repacked once
/// into the kernels' column panels. Immutable after init.
public final class PackedWeights: @unchecked Sendable {
    /// Storage type of the source weight: it sets the panels' format and the linear kernel that reads them.
    public let type: WeightType
    /// Input width (reduction length).
    public let k: Int
    /// Output width (rows of W).
    public let n: Int
    /// Bytes of the packed panels.
    public let byteCount: Int
    let storage: UnsafeMutableRawPointer
    /// The arena `storage` lives in (nil: allocated on its own).
    private let arena: WeightArena?

    /// Bytes `init` packs a weight of this shape into.
    public static func byteCount(type: WeightType, k: Int, n: Int) -> Int { vk_packed_bytes(type.rawValue, Int64(k), Int64(n)) }

    /// Repacks `raw`: n rows of k values in ggml layout (`type.rowBytes(k:)` each).
    /// With an `arena` that has room, the panels go there (and live as long as it does).
    public init(type: WeightType, k: Int, n: Int, raw: UnsafeRawBufferPointer, arena: WeightArena? = nil) throws(KernelError) {
        guard k > 0, n > 0, k % type.blockSize == 0 else {
            throw .badShape("k=\(k) n=\(n) for \(type)")
        }
        guard raw.count >= n * type.rowBytes(k: k), let src = raw.baseAddress else {
            throw .badShape("\(raw.count) bytes for \(n) rows of \(k) \(type)")
        }
        self.type = type
        self.k = k
        self.n = n
        byteCount = vk_packed_bytes(type.rawValue, Int64(k), Int64(n))
        if let arena, let place = arena.take(byteCount) {
            storage = place
            self.arena = arena
        } else {
            storage = .allocate(byteCount: max(byteCount, 64), alignment: 64)
            self.arena = nil
        }
        _ = vk_pack(type.rawValue, Int64(k), Int64(n), src, storage)
    }

    /// Repacks an f32 matrix given as n rows of k floats.
    public static func f32(k: Int, n: Int, rows: [Float]) throws -> PackedWeights {
        guard rows.count == k * n else { throw KernelError.badShape("\(rows.count) floats for \(n)x\(k)") }
        return try rows.withUnsafeBytes { try PackedWeights(type: .f32, k: k, n: n, raw: $0) }
    }

    deinit { if arena == nil { storage.deallocate() } }
}

/// One allocation for all of a model's packed weights, on transparent huge pages where the OS
/// allows: a decode step streams every weight once, and 2 MiB pages spare that stream most of
/// its TLB misses (a layer's matrices are smaller than one huge page, so they share them).
/// Filled once, at load, from one thread; read-only afterwards.
public final class WeightArena: @unchecked Sendable {
    let base: UnsafeMutableRawPointer?
    /// Bytes the arena holds, as given to `init`; each weight takes `footprint(_:)` of them.
    public let capacity: Int
    private var used = 0

    /// Room for packed weights whose byte counts sum to at most `capacity` (each is rounded up to 64).
    public init(capacity: Int) {
        self.capacity = capacity
        base = vk_alloc_huge(max(capacity, 64))
    }

    /// Bytes a weight of `bytes` takes in an arena.
    public static func footprint(_ bytes: Int) -> Int { (bytes + 63) / 64 * 64 }

    func take(_ bytes: Int) -> UnsafeMutableRawPointer? {
        let size = Self.footprint(bytes)
        guard let base, used + size <= capacity else { return nil }
        defer { used += size }
        return base + used
    }

    deinit { vk_free_huge(base) }
}

/// Which elements of a head RoPE rotates together.
public enum RopeStyle: Sendable {
    /// Pairs (2i, 2i + 1) (LLaMA as GGUF stores it).
    case adjacent
    /// Pairs (i, i + headDim / 2) (Qwen, Gemma: GPT-NeoX style).
    case neox
}

/// The cos/sin table of RoPE for every (position, pair), computed in Double and rounded to Float.
///
/// Pair i of a head rotates by the angle position * theta^(-2i / headDim) / divisors[i] (divisor 1 without `divisors`).
public struct RopeTable: Sendable {
    /// Positions the table covers: `Kernels.rope` takes positions 0..<maxPositions.
    public let maxPositions: Int
    /// Values per head; the table has headDim / 2 pairs per position.
    public let headDim: Int
    let cos: [Float] // (maxPositions, headDim / 2)
    let sin: [Float] // (maxPositions, headDim / 2)

    /// `divisors`: per pair i, a factor dividing the frequency (Llama 3's `rope_freqs`), or nil.
    public init(maxPositions: Int, headDim: Int, theta: Double, divisors: [Float]? = nil) {
        precondition(divisors.map { $0.count == headDim / 2 } ?? true, "one divisor per pair")
        self.maxPositions = maxPositions
        self.headDim = headDim
        let half = headDim / 2
        var c = [Float](repeating: 0, count: maxPositions * half)
        var s = [Float](repeating: 0, count: maxPositions * half)
        for i in 0..<half {
            let freq = 1.0 / ropePow(theta, 2.0 * Double(i) / Double(headDim)) / Double(divisors?[i] ?? 1)
            for p in 0..<maxPositions {
                let angle = Double(p) * freq
                c[p * half + i] = Float(ropeCos(angle))
                s[p * half + i] = Float(ropeSin(angle))
            }
        }
        cos = c
        sin = s
    }
}

/// Element type of the KV memory.
public enum KVType: Int32, Sendable {
    /// IEEE single precision: K and V stored as computed, 4 bytes a value.
    case f32 = 0
    /// IEEE half precision, 2 bytes a value: rounded to nearest even on write, widened exactly on read.
    case f16 = 1
}

/// Scratch memory that takes no RAM until written and can give its pages back: address space
/// reserved once, zero-filled pages committed as they are first written, and `discard()`
/// returns them to the OS (they read as zeros again). A forward pass keeps its activations
/// and logits here, so an idle engine holds little beyond its weights. Not thread-safe.
package final class ScratchMemory: @unchecked Sendable {
    /// The first byte (page-aligned).
    package let base: UnsafeMutableRawPointer
    /// Bytes reserved.
    package let byteCount: Int

    /// Reserves `byteCount` zero-filled bytes (at least one); stops the process if the address
    /// space cannot be reserved.
    package init(byteCount: Int) {
        self.byteCount = max(byteCount, 1)
        guard let p = vk_alloc_lazy(self.byteCount) else { fatalError("cannot reserve \(byteCount) bytes of scratch memory") }
        base = p
    }

    deinit { vk_free_lazy(base, byteCount) }

    /// Gives every page back to the OS; the memory reads as zeros until written again.
    package func discard() { vk_discard(base, byteCount) }
}

/// Paged KV memory: `blockCount` physical blocks of `blockSize` tokens. A block
/// holds, per layer, K then V, each (blockSize, kvHeads, headDim); a whole block
/// (all layers) is one contiguous run of `blockBytes` bytes, so the prefix cache
/// can copy it in and out. Not thread-safe: one owner.
public final class PagedKVMemory: @unchecked Sendable {
    /// Element type of the stored K and V.
    public let type: KVType
    /// Tokens per block.
    public let blockSize: Int
    /// Layers each block holds K and V for.
    public let layers: Int
    /// KV heads per layer (query heads share them in groups).
    public let kvHeads: Int
    /// Values per head.
    public let headDim: Int
    /// Physical blocks, indexed 0..<blockCount in block tables.
    public let blockCount: Int
    /// Bytes of one block (all layers, K and V).
    public let blockBytes: Int
    var layout: vk_kv_layout
    let storage: UnsafeMutableRawPointer

    /// Reserves `blockCount` zero-filled blocks of this shape; pages take memory only once written.
    /// Stops the process if the address space for them cannot be reserved.
    public init(type: KVType, blockSize: Int, layers: Int, kvHeads: Int, headDim: Int, blockCount: Int) {
        self.type = type
        self.blockSize = blockSize
        self.layers = layers
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.blockCount = blockCount
        blockBytes = layers * 2 * blockSize * kvHeads * headDim * (type == .f16 ? 2 : 4)
        layout = vk_kv_layout(
            base: nil, kv_type: type.rawValue, block_size: Int32(blockSize), n_layers: Int32(layers),
            n_kv_heads: Int32(kvHeads), head_dim: Int32(headDim), n_blocks: Int64(blockCount))
        let bytes = vk_kv_bytes(&layout)
        // Zero pages committed as blocks are first written (huge pages where allowed, like the
        // weights: attention streams a sequence's blocks), so the reserve costs no memory idle.
        guard let memory = vk_alloc_lazy(bytes) else { fatalError("out of address space for \(bytes) bytes of KV") }
        storage = memory
        storageBytes = bytes
        layout.base = storage
    }

    private let storageBytes: Int

    deinit { vk_free_lazy(storage, storageBytes) }

    /// Gives the memory of these blocks back to the OS (they read as zeros until written
    /// again). For blocks no sequence holds; the engine calls it when it goes idle.
    public func discard(blocks: [Int32]) {
        var run: (start: Int, count: Int)?
        for block in blocks.sorted() {
            if let r = run, r.start + r.count == Int(block) { run = (r.start, r.count + 1); continue }
            if let r = run { vk_discard(storage + r.start * blockBytes, r.count * blockBytes) }
            run = (Int(block), 1)
        }
        if let r = run { vk_discard(storage + r.start * blockBytes, r.count * blockBytes) }
    }

    /// The bytes of physical block `index` (for the prefix cache).
    public func block(_ index: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage + index * blockBytes, count: blockBytes)
    }

    /// Writes K and V rows of a flat batch (round to nearest even for f16).
    /// k, v: (rows, kvHeads * headDim). Row i goes to position positions[i] of
    /// the sequence whose block table starts at blockTables[tableOffsets[i]].
    public func write(
        layer: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>, rows: Int,
        blockTables: UnsafePointer<Int32>, tableOffsets: UnsafePointer<Int32>, positions: UnsafePointer<Int32>
    ) {
        vk_kv_write(&layout, Int32(layer), k, v, Int64(rows), blockTables, tableOffsets, positions)
    }
}

/// The kernels. Every call is a pure function of its inputs: the bits do not
/// depend on the batch, the thread count or the instruction set.
public enum Kernels {
    /// y (rows, n) = x (rows, k) · Wᵀ.
    public static func linear(
        x: UnsafePointer<Float>, weights: PackedWeights, y: UnsafeMutablePointer<Float>, rows: Int
    ) {
        vk_linear(x, Int64(rows), weights.storage, weights.type.rawValue, Int64(weights.k), Int64(weights.n), y)
    }

    /// One matrix of a linear over several: the weights W and the output y (rows, W.n).
    public typealias LinearTarget = (weights: PackedWeights, y: UnsafeMutablePointer<Float>)

    /// y = x (rows, k) · Wᵀ for two or three matrices of the same k (Q, K and V; gate and up) as
    /// one job over the threads, x prepared once: each y has the bits ``linear(x:weights:y:rows:)``
    /// gives it alone.
    public static func linear(x: UnsafePointer<Float>, rows: Int, _ a: LinearTarget, _ b: LinearTarget, _ c: LinearTarget? = nil) {
        precondition(a.weights.k == b.weights.k && (c == nil || c!.weights.k == a.weights.k), "linear: the matrices must share k")
        func target(_ t: LinearTarget) -> vk_linear_target {
            vk_linear_target(packed: UnsafeRawPointer(t.weights.storage), type: t.weights.type.rawValue, n: Int64(t.weights.n), y: t.y)
        }
        var targets = (target(a), target(b), target(c ?? b))   // a homogeneous tuple: contiguous, on the stack
        withUnsafePointer(to: &targets) {
            $0.withMemoryRebound(to: vk_linear_target.self, capacity: 3) {
                vk_linear_many(x, Int64(rows), Int64(a.weights.k), $0, c == nil ? 2 : 3)
            }
        }
    }

    /// y (rows, dim) = x / sqrt(mean(x²) + eps) * weight (dim), per row.
    public static func rmsNorm(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
        rows: Int, dim: Int, eps: Float
    ) {
        vk_rmsnorm(x, weight, y, Int64(rows), Int64(dim), eps)
    }

    /// Rotates the pairs of each head of x (rows, heads * table.headDim) in place by each row's
    /// position: adjacent pairs (2i, 2i + 1), or with `.neox` pairs (i, i + headDim / 2).
    public static func rope(
        x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, positions: UnsafePointer<Int32>, table: RopeTable,
        style: RopeStyle = .adjacent
    ) {
        assert((0..<rows).allSatisfy { positions[$0] >= 0 && Int(positions[$0]) < table.maxPositions })
        table.cos.withUnsafeBufferPointer { c in
            table.sin.withUnsafeBufferPointer { s in
                vk_rope(x, Int64(rows), Int64(heads), Int64(table.headDim), positions, c.baseAddress, s.baseAddress,
                        style == .neox ? Int32(VK_ROPE_NEOX) : Int32(VK_ROPE_ADJACENT))
            }
        }
    }

    /// x (count) += y (count), element by element (the residual connection), over the pool.
    public static func add(_ x: UnsafeMutablePointer<Float>, _ y: UnsafePointer<Float>, count: Int) {
        vk_add(x, y, Int64(count))
    }

    /// out (count) = silu(gate) * up, silu(g) = g / (1 + exp(-g)).
    public static func swiGLU(
        gate: UnsafePointer<Float>, up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, count: Int
    ) {
        vk_swiglu(gate, up, out, Int64(count))
    }

    /// out (count) = gelu(gate) * up, GELU in its tanh form (NUMERICS-IMPLEMENTATION.md).
    public static func geGLU(
        gate: UnsafePointer<Float>, up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, count: Int
    ) {
        vk_geglu(gate, up, out, Int64(count))
    }

    /// y (rows, n) = log-softmax of each row of x (rows, n). y may equal x.
    public static func logSoftmax(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int, n: Int) {
        vk_log_softmax(x, y, Int64(rows), Int64(n))
    }

    /// Index of the largest of x (n), ties to the lowest index, NaN ignored.
    public static func argmax(x: UnsafePointer<Float>, n: Int) -> Int {
        Int(vk_argmax(x, Int64(n)))
    }

    /// Causal grouped-query attention over paged KV for a flat batch.
    /// q, out: (rows, heads * headDim); row i attends to keys 0...positions[i]
    /// of its sequence (block table at blockTables[tableOffsets[i]]), or with a `window`
    /// to the last `window` of them only (sliding-window layers). Write the step's K/V
    /// first (`PagedKVMemory.write`).
    public static func attention(
        q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, rows: Int, heads: Int,
        memory: PagedKVMemory, layer: Int,
        blockTables: UnsafePointer<Int32>, tableOffsets: UnsafePointer<Int32>, positions: UnsafePointer<Int32>,
        scale: Float, window: Int? = nil
    ) {
        precondition(heads % memory.kvHeads == 0, "\(heads) query heads for \(memory.kvHeads) KV heads")
        precondition(window.map { $0 > 0 && $0 <= Int(Int32.max) } ?? true, "window must be positive")
        vk_attention(
            &memory.layout, Int32(layer), q, out, Int64(rows), Int32(heads), blockTables, tableOffsets, positions,
            scale, Int32(window ?? 0))
    }

    /// The project's exp (same bits on every path; not libm).
    public static func exp(_ x: Float) -> Float { vk_expf(x) }
    /// The project's log (same bits on every path; not libm).
    public static func log(_ x: Float) -> Float { vk_logf(x) }

    /// y (n) = exp(x) on the current path.
    public static func exp(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        vk_exp_array(x, y, Int64(count))
    }
    /// y (n) = log(x) on the current path.
    public static func log(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        vk_log_array(x, y, Int64(count))
    }

    /// Decodes one GGUF row of `k` values (ggml layout, `type.rowBytes(k:)` bytes) to
    /// out (k), with the linear kernels' dequantisation (for the embedding lookup).
    public static func dequantizeRow(
        type: WeightType, k: Int, row: UnsafeRawPointer, out: UnsafeMutablePointer<Float>
    ) {
        precondition(k > 0 && k % type.blockSize == 0, "k=\(k) for \(type)")
        _ = vk_dequantize_row(type.rawValue, Int64(k), row, out)
    }

    /// Float to IEEE half, round to nearest even (the KV memory's conversion).
    public static func halfBits(_ x: Float) -> UInt16 { vk_f32_to_f16(x) }
    /// IEEE half to Float (exact).
    public static func float(halfBits h: UInt16) -> Float { vk_f16_to_f32(h) }
}
