import Foundation

/// Blocking work (reading a model file, tokenizing a hostile prompt, an LMDB read transaction,
/// waiting for a flush) on a thread of its own, so it never holds one of Swift's cooperative
/// threads, and never lets a transaction cross an `await`.
package enum BlockingWork {
    /// Runs `work` on a new thread named `name` and returns its result to the awaiting task.
    /// Linux keeps at most 15 bytes of a thread's name (a longer one is not set): the package's
    /// threads are named `vb-...`.
    /// `stackSize` in bytes (nil: the platform's default) for work that recurses deeply.
    package static func run<T: Sendable, E: Error>(name: String, stackSize: Int? = nil,
                                                   _ work: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            let thread = Thread { continuation.resume(returning: Result { () throws(E) in try work() }) }
            thread.name = name
            if let stackSize { thread.stackSize = stackSize }
            thread.start()
        }
        return try result.get()
    }
}

/// Write-behind on a thread of its own: producers hand items over and never wait; the thread
/// takes everything queued at once and gives it to `process` as one batch. The cache's LMDB
/// writer and its shared-tier writer are both one of these.
///
/// Bounded: an item that would take the bytes waiting past `maxPendingBytes` is refused (the
/// caller counts it as dropped). `process` may ask for a pause (writes are failing): until it
/// ends, items with bytes are refused and the batch waiting is not taken, except once more when
/// the worker closes.
package final class BatchWorker<Item: Sendable>: @unchecked Sendable {
    // Sendable: every mutable field is behind `lock`; `process` runs on the worker's thread only.
    private let lock = NSCondition()
    private var queue: [(item: Item, bytes: Int)] = []
    private var pendingBytes = 0
    private var busy = false
    private var stopping = false
    private var finished = false
    private var pausedUntil: ContinuousClock.Instant?
    private let maxPendingBytes: Int
    private let maxBatchBytes: Int
    private let exited = DispatchSemaphore(value: 0)

    /// Starts the thread (`name`: at most 15 bytes, see `BlockingWork`). `process` gets each batch
    /// in the order handed over and returns nil, or how long to pause before the next batch. A
    /// batch holds at most `maxBatchBytes` bytes of items (at least one item); what waits
    /// beyond it stays counted against `maxPendingBytes`.
    package init(name: String, maxPendingBytes: Int, maxBatchBytes: Int = .max, process: @escaping @Sendable ([Item]) -> Duration?) {
        self.maxPendingBytes = maxPendingBytes
        self.maxBatchBytes = maxBatchBytes
        let thread = Thread { [self] in
            run(process)
            exited.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Queues `item`; false (nothing queued) when it has bytes and the worker is paused or
    /// the bytes waiting would pass the bound, or when the worker is closed. Items without
    /// bytes (touches, counters) are always taken while the worker runs.
    @discardableResult
    package func submit(_ item: Item, bytes: Int = 0) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !stopping else { return false }
        if bytes > 0 {
            let paused = pausedUntil.map { ContinuousClock.now < $0 } ?? false
            guard !paused, pendingBytes + bytes <= maxPendingBytes else { return false }
        }
        queue.append((item, bytes))
        pendingBytes += bytes
        lock.signal()
        return true
    }

    /// Bytes handed over and not yet taken by the thread.
    package var bytesWaiting: Int { lock.withLock { pendingBytes } }

    /// Waits until everything handed over so far has been processed. While paused, what
    /// waits for the pause to end is not waited for.
    package func flush() {
        lock.lock()
        while (busy || (pausedUntil == nil && !queue.isEmpty)) && !finished { lock.broadcast(); lock.wait() }
        lock.unlock()
    }

    /// Processes what is queued (one more try if paused; what a failed last try leaves is
    /// dropped), then stops the thread and waits until it has left `process` for good. Idempotent.
    package func close() {
        lock.lock()
        let first = !stopping
        stopping = true
        lock.broadcast()
        while !finished { lock.wait() }
        lock.unlock()
        if first { exited.wait() }
    }

    private func run(_ process: ([Item]) -> Duration?) {
        while true {
            lock.lock()
            while !stopping {
                if !queue.isEmpty, let until = pausedUntil, ContinuousClock.now < until {
                    // Paused: wait it out (new items with bytes are refused meanwhile).
                    let left: Duration = until - ContinuousClock.now
                    _ = lock.wait(until: Date(timeIntervalSinceNow: left.inSeconds))
                    continue
                }
                if !queue.isEmpty { break }
                lock.wait()
            }
            if queue.isEmpty && stopping {
                finished = true
                lock.broadcast()
                lock.unlock()
                return
            }
            var taken = 0, bytes = 0
            while taken < queue.count, taken == 0 || bytes + queue[taken].bytes <= maxBatchBytes {
                bytes += queue[taken].bytes
                taken += 1
            }
            let batch = queue[..<taken].map(\.item)
            queue.removeFirst(taken)
            pendingBytes -= bytes
            busy = true
            lock.unlock()

            let pause = process(batch)

            lock.lock()
            busy = false
            pausedUntil = pause.map { ContinuousClock.now + $0 }
            if pause != nil && stopping {
                // The last try failed: what is left is dropped.
                queue.removeAll()
                pendingBytes = 0
            }
            lock.broadcast()
            lock.unlock()
        }
    }
}
