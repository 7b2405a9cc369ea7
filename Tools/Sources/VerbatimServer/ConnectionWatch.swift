import Hummingbird
import NIOCore
import Synchronization

/// Whether the client of a connection has gone away (closed its side or the whole connection).
final class ConnectionState: Sendable {
    private let closed = Atomic<Bool>(false)
    var isClosed: Bool { closed.load(ordering: .acquiring) }
    func markClosed() { closed.store(true, ordering: .releasing) }

    /// Returns when the client has gone away; throws `CancellationError` when cancelled first.
    /// Polls: a request watches for at most its own lifetime, and 20 ms is far below any
    /// generation worth cancelling.
    func waitUntilClosed() async throws {
        while !isClosed { try await Task.sleep(for: .milliseconds(20)) }
    }
}

/// Sits in each connection's pipeline after HTTP decoding and notes when the client goes away.
/// The server allows half-closed connections, so a client that closes shows up as `inputClosed`
/// rather than as an inactive channel: without this, a non-streaming request would go on
/// generating for nobody until its time limit.
final class ConnectionWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let state = ConnectionState()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.fireChannelRead(data) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed? = event as? ChannelEvent { state.markClosed() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.markClosed()
        context.fireChannelInactive()
    }

    /// The state of the watch in a channel's pipeline (a fresh, never-closed one if absent).
    static func state(of channel: any Channel) async -> ConnectionState {
        (try? await channel.eventLoop.submit { try channel.pipeline.syncOperations.handler(type: ConnectionWatch.self).state }.get())
            ?? ConnectionState()
    }
}

/// The request context of the service: Hummingbird's basic context plus the connection, so a
/// handler can tell when its client has gone away.
public struct ServiceRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
