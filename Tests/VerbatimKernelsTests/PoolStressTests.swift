import Foundation
import Testing
@testable import VerbatimKernels
import CVerbatimKernels

extension KernelTests {
    /// The pool between jobs. A decode step calls ~200 kernels back to back, jobs of few items
    /// followed by jobs of many; a worker finishing the last item of one job must not be able
    /// to claim (and count) an item of the next. Each call's output must be complete when the
    /// call returns and never written after.
    @Suite("Worker pool under stress") struct PoolStress {
        @Test("jobs of few items then many, back to back: every output complete on return, never written after")
        func fewThenMany() throws {
            var rng = SeededRandom(99)
            // Many items: a linear of 64 column groups (one row). Few: 2 items of SwiGLU.
            let (k, n) = (128, 64 * 64)
            let w = try PackedWeights.f32(k: k, n: n, rows: rng.floats(n * k))
            let x = rng.floats(k)
            let gate = rng.floats(2 * 8192), up = rng.floats(2 * 8192)
            var act = [Float](repeating: 0, count: 2 * 8192)
            var reference = [Float](repeating: 0, count: n)
            x.withUnsafeBufferPointer { xp in
                reference.withUnsafeMutableBufferPointer { Kernels.linear(x: xp.baseAddress!, weights: w, y: $0.baseAddress!, rows: 1) }
            }
            let sentinel = Float.nan.bitPattern | 0x1234
            var y = [Float](repeating: 0, count: n)
            // Threads competing for the cores, as a service's other work does: the pool's worker
            // gets preempted at any instruction, which is what opens the window between jobs.
            final class Stop: @unchecked Sendable { var now = false }
            let stop = Stop()
            for _ in 0..<2 {
                Thread.detachNewThread {
                    var v = 1.0
                    while !stop.now {
                        for i in 0..<20_000 { v = (v + Double(i)).squareRoot() }
                        if v < 0 { print(v) }
                        usleep(UInt32.random(in: 0...300))
                    }
                }
            }
            defer { stop.now = true }
            // Widen the windows between jobs so a race shows within a few thousand rounds.
            vk_test_set_pool_delay(2000)
            defer { vk_test_set_pool_delay(0) }
            var incomplete = 0, late = 0
            let rounds = Int(ProcessInfo.processInfo.environment["POOL_STRESS_ROUNDS"] ?? "") ?? 20_000
            for round in 0..<rounds {
                for j in y.indices { y[j] = Float(bitPattern: sentinel) }
                gate.withUnsafeBufferPointer { g in up.withUnsafeBufferPointer { u in act.withUnsafeMutableBufferPointer {
                    Kernels.swiGLU(gate: g.baseAddress!, up: u.baseAddress!, out: $0.baseAddress!, count: 2 * 8192)
                } } }
                x.withUnsafeBufferPointer { xp in
                    y.withUnsafeMutableBufferPointer { Kernels.linear(x: xp.baseAddress!, weights: w, y: $0.baseAddress!, rows: 1) }
                }
                if y != reference { incomplete += 1 }
                for j in y.indices { y[j] = Float(bitPattern: sentinel) }
                if round % 64 == 0 { usleep(UInt32(rng.next() % 400)) }   // now and then let the worker doze off
                if y.contains(where: { $0.bitPattern != sentinel }) { late += 1 }
            }
            #expect(incomplete == 0 && late == 0,
                    "\(incomplete) of \(rounds) calls returned before their output was complete, \(late) saw writes after returning")
        }

        @Test("a caller's thread limit: its jobs use at most that many pool threads; other threads' jobs still use the whole pool")
        func callerLimit() throws {
            let saved = KernelConfig.threads
            KernelConfig.setThreads(4)
            defer { KernelConfig.setThreads(saved); KernelConfig.callerThreads = nil }
            #expect(KernelConfig.callerThreads == nil)
            // "Other threads take items" needs them scheduled within the job's 20 ms: on a machine
            // busy with other work (4 pool threads on 2 cores) one job can pass without them, so
            // up to 10 jobs may try. The limits below must hold for every job.
            func spreads(_ job: () -> Int) -> Bool { (0..<10).contains { _ in job() > 0 } }
            #expect(spreads { KernelConfig.highestThreadUsed(items: 400) }, "no limit: other pool threads take items")
            KernelConfig.callerThreads = 1
            #expect(KernelConfig.highestThreadUsed(items: 400) == 0, "limit 1: the caller alone")
            // The limit is this thread's: another thread's jobs still spread over the pool.
            final class Box: @unchecked Sendable { var highest = -1 }
            let other = Box(), done = DispatchSemaphore(value: 0)
            Thread {
                for _ in 0..<10 where other.highest <= 0 { other.highest = KernelConfig.highestThreadUsed(items: 400) }
                done.signal()
            }.start()
            done.wait()
            #expect(other.highest > 0, "another thread's jobs: the whole pool")
            KernelConfig.callerThreads = 2
            #expect(KernelConfig.highestThreadUsed(items: 400) <= 1, "limit 2: the caller and pool thread 1")
            KernelConfig.callerThreads = 8
            #expect(KernelConfig.highestThreadUsed(items: 400) <= 3, "a limit above the pool is the pool")
            // Threads beyond the limit sleep through a stream of jobs instead of waking for each:
            // sampled while the jobs run, pool threads 2 and 3 are asleep most of the time.
            KernelConfig.callerThreads = 2
            final class Samples: @unchecked Sendable { var asleep = 0, total = 0, stop = false }
            let samples = Samples(), sampled = DispatchSemaphore(value: 0)
            Thread {
                while !samples.stop {
                    if KernelConfig.sleepingPoolThreads >= 2 { samples.asleep += 1 }
                    samples.total += 1
                    usleep(50)
                }
                sampled.signal()
            }.start()
            for _ in 0..<400 { _ = KernelConfig.highestThreadUsed(items: 4) }
            samples.stop = true
            sampled.wait()
            #expect(samples.asleep * 2 > samples.total, "two threads asleep in \(samples.asleep) of \(samples.total) samples")
        }
    }
}
