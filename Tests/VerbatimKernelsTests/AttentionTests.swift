// Attention over paged KV: chunking, batch companions, block placement, paths
// and threads do not change the bits; the result is close to Double.
import Testing
@testable import VerbatimKernels

/// One sequence's data: per position, K and V (kvHeads * headDim) and q (heads * headDim).
struct SeqData {
    var k: [[Float]], v: [[Float]], q: [[Float]]
    init(length: Int, kvWidth: Int, qWidth: Int, _ rng: inout SeededRandom) {
        k = (0..<length).map { _ in rng.floats(kvWidth) }
        v = (0..<length).map { _ in rng.floats(kvWidth) }
        q = (0..<length).map { _ in rng.floats(qWidth) }
    }
}

/// A flat batch: rows of (sequence, position), each sequence with its own block table.
struct Batch {
    let heads = 9, kvHeads = 3, headDim = 64
    var tables: [[Int32]]
    var rows: [(seq: Int, pos: Int)] = []
    var window: Int? = nil

    /// Writes K/V of the rows into `mem` at `layer`, then runs attention; returns (rows, heads * headDim).
    func run(_ mem: PagedKVMemory, layer: Int, _ data: [SeqData]) -> [Float] {
        var flat: [Int32] = [], offsets: [Int32] = []
        var starts: [Int32] = []
        for t in tables { starts.append(Int32(flat.count)); flat += t }
        var k: [Float] = [], v: [Float] = [], q: [Float] = [], pos: [Int32] = []
        for r in rows {
            offsets.append(starts[r.seq])
            pos.append(Int32(r.pos))
            k += data[r.seq].k[r.pos]
            v += data[r.seq].v[r.pos]
            q += data[r.seq].q[r.pos]
        }
        mem.write(layer: layer, k: k, v: v, rows: rows.count, blockTables: flat, tableOffsets: offsets, positions: pos)
        var out = [Float](repeating: .nan, count: rows.count * heads * headDim)
        Kernels.attention(
            q: q, out: &out, rows: rows.count, heads: heads, memory: mem, layer: layer,
            blockTables: flat, tableOffsets: offsets, positions: pos, scale: 0.125, window: window)
        return out
    }
}

func makeMemory(_ type: KVType, blockSize: Int, blocks: Int) -> PagedKVMemory {
    PagedKVMemory(type: type, blockSize: blockSize, layers: 2, kvHeads: 3, headDim: 64, blockCount: blocks)
}

extension KernelTests {
    @Suite("Attention")
    struct AttentionTests {
        static let width = 9 * 64

        /// Sequence 0 (length n) prefilled in one step, returning its rows' outputs.
        func oneChunk(_ type: KVType, blockSize: Int, n: Int, _ data: [SeqData], window: Int? = nil) -> [Float] {
            let blocks = (n + blockSize - 1) / blockSize
            let mem = makeMemory(type, blockSize: blockSize, blocks: blocks)
            var b = Batch(tables: [(0..<blocks).map { Int32($0) }])
            b.rows = (0..<n).map { (0, $0) }
            b.window = window
            return b.run(mem, layer: 1, data)
        }

