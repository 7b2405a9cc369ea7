import Foundation
import Synchronization
import Testing
import VerbatimCore

/// What a worker's `process` saw, batch by batch (written on the worker's thread).
final class Batches<Item: Sendable>: Sendable {
    private let seen = Mutex<[[Item]]>([])
    func append(_ batch: [Item]) { seen.withLock { $0.append(batch) } }
    var all: [[Item]] { seen.withLock { $0 } }
    var items: [Item] { all.flatMap { $0 } }

    /// Waits up to `seconds` for `condition` on the items seen.
    func wait(seconds: Double = 10, until condition: ([Item]) -> Bool) -> Bool {
        let end = Date(timeIntervalSinceNow: seconds)
        while Date() < end {
            if condition(items) { return true }
            usleep(2_000)
        }
        return condition(items)
    }
}

@Suite("Background work")
struct BackgroundTests {
    struct Refused: Error, Equatable { let value: Int }

    /// Threads that wait for each other: `arrive` returns whether all `count` came within the time.
    final class Barrier: @unchecked Sendable {
        private let condition = NSCondition()
        private var arrived = 0
        let count: Int
        init(_ count: Int) { self.count = count }
        func arrive() -> Bool {
            condition.lock()
            defer { condition.unlock() }
            arrived += 1
            condition.broadcast()
            let end = Date(timeIntervalSinceNow: 20)
            while arrived < count && Date() < end { _ = condition.wait(until: end) }
            return arrived >= count
        }
    }

    @Test("BlockingWork runs each call on a thread of its own (16 calls that wait for each other all finish) and hands back the value or the typed error")
    func blockingWork() async throws {
        // On the cooperative pool (one thread per core) these would wait for each other until the time runs out.
        let barrier = Barrier(16)
        let met = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<barrier.count { group.addTask { await BlockingWork.run(name: "vb-test-work") { barrier.arrive() } } }
            var all = true
            for await ok in group { all = all && ok }
            return all
        }
        #expect(met)
        let value = try await BlockingWork.run(name: "vb-test-work", stackSize: 1 << 20) { () throws(Refused) in 42 }
        #expect(value == 42)
        await #expect(throws: Refused(value: 7)) {
            try await BlockingWork.run(name: "vb-test-work") { () throws(Refused) -> Int in throw Refused(value: 7) }
        }
    }

    @Test("a batch worker processes every item in order, in batches, and flush waits for all handed over")
    func orderAndFlush() {
        let seen = Batches<Int>()
        let worker = BatchWorker<Int>(name: "vb-test-writer", maxPendingBytes: 1 << 20) { batch in
            seen.append(batch)
            usleep(1_000)   // a commit takes time: items pile up meanwhile
            return nil
        }
        for i in 0..<1000 { #expect(worker.submit(i, bytes: 8)) }
        worker.flush()
        #expect(seen.items == Array(0..<1000))
        #expect(seen.all.count < 1000, "items handed over during a batch go together into the next (\(seen.all.count) batches)")
        #expect(worker.bytesWaiting == 0)
        worker.close()
        #expect(!worker.submit(1000), "a closed worker takes nothing")
    }

    @Test("items with bytes past the bound are refused; items without bytes are always taken")
    func byteBound() {
        let seen = Batches<String>()
        let started = DispatchSemaphore(value: 0), gate = DispatchSemaphore(value: 0)
        let worker = BatchWorker<String>(name: "vb-test-writer", maxPendingBytes: 25) { batch in
            seen.append(batch)
            if batch == ["hold"] { started.signal(); gate.wait() }
            return nil
        }
        worker.submit("hold")
        started.wait()   // the thread is inside `process`: what comes next waits in the queue
        #expect(worker.submit("a", bytes: 10))
        #expect(worker.submit("b", bytes: 10))
        #expect(!worker.submit("c", bytes: 10), "30 bytes would pass the bound of 25")
        #expect(worker.submit("count"), "no bytes: never refused")
        #expect(worker.bytesWaiting == 20)
        gate.signal()
        worker.flush()
        #expect(seen.all == [["hold"], ["a", "b", "count"]])
        worker.close()
    }

    @Test("a batch holds at most maxBatchBytes (at least one item); what waits beyond it stays counted against the bound")
    func batchBound() {
        let seen = Batches<String>()
        let started = DispatchSemaphore(value: 0), gate = DispatchSemaphore(value: 0)
        let worker = BatchWorker<String>(name: "vb-test-writer", maxPendingBytes: 45, maxBatchBytes: 20) { batch in
            seen.append(batch)
            if batch == ["hold"] { started.signal(); gate.wait() }
            return nil
        }
        worker.submit("hold")
        started.wait()
        for name in ["a", "b", "c", "d"] { #expect(worker.submit(name, bytes: 10)) }
        #expect(worker.submit("big", bytes: 30) == false, "70 bytes would pass the bound of 45")
        gate.signal()
        #expect(seen.wait { $0.count == 5 })
        #expect(seen.all == [["hold"], ["a", "b"], ["c", "d"]])
        #expect(worker.submit("big", bytes: 30), "one item over maxBatchBytes still goes, alone")
        worker.flush()
        #expect(seen.all.last == ["big"])
        worker.close()
    }

    @Test("a pause refuses items with bytes until it ends, then the queue is processed; close makes one last try at once")
    func pauseAndClose() {
        let seen = Batches<String>()
        let worker = BatchWorker<String>(name: "vb-test-writer", maxPendingBytes: 1 << 20) { batch in
            seen.append(batch)
            return batch.contains("fail") ? .milliseconds(300) : nil
        }
        worker.submit("fail", bytes: 1)
        #expect(seen.wait { $0 == ["fail"] })
        usleep(20_000)   // the worker has recorded the pause by now
        #expect(!worker.submit("dropped", bytes: 1), "paused: items with bytes are refused")
        #expect(worker.submit("counter"), "items without bytes wait for the pause to end")
        #expect(seen.wait { $0 == ["fail", "counter"] }, "processed once the pause ended: \(seen.items)")
        #expect(worker.submit("later", bytes: 1), "the pause is over")
        worker.flush()
        #expect(seen.items == ["fail", "counter", "later"])
        worker.close()

        let failing = Batches<Int>()
        let stuck = BatchWorker<Int>(name: "vb-test-writer", maxPendingBytes: 1 << 20) { batch in
            failing.append(batch)
            return .seconds(60)   // every write fails
        }
        stuck.submit(1)
        #expect(failing.wait { $0 == [1] })
        stuck.submit(2)
        let start = Date()
        stuck.close()
        #expect(Date().timeIntervalSince(start) < 30, "close does not wait out the pause")
        #expect(failing.all == [[1], [2]], "one last try with what was queued")
    }
}
