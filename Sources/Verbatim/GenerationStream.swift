import Foundation

/// The events of one request, from the engine thread to one consumer. Bounded: the engine
/// stops scheduling a request whose consumer has `capacity` unread events, so a slow
/// consumer never makes the engine buffer without limit.
final class RequestChannel: @unchecked Sendable {
    // Sendable: every field is guarded by `lock`.
    private let lock = NSLock()
    private var buffer: [GenerationEvent] = []
    private var head = 0
    private var finished = false
    private var cancelled = false
    private var waiter: CheckedContinuation<GenerationEvent?, Never>?
    let capacity: Int
    /// Called (without the lock) when the consumer cancels, so the engine wakes up.
    let onCancel: @Sendable () -> Void

    init(capacity: Int, onCancel: @escaping @Sendable () -> Void) {
        self.capacity = capacity
        self.onCancel = onCancel
    }

    // Engine side.

    var isCancelled: Bool { lock.withLock { cancelled } }
    var isFinished: Bool { lock.withLock { finished } }

    /// Whether the consumer has room for another event.
    var hasRoom: Bool { lock.withLock { buffer.count - head < capacity } }
    /// Events the consumer has room for (a step with drafts may send several).
    var room: Int { lock.withLock { capacity - (buffer.count - head) } }

    func send(_ event: GenerationEvent) {
        lock.lock()
        if let waiter {
            self.waiter = nil
            lock.unlock()
            waiter.resume(returning: event)
            return
        }
        if !cancelled { buffer.append(event) }
        lock.unlock()
    }

    func finish() {
        lock.lock()
        finished = true
        let waiter = self.waiter
        self.waiter = nil
        lock.unlock()
        waiter?.resume(returning: nil)
    }

    // Consumer side.

    func next() async -> GenerationEvent? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<GenerationEvent?, Never>) in
                lock.lock()
                if head < buffer.count {
                    let event = buffer[head]
                    head += 1
                    if head > 64 && head * 2 > buffer.count { buffer.removeFirst(head); head = 0 }
                    lock.unlock()
                    continuation.resume(returning: event)
                } else if finished || cancelled {
                    lock.unlock()
                    continuation.resume(returning: nil)
                } else {
                    waiter = continuation
                    lock.unlock()
                }
            }
        } onCancel: {
            cancel()
        }
    }

    func cancel() {
        lock.lock()
        let alreadyCancelled = cancelled
        cancelled = true
        buffer.removeAll()
        head = 0
        let waiter = self.waiter
        self.waiter = nil
        lock.unlock()
        waiter?.resume(returning: nil)
        if !alreadyCancelled { onCancel() }
    }
}

/// Cancels the request when the last handle on it (stream or iterator) goes away.
final class RequestLifetime: Sendable {
    let channel: RequestChannel
    init(_ channel: RequestChannel) { self.channel = channel }
    deinit { channel.cancel() }
}

/// The events of one generation: tokens as they are made, then one `.summary`. Stopping the
/// iteration (leaving the loop and dropping the stream) or cancelling the consuming task
/// cancels the request; its KV memory is freed within one engine step.
public struct GenerationStream: AsyncSequence, Sendable {
    public typealias Element = GenerationEvent
    let lifetime: RequestLifetime

    /// Reads the events in order; `nil` after the summary.
    public struct Iterator: AsyncIteratorProtocol {
        let lifetime: RequestLifetime
        public mutating func next() async -> GenerationEvent? { await lifetime.channel.next() }
    }

    public func makeAsyncIterator() -> Iterator { Iterator(lifetime: lifetime) }

    /// Stops the generation now.
    public func cancel() { lifetime.channel.cancel() }
}