        @Test("Sliding window: every path and thread count give the portable bits; decoding one row at a time gives the bits of one chunk; each row equals a Double softmax over exactly its last W keys")
        func slidingWindow() {
            var rng = SeededRandom(24)
            let n = 90
            let data = [SeqData(length: n, kvWidth: 192, qWidth: Self.width, &rng)]
            for window in [1, 7, 16, 33, 200] {
                for bs in [8, 16, 32] {
                    let ref = withConfig(isa: .portable) { oneChunk(.f32, blockSize: bs, n: n, data, window: window) }
                    for isa in optimisedISAs {
                        for t in [1, 3] {
                            let got = withConfig(isa: isa, threads: t) { oneChunk(.f32, blockSize: bs, n: n, data, window: window) }
                            expectSameBits(got, ref, "window \(window) block \(bs) \(isa) threads \(t)")
                        }
                    }
                    // One row per step (decode), on blocks placed in reverse.
                    let blocks = (n + bs - 1) / bs
                    let mem = makeMemory(.f32, blockSize: bs, blocks: blocks)
                    var b = Batch(tables: [(0..<blocks).reversed().map { Int32($0) }])
                    b.window = window
                    var steps: [Float] = []
                    for p in 0..<n { b.rows = [(0, p)]; steps += b.run(mem, layer: 1, data) }
                    expectSameBits(steps, ref, "window \(window) block \(bs): row by row")
                }
                // Against Double over exactly the keys max(0, p - W + 1)...p.
                let out = oneChunk(.f32, blockSize: 16, n: n, data, window: window)
                var bad = 0
                for p in stride(from: 0, to: n, by: 11) {
                    let keys = max(0, p - window + 1)...p
                    for h in 0..<9 {
                        let g = h / 3
                        let q = data[0].q[p][(h * 64)..<((h + 1) * 64)].map(Double.init)
                        let s = keys.map { j in (0..<64).reduce(0.0) { $0 + q[$1] * Double(data[0].k[j][g * 64 + $1]) } * 0.125 }
                        let m = s.max()!
                        let e = s.map { refexp($0 - m) }
                        let z = e.reduce(0, +)
                        for d in 0..<64 {
                            let want = zip(keys, e).reduce(0.0) { $0 + $1.1 * Double(data[0].v[$1.0][g * 64 + d]) } / z
                            if abs(Double(out[p * Self.width + h * 64 + d]) - want) > 3e-5 { bad += 1 }
                        }
                    }
                }
                #expect(bad == 0, "window \(window): \(bad) outputs outside 3e-5")
            }
        }

        @Test("Position p gives the same bits in one chunk or many, whatever shares the batch and wherever the blocks are",
              arguments: [KVType.f32, .f16], [16, 32])
        func chunkingAndCompanions(type: KVType, blockSize: Int) {
            var rng = SeededRandom(21 + UInt64(blockSize))
            let n = 150
            let data = (0..<4).map { _ in SeqData(length: n, kvWidth: 192, qWidth: Self.width, &rng) }
            let ref = oneChunk(type, blockSize: blockSize, n: n, data)

            // Same sequence, chunks of random sizes, three companion sequences at their
            // own positions, physical blocks shuffled among all sequences.
            let per = (n + blockSize - 1) / blockSize
            var physical = (0..<(4 * per)).map { Int32($0) }
            physical.shuffle(using: &rng)
            let tables = (0..<4).map { s in Array(physical[(s * per)..<((s + 1) * per)]) }
            let mem = makeMemory(type, blockSize: blockSize, blocks: 4 * per)
            var next = [0, 0, 0, 0]
            var got = [Float](repeating: .nan, count: n * Self.width)
            while next[0] < n {
                var b = Batch(tables: tables)
                let chunk = min(n - next[0], Int.random(in: 1...40, using: &rng))
                var mine: [Int] = []
                for s in [0, 1, 2, 3].shuffled(using: &rng) {
                    let c = s == 0 ? chunk : min(n - next[s], Int.random(in: 0...20, using: &rng))
                    for _ in 0..<c {
                        if s == 0 { mine.append(b.rows.count) }
                        b.rows.append((s, next[s]))
                        next[s] += 1
                    }
                }
                let out = b.run(mem, layer: 1, data)
                for (i, r) in mine.enumerated() {
                    let p = next[0] - chunk + i
                    got.replaceSubrange((p * Self.width)..<((p + 1) * Self.width), with: out[(r * Self.width)..<((r + 1) * Self.width)])
                }
            }
            expectSameBits(got, ref, "\(type) block \(blockSize) chunked with companions")
        }

