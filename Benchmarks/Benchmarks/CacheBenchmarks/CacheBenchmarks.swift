// Cache-operation benchmarks on a real LMDB folder: content addresses of a 4k-token prompt,
// a verified zero-copy read of one KV block, a 32-block chain (a 1k-token prefix) read and
// verified, and a block written through the writer thread and committed.
// Run: swift package --package-path Benchmarks benchmark --target CacheBenchmarks
import Benchmark
import Foundation
import VerbatimCache
import VerbatimKernels
import VerbatimModel

/// Timing on a shared machine is noisy: wide tolerances on time, none on allocations.
var thresholds: [BenchmarkMetric: BenchmarkThresholds] { [
    .wallClock: .init(relative: [.p50: 25.0], absolute: [:]),
    .mallocCountTotal: .init(relative: [.p50: 5.0], absolute: [.p50: 20]),
] }

let benchmarks: @Sendable () -> Void = {
    let model = Digest128(high: 0x1234, low: 0x5678)
    let profile = KernelConfig.numericsProfile(kv: .f32)
    let blockSize = 32
    let blockBytes = 30 * 2 * 192 * blockSize * 4     // the real model's f32 KV block: 1.4 MiB
    let tokens = (0..<4096).map { TokenID(($0 * 7919) % 49152) }
    let payload = [UInt8]((0..<blockBytes).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    let folder = NSTemporaryDirectory() + "verbatim-cache-bench-\(getpid())"
    let store = try! CacheStore(directory: folder)
    let keys = ContentAddress.kvChain(model: model, profile: profile, salt: [], blockSize: blockSize, tokens: tokens, count: 128)
    func identity(_ i: Int) -> EntryIdentity {
        EntryIdentity(kind: .kvBlock, model: model, profile: profile, saltDigest: EntryIdentity.saltDigest([]),
                      parent: i == 0 ? nil : keys[i - 1], tokens: Array(tokens[(i * blockSize)..<((i + 1) * blockSize)]), sampling: [])
    }
    let identities = (0..<32).map(identity)
    for i in 0..<32 { payload.withUnsafeBytes { store.put(keys[i], identity: identities[i], payload: $0) } }
    store.flush()
    let gigabytesPerSecond = BenchmarkMetric.custom("GB/s", polarity: .prefersLarger, useScalingFactor: false)

    Benchmark("content addresses of a 4096-token prompt (128 blocks)",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(2), maxIterations: 2000, thresholds: thresholds)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(ContentAddress.kvChain(model: model, profile: profile, salt: [], blockSize: blockSize, tokens: tokens, count: 128))
        }
    }

    Benchmark("read + verify one KV block (1.4 MiB, zero-copy)",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal, gigabytesPerSecond], maxDuration: .seconds(2), maxIterations: 2000,
                                   thresholds: thresholds)) { benchmark in
        let start = ContinuousClock.now
        for _ in benchmark.scaledIterations { blackHole(store.read(keys[5], expecting: identities[5]) { $0.count }) }
        benchmark.measurement(gigabytesPerSecond, Int(Double(blockBytes * benchmark.scaledIterations.count) / ((ContinuousClock.now - start) / .seconds(1)) / 1e9))
    }

    Benchmark("read + verify a 32-block chain (a 1024-token prefix)",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal, gigabytesPerSecond], maxDuration: .seconds(2), maxIterations: 500,
                                   thresholds: thresholds)) { benchmark in
        let chain = Array(keys.prefix(32))
        let start = ContinuousClock.now
        for _ in benchmark.scaledIterations { blackHole(store.readChain(chain, identities: identities) { _ in }) }
        benchmark.measurement(gigabytesPerSecond, Int(Double(32 * blockBytes * benchmark.scaledIterations.count) / ((ContinuousClock.now - start) / .seconds(1)) / 1e9))
    }

    var next = 32
    Benchmark("write one KV block and commit (writer thread, then flush)",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(3), maxIterations: 90, thresholds: thresholds,
                                   teardown: { store.close(); try? FileManager.default.removeItem(atPath: folder) })) { benchmark in
        for _ in benchmark.scaledIterations {
            let i = next % 128
            next += 1
            payload.withUnsafeBytes { store.put(keys[i], identity: identity(i), payload: $0) }
            store.flush()
        }
    }
}