        @Test("Row r of a batch equals the row alone: batch sizes 1...64, random positions and companions",
              arguments: [KVType.f32, .f16])
        func batchInvariance(type: KVType) {
            var rng = SeededRandom(24)
            let n = 200, seqs = 5, bs = 16
            let data = (0..<seqs).map { _ in SeqData(length: n, kvWidth: 192, qWidth: Self.width, &rng) }
            let per = n / bs + 1
            let tables = (0..<seqs).map { s in (0..<per).map { Int32(s * per + $0) } }
            let mem = makeMemory(type, blockSize: bs, blocks: seqs * per)
            // Every position of every sequence is in memory (attention at p reads keys 0...p only).
            for s in 0..<seqs {
                var all = Batch(tables: tables)
                all.rows = (0..<n).map { (s, $0) }
                _ = all.run(mem, layer: 0, data)
            }
            var alone: [Int: [Float]] = [:]
            for b in 1...64 {
                var batch = Batch(tables: tables)
                batch.rows = (0..<b).map { _ in (Int.random(in: 0..<seqs, using: &rng), Int.random(in: 0..<n, using: &rng)) }
                let out = batch.run(mem, layer: 0, data)
                for (i, r) in batch.rows.enumerated() {
                    let key = r.seq * n + r.pos
                    if alone[key] == nil {
                        var one = Batch(tables: tables)
                        one.rows = [r]
                        alone[key] = one.run(mem, layer: 0, data)
                    }
                    expectSameBits(Array(out[(i * Self.width)..<((i + 1) * Self.width)]), alone[key]!, "\(type) batch \(b) row \(i)")
                }
            }
        }

        /// Attention of `rows` (sequence, position) for a model of the given shape; every position
        /// of every sequence is written first. Returns (rows, heads * headDim).
        func shaped(heads: Int, kvHeads: Int, headDim: Int, n: Int, sequences: Int, window: Int?, _ type: KVType,
                    rows: [(seq: Int, pos: Int)], seed: UInt64) -> [Float] {
            var rng = SeededRandom(seed)
            let bs = 16, per = (n + bs - 1) / bs
            let mem = PagedKVMemory(type: type, blockSize: bs, layers: 1, kvHeads: kvHeads, headDim: headDim, blockCount: sequences * per)
            // Blocks interleaved among the sequences, so a chunk's keys are never in one run.
            let tables = (0..<sequences).map { s in (0..<per).map { Int32($0 * sequences + s) } }
            let flat = tables.flatMap { $0 }
            let width = kvHeads * headDim
            let k = (0..<sequences).map { _ in (0..<n).map { _ in rng.floats(width) } }
            let v = (0..<sequences).map { _ in (0..<n).map { _ in rng.floats(width) } }
            let q = (0..<sequences).map { _ in (0..<n).map { _ in rng.floats(heads * headDim) } }
            for s in 0..<sequences {
                mem.write(layer: 0, k: k[s].flatMap { $0 }, v: v[s].flatMap { $0 }, rows: n, blockTables: flat,
                          tableOffsets: [Int32](repeating: Int32(s * per), count: n), positions: (0..<n).map { Int32($0) })
            }
            var out = [Float](repeating: .nan, count: rows.count * heads * headDim)
            Kernels.attention(q: rows.flatMap { q[$0.seq][$0.pos] }, out: &out, rows: rows.count, heads: heads, memory: mem, layer: 0,
                              blockTables: flat, tableOffsets: rows.map { Int32($0.seq * per) }, positions: rows.map { Int32($0.pos) },
                              scale: 1 / Float(headDim).squareRoot(), window: window)
            return out
        }

        @Test("Every query-head group (1 to 9 heads a KV head) and head width (16 to 256): a prefill of several sequences gives the portable bits on every path and thread count, and each row the bits it has alone",
              arguments: [(1, 1, 16), (2, 1, 32), (3, 1, 64), (4, 1, 256), (5, 1, 64), (6, 2, 48), (7, 1, 32), (8, 1, 128), (9, 1, 64), (12, 3, 64)])
        func groupShapes(heads: Int, kvHeads: Int, headDim: Int) {
            let n = 75, width = heads * headDim
            for (type, window) in [(KVType.f32, nil), (.f16, 20 as Int?)] {
                // Three sequences' prompts side by side in one batch, 75 rows each.
                let rows = (0..<3).flatMap { s in (0..<n).map { (seq: s, pos: $0) } }
                let run = { self.shaped(heads: heads, kvHeads: kvHeads, headDim: headDim, n: n, sequences: 3, window: window, type,
                                        rows: rows, seed: UInt64(heads * 1000 + headDim)) }
                let ref = withConfig(isa: .portable) { run() }
                for isa in optimisedISAs {
                    for t in [1, 2, 3, 8] {
                        expectSameBits(withConfig(isa: isa, threads: t) { run() }, ref,
                                       "\(heads)/\(kvHeads) heads, width \(headDim), \(type), window \(window ?? 0), \(isa), threads \(t)")
                    }
                }
                // Rows alone (a decode step each), in the default path.
                for r in stride(from: 0, to: rows.count, by: 13) {
                    let alone = shaped(heads: heads, kvHeads: kvHeads, headDim: headDim, n: n, sequences: 3, window: window, type,
                                       rows: [rows[r]], seed: UInt64(heads * 1000 + headDim))
                    expectSameBits(alone, Array(ref[(r * width)..<((r + 1) * width)]),
                                   "\(heads)/\(kvHeads) heads, width \(headDim), \(type): row \(r) alone")
                }
            }
        }

        @Test("AVX2 and AVX-512 give the portable bits (f32 and f16 KV, block sizes 8, 16, 64), and 1/2/3/8 threads agree")
        func pathsAndThreads() {
            var rng = SeededRandom(22)
            let n = 70
            let data = [SeqData(length: n, kvWidth: 192, qWidth: Self.width, &rng)]
            for type in [KVType.f32, .f16] {
                for bs in [8, 16, 64] {
                    let ref = withConfig(isa: .portable) { oneChunk(type, blockSize: bs, n: n, data) }
                    for isa in optimisedISAs {
                        let got = withConfig(isa: isa) { oneChunk(type, blockSize: bs, n: n, data) }
                        expectSameBits(got, ref, "\(type) block \(bs) \(isa)")
                    }
                    for t in [1, 2, 3, 8] {
                        let got = withConfig(isa: KernelConfig.isa, threads: t) { oneChunk(type, blockSize: bs, n: n, data) }
                        expectSameBits(got, ref, "\(type) block \(bs) threads \(t)")
                    }
                }
            }
        }

        // Bound: |err| <= 3e-5 * max|v|. Scores carry at most 64 u * sum|q k| * scale
        // <= 64 u * 16 * 0.125 ~ 8e-6 absolute error, which becomes that much relative
        // error in each weight; the exp (2 ulp), the 16-lane sum and the value chain add
        // a few u more. The reference uses the stored K/V (f16-rounded for f16).
        @Test("Close to a Double softmax(q k * scale) v (|err| <= 3e-5 max|v|), f32 and f16 KV", arguments: [KVType.f32, .f16])
        func accuracy(type: KVType) {
            var rng = SeededRandom(23)
            let n = 300
            let data = [SeqData(length: n, kvWidth: 192, qWidth: Self.width, &rng)]
            let out = oneChunk(type, blockSize: 32, n: n, data)
            func stored(_ x: Float) -> Double { type == .f16 ? Double(Kernels.float(halfBits: Kernels.halfBits(x))) : Double(x) }
            var bad = 0
            for p in stride(from: 0, to: n, by: 37) {
                for h in 0..<9 {
                    let g = h / 3
                    let q = data[0].q[p][(h * 64)..<((h + 1) * 64)].map(Double.init)
                    var s = (0...p).map { j in
                        (0..<64).reduce(0.0) { $0 + q[$1] * stored(data[0].k[j][g * 64 + $1]) } * 0.125
                    }
                    let m = s.max()!
                    s = s.map { refexp($0 - m) }
                    let z = s.reduce(0, +)
                    for d in 0..<64 {
                        let e = (0...p).reduce(0.0) { $0 + s[$1] * stored(data[0].v[$1][g * 64 + d]) } / z
                        if abs(Double(out[p * Self.width + h * 64 + d]) - e) > 3e-5 { bad += 1 }
                    }
                }
            }
            #expect(bad == 0, "\(bad) outputs outside the bound")
        }
    }
}
